/* asha.c - ASHA / Hyperband / SHA / random decisions from a state snapshot, and an in-memory state. */
#include "ensflow/asha.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ens_err_t ens_asha_kind_parse(const char *name, ens_sched_kind_t *kind) {
    static const char *names[] = {"random", "sha", "asha", "hyperband"};
    if (!name || !*name) {
        *kind = ENS_SCHED_RANDOM;
        return ENS_OK;
    }
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            *kind = (ens_sched_kind_t)i;
            return ENS_OK;
        }
    return ENS_ERR_INVALID;
}

const char *ens_asha_kind_name(ens_sched_kind_t kind) {
    switch (kind) {
    case ENS_SCHED_SHA: return "sha";
    case ENS_SCHED_ASHA: return "asha";
    case ENS_SCHED_HYPERBAND: return "hyperband";
    default: return "random";
    }
}

ens_err_t ens_asha_params_init(ens_asha_params_t *p, char *errstr, size_t size) {
    if (!(p->r_max > 0) || !isfinite(p->r_max))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "max epochs must be > 0");
    if (!(p->eta >= 2) || p->eta > 100)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "eta must be in [2, 100]");
    if (p->max_configs < 1)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "at least one configuration");
    if (p->kind == ENS_SCHED_RANDOM) {
        p->r_min = p->r_max;
        p->m = 0;
        p->s_max = 0;
        return ENS_OK;
    }
    if (p->r_min == 0)
        p->r_min = p->r_max / (p->eta * p->eta);
    if (!(p->r_min > 0) || p->r_min > p->r_max)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "min epochs must be in (0, max epochs]");
    p->m = (int)floor(log(p->r_max / p->r_min) / log(p->eta) + 1e-9);
    if (p->m + 1 > ENS_ASHA_MAX_RUNGS)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "more than %d rungs: raise min epochs",
                           ENS_ASHA_MAX_RUNGS);
    if (p->kind != ENS_SCHED_HYPERBAND)
        p->s_max = 0;
    else if (p->s_max < 0 || p->s_max > p->m)
        p->s_max = p->m;
    if (p->s_max + 1 > ENS_ASHA_MAX_BRACKETS)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "too many brackets");
    return ENS_OK;
}

int ens_asha_n_brackets(const ens_asha_params_t *p) { return p->s_max + 1; }
int ens_asha_n_rungs(const ens_asha_params_t *p, int bracket) { return p->m - bracket + 1; }

double ens_asha_rung_epochs(const ens_asha_params_t *p, int bracket, int rung) {
    if (bracket + rung >= p->m)
        return p->r_max;
    return p->r_min * pow(p->eta, bracket + rung);
}

void ens_asha_trial_id(int32_t index, char out[ENS_ID_MAX]) {
    snprintf(out, ENS_ID_MAX, "t-%05d", (int)index);
}

int32_t ens_asha_trial_index(const char *trial_id) {
    if (!trial_id || strncmp(trial_id, "t-", 2) != 0)
        return -1;
    char *end = NULL;
    long v = strtol(trial_id + 2, &end, 10);
    return (end && *end == '\0' && v >= 0 && v < INT32_MAX) ? (int32_t)v : -1;
}

static int fits(const ens_asha_params_t *p, const ens_asha_view_t *v, double cost) {
    if (p->max_job_epochs > 0 && cost > p->max_job_epochs + 1e-9)
        return 0; /* it would still be training at the deadline */
    return !(p->max_epochs > 0) || v->epochs_issued + cost <= p->max_epochs + 1e-9;
}

/* SHA: may rung k of bracket 0 promote? Only once it and every rung below are complete. */
static int sha_complete(const ens_asha_params_t *p, const ens_asha_view_t *v, int k) {
    if (v->configs < p->max_configs)
        return 0;
    for (int j = 0; j <= k; j++) {
        const ens_asha_rung_t *r = &v->rung[0][j];
        if (r->done < r->entered)
            return 0;
        /* a lower rung still holding a promotable trial: rung j + 1 is not full yet */
        if (j < k && r->cand_rank >= 0 && r->cand_rank < (int)floor(r->n / p->eta))
            return 0;
    }
    return 1;
}

void ens_asha_decide(const ens_asha_params_t *p, const ens_asha_view_t *v,
                     ens_asha_decision_t *d) {
    memset(d, 0, sizeof *d);
    d->seq = v->decisions;
    int nb = ens_asha_n_brackets(p);
    for (int b = 0; b < nb; b++) {
        int nr = ens_asha_n_rungs(p, b);
        for (int k = nr - 2; k >= 0; k--) {
            const ens_asha_rung_t *r = &v->rung[b][k];
            if (r->cand_rank < 0 || r->cand_rank >= (int)floor(r->n / p->eta))
                continue;
            if (p->kind == ENS_SCHED_SHA && !sha_complete(p, v, k))
                continue;
            double from = ens_asha_rung_epochs(p, b, k), to = ens_asha_rung_epochs(p, b, k + 1);
            if (!fits(p, v, to - from))
                continue;
            d->action = ENS_ASHA_PROMOTE;
            d->bracket = b;
            d->rung = k + 1;
            snprintf(d->trial_id, sizeof d->trial_id, "%s", r->cand);
            d->config_index = ens_asha_trial_index(r->cand);
            d->from_epochs = from;
            d->to_epochs = to;
            return;
        }
    }
    if (v->configs >= p->max_configs)
        return;
    int b = v->configs % nb;
    double to = ens_asha_rung_epochs(p, b, 0);
    /* Near the deadline a new configuration whose first rung no longer fits trains what time
     * is left, if that is at least a third of the rung (less makes a weak model): the end of
     * a budget is spent, not left idle. */
    if (p->max_job_epochs > 0 && to > p->max_job_epochs &&
        p->max_job_epochs >= to / 3 - 1e-9)
        to = floor(p->max_job_epochs * 100) / 100;
    if (!fits(p, v, to))
        return;
    d->action = ENS_ASHA_NEW;
    d->bracket = b;
    d->rung = 0;
    d->config_index = v->configs;
    ens_asha_trial_id(v->configs, d->trial_id);
    d->from_epochs = 0;
    d->to_epochs = to;
}

/* --- in-memory state ---------------------------------------------------------------------- */

typedef struct {
    char id[ENS_ID_MAX];
    double score;
    int promoted;
} entry_t;

typedef struct {
    entry_t *e; /* sorted best first */
    int32_t n, cap, done, entered;
} mrung_t;

struct ens_asha_mem_s {
    ens_asha_params_t p;
    int64_t decisions;
    int32_t configs;
    double epochs_issued;
    mrung_t rung[ENS_ASHA_MAX_BRACKETS][ENS_ASHA_MAX_RUNGS];
};

ens_err_t ens_asha_mem_new(const ens_asha_params_t *p, ens_asha_mem_t **out) {
    ens_asha_mem_t *m = calloc(1, sizeof *m);
    if (!m)
        return ENS_ERR_NOMEM;
    m->p = *p;
    *out = m;
    return ENS_OK;
}

void ens_asha_mem_free(ens_asha_mem_t *m) {
    if (!m)
        return;
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++)
            free(m->rung[b][k].e);
    free(m);
}

ens_err_t ens_asha_mem_clone(const ens_asha_mem_t *m, ens_asha_mem_t **out) {
    ens_asha_mem_t *c = malloc(sizeof *c);
    if (!c)
        return ENS_ERR_NOMEM;
    *c = *m;
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++) {
            mrung_t *r = &c->rung[b][k];
            if (!r->cap)
                continue;
            r->e = malloc((size_t)r->cap * sizeof *r->e);
            if (!r->e) {
                r->cap = 0;
                ens_asha_mem_free(c);
                return ENS_ERR_NOMEM;
            }
            memcpy(r->e, m->rung[b][k].e, (size_t)r->n * sizeof *r->e);
        }
    *out = c;
    return ENS_OK;
}

void ens_asha_mem_view(const ens_asha_mem_t *m, ens_asha_view_t *v) {
    memset(v, 0, sizeof *v);
    v->decisions = m->decisions;
    v->configs = m->configs;
    v->epochs_issued = m->epochs_issued;
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++) {
            const mrung_t *r = &m->rung[b][k];
            ens_asha_rung_t *o = &v->rung[b][k];
            o->n = r->n;
            o->done = r->done;
            o->entered = r->entered;
            o->cand_rank = -1;
            for (int32_t i = 0; i < r->n; i++)
                if (!r->e[i].promoted) {
                    o->cand_rank = i;
                    snprintf(o->cand, sizeof o->cand, "%s", r->e[i].id);
                    break;
                }
        }
}

static int valid_rung(const ens_asha_params_t *p, int b, int k) {
    return b >= 0 && b < ens_asha_n_brackets(p) && k >= 0 && k < ens_asha_n_rungs(p, b);
}

ens_err_t ens_asha_mem_commit(ens_asha_mem_t *m, const ens_asha_decision_t *d) {
    if (d->seq != m->decisions || d->action == ENS_ASHA_NONE || !valid_rung(&m->p, d->bracket,
                                                                            d->rung))
        return ENS_ERR_INVALID;
    if (d->action == ENS_ASHA_PROMOTE) {
        mrung_t *r = &m->rung[d->bracket][d->rung - 1];
        int found = 0;
        for (int32_t i = 0; i < r->n && !found; i++)
            if (strcmp(r->e[i].id, d->trial_id) == 0 && !r->e[i].promoted)
                r->e[i].promoted = found = 1;
        if (!found)
            return ENS_ERR_INVALID;
    } else {
        m->configs++;
    }
    m->rung[d->bracket][d->rung].entered++;
    m->epochs_issued += d->to_epochs - d->from_epochs;
    m->decisions++;
    return ENS_OK;
}

/* Redis's ZREVRANGE order: higher score first, equal scores by member, larger first. */
static int before(double s1, const char *id1, double s2, const char *id2) {
    if (s1 != s2)
        return s1 > s2;
    return strcmp(id1, id2) > 0;
}

ens_err_t ens_asha_mem_result(ens_asha_mem_t *m, int bracket, int rung, const char *trial_id,
                              int ok, double score) {
    if (!valid_rung(&m->p, bracket, rung) || !trial_id)
        return ENS_ERR_INVALID;
    mrung_t *r = &m->rung[bracket][rung];
    r->done++;
    if (!ok)
        return ENS_OK;
    if (r->n == r->cap) {
        int32_t cap = r->cap ? r->cap * 2 : 16;
        entry_t *e = realloc(r->e, (size_t)cap * sizeof *e);
        if (!e)
            return ENS_ERR_NOMEM;
        r->e = e;
        r->cap = cap;
    }
    int32_t i = r->n;
    while (i > 0 && before(score, trial_id, r->e[i - 1].score, r->e[i - 1].id)) {
        r->e[i] = r->e[i - 1];
        i--;
    }
    memset(&r->e[i], 0, sizeof r->e[i]);
    snprintf(r->e[i].id, sizeof r->e[i].id, "%s", trial_id);
    r->e[i].score = score;
    /* the top rung never promotes: its trials count as promoted */
    r->e[i].promoted = rung == ens_asha_n_rungs(&m->p, bracket) - 1;
    r->n++;
    return ENS_OK;
}
