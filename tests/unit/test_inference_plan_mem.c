/* test_inference_plan_mem.c - an inference group's plan and devices on the in-memory state:
 * its devices announced and withdrawn, the plan in force taken up at start with the compute
 * the placer predicted for its slowest device, and the version it serves recorded. */
#include <stdlib.h>

#include "check.h"
#include "ensflow/inference.h"
#include "serve_internal.h"

static char errstr[512];
static int loads;
static int64_t loaded_version;

/* The engine's loading stands aside: what is checked is which plan the group takes up. */
static ens_err_t load_plan(void *ctx, ens_serve_t *g, const ens_placement_plan_t *plan,
                           char *errstr_, size_t errstr_size) {
    (void)ctx, (void)g, (void)errstr_, (void)errstr_size;
    loads++;
    loaded_version = plan->version;
    return ENS_OK;
}

static int registered(ens_state_t *st, const char *id) {
    ens_device_t *d = NULL;
    int n = 0, found = 0;
    CHECK_OK(ens_state_device_list(st, &d, &n, errstr, sizeof errstr));
    for (int i = 0; i < n; i++)
        found |= !strcmp(d[i].device_id, id);
    free(d);
    return found;
}

int main(void) {
    ens_state_t *st = NULL;
    ens_inference_t *inf = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    CHECK_OK(ens_inference_new(&inf));
    struct ens_serve_s *g = calloc(1, sizeof *g);
    if (!st || !inf || !g)
        return check_done("test_inference_plan_mem");
    g->state = st;
    g->inf = inf;
    g->ranks = 2;
    g->load_plan = load_plan;
    snprintf(g->instance, sizeof g->instance, "grp-1");

    /* the devices: one a rank, announced, then withdrawn when the group leaves */
    ens_serve_register_devices(g, 0);
    CHECK(registered(st, "grp-1-r0"));
    CHECK(registered(st, "grp-1-r1"));

    /* no plan in force: nothing taken up */
    ens_serve_load_current_plan(g);
    CHECK_EQ_INT(loads, 0);

    /* the plan in force, with the compute the placer predicted per device */
    const char *devs[] = {"grp-1-r0", "grp-1-r1", "other-r0"};
    const double ms[] = {0.25, 0.5, 9.0};
    CHECK_OK(ens_state_plan_compute_put(st, 7, devs, ms, 3, errstr, sizeof errstr));
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_PLACEMENT_PLAN);
    ens_placement_plan_t *pl = &ev.u.placement_plan;
    snprintf(pl->study_id, ENS_ID_MAX, "s-1");
    snprintf(pl->plan_id, ENS_ID_MAX, "plan-7");
    snprintf(pl->ensemble_id, ENS_ID_MAX, "ens-top2");
    pl->version = 7;
    CHECK_OK(ens_state_plan_put(st, "s-1", &ev, errstr, sizeof errstr));
    ens_event_free(&ev);
    ens_serve_load_current_plan(g);
    CHECK_EQ_INT(loads, 1);
    CHECK_EQ_INT(loaded_version, 7);
    CHECK_NEAR(g->predicted_ms, 0.5, 1e-12); /* the slowest of its own devices */
    int64_t served = 0; /* and the group says that it serves that version */
    CHECK_OK(ens_state_serving_newest(st, "s-1", &served, errstr, sizeof errstr));
    CHECK_EQ_INT(served, 7);

    g->registered_us = 0;
    ens_serve_register_devices(g, 1);
    CHECK(!registered(st, "grp-1-r0"));
    CHECK(!registered(st, "grp-1-r1"));

    free(g);
    ens_inference_free(inf);
    ens_state_free(st);
    return check_done("test_inference_plan_mem");
}
