/* kafka.c - the librdkafka wrapper: producer, group consumer, manual commits, topic-tail
 * consumer, dead letters. One file of ~650 lines on purpose: the four kinds of handle (and the
 * capture producer of the unit tests) are one struct with one set of callbacks, and splitting
 * them would put that struct in a header for no reader's gain. */
#include "ensflow/kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/log.h"

const char *const ens_topics_all[] = {
    ENS_TOPIC_STUDY_COMMANDS,      ENS_TOPIC_TRIAL_JOBS,         ENS_TOPIC_TRIAL_RESULTS,
    ENS_TOPIC_MODEL_EVALUATED,     ENS_TOPIC_ENSEMBLE_FRONTS,    ENS_TOPIC_DEPLOY_COMMANDS,
    ENS_TOPIC_PLACEMENT_PLANS,     ENS_TOPIC_INFERENCE_REQUESTS, ENS_TOPIC_INFERENCE_RESPONSES,
    ENS_TOPIC_DLQ,                 NULL};

struct ens_kafka_s {
    rd_kafka_t *rk;
    int is_consumer;
    char prefix[64];
    size_t max_message_bytes; /* max-message-bytes: produced and accepted */
    /* delivery reports since the last flush */
    int failed;
    char last_error[256];
    /* consumer: told before partitions are taken away (ens_kafka_on_revoke) */
    ens_kafka_revoke_fn on_revoke;
    void *revoke_ctx;
    int cooperative; /* the assignment strategy's protocol, read once from the configuration */
    /* a capture producer (ens_kafka_capture_new): rk is NULL, messages are kept here */
    int capture;
    ens_kafka_captured_t *cap;
    int n_cap, cap_size;
};

struct ens_kafka_msg_s {
    rd_kafka_message_t *rkm;
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    ens_log_level_t lvl = level <= 3 ? ENS_LOG_ERROR : level <= 4 ? ENS_LOG_WARN
                          : level <= 6                             ? ENS_LOG_INFO
                                                                   : ENS_LOG_DEBUG;
    ENS_LOG_(lvl, "kafka", "lib=rdkafka fac=%s msg=\"%s\"", fac, buf);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
    (void)rk;
    ens_kafka_t *k = opaque;
    if (rkm->err) {
        k->failed++;
        snprintf(k->last_error, sizeof k->last_error, "delivery to %s failed: %s",
                 rd_kafka_topic_name(rkm->rkt), rd_kafka_err2str(rkm->err));
    }
}

/* Group rebalances: the default assignment, except that the consumer's owner is first told
 * of a revocation, while the partitions are still its own, so that it can answer and commit
 * what it holds from them; otherwise the next owner is redelivered those messages. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t why,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    ens_kafka_t *k = opaque;
    int cooperative = k->cooperative; /* not rd_kafka_rebalance_protocol(): it can hang
                                         during rd_kafka_consumer_close (librdkafka #4041) */
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t rerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (why == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            rerr = rd_kafka_assign(rk, parts);
    } else {
        if (why == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && k->on_revoke) {
            ENS_INFO("msg=\"partitions revoked\" count=%d lost=%d", parts ? parts->cnt : 0,
                     rd_kafka_assignment_lost(rk));
            k->on_revoke(k->revoke_ctx);
        }
        if (cooperative)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            rerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        ENS_ERROR("msg=\"rebalance not applied\" error=\"%s\"", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    } else if (rerr)
        ENS_ERROR("msg=\"rebalance not applied\" error=\"%s\"", rd_kafka_err2str(rerr));
}

void ens_kafka_on_revoke(ens_kafka_t *c, ens_kafka_revoke_fn fn, void *ctx) {
    c->on_revoke = fn;
    c->revoke_ctx = ctx;
}

static int set_prop(void *opaque, const char *prop, const char *value) {
    char errstr[256];
    if (rd_kafka_conf_set(opaque, prop, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        ENS_ERROR("msg=\"bad librdkafka property\" prop=%s error=\"%s\"", prop, errstr);
        return -1;
    }
    return 0;
}

static ens_err_t make(const ens_conf_t *conf, int consumer, const char *group_id,
                      int fetch_wait_ms, ens_kafka_t **out, char *errstr, size_t errstr_size) {
    char bootstrap[512], tmp[32], maxb[32];
    ens_err_t err = ens_conf_bootstrap(conf, bootstrap, sizeof bootstrap, errstr, errstr_size);
    if (err)
        return err;
    ens_kafka_t *k = calloc(1, sizeof *k);
    if (!k)
        return ENS_ERR_NOMEM;
    k->is_consumer = consumer;
    snprintf(k->prefix, sizeof k->prefix, "%s", ens_conf_str(conf, "topic-prefix"));
    k->max_message_bytes = (size_t)ens_conf_int(conf, "max-message-bytes");
    snprintf(maxb, sizeof maxb, "%zu", k->max_message_bytes);
    rd_kafka_conf_t *rc = rd_kafka_conf_new();
    struct {
        const char *k, *v;
    } props[12];
    int n = 0;
    props[n++] = (typeof(props[0])){"bootstrap.servers", bootstrap};
    props[n++] = (typeof(props[0])){"client.id", "ensflow"};
    /* producer: refuse to queue larger messages; consumer: the first fetch size per partition
     * (a larger message still arrives; ens_kafka_msg_oversized tells the loop to DLQ it) */
    props[n++] = (typeof(props[0])){consumer ? "fetch.message.max.bytes" : "message.max.bytes",
                                    maxb};
    if (consumer) {
        snprintf(tmp, sizeof tmp, "%d", fetch_wait_ms);
        props[n++] = (typeof(props[0])){"group.id", group_id};
        props[n++] = (typeof(props[0])){"enable.auto.commit", "false"};
        props[n++] = (typeof(props[0])){"auto.offset.reset", "earliest"};
        props[n++] = (typeof(props[0])){"fetch.wait.max.ms", tmp};
        /* The embedded broker keeps a group in JOINING for session.timeout.ms - 1 s after its
         * last member leaves, so a restarted service waited ~44 s for work with the 45 s
         * default. 6 s is Apache Kafka's minimum; heartbeats (1 s) run in librdkafka's own
         * thread, so a long handler (a training run) does not miss them. */
        props[n++] = (typeof(props[0])){"session.timeout.ms", "6000"};
        props[n++] = (typeof(props[0])){"heartbeat.interval.ms", "1000"};
    } else {
        props[n++] = (typeof(props[0])){"enable.idempotence", "true"};
        props[n++] = (typeof(props[0])){"linger.ms", "1"};
        /* Measured on the embedded broker: with several produce requests in flight on one
         * connection, a flush of 64 messages took ~43 ms (TCP delayed-ACK stalls) against
         * ~1 ms with one. Against Apache Kafka raise it with
         * ENSFLOW_RDKAFKA_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION. */
        props[n++] = (typeof(props[0])){"max.in.flight.requests.per.connection", "1"};
    }
    for (int i = 0; i < n; i++)
        if (rd_kafka_conf_set(rc, props[i].k, props[i].v, errstr, errstr_size) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(rc);
            free(k);
            return ENS_ERR_KAFKA;
        }
    if (ens_conf_rdkafka_each(set_prop, rc) != 0) {
        rd_kafka_conf_destroy(rc);
        free(k);
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "an ENSFLOW_RDKAFKA_* property was rejected (see log)");
    }
    if (consumer) { /* the cooperative protocol comes only with cooperative-sticky */
        char strategy[256];
        size_t size = sizeof strategy;
        k->cooperative =
            rd_kafka_conf_get(rc, "partition.assignment.strategy", strategy, &size) ==
                RD_KAFKA_CONF_OK &&
            strstr(strategy, "cooperative") != NULL;
    }
    rd_kafka_conf_set_log_cb(rc, log_cb);
    rd_kafka_conf_set_opaque(rc, k);
    if (!consumer)
        rd_kafka_conf_set_dr_msg_cb(rc, dr_cb);
    else
        rd_kafka_conf_set_rebalance_cb(rc, rebalance_cb);
    k->rk = rd_kafka_new(consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, rc, errstr,
                         errstr_size);
    if (!k->rk) { /* conf still ours on failure */
        rd_kafka_conf_destroy(rc);
        free(k);
        return ENS_ERR_KAFKA;
    }
    if (consumer)
        rd_kafka_poll_set_consumer(k->rk);
    *out = k;
    return ENS_OK;
}

ens_err_t ens_kafka_producer_new(const ens_conf_t *conf, ens_kafka_t **out, char *errstr,
                                 size_t errstr_size) {
    return make(conf, 0, NULL, 0, out, errstr, errstr_size);
}

ens_err_t ens_kafka_consumer_new(const ens_conf_t *conf, const char *group_id,
                                 const char *const *short_topics, int n_topics, int fetch_wait_ms,
                                 ens_kafka_t **out, char *errstr, size_t errstr_size) {
    ens_kafka_t *k = NULL;
    ens_err_t err = make(conf, 1, group_id, fetch_wait_ms, &k, errstr, errstr_size);
    if (err)
        return err;
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n_topics);
    for (int i = 0; i < n_topics; i++) {
        char name[256];
        rd_kafka_topic_partition_list_add(
            tl, ens_conf_topic(conf, short_topics[i], name, sizeof name), RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t rerr = rd_kafka_subscribe(k->rk, tl);
    rd_kafka_topic_partition_list_destroy(tl);
    if (rerr) {
        ens_kafka_free(k);
        return ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "subscribe failed: %s",
                           rd_kafka_err2str(rerr));
    }
    *out = k;
    return ENS_OK;
}

/* Milliseconds left until deadline_ms (ens_now_ms's clock), at least 1. */
static int ms_left(int64_t deadline_ms) {
    int64_t left = deadline_ms - ens_now_ms();
    return left < 1 ? 1 : left > INT32_MAX ? INT32_MAX : (int)left;
}

ens_err_t ens_kafka_tail_new(const ens_conf_t *conf, const char *group_id,
                             const char *short_topic, int fetch_wait_ms, int timeout_ms,
                             ens_kafka_t **out, char *errstr, size_t errstr_size) {
    char topic[256];
    ens_kafka_t *k = NULL;
    int64_t deadline = ens_now_ms() + timeout_ms;
    ens_err_t err = make(conf, 1, group_id, fetch_wait_ms, &k, errstr, errstr_size);
    if (err)
        return err;
    ens_conf_topic(conf, short_topic, topic, sizeof topic);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rerr = !rkt ? RD_KAFKA_RESP_ERR__FAIL
                                    : rd_kafka_metadata(k->rk, 0, rkt, &md, ms_left(deadline));
    int n = 0;
    if (!rerr && md && md->topic_cnt == 1) {
        rerr = md->topics[0].err;
        n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
    if (rerr || n == 0) {
        ens_kafka_free(k);
        if (!rerr || rerr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                               "topic %s does not exist (is the stack up?)", topic);
        return ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "metadata of %s: %s", topic,
                           rd_kafka_err2str(rerr));
    }
    /* each partition's end, read before the caller sends anything: what it sends next is
     * written after these offsets. A leader election fails queries for a while: retried
     * until the deadline. */
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(n);
    int32_t p = 0;
    for (; !rerr && p < n; p++) {
        int64_t lo = 0, hi = 0;
        while ((rerr = rd_kafka_query_watermark_offsets(k->rk, topic, p, &lo, &hi,
                                                        ms_left(deadline))) &&
               ens_now_ms() < deadline) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (!rerr)
            rd_kafka_topic_partition_list_add(tl, topic, p)->offset = hi;
    }
    if (rerr)
        ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "end offset of %s [%d]: %s", topic,
                    (int)p - 1, rd_kafka_err2str(rerr));
    else if ((rerr = rd_kafka_assign(k->rk, tl)))
        ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "assigning %s at its end: %s", topic,
                    rd_kafka_err2str(rerr));
    rd_kafka_topic_partition_list_destroy(tl);
    if (rerr) {
        ens_kafka_free(k);
        return ENS_ERR_KAFKA;
    }
    *out = k;
    return ENS_OK;
}

ens_err_t ens_kafka_capture_new(ens_kafka_t **out) {
    if (!out)
        return ENS_ERR_INVALID;
    ens_kafka_t *k = calloc(1, sizeof *k);
    if (!k)
        return ENS_ERR_NOMEM;
    k->capture = 1;
    *out = k;
    return ENS_OK;
}

int ens_kafka_captured_count(const ens_kafka_t *p) {
    return p && p->capture ? p->n_cap : 0;
}

const ens_kafka_captured_t *ens_kafka_captured(const ens_kafka_t *p, int i) {
    return p && p->capture && i >= 0 && i < p->n_cap ? &p->cap[i] : NULL;
}

static void capture_clear(ens_kafka_t *k) {
    for (int i = 0; i < k->n_cap; i++) {
        free(k->cap[i].topic);
        free(k->cap[i].key);
        free(k->cap[i].payload);
        free(k->cap[i].event_type);
        free(k->cap[i].trace_id);
    }
    free(k->cap);
    k->cap = NULL;
    k->n_cap = k->cap_size = 0;
}

/* A copy of s, or NULL for NULL; *bad set when the copy fails. */
static char *dup_or_null(const char *s, int *bad) {
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *bad = 1;
    return d;
}

static ens_err_t capture_add(ens_kafka_t *p, const char *short_topic, int32_t partition,
                             const char *key, const void *payload, size_t len,
                             const char *event_type, const char *trace_id) {
    if (p->n_cap == p->cap_size) {
        int size = p->cap_size ? p->cap_size * 2 : 8;
        void *q = realloc(p->cap, (size_t)size * sizeof *p->cap);
        if (!q)
            return ENS_ERR_NOMEM;
        p->cap = q;
        p->cap_size = size;
    }
    ens_kafka_captured_t *c = &p->cap[p->n_cap];
    memset(c, 0, sizeof *c);
    int bad = 0;
    c->topic = dup_or_null(short_topic, &bad);
    c->key = dup_or_null(key, &bad);
    c->event_type = dup_or_null(event_type, &bad);
    c->trace_id = dup_or_null(trace_id, &bad);
    c->payload = malloc(len + 1);
    if (c->payload)
        memcpy(c->payload, payload, len);
    c->len = len;
    c->partition = partition;
    p->n_cap++;
    return bad || !c->payload ? ENS_ERR_NOMEM : ENS_OK;
}

void ens_kafka_free(ens_kafka_t *k) {
    if (!k)
        return;
    if (k->capture) {
        capture_clear(k);
        free(k);
        return;
    }
    if (k->is_consumer) {
        rd_kafka_resp_err_t rerr = rd_kafka_consumer_close(k->rk);
        if (rerr)
            ENS_WARN("msg=\"consumer close failed\" error=\"%s\"", rd_kafka_err2str(rerr));
    } else if (rd_kafka_flush(k->rk, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ENS_WARN("msg=\"producer closed with undelivered messages\" count=%d",
                 rd_kafka_outq_len(k->rk));
    }
    rd_kafka_destroy(k->rk);
    free(k);
}

ens_err_t ens_kafka_produce(ens_kafka_t *p, const char *short_topic, const char *key,
                            const void *payload, size_t len, const char *event_type,
                            const char *trace_id, char *errstr, size_t errstr_size) {
    return ens_kafka_produce_to(p, short_topic, ENS_KAFKA_PARTITION_ANY, key, payload, len,
                                event_type, trace_id, errstr, errstr_size);
}

ens_err_t ens_kafka_produce_to(ens_kafka_t *p, const char *short_topic, int32_t partition,
                               const char *key, const void *payload, size_t len,
                               const char *event_type, const char *trace_id, char *errstr,
                               size_t errstr_size) {
    char topic[256];
    if (!p || p->is_consumer || !short_topic || partition < ENS_KAFKA_PARTITION_ANY)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "produce: not a producer, no topic or partition %d", (int)partition);
    if (p->capture)
        return capture_add(p, short_topic, partition, key, payload, len, event_type, trace_id);
    snprintf(topic, sizeof topic, "%s%s", p->prefix, short_topic);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
    if (event_type)
        rd_kafka_header_add(hdrs, "event-type", -1, event_type, -1);
    if (trace_id)
        rd_kafka_header_add(hdrs, "trace-id", -1, trace_id, -1);
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t rerr = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!rerr) /* headers now owned by the message */
            break;
        if (rerr == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 100) {
            rd_kafka_poll(p->rk, 100); /* serve delivery reports to make room */
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        return ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "produce to %s failed: %s", topic,
                           rd_kafka_err2str(rerr));
    }
    rd_kafka_poll(p->rk, 0);
    return ENS_OK;
}

ens_err_t ens_kafka_produce_event(ens_kafka_t *p, const char *short_topic, const char *key,
                                  const ens_event_t *ev, const char *trace_id, char *errstr,
                                  size_t errstr_size) {
    return ens_kafka_produce_event_to(p, short_topic, ENS_KAFKA_PARTITION_ANY, key, ev, trace_id,
                                      errstr, errstr_size);
}

ens_err_t ens_kafka_produce_event_to(ens_kafka_t *p, const char *short_topic, int32_t partition,
                                     const char *key, const ens_event_t *ev,
                                     const char *trace_id, char *errstr, size_t errstr_size) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_err_t err = ens_event_encode(ev, &buf, &len, errstr, errstr_size);
    if (err)
        return err;
    err = ens_kafka_produce_to(p, short_topic, partition, key, buf, len,
                               ens_event_type_name(ev->type), trace_id ? trace_id : ev->event_id,
                               errstr, errstr_size);
    free(buf);
    return err;
}

ens_err_t ens_kafka_flush(ens_kafka_t *p, int timeout_ms, char *errstr, size_t errstr_size) {
    if (p && p->capture) /* captured is delivered */
        return ENS_OK;
    rd_kafka_resp_err_t rerr = rd_kafka_flush(p->rk, timeout_ms);
    if (p->failed) {
        p->failed = 0;
        return ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "%s", p->last_error);
    }
    if (rerr == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_TIMEOUT,
                           "%d message(s) still undelivered after %d ms", rd_kafka_outq_len(p->rk),
                           timeout_ms);
    return ENS_OK;
}

ens_err_t ens_kafka_poll(ens_kafka_t *c, int timeout_ms, ens_kafka_msg_t **out) {
    rd_kafka_message_t *rkm = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!rkm)
        return ENS_ERR_TIMEOUT;
    if (rkm->err) {
        if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            ENS_WARN("msg=\"consumer error\" error=\"%s\"", rd_kafka_message_errstr(rkm));
        rd_kafka_message_destroy(rkm);
        return ENS_ERR_TIMEOUT;
    }
    ens_kafka_msg_t *m = malloc(sizeof *m);
    if (!m) {
        rd_kafka_message_destroy(rkm);
        return ENS_ERR_NOMEM;
    }
    m->rkm = rkm;
    *out = m;
    return ENS_OK;
}

ens_err_t ens_kafka_commit(ens_kafka_t *c, const ens_kafka_msg_t *m, int async, char *errstr,
                           size_t errstr_size) {
    rd_kafka_resp_err_t rerr = rd_kafka_commit_message(c->rk, m->rkm, async);
    if (rerr && rerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
        return ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "commit failed: %s",
                           rd_kafka_err2str(rerr));
    return ENS_OK;
}

int ens_kafka_msg_oversized(const ens_kafka_t *c, const ens_kafka_msg_t *m, char *errstr,
                            size_t errstr_size) {
    if (!c->max_message_bytes || m->rkm->len <= c->max_message_bytes)
        return 0;
    ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                "message of %zu bytes exceeds max-message-bytes (%zu)", m->rkm->len,
                c->max_message_bytes);
    return 1;
}

ens_err_t ens_kafka_lag(ens_kafka_t *c, int64_t *lag) {
    rd_kafka_topic_partition_list_t *tl = NULL;
    *lag = 0;
    if (rd_kafka_assignment(c->rk, &tl) != RD_KAFKA_RESP_ERR_NO_ERROR || !tl)
        return ENS_ERR_KAFKA;
    /* positions and cached high watermarks (from the last fetch): no broker round trip */
    ens_err_t err = rd_kafka_position(c->rk, tl) ? ENS_ERR_KAFKA : ENS_OK;
    for (int i = 0; !err && i < tl->cnt; i++) {
        int64_t lo = -1, hi = -1;
        const rd_kafka_topic_partition_t *tp = &tl->elems[i];
        if (tp->offset < 0 || rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition,
                                                             &lo, &hi) ||
            hi < 0)
            continue; /* no position or no fetch yet: unknown, counted as 0 */
        if (hi > tp->offset)
            *lag += hi - tp->offset;
    }
    rd_kafka_topic_partition_list_destroy(tl);
    return err;
}

ens_err_t ens_kafka_committed(ens_kafka_t *c, const char *topic, int32_t partition,
                              int timeout_ms, int64_t *offset) {
    rd_kafka_topic_partition_list_t *tl = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tl, topic, partition);
    rd_kafka_resp_err_t rerr = rd_kafka_committed(c->rk, tl, timeout_ms);
    if (!rerr)
        rerr = tl->elems[0].err;
    *offset = rerr || tl->elems[0].offset < 0 ? -1 : tl->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(tl);
    return rerr ? ENS_ERR_KAFKA : ENS_OK;
}

int ens_kafka_assignment_count(ens_kafka_t *c) {
    rd_kafka_topic_partition_list_t *tl = NULL;
    if (rd_kafka_assignment(c->rk, &tl) != RD_KAFKA_RESP_ERR_NO_ERROR || !tl)
        return 0;
    int n = tl->cnt;
    rd_kafka_topic_partition_list_destroy(tl);
    return n;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

ens_err_t ens_kafka_assignment_partitions(ens_kafka_t *c, const char *short_topic,
                                          int32_t *parts, int max, int *n, char *errstr,
                                          size_t errstr_size) {
    char topic[256];
    rd_kafka_topic_partition_list_t *tl = NULL;
    if (n)
        *n = 0;
    if (!c || !c->is_consumer || !short_topic || !n || max < 0 || (max > 0 && !parts))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "assignment: not a consumer or bad arguments");
    snprintf(topic, sizeof topic, "%s%s", c->prefix, short_topic);
    rd_kafka_resp_err_t rerr = rd_kafka_assignment(c->rk, &tl);
    if (rerr != RD_KAFKA_RESP_ERR_NO_ERROR || !tl) {
        if (tl)
            rd_kafka_topic_partition_list_destroy(tl);
        return ens_err_set(errstr, errstr_size, ENS_ERR_KAFKA, "assignment: %s",
                           rd_kafka_err2str(rerr));
    }
    ens_err_t err = ENS_OK;
    for (int i = 0; i < tl->cnt && !err; i++) {
        if (strcmp(tl->elems[i].topic, topic) != 0)
            continue;
        if (*n >= max)
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "assignment: more than %d partitions of %s", max, topic);
        else
            parts[(*n)++] = tl->elems[i].partition;
    }
    rd_kafka_topic_partition_list_destroy(tl);
    if (err)
        *n = 0;
    else if (*n > 1)
        qsort(parts, (size_t)*n, sizeof *parts, cmp_i32);
    return err;
}

const uint8_t *ens_kafka_msg_payload(const ens_kafka_msg_t *m, size_t *len) {
    *len = m->rkm->len;
    return m->rkm->payload;
}

const char *ens_kafka_msg_topic(const ens_kafka_msg_t *m) {
    return rd_kafka_topic_name(m->rkm->rkt);
}

const void *ens_kafka_msg_key(const ens_kafka_msg_t *m, size_t *len) {
    *len = m->rkm->key ? m->rkm->key_len : 0;
    return m->rkm->key;
}

int32_t ens_kafka_msg_partition(const ens_kafka_msg_t *m) { return m->rkm->partition; }

int64_t ens_kafka_msg_offset(const ens_kafka_msg_t *m) { return m->rkm->offset; }

int ens_kafka_msg_header(const ens_kafka_msg_t *m, const char *name, char *buf, size_t size) {
    rd_kafka_headers_t *hdrs = NULL;
    const void *val = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(m->rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR || !val ||
        size == 0)
        return -1;
    if (len >= size)
        len = size - 1;
    memcpy(buf, val, len);
    buf[len] = '\0';
    return 0;
}

void ens_kafka_msg_free(ens_kafka_msg_t *m) {
    if (!m)
        return;
    rd_kafka_message_destroy(m->rkm);
    free(m);
}

ens_err_t ens_kafka_dead_letter(ens_kafka_t *p, const ens_kafka_msg_t *m, const char *service,
                                const char *reason, char *errstr, size_t errstr_size) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_DEAD_LETTER);
    ens_dead_letter_t *dl = &ev.u.dead_letter;
    snprintf(dl->source_topic, sizeof dl->source_topic, "%s", ens_kafka_msg_topic(m));
    dl->partition = m->rkm->partition;
    dl->offset = m->rkm->offset;
    snprintf(dl->service, sizeof dl->service, "%s", service);
    /* the original bytes, cut so that the dead letter itself fits max-message-bytes */
    size_t keep = m->rkm->len, cap = p->max_message_bytes ? p->max_message_bytes / 2 : keep;
    if (keep > cap) {
        size_t rlen = strlen(reason) + 64;
        if ((dl->reason = malloc(rlen)))
            snprintf(dl->reason, rlen, "%s (payload cut to %zu of %zu bytes)", reason, cap, keep);
        keep = cap;
    } else
        dl->reason = strdup(reason);
    dl->payload_len = keep;
    dl->payload = malloc(keep ? keep : 1);
    if (!dl->reason || !dl->payload) {
        ens_event_free(&ev);
        return ENS_ERR_NOMEM;
    }
    if (keep)
        memcpy(dl->payload, m->rkm->payload, keep);
    char trace[ENS_ID_MAX];
    int has_trace = ens_kafka_msg_header(m, "trace-id", trace, sizeof trace) == 0;
    ens_err_t err = ens_kafka_produce_event(p, ENS_TOPIC_DLQ, NULL, &ev, has_trace ? trace : NULL,
                                            errstr, errstr_size);
    ENS_WARN("msg=\"dead-lettered\" topic=%s partition=%d offset=%lld reason=\"%s\"",
             dl->source_topic, (int)dl->partition, (long long)dl->offset, reason);
    ens_event_free(&ev);
    return err;
}
