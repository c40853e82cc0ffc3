/* state_studies.c - the public functions of state_studies.h: arguments checked here, then the
 * implementation's operation (state_studies_redis.c, state_studies_mem.c). */
#include "ensflow/state_studies.h"

#include <string.h>

#include "state_internal.h"

/* The checks every public function makes, and the implementation's operation op (NULL, or a
 * state without these operations: unsupported). */
#define NEED(cond)                                                                              \
    do {                                                                                        \
        if (!st || !(cond))                                                                     \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s: bad argument",       \
                               __func__);                                                       \
    } while (0)
#define OP(op)                                                                                  \
    const struct ens_state_studies_i *ops = ens_state_iface(st)->studies;                      \
    if (!ops || !ops->op)                                                                       \
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,                           \
                           "the %s state does not " #op, ens_state_name(st));                   \
    void *ctx = ens_state_ctx(st)

static int id_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_ID_MAX;
}

/* A model file's name: "<kind>:<id>", short, no space (it is part of a key and a path). */
static int name_ok(const char *s) {
    return s && strchr(s, ':') && strlen(s) < ENS_STATE_MODEL_NAME_MAX && !strpbrk(s, " \t\r\n");
}

static int group_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_STATE_GROUP_MAX;
}

static int topic_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_STATE_TOPIC_MAX;
}

ens_err_t ens_state_studies_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                                 size_t errstr_size) {
    NEED(studies && n);
    *studies = NULL;
    *n = 0;
    OP(studies_list);
    return ops->studies_list(ctx, studies, n, errstr, errstr_size);
}

ens_err_t ens_state_study_exists(ens_state_t *st, const char *study, int *exists, char *errstr,
                                 size_t errstr_size) {
    NEED(id_ok(study) && exists);
    *exists = 0;
    OP(study_exists);
    return ops->study_exists(ctx, study, exists, errstr, errstr_size);
}

ens_err_t ens_state_study_usage(ens_state_t *st, const char *study, ens_state_usage_t *u,
                                char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && u);
    memset(u, 0, sizeof *u);
    OP(study_usage);
    return ops->study_usage(ctx, study, u, errstr, errstr_size);
}

ens_err_t ens_state_study_delete(ens_state_t *st, const char *study, long *deleted,
                                 char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && deleted);
    *deleted = 0;
    OP(study_delete);
    return ops->study_delete(ctx, study, deleted, errstr, errstr_size);
}

ens_err_t ens_state_trials_done_count(ens_state_t *st, const char *study, long *n,
                                      char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && n);
    *n = 0;
    OP(trials_done_count);
    return ops->trials_done_count(ctx, study, n, errstr, errstr_size);
}

ens_err_t ens_state_library_count(ens_state_t *st, const char *study, long *n, char *errstr,
                                  size_t errstr_size) {
    NEED(id_ok(study) && n);
    *n = 0;
    OP(library_count);
    return ops->library_count(ctx, study, n, errstr, errstr_size);
}

/* ---- compaction ---------------------------------------------------------------------------- */

ens_err_t ens_state_compact_add(ens_state_t *st, const char *study, char *errstr,
                                size_t errstr_size) {
    NEED(id_ok(study));
    OP(compact_add);
    return ops->compact_add(ctx, study, errstr, errstr_size);
}

ens_err_t ens_state_compact_next(ens_state_t *st, char *study, size_t size, char *errstr,
                                 size_t errstr_size) {
    NEED(study && size >= ENS_ID_MAX);
    study[0] = '\0';
    OP(compact_next);
    return ops->compact_next(ctx, study, size, errstr, errstr_size);
}

ens_err_t ens_state_compact_queued(ens_state_t *st, const char *study, int *queued,
                                   char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && queued);
    *queued = 0;
    OP(compact_queued);
    return ops->compact_queued(ctx, study, queued, errstr, errstr_size);
}

ens_err_t ens_state_compact_remove(ens_state_t *st, const char *study, char *errstr,
                                   size_t errstr_size) {
    NEED(id_ok(study));
    OP(compact_remove);
    return ops->compact_remove(ctx, study, errstr, errstr_size);
}

ens_err_t ens_state_compact_lock(ens_state_t *st, const char *study, const char *owner,
                                 ens_state_lock_op_t op, int ttl_ms, int *held, char *errstr,
                                 size_t errstr_size) {
    NEED(id_ok(study) && owner && owner[0] && strlen(owner) < ENS_STATE_TRAINER_ID_MAX &&
         (op == ENS_STATE_LOCK_TAKE || op == ENS_STATE_LOCK_RENEW ||
          op == ENS_STATE_LOCK_RELEASE) &&
         ttl_ms > 0 && held);
    *held = 0;
    OP(compact_lock);
    return ops->compact_lock(ctx, study, owner, op, ttl_ms, held, errstr, errstr_size);
}

ens_err_t ens_state_compact_owner(ens_state_t *st, const char *study, char *owner, size_t size,
                                  char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && owner && size > 0);
    owner[0] = '\0';
    OP(compact_owner);
    return ops->compact_owner(ctx, study, owner, size, errstr, errstr_size);
}

/* ---- model files --------------------------------------------------------------------------- */

ens_err_t ens_state_model_file_get(ens_state_t *st, ens_models_t *ms, const char *study,
                                   const char *name, void **data, size_t *len, char *errstr,
                                   size_t errstr_size) {
    NEED(id_ok(study) && name_ok(name) && data && len);
    *data = NULL;
    *len = 0;
    OP(model_file_get);
    return ops->model_file_get(ctx, ms, study, name, data, len, errstr, errstr_size);
}

ens_err_t ens_state_model_file_put(ens_state_t *st, ens_models_t *ms, const char *study,
                                   const char *name, const void *data, size_t len,
                                   char *errstr, size_t errstr_size) {
    NEED(ms && id_ok(study) && name_ok(name) && (data || !len));
    OP(model_file_put);
    return ops->model_file_put(ctx, ms, study, name, data, len, errstr, errstr_size);
}

ens_err_t ens_state_model_file_del(ens_state_t *st, ens_models_t *ms, const char *study,
                                   const char *name, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && name_ok(name));
    OP(model_file_del);
    return ops->model_file_del(ctx, ms, study, name, errstr, errstr_size);
}

ens_err_t ens_state_model_file_referenced(ens_state_t *st, const char *study,
                                          const char *name, int *referenced, char *errstr,
                                          size_t errstr_size) {
    NEED(id_ok(study) && name_ok(name) && referenced);
    *referenced = 0;
    OP(model_file_referenced);
    return ops->model_file_referenced(ctx, study, name, referenced, errstr, errstr_size);
}

ens_err_t ens_state_model_legacy_list(ens_state_t *st, const char *study, char ***names,
                                      int *n, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && names && n);
    *names = NULL;
    *n = 0;
    OP(model_legacy_list);
    return ops->model_legacy_list(ctx, study, names, n, errstr, errstr_size);
}

/* ---- serving ------------------------------------------------------------------------------- */

ens_err_t ens_state_serving_put(ens_state_t *st, const char *study, const char *group,
                                int64_t version, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(group) && version >= 0);
    OP(serving_put);
    return ops->serving_put(ctx, study, group, version, errstr, errstr_size);
}

ens_err_t ens_state_serving_newest(ens_state_t *st, const char *study, int64_t *version,
                                   char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && version);
    *version = 0;
    OP(serving_newest);
    return ops->serving_newest(ctx, study, version, errstr, errstr_size);
}

ens_err_t ens_state_answered_get(ens_state_t *st, const char *group, const char *topic,
                                 int32_t partition, int64_t *offset, char *errstr,
                                 size_t errstr_size) {
    NEED(group_ok(group) && topic_ok(topic) && partition >= 0 && offset);
    *offset = -1;
    OP(answered_get);
    return ops->answered_get(ctx, group, topic, partition, offset, errstr, errstr_size);
}

ens_err_t ens_state_answered_forget(ens_state_t *st, const char *group, const char *topic,
                                    int32_t partition, char *errstr, size_t errstr_size) {
    NEED(group_ok(group) && topic_ok(topic) && partition >= 0);
    OP(answered_forget);
    return ops->answered_forget(ctx, group, topic, partition, errstr, errstr_size);
}

ens_err_t ens_state_answered_raise(ens_state_t *st, const char *group, const char *topic,
                                   int32_t partition, int64_t offset, char *errstr,
                                   size_t errstr_size) {
    NEED(group_ok(group) && topic_ok(topic) && partition >= 0 && offset >= 0);
    OP(answered_raise);
    return ops->answered_raise(ctx, group, topic, partition, offset, errstr, errstr_size);
}
