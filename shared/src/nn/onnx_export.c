/* onnx_export.c - models and weighted ensembles as ONNX graphs, with a protobuf writer of its own.
 * Long (~730 lines) because it is a table of layers: each layer's nodes are a short function,
 * read one at a time against the ONNX operator spec, and they share the writer below. */
#include "ensflow/onnx.h"

#include "nn_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Two steps. First the graph is built as plain records (nodes, initializers that point at the
 * models' parameters, no copies of weights); then it is written as protobuf in one buffer of
 * the exact size: every message is written twice, once only counting bytes (a nested
 * message's length prefix needs its size) and once for real. The field numbers are onnx.proto's
 * (ONNX 1.x, proto2); repeated scalars are written unpacked, as proto2 declares them.
 */

#define NAME_LEN 64
#define MAX_NODE_IN 5 /* BatchNormalization: X, scale, B, mean, var */
#define MAX_ATTR 4
#define PB_MAX_BYTES ((size_t)INT32_MAX) /* protobuf refuses larger messages */

/* onnx.proto enums */
enum { DT_FLOAT = 1, DT_INT64 = 7 };                /* TensorProto.DataType */
enum { AT_FLOAT = 1, AT_INT = 2, AT_INTS = 7 };     /* AttributeProto.AttributeType */
enum { WT_VARINT = 0, WT_LEN = 2, WT_FIXED32 = 5 }; /* protobuf wire types */

typedef struct {
    const char *name;
    int type;
    float f;
    int64_t i;
    int64_t ints[4];
    int n_ints;
} attr_t;

typedef struct {
    const char *op;
    char name[NAME_LEN];
    char in[MAX_NODE_IN][NAME_LEN];
    int n_in;
    char out[NAME_LEN];
    attr_t attr[MAX_ATTR];
    int n_attr;
} node_t;

typedef struct {
    char name[NAME_LEN];
    int dtype;
    int64_t dims[4];
    int n_dims;
    const void *data; /* n floats or int64s in host order */
    size_t n;
    void *own; /* data, when the tensor owns it */
} init_t;

typedef struct {
    node_t *nodes;
    int n_nodes, cap_nodes;
    init_t *inits;
    int n_inits, cap_inits;
    char doc[256];
    int member;    /* the member being exported, -1 for a single model (messages) */
    ens_err_t err; /* first failure; later additions are no-ops */
    char *errstr;
    size_t errstr_size;
} graph_t;

/* A value of the graph: its name and whether it is [N, C, H, W] (else [N, C*H*W]). */
typedef struct {
    char name[NAME_LEN];
    int r4;
} val_t;

/* --- building the graph --------------------------------------------------------------------- */

/* A name of the graph (names are short: "m2_n14_conv2d_W"). */
static void gname(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gname(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, NAME_LEN, fmt, ap);
    va_end(ap);
}

static int grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap)
        return 0;
    int c = *cap ? *cap * 2 : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void g_fail_nomem(graph_t *g) {
    if (!g->err)
        g->err = ens_err_set(g->errstr, g->errstr_size, ENS_ERR_NOMEM, "onnx: out of memory");
}

static node_t *g_node(graph_t *g, const char *op, const char *out) {
    if (g->err)
        return NULL;
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes)) {
        g_fail_nomem(g);
        return NULL;
    }
    node_t *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    gname(n->name, "%s", out);
    gname(n->out, "%s", out);
    return n;
}

static void n_in(node_t *n, const char *name) {
    if (n && n->n_in < MAX_NODE_IN)
        gname(n->in[n->n_in++], "%s", name);
}

static void n_attr_i(node_t *n, const char *name, int64_t v) {
    if (n && n->n_attr < MAX_ATTR)
        n->attr[n->n_attr++] = (attr_t){.name = name, .type = AT_INT, .i = v};
}

static void n_attr_f(node_t *n, const char *name, float v) {
    if (n && n->n_attr < MAX_ATTR)
        n->attr[n->n_attr++] = (attr_t){.name = name, .type = AT_FLOAT, .f = v};
}

static void n_attr_ints(node_t *n, const char *name, int64_t a, int64_t b, int count) {
    if (n && n->n_attr < MAX_ATTR) {
        attr_t *t = &n->attr[n->n_attr++];
        *t = (attr_t){.name = name, .type = AT_INTS, .n_ints = count};
        for (int k = 0; k < count; k++)
            t->ints[k] = k % 2 ? b : a;
    }
}

/* An initializer; data is borrowed unless own is set (then the graph frees it). */
static init_t *g_init(graph_t *g, const char *name, int dtype, const void *data, size_t n,
                      void *own, int n_dims, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (g->err) {
        free(own);
        return NULL;
    }
    if (grow((void **)&g->inits, &g->cap_inits, g->n_inits + 1, sizeof *g->inits)) {
        free(own);
        g_fail_nomem(g);
        return NULL;
    }
    init_t *t = &g->inits[g->n_inits++];
    memset(t, 0, sizeof *t);
    gname(t->name, "%s", name);
    t->dtype = dtype;
    t->data = data;
    t->n = n;
    t->own = own;
    t->n_dims = n_dims;
    int64_t d[4] = {d0, d1, d2, d3};
    memcpy(t->dims, d, sizeof d);
    return t;
}

/* A float scalar (rank 0), once per graph under its name. */
static const char *g_scalar(graph_t *g, const char *name, float v) {
    for (int i = 0; i < g->n_inits; i++)
        if (!strcmp(g->inits[i].name, name))
            return name;
    float *p = malloc(sizeof *p);
    if (!p) {
        g_fail_nomem(g);
        return name;
    }
    *p = v;
    g_init(g, name, DT_FLOAT, p, 1, p, 0, 0, 0, 0, 0);
    return name;
}

static void g_free(graph_t *g) {
    for (int i = 0; i < g->n_inits; i++)
        free(g->inits[i].own);
    free(g->inits);
    free(g->nodes);
}

/* v as [N, C, H, W]: a Reshape to (-1, C, H, W) when it is flat. */
static void to_4d(graph_t *g, val_t *v, nn_shape_t s, const char *at) {
    if (v->r4)
        return;
    char shape[NAME_LEN], out[NAME_LEN];
    gname(shape, "%s_shape", at);
    gname(out, "%s_nchw", at);
    int64_t *d = malloc(4 * sizeof *d);
    if (!d) {
        g_fail_nomem(g);
        return;
    }
    d[0] = -1, d[1] = s.c, d[2] = s.h, d[3] = s.w;
    g_init(g, shape, DT_INT64, d, 4, d, 1, 4, 0, 0, 0);
    node_t *n = g_node(g, "Reshape", out);
    n_in(n, v->name);
    n_in(n, shape);
    gname(v->name, "%s", out);
    v->r4 = 1;
}

/* v as [N, C*H*W]: NCHW flattens in the order ensflow keeps a sample. */
static void to_2d(graph_t *g, val_t *v, const char *at) {
    if (!v->r4)
        return;
    char out[NAME_LEN];
    gname(out, "%s_flat", at);
    node_t *n = g_node(g, "Flatten", out);
    n_in(n, v->name);
    n_attr_i(n, "axis", 1);
    gname(v->name, "%s", out);
    v->r4 = 0;
}

/* The node added last, or NULL after a failure. */
static node_t *g_last(graph_t *g) {
    return g->err || !g->n_nodes ? NULL : &g->nodes[g->n_nodes - 1];
}

static val_t unary(graph_t *g, const char *op, const val_t *x, const char *out) {
    node_t *n = g_node(g, op, out);
    n_in(n, x->name);
    val_t y = {"", x->r4};
    gname(y.name, "%s", out);
    return y;
}

static val_t binary(graph_t *g, const char *op, const char *a, const char *b, const char *out,
                    int r4) {
    node_t *n = g_node(g, op, out);
    n_in(n, a);
    n_in(n, b);
    val_t y = {"", r4};
    gname(y.name, "%s", out);
    return y;
}

/* The parameters of a dense or conv node: weights then biases (nn_internal.h's layout). */
static void layer_params(graph_t *g, const ens_model_t *m, const nn_node_t *nd, const char *at,
                         char *w, char *b) {
    const float *p = m->params + nd->p_off;
    gname(w, "%s_W", at);
    gname(b, "%s_B", at);
    if (nd->s.kind == NN_DENSE) /* y = x W + b with W [in x out]: Gemm's B as it is */
        g_init(g, w, DT_FLOAT, p, (size_t)nd->w_n, NULL, 2, nd->size_in, nd->s.units, 0, 0);
    else /* [F x C x k x k] */
        g_init(g, w, DT_FLOAT, p, (size_t)nd->w_n, NULL, 4, nd->s.units, nd->in_shape.c, nd->s.k,
               nd->s.k);
    g_init(g, b, DT_FLOAT, p + nd->w_n, (size_t)nd->s.units, NULL, 1, nd->s.units, 0, 0, 0);
}

/* Node i of member `pre`: appends its ONNX nodes, sets *y. */
static void export_node(graph_t *g, const ens_model_t *m, int32_t i, const char *pre,
                        const val_t *vals, const val_t *input, val_t *y) {
    const nn_node_t *nd = &m->nodes[i];
    const nn_spec_t *s = &nd->s;
    const nn_layer_ops_t *ops = nn_ops(s->kind);
    char at[NAME_LEN], w[NAME_LEN], b[NAME_LEN], tmp[NAME_LEN];
    gname(at, "%sn%d_%s", pre, (int)i, ops ? ops->name : "unknown");
    val_t x = s->in[0] < 0 ? *input : vals[s->in[0]];
    node_t *n;
    switch (s->kind) {
    case NN_DENSE:
        to_2d(g, &x, at);
        layer_params(g, m, nd, at, w, b);
        gname(tmp, "%s%s", at, s->relu ? "_pre" : "");
        n = g_node(g, "Gemm", tmp);
        n_in(n, x.name);
        n_in(n, w);
        n_in(n, b);
        *y = (val_t){"", 0};
        gname(y->name, "%s", tmp);
        if (s->relu)
            *y = unary(g, "Relu", y, at);
        return;
    case NN_CONV2D:
        to_4d(g, &x, nd->in_shape, at);
        layer_params(g, m, nd, at, w, b);
        gname(tmp, "%s%s", at, s->relu ? "_pre" : "");
        n = g_node(g, "Conv", tmp);
        n_in(n, x.name);
        n_in(n, w);
        n_in(n, b);
        n_attr_ints(n, "kernel_shape", s->k, s->k, 2);
        n_attr_ints(n, "pads", s->pad, s->pad, 4);
        n_attr_ints(n, "strides", s->stride, s->stride, 2);
        *y = (val_t){"", 1};
        gname(y->name, "%s", tmp);
        if (s->relu)
            *y = unary(g, "Relu", y, at);
        return;
    case NN_MAXPOOL:
    case NN_AVGPOOL:
        /* floor of the output size (ceil_mode 0); max ignores the padding, the average divides
         * by k*k with padding counted as zeros (count_include_pad) */
        to_4d(g, &x, nd->in_shape, at);
        *y = unary(g, s->kind == NN_MAXPOOL ? "MaxPool" : "AveragePool", &x, at);
        n = g_last(g);
        n_attr_ints(n, "kernel_shape", s->k, s->k, 2);
        n_attr_ints(n, "pads", s->pad, s->pad, 4);
        n_attr_ints(n, "strides", s->stride, s->stride, 2);
        if (s->kind == NN_AVGPOOL)
            n_attr_i(n, "count_include_pad", 1);
        return;
    case NN_GAP:
        to_4d(g, &x, nd->in_shape, at);
        *y = unary(g, "GlobalAveragePool", &x, at);
        return;
    case NN_BATCHNORM: {
        /* running statistics (inference mode); a negative running variance counts as 0, as
         * in batchnorm.c */
        int32_t C = nd->out.c;
        const float *p = m->params + nd->p_off, *rm = m->bufs + nd->b_off, *rv = rm + C;
        float *var = malloc((size_t)C * sizeof *var);
        if (!var) {
            g_fail_nomem(g);
            return;
        }
        for (int32_t c = 0; c < C; c++)
            var[c] = rv[c] > 0.0f ? rv[c] : 0.0f;
        to_4d(g, &x, nd->in_shape, at);
        char nm[4][NAME_LEN];
        static const char *const sfx[4] = {"scale", "bias", "mean", "var"};
        const float *src[4] = {p, p + C, rm, var};
        for (int k = 0; k < 4; k++) {
            gname(nm[k], "%s_%s", at, sfx[k]);
            g_init(g, nm[k], DT_FLOAT, src[k], (size_t)C, k == 3 ? var : NULL, 1, C, 0, 0, 0);
        }
        *y = unary(g, "BatchNormalization", &x, at);
        n = g_last(g);
        for (int k = 0; k < 4; k++)
            n_in(n, nm[k]);
        n_attr_f(n, "epsilon", 1e-5f);
        return;
    }
    case NN_DROPOUT: /* the identity at inference */
        *y = x;
        return;
    case NN_RELU:
        *y = unary(g, "Relu", &x, at);
        return;
    case NN_LEAKY_RELU:
        *y = unary(g, "LeakyRelu", &x, at);
        n_attr_f(g_last(g), "alpha", s->alpha);
        return;
    case NN_GELU: {
        /* opset 13 has no Gelu: 0.5 x (1 + erf(x / sqrt 2)), the multiplications in gelu.c's
         * order ((0.5 x) (1 + erf)) */
        char e[NAME_LEN], h[NAME_LEN];
        gname(tmp, "%s_scaled", at);
        gname(e, "%s_erf", at);
        gname(h, "%s_half", at);
        val_t t = binary(g, "Mul", x.name, g_scalar(g, "gelu_rsqrt2", (float)M_SQRT1_2), tmp, x.r4);
        t = unary(g, "Erf", &t, e);
        gname(e, "%s_erf1", at);
        t = binary(g, "Add", t.name, g_scalar(g, "one", 1.0f), e, x.r4);
        val_t hx = binary(g, "Mul", x.name, g_scalar(g, "half", 0.5f), h, x.r4);
        *y = binary(g, "Mul", hx.name, t.name, at, x.r4);
        return;
    }
    case NN_ADD: {
        val_t x1 = s->in[1] < 0 ? *input : vals[s->in[1]];
        if (x.r4 != x1.r4) { /* the same C x H x W on both sides; meet as NCHW */
            gname(tmp, "%s_a", at);
            to_4d(g, &x, nd->in_shape, tmp);
            gname(tmp, "%s_b", at);
            to_4d(g, &x1, nd->in_shape, tmp);
        }
        *y = binary(g, "Add", x.name, x1.name, at, x.r4);
        return;
    }
    case NN_FLATTEN:
        to_2d(g, &x, at);
        *y = x;
        return;
    }
    if (g->err)
        return;
    char who[32] = "";
    if (g->member >= 0)
        snprintf(who, sizeof who, "member %d, ", g->member);
    g->err = ens_err_set(g->errstr, g->errstr_size, ENS_ERR_UNSUPPORTED,
                         "onnx: %snode %d: layer %s (kind %d) has no ONNX form", who, (int)i,
                         ops ? ops->name : "unknown", (int)s->kind);
}

/* Member m as nodes from "input" to its probabilities (named probs). */
static void export_member(graph_t *g, const ens_model_t *m, const char *pre, const char *probs) {
    val_t *vals = calloc((size_t)(m->n_nodes > 0 ? m->n_nodes : 1), sizeof *vals);
    if (!vals) {
        g_fail_nomem(g);
        return;
    }
    /* ens_model_predict's normalisation: (x - mean) * (1 / std), in float */
    char nm[NAME_LEN], c[NAME_LEN], out[NAME_LEN];
    float inv = 1.0f / m->std;
    gname(c, "%smean", pre);
    gname(nm, "%scentred", pre);
    float *k = malloc(2 * sizeof *k);
    if (!k) {
        free(vals);
        g_fail_nomem(g);
        return;
    }
    k[0] = m->mean, k[1] = inv;
    g_init(g, c, DT_FLOAT, k, 1, k, 0, 0, 0, 0, 0);
    val_t x = binary(g, "Sub", "input", c, nm, 0);
    gname(c, "%sinv_std", pre);
    g_init(g, c, DT_FLOAT, k + 1, 1, NULL, 0, 0, 0, 0, 0);
    gname(nm, "%snormalised", pre);
    val_t input = binary(g, "Mul", x.name, c, nm, 0);
    /* an image once as NCHW for every layer that reads it (a dense reader flattens it back) */
    if (m->in.h * m->in.w > 1) {
        gname(nm, "%sinput", pre);
        to_4d(g, &input, m->in, nm);
    }
    for (int32_t i = 0; i < m->n_nodes && !g->err; i++)
        export_node(g, m, i, pre, vals, &input, &vals[i]);
    if (!g->err && m->n_nodes > 0) {
        val_t z = vals[m->n_nodes - 1];
        gname(out, "%slogits", pre);
        to_2d(g, &z, out);
        node_t *n = g_node(g, "Softmax", probs);
        n_in(n, z.name);
        n_attr_i(n, "axis", 1);
    }
    free(vals);
}

/* --- protobuf ------------------------------------------------------------------------------ */

/* A writer; with p NULL it only counts the bytes it would write. */
typedef struct {
    uint8_t *p;
    size_t n;
} pb_t;

static void pb_raw(pb_t *b, const void *d, size_t n) {
    if (b->p && n)
        memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void pb_varint(pb_t *b, uint64_t v) {
    uint8_t t[10];
    size_t k = 0;
    do {
        t[k] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            t[k] |= 0x80;
        k++;
    } while (v);
    pb_raw(b, t, k);
}

static void pb_tag(pb_t *b, uint32_t field, int wire) {
    pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

/* int64 and int32 fields: a negative value is its 64-bit two's complement (10 bytes) */
static void pb_int(pb_t *b, uint32_t field, int64_t v) {
    pb_tag(b, field, WT_VARINT);
    pb_varint(b, (uint64_t)v);
}

static void pb_bytes(pb_t *b, uint32_t field, const void *d, size_t n) {
    pb_tag(b, field, WT_LEN);
    pb_varint(b, n);
    pb_raw(b, d, n);
}

static void pb_str(pb_t *b, uint32_t field, const char *s) {
    pb_bytes(b, field, s, strlen(s));
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void pb_float(pb_t *b, uint32_t field, float f) {
    uint32_t v;
    uint8_t le[4];
    memcpy(&v, &f, 4);
    put_le32(le, v);
    pb_tag(b, field, WT_FIXED32);
    pb_raw(b, le, 4);
}

/* A nested message: its size from a counting pass, then its bytes. */
static void pb_msg(pb_t *b, uint32_t field, void (*fn)(pb_t *, const void *), const void *arg) {
    pb_t count = {NULL, 0};
    fn(&count, arg);
    pb_tag(b, field, WT_LEN);
    pb_varint(b, count.n);
    if (b->p)
        fn(b, arg);
    else
        b->n += count.n;
}

static int little_endian(void) {
    const uint16_t one = 1;
    uint8_t lo;
    memcpy(&lo, &one, 1);
    return lo == 1;
}

/* TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little endian) */
static void w_tensor(pb_t *b, const void *arg) {
    const init_t *t = arg;
    for (int d = 0; d < t->n_dims; d++)
        pb_int(b, 1, t->dims[d]);
    pb_int(b, 2, t->dtype);
    pb_str(b, 8, t->name);
    size_t width = t->dtype == DT_INT64 ? 8 : 4, n = t->n * width;
    pb_tag(b, 9, WT_LEN);
    pb_varint(b, n);
    if (!b->p || little_endian()) {
        pb_raw(b, t->data, n);
        return;
    }
    const uint8_t *src = t->data;
    for (size_t i = 0; i < t->n; i++)
        for (size_t k = 0; k < width; k++)
            b->p[b->n + i * width + k] = src[i * width + width - 1 - k];
    b->n += n;
}

/* AttributeProto: name 1, f 2, i 3, ints 8, type 20 */
static void w_attr(pb_t *b, const void *arg) {
    const attr_t *a = arg;
    pb_str(b, 1, a->name);
    if (a->type == AT_FLOAT)
        pb_float(b, 2, a->f);
    else if (a->type == AT_INT)
        pb_int(b, 3, a->i);
    else
        for (int k = 0; k < a->n_ints; k++)
            pb_int(b, 8, a->ints[k]);
    pb_int(b, 20, a->type);
}

/* NodeProto: input 1, output 2, name 3, op_type 4, attribute 5 */
static void w_node(pb_t *b, const void *arg) {
    const node_t *n = arg;
    for (int k = 0; k < n->n_in; k++)
        pb_str(b, 1, n->in[k]);
    pb_str(b, 2, n->out);
    pb_str(b, 3, n->name);
    pb_str(b, 4, n->op);
    for (int k = 0; k < n->n_attr; k++)
        pb_msg(b, 5, w_attr, &n->attr[k]);
}

/* A float matrix [N, cols] with N symbolic. */
typedef struct {
    const char *name;
    int64_t cols;
} io_t;

/* TensorShapeProto.Dimension: dim_value 1, dim_param 2 */
static void w_dim_n(pb_t *b, const void *arg) {
    (void)arg;
    pb_str(b, 2, "N");
}

static void w_dim_v(pb_t *b, const void *arg) {
    pb_int(b, 1, *(const int64_t *)arg);
}

/* TensorShapeProto: dim 1 */
static void w_shape(pb_t *b, const void *arg) {
    pb_msg(b, 1, w_dim_n, NULL);
    pb_msg(b, 1, w_dim_v, &((const io_t *)arg)->cols);
}

/* TypeProto.Tensor: elem_type 1, shape 2 */
static void w_tensor_type(pb_t *b, const void *arg) {
    pb_int(b, 1, DT_FLOAT);
    pb_msg(b, 2, w_shape, arg);
}

/* TypeProto: tensor_type 1 */
static void w_type(pb_t *b, const void *arg) {
    pb_msg(b, 1, w_tensor_type, arg);
}

/* ValueInfoProto: name 1, type 2 */
static void w_value_info(pb_t *b, const void *arg) {
    pb_str(b, 1, ((const io_t *)arg)->name);
    pb_msg(b, 2, w_type, arg);
}

typedef struct {
    const graph_t *g;
    io_t in, out;
} model_arg_t;

/* GraphProto: node 1, name 2, initializer 5, doc_string 10, input 11, output 12 */
static void w_graph(pb_t *b, const void *arg) {
    const model_arg_t *a = arg;
    for (int k = 0; k < a->g->n_nodes; k++)
        pb_msg(b, 1, w_node, &a->g->nodes[k]);
    pb_str(b, 2, "ensflow");
    for (int k = 0; k < a->g->n_inits; k++)
        pb_msg(b, 5, w_tensor, &a->g->inits[k]);
    pb_str(b, 10, a->g->doc);
    pb_msg(b, 11, w_value_info, &a->in);
    pb_msg(b, 12, w_value_info, &a->out);
}

/* OperatorSetIdProto: domain 1 (empty: the default set), version 2 */
static void w_opset(pb_t *b, const void *arg) {
    (void)arg;
    pb_int(b, 2, ENS_ONNX_OPSET);
}

/* ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8 */
static void w_model(pb_t *b, const void *arg) {
    pb_int(b, 1, ENS_ONNX_IR_VERSION);
    pb_str(b, 2, "ensflow");
    pb_msg(b, 7, w_graph, arg);
    pb_msg(b, 8, w_opset, NULL);
}

/* --- the public function --------------------------------------------------------------------- */

ens_err_t ens_onnx_export(const ens_model_t *const *models, const double *weights, int n,
                          uint8_t **buf, size_t *len, char *errstr, size_t errstr_size) {
    if (!buf || !len)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "onnx: NULL output argument");
    *buf = NULL;
    *len = 0;
    if (!models || n < 1)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "onnx: no models");
    double wsum = 0.0;
    for (int i = 0; i < n; i++) {
        if (!models[i])
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "onnx: member %d is NULL", i);
        if (nn_in_size(models[i]) != nn_in_size(models[0]) ||
            models[i]->n_classes != models[0]->n_classes)
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "onnx: member %d takes %lld inputs and gives %d classes, unlike "
                               "member 0 (%lld, %d)",
                               i, (long long)nn_in_size(models[i]), (int)models[i]->n_classes,
                               (long long)nn_in_size(models[0]), (int)models[0]->n_classes);
        double w = weights ? weights[i] : 1.0;
        if (n > 1 && !(isfinite(w) && w >= 0.0))
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "onnx: weight %d (%g) is not a finite number >= 0", i, w);
        wsum += w;
    }
    if (n > 1 && !(wsum > 0.0))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "onnx: the weights sum to %g; the average needs a positive sum", wsum);

    graph_t g = {.errstr = errstr, .errstr_size = errstr_size};
    char pre[NAME_LEN], probs[NAME_LEN], wname[NAME_LEN], acc[NAME_LEN], term[NAME_LEN];
    float *wf = n > 1 ? malloc((size_t)n * sizeof *wf) : NULL;
    if (n > 1 && !wf)
        g_fail_nomem(&g);
    for (int i = 0; i < n && !g.err; i++) {
        gname(pre, "m%d_", i);
        gname(probs, n == 1 ? "probs" : "m%d_probs", i);
        g.member = n > 1 ? i : -1;
        export_member(&g, models[i], pre, probs);
        if (n == 1 || g.err)
            continue;
        /* ens_ensemble_combine: w = (float)(weight / sum), out = 0 + w0 p0 + w1 p1 + ... */
        wf[i] = (float)((weights ? weights[i] : 1.0) / wsum);
        gname(wname, "m%d_weight", i);
        g_init(&g, wname, DT_FLOAT, &wf[i], 1, NULL, 0, 0, 0, 0, 0);
        gname(term, "m%d_weighted", i);
        binary(&g, "Mul", probs, wname, term, 0);
        if (i > 0) {
            char sum[NAME_LEN];
            gname(sum, i == n - 1 ? "probs" : "sum%d", i);
            binary(&g, "Add", i == 1 ? "m0_weighted" : acc, term, sum, 0);
            gname(acc, "%s", sum);
        }
    }
    const ens_model_t *m0 = models[0];
    int at = snprintf(g.doc, sizeof g.doc,
                      "ensflow %s: input [N, %lld] floats (rows of %dx%dx%d, NCHW, "
                      "unnormalised), output probs [N, %d]",
                      n == 1 ? "model" : "ensemble", (long long)nn_in_size(m0), (int)m0->in.c,
                      (int)m0->in.h, (int)m0->in.w, (int)m0->n_classes);
    if (n > 1 && at > 0 && (size_t)at < sizeof g.doc)
        snprintf(g.doc + at, sizeof g.doc - (size_t)at,
                 ", the weighted average of %d members' probabilities", n);
    ens_err_t err = g.err;
    if (!err) {
        model_arg_t a = {&g, {"input", nn_in_size(models[0])}, {"probs", models[0]->n_classes}};
        pb_t count = {NULL, 0};
        w_model(&count, &a);
        if (count.n > PB_MAX_BYTES) {
            err = ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,
                              "onnx: the graph takes %.1f GiB, more than the 2 GiB of one "
                              "protobuf message (external weight files are not written)",
                              (double)count.n / (1024.0 * 1024.0 * 1024.0));
        } else {
            pb_t out = {malloc(count.n ? count.n : 1), 0};
            if (!out.p) {
                err = ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM,
                                  "onnx: cannot allocate %zu bytes", count.n);
            } else {
                w_model(&out, &a);
                ENS_ASSERT(out.n == count.n);
                *buf = out.p;
                *len = out.n;
            }
        }
    }
    free(wf);
    g_free(&g);
    return err;
}
