/* job_record.h - a trained job's outcome as its trainer keeps it in Redis
 * (ens:{s}:job:<model id>): what a job issued again is answered from, and what the proposer
 * announces again when the first announcement was lost. */
#ifndef ENSFLOW_JOB_RECORD_H
#define ENSFLOW_JOB_RECORD_H

#include "ensflow/events.h"
#include "ensflow/store.h"

/**
 * @brief Record res (an OK TrialResult: model id, accuracies, seconds, epochs, speed) as the
 *        outcome of the job that trains study's model res->model_id.
 */
ens_err_t ens_job_record_put(ens_redis_t *r, const char *study, const ens_trial_result_t *res,
                             char *errstr, size_t errstr_size);

/**
 * @brief The recorded outcome of the job that trains model_id: *found = 1 and res filled (an OK
 *        result of that model; study and trial ids left to the caller), or *found = 0.
 * @return ENS_OK, or ENS_ERR_REDIS.
 */
ens_err_t ens_job_record_get(ens_redis_t *r, const char *study, const char *model_id,
                             ens_trial_result_t *res, int *found, char *errstr,
                             size_t errstr_size);

#endif
