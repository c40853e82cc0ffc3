/* studies.c - `ensflow study list` (every study with what it takes in Redis and on disk) and
 * `ensflow study delete` (a study's state and model files gone), over the state layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ensflow/models.h"
#include "ensflow/state.h"

/* The state over Redis and the model store, all or none (1, said on stderr). */
static int open_state(const ens_conf_t *conf, const char *prog, ens_redis_t **r,
                      ens_state_t **st, ens_models_t **ms) {
    char errstr[512] = "";
    if (!(*st = cli_state_open(conf, r)))
        return 1;
    if (ens_models_open_conf(conf, ms, errstr, sizeof errstr)) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        cli_state_close(*st, *r);
        *st = NULL;
        *r = NULL;
        return 1;
    }
    return 0;
}

/* The study record's status ("?" when absent), dataset and creation time. */
static void study_fields(ens_state_t *st, const char *id, char *status, char *dataset,
                         long long *created_ms) {
    ens_state_study_t s;
    strcpy(status, "?");
    dataset[0] = '\0';
    *created_ms = 0;
    ens_err_t err = ens_state_study_get(st, id, &s, NULL, 0);
    if (err && err != ENS_ERR_NOTFOUND) /* NOTFOUND: no dataset; the rest is read */
        return;
    if (s.status[0])
        snprintf(status, 32, "%s", s.status);
    snprintf(dataset, 256, "%.255s", s.dataset); /* the table shows this much */
    *created_ms = s.created_ms;
}

typedef struct {
    char status[32], dataset[256];
    long long created_ms;
    ens_state_usage_t redis;
    uint64_t disk_bytes;
    long files;
    const char *id;
} row_t;

static int by_created(const void *a, const void *b) {
    const row_t *x = a, *y = b;
    return x->created_ms < y->created_ms ? -1 : x->created_ms > y->created_ms;
}

static void print_rows(const row_t *rows, int n, const char *dir) {
    long long redis = 0;
    uint64_t disk = 0;
    printf("%-12s %-9s %-19s %8s %10s %6s %10s  %s\n", "STUDY", "STATUS", "CREATED (UTC)",
           "KEYS", "REDIS", "FILES", "DISK", "DATASET");
    for (int i = 0; i < n; i++) {
        const row_t *w = &rows[i];
        char created[32] = "-";
        if (w->created_ms > 0) {
            time_t t = (time_t)(w->created_ms / 1000);
            struct tm tm;
            strftime(created, sizeof created, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
        }
        printf("%-12s %-9s %-19s %8ld %9.1fM %6ld %9.1fM  %s\n", w->id, w->status, created,
               w->redis.keys, w->redis.bytes / 1e6, w->files, (double)w->disk_bytes / 1e6,
               w->dataset);
        redis += w->redis.bytes;
        disk += w->disk_bytes;
    }
    printf("%d studies: %.1f MB in Redis, %.1f MB of model files in %s\n", n, redis / 1e6,
           (double)disk / 1e6, dir);
}

int cli_study_list(const ens_conf_t *conf) {
    int json = 0;
    char errstr[512] = "";
    if (cli_output_json(conf, "ensflow study list", &json))
        return 2;
    ens_redis_t *r = NULL;
    ens_state_t *st = NULL;
    ens_models_t *ms = NULL;
    if (open_state(conf, "ensflow study list", &r, &st, &ms))
        return 1;
    char **ids = NULL;
    int n = 0;
    int rc = ens_state_studies_list(st, &ids, &n, errstr, sizeof errstr) ? 1 : 0;
    row_t *rows = calloc((size_t)(n ? n : 1), sizeof *rows);
    if (!rows)
        snprintf(errstr, sizeof errstr, "out of memory");
    rc = rc || !rows;
    for (int i = 0; !rc && i < n; i++) {
        row_t *w = &rows[i];
        w->id = ids[i];
        study_fields(st, w->id, w->status, w->dataset, &w->created_ms);
        if (ens_state_study_usage(st, w->id, &w->redis, errstr, sizeof errstr) ||
            ens_models_study_usage(ms, w->id, &w->disk_bytes, &w->files, errstr,
                                   sizeof errstr))
            rc = 1;
    }
    if (rc) {
        fprintf(stderr, "ensflow study list: %s\n", errstr);
    } else {
        qsort(rows, (size_t)n, sizeof *rows, by_created);
        if (json) {
            json_t *arr = json_array();
            for (int i = 0; i < n; i++)
                json_array_append_new(
                    arr, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "study_id",
                                   rows[i].id, "status", rows[i].status, "dataset",
                                   rows[i].dataset, "created_ms",
                                   (json_int_t)rows[i].created_ms, "redis_keys",
                                   (json_int_t)rows[i].redis.keys, "redis_bytes",
                                   (json_int_t)rows[i].redis.bytes, "files",
                                   (json_int_t)rows[i].files, "disk_bytes",
                                   (json_int_t)rows[i].disk_bytes));
            rc = cli_json_print("ensflow study list", arr);
        } else
            print_rows(rows, n, ens_models_dir(ms));
    }
    free(rows);
    ens_state_strings_free(ids, n);
    ens_models_close(ms);
    cli_state_close(st, r);
    return rc;
}

/* 1 when a trainer holds the study's compaction lock (services/trainer/retain.h). */
static int compacting(ens_state_t *st, const char *study) {
    char owner[64];
    return ens_state_compact_owner(st, study, owner, sizeof owner, NULL, 0) == ENS_OK;
}

/* 1 when the plan in force serves this study. */
static int deployed(ens_state_t *st, const char *study) {
    ens_event_t ev;
    if (ens_state_plan_get(st, NULL, &ev, NULL, 0))
        return 0;
    int ours = !strcmp(ev.u.placement_plan.study_id, study);
    ens_event_free(&ev);
    return ours;
}

int cli_study_delete(const ens_conf_t *conf, const char *study, int force) {
    char errstr[512] = "";
    if (!study[0] || strpbrk(study, "{}") || strlen(study) >= ENS_ID_MAX) {
        fprintf(stderr, "ensflow study delete: \"%s\" is not a study id\n", study);
        return 2;
    }
    ens_redis_t *r = NULL;
    ens_state_t *st = NULL;
    ens_models_t *ms = NULL;
    if (open_state(conf, "ensflow study delete", &r, &st, &ms))
        return 1;
    char status[32], dataset[256];
    long long created_ms;
    study_fields(st, study, status, dataset, &created_ms);
    int exists = 0;
    if (ens_state_study_exists(st, study, &exists, NULL, 0))
        exists = 0; /* unknown: not there, as the files say too */
    uint64_t bytes = 0;
    long files = 0;
    int rc = 0;
    if (ens_models_study_usage(ms, study, &bytes, &files, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow study delete: %s\n", errstr);
        rc = 1;
    } else if (!exists && files == 0) {
        fprintf(stderr, "ensflow study delete: no study %s\n", study);
        rc = 1;
    } else if (!force && (!strcmp(status, "running") || !strcmp(status, "stopping"))) {
        fprintf(stderr,
                "ensflow study delete: %s is %s; stop it first (ensflow study stop %s), or "
                "pass --force\n",
                study, status, study);
        rc = 1;
    } else if (!force && compacting(st, study)) {
        fprintf(stderr,
                "ensflow study delete: a trainer is compacting %s's model files; try again in "
                "a minute, or pass --force\n",
                study);
        rc = 1;
    } else if (!force && deployed(st, study)) {
        fprintf(stderr,
                "ensflow study delete: an ensemble of %s is deployed (the plan in force); "
                "deploy another first, or pass --force\n",
                study);
        rc = 1;
    }
    ens_state_usage_t u = {0};
    long deleted = 0;
    if (!rc && ens_state_study_usage(st, study, &u, errstr, sizeof errstr))
        rc = 1;
    if (!rc) { /* the state first: no service picks the study up again while its files go */
        if (ens_state_study_delete(st, study, &deleted, errstr, sizeof errstr) ||
            ens_models_study_remove(ms, study, errstr, sizeof errstr))
            rc = 1;
        if (rc)
            fprintf(stderr, "ensflow study delete: %s\n", errstr);
    }
    if (!rc)
        printf("deleted study %s: %ld keys (%.1f MB) from Redis, %ld files (%.1f MB) from %s\n",
               study, deleted, u.bytes / 1e6, files, (double)bytes / 1e6, ens_models_dir(ms));
    ens_models_close(ms);
    cli_state_close(st, r);
    return rc;
}
