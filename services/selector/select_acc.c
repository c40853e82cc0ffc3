/* select_acc.c - summed selection-half probabilities and the unsure-row accuracy kernel. */
#include "select_acc.h"
#include "ensflow/cgroup.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ens_err_t ens_acc_init(ens_acc_t *a, const ens_library_member_t *lib,
                       const ens_selection_data_t *d) {
    memset(a, 0, sizeof *a);
    a->lib = lib;
    a->d = d;
    a->sum = calloc((size_t)d->n_sel * (size_t)d->k + 1, sizeof *a->sum);
    a->unsure = malloc(((size_t)d->n_sel + 1) * sizeof *a->unsure);
    a->ll_rest = calloc((size_t)d->n_sel + 1, sizeof *a->ll_rest);
    if (!a->sum || !a->unsure || !a->ll_rest) {
        ens_acc_free(a);
        return ENS_ERR_NOMEM;
    }
    return ENS_OK;
}

void ens_acc_free(ens_acc_t *a) {
    free(a->sum);
    free(a->unsure);
    free(a->ll_rest);
    a->ll_rest = NULL;
    a->sum = NULL;
    a->unsure = NULL;
}

void ens_acc_reset(ens_acc_t *a) {
    memset(a->sum, 0, (size_t)a->d->n_sel * (size_t)a->d->k * sizeof *a->sum);
    a->total = 0;
}

void ens_acc_add(ens_acc_t *a, int m, int count) {
    const int32_t k = a->d->k;
    const float *p = a->lib[m].probs;
    const float w = (float)count;
    for (int32_t j = 0; j < a->d->n_sel; j++) {
        float *s = a->sum + (size_t)j * (size_t)k;
        const float *q = p + (size_t)a->d->sel_idx[j] * (size_t)k;
        for (int32_t c = 0; c < k; c++)
            s[c] += w * q[c];
    }
    a->total += count;
}

int32_t ens_acc_prepare(ens_acc_t *a) {
    const int32_t k = a->d->k;
    int32_t hits = 0;
    a->n_unsure = 0;
    a->sure_hits = 0;
    for (int32_t j = 0; j < a->d->n_sel; j++) {
        const float *s = a->sum + (size_t)j * (size_t)k;
        int32_t best = 0;
        for (int32_t c = 1; c < k; c++)
            if (s[c] > s[best])
                best = c;
        float second = -1.0f;
        for (int32_t c = 0; c < k; c++)
            if (c != best && s[c] > second)
                second = s[c];
        int hit = best == a->d->labels[a->d->sel_idx[j]];
        hits += hit;
        /* 1.001: a margin for float rounding of the sums */
        if (k > 1 && s[best] - second <= 1.001f)
            a->unsure[a->n_unsure++] = j;
        else
            a->sure_hits += hit;
    }
    return hits;
}

/* Is the row a hit when v = s + q? argmax takes the first largest class, so the label wins iff
 * no class before it is >= and no class after it is >. Branch-free over the k classes, so the
 * compiler vectorises it (k = 10 in practice). */
static inline int row_hit(const float *s, const float *q, int32_t k, int32_t y) {
    const float vy = s[y] + q[y];
    int lose = 0;
    for (int32_t c = 0; c < k; c++) {
        float v = s[c] + q[c];
        lose |= (v > vy) | ((c < y) & (v == vy));
    }
    return !lose;
}

int32_t ens_acc_try_need(const ens_acc_t *a, int m, int32_t need) {
    const int32_t k = a->d->k, n = a->n_unsure;
    const float *p = a->lib[m].probs;
    const int32_t *sel = a->d->sel_idx, *labels = a->d->labels;
    int32_t hits = a->sure_hits;
    if (need > 0 && hits + n < need)
        return -1;
    /* check the bound every 64 rows: the candidate is abandoned once even every remaining
     * unsure row being a hit cannot reach need (most candidates are, in mogreedy and Caruana) */
    for (int32_t u0 = 0; u0 < n; u0 += 64) {
        int32_t u1 = u0 + 64 < n ? u0 + 64 : n;
        for (int32_t u = u0; u < u1; u++) {
            int32_t j = a->unsure[u], i = sel[j];
            hits += row_hit(a->sum + (size_t)j * (size_t)k, p + (size_t)i * (size_t)k, k,
                            labels[i]);
        }
        if (need > 0 && hits + (n - u1) < need)
            return -1;
    }
    return hits;
}

static inline double row_ll(double p) {
    return -log(p > ENS_ACC_LL_EPS ? p : ENS_ACC_LL_EPS);
}

/* The log-loss terms of rows j0..j1 (at most LL_BLOCK): one log of the product of the clamped
 * probabilities (>= 1e-7 each, so 8 of them stay far above double's range). */
#define LL_BLOCK 8
static inline double block_ll(const ens_acc_t *a, const float *p, double inv, int32_t j0,
                              int32_t j1) {
    const int32_t k = a->d->k;
    const int32_t *sel = a->d->sel_idx, *labels = a->d->labels;
    double prod = 1.0;
    for (int32_t j = j0; j < j1; j++) {
        int32_t i = sel[j], y = labels[i];
        double v = (double)a->sum[(size_t)j * (size_t)k + (size_t)y];
        if (p)
            v += (double)p[(size_t)i * (size_t)k + (size_t)y];
        v *= inv;
        prod *= v > ENS_ACC_LL_EPS ? v : ENS_ACC_LL_EPS;
    }
    return -log(prod);
}

double ens_acc_ll(const ens_acc_t *a) {
    const int32_t n = a->d->n_sel;
    const double inv = a->total > 0 ? 1.0 / a->total : 1.0;
    double loss = 0;
    for (int32_t j = 0; j < n; j += LL_BLOCK)
        loss += block_ll(a, NULL, inv, j, j + LL_BLOCK < n ? j + LL_BLOCK : n);
    return loss;
}

void ens_acc_ll_prepare(ens_acc_t *a) {
    const int32_t k = a->d->k, n = a->d->n_sel;
    const int32_t *sel = a->d->sel_idx, *labels = a->d->labels;
    const double inv = 1.0 / (a->total + 1);
    a->ll_rest[n] = 0;
    for (int32_t j = n - 1; j >= 0; j--) /* the label's probability is at most (s + 1) / T */
        a->ll_rest[j] = a->ll_rest[j + 1] +
                        row_ll(((double)a->sum[(size_t)j * (size_t)k + (size_t)labels[sel[j]]] +
                                1.0) * inv);
}

double ens_acc_ll_try_bound(const ens_acc_t *a, int m, double bound) {
    const int32_t n = a->d->n_sel;
    const float *p = a->lib[m].probs;
    const double inv = 1.0 / (a->total + 1);
    double loss = 0;
    for (int32_t u0 = 0; u0 < n; u0 += 16) {
        int32_t u1 = u0 + 16 < n ? u0 + 16 : n;
        for (int32_t j = u0; j < u1; j += LL_BLOCK)
            loss += block_ll(a, p, inv, j, j + LL_BLOCK < u1 ? j + LL_BLOCK : u1);
        /* a margin of 1e-9 relative for the rounding of the two sums' different orders */
        if (bound < INFINITY && loss + a->ll_rest[u1] >= bound + 1e-9 * (1.0 + bound))
            return INFINITY;
    }
    return loss;
}

int32_t ens_acc_try(const ens_acc_t *a, int m) {
    return ens_acc_try_need(a, m, 0);
}

int ens_acc_threads(void) {
    const char *e = getenv("ENSFLOW_SELECT_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : ens_cgroup_cpus(NULL);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

typedef struct {
    const ens_acc_t *a;
    const int *models;
    const int32_t *need;
    int32_t *out;
    const double *bound; /* log-loss mode when out_ll is set */
    double *out_ll;
    int n;
    atomic_int next; /* the next block of candidates to take */
} try_job_t;

#define TRY_BLOCK 8

/* Workers take blocks of candidates as they go: on a shared machine a thread that is not
 * scheduled for a while does not hold up the others with a fixed share. */
static void *try_worker(void *arg) {
    try_job_t *j = arg;
    for (;;) {
        int lo = atomic_fetch_add(&j->next, TRY_BLOCK);
        if (lo >= j->n)
            break;
        int hi = lo + TRY_BLOCK < j->n ? lo + TRY_BLOCK : j->n;
        for (int i = lo; i < hi; i++) {
            if (j->out_ll)
                j->out_ll[i] = ens_acc_ll_try_bound(j->a, j->models[i],
                                                    j->bound ? j->bound[i] : INFINITY);
            else
                j->out[i] = ens_acc_try_need(j->a, j->models[i], j->need ? j->need[i] : 0);
        }
    }
    return NULL;
}

static void run_job(try_job_t *job, double work) {
    int nt = ens_acc_threads(), n = job->n;
    /* threads only pay off for a large enough batch: ~1M class sums (~a millisecond) */
    if (work < 1e6)
        nt = 1;
    if (nt > (n + TRY_BLOCK - 1) / TRY_BLOCK)
        nt = (n + TRY_BLOCK - 1) / TRY_BLOCK;
    pthread_t th[16];
    int started[16] = {0};
    for (int t = 1; t < nt; t++)
        started[t] = !pthread_create(&th[t], NULL, try_worker, job);
    try_worker(job); /* this thread works too, and finishes whatever is left */
    for (int t = 1; t < nt; t++)
        if (started[t])
            pthread_join(th[t], NULL);
}

void ens_acc_try_many(const ens_acc_t *a, const int *models, int n, const int32_t *need,
                      int32_t *out) {
    try_job_t job = {a, models, need, out, NULL, NULL, n, 0};
    run_job(&job, (double)n * (double)a->n_unsure * (double)a->d->k);
}

void ens_acc_ll_try_many(const ens_acc_t *a, const int *models, int n, const double *bound,
                         double *out) {
    try_job_t job = {a, models, NULL, NULL, bound, out, n, 0};
    /* one log per row: weigh a row like ~10 class sums */
    run_job(&job, (double)n * (double)a->d->n_sel * 10.0);
}

ens_err_t ens_acc_caruana_path(ens_acc_t *a, int n_lib, const int *order, int rounds, int *count,
                               int *picks, int32_t *hits) {
    int32_t *h = malloc(((size_t)n_lib + 1) * sizeof *h);
    int32_t *need = malloc(((size_t)n_lib + 1) * sizeof *need);
    if (!h || !need) {
        free(h);
        free(need);
        return ENS_ERR_NOMEM;
    }
    ens_acc_prepare(a);
    for (int r = 0; r < rounds; r++) {
        /* prune against the models already in: they add no cost, so they win ties, and a new
         * model must beat the best of them outright (the same pick as scoring everyone) */
        int32_t floor_h = -1;
        for (int s = 0; s < n_lib; s++)
            if (count[order[s]]) {
                int32_t x = ens_acc_try(a, order[s]);
                if (x > floor_h)
                    floor_h = x;
            }
        for (int s = 0; s < n_lib; s++)
            need[s] = count[order[s]] ? floor_h : floor_h + 1;
        ens_acc_try_many(a, order, n_lib, need, h);
        int pick = -1;
        int32_t pick_hits = -1;
        double pick_cost = 0;
        for (int s = 0; s < n_lib; s++) { /* in id order: the first of equals wins */
            int m = order[s];
            if (h[s] < 0)
                continue;
            double added = count[m] ? 0 : a->lib[m].ms_per_sample;
            if (h[s] > pick_hits || (h[s] == pick_hits && added < pick_cost)) {
                pick = m;
                pick_hits = h[s];
                pick_cost = added;
            }
        }
        count[pick]++;
        picks[r] = pick;
        ens_acc_add(a, pick, 1);
        hits[r] = ens_acc_prepare(a);
    }
    free(h);
    free(need);
    return ENS_OK;
}

typedef struct {
    const char *id;
    int index;
} keyed_t;

static int by_id(const void *x, const void *y) {
    const keyed_t *a = x, *b = y;
    int c = strcmp(a->id, b->id);
    return c ? c : (a->index > b->index) - (a->index < b->index);
}

int *ens_acc_order_by_id(const ens_library_member_t *lib, int n_lib) {
    int *order = malloc(((size_t)n_lib + 1) * sizeof *order);
    keyed_t *keys = malloc(((size_t)n_lib + 1) * sizeof *keys);
    if (!order || !keys) {
        free(order);
        free(keys);
        return NULL;
    }
    for (int i = 0; i < n_lib; i++)
        keys[i] = (keyed_t){lib[i].model_id, i};
    qsort(keys, (size_t)n_lib, sizeof *keys, by_id);
    for (int i = 0; i < n_lib; i++)
        order[i] = keys[i].index;
    free(keys);
    return order;
}
