/* placer.c - ensemble choice under constraints and the single-group placement plan. */
#include "placer.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"

ens_err_t ens_placer_choose(const ens_ensemble_front_t *front, const ens_deploy_command_t *cmd,
                            int *index, char *errstr, size_t size) {
    if (front->n_ensembles < 1)
        return ens_err_set(errstr, size, ENS_ERR_NOTFOUND, "the front of %s is empty",
                           front->study_id);
    int best = -1, cheapest = 0;
    for (int i = 0; i < front->n_ensembles; i++) {
        const ens_ensemble_t *e = &front->ensembles[i];
        if (e->cost_ms_per_sample < front->ensembles[cheapest].cost_ms_per_sample)
            cheapest = i;
        if (cmd->ensemble_id[0]) {
            if (!strcmp(cmd->ensemble_id, e->ensemble_id))
                best = i;
            continue;
        }
        if ((cmd->max_cost_ms > 0 && e->cost_ms_per_sample > cmd->max_cost_ms) ||
            (cmd->max_memory_bytes > 0 && e->memory_bytes > cmd->max_memory_bytes) ||
            (cmd->min_accuracy > 0 && e->holdout_accuracy < cmd->min_accuracy))
            continue;
        if (best < 0 || e->holdout_accuracy > front->ensembles[best].holdout_accuracy ||
            (e->holdout_accuracy == front->ensembles[best].holdout_accuracy &&
             e->val_accuracy > front->ensembles[best].val_accuracy))
            best = i;
    }
    if (best >= 0) {
        *index = best;
        return ENS_OK;
    }
    const ens_ensemble_t *c = &front->ensembles[cheapest];
    if (cmd->ensemble_id[0])
        return ens_err_set(errstr, size, ENS_ERR_NOTFOUND,
                           "no ensemble %s in the front of %s (cheapest: %s)", cmd->ensemble_id,
                           front->study_id, c->ensemble_id);
    return ens_err_set(errstr, size, ENS_ERR_NOTFOUND,
                       "no ensemble meets the constraints; the cheapest is %s at %.4f ms/sample, "
                       "%.1f MB, holdout accuracy %.4f",
                       c->ensemble_id, c->cost_ms_per_sample, (double)c->memory_bytes / 1e6,
                       c->holdout_accuracy);
}

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
        err = ens_placer_choose(&front.u.ensemble_front, cmd, &idx, errstr, size);
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
                          : ens_placer_plan(p, cmd->study_id, &front.u.ensemble_front.ensembles[idx],
                                            version, &plan);
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
