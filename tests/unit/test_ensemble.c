/* test_ensemble.c - weighted probability averaging, argmax, accuracy, log-loss and the choice
 * of an ensemble, by hand. */
#include "ensflow/ensemble.h"

#include "check.h"

/* two members, two rows, three classes */
static const float p1[] = {0.6f, 0.3f, 0.1f, /**/ 0.2f, 0.2f, 0.6f};
static const float p2[] = {0.0f, 0.5f, 0.5f, /**/ 0.1f, 0.8f, 0.1f};

static void test_combine(void) {
    const float *probs[] = {p1, p2};
    float out[6];
    const double w[] = {0.25, 0.75};
    ens_ensemble_combine(probs, w, 2, 2, 3, out);
    const double want[] = {0.15, 0.45, 0.40, 0.125, 0.65, 0.225};
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(out[i], want[i], 1e-6);

    /* weights are normalised: 1 and 3 is the same as 0.25 and 0.75 */
    float out2[6];
    const double w2[] = {1.0, 3.0};
    ens_ensemble_combine(probs, w2, 2, 2, 3, out2);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(out2[i], want[i], 1e-6);

    /* NULL weights = equal */
    ens_ensemble_combine(probs, NULL, 2, 2, 3, out2);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(out2[i], 0.5 * ((double)p1[i] + (double)p2[i]), 1e-6);

    /* one member with any weight is itself; a zero weight drops a member */
    ens_ensemble_combine(probs, w2 + 1, 1, 2, 3, out2);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(out2[i], p1[i], 1e-7);
    const double w3[] = {0.0, 2.0};
    ens_ensemble_combine(probs, w3, 2, 2, 3, out2);
    for (int i = 0; i < 6; i++)
        CHECK_NEAR(out2[i], p2[i], 1e-7);

    /* rows still sum to one */
    for (int r = 0; r < 2; r++)
        CHECK_NEAR(out[r * 3] + out[r * 3 + 1] + out[r * 3 + 2], 1.0, 1e-6);
}

static void test_argmax(void) {
    const float a[] = {0.1f, 0.7f, 0.2f};
    CHECK_EQ_INT(ens_argmax(a, 3), 1);
    const float ties[] = {0.2f, 0.4f, 0.4f, 0.0f};
    CHECK_EQ_INT(ens_argmax(ties, 4), 1);
    const float all[] = {0.25f, 0.25f, 0.25f, 0.25f};
    CHECK_EQ_INT(ens_argmax(all, 4), 0);
    const float last[] = {0.1f, 0.2f, 0.7f};
    CHECK_EQ_INT(ens_argmax(last, 3), 2);
    CHECK_EQ_INT(ens_argmax(last, 1), 0);
}

static void test_accuracy(void) {
    /* argmax per row: 0, 2, 1, 1 */
    const float probs[] = {0.9f, 0.05f, 0.05f, /**/ 0.1f, 0.2f, 0.7f,
                           0.3f, 0.4f,  0.3f,  /**/ 0.2f, 0.5f, 0.3f};
    const int32_t labels[] = {0, 1, 1, 2};
    CHECK_NEAR(ens_accuracy(probs, labels, NULL, 4, 3), 0.5, 1e-12);
    const int32_t idx_good[] = {0, 2};
    CHECK_NEAR(ens_accuracy(probs, labels, idx_good, 2, 3), 1.0, 1e-12);
    const int32_t idx_bad[] = {3, 1};
    CHECK_NEAR(ens_accuracy(probs, labels, idx_bad, 2, 3), 0.0, 1e-12);
    const int32_t idx_mix[] = {1, 2, 3};
    CHECK_NEAR(ens_accuracy(probs, labels, idx_mix, 3, 3), 1.0 / 3.0, 1e-12);
    CHECK_NEAR(ens_accuracy(probs, labels, NULL, 0, 3), 0.0, 0);
}

static void test_logloss(void) {
    const float probs[] = {0.9f, 0.05f, 0.05f, /**/ 0.1f, 0.2f, 0.7f,
                           0.3f, 0.4f,  0.3f,  /**/ 0.0f, 0.5f, 0.5f};
    const int32_t labels[] = {0, 1, 1, 0};
    double want = -(log((double)0.9f) + log((double)0.2f) + log((double)0.4f)) / 3.0;
    const int32_t idx[] = {0, 1, 2};
    CHECK_NEAR(ens_logloss(probs, labels, idx, 3, 3), want, 1e-9);
    /* row 3 gives its label probability 0: clamped at 1e-7, not infinite */
    double all = ens_logloss(probs, labels, NULL, 4, 3);
    CHECK(isfinite(all));
    CHECK_NEAR(all, (3.0 * want - log(1e-7)) / 4.0, 1e-9);
    const int32_t only_zero[] = {3};
    CHECK_NEAR(ens_logloss(probs, labels, only_zero, 1, 3), -log(1e-7), 1e-9);
    /* a perfect prediction costs nothing */
    const float sure[] = {0.0f, 1.0f};
    const int32_t one[] = {1};
    CHECK_NEAR(ens_logloss(sure, one, NULL, 1, 2), 0.0, 1e-12);
    CHECK_NEAR(ens_logloss(probs, labels, NULL, 0, 3), 0.0, 0);
}

static void set(ens_ensemble_t *e, const char *id, double cost, double hold_acc, double sel_acc,
                double hold_ll, double sel_ll) {
    memset(e, 0, sizeof *e);
    snprintf(e->ensemble_id, sizeof e->ensemble_id, "%s", id);
    e->cost_ms_per_sample = cost;
    e->holdout_accuracy = hold_acc;
    e->val_accuracy = sel_acc;
    e->holdout_logloss = hold_ll;
    e->val_logloss = sel_ll;
    e->memory_bytes = (int64_t)(cost * 1000);
}

static void test_choose(void) {
    ens_ensemble_t e[5];
    /* b: one holdout row more accurate than c, but c has the lower log-loss */
    set(&e[0], "a", 1.0, 0.80, 0.81, 0.60, 0.58);
    set(&e[1], "b", 2.0, 0.8703, 0.86, 0.36, 0.35);
    set(&e[2], "c", 3.0, 0.8700, 0.87, 0.34, 0.34);
    set(&e[3], "d", 4.0, 0.8690, 0.88, 0.35, 0.33);
    set(&e[4], "e", 5.0, 0.8500, 0.85, 0.40, 0.40);
    /* the default: holdout accuracy, not log-loss */
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, NULL), 1);
    ens_choose_t c = {0};
    CHECK_EQ_INT(c.rule, ENS_CHOOSE_ACCURACY);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 1);
    c.max_cost_ms = 1.5;
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 0);
    c.max_cost_ms = 0;
    c.max_memory_bytes = 1999; /* a (1000 bytes) only */
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 0);
    c.max_memory_bytes = 0;
    c.min_accuracy = 0.99;
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), -1);
    CHECK_EQ_INT(ens_ensemble_choose(e, 0, NULL), -1);
    /* the log-loss rule, asked for */
    c = (ens_choose_t){.rule = ENS_CHOOSE_LOGLOSS};
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 2);
    c.max_cost_ms = 2.5;
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 1);
    c.max_cost_ms = 0;
    c.min_accuracy = 0.8701; /* holdout accuracy, not log-loss */
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 1);
    /* ties under log-loss: holdout accuracy, then selection log-loss, then cost, then id */
    c = (ens_choose_t){.rule = ENS_CHOOSE_LOGLOSS};
    set(&e[3], "d", 4.0, 0.8700, 0.88, 0.34, 0.33);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 3); /* d: same as c but 0.33 on selection */
    set(&e[3], "d", 4.0, 0.8700, 0.88, 0.34, 0.34);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 2); /* c: cheaper */
    set(&e[3], "0d", 3.0, 0.8700, 0.88, 0.34, 0.34);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 3); /* same cost: the smaller id */
    /* ties under accuracy: holdout log-loss, then selection accuracy, then cost, then id */
    set(&e[1], "b", 2.0, 0.8700, 0.86, 0.35, 0.35);
    set(&e[3], "d", 4.0, 0.8700, 0.88, 0.36, 0.33);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, NULL), 2); /* c: the lowest log-loss of the three */
    set(&e[1], "b", 2.0, 0.8700, 0.86, 0.34, 0.35);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, NULL), 2); /* b, c: c is more accurate on selection */
    set(&e[1], "b", 2.0, 0.8700, 0.87, 0.34, 0.35);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, NULL), 1); /* b: cheaper */
    /* the same ensembles in reverse order: the same one */
    ens_ensemble_t r[5];
    for (int i = 0; i < 5; i++)
        r[i] = e[4 - i];
    CHECK_EQ_INT(ens_ensemble_choose(r, 5, NULL), 3);
    /* one ensemble without a log-loss (0: an old front) or NaN: log-loss plays no part, even
     * when asked for: d, most accurate on selection, beats b and c */
    set(&e[3], "d", 4.0, 0.8700, 0.88, 0.36, 0.33);
    c = (ens_choose_t){.rule = ENS_CHOOSE_LOGLOSS};
    e[4].holdout_logloss = 0;
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, NULL), 3);
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 3);
    e[4].holdout_logloss = NAN;
    CHECK_EQ_INT(ens_ensemble_choose(e, 5, &c), 3);
}

int main(void) {
    test_combine();
    test_argmax();
    test_accuracy();
    test_logloss();
    test_choose();
    return check_done("test_ensemble");
}
