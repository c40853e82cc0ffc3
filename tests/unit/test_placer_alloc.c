/* test_placer_alloc.c - the allocation optimiser on hand-checkable cases. */
#include "check.h"
#include "placer.h"

#define MB 1000000LL

static ens_alloc_model_t model(const char *id, double ms1, double ms8, double ms32, double ms128,
                               int64_t weights, int64_t act) {
    ens_alloc_model_t m = {.model_id = id, .weights_bytes = weights,
                           .activation_bytes_per_sample = act};
    m.ms_per_sample[0] = ms1;
    m.ms_per_sample[1] = ms8;
    m.ms_per_sample[2] = ms32;
    m.ms_per_sample[3] = ms128;
    return m;
}

static void check_memory(const ens_alloc_t *a, const ens_alloc_model_t *m,
                         const ens_alloc_device_t *d) {
    for (int i = 0; i < a->n_devices; i++)
        CHECK(ens_alloc_memory_used(a, m, i) <= d[i].memory_bytes);
}

static int instances(const ens_alloc_t *a, int d, int m) {
    return a->instances[d * a->n_models + m];
}

/* Two models that fit only one way: each device holds exactly one of them. */
static void test_fits_one_way(void) {
    ens_alloc_model_t m[2] = {model("big", 1, 1, 1, 1, 700 * MB, 0),
                              model("mid", 1, 1, 1, 1, 400 * MB, 0)};
    ens_alloc_device_t d[2] = {{"d0", 1000 * MB, 1, 0, 0}, {"d1", 500 * MB, 1, 0, 0}};
    ens_alloc_t a;
    char err[256];
    CHECK_OK(ens_alloc_optimise(m, 2, d, 2, 50, &a, err, sizeof err));
    CHECK_EQ_INT(instances(&a, 0, 0), 1); /* big only fits on d0 */
    CHECK_EQ_INT(instances(&a, 1, 1), 1); /* so mid goes to d1 */
    CHECK_EQ_INT(instances(&a, 1, 0), 0);
    check_memory(&a, m, d);
    /* one model per device at 1 ms a sample: 1000 samples/s */
    CHECK_NEAR(a.throughput, 1000, 1e-6);
    ens_alloc_free(&a);
}

/* A bottleneck model must get the extra instance on the idle device. */
static void test_bottleneck_gets_instance(void) {
    ens_alloc_model_t m[2] = {model("slow", 4, 4, 4, 4, 10 * MB, 0),
                              model("fast", 1, 1, 1, 1, 10 * MB, 0)};
    ens_alloc_device_t d[2] = {{"d0", 100 * MB, 1, 0, 0}, {"d1", 100 * MB, 1, 0, 0}};
    ens_alloc_t a, base;
    char err[256];
    CHECK_OK(ens_alloc_baseline(m, 2, d, 2, &base));
    CHECK_NEAR(base.throughput, 1000.0 / 5, 1e-6); /* both in one process: 5 ms a sample */
    CHECK_OK(ens_alloc_optimise(m, 2, d, 2, 50, &a, err, sizeof err));
    CHECK(instances(&a, 0, 0) + instances(&a, 1, 0) >= 2); /* slow got a second instance */
    /* best split: load per device 2.5 ms -> 400 samples/s */
    CHECK_NEAR(a.throughput, 400, 1e-6);
    CHECK(a.throughput >= 2 * base.throughput - 1e-9);
    check_memory(&a, m, d);
    ens_alloc_free(&a);
    ens_alloc_free(&base);
}

/* Larger batches are faster per sample and chosen when memory allows, not beyond it. */
static void test_batch_size_within_memory(void) {
    ens_alloc_model_t m[1] = {model("m", 4, 2, 1, 0.5, 10 * MB, 1 * MB)};
    ens_alloc_device_t roomy[1] = {{"d0", 1000 * MB, 1, 0, 0}};
    ens_alloc_device_t tight[1] = {{"d0", 50 * MB, 1, 0, 0}};
    ens_alloc_t a;
    char err[256];
    CHECK_OK(ens_alloc_optimise(m, 1, roomy, 1, 50, &a, err, sizeof err));
    CHECK_EQ_INT(ens_alloc_batch_sizes[a.batch_idx[0]], 128);
    ens_alloc_free(&a);
    CHECK_OK(ens_alloc_optimise(m, 1, tight, 1, 50, &a, err, sizeof err));
    CHECK_EQ_INT(ens_alloc_batch_sizes[a.batch_idx[0]], 32); /* 10 + 32 MB fits, 138 does not */
    check_memory(&a, m, tight);
    ens_alloc_free(&a);
}

static void test_infeasible_names_model(void) {
    ens_alloc_model_t m[2] = {model("small", 1, 1, 1, 1, 10 * MB, 0),
                              model("huge", 1, 1, 1, 1, 900 * MB, 0)};
    ens_alloc_device_t d[2] = {{"d0", 500 * MB, 1, 0, 0}, {"d1", 500 * MB, 1, 0, 0}};
    ens_alloc_t a;
    char err[256] = "";
    CHECK_EQ_INT(ens_alloc_optimise(m, 2, d, 2, 50, &a, err, sizeof err), ENS_ERR_INVALID);
    CHECK(strstr(err, "huge") != NULL);
    CHECK(strstr(err, "500.0 MB") != NULL);
}

/* Same input, same output; never worse than the baseline; memory respected. */
static void test_deterministic_and_no_worse(void) {
    ens_alloc_model_t m[5];
    const char *ids[5] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++)
        m[i] = model(ids[i], 3.0 + i, 1.5 + i * 0.5, 1.0 + i * 0.3, 0.8 + i * 0.2,
                     (20 + 10 * i) * MB, MB / 4);
    ens_alloc_device_t d[3] = {
        {"d0", 200 * MB, 1, 0, 0}, {"d1", 150 * MB, 1, 0, 0}, {"d2", 120 * MB, 0.5, 0, 0}};
    ens_alloc_t a1, a2, base;
    char err[256];
    CHECK_OK(ens_alloc_optimise(m, 5, d, 3, 100, &a1, err, sizeof err));
    CHECK_OK(ens_alloc_optimise(m, 5, d, 3, 100, &a2, err, sizeof err));
    CHECK_OK(ens_alloc_baseline(m, 5, d, 3, &base));
    CHECK(memcmp(a1.instances, a2.instances, 15 * sizeof *a1.instances) == 0);
    CHECK(memcmp(a1.batch_idx, a2.batch_idx, 15 * sizeof *a1.batch_idx) == 0);
    CHECK(a1.throughput >= base.throughput);
    check_memory(&a1, m, d);
    for (int j = 0; j < 5; j++) { /* every model placed */
        int n = 0;
        for (int i = 0; i < 3; i++)
            n += instances(&a1, i, j);
        CHECK(n >= 1);
    }
    ens_alloc_free(&a1);
    ens_alloc_free(&a2);
    ens_alloc_free(&base);
}

/* The plan made from an allocation: one row per (device, model), member order kept. */
static void test_plan_rows(void) {
    ens_alloc_model_t m[2] = {model("slow", 4, 4, 4, 4, 10 * MB, 0),
                              model("fast", 1, 1, 1, 1, 10 * MB, 0)};
    ens_alloc_device_t d[2] = {{"cpu-0", 100 * MB, 1, 0, 0}, {"cpu-1", 100 * MB, 1, 0, 0}};
    char members[2][ENS_ID_MAX] = {"slow", "fast"};
    double weights[2] = {0.6, 0.4};
    ens_ensemble_t e = {.ensemble_id = "topk2", .n_members = 2, .members = members,
                        .weights = weights};
    ens_event_t plan;
    char err[256];
    ens_event_init(&plan, ENS_EV_PLACEMENT_PLAN);
    double compute_ms[2] = {0};
    CHECK_OK(ens_placer_plan_allocated("s-1", &e, 9, m, d, 2, &plan, compute_ms, err,
                                       sizeof err));
    const ens_placement_plan_t *pl = &plan.u.placement_plan;
    CHECK_EQ_INT(pl->version, 9);
    CHECK_NEAR(pl->predicted_throughput, 400, 1e-6);
    CHECK(pl->n_members >= 3); /* slow on both devices, fast on one */
    CHECK_STR(pl->members[0].model_id, "slow");
    int slow_rows = 0, instances = 0;
    for (int i = 0; i < pl->n_members; i++) {
        if (!strcmp(pl->members[i].model_id, "slow")) {
            slow_rows++;
            CHECK_NEAR(pl->members[i].weight, 0.6, 1e-12);
        }
        instances += pl->members[i].instances;
        CHECK(pl->members[i].batch_size >= 1);
    }
    CHECK_EQ_INT(slow_rows, 2);
    CHECK(instances >= 3);
    /* each device's compute per sample: the bottleneck's is 1 / throughput */
    CHECK_NEAR(compute_ms[0] > compute_ms[1] ? compute_ms[0] : compute_ms[1], 2.5, 1e-6);
    CHECK(compute_ms[0] > 0 && compute_ms[1] > 0);
    ens_event_free(&plan);
}

/* The group's measured serving overhead adds to each device's load: the same two models,
 * one per device at 1 ms a sample, with 0.25 ms of overhead on each device, give
 * 1 / 1.25 ms = 800 samples/s; overhead on one device only makes it the bottleneck. */
static void test_overhead_term(void) {
    ens_alloc_model_t m[2] = {model("big", 1, 1, 1, 1, 700 * MB, 0),
                              model("mid", 1, 1, 1, 1, 400 * MB, 0)};
    ens_alloc_device_t d[2] = {{"d0", 1000 * MB, 1, 0.25, 0}, {"d1", 500 * MB, 1, 0.25, 0}};
    ens_alloc_t a;
    char err[256];
    CHECK_OK(ens_alloc_optimise(m, 2, d, 2, 50, &a, err, sizeof err));
    CHECK_NEAR(a.throughput, 800, 1e-6);
    d[1].overhead_ms = 0;
    CHECK_NEAR(ens_alloc_predict(&a, m, d), 800, 1e-6);
    CHECK_EQ_INT(a.bottleneck, 0);
    d[0].overhead_ms = 0;
    CHECK_NEAR(ens_alloc_predict(&a, m, d), 1000, 1e-6);
    ens_alloc_free(&a);
}

/* A speed its group measured while serving scales the device's work and replaces the
 * overhead term (the measured time already holds it): at speed 0.8 with 0.25 ms of
 * overhead a device of 1 ms a sample manages 800 samples/s, not 1 / 1.5 ms. */
static void test_measured_speed(void) {
    ens_alloc_model_t m[2] = {model("big", 1, 1, 1, 1, 700 * MB, 0),
                              model("mid", 1, 1, 1, 1, 400 * MB, 0)};
    ens_alloc_device_t d[2] = {{"d0", 1000 * MB, 0.8, 0.25, 1}, {"d1", 500 * MB, 0.8, 0.25, 1}};
    ens_alloc_t a;
    char err[256];
    CHECK_OK(ens_alloc_optimise(m, 2, d, 2, 50, &a, err, sizeof err));
    CHECK_NEAR(a.throughput, 800, 1e-6);
    double load[2];
    CHECK(ens_alloc_loads(&a, m, d, load));
    CHECK_NEAR(load[0], 1.25e-3, 1e-12);
    CHECK_NEAR(load[1], 1.25e-3, 1e-12);
    d[1].speed = 0.5; /* the slower device is now the bottleneck: 1 / 2 ms */
    CHECK_NEAR(ens_alloc_predict(&a, m, d), 500, 1e-6);
    CHECK_EQ_INT(a.bottleneck, 1);
    d[1].speed_measured = 0; /* a modelled speed: the overhead counts again */
    CHECK_NEAR(ens_alloc_predict(&a, m, d), 1000.0 / 2.25, 1e-6);
    ens_alloc_free(&a);
}

int main(void) {
    test_plan_rows();
    test_measured_speed();
    test_fits_one_way();
    test_overhead_term();
    test_bottleneck_gets_instance();
    test_batch_size_within_memory();
    test_infeasible_names_model();
    test_deterministic_and_no_worse();
    return check_done("test_placer_alloc");
}
