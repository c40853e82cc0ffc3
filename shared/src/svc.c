/* svc.c - the consume, decode, handle, flush, commit loop shared by every service. */
#include "ensflow/svc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/log.h"
#include "ensflow/metrics.h"

/* /healthz: unhealthy after this long without a poll, or with one handler running (training)
 * without progress (ens_metrics_progress) for longer than the second figure */
#define HEALTH_STALE_S 60.0
#define HEALTH_BUSY_MAX_S 900.0

static struct {
    ens_metric_t *handled, *errors, *dead_letters, *handler_s, *lag;
} g_m;

/* Register the loop's metrics (idempotent: the registry finds them by name). */
static void svc_metrics_init(void) {
    g_m.handled = ens_metrics_counter("ensflow_events_handled_total", "events handled");
    g_m.errors = ens_metrics_counter("ensflow_errors_total",
                                     "undecodable events and failed handler attempts");
    g_m.dead_letters = ens_metrics_counter("ensflow_dead_letters_total",
                                           "messages sent to the dead-letter topic");
    g_m.handler_s = ens_metrics_histogram("ensflow_handler_seconds",
                                          "time to handle one event", NULL, 0);
    g_m.lag = ens_metrics_gauge("ensflow_consumer_lag",
                                "messages behind the high watermark, over assigned partitions");
}

void ens_svc_lag_update(ens_kafka_t *consumer) {
    static struct timespec last;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - last.tv_sec < 5) /* cheap, but no need to do it every poll */
        return;
    last = now;
    int64_t lag = 0;
    if (ens_kafka_lag(consumer, &lag) == ENS_OK)
        ens_metrics_set(ens_metrics_gauge("ensflow_consumer_lag", ""), (double)lag);
}

static volatile sig_atomic_t *stop_flag;
static void on_signal(int sig) {
    (void)sig;
    if (stop_flag)
        *stop_flag = 1;
}

void ens_svc_signals(volatile sig_atomic_t *flag) {
    stop_flag = flag;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Make the effects durable, then move the offset past m. */
static ens_err_t finish(const ens_svc_loop_t *loop, const ens_kafka_msg_t *m, int committed,
                        char *errstr, size_t errstr_size) {
    ens_err_t err = ens_kafka_flush(loop->producer, 30000, errstr, errstr_size);
    if (!err && !committed)
        err = ens_kafka_commit(loop->consumer, m, 0, errstr, errstr_size);
    if (err == ENS_ERR_KAFKA && loop->long_handlers && !committed) {
        /* the partition went elsewhere while the handler ran: its next owner may get the
         * message again, which a long-handler service deduplicates (the job lease) */
        ENS_WARN("msg=\"commit after a long handler refused\" error=\"%s\"", errstr);
        err = ENS_OK;
    }
    return err;
}

/* Long handlers: the messages polled while a handler ran, oldest first, and the thread that
 * polls. The queue is touched by one thread at a time: the poller between its start and its
 * join, the loop otherwise. */
typedef struct {
    const ens_svc_loop_t *loop;
    ens_kafka_msg_t **q;
    size_t head, n, cap;
    atomic_int done;
    ens_err_t err;
} keepalive_t;

static void *keepalive_main(void *arg) {
    keepalive_t *ka = arg;
    int ms = ka->loop->poll_ms ? ka->loop->poll_ms : 200;
    while (!atomic_load(&ka->done)) {
        ens_kafka_msg_t *m = NULL;
        ens_err_t err = ens_kafka_poll(ka->loop->consumer, ms, &m);
        ens_metrics_heartbeat();
        if (m) {
            if (ka->head + ka->n == ka->cap) {
                if (ka->head > 0) { /* compact before growing */
                    memmove(ka->q, ka->q + ka->head, ka->n * sizeof *ka->q);
                    ka->head = 0;
                }
            }
            if (ka->n == ka->cap) {
                size_t cap = ka->cap ? 2 * ka->cap : 8;
                ens_kafka_msg_t **q = realloc(ka->q, cap * sizeof *q);
                if (!q) { /* not committed: it comes again after a restart */
                    ens_kafka_msg_free(m);
                    ka->err = ENS_ERR_NOMEM;
                    break;
                }
                ka->q = q;
                ka->cap = cap;
            }
            ka->q[ka->head + ka->n++] = m;
        } else if (err && err != ENS_ERR_TIMEOUT) {
            ka->err = err;
            break;
        }
        if (ka->loop->busy_tick)
            ka->loop->busy_tick(ka->loop->ctx);
    }
    return NULL;
}

/* Partitions revoked (a rebalance, inside a poll): the messages kept from before are no longer
 * this member's to handle; their next owner reads them from the committed offsets. */
static void keepalive_drop(void *arg) {
    keepalive_t *ka = arg;
    if (ka->n)
        ENS_INFO("msg=\"partitions revoked, kept messages dropped\" count=%zu", ka->n);
    for (size_t i = 0; i < ka->n; i++)
        ens_kafka_msg_free(ka->q[ka->head + i]);
    ka->head = ka->n = 0;
}

static ens_kafka_msg_t *keepalive_pop(keepalive_t *ka) {
    if (!ka->n)
        return NULL;
    ka->n--;
    return ka->q[ka->head++];
}

/* Run the handler with the poller beside it when the loop has long handlers. */
static ens_err_t run_handler(const ens_svc_loop_t *loop, keepalive_t *ka, const ens_event_t *ev,
                             char *errstr, size_t errstr_size) {
    pthread_t th;
    int started = 0;
    if (loop->long_handlers) {
        if (ka->n == 0)
            ka->head = 0;
        atomic_store(&ka->done, 0);
        started = pthread_create(&th, NULL, keepalive_main, ka) == 0;
        if (!started)
            ENS_WARN("msg=\"cannot start the polling thread; the handler runs without it\"");
    }
    ens_err_t err = loop->handle(loop->ctx, ev, errstr, errstr_size);
    if (started) {
        atomic_store(&ka->done, 1);
        pthread_join(th, NULL);
    }
    return err;
}

ens_err_t ens_svc_run(const ens_svc_loop_t *loop, volatile sig_atomic_t *stop) {
    char errstr[512];
    keepalive_t ka = {.loop = loop};
    ens_err_t result = ENS_OK;
    svc_metrics_init();
    if (loop->long_handlers)
        ens_kafka_on_revoke(loop->consumer, keepalive_drop, &ka);
    while (!*stop) {
        ens_kafka_msg_t *m = keepalive_pop(&ka);
        ens_err_t err = ENS_OK;
        if (ka.err) { /* the poller failed: as if this loop's own poll had */
            ens_kafka_msg_free(m);
            result = ka.err;
            break;
        }
        if (!m)
            err = ens_kafka_poll(loop->consumer, loop->poll_ms ? loop->poll_ms : 200, &m);
        ens_metrics_heartbeat();
        ens_svc_lag_update(loop->consumer);
        if (err == ENS_ERR_TIMEOUT) {
            if (loop->tick)
                loop->tick(loop->ctx);
            continue;
        }
        if (err) {
            result = err;
            break;
        }
        size_t len = 0;
        const uint8_t *payload = ens_kafka_msg_payload(m, &len);
        ens_event_t ev;
        if (ens_kafka_msg_oversized(loop->consumer, m, errstr, sizeof errstr))
            err = ENS_ERR_INVALID;
        else
            err = ens_event_decode(payload, len, &ev, errstr, sizeof errstr);
        int committed = 0;
        if (!err && loop->long_handlers) {
            /* taken now: a rebalance during the handler must not give it to another member.
             * A refused commit only risks a redelivery, which the service deduplicates. */
            char cerr[256];
            if (ens_kafka_commit(loop->consumer, m, 0, cerr, sizeof cerr))
                ENS_WARN("msg=\"commit before a long handler refused; retried after it\" "
                         "error=\"%s\"",
                         cerr);
            else
                committed = 1;
        }
        if (err) {
            ens_metrics_add(g_m.errors, 1);
            ens_metrics_add(g_m.dead_letters, 1);
            err = ens_kafka_dead_letter(loop->producer, m, loop->name, errstr, errstr,
                                        sizeof errstr);
        } else {
            int backoff = 100;
            for (;;) {
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                ens_metrics_busy(1);
                err = run_handler(loop, &ka, &ev, errstr, sizeof errstr);
                ens_metrics_busy(0);
                clock_gettime(CLOCK_MONOTONIC, &t1);
                double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                            (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
                ens_metrics_observe(g_m.handler_s, ms / 1e3);
                ens_metrics_add(err ? g_m.errors : g_m.handled, 1);
                if (!err) {
                    ENS_INFO("msg=\"handled\" event=%s event_id=%s partition=%d offset=%lld "
                             "ms=%.1f",
                             ens_event_type_name(ev.type), ev.event_id,
                             (int)ens_kafka_msg_partition(m), (long long)ens_kafka_msg_offset(m),
                             ms);
                    break;
                }
                if (!ens_err_is_retriable(err) || *stop)
                    break;
                ENS_WARN("msg=\"handler failed, retrying\" event_id=%s error=\"%s\" backoff_ms=%d",
                         ev.event_id, errstr, backoff);
                sleep_ms(backoff);
                backoff = backoff < 5000 ? backoff * 2 : 5000;
            }
            if (err && !*stop) {
                char reason[600];
                snprintf(reason, sizeof reason, "handler rejected %s: %s",
                         ens_event_type_name(ev.type), errstr);
                ens_metrics_add(g_m.dead_letters, 1);
                err = ens_kafka_dead_letter(loop->producer, m, loop->name, reason, errstr,
                                            sizeof errstr);
            }
            ens_event_free(&ev);
        }
        if (!err && !*stop)
            err = finish(loop, m, committed, errstr, sizeof errstr);
        ens_kafka_msg_free(m);
        if (err && !*stop) {
            /* Not committed: the message comes again after a restart (at-least-once). */
            ENS_ERROR("msg=\"cannot make progress\" error=\"%s\"", errstr);
            result = err;
            break;
        }
        if (loop->tick)
            loop->tick(loop->ctx);
    }
    if (loop->long_handlers)
        ens_kafka_on_revoke(loop->consumer, NULL, NULL);
    keepalive_drop(&ka); /* not committed: they come again */
    free(ka.q);
    return result;
}

int ens_svc_conf(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
                 ens_conf_t **conf) {
    char errstr[512];
    ens_err_t err = ens_conf_new(prog, defs, argc, argv, conf, errstr, sizeof errstr);
    if (err == ENS_ERR_STOPPED)
        return 0;
    if (err) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        return 2;
    }
    ens_log_set_level(ens_conf_str(*conf, "log-level"));
    return ENS_SVC_GO_ON;
}

int ens_svc_start(const char *prog, const char *service, const ens_conf_def_t *defs, int argc,
                  char **argv, ens_conf_t **conf, ens_redis_t **r, ens_kafka_t **p) {
    char errstr[512];
    ens_log_init(service);
    int rc = ens_svc_conf(prog, defs, argc, argv, conf);
    if (rc != ENS_SVC_GO_ON)
        return rc;
    ens_err_t err;
    int port = (int)ens_conf_int(*conf, "metrics-port");
    if (ens_conf_bool(*conf, "healthcheck")) {
        /* a container healthcheck: ask the running service, print its answer */
        char body[256];
        int status = port ? ens_metrics_http_get("127.0.0.1", port, "/healthz", 3000, body,
                                                 sizeof body)
                          : -1;
        if (status < 0)
            printf("%s: no answer on 127.0.0.1:%d/healthz%s\n", prog, port,
                   port ? "" : " (set --metrics-port)");
        else
            printf("%d %s", status, body);
        ens_conf_free(*conf);
        return status == 200 ? 0 : 1;
    }
    svc_metrics_init();
    if (port && (err = ens_metrics_serve(port, HEALTH_STALE_S, HEALTH_BUSY_MAX_S, NULL, errstr,
                                         sizeof errstr)) != ENS_OK) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        ens_conf_free(*conf);
        return 1;
    }
    if (port)
        ENS_INFO("msg=\"serving /metrics and /healthz\" port=%d", port);
    if (r) {
        char url[512];
        ens_conf_redis_url(*conf, url, sizeof url);
        if ((err = ens_redis_connect(url, r, errstr, sizeof errstr)) != ENS_OK) {
            fprintf(stderr, "%s: redis: %s\n", prog, errstr);
            ens_metrics_stop();
            ens_conf_free(*conf);
            return 1;
        }
    }
    if (p && (err = ens_kafka_producer_new(*conf, p, errstr, sizeof errstr)) != ENS_OK) {
        fprintf(stderr, "%s: kafka: %s\n", prog, errstr);
        if (r)
            ens_redis_free(*r);
        ens_metrics_stop();
        ens_conf_free(*conf);
        return 1;
    }
    return ENS_SVC_GO_ON;
}

int ens_svc_serve(const ens_conf_t *conf, const ens_svc_loop_t *tmpl, const char *group,
                  const char *const *topics, int n_topics, volatile sig_atomic_t *stop) {
    char errstr[512];
    ens_svc_loop_t loop = *tmpl;
    if (ens_kafka_consumer_new(conf, group, topics, n_topics, 50, &loop.consumer, errstr,
                               sizeof errstr)) {
        fprintf(stderr, "ensflow-%s: %s\n", loop.name, errstr);
        return 1;
    }
    ens_svc_signals(stop);
    if (loop.on_consumer)
        loop.on_consumer(loop.ctx, loop.consumer);
    ENS_INFO("msg=\"%s up\" group=%s", loop.name, group);
    int rc = ens_svc_run(&loop, stop) ? 1 : 0;
    if (loop.on_consumer)
        loop.on_consumer(loop.ctx, NULL);
    ens_kafka_free(loop.consumer);
    ens_metrics_stop();
    ENS_INFO("msg=\"%s stopped\" rc=%d", loop.name, rc);
    return rc;
}
