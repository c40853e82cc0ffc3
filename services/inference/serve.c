/* serve.c - an inference group's loop: requests batched from Kafka, combined answers
 * produced, offsets committed after the answers; plans followed between batches
 * (serve_plan.c), answered offsets kept (serve_answered.c), the group metered (serve_meter.c). */
#define _GNU_SOURCE /* pthread_setname_np */
#include "serve_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ensflow/log.h"
#include "ensflow/svc.h"

/* The pipeline. With overlap (the default) two threads share N_SLOTS batches: the I/O thread
 * fills a free slot from Kafka (batching, decoding, dead letters) and finishes done slots in
 * order (produce, flush, commit); the calling thread computes full slots in order and
 * follows plans between batches. Without overlap one thread does fill, compute and finish
 * in turn, as the simple server the plan is compared with does. */
#define N_SLOTS 3
enum { SLOT_FREE, SLOT_FULL, SLOT_DONE };

typedef struct {
    int state;
    int n, n_valid;
    ens_kafka_msg_t **msgs;
    ens_event_t *reqs, *resps;
    const ens_inference_request_t **valid;
    int64_t *recv_us;
    int64_t first, t_run, t_ran;
} batch_t;

struct ens_serve_pipe_s {
    batch_t slot[N_SLOTS];
    ens_serve_answered_t answered;
    pthread_mutex_t mu;
    pthread_cond_t full, freed; /* a slot became FULL; a slot became DONE or FREE */
    int have_plan, io_exited, fatal;
    int outstanding; /* slots not FREE */
    int head, tail;   /* next slot to finish; next slot to fill */
    int drains;       /* revocations answered so far (I/O thread only) */
    ens_kafka_msg_t *carry; /* polled during a drain: the next batch's first message */
    int64_t compute_alive_us; /* the compute thread's last turn (liveness) */
};

static int pipe_alloc(ens_serve_pipe_t *p, int max_batch) {
    for (int i = 0; i < N_SLOTS; i++) {
        batch_t *b = &p->slot[i];
        b->msgs = calloc((size_t)max_batch, sizeof *b->msgs);
        b->reqs = calloc((size_t)max_batch, sizeof *b->reqs);
        b->resps = calloc((size_t)max_batch, sizeof *b->resps);
        b->valid = calloc((size_t)max_batch, sizeof *b->valid);
        b->recv_us = calloc((size_t)max_batch, sizeof *b->recv_us);
        if (!b->msgs || !b->reqs || !b->resps || !b->valid || !b->recv_us)
            return 1;
    }
    return 0;
}

static void pipe_release(ens_serve_pipe_t *p) {
    for (int i = 0; i < N_SLOTS; i++) {
        batch_t *b = &p->slot[i];
        free(b->msgs);
        free(b->reqs);
        free(b->resps);
        free(b->valid);
        free(b->recv_us);
    }
}

/* Take message m into b: skip it if it was answered, decode it, or send it to the
 * dead-letter topic. */
static ens_err_t take_request(ens_serve_t *g, batch_t *b, ens_kafka_msg_t *m) {
    char errstr[512];
    int n = b->n;
    b->msgs[n] = m;
    b->recv_us[n] = ens_serve_mono_us();
    if (n == 0)
        b->first = b->recv_us[n];
    /* answered before: committed with the batch, not answered again */
    if (ens_serve_answered_before(&g->pipe->answered, g->requests, g->pipe->drains, m)) {
        b->reqs[n].type = ENS_EV__COUNT;
        b->n++;
        ens_metrics_add(g->m_skipped, 1);
        return ENS_OK;
    }
    size_t len;
    const uint8_t *data = ens_kafka_msg_payload(m, &len);
    ens_err_t err;
    if (ens_kafka_msg_oversized(g->requests, m, errstr, sizeof errstr))
        err = ENS_ERR_INVALID;
    else
        err = ens_event_decode(data, len, &b->reqs[n], errstr, sizeof errstr);
    if (!err && b->reqs[n].type != ENS_EV_INFERENCE_REQUEST) {
        snprintf(errstr, sizeof errstr, "%s is not an InferenceRequest",
                 ens_event_type_name(b->reqs[n].type));
        ens_event_free(&b->reqs[n]);
        err = ENS_ERR_INVALID;
    }
    b->n++;
    if (!err) {
        b->valid[b->n_valid++] = &b->reqs[n].u.inference_request;
        return ENS_OK;
    }
    b->reqs[n].type = ENS_EV__COUNT; /* marks "no request here" */
    ens_metrics_add(g->m_dlq, 1);
    ens_metrics_add(g->m_not_ok, 1);
    if ((err = ens_kafka_dead_letter(g->producer, m, "inference", errstr, errstr,
                                     sizeof errstr)))
        ENS_ERROR("msg=\"dead letter not written\" error=\"%s\"", errstr);
    return err;
}

/* Fill b: up to max_batch requests, waiting at most max_wait_us after the first, and at most
 * first_wait_ms for the first. *carry (if set) is taken first. A revocation during a poll
 * answers b itself (drain); the message that poll brought then goes back in *carry, to start
 * the next batch. */
static ens_err_t fill_batch(ens_serve_t *g, batch_t *b, int first_wait_ms,
                            ens_kafka_msg_t **carry) {
    int drains = g->pipe->drains; /* changed only on this thread, inside a poll */
    b->n = b->n_valid = 0;
    while (b->n < g->max_batch && !*g->stop) {
        int wait_ms = first_wait_ms;
        if (b->n > 0) {
            int64_t left = g->max_wait_us - (ens_serve_mono_us() - b->first);
            if (left <= 0)
                break;
            wait_ms = (int)((left + 999) / 1000);
        }
        ens_kafka_msg_t *m = *carry;
        *carry = NULL;
        int got = m || ens_kafka_poll(g->requests, wait_ms, &m) == ENS_OK;
        if (g->pipe->drains != drains) { /* b was answered and released by the drain */
            *carry = got ? m : NULL;
            return ENS_OK;
        }
        if (!got)
            break;
        ens_err_t err = take_request(g, b, m);
        if (err)
            return err;
    }
    return ENS_OK;
}

/* The combined prediction of a full batch (the plan in force answers). busy: the batch was
 * waiting when the compute thread came for it, so the last batch's cycle measures speed. */
static ens_err_t compute_batch(ens_serve_t *g, batch_t *b, int busy) {
    b->t_run = ens_serve_mono_us();
    if (busy && g->cycle_start_us > 0)
        ens_serve_measure_speed(g, g->cycle_rows, b->t_run - g->cycle_start_us);
    g->cycle_start_us = b->t_run;
    g->cycle_rows = b->n_valid;
    ens_err_t err = ens_inference_run(g->inf, b->valid, b->n_valid, ens_now_ms(), b->resps);
    b->t_ran = ens_serve_mono_us();
    if (err)
        ENS_ERROR("msg=\"batch not computed\" error=\"%s\"", ens_err_str(err));
    return err;
}

/* Free a batch's requests, answers and messages; what was not committed is redelivered. */
static void release_batch(batch_t *b) {
    for (int i = 0; i < b->n; i++) {
        if (b->reqs[i].type != ENS_EV__COUNT)
            ens_event_free(&b->reqs[i]);
        ens_kafka_msg_free(b->msgs[i]);
    }
    for (int i = 0; i < b->n_valid; i++)
        ens_event_free(&b->resps[i]);
    b->n = b->n_valid = 0;
}

/* Answer a computed batch, then commit the last message of each of its partitions (sync: wait
 * for the commits, as before partitions are given up); free it. */
static ens_err_t finish_batch(ens_serve_t *g, batch_t *b, int sync) {
    char errstr[512];
    ens_err_t err = ENS_OK;
    int64_t t_produce = ens_serve_mono_us();
    for (int i = 0; !err && i < b->n_valid; i++)
        err = ens_kafka_produce_event(g->producer, ENS_TOPIC_INFERENCE_RESPONSES,
                                      b->valid[i]->request_id, &b->resps[i], NULL, errstr,
                                      sizeof errstr);
    int64_t t_flush = ens_serve_mono_us();
    if (!err)
        err = ens_kafka_flush(g->producer, 30000, errstr, sizeof errstr);
    int64_t t_done = ens_serve_mono_us();
    /* the last message of each partition: once the answers are acked, its offset recorded as
     * answered (every partition's, whatever a commit does), and committed */
    int acked = !err;
    for (int i = b->n - 1; acked && i >= 0; i--) {
        int later = 0;
        for (int j = i + 1; j < b->n; j++)
            later |= ens_kafka_msg_partition(b->msgs[j]) == ens_kafka_msg_partition(b->msgs[i]);
        if (later)
            continue;
        ens_serve_answered_record(&g->pipe->answered, b->msgs[i]);
        if (err)
            continue;
        err = ens_kafka_commit(g->requests, b->msgs[i], !sync, errstr, sizeof errstr);
        if (err && sync) { /* a rebalance under way may refuse it: Redis has the offsets */
            ENS_WARN("msg=\"commit refused while giving up partitions\" error=\"%s\"", errstr);
            err = ENS_OK;
        }
    }
    if (err)
        ENS_ERROR("msg=\"batch not acknowledged\" error=\"%s\"", errstr);
    else {
        ens_metrics_observe(g->m_batch, b->n);
        ens_metrics_add(g->m_requests, (uint64_t)b->n_valid);
        for (int i = 0; i < b->n_valid; i++)
            if (b->resps[i].u.inference_response.status != ENS_RESPONSE_OK)
                ens_metrics_add(g->m_not_ok, 1);
        for (int i = 0; i < b->n; i++)
            ens_metrics_observe(g->m_latency, (double)(t_done - b->recv_us[i]) / 1e6);
        ENS_DEBUG("batch",
                  "msg=\"batch served\" size=%d valid=%d fill_us=%lld wait_us=%lld run_us=%lld "
                  "produce_us=%lld flush_us=%lld",
                  b->n, b->n_valid, (long long)(b->recv_us[b->n - 1] - b->first),
                  (long long)(b->t_run - b->recv_us[b->n - 1]), (long long)(b->t_ran - b->t_run),
                  (long long)(t_flush - t_produce), (long long)(t_done - t_flush));
    }
    release_batch(b);
    return err;
}

/* Wait on c for at most ms milliseconds (mu held). */
static void timed_wait(pthread_cond_t *c, pthread_mutex_t *mu, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(c, mu, &ts);
}

static void housekeeping(ens_serve_t *g) {
    if (!g->overlap) /* with overlap the I/O thread beats for both (io_heartbeat) */
        ens_metrics_heartbeat();
    ens_serve_measure_overhead(g);
    ens_serve_register_devices(g, 0);
}

/* The I/O thread's liveness beat, withheld while the compute thread has not taken a turn for
 * 30 s with work waiting: /healthz then goes stale whichever thread is stuck. */
static void io_heartbeat(ens_serve_pipe_t *p) {
    pthread_mutex_lock(&p->mu);
    int stuck = p->outstanding > 0 && ens_serve_mono_us() - p->compute_alive_us > 30000000;
    pthread_mutex_unlock(&p->mu);
    if (!stuck)
        ens_metrics_heartbeat();
}

/* Finish the done slots at the head, in order (mu held; released while finishing). */
static void finish_done(ens_serve_t *g, int sync) {
    ens_serve_pipe_t *p = g->pipe;
    while (p->slot[p->head].state == SLOT_DONE && !p->fatal) {
        pthread_mutex_unlock(&p->mu);
        ens_err_t err = finish_batch(g, &p->slot[p->head], sync);
        pthread_mutex_lock(&p->mu);
        p->slot[p->head].state = SLOT_FREE;
        p->outstanding--;
        p->fatal |= err != ENS_OK;
        p->head = (p->head + 1) % N_SLOTS;
    }
}

/* Partitions are being taken from this group (another group joined, or this one is
 * leaving): answer every request in hand, the batch being filled included, and commit
 * synchronously before they go, so that none is answered again by the next owner. Runs on
 * the thread that polls requests, inside fill_batch's poll. */
static void drain(void *ctx) {
    ens_serve_t *g = ctx;
    ens_serve_pipe_t *p = g->pipe;
    if (!p)
        return;
    int64_t t0 = ens_serve_mono_us();
    int answered = 0;
    if (!g->overlap) {
        batch_t *b = &p->slot[0];
        answered = b->n;
        if (b->n > 0 && (compute_batch(g, b, 0) || finish_batch(g, b, 1)))
            p->fatal = 1; /* what is left is not committed: the next owner answers it */
        release_batch(b); /* answered or given up: the partitions go either way */
    } else {
        pthread_mutex_lock(&p->mu);
        batch_t *t = &p->slot[p->tail];
        if (t->state == SLOT_FREE && t->n > 0) { /* the batch being filled goes as it is */
            t->state = SLOT_FULL;
            p->outstanding++;
            p->tail = (p->tail + 1) % N_SLOTS;
            pthread_cond_signal(&p->full);
        }
        for (int i = 0; i < N_SLOTS; i++)
            answered += p->slot[i].state != SLOT_FREE ? p->slot[i].n : 0;
        while (p->outstanding > 0 && !p->fatal) {
            finish_done(g, 1);
            if (p->outstanding > 0 && !p->fatal)
                timed_wait(&p->freed, &p->mu, 5);
        }
        pthread_mutex_unlock(&p->mu);
    }
    p->drains++;
    ENS_INFO("msg=\"drained before giving up partitions\" requests=%d ms=%.1f ok=%d", answered,
             (double)(ens_serve_mono_us() - t0) / 1e3, !p->fatal);
}

/* The I/O thread: fill free slots, finish done ones in order, until stopped and drained. */
static void *io_loop(void *arg) {
    ens_serve_t *g = arg;
    ens_serve_pipe_t *p = g->pipe;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        finish_done(g, 0);
        if (p->fatal || (*g->stop && p->outstanding == 0))
            break;
        if (*g->stop || !p->have_plan || p->slot[p->tail].state != SLOT_FREE) {
            timed_wait(&p->freed, &p->mu, 5);
            pthread_mutex_unlock(&p->mu);
            io_heartbeat(p);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        /* while a batch is being computed, look back for its answers every millisecond */
        int first_wait_ms = p->outstanding > 0 ? 1 : 100;
        int slot = p->tail, drains = p->drains; /* a drain during the fill takes the slot */
        pthread_mutex_unlock(&p->mu);
        ens_err_t err = fill_batch(g, &p->slot[slot], first_wait_ms, &p->carry);
        io_heartbeat(p);
        ens_svc_lag_update(g->requests);
        pthread_mutex_lock(&p->mu);
        p->fatal |= err != ENS_OK;
        if (p->drains == drains && p->slot[slot].n > 0) {
            p->slot[slot].state = SLOT_FULL;
            p->outstanding++;
            p->tail = (slot + 1) % N_SLOTS;
            pthread_cond_signal(&p->full);
        }
    }
    p->io_exited = 1;
    pthread_cond_broadcast(&p->full);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* The calling thread with overlap: compute full slots in order, plans between batches. */
static int compute_loop(ens_serve_t *g) {
    ens_serve_pipe_t *p = g->pipe;
    int next = 0;
    for (;;) {
        int planless = ens_inference_plan_version(g->inf) < 0;
        ens_serve_poll_plans(g, planless ? 200 : 0);
        pthread_mutex_lock(&p->mu);
        p->have_plan = ens_inference_plan_version(g->inf) >= 0;
        if (p->have_plan)
            pthread_cond_broadcast(&p->freed);
        int busy = p->slot[next].state == SLOT_FULL; /* no wait for work */
        if (!busy && !p->io_exited)
            timed_wait(&p->full, &p->mu, 50);
        /* after a fatal error nothing more is computed: the I/O thread is leaving */
        int run = p->slot[next].state == SLOT_FULL && !p->fatal, done = p->io_exited;
        p->compute_alive_us = ens_serve_mono_us();
        pthread_mutex_unlock(&p->mu);
        if (run) {
            ens_err_t err = compute_batch(g, &p->slot[next], busy);
            pthread_mutex_lock(&p->mu);
            p->slot[next].state = SLOT_DONE;
            p->fatal |= err != ENS_OK;
            pthread_cond_broadcast(&p->freed);
            pthread_mutex_unlock(&p->mu);
            next = (next + 1) % N_SLOTS;
        } else if (done)
            break;
        else
            g->cycle_start_us = 0; /* idle: the next batch starts a new cycle */
        housekeeping(g);
    }
    return p->fatal;
}

/* Without overlap: fill, compute and finish in turn on one thread. */
static int serial_loop(ens_serve_t *g) {
    batch_t *b = &g->pipe->slot[0];
    int rc = 0;
    while (!*g->stop && !rc) {
        /* without a plan, requests wait in Kafka rather than get error answers */
        ens_serve_poll_plans(g, ens_inference_plan_version(g->inf) < 0 ? 200 : 0);
        if (ens_inference_plan_version(g->inf) >= 0) {
            rc = fill_batch(g, b, 100, &g->pipe->carry) != ENS_OK;
            if (!rc && b->n > 0)
                rc = compute_batch(g, b, 0) != ENS_OK;
            if (!rc && b->n > 0)
                rc = finish_batch(g, b, 0) != ENS_OK;
            rc |= g->pipe->fatal; /* a failed drain */
            release_batch(b);
        }
        ens_svc_lag_update(g->requests);
        housekeeping(g);
    }
    return rc;
}

ens_err_t ens_serve_new(ens_conf_t *conf, ens_redis_t *redis, ens_kafka_t *producer,
                        ens_inference_t *inf, volatile sig_atomic_t *stop, ens_serve_t **out) {
    ens_serve_t *g = calloc(1, sizeof *g);
    *out = g;
    if (!g)
        return ENS_ERR_NOMEM;
    g->conf = conf;
    g->redis = redis;
    if (redis && ens_state_redis_new(redis, NULL, &g->state)) {
        free(g);
        *out = NULL;
        return ENS_ERR_NOMEM;
    }
    g->producer = producer;
    g->inf = inf;
    g->stop = stop;
    g->ranks = 1;
    g->max_batch = (int)ens_conf_int(g->conf, "max-batch");
    g->max_wait_us = (int)ens_conf_int(g->conf, "max-wait-us");
    g->queue_kbytes = (int)ens_conf_int(g->conf, "queue-kbytes");
    g->overlap = (int)ens_conf_int(g->conf, "overlap");
    if (g->inf) {
        ens_inference_set_max_values(g->inf, ens_conf_int(g->conf, "max-request-values"));
        ens_inference_set_member_batch(g->inf, (int32_t)ens_conf_int(g->conf, "member-batch"));
    }
    if (*ens_conf_str(g->conf, "instance"))
        snprintf(g->instance, sizeof g->instance, "%s", ens_conf_str(g->conf, "instance"));
    else {
        char host[32] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(g->instance, sizeof g->instance, "%s-%d", host, (int)getpid());
    }
    static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
    g->m_batch = ens_metrics_histogram("ensflow_inference_batch_size", "requests per batch",
                                       batch_bounds, 12);
    g->m_latency = ens_metrics_histogram("ensflow_inference_request_seconds",
                                         "from a request's arrival to its acknowledged answer",
                                         NULL, 0);
    g->m_requests = ens_metrics_counter("ensflow_events_handled_total", "events handled");
    g->m_not_ok = ens_metrics_counter("ensflow_errors_total",
                                      "undecodable requests and ERROR or TIMEOUT answers");
    g->m_dlq = ens_metrics_counter("ensflow_dead_letters_total",
                                   "messages sent to the dead-letter topic");
    g->m_skipped = ens_metrics_counter("ensflow_inference_reanswers_skipped_total",
                                       "redelivered requests not answered again (answered "
                                       "before a rebalance or crash)");
    return ENS_OK;
}

void ens_serve_free(ens_serve_t *g) {
    if (g)
        ens_state_free(g->state);
    free(g);
}

void ens_serve_set_devices(ens_serve_t *g, int ranks, ens_serve_load_plan_fn load_plan,
                           void *ctx) {
    g->ranks = ranks;
    g->load_plan = load_plan;
    g->load_plan_ctx = ctx;
}

const char *ens_serve_instance(const ens_serve_t *g) { return g->instance; }
ens_inference_t *ens_serve_inference(const ens_serve_t *g) { return g->inf; }
ens_redis_t *ens_serve_redis(const ens_serve_t *g) { return g->redis; }

int ens_serve_run(ens_serve_t *g) {
    char errstr[512], group_id[128];
    const char *req_topics[] = {ENS_TOPIC_INFERENCE_REQUESTS};
    const char *plan_topics[] = {ENS_TOPIC_PLACEMENT_PLANS};
    /* every group sees every plan (its own consumer group); requests are shared */
    snprintf(group_id, sizeof group_id, "ensflow-inference-plans-%s", g->instance);
    /* the group's bounded queue: librdkafka prefetches at most queue-kbytes of requests
     * (queued.max.messages.kbytes) for this consumer only; an explicit
     * ENSFLOW_RDKAFKA_QUEUED_MAX_MESSAGES_KBYTES wins */
    static const char qenv[] = "ENSFLOW_RDKAFKA_QUEUED_MAX_MESSAGES_KBYTES";
    char qkb[32];
    int set_q = g->queue_kbytes > 0 && !getenv(qenv);
    snprintf(qkb, sizeof qkb, "%d", g->queue_kbytes);
    int fail = ens_kafka_consumer_new(g->conf, group_id, plan_topics, 1, 50, &g->plans, errstr,
                                      sizeof errstr) != ENS_OK;
    if (!fail && set_q && setenv(qenv, qkb, 1) != 0) {
        snprintf(errstr, sizeof errstr, "cannot set %s", qenv);
        fail = 1;
    }
    if (!fail)
        fail = ens_kafka_consumer_new(g->conf, ens_conf_str(g->conf, "group"), req_topics, 1,
                                      (int)ens_conf_int(g->conf, "fetch-wait-ms"), &g->requests,
                                      errstr, sizeof errstr) != ENS_OK;
    if (set_q)
        unsetenv(qenv);
    if (fail) {
        ENS_ERROR("msg=\"cannot consume\" error=\"%s\"", errstr);
        ens_kafka_free(g->plans);
        g->plans = NULL;
        return 1;
    }
    ens_serve_pipe_t pipe = {.mu = PTHREAD_MUTEX_INITIALIZER,
                             .full = PTHREAD_COND_INITIALIZER,
                             .freed = PTHREAD_COND_INITIALIZER};
    pipe.compute_alive_us = ens_serve_mono_us();
    g->pipe = &pipe;
    int rc = pipe_alloc(&pipe, g->max_batch);
    if (rc)
        ENS_ERROR("msg=\"out of memory for %d batches of %d\"", N_SLOTS, g->max_batch);
    ens_serve_load_current_plan(g);
    ens_serve_register_devices(g, 0);
    ENS_INFO("msg=\"inference up\" instance=%s max_batch=%d max_wait_us=%d overlap=%d "
             "plan_version=%lld",
             g->instance, g->max_batch, g->max_wait_us, g->overlap,
             (long long)ens_inference_plan_version(g->inf));
    if (!rc)
        ens_serve_answered_open(&pipe.answered, g->conf);
    ens_kafka_on_revoke(g->requests, drain, g);
    pthread_t io;
    if (!rc && g->overlap) {
        if (pthread_create(&io, NULL, io_loop, g) != 0) {
            ENS_ERROR("msg=\"cannot start the I/O thread\"");
            rc = 1;
        } else {
            pthread_setname_np(io, "ens-io"); /* names threads in top -H; best effort */
            rc = compute_loop(g);
            pthread_join(io, NULL);
        }
    } else if (!rc)
        rc = serial_loop(g);
    for (int i = 0; i < N_SLOTS; i++) /* after a fatal error: not committed, redelivered */
        if (pipe.slot[i].msgs)
            release_batch(&pipe.slot[i]);
    ens_kafka_msg_free(pipe.carry);
    ens_serve_answered_close(&pipe.answered);
    /* what was in hand is answered or given back: leaving the group needs no drain */
    ens_kafka_on_revoke(g->requests, NULL, NULL);
    pipe_release(&pipe);
    g->pipe = NULL;
    ens_serve_register_devices(g, 1);
    ens_kafka_free(g->requests);
    ens_kafka_free(g->plans);
    g->requests = g->plans = NULL;
    return rc;
}
