/* events.c - ensflow events <-> Avro single-object encoding, driven by a field table per record
 * (events_schema.c); InferenceRequest has a direct codec (events_direct.c), and every body is
 * bounded (events_bounds.c) before Avro C reads it. */
#include "events_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* --- struct <-> avro_value_t ---------------------------------------------------------------- */

/* The field called name in a schema's JSON "fields" array, or NULL. */
static const json_t *field_json(const json_t *fields, const char *name) {
    size_t i;
    const json_t *f;
    json_array_foreach(fields, i, f) {
        const char *n = json_string_value(json_object_get(f, "name"));
        if (n && strcmp(n, name) == 0)
            return f;
    }
    return NULL;
}

typedef struct {
    char *errstr;
    size_t errstr_size;
    const char *what; /* "encode TrialJob" */
} ctx_t;

static ens_err_t fail(ctx_t *x, ens_err_t err, const field_t *f, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static ens_err_t fail(ctx_t *x, ens_err_t err, const field_t *f, const char *fmt, ...) {
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ens_err_set(x->errstr, x->errstr_size, err, "%s: field %s: %s", x->what,
                       f ? f->name : "-", msg);
}

#define AV(call, x, f)                                                                           \
    do {                                                                                         \
        if ((call) != 0)                                                                         \
            return fail(x, ENS_ERR_AVRO, f, "%s", avro_strerror());                              \
    } while (0)

static int32_t get_count(const field_t *f, const void *base) {
    int32_t n;
    memcpy(&n, (const char *)base + f->count_off, sizeof n);
    return n;
}

static void set_count(const field_t *f, void *base, int32_t n) {
    memcpy((char *)base + f->count_off, &n, sizeof n);
}

static size_t elem_size(const field_t *f) {
    switch (f->kind) {
    case K_INTS: return sizeof(int32_t);
    case K_FLOATS: return sizeof(float);
    case K_DOUBLES: return sizeof(double);
    case K_IDS: return ENS_ID_MAX;
    case K_RECS: return f->sub->size;
    default: return 1;
    }
}

static ens_err_t enc_rec(ctx_t *x, const rec_t *r, const void *base, avro_value_t *val);

static ens_err_t set_str(ctx_t *x, const field_t *f, avro_value_t *v, const char *s, size_t cap) {
    size_t len = strnlen(s, cap);
    if (len == cap)
        return fail(x, ENS_ERR_INVALID, f, "string not NUL-terminated within %zu bytes", cap);
    AV(avro_value_set_string_len(v, s, len + 1), x, f);
    return ENS_OK;
}

/* One array element; el points at the C element. */
static ens_err_t enc_elem(ctx_t *x, const field_t *f, const char *el, avro_value_t *v) {
    switch (f->kind) {
    case K_INTS: AV(avro_value_set_int(v, *(const int32_t *)el), x, f); break;
    case K_FLOATS: AV(avro_value_set_float(v, *(const float *)el), x, f); break;
    case K_DOUBLES: AV(avro_value_set_double(v, *(const double *)el), x, f); break;
    case K_IDS: return set_str(x, f, v, el, ENS_ID_MAX);
    default: return enc_rec(x, f->sub, el, v);
    }
    return ENS_OK;
}

static ens_err_t enc_field(ctx_t *x, const field_t *f, const char *p, const void *base,
                           avro_value_t *v) {
    avro_value_t br;
    const char *s;
    int32_t i32;
    int64_t i64;
    double d;
    int e;
    switch (f->kind) {
    case K_ID: return set_str(x, f, v, p, f->size);
    case K_STR:
    case K_OPTSTR:
        memcpy(&s, p, sizeof s);
        if (f->kind == K_STR && !s)
            return fail(x, ENS_ERR_INVALID, f, "NULL (the schema has no null)");
        if (f->kind == K_OPTSTR) {
            AV(avro_value_set_branch(v, s != NULL, &br), x, f);
            v = &br;
            if (!s) {
                AV(avro_value_set_null(v), x, f);
                break;
            }
        }
        AV(avro_value_set_string(v, s), x, f);
        break;
    case K_INT: memcpy(&i32, p, sizeof i32); AV(avro_value_set_int(v, i32), x, f); break;
    case K_LONG: memcpy(&i64, p, sizeof i64); AV(avro_value_set_long(v, i64), x, f); break;
    case K_OPTLONG:
        memcpy(&i64, p, sizeof i64);
        AV(avro_value_set_branch(v, i64 != 0, &br), x, f);
        AV(i64 ? avro_value_set_long(&br, i64) : avro_value_set_null(&br), x, f);
        break;
    case K_DOUBLE: memcpy(&d, p, sizeof d); AV(avro_value_set_double(v, d), x, f); break;
    case K_ENUM:
        memcpy(&e, p, sizeof e);
        if (e < 0 || e >= f->max)
            return fail(x, ENS_ERR_INVALID, f, "enum value %d out of range", e);
        AV(avro_value_set_enum(v, e), x, f);
        break;
    case K_BYTES: {
        size_t n;
        const uint8_t *b;
        memcpy(&n, (const char *)base + f->count_off, sizeof n);
        memcpy(&b, p, sizeof b);
        if (n && !b)
            return fail(x, ENS_ERR_INVALID, f, "NULL with length %zu", n);
        AV(avro_value_set_bytes(v, n ? (void *)b : (void *)"", n), x, f);
        break;
    }
    default: { /* arrays */
        int32_t n = get_count(f, base);
        const char *arr = p;
        if (f->kind != K_INTS)
            memcpy(&arr, p, sizeof arr);
        if (n < 0 || n > f->max || (n > 0 && !arr))
            return fail(x, ENS_ERR_INVALID, f, "bad count %d (at most %d) or NULL array", n,
                        f->max);
        for (int32_t i = 0; i < n; i++) {
            avro_value_t el;
            AV(avro_value_append(v, &el, NULL), x, f);
            ens_err_t err = enc_elem(x, f, arr + (size_t)i * elem_size(f), &el);
            if (err)
                return err;
        }
    }
    }
    return ENS_OK;
}

static ens_err_t enc_rec(ctx_t *x, const rec_t *r, const void *base, avro_value_t *val) {
    for (int i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        avro_value_t child;
        AV(avro_value_get_by_name(val, f->name, &child, NULL), x, f);
        ens_err_t err = enc_field(x, f, (const char *)base + f->off, base, &child);
        if (err)
            return err;
    }
    return ENS_OK;
}

/* defaults: the current schema's JSON "fields" of the record when the writer was an older
 * version (fields it lacks take their default), NULL when it was the current one. */
static ens_err_t dec_rec(ctx_t *x, const rec_t *r, void *base, avro_value_t *val,
                         const json_t *defaults);

/* A string value without embedded NULs; *len excludes the terminator. */
static ens_err_t get_str(ctx_t *x, const field_t *f, avro_value_t *v, const char **s, size_t *len) {
    size_t size;
    AV(avro_value_get_string(v, s, &size), x, f);
    if (!*s || size == 0) {
        *s = "";
        size = 1;
    }
    *len = size - 1;
    if (memchr(*s, '\0', *len))
        return fail(x, ENS_ERR_AVRO, f, "string contains a NUL byte");
    return ENS_OK;
}

static ens_err_t put_fixed(ctx_t *x, const field_t *f, char *dst, size_t cap, const char *s,
                           size_t len) {
    if (len >= cap)
        return fail(x, ENS_ERR_AVRO, f, "string of %zu bytes is longer than %zu", len, cap - 1);
    memcpy(dst, s, len);
    dst[len] = '\0';
    return ENS_OK;
}

static ens_err_t put_dup(ctx_t *x, const field_t *f, char *p, const char *s, size_t len) {
    char *d = strndup(s, len);
    if (!d)
        return fail(x, ENS_ERR_NOMEM, f, "out of memory");
    memcpy(p, &d, sizeof d);
    return ENS_OK;
}

static ens_err_t dec_elem(ctx_t *x, const field_t *f, char *el, avro_value_t *v,
                          const json_t *defaults) {
    const char *s;
    size_t len;
    ens_err_t err;
    switch (f->kind) {
    case K_INTS: AV(avro_value_get_int(v, (int32_t *)el), x, f); break;
    case K_FLOATS: AV(avro_value_get_float(v, (float *)el), x, f); break;
    case K_DOUBLES: AV(avro_value_get_double(v, (double *)el), x, f); break;
    case K_IDS:
        if ((err = get_str(x, f, v, &s, &len)))
            return err;
        return put_fixed(x, f, el, ENS_ID_MAX, s, len);
    default: return dec_rec(x, f->sub, el, v, defaults);
    }
    return ENS_OK;
}

/* fjson: this field in the current schema (JSON) when decoding an older writer, else NULL */
static ens_err_t dec_field(ctx_t *x, const field_t *f, char *p, void *base, avro_value_t *v,
                           const json_t *fjson) {
    avro_value_t br;
    const char *s;
    size_t len;
    ens_err_t err;
    int e;
    switch (f->kind) {
    case K_ID:
        if ((err = get_str(x, f, v, &s, &len)))
            return err;
        return put_fixed(x, f, p, f->size, s, len);
    case K_OPTSTR:
    case K_OPTLONG:
        AV(avro_value_get_current_branch(v, &br), x, f);
        if (avro_value_get_type(&br) == AVRO_NULL)
            break; /* the struct is zeroed: NULL / 0 */
        v = &br;
        if (f->kind == K_OPTLONG) {
            AV(avro_value_get_long(v, (int64_t *)p), x, f);
            break;
        }
        /* fall through */
    case K_STR:
        if ((err = get_str(x, f, v, &s, &len)))
            return err;
        return put_dup(x, f, p, s, len);
    case K_INT: AV(avro_value_get_int(v, (int32_t *)p), x, f); break;
    case K_LONG: AV(avro_value_get_long(v, (int64_t *)p), x, f); break;
    case K_DOUBLE: AV(avro_value_get_double(v, (double *)p), x, f); break;
    case K_ENUM:
        AV(avro_value_get_enum(v, &e), x, f);
        if (e < 0 || e >= f->max)
            return fail(x, ENS_ERR_AVRO, f, "enum index %d out of range", e);
        memcpy(p, &e, sizeof e);
        break;
    case K_BYTES: {
        const void *b;
        AV(avro_value_get_bytes(v, &b, &len), x, f);
        uint8_t *d = malloc(len ? len : 1);
        if (!d)
            return fail(x, ENS_ERR_NOMEM, f, "out of memory");
        if (len)
            memcpy(d, b, len);
        memcpy(p, &d, sizeof d);
        memcpy((char *)base + f->count_off, &len, sizeof len);
        break;
    }
    default: { /* arrays */
        size_t n;
        AV(avro_value_get_size(v, &n), x, f);
        if (n > (size_t)f->max)
            return fail(x, ENS_ERR_AVRO, f, "%zu elements, at most %d", n, f->max);
        if (f->shared && (int32_t)n != get_count(f, base))
            return fail(x, ENS_ERR_AVRO, f, "%zu elements, expected %d", n, get_count(f, base));
        char *arr = p;
        if (f->kind != K_INTS && n > 0) {
            if (!(arr = calloc(n, elem_size(f))))
                return fail(x, ENS_ERR_NOMEM, f, "out of memory");
            memcpy(p, &arr, sizeof arr); /* owned by the event from here on */
        }
        set_count(f, base, (int32_t)n);
        for (size_t i = 0; i < n; i++) {
            avro_value_t el;
            AV(avro_value_get_by_index(v, i, &el, NULL), x, f);
            if ((err = dec_elem(x, f, arr + i * elem_size(f), &el,
                                fjson ? ens_events_nested_fields(fjson) : NULL)))
                return err;
        }
    }
    }
    return ENS_OK;
}

/* A field an older writer did not have: take the current schema's default. */
static ens_err_t dec_default(ctx_t *x, const field_t *f, char *p, const json_t *fjson) {
    const json_t *def = json_object_get(fjson, "default");
    if (json_is_null(def) && (f->kind == K_OPTSTR || f->kind == K_OPTLONG))
        return ENS_OK;
    if (json_is_number(def) && f->kind == K_DOUBLE) {
        double d = json_number_value(def);
        memcpy(p, &d, sizeof d);
        return ENS_OK;
    }
    if (json_is_integer(def) && (f->kind == K_INT || f->kind == K_LONG)) {
        int64_t v = json_integer_value(def);
        int32_t v32 = (int32_t)v;
        memcpy(p, f->kind == K_INT ? (void *)&v32 : (void *)&v, f->size);
        return ENS_OK;
    }
    if (json_is_string(def) && (f->kind == K_STR || f->kind == K_ID))
        return f->kind == K_STR
                   ? put_dup(x, f, p, json_string_value(def), json_string_length(def))
                   : put_fixed(x, f, p, f->size, json_string_value(def), json_string_length(def));
    if (json_is_array(def) && json_array_size(def) == 0 && f->kind >= K_INTS && f->kind <= K_RECS)
        return ENS_OK;
    return fail(x, ENS_ERR_UNSUPPORTED, f, "missing in the writer schema; default not supported");
}

static ens_err_t dec_rec(ctx_t *x, const rec_t *r, void *base, avro_value_t *val,
                         const json_t *defaults) {
    for (int i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        char *p = (char *)base + f->off;
        const json_t *fjson = defaults ? field_json(defaults, f->name) : NULL;
        avro_value_t child;
        ens_err_t err;
        if (avro_value_get_by_name(val, f->name, &child, NULL) != 0) {
            if (!defaults)
                return fail(x, ENS_ERR_AVRO, f, "missing");
            err = dec_default(x, f, p, fjson);
        } else {
            err = dec_field(x, f, p, base, &child, fjson);
        }
        if (err)
            return err;
    }
    return ENS_OK;
}

static void free_rec(const rec_t *r, void *base) {
    for (int i = 0; i < r->n; i++) {
        const field_t *f = &r->f[i];
        char *p = (char *)base + f->off, *ptr;
        if (f->kind != K_STR && f->kind != K_OPTSTR && f->kind < K_FLOATS)
            continue; /* stored in the struct itself */
        memcpy(&ptr, p, sizeof ptr);
        if (f->kind == K_RECS && ptr)
            for (int32_t j = 0; j < get_count(f, base); j++)
                free_rec(f->sub, ptr + (size_t)j * f->sub->size);
        free(ptr);
    }
}

/* --- public API ----------------------------------------------------------------------------- */

void ens_event_init(ens_event_t *ev, ens_event_type_t type) {
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    ens_uuid(ev->event_id);
    ev->occurred_at = ens_now_ms();
}

void ens_event_free(ens_event_t *ev) {
    if (!ev)
        return;
    if ((unsigned)ev->type < ENS_EV__COUNT)
        free_rec(&ens_events_types[ev->type].rec, &ev->u);
    memset(ev, 0, sizeof *ev);
}

ens_err_t ens_event_encode_with(const ens_event_t *ev, ens_codec_t codec, uint8_t **buf,
                                size_t *len, char *errstr, size_t errstr_size) {
    if (!ev || !buf || !len || (unsigned)ev->type >= ENS_EV__COUNT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "bad argument");
    *buf = NULL;
    *len = 0;
    ens_err_t err = ens_events_init(errstr, errstr_size);
    if (err)
        return err;
    const known_t *k = ens_events_current(ev->type);
    if (codec != ENS_CODEC_GENERIC && ev->type == ENS_EV_INFERENCE_REQUEST &&
        ens_events_encode_request_direct(ev, k->fp, buf, len))
        return ENS_OK;
    if (codec == ENS_CODEC_DIRECT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                           "encode %s: not for the direct writer", ens_events_types[ev->type].name);
    char what[64];
    snprintf(what, sizeof what, "encode %s", ens_events_types[ev->type].name);
    ctx_t x = {errstr, errstr_size, what};
    avro_value_t val;
    if (avro_generic_value_new(k->iface, &val))
        return fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
    size_t n = 0;
    uint8_t *out = NULL;
    if (!(err = enc_rec(&x, &ens_events_common_rec, ev, &val)) &&
        !(err = enc_rec(&x, &ens_events_types[ev->type].rec, &ev->u, &val))) {
        if (avro_value_sizeof(&val, &n))
            err = fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
        else if (!(out = malloc(HDR_LEN + n)))
            err = fail(&x, ENS_ERR_NOMEM, NULL, "out of memory");
    }
    if (!err) {
        ens_events_put_header(out, k->fp);
        avro_writer_t w = avro_writer_memory((const char *)out + HDR_LEN, (int64_t)n);
        if (!w || avro_value_write(w, &val))
            err = fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
        if (w)
            avro_writer_free(w);
    }
    avro_value_decref(&val);
    if (err) {
        free(out);
        return err;
    }
    *buf = out;
    *len = HDR_LEN + n;
    return ENS_OK;
}

ens_err_t ens_event_encode(const ens_event_t *ev, uint8_t **buf, size_t *len, char *errstr,
                           size_t errstr_size) {
    return ens_event_encode_with(ev, ENS_CODEC_AUTO, buf, len, errstr, errstr_size);
}

/* Read body (written with k->writer) into val, a value of k->reader. */
static int read_body(const known_t *k, const uint8_t *body, size_t n, avro_value_t *val) {
    avro_reader_t r = avro_reader_memory((const char *)body, (int64_t)n);
    if (!r)
        return ENOMEM;
    int rc;
    if (k->current) {
        rc = avro_value_read(r, val);
    } else {
        avro_value_iface_t *res = avro_resolved_writer_new(k->writer, k->reader);
        avro_value_t rv;
        rc = res ? avro_resolved_writer_new_value(res, &rv) : EINVAL;
        if (!rc) {
            avro_resolved_writer_set_dest(&rv, val);
            rc = avro_value_read(r, &rv);
            avro_value_decref(&rv);
        }
        if (res)
            avro_value_iface_decref(res);
    }
    avro_reader_free(r);
    return rc;
}

ens_err_t ens_event_decode_with(const uint8_t *buf, size_t len, ens_codec_t codec, ens_event_t *ev,
                                char *errstr, size_t errstr_size) {
    if (!ev || (!buf && len))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "bad argument");
    memset(ev, 0, sizeof *ev);
    ens_err_t err = ens_events_init(errstr, errstr_size);
    if (err)
        return err;
    if (len < HDR_LEN)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "message too short (%zu bytes)",
                           len);
    if (buf[0] != 0xC3 || buf[1] != 0x01)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "bad marker");
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)buf[2 + i] << (8 * i);
    const known_t *k = ens_events_by_fingerprint(fp);
    if (!k)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "unknown fingerprint 0x%016llx",
                           (unsigned long long)fp);
    if (codec != ENS_CODEC_GENERIC && k->current && k->type == ENS_EV_INFERENCE_REQUEST) {
        if (ens_events_decode_request_direct(buf + HDR_LEN, len - HDR_LEN, ev))
            return ENS_OK;
        ens_event_free(ev); /* what the direct reader took before it gave up */
    }
    if (codec == ENS_CODEC_DIRECT)
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                           "decode %s: not for the direct reader", ens_events_types[k->type].name);
    const char *name = ens_events_types[k->type].name;
    cursor_t c = {buf + HDR_LEN, buf + len, NULL};
    if (ens_events_skip_value(&c, k->writer, 0) || c.p != c.end)
        return ens_err_set(errstr, errstr_size, ENS_ERR_AVRO, "body does not decode as %s: %s",
                           name, c.why ? c.why : "trailing bytes after the body");
    char what[96];
    snprintf(what, sizeof what, "body does not decode as %s", name);
    ctx_t x = {errstr, errstr_size, what};
    avro_value_t val;
    if (avro_generic_value_new(k->iface, &val))
        return fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
    if (read_body(k, buf + HDR_LEN, len - HDR_LEN, &val)) {
        err = fail(&x, ENS_ERR_AVRO, NULL, "%s", avro_strerror());
    } else {
        ev->type = k->type;
        if (!(err = dec_rec(&x, &ens_events_common_rec, ev, &val, NULL)))
            err = dec_rec(&x, &ens_events_types[k->type].rec, &ev->u, &val,
                          k->current ? NULL : ens_events_current_fields(k->type));
    }
    avro_value_decref(&val);
    if (err)
        ens_event_free(ev);
    return err;
}

ens_err_t ens_event_decode(const uint8_t *buf, size_t len, ens_event_t *ev, char *errstr,
                           size_t errstr_size) {
    return ens_event_decode_with(buf, len, ENS_CODEC_AUTO, ev, errstr, errstr_size);
}

void ens_uuid(char out[37]) {
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            break;
    }
    if (got < sizeof b) { /* no getrandom(): fall back to /dev/urandom */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        ENS_ASSERT(fd >= 0 && read(fd, b, sizeof b) == (ssize_t)sizeof b);
        close(fd);
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

int64_t ens_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

