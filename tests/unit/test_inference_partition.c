/* test_inference_partition.c - the ranks of a group each compute a share of the ensemble;
 * the shares add up to the single-process prediction (what MPI_Reduce relies on). */
#include <unistd.h>

#include "check.h"
#include "ensflow/nn.h"
#include "ensflow/inference.h"
#include "store_fixture.h"

#define DIM 12
#define K 4
#define ROWS 9

int main(void) {
    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_inference_partition: skipped: no redis.url from the harness\n");
        return 77;
    }
    char err[256], study[32];
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, err, sizeof err));
    if (!r)
        return check_done("test_inference_partition");
    snprintf(study, sizeof study, "s-part-%d", (int)getpid());
    const char *ids[3] = {"m-a", "m-b", "m-c"};
    for (int i = 0; i < 3; i++)
        store_mlp(r, study, ids[i], DIM, K, 100 + (uint64_t)i);
    /* four rows, the last naming m-a again on a second device: still one member */
    ens_placement_t rows[4] = {{"m-a", 0.5, "cpu-0", 1, 8}, {"m-b", 0.3, "cpu-1", 1, 8},
                               {"m-c", 0.2, "cpu-0", 1, 8}, {"m-a", 0.5, "cpu-1", 1, 8}};
    ens_placement_plan_t plan = {.version = 3, .n_members = 4, .members = rows};
    snprintf(plan.study_id, sizeof plan.study_id, "%s", study);
    snprintf(plan.plan_id, sizeof plan.plan_id, "plan-v3");
    snprintf(plan.ensemble_id, sizeof plan.ensemble_id, "topk3");

    float x[ROWS * DIM];
    for (int i = 0; i < ROWS * DIM; i++)
        x[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    float full[ROWS * K], part0[ROWS * K], part1[ROWS * K];
    ens_inference_t *one = NULL, *r0 = NULL, *r1 = NULL;
    CHECK_OK(ens_inference_new(&one));
    CHECK_OK(ens_inference_new(&r0));
    CHECK_OK(ens_inference_new(&r1));
    ens_inference_set_partition(r0, 0, 2, NULL);
    ens_inference_set_partition(r1, 1, 2, NULL);
    CHECK_OK(ens_inference_load_plan(one, r, &plan, err, sizeof err));
    CHECK_OK(ens_inference_load_plan(r0, r, &plan, err, sizeof err));
    CHECK_OK(ens_inference_load_plan(r1, r, &plan, err, sizeof err));
    CHECK_OK(ens_inference_partial(one, x, ROWS, full));
    CHECK_OK(ens_inference_partial(r0, x, ROWS, part0));
    CHECK_OK(ens_inference_partial(r1, x, ROWS, part1));
    /* each model counted once: probabilities of the whole sum to 1 */
    for (int i = 0; i < ROWS; i++) {
        double sum = 0;
        for (int c = 0; c < K; c++)
            sum += full[i * K + c];
        CHECK_NEAR(sum, 1.0, 1e-5);
    }
    for (int i = 0; i < ROWS * K; i++)
        CHECK_NEAR(part0[i] + part1[i], full[i], 1e-6);
    /* the same plan on the devices of group "grp": each rank runs the rows on its device,
     * m-a (one instance on each) splitting every batch's rows between the ranks */
    ens_placement_t placed[4] = {{"m-a", 0.5, "grp-r0", 1, 8}, {"m-b", 0.3, "grp-r1", 1, 8},
                                 {"m-c", 0.2, "grp-r0", 1, 8}, {"m-a", 0.5, "grp-r1", 1, 8}};
    ens_placement_plan_t pplan = plan;
    pplan.members = placed;
    ens_inference_t *g0 = NULL, *g1 = NULL;
    CHECK_OK(ens_inference_new(&g0));
    CHECK_OK(ens_inference_new(&g1));
    ens_inference_set_partition(g0, 0, 2, NULL);
    ens_inference_set_partition(g1, 1, 2, NULL);
    ens_inference_set_instance(g0, "grp");
    ens_inference_set_instance(g1, "grp");
    CHECK_OK(ens_inference_load_plan(g0, r, &pplan, err, sizeof err));
    CHECK_OK(ens_inference_load_plan(g1, r, &pplan, err, sizeof err));
    CHECK_OK(ens_inference_partial(g0, x, ROWS, part0));
    CHECK_OK(ens_inference_partial(g1, x, ROWS, part1));
    for (int i = 0; i < ROWS * K; i++)
        CHECK_NEAR(part0[i] + part1[i], full[i], 1e-6);
    /* rank 1 holds m-b and half of m-a only: rows 0-4 of m-a are rank 0's, m-c too */
    int zero_c = 1;
    for (int i = 0; i < 4 * K; i++) /* rows 0..3: rank 1 adds only m-b's 0.3 share */
        zero_c &= part1[i] < 0.3f + 1e-6f;
    CHECK(zero_c);
    /* a device of another group: round robin, as before */
    snprintf(placed[1].device, sizeof placed[1].device, "other-r0");
    ens_inference_set_instance(g1, "grp");
    CHECK_OK(ens_inference_load_plan(g1, r, &pplan, err, sizeof err));
    CHECK_OK(ens_inference_load_plan(r1, r, &plan, err, sizeof err));
    float rr1[ROWS * K];
    CHECK_OK(ens_inference_partial(g1, x, ROWS, part1));
    CHECK_OK(ens_inference_partial(r1, x, ROWS, rr1));
    for (int i = 0; i < ROWS * K; i++)
        CHECK_NEAR(part1[i], rr1[i], 1e-6);
    ens_inference_free(g0);
    ens_inference_free(g1);

    /* a group larger than the ensemble has a rank with nothing to run */
    ens_inference_t *r5 = NULL;
    CHECK_OK(ens_inference_new(&r5));
    ens_inference_set_partition(r5, 4, 5, NULL);
    CHECK_EQ_INT(ens_inference_load_plan(r5, r, &plan, err, sizeof err), ENS_ERR_INVALID);
    CHECK(strstr(err, "larger than the ensemble") != NULL);
    ens_inference_free(r5);
    ens_inference_free(one);
    ens_inference_free(r0);
    ens_inference_free(r1);
    for (int i = 0; i < 3; i++) {
        char key[256];
        ens_key(key, sizeof key, study, "model:%s", ids[i]);
        CHECK_OK(ens_store_blob_del(r, key, err, sizeof err));
    }
    ens_redis_free(r);
    return check_done("test_inference_partition");
}
