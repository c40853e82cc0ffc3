/* dispatch.h - which trial.jobs partition a job goes to: the live trainer with the least work. */
#ifndef ENSFLOW_PROPOSER_DISPATCH_H
#define ENSFLOW_PROPOSER_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"

/** At most this many partitions of trial.jobs are tracked (higher numbers are ignored). */
#define ENS_DISPATCH_MAX_PARTITIONS 1024

/** A partition the caller cannot place: produce by key hash instead. */
#define ENS_DISPATCH_BY_KEY (-1)

/**
 * Pure state of one dispatch pass, no I/O: the trainers' published assignments and the jobs
 * in flight (queued or running) per partition with their work, in epochs to train. The
 * proposer fills it from Redis, then picks a partition per job.
 */
typedef struct ens_dispatch_s ens_dispatch_t;

/** @brief An empty dispatch state; ttl_ms: an assignment older than this at now_ms is stale. */
ens_err_t ens_dispatch_new(int64_t now_ms, int ttl_ms, ens_dispatch_t **out);

/** @brief Free; NULL is a no-op. */
void ens_dispatch_free(ens_dispatch_t *d);

/**
 * @brief Parse a trainer's assignment record "<beat_ms> <p>,<p>,..." ("<beat_ms> -" when it
 *        owns none), as the trainer writes it into the hash ens:trainers:parts
 *        (ens_trainer_parts_record).
 * @param parts out: up to max partition numbers; n out: their count
 * @return ENS_OK or ENS_ERR_INVALID (malformed, negative partition, more than max).
 */
ens_err_t ens_dispatch_record_parse(const char *record, int64_t *beat_ms, int32_t *parts, int max,
                                    int *n);

/**
 * @brief Add a trainer and the partitions it said it owns at beat_ms. A record older than the
 *        ttl is ignored (a dead trainer's partitions go to whoever the group gave them); when
 *        two fresh trainers claim one partition (a rebalance between their beats), the newer
 *        record keeps it (equal beats: the smaller id). The id is copied.
 * @return ENS_OK, ENS_ERR_NOMEM, or ENS_ERR_INVALID (empty id, partition out of range).
 */
ens_err_t ens_dispatch_add_trainer(ens_dispatch_t *d, const char *trainer_id, int64_t beat_ms,
                                   const int32_t *parts, int n);

/**
 * @brief Count one job in flight (queued or running) on a partition, with its work (epochs to
 *        train; negative counts as 0). Negative partitions (jobs sent by key hash, whose
 *        partition is unknown) and ones out of range are ignored.
 */
void ens_dispatch_add_job(ens_dispatch_t *d, int32_t partition, double work);

/**
 * @brief The partition for the next job: of the fresh trainers that own a partition, the
 *        least loaded: the least work in flight on its partitions, then the fewest jobs, then
 *        the smaller trainer id; and of its partitions the least loaded in the same order, then
 *        the lower number. The job is counted there with its work, so consecutive picks spread.
 * @remark Work, not the job count, comes first: a trainer running a 2-epoch promotion is
 *         busier than one with two 1/3-epoch jobs queued, and jobs given to it wait.
 * @param trainer_id out (may be NULL): the chosen trainer's id, valid until the state is freed
 *        (NULL when ENS_DISPATCH_BY_KEY)
 * @return the partition, or ENS_DISPATCH_BY_KEY when no fresh trainer owns one.
 */
int32_t ens_dispatch_pick(ens_dispatch_t *d, double work, const char **trainer_id);

/** @brief The live trainer that owns partition now (its id, owned by d), or NULL. */
const char *ens_dispatch_owner(const ens_dispatch_t *d, int32_t partition);

/**
 * @brief The load counted on the partitions this trainer owns.
 * @param work, jobs out (may be NULL): epochs and jobs in flight there
 * @return 0, or -1 when it owns no partition (unknown, stale or taken over).
 */
int ens_dispatch_trainer_load(const ens_dispatch_t *d, const char *trainer_id, double *work,
                              int *jobs);

#endif
