/* state_sched.c - the public ens_state_sched_* functions: arguments checked, then the
 * implementation's operation (state_sched.h). */
#include "ensflow/state_sched.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_internal.h"

#define NEED(cond)                                                                                 \
    do {                                                                                           \
        if (!st || !(cond))                                                                        \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s: bad argument",           \
                               __func__);                                                          \
    } while (0)

/* The implementation's table; one without it does not keep the scheduler. */
#define SCHED(op)                                                                                  \
    (ens_state_iface(st)->sched && ens_state_iface(st)->sched->op ? ens_state_iface(st)->sched->op \
                                                                  : NULL)
#define CALL(op, ...)                                                                              \
    (SCHED(op) ? SCHED(op)(ens_state_ctx(st), __VA_ARGS__)                                         \
               : ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,                             \
                             "the %s state does not keep the scheduler", ens_state_name(st)))

static int id_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_ID_MAX;
}

/* A trial id as a result names it: an empty one (a malformed result) names no job. */
static int trial_ok(const char *s) {
    return s && strlen(s) < ENS_ID_MAX;
}

/* ---- studies ---------------------------------------------------------------------------- */

int ens_state_sched_study_id_ok(const char *study) {
    return id_ok(study) && !strpbrk(study, "{}");
}

ens_err_t ens_state_sched_study_create(ens_state_t *st, const ens_state_sched_study_t *s,
                                       int *created, char *errstr, size_t errstr_size) {
    NEED(s && id_ok(s->study_id) && created);
    *created = 0;
    return CALL(study_create, s, created, errstr, errstr_size);
}

ens_err_t ens_state_sched_study_get(ens_state_t *st, const char *study,
                                    ens_state_sched_study_t *out, char *errstr,
                                    size_t errstr_size) {
    NEED(id_ok(study) && out);
    memset(out, 0, sizeof *out);
    snprintf(out->study_id, sizeof out->study_id, "%s", study);
    ens_err_t err = CALL(study_get, study, out, errstr, errstr_size);
    if (err)
        ens_state_sched_study_clear(out);
    return err;
}

void ens_state_sched_study_clear(ens_state_sched_study_t *s) {
    if (!s)
        return;
    free(s->dataset);
    free(s->search_space);
    s->dataset = s->search_space = NULL;
}

ens_err_t ens_state_sched_study_status_put(ens_state_t *st, const char *study, const char *status,
                                           const char *error, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && status && status[0] && strlen(status) < 32);
    return CALL(study_status_put, study, status, error, errstr, errstr_size);
}

ens_err_t ens_state_sched_study_extend(ens_state_t *st, const char *study, int32_t add_trials,
                                       double add_epochs, int64_t deadline_ms, char *errstr,
                                       size_t errstr_size) {
    NEED(id_ok(study) && add_trials >= 0 && add_epochs >= 0 && isfinite(add_epochs) &&
         deadline_ms >= 0);
    return CALL(study_extend, study, add_trials, add_epochs, deadline_ms, errstr, errstr_size);
}

ens_err_t ens_state_sched_study_end(ens_state_t *st, const char *study, const char *final_status,
                                    char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && (!final_status || (final_status[0] && strlen(final_status) < 32)));
    return CALL(study_end, study, final_status, errstr, errstr_size);
}

ens_err_t ens_state_sched_command_first(ens_state_t *st, const char *study, const char *event_id,
                                        int *first, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(event_id) && first);
    *first = 0;
    return CALL(command_first, study, event_id, first, errstr, errstr_size);
}

ens_err_t ens_state_sched_active_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                                      size_t errstr_size) {
    NEED(studies && n);
    *studies = NULL;
    *n = 0;
    return CALL(studies_list, 0, studies, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_active_has(ens_state_t *st, const char *study, int *active, char *errstr,
                                     size_t errstr_size) {
    NEED(id_ok(study) && active);
    *active = 0;
    return CALL(studies_has, 0, study, active, errstr, errstr_size);
}

ens_err_t ens_state_sched_settling_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                                        size_t errstr_size) {
    NEED(studies && n);
    *studies = NULL;
    *n = 0;
    return CALL(studies_list, 1, studies, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_settling_remove(ens_state_t *st, const char *study, char *errstr,
                                          size_t errstr_size) {
    NEED(id_ok(study));
    return CALL(studies_remove, 1, study, errstr, errstr_size);
}

/* ---- ASHA steps ----------------------------------------------------------------------- */

static int params_ok(const ens_asha_params_t *p) {
    return p && p->m >= 0 && p->m < ENS_ASHA_MAX_RUNGS && p->s_max >= 0 &&
           p->s_max < ENS_ASHA_MAX_BRACKETS && p->s_max <= p->m;
}

ens_err_t ens_state_sched_asha_view(ens_state_t *st, const char *study, const ens_asha_params_t *p,
                                    ens_asha_view_t *v, int *round_trips, char *errstr,
                                    size_t errstr_size) {
    int trips = 0;
    NEED(id_ok(study) && params_ok(p) && v);
    ens_err_t err = CALL(asha_view, study, p, v, &trips, errstr, errstr_size);
    if (round_trips)
        *round_trips = trips;
    return err;
}

ens_err_t ens_state_sched_asha_commit(ens_state_t *st, const char *study,
                                      const ens_asha_params_t *p, const ens_asha_decision_t *d,
                                      int64_t base_version, const char *config_json, int *applied,
                                      ens_asha_view_t *next, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && params_ok(p) && d && id_ok(d->trial_id) && applied);
    if (d->action == ENS_ASHA_NONE)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "no decision to commit");
    *applied = 0;
    return CALL(asha_commit, study, p, d, base_version, config_json ? config_json : "{}", applied,
                next, errstr, errstr_size);
}

ens_err_t ens_state_sched_asha_result(ens_state_t *st, const char *study,
                                      const ens_asha_params_t *p, const char *trial_id, int ok,
                                      double score, double epochs_done, const char *model_id,
                                      const char *error, int *applied, ens_asha_view_t *next,
                                      char *errstr, size_t errstr_size) {
    if (!trial_id)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "no trial id");
    NEED(id_ok(study) && params_ok(p) && trial_ok(trial_id) && applied);
    *applied = 0;
    return CALL(asha_result, study, p, trial_id, ok, score, epochs_done, model_id ? model_id : "",
                error ? error : "", applied, next, errstr, errstr_size);
}

/* ---- jobs in flight, dispatched, in the outbox ------------------------------------------ */

int ens_state_sched_inflight_parse(const char *rec, ens_state_sched_inflight_t *out) {
    ens_state_sched_inflight_t v;
    if (!rec || !out ||
        sscanf(rec, "%lld %d %d %lf %lf", &v.seq, &v.bracket, &v.rung, &v.from, &v.to) != 5)
        return 0;
    out->seq = v.seq;
    out->bracket = v.bracket;
    out->rung = v.rung;
    out->from = v.from;
    out->to = v.to;
    return 1;
}

const ens_state_sched_inflight_t *
ens_state_sched_inflight_find(const ens_state_sched_inflight_t *jobs, int n, const char *trial) {
    for (int i = 0; jobs && trial && i < n; i++)
        if (!strcmp(jobs[i].trial_id, trial))
            return &jobs[i];
    return NULL;
}

ens_err_t ens_state_sched_inflight_list(ens_state_t *st, const char *study,
                                        ens_state_sched_inflight_t **jobs, int *n, char *errstr,
                                        size_t errstr_size) {
    NEED(id_ok(study) && jobs && n);
    *jobs = NULL;
    *n = 0;
    return CALL(inflight_list, study, jobs, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_inflight_get(ens_state_t *st, const char *study, const char *trial,
                                       ens_state_sched_inflight_t *job, int *found, char *errstr,
                                       size_t errstr_size) {
    NEED(id_ok(study) && trial_ok(trial) && job && found);
    *found = 0;
    return CALL(inflight_get, study, trial, job, found, errstr, errstr_size);
}

ens_err_t ens_state_sched_inflight_count(ens_state_t *st, const char *study, long *n, char *errstr,
                                         size_t errstr_size) {
    NEED(id_ok(study) && n);
    *n = 0;
    return CALL(inflight_count, study, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_dispatched_list(ens_state_t *st, const char *study,
                                          ens_state_sched_dispatched_t **out, int *n, char *errstr,
                                          size_t errstr_size) {
    NEED(id_ok(study) && out && n);
    *out = NULL;
    *n = 0;
    return CALL(dispatched_list, study, out, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_dispatched_put(ens_state_t *st, const char *study,
                                         const ens_state_sched_dispatched_t *d, char *errstr,
                                         size_t errstr_size) {
    NEED(id_ok(study) && d && id_ok(d->trial_id) && d->sent_ms >= 0);
    return CALL(dispatched_put, study, d, errstr, errstr_size);
}

ens_err_t ens_state_sched_dispatched_remove(ens_state_t *st, const char *study, const char *trial,
                                            char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial));
    return CALL(dispatched_remove, study, trial, errstr, errstr_size);
}

ens_err_t ens_state_sched_outbox_list(ens_state_t *st, const char *study,
                                      ens_state_sched_outbox_t **out, int *n, char *errstr,
                                      size_t errstr_size) {
    NEED(id_ok(study) && out && n);
    *out = NULL;
    *n = 0;
    return CALL(outbox_list, study, out, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_outbox_put(ens_state_t *st, const char *study, long long seq,
                                     const char *trial, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && seq >= 0 && id_ok(trial));
    return CALL(outbox_put, study, seq, trial, errstr, errstr_size);
}

ens_err_t ens_state_sched_outbox_remove(ens_state_t *st, const char *study, long long seq,
                                        char *errstr, size_t errstr_size) {
    NEED(id_ok(study));
    return CALL(outbox_remove, study, seq, errstr, errstr_size);
}

ens_err_t ens_state_sched_trial_config(ens_state_t *st, const char *study, const char *trial,
                                       char **config, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial) && config);
    *config = NULL;
    return CALL(trial_config, study, trial, config, errstr, errstr_size);
}

/* ---- speeds, results watched, progress ------------------------------------------------- */

ens_err_t ens_state_sched_speed_put(ens_state_t *st, const char *study, const char *trial,
                                    double seconds_per_epoch, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial) && seconds_per_epoch > 0 && isfinite(seconds_per_epoch));
    return CALL(speed_put, study, trial, seconds_per_epoch, errstr, errstr_size);
}

ens_err_t ens_state_sched_speed_list(ens_state_t *st, const char *study, double **spe, int *n,
                                     char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && spe && n);
    *spe = NULL;
    *n = 0;
    return CALL(speed_list, study, spe, n, errstr, errstr_size);
}

ens_err_t ens_state_sched_results_get(ens_state_t *st, const char *study,
                                      ens_state_sched_results_t *out, char *errstr,
                                      size_t errstr_size) {
    NEED(id_ok(study) && out);
    memset(out, 0, sizeof *out);
    out->count = -1;
    out->since_ms = -1;
    ens_err_t err = CALL(results_get, study, out, errstr, errstr_size);
    if (err)
        ens_state_sched_results_clear(out);
    return err;
}

void ens_state_sched_results_clear(ens_state_sched_results_t *r) {
    if (!r)
        return;
    ens_state_strings_free(r->missing, r->n_missing);
    r->missing = NULL;
    r->n_missing = 0;
}

ens_err_t ens_state_sched_evalwatch_put(ens_state_t *st, const char *study, long long count,
                                        int64_t since_ms, long long rounds, char *errstr,
                                        size_t errstr_size) {
    NEED(id_ok(study) && since_ms >= 0);
    return CALL(evalwatch_put, study, count, since_ms, rounds, errstr, errstr_size);
}

ens_err_t ens_state_sched_evalwatch_del(ens_state_t *st, const char *study, char *errstr,
                                        size_t errstr_size) {
    NEED(id_ok(study));
    return CALL(evalwatch_put, study, -1, -1, -1, errstr, errstr_size);
}

ens_err_t ens_state_sched_counts(ens_state_t *st, const char *study, ens_state_sched_counts_t *out,
                                 char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && out);
    memset(out, 0, sizeof *out);
    return CALL(counts, study, out, errstr, errstr_size);
}

ens_err_t ens_state_sched_rung_get(ens_state_t *st, const char *study, int bracket, int rung,
                                   ens_state_sched_rung_t *out, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && bracket >= 0 && rung >= 0 && out);
    memset(out, 0, sizeof *out);
    out->best = out->median = NAN;
    return CALL(rung_get, study, bracket, rung, out, errstr, errstr_size);
}

/* ---- the trainer's side ----------------------------------------------------------------- */

static int trainer_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_STATE_TRAINER_ID_MAX && !strpbrk(s, " \t\r\n");
}

ens_err_t ens_state_sched_lease_take(ens_state_t *st, const char *study, const char *trial,
                                     const char *trainer, const char *model, int ttl_ms,
                                     int *refused, char *holder, size_t holder_size, char *errstr,
                                     size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial) && trainer_ok(trainer) && id_ok(model) &&
         !strpbrk(model, " ") && ttl_ms > 0 && refused && holder && holder_size > 0);
    holder[0] = '\0';
    *refused = 0;
    ens_err_t err = CALL(lease_take, study, trial, trainer, model, ttl_ms, holder, holder_size,
                         errstr, errstr_size);
    *refused = !err && holder[0];
    return err;
}

ens_err_t ens_state_sched_lease_renew(ens_state_t *st, const char *study, const char *trial,
                                      const char *trainer, const char *model, int ttl_ms, int *lost,
                                      char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial) && trainer_ok(trainer) && id_ok(model) && ttl_ms > 0 && lost);
    *lost = 0;
    return CALL(lease_renew, study, trial, trainer, model, ttl_ms, lost, errstr, errstr_size);
}

ens_err_t ens_state_sched_lease_drop(ens_state_t *st, const char *study, const char *trial,
                                     char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial));
    return CALL(lease_drop, study, trial, errstr, errstr_size);
}

ens_err_t ens_state_sched_lease_held(ens_state_t *st, const char *study, const char *trial,
                                     int *held, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(trial) && held);
    *held = 0;
    return CALL(lease_held, study, trial, held, errstr, errstr_size);
}

ens_err_t ens_state_sched_attempt_begin(ens_state_t *st, const char *study, const char *model,
                                        long long *attempt, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && attempt);
    *attempt = 0;
    return CALL(attempt_add, study, model, 1, attempt, errstr, errstr_size);
}

ens_err_t ens_state_sched_attempt_undo(ens_state_t *st, const char *study, const char *model,
                                       char *errstr, size_t errstr_size) {
    long long attempt = 0;
    NEED(id_ok(study) && id_ok(model));
    return CALL(attempt_add, study, model, -1, &attempt, errstr, errstr_size);
}

ens_err_t ens_state_sched_attempt_clear(ens_state_t *st, const char *study, const char *model,
                                        char *errstr, size_t errstr_size) {
    long long attempt = 0;
    NEED(id_ok(study) && id_ok(model));
    return CALL(attempt_add, study, model, 0, &attempt, errstr, errstr_size);
}

ens_err_t ens_state_sched_job_put(ens_state_t *st, const char *study, const ens_trial_result_t *res,
                                  char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && res && id_ok(res->model_id));
    return CALL(job_put, study, res, errstr, errstr_size);
}

ens_err_t ens_state_sched_job_get(ens_state_t *st, const char *study, const char *model,
                                  ens_trial_result_t *res, int *found, char *errstr,
                                  size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && res && found);
    *found = 0;
    return CALL(job_get, study, model, res, found, errstr, errstr_size);
}

ens_err_t ens_state_sched_job_progress(ens_state_t *st, const char *study, const char *model,
                                       double epochs, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && isfinite(epochs));
    return CALL(job_progress, study, model, epochs, errstr, errstr_size);
}
