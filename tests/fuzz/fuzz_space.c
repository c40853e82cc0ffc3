/* fuzz_space.c - libFuzzer target: any text as a search space. A space that validates must
 * sample configurations that parse and pass their bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/space.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char errstr[512];
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (ens_space_validate(text, errstr, sizeof errstr) == ENS_OK) {
        for (int32_t i = 0; i < 3; i++) {
            char *cfg = NULL;
            ens_trial_config_t tc;
            if (ens_space_sample(text, 7, i, &cfg, errstr, sizeof errstr) != ENS_OK ||
                ens_trial_config_parse(cfg, &tc, errstr, sizeof errstr) != ENS_OK)
                abort(); /* a valid space gives valid configurations */
            free(cfg);
        }
    }
    free(text);
    return 0;
}
