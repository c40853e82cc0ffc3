/* retain.c - optimiser state dropped when no longer needed; a finished study compacted. */
#include "retain.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/log.h"
#include "ensflow/nn.h"

ens_err_t ens_retain_weights_only(ens_models_t *ms, ens_redis_t *r, const char *study,
                                  const char *name, int *rewritten, char *errstr, size_t size) {
    void *blob = NULL;
    size_t len = 0;
    *rewritten = 0;
    ens_err_t err = ens_models_get(ms, r, study, name, &blob, &len, errstr, size);
    if (err)
        return err;
    ens_model_t *m = NULL;
    err = ens_model_load(blob, len, &m, errstr, size);
    free(blob);
    if (err)
        return err;
    if (ens_model_drop_optimiser(m)) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (!(err = ens_model_save(m, &out, &out_len)))
            err = ens_models_put(ms, r, study, name, out, out_len, errstr, size);
        free(out);
        *rewritten = !err;
    }
    ens_model_free(m);
    return err;
}

typedef struct {
    char (*names)[300];
    int n, cap;
} names_t;

static int collect(void *opaque, const char *name, uint64_t bytes) {
    names_t *ns = opaque;
    (void)bytes;
    if (ns->n == ns->cap) {
        int cap = ns->cap ? 2 * ns->cap : 64;
        void *p = realloc(ns->names, (size_t)cap * sizeof *ns->names);
        if (!p)
            return 1;
        ns->names = p;
        ns->cap = cap;
    }
    snprintf(ns->names[ns->n++], sizeof ns->names[0], "%s", name);
    return 0;
}

/* 1 when Redis references study/name (a file without one is no model). */
static int referenced(ens_redis_t *r, const char *study, const char *name, char *errstr,
                      size_t size) {
    char key[400];
    if (!ens_key(key, sizeof key, study, "%s:ref", name))
        return 0;
    redisReply *rep = ens_redis_command(r, errstr, size, "EXISTS %s", key);
    int v = !rep ? -1 : rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
    return v;
}

ens_err_t ens_retain_compact_study(ens_models_t *ms, ens_redis_t *r, const char *study,
                                   ens_retain_stats_t *st, char *errstr, size_t size) {
    memset(st, 0, sizeof *st);
    long files = 0;
    names_t ns = {0};
    ens_err_t err = ens_models_study_usage(ms, study, &st->bytes_before, &files, errstr, size);
    if (!err)
        err = ens_models_sweep_temp(ms, study, &st->temp_deleted, errstr, size);
    if (!err && (err = ens_models_list(ms, study, collect, &ns, errstr, size)) == ENS_ERR_STOPPED)
        err = ens_err_set(errstr, size, ENS_ERR_NOMEM, "out of memory listing %s", study);
    for (int i = 0; !err && i < ns.n; i++) {
        const char *name = ns.names[i];
        int ref = referenced(r, study, name, errstr, size);
        if (ref < 0) {
            err = ENS_ERR_REDIS;
        } else if (!ref) {
            if (!(err = ens_models_del(ms, NULL, study, name, errstr, size)))
                st->orphans_deleted++;
        } else if (!strncmp(name, "ckpt:", 5)) {
            if (!(err = ens_models_del(ms, r, study, name, errstr, size)))
                st->checkpoints_deleted++;
        } else {
            int rewritten = 0;
            err = ens_retain_weights_only(ms, r, study, name, &rewritten, errstr, size);
            if (err == ENS_ERR_CORRUPT) { /* a damaged file stays, named in the log */
                ENS_WARN("study=%s msg=\"model not compacted\" name=%s error=\"%s\"", study,
                         name, errstr);
                err = ENS_OK;
            }
            st->models_stripped += rewritten;
        }
    }
    free(ns.names);
    if (!err)
        err = ens_models_study_usage(ms, study, &st->bytes_after, &files, errstr, size);
    return err;
}

int ens_retain_tick(ens_models_t *ms, ens_redis_t *r) {
    char errstr[512];
    if (!ms || !r)
        return 0;
    redisReply *rep = ens_redis_command(r, errstr, sizeof errstr,
                                        "SRANDMEMBER " ENS_MODELS_COMPACT_KEY);
    if (!rep)
        return ENS_ERR_REDIS;
    char study[256] = "";
    if (rep->type == REDIS_REPLY_STRING)
        snprintf(study, sizeof study, "%s", rep->str);
    ens_redis_reply_free(rep);
    if (!study[0])
        return 0;
    ens_retain_stats_t st;
    ens_err_t err = ens_retain_compact_study(ms, r, study, &st, errstr, sizeof errstr);
    if (err == ENS_ERR_INVALID) /* not a study id the store can hold: nothing to do */
        err = ENS_OK;
    if (!err)
        err = ens_redis_exec(r, errstr, sizeof errstr, "SREM " ENS_MODELS_COMPACT_KEY " %s",
                             study);
    if (err) {
        ENS_WARN("study=%s msg=\"compaction failed; tried again later\" error=\"%s\"", study,
                 errstr);
        return err;
    }
    ENS_INFO("study=%s msg=\"model files compacted\" checkpoints_deleted=%ld "
             "models_stripped=%ld orphans_deleted=%ld temp_deleted=%ld bytes_before=%llu "
             "bytes_after=%llu",
             study, st.checkpoints_deleted, st.models_stripped, st.orphans_deleted,
             st.temp_deleted, (unsigned long long)st.bytes_before,
             (unsigned long long)st.bytes_after);
    return 1;
}
