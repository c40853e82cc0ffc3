/* ensflow-proposer - consumes study commands and trial results, issues trial jobs. */
#include <stdio.h>

#include "ensflow/svc.h"
#include "proposer.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"jobs-per-trainer", ENS_CONF_INT, "2", 1, 64,
         "jobs kept in flight per live trainer (2: one running, one queued on its partition)"},
        {"trainer-ttl-ms", ENS_CONF_INT, "15000", 1000, 3600000,
         "a trainer without a heartbeat for this long is gone"},
        {"tick-ms", ENS_CONF_INT, "1000", 50, 60000, "least time between scheduling passes"},
        {"reissue-ms", ENS_CONF_INT, "30000", 1000, 3600000,
         "a job in flight that no live trainer holds (lost with a trainer or the broker) is "
         "issued again this long after it was sent"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-proposer", "proposer", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_state_t *state = NULL;
    ens_err_t err = ens_state_redis_new(redis, NULL, &state);
    if (err) {
        fprintf(stderr, "ensflow-proposer: state: %s\n", ens_err_str(err));
        ens_kafka_free(producer);
        ens_redis_free(redis);
        ens_conf_free(conf);
        return 1;
    }
    ens_proposer_t proposer = {.state = state, .producer = producer,
                               .jobs_per_trainer = (int)ens_conf_int(conf, "jobs-per-trainer"),
                               .trainer_ttl_ms = (int)ens_conf_int(conf, "trainer-ttl-ms"),
                               .tick_ms = (int)ens_conf_int(conf, "tick-ms"),
                               .reissue_ms = (int)ens_conf_int(conf, "reissue-ms")};
    ens_svc_loop_t loop = {.name = "proposer", .producer = producer,
                           .handle = ens_proposer_handle, .tick = ens_proposer_tick,
                           .ctx = &proposer};
    const char *topics[] = {ENS_TOPIC_STUDY_COMMANDS, ENS_TOPIC_TRIAL_RESULTS};
    rc = ens_svc_serve(conf, &loop, "ensflow-proposer", topics, 2, &stop);
    ens_state_free(state);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
