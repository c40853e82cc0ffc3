/* kafka.h - producer with delivery reports, consumer-group consumer with manual commit, a
 * topic-tail consumer, DLQ. */
#ifndef ENSFLOW_KAFKA_H
#define ENSFLOW_KAFKA_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/conf.h"
#include "ensflow/err.h"
#include "ensflow/events.h"

typedef struct ens_kafka_s ens_kafka_t;
typedef struct ens_kafka_msg_s ens_kafka_msg_t;

/**
 * @brief A producer for the bootstrap servers of conf (ens_conf_bootstrap), idempotent,
 *        acks=all, with ENSFLOW_RDKAFKA_* properties applied last.
 */
ens_err_t ens_kafka_producer_new(const ens_conf_t *conf, ens_kafka_t **out, char *errstr,
                                 size_t errstr_size);

/**
 * @brief A consumer in group group_id subscribed to the short topic names (prefixed from
 *        conf), auto commit off: the caller commits after the effect (ens_kafka_commit).
 * @param fetch_wait_ms fetch.wait.max.ms: low (1-5) for latency-sensitive consumers, since the
 *        mock broker answers an empty fetch only after the full wait.
 */
ens_err_t ens_kafka_consumer_new(const ens_conf_t *conf, const char *group_id,
                                 const char *const *short_topics, int n_topics, int fetch_wait_ms,
                                 ens_kafka_t **out, char *errstr, size_t errstr_size);

/**
 * @brief A consumer of every partition of topic prefix+short_topic from its current end, in
 *        no consumer group (no join, no commits): it sees every message written after it
 *        returns (and at most a few that were in flight while it started). For a client
 *        waiting for answers to what it is about to send: a fresh group would first wait for
 *        its join, then read every earlier answer. The partitions are those the topic has
 *        now; partitions added later are not read.
 * @param group_id librdkafka's group.id (needed to poll; never joined)
 * @param timeout_ms for the whole start-up (metadata and every partition's end; failed
 *        queries are retried until then)
 * @return ENS_ERR_NOTFOUND when the topic does not exist (or has no partitions);
 *         ENS_ERR_KAFKA when the broker does not answer within timeout_ms.
 */
ens_err_t ens_kafka_tail_new(const ens_conf_t *conf, const char *group_id,
                             const char *short_topic, int fetch_wait_ms, int timeout_ms,
                             ens_kafka_t **out, char *errstr, size_t errstr_size);

/** @brief Producer: flush (up to 10 s) and destroy. Consumer: leave its group (if it joined
 *         one) and destroy.
 *         NULL is a no-op. */
void ens_kafka_free(ens_kafka_t *k);

/** A message a capture producer kept (ens_kafka_capture_new). */
typedef struct {
    char *topic;      /**< the short topic name, e.g. ENS_TOPIC_PLACEMENT_PLANS */
    char *key;        /**< NULL when produced without one */
    uint8_t *payload;
    size_t len;
    char *event_type; /**< the event-type header, or NULL */
    char *trace_id;   /**< the trace-id header, or NULL */
    int32_t partition; /**< ENS_KAFKA_PARTITION_ANY unless produced to one */
} ens_kafka_captured_t;

/**
 * @brief A producer that talks to no broker: every message produced to it is kept, in order,
 *        for a unit test to read back (ens_kafka_captured); flush succeeds at once. Only the
 *        produce functions, ens_kafka_flush and ens_kafka_free take it.
 * @remark the caller frees it with ens_kafka_free (which frees the kept messages).
 */
ens_err_t ens_kafka_capture_new(ens_kafka_t **out);

/** @brief Number of messages a capture producer kept (0 for any other handle). */
int ens_kafka_captured_count(const ens_kafka_t *p);

/** @brief The i-th message a capture producer kept (owned by p), or NULL. */
const ens_kafka_captured_t *ens_kafka_captured(const ens_kafka_t *p, int i);

/**
 * @brief Queue one message on topic prefix+short_topic with headers event-type and trace-id.
 *        Delivery is confirmed by ens_kafka_flush.
 */
ens_err_t ens_kafka_produce(ens_kafka_t *p, const char *short_topic, const char *key,
                            const void *payload, size_t len, const char *event_type,
                            const char *trace_id, char *errstr, size_t errstr_size);

/** @brief Encode ev (ens_event_encode) and queue it; trace_id NULL = the event's own id. */
ens_err_t ens_kafka_produce_event(ens_kafka_t *p, const char *short_topic, const char *key,
                                  const ens_event_t *ev, const char *trace_id, char *errstr,
                                  size_t errstr_size);

/** Partition argument of the *_to producers: let the partitioner choose (hash of the key). */
#define ENS_KAFKA_PARTITION_ANY (-1)

/**
 * @brief ens_kafka_produce to an explicit partition (ENS_KAFKA_PARTITION_ANY: by key hash).
 *        The key still travels with the message.
 * @return ENS_ERR_KAFKA when librdkafka refuses it at once (e.g. a partition the topic's
 *         known metadata lacks); a later delivery failure shows at ens_kafka_flush.
 */
ens_err_t ens_kafka_produce_to(ens_kafka_t *p, const char *short_topic, int32_t partition,
                               const char *key, const void *payload, size_t len,
                               const char *event_type, const char *trace_id, char *errstr,
                               size_t errstr_size);

/** @brief ens_kafka_produce_event to an explicit partition (ENS_KAFKA_PARTITION_ANY: by key). */
ens_err_t ens_kafka_produce_event_to(ens_kafka_t *p, const char *short_topic, int32_t partition,
                                     const char *key, const ens_event_t *ev,
                                     const char *trace_id, char *errstr, size_t errstr_size);

/**
 * @brief Wait until every queued message is delivered.
 * @return ENS_OK, ENS_ERR_TIMEOUT, or ENS_ERR_KAFKA when a delivery failed since the last flush.
 */
ens_err_t ens_kafka_flush(ens_kafka_t *p, int timeout_ms, char *errstr, size_t errstr_size);

/**
 * @brief Next message, waiting up to timeout_ms.
 * @return ENS_OK with *out set (free with ens_kafka_msg_free), ENS_ERR_TIMEOUT when none.
 *         Transient consumer errors are logged and reported as ENS_ERR_TIMEOUT.
 */
ens_err_t ens_kafka_poll(ens_kafka_t *c, int timeout_ms, ens_kafka_msg_t **out);

/** Told before a group rebalance takes partitions from a consumer (see ens_kafka_on_revoke). */
typedef void (*ens_kafka_revoke_fn)(void *ctx);

/**
 * @brief Call fn(ctx) when partitions are revoked from consumer c, before they are released:
 *        the owner answers and commits (synchronously) what it holds from them, so that the
 *        next owner does not get those messages again. fn runs on the thread that polls c,
 *        inside ens_kafka_poll; NULL fn: no hook. Assignment itself stays automatic.
 */
void ens_kafka_on_revoke(ens_kafka_t *c, ens_kafka_revoke_fn fn, void *ctx);

/** @brief Commit the offset after m (synchronously unless async). */
ens_err_t ens_kafka_commit(ens_kafka_t *c, const ens_kafka_msg_t *m, int async, char *errstr,
                           size_t errstr_size);

/**
 * @brief 1 (with the reason in errstr) when m is larger than the consumer's max-message-bytes:
 *        the caller dead-letters it without decoding.
 */
int ens_kafka_msg_oversized(const ens_kafka_t *c, const ens_kafka_msg_t *m, char *errstr,
                            size_t errstr_size);

/**
 * @brief Consumer lag: sum over assigned partitions of (high watermark - position), from the
 *        watermarks cached by the last fetches (no broker round trip; unknown counts as 0).
 */
ens_err_t ens_kafka_lag(ens_kafka_t *c, int64_t *lag);

/**
 * @brief The group's committed offset (the next message to read) of topic (full name) and
 *        partition: -1 when the group has none. A broker round trip (up to timeout_ms).
 */
ens_err_t ens_kafka_committed(ens_kafka_t *c, const char *topic, int32_t partition,
                              int timeout_ms, int64_t *offset);

/** @brief Number of partitions currently assigned to this consumer (0 while joining). */
int ens_kafka_assignment_count(ens_kafka_t *c);

/**
 * @brief The partitions of topic prefix+short_topic currently assigned to this consumer, in
 *        ascending order (none while the group is joining or rebalancing). Local: no broker
 *        round trip, safe to call often.
 * @param parts out: up to max partition numbers
 * @param n out: how many were written
 * @return ENS_OK; ENS_ERR_KAFKA (errstr filled) when librdkafka cannot tell the assignment;
 *         ENS_ERR_INVALID when c is not a consumer or more than max partitions are assigned.
 */
ens_err_t ens_kafka_assignment_partitions(ens_kafka_t *c, const char *short_topic,
                                          int32_t *parts, int max, int *n, char *errstr,
                                          size_t errstr_size);

const uint8_t *ens_kafka_msg_payload(const ens_kafka_msg_t *m, size_t *len);
const char *ens_kafka_msg_topic(const ens_kafka_msg_t *m);
/** @brief The message key (not NUL-terminated; NULL with *len 0 when it has none). */
const void *ens_kafka_msg_key(const ens_kafka_msg_t *m, size_t *len);
int32_t ens_kafka_msg_partition(const ens_kafka_msg_t *m);
int64_t ens_kafka_msg_offset(const ens_kafka_msg_t *m);
/** @brief Copy header `name` into buf; 0 when found, -1 otherwise. */
int ens_kafka_msg_header(const ens_kafka_msg_t *m, const char *name, char *buf, size_t size);
void ens_kafka_msg_free(ens_kafka_msg_t *m);

/**
 * @brief Publish m to the dead-letter topic as a DeadLetter event carrying the original bytes,
 *        where it came from and the reason; the caller then flushes and commits past m.
 */
ens_err_t ens_kafka_dead_letter(ens_kafka_t *p, const ens_kafka_msg_t *m, const char *service,
                                const char *reason, char *errstr, size_t errstr_size);

/** The topics of the design, by short name (prefix added by ens_conf_topic). */
#define ENS_TOPIC_STUDY_COMMANDS "study.commands"
#define ENS_TOPIC_TRIAL_JOBS "trial.jobs"
#define ENS_TOPIC_TRIAL_RESULTS "trial.results"
#define ENS_TOPIC_MODEL_EVALUATED "model.evaluated"
#define ENS_TOPIC_ENSEMBLE_FRONTS "ensemble.fronts"
#define ENS_TOPIC_DEPLOY_COMMANDS "deploy.commands"
#define ENS_TOPIC_PLACEMENT_PLANS "placement.plans"
#define ENS_TOPIC_INFERENCE_REQUESTS "inference.requests"
#define ENS_TOPIC_INFERENCE_RESPONSES "inference.responses"
#define ENS_TOPIC_DLQ "dlq"
extern const char *const ens_topics_all[]; /**< the ten short names above, NULL-terminated */

#endif
