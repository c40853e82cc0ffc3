/* serve.h - the serving loop of an inference group, shared by the single-process binary and
 * rank 0 of an MPI group. */
#ifndef ENSFLOW_SERVE_H
#define ENSFLOW_SERVE_H

#include <signal.h>

#include "ensflow/conf.h"
#include "ensflow/kafka.h"
#include "ensflow/metrics.h"
#include "ensflow/store.h"
#include "inference.h"

typedef struct ens_serve_s ens_serve_t;
typedef struct ens_serve_pipe_s ens_serve_pipe_t;

/** How a plan comes into force: ens_inference_load_plan alone, or on every rank of a group. */
typedef ens_err_t (*ens_serve_load_plan_fn)(void *ctx, ens_serve_t *g,
                                            const ens_placement_plan_t *plan, char *errstr,
                                            size_t errstr_size);

/** An inference group: set the inputs, call ens_serve_run; the loop owns the consumers. */
struct ens_serve_s {
    /* inputs */
    ens_conf_t *conf;          /**< max-batch, max-wait-us, fetch-wait-ms, group */
    ens_redis_t *redis;
    ens_kafka_t *producer;
    ens_inference_t *inf;
    char instance[ENS_ID_MAX]; /**< this group's id: its plan consumer group and devices */
    int max_batch, max_wait_us;
    int queue_kbytes;          /**< prefetched requests at most (queued.max.messages.kbytes) */
    int overlap;               /**< 1: Kafka I/O and batching on their own thread */
    int ranks;                 /**< devices of the group (MPI ranks), 1 alone */
    volatile sig_atomic_t *stop;
    ens_serve_load_plan_fn load_plan; /**< NULL = ens_inference_load_plan */
    void *load_plan_ctx;
    ens_metric_t *m_batch, *m_latency, *m_requests, *m_not_ok, *m_dlq, *m_skipped;
    /* owned by the loop */
    ens_kafka_t *requests, *plans;
    ens_serve_pipe_t *pipe;
    int64_t registered_us;
    double overhead_ms;          /**< measured serving CPU per request outside prediction */
    double overhead_cpu_s, overhead_requests; /* the current window's start */
    int64_t overhead_checked_us;
    int overhead_started;
    double predicted_ms; /**< compute per sample, slowest device of the group, profiles' speed */
    double speed;          /**< predicted_ms over the measured one (smoothed); 0 = unknown */
    double speed_us, speed_rows; /* the current measuring window */
    int64_t cycle_start_us;      /* the last batch's start, while the group is busy */
    int cycle_rows;
};

/** The settings every inference group binary adds to its conf table (ENS_SERVE_CONF_DEFS). */
#define ENS_SERVE_CONF_DEFS                                                                   \
    {"max-batch", ENS_CONF_INT, "64", 1, 4096, "most requests in one batch"},                 \
        {"max-wait-us", ENS_CONF_INT, "2000", 0, 10000000,                                    \
         "longest wait for a batch to fill after its first request (microseconds)"},          \
        {"fetch-wait-ms", ENS_CONF_INT, "2", 1, 1000,                                         \
         "fetch.wait.max.ms of the request consumer"},                                        \
        {"group", ENS_CONF_STR, "ensflow-inference", 0, 0,                                    \
         "consumer group shared by every inference group"},                                   \
        {"instance", ENS_CONF_STR, "", 0, 0, "this group's id; empty = host-pid"},            \
        {"member-batch", ENS_CONF_INT, "0", 0, 4096,                                          \
         "run every member at this batch size (0 = the batch size the plan chose for it "     \
         "on its device)"},                                                                   \
        {"overlap", ENS_CONF_INT, "1", 0, 1,                                                  \
         "1: batching and Kafka I/O on their own thread, overlapping the prediction; "        \
         "0: batch, predict and answer in turn"},                                             \
        {"queue-kbytes", ENS_CONF_INT, "4096", 1, 2097151,                                    \
         "the group's bounded request queue: most KB of requests prefetched from Kafka "      \
         "(librdkafka queued.max.messages.kbytes)"},                                          \
    {                                                                                         \
        "max-request-values", ENS_CONF_INT, "1048576", 1, 268435456,                          \
            "largest request (values); a larger one gets an ERROR answer"                     \
    }

/** @brief Settings from conf (max-batch, max-wait-us, queue-kbytes, max-request-values,
 *         instance; g->inf must be set) and the group's metrics. */
void ens_serve_init(ens_serve_t *g);

/**
 * @brief Serve until *g->stop: load the plan in force, then batch requests (max batch, max
 *        wait), answer each exactly once per delivery, commit after the answers are acked,
 *        follow newer plans between batches, keep the group's devices registered. With
 *        g->overlap a second thread does the Kafka I/O and batching while the calling thread
 *        computes (the only thread that loads plans or runs the ensemble, so MPI calls stay
 *        on it); up to 3 batches are in flight, answered and committed in order.
 * @return 0 when stopped, 1 on a fatal error. The consumers are closed on return.
 */
int ens_serve_run(ens_serve_t *g);

#endif
