/* retain.h - what the model store keeps of a study: optimiser state only while a checkpoint
 * can still be trained further, weights of every evaluated model, nothing of a dead writer.
 *
 * A study that has ended (the proposer queues it: ens_state_compact_add) is compacted by an
 * idle trainer, a slice of a few hundred milliseconds per tick so that its loop keeps polling
 * and beating. The trainer holds the study's compaction lock (ens_state_compact_lock: its id,
 * a 60 s lease renewed each slice) so that no two trainers compact one study and `study
 * delete` can wait for it; each slice first checks that the study still exists and is still
 * complete or stopped (`study extend` runs it again: compaction stops). Files of writers are
 * left alone until they are grace_s old (ENS_RETAIN_GRACE_S unless set): a temporary file, or
 * a file the state does not reference (yet). A study of the previous version, its models
 * blobs in Redis, is moved into the store: its checkpoints deleted, its models written as
 * weights-only files. Everything but the files themselves goes through the state layer
 * (state_studies.h), so the in-memory state serves the unit tests.
 */
#ifndef ENSFLOW_RETAIN_H
#define ENSFLOW_RETAIN_H

#include <stdint.h>

#include "ensflow/models.h"
#include "ensflow/state.h"
#include "ensflow/store.h"

#define ENS_RETAIN_GRACE_S 300.0 /* default: a file younger than this may have a live writer */

/**
 * @brief Rewrite study/name ("model:<id>") without its optimiser state.
 * @param rewritten set to 1 when the file held state and was rewritten, else 0 (already
 *        weights only); a previous version's blob in Redis is moved into the store.
 */
ens_err_t ens_retain_model_weights_only(ens_models_t *ms, ens_state_t *st, const char *study,
                                        const char *name, int *rewritten, char *errstr,
                                        size_t errstr_size);

typedef struct {
    long checkpoints_deleted; /**< ckpt:<trial> files (each duplicates the trial's last model) */
    long models_stripped;     /**< models rewritten without optimiser state */
    long orphans_deleted;     /**< files no reference names, older than the grace period */
    long temp_deleted;        /**< temporary files of writers killed mid-write */
    long skipped;             /**< files left as they were (unreadable, damaged: logged) */
    uint64_t bytes_before, bytes_after;
} ens_retain_stats_t;

/** The compaction a trainer has in hand (zero it before first use). */
typedef struct {
    char study[256];
    struct ens_retain_file_s {
        char name[320];
        double age_s; /**< seconds since written, when listed */
        int legacy;   /**< a blob in Redis, as the previous version kept models */
    } *files;         /**< the study's files, listed when it was claimed */
    int n, next;
    ens_retain_stats_t stats;
    double grace_s; /**< files younger than this are a live writer's (0 = ENS_RETAIN_GRACE_S) */
} ens_retain_job_t;

/**
 * @brief One slice of compaction for an idle trainer: claim a queued study when none is in
 *        hand, then work on its files for about budget_ms; when the last file is done, take
 *        the study off the queue, release it and log what was freed.
 * @param owner the trainer's id (the lock's value)
 * @return 1 when it worked on a study, 0 when there was none to do, negative ens_err_t on an
 *         error (the study stays queued and is tried again).
 */
int ens_retain_study_step(ens_retain_job_t *job, ens_models_t *ms, ens_state_t *st,
                          const char *owner, double budget_ms);

/** @brief Compact a whole study now (tests, tools): ens_retain_study_step until it is done. */
ens_err_t ens_retain_study_compact(ens_models_t *ms, ens_state_t *st, const char *study,
                                   ens_retain_stats_t *stats, char *errstr,
                                   size_t errstr_size);

/** @brief Release what the job holds (its lock too, if it is still the owner's). */
void ens_retain_job_release(ens_retain_job_t *job, ens_state_t *st, const char *owner);

#endif
