/* placer.c - the placement plan of the ensemble a deploy command chooses. */
#include "placer.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/ensemble.h"
#include "ensflow/log.h"
#include "ensflow/registry.h"

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
static ens_err_t load_profiles(ens_redis_t *r, const char *study, const ens_ensemble_t *e,
                               ens_alloc_model_t *models, char *errstr, size_t size) {
    for (int i = 0; i < e->n_members; i++) {
        char key[256];
        ens_key(key, sizeof key, study, "eval:%s", e->members[i]);
        redisReply *rep = ens_redis_command(
            r, errstr, size,
            "HMGET %s ms_per_sample_b1 ms_per_sample_b8 ms_per_sample_b32 ms_per_sample_b128 "
            "ms_per_sample batch_size n_params memory_bytes",
            key);
        if (!rep)
            return ENS_ERR_REDIS;
        ens_err_t err = ENS_OK;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 8)
            err = ens_err_set(errstr, size, ENS_ERR_NOTFOUND, "no evaluation of %s",
                              e->members[i]);
        double v[8] = {0};
        for (size_t j = 0; !err && j < 8; j++)
            v[j] = rep->element[j]->str ? strtod(rep->element[j]->str, NULL) : 0;
        ens_redis_reply_free(rep);
        if (err)
            return err;
        ens_alloc_model_t *m = &models[i];
        memset(m, 0, sizeof *m);
        m->model_id = e->members[i];
        for (int b = 0; b < ENS_ALLOC_BATCHES; b++) {
            m->ms_per_sample[b] = v[b];
            if (v[b] <= 0 && v[5] == ens_alloc_batch_sizes[b])
                m->ms_per_sample[b] = v[4]; /* an older evaluation: one batch size measured */
        }
        /* weights are 4 bytes a parameter; the rest of the measured memory grows with the
         * batch it was measured at */
        m->weights_bytes = (int64_t)v[6] * 4;
        m->activation_bytes_per_sample =
            v[5] > 0 && v[7] > (double)m->weights_bytes
                ? (int64_t)((v[7] - (double)m->weights_bytes) / v[5])
                : 0;
    }
    return ENS_OK;
}

/* Each device's predicted compute per sample under plan `version` at the profiles' speed
 * (its load times the speed the plan assumed for it), for its group to compare with what it
 * measures: the ratio is then the device's own speed, not one relative to the last guess
 * (kept a week: a group reads it when it takes the plan up). A side table: failing to write
 * it only leaves the speed unmeasured. */
static void store_compute(ens_redis_t *r, int64_t version, const ens_alloc_device_t *devs,
                          const double *compute_ms, int n) {
    char key[64], errstr[256];
    snprintf(key, sizeof key, "ens:plan:%lld:compute", (long long)version);
    ens_err_t err = ENS_OK;
    for (int d = 0; !err && d < n; d++)
        if (compute_ms[d] > 0)
            err = ens_redis_exec(r, errstr, sizeof errstr, "HSET %s %s %.9g", key,
                                 devs[d].device_id, compute_ms[d] * devs[d].speed);
    if (!err)
        err = ens_redis_exec(r, errstr, sizeof errstr, "EXPIRE %s 604800", key);
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
    ens_err_t err = ens_registry_list(p->redis, &devs, &n, errstr, size);
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
        err = load_profiles(p->redis, study, e, models, errstr, size);
    if (!err)
        err = ens_placer_plan_allocated(study, e, version, models, devices, n, plan,
                                        compute_ms, errstr, size);
    if (!err)
        store_compute(p->redis, version, devices, compute_ms, n);
    free(compute_ms);
    free(models);
    free(devices);
    free(devs);
    return err;
}

/* A stored, encoded event, decoded; ENS_ERR_NOTFOUND when the key is absent. */
static ens_err_t get_event(ens_redis_t *r, const char *key, ens_event_t *ev, char *errstr,
                           size_t size) {
    redisReply *rep = ens_redis_command(r, errstr, size, "GET %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = rep->type == REDIS_REPLY_STRING
                        ? ens_event_decode((const uint8_t *)rep->str, rep->len, ev, errstr, size)
                        : ENS_ERR_NOTFOUND;
    ens_redis_reply_free(rep);
    return err;
}

ens_err_t ens_placer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_placer_t *p = ctx;
    if (ev->type != ENS_EV_DEPLOY_COMMAND)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "placer does not take %s",
                           ens_event_type_name(ev->type));
    const ens_deploy_command_t *cmd = &ev->u.deploy_command;
    char key[256], dkey[256];
    ens_event_t plan;
    /* the same command again: produce the plan it made, not a new version */
    ens_key(dkey, sizeof dkey, cmd->study_id, "deploy:%s", ev->event_id);
    ens_err_t err = get_event(p->redis, dkey, &plan, errstr, size);
    if (err && err != ENS_ERR_NOTFOUND)
        return err;
    if (err == ENS_ERR_NOTFOUND) {
        ens_event_t front;
        ens_key(key, sizeof key, cmd->study_id, "front");
        err = get_event(p->redis, key, &front, errstr, size);
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
        redisReply *rep = ens_redis_command(p->redis, errstr, size, "INCR ens:plan:version");
        int64_t version = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
        ens_redis_reply_free(rep);
        ens_event_init(&plan, ENS_EV_PLACEMENT_PLAN);
        err = version < 0 ? ENS_ERR_REDIS
                          : make_plan(p, cmd->study_id, &front.u.ensemble_front.ensembles[idx],
                                      version, &plan, errstr, size);
        ens_event_free(&front);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (!err)
            err = ens_event_encode(&plan, &buf, &len, errstr, size);
        if (!err)
            err = ens_redis_exec(p->redis, errstr, size, "SET %s %b", dkey, buf, len);
        free(buf);
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
    redisReply *latest = err ? NULL : ens_redis_command(p->redis, errstr, size,
                                                        "GET ens:plan:version");
    int is_latest = latest && latest->type == REDIS_REPLY_STRING &&
                    strtoll(latest->str, NULL, 10) <= pl->version;
    if (!err && !latest)
        err = ENS_ERR_REDIS;
    ens_redis_reply_free(latest);
    ens_key(key, sizeof key, cmd->study_id, "plan");
    if (!err && is_latest)
        err = ens_redis_exec(p->redis, errstr, size, "SET %s %b", key, buf, len);
    if (!err && is_latest)
        err = ens_redis_exec(p->redis, errstr, size, "SET ens:plan:current %b", buf, len);
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
