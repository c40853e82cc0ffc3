/* proposer.c - studies in Redis, trial jobs decided by the scheduler core and sent to trainers. */
#include "proposer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asha_redis.h"
#include "dispatch.h"
#include "recover.h"
#include "ensflow/log.h"
#include "ensflow/models.h"
#include "ensflow/space.h"

#define ACTIVE_KEY "ens:studies:active"

#define REDIS_DO(r, errstr, size, ...)                                                          \
    do {                                                                                        \
        ens_err_t rerr_ = ens_redis_exec((r), (errstr), (size), __VA_ARGS__);                   \
        if (rerr_)                                                                              \
            return rerr_;                                                                       \
    } while (0)

static ens_err_t reject(ens_proposer_t *p, const ens_event_t *ev, const char *study,
                        const char *why, char *errstr, size_t size) {
    ens_event_t rej;
    ens_event_init(&rej, ENS_EV_STUDY_REJECTED);
    snprintf(rej.u.study_rejected.study_id, ENS_ID_MAX, "%s", study);
    rej.u.study_rejected.reason = strdup(why);
    ens_err_t err = rej.u.study_rejected.reason ? ENS_OK : ENS_ERR_NOMEM;
    char key[256];
    ENS_WARN("study=%s msg=\"study rejected\" reason=\"%s\"", study, why);
    if (!err && ens_key(key, sizeof key, study, "study"))
        err = ens_redis_exec(p->redis, errstr, size, "HSET %s status rejected error %s", key, why);
    if (!err)
        err = ens_kafka_produce_event(p->producer, ENS_TOPIC_STUDY_COMMANDS, study, &rej,
                                      ev->event_id, errstr, size);
    ens_event_free(&rej);
    return err;
}

static ens_err_t on_study_created(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                  size_t size) {
    const ens_study_created_t *s = &ev->u.study_created;
    char key[256], why[512];
    if (!ens_key(key, sizeof key, s->study_id, "study"))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id '%s'", s->study_id);
    if (ens_space_validate(s->search_space_json, why, sizeof why))
        return reject(p, ev, s->study_id, why, errstr, size);
    if (s->n_trials < 1 || s->n_trials > 1000000 || !(s->epochs > 0) || s->epochs > 1000 ||
        !(s->val_fraction > 0 && s->val_fraction < 1) || !(s->max_epochs_budget >= 0) ||
        !(s->max_wall_seconds >= 0))
        return reject(p, ev, s->study_id, "n_trials, epochs, val_fraction or a budget out of range",
                      errstr, size);
    ens_asha_params_t ap = {.eta = s->eta > 0 ? s->eta : 3, .r_min = s->min_epochs,
                            .r_max = s->epochs, .s_max = -1, .max_configs = s->n_trials,
                            .max_epochs = s->max_epochs_budget};
    if (ens_asha_kind_parse(s->scheduler, &ap.kind))
        return reject(p, ev, s->study_id, "scheduler must be random, sha, asha or hyperband",
                      errstr, size);
    if (ens_asha_params_init(&ap, why, sizeof why))
        return reject(p, ev, s->study_id, why, errstr, size);

    ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "HEXISTS %s scheduler", key);
    if (!rep)
        return ENS_ERR_REDIS;
    int exists = rep->type == ENS_REPLY_INTEGER && rep->integer == 1;
    ens_redis_reply_free(rep);
    if (!exists) {
        char n_trials[16], epochs[40], seed[32], valf[40], topk[16], created[32], eta[40],
            rmin[40], smax[16], maxep[40], deadline[32];
        snprintf(n_trials, sizeof n_trials, "%d", (int)s->n_trials);
        snprintf(epochs, sizeof epochs, "%.17g", s->epochs);
        snprintf(seed, sizeof seed, "%lld", (long long)s->seed);
        snprintf(valf, sizeof valf, "%.17g", s->val_fraction);
        snprintf(topk, sizeof topk, "%d", (int)s->top_k);
        snprintf(created, sizeof created, "%lld", (long long)ev->occurred_at);
        snprintf(eta, sizeof eta, "%.17g", ap.eta);
        snprintf(rmin, sizeof rmin, "%.17g", ap.r_min);
        snprintf(smax, sizeof smax, "%d", ap.s_max);
        snprintf(maxep, sizeof maxep, "%.17g", ap.max_epochs);
        snprintf(deadline, sizeof deadline, "%lld",
                 s->max_wall_seconds > 0
                     ? (long long)(ev->occurred_at + (int64_t)(s->max_wall_seconds * 1000))
                     : 0LL);
        /* one HSET: the study appears whole or not at all */
        REDIS_DO(p->redis, errstr, size,
                 "HSET %s study_id %s dataset %s search_space %s n_trials %s epochs %s seed %s "
                 "val_fraction %s top_k %s created_ms %s status running scheduler %s eta %s "
                 "min_epochs %s s_max %s max_epochs_budget %s deadline_ms %s",
                 key, s->study_id, s->dataset,
                 s->search_space_json && *s->search_space_json ? s->search_space_json : "{}",
                 n_trials, epochs, seed, valf, topk, created, ens_asha_kind_name(ap.kind), eta,
                 rmin, smax, maxep, deadline);
        REDIS_DO(p->redis, errstr, size, "ZADD ens:studies NX %s %s", created, s->study_id);
        REDIS_DO(p->redis, errstr, size, "SADD " ACTIVE_KEY " %s", s->study_id);
        ENS_INFO("study=%s msg=\"study created\" scheduler=%s trials=%d epochs=%g r_min=%g eta=%g "
                 "brackets=%d rungs=%d dataset=%s",
                 s->study_id, ens_asha_kind_name(ap.kind), (int)s->n_trials, s->epochs, ap.r_min,
                 ap.eta, ens_asha_n_brackets(&ap), ap.m + 1, s->dataset);
    }
    int live = 0;
    ens_err_t err = ens_proposer_live_trainers(p->state, p->trainer_ttl_ms, &live, errstr, size);
    if (!err)
        err = ens_proposer_schedule(p, s->study_id, live, NULL, errstr, size);
    return err;
}

static ens_err_t schedule(ens_proposer_t *p, const char *study, int slots, int *issued,
                          const ens_asha_view_t *view, char *errstr, size_t size);

/* The job in flight that an OK result answers: 1 and its epochs when the result's model is
 * the one that job trains (ens_model_id of the trial at the job's top); 0 for a result of no
 * job in flight or of an earlier job of the trial (a copy issued again, or a result announced
 * again after the trial was promoted), which must not be booked against the job now in
 * flight. */
static ens_err_t job_answered(ens_proposer_t *p, const ens_trial_result_t *t, int *answers,
                              double *from, double *to, char *errstr, size_t size) {
    char infl[256], mid[ENS_ID_MAX];
    *answers = 0;
    if (!ens_key(infl, sizeof infl, t->study_id, "inflight"))
        return ENS_OK;
    ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "HGET %s %s", infl, t->trial_id);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_asha_inflight_t job;
    if (rep->type == ENS_REPLY_STRING && ens_asha_inflight_parse(rep->str, &job)) {
        *from = job.from;
        *to = job.to;
        ens_model_id(t->trial_id, *to, mid, sizeof mid);
        *answers = !strcmp(mid, t->model_id);
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}

/* Seconds per epoch of the job a result answers, kept per trial in ens:{s}:speed: what the
 * deadline planning estimates the next jobs by. */
static ens_err_t record_speed(ens_proposer_t *p, const ens_trial_result_t *t, double from,
                              double to, char *errstr, size_t size) {
    char speed[256];
    if (!ens_key(speed, sizeof speed, t->study_id, "speed") || !(t->train_seconds > 0) ||
        !(to > from))
        return ENS_OK;
    return ens_redis_exec(p->redis, errstr, size, "ZADD %s %.6g %s", speed,
                          t->train_seconds / (to - from), t->trial_id);
}

/* Seconds before the deadline kept free of training: the last checkpoints' evaluation. */
#define DEADLINE_MARGIN_S 5.0

/* The epochs a job may train and still end before the deadline, at the study's measured
 * seconds per epoch (the 75th percentile over its trials: configurations differ in speed),
 * after the work already in flight (spread over the trainers: a new job may wait behind it);
 * 0 (no limit) before any job has reported. */
static ens_err_t deadline_epochs(ens_proposer_t *p, const char *study, int64_t deadline_ms,
                                 int slots, double *max_job_epochs, char *errstr, size_t size) {
    char speed[256], infl[256];
    *max_job_epochs = 0;
    if (deadline_ms <= 0 || !ens_key(speed, sizeof speed, study, "speed") ||
        !ens_key(infl, sizeof infl, study, "inflight"))
        return ENS_OK;
    ens_redis_reply_t *jobs = ens_redis_command(p->redis, errstr, size, "HVALS %s", infl);
    if (!jobs)
        return ENS_ERR_REDIS;
    double queued = 0;
    for (size_t i = 0; jobs->type == ENS_REPLY_ARRAY && i < jobs->elements; i++) {
        ens_asha_inflight_t job;
        if (ens_asha_inflight_parse(jobs->element[i]->str, &job))
            queued += job.to - job.from;
    }
    ens_redis_reply_free(jobs);
    queued /= slots > 0 ? slots : 1;
    ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "ZRANGE %s 0 -1 WITHSCORES",
                                        speed);
    if (!rep)
        return ENS_ERR_REDIS;
    size_t n = rep->type == ENS_REPLY_ARRAY ? rep->elements / 2 : 0;
    if (n > 0 && rep->element[2 * (n * 3 / 4) + 1]->str) {
        double spe = strtod(rep->element[2 * (n * 3 / 4) + 1]->str, NULL);
        double left = (double)(deadline_ms - ens_now_ms()) / 1e3 - DEADLINE_MARGIN_S;
        if (spe > 0)
            *max_job_epochs = left / spe - queued > 0 ? left / spe - queued : 1e-9;
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t on_trial_result(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                 size_t size) {
    const ens_trial_result_t *t = &ev->u.trial_result;
    ens_asha_params_t ap;
    ens_err_t err = ens_proposer_params(p->redis, t->study_id, &ap, errstr, size);
    if (err == ENS_ERR_NOTFOUND) {
        ENS_WARN("study=%s trial=%s msg=\"result of an unknown study, ignored\"", t->study_id,
                 t->trial_id);
        return ENS_OK;
    }
    if (err)
        return err;
    int applied = 0, ok = t->status == ENS_TRIAL_OK, answers = 0;
    double from = 0, to = 0;
    if (ok && (err = job_answered(p, t, &answers, &from, &to, errstr, size)))
        return err;
    if (ok && !answers) {
        ENS_INFO("study=%s trial=%s msg=\"result of no job in flight (redelivery), ignored\" "
                 "model=%s",
                 t->study_id, t->trial_id, t->model_id);
        return ENS_OK;
    }
    if (ok && (err = record_speed(p, t, from, to, errstr, size)))
        return err;
    /* the script answers with the state after the result: the next decision's view */
    ens_asha_view_t *view = malloc(sizeof *view);
    if (!view)
        return ENS_ERR_NOMEM;
    if ((err = ens_asha_redis_result(p->redis, t->study_id, &ap, t->trial_id, ok,
                                     t->val_accuracy, t->epochs_done, t->model_id, t->error,
                                     &applied, view, errstr, size))) {
        free(view);
        return err;
    }
    char dkey[256];
    if (applied && ens_key(dkey, sizeof dkey, t->study_id, "dispatched") &&
        (err = ens_redis_exec(p->redis, errstr, size, "HDEL %s %s", dkey, t->trial_id))) {
        free(view);
        return err;
    }
    if (applied)
        ENS_INFO("study=%s trial=%s msg=\"trial result\" status=%s model=%s epochs=%g "
                 "val_acc=%.4f",
                 t->study_id, t->trial_id, ok ? "ok" : "failed", t->model_id, t->epochs_done,
                 t->val_accuracy);
    else
        ENS_INFO("study=%s trial=%s msg=\"result of no job in flight (redelivery), ignored\"",
                 t->study_id, t->trial_id);
    int live = 0;
    if (!(err = ens_proposer_live_trainers(p->state, p->trainer_ttl_ms, &live, errstr, size)))
        err = schedule(p, t->study_id, live, NULL, view, errstr, size);
    free(view);
    return err;
}

static ens_err_t on_study_command(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                  size_t size) {
    const ens_study_command_t *c = &ev->u.study_command;
    char key[256];
    if (!ens_key(key, sizeof key, c->study_id, "study"))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id '%s'", c->study_id);
    ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "HMGET %s status deadline_ms", key);
    if (!rep)
        return ENS_ERR_REDIS;
    int found = rep->type == ENS_REPLY_ARRAY && rep->elements == 2 && rep->element[0]->str;
    int64_t deadline = found && rep->element[1]->str ? strtoll(rep->element[1]->str, NULL, 10) : 0;
    ens_redis_reply_free(rep);
    if (!found)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "study %s: no such study", c->study_id);
    /* HINCRBY is not idempotent: apply each command once */
    int first = ens_store_first_time(p->redis, c->study_id, "cmd", ev->event_id, 7 * 86400);
    if (first < 0)
        return (ens_err_t)first;
    if (!first)
        return ENS_OK;
    if (!strcmp(c->command, "stop")) {
        REDIS_DO(p->redis, errstr, size, "HSET %s status stopping", key);
        ENS_INFO("study=%s msg=\"stopping: no new jobs\"", c->study_id);
    } else if (!strcmp(c->command, "extend")) {
        if (c->add_trials < 0 || !(c->add_epochs_budget >= 0) || !(c->add_wall_seconds >= 0))
            return ens_err_set(errstr, size, ENS_ERR_INVALID, "extend: negative amounts");
        if (c->add_trials)
            REDIS_DO(p->redis, errstr, size, "HINCRBY %s n_trials %d", key, (int)c->add_trials);
        if (c->add_epochs_budget > 0)
            REDIS_DO(p->redis, errstr, size, "HINCRBYFLOAT %s max_epochs_budget %.17g", key,
                     c->add_epochs_budget);
        if (c->add_wall_seconds > 0) {
            int64_t now = ens_now_ms(), base = deadline > now ? deadline : now;
            if (deadline > 0)
                REDIS_DO(p->redis, errstr, size, "HSET %s deadline_ms %lld", key,
                         (long long)(base + (int64_t)(c->add_wall_seconds * 1000)));
        }
        REDIS_DO(p->redis, errstr, size, "HSET %s status running", key);
        REDIS_DO(p->redis, errstr, size, "SADD " ACTIVE_KEY " %s", c->study_id);
        /* not compacted while it runs again; its models compacted already train on with a
         * fresh optimiser (retain.h) */
        REDIS_DO(p->redis, errstr, size, "SREM " ENS_MODELS_COMPACT_KEY " %s", c->study_id);
        ENS_INFO("study=%s msg=\"extended\" add_trials=%d add_epochs=%g add_seconds=%g",
                 c->study_id, (int)c->add_trials, c->add_epochs_budget, c->add_wall_seconds);
    } else {
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "unknown study command '%s'",
                           c->command);
    }
    int live = 0;
    ens_err_t err = ens_proposer_live_trainers(p->state, p->trainer_ttl_ms, &live, errstr, size);
    if (!err)
        err = ens_proposer_schedule(p, c->study_id, live, NULL, errstr, size);
    return err;
}

ens_err_t ens_proposer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size) {
    ens_proposer_t *p = ctx;
    switch (ev->type) {
    case ENS_EV_STUDY_CREATED: return on_study_created(p, ev, errstr, errstr_size);
    case ENS_EV_TRIAL_RESULT: return on_trial_result(p, ev, errstr, errstr_size);
    case ENS_EV_STUDY_COMMAND: return on_study_command(p, ev, errstr, errstr_size);
    case ENS_EV_STUDY_REJECTED: return ENS_OK; /* our own answer on study.commands */
    default:
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "proposer does not take %s",
                           ens_event_type_name(ev->type));
    }
}

ens_err_t ens_proposer_live_trainers(ens_state_t *st, int ttl_ms, int *n, char *errstr,
                                     size_t size) {
    int64_t since = ens_now_ms() - (ttl_ms > 0 ? ttl_ms : 15000);
    return ens_state_trainer_live(st, since, n, errstr, size);
}

/* The study hash's fields, in the order asked for. */
static const char *study_fields[] = {"scheduler", "eta",          "min_epochs",
                                     "epochs",    "s_max",        "n_trials",
                                     "max_epochs_budget", "status", "deadline_ms",
                                     "search_space", "seed",      "dataset",
                                     "val_fraction"};
enum { F_SCHED, F_ETA, F_RMIN, F_EPOCHS, F_SMAX, F_NTRIALS, F_MAXEP, F_STATUS, F_DEADLINE,
       F_SPACE, F_SEED, F_DATASET, F_VALF, F_COUNT };

static ens_redis_reply_t *study_get(ens_redis_t *r, const char *study, char *errstr, size_t size) {
    char key[256];
    const char *argv[2 + F_COUNT];
    if (!ens_key(key, sizeof key, study, "study")) {
        ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id");
        return NULL;
    }
    argv[0] = "HMGET";
    argv[1] = key;
    for (int i = 0; i < F_COUNT; i++)
        argv[2 + i] = study_fields[i];
    ens_redis_reply_t *rep = ens_redis_commandv(r, 2 + F_COUNT, argv, NULL, errstr, size);
    if (rep && (rep->type != ENS_REPLY_ARRAY || rep->elements != F_COUNT)) {
        ens_err_set(errstr, size, ENS_ERR_REDIS, "HMGET study: unexpected reply");
        ens_redis_reply_free(rep);
        return NULL;
    }
    return rep;
}

static const char *fstr(const ens_redis_reply_t *rep, int f) {
    return rep->element[f]->type == ENS_REPLY_STRING ? rep->element[f]->str : NULL;
}
static double fnum(const ens_redis_reply_t *rep, int f) {
    const char *s = fstr(rep, f);
    return s ? strtod(s, NULL) : 0;
}

static ens_err_t params_from(const ens_redis_reply_t *rep, ens_asha_params_t *ap, char *errstr,
                             size_t size) {
    memset(ap, 0, sizeof *ap);
    if (!fstr(rep, F_SCHED))
        return ENS_ERR_NOTFOUND;
    if (ens_asha_kind_parse(fstr(rep, F_SCHED), &ap->kind))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "stored scheduler unknown");
    ap->eta = fnum(rep, F_ETA);
    ap->r_min = fnum(rep, F_RMIN);
    ap->r_max = fnum(rep, F_EPOCHS);
    ap->s_max = (int)fnum(rep, F_SMAX);
    ap->max_configs = (int)fnum(rep, F_NTRIALS);
    ap->max_epochs = fnum(rep, F_MAXEP);
    return ens_asha_params_init(ap, errstr, size);
}

ens_err_t ens_proposer_params(ens_redis_t *r, const char *study, ens_asha_params_t *ap,
                              char *errstr, size_t size) {
    ens_redis_reply_t *rep = study_get(r, study, errstr, size);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = params_from(rep, ap, errstr, size);
    ens_redis_reply_free(rep);
    return err;
}

/* Count a study's jobs in flight on the partitions they were sent to, with their epochs: an
 * entry of ens:{s}:dispatched ("<seq> <partition> <sent_ms>") counts while the trial's job in flight
 * (ens:{s}:inflight, "<seq> <bracket> <rung> <from> <to>") is that decision. */
static ens_err_t count_study_jobs(ens_proposer_t *p, ens_dispatch_t *d, const char *study,
                                  char *errstr, size_t size) {
    char infl[256], disp[256];
    if (!ens_key(infl, sizeof infl, study, "inflight") ||
        !ens_key(disp, sizeof disp, study, "dispatched"))
        return ENS_OK; /* not a study id we wrote: nothing of ours in flight */
    const char *c0[] = {"HGETALL", infl}, *c1[] = {"HGETALL", disp};
    const char **cmds[] = {c0, c1};
    const int argc[] = {2, 2};
    ens_redis_reply_t *r[2] = {NULL, NULL};
    ens_err_t err = ens_redis_pipeline(p->redis, 2, argc, cmds, r, errstr, size);
    if (!err && (r[0]->type != ENS_REPLY_ARRAY || r[1]->type != ENS_REPLY_ARRAY))
        err = ens_err_set(errstr, size, ENS_ERR_REDIS, "HGETALL %s / %s: unexpected reply", infl,
                          disp);
    for (size_t i = 0; !err && i + 1 < r[1]->elements; i += 2) {
        const char *trial = r[1]->element[i]->str, *rec = r[1]->element[i + 1]->str;
        long long dseq = -1;
        int part = -1;
        ens_asha_inflight_t job;
        if (!trial || !rec || sscanf(rec, "%lld %d", &dseq, &part) != 2)
            continue;
        if (ens_asha_inflight_find(r[0], trial, &job) && job.seq == dseq)
            ens_dispatch_add_job(d, part, job.to - job.from);
    }
    ens_redis_reply_free(r[0]);
    ens_redis_reply_free(r[1]);
    return err;
}

ens_err_t ens_proposer_dispatch_trainers(ens_state_t *st, int64_t now_ms, int ttl_ms,
                                         ens_dispatch_t **out, char *errstr, size_t size) {
    ens_dispatch_t *d = NULL;
    int32_t parts[ENS_DISPATCH_MAX_PARTITIONS];
    char **ids = NULL, **recs = NULL;
    int n_rec = 0;
    *out = NULL;
    if (ens_dispatch_new(now_ms, ttl_ms > 0 ? ttl_ms : 15000, &d))
        return ens_err_set(errstr, size, ENS_ERR_NOMEM, "dispatch state");
    ens_err_t err = ens_state_trainer_parts_list(st, &ids, &recs, &n_rec, errstr, size);
    for (int i = 0; !err && i < n_rec; i++) {
        int64_t beat = 0;
        int n = 0;
        ens_err_t aerr = ENS_ERR_INVALID;
        if (ids[i][0] &&
            !ens_dispatch_record_parse(recs[i], &beat, parts, ENS_DISPATCH_MAX_PARTITIONS, &n))
            aerr = ens_dispatch_add_trainer(d, ids[i], beat, parts, n);
        if (aerr == ENS_ERR_INVALID)
            ENS_WARN("trainer=%s msg=\"unusable partition record, ignored\" record=\"%s\"",
                     ids[i][0] ? ids[i] : "?", recs[i]);
        else if (aerr)
            err = ens_err_set(errstr, size, aerr, "dispatch state: %s", ens_err_str(aerr));
    }
    ens_state_strings_free(ids, n_rec);
    ens_state_strings_free(recs, n_rec);
    if (err)
        ens_dispatch_free(d);
    else
        *out = d;
    return err;
}

/* The dispatch state: the trainers' published partitions and the jobs in flight on each,
 * over every running study (and this one). */
ens_err_t ens_proposer_dispatch_state(ens_proposer_t *p, const char *study, ens_dispatch_t **out,
                                char *errstr, size_t size) {
    ens_dispatch_t *d = NULL;
    *out = NULL;
    ens_err_t err = ens_proposer_dispatch_trainers(p->state, ens_now_ms(), p->trainer_ttl_ms,
                                                   &d, errstr, size);
    if (err)
        return err;
    ens_redis_reply_t *active = ens_redis_command(p->redis, errstr, size, "SMEMBERS " ACTIVE_KEY);
    if (!active)
        err = ENS_ERR_REDIS;
    int seen_self = 0;
    for (size_t i = 0; !err && active->type == ENS_REPLY_ARRAY && i < active->elements; i++) {
        const char *s = active->element[i]->str;
        if (!s)
            continue;
        seen_self |= !strcmp(s, study);
        err = count_study_jobs(p, d, s, errstr, size);
    }
    if (!err && !seen_self)
        err = count_study_jobs(p, d, study, errstr, size);
    ens_redis_reply_free(active);
    if (err)
        ens_dispatch_free(d);
    else
        *out = d;
    return err;
}

/* Produce the jobs of committed decisions still in the outbox, then clear them. Each goes to a
 * partition of the live trainer with the least work in flight (dispatch.h), or by key hash
 * while no trainer has published its partitions. */
static ens_err_t send_outbox(ens_proposer_t *p, const char *study, const ens_redis_reply_t *st,
                             int *sent, char *errstr, size_t size) {
    char obox[256], infl[256], tkey[256], disp[256];
    ens_key(obox, sizeof obox, study, "outbox");
    ens_key(infl, sizeof infl, study, "inflight");
    ens_key(disp, sizeof disp, study, "dispatched");
    ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "HGETALL %s", obox);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    ens_dispatch_t *d = NULL;
    *sent = 0;
    if (rep->type == ENS_REPLY_ARRAY && rep->elements > 0)
        err = ens_proposer_dispatch_state(p, study, &d, errstr, size);
    for (size_t i = 0; !err && rep->type == ENS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
        const char *seq = rep->element[i]->str, *trial = rep->element[i + 1]->str;
        ens_redis_reply_t *job = ens_redis_command(p->redis, errstr, size, "HGET %s %s", infl, trial);
        ens_key(tkey, sizeof tkey, study, "trial:%s", trial);
        ens_redis_reply_t *cfg = job ? ens_redis_command(p->redis, errstr, size, "HGET %s config", tkey)
                              : NULL;
        ens_asha_inflight_t rec;
        if (!job || !cfg)
            err = ENS_ERR_REDIS;
        else if (job->type != ENS_REPLY_STRING || !ens_asha_inflight_parse(job->str, &rec) ||
                 rec.seq != strtoll(seq, NULL, 10) || cfg->type != ENS_REPLY_STRING) {
            /* its result came already (a re-send after a crash): nothing to send */
        } else {
            ens_event_t ev;
            ens_event_init(&ev, ENS_EV_TRIAL_JOB);
            ens_trial_job_t *j = &ev.u.trial_job;
            snprintf(j->study_id, sizeof j->study_id, "%s", study);
            snprintf(j->trial_id, sizeof j->trial_id, "%s", trial);
            j->config_json = strdup(cfg->str);
            j->dataset = strdup(fstr(st, F_DATASET) ? fstr(st, F_DATASET) : "");
            j->val_fraction = fnum(st, F_VALF);
            j->seed = fstr(st, F_SEED) ? strtoll(fstr(st, F_SEED), NULL, 10) : 0;
            j->epochs = rec.to;
            j->from_epoch = rec.from;
            j->attempt = 1;
            if (!j->config_json || !j->dataset)
                err = ENS_ERR_NOMEM;
            /* to the least-loaded live trainer's partition; keyed by trial either way, and by
             * key hash (spread over the partitions) while no trainer's partitions are known */
            const char *tid = NULL;
            int32_t part = err ? ENS_DISPATCH_BY_KEY : ens_dispatch_pick(d, rec.to - rec.from, &tid);
            if (!err && part != ENS_DISPATCH_BY_KEY &&
                ens_kafka_produce_event_to(p->producer, ENS_TOPIC_TRIAL_JOBS, part, trial, &ev,
                                           NULL, errstr, size)) {
                ENS_WARN("study=%s trial=%s msg=\"explicit partition refused, sending by key\" "
                         "partition=%d error=\"%s\"",
                         study, trial, (int)part, errstr);
                part = ENS_DISPATCH_BY_KEY;
                tid = NULL;
            }
            if (!err && part == ENS_DISPATCH_BY_KEY)
                err = ens_kafka_produce_event(p->producer, ENS_TOPIC_TRIAL_JOBS, trial, &ev, NULL,
                                              errstr, size);
            char drec[96];
            snprintf(drec, sizeof drec, "%s %d %lld", seq, (int)part, (long long)ens_now_ms());
            if (!err)
                err = ens_redis_exec(p->redis, errstr, size, "HSET %s %s %s", disp, trial, drec);
            if (!err) {
                (*sent)++;
                ENS_INFO("study=%s trial=%s msg=\"job issued\" decision=%s bracket=%d rung=%d "
                         "from_epoch=%g epochs=%g partition=%d trainer=%s",
                         study, trial, seq, rec.bracket, rec.rung, rec.from, rec.to, (int)part, tid ? tid : "-");
            }
            ens_event_free(&ev);
        }
        ens_redis_reply_free(job);
        ens_redis_reply_free(cfg);
    }
    /* Only once the jobs are delivered are they taken out of the outbox: a crash before this
     * point sends them again, and trainers deduplicate by model id. */
    if (!err && rep->type == ENS_REPLY_ARRAY && rep->elements > 0) {
        err = ens_kafka_flush(p->producer, 30000, errstr, size);
        for (size_t i = 0; !err && i + 1 < rep->elements; i += 2)
            err = ens_redis_exec(p->redis, errstr, size, "HDEL %s %s", obox,
                                 rep->element[i]->str);
    }
    ens_dispatch_free(d);
    ens_redis_reply_free(rep);
    return err;
}

static long hlen(ens_redis_t *r, const char *study, const char *what, char *errstr,
                 size_t size) {
    char key[256];
    ens_key(key, sizeof key, study, "%s", what);
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, size, "HLEN %s", key);
    long n = rep && rep->type == ENS_REPLY_INTEGER ? (long)rep->integer : -1;
    ens_redis_reply_free(rep);
    return n;
}

ens_err_t ens_proposer_schedule(ens_proposer_t *p, const char *study, int slots, int *issued,
                                char *errstr, size_t size) {
    return schedule(p, study, slots, issued, NULL, errstr, size);
}

/* Stale commits in a row before a pass gives up (the tick tries again): another proposer
 * instance keeps changing the study's state. */
#define MAX_STALE 16

/* view: the study's current scheduler state when the caller has it (NULL: read it here). One
 * round trip per decision: each commit answers with the state the next decision needs. */
static ens_err_t schedule(ens_proposer_t *p, const char *study, int slots, int *issued,
                          const ens_asha_view_t *view, char *errstr, size_t size) {
    char key[256];
    ens_asha_params_t ap;
    if (issued)
        *issued = 0;
    ens_redis_reply_t *st = study_get(p->redis, study, errstr, size);
    if (!st)
        return ENS_ERR_REDIS;
    ens_err_t err = params_from(st, &ap, errstr, size);
    const char *status = fstr(st, F_STATUS) ? fstr(st, F_STATUS) : "";
    int64_t deadline = fstr(st, F_DEADLINE) ? strtoll(fstr(st, F_DEADLINE), NULL, 10) : 0;
    int open = !strcmp(status, "running") && (deadline <= 0 || ens_now_ms() < deadline);
    if (!err && open)
        err = deadline_epochs(p, study, deadline, slots, &ap.max_job_epochs, errstr, size);
    long inflight = err ? 0 : hlen(p->redis, study, "inflight", errstr, size);
    if (!err && inflight < 0)
        err = ENS_ERR_REDIS;
    int capacity = (slots > 0 ? slots : 1) * (p->jobs_per_trainer > 0 ? p->jobs_per_trainer : 1);
    int n_new = 0, idle = 0, stale = 0;
    ens_asha_view_t *v = NULL, *next = NULL;
    if (!err && open) {
        v = malloc(sizeof *v);
        next = malloc(sizeof *next);
        if (!v || !next)
            err = ENS_ERR_NOMEM;
        else if (view)
            *v = *view;
        else
            err = ens_asha_redis_view(p->redis, study, &ap, v, NULL, errstr, size);
    }
    while (!err && open) {
        ens_asha_decision_t d;
        ens_asha_decide(&ap, v, &d);
        if (d.action == ENS_ASHA_NONE) {
            idle = 1;
            break;
        }
        if (inflight >= capacity)
            break;
        char *config = NULL;
        if (d.action == ENS_ASHA_NEW &&
            (err = ens_space_sample(fstr(st, F_SPACE), (uint64_t)fnum(st, F_SEED),
                                    d.config_index, &config, errstr, size)))
            break;
        int applied = 0;
        err = ens_asha_redis_commit(p->redis, study, &ap, &d, v->version, config, &applied, next,
                                    errstr, size);
        free(config);
        if (!err) {
            ens_asha_view_t *tmp = v;
            v = next;
            next = tmp;
        }
        if (!err && !applied && ++stale >= MAX_STALE) {
            ENS_WARN("study=%s msg=\"state keeps changing under the scheduler; next tick\"",
                     study);
            break;
        }
        if (!err && applied) {
            stale = 0;
            inflight++;
            n_new++;
            ENS_INFO("study=%s trial=%s msg=\"decision\" seq=%lld action=%s bracket=%d rung=%d "
                     "epochs=%g->%g",
                     study, d.trial_id, (long long)d.seq,
                     d.action == ENS_ASHA_NEW ? "new" : "promote", d.bracket, d.rung,
                     d.from_epochs, d.to_epochs);
        }
    }
    free(v);
    free(next);
    int sent = 0;
    if (!err)
        err = send_outbox(p, study, st, &sent, errstr, size);
    if (issued)
        *issued = n_new;
    /* the end: nothing in flight and nothing more to decide (or no longer allowed to). The
     * steps after the status are done again while the study is still active, so that one
     * that failed half way is finished by a later tick. */
    int ended = !strcmp(status, "complete") || !strcmp(status, "stopped");
    int still_active = 0;
    if (!err && inflight == 0 && (idle || !open) && ended) {
        ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "SISMEMBER " ACTIVE_KEY " %s",
                                            study);
        if (!rep)
            err = ENS_ERR_REDIS;
        still_active = rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1;
        ens_redis_reply_free(rep);
    }
    if (!err && inflight == 0 && (idle || !open) && (!ended || still_active)) {
        const char *final = ended ? status : !strcmp(status, "stopping") ? "stopped" : "complete";
        ens_key(key, sizeof key, study, "study");
        if (!ended)
            err = ens_redis_exec(p->redis, errstr, size, "HSET %s status %s", key, final);
        if (!err)
            err = ens_redis_exec(p->redis, errstr, size, "SADD " ENS_RECOVER_SETTLING_KEY " %s",
                                 study);
        if (!err) /* its model files: trainers drop what no longer serves (retain.h) */
            err = ens_redis_exec(p->redis, errstr, size, "SADD " ENS_MODELS_COMPACT_KEY " %s",
                                 study);
        if (!err)
            err = ens_redis_exec(p->redis, errstr, size, "SREM " ACTIVE_KEY " %s", study);
        if (!err && ens_key(key, sizeof key, study, "dispatched"))
            err = ens_redis_exec(p->redis, errstr, size, "DEL %s", key);
        if (!err)
            ENS_INFO("study=%s msg=\"study %s\"", study, final);
    }
    ens_redis_reply_free(st);
    return err;
}

void ens_proposer_tick(void *ctx) {
    ens_proposer_t *p = ctx;
    char errstr[512];
    int64_t now = ens_now_ms();
    if (now - p->last_tick_ms < (p->tick_ms > 0 ? p->tick_ms : 1000))
        return;
    p->last_tick_ms = now;
    int live = 0;
    if (ens_proposer_live_trainers(p->state, p->trainer_ttl_ms, &live, errstr, sizeof errstr)) {
        ENS_WARN("msg=\"tick: cannot count trainers\" error=\"%s\"", errstr);
        return;
    }
    ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, sizeof errstr, "SMEMBERS " ACTIVE_KEY);
    if (!rep) {
        ENS_WARN("msg=\"tick: cannot list studies\" error=\"%s\"", errstr);
        return;
    }
    for (size_t i = 0; rep->type == ENS_REPLY_ARRAY && i < rep->elements; i++) {
        int issued = 0, reissued = 0;
        if (ens_recover_jobs(p, rep->element[i]->str, &reissued, errstr, sizeof errstr))
            ENS_WARN("study=%s msg=\"tick: cannot look for lost jobs\" error=\"%s\"",
                     rep->element[i]->str, errstr);
        if (ens_proposer_schedule(p, rep->element[i]->str, live, &issued, errstr, sizeof errstr))
            ENS_WARN("study=%s msg=\"tick: scheduling failed\" error=\"%s\"",
                     rep->element[i]->str, errstr);
    }
    ens_redis_reply_free(rep);
    ens_recover_results_all(p);
}
