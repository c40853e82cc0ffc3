/* ensflow-broker - a Kafka-protocol broker in one process on librdkafka's mock cluster.
 * It keeps nothing on disk: for development, tests and demos only. Services see only
 * bootstrap.servers, so they run unchanged against Apache Kafka. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ensflow/conf.h"
#include "ensflow/kafka.h"
#include "ensflow/log.h"

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static const ens_conf_def_t defs[] = {
    {"partitions", ENS_CONF_INT, "4", 1, 1024, "partitions of every ensflow topic"},
    {"brokers", ENS_CONF_INT, "1", 1, 16, "mock brokers in the cluster"},
    {"bootstrap-file", ENS_CONF_STR, "", 0, 0,
     "where to write the bootstrap address; empty = <run-dir>/bootstrap"},
    {NULL, 0, NULL, 0, 0, NULL}};

/* Write atomically so that readers never see a half-written address. */
static int write_bootstrap(const char *path, const char *bootstraps) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", bootstraps) > 0;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    char errstr[512];
    ens_log_init("broker");
    ens_conf_t *conf = NULL;
    ens_err_t err = ens_conf_new("ensflow-broker", defs, argc, argv, &conf, errstr, sizeof errstr);
    if (err == ENS_ERR_STOPPED)
        return 0;
    if (err) {
        fprintf(stderr, "ensflow-broker: %s\n", errstr);
        return 2;
    }
    ens_log_set_level(ens_conf_str(conf, "log-level"));
    char path[1024];
    if (*ens_conf_str(conf, "bootstrap-file"))
        snprintf(path, sizeof path, "%s", ens_conf_str(conf, "bootstrap-file"));
    else
        snprintf(path, sizeof path, "%s/bootstrap", ens_conf_str(conf, "run-dir"));

    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, rc, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(rc);
        fprintf(stderr, "ensflow-broker: rd_kafka_new: %s\n", errstr);
        ens_conf_free(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)ens_conf_int(conf, "brokers"));
    if (!mc) {
        fprintf(stderr, "ensflow-broker: could not create the mock cluster\n");
        rd_kafka_destroy(rk);
        ens_conf_free(conf);
        return 1;
    }
    int rc_exit = 0;
    int partitions = (int)ens_conf_int(conf, "partitions");
    for (int i = 0; ens_topics_all[i]; i++) {
        char topic[256];
        ens_conf_topic(conf, ens_topics_all[i], topic, sizeof topic);
        rd_kafka_resp_err_t rerr = rd_kafka_mock_topic_create(mc, topic, partitions, 1);
        if (rerr) {
            fprintf(stderr, "ensflow-broker: creating topic %s: %s\n", topic,
                    rd_kafka_err2str(rerr));
            rc_exit = 1;
        }
    }
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    if (!rc_exit && write_bootstrap(path, bootstraps) != 0) {
        fprintf(stderr, "ensflow-broker: cannot write %s: %s\n", path, strerror(errno));
        rc_exit = 1;
    }
    if (!rc_exit) {
        ENS_INFO("msg=\"broker up (in memory, nothing kept on disk)\" bootstrap=%s partitions=%d "
                 "file=%s",
                 bootstraps, partitions, path);
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        while (!stop)
            rd_kafka_poll(rk, 200);
        ENS_INFO("msg=\"broker stopping\"");
        unlink(path);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    ens_conf_free(conf);
    return rc_exit;
}
