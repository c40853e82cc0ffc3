/* mlp_io.c - the self-describing model file: "ENSM", version, architecture, weights, CRC-32. */
#include "mlp_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/*
 * Layout, all little-endian:
 *   "ENSM"  u32 version (1)  u32 header_len (bytes from here to the weights)
 *   header: u32 activation (1 = ReLU)  u32 n_sizes  u32 sizes[n_sizes]  f32 mean  f32 std
 *           f64 epochs_done  u32 n_classes (= sizes[n_sizes - 1])
 *   f32 params[n_params]  f32 momentum[n_params]
 *   u32 CRC-32 (zlib) of every byte before it
 */
#define MODEL_MAGIC "ENSM"
#define MODEL_VERSION 1u
#define ACT_RELU 1u
#define PREFIX_LEN 12u /* magic, version, header_len */
#define HEADER_LEN(n_sizes) (4u + 4u + 4u * (n_sizes) + 4u + 4u + 8u + 4u)

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_f32(uint8_t *p, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    return put_u32(p, v);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float get_f32(const uint8_t *p) {
    uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static double get_f64(const uint8_t *p) {
    uint64_t v = (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static uint32_t crc_of(const uint8_t *buf, size_t len) {
    uLong crc = crc32(0L, Z_NULL, 0);
    while (len > 0) { /* zlib takes uInt lengths */
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, buf, chunk);
        buf += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}

ens_err_t ens_model_save(const ens_model_t *m, uint8_t **buf, size_t *len) {
    if (!m || !buf || !len)
        return ENS_ERR_INVALID;
    uint32_t n_sizes = (uint32_t)m->n_layers + 1;
    size_t total = PREFIX_LEN + HEADER_LEN(n_sizes) + 2 * 4 * (size_t)m->n_params + 4;
    uint8_t *out = malloc(total), *p = out;
    if (!out)
        return ENS_ERR_NOMEM;
    memcpy(p, MODEL_MAGIC, 4);
    p = put_u32(p + 4, MODEL_VERSION);
    p = put_u32(p, HEADER_LEN(n_sizes));
    p = put_u32(p, ACT_RELU);
    p = put_u32(p, n_sizes);
    for (uint32_t i = 0; i < n_sizes; i++)
        p = put_u32(p, (uint32_t)m->sizes[i]);
    p = put_f32(p, m->mean);
    p = put_f32(p, m->std);
    uint64_t ep;
    memcpy(&ep, &m->epochs_done, 8);
    p = put_u64(p, ep);
    p = put_u32(p, (uint32_t)m->sizes[m->n_layers]);
    for (int64_t i = 0; i < m->n_params; i++)
        p = put_f32(p, m->params[i]);
    for (int64_t i = 0; i < m->n_params; i++)
        p = put_f32(p, m->velocity[i]);
    p = put_u32(p, crc_of(out, (size_t)(p - out)));
    ENS_ASSERT((size_t)(p - out) == total);
    *buf = out;
    *len = total;
    return ENS_OK;
}

#define CORRUPT(...) ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT, "model file: " __VA_ARGS__)

ens_err_t ens_model_load(const uint8_t *buf, size_t len, ens_model_t **out, char *errstr,
                         size_t errstr_size) {
    if (!out || (!buf && len > 0))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "model load: NULL argument");
    *out = NULL;
    if (len == 0)
        return CORRUPT("empty");
    if (memcmp(buf, MODEL_MAGIC, len < 4 ? len : 4) != 0)
        return CORRUPT("not an ensflow model (bad magic)");
    if (len < PREFIX_LEN + HEADER_LEN(2) + 4)
        return CORRUPT("truncated: %zu bytes", len);
    uint32_t crc = get_u32(buf + len - 4);
    if (crc_of(buf, len - 4) != crc)
        return CORRUPT("checksum mismatch (truncated or damaged, %zu bytes)", len);
    uint32_t version = get_u32(buf + 4), hlen = get_u32(buf + 8);
    if (version != MODEL_VERSION)
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                           "model file: format version %u, this build reads %u", version,
                           MODEL_VERSION);
    const uint8_t *h = buf + PREFIX_LEN;
    size_t body = len - PREFIX_LEN - 4; /* header + weights */
    uint32_t act = get_u32(h), n_sizes = get_u32(h + 4);
    if (act != ACT_RELU)
        return CORRUPT("unknown activation %u", act);
    if (n_sizes < 2 || n_sizes > MLP_MAX_DENSE + 1)
        return CORRUPT("%u layer sizes, expected 2..%d", n_sizes, MLP_MAX_DENSE + 1);
    if (hlen != HEADER_LEN(n_sizes) || hlen > body)
        return CORRUPT("header length %u does not fit %u layer sizes in %zu bytes", hlen,
                       n_sizes, body);
    int32_t sizes[MLP_MAX_DENSE + 1];
    int64_t n_params = 0;
    for (uint32_t i = 0; i < n_sizes; i++) {
        uint32_t s = get_u32(h + 8 + 4 * i);
        if (s < 1 || s > MLP_MAX_WIDTH)
            return CORRUPT("layer %u has %u units", i, s);
        sizes[i] = (int32_t)s;
        if (i > 0)
            n_params += (int64_t)sizes[i - 1] * sizes[i] + sizes[i];
        if (n_params > MLP_MAX_PARAMS)
            return CORRUPT("more than %lld parameters", (long long)MLP_MAX_PARAMS);
    }
    const uint8_t *q = h + 8 + 4 * n_sizes;
    float mean = get_f32(q), std = get_f32(q + 4);
    double epochs = get_f64(q + 8);
    uint32_t n_classes = get_u32(q + 16);
    if (!isfinite(mean) || !isfinite(std) || !(std > 0.0f))
        return CORRUPT("bad normalisation mean %g std %g", mean, std);
    if (!isfinite(epochs) || epochs < 0.0)
        return CORRUPT("bad epochs_done %g", epochs);
    if (n_classes != (uint32_t)sizes[n_sizes - 1])
        return CORRUPT("n_classes %u but the last layer has %d units", n_classes,
                       sizes[n_sizes - 1]);
    if (body - hlen != 2 * 4 * (uint64_t)n_params)
        return CORRUPT("%zu bytes of weights, the architecture needs %llu", body - hlen,
                       (unsigned long long)(2 * 4 * (uint64_t)n_params));
    ens_model_t *m;
    ens_err_t err = ens_mlp_alloc(sizes, (int32_t)n_sizes, &m);
    if (err)
        return ens_err_set(errstr, errstr_size, err, "model file: cannot allocate the model");
    m->mean = mean;
    m->std = std;
    m->epochs_done = epochs;
    const uint8_t *w = h + hlen;
    for (int64_t i = 0; i < n_params; i++, w += 4)
        m->params[i] = get_f32(w);
    for (int64_t i = 0; i < n_params; i++, w += 4)
        m->velocity[i] = get_f32(w);
    *out = m;
    return ENS_OK;
}
