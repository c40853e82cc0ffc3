/* test_events_direct.c - the direct InferenceRequest codec against Avro C's generic path. */
#include <float.h>
#include <stdint.h>

#include "check.h"
#include "ensflow/events.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* A request of n values: random bits (NaNs, infinities, denormals included) or edge values. */
static void make_request(ens_event_t *ev, int32_t n, int32_t n_shape, int64_t deadline) {
    static const float edges[] = {0.0f,    -0.0f,  1.0f,     -1.5f,     FLT_MIN, -FLT_MAX,
                                  FLT_MAX, 1e-45f, INFINITY, -INFINITY, NAN};
    ens_event_init(ev, ENS_EV_INFERENCE_REQUEST);
    ens_inference_request_t *q = &ev->u.inference_request;
    snprintf(q->request_id, sizeof q->request_id, "abcdefgh-%d", (int)n);
    q->n_shape = n_shape;
    for (int32_t i = 0; i < n_shape; i++)
        q->shape[i] = i % 2 ? -(int32_t)rnd() : (int32_t)(rnd() % 1000);
    q->n_data = n;
    q->data = n ? malloc((size_t)n * sizeof *q->data) : NULL;
    for (int32_t i = 0; i < n; i++) {
        uint32_t u = rnd();
        if (i % 3 == 0)
            memcpy(&q->data[i], &u, sizeof u);
        else
            q->data[i] = edges[u % (sizeof edges / sizeof edges[0])];
    }
    q->deadline_ms = deadline;
}

static void check_same_request(const ens_event_t *a, const ens_event_t *b) {
    const ens_inference_request_t *qa = &a->u.inference_request, *qb = &b->u.inference_request;
    CHECK_EQ_INT(a->type, b->type);
    CHECK_STR(a->event_id, b->event_id);
    CHECK_EQ_INT(a->occurred_at, b->occurred_at);
    CHECK_STR(qa->request_id, qb->request_id);
    CHECK_EQ_INT(qa->n_shape, qb->n_shape);
    CHECK(qa->n_shape == qb->n_shape &&
          !memcmp(qa->shape, qb->shape, (size_t)qa->n_shape * sizeof qa->shape[0]));
    CHECK_EQ_INT(qa->n_data, qb->n_data);
    CHECK((qa->data == NULL) == (qb->data == NULL));
    CHECK(qa->n_data == qb->n_data &&
          (!qa->n_data || !memcmp(qa->data, qb->data, (size_t)qa->n_data * sizeof(float))));
    CHECK_EQ_INT(qa->deadline_ms, qb->deadline_ms);
}

/* The decodings of buf agree: ens_event_decode fails as the generic path fails (the same
 * message) or gives the same event; and the direct reader alone reads every request the
 * generic path reads (else the speed-up is silently lost), bit for bit. */
static void check_decodes_alike(const uint8_t *buf, size_t len) {
    ens_event_t a, b, d;
    char ea[256] = "", eb[256] = "", ed[256] = "";
    ens_err_t ra = ens_event_decode(buf, len, &a, ea, sizeof ea);
    ens_err_t rb = ens_event_decode_with(buf, len, ENS_CODEC_GENERIC, &b, eb, sizeof eb);
    ens_err_t rd = ens_event_decode_with(buf, len, ENS_CODEC_DIRECT, &d, ed, sizeof ed);
    CHECK_EQ_INT(ra, rb);
    CHECK(rb == ENS_OK ? rd == ENS_OK : rd != ENS_OK); /* header errors come first */
    if (ra != ENS_OK || rb != ENS_OK)
        CHECK_STR(ea, eb);
    if (ra == ENS_OK && rb == ENS_OK)
        check_same_request(&a, &b);
    if (rd == ENS_OK && rb == ENS_OK)
        check_same_request(&d, &b);
    if (ra == ENS_OK)
        ens_event_free(&a);
    if (rb == ENS_OK)
        ens_event_free(&b);
    if (rd == ENS_OK)
        ens_event_free(&d);
}

/* The direct writer gives the generic path's bytes, and takes every request that path takes;
 * where it declines, ens_event_encode fails as the generic path does. The bytes decode alike. */
static void check_encodes_alike(const ens_event_t *ev) {
    uint8_t *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    char ea[256] = "", eb[256] = "";
    ens_err_t ra = ens_event_encode_with(ev, ENS_CODEC_DIRECT, &a, &la, ea, sizeof ea);
    ens_err_t rb = ens_event_encode_with(ev, ENS_CODEC_GENERIC, &b, &lb, eb, sizeof eb);
    CHECK_EQ_INT(ra, rb == ENS_OK ? ENS_OK : ENS_ERR_UNSUPPORTED);
    if (ra != ENS_OK) { /* the automatic choice then fails as the generic path does */
        free(a);
        a = NULL;
        ra = ens_event_encode(ev, &a, &la, ea, sizeof ea);
        CHECK_EQ_INT(ra, rb);
    }
    CHECK_EQ_INT(la, lb);
    if (ra == ENS_OK && rb == ENS_OK && la == lb) {
        CHECK(!memcmp(a, b, la));
        check_decodes_alike(a, la);
    } else if (ra != ENS_OK || rb != ENS_OK) {
        CHECK_STR(ea, eb);
    }
    free(a);
    free(b);
}

static void test_encode_sizes(void) {
    static const int32_t sizes[] = {0, 1, 2, 3, 63, 64, 783, 784, 785, 1001, 4096};
    static const int64_t deadlines[] = {0, 1, -1, INT64_C(1796000000000), INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t d = 0; d < sizeof deadlines / sizeof deadlines[0]; d++) {
            ens_event_t ev;
            make_request(&ev, sizes[i], (int32_t)((i + d) % 9), deadlines[d]);
            ev.occurred_at = d % 2 ? -ev.occurred_at : ev.occurred_at;
            check_encodes_alike(&ev);
            ens_event_free(&ev);
        }
}

static void test_encode_ids(void) {
    ens_event_t ev;
    make_request(&ev, 784, 1, 0);
    ens_inference_request_t *q = &ev.u.inference_request;
    q->request_id[0] = '\0'; /* empty strings */
    ev.event_id[0] = '\0';
    ev.occurred_at = 0;
    check_encodes_alike(&ev);
    memset(q->request_id, 'r', sizeof q->request_id - 1); /* the longest: 63 bytes */
    q->request_id[sizeof q->request_id - 1] = '\0';
    memset(ev.event_id, 'e', sizeof ev.event_id - 1);
    ev.event_id[sizeof ev.event_id - 1] = '\0';
    q->request_id[5] = (char)0xE2; /* bytes above 0x7f are copied as they are */
    check_encodes_alike(&ev);
    ens_event_free(&ev);
}

/* What the direct encoder does not take goes to the generic path: the same errors. */
static void test_encode_errors(void) {
    ens_event_t ev;
    make_request(&ev, 10, 2, 0);
    ens_inference_request_t *q = &ev.u.inference_request;
    q->n_shape = 9;
    check_encodes_alike(&ev);
    q->n_shape = -1;
    check_encodes_alike(&ev);
    q->n_shape = 1;
    q->n_data = -1;
    check_encodes_alike(&ev);
    q->n_data = 10;
    float *keep = q->data;
    q->data = NULL;
    check_encodes_alike(&ev);
    q->data = keep;
    memset(q->request_id, 'x', sizeof q->request_id); /* no NUL */
    check_encodes_alike(&ev);
    snprintf(q->request_id, sizeof q->request_id, "ok");
    memset(ev.event_id, 'x', sizeof ev.event_id);
    check_encodes_alike(&ev);
    ens_event_free(&ev);
}

/* --- bodies the generic writer never makes: several blocks, negative counts ------------------ */

static uint8_t *put_varint(uint8_t *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        *p++ = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *p++ = (uint8_t)z;
    return p;
}

static uint8_t *put_bytes(uint8_t *p, const char *s, size_t n) {
    p = put_varint(p, (int64_t)n);
    memcpy(p, s, n);
    return p + n;
}

static uint8_t *put_f32(uint8_t *p, int n, float first) {
    for (int i = 0; i < n; i++, p += 4) {
        float f = first + (float)i;
        memcpy(p, &f, 4); /* little-endian host, as the tests run */
    }
    return p;
}

/* request_id (id_len bytes, NULs allowed); shape [1, 5] in blocks {1} {-1 (size)}; data 7
 * floats in blocks {3} {-4 (size)} {0}; deadline 42. */
static size_t write_body(uint8_t *buf, const char *id, size_t id_len) {
    uint64_t fp = ens_event_fingerprint(ENS_EV_INFERENCE_REQUEST);
    uint8_t *p = buf;
    *p++ = 0xC3;
    *p++ = 0x01;
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(fp >> (8 * i));
    p = put_bytes(p, "0b0e9a6c-4c1f-4d53-9d1a-7d3f5c2a8e11", 36);
    p = put_varint(p, INT64_C(1796000000123));
    p = put_bytes(p, id, id_len);
    p = put_varint(p, 1);
    p = put_varint(p, 1);
    p = put_varint(p, -1);
    p = put_varint(p, 1); /* block size in bytes */
    p = put_varint(p, 5);
    p = put_varint(p, 0);
    p = put_varint(p, 3);
    p = put_f32(p, 3, 0.5f);
    p = put_varint(p, -4);
    p = put_varint(p, 16);
    p = put_f32(p, 4, 10.5f);
    p = put_varint(p, 0);
    p = put_varint(p, 1); /* deadline: the long branch */
    p = put_varint(p, 42);
    return (size_t)(p - buf);
}

static size_t write_blocked(uint8_t *buf) {
    return write_body(buf, "blocked", 7);
}

static void test_decode_blocks(void) {
    uint8_t buf[256];
    size_t len = write_blocked(buf);
    check_decodes_alike(buf, len);
    ens_event_t ev;
    char err[256];
    CHECK_OK(ens_event_decode(buf, len, &ev, err, sizeof err));
    CHECK_EQ_INT(ev.u.inference_request.n_shape, 2);
    CHECK_EQ_INT(ev.u.inference_request.shape[1], 5);
    CHECK_EQ_INT(ev.u.inference_request.n_data, 7);
    if (ev.u.inference_request.n_data == 7)
        CHECK_NEAR(ev.u.inference_request.data[6], 13.5, 0);
    CHECK_EQ_INT(ev.u.inference_request.deadline_ms, 42);
    ens_event_free(&ev);
}

/* Strings that do not fit a char[64] or hold a NUL fail as the generic path fails them. */
static void test_decode_strings(void) {
    char id[80];
    uint8_t buf[256];
    memset(id, 'i', sizeof id);
    for (size_t n = 62; n <= 66; n++)
        check_decodes_alike(buf, write_body(buf, id, n));
    id[3] = '\0';
    check_decodes_alike(buf, write_body(buf, id, 10));
    check_decodes_alike(buf, write_body(buf, id, 0));
}

/* Every truncation and many random corruptions decode alike (mostly: fail alike). */
static void test_decode_hostile(void) {
    ens_event_t ev;
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    make_request(&ev, 33, 3, 77);
    CHECK_OK(ens_event_encode(&ev, &buf, &len, err, sizeof err));
    ens_event_free(&ev);
    if (!buf)
        return;
    for (size_t cut = 0; cut <= len; cut++)
        check_decodes_alike(buf, cut);
    uint8_t *copy = malloc(len + 1);
    for (int t = 0; t < 20000; t++) {
        memcpy(copy, buf, len);
        int flips = 1 + (int)(rnd() % 3);
        for (int f = 0; f < flips; f++) /* keep the header, or nearly all would fail alike */
            copy[10 + rnd() % (len - 10)] = (uint8_t)rnd();
        check_decodes_alike(copy, len);
    }
    copy[len] = 0; /* one trailing byte */
    memcpy(copy, buf, len);
    check_decodes_alike(copy, len + 1);
    uint8_t blocked[256];
    size_t blen = write_blocked(blocked);
    for (int t = 0; t < 5000; t++) {
        uint8_t c2[256];
        memcpy(c2, blocked, blen);
        c2[10 + rnd() % (blen - 10)] = (uint8_t)rnd();
        check_decodes_alike(c2, blen);
    }
    free(copy);
    free(buf);
}

int main(void) {
    test_encode_sizes();
    test_encode_ids();
    test_encode_errors();
    test_decode_blocks();
    test_decode_strings();
    test_decode_hostile();
    return check_done("test_events_direct");
}
