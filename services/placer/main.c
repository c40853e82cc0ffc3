/* ensflow-placer - places the chosen ensemble and publishes placement plans. */
#include <stdio.h>

#include "ensflow/svc.h"
#include "placer.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"device", ENS_CONF_STR, "cpu-0", 0, 0, "device every member is placed on"},
        {"serving-batch", ENS_CONF_INT, "32", 1, 4096, "serving batch size of each member"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-placer", "placer", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_state_t *state = NULL;
    ens_err_t err = ens_state_redis_new(redis, NULL, &state);
    if (err) {
        fprintf(stderr, "ensflow-placer: state: %s\n", ens_err_str(err));
        ens_kafka_free(producer);
        ens_redis_free(redis);
        ens_conf_free(conf);
        return 1;
    }
    ens_placer_t placer = {.state = state, .producer = producer,
                           .device = ens_conf_str(conf, "device"),
                           .batch_size = (int32_t)ens_conf_int(conf, "serving-batch")};
    ens_svc_loop_t loop = {.name = "placer", .producer = producer, .handle = ens_placer_handle,
                           .ctx = &placer};
    const char *topics[] = {ENS_TOPIC_DEPLOY_COMMANDS};
    rc = ens_svc_serve(conf, &loop, "ensflow-placer", topics, 1, &stop);
    ens_state_free(state);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
