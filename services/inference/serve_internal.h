/* serve_internal.h - what the parts of an inference group's loop share (serve*.c only):
 * the pipeline (serve.c), plan following and devices (serve_plan.c), answered offsets
 * (serve_answered.c) and metering (serve_meter.c). */
#ifndef ENSFLOW_SERVE_INTERNAL_H
#define ENSFLOW_SERVE_INTERNAL_H

#include <stdint.h>

#include "ensflow/state.h"
#include "serve.h"

typedef struct ens_serve_pipe_s ens_serve_pipe_t;

/* An inference group (opaque in serve.h): the inputs ens_serve_new and ens_serve_set_devices
 * set, then what the loop owns. */
struct ens_serve_s {
    /* inputs */
    ens_conf_t *conf;          /**< max-batch, max-wait-us, fetch-wait-ms, group */
    ens_redis_t *redis;
    ens_state_t *state;        /**< over redis (owned): plans, devices; same thread as redis */
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

/* Answered offsets, per request partition, kept by the state layer for the consumer group
 * (ens_state_answered_*: the last answered offset of each "<topic>/<partition>"). Kafka's
 * commit can fail while a rebalance is under way (the embedded broker refuses commits from
 * the moment a group starts to rebalance), and a process can die between an answer and its
 * commit; the next owner of the partition then skips what was answered instead of answering
 * it again. */
#define MAX_PARTS 256
typedef struct {
    ens_redis_t *redis;  /* the I/O thread's own connection (a connection is not thread-safe) */
    ens_state_t *state;  /* over redis, or given (ens_serve_answered_open_state); NULL: none */
    int own_state;       /* 1: state is over redis and freed with it */
    char group[ENS_STATE_GROUP_MAX]; /* the consumer group whose answers these are */
    int64_t last[MAX_PARTS]; /* last answered offset; -1 none */
    int loaded[MAX_PARTS];   /* drains + 1 when last[] was read for this assignment */
} ens_serve_answered_t;

/* --- serve_answered.c ----------------------------------------------------------------------- */

/* conf's consumer group, and a connection and state of the I/O thread's own (none, with a
 * warning, when Redis cannot be reached: nothing is skipped then). */
void ens_serve_answered_open(ens_serve_answered_t *a, ens_conf_t *conf);
/* The same over a state of the caller's (not owned: unit tests on the in-memory state). */
void ens_serve_answered_open_state(ens_serve_answered_t *a, ens_state_t *st, const char *group);
void ens_serve_answered_close(ens_serve_answered_t *a);
/* Was m answered before? drains: the revocations answered so far (an assignment's count). */
int ens_serve_answered_before(ens_serve_answered_t *a, ens_kafka_t *requests, int drains,
                              const ens_kafka_msg_t *m);
/* Record m, the last message of its partition in an answered batch, as answered. */
void ens_serve_answered_record(ens_serve_answered_t *a, const ens_kafka_msg_t *m);
/* The two steps of those without Kafka: read topic/part's answered offset for assignment
 * drains + 1, given the group's committed offset there (-1: none, and the record is stale);
 * and record offset as answered. */
void ens_serve_answered_load(ens_serve_answered_t *a, const char *topic, int32_t part,
                             int drains, int64_t committed);
void ens_serve_answered_mark(ens_serve_answered_t *a, const char *topic, int32_t part,
                             int64_t offset);

/* --- serve_meter.c -------------------------------------------------------------------------- */

int64_t ens_serve_mono_us(void);
/* The serving overhead per request (g->overhead_ms), looked at every 0.5 s. */
void ens_serve_measure_overhead(ens_serve_t *g);
/* A busy cycle of rows taking us: the group's speed against the prediction (g->speed). */
void ens_serve_measure_speed(ens_serve_t *g, int rows, int64_t us);

/* --- serve_plan.c --------------------------------------------------------------------------- */

/* Announce the group's devices every few seconds (leaving: remove them). */
void ens_serve_register_devices(ens_serve_t *g, int leaving);
/* The plan in force before this process started, loaded (so a restart serves at once). */
void ens_serve_load_current_plan(ens_serve_t *g);
/* Load the newer plans that came on the plans topic (the first poll waits timeout_ms). */
void ens_serve_poll_plans(ens_serve_t *g, int timeout_ms);

#endif
