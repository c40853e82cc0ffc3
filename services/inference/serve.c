/* serve.c - an inference group's loop: plans from Kafka (and Redis at start), requests
 * batched from Kafka, combined answers produced, offsets committed after the answers. */
#include "serve.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ensflow/log.h"
#include "ensflow/registry.h"
#include "ensflow/svc.h"

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Announce this group's devices (one CPU slot per rank) every few seconds; gone on exit. */
static void register_devices(ens_serve_t *g, int leaving) {
    char errstr[256];
    int64_t now = mono_us();
    if (!leaving && now - g->registered_us < 5000000)
        return;
    g->registered_us = now;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int ranks = g->ranks > 0 ? g->ranks : 1;
    for (int r = 0; r < ranks; r++) {
        ens_device_t d = {.memory_bytes = pages > 0 && page > 0 ? (int64_t)pages * page / ranks : 0,
                          .cores = (int32_t)(cores > ranks ? cores / ranks : 1)};
        snprintf(d.device_id, sizeof d.device_id, "%.40s-r%d", g->instance, r);
        snprintf(d.kind, sizeof d.kind, "cpu");
        snprintf(d.worker, sizeof d.worker, "%s", g->instance);
        ens_err_t err = leaving ? ens_registry_remove(g->redis, d.device_id, errstr, sizeof errstr)
                                : ens_registry_heartbeat(g->redis, &d, 15, errstr, sizeof errstr);
        if (err)
            ENS_WARN("msg=\"device registry not updated\" device=%s error=\"%s\"", d.device_id,
                     errstr);
    }
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

/* One batch: up to max_batch requests, waiting at most max_wait_us after the first. */
static ens_err_t serve_batch(ens_serve_t *g, ens_kafka_msg_t **msgs, ens_event_t *reqs,
                             ens_event_t *resps, const ens_inference_request_t **valid) {
    char errstr[512];
    int n = 0, n_valid = 0;
    int64_t first = 0;
    while (n < g->max_batch && !*g->stop) {
        int wait_ms = 100;
        if (n > 0) {
            int64_t left = g->max_wait_us - (mono_us() - first);
            if (left <= 0)
                break;
            wait_ms = (int)((left + 999) / 1000);
        }
        ens_err_t err = ens_kafka_poll(g->requests, wait_ms, &msgs[n]);
        ens_metrics_heartbeat();
        if (err != ENS_OK)
            break;
        g->recv_us[n] = mono_us();
        if (n == 0)
            first = g->recv_us[n];
        size_t len;
        const uint8_t *p = ens_kafka_msg_payload(msgs[n], &len);
        if (ens_kafka_msg_oversized(g->requests, msgs[n], errstr, sizeof errstr))
            err = ENS_ERR_INVALID;
        else
            err = ens_event_decode(p, len, &reqs[n], errstr, sizeof errstr);
        if (!err && reqs[n].type != ENS_EV_INFERENCE_REQUEST) {
            snprintf(errstr, sizeof errstr, "%s is not an InferenceRequest",
                     ens_event_type_name(reqs[n].type));
            ens_event_free(&reqs[n]);
            err = ENS_ERR_INVALID;
        }
        if (err) {
            reqs[n].type = ENS_EV__COUNT; /* marks "no request here" */
            ens_metrics_add(g->m_dlq, 1);
            ens_metrics_add(g->m_not_ok, 1);
            if ((err = ens_kafka_dead_letter(g->producer, msgs[n], "inference", errstr, errstr,
                                             sizeof errstr)))
                return err;
        } else
            valid[n_valid++] = &reqs[n].u.inference_request;
        n++;
    }
    if (n == 0)
        return ENS_OK;
    int64_t t_run = mono_us();
    ens_err_t err = ens_inference_run(g->inf, valid, n_valid, ens_now_ms(), resps);
    int64_t t_produce = mono_us();
    for (int i = 0; !err && i < n_valid; i++)
        err = ens_kafka_produce_event(g->producer, ENS_TOPIC_INFERENCE_RESPONSES,
                                      valid[i]->request_id, &resps[i], NULL, errstr,
                                      sizeof errstr);
    int64_t t_flush = mono_us();
    if (!err)
        err = ens_kafka_flush(g->producer, 30000, errstr, sizeof errstr);
    int64_t t_done = mono_us();
    /* commit the last message of each partition of the batch, after the answers are out */
    for (int i = n - 1; !err && i >= 0; i--) {
        int later = 0;
        for (int j = i + 1; j < n; j++)
            later |= ens_kafka_msg_partition(msgs[j]) == ens_kafka_msg_partition(msgs[i]);
        if (!later)
            err = ens_kafka_commit(g->requests, msgs[i], 1, errstr, sizeof errstr);
    }
    if (err)
        ENS_ERROR("msg=\"batch not acknowledged\" error=\"%s\"", errstr);
    else {
        ens_metrics_observe(g->m_batch, n);
        ens_metrics_add(g->m_requests, (uint64_t)n_valid);
        for (int i = 0; i < n_valid; i++)
            if (resps[i].u.inference_response.status != ENS_RESPONSE_OK)
                ens_metrics_add(g->m_not_ok, 1);
        for (int i = 0; i < n; i++)
            ens_metrics_observe(g->m_latency, (double)(t_done - g->recv_us[i]) / 1e6);
    }
    if (!err)
        ENS_DEBUG("batch",
                  "msg=\"batch served\" size=%d valid=%d fill_us=%lld run_us=%lld "
                  "produce_us=%lld flush_us=%lld",
                  n, n_valid, (long long)(t_run - first), (long long)(t_produce - t_run),
                  (long long)(t_flush - t_produce), (long long)(t_done - t_flush));
    for (int i = 0; i < n; i++) {
        if (reqs[i].type != ENS_EV__COUNT)
            ens_event_free(&reqs[i]);
        ens_kafka_msg_free(msgs[i]);
    }
    for (int i = 0; i < n_valid; i++)
        ens_event_free(&resps[i]);
    return err;
}

void ens_serve_init(ens_serve_t *g) {
    g->max_batch = (int)ens_conf_int(g->conf, "max-batch");
    g->max_wait_us = (int)ens_conf_int(g->conf, "max-wait-us");
    g->queue_kbytes = (int)ens_conf_int(g->conf, "queue-kbytes");
    if (g->inf)
        ens_inference_set_max_values(g->inf, ens_conf_int(g->conf, "max-request-values"));
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
    ens_kafka_msg_t **msgs = calloc((size_t)g->max_batch, sizeof *msgs);
    ens_event_t *reqs = calloc((size_t)g->max_batch, sizeof *reqs);
    ens_event_t *resps = calloc((size_t)g->max_batch, sizeof *resps);
    const ens_inference_request_t **valid = calloc((size_t)g->max_batch, sizeof *valid);
    g->recv_us = calloc((size_t)g->max_batch, sizeof *g->recv_us);
    int rc = msgs && reqs && resps && valid && g->recv_us ? 0 : 1;
    load_current_plan(g);
    register_devices(g, 0);
    ENS_INFO("msg=\"inference up\" instance=%s max_batch=%d max_wait_us=%d plan_version=%lld",
             g->instance, g->max_batch, g->max_wait_us,
             (long long)ens_inference_plan_version(g->inf));
    while (!*g->stop && !rc) {
        /* without a plan, requests wait in Kafka rather than get error answers */
        poll_plans(g, ens_inference_plan_version(g->inf) < 0 ? 200 : 0);
        if (ens_inference_plan_version(g->inf) >= 0 && serve_batch(g, msgs, reqs, resps, valid))
            rc = 1;
        ens_metrics_heartbeat();
        ens_svc_lag_update(g->requests);
        register_devices(g, 0);
    }
    register_devices(g, 1);
    free(g->recv_us);
    g->recv_us = NULL;
    ens_kafka_free(g->requests);
    ens_kafka_free(g->plans);
    g->requests = g->plans = NULL;
    free(msgs);
    free(reqs);
    free(resps);
    free(valid);
    return rc;
}

