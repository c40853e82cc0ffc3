/* trainer.h - trains the model of a TrialJob and reports a TrialResult. */
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
    volatile sig_atomic_t *stop;     /**< checked between epochs (may be NULL) */
} ens_trainer_t;

/**
 * @brief Train the trial's model, store the checkpoint in the model store and produce its
 *        TrialResult. A trial already trained (a redelivered job) is reported again from
 *        Redis without training. A bad configuration or data set yields a FAILED result.
 */
ens_err_t ens_trainer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

/** @brief Release the cache. */
void ens_trainer_close(ens_trainer_t *t);

#endif
