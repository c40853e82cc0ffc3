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
        {"max-batch", ENS_CONF_INT, "64", 1, 4096, "most requests in one batch"},
        {"max-wait-us", ENS_CONF_INT, "2000", 0, 10000000,
         "longest wait for a batch to fill after its first request (microseconds)"},
        {"fetch-wait-ms", ENS_CONF_INT, "2", 1, 1000, "fetch.wait.max.ms of the request consumer"},
        {"group", ENS_CONF_STR, "ensflow-inference", 0, 0,
         "consumer group shared by every inference group"},
        {"instance", ENS_CONF_STR, "", 0, 0, "this group's id; empty = host-pid"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_serve_t g = {.stop = &stop, .ranks = 1};
    int rc = ens_svc_start("ensflow-inference", "inference", defs, argc, argv, &g.conf, &g.redis,
                           &g.producer);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_serve_init(&g);
    ens_svc_signals(&stop);
    rc = ens_inference_new(&g.inf) == ENS_OK ? ens_serve_run(&g) : 1;
    ens_inference_free(g.inf);
    ens_kafka_free(g.producer);
    ens_redis_free(g.redis);
    ens_conf_free(g.conf);
    ens_metrics_stop();
    return rc;
}
