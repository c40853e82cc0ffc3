/* test_inference.c - plan loading from the model store and batched weighted prediction. */
#include "ensflow/inference.h"

#include <unistd.h>

#include "check.h"
#include "ensflow/nn.h"

#define DIM 6
#define K 3
#define NREQ 9

static char errstr[512];
static char study[64];
static ens_models_t *store;

/* A model in the model store; legacy = as the previous version kept it, a blob in Redis. */
static ens_model_t *store_model_as(ens_redis_t *r, const char *id, int32_t in_dim,
                                   uint64_t seed, int legacy) {
    const int32_t hidden[] = {8, 5};
    ens_model_t *m = NULL;
    CHECK_OK(ens_model_new_mlp(in_dim, hidden, 2, K, seed, &m));
    if (!m)
        return NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    char key[256], name[80];
    CHECK_OK(ens_model_save(m, &buf, &len));
    ens_key(key, sizeof key, study, "model:%s", id);
    snprintf(name, sizeof name, "model:%s", id);
    if (legacy)
        CHECK_OK(ens_store_blob_put(r, key, buf, len, 0, errstr, sizeof errstr));
    else
        CHECK_OK(ens_models_put(store, r, study, name, buf, len, errstr, sizeof errstr));
    free(buf);
    return m;
}

static ens_model_t *store_model(ens_redis_t *r, const char *id, int32_t in_dim, uint64_t seed) {
    return store_model_as(r, id, in_dim, seed, 0);
}

static void del_model(ens_redis_t *r, const char *id) {
    char name[80];
    snprintf(name, sizeof name, "model:%s", id);
    CHECK_OK(ens_models_del(store, r, study, name, errstr, sizeof errstr));
}

/* A plan over ids with weights; members points at caller storage. */
static ens_placement_plan_t make_plan(ens_placement_t *members, const char *const *ids,
                                      const double *w, int n, int64_t version) {
    ens_placement_plan_t p = {0};
    snprintf(p.study_id, sizeof p.study_id, "%s", study);
    snprintf(p.plan_id, sizeof p.plan_id, "plan-v%lld", (long long)version);
    snprintf(p.ensemble_id, sizeof p.ensemble_id, "ens-%d", n);
    p.version = version;
    p.n_members = n;
    p.members = members;
    for (int i = 0; i < n; i++) {
        memset(&members[i], 0, sizeof members[i]);
        snprintf(members[i].model_id, ENS_ID_MAX, "%s", ids[i]);
        members[i].weight = w[i];
        snprintf(members[i].device, ENS_ID_MAX, "cpu-0");
        members[i].instances = 1;
        members[i].batch_size = 16;
    }
    return p;
}

static void free_responses(ens_event_t *resp, int n) {
    for (int i = 0; i < n; i++)
        ens_event_free(&resp[i]);
}

static void run_tests(ens_redis_t *r) {
    ens_model_t *m1 = store_model(r, "m1", DIM, 11), *m2 = store_model(r, "m2", DIM, 22);
    ens_model_t *m3 = store_model(r, "m3", DIM - 2, 33); /* a different input size */
    ens_model_t *m4 = store_model_as(r, "m4", DIM, 44, 1); /* a study of the previous version */
    CHECK_OK(ens_models_put(store, r, study, "model:junk", "not a model", 11, errstr,
                            sizeof errstr));

    ens_inference_t *inf = NULL;
    CHECK_OK(ens_inference_new(&inf));
    if (inf)
        ens_inference_set_store(inf, store);
    if (!inf || !m1 || !m2 || !m3 || !m4)
        goto out;
    CHECK_EQ_INT(ens_inference_plan_version(inf), -1);
    CHECK_EQ_INT(ens_inference_input_dim(inf), 0);

    /* requests: 0-4 valid, 5 wrong size, 6 NaN, 7 past its deadline, 8 bad shape */
    float x[NREQ][DIM];
    ens_inference_request_t req[NREQ];
    const ens_inference_request_t *reqs[NREQ];
    int64_t now = ens_now_ms();
    for (int i = 0; i < NREQ; i++) {
        for (int j = 0; j < DIM; j++)
            x[i][j] = (float)(((i * 7 + j * 3) % 11) - 5) / 3.0f;
        memset(&req[i], 0, sizeof req[i]);
        snprintf(req[i].request_id, ENS_ID_MAX, "req-%d", i);
        req[i].n_shape = 1;
        req[i].shape[0] = DIM;
        req[i].n_data = DIM;
        req[i].data = x[i];
        req[i].deadline_ms = i == 4 ? now + 60000 : 0;
        reqs[i] = &req[i];
    }
    req[5].n_data = req[5].shape[0] = DIM - 1;
    x[6][2] = NAN;
    req[7].deadline_ms = now - 1000;
    req[8].shape[0] = 2;
    req[8].shape[1] = 2;
    req[8].n_shape = 2; /* 2x2 = 4 values announced, 6 sent */

    ens_event_t resp[NREQ];
    CHECK_OK(ens_inference_run(inf, reqs, 1, now, resp));
    CHECK_EQ_INT(resp[0].u.inference_response.status, ENS_RESPONSE_ERROR);
    CHECK(resp[0].u.inference_response.error &&
          strstr(resp[0].u.inference_response.error, "no plan"));
    free_responses(resp, 1);

    const char *ids12[] = {"m1", "m2"};
    const double w12[] = {0.25, 0.75};
    ens_placement_t mem[3];
    ens_placement_plan_t plan = make_plan(mem, ids12, w12, 2, 5);
    CHECK_OK(ens_inference_load_plan(inf, r, &plan, errstr, sizeof errstr));
    CHECK_EQ_INT(ens_inference_plan_version(inf), 5);
    CHECK_EQ_INT(ens_inference_input_dim(inf), DIM);

    float p1[5 * K], p2[5 * K], p4[5 * K];
    CHECK_OK(ens_model_predict(m1, &x[0][0], 5, p1));
    CHECK_OK(ens_model_predict(m2, &x[0][0], 5, p2));
    CHECK_OK(ens_model_predict(m4, &x[0][0], 5, p4));
    CHECK_OK(ens_inference_run(inf, reqs, NREQ, now, resp));
    for (int i = 0; i < 5; i++) {
        const ens_inference_response_t *o = &resp[i].u.inference_response;
        CHECK_STR(o->request_id, req[i].request_id);
        CHECK_EQ_INT(o->status, ENS_RESPONSE_OK);
        CHECK(o->error == NULL);
        CHECK_EQ_INT(o->plan_version, 5);
        CHECK_STR(o->ensemble_id, "ens-2");
        CHECK_EQ_INT(o->n_probabilities, K);
        if (o->n_probabilities != K || !o->probabilities)
            continue;
        int best = 0;
        for (int c = 0; c < K; c++) {
            double want = 0.25 * p1[i * K + c] + 0.75 * p2[i * K + c];
            CHECK_NEAR(o->probabilities[c], want, 1e-6);
            if (o->probabilities[c] > o->probabilities[best])
                best = c;
        }
        CHECK_EQ_INT(o->predicted_class, best);
        CHECK_EQ_INT(o->n_model_versions, 2);
        if (o->n_model_versions == 2) {
            CHECK_STR(o->model_versions[0], "m1");
            CHECK_STR(o->model_versions[1], "m2");
        }
    }
    for (int i = 5; i < NREQ; i++) {
        const ens_inference_response_t *o = &resp[i].u.inference_response;
        CHECK_STR(o->request_id, req[i].request_id);
        CHECK_EQ_INT(o->status, i == 7 ? ENS_RESPONSE_TIMEOUT : ENS_RESPONSE_ERROR);
        CHECK(o->error != NULL && o->error[0] != '\0');
        CHECK_EQ_INT(o->predicted_class, -1);
        CHECK_EQ_INT(o->n_probabilities, 0);
    }
    free_responses(resp, NREQ);

    /* a request larger than max-request-values gets an ERROR answer; the others still OK */
    ens_inference_set_max_values(inf, DIM - 1);
    CHECK_OK(ens_inference_run(inf, reqs, 1, now, resp));
    CHECK_EQ_INT(resp[0].u.inference_response.status, ENS_RESPONSE_ERROR);
    CHECK(resp[0].u.inference_response.error &&
          strstr(resp[0].u.inference_response.error, "too large"));
    free_responses(resp, 1);
    ens_inference_set_max_values(inf, DIM);
    CHECK_OK(ens_inference_run(inf, reqs, 1, now, resp));
    CHECK_EQ_INT(resp[0].u.inference_response.status, ENS_RESPONSE_OK);
    free_responses(resp, 1);
    ens_inference_set_max_values(inf, 0);

    /* plans that cannot load leave version 5 in force */
    const char *missing[] = {"m1", "no-such-model"};
    plan = make_plan(mem, missing, w12, 2, 6);
    CHECK(ens_inference_load_plan(inf, r, &plan, errstr, sizeof errstr) != ENS_OK);
    CHECK_EQ_INT(ens_inference_plan_version(inf), 5);
    const char *mixed[] = {"m1", "m3"};
    plan = make_plan(mem, mixed, w12, 2, 6);
    CHECK_EQ_INT(ens_inference_load_plan(inf, r, &plan, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_inference_plan_version(inf), 5);
    const char *junk[] = {"junk"};
    plan = make_plan(mem, junk, w12, 1, 6);
    CHECK_EQ_INT(ens_inference_load_plan(inf, r, &plan, errstr, sizeof errstr), ENS_ERR_CORRUPT);
    plan = make_plan(mem, ids12, w12, 0, 6);
    CHECK_EQ_INT(ens_inference_load_plan(inf, r, &plan, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_inference_plan_version(inf), 5);
    CHECK_EQ_INT(ens_inference_input_dim(inf), DIM);
    CHECK_OK(ens_inference_run(inf, reqs, 2, now, resp));
    CHECK_EQ_INT(resp[1].u.inference_response.status, ENS_RESPONSE_OK);
    CHECK_EQ_INT(resp[1].u.inference_response.plan_version, 5);
    free_responses(resp, 2);

    /* a new plan of three members replaces it (weights normalised); buffers follow the size */
    const char *ids3[] = {"m2", "m1", "m4"};
    const double w3[] = {1.0, 2.0, 1.0};
    plan = make_plan(mem, ids3, w3, 3, 7);
    CHECK_OK(ens_inference_load_plan(inf, r, &plan, errstr, sizeof errstr));
    CHECK_EQ_INT(ens_inference_plan_version(inf), 7);
    CHECK_OK(ens_inference_run(inf, reqs, 5, now, resp));
    for (int i = 0; i < 5; i++) {
        const ens_inference_response_t *o = &resp[i].u.inference_response;
        CHECK_EQ_INT(o->status, ENS_RESPONSE_OK);
        CHECK_EQ_INT(o->n_model_versions, 3);
        for (int c = 0; c < K && o->probabilities; c++)
            CHECK_NEAR(o->probabilities[c],
                       0.25 * p2[i * K + c] + 0.5 * p1[i * K + c] + 0.25 * p4[i * K + c], 1e-6);
    }
    free_responses(resp, 5);

out:
    ens_inference_free(inf);
    ens_model_free(m1);
    ens_model_free(m2);
    ens_model_free(m3);
    ens_model_free(m4);
    del_model(r, "m4");
    del_model(r, "m1");
    del_model(r, "m2");
    del_model(r, "m3");
    del_model(r, "junk");
}

int main(void) {
    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_inference: no redis.url from the harness (ENSFLOW_TEST_DIR); "
                        "skipped\n");
        return 77;
    }
    snprintf(study, sizeof study, "inf-%d-%lld", (int)getpid(), (long long)ens_now_ms());
    char dir[] = "/tmp/ens-test-inference-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK_OK(ens_models_open(dir, &store, errstr, sizeof errstr));
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    if (r)
        run_tests(r);
    ens_redis_free(r);
    CHECK_OK(ens_models_study_remove(store, study, errstr, sizeof errstr));
    ens_models_close(store);
    CHECK_EQ_INT(rmdir(dir), 0); /* nothing left behind */
    return check_done("test_inference");
}
