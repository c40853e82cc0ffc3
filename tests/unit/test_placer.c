/* test_placer.c - ensemble choice under constraints, plan filling, and the idempotent handler. */
#include "placer.h"

#include <unistd.h>

#include "check.h"
#include "ensflow/ensemble.h"
#include "ensflow/registry.h"

static char errstr[512];

typedef struct {
    const char *id;
    double cost, holdout, val;
    int64_t mem;
    int n;
} spec_t;

/* e0 cheapest; e2 most accurate; e3 ties e1 on holdout but wins on selection accuracy. */
static const spec_t specs[] = {{"ens-single", 1.0, 0.80, 0.81, 100, 1},
                               {"ens-top2", 3.0, 0.86, 0.85, 300, 2},
                               {"ens-top3", 6.0, 0.88, 0.87, 600, 3},
                               {"ens-tie", 4.0, 0.86, 0.87, 400, 2}};
#define N_SPECS 4

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
        e->val_accuracy = specs[i].val;
        e->holdout_accuracy = specs[i].holdout;
        e->cost_ms_per_sample = specs[i].cost;
        e->memory_bytes = specs[i].mem;
    }
}

/* Choose under the constraints; returns the chosen index or -1 (errstr filled). */
static int choose(const ens_ensemble_front_t *f, const char *id, double max_cost, int64_t max_mem,
                  double min_acc, ens_err_t *err_out) {
    ens_deploy_command_t cmd = {0};
    snprintf(cmd.study_id, sizeof cmd.study_id, "%s", f->study_id);
    snprintf(cmd.ensemble_id, sizeof cmd.ensemble_id, "%s", id);
    cmd.max_cost_ms = max_cost;
    cmd.max_memory_bytes = max_mem;
    cmd.min_accuracy = min_acc;
    int idx = -1;
    errstr[0] = '\0';
    ens_err_t err = ens_ensemble_choose_front(f, &cmd, &idx, errstr, sizeof errstr);
    if (err_out)
        *err_out = err;
    return err ? -1 : idx;
}

static void test_choose(void) {
    ens_event_t ev;
    make_front(&ev, "s-choose");
    const ens_ensemble_front_t *f = &ev.u.ensemble_front;
    ens_err_t err;
    CHECK_EQ_INT(choose(f, "", 0, 0, 0, NULL), 2);    /* most accurate on holdout */
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 3);  /* e2 too dear; e3 wins the tie */
    CHECK_EQ_INT(choose(f, "", 3.5, 0, 0, NULL), 1);
    CHECK_EQ_INT(choose(f, "", 0, 150, 0, NULL), 0);  /* memory */
    CHECK_EQ_INT(choose(f, "", 0, 0, 0.87, NULL), 2); /* min accuracy */
    CHECK_EQ_INT(choose(f, "", 3.5, 0, 0.85, NULL), 1);
    CHECK_EQ_INT(choose(f, "", 6.0, 600, 0.88, NULL), 2); /* bounds are inclusive */

    CHECK_EQ_INT(choose(f, "", 0, 0, 0.95, &err), -1);
    CHECK_EQ_INT(err, ENS_ERR_NOTFOUND);
    CHECK(strstr(errstr, "ens-single") != NULL); /* names the cheapest */
    CHECK_EQ_INT(choose(f, "", 0.5, 0, 0, &err), -1);
    CHECK_EQ_INT(err, ENS_ERR_NOTFOUND);
    CHECK(strstr(errstr, "ens-single") != NULL);

    /* a named ensemble is taken as is, constraints aside */
    CHECK_EQ_INT(choose(f, "ens-top2", 0.5, 0, 0, NULL), 1);
    CHECK_EQ_INT(choose(f, "nope", 0, 0, 0, &err), -1);
    CHECK_EQ_INT(err, ENS_ERR_NOTFOUND);
    CHECK(strstr(errstr, "nope") != NULL);

    ens_ensemble_front_t empty = *f;
    empty.n_ensembles = 0;
    CHECK_EQ_INT(choose(&empty, "", 0, 0, 0, &err), -1);
    CHECK_EQ_INT(err, ENS_ERR_NOTFOUND);
    ens_event_free(&ev);
}

/* A v2 front (log-losses known): the highest holdout accuracy within the limits wins, though
 * its log-loss is worse; log-loss breaks ties in holdout accuracy. */
static void test_choose_logloss(void) {
    ens_event_t ev;
    make_front(&ev, "s-ll");
    ens_ensemble_front_t *f = &ev.u.ensemble_front;
    /* single 0.50; top2 0.36 (holdout 0.86); top3 0.40 (0.88); tie 0.35 (0.86) */
    static const double ll[N_SPECS] = {0.50, 0.36, 0.40, 0.35};
    for (int i = 0; i < N_SPECS; i++) {
        f->ensembles[i].holdout_logloss = ll[i];
        f->ensembles[i].val_logloss = ll[i] + 0.01;
    }
    f->ensembles[3].val_accuracy = 0.84; /* below top2 on selection, yet lower log-loss */
    ens_err_t err;
    CHECK_EQ_INT(choose(f, "", 0, 0, 0, NULL), 2);   /* accuracy, not log-loss */
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 3); /* a tie on holdout: log-loss */
    CHECK_EQ_INT(choose(f, "", 3.5, 0, 0, NULL), 1);
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0.87, &err), -1); /* min accuracy is holdout accuracy */
    CHECK_EQ_INT(err, ENS_ERR_NOTFOUND);
    CHECK_EQ_INT(choose(f, "", 5.0, 350, 0, NULL), 1); /* memory */
    CHECK_EQ_INT(choose(f, "ens-single", 0, 0, 0, NULL), 0);

    /* ties: equal holdout accuracy -> lower holdout log-loss -> selection accuracy -> cheaper */
    f->ensembles[3].holdout_logloss = 0.37;
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 1);
    f->ensembles[3].holdout_logloss = f->ensembles[1].holdout_logloss;
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 1); /* 0.85 against 0.84 on selection */
    f->ensembles[3].val_accuracy = 0.86;
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 3);
    f->ensembles[3].val_accuracy = f->ensembles[1].val_accuracy;
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 1); /* cheaper (3.0 against 4.0) */

    /* the pick does not depend on the order of the front */
    ens_ensemble_t t = f->ensembles[1];
    f->ensembles[1] = f->ensembles[3];
    f->ensembles[3] = t;
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 3);
    CHECK_STR(f->ensembles[3].ensemble_id, "ens-top2");

    /* one ensemble without its log-loss (0: an old front): accuracy, then selection accuracy */
    f->ensembles[0].holdout_logloss = 0;
    f->ensembles[1].holdout_logloss = 0.30; /* ens-tie, now at 1: no longer counts */
    f->ensembles[1].val_accuracy = 0.84;
    CHECK_EQ_INT(choose(f, "", 0, 0, 0, NULL), 2);
    CHECK_EQ_INT(choose(f, "", 5.0, 0, 0, NULL), 3);
    ens_event_free(&ev);
}

static void test_plan(void) {
    ens_event_t ev, plan;
    make_front(&ev, "s-plan");
    ens_placer_t p = {NULL, NULL, "cpu-0", 64};
    ens_event_init(&plan, ENS_EV_PLACEMENT_PLAN);
    CHECK_OK(ens_placer_plan(&p, "s-plan", &ev.u.ensemble_front.ensembles[2], 7, &plan));
    const ens_placement_plan_t *pl = &plan.u.placement_plan;
    CHECK_STR(pl->study_id, "s-plan");
    CHECK_STR(pl->ensemble_id, "ens-top3");
    CHECK_EQ_INT(pl->version, 7);
    CHECK(pl->plan_id[0] != '\0');
    CHECK_EQ_INT(pl->n_members, 3);
    double wsum = 0;
    for (int i = 0; i < pl->n_members; i++) {
        char want[ENS_ID_MAX];
        snprintf(want, sizeof want, "model-%d", i + 1);
        CHECK_STR(pl->members[i].model_id, want);
        CHECK_NEAR(pl->members[i].weight, 1.0 / 3, 1e-12);
        CHECK_STR(pl->members[i].device, "cpu-0");
        CHECK_EQ_INT(pl->members[i].instances, 1);
        CHECK_EQ_INT(pl->members[i].batch_size, 64);
        wsum += pl->members[i].weight;
    }
    CHECK_NEAR(wsum, 1.0, 1e-12);
    CHECK_NEAR(pl->predicted_throughput, 1000.0 / 6.0, 1e-9);
    /* the plan encodes and decodes */
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_event_t back;
    CHECK_OK(ens_event_encode(&plan, &buf, &len, errstr, sizeof errstr));
    CHECK_OK(ens_event_decode(buf, len, &back, errstr, sizeof errstr));
    CHECK_EQ_INT(back.u.placement_plan.n_members, 3);
    free(buf);
    ens_event_free(&back);
    ens_event_free(&plan);
    ens_event_free(&ev);
}

/* Decode the plan stored at ens:{study}:plan; version -1 when absent. */
static int64_t stored_plan(ens_redis_t *r, const char *study, char *ensemble_id) {
    char key[256];
    ens_key(key, sizeof key, study, "plan");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "GET %s", key);
    int64_t v = -1;
    ens_event_t ev;
    if (rep && rep->type == ENS_REPLY_STRING &&
        ens_event_decode((const uint8_t *)rep->str, rep->len, &ev, errstr, sizeof errstr) ==
            ENS_OK) {
        v = ev.u.placement_plan.version;
        snprintf(ensemble_id, ENS_ID_MAX, "%s", ev.u.placement_plan.ensemble_id);
        ens_event_free(&ev);
    }
    ens_redis_reply_free(rep);
    return v;
}

static void make_deploy(ens_event_t *ev, const char *study, double max_cost) {
    ens_event_init(ev, ENS_EV_DEPLOY_COMMAND);
    snprintf(ev->u.deploy_command.study_id, ENS_ID_MAX, "%s", study);
    ev->u.deploy_command.max_cost_ms = max_cost;
}

static void test_handle(ens_redis_t *r, ens_kafka_t *producer) {
    char study[64], key[256], ens[ENS_ID_MAX] = "";
    snprintf(study, sizeof study, "plc-%d-%lld", (int)getpid(), (long long)ens_now_ms());
    ens_state_t *state = NULL;
    CHECK_OK(ens_state_redis_new(r, NULL, &state));
    ens_placer_t p = {state, producer, "cpu-0", 32};

    ens_event_t cmd1, cmd2;
    make_deploy(&cmd1, study, 0);
    /* no front yet: an error, no plan */
    CHECK_EQ_INT(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(strstr(errstr, study) != NULL);

    ens_event_t front;
    make_front(&front, study);
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_OK(ens_event_encode(&front, &buf, &len, errstr, sizeof errstr));
    ens_key(key, sizeof key, study, "front");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SET %s %b", key, buf, len));
    free(buf);
    ens_event_free(&front);

    CHECK_OK(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr));
    int64_t v1 = stored_plan(r, study, ens);
    CHECK(v1 > 0);
    CHECK_STR(ens, "ens-top3");
    /* redelivery: the same version again */
    CHECK_OK(ens_placer_handle(&p, &cmd1, errstr, sizeof errstr));
    CHECK_EQ_INT(stored_plan(r, study, ens), v1);

    make_deploy(&cmd2, study, 3.5);
    CHECK_OK(ens_placer_handle(&p, &cmd2, errstr, sizeof errstr));
    int64_t v2 = stored_plan(r, study, ens);
    CHECK(v2 > v1);
    CHECK_STR(ens, "ens-top2");
    CHECK_OK(ens_placer_handle(&p, &cmd2, errstr, sizeof errstr));
    CHECK_EQ_INT(stored_plan(r, study, ens), v2);

    /* an impossible constraint is an invalid command, and the stored plan stays */
    ens_event_t cmd3;
    make_deploy(&cmd3, study, 0.01);
    CHECK_EQ_INT(ens_placer_handle(&p, &cmd3, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(strstr(errstr, "ens-single") != NULL);
    CHECK_EQ_INT(stored_plan(r, study, ens), v2);

    /* not a deploy command */
    ens_event_t other;
    ens_event_init(&other, ENS_EV_TRIAL_JOB);
    CHECK_EQ_INT(ens_placer_handle(&p, &other, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_OK(ens_kafka_flush(producer, 10000, errstr, sizeof errstr));

    /* on a registered device whose group measured speed 0.5, with each member at 1 ms a
     * sample in its profile: the plan predicts 1 / (2 ms x members), and the compute stored
     * for the group to measure against is at the profiles' speed (1 ms x members), so that
     * what the group then measures is its own speed, not one relative to 0.5 */
    for (int m = 1; m <= 3; m++) {
        ens_key(key, sizeof key, study, "eval:model-%d", m);
        CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr,
                                "HSET %s ms_per_sample 1 batch_size 32 n_params 1000 memory_bytes "
                                "8000 ms_per_sample_b1 1 ms_per_sample_b8 1 ms_per_sample_b32 1 "
                                "ms_per_sample_b128 1",
                                key));
    }
    ens_device_t dev = {.kind = "cpu", .worker = "w", .memory_bytes = 1000000000LL, .cores = 1,
                        .overhead_ms = 0.25, .speed = 0.5};
    snprintf(dev.device_id, sizeof dev.device_id, "%.40s-dev", study);
    CHECK_OK(ens_registry_heartbeat(r, &dev, 30, errstr, sizeof errstr));
    ens_event_t cmd4;
    make_deploy(&cmd4, study, 0);
    CHECK_OK(ens_placer_handle(&p, &cmd4, errstr, sizeof errstr));
    ens_key(key, sizeof key, study, "plan");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "GET %s", key);
    ens_event_t plan;
    CHECK(rep && rep->type == ENS_REPLY_STRING);
    if (rep && rep->type == ENS_REPLY_STRING &&
        ens_event_decode((const uint8_t *)rep->str, rep->len, &plan, errstr, sizeof errstr) ==
            ENS_OK) {
        const ens_placement_plan_t *pl = &plan.u.placement_plan;
        int n = pl->n_members; /* one row a member: a single device */
        CHECK(n >= 1 && !strcmp(pl->members[0].device, dev.device_id));
        /* measured speed: the overhead is in it, not added again */
        CHECK_NEAR(pl->predicted_throughput, 1000.0 / (2.0 * n), 1e-6);
        ens_redis_reply_t *c = ens_redis_command(r, errstr, sizeof errstr,
                                          "HGET ens:plan:%lld:compute %s",
                                          (long long)pl->version, dev.device_id);
        CHECK(c && c->type == ENS_REPLY_STRING);
        if (c && c->type == ENS_REPLY_STRING)
            CHECK_NEAR(strtod(c->str, NULL), (double)n, 1e-6);
        ens_redis_reply_free(c);
        ens_event_free(&plan);
    }
    ens_redis_reply_free(rep);
    CHECK_OK(ens_registry_remove(r, dev.device_id, errstr, sizeof errstr));
    ens_event_free(&cmd4);

    ens_key(key, sizeof key, study, "front");
    ens_redis_exec(r, errstr, sizeof errstr, "DEL %s", key);
    ens_event_free(&cmd1);
    ens_event_free(&cmd2);
    ens_event_free(&cmd3);
    ens_event_free(&other);
    ens_state_free(state);
}

int main(void) {
    test_choose();
    test_choose_logloss();
    test_plan();

    const char *url = check_env_file("redis.url"), *boot = check_env_file("bootstrap");
    if (!url || !boot) {
        fprintf(stderr, "test_placer: no %s from the harness; skipping ens_placer_handle\n",
                url ? "bootstrap" : "redis.url");
        return check_done("test_placer");
    }
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    char flag[600];
    snprintf(flag, sizeof flag, "--kafka-bootstrap=%s", boot);
    char *argv[] = {"test", flag};
    static const ens_conf_def_t no_defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    ens_kafka_t *producer = NULL;
    CHECK_OK(ens_conf_new("test", no_defs, 2, argv, &conf, errstr, sizeof errstr));
    if (conf)
        CHECK_OK(ens_kafka_producer_new(conf, &producer, errstr, sizeof errstr));
    if (r && producer)
        test_handle(r, producer);
    ens_kafka_free(producer);
    ens_conf_free(conf);
    ens_redis_free(r);
    return check_done("test_placer");
}
