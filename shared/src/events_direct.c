/* events_direct.c - InferenceRequest without Avro C's generic values.
 * Why: the generic path goes through Avro C's value interface once per float (append, set,
 * then sizeof and write walk them again): ~27 us to encode and ~20 us to decode a 784-float
 * request, paid per sample by `ensflow predict` and by every inference group. These write and
 * read the same bytes directly (tests/unit/test_events_direct.c compares them with the generic
 * path). Anything unusual (a bad argument, a malformed or oversized body) is left to the
 * generic path, so that errors and their messages stay exactly what they were. */
#include "events_internal.h"

#include <stdlib.h>
#include <string.h>

#define REQ_SHAPE_MAX 8 /* inference_request_f: shape */

typedef struct {
    uint8_t *p;
} wbuf_t;

/* Avro long: zig-zag, then base-128 varint, low group first (at most 10 bytes). */
static void put_long(wbuf_t *w, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z > 0x7f) {
        *w->p++ = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    *w->p++ = (uint8_t)z;
}

static void put_string(wbuf_t *w, const char *s, size_t len) {
    put_long(w, (int64_t)len);
    memcpy(w->p, s, len);
    w->p += len;
}

/* Avro C writes an array as one block: the count (when not empty), the items, then 0. */
static void put_floats(wbuf_t *w, const float *v, int32_t n) {
    if (n > 0) {
        put_long(w, n);
        for (int32_t i = 0; i < n; i++, w->p += 4) { /* IEEE 754 binary32, little-endian */
            uint32_t u;
            memcpy(&u, &v[i], sizeof u);
            w->p[0] = (uint8_t)u;
            w->p[1] = (uint8_t)(u >> 8);
            w->p[2] = (uint8_t)(u >> 16);
            w->p[3] = (uint8_t)(u >> 24);
        }
    }
    put_long(w, 0);
}

/* The body's size bound, or 0 when the request is one the generic path must judge. */
static size_t request_bound(const ens_event_t *ev, size_t *id_len, size_t *req_len) {
    const ens_inference_request_t *q = &ev->u.inference_request;
    *id_len = strnlen(ev->event_id, sizeof ev->event_id);
    *req_len = strnlen(q->request_id, sizeof q->request_id);
    if (*id_len == sizeof ev->event_id || *req_len == sizeof q->request_id || q->n_shape < 0 ||
        q->n_shape > REQ_SHAPE_MAX || q->n_data < 0 || q->n_data > MAX_VALUES ||
        (q->n_data > 0 && !q->data))
        return 0;
    /* varints take at most 10 bytes: 2 strings, occurred_at, 2 arrays' counts and ends, union */
    return 10 + *id_len + 10 + 10 + *req_len + 20 + 10 * (size_t)q->n_shape + 20 +
           4 * (size_t)q->n_data + 1 + 10;
}

int ens_events_encode_request_direct(const ens_event_t *ev, uint64_t fp, uint8_t **buf,
                                     size_t *len) {
    const ens_inference_request_t *q = &ev->u.inference_request;
    size_t id_len, req_len, bound = request_bound(ev, &id_len, &req_len);
    uint8_t *out = bound ? malloc(HDR_LEN + bound) : NULL;
    if (!out) /* out of memory included: the generic path reports it */
        return 0;
    ens_events_put_header(out, fp);
    wbuf_t w = {out + HDR_LEN};
    put_string(&w, ev->event_id, id_len);
    put_long(&w, ev->occurred_at);
    put_string(&w, q->request_id, req_len);
    if (q->n_shape > 0) {
        put_long(&w, q->n_shape);
        for (int32_t i = 0; i < q->n_shape; i++)
            put_long(&w, q->shape[i]);
    }
    put_long(&w, 0);
    put_floats(&w, q->data, q->n_data);
    put_long(&w, q->deadline_ms != 0); /* union branch: 0 null, 1 long */
    if (q->deadline_ms)
        put_long(&w, q->deadline_ms);
    *buf = out;
    *len = (size_t)(w.p - out);
    return 1;
}

/* A string into a char[cap]: what get_str and put_fixed accept (no NUL, shorter than cap). */
static int get_fixed(cursor_t *c, char *dst, size_t cap) {
    int64_t n;
    if (ens_events_read_varint(c, &n, 10) || n < 0 || n >= (int64_t)cap || n > c->end - c->p ||
        memchr(c->p, '\0', (size_t)n))
        return -1;
    memcpy(dst, c->p, (size_t)n);
    dst[n] = '\0';
    c->p += n;
    return 0;
}

/* The item count of the next block of an array (blocks with a negative count carry their size
 * in bytes, which is skipped); 0 at the end of the array. */
static int get_block(cursor_t *c, int64_t *count) {
    int64_t size;
    if (ens_events_read_varint(c, count, 10))
        return -1;
    if (*count < 0) {
        if (*count == INT64_MIN || ens_events_read_varint(c, &size, 10))
            return -1;
        *count = -*count;
    }
    return 0;
}

static int get_shape(cursor_t *c, ens_inference_request_t *q) {
    int64_t n, v;
    for (;;) {
        if (get_block(c, &n))
            return -1;
        if (n == 0)
            return 0;
        if (n > REQ_SHAPE_MAX - q->n_shape)
            return -1;
        for (int64_t i = 0; i < n; i++) {
            if (ens_events_read_varint(c, &v, 5) || v < INT32_MIN || v > INT32_MAX)
                return -1;
            q->shape[q->n_shape++] = (int32_t)v;
        }
    }
}

/* Floats of any number of blocks; q->data grows only when a second block comes. */
static int get_data(cursor_t *c, ens_inference_request_t *q) {
    int64_t n;
    for (;;) {
        if (get_block(c, &n))
            return -1;
        if (n == 0)
            return 0;
        if (n > MAX_VALUES - q->n_data || n > (c->end - c->p) / 4)
            return -1;
        float *d = realloc(q->data, (size_t)(q->n_data + n) * sizeof *d);
        if (!d)
            return -1;
        q->data = d;
        for (int64_t i = 0; i < n; i++, c->p += 4) {
            uint32_t u = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
                         (uint32_t)c->p[3] << 24;
            memcpy(&d[q->n_data++], &u, sizeof u);
        }
    }
}

/* 1 when body (the current InferenceRequest schema) was read into ev, 0 when the generic path
 * must decode it (the caller frees what ev holds then). */
int ens_events_decode_request_direct(const uint8_t *body, size_t n, ens_event_t *ev) {
    cursor_t c = {body, body + n, NULL};
    ens_inference_request_t *q = &ev->u.inference_request;
    int64_t branch;
    ev->type = ENS_EV_INFERENCE_REQUEST;
    return !(get_fixed(&c, ev->event_id, sizeof ev->event_id) ||
             ens_events_read_varint(&c, &ev->occurred_at, 10) ||
             get_fixed(&c, q->request_id, sizeof q->request_id) || get_shape(&c, q) ||
             get_data(&c, q) || ens_events_read_varint(&c, &branch, 10) || branch < 0 ||
             branch > 1 || (branch == 1 && ens_events_read_varint(&c, &q->deadline_ms, 10)) ||
             c.p != c.end);
}

