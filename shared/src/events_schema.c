/* events_schema.c - the field tables (each event struct <-> its Avro record) and the embedded
 * schemas, loaded once: fingerprints, reader projections of older versions, generic classes. */
#include "events_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schemas_gen.h"

#define MAX_KNOWN 64 /* embedded schema files */

/* --- the field tables ---------------------------------------------------------------------- */

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
const rec_t ens_events_common_rec = REC(ens_event_t, common_f);

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

const ev_type_t ens_events_types[ENS_EV__COUNT] = {
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

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static known_t g_known[MAX_KNOWN];
static int g_nknown;
static int g_cur[ENS_EV__COUNT];        /* index into g_known of each current schema */
static json_t *g_fields[ENS_EV__COUNT]; /* "fields" of each current schema (for defaults) */
static char g_init_err[256];

static int type_by_name(const char *name) {
    for (int t = 0; t < ENS_EV__COUNT; t++)
        if (name && strcmp(ens_events_types[t].name, name) == 0)
            return t;
    return -1;
}

/* The "fields" of the record a field holds directly or as array items (JSON), or NULL. */
json_t *ens_events_nested_fields(const json_t *field) {
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
        if (ens_events_nested_fields(f)) { /* a record, held directly or as array items */
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
            return init_fail(sf->file, "second current schema of %s", ens_events_types[t].name);
        g_cur[t] = g_nknown;
        k->reader = avro_schema_incref(k->writer);
        json_t *root = json_loads(sf->json, 0, NULL);
        g_fields[t] = json_incref(json_object_get(root, "fields"));
        json_decref(root);
        const rec_t *recs[2] = {&ens_events_common_rec, &ens_events_types[t].rec};
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
            init_fail(ens_events_types[t].name, "missing from schemas/");
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

ens_err_t ens_events_init(char *errstr, size_t errstr_size) {
    pthread_once(&g_once, init_once);
    if (g_init_err[0])
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "%s", g_init_err);
    return ENS_OK;
}

const known_t *ens_events_current(ens_event_type_t type) { return &g_known[g_cur[type]]; }

const known_t *ens_events_by_fingerprint(uint64_t fp) {
    for (int i = 0; i < g_nknown; i++)
        if (g_known[i].fp == fp)
            return &g_known[i];
    return NULL;
}

const json_t *ens_events_current_fields(ens_event_type_t type) { return g_fields[type]; }

const char *ens_event_type_name(ens_event_type_t type) {
    return (unsigned)type < ENS_EV__COUNT ? ens_events_types[type].name : "?";
}

uint64_t ens_event_fingerprint(ens_event_type_t type) {
    if (ens_events_init(NULL, 0) || (unsigned)type >= ENS_EV__COUNT)
        return 0;
    return g_known[g_cur[type]].fp;
}
