/* placer.c - the placement plan of the ensemble a deploy command chooses. */
#include "placer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/ensemble.h"
#include "ensflow/log.h"

ens_err_t ens_placer_plan(const ens_placer_t *p, const char *study_id, const ens_ensemble_t *e,
                          int64_t version, ens_event_t *plan) {
    ens_placement_plan_t *pl = &plan->u.placement_plan;
    snprintf(pl->study_id, sizeof pl->study_id, "%s", study_id);
    snprintf(pl->ensemble_id, sizeof pl->ensemble_id, "%s", e->ensemble_id);
    snprintf(pl->plan_id, sizeof pl->plan_id, "plan-v%lld", (long long)version);
    pl->version = version;
    pl->members = calloc((size_t)(e->n_members ? e->n_members : 1), sizeof *pl->members);
    if (!pl->members)
        return ENS_ERR_NOMEM;
    pl->n_members = e->n_members;
    for (int i = 0; i < e->n_members; i++) {
        ens_placement_t *m = &pl->members[i];
        snprintf(m->model_id, sizeof m->model_id, "%s", e->members[i]);
        m->weight = e->weights[i];
        snprintf(m->device, sizeof m->device, "%s", p->device);
        m->instances = 1;
        m->batch_size = p->batch_size;
    }
    /* one process runs the members one after another */
    pl->predicted_throughput =
        e->cost_ms_per_sample > 0 ? 1000.0 / e->cost_ms_per_sample : 0;
    return ENS_OK;
}

ens_err_t ens_placer_plan_allocated(const char *study_id, const ens_ensemble_t *e,
                                    int64_t version, const ens_alloc_model_t *models,
                                    const ens_alloc_device_t *devices, int n_devices,
                                    ens_event_t *plan, double *compute_ms, char *errstr,
                                    size_t errstr_size) {
    ens_alloc_t a;
    ens_err_t err = ens_alloc_optimise(models, e->n_members, devices, n_devices, 1000, &a,
                                       errstr, errstr_size);
    if (err)
        return err;
    ens_placement_plan_t *pl = &plan->u.placement_plan;
    snprintf(pl->study_id, sizeof pl->study_id, "%s", study_id);
    snprintf(pl->ensemble_id, sizeof pl->ensemble_id, "%s", e->ensemble_id);
    snprintf(pl->plan_id, sizeof pl->plan_id, "plan-v%lld", (long long)version);
    pl->version = version;
    int rows = 0;
    for (int i = 0; i < a.n_devices * a.n_models; i++)
        rows += a.instances[i] > 0;
    pl->members = calloc((size_t)(rows ? rows : 1), sizeof *pl->members);
    if (!pl->members) {
        ens_alloc_free(&a);
        return ENS_ERR_NOMEM;
    }
    /* rows in member order, so that the first row of a model names its first device */
    for (int m = 0; m < a.n_models; m++)
        for (int d = 0; d < a.n_devices; d++) {
            int c = d * a.n_models + m;
            if (a.instances[c] <= 0)
                continue;
            ens_placement_t *row = &pl->members[pl->n_members++];
            snprintf(row->model_id, sizeof row->model_id, "%s", e->members[m]);
            row->weight = e->weights[m];
            snprintf(row->device, sizeof row->device, "%s", devices[d].device_id);
            row->instances = a.instances[c];
            row->batch_size = ens_alloc_batch_sizes[a.batch_idx[c]];
        }
    pl->predicted_throughput = a.throughput;
    if (compute_ms && ens_alloc_loads(&a, models, devices, compute_ms))
        for (int d = 0; d < n_devices; d++)
            compute_ms[d] *= 1e3;
    ens_alloc_free(&a);
    return ENS_OK;
}

/* Each member's cost profile from its evaluation; missing batch sizes stay unmeasured. */
static ens_err_t load_profiles(ens_state_t *state, const char *study, const ens_ensemble_t *e,
                               ens_alloc_model_t *models, char *errstr, size_t size) {
    for (int i = 0; i < e->n_members; i++) {
        ens_state_eval_t ev; /* a member without its record: an unmeasured profile */
        ens_err_t err = ens_state_eval_get(state, study, e->members[i], &ev, errstr, size);
        if (err && err != ENS_ERR_NOTFOUND)
            return err;
        ens_alloc_model_t *m = &models[i];
        memset(m, 0, sizeof *m);
        m->model_id = e->members[i];
        for (int b = 0; b < ENS_ALLOC_BATCHES; b++) {
            m->ms_per_sample[b] = ev.ms_per_sample_b[b];
            if (ev.ms_per_sample_b[b] <= 0 && ev.batch_size == ens_alloc_batch_sizes[b])
                m->ms_per_sample[b] = ev.ms_per_sample; /* an older evaluation: one batch */
        }
        /* weights are 4 bytes a parameter; the rest of the measured memory grows with the
         * batch it was measured at */
        m->weights_bytes = ev.n_params * 4;
        m->activation_bytes_per_sample =
            ev.batch_size > 0 && ev.memory_bytes > m->weights_bytes
                ? (ev.memory_bytes - m->weights_bytes) / ev.batch_size
                : 0;
    }
    return ENS_OK;
}

/* Each device's predicted compute per sample under plan `version` at the profiles' speed
 * (its load times the speed the plan assumed for it), for its group to compare with what it
 * measures: the ratio is then the device's own speed, not one relative to the last guess
 * (kept a week: a group reads it when it takes the plan up). A side table: failing to write
 * it only leaves the speed unmeasured. */
static void store_compute(ens_state_t *state, int64_t version, const ens_alloc_device_t *devs,
                          const double *compute_ms, int n) {
    char errstr[256];
    const char **ids = calloc((size_t)n + 1, sizeof *ids);
    double *ms = calloc((size_t)n + 1, sizeof *ms);
    ens_err_t err = ids && ms ? ENS_OK : ens_err_set(errstr, sizeof errstr, ENS_ERR_NOMEM,
                                                     "out of memory");
    for (int d = 0; !err && d < n; d++) {
        ids[d] = devs[d].device_id;
        ms[d] = compute_ms[d] > 0 ? compute_ms[d] * devs[d].speed : 0;
    }
    if (!err)
        err = ens_state_plan_compute_put(state, version, ids, ms, n, errstr, sizeof errstr);
    free(ids);
    free(ms);
    if (err)
        ENS_WARN("msg=\"predicted compute not stored: devices will not measure their speed\" "
                 "version=%lld error=\"%s\"",
                 (long long)version, errstr);
}

/* The plan for e: allocated over the registered devices, or on p->device when none is. */
static ens_err_t make_plan(ens_placer_t *p, const char *study, const ens_ensemble_t *e,
                           int64_t version, ens_event_t *plan, char *errstr, size_t size) {
    ens_device_t *devs = NULL;
    int n = 0;
    ens_err_t err = ens_state_device_list(p->state, &devs, &n, errstr, size);
    if (err)
        return err;
    if (n == 0) {
        ENS_INFO("study=%s msg=\"no device registered, placing on %s\"", study, p->device);
        return ens_placer_plan(p, study, e, version, plan);
    }
    ens_alloc_model_t *models = calloc((size_t)e->n_members, sizeof *models);
    ens_alloc_device_t *devices = calloc((size_t)n, sizeof *devices);
    double *compute_ms = calloc((size_t)n, sizeof *compute_ms);
    err = models && devices && compute_ms ? ENS_OK : ENS_ERR_NOMEM;
    for (int d = 0; !err && d < n; d++)
        devices[d] = (ens_alloc_device_t){devs[d].device_id, devs[d].memory_bytes,
                                          devs[d].speed > 0 ? devs[d].speed : 1.0,
                                          devs[d].overhead_ms, devs[d].speed > 0};
    if (!err)
        err = load_profiles(p->state, study, e, models, errstr, size);
    if (!err)
        err = ens_placer_plan_allocated(study, e, version, models, devices, n, plan,
                                        compute_ms, errstr, size);
    if (!err)
        store_compute(p->state, version, devices, compute_ms, n);
    free(compute_ms);
    free(models);
    free(devices);
    free(devs);
    return err;
}

ens_err_t ens_placer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_placer_t *p = ctx;
    if (ev->type != ENS_EV_DEPLOY_COMMAND)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "placer does not take %s",
                           ens_event_type_name(ev->type));
    const ens_deploy_command_t *cmd = &ev->u.deploy_command;
    ens_event_t plan;
    /* the same command again: produce the plan it made, not a new version */
    ens_err_t err =
        ens_state_deploy_get(p->state, cmd->study_id, ev->event_id, &plan, errstr, size);
    if (err && err != ENS_ERR_NOTFOUND)
        return err;
    if (err == ENS_ERR_NOTFOUND) {
        ens_event_t front;
        err = ens_state_front_get(p->state, cmd->study_id, &front, errstr, size);
        if (err == ENS_ERR_NOTFOUND)
            return ens_err_set(errstr, size, ENS_ERR_INVALID,
                               "study %s has no ensemble front yet", cmd->study_id);
        if (err)
            return err;
        int idx = 0;
        err = ens_ensemble_choose_front(&front.u.ensemble_front, cmd, &idx, errstr, size);
        if (err) {
            ens_event_free(&front);
            return err == ENS_ERR_NOTFOUND ? ENS_ERR_INVALID : err;
        }
        /* one counter for every study: groups load a plan only when it is newer */
        int64_t version = -1;
        err = ens_state_plan_version_next(p->state, &version, errstr, size);
        ens_event_init(&plan, ENS_EV_PLACEMENT_PLAN);
        if (!err)
            err = make_plan(p, cmd->study_id, &front.u.ensemble_front.ensembles[idx], version,
                            &plan, errstr, size);
        ens_event_free(&front);
        if (!err)
            err = ens_state_deploy_put(p->state, cmd->study_id, ev->event_id, &plan, errstr,
                                       size);
        if (err) {
            ens_event_free(&plan);
            return err;
        }
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_placement_plan_t *pl = &plan.u.placement_plan;
    err = ens_event_encode(&plan, &buf, &len, errstr, size);
    /* a redelivered older command re-sends its plan but must not roll back the plan in
     * force: groups ignore older versions, and so must the keys they start from */
    int64_t latest = 0;
    int is_latest = 0;
    if (!err) {
        err = ens_state_plan_version_get(p->state, &latest, errstr, size);
        is_latest = !err && latest <= pl->version;
        if (err == ENS_ERR_NOTFOUND)
            err = ENS_OK;
    }
    if (!err && is_latest)
        err = ens_state_plan_put(p->state, cmd->study_id, &plan, errstr, size);
    if (!err) {
        ENS_INFO("study=%s msg=\"plan\" plan=%s ensemble=%s version=%lld members=%d "
                 "predicted_rps=%.0f",
                 pl->study_id, pl->plan_id, pl->ensemble_id, (long long)pl->version,
                 (int)pl->n_members, pl->predicted_throughput);
        err = ens_kafka_produce(p->producer, ENS_TOPIC_PLACEMENT_PLANS, pl->study_id, buf, len,
                                ens_event_type_name(plan.type), ev->event_id, errstr, size);
    }
    free(buf);
    ens_event_free(&plan);
    return err;
}
