/* proposer.c - the proposer's handler: studies accepted, stopped and extended, trial results
 * recorded in their rungs, and the tick that keeps every running study going. */
#include "proposer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"
#include "ensflow/space.h"
#include "recover.h"

static ens_err_t reject(ens_proposer_t *p, const ens_event_t *ev, const char *study,
                        const char *why, char *errstr, size_t size) {
    ens_event_t rej;
    ens_event_init(&rej, ENS_EV_STUDY_REJECTED);
    snprintf(rej.u.study_rejected.study_id, ENS_ID_MAX, "%s", study);
    rej.u.study_rejected.reason = strdup(why);
    ens_err_t err = rej.u.study_rejected.reason ? ENS_OK : ENS_ERR_NOMEM;
    ENS_WARN("study=%s msg=\"study rejected\" reason=\"%s\"", study, why);
    if (!err)
        err = ens_state_sched_study_status_put(p->state, study, "rejected", why, errstr, size);
    if (!err)
        err = ens_kafka_produce_event(p->producer, ENS_TOPIC_STUDY_COMMANDS, study, &rej,
                                      ev->event_id, errstr, size);
    ens_event_free(&rej);
    return err;
}

/* Schedule the study now over the live trainers (view: its scheduler state, when known). */
static ens_err_t schedule_now(ens_proposer_t *p, const char *study, const ens_asha_view_t *view,
                              char *errstr, size_t size) {
    int live = 0;
    ens_err_t err = ens_proposer_live_trainers(p->state, p->trainer_ttl_ms, &live, errstr, size);
    if (!err)
        err = ens_proposer_schedule_from(p, study, live, NULL, view, errstr, size);
    return err;
}

static ens_err_t on_study_created(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                  size_t size) {
    const ens_study_created_t *s = &ev->u.study_created;
    char why[512];
    if (!ens_state_sched_study_id_ok(s->study_id))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id '%s'", s->study_id);
    if (ens_space_validate(s->search_space_json, why, sizeof why))
        return reject(p, ev, s->study_id, why, errstr, size);
    if (s->n_trials < 1 || s->n_trials > 1000000 || !(s->epochs > 0) || s->epochs > 1000 ||
        !(s->val_fraction > 0 && s->val_fraction < 1) || !(s->max_epochs_budget >= 0) ||
        !(s->max_wall_seconds >= 0))
        return reject(p, ev, s->study_id, "n_trials, epochs, val_fraction or a budget out of range",
                      errstr, size);
    ens_asha_params_t ap = {.eta = s->eta > 0 ? s->eta : 3,
                            .r_min = s->min_epochs,
                            .r_max = s->epochs,
                            .s_max = -1,
                            .max_configs = s->n_trials,
                            .max_epochs = s->max_epochs_budget};
    if (ens_asha_kind_parse(s->scheduler, &ap.kind))
        return reject(p, ev, s->study_id, "scheduler must be random, sha, asha or hyperband",
                      errstr, size);
    if (ens_asha_params_init(&ap, why, sizeof why))
        return reject(p, ev, s->study_id, why, errstr, size);

    ens_state_sched_study_t rec = {
        .dataset = s->dataset,
        .search_space = s->search_space_json,
        .n_trials = s->n_trials,
        .top_k = s->top_k,
        .s_max = ap.s_max,
        .epochs = s->epochs,
        .val_fraction = s->val_fraction,
        .eta = ap.eta,
        .min_epochs = ap.r_min,
        .max_epochs_budget = ap.max_epochs,
        .seed = s->seed,
        .created_ms = ev->occurred_at,
        .deadline_ms =
            s->max_wall_seconds > 0 ? ev->occurred_at + (int64_t)(s->max_wall_seconds * 1000) : 0};
    snprintf(rec.study_id, sizeof rec.study_id, "%s", s->study_id);
    snprintf(rec.scheduler, sizeof rec.scheduler, "%s", ens_asha_kind_name(ap.kind));
    int created = 0;
    ens_err_t err = ens_state_sched_study_create(p->state, &rec, &created, errstr, size);
    if (err)
        return err;
    if (created)
        ENS_INFO("study=%s msg=\"study created\" scheduler=%s trials=%d epochs=%g r_min=%g eta=%g "
                 "brackets=%d rungs=%d dataset=%s",
                 s->study_id, ens_asha_kind_name(ap.kind), (int)s->n_trials, s->epochs, ap.r_min,
                 ap.eta, ens_asha_n_brackets(&ap), ap.m + 1, s->dataset);
    return schedule_now(p, s->study_id, NULL, errstr, size);
}

/* The job in flight that an OK result answers: 1 and its epochs when the result's model is
 * the one that job trains (ens_model_id of the trial at the job's top); 0 for a result of no
 * job in flight or of an earlier job of the trial (a copy issued again, or a result announced
 * again after the trial was promoted), which must not be booked against the job now in
 * flight. */
static ens_err_t job_answered(ens_proposer_t *p, const ens_trial_result_t *t, int *answers,
                              double *from, double *to, char *errstr, size_t size) {
    char mid[ENS_ID_MAX];
    ens_state_sched_inflight_t job;
    int found = 0;
    *answers = 0;
    ens_err_t err = ens_state_sched_inflight_get(p->state, t->study_id, t->trial_id, &job, &found,
                                                 errstr, size);
    if (!err && found) {
        *from = job.from;
        *to = job.to;
        ens_model_id(t->trial_id, *to, mid, sizeof mid);
        *answers = !strcmp(mid, t->model_id);
    }
    return err;
}

static ens_err_t on_trial_result(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                 size_t size) {
    const ens_trial_result_t *t = &ev->u.trial_result;
    ens_asha_params_t ap;
    ens_state_sched_study_t st;
    ens_err_t err = ens_state_sched_study_get(p->state, t->study_id, &st, errstr, size);
    if (!err) {
        err = ens_proposer_params(&st, &ap, errstr, size);
        ens_state_sched_study_clear(&st);
    }
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
    /* seconds per epoch of the job: what the deadline planning estimates the next jobs by */
    if (ok && t->train_seconds > 0 && to > from &&
        (err = ens_state_sched_speed_put(p->state, t->study_id, t->trial_id,
                                         t->train_seconds / (to - from), errstr, size)))
        return err;
    /* the step answers with the state after the result: the next decision's view */
    ens_asha_view_t *view = malloc(sizeof *view);
    if (!view)
        return ENS_ERR_NOMEM;
    err = ens_state_sched_asha_result(p->state, t->study_id, &ap, t->trial_id, ok, t->val_accuracy,
                                      t->epochs_done, t->model_id, t->error, &applied, view, errstr,
                                      size);
    if (!err && applied)
        err = ens_state_sched_dispatched_remove(p->state, t->study_id, t->trial_id, errstr, size);
    if (!err && applied)
        ENS_INFO("study=%s trial=%s msg=\"trial result\" status=%s model=%s epochs=%g "
                 "val_acc=%.4f",
                 t->study_id, t->trial_id, ok ? "ok" : "failed", t->model_id, t->epochs_done,
                 t->val_accuracy);
    else if (!err)
        ENS_INFO("study=%s trial=%s msg=\"result of no job in flight (redelivery), ignored\"",
                 t->study_id, t->trial_id);
    if (!err)
        err = schedule_now(p, t->study_id, view, errstr, size);
    free(view);
    return err;
}

static ens_err_t on_study_command(ens_proposer_t *p, const ens_event_t *ev, char *errstr,
                                  size_t size) {
    const ens_study_command_t *c = &ev->u.study_command;
    if (!ens_state_sched_study_id_ok(c->study_id))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id '%s'", c->study_id);
    ens_state_sched_study_t st;
    ens_err_t err = ens_state_sched_study_get(p->state, c->study_id, &st, errstr, size);
    if (err)
        return err;
    int found = st.status[0] != '\0';
    int64_t deadline = st.deadline_ms;
    ens_state_sched_study_clear(&st);
    if (!found)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "study %s: no such study", c->study_id);
    /* adding trials is not idempotent: apply each command once */
    int first = 0;
    if ((err = ens_state_sched_command_first(p->state, c->study_id, ev->event_id, &first, errstr,
                                             size)))
        return err;
    if (!first)
        return ENS_OK;
    if (!strcmp(c->command, "stop")) {
        if ((err = ens_state_sched_study_status_put(p->state, c->study_id, "stopping", NULL, errstr,
                                                    size)))
            return err;
        ENS_INFO("study=%s msg=\"stopping: no new jobs\"", c->study_id);
    } else if (!strcmp(c->command, "extend")) {
        if (c->add_trials < 0 || !(c->add_epochs_budget >= 0) || !(c->add_wall_seconds >= 0))
            return ens_err_set(errstr, size, ENS_ERR_INVALID, "extend: negative amounts");
        int64_t now = ens_now_ms(), base = deadline > now ? deadline : now, moved = 0;
        if (c->add_wall_seconds > 0 && deadline > 0)
            moved = base + (int64_t)(c->add_wall_seconds * 1000);
        if ((err = ens_state_sched_study_extend(p->state, c->study_id, c->add_trials,
                                                c->add_epochs_budget > 0 ? c->add_epochs_budget : 0,
                                                moved, errstr, size)))
            return err;
        ENS_INFO("study=%s msg=\"extended\" add_trials=%d add_epochs=%g add_seconds=%g",
                 c->study_id, (int)c->add_trials, c->add_epochs_budget, c->add_wall_seconds);
    } else {
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "unknown study command '%s'", c->command);
    }
    return schedule_now(p, c->study_id, NULL, errstr, size);
}

ens_err_t ens_proposer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size) {
    ens_proposer_t *p = ctx;
    switch (ev->type) {
    case ENS_EV_STUDY_CREATED:
        return on_study_created(p, ev, errstr, errstr_size);
    case ENS_EV_TRIAL_RESULT:
        return on_trial_result(p, ev, errstr, errstr_size);
    case ENS_EV_STUDY_COMMAND:
        return on_study_command(p, ev, errstr, errstr_size);
    case ENS_EV_STUDY_REJECTED:
        return ENS_OK; /* our own answer on study.commands */
    default:
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "proposer does not take %s",
                           ens_event_type_name(ev->type));
    }
}

void ens_proposer_tick(void *ctx) {
    ens_proposer_t *p = ctx;
    char errstr[512];
    char **active = NULL;
    int live = 0, n = 0;
    int64_t now = ens_now_ms();
    if (now - p->last_tick_ms < (p->tick_ms > 0 ? p->tick_ms : 1000))
        return;
    p->last_tick_ms = now;
    if (ens_proposer_live_trainers(p->state, p->trainer_ttl_ms, &live, errstr, sizeof errstr)) {
        ENS_WARN("msg=\"tick: cannot count trainers\" error=\"%s\"", errstr);
        return;
    }
    if (ens_state_sched_active_list(p->state, &active, &n, errstr, sizeof errstr)) {
        ENS_WARN("msg=\"tick: cannot list studies\" error=\"%s\"", errstr);
        return;
    }
    for (int i = 0; i < n; i++) {
        int issued = 0, reissued = 0;
        if (ens_recover_jobs(p, active[i], &reissued, errstr, sizeof errstr))
            ENS_WARN("study=%s msg=\"tick: cannot look for lost jobs\" error=\"%s\"", active[i],
                     errstr);
        if (ens_proposer_schedule(p, active[i], live, &issued, errstr, sizeof errstr))
            ENS_WARN("study=%s msg=\"tick: scheduling failed\" error=\"%s\"", active[i], errstr);
    }
    ens_state_strings_free(active, n);
    ens_recover_results_all(p);
}
