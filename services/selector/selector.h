/* selector.h - keeps each study's model library and publishes its ensemble front. */
#ifndef ENSFLOW_SELECTOR_H
#define ENSFLOW_SELECTOR_H

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/state.h"
#include "select.h"

/** The set of studies whose front is behind their library (the state layer's key). */
#define ENS_SELECTOR_DIRTY_KEY ENS_STATE_KEY_SELECTOR_DIRTY

typedef struct ens_selector_cache_s ens_selector_cache_t;

typedef struct {
    ens_state_t *state;          /**< library, evaluations, fronts (not owned) */
    ens_kafka_t *producer;
    int debounce_ms;             /**< recompute once a study has been quiet this long */
    int max_delay_ms;            /**< ... or once its oldest unpublished model waited this long */
    ens_select_opts_t opts;      /**< algorithm settings (top_k comes from the study) */
    ens_selector_cache_t *cache; /**< studies, their decoded probabilities and pending work */
} ens_selector_t;

/**
 * @brief On ModelEvaluated: add the model to the study's library (ens_state_library_add) and
 *        mark the study dirty (in memory and in the state, ens_state_dirty_add). The front itself is
 *        recomputed, debounced, by ens_selector_tick.
 */
ens_err_t ens_selector_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

/**
 * @brief Recompute the front of every dirty study that is due (quiet for debounce_ms, or
 *        waiting max_delay_ms), store it (ens_state_front_put), produce an EnsembleFront, wait
 *        for its delivery and clear the mark. On the first call, studies marked dirty by an
 *        earlier run are picked up. Errors are logged and the study is retried later.
 */
void ens_selector_tick(void *ctx);

/**
 * @brief Recompute and publish the front of one study now: load new members' probabilities
 *        (float16 or float32 blobs) into the cache, run single, top-K, Caruana and mogreedy,
 *        record every model's accuracy on both halves in its evaluation.
 * @param out may be NULL; else receives the EnsembleFront event (caller frees it).
 */
ens_err_t ens_selector_recompute(ens_selector_t *s, const char *study_id, ens_event_t *out,
                                 char *errstr, size_t errstr_size);

/** @brief Free the cache. */
void ens_selector_close(ens_selector_t *s);

#endif
