/* recover.c - what a lost trainer or a lost broker leaves undone: jobs in flight that no trainer
 * holds are issued again, and results that never reached the evaluator are announced again. */
#include "recover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"

/* Whether a trainer busy as state says ("busy <study> <model>") is known to have passed over
 * job s of study: it trains a later decision of the study sent to the same partition, and a
 * partition is read in order. (A job issued again keeps its decision, so this can take a job
 * still queued for one passed over; that costs a copy, which trainers drop.) */
static int passed_over(const char *state, const char *study, const ens_state_sched_dispatched_t *s,
                       const ens_state_sched_dispatched_t *sent, int n_sent) {
    size_t n = strlen(study);
    char trial[ENS_ID_MAX];
    if (strncmp(state, "busy ", 5) || strncmp(state + 5, study, n) || state[5 + n] != ' ' ||
        ens_model_id_trial(state + 6 + n, trial, sizeof trial))
        return 0;
    for (int i = 0; i < n_sent; i++)
        if (!strcmp(sent[i].trial_id, trial))
            return sent[i].partition == s->partition && sent[i].seq > s->seq;
    return 0;
}

/* Whether job s of study, sent to a partition (-1: by key hash, which any busy trainer may
 * hold next), may wait in a queue behind a busy live trainer's running job: not lost yet. */
static int queued_behind_busy(const ens_dispatch_t *d, const char *study,
                              const ens_state_sched_dispatched_t *s,
                              const ens_state_sched_dispatched_t *sent, int n_sent, char **tids,
                              char **tstates, int n_states) {
    int32_t part = s->partition;
    const char *owner = ens_dispatch_owner(d, part);
    for (int j = 0; (owner || part < 0) && j < n_states; j++)
        if (tids[j][0] && (part < 0 || !strcmp(tids[j], owner)) &&
            !strncmp(tstates[j], "busy", 4) &&
            ens_dispatch_trainer_load(d, tids[j], NULL, NULL) == 0)
            return part < 0 || !passed_over(tstates[j], study, s, sent, n_sent);
    return 0;
}

/* Start the reissue clock of job s again, at now. */
static ens_err_t restart_clock(ens_proposer_t *p, const char *study,
                               const ens_state_sched_dispatched_t *s, int64_t now, char *errstr,
                               size_t size) {
    ens_state_sched_dispatched_t stamped = *s;
    stamped.sent_ms = now;
    return ens_state_sched_dispatched_put(p->state, study, &stamped, errstr, size);
}

/* Issue again the jobs in flight that no live trainer holds: the job's lease (which its
 * trainer renews while it trains) is gone, no busy live trainer owns the partition it went to
 * (a job queued behind a running one is not lost) or its owner trains a later job of the
 * partition, and reissue_ms have passed since it was sent or since it was last seen queued:
 * the clock counts from when a trainer could have taken it, not from the send, so a trainer
 * that finishes a long job has time to take the next. That is a job lost with its trainer, or
 * with the broker (the job or its result). Trainers drop a copy of a job that another trainer
 * holds and report a trained one again from its record, so a job thought lost too early costs
 * little. */
ens_err_t ens_recover_jobs(ens_proposer_t *p, const char *study, int *reissued, char *errstr,
                           size_t size) {
    ens_state_sched_inflight_t *jobs = NULL;
    ens_state_sched_dispatched_t *sent = NULL;
    char **tids = NULL, **tstates = NULL;
    int n_jobs = 0, n_sent = 0, n_states = 0;
    ens_dispatch_t *d = NULL;
    *reissued = 0;
    if (!ens_state_sched_study_id_ok(study))
        return ENS_OK;
    ens_err_t err = ens_state_sched_inflight_list(p->state, study, &jobs, &n_jobs, errstr, size);
    if (!err)
        err = ens_state_sched_dispatched_list(p->state, study, &sent, &n_sent, errstr, size);
    if (!err && n_sent > 0)
        err = ens_state_trainer_state_list(p->state, &tids, &tstates, &n_states, errstr, size);
    if (!err && n_sent > 0)
        err = ens_proposer_dispatch_state(p, study, &d, errstr, size);
    int64_t now = ens_now_ms(), reissue_ms = p->reissue_ms > 0 ? p->reissue_ms : 30000;
    for (int i = 0; !err && i < n_sent; i++) {
        const ens_state_sched_dispatched_t *s = &sent[i];
        if (s->sent_ms < 0) { /* sent by a proposer before this one: its clock starts now */
            err = restart_clock(p, study, s, now, errstr, size);
            continue;
        }
        const ens_state_sched_inflight_t *job =
            ens_state_sched_inflight_find(jobs, n_jobs, s->trial_id);
        if (!job || job->seq != s->seq)
            continue;
        if (queued_behind_busy(d, study, s, sent, n_sent, tids, tstates, n_states)) {
            /* its clock starts again (written every quarter of reissue_ms, not every tick); not
             * for a job sent by key, which any busy trainer would keep waiting for ever */
            if (s->partition >= 0 && now - s->sent_ms >= reissue_ms / 4)
                err = restart_clock(p, study, s, now, errstr, size);
            continue;
        }
        if (now - s->sent_ms < reissue_ms)
            continue;
        int held = 0;
        if ((err = ens_state_sched_lease_held(p->state, study, s->trial_id, &held, errstr, size)))
            break;
        if (held)
            continue;
        if ((err = ens_state_sched_outbox_put(p->state, study, s->seq, s->trial_id, errstr, size)))
            break;
        (*reissued)++;
        ENS_WARN("study=%s trial=%s msg=\"job in flight held by no trainer, issued again\" "
                 "decision=%lld epochs=%g->%g partition=%d waiting_s=%.0f",
                 study, s->trial_id, s->seq, job->from, job->to, (int)s->partition,
                 (double)(now - s->sent_ms) / 1e3);
    }
    ens_dispatch_free(d);
    ens_state_strings_free(tids, n_states);
    ens_state_strings_free(tstates, n_states);
    free(jobs);
    free(sent);
    return err;
}

/* Rounds of announcements a study gets, over its whole life: a model that never reaches the
 * library (the evaluator refuses it) is not announced for ever. */
#define MAX_ROUNDS 5

/* The TrialResult of model mid again, from what its trainer recorded. */
static ens_err_t resend_result(ens_proposer_t *p, const char *study, const char *mid, char *errstr,
                               size_t size) {
    ens_event_t ev;
    int found = 0;
    ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
    ens_trial_result_t *r = &ev.u.trial_result;
    ens_err_t err = ENS_OK;
    if (!ens_model_id_trial(mid, r->trial_id, sizeof r->trial_id)) /* else not a trainer's */
        err = ens_state_sched_job_get(p->state, study, mid, r, &found, errstr, size);
    if (!err && found) {
        snprintf(r->study_id, sizeof r->study_id, "%s", study);
        err = ens_kafka_produce_event(p->producer, ENS_TOPIC_TRIAL_RESULTS, study, &ev, NULL,
                                      errstr, size);
    }
    ens_event_free(&ev);
    return err;
}

/* Each tick: the library and the accepted models counted; while neither changes for
 * 2 x reissue_ms and some accepted model is not in the library, their results go out again. */
ens_err_t ens_recover_results(ens_proposer_t *p, const char *study, int *resent, int *settled,
                              char *errstr, size_t size) {
    ens_state_sched_results_t r;
    *resent = 0;
    *settled = 0;
    if (!ens_state_sched_study_id_ok(study))
        return ENS_OK;
    ens_err_t err = ens_state_sched_results_get(p->state, study, &r, errstr, size);
    if (err)
        return err;
    int64_t now = ens_now_ms();
    /* the state of both sets in one number: either one changing restarts the clock */
    long long count = r.library * 1000003LL + r.models;
    long long since = r.since_ms >= 0 ? r.since_ms : now;
    if (r.n_missing == 0) {
        *settled = 1;
        if (r.watched)
            err = ens_state_sched_evalwatch_del(p->state, study, errstr, size);
    } else if (r.rounds >= MAX_ROUNDS) { /* the watch stays: given up for good */
        *settled = 1;
    } else if (count != r.count) { /* a result or an evaluation came: nothing is lost yet */
        err = ens_state_sched_evalwatch_put(p->state, study, count, now, -1, errstr, size);
    } else if (now - since >= 2LL * (p->reissue_ms > 0 ? p->reissue_ms : 30000)) {
        /* the round counts before anything is sent: a broker that is down does not make every
         * tick send them all again (they wait in the producer's queue until it is back) */
        err = ens_state_sched_evalwatch_put(p->state, study, -1, now, r.rounds + 1, errstr, size);
        for (int i = 0; !err && i < r.n_missing; i++)
            if (!(err = resend_result(p, study, r.missing[i], errstr, size)))
                (*resent)++;
        if (!err)
            ENS_WARN("study=%s msg=\"results that never reached the library announced again\" "
                     "models=%d library=%lld stalled_s=%.0f round=%lld",
                     study, *resent, r.library, (double)(now - since) / 1e3, r.rounds + 1);
    }
    ens_state_sched_results_clear(&r);
    return err;
}

void ens_recover_results_all(ens_proposer_t *p) {
    char errstr[512];
    for (int settling = 0; settling < 2; settling++) {
        char **studies = NULL;
        int n = 0;
        if (settling ? ens_state_sched_settling_list(p->state, &studies, &n, errstr, sizeof errstr)
                     : ens_state_sched_active_list(p->state, &studies, &n, errstr, sizeof errstr))
            continue;
        for (int i = 0; i < n; i++) {
            int resent = 0, settled = 0;
            if (ens_recover_results(p, studies[i], &resent, &settled, errstr, sizeof errstr))
                ENS_WARN("study=%s msg=\"tick: cannot look for lost results\" error=\"%s\"",
                         studies[i], errstr);
            else if (settled && settling)
                ens_state_sched_settling_remove(p->state, studies[i], NULL, 0);
        }
        ens_state_strings_free(studies, n);
    }
}
