/* evaluator.c - TrialResult -> validation probabilities, accuracy and cost -> ModelEvaluated. */
#include "evaluator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/ensemble.h"
#include "ensflow/log.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

double ens_evaluator_ms_per_sample(ens_model_t *m, const float *x, int32_t n, int32_t b,
                                   int reps) {
    int32_t rows = n < 1024 ? n : 1024;
    rows -= rows % b ? rows % b : 0;
    if (rows < b)
        rows = n < b ? n : b;
    if (rows <= 0)
        return 0;
    float *probs = malloc((size_t)b * (size_t)ens_model_n_classes(m) * sizeof *probs);
    if (!probs)
        return 0;
    double best = 1e300;
    int32_t dim = ens_model_in_dim(m);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        for (int32_t i = 0; i < rows; i += b) {
            int32_t nb = rows - i < b ? rows - i : b;
            ens_model_predict(m, x + (size_t)i * (size_t)dim, nb, probs);
        }
        double ms = (now_ms() - t0) / rows;
        if (ms < best)
            best = ms;
    }
    free(probs);
    return best;
}

uint16_t ens_evaluator_f16(float f) {
    return ens_state_f16_encode(f);
}

const int32_t ens_evaluator_profile_batches[ENS_EVALUATOR_N_PROFILE] = {1, 8, 32, 128};

ens_err_t ens_evaluator_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_evaluator_t *e = ctx;
    if (ev->type != ENS_EV_TRIAL_RESULT)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "evaluator does not take %s",
                           ens_event_type_name(ev->type));
    const ens_trial_result_t *t = &ev->u.trial_result;
    if (t->status != ENS_TRIAL_OK)
        return ENS_OK;
    /* the study's data settings, as the proposer stored them */
    ens_state_study_t study;
    ens_err_t err = ens_state_study_get(e->state, t->study_id, &study, errstr, size);
    const ens_dataset_t *train = NULL, *val = NULL;
    if (!err)
        err = ens_study_data_get(&e->data, study.dataset, study.val_fraction,
                                 (uint64_t)study.seed, &train, &val, errstr, size);
    void *blob = NULL;
    size_t blob_len = 0;
    if (!err)
        err = ens_state_model_get(e->state, t->study_id, t->model_id, &blob, &blob_len, errstr,
                                  size);
    ens_model_t *model = NULL;
    if (!err)
        err = ens_model_load(blob, blob_len, &model, errstr, size);
    free(blob);
    if (err)
        return err;
    int32_t k = ens_model_n_classes(model);
    float *probs = malloc((size_t)val->n * (size_t)k * sizeof *probs);
    ens_state_eval_t rec = {.probs_f16 = 1};
    double *profile = rec.ms_per_sample_b;
    ens_event_t out;
    ens_event_init(&out, ENS_EV_MODEL_EVALUATED);
    ens_model_evaluated_t *me = &out.u.model_evaluated;
    snprintf(me->study_id, sizeof me->study_id, "%s", t->study_id);
    snprintf(me->trial_id, sizeof me->trial_id, "%s", t->trial_id);
    snprintf(me->model_id, sizeof me->model_id, "%s", t->model_id);
    err = probs ? ens_model_predict(model, val->x, val->n, probs) : ENS_ERR_NOMEM;
    if (!err) {
        me->val_accuracy = ens_accuracy(probs, val->y, NULL, val->n, k);
        me->val_logloss = ens_logloss(probs, val->y, NULL, val->n, k);
        me->n_params = ens_model_n_params(model);
        /* per sample, counted per layer */
        rec.flops_per_sample = ens_model_flops_per_sample(model);
        me->batch_size = e->serving_batch;
        me->ms_per_sample = -1;
        for (int i = 0; i < ENS_EVALUATOR_N_PROFILE; i++) {
            profile[i] = ens_evaluator_ms_per_sample(model, val->x, val->n,
                                                     ens_evaluator_profile_batches[i], 3);
            if (ens_evaluator_profile_batches[i] == e->serving_batch)
                me->ms_per_sample = profile[i];
        }
        if (me->ms_per_sample < 0)
            me->ms_per_sample =
                ens_evaluator_ms_per_sample(model, val->x, val->n, e->serving_batch, 3);
        me->memory_bytes = ens_model_memory_bytes(model, e->serving_batch);
        me->n_val = val->n;
        me->n_classes = k;
        err = ens_state_probs_put(e->state, t->study_id, t->model_id, probs, val->n, k, errstr,
                                  size);
    }
    if (!err)
        err = ens_state_labels_put(e->state, t->study_id, val->y, val->n, errstr, size);
    if (!err) {
        snprintf(rec.trial_id, sizeof rec.trial_id, "%s", t->trial_id);
        rec.val_accuracy = me->val_accuracy;
        rec.val_logloss = me->val_logloss;
        rec.n_params = me->n_params;
        rec.ms_per_sample = me->ms_per_sample;
        rec.batch_size = me->batch_size;
        rec.memory_bytes = me->memory_bytes;
        rec.n_val = me->n_val;
        rec.n_classes = me->n_classes;
        err = ens_state_eval_put(e->state, t->study_id, t->model_id, &rec, errstr, size);
    }
    if (!err) {
        ENS_INFO("study=%s model=%s msg=\"evaluated\" val_acc=%.4f logloss=%.4f "
                 "ms_per_sample=%.4f ms_b1=%.4f ms_b8=%.4f ms_b32=%.4f ms_b128=%.4f params=%lld",
                 t->study_id, t->model_id, me->val_accuracy, me->val_logloss, me->ms_per_sample,
                 profile[0], profile[1], profile[2], profile[3], (long long)me->n_params);
        err = ens_kafka_produce_event(e->producer, ENS_TOPIC_MODEL_EVALUATED, t->study_id, &out,
                                      ev->event_id, errstr, size);
    }
    ens_event_free(&out);
    free(probs);
    ens_model_free(model);
    return err;
}

void ens_evaluator_close(ens_evaluator_t *e) {
    ens_study_data_free(e->data);
    e->data = NULL;
}
