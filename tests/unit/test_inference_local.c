/* test_inference_local.c - the devices of one process as an inference group: a thread per
 * device runs the rows placed on it, and the answers equal one engine's. */
#include <unistd.h>

#include "check.h"
#include "ensflow/nn.h"
#include "ensflow/inference.h"
#include "local_group.h"
#include "store_fixture.h"

#define DIM 12
#define K 4
#define ROWS 10

/* Answer ROWS requests of x with inf; probabilities into p (ROWS x K). */
static void answer(ens_inference_t *inf, const float *x, float *p, int64_t *version) {
    ens_inference_request_t q[ROWS];
    const ens_inference_request_t *qs[ROWS];
    ens_event_t resp[ROWS];
    memset(q, 0, sizeof q);
    for (int i = 0; i < ROWS; i++) {
        snprintf(q[i].request_id, sizeof q[i].request_id, "q%d", i);
        q[i].data = (float *)(x + (size_t)i * DIM);
        q[i].n_data = DIM;
        qs[i] = &q[i];
    }
    CHECK_OK(ens_inference_run(inf, qs, ROWS, 0, resp));
    for (int i = 0; i < ROWS; i++) {
        ens_inference_response_t *r = &resp[i].u.inference_response;
        CHECK_EQ_INT(r->status, ENS_RESPONSE_OK);
        CHECK_EQ_INT(r->n_probabilities, K);
        if (r->status == ENS_RESPONSE_OK && r->n_probabilities == K)
            memcpy(p + (size_t)i * K, r->probabilities, K * sizeof *p);
        *version = r->plan_version;
        ens_event_free(&resp[i]);
    }
}

int main(void) {
    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_inference_local: skipped: no redis.url from the harness\n");
        return 77;
    }
    char err[256], study[32];
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, err, sizeof err));
    if (!r)
        return check_done("test_inference_local");
    snprintf(study, sizeof study, "s-local-%d", (int)getpid());
    const char *ids[3] = {"m-a", "m-b", "m-c"};
    for (int i = 0; i < 3; i++)
        store_mlp(r, study, ids[i], DIM, K, 200 + (uint64_t)i);
    float x[ROWS * DIM];
    for (int i = 0; i < ROWS * DIM; i++)
        x[i] = (float)((i * 29) % 13) / 13.0f - 0.5f;

    /* m-a has 2 instances on device 0 and 1 on device 1: device 1 takes a third of its rows;
     * m-b runs on device 1 alone, m-c on device 2 alone */
    ens_placement_t rows[4] = {{"m-a", 0.5, "lg-r0", 2, 8}, {"m-a", 0.5, "lg-r1", 1, 8},
                               {"m-b", 0.3, "lg-r1", 1, 8}, {"m-c", 0.2, "lg-r2", 1, 8}};
    ens_placement_plan_t plan = {.version = 4, .n_members = 4, .members = rows};
    snprintf(plan.study_id, sizeof plan.study_id, "%s", study);
    snprintf(plan.plan_id, sizeof plan.plan_id, "plan-v4");
    snprintf(plan.ensemble_id, sizeof plan.ensemble_id, "topk3");

    float want[ROWS * K], got[ROWS * K];
    int64_t v_one = 0, v_grp = 0;
    ens_inference_t *one = NULL, *inf = NULL;
    CHECK_OK(ens_inference_new(&one));
    CHECK_OK(ens_inference_load_plan(one, r, &plan, err, sizeof err));
    answer(one, x, want, &v_one);

    ens_local_group_t *lg = NULL;
    CHECK_EQ_INT(ens_local_group_new(0, "lg", &lg, err, sizeof err), ENS_ERR_INVALID);
    CHECK(strstr(err, "devices") != NULL);
    CHECK_OK(ens_local_group_new(3, "lg", &lg, err, sizeof err));
    CHECK_OK(ens_inference_new(&inf));
    if (!lg || !inf)
        return check_done("test_inference_local");
    ens_inference_hooks_t hooks = ens_local_group_hooks(lg);
    ens_inference_set_partition(inf, 0, 3, &hooks);
    ens_inference_set_instance(inf, "lg");
    CHECK_OK(ens_local_group_load_plan(lg, inf, r, &plan, err, sizeof err));
    for (int pass = 0; pass < 3; pass++) { /* the threads serve batch after batch */
        memset(got, 0, sizeof got);
        answer(inf, x, got, &v_grp);
        for (int i = 0; i < ROWS * K; i++)
            CHECK_NEAR(got[i], want[i], 1e-5);
    }
    CHECK_EQ_INT(v_grp, 4);
    /* every member in batches of 3 rows (--member-batch), on every device: same answers */
    ens_inference_set_member_batch(inf, 3);
    CHECK_EQ_INT(ens_inference_member_batch(inf), 3);
    CHECK_OK(ens_local_group_load_plan(lg, inf, r, &plan, err, sizeof err));
    memset(got, 0, sizeof got);
    answer(inf, x, got, &v_grp);
    for (int i = 0; i < ROWS * K; i++)
        CHECK_NEAR(got[i], want[i], 1e-5);
    ens_inference_set_member_batch(inf, 0);
    CHECK_OK(ens_local_group_load_plan(lg, inf, r, &plan, err, sizeof err));
    /* device 0 alone gives only its share: m-a on rows 0..6 (2 of 3 instances) */
    float part0[ROWS * K];
    CHECK_OK(ens_inference_partial(inf, x, ROWS, part0));
    CHECK(part0[9 * K] == 0.0f && part0[0] > 0.0f);

    /* a plan one device cannot load (m-c missing on device 2) changes nothing anywhere */
    ens_placement_t bad_rows[4] = {{"m-a", 0.5, "lg-r0", 1, 8}, {"m-b", 0.3, "lg-r1", 1, 8},
                                   {"m-x", 0.2, "lg-r2", 1, 8}};
    ens_placement_plan_t bad = plan;
    bad.version = 5;
    bad.n_members = 3;
    bad.members = bad_rows;
    CHECK(ens_local_group_load_plan(lg, inf, r, &bad, err, sizeof err) != ENS_OK);
    CHECK_EQ_INT(ens_inference_plan_version(inf), 4);
    answer(inf, x, got, &v_grp);
    CHECK_EQ_INT(v_grp, 4);
    for (int i = 0; i < ROWS * K; i++)
        CHECK_NEAR(got[i], want[i], 1e-5);

    /* a plan checked on a scratch engine comes into force by adoption (the MPI group's rank 0) */
    ens_inference_t *scratch = NULL, *fresh = NULL;
    CHECK_OK(ens_inference_new(&scratch));
    CHECK_OK(ens_inference_new(&fresh));
    CHECK_OK(ens_inference_load_plan(scratch, r, &plan, err, sizeof err));
    ens_inference_adopt(fresh, scratch);
    CHECK_EQ_INT(ens_inference_plan_version(scratch), -1);
    CHECK_EQ_INT(ens_inference_plan_version(fresh), 4);
    answer(fresh, x, got, &v_grp);
    for (int i = 0; i < ROWS * K; i++)
        CHECK_NEAR(got[i], want[i], 1e-6);
    ens_inference_free(scratch);
    ens_inference_free(fresh);

    ens_local_group_free(lg);
    ens_inference_free(inf);
    ens_inference_free(one);
    for (int i = 0; i < 3; i++) {
        char key[256];
        ens_key(key, sizeof key, study, "model:%s", ids[i]);
        CHECK_OK(ens_store_blob_del(r, key, err, sizeof err));
    }
    ens_redis_free(r);
    return check_done("test_inference_local");
}
