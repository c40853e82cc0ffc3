/* ensflow-selector - builds each study's ensemble front as models are evaluated. */
#include <stdio.h>

#include "ensflow/svc.h"
#include "selector.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"debounce-ms", ENS_CONF_INT, "300", 0, 600000,
         "recompute a study's front once no model arrived for this long"},
        {"max-delay-ms", ENS_CONF_INT, "3000", 0, 3600000,
         "... or once its oldest unpublished model waited this long"},
        {"max-members", ENS_CONF_INT, "32", 1, 10000,
         "mogreedy: largest ensemble, members counted with repetition"},
        {"caruana-rounds", ENS_CONF_INT, "50", 1, 10000,
         "caruana: rounds of forward selection with replacement"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-selector", "selector", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_state_t *state = NULL;
    ens_err_t err = ens_state_redis_new(redis, NULL, &state);
    if (err) {
        fprintf(stderr, "ensflow-selector: state: %s\n", ens_err_str(err));
        ens_kafka_free(producer);
        ens_redis_free(redis);
        ens_conf_free(conf);
        return 1;
    }
    ens_selector_t selector = {
        .state = state,
        .producer = producer,
        .debounce_ms = (int)ens_conf_int(conf, "debounce-ms"),
        .max_delay_ms = (int)ens_conf_int(conf, "max-delay-ms"),
        .opts = {.max_members = (int)ens_conf_int(conf, "max-members"),
                 .max_iter = (int)ens_conf_int(conf, "caruana-rounds")}};
    ens_svc_loop_t loop = {.name = "selector", .producer = producer,
                           .handle = ens_selector_handle, .tick = ens_selector_tick,
                           .ctx = &selector};
    const char *topics[] = {ENS_TOPIC_MODEL_EVALUATED};
    rc = ens_svc_serve(conf, &loop, "ensflow-selector", topics, 1, &stop);
    ens_selector_close(&selector);
    ens_state_free(state);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
