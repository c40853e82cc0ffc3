/* fuzz_model_load.c - libFuzzer target: any bytes as a model file. What loads must predict
 * without touching memory it does not own and save back to a file that loads again. */
#include <stdint.h>
#include <stdlib.h>

#include "ensflow/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char errstr[512];
    ens_model_t *m = NULL;
    if (ens_model_load(data, size, &m, errstr, sizeof errstr) != ENS_OK)
        return 0;
    int32_t d = ens_model_in_dim(m), k = ens_model_n_classes(m);
    if (d > 0 && k > 0 && (int64_t)d * k < (1 << 22)) {
        float *x = calloc((size_t)d, sizeof *x), *p = malloc((size_t)k * sizeof *p);
        if (x && p)
            (void)ens_model_predict(m, x, 1, p);
        free(x);
        free(p);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ens_model_save(m, &buf, &len) == ENS_OK) {
        ens_model_t *again = NULL;
        if (ens_model_load(buf, len, &again, errstr, sizeof errstr) != ENS_OK)
            abort(); /* what we wrote, we must read */
        ens_model_free(again);
        free(buf);
    }
    ens_model_free(m);
    return 0;
}
