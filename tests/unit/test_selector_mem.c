/* test_selector_mem.c - the selector's handler and tick on the in-memory state and a capture
 * producer: library, dirty marks, the front stored and produced, each model's halves. */
#include "check.h"
#include "ensflow/data.h"
#include "ensflow/ensemble.h"
#include "selector.h"

enum { NV = 120, NK = 3, NM = 6 };

static char errstr[512];

static void evaluated(ens_event_t *ev, const char *study, const char *model, int32_t n_val) {
    ens_event_init(ev, ENS_EV_MODEL_EVALUATED);
    ens_model_evaluated_t *me = &ev->u.model_evaluated;
    snprintf(me->study_id, sizeof me->study_id, "%.63s", study);
    snprintf(me->model_id, sizeof me->model_id, "%.63s", model);
    me->n_val = n_val;
    me->n_classes = NK;
}

static int in_list(char **v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return 1;
    return 0;
}

int main(void) {
    ens_state_t *state = NULL;
    ens_kafka_t *producer = NULL;
    CHECK_OK(ens_state_mem_new(&state));
    CHECK_OK(ens_kafka_capture_new(&producer));
    if (!state || !producer)
        return check_done("test_selector_mem");
    const char *study = "s-sel-mem";
    ens_state_study_t st = {.top_k = 3};
    CHECK_OK(ens_state_study_put(state, study, &st, errstr, sizeof errstr));
    ens_rng_t rng;
    ens_rng_seed(&rng, 11);
    static int32_t labels[NV];
    static float probs[NM][NV * NK];
    static char ids[NM][16];
    for (int i = 0; i < NV; i++)
        labels[i] = (int32_t)(ens_rng_next(&rng) % NK);
    CHECK_OK(ens_state_labels_put(state, study, labels, NV, errstr, sizeof errstr));
    for (int m = 0; m < NM; m++) {
        double skill = 0.3 + 0.1 * m;
        for (int i = 0; i < NV; i++)
            for (int c = 0; c < NK; c++) {
                int q = 1 + (int)(ens_rng_uniform(&rng) * 400);
                if (c == labels[i] && ens_rng_uniform(&rng) < skill)
                    q += 600;
                probs[m][i * NK + c] = (float)q / 1024.0f; /* exact in float16 */
            }
        snprintf(ids[m], sizeof ids[m], "t-%02d-e1", m);
        ens_state_eval_t rec = {.ms_per_sample = 0.01 * (1 + m % 3), .memory_bytes = 1000 + m,
                                .n_val = NV, .n_classes = NK, .probs_f16 = 1};
        CHECK_OK(ens_state_eval_put(state, study, ids[m], &rec, errstr, sizeof errstr));
        CHECK_OK(ens_state_probs_put(state, study, ids[m], probs[m], NV, NK, errstr,
                                     sizeof errstr));
    }

    ens_selector_t s = {.state = state, .producer = producer, .debounce_ms = 0,
                        .max_delay_ms = 0};
    ens_event_t ev;
    /* not a ModelEvaluated; a bad shape: refused, nothing marked */
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    CHECK_EQ_INT(ens_selector_handle(&s, &ev, errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_event_free(&ev);
    evaluated(&ev, study, ids[0], 0);
    CHECK_EQ_INT(ens_selector_handle(&s, &ev, errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_event_free(&ev);
    char **v = NULL;
    int n = 0;
    CHECK_OK(ens_state_dirty_list(state, &v, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);
    ens_state_strings_free(v, n);

    for (int m = 0; m < NM; m++) {
        evaluated(&ev, study, ids[m], NV);
        CHECK_OK(ens_selector_handle(&s, &ev, errstr, sizeof errstr));
        ens_event_free(&ev);
        /* the handler's effect: in the library, the study marked */
        CHECK_OK(ens_state_library_list(state, study, &v, &n, errstr, sizeof errstr));
        CHECK_EQ_INT(n, m + 1);
        CHECK(in_list(v, n, ids[m]));
        ens_state_strings_free(v, n);
        CHECK_OK(ens_state_dirty_list(state, &v, &n, errstr, sizeof errstr));
        CHECK(n == 1 && in_list(v, n, study));
        ens_state_strings_free(v, n);
        /* the tick: the front stored and produced, the mark cleared */
        ens_selector_tick(&s);
        ens_event_t f;
        ens_err_t err = ens_state_front_get(state, study, &f, errstr, sizeof errstr);
        CHECK_OK(err);
        if (!err) {
            CHECK_EQ_INT(f.u.ensemble_front.n_models, m + 1);
            CHECK(f.u.ensemble_front.n_ensembles >= 1);
            ens_event_free(&f);
        }
        CHECK_OK(ens_state_dirty_list(state, &v, &n, errstr, sizeof errstr));
        CHECK_EQ_INT(n, 0);
        ens_state_strings_free(v, n);
        CHECK_EQ_INT(ens_kafka_captured_count(producer), m + 1);
        const ens_kafka_captured_t *c = ens_kafka_captured(producer, m);
        if (c) {
            CHECK_STR(c->topic, ENS_TOPIC_ENSEMBLE_FRONTS);
            CHECK_STR(c->key, study);
            CHECK_OK(ens_event_decode(c->payload, c->len, &f, errstr, sizeof errstr));
            CHECK_EQ_INT(f.type, ENS_EV_ENSEMBLE_FRONT);
            CHECK_EQ_INT(f.u.ensemble_front.n_models, m + 1);
            ens_event_free(&f);
        }
    }
    /* nothing new: a tick publishes nothing */
    ens_selector_tick(&s);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), NM);

    /* each model's own point on the two halves, and the front a fresh selector computes */
    int32_t *sel = NULL, *hold = NULL, ns = 0, nh = 0;
    CHECK_OK(ens_select_halves(NV, &sel, &ns, &hold, &nh));
    for (int m = 0; sel && m < NM; m++) {
        ens_state_eval_t rec;
        CHECK_OK(ens_state_eval_get(state, study, ids[m], &rec, errstr, sizeof errstr));
        CHECK_NEAR(rec.sel_accuracy, ens_accuracy(probs[m], labels, sel, ns, NK), 1e-6);
        CHECK_NEAR(rec.holdout_accuracy, ens_accuracy(probs[m], labels, hold, nh, NK), 1e-6);
        CHECK_NEAR(rec.holdout_logloss, ens_logloss(probs[m], labels, hold, nh, NK), 1e-5);
        CHECK_NEAR(rec.ms_per_sample, 0.01 * (1 + m % 3), 1e-12); /* the evaluator's stay */
    }
    ens_event_t inc, fresh;
    CHECK_OK(ens_selector_recompute(&s, study, &inc, errstr, sizeof errstr));
    ens_selector_t s2 = {.state = state, .producer = producer};
    CHECK_OK(ens_selector_recompute(&s2, study, &fresh, errstr, sizeof errstr));
    const ens_ensemble_front_t *fi = &inc.u.ensemble_front, *ff = &fresh.u.ensemble_front;
    CHECK_EQ_INT(fi->n_ensembles, ff->n_ensembles);
    for (int i = 0; i < fi->n_ensembles && i < ff->n_ensembles; i++) {
        CHECK_STR(fi->ensembles[i].ensemble_id, ff->ensembles[i].ensemble_id);
        CHECK_NEAR(fi->ensembles[i].holdout_accuracy, ff->ensembles[i].holdout_accuracy, 1e-12);
    }
    /* the best single model is the most skilled one */
    CHECK_STR(fi->ensembles[0].method, "single");
    CHECK_STR(fi->ensembles[0].members[0], ids[NM - 1]);
    ens_event_free(&inc);
    ens_event_free(&fresh);

    /* a restarted selector picks up a study marked by the run before */
    CHECK_OK(ens_state_dirty_add(state, study, errstr, sizeof errstr));
    ens_selector_t s3 = {.state = state, .producer = producer};
    ens_selector_tick(&s3);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), NM + 3);
    CHECK_OK(ens_state_dirty_list(state, &v, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);
    ens_state_strings_free(v, n);

    free(sel);
    free(hold);
    ens_selector_close(&s);
    ens_selector_close(&s2);
    ens_selector_close(&s3);
    ens_kafka_free(producer);
    ens_state_free(state);
    return check_done("test_selector_mem");
}
