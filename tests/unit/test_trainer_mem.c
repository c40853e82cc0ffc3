/* test_trainer_mem.c - the trainer's heartbeat on the in-memory state: registering, its state
 * kept while busy, the busy tick beating on its own state, leaving on close. */
#include "check.h"
#include "ensflow/state_sched.h"
#include "trainer.h"

static char errstr[512];

static ens_state_trainer_t get(ens_state_t *st, const char *id) {
    ens_state_trainer_t tr;
    CHECK_OK(ens_state_trainer_get(st, id, &tr, errstr, sizeof errstr));
    return tr;
}

static int live(ens_state_t *st) {
    int n = -1;
    CHECK_OK(ens_state_trainer_live(st, ens_now_ms() - 15000, &n, errstr, sizeof errstr));
    return n;
}

int main(void) {
    ens_state_t *st = NULL, *bg = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    CHECK_OK(ens_state_mem_new(&bg));
    if (!st || !bg)
        return check_done("test_trainer_mem");
    ens_trainer_t t = {.state = st, .state_bg = bg, .id = "tr-1",
                       .mu = PTHREAD_MUTEX_INITIALIZER};

    /* the first tick registers an idle trainer (no consumer: no partitions to wait for) */
    int64_t t0 = ens_now_ms();
    ens_trainer_tick(&t);
    ens_state_trainer_t tr = get(st, "tr-1");
    CHECK(tr.beat_ms >= t0 && tr.beat_ms <= ens_now_ms());
    CHECK_STR(tr.state, "idle");
    CHECK_STR(tr.parts, ""); /* no consumer, no record */
    CHECK_EQ_INT(live(st), 1);
    CHECK_EQ_INT(live(bg), 0); /* the handler's beats go to its own state only */

    /* busy: a tick beats without calling the trainer idle */
    CHECK_OK(ens_state_trainer_state_put(st, "tr-1", "busy s-1 t-0001-e1", errstr,
                                         sizeof errstr));
    t.busy_since = 1.0;
    t.last_beat_ms = 0;
    ens_trainer_tick(&t);
    CHECK_STR(get(st, "tr-1").state, "busy s-1 t-0001-e1");

    /* the busy tick beats on the second state (its thread's connection) */
    ens_trainer_busy_tick(&t);
    tr = get(bg, "tr-1");
    CHECK(tr.beat_ms >= t0);
    CHECK_EQ_INT(live(bg), 1);
    /* and not more than once a second */
    int64_t first = tr.beat_ms;
    ens_trainer_busy_tick(&t);
    CHECK_EQ_INT(get(bg, "tr-1").beat_ms, first);

    /* another event type is refused, and leaves the trainer as it was */
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_STUDY_CREATED);
    CHECK_EQ_INT(ens_trainer_handle(&t, &ev, errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_event_free(&ev);
    CHECK_STR(get(st, "tr-1").state, "busy s-1 t-0001-e1");

    /* a job that ends (here at once: its configuration is no JSON, and no producer takes the
     * failure) leaves the trainer idle */
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    snprintf(ev.u.trial_job.study_id, ENS_ID_MAX, "s-1");
    snprintf(ev.u.trial_job.trial_id, ENS_ID_MAX, "t-0001");
    ev.u.trial_job.epochs = 1;
    CHECK(ens_trainer_handle(&t, &ev, errstr, sizeof errstr) != ENS_OK);
    ens_event_free(&ev);
    CHECK_STR(get(st, "tr-1").state, "idle");
    CHECK(t.busy_since == 0);
    /* it held the job's lease and counted one start of it */
    int held = 0;
    long long attempt = 0;
    CHECK_OK(ens_state_sched_lease_held(st, "s-1", "t-0001", &held, errstr, sizeof errstr));
    CHECK_EQ_INT(held, 1);
    CHECK_OK(ens_state_sched_attempt_begin(st, "s-1", "t-0001-e1", &attempt, errstr,
                                           sizeof errstr));
    CHECK_EQ_INT(attempt, 2);

    /* a copy of a job that another trainer holds is dropped, its starts left as they were */
    int refused = 0;
    char holder[160];
    CHECK_OK(ens_state_sched_lease_take(st, "s-1", "t-0002", "tr-2", "t-0002-e1", 30000,
                                        &refused, holder, sizeof holder, errstr, sizeof errstr));
    CHECK_EQ_INT(refused, 0);
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    snprintf(ev.u.trial_job.study_id, ENS_ID_MAX, "s-1");
    snprintf(ev.u.trial_job.trial_id, ENS_ID_MAX, "t-0002");
    ev.u.trial_job.epochs = 1;
    CHECK_OK(ens_trainer_handle(&t, &ev, errstr, sizeof errstr));
    ens_event_free(&ev);
    CHECK_OK(ens_state_sched_attempt_begin(st, "s-1", "t-0002-e1", &attempt, errstr,
                                           sizeof errstr));
    CHECK_EQ_INT(attempt, 1);
    /* and a job already trained is reported from its record, not trained again */
    ens_trial_result_t rec = {.status = ENS_TRIAL_OK, .val_accuracy = 0.5, .epochs_done = 1};
    snprintf(rec.model_id, ENS_ID_MAX, "t-0003-e1");
    CHECK_OK(ens_state_sched_job_put(st, "s-1", &rec, errstr, sizeof errstr));
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    snprintf(ev.u.trial_job.study_id, ENS_ID_MAX, "s-1");
    snprintf(ev.u.trial_job.trial_id, ENS_ID_MAX, "t-0003");
    ev.u.trial_job.epochs = 1;
    ens_trainer_handle(&t, &ev, errstr, sizeof errstr); /* no producer: not delivered */
    ens_event_free(&ev);
    CHECK_OK(ens_state_sched_lease_held(st, "s-1", "t-0003", &held, errstr, sizeof errstr));
    CHECK_EQ_INT(held, 0);

    /* leaving: gone from the live trainers, state and record removed */
    ens_trainer_close(&t);
    tr = get(st, "tr-1");
    CHECK_EQ_INT(tr.beat_ms, -1);
    CHECK_STR(tr.state, "");
    CHECK_EQ_INT(live(st), 0);

    ens_state_free(bg);
    ens_state_free(st);
    return check_done("test_trainer_mem");
}
