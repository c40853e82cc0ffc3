/* state_mem_sched.c - the scheduler's and the jobs' state in memory (state_sched.h), for unit
 * tests of the proposer's and the trainer's handlers: the Redis keys of state_sched_keys.h
 * over a small store of hashes, sorted sets, sets and strings, and the ASHA steps done on them
 * as the Lua scripts of state_redis_sched.c do them. No TTLs, one thread. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state_sched.h"
#include "state_internal.h"
#include "state_sched_keys.h"

/* One field of a hash, member of a set or sorted set (with its score), or a string's value. */
typedef struct {
    char *field;
    char *val;
    double score;
} item_t;

typedef enum { T_HASH = 1, T_ZSET, T_SET, T_STR } obj_type_t;

typedef struct {
    char *key;
    obj_type_t type;
    item_t *it;
    int n, cap;
} obj_t;

/* The records of one in-memory state (its slot, ens_state_mem_sched_slot). */
typedef struct {
    obj_t *o;
    int n, cap;
} mem_sched_t;

static void obj_clear(obj_t *o) {
    for (int i = 0; i < o->n; i++) {
        free(o->it[i].field);
        free(o->it[i].val);
    }
    free(o->it);
    free(o->key);
}

void ens_state_mem_sched_free(void *sched) {
    mem_sched_t *s = sched;
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        obj_clear(&s->o[i]);
    free(s->o);
    free(s);
}

/* The scheduler records of a memory state, made on first use (NULL: out of memory). */
static mem_sched_t *sched_of(void *ctx) {
    void **slot = ens_state_mem_sched_slot(ctx);
    if (!*slot)
        *slot = calloc(1, sizeof(mem_sched_t));
    return *slot;
}

/* The object at key; made (empty, of type) when create and absent. NULL when absent, of
 * another type, or out of memory. */
static obj_t *obj(mem_sched_t *s, const char *key, obj_type_t type, int create) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->o[i].key, key))
            return s->o[i].type == type ? &s->o[i] : NULL;
    if (!create)
        return NULL;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        obj_t *o = realloc(s->o, (size_t)cap * sizeof *o);
        if (!o)
            return NULL;
        s->o = o;
        s->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    s->o[s->n] = (obj_t){.key = k, .type = type};
    return &s->o[s->n++];
}

static void del(mem_sched_t *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->o[i].key, key)) {
            obj_clear(&s->o[i]);
            s->o[i] = s->o[--s->n];
            return;
        }
}

/* An empty object is no object, as in Redis. */
static void drop_if_empty(mem_sched_t *s, obj_t *o) {
    if (o && o->n == 0)
        del(s, o->key);
}

static item_t *item(obj_t *o, const char *field) {
    for (int i = 0; o && i < o->n; i++)
        if (!strcmp(o->it[i].field, field))
            return &o->it[i];
    return NULL;
}

/* Set field to val (NULL: no value) and score in o; ENS_ERR_NOMEM. */
static ens_err_t item_put(obj_t *o, const char *field, const char *val, double score) {
    if (!o)
        return ENS_ERR_NOMEM;
    char *v = val ? strdup(val) : NULL;
    if (val && !v)
        return ENS_ERR_NOMEM;
    item_t *it = item(o, field);
    if (it) {
        free(it->val);
        it->val = v;
        it->score = score;
        return ENS_OK;
    }
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 8;
        item_t *p = realloc(o->it, (size_t)cap * sizeof *p);
        if (!p) {
            free(v);
            return ENS_ERR_NOMEM;
        }
        o->it = p;
        o->cap = cap;
    }
    char *f = strdup(field);
    if (!f) {
        free(v);
        return ENS_ERR_NOMEM;
    }
    o->it[o->n++] = (item_t){f, v, score};
    return ENS_OK;
}

/* Remove field from the object at key; 1 when it was there. */
static int item_del(mem_sched_t *s, const char *key, obj_type_t type, const char *field) {
    obj_t *o = obj(s, key, type, 0);
    item_t *it = item(o, field);
    if (!it)
        return 0;
    free(it->field);
    free(it->val);
    *it = o->it[--o->n];
    drop_if_empty(s, o);
    return 1;
}

static const char *hget(mem_sched_t *s, const char *key, const char *field) {
    item_t *it = item(obj(s, key, T_HASH, 0), field);
    return it ? it->val : NULL;
}

static ens_err_t hset(mem_sched_t *s, const char *key, const char *field, const char *val) {
    return item_put(obj(s, key, T_HASH, 1), field, val, 0);
}

static ens_err_t hsetf(mem_sched_t *s, const char *key, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ens_err_t hsetf(mem_sched_t *s, const char *key, const char *field, const char *fmt, ...) {
    char val[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    return hset(s, key, field, val);
}

/* HINCRBYFLOAT (as_int 0) or HINCRBY (1); the value after it in *after (may be NULL). */
static ens_err_t hincr(mem_sched_t *s, const char *key, const char *field, double by, int as_int,
                       double *after) {
    const char *old = hget(s, key, field);
    double v = (old ? strtod(old, NULL) : 0) + by;
    if (after)
        *after = v;
    return as_int ? hsetf(s, key, field, "%lld", (long long)llround(v))
                  : hsetf(s, key, field, "%.17g", v);
}

static ens_err_t zadd(mem_sched_t *s, const char *key, const char *member, double score) {
    return item_put(obj(s, key, T_ZSET, 1), member, NULL, score);
}

static ens_err_t sadd(mem_sched_t *s, const char *key, const char *member) {
    return item_put(obj(s, key, T_SET, 1), member, NULL, 0);
}

static int count(mem_sched_t *s, const char *key, obj_type_t type) {
    obj_t *o = obj(s, key, type, 0);
    return o ? o->n : 0;
}

/* Sorted set order, highest first: score, then member, both descending (ZREVRANGE). */
static int zrev_cmp(const void *a, const void *b) {
    const item_t *x = *(item_t *const *)a, *y = *(item_t *const *)b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return -strcmp(x->field, y->field);
}

/* The members of a sorted set, highest first (*out malloc'd pointers into it, NULL when
 * empty). */
static ens_err_t zrev(mem_sched_t *s, const char *key, item_t ***out, int *n) {
    obj_t *o = obj(s, key, T_ZSET, 0);
    *out = NULL;
    *n = 0;
    if (!o || !o->n)
        return ENS_OK;
    item_t **v = malloc((size_t)o->n * sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    for (int i = 0; i < o->n; i++)
        v[i] = &o->it[i];
    qsort(v, (size_t)o->n, sizeof *v, zrev_cmp);
    *out = v;
    *n = o->n;
    return ENS_OK;
}

/* The study's library, state_mem.c's entries of kind K_LIBRARY (state.h's library). */
static ens_err_t library_of(void *ctx, const char *study, char ***models, int *n) {
    return ens_state_mem_ids(ctx, K_LIBRARY, study, models, n);
}

/* The key of a study's thing into buf, or ENS_ERR_INVALID from the calling function. */
#define KEY(buf, study, ...)                                                                       \
    do {                                                                                           \
        if (!ens_key(buf, sizeof buf, study, __VA_ARGS__))                                         \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,                               \
                               "study id \"%s\" makes no key", study);                             \
    } while (0)

/* The scheduler records of ctx into s, or ENS_ERR_NOMEM from the calling function. */
#define SCHED(s)                                                                                   \
    mem_sched_t *s = sched_of(ctx);                                                                \
    if (!s)                                                                                        \
    return ENS_ERR_NOMEM

/* ---- studies -------------------------------------------------------------------------- */

static ens_err_t mem_study_create(void *ctx, const ens_state_sched_study_t *st, int *created,
                                  char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, st->study_id, K_STUDY);
    if (hget(s, key, F_SCHEDULER))
        return ENS_OK;
    ens_err_t err = hset(s, key, F_STUDY_ID, st->study_id);
    if (!err)
        err = hset(s, key, F_DATASET, st->dataset ? st->dataset : "");
    if (!err)
        err = hset(s, key, F_SEARCH_SPACE,
                   st->search_space && *st->search_space ? st->search_space : "{}");
    if (!err)
        err = hsetf(s, key, F_N_TRIALS, "%d", (int)st->n_trials);
    if (!err)
        err = hsetf(s, key, F_EPOCHS, "%.17g", st->epochs);
    if (!err)
        err = hsetf(s, key, F_SEED, "%lld", (long long)st->seed);
    if (!err)
        err = hsetf(s, key, F_VAL_FRACTION, "%.17g", st->val_fraction);
    if (!err)
        err = hsetf(s, key, F_TOP_K, "%d", (int)st->top_k);
    if (!err)
        err = hsetf(s, key, F_CREATED_MS, "%lld", (long long)st->created_ms);
    if (!err)
        err = hset(s, key, F_STATUS, "running");
    if (!err)
        err = hset(s, key, F_SCHEDULER, st->scheduler);
    if (!err)
        err = hsetf(s, key, F_ETA, "%.17g", st->eta);
    if (!err)
        err = hsetf(s, key, F_MIN_EPOCHS, "%.17g", st->min_epochs);
    if (!err)
        err = hsetf(s, key, F_S_MAX, "%d", (int)st->s_max);
    if (!err)
        err = hsetf(s, key, F_MAX_EPOCHS_BUDGET, "%.17g", st->max_epochs_budget);
    if (!err)
        err = hsetf(s, key, F_DEADLINE_MS, "%lld", (long long)st->deadline_ms);
    if (!err && !item(obj(s, K_STUDIES, T_ZSET, 0), st->study_id))
        err = zadd(s, K_STUDIES, st->study_id, (double)st->created_ms);
    if (!err)
        err = sadd(s, K_STUDIES_ACTIVE, st->study_id);
    if (!err)
        *created = 1;
    return err;
}

static ens_err_t mem_study_get(void *ctx, const char *study, ens_state_sched_study_t *out,
                               char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_STUDY);
#define STR(f) (hget(s, key, f) ? hget(s, key, f) : "")
#define NUM(f) (hget(s, key, f) ? strtod(hget(s, key, f), NULL) : 0)
#define INT(f) (hget(s, key, f) ? strtoll(hget(s, key, f), NULL, 10) : 0)
    snprintf(out->status, sizeof out->status, "%s", STR(F_STATUS));
    snprintf(out->scheduler, sizeof out->scheduler, "%s", STR(F_SCHEDULER));
    if (hget(s, key, F_DATASET) && !(out->dataset = strdup(hget(s, key, F_DATASET))))
        return ENS_ERR_NOMEM;
    if (hget(s, key, F_SEARCH_SPACE) && !(out->search_space = strdup(hget(s, key, F_SEARCH_SPACE))))
        return ENS_ERR_NOMEM;
    out->n_trials = (int32_t)NUM(F_N_TRIALS);
    out->top_k = (int32_t)NUM(F_TOP_K);
    out->s_max = (int32_t)NUM(F_S_MAX);
    out->epochs = NUM(F_EPOCHS);
    out->val_fraction = NUM(F_VAL_FRACTION);
    out->eta = NUM(F_ETA);
    out->min_epochs = NUM(F_MIN_EPOCHS);
    out->max_epochs_budget = NUM(F_MAX_EPOCHS_BUDGET);
    out->seed = INT(F_SEED);
    out->created_ms = INT(F_CREATED_MS);
    out->deadline_ms = INT(F_DEADLINE_MS);
#undef STR
#undef NUM
#undef INT
    return ENS_OK;
}

static ens_err_t mem_study_status_put(void *ctx, const char *study, const char *status,
                                      const char *error, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_STUDY);
    ens_err_t err = hset(s, key, F_STATUS, status);
    return !err && error ? hset(s, key, F_ERROR, error) : err;
}

static ens_err_t mem_study_extend(void *ctx, const char *study, int32_t add_trials,
                                  double add_epochs, int64_t deadline_ms, char *errstr,
                                  size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_STUDY);
    ens_err_t err = ENS_OK;
    if (add_trials)
        err = hincr(s, key, F_N_TRIALS, add_trials, 1, NULL);
    if (!err && add_epochs > 0)
        err = hincr(s, key, F_MAX_EPOCHS_BUDGET, add_epochs, 0, NULL);
    if (!err && deadline_ms > 0)
        err = hsetf(s, key, F_DEADLINE_MS, "%lld", (long long)deadline_ms);
    if (!err)
        err = hset(s, key, F_STATUS, "running");
    if (!err)
        err = sadd(s, K_STUDIES_ACTIVE, study);
    if (!err)
        err = ens_state_studies_mem.compact_remove(ctx, study, errstr, errstr_size);
    return err;
}

static ens_err_t mem_study_end(void *ctx, const char *study, const char *final_status, char *errstr,
                               size_t errstr_size) {
    SCHED(s);
    char key[256], disp[256];
    KEY(key, study, K_STUDY);
    KEY(disp, study, K_DISPATCHED);
    ens_err_t err = final_status ? hset(s, key, F_STATUS, final_status) : ENS_OK;
    if (!err)
        err = sadd(s, K_STUDIES_SETTLING, study);
    if (!err)
        err = ens_state_studies_mem.compact_add(ctx, study, errstr, errstr_size);
    if (!err) {
        item_del(s, K_STUDIES_ACTIVE, T_SET, study);
        del(s, disp);
    }
    return err;
}

static ens_err_t mem_command_first(void *ctx, const char *study, const char *event_id, int *first,
                                   char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, "seen:" K_SEEN_SCOPE_CMD ":%s", event_id);
    if (obj(s, key, T_STR, 0))
        return ENS_OK;
    ens_err_t err = item_put(obj(s, key, T_STR, 1), "", "1", 0);
    *first = !err;
    return err;
}

static const char *const study_sets[2] = {K_STUDIES_ACTIVE, K_STUDIES_SETTLING};

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static ens_err_t mem_studies_list(void *ctx, int which, char ***studies, int *n, char *errstr,
                                  size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    obj_t *o = obj(s, study_sets[which], T_SET, 0);
    int k = o ? o->n : 0;
    char **v = calloc((size_t)k + 1, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    for (int i = 0; i < k; i++)
        if (!(v[i] = strdup(o->it[i].field))) {
            ens_state_strings_free(v, i);
            return ENS_ERR_NOMEM;
        }
    qsort(v, (size_t)k, sizeof *v, cmp_str);
    *studies = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_studies_has(void *ctx, int which, const char *study, int *has, char *errstr,
                                 size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    *has = item(obj(s, study_sets[which], T_SET, 0), study) != NULL;
    return ENS_OK;
}

static ens_err_t mem_studies_remove(void *ctx, int which, const char *study, char *errstr,
                                    size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    item_del(s, study_sets[which], T_SET, study);
    return ENS_OK;
}

/* ---- the ASHA steps, as the scripts do them --------------------------------------------- */

/* The view after a step (the scripts' view()). */
static ens_err_t view(mem_sched_t *s, const char *study, const ens_asha_params_t *p,
                      ens_asha_view_t *v) {
    char asha[256], key[256], f[48];
    memset(v, 0, sizeof *v);
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++)
            v->rung[b][k].cand_rank = -1;
    if (!ens_key(asha, sizeof asha, study, K_ASHA))
        return ENS_ERR_INVALID;
    const char *x;
    v->decisions = (x = hget(s, asha, F_DECISIONS)) ? strtoll(x, NULL, 10) : 0;
    v->configs = (x = hget(s, asha, F_CONFIGS)) ? (int32_t)strtol(x, NULL, 10) : 0;
    v->epochs_issued = (x = hget(s, asha, F_EPOCHS_ISSUED)) ? strtod(x, NULL) : 0;
    v->version = (x = hget(s, asha, F_VERSION)) ? strtoll(x, NULL, 10) : 0;
    for (int b = 0; b < ens_asha_n_brackets(p); b++)
        for (int k = 0; k < ens_asha_n_rungs(p, b); k++) {
            ens_asha_rung_t *o = &v->rung[b][k];
            snprintf(f, sizeof f, F_DONE, b, k);
            o->done = (x = hget(s, asha, f)) ? (int32_t)strtol(x, NULL, 10) : 0;
            snprintf(f, sizeof f, F_ENTERED, b, k);
            o->entered = (x = hget(s, asha, f)) ? (int32_t)strtol(x, NULL, 10) : 0;
            item_t **cand = NULL, **rung = NULL;
            int n_cand = 0, n = 0;
            ens_key(key, sizeof key, study, K_CAND, b, k);
            ens_err_t err = zrev(s, key, &cand, &n_cand);
            ens_key(key, sizeof key, study, K_RUNG, b, k);
            if (!err)
                err = zrev(s, key, &rung, &n);
            o->n = n;
            for (int i = 0; !err && n_cand > 0 && i < n; i++)
                if (!strcmp(rung[i]->field, cand[0]->field)) {
                    o->cand_rank = i;
                    snprintf(o->cand, sizeof o->cand, "%s", cand[0]->field);
                }
            free(cand);
            free(rung);
            if (err)
                return err;
        }
    return ENS_OK;
}

static ens_err_t mem_asha_view(void *ctx, const char *study, const ens_asha_params_t *p,
                               ens_asha_view_t *v, int *round_trips, char *errstr,
                               size_t errstr_size) {
    (void)errstr, (void)errstr_size;
    SCHED(s);
    *round_trips = 1;
    return view(s, study, p, v);
}

static ens_err_t mem_asha_commit(void *ctx, const char *study, const ens_asha_params_t *p,
                                 const ens_asha_decision_t *d, int64_t base_version,
                                 const char *config_json, int *applied, ens_asha_view_t *next,
                                 char *errstr, size_t errstr_size) {
    SCHED(s);
    char asha[256], key[256], f[48], from[40], to[40], rec[256];
    KEY(asha, study, K_ASHA);
    const char *x;
    long long n = (x = hget(s, asha, F_DECISIONS)) ? strtoll(x, NULL, 10) : 0;
    long long ver = (x = hget(s, asha, F_VERSION)) ? strtoll(x, NULL, 10) : 0;
    if (n != d->seq || (base_version >= 0 && ver != base_version))
        return next ? view(s, study, p, next) : ENS_OK;
    const char *t = d->trial_id;
    int b = d->bracket, k = d->rung;
    ens_err_t err = ENS_OK;
    if (d->action == ENS_ASHA_PROMOTE) {
        KEY(key, study, K_CAND, b, k - 1);
        if (!item_del(s, key, T_ZSET, t))
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "promoted trial %s is not a candidate", t);
    } else {
        KEY(key, study, K_TRIAL, t);
        err = hincr(s, asha, F_CONFIGS, 1, 1, NULL);
        if (!err)
            err = hset(s, key, F_CONFIG, config_json);
        if (!err)
            err = hsetf(s, key, "bracket", "%d", b);
    }
    snprintf(from, sizeof from, "%.17g", d->from_epochs);
    snprintf(to, sizeof to, "%.17g", d->to_epochs);
    if (!err)
        err = hsetf(s, asha, F_DECISIONS, "%lld", n + 1);
    if (!err)
        err = hincr(s, asha, F_VERSION, 1, 1, NULL);
    snprintf(f, sizeof f, F_ENTERED, b, k);
    if (!err)
        err = hincr(s, asha, f, 1, 1, NULL);
    if (!err)
        err = hincr(s, asha, F_EPOCHS_ISSUED, strtod(to, NULL) - strtod(from, NULL), 0, NULL);
    KEY(key, study, K_INFLIGHT);
    snprintf(rec, sizeof rec, "%lld %d %d %s %s", (long long)d->seq, b, k, from, to);
    if (!err)
        err = hset(s, key, t, rec);
    KEY(key, study, K_OUTBOX);
    snprintf(f, sizeof f, "%lld", (long long)d->seq);
    if (!err)
        err = hset(s, key, f, t);
    KEY(key, study, K_DECISIONS);
    snprintf(rec, sizeof rec, "%s %s %d %d %s %s", d->action == ENS_ASHA_NEW ? "new" : "promote", t,
             b, k, from, to);
    if (!err)
        err = hset(s, key, f, rec);
    KEY(key, study, K_TRIAL, t);
    if (!err)
        err = hset(s, key, "status", "queued");
    if (!err)
        err = hsetf(s, key, "rung", "%d", k);
    if (!err)
        err = hset(s, key, "target_epochs", to);
    if (err)
        return err;
    *applied = 1;
    return next ? view(s, study, p, next) : ENS_OK;
}

static ens_err_t mem_asha_result(void *ctx, const char *study, const ens_asha_params_t *p,
                                 const char *trial_id, int ok, double score, double epochs_done,
                                 const char *model_id, const char *error, int *applied,
                                 ens_asha_view_t *next, char *errstr, size_t errstr_size) {
    SCHED(s);
    char infl[256], asha[256], key[256], f[48], sc[40], ep[40];
    KEY(infl, study, K_INFLIGHT);
    KEY(asha, study, K_ASHA);
    const char *job = hget(s, infl, trial_id);
    long long seq;
    int b, k;
    if (!job || sscanf(job, "%lld %d %d ", &seq, &b, &k) != 3)
        return next ? view(s, study, p, next) : ENS_OK;
    item_del(s, infl, T_HASH, trial_id);
    snprintf(f, sizeof f, F_DONE, b, k);
    ens_err_t err = hincr(s, asha, f, 1, 1, NULL);
    if (!err)
        err = hincr(s, asha, F_VERSION, 1, 1, NULL);
    snprintf(sc, sizeof sc, "%.17g", score);
    snprintf(ep, sizeof ep, "%.17g", epochs_done);
    char th[256];
    KEY(th, study, K_TRIAL, trial_id);
    if (ok) {
        KEY(key, study, K_RUNG, b, k);
        if (!err)
            err = zadd(s, key, trial_id, strtod(sc, NULL));
        KEY(key, study, K_CAND, b, k);
        if (!err && b + k < p->m)
            err = zadd(s, key, trial_id, strtod(sc, NULL));
        if (!err)
            err = hset(s, th, "status", "done");
        if (!err)
            err = hset(s, th, "val_accuracy", sc);
        if (!err)
            err = hset(s, th, "epochs_done", ep);
        if (!err)
            err = hset(s, th, "model_id", model_id);
        snprintf(f, sizeof f, "r%d_acc", k);
        if (!err)
            err = hset(s, th, f, sc);
        snprintf(f, sizeof f, "r%d_model", k);
        if (!err)
            err = hset(s, th, f, model_id);
        KEY(key, study, K_TRIALS_DONE);
        if (!err)
            err = sadd(s, key, trial_id);
        KEY(key, study, K_MODELS);
        if (!err)
            err = sadd(s, key, model_id);
    } else {
        if (!err)
            err = hset(s, th, "status", "failed");
        if (!err)
            err = hset(s, th, "error", error);
        snprintf(f, sizeof f, "r%d_error", k);
        if (!err)
            err = hset(s, th, f, error);
        KEY(key, study, K_TRIALS_FAILED);
        if (!err)
            err = sadd(s, key, trial_id);
    }
    if (err)
        return err;
    *applied = 1;
    return next ? view(s, study, p, next) : ENS_OK;
}

/* ---- jobs in flight, dispatched, in the outbox ------------------------------------------ */

static ens_err_t mem_inflight_list(void *ctx, const char *study, ens_state_sched_inflight_t **jobs,
                                   int *n, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_INFLIGHT);
    obj_t *o = obj(s, key, T_HASH, 0);
    if (!o || !o->n)
        return ENS_OK;
    ens_state_sched_inflight_t *v = calloc((size_t)o->n, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < o->n; i++)
        if (strlen(o->it[i].field) < ENS_ID_MAX &&
            ens_state_sched_inflight_parse(o->it[i].val, &v[k]))
            snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", o->it[i].field);
    *jobs = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_inflight_get(void *ctx, const char *study, const char *trial,
                                  ens_state_sched_inflight_t *job, int *found, char *errstr,
                                  size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_INFLIGHT);
    if (ens_state_sched_inflight_parse(hget(s, key, trial), job)) {
        snprintf(job->trial_id, sizeof job->trial_id, "%s", trial);
        *found = 1;
    }
    return ENS_OK;
}

static ens_err_t mem_inflight_count(void *ctx, const char *study, long *n, char *errstr,
                                    size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_INFLIGHT);
    *n = count(s, key, T_HASH);
    return ENS_OK;
}

static ens_err_t mem_dispatched_list(void *ctx, const char *study,
                                     ens_state_sched_dispatched_t **out, int *n, char *errstr,
                                     size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_DISPATCHED);
    obj_t *o = obj(s, key, T_HASH, 0);
    if (!o || !o->n)
        return ENS_OK;
    ens_state_sched_dispatched_t *v = calloc((size_t)o->n, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < o->n; i++) {
        long long seq = -1, sent = -1;
        int part = -1;
        if (strlen(o->it[i].field) >= ENS_ID_MAX ||
            sscanf(o->it[i].val, "%lld %d %lld", &seq, &part, &sent) < 2)
            continue;
        snprintf(v[k].trial_id, ENS_ID_MAX, "%s", o->it[i].field);
        v[k].seq = seq;
        v[k].partition = part;
        v[k++].sent_ms = sent;
    }
    *out = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_dispatched_put(void *ctx, const char *study,
                                    const ens_state_sched_dispatched_t *d, char *errstr,
                                    size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_DISPATCHED);
    return hsetf(s, key, d->trial_id, "%lld %d %lld", d->seq, (int)d->partition,
                 (long long)d->sent_ms);
}

static ens_err_t mem_dispatched_remove(void *ctx, const char *study, const char *trial,
                                       char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_DISPATCHED);
    item_del(s, key, T_HASH, trial);
    return ENS_OK;
}

static ens_err_t mem_outbox_list(void *ctx, const char *study, ens_state_sched_outbox_t **out,
                                 int *n, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_OUTBOX);
    obj_t *o = obj(s, key, T_HASH, 0);
    if (!o || !o->n)
        return ENS_OK;
    ens_state_sched_outbox_t *v = calloc((size_t)o->n, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < o->n; i++) /* in the order they were put, as a small Redis hash */
        if (strlen(o->it[i].val) < ENS_ID_MAX) {
            v[k].seq = strtoll(o->it[i].field, NULL, 10);
            snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", o->it[i].val);
        }
    *out = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_outbox_put(void *ctx, const char *study, long long seq, const char *trial,
                                char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256], f[32];
    KEY(key, study, K_OUTBOX);
    snprintf(f, sizeof f, "%lld", seq);
    return hset(s, key, f, trial);
}

static ens_err_t mem_outbox_remove(void *ctx, const char *study, long long seq, char *errstr,
                                   size_t errstr_size) {
    SCHED(s);
    char key[256], f[32];
    KEY(key, study, K_OUTBOX);
    snprintf(f, sizeof f, "%lld", seq);
    item_del(s, key, T_HASH, f);
    return ENS_OK;
}

static ens_err_t mem_trial_config(void *ctx, const char *study, const char *trial, char **config,
                                  char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_TRIAL, trial);
    const char *c = hget(s, key, F_CONFIG);
    if (!c)
        return ENS_ERR_NOTFOUND;
    return (*config = strdup(c)) ? ENS_OK : ENS_ERR_NOMEM;
}

/* ---- speeds, results watched, progress ------------------------------------------------- */

static ens_err_t mem_speed_put(void *ctx, const char *study, const char *trial,
                               double seconds_per_epoch, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256], v[40];
    KEY(key, study, K_SPEED);
    snprintf(v, sizeof v, "%.6g", seconds_per_epoch); /* as Redis is sent it */
    return zadd(s, key, trial, strtod(v, NULL));
}

static ens_err_t mem_speed_list(void *ctx, const char *study, double **spe, int *n, char *errstr,
                                size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_SPEED);
    item_t **v = NULL;
    int k = 0;
    ens_err_t err = zrev(s, key, &v, &k);
    double *out = k ? malloc((size_t)k * sizeof *out) : NULL;
    if (!err && k && !out)
        err = ENS_ERR_NOMEM;
    for (int i = 0; !err && i < k; i++) /* ascending: the reverse of zrev */
        out[i] = v[k - 1 - i]->score;
    free(v);
    if (err) {
        free(out);
        return err;
    }
    *spe = out;
    *n = k;
    return ENS_OK;
}

static ens_err_t mem_results_get(void *ctx, const char *study, ens_state_sched_results_t *out,
                                 char *errstr, size_t errstr_size) {
    SCHED(s);
    char models[256], lib[256], watch[256];
    KEY(models, study, K_MODELS);
    KEY(lib, study, K_LIBRARY);
    KEY(watch, study, K_EVALWATCH);
    /* the library is state_mem.c's entry table, not these records: a model counts as in the
     * library when ens_state_library_add put it there */
    char **have = NULL;
    int n_have = 0;
    ens_err_t err = ENS_OK;
    obj_t *m = obj(s, models, T_SET, 0);
    out->models = m ? m->n : 0;
    out->missing = calloc((size_t)out->models + 1, sizeof *out->missing);
    if (!out->missing)
        return ENS_ERR_NOMEM;
    err = library_of(ctx, study, &have, &n_have);
    out->library = n_have;
    for (int i = 0; !err && m && i < m->n; i++) {
        int in = 0;
        for (int j = 0; j < n_have && !in; j++)
            in = !strcmp(have[j], m->it[i].field);
        if (!in && !(out->missing[out->n_missing++] = strdup(m->it[i].field)))
            err = ENS_ERR_NOMEM;
    }
    ens_state_strings_free(have, n_have);
    const char *c = hget(s, watch, F_COUNT), *since = hget(s, watch, F_SINCE_MS),
               *rounds = hget(s, watch, F_ROUNDS);
    out->watched = c != NULL;
    out->count = c ? strtoll(c, NULL, 10) : -1;
    out->since_ms = since ? strtoll(since, NULL, 10) : -1;
    out->rounds = rounds ? strtoll(rounds, NULL, 10) : 0;
    return err;
}

static ens_err_t mem_evalwatch_put(void *ctx, const char *study, long long cnt, int64_t since_ms,
                                   long long rounds, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_EVALWATCH);
    if (cnt < 0 && rounds < 0 && since_ms < 0) {
        del(s, key);
        return ENS_OK;
    }
    ens_err_t err = cnt >= 0 ? hsetf(s, key, F_COUNT, "%lld", cnt) : ENS_OK;
    if (!err)
        err = hsetf(s, key, F_SINCE_MS, "%lld", (long long)since_ms);
    if (!err && rounds >= 0)
        err = hsetf(s, key, F_ROUNDS, "%lld", rounds);
    return err;
}

static ens_err_t mem_counts(void *ctx, const char *study, ens_state_sched_counts_t *out,
                            char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_TRIALS_DONE);
    out->trials_done = count(s, key, T_SET);
    KEY(key, study, K_TRIALS_FAILED);
    out->trials_failed = count(s, key, T_SET);
    KEY(key, study, K_MODELS);
    out->models = count(s, key, T_SET);
    KEY(key, study, K_INFLIGHT);
    out->inflight = count(s, key, T_HASH);
    char **have = NULL;
    int n_have = 0;
    ens_err_t err = library_of(ctx, study, &have, &n_have);
    ens_state_strings_free(have, n_have);
    out->library = n_have;
    KEY(key, study, K_ASHA);
    const char *x;
    out->configs = (x = hget(s, key, F_CONFIGS)) ? strtol(x, NULL, 10) : 0;
    out->epochs_issued = (x = hget(s, key, F_EPOCHS_ISSUED)) ? strtod(x, NULL) : 0;
    return err;
}

static ens_err_t mem_rung_get(void *ctx, const char *study, int bracket, int rung,
                              ens_state_sched_rung_t *out, char *errstr, size_t errstr_size) {
    SCHED(s);
    char asha[256], key[256], f[48];
    KEY(asha, study, K_ASHA);
    KEY(key, study, K_RUNG, bracket, rung);
    const char *x;
    snprintf(f, sizeof f, F_ENTERED, bracket, rung);
    out->entered = (x = hget(s, asha, f)) ? strtol(x, NULL, 10) : 0;
    snprintf(f, sizeof f, F_DONE, bracket, rung);
    out->done = (x = hget(s, asha, f)) ? strtol(x, NULL, 10) : 0;
    item_t **v = NULL;
    int n = 0;
    ens_err_t err = zrev(s, key, &v, &n);
    out->n = n;
    if (!err && n > 0) {
        out->best = v[0]->score;
        out->median = v[n / 2]->score;
    }
    free(v);
    return err;
}

/* ---- the trainer's side: leases, attempts, job records ------------------------------------ */

static ens_err_t mem_lease_take(void *ctx, const char *study, const char *trial,
                                const char *trainer, const char *model, int ttl_ms, char *holder,
                                size_t holder_size, char *errstr, size_t errstr_size) {
    (void)ttl_ms;
    SCHED(s);
    char key[256], val[160], h[160], mid[160];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    item_t *it = item(obj(s, key, T_STR, 0), "");
    if (it && strcmp(it->val, val) && sscanf(it->val, "%159s %159s", h, mid) == 2 &&
        !strcmp(mid, model) && strcmp(h, trainer)) {
        snprintf(holder, holder_size, "%s", it->val);
        return ENS_OK;
    }
    return item_put(obj(s, key, T_STR, 1), "", val, 0);
}

static ens_err_t mem_lease_renew(void *ctx, const char *study, const char *trial,
                                 const char *trainer, const char *model, int ttl_ms, int *lost,
                                 char *errstr, size_t errstr_size) {
    (void)ttl_ms;
    SCHED(s);
    char key[256], val[160];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    item_t *it = item(obj(s, key, T_STR, 0), "");
    if (it && strcmp(it->val, val)) {
        *lost = 1;
        return ENS_OK;
    }
    return item_put(obj(s, key, T_STR, 1), "", val, 0);
}

static ens_err_t mem_lease_drop(void *ctx, const char *study, const char *trial, char *errstr,
                                size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_LEASE, trial);
    del(s, key);
    return ENS_OK;
}

static ens_err_t mem_lease_held(void *ctx, const char *study, const char *trial, int *held,
                                char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_LEASE, trial);
    *held = obj(s, key, T_STR, 0) != NULL;
    return ENS_OK;
}

static ens_err_t mem_attempt_add(void *ctx, const char *study, const char *model, int delta,
                                 long long *attempt, char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256], v[32];
    KEY(key, study, K_ATTEMPTS, model);
    if (delta == 0) {
        del(s, key);
        return ENS_OK;
    }
    item_t *it = item(obj(s, key, T_STR, 0), "");
    long long a = (it ? strtoll(it->val, NULL, 10) : 0) + delta;
    snprintf(v, sizeof v, "%lld", a);
    *attempt = a;
    return item_put(obj(s, key, T_STR, 1), "", v, 0);
}

static ens_err_t mem_job_put(void *ctx, const char *study, const ens_trial_result_t *res,
                             char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_JOB, res->model_id);
    ens_err_t err = hset(s, key, F_TRAINED_MODEL, res->model_id);
    if (!err)
        err = hsetf(s, key, F_VAL_ACCURACY, "%.6f", res->val_accuracy);
    if (!err)
        err = hsetf(s, key, F_VAL_LOSS, "%.6f", res->val_loss);
    if (!err)
        err = hsetf(s, key, F_TRAIN_SECONDS, "%.3f", res->train_seconds);
    if (!err)
        err = hsetf(s, key, F_EPOCHS_DONE, "%.17g", res->epochs_done);
    if (!err)
        err = hsetf(s, key, F_SPS, "%.1f", res->train_samples_per_second);
    return err;
}

static ens_err_t mem_job_get(void *ctx, const char *study, const char *model,
                             ens_trial_result_t *res, int *found, char *errstr,
                             size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_JOB, model);
    const char *m = hget(s, key, F_TRAINED_MODEL);
    if (!m)
        return ENS_OK;
    *found = 1;
    snprintf(res->model_id, sizeof res->model_id, "%s", m);
    static const char *const fields[] = {F_VAL_ACCURACY, F_VAL_LOSS, F_TRAIN_SECONDS, F_EPOCHS_DONE,
                                         F_SPS};
    double *out[] = {&res->val_accuracy, &res->val_loss, &res->train_seconds, &res->epochs_done,
                     &res->train_samples_per_second};
    for (int i = 0; i < 5; i++) {
        const char *x = hget(s, key, fields[i]);
        *out[i] = x ? strtod(x, NULL) : 0;
    }
    res->status = ENS_TRIAL_OK;
    return ENS_OK;
}

static ens_err_t mem_job_progress(void *ctx, const char *study, const char *model, double epochs,
                                  char *errstr, size_t errstr_size) {
    SCHED(s);
    char key[256];
    KEY(key, study, K_JOB, model);
    return hsetf(s, key, F_PROGRESS_EPOCHS, "%.4g", epochs);
}

const struct ens_state_sched_i ens_state_sched_mem = {
    .study_create = mem_study_create,
    .study_get = mem_study_get,
    .study_status_put = mem_study_status_put,
    .study_extend = mem_study_extend,
    .study_end = mem_study_end,
    .command_first = mem_command_first,
    .studies_list = mem_studies_list,
    .studies_has = mem_studies_has,
    .studies_remove = mem_studies_remove,
    .asha_view = mem_asha_view,
    .asha_commit = mem_asha_commit,
    .asha_result = mem_asha_result,
    .inflight_list = mem_inflight_list,
    .inflight_get = mem_inflight_get,
    .inflight_count = mem_inflight_count,
    .dispatched_list = mem_dispatched_list,
    .dispatched_put = mem_dispatched_put,
    .dispatched_remove = mem_dispatched_remove,
    .outbox_list = mem_outbox_list,
    .outbox_put = mem_outbox_put,
    .outbox_remove = mem_outbox_remove,
    .trial_config = mem_trial_config,
    .speed_put = mem_speed_put,
    .speed_list = mem_speed_list,
    .results_get = mem_results_get,
    .evalwatch_put = mem_evalwatch_put,
    .counts = mem_counts,
    .rung_get = mem_rung_get,
    .lease_take = mem_lease_take,
    .lease_renew = mem_lease_renew,
    .lease_drop = mem_lease_drop,
    .lease_held = mem_lease_held,
    .attempt_add = mem_attempt_add,
    .job_put = mem_job_put,
    .job_get = mem_job_get,
    .job_progress = mem_job_progress,
};
