/* ensflow-trainer - one member of the trainers' consumer group on trial jobs. */
#include "ensflow/svc.h"
#include "trainer.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"max-attempts", ENS_CONF_INT, "3", 1, 100,
         "a job started this many times without an outcome is reported FAILED"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-trainer", "trainer", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_trainer_t trainer = {.redis = redis, .producer = producer, .stop = &stop,
                             .max_attempts = (int)ens_conf_int(conf, "max-attempts")};
    ens_svc_loop_t loop = {.name = "trainer", .producer = producer, .tick = ens_trainer_tick,
                           .handle = ens_trainer_handle, .on_consumer = ens_trainer_on_consumer,
                           .ctx = &trainer};
    const char *topics[] = {ENS_TOPIC_TRIAL_JOBS};
    rc = ens_svc_serve(conf, &loop, "ensflow-trainer", topics, 1, &stop);
    ens_trainer_close(&trainer);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    return rc;
}
