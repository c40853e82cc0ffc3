/* evaluator.c - TrialResult -> validation probabilities, accuracy and cost -> ModelEvaluated. */
#include "evaluator.h"

#include <hiredis/hiredis.h>
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
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
    if (e == 0xff) /* inf, nan */
        return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (he <= 0) { /* subnormal half: m * 2^-24, rounded to nearest even */
        if (he < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - he), hm = m >> shift, rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1u)))
            hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t h = sign | ((uint32_t)he << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is still the right rounding */
    return (uint16_t)h;
}

const int32_t ens_evaluator_profile_batches[ENS_EVALUATOR_N_PROFILE] = {1, 8, 32, 128};

/* The study's data settings, as the proposer stored them. */
static ens_err_t study_settings(ens_redis_t *r, const char *study, char *dataset, size_t dsize,
                                double *val_fraction, int64_t *seed, char *errstr,
                                size_t size) {
    char key[256];
    ens_key(key, sizeof key, study, "study");
    redisReply *rep =
        ens_redis_command(r, errstr, size, "HMGET %s dataset val_fraction seed", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING)
        err = ens_err_set(errstr, size, ENS_ERR_NOTFOUND, "study %s is not in Redis", study);
    else {
        snprintf(dataset, dsize, "%s", rep->element[0]->str);
        *val_fraction = strtod(rep->element[1]->str ? rep->element[1]->str : "0.1", NULL);
        *seed = strtoll(rep->element[2]->str ? rep->element[2]->str : "0", NULL, 10);
    }
    ens_redis_reply_free(rep);
    return err;
}

ens_err_t ens_evaluator_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_evaluator_t *e = ctx;
    if (ev->type != ENS_EV_TRIAL_RESULT)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "evaluator does not take %s",
                           ens_event_type_name(ev->type));
    const ens_trial_result_t *t = &ev->u.trial_result;
    if (t->status != ENS_TRIAL_OK)
        return ENS_OK;
    char dataset[1024], key[256];
    double val_fraction = 0;
    int64_t seed = 0;
    ens_err_t err = study_settings(e->redis, t->study_id, dataset, sizeof dataset, &val_fraction,
                                   &seed, errstr, size);
    const ens_dataset_t *train = NULL, *val = NULL;
    if (!err)
        err = ens_study_data_get(&e->data, dataset, val_fraction, (uint64_t)seed, &train, &val,
                                 errstr, size);
    void *blob = NULL;
    size_t blob_len = 0;
    snprintf(key, sizeof key, "model:%s", t->model_id);
    if (!err)
        err = ens_models_get(e->store, e->redis, t->study_id, key, &blob, &blob_len, errstr,
                             size);
    ens_model_t *model = NULL;
    if (!err)
        err = ens_model_load(blob, blob_len, &model, errstr, size);
    free(blob);
    if (err)
        return err;
    int32_t k = ens_model_n_classes(model);
    float *probs = malloc((size_t)val->n * (size_t)k * sizeof *probs);
    double profile[ENS_EVALUATOR_N_PROFILE] = {0};
    int64_t flops = 0; /* per sample, counted per layer (ens_model_flops_per_sample) */
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
        flops = ens_model_flops_per_sample(model);
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
        /* float16: half the bytes, and ~3 significant digits are plenty to rank ensembles */
        size_t cells = (size_t)val->n * (size_t)k;
        uint16_t *half = malloc(cells * sizeof *half + 1);
        if (!half)
            err = ENS_ERR_NOMEM;
        for (size_t i = 0; !err && i < cells; i++)
            half[i] = ens_evaluator_f16(probs[i]);
        ens_key(key, sizeof key, t->study_id, "probs:%s", t->model_id);
        if (!err)
            err = ens_store_blob_put(e->redis, key, half, cells * sizeof *half, 0, errstr, size);
        free(half);
    }
    if (!err) {
        ens_key(key, sizeof key, t->study_id, "val_labels");
        err = ens_store_blob_put(e->redis, key, val->y, (size_t)val->n * sizeof *val->y, 0,
                                 errstr, size);
    }
    if (!err) {
        ens_key(key, sizeof key, t->study_id, "eval:%s", t->model_id);
        err = ens_redis_exec(e->redis, errstr, size,
                             "HSET %s trial_id %s val_accuracy %.6f val_logloss %.6f n_params "
                             "%lld flops_per_sample %lld ms_per_sample %.6f batch_size %d "
                             "memory_bytes %lld ms_per_sample_b1 %.6f ms_per_sample_b8 %.6f "
                             "ms_per_sample_b32 %.6f ms_per_sample_b128 %.6f n_val %d "
                             "n_classes %d probs_dtype float16",
                             key, t->trial_id, me->val_accuracy, me->val_logloss,
                             (long long)me->n_params, (long long)flops,
                             me->ms_per_sample, (int)me->batch_size,
                             (long long)me->memory_bytes, profile[0], profile[1], profile[2],
                             profile[3], (int)me->n_val, (int)me->n_classes);
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
