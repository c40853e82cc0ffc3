/* model_io.c - the self-describing model file: "ENSM", version, sections, CRC-32. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/*
 * Model file, format version 2 (the first format of the layer engine; version 1 was the
 * MLP-only format and is refused as unsupported). All little-endian:
 *   "ENSM"  u32 version  u32 n_sections
 *   n_sections x { u32 tag (4 ASCII bytes)  u64 length  payload[length] }
 *   u32 CRC-32 (zlib) of every byte before it
 * Sections, each at most once, in any order:
 *   ARCH  u32 in_c, in_h, in_w, n_classes, n_nodes; n_nodes x 36 bytes:
 *         i32 kind, in0, in1, units, k, stride, pad, relu; f32 alpha  (see nn_internal.h)
 *   NORM  f32 mean, f32 std                       input normalisation (x - mean) / std
 *   META  f64 epochs_done  u64 optimiser steps  u32 optimiser state (0 none, 1 momentum,
 *         2 Adam)  u64 rng[4] (dropout stream)
 *   PARM  f32 params[n_params]        BUFS  f32 buffers[n_bufs] (BN running mean, var)
 *   OPTM  f32 [n_params] momentum / Adam m (state >= 1)   OPTV  f32 [n_params] Adam v (state 2)
 *   CLAS  optional: n_classes x { u32 length  bytes }  class names
 * ARCH, NORM, META, PARM and BUFS are required. The loader bounds every count by the bytes
 * present before it allocates, so a file cannot ask for more memory than its own size
 * (plus the model's batch buffers, whose per-sample size is bounded by NN_MAX_SAMPLE).
 */
#define MODEL_MAGIC "ENSM"
#define MODEL_VERSION 2u
#define NODE_BYTES 36u
#define MAX_SECTIONS 16u

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
    p = put_u32(p, (uint32_t)v);
    return put_u32(p, (uint32_t)(v >> 32));
}

static uint8_t *put_f32(uint8_t *p, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    return put_u32(p, v);
}

static uint8_t *put_floats(uint8_t *p, const float *a, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        p = put_f32(p, a[i]);
    return p;
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static float get_f32(const uint8_t *p) {
    uint32_t v = get_u32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

static void get_floats(float *a, const uint8_t *p, int64_t n) {
    for (int64_t i = 0; i < n; i++, p += 4)
        a[i] = get_f32(p);
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

static uint32_t tag_of(const char *t) { return get_u32((const uint8_t *)t); }

static uint8_t *section(uint8_t *p, const char *tag, uint64_t len) {
    memcpy(p, tag, 4);
    return put_u64(p + 4, len);
}

ens_err_t ens_model_save(const ens_model_t *m, uint8_t **buf, size_t *len) {
    if (!m || !buf || !len)
        return ENS_ERR_INVALID;
    uint64_t arch = 20 + (uint64_t)NODE_BYTES * m->n_nodes, norm = 8, meta = 8 + 8 + 4 + 32;
    uint64_t parm = 4 * (uint64_t)m->n_params, bufs = 4 * (uint64_t)m->n_bufs;
    uint64_t optm = m->opt_state >= NN_OPTSTATE_MOMENTUM ? parm : 0;
    uint64_t optv = m->opt_state == NN_OPTSTATE_ADAM ? parm : 0, clas = 0;
    uint32_t n_sections = 5 + (optm > 0) + (optv > 0) + (m->class_names != NULL);
    if (m->class_names)
        for (int32_t k = 0; k < m->n_classes; k++)
            clas += 4 + strlen(m->class_names[k]);
    size_t total = 12 + 12 * (size_t)n_sections + arch + norm + meta + parm + bufs + optm +
                   optv + clas + 4;
    uint8_t *out = malloc(total), *p = out;
    if (!out)
        return ENS_ERR_NOMEM;
    memcpy(p, MODEL_MAGIC, 4);
    p = put_u32(p + 4, MODEL_VERSION);
    p = put_u32(p, n_sections);
    p = section(p, "ARCH", arch);
    p = put_u32(p, (uint32_t)m->in.c);
    p = put_u32(p, (uint32_t)m->in.h);
    p = put_u32(p, (uint32_t)m->in.w);
    p = put_u32(p, (uint32_t)m->n_classes);
    p = put_u32(p, (uint32_t)m->n_nodes);
    for (int32_t i = 0; i < m->n_nodes; i++) {
        const nn_spec_t *s = &m->nodes[i].s;
        int32_t v[8] = {s->kind, s->in[0], s->in[1], s->units, s->k, s->stride, s->pad, s->relu};
        for (int j = 0; j < 8; j++)
            p = put_u32(p, (uint32_t)v[j]);
        p = put_f32(p, s->alpha);
    }
    p = section(p, "NORM", norm);
    p = put_f32(p, m->mean);
    p = put_f32(p, m->std);
    p = section(p, "META", meta);
    uint64_t ep;
    memcpy(&ep, &m->epochs_done, 8);
    p = put_u64(p, ep);
    p = put_u64(p, m->opt_step);
    p = put_u32(p, (uint32_t)m->opt_state);
    for (int j = 0; j < 4; j++)
        p = put_u64(p, m->rng.s[j]);
    p = put_floats(section(p, "PARM", parm), m->params, m->n_params);
    p = put_floats(section(p, "BUFS", bufs), m->bufs, m->n_bufs);
    if (optm)
        p = put_floats(section(p, "OPTM", optm), m->opt_m, m->n_params);
    if (optv)
        p = put_floats(section(p, "OPTV", optv), m->opt_v, m->n_params);
    if (m->class_names) {
        p = section(p, "CLAS", clas);
        for (int32_t k = 0; k < m->n_classes; k++) {
            size_t l = strlen(m->class_names[k]);
            p = put_u32(p, (uint32_t)l);
            memcpy(p, m->class_names[k], l);
            p += l;
        }
    }
    p = put_u32(p, crc_of(out, (size_t)(p - out)));
    ENS_ASSERT((size_t)(p - out) == total);
    *buf = out;
    *len = total;
    return ENS_OK;
}

#define CORRUPT(...) ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT, "model file: " __VA_ARGS__)

enum { S_ARCH, S_NORM, S_META, S_PARM, S_BUFS, S_OPTM, S_OPTV, S_CLAS, S_COUNT };
static const char *const TAGS[S_COUNT] = {"ARCH", "NORM", "META", "PARM",
                                          "BUFS", "OPTM", "OPTV", "CLAS"};

static ens_err_t load_names(ens_model_t *m, const uint8_t *p, uint64_t len, char *errstr,
                            size_t errstr_size) {
    char **names = calloc((size_t)m->n_classes, sizeof *names);
    if (!names)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "model file: out of memory");
    uint64_t off = 0;
    for (int32_t k = 0; k < m->n_classes; k++) {
        uint32_t l = off + 4 <= len ? get_u32(p + off) : UINT32_MAX;
        if (l > 255 || off + 4 + l > len || memchr(p + off + 4, 0, l)) {
            for (int32_t j = 0; j < k; j++)
                free(names[j]);
            free(names);
            return CORRUPT("bad class name %d", k);
        }
        names[k] = malloc((size_t)l + 1);
        if (!names[k]) {
            for (int32_t j = 0; j < k; j++)
                free(names[j]);
            free(names);
            return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "model file: out of memory");
        }
        memcpy(names[k], p + off + 4, l);
        names[k][l] = '\0';
        off += 4 + (uint64_t)l;
    }
    if (off != len) {
        for (int32_t j = 0; j < m->n_classes; j++)
            free(names[j]);
        free(names);
        return CORRUPT("class names section has %llu bytes left over",
                       (unsigned long long)(len - off));
    }
    m->class_names = names;
    return ENS_OK;
}

ens_err_t ens_model_load(const uint8_t *buf, size_t len, ens_model_t **out, char *errstr,
                         size_t errstr_size) {
    if (!out || (!buf && len > 0))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "model load: NULL argument");
    *out = NULL;
    if (len == 0)
        return CORRUPT("empty");
    if (memcmp(buf, MODEL_MAGIC, len < 4 ? len : 4) != 0)
        return CORRUPT("not an ensflow model (bad magic)");
    if (len < 12 + 4)
        return CORRUPT("truncated: %zu bytes", len);
    if (crc_of(buf, len - 4) != get_u32(buf + len - 4))
        return CORRUPT("checksum mismatch (truncated or damaged, %zu bytes)", len);
    uint32_t version = get_u32(buf + 4), n_sections = get_u32(buf + 8);
    if (version != MODEL_VERSION)
        return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                           "model file: format version %u, this build reads %u", version,
                           MODEL_VERSION);
    if (n_sections > MAX_SECTIONS)
        return CORRUPT("%u sections, at most %u", n_sections, MAX_SECTIONS);
    const uint8_t *sec[S_COUNT] = {0};
    uint64_t slen[S_COUNT] = {0};
    size_t off = 12, end = len - 4;
    for (uint32_t i = 0; i < n_sections; i++) {
        if (end - off < 12)
            return CORRUPT("section %u header runs past the end", i);
        uint32_t tag = get_u32(buf + off);
        uint64_t l = get_u64(buf + off + 4);
        off += 12;
        if (l > end - off)
            return CORRUPT("section %u (%.4s) of %llu bytes runs past the end", i,
                           (const char *)(buf + off - 12), (unsigned long long)l);
        int k = 0;
        while (k < S_COUNT && tag != tag_of(TAGS[k]))
            k++;
        if (k == S_COUNT)
            return CORRUPT("unknown section %u", i);
        if (sec[k])
            return CORRUPT("section %s twice", TAGS[k]);
        sec[k] = buf + off;
        slen[k] = l;
        off += (size_t)l;
    }
    if (off != end)
        return CORRUPT("%zu bytes after the last section", end - off);
    for (int k = S_ARCH; k <= S_BUFS; k++)
        if (!sec[k])
            return CORRUPT("no %s section", TAGS[k]);
    if (slen[S_NORM] != 8 || slen[S_META] != 52)
        return CORRUPT("NORM or META section of the wrong size");
    const uint8_t *a = sec[S_ARCH];
    if (slen[S_ARCH] < 20)
        return CORRUPT("ARCH section too short");
    uint32_t in_c = get_u32(a), in_h = get_u32(a + 4), in_w = get_u32(a + 8);
    uint32_t n_classes = get_u32(a + 12), n_nodes = get_u32(a + 16);
    if (n_nodes < 1 || n_nodes > NN_MAX_NODES || slen[S_ARCH] != 20 + (uint64_t)NODE_BYTES * n_nodes)
        return CORRUPT("%u nodes in an ARCH section of %llu bytes", n_nodes,
                       (unsigned long long)slen[S_ARCH]);
    if (in_c > NN_MAX_DIM || in_h > NN_MAX_DIM || in_w > NN_MAX_DIM || n_classes > NN_MAX_DIM)
        return CORRUPT("input %ux%ux%u or %u classes out of range", in_c, in_h, in_w, n_classes);
    float mean = get_f32(sec[S_NORM]), std = get_f32(sec[S_NORM] + 4);
    if (!isfinite(mean) || !isfinite(std) || !(std > 0.0f))
        return CORRUPT("bad normalisation mean %g std %g", mean, std);
    const uint8_t *me = sec[S_META];
    double epochs;
    uint64_t ep = get_u64(me);
    memcpy(&epochs, &ep, 8);
    uint32_t opt_state = get_u32(me + 16);
    if (!isfinite(epochs) || epochs < 0.0)
        return CORRUPT("bad epochs_done %g", epochs);
    if (opt_state > NN_OPTSTATE_ADAM || (opt_state >= NN_OPTSTATE_MOMENTUM) != (sec[S_OPTM] != NULL) ||
        (opt_state == NN_OPTSTATE_ADAM) != (sec[S_OPTV] != NULL))
        return CORRUPT("optimiser state %u does not match its sections", opt_state);

    ens_model_t *m;
    ens_err_t err = nn_model_begin((nn_shape_t){(int32_t)in_c, (int32_t)in_h, (int32_t)in_w},
                                   (int32_t)n_classes, &m);
    if (err == ENS_ERR_NOMEM)
        return ens_err_set(errstr, errstr_size, err, "model file: out of memory");
    if (err)
        return CORRUPT("input %ux%ux%u or %u classes out of range", in_c, in_h, in_w, n_classes);
    char why[200];
    for (uint32_t i = 0; i < n_nodes; i++) {
        const uint8_t *q = a + 20 + (size_t)NODE_BYTES * i;
        nn_spec_t s;
        s.kind = (int32_t)get_u32(q);
        s.in[0] = (int32_t)get_u32(q + 4);
        s.in[1] = (int32_t)get_u32(q + 8);
        s.units = (int32_t)get_u32(q + 12);
        s.k = (int32_t)get_u32(q + 16);
        s.stride = (int32_t)get_u32(q + 20);
        s.pad = (int32_t)get_u32(q + 24);
        s.relu = (int32_t)get_u32(q + 28);
        s.alpha = get_f32(q + 32);
        if (!isfinite(s.alpha) || nn_graph_add(m, &s, why, sizeof why) < 0) {
            ens_model_free(m);
            return CORRUPT("bad architecture: %s", isfinite(s.alpha) ? why : "alpha not finite");
        }
    }
    uint64_t np4 = 4 * (uint64_t)m->n_params;
    if (slen[S_PARM] != np4 || slen[S_BUFS] != 4 * (uint64_t)m->n_bufs ||
        (sec[S_OPTM] && slen[S_OPTM] != np4) || (sec[S_OPTV] && slen[S_OPTV] != np4)) {
        long long np = (long long)m->n_params;
        ens_model_free(m);
        return CORRUPT("weight sections do not match the architecture (%lld parameters)", np);
    }
    if ((err = nn_model_finish(m, 0, 0, why, sizeof why))) {
        ens_model_free(m);
        return err == ENS_ERR_NOMEM
                   ? ens_err_set(errstr, errstr_size, err, "model file: out of memory")
                   : CORRUPT("bad architecture: %s", why);
    }
    get_floats(m->params, sec[S_PARM], m->n_params);
    get_floats(m->bufs, sec[S_BUFS], m->n_bufs);
    if (opt_state >= NN_OPTSTATE_MOMENTUM) {
        m->opt_m = malloc((size_t)(m->n_params > 0 ? m->n_params : 1) * sizeof(float));
        m->opt_v = opt_state == NN_OPTSTATE_ADAM
                       ? malloc((size_t)(m->n_params > 0 ? m->n_params : 1) * sizeof(float))
                       : NULL;
        if (!m->opt_m || (opt_state == NN_OPTSTATE_ADAM && !m->opt_v)) {
            ens_model_free(m);
            return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "model file: out of memory");
        }
        get_floats(m->opt_m, sec[S_OPTM], m->n_params);
        if (m->opt_v)
            get_floats(m->opt_v, sec[S_OPTV], m->n_params);
    }
    m->opt_state = (int32_t)opt_state;
    m->opt_step = get_u64(me + 8);
    for (int j = 0; j < 4; j++)
        m->rng.s[j] = get_u64(me + 20 + 8 * j);
    m->mean = mean;
    m->std = std;
    m->epochs_done = epochs;
    if (sec[S_CLAS] && (err = load_names(m, sec[S_CLAS], slen[S_CLAS], errstr, errstr_size))) {
        ens_model_free(m);
        return err;
    }
    *out = m;
    return ENS_OK;
}
