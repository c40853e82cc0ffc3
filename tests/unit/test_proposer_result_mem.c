/* test_proposer_result_mem.c - the proposer's handler on the in-memory state and a capture
 * producer: a study accepted and its first job sent to the live trainer's partition, results
 * recorded in their rung, a promotion resuming from the checkpoint, redeliveries and stale
 * results ignored, a failure counted, a job queued behind a busy trainer kept and a lost one
 * issued again, a stop ending the study; and the in-memory ASHA steps deciding exactly as the
 * scheduler's pure core. */
#include <unistd.h>

#include "check.h"
#include "ensflow/state_sched.h"
#include "proposer.h"

static char errstr[512];

/* The i-th job produced; 0 when it is one (into *job, freed by the caller). */
static int produced_job(const ens_kafka_t *producer, int i, ens_event_t *job) {
    const ens_kafka_captured_t *c = ens_kafka_captured(producer, i);
    if (!c || strcmp(c->topic, ENS_TOPIC_TRIAL_JOBS))
        return -1;
    if (ens_event_decode(c->payload, c->len, job, errstr, sizeof errstr))
        return -1;
    if (job->type != ENS_EV_TRIAL_JOB) {
        ens_event_free(job);
        return -1;
    }
    CHECK_STR(c->key, job->u.trial_job.trial_id); /* keyed by trial */
    return 0;
}

/* Check the i-th produced job: its trial, epochs from -> to, and the partition it went to. */
static void check_job(const ens_kafka_t *producer, int i, const char *trial, double from, double to,
                      int32_t partition) {
    ens_event_t job;
    if (produced_job(producer, i, &job)) {
        fprintf(stderr, "no job %d produced\n", i);
        CHECK(0);
        return;
    }
    CHECK_STR(job.u.trial_job.trial_id, trial);
    CHECK_STR(job.u.trial_job.study_id, "s-prop");
    CHECK_STR(job.u.trial_job.dataset, "fashion-mnist");
    CHECK_NEAR(job.u.trial_job.from_epoch, from, 1e-9);
    CHECK_NEAR(job.u.trial_job.epochs, to, 1e-9);
    CHECK(job.u.trial_job.config_json && job.u.trial_job.config_json[0] == '{');
    CHECK_EQ_INT(ens_kafka_captured(producer, i)->partition, partition);
    ens_event_free(&job);
}

static ens_err_t result(ens_proposer_t *p, const char *trial, double epochs, int ok, double acc,
                        ens_event_t *keep) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
    ens_trial_result_t *r = &ev.u.trial_result;
    snprintf(r->study_id, ENS_ID_MAX, "s-prop");
    snprintf(r->trial_id, ENS_ID_MAX, "%s", trial);
    ens_model_id(trial, epochs, r->model_id, sizeof r->model_id);
    r->status = ok ? ENS_TRIAL_OK : ENS_TRIAL_FAILED;
    r->epochs_done = epochs;
    r->val_accuracy = acc;
    r->train_seconds = 2 * epochs;
    if (!ok)
        r->error = strdup("diverged");
    ens_err_t err = ens_proposer_handle(p, &ev, errstr, sizeof errstr);
    if (keep)
        *keep = ev;
    else
        ens_event_free(&ev);
    return err;
}

static ens_state_sched_counts_t counts(ens_state_t *st) {
    ens_state_sched_counts_t c;
    CHECK_OK(ens_state_sched_counts(st, "s-prop", &c, errstr, sizeof errstr));
    return c;
}

static void command(ens_proposer_t *p, const char *what) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_STUDY_COMMAND);
    snprintf(ev.u.study_command.study_id, ENS_ID_MAX, "s-prop");
    snprintf(ev.u.study_command.command, sizeof ev.u.study_command.command, "%s", what);
    CHECK_OK(ens_proposer_handle(p, &ev, errstr, sizeof errstr));
    CHECK_OK(ens_proposer_handle(p, &ev, errstr, sizeof errstr)); /* redelivered: once */
    ens_event_free(&ev);
}

static void test_handler(void) {
    ens_state_t *st = NULL;
    ens_kafka_t *producer = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    CHECK_OK(ens_kafka_capture_new(&producer));
    if (!st || !producer) {
        ens_state_free(st);
        ens_kafka_free(producer);
        return;
    }
    /* one live trainer that owns partitions 2 and 3 of trial.jobs */
    char rec[64];
    int64_t now = ens_now_ms();
    snprintf(rec, sizeof rec, "%lld 2,3", (long long)now);
    CHECK_OK(ens_state_trainer_beat(st, "tr-1", now, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_parts_put(st, "tr-1", rec, errstr, sizeof errstr));
    ens_proposer_t p = {.state = st,
                        .producer = producer,
                        .jobs_per_trainer = 1,
                        .trainer_ttl_ms = 15000,
                        .reissue_ms = 30000};

    /* a study: ASHA, rungs of 1, 3 and 9 epochs */
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_STUDY_CREATED);
    ens_study_created_t *s = &ev.u.study_created;
    snprintf(s->study_id, ENS_ID_MAX, "s-prop");
    s->dataset = strdup("fashion-mnist");
    s->n_trials = 4;
    s->epochs = 9;
    s->min_epochs = 1;
    s->eta = 3;
    s->seed = 7;
    s->val_fraction = 0.1;
    s->top_k = 5;
    snprintf(s->scheduler, sizeof s->scheduler, "asha");
    CHECK_OK(ens_proposer_handle(&p, &ev, errstr, sizeof errstr));
    CHECK_OK(ens_proposer_handle(&p, &ev, errstr, sizeof errstr)); /* redelivered */
    ens_event_free(&ev);
    ens_state_sched_study_t rec_s;
    CHECK_OK(ens_state_sched_study_get(st, "s-prop", &rec_s, errstr, sizeof errstr));
    CHECK_STR(rec_s.status, "running");
    CHECK_STR(rec_s.scheduler, "asha");
    CHECK_EQ_INT(rec_s.n_trials, 4);
    CHECK_NEAR(rec_s.min_epochs, 1, 1e-12);
    ens_state_sched_study_clear(&rec_s);
    int active = 0;
    CHECK_OK(ens_state_sched_active_has(st, "s-prop", &active, errstr, sizeof errstr));
    CHECK_EQ_INT(active, 1);

    /* one trainer, one job a trainer: the first configuration at the bottom rung, to the
     * trainer's least-loaded partition; its job in flight, the outbox empty again */
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 1);
    check_job(producer, 0, "t-00000", 0, 1, 2);
    ens_state_sched_outbox_t *box = NULL;
    int n = -1;
    CHECK_OK(ens_state_sched_outbox_list(st, "s-prop", &box, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);
    free(box);
    CHECK_EQ_INT(counts(st).inflight, 1);

    /* a result of an earlier job of the trial (not the one in flight) is not booked */
    ens_event_t stale;
    ens_event_init(&stale, ENS_EV_TRIAL_RESULT);
    snprintf(stale.u.trial_result.study_id, ENS_ID_MAX, "s-prop");
    snprintf(stale.u.trial_result.trial_id, ENS_ID_MAX, "t-00000");
    snprintf(stale.u.trial_result.model_id, ENS_ID_MAX, "t-00000-e0.5");
    CHECK_OK(ens_proposer_handle(&p, &stale, errstr, sizeof errstr));
    ens_event_free(&stale);
    CHECK_EQ_INT(counts(st).trials_done, 0);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 1);

    /* results: each frees the trainer for the next decision. One result in a rung promotes
     * nobody (top floor(1/3) = none): new configurations until three have reported */
    ens_event_t first;
    CHECK_OK(result(&p, "t-00000", 1, 1, 0.5, &first));
    ens_state_sched_counts_t c = counts(st);
    CHECK_EQ_INT(c.trials_done, 1);
    CHECK_EQ_INT(c.models, 1);
    CHECK_EQ_INT(c.configs, 2);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 2);
    check_job(producer, 1, "t-00001", 0, 1, 2);
    ens_state_sched_rung_t r;
    CHECK_OK(ens_state_sched_rung_get(st, "s-prop", 0, 0, &r, errstr, sizeof errstr));
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.entered, 2);
    CHECK_EQ_INT(r.done, 1);
    CHECK_NEAR(r.best, 0.5, 1e-12);
    /* its dispatch record went with the result; the new job's is there */
    ens_state_sched_dispatched_t *sent = NULL;
    CHECK_OK(ens_state_sched_dispatched_list(st, "s-prop", &sent, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 1);
    if (n == 1) {
        CHECK_STR(sent[0].trial_id, "t-00001");
        CHECK_EQ_INT(sent[0].partition, 2);
        CHECK(sent[0].sent_ms >= now);
    }
    free(sent);
    /* its speed: 2 s for 1 epoch */
    double *spe = NULL;
    CHECK_OK(ens_state_sched_speed_list(st, "s-prop", &spe, &n, errstr, sizeof errstr));
    CHECK(n == 1 && spe && fabs(spe[0] - 2) < 1e-9);
    free(spe);

    /* the same result again (redelivered): nothing changes, nothing is sent */
    CHECK_OK(ens_proposer_handle(&p, &first, errstr, sizeof errstr));
    ens_event_free(&first);
    CHECK_EQ_INT(counts(st).trials_done, 1);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 2);

    CHECK_OK(result(&p, "t-00001", 1, 1, 0.9, NULL));
    check_job(producer, 2, "t-00002", 0, 1, 2);
    /* the third result of the rung: the best (t-00001) goes up to 3 epochs, resuming at 1 */
    CHECK_OK(result(&p, "t-00002", 1, 1, 0.7, NULL));
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 4);
    check_job(producer, 3, "t-00001", 1, 3, 2);
    CHECK_OK(ens_state_sched_rung_get(st, "s-prop", 0, 1, &r, errstr, sizeof errstr));
    CHECK_EQ_INT(r.entered, 1);
    CHECK_EQ_INT(r.n, 0);

    /* a failure is counted and not ranked; the promotion's job is still the one in flight */
    CHECK_OK(result(&p, "t-00001", 3, 0, 0, NULL));
    c = counts(st);
    CHECK_EQ_INT(c.trials_failed, 1);
    CHECK_EQ_INT(c.trials_done, 3);
    CHECK_OK(ens_state_sched_rung_get(st, "s-prop", 0, 1, &r, errstr, sizeof errstr));
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(r.done, 1);
    /* the fourth and last configuration went out in its place */
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 5);
    check_job(producer, 4, "t-00003", 0, 1, 2);

    /* a job queued behind its trainer's running one is not lost, however long ago it was
     * sent; and its clock counts from the last time it was seen so: once the trainer is idle
     * it has reissue_ms to take the job before it goes out again */
    p.reissue_ms = 200;
    usleep(250000);
    CHECK_OK(ens_state_trainer_state_put(st, "tr-1", "busy s-prop t-00002-e1", errstr,
                                         sizeof errstr));
    p.last_tick_ms = 0;
    ens_proposer_tick(&p);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 5);
    CHECK_OK(ens_state_trainer_state_put(st, "tr-1", "idle", errstr, sizeof errstr));
    p.last_tick_ms = 0;
    ens_proposer_tick(&p);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 5);
    /* then, idle past reissue_ms and no lease taken: held by no trainer, it goes out again */
    usleep(250000);
    p.last_tick_ms = 0;
    ens_proposer_tick(&p);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 6);
    check_job(producer, 5, "t-00003", 0, 1, 3); /* partition 2 has it in flight: the other */
    /* a busy owner that trains a later job of the partition has passed it over (a partition
     * is read in order): lost, it goes out again though its owner is busy */
    ens_state_sched_dispatched_t later = {.seq = 99, .partition = 3, .sent_ms = ens_now_ms()};
    snprintf(later.trial_id, sizeof later.trial_id, "t-00099");
    CHECK_OK(ens_state_sched_dispatched_put(st, "s-prop", &later, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_state_put(st, "tr-1", "busy s-prop t-00099-e1", errstr,
                                         sizeof errstr));
    usleep(250000);
    p.last_tick_ms = 0;
    ens_proposer_tick(&p);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 7);
    check_job(producer, 6, "t-00003", 0, 1, 2);
    CHECK_OK(ens_state_sched_dispatched_remove(st, "s-prop", "t-00099", errstr, sizeof errstr));
    /* held by a trainer (its lease): not issued again */
    int refused = 0;
    char holder[160];
    CHECK_OK(ens_state_sched_lease_take(st, "s-prop", "t-00003", "tr-1", "t-00003-e1", 30000,
                                        &refused, holder, sizeof holder, errstr, sizeof errstr));
    p.reissue_ms = 1;
    usleep(5000);
    p.last_tick_ms = 0;
    ens_proposer_tick(&p);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 7);

    /* accepted models that never reach the library: their results are announced again from
     * the trainers' records once nothing has moved for 2 x reissue_ms (the watch started on
     * the ticks above) */
    ens_trial_result_t done = {.status = ENS_TRIAL_OK, .val_accuracy = 0.5, .epochs_done = 1};
    snprintf(done.model_id, ENS_ID_MAX, "t-00000-e1");
    CHECK_OK(ens_state_sched_job_put(st, "s-prop", &done, errstr, sizeof errstr));
    usleep(5000);
    p.last_tick_ms = 0;
    ens_proposer_tick(&p);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 8);
    const ens_kafka_captured_t *cap = ens_kafka_captured(producer, 7);
    if (cap) {
        CHECK_STR(cap->topic, ENS_TOPIC_TRIAL_RESULTS);
        ens_event_t again;
        if (!ens_event_decode(cap->payload, cap->len, &again, errstr, sizeof errstr)) {
            CHECK_STR(again.u.trial_result.model_id, "t-00000-e1");
            CHECK_STR(again.u.trial_result.trial_id, "t-00000");
            CHECK_NEAR(again.u.trial_result.val_accuracy, 0.5, 1e-9);
            ens_event_free(&again);
        } else
            CHECK(0);
    }
    /* once the library has them all, the study's results are settled */
    CHECK_OK(ens_state_library_add(st, "s-prop", "t-00000-e1", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_add(st, "s-prop", "t-00001-e1", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_add(st, "s-prop", "t-00002-e1", errstr, sizeof errstr));
    ens_state_sched_results_t res;
    CHECK_OK(ens_state_sched_results_get(st, "s-prop", &res, errstr, sizeof errstr));
    CHECK_EQ_INT(res.n_missing, 0);
    CHECK_EQ_INT(res.library, 3);
    CHECK_EQ_INT(res.rounds, 3); /* one a tick past 2 x reissue_ms: the last three */
    ens_state_sched_results_clear(&res);

    /* stop: no new jobs; once the job in flight reports, the study is stopped and settles */
    command(&p, "stop");
    CHECK_OK(ens_state_sched_study_get(st, "s-prop", &rec_s, errstr, sizeof errstr));
    CHECK_STR(rec_s.status, "stopping");
    ens_state_sched_study_clear(&rec_s);
    CHECK_OK(result(&p, "t-00003", 1, 1, 0.95, NULL));
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 8);
    CHECK_OK(ens_state_sched_study_get(st, "s-prop", &rec_s, errstr, sizeof errstr));
    CHECK_STR(rec_s.status, "stopped");
    ens_state_sched_study_clear(&rec_s);
    CHECK_OK(ens_state_sched_active_has(st, "s-prop", &active, errstr, sizeof errstr));
    CHECK_EQ_INT(active, 0);
    char **settling = NULL;
    CHECK_OK(ens_state_sched_settling_list(st, &settling, &n, errstr, sizeof errstr));
    CHECK(n == 1 && !strcmp(settling[0], "s-prop"));
    ens_state_strings_free(settling, n);

    /* extend: running again, more trials, jobs again */
    ens_event_init(&ev, ENS_EV_STUDY_COMMAND);
    snprintf(ev.u.study_command.study_id, ENS_ID_MAX, "s-prop");
    snprintf(ev.u.study_command.command, sizeof ev.u.study_command.command, "extend");
    ev.u.study_command.add_trials = 2;
    CHECK_OK(ens_proposer_handle(&p, &ev, errstr, sizeof errstr));
    CHECK_OK(ens_proposer_handle(&p, &ev, errstr, sizeof errstr)); /* once */
    ens_event_free(&ev);
    CHECK_OK(ens_state_sched_study_get(st, "s-prop", &rec_s, errstr, sizeof errstr));
    CHECK_STR(rec_s.status, "running");
    CHECK_EQ_INT(rec_s.n_trials, 6);
    ens_state_sched_study_clear(&rec_s);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 9);

    /* a result of a study nobody created is ignored */
    ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
    snprintf(ev.u.trial_result.study_id, ENS_ID_MAX, "s-nobody");
    snprintf(ev.u.trial_result.trial_id, ENS_ID_MAX, "t-00000");
    CHECK_OK(ens_proposer_handle(&p, &ev, errstr, sizeof errstr));
    ens_event_free(&ev);

    ens_kafka_free(producer);
    ens_state_free(st);
}

/* The in-memory steps decide exactly as the pure core, commit once, ignore redeliveries,
 * as test_proposer_asha checks of the Redis ones. */
static void test_steps(void) {
    ens_state_t *st = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    ens_asha_params_t p = {
        .kind = ENS_SCHED_HYPERBAND, .eta = 3, .r_max = 9, .s_max = -1, .max_configs = 60};
    CHECK_OK(ens_asha_params_init(&p, errstr, sizeof errstr));
    ens_asha_mem_t *m = NULL;
    CHECK_OK(ens_asha_mem_new(&p, &m));
    if (!st || !m) {
        ens_state_free(st);
        ens_asha_mem_free(m);
        return;
    }
    static ens_asha_view_t vm, vs, vnext;
    ens_asha_decision_t pool[8];
    int n = 0, steps = 0, trips = 0;
    uint64_t x = 11;
    for (int guard = 0; guard < 10000; guard++) {
        while (n < 5) {
            ens_asha_decision_t dm, ds;
            ens_asha_mem_view(m, &vm);
            CHECK_OK(
                ens_state_sched_asha_view(st, "s-steps", &p, &vs, &trips, errstr, sizeof errstr));
            CHECK_EQ_INT(trips, 1);
            ens_asha_decide(&p, &vm, &dm);
            ens_asha_decide(&p, &vs, &ds);
            CHECK(memcmp(&dm, &ds, sizeof dm) == 0);
            if (dm.action == ENS_ASHA_NONE)
                break;
            int applied = 0;
            if (vs.version > 0) {
                CHECK_OK(ens_state_sched_asha_commit(st, "s-steps", &p, &ds, vs.version - 1, "{}",
                                                     &applied, &vnext, errstr, sizeof errstr));
                CHECK_EQ_INT(applied, 0);
                CHECK(memcmp(&vnext, &vs, sizeof vs) == 0);
            }
            CHECK_OK(ens_state_sched_asha_commit(st, "s-steps", &p, &ds, vs.version, "{}", &applied,
                                                 &vnext, errstr, sizeof errstr));
            CHECK_EQ_INT(applied, 1);
            CHECK(vnext.decisions == vs.decisions + 1 && vnext.version == vs.version + 1);
            CHECK_OK(ens_state_sched_asha_commit(st, "s-steps", &p, &ds, -1, "{}", &applied, NULL,
                                                 errstr, sizeof errstr));
            CHECK_EQ_INT(applied, 0);
            CHECK_OK(ens_asha_mem_commit(m, &dm));
            pool[n++] = dm;
            steps++;
        }
        if (n == 0)
            break;
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int i = (int)((x >> 33) % (uint64_t)n);
        ens_asha_decision_t j = pool[i];
        pool[i] = pool[--n];
        double score = 0.5 + 0.01 * (double)((j.config_index * 37 + j.rung * 11) % 41);
        int ok = score > 0.52, applied = 0;
        CHECK_OK(ens_asha_mem_result(m, j.bracket, j.rung, j.trial_id, ok, score));
        CHECK_OK(ens_state_sched_asha_result(st, "s-steps", &p, j.trial_id, ok, score, j.to_epochs,
                                             "m", ok ? NULL : "failed", &applied, &vnext, errstr,
                                             sizeof errstr));
        CHECK_EQ_INT(applied, 1);
        CHECK_OK(ens_state_sched_asha_result(st, "s-steps", &p, j.trial_id, ok, score, j.to_epochs,
                                             "m", NULL, &applied, NULL, errstr, sizeof errstr));
        CHECK_EQ_INT(applied, 0); /* redelivered result */
    }
    CHECK(steps > 60);
    ens_asha_mem_free(m);
    ens_state_free(st);
}

int main(void) {
    test_handler();
    test_steps();
    return check_done("test_proposer_result_mem");
}
