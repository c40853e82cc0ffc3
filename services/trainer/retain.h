/* retain.h - what the model store keeps of a study: optimiser state only while a checkpoint
 * can still be trained further, weights of every evaluated model, nothing of a dead writer. */
#ifndef ENSFLOW_RETAIN_H
#define ENSFLOW_RETAIN_H

#include <stdint.h>

#include "ensflow/models.h"
#include "ensflow/store.h"

/**
 * @brief Rewrite study/name ("model:<id>") without its optimiser state.
 * @param rewritten set to 1 when the file held state and was rewritten, else 0 (already
 *        weights only, or not a model file: a previous version's blob in Redis is left).
 */
ens_err_t ens_retain_weights_only(ens_models_t *ms, ens_redis_t *r, const char *study,
                                  const char *name, int *rewritten, char *errstr,
                                  size_t errstr_size);

typedef struct {
    long checkpoints_deleted; /**< ckpt:<trial> files (each duplicates the trial's last model) */
    long models_stripped;     /**< models rewritten without optimiser state */
    long orphans_deleted;     /**< files no reference names: writers killed before it */
    long temp_deleted;        /**< temporary files of writers killed mid-write */
    uint64_t bytes_before, bytes_after;
} ens_retain_stats_t;

/**
 * @brief A study that has ended: delete its trials' resume checkpoints and every file that is
 *        not a model (temporary, unreferenced), and keep every model's weights only. Safe to
 *        run twice, or on two trainers at once.
 */
ens_err_t ens_retain_compact_study(ens_models_t *ms, ens_redis_t *r, const char *study,
                                   ens_retain_stats_t *stats, char *errstr, size_t errstr_size);

/**
 * @brief From an idle trainer: compact one study of ENS_MODELS_COMPACT_KEY, if any, and take
 *        it off the set once done.
 * @return 1 when a study was compacted, 0 when none waits, negative ens_err_t on error (the
 *         study stays in the set for the next try).
 */
int ens_retain_tick(ens_models_t *ms, ens_redis_t *r);

#endif
