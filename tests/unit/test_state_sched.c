/* test_state_sched.c - the scheduler's and the jobs' records (state_sched.h) read back as they
 * were written, the same on the in-memory state and on Redis: studies, ASHA steps, jobs in
 * flight, dispatched and in the outbox, speeds, the watch on results, leases, attempts, job
 * records. */
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ensflow/models.h"
#include "ensflow/state_sched.h"

static char errstr[512];

static void check_records(ens_state_t *st, const char *study) {
    const char *name = ens_state_name(st);
    fprintf(stderr, "test_state_sched: %s\n", name);
    /* a study: written once, read back whole */
    ens_state_sched_study_t s = {.dataset = "data.csv",
                                 .search_space = "{\"layers\": 2}",
                                 .n_trials = 12,
                                 .top_k = 5,
                                 .s_max = 0,
                                 .epochs = 4.5,
                                 .val_fraction = 0.1,
                                 .eta = 3,
                                 .min_epochs = 0.5,
                                 .max_epochs_budget = 0,
                                 .seed = 3,
                                 .created_ms = 1000,
                                 .deadline_ms = 0};
    snprintf(s.study_id, sizeof s.study_id, "%s", study);
    snprintf(s.scheduler, sizeof s.scheduler, "asha");
    int created = 0, has = 0, n = 0;
    CHECK_OK(ens_state_sched_study_create(st, &s, &created, errstr, sizeof errstr));
    CHECK_EQ_INT(created, 1);
    s.n_trials = 99;
    CHECK_OK(ens_state_sched_study_create(st, &s, &created, errstr, sizeof errstr));
    CHECK_EQ_INT(created, 0); /* accepted already: left as it was */
    ens_state_sched_study_t g;
    CHECK_OK(ens_state_sched_study_get(st, study, &g, errstr, sizeof errstr));
    CHECK_STR(g.status, "running");
    CHECK_STR(g.scheduler, "asha");
    CHECK_STR(g.dataset, "data.csv");
    CHECK_STR(g.search_space, "{\"layers\": 2}");
    CHECK_EQ_INT(g.n_trials, 12);
    CHECK_EQ_INT(g.seed, 3);
    CHECK_EQ_INT(g.created_ms, 1000);
    CHECK_NEAR(g.epochs, 4.5, 1e-12);
    CHECK_NEAR(g.min_epochs, 0.5, 1e-12);
    CHECK_NEAR(g.val_fraction, 0.1, 1e-12);
    ens_state_sched_study_clear(&g);
    /* the evaluator's view of the same record */
    ens_state_study_t base;
    if (!strcmp(name, "redis")) {
        CHECK_OK(ens_state_study_get(st, study, &base, errstr, sizeof errstr));
        CHECK_STR(base.dataset, "data.csv");
        CHECK_STR(base.status, "running");
    }
    CHECK_OK(ens_state_sched_active_has(st, study, &has, errstr, sizeof errstr));
    CHECK_EQ_INT(has, 1);
    int first = 0;
    CHECK_OK(ens_state_sched_command_first(st, study, "ev-1", &first, errstr, sizeof errstr));
    CHECK_EQ_INT(first, 1);
    CHECK_OK(ens_state_sched_command_first(st, study, "ev-1", &first, errstr, sizeof errstr));
    CHECK_EQ_INT(first, 0);

    /* a decision: its job in flight, in the outbox, its configuration kept */
    ens_asha_params_t p = {.kind = ENS_SCHED_ASHA,
                           .eta = 3,
                           .r_max = 4.5,
                           .r_min = 0.5,
                           .s_max = -1,
                           .max_configs = 12};
    CHECK_OK(ens_asha_params_init(&p, errstr, sizeof errstr));
    static ens_asha_view_t v;
    ens_asha_decision_t d;
    int applied = 0;
    CHECK_OK(ens_state_sched_asha_view(st, study, &p, &v, NULL, errstr, sizeof errstr));
    ens_asha_decide(&p, &v, &d);
    CHECK_EQ_INT(d.action, ENS_ASHA_NEW);
    CHECK_OK(ens_state_sched_asha_commit(st, study, &p, &d, v.version, "{\"a\":1}", &applied, &v,
                                         errstr, sizeof errstr));
    CHECK_EQ_INT(applied, 1);
    ens_state_sched_inflight_t job, *jobs = NULL;
    int found = 0;
    CHECK_OK(
        ens_state_sched_inflight_get(st, study, d.trial_id, &job, &found, errstr, sizeof errstr));
    CHECK(found && job.seq == 0 && job.rung == 0 && fabs(job.to - 0.5) < 1e-12);
    CHECK_OK(ens_state_sched_inflight_list(st, study, &jobs, &n, errstr, sizeof errstr));
    CHECK(n == 1 && !strcmp(jobs[0].trial_id, d.trial_id));
    free(jobs);
    long count = 0;
    CHECK_OK(ens_state_sched_inflight_count(st, study, &count, errstr, sizeof errstr));
    CHECK_EQ_INT(count, 1);
    ens_state_sched_outbox_t *box = NULL;
    CHECK_OK(ens_state_sched_outbox_list(st, study, &box, &n, errstr, sizeof errstr));
    CHECK(n == 1 && box[0].seq == 0 && !strcmp(box[0].trial_id, d.trial_id));
    free(box);
    CHECK_OK(ens_state_sched_outbox_remove(st, study, 0, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_outbox_put(st, study, 7, "t-00042", errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_outbox_list(st, study, &box, &n, errstr, sizeof errstr));
    CHECK(n == 1 && box[0].seq == 7 && !strcmp(box[0].trial_id, "t-00042"));
    free(box);
    CHECK_OK(ens_state_sched_outbox_remove(st, study, 7, errstr, sizeof errstr));
    char *config = NULL;
    CHECK_OK(ens_state_sched_trial_config(st, study, d.trial_id, &config, errstr, sizeof errstr));
    CHECK_STR(config, "{\"a\":1}");
    free(config);
    CHECK_EQ_INT(ens_state_sched_trial_config(st, study, "t-99999", &config, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);

    /* where jobs went: one record each, with the partition and the time */
    ens_state_sched_dispatched_t dd = {.seq = 0, .partition = 1, .sent_ms = 123456789};
    snprintf(dd.trial_id, sizeof dd.trial_id, "%s", d.trial_id);
    CHECK_OK(ens_state_sched_dispatched_put(st, study, &dd, errstr, sizeof errstr));
    dd.partition = -1;
    dd.seq = 3;
    snprintf(dd.trial_id, sizeof dd.trial_id, "t-00009");
    CHECK_OK(ens_state_sched_dispatched_put(st, study, &dd, errstr, sizeof errstr));
    ens_state_sched_dispatched_t *sent = NULL;
    CHECK_OK(ens_state_sched_dispatched_list(st, study, &sent, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 2);
    for (int i = 0; i < n; i++) {
        if (!strcmp(sent[i].trial_id, d.trial_id))
            CHECK(sent[i].seq == 0 && sent[i].partition == 1 && sent[i].sent_ms == 123456789);
        else
            CHECK(!strcmp(sent[i].trial_id, "t-00009") && sent[i].seq == 3 &&
                  sent[i].partition == -1);
    }
    free(sent);
    CHECK_OK(ens_state_sched_dispatched_remove(st, study, "t-00009", errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_dispatched_list(st, study, &sent, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 1);
    free(sent);

    /* its result: out of flight, into the rung and the accepted models */
    char mid[ENS_ID_MAX];
    ens_model_id(d.trial_id, 0.5, mid, sizeof mid);
    CHECK_OK(ens_state_sched_asha_result(st, study, &p, d.trial_id, 1, 0.75, 0.5, mid, NULL,
                                         &applied, NULL, errstr, sizeof errstr));
    CHECK_EQ_INT(applied, 1);
    ens_state_sched_counts_t c;
    CHECK_OK(ens_state_sched_counts(st, study, &c, errstr, sizeof errstr));
    CHECK(c.trials_done == 1 && c.models == 1 && c.inflight == 0 && c.configs == 1 &&
          c.library == 0 && fabs(c.epochs_issued - 0.5) < 1e-9);
    ens_state_sched_rung_t r;
    CHECK_OK(ens_state_sched_rung_get(st, study, 0, 0, &r, errstr, sizeof errstr));
    CHECK(r.n == 1 && r.entered == 1 && r.done == 1 && fabs(r.best - 0.75) < 1e-12 &&
          fabs(r.median - 0.75) < 1e-12);
    CHECK_OK(ens_state_sched_rung_get(st, study, 0, 1, &r, errstr, sizeof errstr));
    CHECK(r.n == 0 && isnan(r.best));

    /* speeds, ascending */
    CHECK_OK(ens_state_sched_speed_put(st, study, "t-00001", 3.5, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_speed_put(st, study, "t-00002", 1.25, errstr, sizeof errstr));
    double *spe = NULL;
    CHECK_OK(ens_state_sched_speed_list(st, study, &spe, &n, errstr, sizeof errstr));
    CHECK(n == 2 && spe[0] == 1.25 && spe[1] == 3.5);
    free(spe);

    /* the watch on results */
    ens_state_sched_results_t res;
    CHECK_OK(ens_state_sched_results_get(st, study, &res, errstr, sizeof errstr));
    CHECK(res.n_missing == 1 && !strcmp(res.missing[0], mid) && res.models == 1 &&
          res.library == 0 && !res.watched && res.count == -1 && res.rounds == 0);
    ens_state_sched_results_clear(&res);
    CHECK_OK(ens_state_sched_evalwatch_put(st, study, 5, 100, -1, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_evalwatch_put(st, study, -1, 200, 1, errstr, sizeof errstr));
    CHECK_OK(ens_state_library_add(st, study, mid, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_results_get(st, study, &res, errstr, sizeof errstr));
    CHECK(res.n_missing == 0 && res.library == 1 && res.watched && res.count == 5 &&
          res.since_ms == 200 && res.rounds == 1);
    ens_state_sched_results_clear(&res);
    CHECK_OK(ens_state_sched_evalwatch_del(st, study, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_results_get(st, study, &res, errstr, sizeof errstr));
    CHECK(!res.watched && res.since_ms == -1);
    ens_state_sched_results_clear(&res);

    /* leases: the holder's own and an earlier job's are taken over, another's refused */
    int refused = 0, lost = 0, held = 0;
    char holder[160];
    CHECK_OK(ens_state_sched_lease_take(st, study, "t-00001", "tr-a", "t-00001-e1", 30000, &refused,
                                        holder, sizeof holder, errstr, sizeof errstr));
    CHECK_EQ_INT(refused, 0);
    CHECK_OK(ens_state_sched_lease_take(st, study, "t-00001", "tr-b", "t-00001-e1", 30000, &refused,
                                        holder, sizeof holder, errstr, sizeof errstr));
    CHECK_EQ_INT(refused, 1);
    CHECK_STR(holder, "tr-a t-00001-e1");
    CHECK_OK(ens_state_sched_lease_renew(st, study, "t-00001", "tr-a", "t-00001-e1", 30000, &lost,
                                         errstr, sizeof errstr));
    CHECK_EQ_INT(lost, 0);
    CHECK_OK(ens_state_sched_lease_take(st, study, "t-00001", "tr-b", "t-00001-e3", 30000, &refused,
                                        holder, sizeof holder, errstr, sizeof errstr));
    CHECK_EQ_INT(refused, 0); /* the trial's next job: taken over */
    CHECK_OK(ens_state_sched_lease_renew(st, study, "t-00001", "tr-a", "t-00001-e1", 30000, &lost,
                                         errstr, sizeof errstr));
    CHECK_EQ_INT(lost, 1);
    CHECK_OK(ens_state_sched_lease_held(st, study, "t-00001", &held, errstr, sizeof errstr));
    CHECK_EQ_INT(held, 1);
    CHECK_OK(ens_state_sched_lease_drop(st, study, "t-00001", errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_lease_held(st, study, "t-00001", &held, errstr, sizeof errstr));
    CHECK_EQ_INT(held, 0);

    /* attempts */
    long long attempt = 0;
    CHECK_OK(
        ens_state_sched_attempt_begin(st, study, "t-00001-e1", &attempt, errstr, sizeof errstr));
    CHECK_EQ_INT(attempt, 1);
    CHECK_OK(
        ens_state_sched_attempt_begin(st, study, "t-00001-e1", &attempt, errstr, sizeof errstr));
    CHECK_EQ_INT(attempt, 2);
    CHECK_OK(ens_state_sched_attempt_undo(st, study, "t-00001-e1", errstr, sizeof errstr));
    CHECK_OK(
        ens_state_sched_attempt_begin(st, study, "t-00001-e1", &attempt, errstr, sizeof errstr));
    CHECK_EQ_INT(attempt, 2);
    CHECK_OK(ens_state_sched_attempt_clear(st, study, "t-00001-e1", errstr, sizeof errstr));
    CHECK_OK(
        ens_state_sched_attempt_begin(st, study, "t-00001-e1", &attempt, errstr, sizeof errstr));
    CHECK_EQ_INT(attempt, 1);

    /* a job's record */
    ens_trial_result_t jr = {.val_accuracy = 0.875,
                             .val_loss = 0.25,
                             .train_seconds = 1.5,
                             .epochs_done = 0.5,
                             .train_samples_per_second = 1000},
                       back;
    snprintf(jr.model_id, sizeof jr.model_id, "%s", mid);
    CHECK_OK(ens_state_sched_job_put(st, study, &jr, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_job_progress(st, study, mid, 0.5, errstr, sizeof errstr));
    memset(&back, 0, sizeof back);
    CHECK_OK(ens_state_sched_job_get(st, study, mid, &back, &found, errstr, sizeof errstr));
    CHECK(found && !strcmp(back.model_id, mid) && back.status == ENS_TRIAL_OK &&
          fabs(back.val_accuracy - 0.875) < 1e-9 && fabs(back.epochs_done - 0.5) < 1e-12 &&
          fabs(back.train_samples_per_second - 1000) < 1e-9);
    CHECK_OK(
        ens_state_sched_job_get(st, study, "t-00077-e1", &back, &found, errstr, sizeof errstr));
    CHECK_EQ_INT(found, 0);

    /* stop, end, extend */
    CHECK_OK(ens_state_sched_study_status_put(st, study, "stopping", NULL, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_study_end(st, study, "stopped", errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_study_get(st, study, &g, errstr, sizeof errstr));
    CHECK_STR(g.status, "stopped");
    ens_state_sched_study_clear(&g);
    CHECK_OK(ens_state_sched_active_has(st, study, &has, errstr, sizeof errstr));
    CHECK_EQ_INT(has, 0);
    CHECK_OK(ens_state_sched_dispatched_list(st, study, &sent, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);
    free(sent);
    char **list = NULL;
    CHECK_OK(ens_state_sched_settling_list(st, &list, &n, errstr, sizeof errstr));
    has = 0;
    for (int i = 0; i < n; i++)
        has |= !strcmp(list[i], study);
    CHECK_EQ_INT(has, 1);
    ens_state_strings_free(list, n);
    CHECK_OK(ens_state_sched_settling_remove(st, study, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_study_extend(st, study, 3, 2.5, 5000, errstr, sizeof errstr));
    CHECK_OK(ens_state_sched_study_get(st, study, &g, errstr, sizeof errstr));
    CHECK(!strcmp(g.status, "running") && g.n_trials == 15 &&
          fabs(g.max_epochs_budget - 2.5) < 1e-12 && g.deadline_ms == 5000);
    ens_state_sched_study_clear(&g);
    CHECK_OK(ens_state_sched_active_has(st, study, &has, errstr, sizeof errstr));
    CHECK_EQ_INT(has, 1);
    CHECK_OK(
        ens_state_sched_study_status_put(st, study, "rejected", "why not", errstr, sizeof errstr));
    /* a study never stored reads empty */
    CHECK_OK(ens_state_sched_study_get(st, "s-none-such", &g, errstr, sizeof errstr));
    CHECK(!g.status[0] && !g.scheduler[0] && !g.dataset && !g.search_space);
    ens_state_sched_study_clear(&g);
    CHECK(!ens_state_sched_study_id_ok("s-{x}"));
    CHECK(ens_state_sched_study_id_ok(study));
}

int main(void) {
    ens_state_t *st = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    if (st)
        check_records(st, "s-sched-mem");
    ens_state_free(st);

    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_state_sched: no redis.url: the Redis part skipped\n");
        return check_done("test_state_sched");
    }
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    st = NULL;
    if (r)
        CHECK_OK(ens_state_redis_new(r, NULL, &st));
    char study[64];
    snprintf(study, sizeof study, "s-sched-%d-%lld", (int)getpid(), (long long)time(NULL));
    if (st)
        check_records(st, study);
    /* leave nothing behind */
    if (r) {
        char pattern[128];
        ens_key(pattern, sizeof pattern, study, "*");
        ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "KEYS %s", pattern);
        for (size_t i = 0; rep && rep->type == ENS_REPLY_ARRAY && i < rep->elements; i++)
            ens_redis_exec(r, NULL, 0, "DEL %s", rep->element[i]->str);
        ens_redis_reply_free(rep);
        const char *sets[] = {"ens:studies:active", "ens:studies:settling", ENS_STATE_KEY_STUDIES_COMPACT};
        for (int i = 0; i < 3; i++)
            ens_redis_exec(r, NULL, 0, "SREM %s %s", sets[i], study);
        ens_redis_exec(r, NULL, 0, "ZREM ens:studies %s", study);
    }
    ens_state_free(st);
    ens_redis_free(r);
    return check_done("test_state_sched");
}
