/* mogreedy.c - multi-objective greedy ensemble selection: the Pareto front of accuracy and cost. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "select.h"
#include "select_acc.h"

/* One member of a candidate ensemble: position s in the id order, and its multiplicity. */
typedef struct {
    int s, count;
} part_t;

typedef struct {
    int off, n;    /* parts[off .. off+n), ascending s */
    int total;     /* members counted with repetition */
    double cost;   /* distinct members' ms per sample, summed in s order */
    double score;  /* the criterion on the selection half, higher is better: hits, or minus
                    * the summed log-loss */
    int expanded;
} node_t;

typedef struct {
    const ens_library_member_t *lib;
    const int *order;
    node_t *nodes;
    int n_nodes, cap_nodes;
    part_t *parts;
    int n_parts, cap_parts;
    int *front; /* node indices, cost ascending, hits strictly ascending */
    int n_front, cap_front;
    int ll;         /* criterion: selection-half log-loss (else accuracy) */
    double *bound;  /* scratch, n_lib: log-loss bounds and results */
    double *loss;
} mo_t;

static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap)
        return 0;
    int cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *q = realloc(*p, (size_t)cap2 * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = cap2;
    return 0;
}

/* Would an ensemble of this cost and score be dominated by (or equal to) the front? */
static int dominated(const mo_t *mo, double cost, double score) {
    int lo = 0, hi = mo->n_front; /* first front member costlier than cost */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (mo->nodes[mo->front[mid]].cost <= cost)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && mo->nodes[mo->front[lo - 1]].score >= score;
}

/* Put node x on the front, dropping every member it dominates. */
static ens_err_t front_insert(mo_t *mo, int x) {
    const node_t *n = &mo->nodes[x];
    if (grow((void **)&mo->front, &mo->cap_front, mo->n_front + 1, sizeof *mo->front))
        return ENS_ERR_NOMEM;
    int w = 0, at = -1;
    for (int i = 0; i < mo->n_front; i++) {
        const node_t *f = &mo->nodes[mo->front[i]];
        if (f->cost >= n->cost && f->score <= n->score)
            continue;
        if (at < 0 && f->cost > n->cost)
            at = w;
        mo->front[w++] = mo->front[i];
    }
    if (at < 0)
        at = w;
    memmove(mo->front + at + 1, mo->front + at, (size_t)(w - at) * sizeof *mo->front);
    mo->front[at] = x;
    mo->n_front = w + 1;
    return ENS_OK;
}

/* A new node: parent's parts (or none) with one more copy of the model at position s. */
static ens_err_t node_new(mo_t *mo, int parent, int s, double score) {
    int pn = parent >= 0 ? mo->nodes[parent].n : 0;
    if (grow((void **)&mo->nodes, &mo->cap_nodes, mo->n_nodes + 1, sizeof *mo->nodes) ||
        grow((void **)&mo->parts, &mo->cap_parts, mo->n_parts + pn + 1, sizeof *mo->parts))
        return ENS_ERR_NOMEM;
    node_t *n = &mo->nodes[mo->n_nodes];
    *n = (node_t){.off = mo->n_parts, .score = score};
    const part_t *pp = parent >= 0 ? mo->parts + mo->nodes[parent].off : NULL;
    part_t *dst = mo->parts + n->off;
    int placed = 0;
    for (int i = 0; i < pn; i++) {
        if (!placed && s < pp[i].s) {
            dst[n->n++] = (part_t){s, 1};
            placed = 1;
        }
        dst[n->n] = pp[i];
        if (pp[i].s == s) {
            dst[n->n].count++;
            placed = 1;
        }
        n->n++;
    }
    if (!placed)
        dst[n->n++] = (part_t){s, 1};
    for (int i = 0; i < n->n; i++) {
        n->total += dst[i].count;
        n->cost += mo->lib[mo->order[dst[i].s]].ms_per_sample;
    }
    mo->n_parts += n->n;
    mo->n_nodes++;
    return ENS_OK;
}

/* The front's score at cost (the best member no costlier), or -INFINITY. */
static double front_score_at(const mo_t *mo, double cost) {
    int lo = 0, hi = mo->n_front;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (mo->nodes[mo->front[mid]].cost <= cost)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? mo->nodes[mo->front[lo - 1]].score : -INFINITY;
}

/* A node with the given parts (ascending s, counts >= 1). */
static ens_err_t node_from_parts(mo_t *mo, const part_t *p, int n, double score) {
    if (grow((void **)&mo->nodes, &mo->cap_nodes, mo->n_nodes + 1, sizeof *mo->nodes) ||
        grow((void **)&mo->parts, &mo->cap_parts, mo->n_parts + n + 1, sizeof *mo->parts))
        return ENS_ERR_NOMEM;
    node_t *x = &mo->nodes[mo->n_nodes];
    *x = (node_t){.off = mo->n_parts, .n = n, .score = score};
    memcpy(mo->parts + x->off, p, (size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) {
        x->total += p[i].count;
        x->cost += mo->lib[mo->order[p[i].s]].ms_per_sample;
    }
    mo->n_parts += n;
    mo->n_nodes++;
    return ENS_OK;
}

/* Offer the ensemble with multiplicities count_s[s] (by id position) to the front. */
static ens_err_t offer(mo_t *mo, const int *count_s, int n_lib, double score, part_t *tmp) {
    int n = 0;
    double cost = 0;
    for (int s = 0; s < n_lib; s++)
        if (count_s[s]) {
            tmp[n++] = (part_t){s, count_s[s]};
            cost += mo->lib[mo->order[s]].ms_per_sample;
        }
    if (!n || dominated(mo, cost, score))
        return ENS_OK;
    ens_err_t err = node_from_parts(mo, tmp, n, score);
    return err ? err : front_insert(mo, mo->n_nodes - 1);
}

/* Grow node x by each model; children not dominated by the front join it. */
static ens_err_t expand(mo_t *mo, ens_acc_t *a, int x, int n_lib, char *in, int32_t *need,
                        int32_t *h) {
    ens_acc_reset(a);
    memset(in, 0, (size_t)n_lib);
    for (int i = 0; i < mo->nodes[x].n; i++) {
        const part_t *p = &mo->parts[mo->nodes[x].off + i];
        ens_acc_add(a, mo->order[p->s], p->count);
        in[p->s] = 1;
    }
    ens_acc_prepare(a);
    if (mo->ll)
        ens_acc_ll_prepare(a);
    /* a child must beat the front at its cost: score it only that far (the front only gets
     * stronger while the children are inserted below, so this bound stays valid) */
    for (int s = 0; s < n_lib; s++) {
        double f = front_score_at(mo, mo->nodes[x].cost +
                                          (in[s] ? 0 : mo->lib[mo->order[s]].ms_per_sample));
        if (mo->ll)
            mo->bound[s] = f == -INFINITY ? INFINITY : -f; /* the loss to get below */
        else
            need[s] = f == -INFINITY ? 0 : (int32_t)f + 1;
    }
    if (mo->ll)
        ens_acc_ll_try_many(a, mo->order, n_lib, mo->bound, mo->loss);
    else
        ens_acc_try_many(a, mo->order, n_lib, need, h);
    ens_err_t err = ENS_OK;
    for (int s = 0; !err && s < n_lib; s++) {
        if (mo->ll ? mo->loss[s] == INFINITY : h[s] < 0)
            continue;
        double score = mo->ll ? -mo->loss[s] : h[s];
        double cost = mo->nodes[x].cost + (in[s] ? 0 : mo->lib[mo->order[s]].ms_per_sample);
        if (dominated(mo, cost, score))
            continue;
        if (!(err = node_new(mo, x, s, score)) &&
            !dominated(mo, mo->nodes[mo->n_nodes - 1].cost, score))
            err = front_insert(mo, mo->n_nodes - 1);
    }
    return err;
}

typedef struct {
    int s;
    int32_t hits;
    double cost;
    const char *id;
} single_t;

static int by_single(const void *x, const void *y) {
    const single_t *a = x, *b = y;
    if (a->hits != b->hits)
        return a->hits > b->hits ? -1 : 1;
    if (a->cost != b->cost)
        return a->cost < b->cost ? -1 : 1;
    int c = strcmp(a->id, b->id);
    return c ? c : (a->s > b->s) - (a->s < b->s);
}

/*
 * Seed the front with the baselines' ensembles: top-K for K = 1..max_members (the models by
 * selection accuracy, as topk ranks them) and every prefix of a Caruana path (rounds rounds,
 * up to max_members members). Greedy growth from single models alone stops where no one-model
 * step raises selection accuracy, and on a small selection half (3,000 rows in the benchmark)
 * it tends to stop at a few members that fit that half's noise; the baselines' larger, more
 * evenly weighted ensembles generalise better. With them in the candidate set, the front is
 * never worse on the selection half than any of them at their cost, and the Pareto filter
 * still decides: a seed that a cheaper ensemble matches is dropped.
 */
static ens_err_t seed(mo_t *mo, ens_acc_t *a, int n_lib, const single_t *ranked, int max_members,
                      int rounds) {
    int *count_s = calloc((size_t)n_lib + 1, sizeof *count_s);
    int *count = calloc((size_t)n_lib + 1, sizeof *count);
    int *pos = malloc(((size_t)n_lib + 1) * sizeof *pos); /* library index -> id position */
    part_t *tmp = malloc(((size_t)n_lib + 1) * sizeof *tmp);
    int *picks = malloc(((size_t)rounds + 1) * sizeof *picks);
    int32_t *hits = malloc(((size_t)rounds + 1) * sizeof *hits);
    ens_err_t err = count_s && count && pos && tmp && picks && hits ? ENS_OK : ENS_ERR_NOMEM;
    for (int s = 0; !err && s < n_lib; s++)
        pos[mo->order[s]] = s;
    /* top-K, K = 2.. (K = 1 is a single model, already offered) */
    ens_acc_reset(a);
    for (int K = 1; !err && K <= n_lib && K <= max_members; K++) {
        ens_acc_add(a, mo->order[ranked[K - 1].s], 1);
        count_s[ranked[K - 1].s] = 1;
        int32_t h = ens_acc_prepare(a);
        if (K > 1)
            err = offer(mo, count_s, n_lib, mo->ll ? -ens_acc_ll(a) : h, tmp);
    }
    /* the Caruana path, every prefix with at most max_members members */
    if (!err && rounds > 0) {
        ens_acc_reset(a);
        err = ens_acc_caruana_path(a, n_lib, mo->order, rounds, count, picks, hits);
    }
    memset(count_s, 0, ((size_t)n_lib + 1) * sizeof *count_s);
    if (mo->ll)
        ens_acc_reset(a);
    for (int r = 0; !err && rounds > 0 && r < rounds && r < max_members; r++) {
        count_s[pos[picks[r]]]++;
        double score = hits[r];
        if (mo->ll) { /* the path is chosen by accuracy; scored here by log-loss */
            ens_acc_add(a, picks[r], 1);
            score = -ens_acc_ll(a);
        }
        err = offer(mo, count_s, n_lib, score, tmp);
    }
    free(count_s);
    free(count);
    free(pos);
    free(tmp);
    free(picks);
    free(hits);
    return err;
}

static ens_err_t search(mo_t *mo, ens_acc_t *a, int n_lib, const ens_select_opts_t *o) {
    int max_members = o && o->max_members > 0 ? o->max_members : 32;
    int max_exp = o && o->max_expansions > 0 ? o->max_expansions : 4000;
    int rounds = o && o->max_iter > 0 ? o->max_iter : 50;
    char *in = malloc((size_t)n_lib + 1);
    int32_t *need = malloc(((size_t)n_lib + 1) * sizeof *need);
    int32_t *h = malloc(((size_t)n_lib + 1) * sizeof *h);
    single_t *ranked = malloc(((size_t)n_lib + 1) * sizeof *ranked);
    mo->bound = malloc(((size_t)n_lib + 1) * sizeof *mo->bound);
    mo->loss = malloc(((size_t)n_lib + 1) * sizeof *mo->loss);
    ens_err_t err = in && need && h && ranked && mo->bound && mo->loss ? ENS_OK : ENS_ERR_NOMEM;
    if (!err) {
        ens_acc_reset(a);
        ens_acc_prepare(a);
        ens_acc_try_many(a, mo->order, n_lib, NULL, h);
        if (mo->ll)
            ens_acc_ll_try_many(a, mo->order, n_lib, NULL, mo->loss);
    }
    for (int s = 0; !err && s < n_lib; s++) {
        const ens_library_member_t *m = &mo->lib[mo->order[s]];
        ranked[s] = (single_t){s, h[s], m->ms_per_sample, m->model_id};
        double score = mo->ll ? -mo->loss[s] : h[s];
        if (dominated(mo, m->ms_per_sample, score))
            continue;
        if (!(err = node_new(mo, -1, s, score)))
            err = front_insert(mo, mo->n_nodes - 1);
    }
    if (!err && !(o && o->no_seeds)) {
        qsort(ranked, (size_t)n_lib, sizeof *ranked, by_single);
        err = seed(mo, a, n_lib, ranked, max_members, rounds);
    }
    /* cheapest first: every ensemble cheaper than the one grown is final by then, so no
     * ensemble is grown that a cheaper one found later would dominate */
    for (int done = 0; !err && done < max_exp; done++) {
        int x = -1;
        for (int i = 0; i < mo->n_front && x < 0; i++)
            if (!mo->nodes[mo->front[i]].expanded)
                x = mo->front[i];
        if (x < 0)
            break;
        mo->nodes[x].expanded = 1;
        if (mo->nodes[x].total < max_members)
            err = expand(mo, a, x, n_lib, in, need, h);
    }
    free(in);
    free(need);
    free(h);
    free(ranked);
    free(mo->bound);
    free(mo->loss);
    return err;
}

/* Score the front on both halves and keep what is still Pareto-optimal on the reported
 * (normalised-weight) accuracy, which can differ from the summed one on exact ties. */
static ens_err_t publish(const mo_t *mo, const ens_selection_data_t *d, ens_ensemble_t **out,
                         int *n_out) {
    ens_ensemble_t *e = calloc((size_t)mo->n_front + 1, sizeof *e);
    int *idx = malloc(((size_t)mo->n_parts + 1) * sizeof *idx);
    double *w = malloc(((size_t)mo->n_parts + 1) * sizeof *w);
    ens_err_t err = e && idx && w ? ENS_OK : ENS_ERR_NOMEM;
    int n = 0;
    for (int i = 0; !err && i < mo->n_front; i++) {
        const node_t *x = &mo->nodes[mo->front[i]];
        for (int j = 0; j < x->n; j++) {
            idx[j] = mo->order[mo->parts[x->off + j].s];
            w[j] = mo->parts[x->off + j].count;
        }
        if ((err = ens_select_score(mo->lib, idx, w, x->n, d, "mogreedy", &e[n])))
            break;
        if (!mo->ll && n > 0 && e[n].val_accuracy <= e[n - 1].val_accuracy) {
            free(e[n].members);
            free(e[n].weights);
            memset(&e[n], 0, sizeof e[n]);
            continue;
        }
        n++;
    }
    free(idx);
    free(w);
    if (err) {
        ens_select_ensembles_free(e, n + 1);
        return err;
    }
    *out = e;
    *n_out = n;
    return ENS_OK;
}

ens_err_t ens_select_mogreedy(const ens_library_member_t *lib, int n_lib,
                              const ens_selection_data_t *d, const ens_select_opts_t *o,
                              ens_ensemble_t **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (n_lib < 1 || d->n_sel < 1)
        return ENS_ERR_INVALID;
    mo_t mo = {.lib = lib, .ll = ens_select_criterion(o) == ENS_SELECT_LOGLOSS};
    ens_acc_t a;
    int *order = ens_acc_order_by_id(lib, n_lib);
    ens_err_t err = order ? ens_acc_init(&a, lib, d) : ENS_ERR_NOMEM;
    if (err) {
        free(order);
        return err;
    }
    mo.order = order;
    err = search(&mo, &a, n_lib, o);
    if (!err)
        err = publish(&mo, d, out, n_out);
    ens_acc_free(&a);
    free(mo.nodes);
    free(mo.parts);
    free(mo.front);
    free(order);
    return err;
}
