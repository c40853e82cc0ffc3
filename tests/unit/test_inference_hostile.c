/* test_inference_hostile.c - hostile requests on the inference path (decode, then answer with
 * an in-memory plan): huge declared dimensions and array lengths, NaN/Inf and huge finite
 * values, and every input the fuzzers found (tests/fuzz/regressions/inference-*.bin). */
#include <dirent.h>
#include <math.h>

#include "check.h"
#include "ensflow/events.h"
#include "ensflow/nn.h"
#include "ensflow/inference.h"

#define DIM 4

static char errstr[512];

/* Decode msg and answer it; the answer's status (or -1 when the message did not decode). */
static int answer(ens_inference_t *inf, const uint8_t *msg, size_t len, char *why,
                  size_t why_size) {
    ens_event_t ev, resp;
    snprintf(why, why_size, "%s", "");
    if (ens_event_decode(msg, len, &ev, errstr, sizeof errstr) != ENS_OK) {
        snprintf(why, why_size, "%s", errstr);
        return -1;
    }
    if (ev.type != ENS_EV_INFERENCE_REQUEST) {
        ens_event_free(&ev);
        return -2;
    }
    const ens_inference_request_t *q = &ev.u.inference_request;
    CHECK_OK(ens_inference_run(inf, &q, 1, ens_now_ms(), &resp));
    const ens_inference_response_t *r = &resp.u.inference_response;
    CHECK_STR(r->request_id, q->request_id);
    int status = (int)r->status;
    if (r->status == ENS_RESPONSE_OK) {
        CHECK_EQ_INT(r->n_probabilities, 2);
        for (int i = 0; i < r->n_probabilities; i++)
            CHECK(isfinite(r->probabilities[i]));
    } else {
        CHECK(r->error != NULL);
        snprintf(why, why_size, "%s", r->error ? r->error : "");
    }
    uint8_t *buf = NULL; /* every answer must be sendable */
    size_t blen = 0;
    CHECK_OK(ens_event_encode(&resp, &buf, &blen, errstr, sizeof errstr));
    free(buf);
    ens_event_free(&resp);
    ens_event_free(&ev);
    return status;
}

static uint8_t *encode_request(const int32_t *shape, int n_shape, const float *data, int n,
                               size_t *len) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_INFERENCE_REQUEST);
    ens_inference_request_t *q = &ev.u.inference_request;
    snprintf(q->request_id, sizeof q->request_id, "hostile");
    q->n_shape = n_shape;
    memcpy(q->shape, shape, (size_t)n_shape * sizeof *shape);
    q->n_data = n;
    q->data = malloc((size_t)(n ? n : 1) * sizeof *q->data);
    if (n)
        memcpy(q->data, data, (size_t)n * sizeof *data);
    uint8_t *buf = NULL;
    CHECK_OK(ens_event_encode(&ev, &buf, len, errstr, sizeof errstr));
    ens_event_free(&ev);
    return buf;
}

/* Avro zig-zag varint of v into p; the number of bytes. */
static size_t zigzag(int64_t v, uint8_t *p) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((u & 0x7f) | (u > 0x7f ? 0x80 : 0));
        u >>= 7;
    } while (u);
    return n;
}

/* The encoding of a request with shape [4] and no data, with the array count at `which`
 * (0 = shape, 1 = data) replaced by `count`: a body that declares far more than it holds. */
static uint8_t *declare(int which, int64_t count, size_t *len) {
    const int32_t shape[] = {DIM};
    size_t l0 = 0;
    uint8_t *ok = encode_request(shape, 1, NULL, 0, &l0);
    /* tail of the body: shape 02 08 00, data 00, deadline_ms null 00 */
    CHECK(l0 > 5 && !memcmp(ok + l0 - 5, "\x02\x08\x00\x00\x00", 5));
    uint8_t *out = malloc(l0 + 16);
    size_t at = l0 - 5;
    memcpy(out, ok, at);
    if (which == 0)
        at += zigzag(count, out + at);
    else {
        memcpy(out + at, "\x02\x08\x00", 3);
        at += 3;
        at += zigzag(count, out + at);
    }
    out[at++] = 0; /* a few bytes where billions were announced */
    out[at++] = 0;
    free(ok);
    *len = at;
    return out;
}

int main(void) {
    ens_inference_t *inf = NULL;
    ens_model_t *m[2] = {NULL, NULL};
    const int32_t hidden[] = {3};
    const double w[] = {0.5, 0.5};
    CHECK_OK(ens_inference_new(&inf));
    CHECK_OK(ens_model_new_mlp(DIM, hidden, 1, 2, 1, &m[0]));
    CHECK_OK(ens_model_new_mlp(DIM, hidden, 1, 2, 2, &m[1]));
    CHECK_OK(ens_inference_set_models(inf, m, w, 2, 1, "hostile", errstr, sizeof errstr));
    char why[512];
    uint8_t *msg;
    size_t len;

    /* a sane request is answered */
    const int32_t s4[] = {DIM};
    float x[DIM] = {0.1f, -0.2f, 0.3f, 0.4f};
    msg = encode_request(s4, 1, x, DIM, &len);
    CHECK_EQ_INT(answer(inf, msg, len, why, sizeof why), ENS_RESPONSE_OK);
    free(msg);

    /* huge declared dimensions (8 of 2^31-1: their product overflows an int64) */
    const int32_t huge[8] = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX,
                             INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    for (int n_shape = 1; n_shape <= 8; n_shape *= 2) {
        msg = encode_request(huge, n_shape, x, DIM, &len);
        CHECK_EQ_INT(answer(inf, msg, len, why, sizeof why), ENS_RESPONSE_ERROR);
        CHECK(strstr(why, "shape") != NULL);
        free(msg);
    }
    const int32_t neg[] = {-4};
    msg = encode_request(neg, 1, x, DIM, &len);
    CHECK_EQ_INT(answer(inf, msg, len, why, sizeof why), ENS_RESPONSE_ERROR);
    free(msg);

    /* NaN, +-Inf and a finite value so large that the members overflow */
    const float bad[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        float y[DIM] = {0.1f, bad[i], 0.3f, 0.4f};
        msg = encode_request(s4, 1, y, DIM, &len);
        int st = answer(inf, msg, len, why, sizeof why);
        if (st != ENS_RESPONSE_ERROR)
            fprintf(stderr, "value %g: status %d\n", (double)bad[i], st);
        CHECK_EQ_INT(st, ENS_RESPONSE_ERROR);
        free(msg);
    }

    /* array lengths declared far beyond the message and beyond the bounds: refused at
     * decode, before anything is allocated for them (ASan would report a huge allocation) */
    const int64_t counts[] = {1000, (int64_t)1 << 24, (int64_t)1 << 40, INT64_MAX / 2, -5};
    for (int which = 0; which < 2; which++)
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            msg = declare(which, counts[i], &len);
            CHECK_EQ_INT(answer(inf, msg, len, why, sizeof why), -1);
            free(msg);
        }

    /* every crashing input the fuzzers found stays fixed */
    const char *src = getenv("ENSFLOW_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions", src ? src : ".");
    DIR *d = opendir(dir);
    int n_files = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, "inference-", 10) != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        uint8_t buf[65536];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        int st = answer(inf, buf, n, why, sizeof why);
        fprintf(stderr, "regression %s: status %d (%s)\n", e->d_name, st, why);
        n_files++;
    }
    if (d)
        closedir(d);
    CHECK(n_files >= 1);
    ens_inference_free(inf);
    return check_done("test_inference_hostile");
}
