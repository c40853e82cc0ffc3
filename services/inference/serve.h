/* serve.h - the serving loop of an inference group, shared by the single-process binary and
 * rank 0 of an MPI group. */
#ifndef ENSFLOW_SERVE_H
#define ENSFLOW_SERVE_H

#include <signal.h>

#include "ensflow/conf.h"
#include "ensflow/kafka.h"
#include "ensflow/metrics.h"
#include "ensflow/store.h"
#include "ensflow/inference.h"

/** An inference group: made by ens_serve_new, run by ens_serve_run. */
typedef struct ens_serve_s ens_serve_t;

/** How a plan comes into force: ens_inference_load_plan alone, or on every rank of a group
 *  (ens_serve_inference and ens_serve_redis give the group's engine and connection). */
typedef ens_err_t (*ens_serve_load_plan_fn)(void *ctx, ens_serve_t *g,
                                            const ens_placement_plan_t *plan, char *errstr,
                                            size_t errstr_size);

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

/**
 * @brief A new inference group with conf's settings (max-batch, max-wait-us, queue-kbytes,
 *        overlap, max-request-values, member-batch, instance; the last three set on inf)
 *        and the group's metrics: one device, whose plans ens_inference_load_plan loads,
 *        until ens_serve_set_devices. ENS_ERR_NOMEM or ENS_OK.
 * @remark conf, redis, producer, inf and stop are borrowed: they must outlive the group.
 */
ens_err_t ens_serve_new(ens_conf_t *conf, ens_redis_t *redis, ens_kafka_t *producer,
                        ens_inference_t *inf, volatile sig_atomic_t *stop, ens_serve_t **out);

/** @brief Free g (not what it borrowed). NULL is a no-op. */
void ens_serve_free(ens_serve_t *g);

/** @brief The group is ranks devices (MPI ranks, or threads of a local group) whose plans
 *         load_plan brings into force (NULL: ens_inference_load_plan); ctx is its first
 *         argument. */
void ens_serve_set_devices(ens_serve_t *g, int ranks, ens_serve_load_plan_fn load_plan,
                           void *ctx);

/** @brief This group's id (conf's instance, else host-pid): its plan consumer group and the
 *         prefix of its devices' ids. */
const char *ens_serve_instance(const ens_serve_t *g);
/** @brief The engine and the Redis connection the group was made with. */
ens_inference_t *ens_serve_inference(const ens_serve_t *g);
ens_redis_t *ens_serve_redis(const ens_serve_t *g);

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
