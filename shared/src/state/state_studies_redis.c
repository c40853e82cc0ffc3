/* state_studies_redis.c - studies, compaction and serving in Redis: every key, field and
 * script of state_studies.h's table is spelled here, and only here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state_studies.h"
#include "state_internal.h"

/* The sets of studies the services work on; a deleted study leaves each of them. */
#define STUDIES_ACTIVE_KEY "ens:studies:active"     /* the proposer's */
#define STUDIES_SETTLING_KEY "ens:studies:settling" /* the proposer's */
static const char *const study_sets[] = {STUDIES_ACTIVE_KEY, STUDIES_SETTLING_KEY,
                                         ENS_STATE_KEY_STUDIES_COMPACT,
                                         ENS_STATE_KEY_SELECTOR_DIRTY};

#define STUDY_SUFFIX "study"             /* ens:{s}:study */
#define STUDY_PATTERN "ens:{*}:study"    /* every study's record */
#define STUDY_ALL_FMT "ens:{%s}:*"       /* every key of a study (its id glob-escaped) */
#define LEGACY_FMT "ens:{%s}:*:meta"     /* blobs of the previous version (store.h) */
#define COMPACTING_SUFFIX "compacting"   /* ens:{s}:compacting */
#define TRIALS_DONE_SUFFIX "trials:done" /* ens:{s}:trials:done, the proposer's */
#define LIBRARY_SUFFIX "library"         /* ens:{s}:library (state_redis.c writes it) */
#define SERVING_SUFFIX "serving"         /* ens:{s}:serving */
#define ANSWERED_FMT "ens:serving:answered:%s"
#define ANSWERED_FIELD_FMT "%.256s/%d"   /* "<topic>/<partition>" */

/* The lock's owner only: renew (PEXPIRE) or release (DEL). */
static const char renew_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "end\n"
                                "return 0\n";
static const char release_lua[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  return redis.call('DEL', KEYS[1])\n"
                                  "end\n"
                                  "return 0\n";

/* HSET key field offset unless the hash holds a larger one. */
static const char raise_lua[] =
    "local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') "
    "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
    "return 0";

/* The key of a study's thing into buf, or ENS_ERR_INVALID from the calling function. */
#define KEY(buf, study, ...)                                                                    \
    do {                                                                                        \
        if (!ens_key(buf, sizeof buf, study, __VA_ARGS__))                                     \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,                           \
                               "study id \"%s\" makes no key", study);                          \
    } while (0)

static ens_redis_t *conn(void *ctx) {
    return ens_state_redis_conn(ctx);
}

/* An integer-answering command; ENS_ERR_REDIS when Redis is away or answers anything else. */
static ens_err_t integer(void *ctx, long long *v, char *errstr, size_t errstr_size,
                         const char *fmt, const char *key, const char *arg) {
    ens_redis_reply_t *rep = ens_redis_command(conn(ctx), errstr, errstr_size, fmt, key, arg);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == ENS_REPLY_INTEGER)
        *v = rep->integer;
    else
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "%s: %s", key,
                          rep->type == ENS_REPLY_ERROR ? rep->str : "unexpected reply");
    ens_redis_reply_free(rep);
    return err;
}

/* GET-like command: the string into out (cut to size), or ENS_ERR_NOTFOUND for nil. */
static ens_err_t string(void *ctx, char *out, size_t size, char *errstr, size_t errstr_size,
                        const char *fmt, const char *key, const char *arg) {
    ens_redis_reply_t *rep = ens_redis_command(conn(ctx), errstr, errstr_size, fmt, key, arg);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    if (rep->type == ENS_REPLY_STRING) {
        snprintf(out, size, "%s", rep->str);
        err = ENS_OK;
    } else if (rep->type == ENS_REPLY_ERROR)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "%s: %s", key, rep->str);
    ens_redis_reply_free(rep);
    return err;
}

/* fn(opaque, key) for every key matching pattern (SCAN: the server is not blocked); an error
 * of fn stops the scan and is returned (fn says why in errstr). */
typedef ens_err_t (*key_fn)(void *ctx, const char *key, void *opaque, char *errstr,
                            size_t errstr_size);

static ens_err_t scan(void *ctx, const char *pattern, key_fn fn, void *opaque, char *errstr,
                      size_t errstr_size) {
    char cursor[32] = "0";
    do {
        ens_redis_reply_t *rep = ens_redis_command(conn(ctx), errstr, errstr_size,
                                                   "SCAN %s MATCH %s COUNT 1000", cursor,
                                                   pattern);
        if (!rep || rep->type != ENS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != ENS_REPLY_STRING ||
            rep->element[1]->type != ENS_REPLY_ARRAY) {
            if (rep)
                ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "unexpected SCAN reply");
            ens_redis_reply_free(rep);
            return ENS_ERR_REDIS;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        const ens_redis_reply_t *keys = rep->element[1];
        ens_err_t err = ENS_OK;
        for (size_t i = 0; !err && i < keys->elements; i++)
            if (keys->element[i]->type == ENS_REPLY_STRING)
                err = fn(ctx, keys->element[i]->str, opaque, errstr, errstr_size);
        ens_redis_reply_free(rep);
        if (err)
            return err;
    } while (strcmp(cursor, "0"));
    return ENS_OK;
}

/* A growing list of strings. */
typedef struct {
    char **v;
    int n, cap;
} list_t;

static int list_add(list_t *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 32;
        void *p = realloc(l->v, (size_t)cap * sizeof *l->v);
        if (!p)
            return 1;
        l->v = p;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strndup(s, len)))
        return 1;
    l->n++;
    return 0;
}

static ens_err_t list_done(ens_err_t err, list_t *l, char ***out, int *n) {
    if (err) {
        ens_state_strings_free(l->v, l->n);
        return err;
    }
    *out = l->v;
    *n = l->n;
    return ENS_OK;
}

/* The pattern of every key of study into buf; ENS_ERR_INVALID when the id is too long. */
static ens_err_t study_pattern(const char *study, const char *fmt, char *buf, size_t size,
                               char *errstr, size_t errstr_size) {
    char esc[200];
    if (!ens_redis_glob_escape(study, esc, sizeof esc) ||
        snprintf(buf, size, fmt, esc) >= (int)size)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "study id too long");
    return ENS_OK;
}

/* ---- study administration ------------------------------------------------------------------ */

static ens_err_t add_study(void *ctx, const char *key, void *opaque, char *errstr,
                           size_t errstr_size) {
    (void)ctx;
    const char *open = strchr(key, '{'), *close = strrchr(key, '}');
    if (!open || !close || close <= open + 1 || close - open - 1 >= ENS_ID_MAX ||
        strcmp(close, "}:" STUDY_SUFFIX))
        return ENS_OK;
    if (list_add(opaque, open + 1, (size_t)(close - open - 1)))
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "stopped at %s (out of memory)",
                           key);
    return ENS_OK;
}

static ens_err_t redis_studies_list(void *ctx, char ***studies, int *n, char *errstr,
                                    size_t errstr_size) {
    list_t l = {0};
    ens_err_t err = scan(ctx, STUDY_PATTERN, add_study, &l, errstr, errstr_size);
    return list_done(err, &l, studies, n);
}

static ens_err_t redis_study_exists(void *ctx, const char *study, int *exists, char *errstr,
                                    size_t errstr_size) {
    char key[256];
    long long v = 0;
    KEY(key, study, STUDY_SUFFIX);
    ens_err_t err = integer(ctx, &v, errstr, errstr_size, "EXISTS %s", key, NULL);
    *exists = !err && v > 0;
    return err;
}

static ens_err_t add_usage(void *ctx, const char *key, void *opaque, char *errstr,
                           size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    ens_state_usage_t *u = opaque;
    ens_redis_reply_t *rep = ens_redis_command(conn(ctx), NULL, 0, "MEMORY USAGE %s", key);
    u->keys++;
    if (rep && rep->type == ENS_REPLY_INTEGER)
        u->bytes += rep->integer;
    ens_redis_reply_free(rep);
    return ENS_OK; /* a key that went meanwhile is counted, without bytes */
}

static ens_err_t redis_study_usage(void *ctx, const char *study, ens_state_usage_t *u,
                                   char *errstr, size_t errstr_size) {
    char pattern[256];
    ens_err_t err = study_pattern(study, STUDY_ALL_FMT, pattern, sizeof pattern, errstr,
                                  errstr_size);
    return err ? err : scan(ctx, pattern, add_usage, u, errstr, errstr_size);
}

static ens_err_t del_key(void *ctx, const char *key, void *opaque, char *errstr,
                         size_t errstr_size) {
    long *n = opaque;
    ens_redis_reply_t *rep = ens_redis_command(conn(ctx), NULL, 0, "UNLINK %s", key);
    int ok = rep && rep->type == ENS_REPLY_INTEGER;
    *n += ok ? (long)rep->integer : 0;
    ens_redis_reply_free(rep);
    return ok ? ENS_OK
              : ens_err_set(errstr, errstr_size, ENS_ERR_REDIS,
                            "stopped at %s (out of memory, or Redis went away)", key);
}

static ens_err_t redis_study_delete(void *ctx, const char *study, long *deleted, char *errstr,
                                    size_t errstr_size) {
    char pattern[256];
    ens_err_t err = study_pattern(study, STUDY_ALL_FMT, pattern, sizeof pattern, errstr,
                                  errstr_size);
    /* the sets first: no service picks the study up again while it goes */
    for (size_t i = 0; !err && i < sizeof study_sets / sizeof *study_sets; i++)
        err = ens_redis_exec(conn(ctx), errstr, errstr_size, "SREM %s %s", study_sets[i],
                             study);
    return err ? err : scan(ctx, pattern, del_key, deleted, errstr, errstr_size);
}

/* SCARD ens:{s}:<suffix>. */
static ens_err_t count(void *ctx, const char *study, const char *suffix, long *n,
                       char *errstr, size_t errstr_size) {
    char key[256];
    long long v = 0;
    KEY(key, study, "%s", suffix);
    ens_err_t err = integer(ctx, &v, errstr, errstr_size, "SCARD %s", key, NULL);
    *n = err ? 0 : (long)v;
    return err;
}

static ens_err_t redis_trials_done_count(void *ctx, const char *study, long *n, char *errstr,
                                         size_t errstr_size) {
    return count(ctx, study, TRIALS_DONE_SUFFIX, n, errstr, errstr_size);
}

static ens_err_t redis_library_count(void *ctx, const char *study, long *n, char *errstr,
                                     size_t errstr_size) {
    return count(ctx, study, LIBRARY_SUFFIX, n, errstr, errstr_size);
}

/* ---- compaction ---------------------------------------------------------------------------- */

static ens_err_t redis_compact_add(void *ctx, const char *study, char *errstr,
                                   size_t errstr_size) {
    return ens_redis_exec(conn(ctx), errstr, errstr_size, "SADD %s %s",
                          ENS_STATE_KEY_STUDIES_COMPACT, study);
}

static ens_err_t redis_compact_next(void *ctx, char *study, size_t size, char *errstr,
                                    size_t errstr_size) {
    return string(ctx, study, size, errstr, errstr_size, "SRANDMEMBER %s",
                  ENS_STATE_KEY_STUDIES_COMPACT, NULL);
}

static ens_err_t redis_compact_queued(void *ctx, const char *study, int *queued, char *errstr,
                                      size_t errstr_size) {
    long long v = 0;
    ens_err_t err = integer(ctx, &v, errstr, errstr_size, "SISMEMBER %s %s",
                            ENS_STATE_KEY_STUDIES_COMPACT, study);
    *queued = !err && v > 0;
    return err;
}

static ens_err_t redis_compact_remove(void *ctx, const char *study, char *errstr,
                                      size_t errstr_size) {
    return ens_redis_exec(conn(ctx), errstr, errstr_size, "SREM %s %s",
                          ENS_STATE_KEY_STUDIES_COMPACT, study);
}

static ens_err_t redis_compact_lock(void *ctx, const char *study, const char *owner,
                                    ens_state_lock_op_t op, int ttl_ms, int *held,
                                    char *errstr, size_t errstr_size) {
    char key[300], ms[16];
    if (!ens_key(key, sizeof key, study, COMPACTING_SUFFIX))
        return ENS_OK; /* no key, no lock: nobody holds it */
    snprintf(ms, sizeof ms, "%d", ttl_ms);
    ens_redis_reply_t *rep =
        op == ENS_STATE_LOCK_TAKE
            ? ens_redis_command(conn(ctx), errstr, errstr_size, "SET %s %s NX PX %s", key,
                                owner, ms)
            : ens_redis_commandv(conn(ctx), 6,
                                 (const char *[]){"EVAL",
                                                  op == ENS_STATE_LOCK_RENEW ? renew_lua
                                                                             : release_lua,
                                                  "1", key, owner, ms},
                                 NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    *held = op == ENS_STATE_LOCK_TAKE ? rep->type == ENS_REPLY_STATUS
                                      : rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_compact_owner(void *ctx, const char *study, char *owner, size_t size,
                                     char *errstr, size_t errstr_size) {
    char key[300];
    KEY(key, study, COMPACTING_SUFFIX);
    return string(ctx, owner, size, errstr, errstr_size, "GET %s", key, NULL);
}

/* ---- model files: the model store, its references in Redis ---------------------------------- */

static ens_err_t redis_model_file_get(void *ctx, ens_models_t *ms, const char *study,
                                      const char *name, void **data, size_t *len,
                                      char *errstr, size_t errstr_size) {
    return ens_models_get(ms, conn(ctx), study, name, data, len, errstr, errstr_size);
}

static ens_err_t redis_model_file_put(void *ctx, ens_models_t *ms, const char *study,
                                      const char *name, const void *data, size_t len,
                                      char *errstr, size_t errstr_size) {
    return ens_models_put(ms, conn(ctx), study, name, data, len, errstr, errstr_size);
}

static ens_err_t redis_model_file_del(void *ctx, ens_models_t *ms, const char *study,
                                      const char *name, char *errstr, size_t errstr_size) {
    return ens_models_del(ms, conn(ctx), study, name, errstr, errstr_size);
}

static ens_err_t redis_model_file_referenced(void *ctx, const char *study, const char *name,
                                             int *referenced, char *errstr,
                                             size_t errstr_size) {
    char key[400];
    long long v = 0;
    if (!ens_models_ref_key(key, sizeof key, study, name))
        return ENS_OK; /* no key: nothing references it */
    ens_err_t err = integer(ctx, &v, errstr, errstr_size, "EXISTS %s", key, NULL);
    *referenced = !err && v > 0;
    return err;
}

/* ens:{s}:model:<m>:meta -> model:<m>, ckpt:<t> likewise (probability blobs are no models). */
static ens_err_t add_legacy(void *ctx, const char *key, void *opaque, char *errstr,
                            size_t errstr_size) {
    (void)ctx;
    const char *tail = strstr(key, "}:");
    size_t n = tail ? strlen(tail + 2) : 0;
    if (n <= 5 || (strncmp(tail + 2, "model:", 6) && strncmp(tail + 2, "ckpt:", 5)) ||
        n - 5 >= ENS_STATE_MODEL_NAME_MAX)
        return ENS_OK;
    return list_add(opaque, tail + 2, n - 5)
               ? ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "out of memory")
               : ENS_OK;
}

static ens_err_t redis_model_legacy_list(void *ctx, const char *study, char ***names, int *n,
                                         char *errstr, size_t errstr_size) {
    char pattern[300];
    if (study_pattern(study, LEGACY_FMT, pattern, sizeof pattern, NULL, 0))
        return ENS_OK; /* too long for a pattern: not a study of ours */
    list_t l = {0};
    ens_err_t err = scan(ctx, pattern, add_legacy, &l, errstr, errstr_size);
    return list_done(err, &l, names, n);
}

/* ---- serving ------------------------------------------------------------------------------- */

static ens_err_t redis_serving_put(void *ctx, const char *study, const char *group,
                                   int64_t version, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, SERVING_SUFFIX);
    return ens_redis_exec(conn(ctx), errstr, errstr_size, "HSET %s %s %lld", key, group,
                          (long long)version);
}

static ens_err_t redis_serving_newest(void *ctx, const char *study, int64_t *version,
                                      char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, SERVING_SUFFIX);
    ens_redis_reply_t *rep = ens_redis_command(conn(ctx), errstr, errstr_size, "HVALS %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    for (size_t i = 0; rep->type == ENS_REPLY_ARRAY && i < rep->elements; i++)
        if (rep->element[i]->str) {
            int64_t v = strtoll(rep->element[i]->str, NULL, 10);
            if (err || v > *version)
                *version = v;
            err = ENS_OK;
        }
    ens_redis_reply_free(rep);
    return err;
}

static void answered_key(char *key, size_t size, char *field, size_t fsize, const char *group,
                         const char *topic, int32_t partition) {
    snprintf(key, size, ANSWERED_FMT, group);
    snprintf(field, fsize, ANSWERED_FIELD_FMT, topic, (int)partition);
}

static ens_err_t redis_answered_get(void *ctx, const char *group, const char *topic,
                                    int32_t partition, int64_t *offset, char *errstr,
                                    size_t errstr_size) {
    char key[320], field[288], v[32];
    answered_key(key, sizeof key, field, sizeof field, group, topic, partition);
    ens_err_t err = string(ctx, v, sizeof v, errstr, errstr_size, "HGET %s %s", key, field);
    if (!err)
        *offset = strtoll(v, NULL, 10);
    return err;
}

static ens_err_t redis_answered_forget(void *ctx, const char *group, const char *topic,
                                       int32_t partition, char *errstr, size_t errstr_size) {
    char key[320], field[288];
    answered_key(key, sizeof key, field, sizeof field, group, topic, partition);
    return ens_redis_exec(conn(ctx), errstr, errstr_size, "HDEL %s %s", key, field);
}

static ens_err_t redis_answered_raise(void *ctx, const char *group, const char *topic,
                                      int32_t partition, int64_t offset, char *errstr,
                                      size_t errstr_size) {
    char key[320], field[288];
    answered_key(key, sizeof key, field, sizeof field, group, topic, partition);
    return ens_redis_exec(conn(ctx), errstr, errstr_size, "EVAL %s 1 %s %s %lld", raise_lua,
                          key, field, (long long)offset);
}

const struct ens_state_studies_i ens_state_studies_redis = {
    .studies_list = redis_studies_list,
    .study_exists = redis_study_exists,
    .study_usage = redis_study_usage,
    .study_delete = redis_study_delete,
    .trials_done_count = redis_trials_done_count,
    .library_count = redis_library_count,
    .compact_add = redis_compact_add,
    .compact_next = redis_compact_next,
    .compact_queued = redis_compact_queued,
    .compact_remove = redis_compact_remove,
    .compact_lock = redis_compact_lock,
    .compact_owner = redis_compact_owner,
    .model_file_get = redis_model_file_get,
    .model_file_put = redis_model_file_put,
    .model_file_del = redis_model_file_del,
    .model_file_referenced = redis_model_file_referenced,
    .model_legacy_list = redis_model_legacy_list,
    .serving_put = redis_serving_put,
    .serving_newest = redis_serving_newest,
    .answered_get = redis_answered_get,
    .answered_forget = redis_answered_forget,
    .answered_raise = redis_answered_raise,
};
