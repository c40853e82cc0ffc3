/* arch_json.c - ens_model_new_from_json: conv blocks (batch norm, residual, pool, dropout)
 * and a dense head from a small JSON description (documented in nn.h). */
#include "nn_internal.h"

#include <jansson.h>
#include <string.h>

#define MAX_BLOCKS 32
#define MAX_DENSE 8

typedef struct {
    int32_t filters, kernel, stride, pad, bn, residual, pool, pool_size;
    double dropout;
} block_t;

typedef struct {
    ens_model_t *m;
    int32_t act; /* NN_RELU, NN_LEAKY_RELU, NN_GELU */
    float alpha;
    char *errstr;
    size_t errstr_size;
    ens_err_t err;
} builder_t;

static int add(builder_t *b, nn_spec_t s) {
    if (b->err)
        return -1;
    int32_t i = nn_graph_add(b->m, &s, b->errstr, b->errstr_size);
    if (i < 0)
        b->err = ENS_ERR_INVALID;
    return i;
}

/* conv [+ BN] with the activation fused when it is ReLU and nothing comes between */
static int conv_bn(builder_t *b, int32_t in, int32_t f, int32_t k, int32_t st, int32_t pad,
                   int bn, int act) {
    int fuse = act && !bn && b->act == NN_RELU;
    int32_t x = add(b, (nn_spec_t){.kind = NN_CONV2D, .in = {in, -1}, .units = f, .k = k,
                                   .stride = st, .pad = pad, .relu = fuse});
    if (bn)
        x = add(b, (nn_spec_t){.kind = NN_BATCHNORM, .in = {x, -1}});
    if (act && !fuse)
        x = add(b, (nn_spec_t){.kind = b->act, .in = {x, -1}, .alpha = b->alpha});
    return x;
}

static int get_int(builder_t *b, json_t *obj, const char *key, int32_t lo, int32_t hi,
                   int32_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        b->err = ens_err_set(b->errstr, b->errstr_size, ENS_ERR_INVALID,
                             "arch: \"%s\" must be an integer in [%d, %d]", key, lo, hi);
        return -1;
    }
    *out = (int32_t)json_integer_value(v);
    return 0;
}

static int get_num(builder_t *b, json_t *obj, const char *key, double lo, double hi,
                   double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) >= hi) {
        b->err = ens_err_set(b->errstr, b->errstr_size, ENS_ERR_INVALID,
                             "arch: \"%s\" must be a number in [%g, %g)", key, lo, hi);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int get_bool(builder_t *b, json_t *obj, const char *key, int32_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v)) {
        b->err = ens_err_set(b->errstr, b->errstr_size, ENS_ERR_INVALID,
                             "arch: \"%s\" must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

static int get_pool(builder_t *b, json_t *obj, int32_t *out) {
    json_t *v = json_object_get(obj, "pool");
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "max"))
        *out = NN_MAXPOOL;
    else if (s && !strcmp(s, "avg"))
        *out = NN_AVGPOOL;
    else if (s && !strcmp(s, "none"))
        *out = 0;
    else {
        b->err = ens_err_set(b->errstr, b->errstr_size, ENS_ERR_INVALID,
                             "arch: \"pool\" must be \"max\", \"avg\" or \"none\"");
        return -1;
    }
    return 0;
}

/* block fields: defaults from d, then the object's own */
static int read_block(builder_t *b, json_t *obj, const block_t *d, block_t *out, int root) {
    int32_t pad = -1;
    *out = *d;
    if (get_int(b, obj, "filters", 1, 4096, &out->filters) ||
        get_int(b, obj, "kernel", 1, NN_MAX_KERNEL, &out->kernel) ||
        get_int(b, obj, "stride", 1, NN_MAX_KERNEL, &out->stride) ||
        get_int(b, obj, "pad", 0, NN_MAX_KERNEL, &pad) ||
        get_bool(b, obj, "batch_norm", &out->bn) || get_bool(b, obj, "residual", &out->residual) ||
        get_pool(b, obj, &out->pool) || get_int(b, obj, "pool_size", 1, NN_MAX_KERNEL, &out->pool_size) ||
        get_num(b, obj, "dropout", 0.0, 1.0, &out->dropout))
        return -1;
    if (pad < 0 && !root)
        pad = d->pad >= 0 ? d->pad : out->kernel / 2;
    out->pad = pad; /* at the root, -1 = each block's kernel / 2 */
    return 0;
}

static const char *const KNOWN[] = {"blocks", "n_blocks", "width", "width_mult", "filters",
                                    "kernel", "stride", "pad", "batch_norm", "residual",
                                    "pool", "pool_size", "dropout", "act", "leaky_alpha",
                                    "head", "dense", "dense_dropout", NULL};
static const char *const KNOWN_BLOCK[] = {"filters", "kernel", "stride", "pad", "batch_norm",
                                          "residual", "pool", "pool_size", "dropout", NULL};

static int unknown_key(builder_t *b, json_t *obj, const char *const *known, const char *where) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= !strcmp(key, known[i]);
        if (!ok) {
            b->err = ens_err_set(b->errstr, b->errstr_size, ENS_ERR_INVALID,
                                 "arch: unknown key \"%s\" in %s", key, where);
            return -1;
        }
    }
    return 0;
}

static int build_block(builder_t *b, int32_t x, const block_t *k) {
    int32_t in = x;
    x = conv_bn(b, x, k->filters, k->kernel, k->stride, k->pad, k->bn, !k->residual);
    if (k->residual) {
        if (b->err)
            return -1;
        /* first conv gets its activation after BN */
        if (!k->bn && b->act == NN_RELU) {
            b->m->nodes[x].s.relu = 1;
        } else {
            x = add(b, (nn_spec_t){.kind = b->act, .in = {x, -1}, .alpha = b->alpha});
        }
        x = conv_bn(b, x, k->filters, k->kernel, 1, k->pad, k->bn, 0);
        if (b->err)
            return -1;
        nn_shape_t si = in < 0 ? b->m->in : b->m->nodes[in].out, so = b->m->nodes[x].out;
        int32_t skip = in;
        if (si.c != so.c || si.h != so.h || si.w != so.w)
            skip = conv_bn(b, in, k->filters, 1, k->stride, 0, k->bn, 0);
        x = add(b, (nn_spec_t){.kind = NN_ADD, .in = {x, skip}});
        x = add(b, (nn_spec_t){.kind = b->act, .in = {x, -1}, .alpha = b->alpha});
    }
    if (k->pool)
        x = add(b, (nn_spec_t){.kind = k->pool, .in = {x, -1}, .k = k->pool_size,
                               .stride = k->pool_size});
    if (k->dropout > 0.0)
        x = add(b, (nn_spec_t){.kind = NN_DROPOUT, .in = {x, -1}, .alpha = (float)k->dropout});
    return b->err ? -1 : x;
}

ens_err_t ens_model_new_from_json(const char *arch_json, int32_t in_c, int32_t in_h,
                                  int32_t in_w, int32_t n_classes, uint64_t seed,
                                  ens_model_t **out, char *errstr, size_t errstr_size) {
    if (!out || !arch_json)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "arch: NULL argument");
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(arch_json, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "arch: not a JSON object%s%s",
                           root ? "" : ": ", root ? "" : jerr.text);
    }
    builder_t b = {NULL, NN_RELU, 0.01f, errstr, errstr_size, ENS_OK};
    ens_err_t err = nn_model_begin((nn_shape_t){in_c, in_h, in_w}, n_classes, &b.m);
    if (err) {
        json_decref(root);
        return ens_err_set(errstr, errstr_size, err, "arch: bad input shape %dx%dx%d or %d classes",
                           in_c, in_h, in_w, n_classes);
    }
    block_t d = {32, 3, 1, -1, 0, 0, NN_MAXPOOL, 2, 0.0};
    int32_t n_blocks = 2, width = 32, mult = 2, gap = 0, x = -1;
    double alpha = 0.01, dense_dropout = 0.0;
    json_t *act = json_object_get(root, "act"), *head = json_object_get(root, "head");
    json_t *blocks = json_object_get(root, "blocks"), *dense = json_object_get(root, "dense");
    if (unknown_key(&b, root, KNOWN, "the architecture") ||
        get_int(&b, root, "n_blocks", 0, MAX_BLOCKS, &n_blocks) ||
        get_int(&b, root, "width", 1, 4096, &width) ||
        get_int(&b, root, "width_mult", 1, 4, &mult) || read_block(&b, root, &d, &d, 1) ||
        get_num(&b, root, "leaky_alpha", 0.0, 1.0, &alpha) ||
        get_num(&b, root, "dense_dropout", 0.0, 1.0, &dense_dropout))
        goto fail;
    b.alpha = (float)alpha;
    if (act) {
        const char *s = json_string_value(act);
        if (s && !strcmp(s, "relu"))
            b.act = NN_RELU;
        else if (s && !strcmp(s, "leaky_relu"))
            b.act = NN_LEAKY_RELU;
        else if (s && !strcmp(s, "gelu"))
            b.act = NN_GELU;
        else {
            b.err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                "arch: \"act\" must be \"relu\", \"leaky_relu\" or \"gelu\"");
            goto fail;
        }
    }
    if (head) {
        const char *s = json_string_value(head);
        if (s && (!strcmp(s, "gap") || !strcmp(s, "flatten")))
            gap = !strcmp(s, "gap");
        else {
            b.err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                "arch: \"head\" must be \"flatten\" or \"gap\"");
            goto fail;
        }
    }
    if (blocks) {
        if (!json_is_array(blocks) || json_array_size(blocks) > MAX_BLOCKS) {
            b.err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                "arch: \"blocks\" must be an array of at most %d objects",
                                MAX_BLOCKS);
            goto fail;
        }
        for (size_t i = 0; i < json_array_size(blocks); i++) {
            json_t *o = json_array_get(blocks, i);
            block_t k;
            if (!json_is_object(o)) {
                b.err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                    "arch: blocks[%zu] is not an object", i);
                goto fail;
            }
            if (unknown_key(&b, o, KNOWN_BLOCK, "a block") || read_block(&b, o, &d, &k, 0) ||
                (x = build_block(&b, x, &k)) < 0)
                goto fail;
        }
    } else {
        int64_t w = width;
        for (int32_t i = 0; i < n_blocks; i++, w *= mult) {
            block_t k = d;
            k.filters = (int32_t)(w < 4096 ? w : 4096);
            if (k.pad < 0)
                k.pad = k.kernel / 2;
            if ((x = build_block(&b, x, &k)) < 0)
                goto fail;
        }
    }
    if (gap && x >= 0)
        x = add(&b, (nn_spec_t){.kind = NN_GAP, .in = {x, -1}});
    if (dense && (!json_is_array(dense) || json_array_size(dense) > MAX_DENSE)) {
        b.err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                            "arch: \"dense\" must be an array of at most %d unit counts", MAX_DENSE);
        goto fail;
    }
    size_t nd = dense ? json_array_size(dense) : 1;
    for (size_t i = 0; i <= nd && !b.err; i++) {
        int32_t units = n_classes;
        if (i < nd) {
            json_t *u = dense ? json_array_get(dense, i) : NULL;
            units = 128;
            if (u && (!json_is_integer(u) || json_integer_value(u) < 1 ||
                      json_integer_value(u) > NN_MAX_DIM)) {
                b.err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                    "arch: dense[%zu] must be an integer in [1, %d]", i, NN_MAX_DIM);
                goto fail;
            }
            if (u)
                units = (int32_t)json_integer_value(u);
        }
        int last = i == nd, fuse = !last && b.act == NN_RELU;
        if (i > 0 && dense_dropout > 0.0)
            x = add(&b, (nn_spec_t){.kind = NN_DROPOUT, .in = {x, -1}, .alpha = (float)dense_dropout});
        x = add(&b, (nn_spec_t){.kind = NN_DENSE, .in = {x, -1}, .units = units, .relu = fuse});
        if (!last && !fuse)
            x = add(&b, (nn_spec_t){.kind = b.act, .in = {x, -1}, .alpha = b.alpha});
    }
    if (b.err)
        goto fail;
    json_decref(root);
    if ((err = nn_model_finish(b.m, seed, 1, errstr, errstr_size))) {
        ens_model_free(b.m);
        return err;
    }
    *out = b.m;
    return ENS_OK;
fail:
    json_decref(root);
    ens_model_free(b.m);
    return b.err ? b.err : ENS_ERR_INVALID;
}
