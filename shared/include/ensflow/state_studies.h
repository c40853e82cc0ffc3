/* state_studies.h - the state layer's studies, compaction and serving: study administration
 * (list, usage, delete), the queue and lock of model-file compaction, model files by name,
 * the plan versions inference groups serve and the requests they answered. state.h includes
 * this header; its functions take the same ens_state_t.
 *
 * Where each thing lives in Redis (state_studies_redis.c spells every key and field below;
 * nothing else does). {s} is the study id as a Redis Cluster hash tag.
 *
 *   ens:{s}:study                  the study record (state.h); `study list` finds studies by
 *                                  SCAN MATCH ens:{*}:study
 *   ens:{s}:*                      every key of a study: what `study delete` counts and unlinks
 *   ens:studies:active             set: running studies (the proposer's)
 *   ens:studies:settling           set: ended studies whose last results are still due (the
 *                                  proposer's)
 *   ens:studies:compact            set: ended studies whose model files are to be compacted
 *                                  (the proposer adds, a trainer takes off: retain.h)
 *   ens:selector:dirty             set (state.h); these four sets lose a study it deletes
 *   ens:{s}:compacting             string: the id of the trainer compacting the study, a lease
 *                                  (PX) renewed each slice; set NX, renewed and released by
 *                                  its owner only (Lua)
 *   ens:{s}:<name>:ref             the model store's reference of file <name> ("model:<m>",
 *                                  "ckpt:<trial>"), written by models.h
 *   ens:{s}:<name>:meta            the previous version's chunked blob of <name> (store.h),
 *                                  found by SCAN MATCH ens:{s}:*:meta
 *   ens:{s}:trials:done            set of finished trials (the proposer's), counted
 *   ens:{s}:library                set of evaluated models (state.h), counted
 *   ens:{s}:serving                hash: inference group -> the plan version it serves
 *   ens:serving:answered:<group>   hash: "<topic>/<partition>" -> the last offset of that
 *                                  request partition the consumer group answered; raised only
 *                                  (Lua), never lowered
 *
 * The in-memory implementation keeps all of it but a study's Redis usage and its deletion
 * (ENS_ERR_UNSUPPORTED: only the CLI does those, on Redis) and the count of finished trials
 * (the trial table is not kept in memory); it has no TTLs (a lock lasts until released) and no
 * blobs of the previous version (ens_state_model_legacy_list lists none).
 */
#ifndef ENSFLOW_STATE_STUDIES_H
#define ENSFLOW_STATE_STUDIES_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/state.h"

/** The compaction queue's key: the proposer queues an ended study (ens_state_compact_add), an
 *  idle trainer compacts it (services/trainer/retain.h); tests read the set directly. */
#define ENS_STATE_KEY_STUDIES_COMPACT "ens:studies:compact"

/** Longest name of a model file ("model:<m>", "ckpt:<trial>") the layer takes. */
#define ENS_STATE_MODEL_NAME_MAX 320
/** Longest inference consumer group and topic the answered offsets take. */
#define ENS_STATE_GROUP_MAX 256
#define ENS_STATE_TOPIC_MAX 256

/** What a study takes in Redis (ens_state_study_usage). */
typedef struct {
    long keys;       /**< its keys */
    long long bytes; /**< their MEMORY USAGE, summed */
} ens_state_usage_t;

/** What ens_state_compact_lock does with the lock. */
typedef enum {
    ENS_STATE_LOCK_TAKE = 0,    /**< take it when nobody holds it */
    ENS_STATE_LOCK_RENEW = 1,   /**< extend it when owner holds it */
    ENS_STATE_LOCK_RELEASE = 2, /**< drop it when owner holds it */
} ens_state_lock_op_t;

/**
 * The operations of studies, compaction and serving (struct ens_state_i's `studies`), filled
 * with designated initialisers like it; optional members may be NULL (ENS_ERR_UNSUPPORTED).
 * Arguments are checked by the public functions below.
 */
struct ens_state_studies_i {
    /** optional: the ids of every study with a record */
    ens_err_t (*studies_list)(void *ctx, char ***studies, int *n, char *errstr,
                              size_t errstr_size);
    ens_err_t (*study_exists)(void *ctx, const char *study, int *exists, char *errstr,
                              size_t errstr_size);
    /** optional */
    ens_err_t (*study_usage)(void *ctx, const char *study, ens_state_usage_t *u, char *errstr,
                             size_t errstr_size);
    /** optional */
    ens_err_t (*study_delete)(void *ctx, const char *study, long *deleted, char *errstr,
                              size_t errstr_size);
    /** optional */
    ens_err_t (*trials_done_count)(void *ctx, const char *study, long *n, char *errstr,
                                   size_t errstr_size);
    ens_err_t (*library_count)(void *ctx, const char *study, long *n, char *errstr,
                               size_t errstr_size);

    ens_err_t (*compact_add)(void *ctx, const char *study, char *errstr, size_t errstr_size);
    /** ENS_ERR_NOTFOUND when the queue is empty */
    ens_err_t (*compact_next)(void *ctx, char *study, size_t size, char *errstr,
                              size_t errstr_size);
    ens_err_t (*compact_queued)(void *ctx, const char *study, int *queued, char *errstr,
                                size_t errstr_size);
    ens_err_t (*compact_remove)(void *ctx, const char *study, char *errstr,
                                size_t errstr_size);
    ens_err_t (*compact_lock)(void *ctx, const char *study, const char *owner,
                              ens_state_lock_op_t op, int ttl_ms, int *held, char *errstr,
                              size_t errstr_size);
    /** ENS_ERR_NOTFOUND when nobody holds the lock */
    ens_err_t (*compact_owner)(void *ctx, const char *study, char *owner, size_t size,
                               char *errstr, size_t errstr_size);

    ens_err_t (*model_file_get)(void *ctx, ens_models_t *ms, const char *study,
                                const char *name, void **data, size_t *len, char *errstr,
                                size_t errstr_size);
    ens_err_t (*model_file_put)(void *ctx, ens_models_t *ms, const char *study,
                                const char *name, const void *data, size_t len, char *errstr,
                                size_t errstr_size);
    ens_err_t (*model_file_del)(void *ctx, ens_models_t *ms, const char *study,
                                const char *name, char *errstr, size_t errstr_size);
    ens_err_t (*model_file_referenced)(void *ctx, const char *study, const char *name,
                                       int *referenced, char *errstr, size_t errstr_size);
    ens_err_t (*model_legacy_list)(void *ctx, const char *study, char ***names, int *n,
                                   char *errstr, size_t errstr_size);

    ens_err_t (*serving_put)(void *ctx, const char *study, const char *group, int64_t version,
                             char *errstr, size_t errstr_size);
    /** ENS_ERR_NOTFOUND when no group serves the study */
    ens_err_t (*serving_newest)(void *ctx, const char *study, int64_t *version, char *errstr,
                                size_t errstr_size);
    /** ENS_ERR_NOTFOUND when none is recorded */
    ens_err_t (*answered_get)(void *ctx, const char *group, const char *topic,
                              int32_t partition, int64_t *offset, char *errstr,
                              size_t errstr_size);
    ens_err_t (*answered_forget)(void *ctx, const char *group, const char *topic,
                                 int32_t partition, char *errstr, size_t errstr_size);
    ens_err_t (*answered_raise)(void *ctx, const char *group, const char *topic,
                                int32_t partition, int64_t offset, char *errstr,
                                size_t errstr_size);
};

/* ---- study administration (the CLI's `study list` and `study delete`) ------------------- */

/**
 * @brief The ids of every study with a record, in no particular order (free with
 *        ens_state_strings_free). Redis: SCAN, so the server is not blocked.
 */
ens_err_t ens_state_studies_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                                 size_t errstr_size);

/** @brief *exists 1 when the study has a record (whatever its fields), else 0. */
ens_err_t ens_state_study_exists(ens_state_t *st, const char *study, int *exists, char *errstr,
                                 size_t errstr_size);

/** @brief The keys a study has in Redis and their bytes (Redis only: unsupported in memory). */
ens_err_t ens_state_study_usage(ens_state_t *st, const char *study, ens_state_usage_t *u,
                                char *errstr, size_t errstr_size);

/**
 * @brief Delete a study's state: first it leaves the sets of studies the services work on
 *        (active, settling, compaction queue, selector's dirty), so that no service picks it
 *        up again while it goes, then every key of the study is unlinked. Its model files are
 *        the caller's (ens_models_study_remove). Redis only: unsupported in memory.
 * @param deleted receives how many keys went
 */
ens_err_t ens_state_study_delete(ens_state_t *st, const char *study, long *deleted,
                                 char *errstr, size_t errstr_size);

/** @brief How many trials of the study have finished (unsupported in memory). */
ens_err_t ens_state_trials_done_count(ens_state_t *st, const char *study, long *n,
                                      char *errstr, size_t errstr_size);

/** @brief How many models the study's library holds (ens_state_library_list, counted). */
ens_err_t ens_state_library_count(ens_state_t *st, const char *study, long *n, char *errstr,
                                  size_t errstr_size);

/* ---- compaction of an ended study's model files (services/trainer/retain.h) ------------- */

/** @brief Queue an ended study for compaction (a set: twice is once). */
ens_err_t ens_state_compact_add(ens_state_t *st, const char *study, char *errstr,
                                size_t errstr_size);

/**
 * @brief Some queued study (any one: trainers spread over the queue) into study (size bytes,
 *        at least ENS_ID_MAX); it stays queued.
 * @return ENS_OK, ENS_ERR_NOTFOUND when the queue is empty, ENS_ERR_REDIS.
 */
ens_err_t ens_state_compact_next(ens_state_t *st, char *study, size_t size, char *errstr,
                                 size_t errstr_size);

/** @brief *queued 1 when the study is queued for compaction. */
ens_err_t ens_state_compact_queued(ens_state_t *st, const char *study, int *queued,
                                   char *errstr, size_t errstr_size);

/** @brief Take a study off the queue (compacted, or no longer to be). Missing is no error. */
ens_err_t ens_state_compact_remove(ens_state_t *st, const char *study, char *errstr,
                                   size_t errstr_size);

/**
 * @brief The study's compaction lock, held by one owner (a trainer id) for ttl_ms after it
 *        was taken or last renewed (in memory: until released).
 * @param held receives 1 when op succeeded: TAKE, nobody held it and owner holds it now;
 *        RENEW, owner held it and its lease starts again; RELEASE, owner held it and nobody
 *        does now. 0 otherwise (another owner, or nobody for RENEW and RELEASE).
 * @return ENS_OK, ENS_ERR_REDIS (Redis away: *held is 0 and says nothing).
 */
ens_err_t ens_state_compact_lock(ens_state_t *st, const char *study, const char *owner,
                                 ens_state_lock_op_t op, int ttl_ms, int *held, char *errstr,
                                 size_t errstr_size);

/** @brief Who holds the study's compaction lock, into owner; ENS_ERR_NOTFOUND when nobody. */
ens_err_t ens_state_compact_owner(ens_state_t *st, const char *study, char *owner, size_t size,
                                  char *errstr, size_t errstr_size);

/* ---- model files by name ("model:<m>", "ckpt:<trial>") in the model store ms ------------- */

/**
 * @brief The file study/name (models.h's ens_models_get: the file its reference names, or
 *        the previous version's blob in Redis). ms may be NULL in Redis (blobs only).
 * @return ENS_OK (*data malloc'd, the caller frees it), ENS_ERR_NOTFOUND, ENS_ERR_CORRUPT...
 */
ens_err_t ens_state_model_file_get(ens_state_t *st, ens_models_t *ms, const char *study,
                                   const char *name, void **data, size_t *len, char *errstr,
                                   size_t errstr_size);

/** @brief Store study/name in ms and reference it (ens_models_put). */
ens_err_t ens_state_model_file_put(ens_state_t *st, ens_models_t *ms, const char *study,
                                   const char *name, const void *data, size_t len,
                                   char *errstr, size_t errstr_size);

/** @brief Delete study/name: reference, file and any old blob. Missing is no error. */
ens_err_t ens_state_model_file_del(ens_state_t *st, ens_models_t *ms, const char *study,
                                   const char *name, char *errstr, size_t errstr_size);

/** @brief *referenced 1 when the state references file study/name (its writer finished). */
ens_err_t ens_state_model_file_referenced(ens_state_t *st, const char *study,
                                          const char *name, int *referenced, char *errstr,
                                          size_t errstr_size);

/**
 * @brief The names ("model:<m>", "ckpt:<trial>") of the study's model and checkpoint blobs of
 *        the previous version, kept in Redis itself (free with ens_state_strings_free).
 */
ens_err_t ens_state_model_legacy_list(ens_state_t *st, const char *study, char ***names,
                                      int *n, char *errstr, size_t errstr_size);

/* ---- serving: plan versions served, requests answered ------------------------------------ */

/** @brief Inference group `group` serves version of the study's plan now. */
ens_err_t ens_state_serving_put(ens_state_t *st, const char *study, const char *group,
                                int64_t version, char *errstr, size_t errstr_size);

/** @brief The newest plan version any group serves of the study; ENS_ERR_NOTFOUND when none. */
ens_err_t ens_state_serving_newest(ens_state_t *st, const char *study, int64_t *version,
                                   char *errstr, size_t errstr_size);

/**
 * @brief The last offset of topic/partition that consumer group `group` answered.
 * @return ENS_OK, ENS_ERR_NOTFOUND when none is recorded, ENS_ERR_REDIS.
 */
ens_err_t ens_state_answered_get(ens_state_t *st, const char *group, const char *topic,
                                 int32_t partition, int64_t *offset, char *errstr,
                                 size_t errstr_size);

/** @brief Forget the partition's answered offset (it is stale). Missing is no error. */
ens_err_t ens_state_answered_forget(ens_state_t *st, const char *group, const char *topic,
                                    int32_t partition, char *errstr, size_t errstr_size);

/**
 * @brief Record offset as the partition's last answered one unless a larger one is recorded
 *        (a group draining partitions it has lost must not move the next owner's back); one
 *        atomic step in Redis.
 */
ens_err_t ens_state_answered_raise(ens_state_t *st, const char *group, const char *topic,
                                   int32_t partition, int64_t offset, char *errstr,
                                   size_t errstr_size);

#endif
