/* trainer.h - trains (or resumes) the model of a TrialJob and reports a TrialResult. */
#ifndef ENSFLOW_TRAINER_H
#define ENSFLOW_TRAINER_H

#include <signal.h>

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/store.h"
#include "ensflow/study_data.h"

typedef struct {
    ens_redis_t *redis;
    ens_kafka_t *producer;
    ens_study_data_t *data;          /**< cached split, owned */
    volatile sig_atomic_t *stop;     /**< checked between chunks of training (may be NULL) */
    char id[64];                     /**< trainer id in ens:trainers ("" = host-pid) */
    int max_attempts;                /**< a job started this many times without an outcome
                                          is reported FAILED (default 3) */
    int64_t last_beat_ms;
    double busy_since;               /**< monotonic seconds; 0 when idle */
} ens_trainer_t;

/**
 * @brief Train the trial's model from from_epoch (its latest checkpoint) up to epochs
 *        (fractions of an epoch allowed), store the checkpoint in the model store as
 *        "<trial>-e<epochs>" and produce its TrialResult. A job already trained (a
 *        redelivery) is reported again from Redis without training; a job that started
 *        max_attempts times (its trainers died) is reported FAILED. A bad configuration
 *        or data set, or a diverged run, yields a FAILED result.
 */
ens_err_t ens_trainer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

/** @brief Heartbeat (ens:trainers, at most once a second): the proposer counts live trainers. */
void ens_trainer_tick(void *ctx);

/** @brief The model id of a trial's checkpoint at this many epochs ("t-00003-e1.667"). */
void ens_trainer_model_id(const char *trial_id, double epochs, char out[ENS_ID_MAX]);

/** @brief Leave ens:trainers and release the cache. */
void ens_trainer_close(ens_trainer_t *t);

#endif
