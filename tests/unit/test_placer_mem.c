/* test_placer_mem.c - the placer's handler on the in-memory state and a capture producer:
 * plans stored and produced, redelivery, the plan in force never rolled back, devices. */
#include "check.h"
#include "placer.h"

static char errstr[512];

/* e0 cheapest, e2 most accurate (as in test_placer.c). */
static const struct {
    const char *id;
    double cost, holdout;
    int n;
} specs[] = {{"ens-single", 1.0, 0.80, 1}, {"ens-top2", 3.0, 0.86, 2}, {"ens-top3", 6.0, 0.88, 3}};
#define N_SPECS 3

static void make_front(ens_event_t *ev, const char *study) {
    ens_event_init(ev, ENS_EV_ENSEMBLE_FRONT);
    ens_ensemble_front_t *f = &ev->u.ensemble_front;
    snprintf(f->study_id, sizeof f->study_id, "%s", study);
    snprintf(f->front_id, sizeof f->front_id, "front-1");
    f->n_models = 3;
    f->n_ensembles = N_SPECS;
    f->ensembles = calloc(N_SPECS, sizeof *f->ensembles);
    for (int i = 0; i < N_SPECS; i++) {
        ens_ensemble_t *e = &f->ensembles[i];
        snprintf(e->ensemble_id, sizeof e->ensemble_id, "%s", specs[i].id);
        snprintf(e->method, sizeof e->method, "%s", specs[i].n == 1 ? "single" : "topk");
        e->n_members = specs[i].n;
        e->members = calloc((size_t)specs[i].n, sizeof *e->members);
        e->weights = calloc((size_t)specs[i].n, sizeof *e->weights);
        for (int m = 0; m < specs[i].n; m++) {
            snprintf(e->members[m], ENS_ID_MAX, "model-%d", m + 1);
            e->weights[m] = 1.0 / specs[i].n;
        }
        e->val_accuracy = e->holdout_accuracy = specs[i].holdout;
        e->cost_ms_per_sample = specs[i].cost;
        e->memory_bytes = 100 * specs[i].n;
    }
}

static void make_deploy(ens_event_t *ev, const char *study, double max_cost) {
    ens_event_init(ev, ENS_EV_DEPLOY_COMMAND);
    snprintf(ev->u.deploy_command.study_id, ENS_ID_MAX, "%s", study);
    ev->u.deploy_command.max_cost_ms = max_cost;
}

/* The stored plan's version and ensemble (study NULL: the plan in force); -1 when none. */
static int64_t stored(ens_state_t *state, const char *study, char *ensemble_id) {
    ens_event_t plan;
    if (ens_state_plan_get(state, study, &plan, errstr, sizeof errstr))
        return -1;
    int64_t v = plan.u.placement_plan.version;
    snprintf(ensemble_id, ENS_ID_MAX, "%s", plan.u.placement_plan.ensemble_id);
    ens_event_free(&plan);
    return v;
}

/* The version of the i-th plan produced, or -1. */
static int64_t produced(const ens_kafka_t *producer, int i, const char *study) {
    const ens_kafka_captured_t *c = ens_kafka_captured(producer, i);
    if (!c)
        return -1;
    CHECK_STR(c->topic, ENS_TOPIC_PLACEMENT_PLANS);
    CHECK_STR(c->key, study);
    ens_event_t plan;
    if (ens_event_decode(c->payload, c->len, &plan, errstr, sizeof errstr))
        return -1;
    int64_t v = plan.type == ENS_EV_PLACEMENT_PLAN ? plan.u.placement_plan.version : -1;
    ens_event_free(&plan);
    return v;
}

int main(void) {
    ens_state_t *state = NULL;
    ens_kafka_t *producer = NULL;
    CHECK_OK(ens_state_mem_new(&state));
    CHECK_OK(ens_kafka_capture_new(&producer));
    if (!state || !producer)
        return check_done("test_placer_mem");
    const char *study = "s-plc-mem";
    char ens[ENS_ID_MAX] = "";
    ens_placer_t p = {.state = state, .producer = producer, .device = "cpu-0", .batch_size = 32};

    ens_event_t cmd1, cmd2, cmd3, cmd4, other;
    make_deploy(&cmd1, study, 0);
    /* no front yet: an invalid command, no version used, nothing produced */
    CHECK_EQ_INT(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(strstr(errstr, study) != NULL);
    int64_t v = 0;
    CHECK_EQ_INT(ens_state_plan_version_get(state, &v, errstr, sizeof errstr), ENS_ERR_NOTFOUND);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 0);

    ens_event_t front;
    make_front(&front, study);
    CHECK_OK(ens_state_front_put(state, study, &front, errstr, sizeof errstr));
    ens_event_free(&front);

    /* no device registered: every member on p.device */
    CHECK_OK(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr));
    CHECK_EQ_INT(stored(state, study, ens), 1);
    CHECK_STR(ens, "ens-top3");
    CHECK_EQ_INT(stored(state, NULL, ens), 1);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 1);
    CHECK_EQ_INT(produced(producer, 0, study), 1);
    ens_event_t plan;
    ens_err_t err = ens_state_deploy_get(state, study, cmd1.event_id, &plan, errstr,
                                         sizeof errstr);
    CHECK_OK(err);
    if (!err) {
        CHECK_EQ_INT(plan.u.placement_plan.n_members, 3);
        for (int i = 0; i < plan.u.placement_plan.n_members; i++) {
            CHECK_STR(plan.u.placement_plan.members[i].device, "cpu-0");
            CHECK_EQ_INT(plan.u.placement_plan.members[i].batch_size, 32);
        }
        ens_event_free(&plan);
    }
    /* redelivery: the same plan again, no new version */
    CHECK_OK(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr));
    CHECK_EQ_INT(produced(producer, 1, study), 1);
    CHECK_OK(ens_state_plan_version_get(state, &v, errstr, sizeof errstr));
    CHECK_EQ_INT(v, 1);

    make_deploy(&cmd2, study, 3.5);
    CHECK_OK(ens_placer_handle(&p, &cmd2, errstr, sizeof errstr));
    CHECK_EQ_INT(stored(state, study, ens), 2);
    CHECK_STR(ens, "ens-top2");
    CHECK_EQ_INT(produced(producer, 2, study), 2);
    /* the older command redelivered: its plan is produced again, the plan in force stays */
    CHECK_OK(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr));
    CHECK_EQ_INT(produced(producer, 3, study), 1);
    CHECK_EQ_INT(stored(state, study, ens), 2);
    CHECK_EQ_INT(stored(state, NULL, ens), 2);
    CHECK_STR(ens, "ens-top2");

    /* an impossible constraint: invalid, naming the cheapest; the plan stays */
    make_deploy(&cmd3, study, 0.01);
    CHECK_EQ_INT(ens_placer_handle(&p, &cmd3, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(strstr(errstr, "ens-single") != NULL);
    CHECK_EQ_INT(stored(state, study, ens), 2);
    CHECK_EQ_INT(ens_kafka_captured_count(producer), 4);
    ens_event_init(&other, ENS_EV_TRIAL_JOB);
    CHECK_EQ_INT(ens_placer_handle(&p, &other, errstr, sizeof errstr), ENS_ERR_INVALID);

    /* a registered device that measured speed 0.5, members at 1 ms a sample: the plan
     * predicts 1 / (2 ms x members) and stores the compute at the profiles' speed */
    for (int m = 1; m <= 3; m++) {
        char id[ENS_ID_MAX];
        snprintf(id, sizeof id, "model-%d", m);
        ens_state_eval_t rec = {.ms_per_sample = 1, .batch_size = 32, .n_params = 1000,
                                .memory_bytes = 8000, .ms_per_sample_b = {1, 1, 1, 1}};
        CHECK_OK(ens_state_eval_put(state, study, id, &rec, errstr, sizeof errstr));
    }
    ens_device_t dev = {.device_id = "dev-a", .kind = "cpu", .worker = "w",
                        .memory_bytes = 1000000000LL, .cores = 1, .overhead_ms = 0.25,
                        .speed = 0.5};
    CHECK_OK(ens_state_device_put(state, &dev, 30, errstr, sizeof errstr));
    make_deploy(&cmd4, study, 0);
    CHECK_OK(ens_placer_handle(&p, &cmd4, errstr, sizeof errstr));
    err = ens_state_plan_get(state, study, &plan, errstr, sizeof errstr);
    CHECK_OK(err);
    if (!err) {
        const ens_placement_plan_t *pl = &plan.u.placement_plan;
        CHECK_EQ_INT(pl->version, 3);
        int n = pl->n_members;
        CHECK(n >= 1 && !strcmp(pl->members[0].device, "dev-a"));
        CHECK_NEAR(pl->predicted_throughput, 1000.0 / (2.0 * n), 1e-6);
        double ms = 0;
        CHECK_OK(ens_state_plan_compute_get(state, pl->version, "dev-a", &ms, errstr,
                                            sizeof errstr));
        CHECK_NEAR(ms, (double)n, 1e-6);
        ens_event_free(&plan);
    }
    CHECK_EQ_INT(produced(producer, 4, study), 3);

    ens_event_free(&cmd1);
    ens_event_free(&cmd2);
    ens_event_free(&cmd3);
    ens_event_free(&cmd4);
    ens_event_free(&other);
    ens_kafka_free(producer);
    ens_state_free(state);
    return check_done("test_placer_mem");
}
