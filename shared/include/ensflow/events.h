/* events.h - decoded ensflow events and their Avro single-object wire format. */
#ifndef ENSFLOW_EVENTS_H
#define ENSFLOW_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"

#define ENS_ID_MAX 64 /* ids are short strings (UUIDs, "t-0007", ...) */

/** Every event type; the schema of each is schemas/<Name>.avsc. */
typedef enum {
    ENS_EV_STUDY_CREATED = 0,
    ENS_EV_TRIAL_JOB,
    ENS_EV_TRIAL_RESULT,
    ENS_EV_MODEL_EVALUATED,
    ENS_EV_ENSEMBLE_FRONT,
    ENS_EV_DEPLOY_COMMAND,
    ENS_EV_PLACEMENT_PLAN,
    ENS_EV_INFERENCE_REQUEST,
    ENS_EV_INFERENCE_RESPONSE,
    ENS_EV_DEAD_LETTER,
    ENS_EV_STUDY_COMMAND,
    ENS_EV_STUDY_REJECTED,
    ENS_EV__COUNT
} ens_event_type_t;

/* All strings below are NUL-terminated; char * members are heap-owned by the event
 * (released by ens_event_free) and may be NULL where the schema says "null". */

typedef struct {
    char study_id[ENS_ID_MAX];
    char *dataset;           /**< "fashion-mnist", an IDX directory or a CSV file */
    char *search_space_json; /**< JSON object describing the space (may be "{}") */
    int32_t n_trials;        /**< configurations to train */
    double epochs;           /**< epochs per trial */
    int64_t seed;            /**< study seed: split, proposals, initialisation */
    double val_fraction;     /**< share of the training file held out for validation */
    int32_t top_k;           /**< ensemble size for the top-K selector */
    char scheduler[16];      /**< "random", "sha", "asha", "hyperband" (v2, default random) */
    double eta;              /**< rung reduction factor (v2, default 3) */
    double min_epochs;       /**< r_min, epochs of the lowest rung; 0 = epochs/eta^2 (v2) */
    double max_epochs_budget; /**< total epochs over all trials, 0 = no limit (v2) */
    double max_wall_seconds; /**< wall-clock budget from creation, 0 = no limit (v2) */
} ens_study_created_t;

/** Stop a study, or extend its budget (schemas/StudyCommand.avsc). */
typedef struct {
    char study_id[ENS_ID_MAX];
    char command[16];         /**< "stop" or "extend" */
    int32_t add_trials;       /**< extend: configurations added */
    double add_epochs_budget; /**< extend: epochs added to the total budget */
    double add_wall_seconds;  /**< extend: seconds added to the wall-clock budget */
} ens_study_command_t;

/** The proposer refused a study (schemas/StudyRejected.avsc). */
typedef struct {
    char study_id[ENS_ID_MAX];
    char *reason;             /**< names the bad field */
} ens_study_rejected_t;

typedef struct {
    char study_id[ENS_ID_MAX];
    char trial_id[ENS_ID_MAX];
    char *config_json;  /**< the sampled hyperparameters as a JSON object */
    char *dataset;
    double val_fraction;
    int64_t seed;       /**< the study seed (same split everywhere) */
    double epochs;      /**< train until this many epochs are done */
    double from_epoch;  /**< resume from a checkpoint at this epoch (0 = start) */
    int32_t attempt;    /**< 1 for the first delivery of this job */
} ens_trial_job_t;

typedef enum { ENS_TRIAL_OK = 0, ENS_TRIAL_FAILED = 1 } ens_trial_status_t;

typedef struct {
    char study_id[ENS_ID_MAX];
    char trial_id[ENS_ID_MAX];
    char model_id[ENS_ID_MAX]; /**< checkpoint id in the model store */
    ens_trial_status_t status;
    double epochs_done;
    double val_accuracy;  /**< on the validation split, 0..1 */
    double val_loss;      /**< mean cross-entropy on validation */
    double train_seconds; /**< wall time of this job */
    char *error;          /**< why it failed, or NULL */
    double train_samples_per_second; /**< added in schema v2 (default 0) */
} ens_trial_result_t;

typedef struct {
    char study_id[ENS_ID_MAX];
    char trial_id[ENS_ID_MAX];
    char model_id[ENS_ID_MAX];
    double val_accuracy;
    double val_logloss;
    int64_t n_params;
    double ms_per_sample;  /**< measured inference time per sample at the serving batch size */
    int32_t batch_size;    /**< the batch size ms_per_sample was measured at */
    int64_t memory_bytes;  /**< weights plus activations at the serving batch size */
    int32_t n_val;         /**< validation samples in the stored probability matrix */
    int32_t n_classes;
} ens_model_evaluated_t;

typedef struct {
    char ensemble_id[ENS_ID_MAX];
    char method[32];     /**< "single", "topk", ... */
    int32_t n_members;
    char (*members)[ENS_ID_MAX]; /**< model ids, n_members of them */
    double *weights;             /**< combination weights, sum 1 */
    double val_accuracy;         /**< on the selection half of validation */
    double holdout_accuracy;     /**< on the other half */
    double cost_ms_per_sample;   /**< sum of members' ms_per_sample */
    int64_t memory_bytes;
    double val_logloss;          /**< mean -log p(label) on the selection half, nats;
                                  *   0: unknown (a front written before EnsembleFront v2) */
    double holdout_logloss;      /**< the same on the holdout half; 0: unknown */
} ens_ensemble_t;

typedef struct {
    char study_id[ENS_ID_MAX];
    char front_id[ENS_ID_MAX];
    int32_t n_models;      /**< library size when the front was computed */
    int32_t n_ensembles;
    ens_ensemble_t *ensembles;
} ens_ensemble_front_t;

typedef struct {
    char study_id[ENS_ID_MAX];
    char ensemble_id[ENS_ID_MAX]; /**< "" = choose by the constraints below */
    double max_cost_ms;           /**< 0 = no limit */
    int64_t max_memory_bytes;     /**< 0 = no limit */
    double min_accuracy;          /**< 0 = no limit */
} ens_deploy_command_t;

typedef struct {
    char model_id[ENS_ID_MAX];
    double weight;
    char device[ENS_ID_MAX];
    int32_t instances;
    int32_t batch_size;
} ens_placement_t;

typedef struct {
    char study_id[ENS_ID_MAX];
    char plan_id[ENS_ID_MAX];
    char ensemble_id[ENS_ID_MAX];
    int64_t version;      /**< increases with every plan of the study */
    int32_t n_members;
    ens_placement_t *members;
    double predicted_throughput; /**< samples per second */
} ens_placement_plan_t;

typedef struct {
    char request_id[ENS_ID_MAX];
    int32_t n_shape;
    int32_t shape[8];   /**< e.g. {1, 28, 28} or {784} */
    int32_t n_data;
    float *data;        /**< row-major, product(shape) values */
    int64_t deadline_ms; /**< epoch milliseconds after which an answer is useless; 0 = none */
} ens_inference_request_t;

typedef enum {
    ENS_RESPONSE_OK = 0,
    ENS_RESPONSE_ERROR = 1,
    ENS_RESPONSE_TIMEOUT = 2
} ens_response_status_t;

typedef struct {
    char request_id[ENS_ID_MAX];
    ens_response_status_t status;
    char *error;              /**< NULL when status is OK */
    int32_t predicted_class;  /**< -1 on error */
    int32_t n_probabilities;
    float *probabilities;
    char ensemble_id[ENS_ID_MAX];
    int64_t plan_version;
    int32_t n_model_versions;
    char (*model_versions)[ENS_ID_MAX];
} ens_inference_response_t;

typedef struct {
    char source_topic[128];
    int32_t partition;
    int64_t offset;
    char service[32];
    char *reason;
    size_t payload_len;
    uint8_t *payload;         /**< the message as it arrived */
} ens_dead_letter_t;

/** One decoded event; `type` selects the union member. */
typedef struct {
    ens_event_type_t type;
    char event_id[ENS_ID_MAX]; /**< UUID string */
    int64_t occurred_at;       /**< epoch milliseconds */
    union {
        ens_study_created_t study_created;
        ens_trial_job_t trial_job;
        ens_trial_result_t trial_result;
        ens_model_evaluated_t model_evaluated;
        ens_ensemble_front_t ensemble_front;
        ens_deploy_command_t deploy_command;
        ens_placement_plan_t placement_plan;
        ens_inference_request_t inference_request;
        ens_inference_response_t inference_response;
        ens_dead_letter_t dead_letter;
        ens_study_command_t study_command;
        ens_study_rejected_t study_rejected;
    } u;
} ens_event_t;

/** @brief Initialise ev as an empty event of this type with a fresh event_id and occurred_at = now. */
void ens_event_init(ens_event_t *ev, ens_event_type_t type);

/** @brief Release the heap members of ev (not ev itself); ev is zeroed. NULL is a no-op. */
void ens_event_free(ens_event_t *ev);

/** @brief Schema name of a type ("TrialJob"), also the Kafka `event-type` header. */
const char *ens_event_type_name(ens_event_type_t type);

/**
 * @brief Encode ev as Avro single-object encoding: C3 01, the 8-byte little-endian
 *        CRC-64-AVRO fingerprint of the current schema's canonical form, the binary body.
 * @remark *buf is malloc'd; the caller frees it.
 */
ens_err_t ens_event_encode(const ens_event_t *ev, uint8_t **buf, size_t *len, char *errstr,
                           size_t errstr_size);

/**
 * @brief Decode a single-object-encoded message. Writer schemas known to this build
 *        (current and older versions, see schemas/history) are resolved into the current one.
 * @return ENS_OK, or ENS_ERR_AVRO with errstr naming the reason ("bad marker",
 *         "unknown fingerprint 0x...", "body does not decode as TrialJob: ...").
 * @remark on success the caller owns ev's heap members (ens_event_free).
 */
ens_err_t ens_event_decode(const uint8_t *buf, size_t len, ens_event_t *ev, char *errstr,
                           size_t errstr_size);

/** Which code ens_event_encode_with / ens_event_decode_with run. */
typedef enum {
    ENS_CODEC_AUTO = 0, /**< what ens_event_encode / ens_event_decode do: direct where it can */
    ENS_CODEC_GENERIC,  /**< Avro C's generic values only: the reference */
    ENS_CODEC_DIRECT    /**< the direct writer / reader only (current InferenceRequest);
                         *   ENS_ERR_UNSUPPORTED for anything it does not take */
} ens_codec_t;

/**
 * @brief ens_event_encode with a choice of code. The direct writer (InferenceRequest, ~20x
 *        faster than Avro C's generic values) writes the same bytes; a request it does not
 *        take (a bad count, an unterminated id) goes to the generic path, so errors are the same.
 * @remark for tests and benchmarks; services call ens_event_encode.
 */
ens_err_t ens_event_encode_with(const ens_event_t *ev, ens_codec_t codec, uint8_t **buf,
                                size_t *len, char *errstr, size_t errstr_size);

/**
 * @brief ens_event_decode with a choice of code. The direct reader (the current
 *        InferenceRequest schema) gives the same event; a body it does not accept goes to the
 *        generic path, so errors and their messages are the same.
 * @remark for tests and benchmarks; services call ens_event_decode.
 */
ens_err_t ens_event_decode_with(const uint8_t *buf, size_t len, ens_codec_t codec, ens_event_t *ev,
                                char *errstr, size_t errstr_size);

/** @brief CRC-64-AVRO (Rabin) fingerprint of the bytes of a canonical schema. */
uint64_t ens_avro_fingerprint64(const char *canonical, size_t len);

/**
 * @brief Parsing Canonical Form of a schema given as JSON text.
 * @remark *out is malloc'd; the caller frees it.
 */
ens_err_t ens_avro_canonical_form(const char *schema_json, char **out, char *errstr,
                                  size_t errstr_size);

/** @brief Fingerprint of the current schema of a type. */
uint64_t ens_event_fingerprint(ens_event_type_t type);

/** @brief Write a fresh random UUID v4 (37 bytes with the NUL) into out. */
void ens_uuid(char out[37]);

/** @brief Milliseconds since the epoch. */
int64_t ens_now_ms(void);

#endif
