/* job_record.c - a trained job's outcome in Redis (ens:{s}:job:<model id>). */
#include "ensflow/job_record.h"

#include <stdio.h>
#include <stdlib.h>

ens_err_t ens_job_record_put(ens_redis_t *r, const char *study, const ens_trial_result_t *res,
                             char *errstr, size_t size) {
    char key[256];
    if (!ens_key(key, sizeof key, study, "job:%s", res->model_id))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study or model id");
    return ens_redis_exec(r, errstr, size,
                          "HSET %s trained_model %s val_accuracy %.6f val_loss %.6f "
                          "train_seconds %.3f epochs_done %.17g sps %.1f",
                          key, res->model_id, res->val_accuracy, res->val_loss,
                          res->train_seconds, res->epochs_done, res->train_samples_per_second);
}

ens_err_t ens_job_record_get(ens_redis_t *r, const char *study, const char *model_id,
                             ens_trial_result_t *res, int *found, char *errstr, size_t size) {
    char key[256];
    *found = 0;
    if (!ens_key(key, sizeof key, study, "job:%s", model_id))
        return ENS_OK;
    ens_redis_reply_t *rep = ens_redis_command(
        r, errstr, size,
        "HMGET %s trained_model val_accuracy val_loss train_seconds epochs_done sps", key);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_ARRAY && rep->elements == 6 &&
        rep->element[0]->type == ENS_REPLY_STRING) {
        *found = 1;
        snprintf(res->model_id, sizeof res->model_id, "%s", rep->element[0]->str);
        double *fields[] = {&res->val_accuracy, &res->val_loss, &res->train_seconds,
                            &res->epochs_done, &res->train_samples_per_second};
        for (int i = 0; i < 5; i++)
            *fields[i] = rep->element[i + 1]->type == ENS_REPLY_STRING
                             ? strtod(rep->element[i + 1]->str, NULL)
                             : 0;
        res->status = ENS_TRIAL_OK;
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}
