/* trainer.c - TrialJob -> (resumed) training -> checkpoint in the model store -> TrialResult. */
#include "trainer.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ensflow/log.h"
#include "ensflow/metrics.h"
#include "ensflow/nn.h"
#include "ensflow/space.h"
#include "ensflow/state_sched.h"

/* seconds of training between two looks at the stop flag and the health check */
#define PIECE_S 5.0

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *trainer_id(ens_trainer_t *t) {
    if (!t->id[0]) {
        char host[40] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(t->id, sizeof t->id, "%s-%ld", host, (long)getpid());
    }
    return t->id;
}

ens_err_t ens_trainer_parts_record(char *buf, size_t size, int64_t beat_ms, const int32_t *parts,
                                   int n) {
    if (!buf || size == 0 || n < 0 || (n > 0 && !parts))
        return ENS_ERR_INVALID;
    int w = snprintf(buf, size, "%lld %s", (long long)beat_ms, n ? "" : "-");
    size_t used = w < 0 ? size : (size_t)w;
    for (int i = 0; i < n && used < size; i++) {
        w = snprintf(buf + used, size - used, "%s%d", i ? "," : "", (int)parts[i]);
        used = w < 0 ? size : used + (size_t)w;
    }
    return used < size ? ENS_OK : ENS_ERR_INVALID;
}

/* The partitions of trial.jobs assigned to this trainer now, for the proposer to send jobs to.
 * When they cannot be told the record is removed, so the proposer does not trust an old one. */
static void publish_parts(ens_trainer_t *t, ens_state_t *st, int64_t beat_ms) {
    int32_t parts[ENS_TRAINER_MAX_PARTITIONS];
    char rec[8 * ENS_TRAINER_MAX_PARTITIONS], errstr[256];
    int n = 0;
    ens_err_t err = ens_kafka_assignment_partitions(t->consumer, ENS_TOPIC_TRIAL_JOBS, parts,
                                                    ENS_TRAINER_MAX_PARTITIONS, &n, errstr,
                                                    sizeof errstr);
    if (!err)
        err = ens_trainer_parts_record(rec, sizeof rec, beat_ms, parts, n);
    if (err) {
        ENS_WARN("msg=\"partitions not published\" error=\"%s\"",
                 err == ENS_ERR_KAFKA ? errstr : ens_err_str(err));
        ens_state_trainer_parts_put(st, trainer_id(t), NULL, NULL, 0);
        return;
    }
    ens_state_trainer_parts_put(st, trainer_id(t), rec, NULL, 0);
}

/* Heartbeat on state st (each thread its own); best effort (a missed beat only makes the
 * proposer more cautious). */
static void beat_on(ens_trainer_t *t, ens_state_t *st, int64_t beat_ms) {
    ens_state_trainer_beat(st, trainer_id(t), beat_ms, NULL, 0);
    if (t->consumer)
        publish_parts(t, st, beat_ms);
}

/* Heartbeat and state, from the handler's thread. */
static void beat(ens_trainer_t *t, const char *state) {
    t->last_beat_ms = ens_now_ms();
    beat_on(t, t->state, t->last_beat_ms);
    if (state)
        ens_state_trainer_state_put(t->state, trainer_id(t), state, NULL, 0);
}

static int lease_ms(const ens_trainer_t *t) {
    return t->lease_ms > 0 ? t->lease_ms : 30000;
}

void ens_trainer_busy_tick(void *ctx) {
    ens_trainer_t *t = ctx;
    int64_t now = ens_now_ms();
    if (!t->state_bg || now - t->bg_beat_ms < 1000)
        return;
    t->bg_beat_ms = now;
    beat_on(t, t->state_bg, now);
    pthread_mutex_lock(&t->mu);
    int lost = 0;
    /* no answer (Redis away): tried again next beat */
    if (t->lease_trial[0] &&
        !ens_state_sched_lease_renew(t->state_bg, t->lease_study, t->lease_trial, trainer_id(t),
                                     t->lease_model, lease_ms(t), &lost, NULL, 0) &&
        lost) {
        ENS_WARN("study=%s trial=%s msg=\"job lease taken by another trainer; the job is given "
                 "up\"",
                 t->lease_study, t->lease_trial);
        t->lease_lost = 1;
    }
    pthread_mutex_unlock(&t->mu);
}

/* Take the job's lease, which expires lease_ms after its last renewal. Refused (1, holder
 * named) only when another trainer holds this very job: a lease of the trial's earlier job,
 * or this trainer's own, is taken over. */
static int lease_take(ens_trainer_t *t, const char *study, const char *trial, const char *mid,
                      char *holder, size_t holder_size, ens_err_t *err, char *errstr, size_t size) {
    int refused = 0;
    *err = ens_state_sched_lease_take(t->state, study, trial, trainer_id(t), mid, lease_ms(t),
                                      &refused, holder, holder_size, errstr, size);
    if (!*err && !refused) {
        pthread_mutex_lock(&t->mu);
        snprintf(t->lease_study, sizeof t->lease_study, "%s", study);
        snprintf(t->lease_trial, sizeof t->lease_trial, "%s", trial);
        snprintf(t->lease_model, sizeof t->lease_model, "%s", mid);
        t->lease_lost = 0;
        pthread_mutex_unlock(&t->mu);
    }
    return !*err && refused;
}

/* Stop renewing the lease; drop it too when the job is given up unfinished (a clean stop), so
 * that the proposer issues it again at once. A finished job's lease runs out by itself, which
 * leaves the proposer time to read the result before it would think the job lost. */
static void lease_end(ens_trainer_t *t, int drop) {
    pthread_mutex_lock(&t->mu);
    if (drop && t->lease_trial[0])
        ens_state_sched_lease_drop(t->state, t->lease_study, t->lease_trial, NULL, 0);
    t->lease_trial[0] = '\0';
    pthread_mutex_unlock(&t->mu);
}

void ens_trainer_tick(void *ctx) {
    ens_trainer_t *t = ctx;
    /* Register once the group has given this trainer partitions of trial.jobs: before that it
     * cannot take a job, so the proposer must not count it nor send work its way (a fresh
     * consumer's join takes a few seconds). An assignment it cannot read does not hold it back. */
    if (!t->last_beat_ms && t->consumer) {
        int32_t parts[ENS_TRAINER_MAX_PARTITIONS];
        int n = 0;
        if (ens_kafka_assignment_partitions(t->consumer, ENS_TOPIC_TRIAL_JOBS, parts,
                                            ENS_TRAINER_MAX_PARTITIONS, &n, NULL, 0) == ENS_OK &&
            n == 0)
            return;
    }
    int64_t now = ens_now_ms();
    if (now - t->last_beat_ms >= 1000)
        beat(t, t->busy_since > 0 ? NULL : "idle");
    /* an idle trainer compacts the files of a study that has ended, a slice at a time, so
     * that the loop goes on polling and beating; it looks for one every 5 s */
    if (t->store && t->busy_since <= 0 &&
        (t->compact.study[0] || now - t->last_compact_ms >= 5000)) {
        t->last_compact_ms = now;
        t->compact.grace_s = t->compact_grace_s;
        ens_retain_study_step(&t->compact, t->store, t->state, trainer_id(t), 300);
    }
}

static void busy_end(ens_trainer_t *t) {
    if (t->busy_since > 0)
        ens_state_trainer_busy_add(t->state, trainer_id(t), now_s() - t->busy_since, NULL, 0);
    t->busy_since = 0;
    beat(t, "idle");
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
    res.u.trial_result.epochs_done = job_ev->u.trial_job.from_epoch;
    res.u.trial_result.error = strdup(why);
    ENS_WARN("study=%s trial=%s msg=\"trial failed\" error=\"%s\"", job_ev->u.trial_job.study_id,
             job_ev->u.trial_job.trial_id, why);
    ens_err_t err = res.u.trial_result.error ? report(t, job_ev, &res, errstr, size)
                                             : ENS_ERR_NOMEM;
    ens_event_free(&res);
    return err;
}

/* A redelivered job whose training finished: report the stored outcome again. */
static int report_if_trained(ens_trainer_t *t, const ens_event_t *job_ev, const char *mid,
                             ens_err_t *err, char *errstr, size_t size) {
    ens_event_t res;
    int trained = 0;
    ens_event_init(&res, ENS_EV_TRIAL_RESULT);
    *err = ens_state_sched_job_get(t->state, job_ev->u.trial_job.study_id, mid, &res.u.trial_result,
                                   &trained, errstr, size);
    if (!*err && trained) {
        ENS_INFO("study=%s trial=%s msg=\"already trained, reporting again\" model=%s",
                 job_ev->u.trial_job.study_id, job_ev->u.trial_job.trial_id, mid);
        *err = report(t, job_ev, &res, errstr, size);
    }
    ens_event_free(&res);
    return *err || trained;
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

/* The model to continue: the trial's latest checkpoint when it lies in [from, epochs]; else
 * for a promotion the checkpoint of the rung below; else a fresh model (from 0 only). */
static ens_err_t load_start(ens_trainer_t *t, const ens_trial_job_t *job, const char *cname,
                            ens_model_t **model, char *why, size_t why_size, char *errstr,
                            size_t size) {
    void *blob = NULL;
    size_t len = 0;
    *model = NULL;
    ens_err_t err = ens_state_model_file_get(t->state, t->store, job->study_id, cname, &blob,
                                             &len, errstr, size);
    if (err == ENS_OK) {
        err = ens_model_load(blob, len, model, why, why_size);
        free(blob);
        if (!err) {
            double e = ens_model_epochs_done(*model);
            if (e >= job->from_epoch - 1e-6 && e <= job->epochs + 1e-6)
                return ENS_OK;
            ens_model_free(*model);
            *model = NULL;
        }
    } else if (err != ENS_ERR_NOTFOUND && err != ENS_ERR_CORRUPT) {
        return err;
    }
    if (!(job->from_epoch > 0))
        return ENS_OK; /* start from scratch */
    char mid[ENS_ID_MAX], mname[ENS_ID_MAX + 8];
    ens_model_id(job->trial_id, job->from_epoch, mid, sizeof mid);
    snprintf(mname, sizeof mname, "model:%s", mid);
    err = ens_state_model_file_get(t->state, t->store, job->study_id, mname, &blob, &len, errstr,
                                   size);
    if (err == ENS_ERR_NOTFOUND || err == ENS_ERR_CORRUPT) {
        snprintf(why, why_size, "no checkpoint to resume from at epoch %g (%s)", job->from_epoch,
                 mid);
        return ENS_ERR_NOTFOUND;
    }
    if (err)
        return err;
    err = ens_model_load(blob, len, model, why, why_size);
    free(blob);
    return err ? ENS_ERR_CORRUPT : ENS_OK;
}

/* The generator of a trial's epoch: seeded by the job's seed, the trial and the epoch's number,
 * so every piece of that epoch (a rung below one epoch, its promotion, a retried attempt)
 * draws the same order and augmentation, and the pieces together train exactly the epoch
 * that one ens_model_train_epoch_opts call would (ens_model_train_steps_opts). */
static void epoch_rng(ens_rng_t *rng, const ens_trial_job_t *job, uint64_t trial_no,
                      int64_t epoch) {
    ens_rng_seed(rng, (uint64_t)job->seed + 104729u * trial_no + 1000003u * (uint64_t)epoch);
}

/* The study's top rung (epochs): the cosine horizon, the same for every rung of a trial.
 * *known is 0 when the state did not say (then the job's own epochs stand in). */
static double study_epochs(ens_trainer_t *t, const ens_trial_job_t *job, int *known) {
    ens_state_sched_study_t st;
    double e = 0;
    *known = 0;
    if (!ens_state_sched_study_get(t->state, job->study_id, &st, NULL, 0)) {
        e = st.epochs;
        *known = e > 0;
        ens_state_sched_study_clear(&st);
    }
    return e >= job->epochs ? e : job->epochs;
}

static ens_err_t save_model(ens_trainer_t *t, const ens_model_t *m, const char *study,
                            const char *name, char *errstr, size_t size) {
    uint8_t *blob = NULL;
    size_t len = 0;
    ens_err_t err = ens_model_save(m, &blob, &len);
    if (!err)
        err = ens_state_model_file_put(t->state, t->store, study, name, blob, len, errstr, size);
    free(blob);
    return err;
}

/* After a job's result is out: its trial's resume checkpoint duplicates the model just saved,
 * and the model it was promoted from will not be trained again; neither needs optimiser
 * state. Best effort: what stays is compacted when the study ends. */
static void retain_after(ens_trainer_t *t, const ens_trial_job_t *job, const char *cname) {
    char errstr[512], mid[ENS_ID_MAX], name[ENS_ID_MAX + 8];
    ens_err_t err = ens_state_model_file_del(t->state, t->store, job->study_id, cname, errstr,
                                             sizeof errstr);
    int rewritten = 0;
    if (!err && job->from_epoch > 0) {
        ens_model_id(job->trial_id, job->from_epoch, mid, sizeof mid);
        snprintf(name, sizeof name, "model:%s", mid);
        err = ens_retain_model_weights_only(t->store, t->state, job->study_id, name,
                                            &rewritten, errstr, sizeof errstr);
        if (err == ENS_ERR_NOTFOUND)
            err = ENS_OK;
    }
    if (err)
        ENS_WARN("study=%s trial=%s msg=\"checkpoint not trimmed; left for the study's end\" "
                 "error=\"%s\"",
                 job->study_id, job->trial_id, errstr);
}

static ens_err_t handle_job(ens_trainer_t *t, const ens_event_t *ev, char *errstr, size_t size) {
    const ens_trial_job_t *job = &ev->u.trial_job;
    char cname[ENS_ID_MAX + 8], mname[ENS_ID_MAX + 8], why[512], mid[ENS_ID_MAX], state[200];
    ens_model_id(job->trial_id, job->epochs, mid, sizeof mid);
    if (!ens_state_sched_study_id_ok(job->study_id))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id");
    snprintf(cname, sizeof cname, "ckpt:%s", job->trial_id);
    snprintf(mname, sizeof mname, "model:%s", mid);
    ens_err_t err = ENS_OK;
    if (report_if_trained(t, ev, mid, &err, errstr, size))
        return err;
    if (!(job->epochs > 0) || job->from_epoch < 0 || job->from_epoch >= job->epochs)
        return report_failure(t, ev, "job epochs out of range", errstr, size);

    /* One trainer a job: a copy issued again while its first trainer still holds it (the
     * proposer thought it lost) is dropped here. */
    char holder[160];
    if (lease_take(t, job->study_id, job->trial_id, mid, holder, sizeof holder, &err, errstr,
                   size)) {
        ENS_INFO("study=%s trial=%s msg=\"job held by another trainer, dropped\" model=%s "
                 "holder=\"%s\"",
                 job->study_id, job->trial_id, mid, holder);
        return ENS_OK;
    }
    if (err)
        return err;
    /* A job that keeps killing its trainers (or keeps being lost with them) gives up. */
    long long attempt = 1;
    if ((err = ens_state_sched_attempt_begin(t->state, job->study_id, mid, &attempt, errstr,
                                             size)))
        return err;
    int max_attempts = t->max_attempts > 0 ? t->max_attempts : 3;
    snprintf(state, sizeof state, "busy %s %s", job->study_id, mid);
    beat(t, state);
    if (attempt > max_attempts) {
        snprintf(why, sizeof why, "gave up after %d attempts: its trainers stopped mid-job",
                 max_attempts);
        return report_failure(t, ev, why, errstr, size);
    }

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
    why[0] = '\0';
    err = load_start(t, job, cname, &model, why, sizeof why, errstr, size);
    if (err == ENS_ERR_NOTFOUND || err == ENS_ERR_CORRUPT)
        return report_failure(t, ev, why, errstr, size);
    if (err)
        return err;
    uint64_t trial_no = (uint64_t)strtoull(job->trial_id + (job->trial_id[0] ? 2 : 0), NULL, 10);
    if (!model && cfg.family == ENS_FAMILY_CNN) {
        if (train->height * train->width != train->dim || train->height < 2) {
            snprintf(why, sizeof why, "a CNN needs image data (%s has %d features a row)",
                     job->dataset, (int)train->dim);
            return report_failure(t, ev, why, errstr, size);
        }
        err = ens_model_new_from_json(cfg.arch, 1, train->height, train->width, train->n_classes,
                                      (uint64_t)job->seed ^ trial_no, &model, why, sizeof why);
        if (err == ENS_ERR_INVALID)
            return report_failure(t, ev, why, errstr, size);
        if (err)
            return err;
        float mean, std;
        input_stats(train, &mean, &std);
        ens_model_set_normalisation(model, mean, std);
    } else if (!model) {
        if ((err = ens_model_new_mlp(train->dim, cfg.hidden, cfg.n_hidden, train->n_classes,
                                     (uint64_t)job->seed ^ trial_no, &model)))
            return err;
        float mean, std;
        input_stats(train, &mean, &std);
        ens_model_set_normalisation(model, mean, std);
    }
    double start_epoch = ens_model_epochs_done(model);
    /* the recipe of the configuration (ens_trial_train_opts) */
    ens_train_opts_t opts;
    int top_known = 0;
    double top = study_epochs(t, job, &top_known);
    ens_trial_train_opts(&cfg, job->from_epoch, job->epochs, top, &opts);
    int32_t bs = cfg.batch_size < train->n ? cfg.batch_size : train->n;
    int32_t per_epoch = (train->n + bs - 1) / bs;
    double t0 = now_s(), loss = 0, acc = 0, val_loss = 0, done = start_epoch;
    ENS_INFO("study=%s trial=%s msg=\"training\" config=%s from_epoch=%g resume_at=%g epochs=%g "
             "attempt=%lld",
             job->study_id, job->trial_id, job->config_json, job->from_epoch, start_epoch,
             job->epochs, attempt);
    int32_t piece = 8; /* steps a call: grows to about PIECE_S seconds of training */
    double saved = done;
    while (!err && done < job->epochs - 1e-9) {
        if (t->stop && *t->stop) {
            /* the position so far, so that the next attempt resumes here */
            err = done > saved + 1e-9 ? save_model(t, model, job->study_id, cname, errstr, size)
                                      : ENS_OK;
            if (!err)
                err = ENS_ERR_STOPPED;
            break;
        }
        /* one chunk: the rest of the current epoch, or of the job when it ends sooner, in
         * pieces of a few seconds (a stop or the health check need not wait for an epoch) */
        double epoch0 = floor(done + 1e-9);
        int32_t begin = (int32_t)llround((done - epoch0) * per_epoch);
        if (begin >= per_epoch) {
            epoch0 += 1.0;
            begin = 0;
        }
        double end_f = ceil((job->epochs - epoch0) * per_epoch - 1e-6);
        int32_t end = end_f > per_epoch ? per_epoch : (int32_t)end_f;
        if (end <= begin) /* a position from an older checkpoint: at least one step */
            end = begin + 1;
        int chunk_end = end - begin <= piece;
        if (!chunk_end)
            end = begin + piece;
        ens_rng_t rng;
        epoch_rng(&rng, job, trial_no, (int64_t)epoch0);
        double p0 = now_s();
        err = ens_model_train_steps_opts(model, train, &opts, &rng, begin, end, &loss);
        double took = now_s() - p0;
        ens_metrics_progress();
        if (t->lease_lost) { /* another trainer has the job now: it reports, not this one */
            ens_model_free(model);
            ENS_WARN("study=%s trial=%s msg=\"job given up: its lease went to another "
                     "trainer\" model=%s",
                     job->study_id, job->trial_id, mid);
            return ENS_OK;
        }
        if (took < PIECE_S / 2 && piece < (1 << 20))
            piece *= 2;
        else if (took > PIECE_S * 2 && piece > 1)
            piece /= 2;
        if (err == ENS_ERR_INVALID) {
            ens_model_free(model);
            return report_failure(t, ev, "training options refused by the model", errstr,
                                  size);
        }
        if (err)
            break;
        done = ens_model_epochs_done(model);
        if (!isfinite(loss)) {
            snprintf(why, sizeof why, "training diverged (loss %g) at epoch %.3g", loss, done);
            ens_model_free(model);
            ens_state_sched_attempt_clear(t->state, job->study_id, mid, NULL, 0);
            return report_failure(t, ev, why, errstr, size);
        }
        if (!chunk_end)
            continue;
        /* the latest checkpoint: a trainer that dies resumes here, not from the start */
        if ((err = save_model(t, model, job->study_id, cname, errstr, size)))
            break;
        saved = done;
        ENS_INFO("study=%s trial=%s msg=\"chunk done\" epochs=%.4g/%g loss=%.4f", job->study_id,
                 job->trial_id, done, job->epochs, loss);
        ens_state_sched_job_progress(t->state, job->study_id, mid, done, NULL, 0);
        if (!t->state_bg) /* else the busy tick beats */
            beat(t, NULL);
    }
    if (err == ENS_ERR_STOPPED) /* a clean stop is not a failed attempt */
        ens_state_sched_attempt_undo(t->state, job->study_id, mid, NULL, 0);
    if (!err)
        err = ens_model_evaluate(model, val, &acc, &val_loss, NULL);
    double seconds = now_s() - t0;
    ens_event_t res;
    ens_event_init(&res, ENS_EV_TRIAL_RESULT);
    ens_trial_result_t *r = &res.u.trial_result;
    snprintf(r->model_id, sizeof r->model_id, "%s", mid);
    /* the top rung is never trained further: its model keeps weights only */
    if (!err && top_known && job->epochs >= top - 1e-9)
        ens_model_drop_optimiser(model);
    if (!err)
        err = save_model(t, model, job->study_id, mname, errstr, size);
    ens_model_free(model);
    r->status = ENS_TRIAL_OK;
    r->epochs_done = done;
    r->val_accuracy = acc;
    r->val_loss = val_loss;
    r->train_seconds = seconds;
    r->train_samples_per_second =
        seconds > 0 ? (double)train->n * (done - start_epoch) / seconds : 0;
    if (!err)
        err = ens_state_sched_job_put(t->state, job->study_id, r, errstr, size);
    if (!err) {
        ENS_INFO("study=%s trial=%s msg=\"trained\" model=%s epochs=%g->%g val_acc=%.4f "
                 "seconds=%.1f samples_per_s=%.0f",
                 job->study_id, job->trial_id, r->model_id, start_epoch, done, acc, seconds,
                 r->train_samples_per_second);
        err = report(t, ev, &res, errstr, size);
        if (!err && !t->lease_lost) /* the job's new holder may be loading what it would drop */
            retain_after(t, job, cname);
    }
    ens_event_free(&res);
    return err;
}

ens_err_t ens_trainer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t size) {
    ens_trainer_t *t = ctx;
    if (ev->type != ENS_EV_TRIAL_JOB)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "trainer does not take %s",
                           ens_event_type_name(ev->type));
    /* Busy: all of the job's own work (dedupe, data and checkpoint loading, training,
     * validation, saving, queueing the result); not the wait for Kafka around it (the result's
     * delivery, the commit, the next poll), which the loop does after this returns. */
    t->busy_since = now_s();
    ens_err_t err = handle_job(t, ev, errstr, size);
    lease_end(t, err == ENS_ERR_STOPPED);
    busy_end(t);
    return err;
}

void ens_trainer_on_consumer(void *ctx, ens_kafka_t *consumer) {
    ens_trainer_t *t = ctx;
    trainer_id(t); /* made here, before the polling thread can read it */
    t->consumer = consumer;
    if (consumer)
        ens_trainer_tick(t); /* registers once the group assigns it partitions */
}

void ens_trainer_close(ens_trainer_t *t) {
    if (t->state && t->id[0])
        ens_state_trainer_remove(t->state, t->id, NULL, 0);
    ens_retain_job_release(&t->compact, t->state, t->id[0] ? t->id : NULL);
    ens_study_data_free(t->data);
    t->data = NULL;
}
