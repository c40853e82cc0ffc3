/* serve.c - an inference group's loop: plans from Kafka (and Redis at start), requests
 * batched from Kafka, combined answers produced, offsets committed after the answers. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "serve.h"

#include <dirent.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ensflow/cgroup.h"
#include "ensflow/log.h"
#include "ensflow/registry.h"
#include "ensflow/svc.h"

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CPU seconds of this process's serving threads outside the prediction: the I/O thread and
 * librdkafka's threads (named "ens-io" and "rdk:..."; Linux). -1 when unreadable. */
static double serving_cpu_s(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -1;
    long tck = sysconf(_SC_CLK_TCK);
    double total = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.')
            continue;
        char path[96], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.32s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = 0;
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close || close < open)
            continue;
        *close = 0;
        const char *name = open + 1;
        if (strcmp(name, "ens-io") && strncmp(name, "rdk:", 4))
            continue;
        unsigned long ut = 0, st = 0; /* fields 14 and 15: utime, stime */
        if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) ==
            2)
            total += (double)(ut + st) / (double)(tck > 0 ? tck : 100);
    }
    closedir(dir);
    return total;
}

/* The group's serving overhead per request, what the placer adds to each device's predicted
 * load: looked at every 0.5 s, measured over windows of at least 200 requests, smoothed; a
 * window in which nothing was served starts afresh, so idle polling is not charged. */
static void measure_overhead(ens_serve_t *g) {
    int64_t now = mono_us();
    if (now - g->overhead_checked_us < 500000)
        return;
    g->overhead_checked_us = now;
    double cpu = serving_cpu_s(), served = ens_metrics_value(g->m_requests);
    if (cpu < 0)
        return;
    double n = served - g->overhead_requests;
    if (g->overhead_started && n >= 200) {
        double ms = 1e3 * (cpu - g->overhead_cpu_s) / n;
        if (ms >= 0)
            g->overhead_ms = g->overhead_ms > 0 ? 0.5 * g->overhead_ms + 0.5 * ms : ms;
    }
    if (!g->overhead_started || n >= 200 || n <= 0) {
        g->overhead_cpu_s = cpu;
        g->overhead_requests = served;
        g->overhead_started = 1;
    }
}

/* The id of the group's device r (rank r of an MPI group, thread r of a local one). */
static void device_name(const ens_serve_t *g, int r, char *buf, size_t size) {
    snprintf(buf, size, "%.40s-r%d", g->instance, r);
}

/* Announce this group's devices (one CPU slot per rank) every few seconds; gone on exit. */
static void register_devices(ens_serve_t *g, int leaving) {
    char errstr[256];
    int64_t now = mono_us();
    if (!leaving && now - g->registered_us < 5000000)
        return;
    g->registered_us = now;
    /* what this pod may use (cgroup limits, affinity mask), not the node's cores and memory */
    int64_t memory = ens_cgroup_memory(NULL);
    long cores = ens_cgroup_cpus(NULL);
    int ranks = g->ranks > 0 ? g->ranks : 1;
    for (int r = 0; r < ranks; r++) {
        ens_device_t d = {.memory_bytes = memory / ranks,
                          .cores = (int32_t)(cores > ranks ? cores / ranks : 1),
                          .overhead_ms = g->overhead_ms / ranks,
                          .speed = g->speed};
        device_name(g, r, d.device_id, sizeof d.device_id);
        snprintf(d.kind, sizeof d.kind, "cpu");
        snprintf(d.worker, sizeof d.worker, "%s", g->instance);
        ens_err_t err = leaving ? ens_registry_remove(g->redis, d.device_id, errstr, sizeof errstr)
                                : ens_registry_heartbeat(g->redis, &d, 15, errstr, sizeof errstr);
        if (err)
            ENS_WARN("msg=\"device registry not updated\" device=%s error=\"%s\"", d.device_id,
                     errstr);
    }
}

/* The compute per sample the profiles give this group under plan `version`: its
 * slowest device's (they work in parallel on each batch); 0 when the plan has none of them. */
static double predicted_compute_ms(ens_serve_t *g, int64_t version) {
    char errstr[256];
    double worst = 0;
    for (int r = 0; r < (g->ranks > 0 ? g->ranks : 1); r++) {
        char device[ENS_ID_MAX];
        device_name(g, r, device, sizeof device);
        redisReply *rep = ens_redis_command(g->redis, errstr, sizeof errstr,
                                            "HGET ens:plan:%lld:compute %s", (long long)version,
                                            device);
        double ms = rep && rep->type == REDIS_REPLY_STRING ? strtod(rep->str, NULL) : 0;
        if (ms > worst && ms < 1e6)
            worst = ms;
        ens_redis_reply_free(rep);
    }
    return worst;
}

/* The group's speed against the placer's prediction, which the placer then uses: the wall
 * time from one batch's start to the next's (us) for the first one's rows, counted only while
 * the group is busy (the next batch was full when the compute thread came for it), on batches
 * at least half full (small ones cost more per sample), over windows of 256 samples,
 * smoothed. So it is the group's capacity where it serves: devices contending with each
 * other, and whatever else takes the cores (the group's own Kafka I/O, the broker, a client
 * on the same machine) count. Only with overlap: the serial loop's device idles during its
 * I/O, which the overhead term models. */
static void measure_speed(ens_serve_t *g, int rows, int64_t us) {
    if (!g->overlap || g->predicted_ms <= 0 || rows < (g->max_batch + 1) / 2)
        return;
    g->speed_us += (double)us;
    g->speed_rows += rows;
    if (g->speed_rows < 256)
        return;
    double s = g->predicted_ms / (g->speed_us / 1e3 / g->speed_rows);
    if (s > 0 && s < 1e3)
        g->speed = g->speed > 0 ? 0.5 * g->speed + 0.5 * s : s;
    ENS_DEBUG("speed", "msg=\"speed measured\" window=%.3f speed=%.3f", s, g->speed);
    g->speed_us = g->speed_rows = 0;
}

/* Load a plan if it is newer than the one in force and say so in Redis. */
static void apply_plan(ens_serve_t *g, const ens_placement_plan_t *plan) {
    char errstr[512], key[256];
    if (plan->version <= ens_inference_plan_version(g->inf))
        return;
    ens_err_t err = g->load_plan ? g->load_plan(g->load_plan_ctx, g, plan, errstr, sizeof errstr)
                                 : ens_inference_load_plan(g->inf, g->redis, plan, errstr,
                                                           sizeof errstr);
    if (err) {
        ENS_ERROR("msg=\"plan not loaded, keeping the previous one\" plan=%s error=\"%s\"",
                  plan->plan_id, errstr);
        return;
    }
    /* the speed measured under the old plan stays until the new one is measured */
    g->predicted_ms = predicted_compute_ms(g, plan->version);
    g->speed_us = g->speed_rows = 0;
    g->cycle_start_us = 0; /* the load is not part of a batch's cycle */
    ENS_INFO("msg=\"serving plan\" plan=%s predicted_compute_ms=%.6g", plan->plan_id,
             g->predicted_ms);
    ens_key(key, sizeof key, plan->study_id, "serving");
    if (ens_redis_exec(g->redis, errstr, sizeof errstr, "HSET %s %s %lld", key, g->instance,
                       (long long)plan->version))
        ENS_WARN("msg=\"cannot record serving version\" error=\"%s\"", errstr);
}

/* The plan in force before this process started (so a restart serves at once). */
static void load_current_plan(ens_serve_t *g) {
    char errstr[512];
    redisReply *rep = ens_redis_command(g->redis, errstr, sizeof errstr, "GET ens:plan:current");
    ens_event_t ev;
    if (rep && rep->type == REDIS_REPLY_STRING &&
        ens_event_decode((const uint8_t *)rep->str, rep->len, &ev, errstr, sizeof errstr) ==
            ENS_OK) {
        if (ev.type == ENS_EV_PLACEMENT_PLAN)
            apply_plan(g, &ev.u.placement_plan);
        ens_event_free(&ev);
    }
    ens_redis_reply_free(rep);
}

static void poll_plans(ens_serve_t *g, int timeout_ms) {
    ens_kafka_msg_t *m = NULL;
    char errstr[512];
    while (ens_kafka_poll(g->plans, timeout_ms, &m) == ENS_OK) {
        size_t len;
        const uint8_t *p = ens_kafka_msg_payload(m, &len);
        ens_event_t ev;
        if (ens_event_decode(p, len, &ev, errstr, sizeof errstr) == ENS_OK) {
            if (ev.type == ENS_EV_PLACEMENT_PLAN)
                apply_plan(g, &ev.u.placement_plan);
            ens_event_free(&ev);
        } else
            ENS_WARN("msg=\"undecodable plan ignored\" error=\"%s\"", errstr);
        ens_kafka_msg_free(m);
        timeout_ms = 0;
    }
}

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

/* Answered offsets, per request partition, in Redis (ens:serving:answered:<consumer group>,
 * field "<topic>/<partition>" = the last answered offset). Kafka's commit can fail while a
 * rebalance is under way (the embedded broker refuses commits from the moment a group starts
 * to rebalance), and a process can die between an answer and its commit; the next owner of
 * the partition then skips what was answered instead of answering it again. */
#define MAX_PARTS 256
typedef struct {
    ens_redis_t *redis; /* the I/O thread's own connection (hiredis is not thread-safe) */
    char key[192];
    int64_t last[MAX_PARTS]; /* last answered offset; -1 none */
    int loaded[MAX_PARTS];   /* drains + 1 when last[] was read for this assignment */
} answered_t;

struct ens_serve_pipe_s {
    batch_t slot[N_SLOTS];
    answered_t answered;
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

/* m's field in the answered-offsets hash: "<topic>/<partition>". */
static void answered_field(const ens_kafka_msg_t *m, char *buf, size_t size) {
    snprintf(buf, size, "%.256s/%d", ens_kafka_msg_topic(m), (int)ens_kafka_msg_partition(m));
}

/* Was m answered before (by this group or one that owned its partition)? The partition's
 * last answered offset is read once per assignment, and trusted only while the group has a
 * committed offset there: a broker that lost its log (the embedded one keeps nothing across
 * a restart) or a recreated topic numbers from 0 again, and a stale offset would then skip
 * requests nobody answered. Without a commit the stale entry is deleted: at worst a request
 * is answered twice, never lost. Unknown (no Redis, no broker answer) counts as not. */
static int answered_before(ens_serve_t *g, const ens_kafka_msg_t *m) {
    answered_t *a = &g->pipe->answered;
    int32_t part = ens_kafka_msg_partition(m);
    if (!a->redis || part < 0 || part >= MAX_PARTS)
        return 0;
    if (a->loaded[part] != g->pipe->drains + 1) {
        char errstr[256], field[288];
        const char *topic = ens_kafka_msg_topic(m);
        answered_field(m, field, sizeof field);
        int64_t committed = -1;
        a->last[part] = -1;
        a->loaded[part] = g->pipe->drains + 1;
        if (ens_kafka_committed(g->requests, topic, part, 5000, &committed) != ENS_OK) {
            ENS_WARN("msg=\"committed offset not read: not skipping\" partition=%d", (int)part);
            return 0;
        }
        redisReply *rep = ens_redis_command(
            a->redis, errstr, sizeof errstr, committed < 0 ? "HDEL %s %s" : "HGET %s %s",
            a->key, field);
        if (!rep)
            ENS_WARN("msg=\"answered offsets not read\" error=\"%s\"", errstr);
        else if (committed >= 0 && rep->type == REDIS_REPLY_STRING)
            a->last[part] = strtoll(rep->str, NULL, 10);
        ens_redis_reply_free(rep);
        ENS_DEBUG("offsets",
                  "msg=\"answered offset read\" partition=%d committed=%lld answered=%lld "
                  "offset=%lld",
                  (int)part, (long long)committed, (long long)a->last[part],
                  (long long)ens_kafka_msg_offset(m));
    }
    return ens_kafka_msg_offset(m) <= a->last[part];
}

/* HSET key field offset unless the hash holds a larger one: a group draining partitions it
 * has already lost must not move the next owner's record back. */
static const char raise_script[] =
    "local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') "
    "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
    "return 0";

/* Record m, the last message of its partition in an answered batch (its answers acked), as
 * that partition's last answered offset. */
static void record_answered(ens_serve_t *g, const ens_kafka_msg_t *m) {
    answered_t *a = &g->pipe->answered;
    int32_t part = ens_kafka_msg_partition(m);
    if (!a->redis || part < 0 || part >= MAX_PARTS)
        return;
    char errstr[256], field[288];
    int64_t off = ens_kafka_msg_offset(m);
    answered_field(m, field, sizeof field);
    if (ens_redis_exec(a->redis, errstr, sizeof errstr, "EVAL %s 1 %s %s %lld", raise_script,
                       a->key, field, (long long)off)) {
        ENS_WARN("msg=\"answered offset not recorded\" error=\"%s\"", errstr);
        return;
    }
    if (off > a->last[part]) /* raised only, as in Redis: a batch of skipped requests */
        a->last[part] = off; /* finishes while later ones, up to last, are being taken */
    if (ens_log_enabled(ENS_LOG_DEBUG, "offsets")) {
        size_t klen = 0;
        const char *key = ens_kafka_msg_key(m, &klen);
        ENS_DEBUG("offsets",
                  "msg=\"answered offset recorded\" partition=%d offset=%lld key=%.*s",
                  (int)part, (long long)off, key ? (int)(klen < 64 ? klen : 64) : 0,
                  key ? key : "");
    }
}

/* Take message m into b: skip it if it was answered, decode it, or send it to the
 * dead-letter topic. */
static ens_err_t take_request(ens_serve_t *g, batch_t *b, ens_kafka_msg_t *m) {
    char errstr[512];
    int n = b->n;
    b->msgs[n] = m;
    b->recv_us[n] = mono_us();
    if (n == 0)
        b->first = b->recv_us[n];
    if (answered_before(g, m)) { /* committed with the batch, not answered again */
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
            int64_t left = g->max_wait_us - (mono_us() - b->first);
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
    b->t_run = mono_us();
    if (busy && g->cycle_start_us > 0)
        measure_speed(g, g->cycle_rows, b->t_run - g->cycle_start_us);
    g->cycle_start_us = b->t_run;
    g->cycle_rows = b->n_valid;
    ens_err_t err = ens_inference_run(g->inf, b->valid, b->n_valid, ens_now_ms(), b->resps);
    b->t_ran = mono_us();
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
    int64_t t_produce = mono_us();
    for (int i = 0; !err && i < b->n_valid; i++)
        err = ens_kafka_produce_event(g->producer, ENS_TOPIC_INFERENCE_RESPONSES,
                                      b->valid[i]->request_id, &b->resps[i], NULL, errstr,
                                      sizeof errstr);
    int64_t t_flush = mono_us();
    if (!err)
        err = ens_kafka_flush(g->producer, 30000, errstr, sizeof errstr);
    int64_t t_done = mono_us();
    /* the last message of each partition: once the answers are acked, its offset recorded as
     * answered (every partition's, whatever a commit does), and committed */
    int acked = !err;
    for (int i = b->n - 1; acked && i >= 0; i--) {
        int later = 0;
        for (int j = i + 1; j < b->n; j++)
            later |= ens_kafka_msg_partition(b->msgs[j]) == ens_kafka_msg_partition(b->msgs[i]);
        if (later)
            continue;
        record_answered(g, b->msgs[i]);
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
    measure_overhead(g);
    register_devices(g, 0);
}

/* The I/O thread's liveness beat, withheld while the compute thread has not taken a turn for
 * 30 s with work waiting: /healthz then goes stale whichever thread is stuck. */
static void io_heartbeat(ens_serve_pipe_t *p) {
    pthread_mutex_lock(&p->mu);
    int stuck = p->outstanding > 0 && mono_us() - p->compute_alive_us > 30000000;
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
    int64_t t0 = mono_us();
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
             (double)(mono_us() - t0) / 1e3, !p->fatal);
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
        poll_plans(g, planless ? 200 : 0);
        pthread_mutex_lock(&p->mu);
        p->have_plan = ens_inference_plan_version(g->inf) >= 0;
        if (p->have_plan)
            pthread_cond_broadcast(&p->freed);
        int busy = p->slot[next].state == SLOT_FULL; /* no wait for work */
        if (!busy && !p->io_exited)
            timed_wait(&p->full, &p->mu, 50);
        /* after a fatal error nothing more is computed: the I/O thread is leaving */
        int run = p->slot[next].state == SLOT_FULL && !p->fatal, done = p->io_exited;
        p->compute_alive_us = mono_us();
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
        poll_plans(g, ens_inference_plan_version(g->inf) < 0 ? 200 : 0);
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

void ens_serve_init(ens_serve_t *g) {
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
}

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
    pipe.compute_alive_us = mono_us();
    g->pipe = &pipe;
    int rc = pipe_alloc(&pipe, g->max_batch);
    if (rc)
        ENS_ERROR("msg=\"out of memory for %d batches of %d\"", N_SLOTS, g->max_batch);
    load_current_plan(g);
    register_devices(g, 0);
    ENS_INFO("msg=\"inference up\" instance=%s max_batch=%d max_wait_us=%d overlap=%d "
             "plan_version=%lld",
             g->instance, g->max_batch, g->max_wait_us, g->overlap,
             (long long)ens_inference_plan_version(g->inf));
    char url[512];
    snprintf(pipe.answered.key, sizeof pipe.answered.key, "ens:serving:answered:%s",
             ens_conf_str(g->conf, "group"));
    ens_conf_redis_url(g->conf, url, sizeof url);
    if (!rc && ens_redis_connect(url, &pipe.answered.redis, errstr, sizeof errstr) != ENS_OK)
        ENS_WARN("msg=\"no Redis connection for answered offsets: a rebalance may answer "
                 "requests twice\" error=\"%s\"",
                 errstr);
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
    ens_redis_free(pipe.answered.redis);
    /* what was in hand is answered or given back: leaving the group needs no drain */
    ens_kafka_on_revoke(g->requests, NULL, NULL);
    pipe_release(&pipe);
    g->pipe = NULL;
    register_devices(g, 1);
    ens_kafka_free(g->requests);
    ens_kafka_free(g->plans);
    g->requests = g->plans = NULL;
    return rc;
}
