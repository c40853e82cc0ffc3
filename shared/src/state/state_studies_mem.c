/* state_studies_mem.c - studies, compaction and serving in memory (state_mem_base.c's
 * entries), for unit tests of the trainer's compaction and the inference group's answered
 * offsets. Model files live in the model store given, their references here; no TTLs, one
 * thread. */
#include <stdlib.h>
#include <string.h>

#include "ensflow/state_studies.h"
#include "state_internal.h"

/* The kinds of entries (state_mem_base.c names each by a kind and up to two ids). */
#define K_STUDY "study"           /* study: state_mem.c's study record */
#define K_LIBRARY "library"       /* study, model: state_mem.c's library */
#define K_COMPACT "compact"       /* study: queued for compaction */
#define K_COMPACTING "compacting" /* study: its lock's owner, a string */
#define K_REF "model_ref"         /* study, file name: the file is the study's */
#define K_SERVING "serving"       /* study, group: the version it serves, an int64_t */
#define K_ANSWERED "answered"     /* group, "<topic>/<partition>": the offset, an int64_t */

static ens_err_t mem_studies_list(void *ctx, char ***studies, int *n, char *errstr,
                                  size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_ids(ctx, K_STUDY, NULL, studies, n);
}

static ens_err_t mem_study_exists(void *ctx, const char *study, int *exists, char *errstr,
                                  size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    *exists = ens_state_mem_find(ctx, K_STUDY, study, NULL, NULL) != NULL;
    return ENS_OK;
}

static ens_err_t mem_library_count(void *ctx, const char *study, long *n, char *errstr,
                                   size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    char **ids = NULL;
    int k = 0;
    ens_err_t err = ens_state_mem_ids(ctx, K_LIBRARY, study, &ids, &k);
    ens_state_strings_free(ids, k);
    *n = err ? 0 : k;
    return err;
}

/* ---- compaction ---------------------------------------------------------------------------- */

static ens_err_t mem_compact_add(void *ctx, const char *study, char *errstr,
                                 size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_put(ctx, K_COMPACT, study, NULL, "", 0);
}

static ens_err_t mem_compact_next(void *ctx, char *study, size_t size, char *errstr,
                                  size_t errstr_size) {
    char **ids = NULL;
    int k = 0;
    ens_err_t err = ens_state_mem_ids(ctx, K_COMPACT, NULL, &ids, &k);
    if (!err && !k)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "no study to compact");
    if (!err) /* the first: deterministic for tests, where Redis picks at random */
        snprintf(study, size, "%s", ids[0]);
    ens_state_strings_free(ids, k);
    return err;
}

static ens_err_t mem_compact_queued(void *ctx, const char *study, int *queued, char *errstr,
                                    size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    *queued = ens_state_mem_find(ctx, K_COMPACT, study, NULL, NULL) != NULL;
    return ENS_OK;
}

static ens_err_t mem_compact_remove(void *ctx, const char *study, char *errstr,
                                    size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    ens_state_mem_del(ctx, K_COMPACT, study, NULL);
    return ENS_OK;
}

static ens_err_t mem_compact_lock(void *ctx, const char *study, const char *owner,
                                  ens_state_lock_op_t op, int ttl_ms, int *held, char *errstr,
                                  size_t errstr_size) {
    (void)ttl_ms, (void)errstr, (void)errstr_size; /* no TTLs: held until released */
    const char *cur = ens_state_mem_find(ctx, K_COMPACTING, study, NULL, NULL);
    if (op == ENS_STATE_LOCK_TAKE) {
        if (cur)
            return ENS_OK;
        ens_err_t err = ens_state_mem_put(ctx, K_COMPACTING, study, NULL, owner,
                                          strlen(owner) + 1);
        *held = !err;
        return err;
    }
    if (!cur || strcmp(cur, owner))
        return ENS_OK;
    if (op == ENS_STATE_LOCK_RELEASE)
        ens_state_mem_del(ctx, K_COMPACTING, study, NULL);
    *held = 1;
    return ENS_OK;
}

static ens_err_t mem_compact_owner(void *ctx, const char *study, char *owner, size_t size,
                                   char *errstr, size_t errstr_size) {
    const char *cur = ens_state_mem_find(ctx, K_COMPACTING, study, NULL, NULL);
    if (!cur)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "nobody compacts %s", study);
    snprintf(owner, size, "%s", cur);
    return ENS_OK;
}

/* ---- model files: in the store ms, referenced here ------------------------------------------ */

static ens_err_t mem_model_file_get(void *ctx, ens_models_t *ms, const char *study,
                                    const char *name, void **data, size_t *len, char *errstr,
                                    size_t errstr_size) {
    if (!ms || !ens_state_mem_find(ctx, K_REF, study, name, NULL))
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "no model %s of %s", name,
                           study);
    return ens_models_get(ms, NULL, study, name, data, len, errstr, errstr_size);
}

static ens_err_t mem_model_file_put(void *ctx, ens_models_t *ms, const char *study,
                                    const char *name, const void *data, size_t len,
                                    char *errstr, size_t errstr_size) {
    ens_err_t err = ens_models_put(ms, NULL, study, name, data, len, errstr, errstr_size);
    return err ? err : ens_state_mem_put(ctx, K_REF, study, name, "", 0);
}

static ens_err_t mem_model_file_del(void *ctx, ens_models_t *ms, const char *study,
                                    const char *name, char *errstr, size_t errstr_size) {
    ens_state_mem_del(ctx, K_REF, study, name); /* the reference first, as in Redis */
    return ms ? ens_models_del(ms, NULL, study, name, errstr, errstr_size) : ENS_OK;
}

static ens_err_t mem_model_file_referenced(void *ctx, const char *study, const char *name,
                                           int *referenced, char *errstr,
                                           size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    *referenced = ens_state_mem_find(ctx, K_REF, study, name, NULL) != NULL;
    return ENS_OK;
}

static ens_err_t mem_model_legacy_list(void *ctx, const char *study, char ***names, int *n,
                                       char *errstr, size_t errstr_size) {
    (void)ctx, (void)study, (void)names, (void)n, (void)errstr, (void)errstr_size;
    return ENS_OK; /* the previous version never kept anything in memory */
}

/* ---- serving ------------------------------------------------------------------------------- */

static ens_err_t mem_serving_put(void *ctx, const char *study, const char *group,
                                 int64_t version, char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    return ens_state_mem_put(ctx, K_SERVING, study, group, &version, sizeof version);
}

static ens_err_t mem_serving_newest(void *ctx, const char *study, int64_t *version,
                                    char *errstr, size_t errstr_size) {
    char **groups = NULL;
    int k = 0;
    ens_err_t err = ens_state_mem_ids(ctx, K_SERVING, study, &groups, &k);
    for (int i = 0; !err && i < k; i++) {
        int64_t v;
        memcpy(&v, ens_state_mem_find(ctx, K_SERVING, study, groups[i], NULL), sizeof v);
        if (!i || v > *version)
            *version = v;
    }
    ens_state_strings_free(groups, k);
    if (!err && !k)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "no group serves %s", study);
    return err;
}

static void answered_field(char *field, size_t size, const char *topic, int32_t partition) {
    snprintf(field, size, "%s/%d", topic, (int)partition);
}

static ens_err_t mem_answered_get(void *ctx, const char *group, const char *topic,
                                  int32_t partition, int64_t *offset, char *errstr,
                                  size_t errstr_size) {
    char field[ENS_STATE_TOPIC_MAX + 16];
    answered_field(field, sizeof field, topic, partition);
    const void *v = ens_state_mem_find(ctx, K_ANSWERED, group, field, NULL);
    if (!v)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "no answered offset of %s",
                           field);
    memcpy(offset, v, sizeof *offset);
    return ENS_OK;
}

static ens_err_t mem_answered_forget(void *ctx, const char *group, const char *topic,
                                     int32_t partition, char *errstr, size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    char field[ENS_STATE_TOPIC_MAX + 16];
    answered_field(field, sizeof field, topic, partition);
    ens_state_mem_del(ctx, K_ANSWERED, group, field);
    return ENS_OK;
}

static ens_err_t mem_answered_raise(void *ctx, const char *group, const char *topic,
                                    int32_t partition, int64_t offset, char *errstr,
                                    size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    char field[ENS_STATE_TOPIC_MAX + 16];
    answered_field(field, sizeof field, topic, partition);
    const void *v = ens_state_mem_find(ctx, K_ANSWERED, group, field, NULL);
    int64_t cur = -1;
    if (v)
        memcpy(&cur, v, sizeof cur);
    return offset > cur ? ens_state_mem_put(ctx, K_ANSWERED, group, field, &offset,
                                            sizeof offset)
                        : ENS_OK;
}

const struct ens_state_studies_i ens_state_studies_mem = {
    .studies_list = mem_studies_list,
    .study_exists = mem_study_exists,
    .study_usage = NULL,       /* Redis only: see state_studies.h */
    .study_delete = NULL,      /* Redis only */
    .trials_done_count = NULL, /* the trial table is not kept in memory */
    .library_count = mem_library_count,
    .compact_add = mem_compact_add,
    .compact_next = mem_compact_next,
    .compact_queued = mem_compact_queued,
    .compact_remove = mem_compact_remove,
    .compact_lock = mem_compact_lock,
    .compact_owner = mem_compact_owner,
    .model_file_get = mem_model_file_get,
    .model_file_put = mem_model_file_put,
    .model_file_del = mem_model_file_del,
    .model_file_referenced = mem_model_file_referenced,
    .model_legacy_list = mem_model_legacy_list,
    .serving_put = mem_serving_put,
    .serving_newest = mem_serving_newest,
    .answered_get = mem_answered_get,
    .answered_forget = mem_answered_forget,
    .answered_raise = mem_answered_raise,
};
