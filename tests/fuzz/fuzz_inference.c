/* fuzz_inference.c - libFuzzer target: the inference request path as the service runs it:
 * decode the message, then answer it with a loaded two-member plan (MLPs 4 -> 3 -> 2). Every
 * request must get a response with its id; an OK one carries probabilities that sum to 1. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/events.h"
#include "ensflow/nn.h"
#include "ensflow/inference.h"

static ens_inference_t *inf;

static void setup(void) {
    ens_model_t *m[2] = {NULL, NULL};
    const int32_t hidden[] = {3};
    const double w[] = {0.25, 0.75};
    char errstr[256];
    if (ens_inference_new(&inf) || ens_model_new_mlp(4, hidden, 1, 2, 1, &m[0]) ||
        ens_model_new_mlp(4, hidden, 1, 2, 2, &m[1]) ||
        ens_inference_set_models(inf, m, w, 2, 1, "fuzz", errstr, sizeof errstr))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!inf)
        setup();
    char errstr[512];
    ens_event_t ev, resp;
    if (ens_event_decode(data, size, &ev, errstr, sizeof errstr) != ENS_OK)
        return 0;
    if (ev.type == ENS_EV_INFERENCE_REQUEST) {
        const ens_inference_request_t *q = &ev.u.inference_request;
        ens_err_t err = ens_inference_run(inf, &q, 1, 1000, &resp);
        const ens_inference_response_t *r = &resp.u.inference_response;
        if (strcmp(r->request_id, q->request_id) != 0)
            abort();
        if (!err && r->status == ENS_RESPONSE_OK) {
            double sum = 0;
            for (int i = 0; i < r->n_probabilities; i++)
                sum += r->probabilities[i];
            if (r->n_probabilities != 2 || !(fabs(sum - 1) < 1e-4))
                abort();
        }
        uint8_t *buf = NULL; /* the answer must be sendable */
        size_t len = 0;
        if (ens_event_encode(&resp, &buf, &len, errstr, sizeof errstr) != ENS_OK) {
            fprintf(stderr, "the answer does not encode: %s\n", errstr);
            abort();
        }
        free(buf);
        ens_event_free(&resp);
    }
    ens_event_free(&ev);
    return 0;
}
