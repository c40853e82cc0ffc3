/* serve_plan.c - an inference group's plan and devices: the plan in force at start (Redis),
 * newer plans followed from Kafka, the group's devices announced in the registry. */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "ensflow/cgroup.h"
#include "ensflow/log.h"

/* The id of the group's device r (rank r of an MPI group, thread r of a local one). */
static void device_name(const ens_serve_t *g, int r, char *buf, size_t size) {
    snprintf(buf, size, "%.40s-r%d", g->instance, r);
}

/* Announce this group's devices (one CPU slot per rank) every few seconds; gone on exit. */
void ens_serve_register_devices(ens_serve_t *g, int leaving) {
    char errstr[256];
    int64_t now = ens_serve_mono_us();
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
        ens_err_t err = leaving
                            ? ens_state_device_remove(g->state, d.device_id, errstr, sizeof errstr)
                            : ens_state_device_put(g->state, &d, 15, errstr, sizeof errstr);
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
        double ms = 0;
        if (ens_state_plan_compute_get(g->state, version, device, &ms, errstr, sizeof errstr))
            ms = 0;
        if (ms > worst && ms < 1e6)
            worst = ms;
    }
    return worst;
}

/* Load a plan if it is newer than the one in force and say so in the state. */
static void apply_plan(ens_serve_t *g, const ens_placement_plan_t *plan) {
    char errstr[512];
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
    if (ens_state_serving_put(g->state, plan->study_id, g->instance, plan->version, errstr,
                              sizeof errstr))
        ENS_WARN("msg=\"cannot record serving version\" error=\"%s\"", errstr);
}

/* The plan in force before this process started (so a restart serves at once). */
void ens_serve_load_current_plan(ens_serve_t *g) {
    char errstr[512];
    ens_event_t ev;
    if (ens_state_plan_get(g->state, NULL, &ev, errstr, sizeof errstr) == ENS_OK) {
        apply_plan(g, &ev.u.placement_plan);
        ens_event_free(&ev);
    }
}

void ens_serve_poll_plans(ens_serve_t *g, int timeout_ms) {
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
