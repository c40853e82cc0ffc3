/* fuzz_event_decode.c - libFuzzer target: any bytes through ens_event_decode (marker,
 * fingerprint, bounds, Avro body, resolution of old writers), then a re-encode of what
 * decoded, which must decode again to the same type. */
#include <stdint.h>
#include <stdlib.h>

#include "ensflow/events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char errstr[512];
    ens_event_t ev;
    if (ens_event_decode(data, size, &ev, errstr, sizeof errstr) != ENS_OK)
        return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ens_event_encode(&ev, &buf, &len, errstr, sizeof errstr) == ENS_OK) {
        ens_event_t again;
        if (ens_event_decode(buf, len, &again, errstr, sizeof errstr) != ENS_OK ||
            again.type != ev.type)
            abort(); /* what we wrote, we must read */
        ens_event_free(&again);
        free(buf);
    }
    ens_event_free(&ev);
    return 0;
}
