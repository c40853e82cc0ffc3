/* state_mem_kv.c - the store the in-memory scheduler records live in (state_mem_kv.h). */
#include "state_mem_kv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_internal.h"

static void obj_clear(ens_memkv_obj_t *o) {
    for (int i = 0; i < o->n; i++) {
        free(o->it[i].field);
        free(o->it[i].val);
    }
    free(o->it);
    free(o->key);
}

void ens_state_mem_sched_free(void *sched) {
    ens_memkv_t *s = sched;
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        obj_clear(&s->o[i]);
    free(s->o);
    free(s);
}

/* The scheduler records of a memory state, made on first use (NULL: out of memory). */
ens_memkv_t *ens_memkv_of(void *ctx) {
    void **slot = ens_state_mem_sched_slot(ctx);
    if (!*slot)
        *slot = calloc(1, sizeof(ens_memkv_t));
    return *slot;
}

/* The object at key; made (empty, of type) when create and absent. NULL when absent, of
 * another type, or out of memory. */
ens_memkv_obj_t *ens_memkv_obj(ens_memkv_t *s, const char *key, ens_memkv_type_t type, int create) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->o[i].key, key))
            return s->o[i].type == type ? &s->o[i] : NULL;
    if (!create)
        return NULL;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        ens_memkv_obj_t *o = realloc(s->o, (size_t)cap * sizeof *o);
        if (!o)
            return NULL;
        s->o = o;
        s->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return NULL;
    s->o[s->n] = (ens_memkv_obj_t){.key = k, .type = type};
    return &s->o[s->n++];
}

void ens_memkv_del(ens_memkv_t *s, const char *key) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->o[i].key, key)) {
            obj_clear(&s->o[i]);
            s->o[i] = s->o[--s->n];
            return;
        }
}

/* An empty object is no object, as in Redis. */
static void drop_if_empty(ens_memkv_t *s, ens_memkv_obj_t *o) {
    if (o && o->n == 0)
        ens_memkv_del(s, o->key);
}

ens_memkv_item_t *ens_memkv_item(ens_memkv_obj_t *o, const char *field) {
    for (int i = 0; o && i < o->n; i++)
        if (!strcmp(o->it[i].field, field))
            return &o->it[i];
    return NULL;
}

/* Set field to val (NULL: no value) and score in o; ENS_ERR_NOMEM. */
ens_err_t ens_memkv_put(ens_memkv_obj_t *o, const char *field, const char *val, double score) {
    if (!o)
        return ENS_ERR_NOMEM;
    char *v = val ? strdup(val) : NULL;
    if (val && !v)
        return ENS_ERR_NOMEM;
    ens_memkv_item_t *it = ens_memkv_item(o, field);
    if (it) {
        free(it->val);
        it->val = v;
        it->score = score;
        return ENS_OK;
    }
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 8;
        ens_memkv_item_t *p = realloc(o->it, (size_t)cap * sizeof *p);
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
    o->it[o->n++] = (ens_memkv_item_t){f, v, score};
    return ENS_OK;
}

/* Remove field from the object at key; 1 when it was there. */
int ens_memkv_remove(ens_memkv_t *s, const char *key, ens_memkv_type_t type, const char *field) {
    ens_memkv_obj_t *o = ens_memkv_obj(s, key, type, 0);
    ens_memkv_item_t *it = ens_memkv_item(o, field);
    if (!it)
        return 0;
    free(it->field);
    free(it->val);
    *it = o->it[--o->n];
    drop_if_empty(s, o);
    return 1;
}

const char *ens_memkv_hget(ens_memkv_t *s, const char *key, const char *field) {
    ens_memkv_item_t *it = ens_memkv_item(ens_memkv_obj(s, key, ENS_MEMKV_HASH, 0), field);
    return it ? it->val : NULL;
}

ens_err_t ens_memkv_hset(ens_memkv_t *s, const char *key, const char *field, const char *val) {
    return ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_HASH, 1), field, val, 0);
}

ens_err_t ens_memkv_hsetf(ens_memkv_t *s, const char *key, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
ens_err_t ens_memkv_hsetf(ens_memkv_t *s, const char *key, const char *field, const char *fmt,
                          ...) {
    char val[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(val, sizeof val, fmt, ap);
    va_end(ap);
    return ens_memkv_hset(s, key, field, val);
}

/* HINCRBYFLOAT (as_int 0) or HINCRBY (1); the value after it in *after (may be NULL). */
ens_err_t ens_memkv_hincr(ens_memkv_t *s, const char *key, const char *field, double by, int as_int,
                          double *after) {
    const char *old = ens_memkv_hget(s, key, field);
    double v = (old ? strtod(old, NULL) : 0) + by;
    if (after)
        *after = v;
    return as_int ? ens_memkv_hsetf(s, key, field, "%lld", (long long)llround(v))
                  : ens_memkv_hsetf(s, key, field, "%.17g", v);
}

ens_err_t ens_memkv_zadd(ens_memkv_t *s, const char *key, const char *member, double score) {
    return ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_ZSET, 1), member, NULL, score);
}

ens_err_t ens_memkv_sadd(ens_memkv_t *s, const char *key, const char *member) {
    return ens_memkv_put(ens_memkv_obj(s, key, ENS_MEMKV_SET, 1), member, NULL, 0);
}

int ens_memkv_count(ens_memkv_t *s, const char *key, ens_memkv_type_t type) {
    ens_memkv_obj_t *o = ens_memkv_obj(s, key, type, 0);
    return o ? o->n : 0;
}

/* Sorted set order, highest first: score, then member, both descending (ZREVRANGE). */
static int zrev_cmp(const void *a, const void *b) {
    const ens_memkv_item_t *x = *(ens_memkv_item_t *const *)a, *y = *(ens_memkv_item_t *const *)b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return -strcmp(x->field, y->field);
}

/* The members of a sorted set, highest first (*out malloc'd pointers into it, NULL when
 * empty). */
ens_err_t ens_memkv_zrev(ens_memkv_t *s, const char *key, ens_memkv_item_t ***out, int *n) {
    ens_memkv_obj_t *o = ens_memkv_obj(s, key, ENS_MEMKV_ZSET, 0);
    *out = NULL;
    *n = 0;
    if (!o || !o->n)
        return ENS_OK;
    ens_memkv_item_t **v = malloc((size_t)o->n * sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    for (int i = 0; i < o->n; i++)
        v[i] = &o->it[i];
    qsort(v, (size_t)o->n, sizeof *v, zrev_cmp);
    *out = v;
    *n = o->n;
    return ENS_OK;
}
