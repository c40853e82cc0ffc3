/* dispatch.c - pick the trial.jobs partition of the live trainer with the least work in flight. */
#include "dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id;
    int64_t beat_ms;
} trainer_t;

struct ens_dispatch_s {
    int64_t now_ms;
    int ttl_ms;
    trainer_t *trainers;
    int n_trainers, cap_trainers;
    int owner[ENS_DISPATCH_MAX_PARTITIONS];   /* index into trainers, -1: nobody fresh */
    int jobs[ENS_DISPATCH_MAX_PARTITIONS];    /* jobs in flight per partition */
    double work[ENS_DISPATCH_MAX_PARTITIONS]; /* and their epochs */
};

ens_err_t ens_dispatch_new(int64_t now_ms, int ttl_ms, ens_dispatch_t **out) {
    if (!out || ttl_ms <= 0)
        return ENS_ERR_INVALID;
    ens_dispatch_t *d = calloc(1, sizeof *d);
    if (!d)
        return ENS_ERR_NOMEM;
    d->now_ms = now_ms;
    d->ttl_ms = ttl_ms;
    for (int p = 0; p < ENS_DISPATCH_MAX_PARTITIONS; p++)
        d->owner[p] = -1;
    *out = d;
    return ENS_OK;
}

void ens_dispatch_free(ens_dispatch_t *d) {
    if (!d)
        return;
    for (int i = 0; i < d->n_trainers; i++)
        free(d->trainers[i].id);
    free(d->trainers);
    free(d);
}

ens_err_t ens_dispatch_record_parse(const char *record, int64_t *beat_ms, int32_t *parts, int max,
                                    int *n) {
    if (!record || !beat_ms || !n || max < 0 || (max > 0 && !parts))
        return ENS_ERR_INVALID;
    *n = 0;
    char *end = NULL;
    errno = 0;
    long long beat = strtoll(record, &end, 10);
    if (errno || end == record || *end != ' ' || beat < 0)
        return ENS_ERR_INVALID;
    const char *s = end + 1;
    if (!strcmp(s, "-")) {
        *beat_ms = beat;
        return ENS_OK;
    }
    for (;;) {
        if (*s < '0' || *s > '9')
            return ENS_ERR_INVALID;
        errno = 0;
        long p = strtol(s, &end, 10);
        if (errno || p > INT32_MAX || (*end != ',' && *end != '\0') || *n >= max)
            return ENS_ERR_INVALID;
        parts[(*n)++] = (int32_t)p;
        if (*end == '\0')
            break;
        s = end + 1;
    }
    *beat_ms = beat;
    return ENS_OK;
}

/* 1 when trainer a's claim on a partition beats trainer b's: the newer record, then the id. */
static int claim_wins(const trainer_t *a, const trainer_t *b) {
    if (a->beat_ms != b->beat_ms)
        return a->beat_ms > b->beat_ms;
    return strcmp(a->id, b->id) < 0;
}

ens_err_t ens_dispatch_add_trainer(ens_dispatch_t *d, const char *trainer_id, int64_t beat_ms,
                                   const int32_t *parts, int n) {
    if (!d || !trainer_id || !*trainer_id || n < 0 || (n > 0 && !parts))
        return ENS_ERR_INVALID;
    for (int i = 0; i < n; i++)
        if (parts[i] < 0 || parts[i] >= ENS_DISPATCH_MAX_PARTITIONS)
            return ENS_ERR_INVALID;
    if (d->now_ms - beat_ms > d->ttl_ms)
        return ENS_OK; /* stale: gone, or not heard of for too long */
    if (d->n_trainers == d->cap_trainers) {
        int cap = d->cap_trainers ? 2 * d->cap_trainers : 8;
        trainer_t *t = realloc(d->trainers, (size_t)cap * sizeof *t);
        if (!t)
            return ENS_ERR_NOMEM;
        d->trainers = t;
        d->cap_trainers = cap;
    }
    trainer_t *t = &d->trainers[d->n_trainers];
    if (!(t->id = strdup(trainer_id)))
        return ENS_ERR_NOMEM;
    t->beat_ms = beat_ms;
    int me = d->n_trainers++;
    for (int i = 0; i < n; i++) {
        int *o = &d->owner[parts[i]];
        if (*o < 0 || claim_wins(t, &d->trainers[*o]))
            *o = me;
    }
    return ENS_OK;
}

void ens_dispatch_add_job(ens_dispatch_t *d, int32_t partition, double work) {
    if (d && partition >= 0 && partition < ENS_DISPATCH_MAX_PARTITIONS) {
        d->jobs[partition]++;
        d->work[partition] += work > 0 ? work : 0;
    }
}

/* Work compares equal within this (sums of fractions like 1/3 in a different order). */
#define WORK_EPS 1e-9

/* -1, 0, 1 as load (work, then jobs) a is less than, equal to, greater than load b. */
static int load_cmp(double wa, int ja, double wb, int jb) {
    if (wa < wb - WORK_EPS)
        return -1;
    if (wa > wb + WORK_EPS)
        return 1;
    return (ja > jb) - (ja < jb);
}

/* Work and jobs on trainer i's partitions; -1 when it owns none. */
static int load_of(const ens_dispatch_t *d, int i, double *work, int *jobs) {
    int owns = 0;
    *work = 0;
    *jobs = 0;
    for (int p = 0; p < ENS_DISPATCH_MAX_PARTITIONS; p++)
        if (d->owner[p] == i) {
            owns = 1;
            *work += d->work[p];
            *jobs += d->jobs[p];
        }
    return owns ? 0 : -1;
}

const char *ens_dispatch_owner(const ens_dispatch_t *d, int32_t partition) {
    if (!d || partition < 0 || partition >= ENS_DISPATCH_MAX_PARTITIONS || d->owner[partition] < 0)
        return NULL;
    return d->trainers[d->owner[partition]].id;
}

int ens_dispatch_trainer_load(const ens_dispatch_t *d, const char *trainer_id, double *work,
                              int *jobs) {
    double w = 0;
    int j = 0, rc = -1;
    for (int i = 0; d && trainer_id && i < d->n_trainers; i++)
        if (!strcmp(d->trainers[i].id, trainer_id))
            rc = load_of(d, i, &w, &j);
    if (work)
        *work = w;
    if (jobs)
        *jobs = j;
    return rc;
}

int32_t ens_dispatch_pick(ens_dispatch_t *d, double work, const char **trainer_id) {
    if (trainer_id)
        *trainer_id = NULL;
    if (!d)
        return ENS_DISPATCH_BY_KEY;
    int best = -1, best_jobs = 0;
    double best_work = 0;
    for (int i = 0; i < d->n_trainers; i++) {
        double w = 0;
        int j = 0, c = 0;
        if (load_of(d, i, &w, &j) < 0)
            continue;
        if (best < 0 || (c = load_cmp(w, j, best_work, best_jobs)) < 0 ||
            (c == 0 && strcmp(d->trainers[i].id, d->trainers[best].id) < 0)) {
            best = i;
            best_work = w;
            best_jobs = j;
        }
    }
    if (best < 0)
        return ENS_DISPATCH_BY_KEY;
    int32_t part = ENS_DISPATCH_BY_KEY;
    for (int p = 0; p < ENS_DISPATCH_MAX_PARTITIONS; p++)
        if (d->owner[p] == best &&
            (part < 0 || load_cmp(d->work[p], d->jobs[p], d->work[part], d->jobs[part]) < 0))
            part = p;
    ens_dispatch_add_job(d, part, work);
    if (trainer_id)
        *trainer_id = d->trainers[best].id;
    return part;
}
