/* trainer.c - TrialJob -> trained checkpoint in the model store -> TrialResult. */
#include "trainer.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/log.h"
#include "ensflow/nn.h"
#include "ensflow/space.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static ens_err_t report(ens_trainer_t *t, const ens_event_t *job_ev, ens_event_t *res,
                        char *errstr, size_t size) {
    const ens_trial_job_t *job = &job_ev->u.trial_job;
    ens_trial_result_t *r = &res->u.trial_result;
    snprintf(r->study_id, sizeof r->study_id, "%s", job->study_id);
    snprintf(r->trial_id, sizeof r->trial_id, "%s", job->trial_id);
    return ens_kafka_produce_event(t->producer, ENS_TOPIC_TRIAL_RESULTS, job->study_id, res,
                                   job_ev->event_id, errstr, size);
}

static ens_err_t report_failure(ens_trainer_t *t, const ens_event_t *job_ev, const char *why,
                                char *errstr, size_t size) {
    ens_event_t res;
    ens_event_init(&res, ENS_EV_TRIAL_RESULT);
    res.u.trial_result.status = ENS_TRIAL_FAILED;
    res.u.trial_result.error = strdup(why);
    ENS_WARN("study=%s trial=%s msg=\"trial failed\" error=\"%s\"", job_ev->u.trial_job.study_id,
             job_ev->u.trial_job.trial_id, why);
    ens_err_t err = res.u.trial_result.error ? report(t, job_ev, &res, errstr, size)
                                             : ENS_ERR_NOMEM;
    ens_event_free(&res);
    return err;
}

/* A redelivered job whose training finished: report the stored outcome again. */
static int report_if_trained(ens_trainer_t *t, const ens_event_t *job_ev, const char *tkey,
                             ens_err_t *err, char *errstr, size_t size) {
    redisReply *rep = ens_redis_command(
        t->redis, errstr, size,
        "HMGET %s trained_model val_accuracy val_loss train_seconds epochs_done sps", tkey);
    if (!rep) {
        *err = ENS_ERR_REDIS;
        return 1;
    }
    int trained = rep->type == REDIS_REPLY_ARRAY && rep->elements == 6 &&
                  rep->element[0]->type == REDIS_REPLY_STRING;
    if (trained) {
        ens_event_t res;
        ens_event_init(&res, ENS_EV_TRIAL_RESULT);
        ens_trial_result_t *r = &res.u.trial_result;
        snprintf(r->model_id, sizeof r->model_id, "%s", rep->element[0]->str);
        double *fields[] = {&r->val_accuracy, &r->val_loss, &r->train_seconds, &r->epochs_done,
                            &r->train_samples_per_second};
        for (int i = 0; i < 5; i++)
            *fields[i] = rep->element[i + 1]->type == REDIS_REPLY_STRING
                             ? strtod(rep->element[i + 1]->str, NULL)
                             : 0;
        r->status = ENS_TRIAL_OK;
        ENS_INFO("study=%s trial=%s msg=\"already trained, reporting again\" model=%s",
                 job_ev->u.trial_job.study_id, job_ev->u.trial_job.trial_id, r->model_id);
        *err = report(t, job_ev, &res, errstr, size);
        ens_event_free(&res);
    }
    ens_redis_reply_free(rep);
    return trained;
}

/* Global mean and standard deviation of the training inputs: the model's normalisation. */
static void input_stats(const ens_dataset_t *ds, float *mean, float *std) {
    double s = 0, s2 = 0;
    size_t n = (size_t)ds->n * (size_t)ds->dim;
    for (size_t i = 0; i < n; i++) {
        s += ds->x[i];
        s2 += (double)ds->x[i] * ds->x[i];
    }
    double m = n ? s / (double)n : 0, var = n ? s2 / (double)n - m * m : 1;
    *mean = (float)m;
    *std = (float)(var > 1e-12 ? sqrt(var) : 1.0);
}

ens_err_t ens_trainer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_trainer_t *t = ctx;
    if (ev->type != ENS_EV_TRIAL_JOB)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "trainer does not take %s",
                           ens_event_type_name(ev->type));
    const ens_trial_job_t *job = &ev->u.trial_job;
    char tkey[256], mkey[256], why[512];
    ens_key(tkey, sizeof tkey, job->study_id, "trial:%s", job->trial_id);
    ens_err_t err = ENS_OK;
    if (report_if_trained(t, ev, tkey, &err, errstr, size))
        return err;

    ens_trial_config_t cfg;
    if (ens_trial_config_parse(job->config_json, &cfg, why, sizeof why))
        return report_failure(t, ev, why, errstr, size);
    const ens_dataset_t *train = NULL, *val = NULL;
    err = ens_study_data_get(&t->data, job->dataset, job->val_fraction, (uint64_t)job->seed,
                             &train, &val, why, sizeof why);
    if (err == ENS_ERR_NOMEM)
        return err;
    if (err)
        return report_failure(t, ev, why, errstr, size);

    ens_model_t *model = NULL;
    if ((err = ens_model_new_mlp(train->dim, cfg.hidden, cfg.n_hidden, train->n_classes,
                                 (uint64_t)job->seed ^ (uint64_t)strtoull(job->trial_id + 2, NULL,
                                                                          10),
                                 &model)))
        return err;
    float mean, std;
    input_stats(train, &mean, &std);
    ens_model_set_normalisation(model, mean, std);
    ens_sgd_t sgd = {.lr = cfg.lr, .momentum = cfg.momentum, .weight_decay = cfg.weight_decay,
                     .batch_size = cfg.batch_size};
    ens_rng_t rng;
    ens_rng_seed(&rng, (uint64_t)job->seed + 7919u * (uint64_t)job->attempt);
    int epochs = (int)ceil(job->epochs);
    double t0 = now_s(), loss = 0, acc = 0, val_loss = 0;
    ENS_INFO("study=%s trial=%s msg=\"training\" config=%s epochs=%d", job->study_id,
             job->trial_id, job->config_json, epochs);
    for (int e = 0; e < epochs && !err; e++) {
        if (t->stop && *t->stop)
            err = ENS_ERR_STOPPED;
        else if (!(err = ens_model_train_epoch(model, train, &sgd, &rng, &loss)))
            err = ens_model_evaluate(model, val, &acc, &val_loss, NULL);
        if (!err) {
            ens_model_set_epochs_done(model, e + 1);
            ENS_INFO("study=%s trial=%s msg=\"epoch done\" epoch=%d/%d loss=%.4f val_acc=%.4f",
                     job->study_id, job->trial_id, e + 1, epochs, loss, acc);
            ens_redis_exec(t->redis, NULL, 0, "HSET %s progress_epochs %d", tkey, e + 1);
        }
        if (!err && !isfinite(loss)) {
            snprintf(why, sizeof why, "training diverged (loss %g) at epoch %d", loss, e + 1);
            ens_model_free(model);
            return report_failure(t, ev, why, errstr, size);
        }
    }
    double seconds = now_s() - t0;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    ens_event_t res;
    ens_event_init(&res, ENS_EV_TRIAL_RESULT);
    ens_trial_result_t *r = &res.u.trial_result;
    snprintf(r->model_id, sizeof r->model_id, "%.40s-e%d", job->trial_id, epochs);
    if (!err)
        err = ens_model_save(model, &blob, &blob_len);
    ens_model_free(model);
    ens_key(mkey, sizeof mkey, job->study_id, "model:%s", r->model_id);
    if (!err)
        err = ens_store_blob_put(t->redis, mkey, blob, blob_len, 0, errstr, size);
    free(blob);
    r->status = ENS_TRIAL_OK;
    r->epochs_done = epochs;
    r->val_accuracy = acc;
    r->val_loss = val_loss;
    r->train_seconds = seconds;
    r->train_samples_per_second = seconds > 0 ? (double)train->n * epochs / seconds : 0;
    if (!err)
        err = ens_redis_exec(t->redis, errstr, size,
                             "HSET %s trained_model %s val_accuracy %.6f val_loss %.6f "
                             "train_seconds %.3f epochs_done %d sps %.1f",
                             tkey, r->model_id, acc, val_loss, seconds, epochs,
                             r->train_samples_per_second);
    if (!err) {
        ENS_INFO("study=%s trial=%s msg=\"trained\" model=%s val_acc=%.4f seconds=%.1f "
                 "samples_per_s=%.0f",
                 job->study_id, job->trial_id, r->model_id, acc, seconds,
                 r->train_samples_per_second);
        err = report(t, ev, &res, errstr, size);
    }
    ens_event_free(&res);
    return err;
}

void ens_trainer_close(ens_trainer_t *t) {
    ens_study_data_free(t->data);
    t->data = NULL;
}
