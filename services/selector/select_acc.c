/* select_acc.c - summed selection-half probabilities and the unsure-row accuracy kernel. */
#include "select_acc.h"

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
    if (!a->sum || !a->unsure) {
        ens_acc_free(a);
        return ENS_ERR_NOMEM;
    }
    return ENS_OK;
}

void ens_acc_free(ens_acc_t *a) {
    free(a->sum);
    free(a->unsure);
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

int32_t ens_acc_try(const ens_acc_t *a, int m) {
    return ens_acc_try_need(a, m, 0);
}

int ens_acc_threads(void) {
    const char *e = getenv("ENSFLOW_SELECT_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

typedef struct {
    const ens_acc_t *a;
    const int *models;
    const int32_t *need;
    int32_t *out;
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
        for (int i = lo; i < hi; i++)
            j->out[i] = ens_acc_try_need(j->a, j->models[i], j->need ? j->need[i] : 0);
    }
    return NULL;
}

void ens_acc_try_many(const ens_acc_t *a, const int *models, int n, const int32_t *need,
                      int32_t *out) {
    int nt = ens_acc_threads();
    /* threads only pay off for a large enough batch: ~1M class sums (~a millisecond) */
    if ((double)n * (double)a->n_unsure * (double)a->d->k < 1e6)
        nt = 1;
    if (nt > (n + TRY_BLOCK - 1) / TRY_BLOCK)
        nt = (n + TRY_BLOCK - 1) / TRY_BLOCK;
    try_job_t job = {a, models, need, out, n, 0};
    pthread_t th[16];
    int started[16] = {0};
    for (int t = 1; t < nt; t++)
        started[t] = !pthread_create(&th[t], NULL, try_worker, &job);
    try_worker(&job); /* this thread works too, and finishes whatever is left */
    for (int t = 1; t < nt; t++)
        if (started[t])
            pthread_join(th[t], NULL);
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
