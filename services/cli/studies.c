/* studies.c - `ensflow study list` (every study with what it takes in Redis and on disk) and
 * `ensflow study delete` (a study's keys and model files gone). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ensflow/models.h"
#include "ensflow/state.h"

/* Studies that services keep in sets of their own (a deleted study leaves none of them). */
static const char *const STUDY_SETS[] = {"ens:studies:active", "ens:studies:settling",
                                         ENS_MODELS_COMPACT_KEY, "ens:selector:dirty"};

typedef int (*key_fn)(ens_redis_t *r, const char *key, void *opaque);

/* fn for every key matching pattern (SCAN: the server is not blocked). */
static int scan_keys(ens_redis_t *r, const char *pattern, key_fn fn, void *opaque,
                     char *errstr, size_t size) {
    char cursor[32] = "0";
    do {
        ens_redis_reply_t *rep = ens_redis_command(r, errstr, size, "SCAN %s MATCH %s COUNT 1000",
                                            cursor, pattern);
        if (!rep || rep->type != ENS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != ENS_REPLY_STRING ||
            rep->element[1]->type != ENS_REPLY_ARRAY) {
            if (rep)
                snprintf(errstr, size, "unexpected SCAN reply");
            ens_redis_reply_free(rep);
            return -1;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        ens_redis_reply_t *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            if (keys->element[i]->type == ENS_REPLY_STRING &&
                fn(r, keys->element[i]->str, opaque)) {
                snprintf(errstr, size, "stopped at %s (out of memory, or Redis went away)",
                         keys->element[i]->str);
                ens_redis_reply_free(rep);
                return -1;
            }
        ens_redis_reply_free(rep);
    } while (strcmp(cursor, "0"));
    return 0;
}

typedef struct {
    long keys;
    long long bytes;
} usage_t;

static int add_usage(ens_redis_t *r, const char *key, void *opaque) {
    usage_t *u = opaque;
    ens_redis_reply_t *rep = ens_redis_command(r, NULL, 0, "MEMORY USAGE %s", key);
    u->keys++;
    if (rep && rep->type == ENS_REPLY_INTEGER)
        u->bytes += rep->integer;
    ens_redis_reply_free(rep);
    return 0;
}

static int redis_usage(ens_redis_t *r, const char *study, usage_t *u, char *errstr,
                       size_t size) {
    char esc[200], pattern[256];
    memset(u, 0, sizeof *u);
    if (!ens_redis_glob_escape(study, esc, sizeof esc)) {
        snprintf(errstr, size, "study id too long");
        return -1;
    }
    snprintf(pattern, sizeof pattern, "ens:{%s}:*", esc);
    return scan_keys(r, pattern, add_usage, u, errstr, size);
}

/* Redis and the model store, both or neither (1, said on stderr). */
static int open_state(const ens_conf_t *conf, const char *prog, ens_redis_t **r,
                      ens_models_t **ms) {
    char errstr[512] = "";
    if (!(*r = cli_redis(conf)))
        return 1;
    if (ens_models_open_conf(conf, ms, errstr, sizeof errstr)) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        ens_redis_free(*r);
        *r = NULL;
        return 1;
    }
    return 0;
}

typedef struct {
    char (*ids)[ENS_ID_MAX];
    int n, cap;
} ids_t;

static int add_study(ens_redis_t *r, const char *key, void *opaque) {
    ids_t *s = opaque;
    (void)r;
    const char *open = strchr(key, '{'), *close = strrchr(key, '}');
    if (!open || !close || close <= open + 1 || close - open - 1 >= ENS_ID_MAX ||
        strcmp(close, "}:study"))
        return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        void *p = realloc(s->ids, (size_t)cap * sizeof *s->ids);
        if (!p)
            return 1;
        s->ids = p;
        s->cap = cap;
    }
    snprintf(s->ids[s->n++], ENS_ID_MAX, "%.*s", (int)(close - open - 1), open + 1);
    return 0;
}

/* Study records: status, dataset, created_ms. */
static void study_fields(ens_redis_t *r, const char *id, char *status, char *dataset,
                         long long *created_ms) {
    char key[256];
    strcpy(status, "?");
    dataset[0] = '\0';
    *created_ms = 0;
    if (!ens_key(key, sizeof key, id, "study"))
        return;
    ens_redis_reply_t *rep = ens_redis_command(r, NULL, 0, "HMGET %s status dataset created_ms", key);
    if (rep && rep->type == ENS_REPLY_ARRAY && rep->elements == 3) {
        if (rep->element[0]->type == ENS_REPLY_STRING)
            snprintf(status, 32, "%s", rep->element[0]->str);
        if (rep->element[1]->type == ENS_REPLY_STRING)
            snprintf(dataset, 256, "%s", rep->element[1]->str);
        if (rep->element[2]->type == ENS_REPLY_STRING)
            *created_ms = strtoll(rep->element[2]->str, NULL, 10);
    }
    ens_redis_reply_free(rep);
}

typedef struct {
    char status[32], dataset[256];
    long long created_ms;
    usage_t redis;
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
    ens_models_t *ms = NULL;
    if (open_state(conf, "ensflow study list", &r, &ms))
        return 1;
    ids_t s = {0};
    int rc = scan_keys(r, "ens:{*}:study", add_study, &s, errstr, sizeof errstr) ? 1 : 0;
    row_t *rows = calloc((size_t)(s.n ? s.n : 1), sizeof *rows);
    if (!rows)
        snprintf(errstr, sizeof errstr, "out of memory");
    rc = rc || !rows;
    for (int i = 0; !rc && i < s.n; i++) {
        row_t *w = &rows[i];
        w->id = s.ids[i];
        study_fields(r, w->id, w->status, w->dataset, &w->created_ms);
        if (redis_usage(r, w->id, &w->redis, errstr, sizeof errstr) ||
            ens_models_study_usage(ms, w->id, &w->disk_bytes, &w->files, errstr,
                                   sizeof errstr))
            rc = 1;
    }
    if (rc) {
        fprintf(stderr, "ensflow study list: %s\n", errstr);
    } else {
        qsort(rows, (size_t)s.n, sizeof *rows, by_created);
        if (json) {
            json_t *arr = json_array();
            for (int i = 0; i < s.n; i++)
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
            print_rows(rows, s.n, ens_models_dir(ms));
    }
    free(rows);
    free(s.ids);
    ens_models_close(ms);
    ens_redis_free(r);
    return rc;
}

static int del_key(ens_redis_t *r, const char *key, void *opaque) {
    long *n = opaque;
    ens_redis_reply_t *rep = ens_redis_command(r, NULL, 0, "UNLINK %s", key);
    int ok = rep && rep->type == ENS_REPLY_INTEGER;
    *n += ok ? (long)rep->integer : 0;
    ens_redis_reply_free(rep);
    return !ok;
}

/* 1 when a trainer holds the study's compaction lock (services/trainer/retain.h). */
static int compacting(ens_redis_t *r, const char *study) {
    char key[300];
    ens_redis_reply_t *rep = ens_key(key, sizeof key, study, "compacting")
                          ? ens_redis_command(r, NULL, 0, "EXISTS %s", key)
                          : NULL;
    int v = rep && rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
    return v;
}

/* 1 when the plan in force serves this study. */
static int deployed(ens_redis_t *r, const char *study) {
    ens_event_t ev;
    if (cli_get_event(r, "ens:plan:current", &ev, 1))
        return 0;
    int ours = !strcmp(ev.u.placement_plan.study_id, study);
    ens_event_free(&ev);
    return ours;
}

int cli_study_delete(const ens_conf_t *conf, const char *study, int force) {
    char errstr[512] = "", key[256];
    if (!ens_key(key, sizeof key, study, "study")) {
        fprintf(stderr, "ensflow study delete: \"%s\" is not a study id\n", study);
        return 2;
    }
    ens_redis_t *r = NULL;
    ens_models_t *ms = NULL;
    if (open_state(conf, "ensflow study delete", &r, &ms))
        return 1;
    char status[32], dataset[256];
    long long created_ms;
    study_fields(r, study, status, dataset, &created_ms);
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "EXISTS %s", key);
    int exists = rep && rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
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
    } else if (!force && compacting(r, study)) {
        fprintf(stderr,
                "ensflow study delete: a trainer is compacting %s's model files; try again in "
                "a minute, or pass --force\n",
                study);
        rc = 1;
    } else if (!force && deployed(r, study)) {
        fprintf(stderr,
                "ensflow study delete: an ensemble of %s is deployed (the plan in force); "
                "deploy another first, or pass --force\n",
                study);
        rc = 1;
    }
    usage_t u = {0};
    long deleted = 0;
    if (!rc && redis_usage(r, study, &u, errstr, sizeof errstr))
        rc = 1;
    if (!rc) { /* the key set first: no service picks the study up again while it goes */
        for (size_t i = 0; !rc && i < sizeof STUDY_SETS / sizeof *STUDY_SETS; i++)
            rc = ens_redis_exec(r, errstr, sizeof errstr, "SREM %s %s", STUDY_SETS[i], study)
                     ? 1
                     : 0;
        char esc[200], pattern[256];
        ens_redis_glob_escape(study, esc, sizeof esc); /* it fit for redis_usage above */
        snprintf(pattern, sizeof pattern, "ens:{%s}:*", esc);
        if (!rc && scan_keys(r, pattern, del_key, &deleted, errstr, sizeof errstr))
            rc = 1;
        if (!rc && ens_models_study_remove(ms, study, errstr, sizeof errstr))
            rc = 1;
        if (rc)
            fprintf(stderr, "ensflow study delete: %s\n", errstr);
    }
    if (!rc)
        printf("deleted study %s: %ld keys (%.1f MB) from Redis, %ld files (%.1f MB) from %s\n",
               study, deleted, u.bytes / 1e6, files, (double)bytes / 1e6, ens_models_dir(ms));
    ens_models_close(ms);
    ens_redis_free(r);
    return rc;
}
