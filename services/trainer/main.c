/* ensflow-trainer - one member of the trainers' consumer group on trial jobs. */
#include <stdio.h>

#include "ensflow/svc.h"
#include "trainer.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"max-attempts", ENS_CONF_INT, "3", 1, 100,
         "a job started this many times without an outcome is reported FAILED"},
        {"lease-ms", ENS_CONF_INT, "30000", 2000, 3600000,
         "a job this trainer stops renewing (it died) is issued again this long after"},
        {"compact-grace-s", ENS_CONF_DOUBLE, "300", 1, 86400,
         "compacting a finished study, files younger than this are left (a writer's)"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-trainer", "trainer", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    /* the lease and the heartbeat go on beside a training job, on a connection of their own,
     * with a state of its own: one state a connection, so that each thread keeps to its own */
    char url[512], errstr[512] = "";
    ens_redis_t *redis_bg = NULL;
    ens_models_t *store = NULL;
    ens_state_t *state = NULL, *state_bg = NULL;
    ens_conf_redis_url(conf, url, sizeof url);
    if (ens_redis_connect(url, &redis_bg, errstr, sizeof errstr))
        fprintf(stderr, "ensflow-trainer: redis: %s\n", errstr);
    else if (ens_models_open_conf(conf, &store, errstr, sizeof errstr))
        fprintf(stderr, "ensflow-trainer: %s\n", errstr);
    else if (ens_state_redis_new(redis, store, &state) ||
             ens_state_redis_new(redis_bg, store, &state_bg))
        fprintf(stderr, "ensflow-trainer: cannot create the state (out of memory)\n");
    else {
        ens_trainer_t trainer = {.state = state, .state_bg = state_bg,
                                 .store = store, .producer = producer,
                                 .stop = &stop,
                                 .max_attempts = (int)ens_conf_int(conf, "max-attempts"),
                                 .lease_ms = (int)ens_conf_int(conf, "lease-ms"),
                                 .compact_grace_s = ens_conf_double(conf, "compact-grace-s"),
                                 .mu = PTHREAD_MUTEX_INITIALIZER};
        ens_svc_loop_t loop = {.name = "trainer", .producer = producer,
                               .tick = ens_trainer_tick, .handle = ens_trainer_handle,
                               .on_consumer = ens_trainer_on_consumer, .ctx = &trainer,
                               .long_handlers = 1, .busy_tick = ens_trainer_busy_tick};
        const char *topics[] = {ENS_TOPIC_TRIAL_JOBS};
        rc = ens_svc_serve(conf, &loop, "ensflow-trainer", topics, 1, &stop);
        ens_trainer_close(&trainer);
    }
    if (!state_bg) /* it did not get as far as serving */
        rc = 1;
    ens_state_free(state_bg);
    ens_state_free(state);
    ens_models_close(store);
    ens_redis_free(redis_bg);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
