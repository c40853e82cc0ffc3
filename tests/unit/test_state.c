/* test_state.c - the state layer: the same checks on every implementation (in memory, and
 * Redis when the harness runs), the float16 codec, and the Redis keys and fields as the
 * previous version wrote and read them. */
#include <unistd.h>

#include "check.h"
#include "ensflow/state.h"

static char errstr[512];

static int has(char **v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return 1;
    return 0;
}

static void plan_event(ens_event_t *ev, const char *study, int64_t version) {
    ens_event_init(ev, ENS_EV_PLACEMENT_PLAN);
    ens_placement_plan_t *pl = &ev->u.placement_plan;
    snprintf(pl->study_id, sizeof pl->study_id, "%s", study);
    snprintf(pl->plan_id, sizeof pl->plan_id, "plan-v%lld", (long long)version);
    pl->version = version;
}

/* Every operation on st, in study; what one implementation does, the other must too. */
static void test_ops(ens_state_t *st, const char *study) {
    const char *name = ens_state_name(st);
    fprintf(stderr, "test_state: %s\n", name);
    ens_state_study_t s;
    CHECK_EQ_INT(ens_state_study_get(st, study, &s, errstr, sizeof errstr), ENS_ERR_NOTFOUND);
    CHECK_EQ_INT(s.top_k, 5); /* defaults */
    CHECK_NEAR(s.val_fraction, 0.1, 1e-12);

    /* evaluations: the evaluator's fields, then the selector's, neither erasing the other */
    ens_state_eval_t e = {.trial_id = "t-1", .val_accuracy = 0.75, .val_logloss = 0.5,
                          .n_params = 1234, .flops_per_sample = 2500, .ms_per_sample = 0.25,
                          .batch_size = 32, .memory_bytes = 99999,
                          .ms_per_sample_b = {1.5, 0.5, 0.25, 0.125}, .n_val = 4,
                          .n_classes = 2, .probs_f16 = 1},
                     got;
    CHECK_EQ_INT(ens_state_eval_get(st, study, "m-1", &got, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    ens_state_eval_t halves = {.sel_accuracy = 0.5, .holdout_accuracy = 0.25,
                               .sel_logloss = 1.5, .holdout_logloss = 2.5};
    CHECK_OK(ens_state_eval_put_halves(st, study, "m-1", &halves, errstr, sizeof errstr));
    CHECK_EQ_INT(ens_state_eval_get(st, study, "m-1", &got, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND); /* the selector's fields alone are no evaluation */
    CHECK_NEAR(got.sel_accuracy, 0.5, 1e-12);
    CHECK_OK(ens_state_eval_put(st, study, "m-1", &e, errstr, sizeof errstr));
    CHECK_OK(ens_state_eval_get(st, study, "m-1", &got, errstr, sizeof errstr));
    CHECK_STR(got.trial_id, "t-1");
    CHECK_NEAR(got.val_accuracy, 0.75, 1e-12);
    CHECK_EQ_INT(got.n_params, 1234);
    CHECK_EQ_INT(got.flops_per_sample, 2500);
    CHECK_EQ_INT(got.batch_size, 32);
    CHECK_EQ_INT(got.memory_bytes, 99999);
    CHECK_NEAR(got.ms_per_sample_b[0], 1.5, 1e-12);
    CHECK_NEAR(got.ms_per_sample_b[3], 0.125, 1e-12);
    CHECK_EQ_INT(got.n_val, 4);
    CHECK_EQ_INT(got.n_classes, 2);
    CHECK(got.probs_f16);
    CHECK_NEAR(got.holdout_logloss, 2.5, 1e-12);

    /* probabilities: float16 on the way in, float32 on the way out */
    const float p[8] = {0.5f, 0.5f, 0.25f, 0.75f, 0.1f, 0.9f, 1.0f, 0.0f};
    CHECK_OK(ens_state_probs_put(st, study, "m-1", p, 4, 2, errstr, sizeof errstr));
    float *back = NULL;
    CHECK_OK(ens_state_probs_get(st, study, "m-1", 4, 2, 1, &back, errstr, sizeof errstr));
    for (int i = 0; back && i < 8; i++)
        CHECK(fabsf(back[i] - p[i]) <= p[i] * 0x1p-11f);
    free(back);
    back = NULL;
    CHECK_EQ_INT(ens_state_probs_get(st, study, "m-1", 4, 3, 1, &back, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK(back == NULL);
    CHECK_EQ_INT(ens_state_probs_get(st, study, "m-2", 4, 2, 1, &back, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    const int32_t y[4] = {0, 1, 1, 0};
    int32_t *labels = NULL;
    CHECK_OK(ens_state_labels_put(st, study, y, 4, errstr, sizeof errstr));
    CHECK_OK(ens_state_labels_get(st, study, 4, 2, &labels, errstr, sizeof errstr));
    CHECK(labels && !memcmp(labels, y, sizeof y));
    free(labels);
    CHECK_EQ_INT(ens_state_labels_get(st, study, 5, 2, &labels, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK_EQ_INT(ens_state_labels_get(st, study, 4, 1, &labels, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT); /* a label out of range */

    /* library and dirty marks: sets */
    char **v = NULL;
    int n = -1;
    CHECK_OK(ens_state_library_list(st, study, &v, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);
    ens_state_strings_free(v, n);
    CHECK_OK(ens_state_library_add(st, study, "m-1", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_add(st, study, "m-2", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_add(st, study, "m-1", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_list(st, study, &v, &n, errstr, sizeof errstr));
    CHECK(n == 2 && has(v, n, "m-1") && has(v, n, "m-2"));
    ens_state_strings_free(v, n);
    CHECK_OK(ens_state_dirty_add(st, study, errstr, sizeof errstr));
    CHECK_OK(ens_state_dirty_list(st, &v, &n, errstr, sizeof errstr));
    CHECK(has(v, n, study));
    ens_state_strings_free(v, n);
    CHECK_OK(ens_state_dirty_remove(st, study, errstr, sizeof errstr));
    CHECK_OK(ens_state_dirty_list(st, &v, &n, errstr, sizeof errstr));
    CHECK(!has(v, n, study));
    ens_state_strings_free(v, n);

    /* fronts and plans: events, type-checked */
    ens_event_t front, ev, plan;
    ens_event_init(&front, ENS_EV_ENSEMBLE_FRONT);
    snprintf(front.u.ensemble_front.study_id, ENS_ID_MAX, "%s", study);
    front.u.ensemble_front.n_models = 7;
    CHECK_EQ_INT(ens_state_front_get(st, study, &ev, errstr, sizeof errstr), ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_front_put(st, study, &front, errstr, sizeof errstr));
    if (!ens_state_front_get(st, study, &ev, errstr, sizeof errstr)) {
        CHECK_EQ_INT(ev.u.ensemble_front.n_models, 7);
        CHECK_STR(ev.event_id, front.event_id);
        ens_event_free(&ev);
    } else
        CHECK(0);
    CHECK_EQ_INT(ens_state_plan_put(st, study, &front, errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_event_free(&front);
    int64_t v0 = 0, v1 = 0, vg = 0;
    ens_err_t err = ens_state_plan_version_get(st, &v0, errstr, sizeof errstr);
    CHECK(err == ENS_OK || err == ENS_ERR_NOTFOUND); /* Redis: other tests' versions */
    CHECK_OK(ens_state_plan_version_next(st, &v1, errstr, sizeof errstr));
    CHECK(v1 == (err ? 1 : v0 + 1));
    CHECK_OK(ens_state_plan_version_get(st, &vg, errstr, sizeof errstr));
    CHECK_EQ_INT(vg, v1);
    plan_event(&plan, study, v1);
    CHECK_EQ_INT(ens_state_deploy_get(st, study, "cmd-1", &ev, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_deploy_put(st, study, "cmd-1", &plan, errstr, sizeof errstr));
    if (!ens_state_deploy_get(st, study, "cmd-1", &ev, errstr, sizeof errstr)) {
        CHECK_EQ_INT(ev.u.placement_plan.version, v1);
        ens_event_free(&ev);
    } else
        CHECK(0);
    CHECK_OK(ens_state_plan_put(st, study, &plan, errstr, sizeof errstr));
    if (!ens_state_plan_get(st, study, &ev, errstr, sizeof errstr)) {
        CHECK_EQ_INT(ev.u.placement_plan.version, v1);
        ens_event_free(&ev);
    } else
        CHECK(0);
    if (!ens_state_plan_get(st, NULL, &ev, errstr, sizeof errstr)) {
        CHECK_STR(ev.u.placement_plan.study_id, study);
        ens_event_free(&ev);
    } else
        CHECK(0);
    ens_event_free(&plan);
    const char *devs[2] = {"dev-x", "dev-y"};
    const double ms[2] = {2.5, 0};
    CHECK_OK(ens_state_plan_compute_put(st, v1, devs, ms, 2, errstr, sizeof errstr));
    double got_ms = 0;
    CHECK_OK(ens_state_plan_compute_get(st, v1, "dev-x", &got_ms, errstr, sizeof errstr));
    CHECK_NEAR(got_ms, 2.5, 1e-9);
    CHECK_EQ_INT(ens_state_plan_compute_get(st, v1, "dev-y", &got_ms, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND); /* no compute: not stored */

    /* devices, sorted by id */
    char d1[ENS_ID_MAX], d2[ENS_ID_MAX];
    snprintf(d1, sizeof d1, "%.40s-b", study);
    snprintf(d2, sizeof d2, "%.40s-a", study);
    ens_device_t a = {.kind = "cpu", .worker = "w", .memory_bytes = 1 << 20, .cores = 2,
                      .speed = 0.5},
                 b = a;
    snprintf(a.device_id, sizeof a.device_id, "%s", d1);
    snprintf(b.device_id, sizeof b.device_id, "%s", d2);
    CHECK_OK(ens_state_device_put(st, &a, 30, errstr, sizeof errstr));
    CHECK_OK(ens_state_device_put(st, &b, 30, errstr, sizeof errstr));
    ens_device_t *list = NULL;
    CHECK_OK(ens_state_device_list(st, &list, &n, errstr, sizeof errstr));
    int ia = -1, ib = -1;
    for (int i = 0; i < n; i++) {
        if (!strcmp(list[i].device_id, d1))
            ia = i;
        if (!strcmp(list[i].device_id, d2))
            ib = i;
    }
    CHECK(ia >= 0 && ib >= 0 && ib < ia);
    if (ia >= 0) {
        CHECK_NEAR(list[ia].speed, 0.5, 1e-6);
        CHECK_EQ_INT(list[ia].memory_bytes, 1 << 20);
    }
    free(list);
    CHECK_OK(ens_state_device_remove(st, d1, errstr, sizeof errstr));
    CHECK_OK(ens_state_device_remove(st, d2, errstr, sizeof errstr));

    /* arguments checked before any implementation sees them */
    CHECK_EQ_INT(ens_state_library_add(st, "", "m", errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_state_eval_get(st, study, NULL, &got, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
}

/* Keys and fields as the previous version wrote and read them. */
static void test_redis_compat(ens_redis_t *r, ens_state_t *st, const char *study) {
    char key[256];
    /* what the evaluator wrote: the eval hash with probs_dtype, the chunked blobs */
    ens_key(key, sizeof key, study, "eval:m-1");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr,
                                        "HMGET %s probs_dtype ms_per_sample_b128 n_params "
                                        "sel_accuracy",
                                        key);
    CHECK(rep && rep->type == ENS_REPLY_ARRAY && rep->elements == 4);
    if (rep && rep->type == ENS_REPLY_ARRAY && rep->elements == 4) {
        CHECK(rep->element[0]->str && !strcmp(rep->element[0]->str, "float16"));
        CHECK(rep->element[1]->str && !strcmp(rep->element[1]->str, "0.125000"));
        CHECK(rep->element[2]->str && !strcmp(rep->element[2]->str, "1234"));
        CHECK(rep->element[3]->str && !strcmp(rep->element[3]->str, "0.500000"));
    }
    ens_redis_reply_free(rep);
    void *blob = NULL;
    size_t len = 0;
    ens_key(key, sizeof key, study, "probs:m-1");
    CHECK_OK(ens_store_blob_get(r, key, &blob, &len, errstr, sizeof errstr));
    CHECK_EQ_INT(len, 8 * 2);
    if (blob && len == 16)
        CHECK_EQ_INT(((uint16_t *)blob)[0], 0x3800); /* 0.5 */
    free(blob);
    ens_key(key, sizeof key, study, "val_labels");
    CHECK_OK(ens_store_blob_get(r, key, &blob, &len, errstr, sizeof errstr));
    CHECK_EQ_INT(len, 4 * sizeof(int32_t));
    free(blob);
    ens_key(key, sizeof key, study, "library");
    rep = ens_redis_command(r, errstr, sizeof errstr, "SISMEMBER %s m-2", key);
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1);
    ens_redis_reply_free(rep);
    const char *plain[] = {"front", "plan", "deploy:cmd-1"};
    for (int i = 0; i < 3; i++) {
        ens_key(key, sizeof key, study, "%s", plain[i]);
        rep = ens_redis_command(r, errstr, sizeof errstr, "TYPE %s", key);
        CHECK(rep && rep->type == ENS_REPLY_STATUS && !strcmp(rep->str, "string"));
        ens_redis_reply_free(rep);
    }
    rep = ens_redis_command(r, errstr, sizeof errstr, "TYPE ens:plan:current");
    CHECK(rep && rep->type == ENS_REPLY_STATUS && !strcmp(rep->str, "string"));
    ens_redis_reply_free(rep);

    /* a study of the previous version: float32 probabilities, no probs_dtype; the study hash */
    ens_key(key, sizeof key, study, "eval:old");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr,
                            "HSET %s ms_per_sample 0.5 memory_bytes 10 n_val 2 n_classes 2", key));
    const float p32[4] = {0.125f, 0.875f, 0.3f, 0.7f};
    ens_key(key, sizeof key, study, "probs:old");
    CHECK_OK(ens_store_blob_put(r, key, p32, sizeof p32, 0, errstr, sizeof errstr));
    ens_state_eval_t e;
    CHECK_OK(ens_state_eval_get(st, study, "old", &e, errstr, sizeof errstr));
    CHECK(!e.probs_f16);
    float *probs = NULL;
    CHECK_OK(ens_state_probs_get(st, study, "old", 2, 2, e.probs_f16, &probs, errstr,
                                 sizeof errstr));
    CHECK(probs && !memcmp(probs, p32, sizeof p32)); /* read as it is */
    free(probs);
    ens_key(key, sizeof key, study, "study");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "HSET %s dataset d.csv seed 9 top_k 4 "
                            "status complete created_ms 1700000000123 deadline_ms 1700000600123",
                            key));
    ens_state_study_t s;
    CHECK_OK(ens_state_study_get(st, study, &s, errstr, sizeof errstr));
    CHECK_STR(s.dataset, "d.csv");
    CHECK_EQ_INT(s.seed, 9);
    CHECK_EQ_INT(s.top_k, 4);
    CHECK_NEAR(s.val_fraction, 0.1, 1e-12);
    CHECK_STR(s.status, "complete");
    CHECK(s.created_ms == 1700000000123LL && s.deadline_ms == 1700000600123LL);
    /* writes the Redis state leaves to other services */
    CHECK_EQ_INT(ens_state_study_put(st, study, &s, errstr, sizeof errstr),
                 ENS_ERR_UNSUPPORTED);
    CHECK_EQ_INT(ens_state_model_put(st, study, "m", "x", 1, errstr, sizeof errstr),
                 ENS_ERR_UNSUPPORTED);

    const char *suffixes[] = {"eval:m-1", "eval:old", "probs:old", "library", "front", "plan",
                              "deploy:cmd-1", "study"};
    for (int i = 0; i < 8; i++) {
        ens_key(key, sizeof key, study, "%s", suffixes[i]);
        ens_redis_exec(r, errstr, sizeof errstr, "DEL %s", key);
    }
    ens_key(key, sizeof key, study, "probs:m-1");
    ens_store_blob_del(r, key, errstr, sizeof errstr);
    ens_key(key, sizeof key, study, "val_labels");
    ens_store_blob_del(r, key, errstr, sizeof errstr);
}

/* The trainers: heartbeat, state, busy seconds, partitions record, leaving. Counts are taken
 * relative to what was there, ids are the caller's own. */
static void test_trainers(ens_state_t *st, const char *a, const char *b) {
    int64_t now = ens_now_ms();
    int live0 = -1, live = -1, n = 0;
    CHECK_OK(ens_state_trainer_live(st, now - 15000, &live0, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_beat(st, a, now, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_beat(st, b, now - 60000, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_live(st, now - 15000, &live, errstr, sizeof errstr));
    CHECK_EQ_INT(live, live0 + 1);
    CHECK_OK(ens_state_trainer_state_put(st, a, "busy s-1 t-0001-e1", errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_busy_add(st, a, 1.25, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_busy_add(st, a, 0.5004, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_parts_put(st, a, "1234 0,2", errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_parts_put(st, b, "99 -", errstr, sizeof errstr));
    ens_state_trainer_t tr;
    CHECK_OK(ens_state_trainer_get(st, a, &tr, errstr, sizeof errstr));
    CHECK_EQ_INT(tr.beat_ms, now);
    CHECK_STR(tr.state, "busy s-1 t-0001-e1");
    CHECK_NEAR(tr.busy_s, 1.75, 1e-9);
    CHECK_STR(tr.parts, "1234 0,2");
    char **ids = NULL, **recs = NULL;
    CHECK_OK(ens_state_trainer_parts_list(st, &ids, &recs, &n, errstr, sizeof errstr));
    int found = 0;
    for (int i = 0; i < n; i++)
        found += (!strcmp(ids[i], a) && !strcmp(recs[i], "1234 0,2")) +
                 (!strcmp(ids[i], b) && !strcmp(recs[i], "99 -"));
    CHECK_EQ_INT(found, 2);
    ens_state_strings_free(ids, n);
    ens_state_strings_free(recs, n);
    CHECK_OK(ens_state_trainer_state_list(st, &ids, &recs, &n, errstr, sizeof errstr));
    CHECK(has(ids, n, a) && !has(ids, n, b));
    ens_state_strings_free(ids, n);
    ens_state_strings_free(recs, n);
    /* a record that cannot be told is removed, not left to be trusted */
    CHECK_OK(ens_state_trainer_parts_put(st, b, NULL, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_get(st, b, &tr, errstr, sizeof errstr));
    CHECK_STR(tr.parts, "");
    CHECK_EQ_INT(tr.beat_ms, now - 60000);
    /* leaving: heartbeat, state and record go, busy seconds stay */
    CHECK_OK(ens_state_trainer_remove(st, a, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_remove(st, b, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_get(st, a, &tr, errstr, sizeof errstr));
    CHECK_EQ_INT(tr.beat_ms, -1);
    CHECK_STR(tr.state, "");
    CHECK_STR(tr.parts, "");
    CHECK_NEAR(tr.busy_s, 1.75, 1e-9);
    CHECK_OK(ens_state_trainer_live(st, now - 15000, &live, errstr, sizeof errstr));
    CHECK_EQ_INT(live, live0);
    CHECK_EQ_INT(ens_state_trainer_beat(st, "a b", now, errstr, sizeof errstr), ENS_ERR_INVALID);
}

/* The trainers' keys and records byte for byte as the previous version wrote them. */
static void test_trainers_compat(ens_redis_t *r, ens_state_t *st, const char *a) {
    CHECK_OK(ens_state_trainer_beat(st, a, 1234, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_state_put(st, a, "idle", errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_busy_add(st, a, 2.0, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_parts_put(st, a, "1234 3,1", errstr, sizeof errstr));
    static const char *const cmds[4][2] = {{"ZSCORE ens:trainers %s", "1234"},
                                           {"HGET ens:trainers:state %s", "idle"},
                                           {"HGET ens:trainers:busy_s %s", "2"},
                                           {"HGET ens:trainers:parts %s", "1234 3,1"}};
    for (int i = 0; i < 4; i++) {
        ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, cmds[i][0], a);
        CHECK(rep && rep->type == ENS_REPLY_STRING);
        if (rep && rep->type == ENS_REPLY_STRING)
            CHECK_STR(rep->str, cmds[i][1]);
        ens_redis_reply_free(rep);
    }
    CHECK_OK(ens_state_trainer_remove(st, a, errstr, sizeof errstr));
    ens_redis_exec(r, errstr, sizeof errstr, "HDEL ens:trainers:busy_s %s", a);
}

static void test_f16(void) {
    static const float in[] = {0.0f, 1.0f, 0.5f, 0x1p-24f, -1.0f, 65504.0f, 1e6f};
    static const uint16_t want[] = {0x0000, 0x3c00, 0x3800, 0x0001, 0xbc00, 0x7bff, 0x7c00};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        CHECK_EQ_INT(ens_state_f16_encode(in[i]), want[i]);
    /* every finite half decodes to a float that encodes back to it */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00u) == 0x7c00u)
            continue;
        uint16_t x = (uint16_t)h;
        float f;
        ens_state_f16_decode(&x, 1, &f);
        CHECK_EQ_INT(ens_state_f16_encode(f), x);
    }
}

int main(void) {
    test_f16();
    ens_state_t *mem = NULL;
    CHECK_OK(ens_state_mem_new(&mem));
    if (mem) {
        test_ops(mem, "s-state-mem");
        test_trainers(mem, "tr-mem-a", "tr-mem-b");
    }
    CHECK_EQ_INT(ens_state_model_put(mem, "s", "m", "x", 1, errstr, sizeof errstr), ENS_OK);
    ens_state_free(mem);
    ens_state_free(NULL);

    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_state: no redis.url from the harness; Redis parts skipped\n");
        return check_done("test_state");
    }
    ens_redis_t *r = NULL;
    ens_state_t *st = NULL;
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    if (r)
        CHECK_OK(ens_state_redis_new(r, NULL, &st));
    if (st) {
        char study[64];
        snprintf(study, sizeof study, "s-state-%d", (int)getpid());
        test_ops(st, study);
        test_redis_compat(r, st, study);
        char a[64], b[64];
        snprintf(a, sizeof a, "tr-state-%d-a", (int)getpid());
        snprintf(b, sizeof b, "tr-state-%d-b", (int)getpid());
        test_trainers(st, a, b);
        ens_redis_exec(r, errstr, sizeof errstr, "HDEL ens:trainers:busy_s %s", a);
        test_trainers_compat(r, st, a);
    }
    ens_state_free(st);
    ens_redis_free(r);
    return check_done("test_state");
}
