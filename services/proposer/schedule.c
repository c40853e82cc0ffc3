/* schedule.c - one scheduling pass of a study: decide and commit jobs while the trainers have
 * room, produce the committed ones to the least-loaded trainer, end the study when nothing is
 * left to do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"
#include "ensflow/space.h"
#include "proposer.h"

ens_err_t ens_proposer_params(const ens_state_sched_study_t *s, ens_asha_params_t *ap, char *errstr,
                              size_t size) {
    memset(ap, 0, sizeof *ap);
    if (!s->scheduler[0])
        return ENS_ERR_NOTFOUND;
    if (ens_asha_kind_parse(s->scheduler, &ap->kind))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "stored scheduler unknown");
    ap->eta = s->eta;
    ap->r_min = s->min_epochs;
    ap->r_max = s->epochs;
    ap->s_max = s->s_max;
    ap->max_configs = s->n_trials;
    ap->max_epochs = s->max_epochs_budget;
    return ens_asha_params_init(ap, errstr, size);
}

/* Seconds before the deadline kept free of training: the last checkpoints' evaluation. */
#define DEADLINE_MARGIN_S 5.0

/* The epochs a job may train and still end before the deadline, at the study's measured
 * seconds per epoch (the 75th percentile over its trials: configurations differ in speed),
 * after the work already in flight (spread over the trainers: a new job may wait behind it);
 * 0 (no limit) before any job has reported. */
static ens_err_t deadline_epochs(ens_proposer_t *p, const char *study, int64_t deadline_ms,
                                 int slots, double *max_job_epochs, char *errstr, size_t size) {
    ens_state_sched_inflight_t *jobs = NULL;
    double *spe = NULL;
    int n_jobs = 0, n = 0;
    *max_job_epochs = 0;
    if (deadline_ms <= 0)
        return ENS_OK;
    ens_err_t err = ens_state_sched_inflight_list(p->state, study, &jobs, &n_jobs, errstr, size);
    if (err)
        return err;
    double queued = 0;
    for (int i = 0; i < n_jobs; i++)
        queued += jobs[i].to - jobs[i].from;
    free(jobs);
    queued /= slots > 0 ? slots : 1;
    if ((err = ens_state_sched_speed_list(p->state, study, &spe, &n, errstr, size)))
        return err;
    if (n > 0) {
        double s = spe[n * 3 / 4];
        double left = (double)(deadline_ms - ens_now_ms()) / 1e3 - DEADLINE_MARGIN_S;
        if (s > 0)
            *max_job_epochs = left / s - queued > 0 ? left / s - queued : 1e-9;
    }
    free(spe);
    return ENS_OK;
}

/* Produce one committed decision's job to the least-loaded live trainer's partition (keyed by
 * trial either way, and by key hash, spread over the partitions, while no trainer's partitions
 * are known), then record where it went. */
static ens_err_t send_job(ens_proposer_t *p, const ens_state_sched_study_t *st,
                          const ens_state_sched_inflight_t *rec, const char *config,
                          ens_dispatch_t *d, char *errstr, size_t size) {
    const char *study = st->study_id, *trial = rec->trial_id;
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    ens_trial_job_t *j = &ev.u.trial_job;
    snprintf(j->study_id, sizeof j->study_id, "%s", study);
    snprintf(j->trial_id, sizeof j->trial_id, "%s", trial);
    j->config_json = strdup(config);
    j->dataset = strdup(st->dataset ? st->dataset : "");
    j->val_fraction = st->val_fraction;
    j->seed = st->seed;
    j->epochs = rec->to;
    j->from_epoch = rec->from;
    j->attempt = 1;
    ens_err_t err = j->config_json && j->dataset ? ENS_OK : ENS_ERR_NOMEM;
    const char *tid = NULL;
    int32_t part = err ? ENS_DISPATCH_BY_KEY : ens_dispatch_pick(d, rec->to - rec->from, &tid);
    if (!err && part != ENS_DISPATCH_BY_KEY &&
        ens_kafka_produce_event_to(p->producer, ENS_TOPIC_TRIAL_JOBS, part, trial, &ev, NULL,
                                   errstr, size)) {
        ENS_WARN("study=%s trial=%s msg=\"explicit partition refused, sending by key\" "
                 "partition=%d error=\"%s\"",
                 study, trial, (int)part, errstr);
        part = ENS_DISPATCH_BY_KEY;
        tid = NULL;
    }
    if (!err && part == ENS_DISPATCH_BY_KEY)
        err = ens_kafka_produce_event(p->producer, ENS_TOPIC_TRIAL_JOBS, trial, &ev, NULL, errstr,
                                      size);
    ens_state_sched_dispatched_t sent = {
        .seq = rec->seq, .partition = part, .sent_ms = ens_now_ms()};
    snprintf(sent.trial_id, sizeof sent.trial_id, "%s", trial);
    if (!err)
        err = ens_state_sched_dispatched_put(p->state, study, &sent, errstr, size);
    if (!err)
        ENS_INFO("study=%s trial=%s msg=\"job issued\" decision=%lld bracket=%d rung=%d "
                 "from_epoch=%g epochs=%g partition=%d trainer=%s",
                 study, trial, rec->seq, rec->bracket, rec->rung, rec->from, rec->to, (int)part,
                 tid ? tid : "-");
    ens_event_free(&ev);
    return err;
}

/* Produce the jobs of committed decisions still in the outbox, then clear them. Each goes to a
 * partition of the live trainer with the least work in flight (dispatch.h), or by key hash
 * while no trainer has published its partitions. */
static ens_err_t send_outbox(ens_proposer_t *p, const ens_state_sched_study_t *st, int *sent,
                             char *errstr, size_t size) {
    const char *study = st->study_id;
    ens_state_sched_outbox_t *box = NULL;
    ens_dispatch_t *d = NULL;
    int n = 0;
    *sent = 0;
    ens_err_t err = ens_state_sched_outbox_list(p->state, study, &box, &n, errstr, size);
    if (!err && n > 0)
        err = ens_proposer_dispatch_state(p, study, &d, errstr, size);
    for (int i = 0; !err && i < n; i++) {
        ens_state_sched_inflight_t rec;
        char *config = NULL;
        int found = 0;
        err = ens_state_sched_inflight_get(p->state, study, box[i].trial_id, &rec, &found, errstr,
                                           size);
        if (!err && found) {
            err = ens_state_sched_trial_config(p->state, study, box[i].trial_id, &config, errstr,
                                               size);
            if (err == ENS_ERR_NOTFOUND)
                err = ENS_OK;
        }
        /* no job in flight of that decision: its result came already (a re-send after a
         * crash), nothing to send */
        if (!err && found && rec.seq == box[i].seq && config &&
            !(err = send_job(p, st, &rec, config, d, errstr, size)))
            (*sent)++;
        free(config);
    }
    /* Only once the jobs are delivered are they taken out of the outbox: a crash before this
     * point sends them again, and trainers deduplicate by model id. */
    if (!err && n > 0) {
        err = ens_kafka_flush(p->producer, 30000, errstr, size);
        for (int i = 0; !err && i < n; i++)
            err = ens_state_sched_outbox_remove(p->state, study, box[i].seq, errstr, size);
    }
    ens_dispatch_free(d);
    free(box);
    return err;
}

ens_err_t ens_proposer_schedule(ens_proposer_t *p, const char *study, int slots, int *issued,
                                char *errstr, size_t size) {
    return ens_proposer_schedule_from(p, study, slots, issued, NULL, errstr, size);
}

/* Stale commits in a row before a pass gives up (the tick tries again): another proposer
 * instance keeps changing the study's state. */
#define MAX_STALE 16

/* Decide and commit while the trainers have room; n_new: decisions applied, idle: 1 when the
 * scheduler has nothing more to decide. One round trip per decision: each commit answers
 * with the state the next decision needs. */
static ens_err_t decide(ens_proposer_t *p, const ens_state_sched_study_t *st,
                        const ens_asha_params_t *ap, const ens_asha_view_t *view, long *inflight,
                        int capacity, int *n_new, int *idle, char *errstr, size_t size) {
    const char *study = st->study_id;
    int stale = 0;
    ens_err_t err = ENS_OK;
    ens_asha_view_t *v = malloc(sizeof *v), *next = malloc(sizeof *next);
    if (!v || !next)
        err = ENS_ERR_NOMEM;
    else if (view)
        *v = *view;
    else
        err = ens_state_sched_asha_view(p->state, study, ap, v, NULL, errstr, size);
    while (!err) {
        ens_asha_decision_t d;
        ens_asha_decide(ap, v, &d);
        if (d.action == ENS_ASHA_NONE) {
            *idle = 1;
            break;
        }
        if (*inflight >= capacity)
            break;
        char *config = NULL;
        /* the seed read as a number, as the proposer always has: the same configurations */
        if (d.action == ENS_ASHA_NEW &&
            (err = ens_space_sample(st->search_space, (uint64_t)(double)st->seed, d.config_index,
                                    &config, errstr, size)))
            break;
        int applied = 0;
        err = ens_state_sched_asha_commit(p->state, study, ap, &d, v->version, config, &applied,
                                          next, errstr, size);
        free(config);
        if (!err) {
            ens_asha_view_t *tmp = v;
            v = next;
            next = tmp;
        }
        if (!err && !applied && ++stale >= MAX_STALE) {
            ENS_WARN("study=%s msg=\"state keeps changing under the scheduler; next tick\"", study);
            break;
        }
        if (!err && applied) {
            stale = 0;
            (*inflight)++;
            (*n_new)++;
            ENS_INFO("study=%s trial=%s msg=\"decision\" seq=%lld action=%s bracket=%d rung=%d "
                     "epochs=%g->%g",
                     study, d.trial_id, (long long)d.seq,
                     d.action == ENS_ASHA_NEW ? "new" : "promote", d.bracket, d.rung, d.from_epochs,
                     d.to_epochs);
        }
    }
    free(v);
    free(next);
    return err;
}

ens_err_t ens_proposer_schedule_from(ens_proposer_t *p, const char *study, int slots, int *issued,
                                     const ens_asha_view_t *view, char *errstr, size_t size) {
    ens_asha_params_t ap;
    ens_state_sched_study_t st;
    if (issued)
        *issued = 0;
    ens_err_t err = ens_state_sched_study_get(p->state, study, &st, errstr, size);
    if (err)
        return err;
    err = ens_proposer_params(&st, &ap, errstr, size);
    const char *status = st.status;
    int64_t deadline = st.deadline_ms;
    int open = !strcmp(status, "running") && (deadline <= 0 || ens_now_ms() < deadline);
    if (!err && open)
        err = deadline_epochs(p, study, deadline, slots, &ap.max_job_epochs, errstr, size);
    long inflight = 0;
    if (!err)
        err = ens_state_sched_inflight_count(p->state, study, &inflight, errstr, size);
    int capacity = (slots > 0 ? slots : 1) * (p->jobs_per_trainer > 0 ? p->jobs_per_trainer : 1);
    int n_new = 0, idle = 0, sent = 0;
    if (!err && open)
        err = decide(p, &st, &ap, view, &inflight, capacity, &n_new, &idle, errstr, size);
    if (!err)
        err = send_outbox(p, &st, &sent, errstr, size);
    if (issued)
        *issued = n_new;
    /* the end: nothing in flight and nothing more to decide (or no longer allowed to). The
     * steps after the status are done again while the study is still active, so that one
     * that failed half way is finished by a later tick. */
    int ended = !strcmp(status, "complete") || !strcmp(status, "stopped");
    int still_active = 0;
    if (!err && inflight == 0 && (idle || !open) && ended)
        err = ens_state_sched_active_has(p->state, study, &still_active, errstr, size);
    if (!err && inflight == 0 && (idle || !open) && (!ended || still_active)) {
        const char *final = ended ? status : !strcmp(status, "stopping") ? "stopped" : "complete";
        err = ens_state_sched_study_end(p->state, study, ended ? NULL : final, errstr, size);
        if (!err)
            ENS_INFO("study=%s msg=\"study %s\"", study, final);
    }
    ens_state_sched_study_clear(&st);
    return err;
}
