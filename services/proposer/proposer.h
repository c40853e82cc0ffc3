/* proposer.h - study creation and trial proposal (random search for now). */
#ifndef ENSFLOW_PROPOSER_H
#define ENSFLOW_PROPOSER_H

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/store.h"

typedef struct {
    ens_redis_t *redis;
    ens_kafka_t *producer;
} ens_proposer_t;

/**
 * @brief Handle StudyCreated (store the study, sample its configurations, issue one TrialJob
 *        per trial) and TrialResult (record the outcome, mark the study complete when every
 *        trial has one). Idempotent: a redelivered event changes nothing that shows.
 */
ens_err_t ens_proposer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

#endif
