/* test_evaluator_mem.c - the evaluator's handler on the in-memory state and a capture
 * producer: what it stores and what it produces, without Redis or Kafka. */
#include <unistd.h>

#include "check.h"
#include "ensflow/ensemble.h"
#include "evaluator.h"

enum { DIM = 4, K = 3, ROWS = 60 };

static char errstr[512];

/* A CSV data set of ROWS rows (label, DIM features) in a temporary file; path receives it. */
static void write_csv(char *path, size_t size) {
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(path, size, "%s/ens-evaluator-mem-XXXXXX.csv", tmp);
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    CHECK(f != NULL);
    if (!f)
        return;
    for (int i = 0; i < ROWS; i++) {
        int y = i % K;
        fprintf(f, "%d", y);
        for (int j = 0; j < DIM; j++)
            fprintf(f, ",%.3f", (double)((i * 7 + j * 3) % 11) / 11.0 + (j == y ? 0.5 : 0.0));
        fprintf(f, "\n");
    }
    fclose(f);
}

static void trial_result(ens_event_t *ev, const char *study, const char *model, int ok) {
    ens_event_init(ev, ENS_EV_TRIAL_RESULT);
    ens_trial_result_t *t = &ev->u.trial_result;
    snprintf(t->study_id, sizeof t->study_id, "%s", study);
    snprintf(t->trial_id, sizeof t->trial_id, "t-00001");
    snprintf(t->model_id, sizeof t->model_id, "%s", model);
    t->status = ok ? ENS_TRIAL_OK : ENS_TRIAL_FAILED;
}

int main(void) {
    char csv[512];
    write_csv(csv, sizeof csv);
    ens_state_t *state = NULL;
    ens_kafka_t *producer = NULL;
    CHECK_OK(ens_state_mem_new(&state));
    CHECK_OK(ens_kafka_capture_new(&producer));
    if (!state || !producer)
        return check_done("test_evaluator_mem");
    const char *study = "s-eval-mem", *model_id = "t-00001-e1";
    ens_state_study_t st = {.val_fraction = 0.25, .seed = 7, .top_k = 5};
    snprintf(st.dataset, sizeof st.dataset, "%s", csv);
    CHECK_OK(ens_state_study_put(state, study, &st, errstr, sizeof errstr));
    int32_t hidden[] = {8};
    ens_model_t *model = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    CHECK_OK(ens_model_new_mlp(DIM, hidden, 1, K, 3, &model));
    CHECK_OK(ens_model_save(model, &blob, &len));
    CHECK_OK(ens_state_model_put(state, study, model_id, blob, len, errstr, sizeof errstr));
    free(blob);

    ens_evaluator_t e = {.state = state, .producer = producer, .serving_batch = 8};
    /* not a trial result; a failed trial: nothing stored, nothing produced */
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    CHECK_EQ_INT(ens_evaluator_handle(&e, &ev, errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_event_free(&ev);
    trial_result(&ev, study, model_id, 0);
    CHECK_OK(ens_evaluator_handle(&e, &ev, errstr, sizeof errstr));
    ens_event_free(&ev);
    ens_state_eval_t rec;
    CHECK_EQ_INT(ens_state_eval_get(state, study, model_id, &rec, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 0);
    /* a study that is not stored: an error, nothing produced */
    trial_result(&ev, "s-nowhere", model_id, 1);
    CHECK_EQ_INT(ens_evaluator_handle(&e, &ev, errstr, sizeof errstr), ENS_ERR_NOTFOUND);
    ens_event_free(&ev);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 0);

    /* a trained model: its evaluation, probabilities and labels stored, then the event */
    trial_result(&ev, study, model_id, 1);
    CHECK_OK(ens_evaluator_handle(&e, &ev, errstr, sizeof errstr));
    ens_event_free(&ev);
    ens_study_data_t *data = NULL;
    const ens_dataset_t *train = NULL, *val = NULL;
    CHECK_OK(ens_study_data_get(&data, csv, 0.25, 7, &train, &val, errstr, sizeof errstr));
    if (!val) {
        fprintf(stderr, "%s\n", errstr);
        return check_done("test_evaluator_mem");
    }
    float *want = malloc((size_t)val->n * K * sizeof *want);
    CHECK_OK(ens_model_predict(model, val->x, val->n, want));
    double acc = ens_accuracy(want, val->y, NULL, val->n, K);
    CHECK_OK(ens_state_eval_get(state, study, model_id, &rec, errstr, sizeof errstr));
    CHECK_STR(rec.trial_id, "t-00001");
    CHECK_NEAR(rec.val_accuracy, acc, 1e-9);
    CHECK_NEAR(rec.val_logloss, ens_logloss(want, val->y, NULL, val->n, K), 1e-6);
    CHECK_EQ_INT(rec.n_val, val->n);
    CHECK_EQ_INT(rec.n_classes, K);
    CHECK_EQ_INT(rec.batch_size, 8);
    CHECK_EQ_INT(rec.n_params, ens_model_n_params(model));
    CHECK_EQ_INT(rec.flops_per_sample, ens_model_flops_per_sample(model));
    CHECK_EQ_INT(rec.memory_bytes, ens_model_memory_bytes(model, 8));
    CHECK(rec.probs_f16);
    CHECK(rec.ms_per_sample > 0);
    for (int b = 0; b < ENS_EVALUATOR_N_PROFILE; b++)
        CHECK(rec.ms_per_sample_b[b] > 0);
    CHECK_NEAR(rec.ms_per_sample, rec.ms_per_sample_b[1], 1e-12); /* batch 8 is measured */
    float *probs = NULL;
    CHECK_OK(ens_state_probs_get(state, study, model_id, val->n, K, 1, &probs, errstr,
                                 sizeof errstr));
    for (int i = 0; probs && i < val->n * K; i++)
        CHECK(fabsf(probs[i] - want[i]) <= want[i] * 0x1p-11f + 0x1p-25f);
    /* the float16 blob is not a float32 one */
    float *as32 = NULL;
    CHECK_EQ_INT(ens_state_probs_get(state, study, model_id, val->n, K, 0, &as32, errstr,
                                     sizeof errstr),
                 ENS_ERR_CORRUPT);
    int32_t *labels = NULL;
    CHECK_OK(ens_state_labels_get(state, study, val->n, K, &labels, errstr, sizeof errstr));
    for (int i = 0; labels && i < val->n; i++)
        CHECK_EQ_INT(labels[i], val->y[i]);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 1);
    const ens_kafka_captured_t *c = ens_kafka_captured(producer, 0);
    if (c) {
        CHECK_STR(c->topic, ENS_TOPIC_MODEL_EVALUATED);
        CHECK_STR(c->key, study);
        ens_event_t out;
        CHECK_OK(ens_event_decode(c->payload, c->len, &out, errstr, sizeof errstr));
        CHECK_EQ_INT(out.type, ENS_EV_MODEL_EVALUATED);
        CHECK_STR(out.u.model_evaluated.model_id, model_id);
        CHECK_NEAR(out.u.model_evaluated.val_accuracy, acc, 1e-9);
        CHECK_EQ_INT(out.u.model_evaluated.n_val, val->n);
        ens_event_free(&out);
    }
    free(labels);
    free(probs);
    free(want);
    ens_study_data_free(data);
    ens_evaluator_close(&e);
    ens_model_free(model);
    ens_kafka_free(producer);
    ens_state_free(state);
    unlink(csv);
    return check_done("test_evaluator_mem");
}
