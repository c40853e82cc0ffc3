/* state_mem_base.c - the in-memory state's table of entries, each named by a kind and up to
 * two ids: what state_mem.c and its parts (state_studies_mem.c, state_mem_jobs.c) keep their
 * records in. Below them all; it calls none of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_internal.h"

typedef ens_state_mem_ctx_t mem_state_t;

/* One entry: a name made of a kind and up to two ids, and a copy of its value. */
typedef struct ens_state_mem_entry {
    char *name;
    void *val;
    size_t len;
} entry_t;

#define SEP "\x1f" /* no id holds a unit separator */

static void name_of(char *buf, size_t size, const char *kind, const char *a, const char *b) {
    snprintf(buf, size, "%s" SEP "%s" SEP "%s", kind, a ? a : "", b ? b : "");
}

static entry_t *find(mem_state_t *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->e[i].name, name))
            return &m->e[i];
    return NULL;
}

/* Set name to a copy of len bytes (replacing any value). */
static ens_err_t put(mem_state_t *m, const char *name, const void *val, size_t len) {
    void *copy = malloc(len + 1);
    if (!copy)
        return ENS_ERR_NOMEM;
    if (len)
        memcpy(copy, val, len);
    entry_t *e = find(m, name);
    if (e) {
        free(e->val);
        e->val = copy;
        e->len = len;
        return ENS_OK;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 32;
        void *p = realloc(m->e, (size_t)cap * sizeof *m->e);
        if (!p) {
            free(copy);
            return ENS_ERR_NOMEM;
        }
        m->e = p;
        m->cap = cap;
    }
    char *n = strdup(name);
    if (!n) {
        free(copy);
        return ENS_ERR_NOMEM;
    }
    m->e[m->n++] = (entry_t){n, copy, len};
    return ENS_OK;
}

static void del(mem_state_t *m, const char *name) {
    entry_t *e = find(m, name);
    if (!e)
        return;
    free(e->name);
    free(e->val);
    *e = m->e[--m->n];
}

/* A malloc'd copy of name's value, or ENS_ERR_NOTFOUND. */
static ens_err_t get(mem_state_t *m, const char *name, void **val, size_t *len) {
    const entry_t *e = find(m, name);
    if (!e)
        return ENS_ERR_NOTFOUND;
    if (!(*val = malloc(e->len + 1)))
        return ENS_ERR_NOMEM;
    memcpy(*val, e->val, e->len);
    *len = e->len;
    return ENS_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The last parts of the names under kind (and a, when given), sorted. */
static ens_err_t members(mem_state_t *m, const char *kind, const char *a, char ***out, int *n) {
    char prefix[3 * ENS_ID_MAX];
    name_of(prefix, sizeof prefix, kind, a, NULL);
    size_t plen = strlen(prefix);
    if (!a) /* the id is the first part: "kind SEP id SEP" */
        plen = strlen(kind) + 1;
    char **v = calloc((size_t)m->n + 1, sizeof *v);
    if (!v)
        return ENS_ERR_NOMEM;
    int k = 0;
    for (int i = 0; i < m->n; i++) {
        const char *name = m->e[i].name;
        if (strncmp(name, prefix, plen))
            continue;
        const char *id = name + plen;
        size_t idlen = a ? strlen(id) : strcspn(id, SEP);
        if (!(v[k] = strndup(id, idlen))) {
            ens_state_strings_free(v, k);
            return ENS_ERR_NOMEM;
        }
        k++;
    }
    qsort(v, (size_t)k, sizeof *v, cmp_str);
    *out = v;
    *n = k;
    return ENS_OK;
}

void ens_state_mem_clear(void *ctx) {
    mem_state_t *m = ctx;
    for (int i = 0; i < m->n; i++) {
        free(m->e[i].name);
        free(m->e[i].val);
    }
    free(m->e);
    m->e = NULL;
    m->n = m->cap = 0;
}

#define MEM_NAME_MAX 1024 /* a name: kind, a group or study, a field or file name */

ens_err_t ens_state_mem_put(void *ctx, const char *kind, const char *a, const char *b,
                            const void *val, size_t len) {
    char name[MEM_NAME_MAX];
    name_of(name, sizeof name, kind, a, b);
    return put(ctx, name, val, len);
}

const void *ens_state_mem_find(void *ctx, const char *kind, const char *a, const char *b,
                               size_t *len) {
    char name[MEM_NAME_MAX];
    name_of(name, sizeof name, kind, a, b);
    const entry_t *e = find(ctx, name);
    if (e && len)
        *len = e->len;
    return e ? e->val : NULL;
}

void ens_state_mem_del(void *ctx, const char *kind, const char *a, const char *b) {
    char name[MEM_NAME_MAX];
    name_of(name, sizeof name, kind, a, b);
    del(ctx, name);
}

ens_err_t ens_state_mem_get(void *ctx, const char *kind, const char *a, const char *b,
                            void **val, size_t *len) {
    char name[MEM_NAME_MAX];
    name_of(name, sizeof name, kind, a, b);
    return get(ctx, name, val, len);
}

ens_err_t ens_state_mem_ids(void *ctx, const char *kind, const char *a, char ***ids, int *n) {
    if (strlen(kind) + (a ? strlen(a) : 0) + 3 > 3 * ENS_ID_MAX)
        return ENS_ERR_INVALID; /* members' prefix would not hold it */
    return members(ctx, kind, a, ids, n);
}
