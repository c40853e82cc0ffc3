/* test_selector.c - halves, single-best and top-K selection against independent recomputation. */
#include "select.h"

#include "check.h"
#include "ensflow/data.h"

#define N 301 /* odd on purpose: the selection half is one row longer */
#define K 5
#define NLIB 7

static void free_ensemble(ens_ensemble_t *e) {
    free(e->members);
    free(e->weights);
    e->members = NULL;
    e->weights = NULL;
}

static int argmax(const float *p, int k) {
    int b = 0;
    for (int c = 1; c < k; c++)
        if (p[c] > p[b])
            b = c;
    return b;
}

/* Accuracy of the equal-weight average of members idx[0..m) over rows rows[0..n). */
static double avg_accuracy(const ens_library_member_t *lib, const int *idx, int m,
                           const int32_t *labels, const int32_t *rows, int n) {
    int hits = 0;
    for (int j = 0; j < n; j++) {
        float p[K] = {0};
        for (int a = 0; a < m; a++)
            for (int c = 0; c < K; c++)
                p[c] += (float)(1.0 / m) * lib[idx[a]].probs[rows[j] * K + c];
        hits += argmax(p, K) == labels[rows[j]];
    }
    return n ? (double)hits / n : 0;
}

static void test_halves(void) {
    for (int32_t n = 0; n <= 9; n++) {
        int32_t *sel = NULL, *hold = NULL, ns = -1, nh = -1;
        CHECK_OK(ens_select_halves(n, &sel, &ns, &hold, &nh));
        CHECK_EQ_INT(ns + nh, n);
        CHECK_EQ_INT(ns, (n + 1) / 2);
        int seen[9] = {0};
        for (int i = 0; i < ns; i++)
            if (sel[i] >= 0 && sel[i] < n)
                seen[sel[i]] += 1;
        for (int i = 0; i < nh; i++)
            if (hold[i] >= 0 && hold[i] < n)
                seen[hold[i]] += 10;
        for (int i = 0; i < n; i++)
            CHECK_EQ_INT(seen[i], i % 2 ? 10 : 1); /* every row exactly once, even rows select */
        free(sel);
        free(hold);
    }
}

static void test_generated(uint64_t seed) {
    static float probs[NLIB][N * K];
    static char ids[NLIB][16];
    int32_t labels[N];
    ens_library_member_t lib[NLIB];
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int i = 0; i < N; i++)
        labels[i] = (int32_t)(ens_rng_next(&rng) % K);
    for (int m = 0; m < NLIB; m++) {
        double skill = 0.3 + 0.08 * m; /* how often the label gets a boost */
        for (int i = 0; i < N; i++) {
            double sum = 0;
            for (int c = 0; c < K; c++)
                sum += probs[m][i * K + c] = (float)(0.05 + ens_rng_uniform(&rng));
            if (ens_rng_uniform(&rng) < skill)
                sum += probs[m][i * K + labels[i]] += 1.0f;
            for (int c = 0; c < K; c++)
                probs[m][i * K + c] = (float)(probs[m][i * K + c] / sum);
        }
        snprintf(ids[m], sizeof ids[m], "m-%02d", NLIB - m); /* ids not in library order */
        lib[m] = (ens_library_member_t){ids[m], probs[m], 0.1 * (m + 1), 1000 * (m + 1)};
    }
    int32_t *sel = NULL, *hold = NULL, ns = 0, nh = 0;
    CHECK_OK(ens_select_halves(N, &sel, &ns, &hold, &nh));
    ens_selection_data_t d = {N, K, labels, sel, ns, hold, nh};

    /* rank by selection accuracy, computed here (ties: cheaper, then smaller id) */
    double acc[NLIB];
    int order[NLIB];
    for (int m = 0; m < NLIB; m++) {
        acc[m] = avg_accuracy(lib, &m, 1, labels, sel, ns);
        order[m] = m;
    }
    for (int a = 0; a < NLIB; a++)
        for (int b = a + 1; b < NLIB; b++) {
            int x = order[a], y = order[b];
            int y_first = acc[y] > acc[x] ||
                          (acc[y] == acc[x] && (lib[y].ms_per_sample < lib[x].ms_per_sample ||
                                                (lib[y].ms_per_sample == lib[x].ms_per_sample &&
                                                 strcmp(lib[y].model_id, lib[x].model_id) < 0)));
            if (y_first) {
                order[a] = y;
                order[b] = x;
            }
        }

    ens_ensemble_t e;
    CHECK_OK(ens_select_single(lib, NLIB, &d, &e));
    CHECK_EQ_INT(e.n_members, 1);
    CHECK_STR(e.method, "single");
    if (e.n_members == 1) {
        CHECK_STR(e.members[0], lib[order[0]].model_id);
        CHECK_NEAR(e.weights[0], 1.0, 1e-12);
    }
    CHECK_NEAR(e.val_accuracy, acc[order[0]], 1e-12);
    CHECK_NEAR(e.holdout_accuracy, avg_accuracy(lib, order, 1, labels, hold, nh), 1e-12);
    free_ensemble(&e);

    for (int top = 2; top <= 4; top++) {
        CHECK_OK(ens_select_topk(lib, NLIB, &d, top, &e));
        CHECK_EQ_INT(e.n_members, top);
        CHECK_STR(e.method, "topk");
        double cost = 0, wsum = 0;
        int64_t mem = 0;
        for (int j = 0; j < top && j < e.n_members; j++) {
            CHECK_STR(e.members[j], lib[order[j]].model_id);
            CHECK_NEAR(e.weights[j], 1.0 / top, 1e-12);
            wsum += e.weights[j];
            cost += lib[order[j]].ms_per_sample;
            mem += lib[order[j]].memory_bytes;
        }
        CHECK_NEAR(wsum, 1.0, 1e-12);
        CHECK_NEAR(e.cost_ms_per_sample, cost, 1e-12);
        CHECK_EQ_INT(e.memory_bytes, mem);
        CHECK_NEAR(e.val_accuracy, avg_accuracy(lib, order, top, labels, sel, ns), 1e-12);
        CHECK_NEAR(e.holdout_accuracy, avg_accuracy(lib, order, top, labels, hold, nh), 1e-12);
        free_ensemble(&e);
    }
    /* top_k beyond the library takes all of it */
    CHECK_OK(ens_select_topk(lib, NLIB, &d, NLIB + 5, &e));
    CHECK_EQ_INT(e.n_members, NLIB);
    free_ensemble(&e);
    free(sel);
    free(hold);
}

/* Two models right on complementary rows, and confidently so: their average is right on every
 * row while each alone is right on half. A third, cheap model is worse than both. */
static void test_hand_worked(void) {
    /* 8 rows, 2 classes; row i repeats pattern i/2, so the selection and holdout halves (even
     * and odd rows) see the same four patterns */
    static const int32_t labels[8] = {0, 0, 1, 1, 0, 0, 1, 1};
    static const float pa[4][2] = {{0.9f, 0.1f}, {0.1f, 0.9f}, {0.4f, 0.6f}, {0.6f, 0.4f}};
    static const float pb[4][2] = {{0.4f, 0.6f}, {0.6f, 0.4f}, {0.9f, 0.1f}, {0.1f, 0.9f}};
    static const float pc[4][2] = {{0.4f, 0.6f}, {0.6f, 0.4f}, {0.4f, 0.6f}, {0.1f, 0.9f}};
    float a[16], b[16], c[16];
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 2; k++) {
            a[i * 2 + k] = pa[i / 2][k];
            b[i * 2 + k] = pb[i / 2][k];
            c[i * 2 + k] = pc[i / 2][k];
        }
    const ens_library_member_t lib[3] = {
        {"b", b, 2.0, 200}, {"a", a, 1.0, 100}, {"c", c, 0.5, 50}};
    int32_t *sel = NULL, *hold = NULL, ns = 0, nh = 0;
    CHECK_OK(ens_select_halves(8, &sel, &ns, &hold, &nh));
    ens_selection_data_t d = {8, 2, labels, sel, ns, hold, nh};

    ens_ensemble_t e;
    CHECK_OK(ens_select_single(lib, 3, &d, &e));
    /* a and b tie at 0.5; a is cheaper */
    if (e.n_members == 1)
        CHECK_STR(e.members[0], "a");
    CHECK_NEAR(e.val_accuracy, 0.5, 1e-12);
    CHECK_NEAR(e.holdout_accuracy, 0.5, 1e-12);
    free_ensemble(&e);

    CHECK_OK(ens_select_topk(lib, 3, &d, 2, &e));
    CHECK_EQ_INT(e.n_members, 2);
    if (e.n_members == 2) {
        CHECK_STR(e.members[0], "a");
        CHECK_STR(e.members[1], "b");
    }
    CHECK_NEAR(e.val_accuracy, 1.0, 1e-12);
    CHECK_NEAR(e.holdout_accuracy, 1.0, 1e-12);
    CHECK_NEAR(e.cost_ms_per_sample, 3.0, 1e-12);
    CHECK_EQ_INT(e.memory_bytes, 300);
    free_ensemble(&e);

    /* ens_select_score with explicit weights: all on b reproduces b alone */
    const int idx[2] = {1, 0};
    const double w[2] = {0.0, 5.0};
    CHECK_OK(ens_select_score(lib, idx, w, 2, &d, "custom", &e));
    CHECK_STR(e.method, "custom");
    CHECK_NEAR(e.weights[0], 0.0, 1e-12);
    CHECK_NEAR(e.weights[1], 1.0, 1e-12);
    CHECK_NEAR(e.val_accuracy, 0.5, 1e-12);
    free_ensemble(&e);

    CHECK_EQ_INT(ens_select_topk(lib, 3, &d, 0, &e), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_select_topk(lib, 0, &d, 2, &e), ENS_ERR_INVALID);
    free(sel);
    free(hold);
}

int main(void) {
    test_halves();
    test_generated(1);
    test_generated(2024);
    test_hand_worked();
    return check_done("test_selector");
}
