/* ensflow-inference - an inference group in one process: batches requests from Kafka, answers
 * with the combined prediction of the ensemble in force, follows new placement plans. With
 * --devices N it is N devices (CPU slots), each running the plan rows placed on it. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ensflow/log.h"
#include "ensflow/svc.h"
#include "ensflow/inference.h"
#include "local_group.h"
#include "serve.h"

static volatile sig_atomic_t stop;

static ens_err_t load_on_devices(void *ctx, ens_serve_t *g, const ens_placement_plan_t *plan,
                                 char *errstr, size_t errstr_size) {
    return ens_local_group_load_plan(ctx, ens_serve_inference(g), ens_serve_redis(g), plan, errstr,
                                     errstr_size);
}

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        ENS_SERVE_CONF_DEFS,
        {"devices", ENS_CONF_INT, "1", 1, 64,
         "devices (CPU slots) of this group, a thread each; more than 1 sets "
         "ENSFLOW_NN_THREADS=1 unless it is set"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-inference", "inference", defs, argc, argv, &conf, &redis,
                           &producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_svc_signals(&stop);
    ens_local_group_t *lg = NULL;
    ens_inference_t *inf = NULL;
    ens_serve_t *g = NULL;
    int devices = (int)ens_conf_int(conf, "devices");
    if (devices > 1 && !getenv("ENSFLOW_NN_THREADS"))
        setenv("ENSFLOW_NN_THREADS", "1", 1); /* a device is one core: no pool across them */
    ens_models_t *store = NULL;
    char errstr[512];
    rc = ens_inference_new(&inf) == ENS_OK ? 0 : 1;
    if (!rc && ens_models_open_conf(conf, &store, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow-inference: %s\n", errstr);
        rc = 1;
    }
    if (!rc)
        ens_inference_set_store(inf, store);
    if (!rc && ens_serve_new(conf, redis, producer, inf, &stop, &g)) {
        ENS_ERROR("msg=\"out of memory\"");
        rc = 1;
    }
    if (!rc && devices > 1) {
        if (ens_local_group_new(devices, ens_serve_instance(g), &lg, errstr, sizeof errstr)) {
            ENS_ERROR("msg=\"cannot start the devices\" error=\"%s\"", errstr);
            rc = 1;
        } else {
            ens_inference_hooks_t hooks = ens_local_group_hooks(lg);
            ens_inference_set_partition(inf, 0, devices, &hooks);
            ens_inference_set_instance(inf, ens_serve_instance(g));
            ens_serve_set_devices(g, devices, load_on_devices, lg);
        }
    }
    if (!rc)
        rc = ens_serve_run(g);
    ens_serve_free(g);
    ens_local_group_free(lg);
    ens_inference_free(inf);
    ens_models_close(store);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    ens_metrics_stop();
    return rc;
}
