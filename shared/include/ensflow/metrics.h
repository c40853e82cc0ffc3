/* metrics.h - process-wide Prometheus counters, gauges and histograms, and the small HTTP
 * server (libmicrohttpd) that serves them on /metrics, with liveness on /healthz. */
#ifndef ENSFLOW_METRICS_H
#define ENSFLOW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"

typedef struct ens_metric_s ens_metric_t;

#define ENS_METRICS_MAX 32   /**< metrics one process may register */
#define ENS_METRICS_BUCKETS 16 /**< most histogram bounds (+Inf is implicit) */

/**
 * @brief Register (or find, by name) a counter, a gauge or a histogram in the process registry.
 *        Register from one thread at start-up; updates are then lock-free from any thread.
 * @param bounds upper bounds of the histogram buckets, increasing (at most
 *        ENS_METRICS_BUCKETS); NULL for ens_metrics_latency_bounds (seconds, 0.5 ms to 60 s).
 * @return the metric (owned by the registry, valid until exit), or NULL when the registry is
 *         full or the name is already registered with another type.
 */
ens_metric_t *ens_metrics_counter(const char *name, const char *help);
ens_metric_t *ens_metrics_gauge(const char *name, const char *help);
ens_metric_t *ens_metrics_histogram(const char *name, const char *help, const double *bounds,
                                    int n_bounds);

/** @brief Counter += v (v >= 0). NULL m is a no-op, as for every update below. */
void ens_metrics_add(ens_metric_t *m, uint64_t v);
/** @brief Gauge = v. */
void ens_metrics_set(ens_metric_t *m, double v);
/** @brief Histogram: count one observation of v. */
void ens_metrics_observe(ens_metric_t *m, double v);
/** @brief Current counter or gauge value, or a histogram's observation count (for tests). */
double ens_metrics_value(const ens_metric_t *m);

/**
 * @brief Render every registered metric in the Prometheus text exposition format 0.0.4.
 * @return ENS_OK with *out (caller frees) and *len, or ENS_ERR_NOMEM.
 */
ens_err_t ens_metrics_render(char **out, size_t *len);

/**
 * @brief Liveness: the service loop calls ens_metrics_heartbeat() after every poll, and
 *        ens_metrics_busy(1) / (0) around a handler that may run long (training).
 *        Healthy = a heartbeat within stale_s seconds, or a handler busy for less than
 *        busy_max_s seconds. Before the first heartbeat the process counts as healthy for
 *        stale_s seconds after ens_metrics_serve (start-up).
 */
void ens_metrics_heartbeat(void);
void ens_metrics_busy(int busy);
/** @brief A long handler made progress (a piece of training): the busy limit of /healthz
 *         counts from the last progress, not from the handler's start. No-op when not busy. */
void ens_metrics_progress(void);
/** @brief 1 when healthy by the rule above (explained in why, may be NULL). */
int ens_metrics_healthy(char *why, size_t why_size);

/**
 * @brief Serve GET /metrics, /healthz (200 or 503) on TCP port (all addresses) from a
 *        libmicrohttpd thread. Port 0 picks a free port; the one bound is in *bound_port
 *        (may be NULL). One server per process.
 */
ens_err_t ens_metrics_serve(int port, double stale_s, double busy_max_s, int *bound_port,
                            char *errstr, size_t errstr_size);
/** @brief Stop the server (no-op when none runs). */
void ens_metrics_stop(void);

/**
 * @brief GET http://host:port/path with a plain socket (for `--healthcheck` and tests).
 * @return the HTTP status (200, 503, ...), or -1 when there was no HTTP answer within
 *         timeout_ms. body (may be NULL) gets the start of the body, NUL-terminated.
 */
int ens_metrics_http_get(const char *host, int port, const char *path, int timeout_ms,
                         char *body, size_t body_size);

#endif
