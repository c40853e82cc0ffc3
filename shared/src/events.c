/* events.c - ensflow events <-> Avro single-object encoding, driven by a field table per record. */
#include "ensflow/events.h"

#include <avro.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "schemas_gen.h"

#define HDR_LEN 10                   /* C3 01 + 8-byte fingerprint */
#define MAX_VALUES (16 * 1024 * 1024) /* floats in a tensor, elements of any array */
#define MAX_MEMBERS 100000            /* members, ensembles, model versions */
#define MAX_DEPTH 32                  /* schema nesting while validating a body */
#define MAX_KNOWN 64                  /* embedded schema files */

/* --- the field tables ---------------------------------------------------------------------- */

/* How a C member maps to its Avro field. Arrays keep their element count in an int32_t
 * member (count_off) that has no Avro field of its own: it is the array's length. */
typedef enum {
    K_ID,      /* char[size] <-> string; longer strings are an error */
    K_STR,     /* char * <-> string (never NULL) */
    K_OPTSTR,  /* char * <-> ["null","string"] */
    K_INT,     /* int32_t <-> int */
    K_LONG,    /* int64_t <-> long */
    K_OPTLONG, /* int64_t <-> ["null","long"], 0 <-> null */
    K_DOUBLE,  /* double <-> double */
    K_ENUM,    /* C enum <-> Avro enum with the same symbol order, max symbols */
    K_INTS,    /* int32_t[max] in the struct <-> array<int> */
    K_FLOATS,  /* float * <-> array<float> */
    K_DOUBLES, /* double * <-> array<double> */
    K_IDS,     /* char (*)[ENS_ID_MAX] <-> array<string> */
    K_RECS,    /* sub->size-byte records <-> array<record> */
    K_BYTES,   /* uint8_t * with a size_t length at count_off <-> bytes */
} kind_t;

typedef struct rec rec_t;
typedef struct {
    const char *name;
    kind_t kind;
    size_t off, size;  /* the member */
    size_t count_off;  /* arrays and bytes: the member holding the length */
    int32_t max;       /* arrays: most elements; enums: number of symbols */
    int shared;        /* the count was set by an earlier array: lengths must match */
    const rec_t *sub;  /* K_RECS: the element record */
} field_t;

struct rec {
    size_t size;
    int n;
    const field_t *f;
};

#define MEM(T, m) offsetof(T, m), sizeof(((T *)0)->m)
#define F(T, m, k) {#m, k, MEM(T, m), 0, 0, 0, NULL}
#define F_ENUM(T, m, nsym) {#m, K_ENUM, MEM(T, m), 0, nsym, 0, NULL}
#define F_ARR(T, m, k, n, cap) {#m, k, MEM(T, m), offsetof(T, n), cap, 0, NULL}
#define F_RECS(T, m, n, cap, sub) {#m, K_RECS, MEM(T, m), offsetof(T, n), cap, 0, &sub}
#define REC(T, fields) {sizeof(T), (int)(sizeof fields / sizeof fields[0]), fields}

/* K_ENUM members are copied as int */
_Static_assert(sizeof(ens_trial_status_t) == sizeof(int), "enum size");
_Static_assert(sizeof(ens_response_status_t) == sizeof(int), "enum size");

static const field_t common_f[] = {F(ens_event_t, event_id, K_ID),
                                   F(ens_event_t, occurred_at, K_LONG)};
static const rec_t common_rec = REC(ens_event_t, common_f);

static const field_t study_created_f[] = {
    F(ens_study_created_t, study_id, K_ID),       F(ens_study_created_t, dataset, K_STR),
    F(ens_study_created_t, search_space_json, K_STR), F(ens_study_created_t, n_trials, K_INT),
    F(ens_study_created_t, epochs, K_DOUBLE),     F(ens_study_created_t, seed, K_LONG),
    F(ens_study_created_t, val_fraction, K_DOUBLE), F(ens_study_created_t, top_k, K_INT),
    F(ens_study_created_t, scheduler, K_ID),      F(ens_study_created_t, eta, K_DOUBLE),
    F(ens_study_created_t, min_epochs, K_DOUBLE),
    F(ens_study_created_t, max_epochs_budget, K_DOUBLE),
    F(ens_study_created_t, max_wall_seconds, K_DOUBLE)};

static const field_t study_command_f[] = {
    F(ens_study_command_t, study_id, K_ID),       F(ens_study_command_t, command, K_ID),
    F(ens_study_command_t, add_trials, K_INT),
    F(ens_study_command_t, add_epochs_budget, K_DOUBLE),
    F(ens_study_command_t, add_wall_seconds, K_DOUBLE)};

static const field_t study_rejected_f[] = {F(ens_study_rejected_t, study_id, K_ID),
                                           F(ens_study_rejected_t, reason, K_STR)};

static const field_t trial_job_f[] = {
    F(ens_trial_job_t, study_id, K_ID),        F(ens_trial_job_t, trial_id, K_ID),
    F(ens_trial_job_t, config_json, K_STR),    F(ens_trial_job_t, dataset, K_STR),
    F(ens_trial_job_t, val_fraction, K_DOUBLE), F(ens_trial_job_t, seed, K_LONG),
    F(ens_trial_job_t, epochs, K_DOUBLE),      F(ens_trial_job_t, from_epoch, K_DOUBLE),
    F(ens_trial_job_t, attempt, K_INT)};

static const field_t trial_result_f[] = {
    F(ens_trial_result_t, study_id, K_ID),         F(ens_trial_result_t, trial_id, K_ID),
    F(ens_trial_result_t, model_id, K_ID),         F_ENUM(ens_trial_result_t, status, 2),
    F(ens_trial_result_t, epochs_done, K_DOUBLE),  F(ens_trial_result_t, val_accuracy, K_DOUBLE),
    F(ens_trial_result_t, val_loss, K_DOUBLE),     F(ens_trial_result_t, train_seconds, K_DOUBLE),
    F(ens_trial_result_t, error, K_OPTSTR),
    F(ens_trial_result_t, train_samples_per_second, K_DOUBLE)};

static const field_t model_evaluated_f[] = {
    F(ens_model_evaluated_t, study_id, K_ID),       F(ens_model_evaluated_t, trial_id, K_ID),
    F(ens_model_evaluated_t, model_id, K_ID),
    F(ens_model_evaluated_t, val_accuracy, K_DOUBLE),
    F(ens_model_evaluated_t, val_logloss, K_DOUBLE), F(ens_model_evaluated_t, n_params, K_LONG),
    F(ens_model_evaluated_t, ms_per_sample, K_DOUBLE), F(ens_model_evaluated_t, batch_size, K_INT),
    F(ens_model_evaluated_t, memory_bytes, K_LONG), F(ens_model_evaluated_t, n_val, K_INT),
    F(ens_model_evaluated_t, n_classes, K_INT)};

static const field_t ensemble_f[] = {
    F(ens_ensemble_t, ensemble_id, K_ID),
    F(ens_ensemble_t, method, K_ID),
    F_ARR(ens_ensemble_t, members, K_IDS, n_members, MAX_MEMBERS),
    {"weights", K_DOUBLES, MEM(ens_ensemble_t, weights), offsetof(ens_ensemble_t, n_members),
     MAX_MEMBERS, 1, NULL},
    F(ens_ensemble_t, val_accuracy, K_DOUBLE),
    F(ens_ensemble_t, holdout_accuracy, K_DOUBLE),
    F(ens_ensemble_t, cost_ms_per_sample, K_DOUBLE),
    F(ens_ensemble_t, memory_bytes, K_LONG),
    F(ens_ensemble_t, val_logloss, K_DOUBLE),
    F(ens_ensemble_t, holdout_logloss, K_DOUBLE)};
static const rec_t ensemble_rec = REC(ens_ensemble_t, ensemble_f);

static const field_t ensemble_front_f[] = {
    F(ens_ensemble_front_t, study_id, K_ID), F(ens_ensemble_front_t, front_id, K_ID),
    F(ens_ensemble_front_t, n_models, K_INT),
    F_RECS(ens_ensemble_front_t, ensembles, n_ensembles, MAX_MEMBERS, ensemble_rec)};

static const field_t deploy_command_f[] = {
    F(ens_deploy_command_t, study_id, K_ID),       F(ens_deploy_command_t, ensemble_id, K_ID),
    F(ens_deploy_command_t, max_cost_ms, K_DOUBLE),
    F(ens_deploy_command_t, max_memory_bytes, K_LONG),
    F(ens_deploy_command_t, min_accuracy, K_DOUBLE)};

static const field_t placement_f[] = {
    F(ens_placement_t, model_id, K_ID),   F(ens_placement_t, weight, K_DOUBLE),
    F(ens_placement_t, device, K_ID),     F(ens_placement_t, instances, K_INT),
    F(ens_placement_t, batch_size, K_INT)};
static const rec_t placement_rec = REC(ens_placement_t, placement_f);

static const field_t placement_plan_f[] = {
    F(ens_placement_plan_t, study_id, K_ID),     F(ens_placement_plan_t, plan_id, K_ID),
    F(ens_placement_plan_t, ensemble_id, K_ID),  F(ens_placement_plan_t, version, K_LONG),
    F_RECS(ens_placement_plan_t, members, n_members, MAX_MEMBERS, placement_rec),
    F(ens_placement_plan_t, predicted_throughput, K_DOUBLE)};

static const field_t inference_request_f[] = {
    F(ens_inference_request_t, request_id, K_ID),
    F_ARR(ens_inference_request_t, shape, K_INTS, n_shape, 8),
    F_ARR(ens_inference_request_t, data, K_FLOATS, n_data, MAX_VALUES),
    F(ens_inference_request_t, deadline_ms, K_OPTLONG)};

static const field_t inference_response_f[] = {
    F(ens_inference_response_t, request_id, K_ID),
    F_ENUM(ens_inference_response_t, status, 3),
    F(ens_inference_response_t, error, K_OPTSTR),
    F(ens_inference_response_t, predicted_class, K_INT),
    F_ARR(ens_inference_response_t, probabilities, K_FLOATS, n_probabilities, MAX_VALUES),
    F(ens_inference_response_t, ensemble_id, K_ID),
    F(ens_inference_response_t, plan_version, K_LONG),
    F_ARR(ens_inference_response_t, model_versions, K_IDS, n_model_versions, MAX_MEMBERS)};

static const field_t dead_letter_f[] = {
    F(ens_dead_letter_t, source_topic, K_ID), F(ens_dead_letter_t, partition, K_INT),
    F(ens_dead_letter_t, offset, K_LONG),     F(ens_dead_letter_t, service, K_ID),
    F(ens_dead_letter_t, reason, K_STR),
    {"payload", K_BYTES, MEM(ens_dead_letter_t, payload), offsetof(ens_dead_letter_t, payload_len),
     0, 0, NULL}};

static const struct {
    const char *name;
    rec_t rec;
} types[ENS_EV__COUNT] = {
    [ENS_EV_STUDY_CREATED] = {"StudyCreated", REC(ens_study_created_t, study_created_f)},
    [ENS_EV_TRIAL_JOB] = {"TrialJob", REC(ens_trial_job_t, trial_job_f)},
    [ENS_EV_TRIAL_RESULT] = {"TrialResult", REC(ens_trial_result_t, trial_result_f)},
    [ENS_EV_MODEL_EVALUATED] = {"ModelEvaluated", REC(ens_model_evaluated_t, model_evaluated_f)},
    [ENS_EV_ENSEMBLE_FRONT] = {"EnsembleFront", REC(ens_ensemble_front_t, ensemble_front_f)},
    [ENS_EV_DEPLOY_COMMAND] = {"DeployCommand", REC(ens_deploy_command_t, deploy_command_f)},
    [ENS_EV_PLACEMENT_PLAN] = {"PlacementPlan", REC(ens_placement_plan_t, placement_plan_f)},
    [ENS_EV_INFERENCE_REQUEST] = {"InferenceRequest",
                                  REC(ens_inference_request_t, inference_request_f)},
    [ENS_EV_INFERENCE_RESPONSE] = {"InferenceResponse",
                                   REC(ens_inference_response_t, inference_response_f)},
    [ENS_EV_DEAD_LETTER] = {"DeadLetter", REC(ens_dead_letter_t, dead_letter_f)},
    [ENS_EV_STUDY_COMMAND] = {"StudyCommand", REC(ens_study_command_t, study_command_f)},
    [ENS_EV_STUDY_REJECTED] = {"StudyRejected", REC(ens_study_rejected_t, study_rejected_f)},
};

/* --- schemas loaded once --------------------------------------------------------------------- */

typedef struct {
    ens_event_type_t type;
    int current;
    uint64_t fp;
    avro_schema_t writer;       /* the schema of the file */
    avro_schema_t reader;       /* current schema, or for history files its projection onto
                                 * the writer's fields (Avro C cannot fill reader defaults) */
    avro_value_iface_t *iface;  /* generic class of reader */
    const char *file;
} known_t;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static known_t g_known[MAX_KNOWN];
static int g_nknown;
static int g_cur[ENS_EV__COUNT];        /* index into g_known of each current schema */
static json_t *g_fields[ENS_EV__COUNT]; /* "fields" of each current schema (for defaults) */
static char g_init_err[256];

static int type_by_name(const char *name) {
    for (int t = 0; t < ENS_EV__COUNT; t++)
        if (name && strcmp(types[t].name, name) == 0)
            return t;
    return -1;
}

/* The field called name in a schema's JSON "fields" array, or NULL. */
static const json_t *field_json(const json_t *fields, const char *name) {
    size_t i;
    const json_t *f;
    json_array_foreach(fields, i, f) {
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n && strcmp(n, name) == 0)
            return f;
    }
    return NULL;
}

/* The "fields" of the record a field holds directly or as array items (JSON), or NULL. */
static json_t *nested_fields(const json_t *field) {
    json_t *t = json_object_get(field, "type");
    if (json_is_object(t) && json_is_string(json_object_get(t, "type")) &&
        !strcmp(json_string_value(json_object_get(t, "type")), "array"))
        t = json_object_get(t, "items");
    if (!json_is_object(t) || !json_is_string(json_object_get(t, "type")) ||
        strcmp(json_string_value(json_object_get(t, "type")), "record"))
        return NULL;
    return json_object_get(t, "fields");
}

static int init_fail(const char *file, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(g_init_err, sizeof g_init_err, "schema %s: ", file);
    va_start(ap, fmt);
    vsnprintf(g_init_err + n, sizeof g_init_err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* (avro_schema_record_field_get() returns garbage, not NULL, for a missing name in 1.11.1) */
static int has_field(avro_schema_t record, const char *name) {
    return avro_schema_record_field_get_index(record, name) >= 0;
}

/* Project the fields of record (the current schema's JSON, changed in place) onto writer, a
 * record schema of an older version: drop the fields the writer lacks (each must have a
 * default), recursing into records held directly or as array items (EnsembleFront's
 * Ensemble). */
static int project_record(known_t *k, json_t *record, avro_schema_t writer) {
    json_t *fields = json_object_get(record, "fields"), *kept = json_array(), *f;
    size_t i;
    if (!kept)
        return init_fail(k->file, "projection: out of memory");
    json_array_foreach(fields, i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        int idx = name ? avro_schema_record_field_get_index(writer, name) : -1;
        if (idx < 0) {
            if (!json_object_get(f, "default")) {
                json_decref(kept);
                return init_fail(k->file, "lacks field %s, which has no default", name);
            }
            continue;
        }
        avro_schema_t w = avro_schema_record_field_get_by_index(writer, idx);
        json_t *t = json_object_get(f, "type");
        if (nested_fields(f)) { /* a record, held directly or as array items */
            if (!strcmp(json_string_value(json_object_get(t, "type")), "array")) {
                w = avro_typeof(w) == AVRO_ARRAY ? avro_schema_array_items(w) : NULL;
                t = json_object_get(t, "items");
            }
            if (!w || avro_typeof(w) != AVRO_RECORD) {
                json_decref(kept);
                return init_fail(k->file, "field %s is no record in this version", name);
            }
            if (project_record(k, t, w)) {
                json_decref(kept);
                return -1;
            }
        }
        if (json_array_append(kept, f)) {
            json_decref(kept);
            return init_fail(k->file, "projection: out of memory");
        }
    }
    if (json_object_set_new(record, "fields", kept))
        return init_fail(k->file, "projection: out of memory");
    return 0;
}

/* Reader schema for an older writer: the current schema without the fields the writer lacks. */
static int make_projection(known_t *k) {
    json_t *root = json_loads(ens_schema_files[g_cur[k->type]].json, 0, NULL);
    if (!root)
        return init_fail(k->file, "projection: current schema does not parse");
    if (project_record(k, root, k->writer)) {
        json_decref(root);
        return -1;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    int rc = text ? avro_schema_from_json_length(text, strlen(text), &k->reader) : ENOMEM;
    free(text);
    return rc ? init_fail(k->file, "projection: %s", avro_strerror()) : 0;
}

static int load_one(const ens_schema_file_t *sf) {
    if (g_nknown == MAX_KNOWN)
        return init_fail(sf->file, "too many schema files");
    known_t *k = &g_known[g_nknown];
    k->file = sf->file;
    k->current = sf->current;
    if (avro_schema_from_json_length(sf->json, strlen(sf->json), &k->writer))
        return init_fail(sf->file, "%s", avro_strerror());
    int t = type_by_name(avro_schema_name(k->writer));
    if (t < 0)
        return init_fail(sf->file, "record %s is no event type", avro_schema_name(k->writer));
    k->type = (ens_event_type_t)t;
    char *canon = NULL, err[128];
    if (ens_avro_canonical_form(sf->json, &canon, err, sizeof err))
        return init_fail(sf->file, "%s", err);
    k->fp = ens_avro_fingerprint64(canon, strlen(canon));
    free(canon);
    for (int i = 0; i < g_nknown; i++)
        if (g_known[i].fp == k->fp)
            return init_fail(sf->file, "same fingerprint as %s", g_known[i].file);
    if (k->current) {
        if (g_cur[t] >= 0)
            return init_fail(sf->file, "second current schema of %s", types[t].name);
        g_cur[t] = g_nknown;
        k->reader = avro_schema_incref(k->writer);
        json_t *root = json_loads(sf->json, 0, NULL);
        g_fields[t] = json_incref(json_object_get(root, "fields"));
        json_decref(root);
        const rec_t *recs[2] = {&common_rec, &types[t].rec};
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < recs[r]->n; i++)
                if (!has_field(k->writer, recs[r]->f[i].name))
                    return init_fail(sf->file, "no field %s", recs[r]->f[i].name);
    }
    g_nknown++;
    return 0;
}

static void init_once(void) {
    for (int t = 0; t < ENS_EV__COUNT; t++)
        g_cur[t] = -1;
    for (int pass = 1; pass >= 0; pass--) /* current schemas first: projections need them */
        for (int i = 0; i < ens_schema_file_count; i++)
            if (ens_schema_files[i].current == pass && load_one(&ens_schema_files[i]))
                return;
    for (int t = 0; t < ENS_EV__COUNT; t++)
        if (g_cur[t] < 0) {
            init_fail(types[t].name, "missing from schemas/");
            return;
        }
    for (int i = 0; i < g_nknown; i++) {
        known_t *k = &g_known[i];
        if (!k->current && make_projection(k))
            return;
        if (!(k->iface = avro_generic_class_from_schema(k->reader))) {
            init_fail(k->file, "generic class: %s", avro_strerror());
            return;
        }
    }
}

static ens_err_t init(char *errstr, size_t errstr_size) {
    pthread_once(&g_once, init_once);
    if (g_init_err[0])
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "%s", g_init_err);
    return ENS_OK;
}

/* --- body validation: bound every length before Avro C allocates anything ----------------- */

typedef struct {
    const uint8_t *p, *end;
    const char *why;
} cursor_t;

static int bad(cursor_t *c, const char *why) {
    c->why = why;
    return -1;
}

static int read_varint(cursor_t *c, int64_t *out, int max_bytes) {
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (c->p == c->end)
            return bad(c, "truncated");
        uint8_t b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
            return 0;
        }
    }
    return bad(c, "varint too long");
}

static int skip_bytes(cursor_t *c, int64_t n) {
    if (n < 0 || n > c->end - c->p)
        return bad(c, n < 0 ? "negative length" : "length beyond the end of the message");
    c->p += n;
    return 0;
}

static int skip_value(cursor_t *c, avro_schema_t s, int depth) {
    int64_t v;
    if (depth > MAX_DEPTH)
        return bad(c, "schema nested too deeply");
    switch (avro_typeof(s)) {
    case AVRO_NULL: return 0;
    case AVRO_BOOLEAN: return skip_bytes(c, 1);
    case AVRO_INT32:
        if (read_varint(c, &v, 5))
            return -1;
        return v < INT32_MIN || v > INT32_MAX ? bad(c, "int out of range") : 0;
    case AVRO_INT64: return read_varint(c, &v, 10);
    case AVRO_FLOAT: return skip_bytes(c, 4);
    case AVRO_DOUBLE: return skip_bytes(c, 8);
    case AVRO_STRING:
    case AVRO_BYTES: return read_varint(c, &v, 10) ? -1 : skip_bytes(c, v);
    case AVRO_FIXED: return skip_bytes(c, avro_schema_fixed_size(s));
    case AVRO_ENUM:
        if (read_varint(c, &v, 10))
            return -1;
        return v < 0 || v >= avro_schema_enum_number_of_symbols(s) ? bad(c, "bad enum index") : 0;
    case AVRO_UNION:
        if (read_varint(c, &v, 10))
            return -1;
        if (v < 0 || (uint64_t)v >= avro_schema_union_size(s))
            return bad(c, "bad union branch");
        return skip_value(c, avro_schema_union_branch(s, (int)v), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if (skip_value(c, avro_schema_record_field_get_by_index(s, (int)i), depth + 1))
                return -1;
        return 0;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        int is_map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t item = is_map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        int64_t total = 0, size;
        for (;;) {
            if (read_varint(c, &v, 10))
                return -1;
            if (v == 0)
                return 0;
            if (v < 0) { /* a negative count is followed by the block's size in bytes */
                if (v == INT64_MIN || read_varint(c, &size, 10))
                    return bad(c, "bad block count");
                v = -v;
            }
            if (v > MAX_VALUES - total)
                return bad(c, "too many array elements");
            total += v;
            for (int64_t i = 0; i < v; i++) {
                if (is_map && (read_varint(c, &size, 10) || skip_bytes(c, size)))
                    return -1;
                if (skip_value(c, item, depth + 1))
                    return -1;
            }
        }
    }
    case AVRO_LINK: return skip_value(c, avro_schema_link_target(s), depth + 1);
    default: return bad(c, "unsupported schema type");
    }
}

/* --- struct <-> avro_value_t ---------------------------------------------------------------- */

typedef struct {
    char *errstr;
    size_t errstr_size;
    const char *what; /* "encode TrialJob" */
} ctx_t;

static ens_err_t fail(ctx_t *x, ens_err_t err, const field_t *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ens_err_t fail(ctx_t *x, ens_err_t err, const field_t *f, const char *fmt, ...) {
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ens_err_set(x->errstr, x->errstr_size, err, "%s: field %s: %s", x->what,
                       f ? f->name : "-", msg);
}

#define AV(call, x, f)                                                                           \
    do {                                                                                         \
        if ((call) != 0)                                                                         \
            return fail(x, ENS_ERR_AVRO, f, "%s", avro_strerror());                              \
    } while (0)

static int32_t get_count(const field_t *f, const void *base) {
    int32_t n;
    memcpy(&n, (const char *)base + f->count_off, sizeof n);
    return n;
}

static void set_count(const field_t *f, void *base, int32_t n) {
    memcpy((char *)base + f->count_off, &n, sizeof n);
}

static size_t elem_size(const field_t *f) {
    switch (f->kind) {
    case K_INTS: return sizeof(int32_t);
    case K_FLOATS: return sizeof(float);
    case K_DOUBLES: return sizeof(double);
    case K_IDS: return ENS_ID_MAX;
    case K_RECS: return f->sub->size;
    default: return 1;
    }
}

static ens_err_t enc_rec(ctx_t *x, const rec_t *r, const void *base, avro_value_t *val);

static ens_err_t set_str(ctx_t *x, const field_t *f, avro_value_t *v, const char *s, size_t cap) {
    size_t len = strnlen(s, cap);
    if (len == cap)
        return fail(x, ENS_ERR_INVALID, f, "string not NUL-terminated within %zu bytes", cap);
    AV(avro_value_set_string_len(v, s, len + 1), x, f);
    return ENS_OK;
}

/* One array element; el points at the C element. */
static ens_err_t enc_elem(ctx_t *x, const field_t *f, const char *el, avro_value_t *v) {
    switch (f->kind) {
    case K_INTS: AV(avro_value_set_int(v, *(const int32_t *)el), x, f); break;
    case K_FLOATS: AV(avro_value_set_float(v, *(const float *)el), x, f); break;
    case K_DOUBLES: AV(avro_value_set_double(v, *(const double *)el), x, f); break;
    case K_IDS: return set_str(x, f, v, el, ENS_ID_MAX);
    default: return enc_rec(x, f->sub, el, v);
    }
    return ENS_OK;
}

static ens_err_t enc_field(ctx_t *x, const field_t *f, const char *p, const void *base,
                           avro_value_t *v) {
    avro_value_t br;
    const char *s;
    int32_t i32;
    int64_t i64;
    double d;
    int e;
    switch (f->kind) {
    case K_ID: return set_str(x, f, v, p, f->size);
    case K_STR:
    case K_OPTSTR:
        memcpy(&s, p, sizeof s);
        if (f->kind == K_STR && !s)
            return fail(x, ENS_ERR_INVALID, f, "NULL (the schema has no null)");
        if (f->kind == K_OPTSTR) {
            AV(avro_value_set_branch(v, s != NULL, &br), x, f);
            v = &br;
            if (!s) {
                AV(avro_value_set_null(v), x, f);
                break;
            }
        }
        AV(avro_value_set_string(v, s), x, f);
        break;
    case K_INT: memcpy(&i32, p, sizeof i32); AV(avro_value_set_int(v, i32), x, f); break;
    case K_LONG: memcpy(&i64, p, sizeof i64); AV(avro_value_set_long(v, i64), x, f); break;
    case K_OPTLONG:
        memcpy(&i64, p, sizeof i64);
        AV(avro_value_set_branch(v, i64 != 0, &br), x, f);
        AV(i64 ? avro_value_set_long(&br, i64) : avro_value_set_null(&br), x, f);
        break;
    case K_DOUBLE: memcpy(&d, p, sizeof d); AV(avro_value_set_double(v, d), x, f); break;
    case K_ENUM:
        memcpy(&e, p, sizeof e);
        if (e < 0 || e >= f->max)
            return fail(x, ENS_ERR_INVALID, f, "enum value %d out of range", e);
        AV(avro_value_set_enum(v, e), x, f);
        break;
    case K_BYTES: {
        size_t n;
        const uint8_t *b;
        memcpy(&n, (const char *)base + f->count_off, sizeof n);
        memcpy(&b, p, sizeof b);
        if (n && !b)
            return fail(x, ENS_ERR_INVALID, f, "NULL with length %zu", n);
        AV(avro_value_set_bytes(v, n ? (void *)b : (void *)"", n), x, f);
        break;
    }
    default: { /* arrays */
        int32_t n = get_count(f, base);
        const char *arr = p;
        if (f->kind != K_INTS)
            memcpy(&arr, p, sizeof arr);
        if (n < 0 || n > f->max || (n > 0 && !arr))
            return fail(x, ENS_ERR_INVALID, f, "bad count %d (at most %d) or NULL array", n,
                        f->max);
        for (int32_t i = 0; i < n; i++) {
            avro_value_t el;
            AV(avro_value_append(v, &el, NULL), x, f);
            ens_err_t err = enc_elem(x, f, arr + (size_t)i * elem_size(f), &el);
            if (err)
                return err;
        }
    }
    }
    return ENS_OK;
}

static ens_err_t enc_rec(ctx_t *x, const rec_t *r, const void *base, avro_value_t *val) {
    for (int i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        avro_value_t child;
        AV(avro_value_get_by_name(val, f->name, &child, NULL), x, f);
        ens_err_t err = enc_field(x, f, (const char *)base + f->off, base, &child);
        if (err)
            return err;
    }
    return ENS_OK;
}

/* defaults: the current schema's JSON "fields" of the record when the writer was an older
 * version (fields it lacks take their default), NULL when it was the current one. */
static ens_err_t dec_rec(ctx_t *x, const rec_t *r, void *base, avro_value_t *val,
                         const json_t *defaults);

/* A string value without embedded NULs; *len excludes the terminator. */
static ens_err_t get_str(ctx_t *x, const field_t *f, avro_value_t *v, const char **s, size_t *len) {
    size_t size;
    AV(avro_value_get_string(v, s, &size), x, f);
    if (!*s || size == 0) {
        *s = "";
        size = 1;
    }
    *len = size - 1;
    if (memchr(*s, '\0', *len))
        return fail(x, ENS_ERR_AVRO, f, "string contains a NUL byte");
    return ENS_OK;
}

static ens_err_t put_fixed(ctx_t *x, const field_t *f, char *dst, size_t cap, const char *s,
                           size_t len) {
    if (len >= cap)
        return fail(x, ENS_ERR_AVRO, f, "string of %zu bytes is longer than %zu", len, cap - 1);
    memcpy(dst, s, len);
    dst[len] = '\0';
    return ENS_OK;
}

static ens_err_t put_dup(ctx_t *x, const field_t *f, char *p, const char *s, size_t len) {
    char *d = strndup(s, len);
    if (!d)
        return fail(x, ENS_ERR_NOMEM, f, "out of memory");
    memcpy(p, &d, sizeof d);
    return ENS_OK;
}

static ens_err_t dec_elem(ctx_t *x, const field_t *f, char *el, avro_value_t *v,
                          const json_t *defaults) {
    const char *s;
    size_t len;
    ens_err_t err;
    switch (f->kind) {
    case K_INTS: AV(avro_value_get_int(v, (int32_t *)el), x, f); break;
    case K_FLOATS: AV(avro_value_get_float(v, (float *)el), x, f); break;
    case K_DOUBLES: AV(avro_value_get_double(v, (double *)el), x, f); break;
    case K_IDS:
        if ((err = get_str(x, f, v, &s, &len)))
            return err;
        return put_fixed(x, f, el, ENS_ID_MAX, s, len);
    default: return dec_rec(x, f->sub, el, v, defaults);
    }
    return ENS_OK;
}

/* fjson: this field in the current schema (JSON) when decoding an older writer, else NULL */
static ens_err_t dec_field(ctx_t *x, const field_t *f, char *p, void *base, avro_value_t *v,
                           const json_t *fjson) {
    avro_value_t br;
    const char *s;
    size_t len;
    ens_err_t err;
    int e;
    switch (f->kind) {
    case K_ID:
        if ((err = get_str(x, f, v, &s, &len)))
            return err;
        return put_fixed(x, f, p, f->size, s, len);
    case K_OPTSTR:
    case K_OPTLONG:
        AV(avro_value_get_current_branch(v, &br), x, f);
        if (avro_value_get_type(&br) == AVRO_NULL)
            break; /* the struct is zeroed: NULL / 0 */
        v = &br;
        if (f->kind == K_OPTLONG) {
            AV(avro_value_get_long(v, (int64_t *)p), x, f);
            break;
        }
        /* fall through */
    case K_STR:
        if ((err = get_str(x, f, v, &s, &len)))
            return err;
        return put_dup(x, f, p, s, len);
    case K_INT: AV(avro_value_get_int(v, (int32_t *)p), x, f); break;
    case K_LONG: AV(avro_value_get_long(v, (int64_t *)p), x, f); break;
    case K_DOUBLE: AV(avro_value_get_double(v, (double *)p), x, f); break;
    case K_ENUM:
        AV(avro_value_get_enum(v, &e), x, f);
        if (e < 0 || e >= f->max)
            return fail(x, ENS_ERR_AVRO, f, "enum index %d out of range", e);
        memcpy(p, &e, sizeof e);
        break;
    case K_BYTES: {
        const void *b;
        AV(avro_value_get_bytes(v, &b, &len), x, f);
        uint8_t *d = malloc(len ? len : 1);
        if (!d)
            return fail(x, ENS_ERR_NOMEM, f, "out of memory");
        if (len)
            memcpy(d, b, len);
        memcpy(p, &d, sizeof d);
        memcpy((char *)base + f->count_off, &len, sizeof len);
        break;
    }
    default: { /* arrays */
        size_t n;
        AV(avro_value_get_size(v, &n), x, f);
        if (n > (size_t)f->max)
            return fail(x, ENS_ERR_AVRO, f, "%zu elements, at most %d", n, f->max);
        if (f->shared && (int32_t)n != get_count(f, base))
            return fail(x, ENS_ERR_AVRO, f, "%zu elements, expected %d", n, get_count(f, base));
        char *arr = p;
        if (f->kind != K_INTS && n > 0) {
            if (!(arr = calloc(n, elem_size(f))))
                return fail(x, ENS_ERR_NOMEM, f, "out of memory");
            memcpy(p, &arr, sizeof arr); /* owned by the event from here on */
        }
        set_count(f, base, (int32_t)n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t el;
            AV(avro_value_get_by_index(v, i, &el, NULL), x, f);
            if ((err = dec_elem(x, f, arr + i * elem_size(f), &el,
                                fjson ? nested_fields(fjson) : NULL)))
                return err;
        }
    }
    }
    return ENS_OK;
}

/* A field an older writer did not have: take the current schema's default. */
static ens_err_t dec_default(ctx_t *x, const field_t *f, char *p, const json_t *fjson) {
    const json_t *def = json_object_get(fjson, "default");
    if (json_is_null(def) && (f->kind == K_OPTSTR || f->kind == K_OPTLONG))
        return ENS_OK;
    if (json_is_number(def) && f->kind == K_DOUBLE) {
        double d = json_number_value(def);
        memcpy(p, &d, sizeof d);
        return ENS_OK;
    }
    if (json_is_integer(def) && (f->kind == K_INT || f->kind == K_LONG)) {
        int64_t v = json_integer_value(def);
        int32_t v32 = (int32_t)v;
        memcpy(p, f->kind == K_INT ? (void *)&v32 : (void *)&v, f->size);
        return ENS_OK;
    }
    if (json_is_string(def) && (f->kind == K_STR || f->kind == K_ID))
        return f->kind == K_STR
                   ? put_dup(x, f, p, json_string_value(def), json_string_length(def))
                   : put_fixed(x, f, p, f->size, json_string_value(def), json_string_length(def));
    if (json_is_array(def) && json_array_size(def) == 0 && f->kind >= K_INTS && f->kind <= K_RECS)
        return ENS_OK;
    return fail(x, ENS_ERR_UNSUPPORTED, f, "missing in the writer schema; default not supported");
}

static ens_err_t dec_rec(ctx_t *x, const rec_t *r, void *base, avro_value_t *val,
                         const json_t *defaults) {
    for (int i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        char *p = (char *)base + f->off;
        const json_t *fjson = defaults ? field_json(defaults, f->name) : NULL;
        avro_value_t child;
        ens_err_t err;
        if (avro_value_get_by_name(val, f->name, &child, NULL) != 0) {
            if (!defaults)
                return fail(x, ENS_ERR_AVRO, f, "missing");
            err = dec_default(x, f, p, fjson);
        } else {
            err = dec_field(x, f, p, base, &child, fjson);
        }
        if (err)
            return err;
    }
    return ENS_OK;
}

static void free_rec(const rec_t *r, void *base) {
    for (int i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        char *p = (char *)base + f->off, *ptr;
        if (f->kind != K_STR && f->kind != K_OPTSTR && f->kind < K_FLOATS)
            continue; /* stored in the struct itself */
        memcpy(&ptr, p, sizeof ptr);
        if (f->kind == K_RECS && ptr)
            for (int32_t j = 0; j < get_count(f, base); j++)
                free_rec(f->sub, ptr + (size_t)j * f->sub->size);
        free(ptr);
    }
}

/* --- InferenceRequest without Avro C's generic values ------------------------------------------
 * Why: the generic path goes through Avro C's value interface once per float (append, set,
 * then sizeof and write walk them again): ~27 us to encode and ~20 us to decode a 784-float
 * request, paid per sample by `ensflow predict` and by every inference group. These write and
 * read the same bytes directly (tests/unit/test_events_direct.c compares them with the generic
 * path). Anything unusual (a bad argument, a malformed or oversized body) is left to the
 * generic path, so that errors and their messages stay exactly what they were. */

#define REQ_SHAPE_MAX 8 /* inference_request_f: shape */

typedef struct {
    uint8_t *p;
} wbuf_t;

/* The single-object header: C3 01, then the writer schema's fingerprint, little-endian. */
static void put_header(uint8_t *out, uint64_t fp) {
    out[0] = 0xC3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(fp >> (8 * i));
}

/* Avro long: zig-zag, then base-128 varint, low group first (at most 10 bytes). */
static void put_long(wbuf_t *w, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        *w->p++ = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *w->p++ = (uint8_t)z;
}

static void put_string(wbuf_t *w, const char *s, size_t len) {
    put_long(w, (int64_t)len);
    memcpy(w->p, s, len);
    w->p += len;
}

/* Avro C writes an array as one block: the count (when not empty), the items, then 0. */
static void put_floats(wbuf_t *w, const float *v, int32_t n) {
    if (n > 0) {
        put_long(w, n);
        for (int32_t i = 0; i < n; i++, w->p += 4) { /* IEEE 754 binary32, little-endian */
            uint32_t u;
            memcpy(&u, &v[i], sizeof u);
            w->p[0] = (uint8_t)u;
            w->p[1] = (uint8_t)(u >> 8);
            w->p[2] = (uint8_t)(u >> 16);
            w->p[3] = (uint8_t)(u >> 24);
        }
    }
    put_long(w, 0);
}

/* The body's size bound, or 0 when the request is one the generic path must judge. */
static size_t request_bound(const ens_event_t *ev, size_t *id_len, size_t *req_len) {
    const ens_inference_request_t *q = &ev->u.inference_request;
    *id_len = strnlen(ev->event_id, sizeof ev->event_id);
    *req_len = strnlen(q->request_id, sizeof q->request_id);
    if (*id_len == sizeof ev->event_id || *req_len == sizeof q->request_id || q->n_shape < 0 ||
        q->n_shape > REQ_SHAPE_MAX || q->n_data < 0 || q->n_data > MAX_VALUES ||
        (q->n_data > 0 && !q->data))
        return 0;
    /* varints take at most 10 bytes: 2 strings, occurred_at, 2 arrays' counts and ends, union */
    return 10 + *id_len + 10 + 10 + *req_len + 20 + 10 * (size_t)q->n_shape + 20 +
           4 * (size_t)q->n_data + 1 + 10;
}

/* 1 when written into buf and len, 0 when the generic path must encode it. */
static int encode_request_direct(const ens_event_t *ev, uint64_t fp, uint8_t **buf, size_t *len) {
    const ens_inference_request_t *q = &ev->u.inference_request;
    size_t id_len, req_len, bound = request_bound(ev, &id_len, &req_len);
    uint8_t *out = bound ? malloc(HDR_LEN + bound) : NULL;
    if (!out) /* out of memory included: the generic path reports it */
        return 0;
    put_header(out, fp);
    wbuf_t w = {out + HDR_LEN};
    put_string(&w, ev->event_id, id_len);
    put_long(&w, ev->occurred_at);
    put_string(&w, q->request_id, req_len);
    if (q->n_shape > 0) {
        put_long(&w, q->n_shape);
        for (int32_t i = 0; i < q->n_shape; i++)
            put_long(&w, q->shape[i]);
    }
    put_long(&w, 0);
    put_floats(&w, q->data, q->n_data);
    put_long(&w, q->deadline_ms != 0); /* union branch: 0 null, 1 long */
    if (q->deadline_ms)
        put_long(&w, q->deadline_ms);
    *buf = out;
    *len = (size_t)(w.p - out);
    return 1;
}

/* A string into a char[cap]: what get_str and put_fixed accept (no NUL, shorter than cap). */
static int get_fixed(cursor_t *c, char *dst, size_t cap) {
    int64_t n;
    if (read_varint(c, &n, 10) || n < 0 || n >= (int64_t)cap || n > c->end - c->p ||
        memchr(c->p, '\0', (size_t)n))
        return -1;
    memcpy(dst, c->p, (size_t)n);
    dst[n] = '\0';
    c->p += n;
    return 0;
}

/* The item count of the next block of an array (blocks with a negative count carry their size
 * in bytes, which is skipped); 0 at the end of the array. */
static int get_block(cursor_t *c, int64_t *count) {
    int64_t size;
    if (read_varint(c, count, 10))
        return -1;
    if (*count < 0) {
        if (*count == INT64_MIN || read_varint(c, &size, 10))
            return -1;
        *count = -*count;
    }
    return 0;
}

static int get_shape(cursor_t *c, ens_inference_request_t *q) {
    int64_t n, v;
    for (;;) {
        if (get_block(c, &n))
            return -1;
        if (n == 0)
            return 0;
        if (n > REQ_SHAPE_MAX - q->n_shape)
            return -1;
        for (int64_t i = 0; i < n; i++) {
            if (read_varint(c, &v, 5) || v < INT32_MIN || v > INT32_MAX)
                return -1;
            q->shape[q->n_shape++] = (int32_t)v;
        }
    }
}

/* Floats of any number of blocks; q->data grows only when a second block comes. */
static int get_data(cursor_t *c, ens_inference_request_t *q) {
    int64_t n;
    for (;;) {
        if (get_block(c, &n))
            return -1;
        if (n == 0)
            return 0;
        if (n > MAX_VALUES - q->n_data || n > (c->end - c->p) / 4)
            return -1;
        float *d = realloc(q->data, (size_t)(q->n_data + n) * sizeof *d);
        if (!d)
            return -1;
        q->data = d;
        for (int64_t i = 0; i < n; i++, c->p += 4) {
            uint32_t u = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
                         (uint32_t)c->p[3] << 24;
            memcpy(&d[q->n_data++], &u, sizeof u);
        }
    }
}

/* 1 when body (the current InferenceRequest schema) was read into ev, 0 when the generic path
 * must decode it (ev is then zeroed). */
static int decode_request_direct(const uint8_t *body, size_t n, ens_event_t *ev) {
    cursor_t c = {body, body + n, NULL};
    ens_inference_request_t *q = &ev->u.inference_request;
    int64_t branch;
    ev->type = ENS_EV_INFERENCE_REQUEST;
    int bad_body = get_fixed(&c, ev->event_id, sizeof ev->event_id) ||
                   read_varint(&c, &ev->occurred_at, 10) ||
                   get_fixed(&c, q->request_id, sizeof q->request_id) || get_shape(&c, q) ||
                   get_data(&c, q) || read_varint(&c, &branch, 10) || branch < 0 || branch > 1 ||
                   (branch == 1 && read_varint(&c, &q->deadline_ms, 10)) || c.p != c.end;
    if (bad_body) {
        ens_event_free(ev);
        return 0;
    }
    return 1;
}

/* --- public API ----------------------------------------------------------------------------- */

const char *ens_event_type_name(ens_event_type_t type) {
    return (unsigned)type < ENS_EV__COUNT ? types[type].name : "?";
}

uint64_t ens_event_fingerprint(ens_event_type_t type) {
    if (init(NULL, 0) || (unsigned)type >= ENS_EV__COUNT)
        return 0;
    return g_known[g_cur[type]].fp;
}

void ens_event_init(ens_event_t *ev, ens_event_type_t type) {
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ens_uuid(ev->event_id);
    ev->occurred_at = ens_now_ms();
}

void ens_event_free(ens_event_t *ev) {
    if (!ev)
        return;
    if ((unsigned)ev->type < ENS_EV__COUNT)
        free_rec(&types[ev->type].rec, &ev->u);
    memset(ev, 0, sizeof *ev);
}

ens_err_t ens_event_encode_with(const ens_event_t *ev, ens_codec_t codec, uint8_t **buf,
                                size_t *len, char *errstr, size_t errstr_size) {
    if (!ev || !buf || !len || (unsigned)ev->type >= ENS_EV__COUNT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "bad argument");
    *buf = NULL;
    *len = 0;
    ens_err_t err = init(errstr, errstr_size);
    if (err)
        return err;
    const known_t *k = &g_known[g_cur[ev->type]];
    if (codec != ENS_CODEC_GENERIC && ev->type == ENS_EV_INFERENCE_REQUEST &&
        encode_request_direct(ev, k->fp, buf, len))
        return ENS_OK;
    if (codec == ENS_CODEC_DIRECT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                           "encode %s: not for the direct writer", types[ev->type].name);
    char what[64];
    snprintf(what, sizeof what, "encode %s", types[ev->type].name);
    ctx_t x = {errstr, errstr_size, what};
    avro_value_t val;
    if (avro_generic_value_new(k->iface, &val))
        return fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
    size_t n = 0;
    uint8_t *out = NULL;
    if (!(err = enc_rec(&x, &common_rec, ev, &val)) &&
        !(err = enc_rec(&x, &types[ev->type].rec, &ev->u, &val))) {
        if (avro_value_sizeof(&val, &n))
            err = fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
        else if (!(out = malloc(HDR_LEN + n)))
            err = fail(&x, ENS_ERR_NOMEM, NULL, "out of memory");
    }
    if (!err) {
        put_header(out, k->fp);
        avro_writer_t w = avro_writer_memory((const char *)out + HDR_LEN, (int64_t)n);
        if (!w || avro_value_write(w, &val))
            err = fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
        if (w)
            avro_writer_free(w);
    }
    avro_value_decref(&val);
    if (err) {
        free(out);
        return err;
    }
    *buf = out;
    *len = HDR_LEN + n;
    return ENS_OK;
}

ens_err_t ens_event_encode(const ens_event_t *ev, uint8_t **buf, size_t *len, char *errstr,
                           size_t errstr_size) {
    return ens_event_encode_with(ev, ENS_CODEC_AUTO, buf, len, errstr, errstr_size);
}

/* Read body (written with k->writer) into val, a value of k->reader. */
static int read_body(const known_t *k, const uint8_t *body, size_t n, avro_value_t *val) {
    avro_reader_t r = avro_reader_memory((const char *)body, (int64_t)n);
    if (!r)
        return ENOMEM;
    int rc;
    if (k->current) {
        rc = avro_value_read(r, val);
    } else {
        avro_value_iface_t *res = avro_resolved_writer_new(k->writer, k->reader);
        avro_value_t rv;
        rc = res ? avro_resolved_writer_new_value(res, &rv) : EINVAL;
        if (!rc) {
            avro_resolved_writer_set_dest(&rv, val);
            rc = avro_value_read(r, &rv);
            avro_value_decref(&rv);
        }
        if (res)
            avro_value_iface_decref(res);
    }
    avro_reader_free(r);
    return rc;
}

ens_err_t ens_event_decode_with(const uint8_t *buf, size_t len, ens_codec_t codec, ens_event_t *ev,
                                char *errstr, size_t errstr_size) {
    if (!ev || (!buf && len))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "bad argument");
    memset(ev, 0, sizeof *ev);
    ens_err_t err = init(errstr, errstr_size);
    if (err)
        return err;
    if (len < HDR_LEN)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "message too short (%zu bytes)",
                           len);
    if (buf[0] != 0xC3 || buf[1] != 0x01)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "bad marker");
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)buf[2 + i] << (8 * i);
    const known_t *k = NULL;
    for (int i = 0; i < g_nknown && !k; i++)
        if (g_known[i].fp == fp)
            k = &g_known[i];
    if (!k)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "unknown fingerprint 0x%016llx",
                           (unsigned long long)fp);
    if (codec != ENS_CODEC_GENERIC && k->current && k->type == ENS_EV_INFERENCE_REQUEST &&
        decode_request_direct(buf + HDR_LEN, len - HDR_LEN, ev))
        return ENS_OK;
    if (codec == ENS_CODEC_DIRECT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                           "decode %s: not for the direct reader", types[k->type].name);
    const char *name = types[k->type].name;
    cursor_t c = {buf + HDR_LEN, buf + len, NULL};
    if (skip_value(&c, k->writer, 0) || c.p != c.end)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "body does not decode as %s: %s",
                           name, c.why ? c.why : "trailing bytes after the body");
    char what[96];
    snprintf(what, sizeof what, "body does not decode as %s", name);
    ctx_t x = {errstr, errstr_size, what};
    avro_value_t val;
    if (avro_generic_value_new(k->iface, &val))
        return fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
    if (read_body(k, buf + HDR_LEN, len - HDR_LEN, &val)) {
        err = fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
    } else {
        ev->type = k->type;
        if (!(err = dec_rec(&x, &common_rec, ev, &val, NULL)))
            err = dec_rec(&x, &types[k->type].rec, &ev->u, &val,
                          k->current ? NULL : g_fields[k->type]);
    }
    avro_value_decref(&val);
    if (err)
        ens_event_free(ev);
    return err;
}

ens_err_t ens_event_decode(const uint8_t *buf, size_t len, ens_event_t *ev, char *errstr,
                           size_t errstr_size) {
    return ens_event_decode_with(buf, len, ENS_CODEC_AUTO, ev, errstr, errstr_size);
}

void ens_uuid(char out[37]) {
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            break;
    }
    if (got < sizeof b) { /* no getrandom(): fall back to /dev/urandom */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        ENS_ASSERT(fd >= 0 && read(fd, b, sizeof b) == (ssize_t)sizeof b);
        close(fd);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int64_t ens_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
