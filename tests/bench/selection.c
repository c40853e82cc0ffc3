/* selection.c - benchmark of ensemble selection: test accuracy and cost of single, top-K,
 * Caruana and the mogreedy front on a Fashion-MNIST library, and selection time at scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/data.h"
#include "ensflow/ensemble.h"
#include "ensflow/nn.h"
#include "ensflow/space.h"
#include "evaluator.h"
#include "select.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    char id[32];
    float *val, *test;
    double ms;
    int64_t mem;
} ckpt_t;

/* Test accuracy of an ensemble (members by id, weights) from the checkpoints' test probs. */
static double test_acc(const ens_ensemble_t *e, const ckpt_t *c, int n, const ens_dataset_t *t) {
    const float **p = malloc((size_t)e->n_members * sizeof *p);
    float *out = malloc((size_t)t->n * 10 * sizeof *out);
    for (int j = 0; j < e->n_members; j++)
        for (int i = 0; i < n; i++)
            if (!strcmp(c[i].id, e->members[j]))
                p[j] = c[i].test;
    ens_ensemble_combine(p, e->weights, e->n_members, t->n, 10, out);
    double a = ens_accuracy(out, t->y, NULL, t->n, 10);
    free(p);
    free(out);
    return a;
}

/* The library cache of --cache: a header, then per checkpoint its record and probabilities. */
static int load_cache(const char *path, int quick, ckpt_t *ck, int cap, int *n_ck, size_t vcells,
                      size_t tcells) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int hdr[3], ok = fread(hdr, sizeof hdr, 1, f) == 1 && hdr[0] == 0x5e1ec7 &&
                         hdr[1] == quick && hdr[2] > 0 && hdr[2] <= cap;
    int n = 0;
    for (; ok && n < hdr[2]; n++) {
        ckpt_t *k = &ck[n];
        k->val = malloc(vcells * sizeof *k->val);
        k->test = malloc(tcells * sizeof *k->test);
        ok = k->val && k->test && fread(k->id, sizeof k->id, 1, f) == 1 &&
             fread(&k->ms, sizeof k->ms, 1, f) == 1 && fread(&k->mem, sizeof k->mem, 1, f) == 1 &&
             fread(k->val, sizeof *k->val, vcells, f) == vcells &&
             fread(k->test, sizeof *k->test, tcells, f) == tcells;
    }
    fclose(f);
    if (!ok) {
        for (int i = 0; i < n; i++) {
            free(ck[i].val);
            free(ck[i].test);
            ck[i].val = ck[i].test = NULL;
        }
        return 0;
    }
    *n_ck = n;
    return 1;
}

static void save_cache(const char *path, int quick, const ckpt_t *ck, int n, size_t vcells,
                       size_t tcells) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    int hdr[3] = {0x5e1ec7, quick, n};
    fwrite(hdr, sizeof hdr, 1, f);
    for (int i = 0; i < n; i++) {
        fwrite(ck[i].id, sizeof ck[i].id, 1, f);
        fwrite(&ck[i].ms, sizeof ck[i].ms, 1, f);
        fwrite(&ck[i].mem, sizeof ck[i].mem, 1, f);
        fwrite(ck[i].val, sizeof *ck[i].val, vcells, f);
        fwrite(ck[i].test, sizeof *ck[i].test, tcells, f);
    }
    fclose(f);
}

/* Pick rules compared by --pick: the placer's (ens_ensemble_choose: highest holdout accuracy,
 * or lowest holdout log-loss), and, for comparison only, the accuracy rule with near-ties
 * (within one standard error of the best holdout accuracy) broken by holdout log-loss. */
enum { PICK_LOGLOSS, PICK_ACCURACY, PICK_ACCURACY_SE, PICK__COUNT };
static const char *pick_names[PICK__COUNT] = {"logloss", "accuracy", "accuracy-se"};

/* The ensemble of e[0..n) that rule picks within max_cost (n_hold: holdout rows). */
static int pick(const ens_ensemble_t *e, int n, double max_cost, int rule, int32_t n_hold) {
    ens_choose_t c = {.max_cost_ms = max_cost * (1 + 1e-9),
                      .rule = rule == PICK_LOGLOSS ? ENS_CHOOSE_LOGLOSS : ENS_CHOOSE_ACCURACY};
    int b = ens_ensemble_choose(e, n, &c);
    if (rule != PICK_ACCURACY_SE || b < 0)
        return b;
    double a = e[b].holdout_accuracy, se = sqrt(a * (1 - a) / (n_hold > 0 ? n_hold : 1));
    c.min_accuracy = a - se;
    c.rule = ENS_CHOOSE_LOGLOSS;
    return ens_ensemble_choose(e, n, &c);
}
/* Selection time on a generated library of n_models x n_val x 10 classes. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double time_at_scale(int n_models, int32_t n_val, double *t_mo, int *front_size,
                            double *cpu) {
    const int32_t k = 10;
    ens_rng_t rng;
    ens_rng_seed(&rng, 77);
    int32_t *labels = malloc((size_t)n_val * sizeof *labels);
    float *probs = malloc((size_t)n_models * (size_t)n_val * (size_t)k * sizeof *probs);
    ens_library_member_t *lib = calloc((size_t)n_models, sizeof *lib);
    char (*ids)[16] = calloc((size_t)n_models, sizeof *ids);
    double *hard = malloc((size_t)n_val * sizeof *hard);
    if (!labels || !probs || !lib || !ids || !hard)
        return -1;
    for (int32_t i = 0; i < n_val; i++) {
        labels[i] = (int32_t)(ens_rng_next(&rng) % (uint64_t)k);
        hard[i] = ens_rng_uniform(&rng);
    }
    for (int m = 0; m < n_models; m++) {
        double skill = 0.4 + 0.5 * ens_rng_uniform(&rng);
        float *p = probs + (size_t)m * (size_t)n_val * (size_t)k;
        for (int32_t i = 0; i < n_val; i++) {
            float z[10], sum = 0;
            for (int32_t c = 0; c < k; c++)
                z[c] = (float)(1.2 * ens_rng_normal(&rng));
            z[labels[i]] += (float)(4.0 * (skill - 0.7 * hard[i]) + 1.0);
            for (int32_t c = 0; c < k; c++)
                sum += z[c] = expf(z[c]);
            for (int32_t c = 0; c < k; c++)
                p[(size_t)i * (size_t)k + (size_t)c] = z[c] / sum;
        }
        snprintf(ids[m], sizeof ids[m], "m-%04d", m);
        lib[m] = (ens_library_member_t){ids[m], p, 0.002 + 0.03 * skill * ens_rng_uniform(&rng),
                                        1 << 20};
    }
    int32_t *sel, *hold, ns, nh;
    ens_select_halves(n_val, &sel, &ns, &hold, &nh);
    ens_selection_data_t d = {n_val, k, labels, sel, ns, hold, nh};
    static const char *methods[] = {"single", "topk", "caruana", "mogreedy"};
    double t0 = now(), c0 = cpu_now(), total = 0;
    for (int i = 0; i < 4; i++) {
        ens_ensemble_t *e = NULL;
        int ne = 0;
        double t1 = now();
        if (ens_select_run(methods[i], lib, n_models, &d, NULL, &e, &ne))
            return -1;
        if (i == 3) {
            *t_mo = now() - t1;
            *front_size = ne;
        }
        ens_select_ensembles_free(e, ne);
    }
    total = now() - t0;
    *cpu = cpu_now() - c0; /* all threads' CPU time: independent of the machine's load */
    free(sel);
    free(hold);
    free(labels);
    free(probs);
    free(lib);
    free(ids);
    free(hard);
    return total;
}

int main(int argc, char **argv) {
    const char *json = NULL, *cache = NULL;
    int quick = 0, scale_runs = 3, crit = 0, rule = PICK_ACCURACY;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else if (!strcmp(argv[i], "--cache") && i + 1 < argc)
            cache = argv[++i];
        else if (!strcmp(argv[i], "--scale-runs") && i + 1 < argc)
            scale_runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--criterion") && i + 1 < argc)
            crit = !strcmp(argv[++i], "accuracy") ? ENS_SELECT_ACCURACY : ENS_SELECT_LOGLOSS;
        else if (!strcmp(argv[i], "--pick") && i + 1 < argc) {
            for (rule = 0; rule < PICK__COUNT && strcmp(argv[i + 1], pick_names[rule]); rule++)
                ;
            if (rule == PICK__COUNT) {
                fprintf(stderr, "selection: --pick logloss|accuracy|accuracy-se\n");
                return 2;
            }
            i++;
        } else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr,
                    "usage: selection [--quick] [--json FILE] [--cache FILE] [--scale-runs N] "
                    "[--criterion logloss|accuracy] [--pick logloss|accuracy|accuracy-se]\n");
            return 2;
        }
    }
    char es[512];
    double t_start = now();
    ens_dataset_t *all = NULL, *train = NULL, *val = NULL, *test = NULL;
    if (ens_dataset_load("fashion-mnist", ENS_DATA_TRAIN, &all, es, sizeof es) ||
        ens_dataset_split(all, 0.1, 1, &train, &val, es, sizeof es) ||
        ens_dataset_load("fashion-mnist", ENS_DATA_TEST, &test, es, sizeof es)) {
        fprintf(stderr, "selection: %s\n", es);
        return 1;
    }
    printf("library built in-process with ensflow's data, nn and space modules (not through "
           "the services): Fashion-MNIST, train %d, validation %d (selection %d + holdout %d), "
           "test %d (never seen by selection)\n",
           train->n, val->n, (val->n + 1) / 2, val->n / 2, test->n);
    /* input normalisation from the training split, as the trainer does */
    double mean = 0, var = 0;
    size_t cells = (size_t)train->n * (size_t)train->dim;
    for (size_t i = 0; i < cells; i++)
        mean += train->x[i];
    mean /= (double)cells;
    for (size_t i = 0; i < cells; i++)
        var += (train->x[i] - mean) * (train->x[i] - mean);
    float sd = (float)sqrt(var / (double)cells);

    int n_cfg = quick ? 26 : 40;
    const char *space = "{\"layers\":{\"int\":[1,2]},\"width\":[32,64,128,256],"
                        "\"lr\":{\"log_uniform\":[0.01,0.08]},\"batch_size\":[64,128,256]}";
    ckpt_t *ck = calloc((size_t)n_cfg * 3, sizeof *ck);
    int n_ck = 0;
    int32_t bag_n = train->n * 6 / 10;
    int32_t *bag = malloc((size_t)train->n * sizeof *bag);
    size_t vcells = (size_t)val->n * 10, tcells = (size_t)test->n * 10;
    uint16_t *half = malloc(vcells * sizeof *half);
    double t_train = now();
    /* --cache FILE: reuse the checkpoints' probabilities and costs of an earlier run with the
     * same settings (to iterate on selection without retraining); written when absent */
    int from_cache = cache && load_cache(cache, quick, ck, n_cfg * 3, &n_ck, vcells, tcells);
    for (int c = 0; !from_cache && c < n_cfg; c++) {
        char *cfg_json = NULL;
        ens_trial_config_t cfg;
        if (ens_space_sample(space, 11, c, &cfg_json, es, sizeof es) ||
            ens_trial_config_parse(cfg_json, &cfg, es, sizeof es)) {
            fprintf(stderr, "selection: %s\n", es);
            return 1;
        }
        free(cfg_json);
        /* a bag of 60% of the training rows: diversity, and time */
        ens_rng_t rng;
        ens_rng_seed(&rng, 1000 + (uint64_t)c);
        for (int32_t i = 0; i < train->n; i++)
            bag[i] = i;
        ens_rng_shuffle(&rng, bag, train->n);
        ens_dataset_t *sub = NULL;
        ens_model_t *m = NULL;
        if (ens_dataset_subset(train, bag, bag_n, &sub) ||
            ens_model_new_mlp(784, cfg.hidden, cfg.n_hidden, 10, 500 + (uint64_t)c, &m)) {
            fprintf(stderr, "selection: out of memory\n");
            return 1;
        }
        ens_model_set_normalisation(m, (float)mean, sd);
        ens_sgd_t sgd = {cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size};
        int epochs = 1 + c % 3;
        for (int e = 1; e <= epochs; e++) {
            double loss = 0;
            if (ens_model_train_epoch(m, sub, &sgd, &rng, &loss) || !isfinite(loss))
                break; /* diverged: no more checkpoints of this trial */
            ckpt_t *k = &ck[n_ck];
            snprintf(k->id, sizeof k->id, "c%02d-e%d", c, e);
            k->val = malloc(vcells * sizeof *k->val);
            k->test = malloc(tcells * sizeof *k->test);
            if (!k->val || !k->test || ens_model_predict(m, val->x, val->n, k->val) ||
                ens_model_predict(m, test->x, test->n, k->test))
                return 1;
            /* validation probabilities as the service stores them: float16 */
            for (size_t i = 0; i < vcells; i++)
                half[i] = ens_evaluator_f16(k->val[i]);
            ens_select_f16_decode(half, vcells, k->val);
            k->ms = ens_evaluator_ms_per_sample(m, val->x, val->n, 32, 3);
            k->mem = ens_model_memory_bytes(m, 32);
            n_ck++;
        }
        ens_model_free(m);
        ens_dataset_free(sub);
    }
    t_train = now() - t_train;
    if (cache && !from_cache)
        save_cache(cache, quick, ck, n_ck, vcells, tcells);
    printf("%s", from_cache ? "(library read from the cache) " : "");
    printf("%d checkpoints from %d MLP configurations (1-3 epochs each, every epoch kept) in "
           "%.0f s\n", n_ck, n_cfg, t_train);

    ens_library_member_t *lib = calloc((size_t)n_ck, sizeof *lib);
    for (int i = 0; i < n_ck; i++)
        lib[i] = (ens_library_member_t){ck[i].id, ck[i].val, ck[i].ms, ck[i].mem};
    int32_t *sel, *hold, ns, nh;
    ens_select_halves(val->n, &sel, &ns, &hold, &nh);
    ens_selection_data_t d = {val->n, 10, val->y, sel, ns, hold, nh};
    ens_select_opts_t o = {.top_k = 5, .criterion = crit};
    ens_ensemble_t *single, *topk, *car, *mo;
    int n1, n2, n3, nmo;
    double t_sel = now();
    if (ens_select_run("single", lib, n_ck, &d, &o, &single, &n1) ||
        ens_select_run("topk", lib, n_ck, &d, &o, &topk, &n2) ||
        ens_select_run("caruana", lib, n_ck, &d, &o, &car, &n3) ||
        ens_select_run("mogreedy", lib, n_ck, &d, &o, &mo, &nmo))
        return 1;
    t_sel = now() - t_sel;
    double a_single = test_acc(single, ck, n_ck, test), a_topk = test_acc(topk, ck, n_ck, test),
           a_car = test_acc(car, ck, n_ck, test);
    /* top-K for K = 1..kmax: the cost levels the front is compared at */
    int kmax = n_ck < 20 ? n_ck : 20;
    ens_ensemble_t *tk[20];
    double a_tk[20];
    for (int K = 1; K <= kmax; K++) {
        int nt = 0;
        o.top_k = K;
        if (ens_select_run("topk", lib, n_ck, &d, &o, &tk[K - 1], &nt))
            return 1;
        a_tk[K - 1] = test_acc(tk[K - 1], ck, n_ck, test);
    }
    o.top_k = 5;

    /* every pick rule on the same front: most accurate (no limit), at the best single's cost,
     * and at each top-K's cost; --pick names the one reported as the headline */
    double r_best[PICK__COUNT], r_single[PICK__COUNT], r_worst[PICK__COUNT];
    int r_worse[PICK__COUNT];
    for (int r = 0; r < PICK__COUNT; r++) {
        int b = pick(mo, nmo, 1e300, r, nh), s1 = pick(mo, nmo, single->cost_ms_per_sample, r, nh);
        r_best[r] = test_acc(&mo[b], ck, n_ck, test);
        r_single[r] = s1 >= 0 ? test_acc(&mo[s1], ck, n_ck, test) : 0;
        r_worse[r] = 0;
        r_worst[r] = 0;
        for (int K = 1; K <= kmax; K++) {
            int f = pick(mo, nmo, tk[K - 1]->cost_ms_per_sample, r, nh);
            double af = f >= 0 ? test_acc(&mo[f], ck, n_ck, test) : 0;
            if (af < a_tk[K - 1]) {
                r_worse[r]++;
                if (a_tk[K - 1] - af > r_worst[r])
                    r_worst[r] = a_tk[K - 1] - af;
            }
        }
    }
    int ib = pick(mo, nmo, 1e300, rule, nh),
        is = pick(mo, nmo, single->cost_ms_per_sample, rule, nh);
    double a_mo_best = r_best[rule], a_mo_single = r_single[rule];

    /* the same library without the seeds (mogreedy as it was before them): the comparison */
    ens_select_opts_t o_ns = o;
    o_ns.no_seeds = 1;
    ens_ensemble_t *mo_ns = NULL;
    int nmo_ns = 0;
    if (ens_select_run("mogreedy", lib, n_ck, &d, &o_ns, &mo_ns, &nmo_ns))
        return 1;
    int ib_ns = pick(mo_ns, nmo_ns, 1e300, rule, nh),
        is_ns = pick(mo_ns, nmo_ns, single->cost_ms_per_sample, rule, nh);
    double a_ns_best = test_acc(&mo_ns[ib_ns], ck, n_ck, test),
           a_ns_single = is_ns >= 0 ? test_acc(&mo_ns[is_ns], ck, n_ck, test) : 0;
    int worse_ns = 0;

    printf("\nselection on %d checkpoints took %.3f s (all four algorithms)\n\n", n_ck, t_sel);
    printf("%-34s %8s %10s %9s %9s %9s %9s %9s\n", "ensemble (test set)", "members", "ms/sample",
           "test_acc", "holdout", "select", "hold_ll", "sel_ll");
    const struct {
        const char *name;
        const ens_ensemble_t *e;
        double acc;
    } base[] = {{"best single model", single, a_single},
                {"top-5", topk, a_topk},
                {"caruana (50 rounds, best seen)", car, a_car}};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        printf("%-34s %8d %10.4f %9.4f %9.4f %9.4f %9.4f %9.4f\n", base[i].name,
               (int)base[i].e->n_members, base[i].e->cost_ms_per_sample, base[i].acc,
               base[i].e->holdout_accuracy, base[i].e->val_accuracy, base[i].e->holdout_logloss,
               base[i].e->val_logloss);
    printf("mogreedy front (%d ensembles, cheapest first; picks by the %s rule):\n", nmo,
           pick_names[rule]);
    for (int i = 0; i < nmo; i++)
        printf("  %-32s %8d %10.4f %9.4f %9.4f %9.4f %9.4f %9.4f%s\n", mo[i].ensemble_id,
               (int)mo[i].n_members, mo[i].cost_ms_per_sample, test_acc(&mo[i], ck, n_ck, test),
               mo[i].holdout_accuracy, mo[i].val_accuracy, mo[i].holdout_logloss,
               mo[i].val_logloss,
               i == ib ? "  <- best (no limit)" : i == is ? "  <- at single's cost" : "");

    /* top-K for every K against the front at the same cost (the placer's pick) */
    printf("\n%-6s %10s %11s %14s %9s %9s %9s\n", "top-K", "ms/sample", "topK_test", "front_test",
           "diff", "topK_sel", "topK_hold");
    int worse = r_worse[rule];
    double worst = r_worst[rule];
    for (int K = 1; K <= kmax; K++) {
        const ens_ensemble_t *t = tk[K - 1];
        int f = pick(mo, nmo, t->cost_ms_per_sample, rule, nh);
        double at = a_tk[K - 1], af = f >= 0 ? test_acc(&mo[f], ck, n_ck, test) : 0;
        printf("%-6d %10.4f %11.4f %14.4f %+9.4f %9.4f %9.4f\n", K, t->cost_ms_per_sample, at, af,
               af - at, t->val_accuracy, t->holdout_accuracy);
        int f_ns = pick(mo_ns, nmo_ns, t->cost_ms_per_sample, rule, nh);
        worse_ns += (f_ns >= 0 ? test_acc(&mo_ns[f_ns], ck, n_ck, test) : 0) < at;
    }
    printf("\npick rules on the same front (test accuracy; the placer's is accuracy):\n"
           "%-12s %10s %14s %14s %8s\n",
           "rule", "best", "single's cost", "levels < topK", "worst");
    for (int r = 0; r < PICK__COUNT; r++)
        printf("%-12s %10.4f %14.4f %14d %8.4f%s\n", pick_names[r], r_best[r], r_single[r],
               r_worse[r], r_worst[r], r == rule ? "  (--pick)" : "");

    int n_big = 1000, front_big = 0;
    int32_t n_val_big = 10000;
    /* the shared 2-core machine makes one timing noisy: the median of scale_runs runs */
    double t_mo_big = -1, t_big = -1, cpu_big = -1, runs[9], mo_runs[9], cpu_runs[9];
    if (scale_runs > 9)
        scale_runs = 9;
    for (int r = 0; r < scale_runs; r++) {
        runs[r] = time_at_scale(n_big, n_val_big, &mo_runs[r], &front_big, &cpu_runs[r]);
        printf("1000 x 10000 selection, run %d: %.2f s (mogreedy %.2f s), CPU %.2f s\n", r + 1,
               runs[r], mo_runs[r], cpu_runs[r]);
    }
    for (int a = 0; a < scale_runs; a++) /* sort both for the medians */
        for (int b = a + 1; b < scale_runs; b++) {
            double t;
            if (runs[b] < runs[a])
                t = runs[a], runs[a] = runs[b], runs[b] = t;
            if (mo_runs[b] < mo_runs[a])
                t = mo_runs[a], mo_runs[a] = mo_runs[b], mo_runs[b] = t;
            if (cpu_runs[b] < cpu_runs[a])
                t = cpu_runs[a], cpu_runs[a] = cpu_runs[b], cpu_runs[b] = t;
        }
    if (scale_runs > 0) {
        t_big = runs[scale_runs / 2];
        t_mo_big = mo_runs[scale_runs / 2];
        cpu_big = cpu_runs[scale_runs / 2];
    }

    printf("\n%-44s %10s %10s %8s\n", "figure", "ensflow", "baseline", "ratio");
    printf("%-44s %10.4f %10.4f %8.3f  (baseline: best single)\n",
           "test acc, mogreedy best by the rule", a_mo_best, a_single, a_mo_best / a_single);
    printf("%-44s %10.4f %10.4f %8.3f  (baseline: best single)\n",
           "test acc, mogreedy at cost of best single", a_mo_single, a_single,
           a_mo_single / a_single);
    printf("%-44s %10.4f %10.4f %8.3f  (baseline: best single)\n", "test acc, caruana", a_car,
           a_single, a_car / a_single);
    printf("%-44s %10.4f %10.4f %8.3f  (baseline: top-5)\n", "test acc, mogreedy best by the rule",
           a_mo_best, a_topk, a_mo_best / a_topk);
    printf("%-44s %10d %10d %8s  (K=1..%d where front < top-K; worst %.4f)\n",
           "cost levels where the front loses to top-K", worse, 0, "-", kmax, worst);
    printf("%-44s %10.2f %10.2f %8.3f  (baseline: the 10 s goal; mogreedy alone %.2f s, front "
           "%d)\n",
           "selection s, 1000 x 10000 (median)", t_big, 10.0, t_big / 10.0, t_mo_big,
           front_big);
    printf("without the seeds (mogreedy before them, same library): front %d, most accurate "
           "%.4f, at single's cost %.4f, loses to top-K at %d levels\n",
           nmo_ns, a_ns_best, a_ns_single, worse_ns);
    printf("goals: +1.0 point over best single: %s; front at single's cost >= single: %s; "
           "front >= top-K at every cost: %s; 1000x10000 under 10 s: %s\n",
           a_mo_best - a_single >= 0.01 ? "met" : "NOT met",
           a_mo_single >= a_single ? "met" : "NOT met", worse == 0 ? "met" : "NOT met",
           t_big < 0 ? "not run" : t_big < 10 ? "met" : "NOT met");
    printf("total %.0f s\n", now() - t_start);
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            fprintf(stderr, "selection: cannot write %s\n", json);
            return 1;
        }
        fprintf(f,
                "{\"quick\": %s, \"criterion\": \"%s\", \"checkpoints\": %d, "
                "\"test_acc_single_best\": %.4f, \"test_acc_topk\": %.4f, "
                "\"test_acc_caruana\": %.4f, \"test_acc_mogreedy_best\": %.4f, "
                "\"test_acc_mogreedy_at_cost_of_single\": %.4f, "
                "\"cost_ms_single_best\": %.5f, \"cost_ms_caruana\": %.5f, "
                "\"cost_ms_mogreedy_best\": %.5f, \"front_size\": %d, "
                "\"topk_levels_front_worse\": %d, \"selection_seconds_library\": %.3f, "
                "\"selection_seconds_1000x10000\": %.3f, \"mogreedy_seconds_1000x10000\": %.3f, "
                "\"cpu_seconds_1000x10000\": %.3f, \"scale_runs\": %d, "
                "\"unseeded_test_acc_mogreedy_best\": %.4f, "
                "\"unseeded_test_acc_mogreedy_at_cost_of_single\": %.4f, "
                "\"unseeded_topk_levels_front_worse\": %d, \"pick\": \"%s\", \"picks\": {",
                quick ? "true" : "false",
                ens_select_criterion(&o) == ENS_SELECT_ACCURACY ? "accuracy" : "logloss", n_ck,
                a_single, a_topk, a_car, a_mo_best, a_mo_single, single->cost_ms_per_sample,
                car->cost_ms_per_sample, mo[ib].cost_ms_per_sample, nmo, worse, t_sel, t_big,
                t_mo_big, cpu_big, scale_runs, a_ns_best, a_ns_single, worse_ns,
                pick_names[rule]);
        for (int r = 0; r < PICK__COUNT; r++)
            fprintf(f,
                    "%s\"%s\": {\"test_acc_mogreedy_best\": %.4f, "
                    "\"test_acc_mogreedy_at_cost_of_single\": %.4f, "
                    "\"topk_levels_front_worse\": %d, \"topk_worst_gap\": %.4f}",
                    r ? ", " : "", pick_names[r], r_best[r], r_single[r], r_worse[r], r_worst[r]);
        fprintf(f, "}}\n");
        fclose(f);
    }
    ens_select_ensembles_free(single, n1);
    ens_select_ensembles_free(topk, n2);
    ens_select_ensembles_free(car, n3);
    ens_select_ensembles_free(mo, nmo);
    ens_select_ensembles_free(mo_ns, nmo_ns);
    for (int K = 1; K <= kmax; K++)
        ens_select_ensembles_free(tk[K - 1], 1);
    for (int i = 0; i < n_ck; i++) {
        free(ck[i].val);
        free(ck[i].test);
    }
    free(ck);
    free(lib);
    free(sel);
    free(hold);
    free(bag);
    free(half);
    ens_dataset_free(all);
    ens_dataset_free(train);
    ens_dataset_free(val);
    ens_dataset_free(test);
    return 0;
}
