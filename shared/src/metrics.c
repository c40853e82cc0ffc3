/* metrics.c - Prometheus counters, gauges and histograms with atomic updates, their text
 * rendering, liveness, and the libmicrohttpd server of /metrics and /healthz. */
#include "ensflow/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype_t;

struct ens_metric_s {
    mtype_t type;
    char name[96];
    char help[160];
    _Atomic uint64_t counter;
    _Atomic uint64_t gauge_bits; /* a double's bits: C11 has no atomic double add */
    int n_bounds;
    double bounds[ENS_METRICS_BUCKETS];
    _Atomic uint64_t buckets[ENS_METRICS_BUCKETS + 1]; /* per bucket, not cumulative */
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t count;
};

static struct ens_metric_s g_metrics[ENS_METRICS_MAX];
static _Atomic int g_n; /* published after the slot is filled */
static pthread_mutex_t g_reg_lock = PTHREAD_MUTEX_INITIALIZER;

static const double latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,   0.5,   1,      2.5,   5,    10,   30,    60};

static uint64_t dbits(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}
static double bitsd(uint64_t u) {
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static ens_metric_t *reg(mtype_t type, const char *name, const char *help, const double *bounds,
                         int n_bounds) {
    if (!name || strlen(name) >= sizeof g_metrics[0].name || n_bounds < 0 ||
        n_bounds > ENS_METRICS_BUCKETS)
        return NULL;
    ens_metric_t *m = NULL;
    pthread_mutex_lock(&g_reg_lock);
    int n = atomic_load(&g_n);
    for (int i = 0; i < n; i++)
        if (strcmp(g_metrics[i].name, name) == 0) {
            m = g_metrics[i].type == type ? &g_metrics[i] : NULL;
            pthread_mutex_unlock(&g_reg_lock);
            return m;
        }
    if (n < ENS_METRICS_MAX) {
        m = &g_metrics[n];
        memset(m, 0, sizeof *m);
        m->type = type;
        snprintf(m->name, sizeof m->name, "%s", name);
        snprintf(m->help, sizeof m->help, "%s", help ? help : "");
        m->n_bounds = n_bounds;
        for (int i = 0; i < n_bounds; i++)
            m->bounds[i] = bounds[i];
        atomic_store(&g_n, n + 1);
    }
    pthread_mutex_unlock(&g_reg_lock);
    return m;
}

ens_metric_t *ens_metrics_counter(const char *name, const char *help) {
    return reg(M_COUNTER, name, help, NULL, 0);
}

ens_metric_t *ens_metrics_gauge(const char *name, const char *help) {
    return reg(M_GAUGE, name, help, NULL, 0);
}

ens_metric_t *ens_metrics_histogram(const char *name, const char *help, const double *bounds,
                                    int n_bounds) {
    if (!bounds) {
        bounds = latency_bounds;
        n_bounds = (int)(sizeof latency_bounds / sizeof latency_bounds[0]);
    }
    for (int i = 1; i < n_bounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return NULL;
    return reg(M_HISTOGRAM, name, help, bounds, n_bounds);
}

void ens_metrics_add(ens_metric_t *m, uint64_t v) {
    if (m)
        atomic_fetch_add_explicit(&m->counter, v, memory_order_relaxed);
}

void ens_metrics_set(ens_metric_t *m, double v) {
    if (m)
        atomic_store_explicit(&m->gauge_bits, dbits(v), memory_order_relaxed);
}

void ens_metrics_observe(ens_metric_t *m, double v) {
    if (!m || isnan(v))
        return;
    int b = 0;
    while (b < m->n_bounds && v > m->bounds[b])
        b++;
    atomic_fetch_add_explicit(&m->buckets[b], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->sum_bits, &old, dbits(bitsd(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

double ens_metrics_value(const ens_metric_t *m) {
    if (!m)
        return 0;
    switch (m->type) {
    case M_COUNTER: return (double)atomic_load(&((ens_metric_t *)m)->counter);
    case M_GAUGE: return bitsd(atomic_load(&((ens_metric_t *)m)->gauge_bits));
    default: return (double)atomic_load(&((ens_metric_t *)m)->count);
    }
}

/* --- rendering ------------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...) {
    for (int pass = 0; pass < 2 && !b->oom; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

/* Prometheus floats: +Inf, -Inf, NaN, else shortest round-trippable %.17g is overkill. */
static void fmt_double(char *buf, size_t size, double v) {
    if (isnan(v))
        snprintf(buf, size, "NaN");
    else if (isinf(v))
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
    else
        snprintf(buf, size, "%.10g", v);
}

ens_err_t ens_metrics_render(char **out, size_t *len) {
    sbuf_t b = {.cap = 4096};
    if (!(b.p = malloc(b.cap)))
        return ENS_ERR_NOMEM;
    b.p[0] = '\0';
    int n = atomic_load(&g_n);
    char v[64];
    for (int i = 0; i < n; i++) {
        ens_metric_t *m = &g_metrics[i];
        static const char *const tn[] = {"counter", "gauge", "histogram"};
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, tn[m->type]);
        if (m->type == M_COUNTER) {
            sb_printf(&b, "%s %llu\n", m->name, (unsigned long long)atomic_load(&m->counter));
        } else if (m->type == M_GAUGE) {
            fmt_double(v, sizeof v, bitsd(atomic_load(&m->gauge_bits)));
            sb_printf(&b, "%s %s\n", m->name, v);
        } else {
            uint64_t cum = 0;
            for (int k = 0; k <= m->n_bounds; k++) {
                cum += atomic_load(&m->buckets[k]);
                if (k < m->n_bounds)
                    fmt_double(v, sizeof v, m->bounds[k]);
                else
                    snprintf(v, sizeof v, "+Inf");
                sb_printf(&b, "%s_bucket{le=\"%s\"} %llu\n", m->name, v, (unsigned long long)cum);
            }
            fmt_double(v, sizeof v, bitsd(atomic_load(&m->sum_bits)));
            /* count written as the +Inf bucket total, so the two always agree in one scrape */
            sb_printf(&b, "%s_sum %s\n%s_count %llu\n", m->name, v, m->name,
                      (unsigned long long)cum);
        }
    }
    if (b.oom) {
        free(b.p);
        return ENS_ERR_NOMEM;
    }
    *out = b.p;
    *len = b.len;
    return ENS_OK;
}

/* --- liveness ------------------------------------------------------------------------------- */

static _Atomic int64_t g_beat_us, g_busy_since_us, g_start_us;
static double g_stale_s = 60, g_busy_max_s = 3600;

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void ens_metrics_heartbeat(void) { atomic_store(&g_beat_us, mono_us()); }

void ens_metrics_busy(int busy) { atomic_store(&g_busy_since_us, busy ? mono_us() : 0); }

void ens_metrics_progress(void) {
    int64_t busy = atomic_load(&g_busy_since_us);
    if (busy) /* only while busy: a handler that just ended stays ended */
        atomic_compare_exchange_strong(&g_busy_since_us, &busy, mono_us());
}

int ens_metrics_healthy(char *why, size_t why_size) {
    int64_t now = mono_us(), beat = atomic_load(&g_beat_us), busy = atomic_load(&g_busy_since_us);
    char tmp[8];
    if (!why) {
        why = tmp;
        why_size = sizeof tmp;
    }
    if (busy) {
        double s = (double)(now - busy) / 1e6;
        snprintf(why, why_size, "handler without progress for %.1f s (limit %.0f s)", s, g_busy_max_s);
        return s < g_busy_max_s;
    }
    if (!beat) {
        double s = (double)(now - atomic_load(&g_start_us)) / 1e6;
        snprintf(why, why_size, "starting for %.1f s, no poll yet (limit %.0f s)", s, g_stale_s);
        return s < g_stale_s;
    }
    double s = (double)(now - beat) / 1e6;
    snprintf(why, why_size, "last poll %.1f s ago (limit %.0f s)", s, g_stale_s);
    return s < g_stale_s;
}

/* --- HTTP ----------------------------------------------------------------------------------- */

static struct MHD_Daemon *g_daemon;

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, char *body,
                              size_t len, enum MHD_ResponseMemoryMode mode, const char *ctype) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, "Content-Type", ctype) != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
    (void)cls, (void)version, (void)upload;
    if (!*state) { /* first call: headers only; answer on the second */
        *state = conn;
        return MHD_YES;
    }
    if (*upload_size) { /* no request bodies here: drop them */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n", 9, MHD_RESPMEM_PERSISTENT,
                      "text/plain");
    if (strcmp(url, "/metrics") == 0) {
        char *text = NULL;
        size_t len = 0;
        if (ens_metrics_render(&text, &len) != ENS_OK)
            return answer(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", 14,
                          MHD_RESPMEM_PERSISTENT, "text/plain");
        return answer(conn, MHD_HTTP_OK, text, len, MHD_RESPMEM_MUST_FREE,
                      "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0) {
        char why[160], *body = malloc(200);
        int ok = ens_metrics_healthy(why, sizeof why);
        if (!body)
            return MHD_NO;
        int n = snprintf(body, 200, "%s: %s\n", ok ? "ok" : "unhealthy", why);
        return answer(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body,
                      (size_t)(n < 200 ? n : 199), MHD_RESPMEM_MUST_FREE, "text/plain");
    }
    return answer(conn, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n", 36,
                  MHD_RESPMEM_PERSISTENT, "text/plain");
}

ens_err_t ens_metrics_serve(int port, double stale_s, double busy_max_s, int *bound_port,
                            char *errstr, size_t errstr_size) {
    if (g_daemon)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "metrics server already runs");
    if (port < 0 || port > 65535 || !(stale_s > 0) || !(busy_max_s > 0))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "bad metrics port %d", port);
    g_stale_s = stale_s;
    g_busy_max_s = busy_max_s;
    atomic_store(&g_start_us, mono_us());
    /* a handful of connections, each cut after 5 s: a scraper and two probes need no more */
    g_daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                                on_request, NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                                MHD_OPTION_END);
    if (!g_daemon)
        return ens_err_set(errstr, errstr_size, ENS_ERR_IO,
                           "cannot serve metrics on port %d (in use?)", port);
    if (bound_port) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(g_daemon, MHD_DAEMON_INFO_BIND_PORT);
        *bound_port = di ? (int)di->port : port;
    }
    return ENS_OK;
}

void ens_metrics_stop(void) {
    if (g_daemon) {
        MHD_stop_daemon(g_daemon);
        g_daemon = NULL;
    }
}

int ens_metrics_http_get(const char *host, int port, const char *path, int timeout_ms,
                         char *body, size_t body_size) {
    if (body && body_size)
        body[0] = '\0';
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    char buf[8192];
    size_t got = 0;
    int status = -1;
    int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        goto out;
    int n = snprintf(buf, sizeof buf, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
    if (n < 0 || (size_t)n >= sizeof buf || send(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    while (got < sizeof buf - 1) {
        int left_ms = (int)((deadline - mono_us()) / 1000);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left_ms <= 0 || poll(&pfd, 1, left_ms) <= 0)
            break;
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    int major, minor, code;
    if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &code) == 3)
        status = code;
    if (status > 0 && body && body_size) {
        const char *b = strstr(buf, "\r\n\r\n");
        snprintf(body, body_size, "%s", b ? b + 4 : "");
    }
out:
    close(fd);
    return status;
}
