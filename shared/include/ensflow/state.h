/* state.h - the typed state layer: what the services keep, behind one interface with a Redis
 * and an in-memory implementation. */
#ifndef ENSFLOW_STATE_H
#define ENSFLOW_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/events.h"
#include "ensflow/models.h"
#include "ensflow/registry.h"
#include "ensflow/store.h"

/*
 * Where each thing lives in Redis (state_redis.c spells every key and field below, registry.c
 * the device registry's; studies, compaction and serving have their own table and file,
 * state_studies.h and state_studies_redis.c, and so do the scheduler and the jobs,
 * state_sched.h and state_sched_keys.h; nothing else does). {s} is the study id as a Redis
 * Cluster hash tag, <m> a model id.
 *
 *   ens:{s}:study              hash: dataset, val_fraction, seed, top_k, status, created_ms,
 *                              deadline_ms (written by the proposer; more fields it keeps)
 *   ens:{s}:model:<m>:ref      the model store's reference (models.h); older: a chunked blob
 *   ens:{s}:eval:<m>           hash: trial_id val_accuracy val_logloss n_params
 *                              flops_per_sample ms_per_sample batch_size memory_bytes
 *                              ms_per_sample_b1 _b8 _b32 _b128 n_val n_classes probs_dtype;
 *                              the selector adds sel_accuracy holdout_accuracy sel_logloss
 *                              holdout_logloss
 *   ens:{s}:probs:<m>          chunked blob (store.h): n_val x classes, float16 when the
 *                              evaluation says probs_dtype float16, else float32 (older)
 *   ens:{s}:val_labels         chunked blob: n_val int32 labels
 *   ens:{s}:library            set of evaluated models
 *   ens:selector:dirty         set of studies whose front is behind their library
 *   ens:{s}:front              the latest EnsembleFront, Avro single-object encoded
 *   ens:{s}:deploy:<event>     the PlacementPlan a deploy command made (redelivery)
 *   ens:{s}:plan               the study's plan in force; ens:plan:current the global one
 *   ens:plan:version           counter of plan versions, global
 *   ens:plan:<v>:compute       hash device -> predicted compute ms per sample (a week's TTL)
 *   ens:device:<id>, ens:devices   the device registry (registry.h, state/registry.c)
 *   ens:trainers               zset: trainer -> its last heartbeat (ms)
 *   ens:trainers:state         hash: trainer -> "idle" or "busy <study> <model>"
 *   ens:trainers:busy_s        hash: trainer -> seconds spent on jobs
 *   ens:trainers:parts         hash: trainer -> "<beat_ms> <p>,<p>,..." or "<beat_ms> -", its
 *                              partitions of trial.jobs (ens_trainer_parts_record writes it,
 *                              ens_dispatch_record_parse reads it)
 */

/** The global keys, for modules that do not go through this layer yet. */
#define ENS_STATE_KEY_SELECTOR_DIRTY "ens:selector:dirty"
#define ENS_STATE_KEY_PLAN_CURRENT "ens:plan:current"
#define ENS_STATE_KEY_PLAN_VERSION "ens:plan:version"

/** Batch sizes of an evaluation's cost profile (ms_per_sample_b<N>). */
#define ENS_STATE_N_PROFILE 4
extern const int32_t ens_state_profile_batches[ENS_STATE_N_PROFILE]; /* 1 8 32 128 */

/** Largest library ens_state_library_list reads (more is refused as unreadable). */
#define ENS_STATE_LIBRARY_MAX 100000

/** Longest trainer id, state and partitions record the layer keeps. */
#define ENS_STATE_TRAINER_ID_MAX 64
#define ENS_STATE_TRAINER_STATE_MAX 256
#define ENS_STATE_TRAINER_RECORD_MAX 8192

typedef struct ens_state_s ens_state_t;

/** A trainer as ens_state_trainer_get reads it; absent parts read as below. */
typedef struct {
    int64_t beat_ms;                            /**< its last heartbeat; -1 when it has none */
    char state[ENS_STATE_TRAINER_STATE_MAX];    /**< "" when absent */
    double busy_s;                              /**< 0 when absent */
    char parts[ENS_STATE_TRAINER_RECORD_MAX];   /**< its partitions record; "" when absent */
} ens_state_trainer_t;

/** A study's settings as the proposer stored them; absent fields keep the defaults below. */
typedef struct {
    char dataset[1024]; /**< "" when absent */
    double val_fraction; /**< 0.1 when absent */
    int64_t seed;        /**< 0 when absent */
    int32_t top_k;       /**< 5 when absent */
    char status[32];     /**< "running", "complete", "stopped", "rejected"...; "" when absent */
    int64_t created_ms;  /**< wall clock when the study was accepted; 0 when absent */
    int64_t deadline_ms; /**< wall clock when its budget ends; 0 when it has none */
} ens_state_study_t;

/** A model's evaluation record (ens:{s}:eval:<m>). Absent fields read as 0. */
typedef struct {
    char trial_id[ENS_ID_MAX];
    double val_accuracy, val_logloss;
    int64_t n_params, flops_per_sample;
    double ms_per_sample;  /**< at batch_size */
    int32_t batch_size;    /**< the serving batch the cost was measured at */
    int64_t memory_bytes;
    double ms_per_sample_b[ENS_STATE_N_PROFILE]; /**< at ens_state_profile_batches */
    int32_t n_val, n_classes;
    int probs_f16;         /**< 1: the probabilities are stored as float16 */
    /* what the selector adds, each model's point on the two validation halves */
    double sel_accuracy, holdout_accuracy, sel_logloss, holdout_logloss;
    int has_halves;        /**< 1: the selector's accuracies are there (read only) */
} ens_state_eval_t;

/**
 * The operations of an implementation, filled with designated initialisers. Every member is
 * required unless marked optional (NULL: the public function returns ENS_ERR_UNSUPPORTED).
 * Arguments are checked by the public functions (ens_state_*), not here; blobs cross this
 * table as bytes, encoded and decoded once in state.c. Lists are malloc'd arrays the caller
 * frees (strings: ens_state_strings_free).
 */
struct ens_state_i {
    const char *name;
    void (*free)(void *ctx);

    ens_err_t (*study_get)(void *ctx, const char *study, ens_state_study_t *out, char *errstr,
                           size_t errstr_size);
    /** optional: the Redis study is the proposer's to write */
    ens_err_t (*study_put)(void *ctx, const char *study, const ens_state_study_t *s,
                           char *errstr, size_t errstr_size);
    ens_err_t (*model_get)(void *ctx, const char *study, const char *model, void **data,
                           size_t *len, char *errstr, size_t errstr_size);
    /** optional: in Redis the trainer writes model files through models.h */
    ens_err_t (*model_put)(void *ctx, const char *study, const char *model, const void *data,
                           size_t len, char *errstr, size_t errstr_size);

    ens_err_t (*eval_put)(void *ctx, const char *study, const char *model,
                          const ens_state_eval_t *e, char *errstr, size_t errstr_size);
    ens_err_t (*eval_put_halves)(void *ctx, const char *study, const char *model,
                                 const ens_state_eval_t *e, char *errstr, size_t errstr_size);
    /** ENS_ERR_NOTFOUND (fields found still filled) when ms_per_sample or memory_bytes is
     *  absent */
    ens_err_t (*eval_get)(void *ctx, const char *study, const char *model, ens_state_eval_t *e,
                          char *errstr, size_t errstr_size);
    ens_err_t (*probs_put)(void *ctx, const char *study, const char *model, const void *data,
                           size_t len, char *errstr, size_t errstr_size);
    ens_err_t (*probs_get)(void *ctx, const char *study, const char *model, void **data,
                           size_t *len, char *errstr, size_t errstr_size);
    ens_err_t (*labels_put)(void *ctx, const char *study, const void *data, size_t len,
                            char *errstr, size_t errstr_size);
    ens_err_t (*labels_get)(void *ctx, const char *study, void **data, size_t *len,
                            char *errstr, size_t errstr_size);

    ens_err_t (*library_add)(void *ctx, const char *study, const char *model, char *errstr,
                             size_t errstr_size);
    ens_err_t (*library_list)(void *ctx, const char *study, char ***models, int *n,
                              char *errstr, size_t errstr_size);
    ens_err_t (*dirty_add)(void *ctx, const char *study, char *errstr, size_t errstr_size);
    ens_err_t (*dirty_remove)(void *ctx, const char *study, char *errstr, size_t errstr_size);
    ens_err_t (*dirty_list)(void *ctx, char ***studies, int *n, char *errstr,
                            size_t errstr_size);

    ens_err_t (*front_put)(void *ctx, const char *study, const void *data, size_t len,
                           char *errstr, size_t errstr_size);
    /** ENS_ERR_NOTFOUND when absent (also for the three getters below) */
    ens_err_t (*front_get)(void *ctx, const char *study, void **data, size_t *len,
                           char *errstr, size_t errstr_size);
    ens_err_t (*deploy_put)(void *ctx, const char *study, const char *event_id,
                            const void *data, size_t len, char *errstr, size_t errstr_size);
    ens_err_t (*deploy_get)(void *ctx, const char *study, const char *event_id, void **data,
                            size_t *len, char *errstr, size_t errstr_size);
    /** the study's plan, then the plan in force, in that order */
    ens_err_t (*plan_put)(void *ctx, const char *study, const void *data, size_t len,
                          char *errstr, size_t errstr_size);
    /** study NULL: the plan in force */
    ens_err_t (*plan_get)(void *ctx, const char *study, void **data, size_t *len,
                          char *errstr, size_t errstr_size);
    ens_err_t (*plan_version_next)(void *ctx, int64_t *version, char *errstr,
                                   size_t errstr_size);
    /** ENS_ERR_NOTFOUND when no version was ever given */
    ens_err_t (*plan_version_get)(void *ctx, int64_t *version, char *errstr,
                                  size_t errstr_size);
    ens_err_t (*plan_compute_put)(void *ctx, int64_t version, const char *const *devices,
                                  const double *ms, int n, char *errstr, size_t errstr_size);
    ens_err_t (*plan_compute_get)(void *ctx, int64_t version, const char *device, double *ms,
                                  char *errstr, size_t errstr_size);

    ens_err_t (*device_put)(void *ctx, const ens_device_t *d, int ttl_seconds, char *errstr,
                            size_t errstr_size);
    ens_err_t (*device_remove)(void *ctx, const char *device_id, char *errstr,
                               size_t errstr_size);
    ens_err_t (*device_list)(void *ctx, ens_device_t **devices, int *n, char *errstr,
                             size_t errstr_size);

    ens_err_t (*trainer_beat)(void *ctx, const char *trainer, int64_t beat_ms, char *errstr,
                              size_t errstr_size);
    ens_err_t (*trainer_state_put)(void *ctx, const char *trainer, const char *state,
                                   char *errstr, size_t errstr_size);
    ens_err_t (*trainer_busy_add)(void *ctx, const char *trainer, double seconds, char *errstr,
                                  size_t errstr_size);
    /** record NULL: remove the trainer's record */
    ens_err_t (*trainer_parts_put)(void *ctx, const char *trainer, const char *record,
                                   char *errstr, size_t errstr_size);
    ens_err_t (*trainer_remove)(void *ctx, const char *trainer, char *errstr,
                                size_t errstr_size);
    ens_err_t (*trainer_live)(void *ctx, int64_t since_ms, int *n, char *errstr,
                              size_t errstr_size);
    /** ids and records side by side, both freed with ens_state_strings_free */
    ens_err_t (*trainer_parts_list)(void *ctx, char ***trainers, char ***records, int *n,
                                    char *errstr, size_t errstr_size);
    ens_err_t (*trainer_state_list)(void *ctx, char ***trainers, char ***states, int *n,
                                    char *errstr, size_t errstr_size);
    ens_err_t (*trainer_get)(void *ctx, const char *trainer, ens_state_trainer_t *out,
                             char *errstr, size_t errstr_size);

    /* studies, compaction and serving */
    /** optional: the operations of state_studies.h (NULL: each is ENS_ERR_UNSUPPORTED) */
    const struct ens_state_studies_i *studies;

    /* scheduler and jobs */
    /** the scheduler's and the jobs' operations over the same ctx (state_sched.h) */
    const struct ens_state_sched_i *sched;
};

/**
 * @brief A state over an implementation: iface (static, not copied) and its ctx.
 * @remark takes ownership of ctx on success (iface->free releases it in ens_state_free).
 */
ens_err_t ens_state_new(const struct ens_state_i *iface, void *ctx, ens_state_t **out);

/**
 * @brief The Redis implementation over connection r; model files through models (may be
 *        NULL: only the previous version's Redis blobs load).
 * @remark r and models are not owned: they must outlive the state. Not thread-safe, like r.
 */
ens_err_t ens_state_redis_new(ens_redis_t *r, ens_models_t *models, ens_state_t **out);

/** @brief The in-memory implementation, empty, for unit tests; no TTLs, one thread. */
ens_err_t ens_state_mem_new(ens_state_t **out);

/** @brief Free the state (and its implementation's context). NULL is a no-op. */
void ens_state_free(ens_state_t *st);

/** @brief The implementation's name ("redis", "mem"). */
const char *ens_state_name(const ens_state_t *st);

/** @brief Free a list of n strings from ens_state_library_list or ens_state_dirty_list. */
void ens_state_strings_free(char **s, int n);

/* ---- float16: the one codec of stored probabilities ---------------------------------- */

/** @brief IEEE 754 half precision of f, rounded to nearest even. */
uint16_t ens_state_f16_encode(float f);

/** @brief n halves to floats (exact: every half is a float). */
void ens_state_f16_decode(const uint16_t *in, size_t n, float *out);

/* ---- studies and model files --------------------------------------------------------- */

/**
 * @brief A study's settings (defaults for absent fields).
 * @return ENS_OK; ENS_ERR_NOTFOUND (what was found still filled) when the study names no
 *         dataset; ENS_ERR_REDIS.
 */
ens_err_t ens_state_study_get(ens_state_t *st, const char *study, ens_state_study_t *out,
                              char *errstr, size_t errstr_size);

/** @brief Store a study's settings (optional operation: the in-memory state has it). */
ens_err_t ens_state_study_put(ens_state_t *st, const char *study, const ens_state_study_t *s,
                              char *errstr, size_t errstr_size);

/**
 * @brief A trained model's file (the model store, or the previous version's Redis blob).
 * @return ENS_OK (*data malloc'd, the caller frees it), ENS_ERR_NOTFOUND, ENS_ERR_CORRUPT...
 */
ens_err_t ens_state_model_get(ens_state_t *st, const char *study, const char *model,
                              void **data, size_t *len, char *errstr, size_t errstr_size);

/** @brief Store a model file (optional operation: the in-memory state has it). */
ens_err_t ens_state_model_put(ens_state_t *st, const char *study, const char *model,
                              const void *data, size_t len, char *errstr, size_t errstr_size);

/* ---- evaluations and validation predictions ------------------------------------------ */

/** @brief Write a model's evaluation (every field but the selector's four). */
ens_err_t ens_state_eval_put(ens_state_t *st, const char *study, const char *model,
                             const ens_state_eval_t *e, char *errstr, size_t errstr_size);

/** @brief Add the selector's fields (sel_/holdout_ accuracy and log-loss) to an evaluation. */
ens_err_t ens_state_eval_put_halves(ens_state_t *st, const char *study, const char *model,
                                    const ens_state_eval_t *e, char *errstr,
                                    size_t errstr_size);

/**
 * @brief A model's evaluation; absent fields read as 0.
 * @return ENS_OK; ENS_ERR_NOTFOUND when its cost (ms_per_sample, memory_bytes) is absent, with
 *         the fields found filled all the same; ENS_ERR_REDIS.
 */
ens_err_t ens_state_eval_get(ens_state_t *st, const char *study, const char *model,
                             ens_state_eval_t *e, char *errstr, size_t errstr_size);

/** @brief Store n_val x k validation probabilities of a model, as float16. */
ens_err_t ens_state_probs_put(ens_state_t *st, const char *study, const char *model,
                              const float *probs, int32_t n_val, int32_t k, char *errstr,
                              size_t errstr_size);

/**
 * @brief A model's n_val x k validation probabilities, decoded to float32 from float16
 *        (f16 1, as the evaluation's probs_f16 says) or read as float32 (an older blob).
 * @return ENS_OK (*probs malloc'd, the caller frees it), ENS_ERR_NOTFOUND, ENS_ERR_CORRUPT
 *         (the blob is not n_val x k of that type), ENS_ERR_REDIS.
 */
ens_err_t ens_state_probs_get(ens_state_t *st, const char *study, const char *model,
                              int32_t n_val, int32_t k, int f16, float **probs, char *errstr,
                              size_t errstr_size);

/** @brief Store the study's n validation labels. */
ens_err_t ens_state_labels_put(ens_state_t *st, const char *study, const int32_t *labels,
                               int32_t n, char *errstr, size_t errstr_size);

/**
 * @brief The study's validation labels, expected n of them, each in [0, k).
 * @return ENS_OK (*labels malloc'd), ENS_ERR_NOTFOUND, ENS_ERR_CORRUPT (count or range).
 */
ens_err_t ens_state_labels_get(ens_state_t *st, const char *study, int32_t n, int32_t k,
                               int32_t **labels, char *errstr, size_t errstr_size);

/* ---- the selector: library, dirty studies, fronts ------------------------------------- */

/** @brief Add a model to the study's library (a set: adding twice is once). */
ens_err_t ens_state_library_add(ens_state_t *st, const char *study, const char *model,
                                char *errstr, size_t errstr_size);

/**
 * @brief The study's library, in no particular order (free with ens_state_strings_free).
 * @return ENS_OK (n 0 when empty), ENS_ERR_REDIS (also when over ENS_STATE_LIBRARY_MAX).
 */
ens_err_t ens_state_library_list(ens_state_t *st, const char *study, char ***models, int *n,
                                 char *errstr, size_t errstr_size);

/** @brief Mark a study's front as behind its library (global set, survives restarts). */
ens_err_t ens_state_dirty_add(ens_state_t *st, const char *study, char *errstr,
                              size_t errstr_size);

/** @brief Clear a study's mark (its front is published). */
ens_err_t ens_state_dirty_remove(ens_state_t *st, const char *study, char *errstr,
                                 size_t errstr_size);

/** @brief The marked studies (free with ens_state_strings_free). */
ens_err_t ens_state_dirty_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                               size_t errstr_size);

/** @brief Store the study's latest front (an EnsembleFront event). */
ens_err_t ens_state_front_put(ens_state_t *st, const char *study, const ens_event_t *front,
                              char *errstr, size_t errstr_size);

/**
 * @brief The study's latest front, decoded into *front (the caller frees it with
 *        ens_event_free).
 * @return ENS_OK, ENS_ERR_NOTFOUND when none is stored, ENS_ERR_AVRO, ENS_ERR_REDIS.
 */
ens_err_t ens_state_front_get(ens_state_t *st, const char *study, ens_event_t *front,
                              char *errstr, size_t errstr_size);

/* ---- the placer: plans and devices ---------------------------------------------------- */

/** @brief Remember the plan (a PlacementPlan event) deploy command event_id made. */
ens_err_t ens_state_deploy_put(ens_state_t *st, const char *study, const char *event_id,
                               const ens_event_t *plan, char *errstr, size_t errstr_size);

/** @brief The plan deploy command event_id made; ENS_ERR_NOTFOUND when none. */
ens_err_t ens_state_deploy_get(ens_state_t *st, const char *study, const char *event_id,
                               ens_event_t *plan, char *errstr, size_t errstr_size);

/** @brief Put plan in force: the study's plan and the global plan in force, in that order. */
ens_err_t ens_state_plan_put(ens_state_t *st, const char *study, const ens_event_t *plan,
                             char *errstr, size_t errstr_size);

/** @brief The study's plan (study NULL: the global plan in force); ENS_ERR_NOTFOUND when none. */
ens_err_t ens_state_plan_get(ens_state_t *st, const char *study, ens_event_t *plan,
                             char *errstr, size_t errstr_size);

/** @brief The next plan version, from the one counter of every study (1, 2, ...). */
ens_err_t ens_state_plan_version_next(ens_state_t *st, int64_t *version, char *errstr,
                                      size_t errstr_size);

/** @brief The last plan version given; ENS_ERR_NOTFOUND when none was. */
ens_err_t ens_state_plan_version_get(ens_state_t *st, int64_t *version, char *errstr,
                                     size_t errstr_size);

/**
 * @brief Under plan version, each device's predicted compute ms per sample (devices[i] gets
 *        ms[i]; entries with ms[i] <= 0 are skipped), kept a week.
 */
ens_err_t ens_state_plan_compute_put(ens_state_t *st, int64_t version,
                                     const char *const *devices, const double *ms, int n,
                                     char *errstr, size_t errstr_size);

/** @brief A device's predicted compute under plan version; ENS_ERR_NOTFOUND when none. */
ens_err_t ens_state_plan_compute_get(ens_state_t *st, int64_t version, const char *device,
                                     double *ms, char *errstr, size_t errstr_size);

/** @brief Announce or refresh a device for ttl_seconds (ens_registry_heartbeat). */
ens_err_t ens_state_device_put(ens_state_t *st, const ens_device_t *d, int ttl_seconds,
                               char *errstr, size_t errstr_size);

/** @brief Remove a device at once. Missing is not an error. */
ens_err_t ens_state_device_remove(ens_state_t *st, const char *device_id, char *errstr,
                                  size_t errstr_size);

/**
 * @brief The live devices, sorted by id.
 * @remark *devices is malloc'd (NULL when none); the caller frees it.
 */
ens_err_t ens_state_device_list(ens_state_t *st, ens_device_t **devices, int *n, char *errstr,
                                size_t errstr_size);

/* ---- trainers and their partitions of trial.jobs ------------------------------------- */

/** @brief Register or refresh a trainer: its heartbeat is beat_ms (ms since the epoch). */
ens_err_t ens_state_trainer_beat(ens_state_t *st, const char *trainer, int64_t beat_ms,
                                 char *errstr, size_t errstr_size);

/** @brief Set what a trainer does now ("idle", "busy <study> <model>"). */
ens_err_t ens_state_trainer_state_put(ens_state_t *st, const char *trainer, const char *state,
                                      char *errstr, size_t errstr_size);

/** @brief Add seconds (rounded to ms) to a trainer's time on jobs. */
ens_err_t ens_state_trainer_busy_add(ens_state_t *st, const char *trainer, double seconds,
                                     char *errstr, size_t errstr_size);

/**
 * @brief Store a trainer's partitions record (ens_trainer_parts_record's format, kept as
 *        given); record NULL removes it, so that nobody trusts an old one.
 */
ens_err_t ens_state_trainer_parts_put(ens_state_t *st, const char *trainer, const char *record,
                                      char *errstr, size_t errstr_size);

/**
 * @brief A trainer leaves: its heartbeat, state and partitions record go (its busy seconds
 *        stay). Missing is not an error.
 */
ens_err_t ens_state_trainer_remove(ens_state_t *st, const char *trainer, char *errstr,
                                   size_t errstr_size);

/** @brief How many trainers have beaten at or after since_ms. */
ens_err_t ens_state_trainer_live(ens_state_t *st, int64_t since_ms, int *n, char *errstr,
                                 size_t errstr_size);

/**
 * @brief Every stored partitions record: trainers[i] wrote records[i], in no particular
 *        order; free both with ens_state_strings_free(_, *n). A record that is not a string
 *        reads as "".
 */
ens_err_t ens_state_trainer_parts_list(ens_state_t *st, char ***trainers, char ***records,
                                       int *n, char *errstr, size_t errstr_size);

/**
 * @brief Every trainer's state (trainers[i] is doing states[i]), in no particular order; free
 *        both with ens_state_strings_free(_, *n).
 */
ens_err_t ens_state_trainer_state_list(ens_state_t *st, char ***trainers, char ***states,
                                       int *n, char *errstr, size_t errstr_size);

/**
 * @brief What is kept of one trainer (fields absent read as ens_state_trainer_t says).
 * @return ENS_OK, ENS_ERR_REDIS.
 */
ens_err_t ens_state_trainer_get(ens_state_t *st, const char *trainer, ens_state_trainer_t *out,
                                char *errstr, size_t errstr_size);

/* studies, compaction and serving */
#include "ensflow/state_studies.h"

#endif
