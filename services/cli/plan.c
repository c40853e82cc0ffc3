/* plan.c - `ensflow plan STUDY [--explain] [-o json]`: the plan in force as an allocation matrix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Distinct values of a column of the plan's rows, in first-seen order. */
static int distinct(const ens_placement_plan_t *pl, int device_col, const char **out) {
    int n = 0;
    for (int i = 0; i < pl->n_members; i++) {
        const char *v = device_col ? pl->members[i].device : pl->members[i].model_id;
        int seen = 0;
        for (int j = 0; j < n; j++)
            seen |= !strcmp(out[j], v);
        if (!seen)
            out[n++] = v;
    }
    return n;
}

static void explain(const ens_placement_plan_t *pl, ens_redis_t *r) {
    const char *devices[256], *models[256];
    int nd = distinct(pl, 1, devices), nm = distinct(pl, 0, models);
    printf("plan %s (version %lld) of study %s: ensemble %s\n", pl->plan_id,
           (long long)pl->version, pl->study_id, pl->ensemble_id);
    printf("predicted throughput: %.0f samples/s\n\n", pl->predicted_throughput);
    printf("allocation matrix (instances x batch size):\n%-18s", "model \\ device");
    for (int d = 0; d < nd; d++)
        printf(" %12s", devices[d]);
    printf(" %8s\n", "weight");
    for (int m = 0; m < nm; m++) {
        printf("%-18s", models[m]);
        double weight = 0;
        for (int d = 0; d < nd; d++) {
            char cell[32] = "-";
            for (int i = 0; i < pl->n_members; i++)
                if (!strcmp(pl->members[i].model_id, models[m]) &&
                    !strcmp(pl->members[i].device, devices[d])) {
                    snprintf(cell, sizeof cell, "%dx%d", (int)pl->members[i].instances,
                             (int)pl->members[i].batch_size);
                    weight = pl->members[i].weight;
                }
            printf(" %12s", cell);
        }
        printf(" %8.4f\n", weight);
    }
    /* what each device's group measured: its serving overhead, which the prediction adds to
     * the device's load, and its speed against the prediction, which replaces both the
     * profiles' speed and the overhead once measured (as the registry holds them now: the
     * plan was made with the values of its time) */
    ens_device_t *reg = NULL;
    int nr = 0;
    if (cli_devices(r, &reg, &nr))
        nr = 0;
    printf("\nmeasured by each device's group: serving overhead (ms per sample) and speed "
           "(predicted / measured compute; next plans use it):\n");
    for (int d = 0; d < nd; d++) {
        const ens_device_t *dev = NULL;
        for (int i = 0; i < nr; i++)
            if (!strcmp(reg[i].device_id, devices[d]))
                dev = &reg[i];
        if (!dev) {
            printf("  %-24s not registered\n", devices[d]);
            continue;
        }
        char ovh[32] = "not measured yet", spd[32] = "not measured yet";
        if (dev->overhead_ms > 0)
            snprintf(ovh, sizeof ovh, "%.4f", dev->overhead_ms);
        if (dev->speed > 0)
            snprintf(spd, sizeof spd, "%.3f", dev->speed);
        printf("  %-24s overhead %-16s speed %s\n", devices[d], ovh, spd);
    }
    free(reg);
}

/* The plan as one JSON object: what the text shows, and with --explain each device's
 * measurements (null where not measured yet; "registered": false where unknown). */
static json_t *plan_json(const ens_placement_plan_t *pl, ens_redis_t *r, int with_devices) {
    json_t *members = json_array(), *o = NULL;
    for (int i = 0; members && i < pl->n_members; i++) {
        const ens_placement_t *m = &pl->members[i];
        if (json_array_append_new(members, json_pack("{s:s, s:s, s:i, s:i, s:f}", "model_id",
                                                     m->model_id, "device", m->device,
                                                     "instances", (int)m->instances,
                                                     "batch_size", (int)m->batch_size,
                                                     "weight", m->weight)))
            goto fail;
    }
    o = json_pack("{s:s, s:I, s:s, s:s, s:f, s:o}", "plan_id", pl->plan_id, "version",
                  (json_int_t)pl->version, "study_id", pl->study_id, "ensemble_id",
                  pl->ensemble_id, "predicted_throughput", pl->predicted_throughput, "members",
                  members);
    members = NULL; /* the pack took it, or freed it on failure */
    if (!o || !with_devices)
        return o;
    const char *devices[256];
    int nd = distinct(pl, 1, devices), nr = 0;
    ens_device_t *reg = NULL;
    if (cli_devices(r, &reg, &nr))
        nr = 0;
    json_t *devs = json_array();
    int err = !devs || json_object_set_new(o, "devices", devs);
    for (int d = 0; !err && d < nd; d++) {
        const ens_device_t *dev = NULL;
        for (int i = 0; i < nr; i++)
            if (!strcmp(reg[i].device_id, devices[d]))
                dev = &reg[i];
        err = json_array_append_new(
            devs, json_pack("{s:s, s:b, s:o, s:o}", "device_id", devices[d], "registered",
                            dev != NULL, "overhead_ms",
                            dev && dev->overhead_ms > 0 ? json_real(dev->overhead_ms)
                                                        : json_null(),
                            "speed", dev && dev->speed > 0 ? json_real(dev->speed) : json_null()));
    }
    free(reg);
    if (!err)
        return o;
fail:
    json_decref(members);
    json_decref(o);
    return NULL;
}

int cli_plan(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"explain", ENS_CONF_BOOL, "false", 0, 0, "show the allocation matrix and prediction"},
        {"output", ENS_CONF_STR, "text", 0, 0,
         "text, or json for one JSON object on stdout (-o json)"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int json = 0;
    int rc = cli_conf("ensflow plan", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    if (ens_conf_positional_count(conf) != 1) {
        fprintf(stderr, "usage: ensflow plan STUDY [--explain] [-o json]\n");
        ens_conf_free(conf);
        return 2;
    }
    if (cli_output_json(conf, "ensflow plan", &json)) {
        ens_conf_free(conf);
        return 2;
    }
    ens_redis_t *r = cli_redis(conf);
    ens_event_t ev;
    rc = 1;
    if (r && cli_get_plan(r, ens_conf_positional(conf, 0), &ev, 0) == 0) {
        const ens_placement_plan_t *pl = &ev.u.placement_plan;
        rc = 0;
        if (json)
            rc = cli_json_print("ensflow plan", plan_json(pl, r, ens_conf_bool(conf, "explain")));
        else if (ens_conf_bool(conf, "explain"))
            explain(pl, r);
        else
            for (int i = 0; i < pl->n_members; i++)
                printf("%s %s x%d batch %d weight %.4f\n", pl->members[i].model_id,
                       pl->members[i].device, (int)pl->members[i].instances,
                       (int)pl->members[i].batch_size, pl->members[i].weight);
        ens_event_free(&ev);
    }
    ens_redis_free(r);
    ens_conf_free(conf);
    return rc;
}
