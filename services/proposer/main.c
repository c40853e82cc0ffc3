/* ensflow-proposer - consumes study commands and trial results, issues trial jobs. */
#include "ensflow/svc.h"
#include "proposer.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-proposer", "proposer", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_proposer_t proposer = {.redis = redis, .producer = producer};
    ens_svc_loop_t loop = {.name = "proposer", .producer = producer,
                           .handle = ens_proposer_handle, .ctx = &proposer};
    const char *topics[] = {ENS_TOPIC_STUDY_COMMANDS, ENS_TOPIC_TRIAL_RESULTS};
    rc = ens_svc_serve(conf, &loop, "ensflow-proposer", topics, 2, &stop);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
