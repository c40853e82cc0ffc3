/* store_fixture.h - what the inference unit tests share: a small model in the model store.
 * Included after check.h. */
#ifndef ENSFLOW_TEST_STORE_FIXTURE_H
#define ENSFLOW_TEST_STORE_FIXTURE_H

#include "ensflow/nn.h"
#include "ensflow/store.h"

/* An MLP dim -> 8 -> k from seed, saved as study's model `id` (ens:{study}:model:<id>). */
static void store_mlp(ens_redis_t *r, const char *study, const char *id, int32_t dim, int32_t k,
                      uint64_t seed) {
    int32_t hidden[1] = {8};
    ens_model_t *m = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    char key[256], err[256];
    CHECK_OK(ens_model_new_mlp(dim, hidden, 1, k, seed, &m));
    CHECK_OK(ens_model_save(m, &buf, &len));
    ens_key(key, sizeof key, study, "model:%s", id);
    CHECK_OK(ens_store_blob_put(r, key, buf, len, 0, err, sizeof err));
    free(buf);
    ens_model_free(m);
}

#endif
