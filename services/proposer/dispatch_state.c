/* dispatch_state.c - what the proposer knows of the trainers: how many are alive, which
 * partitions of trial.jobs each owns, and the jobs in flight on each (dispatch.h decides). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"
#include "proposer.h"

ens_err_t ens_proposer_live_trainers(ens_state_t *st, int ttl_ms, int *n, char *errstr,
                                     size_t size) {
    int64_t since = ens_now_ms() - (ttl_ms > 0 ? ttl_ms : 15000);
    return ens_state_trainer_live(st, since, n, errstr, size);
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

/* Count a study's jobs in flight on the partitions they were sent to, with their epochs: a
 * dispatch record counts while the trial's job in flight is the decision it was sent for. */
static ens_err_t count_study_jobs(ens_proposer_t *p, ens_dispatch_t *d, const char *study,
                                  char *errstr, size_t size) {
    if (!ens_state_sched_study_id_ok(study))
        return ENS_OK; /* not a study id we wrote: nothing of ours in flight */
    ens_state_sched_inflight_t *jobs = NULL;
    ens_state_sched_dispatched_t *sent = NULL;
    int n_jobs = 0, n_sent = 0;
    ens_err_t err = ens_state_sched_inflight_list(p->state, study, &jobs, &n_jobs, errstr, size);
    if (!err)
        err = ens_state_sched_dispatched_list(p->state, study, &sent, &n_sent, errstr, size);
    for (int i = 0; !err && i < n_sent; i++) {
        const ens_state_sched_inflight_t *job =
            ens_state_sched_inflight_find(jobs, n_jobs, sent[i].trial_id);
        if (job && job->seq == sent[i].seq)
            ens_dispatch_add_job(d, sent[i].partition, job->to - job->from);
    }
    free(jobs);
    free(sent);
    return err;
}

ens_err_t ens_proposer_dispatch_state(ens_proposer_t *p, const char *study, ens_dispatch_t **out,
                                      char *errstr, size_t size) {
    ens_dispatch_t *d = NULL;
    char **active = NULL;
    int n_active = 0, seen_self = 0;
    *out = NULL;
    ens_err_t err =
        ens_proposer_dispatch_trainers(p->state, ens_now_ms(), p->trainer_ttl_ms, &d, errstr, size);
    if (!err)
        err = ens_state_sched_active_list(p->state, &active, &n_active, errstr, size);
    for (int i = 0; !err && i < n_active; i++) {
        seen_self |= !strcmp(active[i], study);
        err = count_study_jobs(p, d, active[i], errstr, size);
    }
    if (!err && !seen_self)
        err = count_study_jobs(p, d, study, errstr, size);
    ens_state_strings_free(active, n_active);
    if (err)
        ens_dispatch_free(d);
    else
        *out = d;
    return err;
}
