/* ensflow-evaluator - one member of the evaluators' consumer group on trial results. */
#include <stdio.h>

#include "ensflow/svc.h"
#include "evaluator.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"serving-batch", ENS_CONF_INT, "32", 1, 4096, "batch size the cost is measured at"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-evaluator", "evaluator", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_models_t *store = NULL;
    ens_state_t *state = NULL;
    char errstr[512];
    ens_err_t err = ens_models_open_conf(conf, &store, errstr, sizeof errstr);
    if (!err && (err = ens_state_redis_new(redis, store, &state)))
        snprintf(errstr, sizeof errstr, "state: %s", ens_err_str(err));
    if (err) {
        fprintf(stderr, "ensflow-evaluator: %s\n", errstr);
        ens_models_close(store);
        ens_kafka_free(producer);
        ens_redis_free(redis);
        ens_conf_free(conf);
        return 1;
    }
    ens_evaluator_t evaluator = {.state = state, .producer = producer,
                                 .serving_batch = (int32_t)ens_conf_int(conf, "serving-batch")};
    ens_svc_loop_t loop = {.name = "evaluator", .producer = producer,
                           .handle = ens_evaluator_handle, .ctx = &evaluator};
    const char *topics[] = {ENS_TOPIC_TRIAL_RESULTS};
    rc = ens_svc_serve(conf, &loop, "ensflow-evaluator", topics, 1, &stop);
    ens_evaluator_close(&evaluator);
    ens_state_free(state);
    ens_models_close(store);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
