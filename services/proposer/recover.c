/* recover.c - what a lost trainer or a lost broker leaves undone: jobs in flight that no trainer
 * holds are issued again, and results that never reached the evaluator are announced again. */
#include "recover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asha_redis.h"
#include "ensflow/job_record.h"
#include "ensflow/log.h"

/* Issue again the jobs in flight that no live trainer holds: the job's lease
 * (ens:{s}:lease:<trial>, which its trainer renews while it trains) is gone, it was sent more
 * than reissue_ms ago, and no busy live trainer owns the partition it went to (a job queued
 * behind a running one is not lost). That is a job lost with its trainer, or with the broker
 * (the job or its result). Trainers drop a copy of a job that another trainer holds and
 * report a trained one again from Redis, so a job thought lost too early costs little. */
ens_err_t ens_recover_jobs(ens_proposer_t *p, const char *study, int *reissued, char *errstr,
                           size_t size) {
    char infl[256], disp[256], obox[256], lkey[256];
    *reissued = 0;
    if (!ens_key(infl, sizeof infl, study, "inflight") ||
        !ens_key(disp, sizeof disp, study, "dispatched") ||
        !ens_key(obox, sizeof obox, study, "outbox"))
        return ENS_OK;
    const char *c0[] = {"HGETALL", infl}, *c1[] = {"HGETALL", disp};
    const char **cmds[] = {c0, c1};
    const int argc[] = {2, 2};
    ens_redis_reply_t *r[2] = {NULL, NULL};
    char **tids = NULL, **tstates = NULL;
    int n_states = 0;
    ens_err_t err = ens_redis_pipeline(p->redis, 2, argc, cmds, r, errstr, size);
    for (int i = 0; !err && i < 2; i++)
        if (r[i]->type != ENS_REPLY_ARRAY)
            err = ens_err_set(errstr, size, ENS_ERR_REDIS, "reissue: unexpected reply");
    if (!err && r[1]->elements > 0)
        err = ens_state_trainer_state_list(p->state, &tids, &tstates, &n_states, errstr, size);
    ens_dispatch_t *d = NULL;
    if (!err && r[1]->elements > 0)
        err = ens_proposer_dispatch_state(p, study, &d, errstr, size);
    int64_t now = ens_now_ms();
    for (size_t i = 0; !err && i + 1 < r[1]->elements; i += 2) {
        const char *trial = r[1]->element[i]->str, *rec = r[1]->element[i + 1]->str;
        long long dseq = -1, sent = 0;
        int part = -1;
        ens_asha_inflight_t job;
        int fields = trial && rec ? sscanf(rec, "%lld %d %lld", &dseq, &part, &sent) : 0;
        if (fields < 2)
            continue;
        if (fields == 2) { /* sent by a proposer before this one: its clock starts now */
            err = ens_redis_exec(p->redis, errstr, size, "HSET %s %s %lld %d %lld", disp, trial,
                                 dseq, part, (long long)now);
            continue;
        }
        if (!ens_asha_inflight_find(r[0], trial, &job) || job.seq != dseq ||
            now - sent < (p->reissue_ms > 0 ? p->reissue_ms : 30000))
            continue;
        /* sent by key hash (no trainer had published its partitions): any busy trainer may
         * hold it next */
        const char *owner = ens_dispatch_owner(d, part);
        int owner_busy = 0;
        for (int j = 0; (owner || part < 0) && j < n_states; j++)
            if (tids[j][0] && (part < 0 || !strcmp(tids[j], owner)) &&
                !strncmp(tstates[j], "busy", 4) &&
                ens_dispatch_trainer_load(d, tids[j], NULL, NULL) == 0)
                owner_busy = 1;
        if (owner_busy)
            continue;
        ens_key(lkey, sizeof lkey, study, "lease:%s", trial);
        ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, size, "EXISTS %s", lkey);
        if (!rep) {
            err = ENS_ERR_REDIS;
            break;
        }
        int held = rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
        ens_redis_reply_free(rep);
        if (held)
            continue;
        char seq[32];
        snprintf(seq, sizeof seq, "%lld", dseq);
        if ((err = ens_redis_exec(p->redis, errstr, size, "HSET %s %s %s", obox, seq, trial)))
            break;
        (*reissued)++;
        ENS_WARN("study=%s trial=%s msg=\"job in flight held by no trainer, issued again\" "
                 "decision=%s epochs=%g->%g partition=%d sent_s_ago=%.0f",
                 study, trial, seq, job.from, job.to, part, (double)(now - sent) / 1e3);
    }
    ens_dispatch_free(d);
    ens_state_strings_free(tids, n_states);
    ens_state_strings_free(tstates, n_states);
    for (int i = 0; i < 2; i++)
        ens_redis_reply_free(r[i]);
    return err;
}


/* Rounds of announcements a study gets, over its whole life: a model that never reaches the
 * library (the evaluator refuses it) is not announced for ever. */
#define MAX_ROUNDS 5

/* The TrialResult of model mid again, from what its trainer recorded. */
static ens_err_t resend_result(ens_proposer_t *p, const char *study, const char *mid,
                               char *errstr, size_t size) {
    ens_event_t ev;
    int found = 0;
    ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
    ens_trial_result_t *r = &ev.u.trial_result;
    ens_err_t err = ens_model_id_trial(mid, r->trial_id, sizeof r->trial_id)
                        ? ENS_OK /* not a model id a trainer made */
                        : ens_job_record_get(p->redis, study, mid, r, &found, errstr, size);
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
    char models[256], lib[256], watch[256];
    *resent = 0;
    *settled = 0;
    if (!ens_key(models, sizeof models, study, "models") ||
        !ens_key(lib, sizeof lib, study, "library") ||
        !ens_key(watch, sizeof watch, study, "evalwatch"))
        return ENS_OK;
    const char *c0[] = {"SDIFF", models, lib}, *c1[] = {"SCARD", lib}, *c2[] = {"SCARD", models},
               *c3[] = {"HMGET", watch, "count", "since_ms", "rounds"};
    const char **cmds[] = {c0, c1, c2, c3};
    const int argc[] = {3, 2, 2, 5};
    ens_redis_reply_t *r[4] = {NULL, NULL, NULL, NULL};
    ens_err_t err = ens_redis_pipeline(p->redis, 4, argc, cmds, r, errstr, size);
    if (!err && (r[0]->type != ENS_REPLY_ARRAY || r[1]->type != ENS_REPLY_INTEGER ||
                 r[2]->type != ENS_REPLY_INTEGER || r[3]->type != ENS_REPLY_ARRAY ||
                 r[3]->elements != 3))
        err = ens_err_set(errstr, size, ENS_ERR_REDIS, "recover results: unexpected reply");
    if (err)
        goto out;
    int64_t now = ens_now_ms();
    /* the state of both sets in one number: either one changing restarts the clock */
    long long count = r[1]->integer * 1000003LL + r[2]->integer;
    long long seen = r[3]->element[0]->str ? strtoll(r[3]->element[0]->str, NULL, 10) : -1;
    long long since = r[3]->element[1]->str ? strtoll(r[3]->element[1]->str, NULL, 10) : now;
    long long rounds = r[3]->element[2]->str ? strtoll(r[3]->element[2]->str, NULL, 10) : 0;
    if (r[0]->elements == 0) {
        *settled = 1;
        if (r[3]->element[0]->str)
            err = ens_redis_exec(p->redis, errstr, size, "DEL %s", watch);
        goto out;
    }
    if (rounds >= MAX_ROUNDS) { /* the watch stays: given up for good, not counted anew */
        *settled = 1;
        goto out;
    }
    if (count != seen) { /* a result or an evaluation came: nothing is lost yet */
        err = ens_redis_exec(p->redis, errstr, size, "HSET %s count %lld since_ms %lld", watch,
                             count, (long long)now);
        goto out;
    }
    if (now - since < 2LL * (p->reissue_ms > 0 ? p->reissue_ms : 30000))
        goto out;
    /* the round counts before anything is sent: a broker that is down does not make every
     * tick send them all again (they wait in the producer's queue until it is back) */
    if ((err = ens_redis_exec(p->redis, errstr, size, "HSET %s since_ms %lld rounds %lld", watch,
                              (long long)now, rounds + 1)))
        goto out;
    for (size_t i = 0; !err && i < r[0]->elements; i++)
        if (r[0]->element[i]->str && !(err = resend_result(p, study, r[0]->element[i]->str,
                                                             errstr, size)))
            (*resent)++;
    if (!err)
        ENS_WARN("study=%s msg=\"results that never reached the library announced again\" "
                 "models=%d library=%lld stalled_s=%.0f round=%lld",
                 study, *resent, r[1]->integer, (double)(now - since) / 1e3, rounds + 1);
out:
    for (int i = 0; i < 4; i++)
        ens_redis_reply_free(r[i]);
    return err;
}

void ens_recover_results_all(ens_proposer_t *p) {
    char errstr[512];
    const char *sets[] = {"ens:studies:active", ENS_RECOVER_SETTLING_KEY};
    for (int s = 0; s < 2; s++) {
        ens_redis_reply_t *rep = ens_redis_command(p->redis, errstr, sizeof errstr, "SMEMBERS %s",
                                            sets[s]);
        for (size_t i = 0; rep && rep->type == ENS_REPLY_ARRAY && i < rep->elements; i++) {
            const char *study = rep->element[i]->str;
            int resent = 0, settled = 0;
            if (!study)
                continue;
            if (ens_recover_results(p, study, &resent, &settled, errstr, sizeof errstr))
                ENS_WARN("study=%s msg=\"tick: cannot look for lost results\" error=\"%s\"",
                         study, errstr);
            else if (settled && s == 1)
                ens_redis_exec(p->redis, NULL, 0, "SREM %s %s", sets[s], study);
        }
        ens_redis_reply_free(rep);
    }
}
