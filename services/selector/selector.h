/* selector.h - keeps each study's model library and publishes its ensemble front. */
#ifndef ENSFLOW_SELECTOR_H
#define ENSFLOW_SELECTOR_H

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/store.h"

typedef struct ens_selector_cache_s ens_selector_cache_t;

typedef struct {
    ens_redis_t *redis;
    ens_kafka_t *producer;
    ens_selector_cache_t *cache; /**< validation probabilities already loaded, owned */
} ens_selector_t;

/**
 * @brief On ModelEvaluated: add the model to the study's library, recompute the front
 *        (best single model, top-K average) from every member's validation probabilities,
 *        store it (ens:{study}:front) and produce an EnsembleFront.
 */
ens_err_t ens_selector_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

void ens_selector_close(ens_selector_t *s);

#endif
