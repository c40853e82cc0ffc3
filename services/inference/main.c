/* ensflow-inference - an inference group on one device: batches requests from Kafka, answers
 * with the combined prediction of the ensemble in force, follows new placement plans. */
#include <stdio.h>
#include <unistd.h>

#include "ensflow/svc.h"
#include "inference.h"
#include "serve.h"

static volatile sig_atomic_t stop;

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        ENS_SERVE_CONF_DEFS,
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_serve_t g = {.stop = &stop, .ranks = 1};
    int rc = ens_svc_start("ensflow-inference", "inference", defs, argc, argv, &g.conf, &g.redis,
                           &g.producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_svc_signals(&stop);
    rc = ens_inference_new(&g.inf) == ENS_OK ? 0 : 1;
    if (!rc) {
        ens_serve_init(&g);
        rc = ens_serve_run(&g);
    }
    ens_inference_free(g.inf);
    ens_kafka_free(g.producer);
    ens_redis_free(g.redis);
    ens_conf_free(g.conf);
    ens_metrics_stop();
    return rc;
}
