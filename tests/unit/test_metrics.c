/* test_metrics.c - counters, gauges and histograms under threads, the Prometheus text, and
 * the /metrics and /healthz endpoints over real HTTP. */
#include "ensflow/metrics.h"

#include <pthread.h>
#include <time.h>

#include "check.h"

#define THREADS 4
#define PER_THREAD 20000

static ens_metric_t *c_events, *h_lat;

static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        ens_metrics_add(c_events, 1);
        ens_metrics_observe(h_lat, (i % 4) * 0.001); /* 0, 1, 2, 3 ms */
    }
    return NULL;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void) {
    c_events = ens_metrics_counter("test_events_total", "events");
    h_lat = ens_metrics_histogram("test_seconds", "latency", NULL, 0);
    ens_metric_t *g = ens_metrics_gauge("test_lag", "lag");
    static const double b[] = {1, 10};
    ens_metric_t *h_small = ens_metrics_histogram("test_batch", "batch sizes", b, 2);
    CHECK(c_events && h_lat && g && h_small);
    /* same name, same type: the same metric; another type: refused */
    CHECK(ens_metrics_counter("test_events_total", "") == c_events);
    CHECK(ens_metrics_gauge("test_events_total", "") == NULL);
    static const double bad[] = {2, 1};
    CHECK(ens_metrics_histogram("test_bad", "", bad, 2) == NULL);
    ens_metrics_add(NULL, 1); /* no-ops */
    ens_metrics_observe(NULL, 1);

    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK_OK(pthread_create(&th[i], NULL, hammer, NULL));
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    CHECK_NEAR(ens_metrics_value(c_events), THREADS * PER_THREAD, 0);
    CHECK_NEAR(ens_metrics_value(h_lat), THREADS * PER_THREAD, 0);
    ens_metrics_set(g, 42.5);
    CHECK_NEAR(ens_metrics_value(g), 42.5, 0);
    ens_metrics_observe(h_small, 0.5);
    ens_metrics_observe(h_small, 10);
    ens_metrics_observe(h_small, 11);

    char *text = NULL;
    size_t len = 0;
    CHECK_OK(ens_metrics_render(&text, &len));
    CHECK(text && strlen(text) == len);
    if (text) {
        CHECK(strstr(text, "# TYPE test_events_total counter\ntest_events_total 80000\n"));
        CHECK(strstr(text, "# TYPE test_lag gauge\ntest_lag 42.5\n"));
        CHECK(strstr(text, "test_batch_bucket{le=\"1\"} 1\ntest_batch_bucket{le=\"10\"} 2\n"
                           "test_batch_bucket{le=\"+Inf\"} 3\ntest_batch_sum 21.5\n"
                           "test_batch_count 3\n"));
        CHECK(strstr(text, "test_seconds_count 80000\n"));
        /* 5000 each of 0, 1, 2, 3 ms per thread, 4 threads: 120 s */
        double sum = -1;
        const char *s = strstr(text, "test_seconds_sum ");
        CHECK(s && sscanf(s, "test_seconds_sum %lf", &sum) == 1);
        CHECK_NEAR(sum, 120, 1e-6);
        /* 0 and 1 ms observations are <= 0.001: half of them */
        CHECK(strstr(text, "test_seconds_bucket{le=\"0.001\"} 40000\n"));
    }
    free(text);

    /* liveness rule */
    char errstr[256], body[4096];
    int port = 0;
    CHECK_OK(ens_metrics_serve(0, 0.3, 0.6, &port, errstr, sizeof errstr));
    CHECK(port > 0);
    CHECK(ens_metrics_serve(0, 1, 1, NULL, errstr, sizeof errstr) != ENS_OK); /* one per process */
    CHECK(ens_metrics_healthy(NULL, 0)); /* starting */
    CHECK_EQ_INT(ens_metrics_http_get("127.0.0.1", port, "/healthz", 2000, body, sizeof body),
                 200);
    CHECK(strncmp(body, "ok:", 3) == 0);
    sleep_ms(400);
    CHECK(!ens_metrics_healthy(NULL, 0)); /* never polled */
    CHECK_EQ_INT(ens_metrics_http_get("127.0.0.1", port, "/healthz", 2000, body, sizeof body),
                 503);
    ens_metrics_heartbeat();
    CHECK_EQ_INT(ens_metrics_http_get("127.0.0.1", port, "/healthz", 2000, body, sizeof body),
                 200);
    ens_metrics_busy(1); /* a long handler is alive ... */
    sleep_ms(400);
    CHECK(ens_metrics_healthy(NULL, 0));
    ens_metrics_progress(); /* ... and stays so while it makes progress ... */
    sleep_ms(400);
    CHECK(ens_metrics_healthy(NULL, 0));
    sleep_ms(300); /* ... until it goes too long without */
    CHECK(!ens_metrics_healthy(body, sizeof body));
    CHECK(strstr(body, "handler without progress") != NULL);
    ens_metrics_busy(0);
    ens_metrics_progress(); /* not busy: no effect */
    ens_metrics_heartbeat();
    CHECK(ens_metrics_healthy(NULL, 0));

    CHECK_EQ_INT(ens_metrics_http_get("127.0.0.1", port, "/metrics", 2000, body, sizeof body),
                 200);
    CHECK(strstr(body, "test_events_total 80000") != NULL);
    CHECK_EQ_INT(ens_metrics_http_get("127.0.0.1", port, "/nope", 2000, NULL, 0), 404);
    ens_metrics_stop();
    ens_metrics_stop(); /* idempotent */
    CHECK_EQ_INT(ens_metrics_http_get("127.0.0.1", port, "/healthz", 500, NULL, 0), -1);
    return check_done("test_metrics");
}
