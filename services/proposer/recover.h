/* recover.h - the proposer's recovery of work lost with a trainer or with the broker. */
#ifndef ENSFLOW_PROPOSER_RECOVER_H
#define ENSFLOW_PROPOSER_RECOVER_H

#include "proposer.h"

/**
 * @brief Issue again a study's jobs in flight that no live trainer holds: no lease (the one
 *        its trainer renews while it trains), not queued behind a busy live trainer (or
 *        passed over by it: it trains a later job of the same partition), and reissue_ms
 *        since it was sent or last seen queued behind one (that restarts its clock). They go
 *        into the outbox; the next scheduling pass sends them.
 * @return ENS_OK with *reissued, or the state's error.
 */
ens_err_t ens_recover_jobs(ens_proposer_t *p, const char *study, int *reissued, char *errstr,
                           size_t errstr_size);

/**
 * @brief Announce again the results of models the proposer accepted that never reached the
 *        library, once the library has not grown for 2 x reissue_ms: their TrialResult was
 *        lost on its way to the evaluator, or the evaluation on its way to the selector (a
 *        broker that lost its topics). At most 5 rounds a study.
 * @param settled set to 1 when nothing is missing any more (or it was given up on).
 */
ens_err_t ens_recover_results(ens_proposer_t *p, const char *study, int *resent, int *settled,
                              char *errstr, size_t errstr_size);

/** @brief ens_recover_results for every running study and every settling one (tick). */
void ens_recover_results_all(ens_proposer_t *p);

#endif
