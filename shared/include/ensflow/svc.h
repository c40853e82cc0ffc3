/* svc.h - what every service shares: start-up wiring and the consume-handle-commit loop. */
#ifndef ENSFLOW_SVC_H
#define ENSFLOW_SVC_H

#include <signal.h>

#include "ensflow/conf.h"
#include "ensflow/err.h"
#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/store.h"

/**
 * Handle one decoded event. Write Redis first, then produce effects on the producer (the
 * loop flushes them before it commits). Return ENS_OK; a retriable error to have the same
 * event handled again after a pause; or any other error with errstr to dead-letter it.
 */
typedef ens_err_t (*ens_svc_handle_fn)(void *ctx, const ens_event_t *ev, char *errstr,
                                       size_t errstr_size);

typedef struct {
    const char *name;          /**< service name: logs and dead letters */
    ens_kafka_t *consumer;
    ens_kafka_t *producer;
    ens_svc_handle_fn handle;
    void (*tick)(void *ctx);   /**< optional: called after every poll, events or not */
    /** optional: ens_svc_serve hands the service its consumer before the loop starts, and
     *  NULL after it ends (the trainer publishes its assignment) */
    void (*on_consumer)(void *ctx, ens_kafka_t *consumer);
    void *ctx;
    int poll_ms;               /**< poll timeout, default 200 */
    /** optional: handlers that run for minutes or hours (training). The loop then commits a
     *  message before its handler runs, so that a group rebalance cannot hand it to a second
     *  consumer (the service owns redelivery: the trainer's job lease), and while the handler
     *  runs a second thread keeps polling the consumer: it stays in its group past
     *  max.poll.interval.ms and takes part in rebalances. Messages that arrive meanwhile are
     *  kept, in order, for the next turns of the loop. */
    int long_handlers;
    /** optional, with long_handlers: called from the polling thread after each poll while a
     *  handler runs (leases, heartbeats); it must not touch what the handler uses unguarded */
    void (*busy_tick)(void *ctx);
} ens_svc_loop_t;

/**
 * @brief Consume until *stop: decode (undecodable -> dead letter with the reason), handle,
 *        flush the producer, commit. Retriable handler errors back off and retry the event.
 * @return ENS_OK when stopped, or the error that made the loop give up.
 */
ens_err_t ens_svc_run(const ens_svc_loop_t *loop, volatile sig_atomic_t *stop);

/** @brief Route SIGTERM and SIGINT to *flag = 1 (and ignore SIGPIPE). */
void ens_svc_signals(volatile sig_atomic_t *flag);

/**
 * @brief Set the ensflow_consumer_lag gauge from consumer (at most every 5 s; cheap otherwise).
 *        ens_svc_run calls it; a service with its own loop (inference) calls it after polls.
 */
void ens_svc_lag_update(ens_kafka_t *consumer);

/** ens_svc_start's "carry on" status (any other value is an exit status). */
#define ENS_SVC_GO_ON (-1)

/**
 * @brief Parse conf (prints --help or the error naming the bad argument) and set the log
 *        level from it: ens_svc_start's first step, and the CLI subcommands' whole start.
 * @return ENS_SVC_GO_ON to go on; 0 after --help or --version; 2 for bad arguments.
 */
int ens_svc_conf(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
                 ens_conf_t **conf);

/**
 * @brief The usual start: parse conf (prints --help / the error), init logging, serve
 *        /metrics and /healthz when --metrics-port is set (or, with --healthcheck, only ask a
 *        running service's /healthz and return), connect Redis (r may be NULL when not
 *        needed) and make a producer (p may be NULL).
 * @return ENS_SVC_GO_ON to go on; otherwise the exit status main() should return
 *         (0 after --help or --version, 2 for bad arguments, 1 when Redis or Kafka cannot be
 *         set up).
 */
int ens_svc_start(const char *prog, const char *service, const ens_conf_def_t *defs, int argc,
                  char **argv, ens_conf_t **conf, ens_redis_t **r, ens_kafka_t **p);

/**
 * @brief Join consumer group `group` on topics, install the signal handlers and run the
 *        loop described by tmpl (its consumer member is ignored) until *stop.
 * @return the exit status for main(): 0 when stopped cleanly, 1 on a fatal error.
 */
int ens_svc_serve(const ens_conf_t *conf, const ens_svc_loop_t *tmpl, const char *group,
                  const char *const *topics, int n_topics, volatile sig_atomic_t *stop);

#endif
