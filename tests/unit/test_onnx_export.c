/* test_onnx_export.c - the ONNX writer read back by a protobuf reader of the test's own: message
 * structure, operators, weights, ensemble arithmetic and refusals. */
#include <stdint.h>

#include "check.h"
#include "ensflow/nn.h"
#include "ensflow/onnx.h"
#include "nn/nn_internal.h"

/* --- a protobuf reader, just enough for onnx.proto's messages -------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, off;
    int bad; /* a varint or a length ran past the end */
} rd_t;

static uint64_t rd_varint(rd_t *r) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->off >= r->n) {
            r->bad = 1;
            return 0;
        }
        uint8_t b = r->p[r->off++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

/* One field: its number, wire type, and a varint value or a length-delimited slice. */
typedef struct {
    uint32_t num;
    int wire;
    uint64_t v;
    const uint8_t *data;
    size_t len;
} field_t;

static int rd_field(rd_t *r, field_t *f) {
    if (r->bad || r->off >= r->n)
        return 0;
    uint64_t tag = rd_varint(r);
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    f->v = 0;
    switch (f->wire) {
    case 0:
        f->v = rd_varint(r);
        break;
    case 2:
        f->len = (size_t)rd_varint(r);
        if (r->bad || f->len > r->n - r->off) {
            r->bad = 1;
            return 0;
        }
        f->data = r->p + r->off;
        r->off += f->len;
        break;
    case 5:
        if (r->n - r->off < 4) {
            r->bad = 1;
            return 0;
        }
        f->data = r->p + r->off;
        f->len = 4;
        r->off += 4;
        break;
    default:
        r->bad = 1;
        return 0;
    }
    return !r->bad;
}

static rd_t sub(const field_t *f) {
    return (rd_t){f->data, f->len, 0, 0};
}

static void copy_str(char *dst, size_t size, const field_t *f) {
    size_t n = f->len < size - 1 ? f->len : size - 1;
    memcpy(dst, f->data, n);
    dst[n] = '\0';
}

static float le_float(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* --- the model as read back --------------------------------------------------------------------
 */

#define MAXN 512
#define NAME 96

typedef struct {
    char op[32], out[NAME], in[5][NAME];
    int n_in;
    char attr[4][32];
    int64_t attr_i[4];
    int n_attr;
} rnode_t;

typedef struct {
    char name[NAME];
    int64_t dims[4];
    int n_dims, dtype;
    const uint8_t *raw;
    size_t raw_len;
} rinit_t;

typedef struct {
    int64_t ir_version, opset;
    rnode_t nodes[MAXN];
    int n_nodes;
    rinit_t inits[MAXN];
    int n_inits;
    char in_name[NAME], out_name[NAME], in_dim0[8], out_dim0[8];
    int64_t in_dim1, out_dim1;
    int well_formed; /* every message consumed exactly, nothing ran past its end */
} rmodel_t;

static void read_value_info(rmodel_t *m, const field_t *vf, char *name, char *dim0, int64_t *dim1) {
    rd_t r = sub(vf);
    field_t f;
    while (rd_field(&r, &f)) {
        if (f.num == 1)
            copy_str(name, NAME, &f);
        if (f.num != 2)
            continue;
        rd_t t = sub(&f); /* TypeProto */
        field_t tf, tt, sf, df, dv;
        while (rd_field(&t, &tf)) {
            rd_t tensor = sub(&tf); /* TypeProto.Tensor */
            while (rd_field(&tensor, &tt)) {
                if (tt.num != 2)
                    continue;
                rd_t shape = sub(&tt);
                int k = 0;
                while (rd_field(&shape, &sf)) {
                    rd_t dim = sub(&sf);
                    while (rd_field(&dim, &df)) {
                        dv = df;
                        if (k == 0 && dv.num == 2)
                            copy_str(dim0, 8, &dv);
                        if (k == 1 && dv.num == 1)
                            *dim1 = (int64_t)dv.v;
                    }
                    k++;
                    m->well_formed &= !dim.bad;
                }
                m->well_formed &= !shape.bad;
            }
            m->well_formed &= !tensor.bad;
        }
        m->well_formed &= !t.bad;
    }
    m->well_formed &= !r.bad && r.off == r.n;
}

static void read_node(rmodel_t *m, const field_t *nf) {
    if (m->n_nodes >= MAXN)
        return;
    rnode_t *n = &m->nodes[m->n_nodes++];
    memset(n, 0, sizeof *n);
    rd_t r = sub(nf);
    field_t f;
    while (rd_field(&r, &f)) {
        if (f.num == 1 && n->n_in < 5)
            copy_str(n->in[n->n_in++], NAME, &f);
        else if (f.num == 2)
            copy_str(n->out, NAME, &f);
        else if (f.num == 4)
            copy_str(n->op, sizeof n->op, &f);
        else if (f.num == 5 && n->n_attr < 4) {
            rd_t a = sub(&f);
            field_t af;
            int k = n->n_attr++;
            while (rd_field(&a, &af)) {
                if (af.num == 1)
                    copy_str(n->attr[k], sizeof n->attr[k], &af);
                else if (af.num == 3)
                    n->attr_i[k] = (int64_t)af.v;
            }
            m->well_formed &= !a.bad && a.off == a.n;
        }
    }
    m->well_formed &= !r.bad && r.off == r.n;
}

static void read_init(rmodel_t *m, const field_t *tf) {
    if (m->n_inits >= MAXN)
        return;
    rinit_t *t = &m->inits[m->n_inits++];
    memset(t, 0, sizeof *t);
    rd_t r = sub(tf);
    field_t f;
    while (rd_field(&r, &f)) {
        if (f.num == 1 && t->n_dims < 4)
            t->dims[t->n_dims++] = (int64_t)f.v;
        else if (f.num == 2)
            t->dtype = (int)f.v;
        else if (f.num == 8)
            copy_str(t->name, NAME, &f);
        else if (f.num == 9) {
            t->raw = f.data;
            t->raw_len = f.len;
        }
    }
    m->well_formed &= !r.bad && r.off == r.n;
}

static void read_model(const uint8_t *buf, size_t len, rmodel_t *m) {
    memset(m, 0, sizeof *m);
    m->well_formed = 1;
    rd_t r = {buf, len, 0, 0};
    field_t f;
    while (rd_field(&r, &f)) {
        if (f.num == 1)
            m->ir_version = (int64_t)f.v;
        else if (f.num == 8) {
            rd_t o = sub(&f);
            field_t of;
            while (rd_field(&o, &of))
                if (of.num == 2)
                    m->opset = (int64_t)of.v;
        } else if (f.num == 7) {
            rd_t g = sub(&f);
            field_t gf;
            while (rd_field(&g, &gf)) {
                if (gf.num == 1)
                    read_node(m, &gf);
                else if (gf.num == 5)
                    read_init(m, &gf);
                else if (gf.num == 11)
                    read_value_info(m, &gf, m->in_name, m->in_dim0, &m->in_dim1);
                else if (gf.num == 12)
                    read_value_info(m, &gf, m->out_name, m->out_dim0, &m->out_dim1);
            }
            m->well_formed &= !g.bad && g.off == g.n;
        }
    }
    m->well_formed &= !r.bad && r.off == r.n;
}

static int count_op(const rmodel_t *m, const char *op) {
    int n = 0;
    for (int i = 0; i < m->n_nodes; i++)
        n += !strcmp(m->nodes[i].op, op);
    return n;
}

static const rinit_t *find_init(const rmodel_t *m, const char *name) {
    for (int i = 0; i < m->n_inits; i++)
        if (!strcmp(m->inits[i].name, name))
            return &m->inits[i];
    return NULL;
}

/* Every node reads the graph input, an initializer or an earlier node's output; the last node
 * writes the graph output; float tensors hold 4 bytes per element of their dims. */
static void check_graph(const rmodel_t *m, int64_t in_dim, int64_t classes) {
    CHECK(m->well_formed);
    CHECK_EQ_INT(m->ir_version, ENS_ONNX_IR_VERSION);
    CHECK_EQ_INT(m->opset, ENS_ONNX_OPSET);
    CHECK_STR(m->in_name, "input");
    CHECK_STR(m->in_dim0, "N");
    CHECK_EQ_INT(m->in_dim1, in_dim);
    CHECK_STR(m->out_name, "probs");
    CHECK_STR(m->out_dim0, "N");
    CHECK_EQ_INT(m->out_dim1, classes);
    CHECK(m->n_nodes > 0);
    for (int i = 0; i < m->n_nodes; i++)
        for (int k = 0; k < m->nodes[i].n_in; k++) {
            const char *in = m->nodes[i].in[k];
            int found = !strcmp(in, "input") || find_init(m, in) != NULL;
            for (int j = 0; j < i && !found; j++)
                found = !strcmp(m->nodes[j].out, in);
            if (!found)
                fprintf(stderr, "node %d (%s) reads %s, which nothing wrote before it\n", i,
                        m->nodes[i].op, in);
            CHECK(found);
        }
    CHECK_STR(m->nodes[m->n_nodes - 1].out, "probs");
    for (int i = 0; i < m->n_inits; i++) {
        const rinit_t *t = &m->inits[i];
        int64_t elems = 1;
        for (int d = 0; d < t->n_dims; d++)
            elems *= t->dims[d];
        CHECK_EQ_INT(t->raw_len, elems * (t->dtype == 7 ? 8 : 4));
    }
}

static int export_one(const ens_model_t *m, uint8_t **buf, size_t *len) {
    char errstr[256] = "";
    ens_err_t err = ens_onnx_export(&m, NULL, 1, buf, len, errstr, sizeof errstr);
    if (err)
        fprintf(stderr, "export: %s %s\n", ens_err_str(err), errstr);
    return err;
}

/* --- cases -------------------------------------------------------------------------------------
 */

static rmodel_t rm; /* large: not on the stack */

/* An MLP: Sub and Mul of the normalisation, Gemm per dense layer, fused ReLU, Softmax; weights
 * byte for byte; a 300-unit layer needs two-byte varints in its dims. */
static void test_mlp(void) {
    ens_model_t *m = NULL;
    const int32_t hidden[] = {300};
    CHECK_OK(ens_model_new_mlp(20, hidden, 1, 3, 1, &m));
    if (!m)
        return;
    ens_model_set_normalisation(m, 0.5f, 0.25f);
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_OK(export_one(m, &buf, &len));
    read_model(buf, len, &rm);
    check_graph(&rm, 20, 3);
    CHECK_EQ_INT(count_op(&rm, "Sub"), 1);
    CHECK_EQ_INT(count_op(&rm, "Mul"), 1);
    CHECK_EQ_INT(count_op(&rm, "Gemm"), 2);
    CHECK_EQ_INT(count_op(&rm, "Relu"), 1);
    CHECK_EQ_INT(count_op(&rm, "Softmax"), 1);
    CHECK_EQ_INT(count_op(&rm, "Add"), 0);
    CHECK_EQ_INT(count_op(&rm, "Flatten") + count_op(&rm, "Reshape"), 0);
    const rinit_t *w = find_init(&rm, "m0_n0_dense_W"), *mean = find_init(&rm, "m0_mean");
    const rinit_t *inv = find_init(&rm, "m0_inv_std");
    CHECK(w && mean && inv);
    if (w && mean && inv) {
        CHECK_EQ_INT(w->n_dims, 2);
        CHECK_EQ_INT(w->dims[0], 20);
        CHECK_EQ_INT(w->dims[1], 300);
        CHECK_EQ_INT(w->raw_len, 20 * 300 * 4);
        int same = w->raw_len == 20 * 300 * 4;
        for (int i = 0; same && i < 20 * 300; i++)
            same = le_float(w->raw + 4 * i) == m->params[m->nodes[0].p_off + i];
        CHECK(same);
        CHECK_NEAR(le_float(mean->raw), 0.5, 0);
        CHECK_NEAR(le_float(inv->raw), 4.0, 0);
        CHECK_EQ_INT(mean->n_dims, 0);
    }
    /* the Softmax is over the classes */
    const rnode_t *sm = &rm.nodes[rm.n_nodes - 1];
    CHECK_STR(sm->op, "Softmax");
    CHECK(sm->n_attr == 1 && !strcmp(sm->attr[0], "axis") && sm->attr_i[0] == 1);
    /* the same model gives the same bytes */
    uint8_t *again = NULL;
    size_t len2 = 0;
    CHECK_OK(export_one(m, &again, &len2));
    CHECK(len2 == len && again && !memcmp(buf, again, len));
    free(again);
    free(buf);
    ens_model_free(m);
}

/* A CNN with batch norm, residual blocks (one through a 1x1 conv), GELU, average and max pools,
 * a GAP head and dropout: every operator is there, and a negative running variance is written
 * as 0 (batchnorm.c clamps it). */
static void test_cnn(void) {
    const char *arch =
        "{\"blocks\":[{\"filters\":4,\"batch_norm\":true,\"residual\":true,\"pool\":\"avg\"},"
        "{\"filters\":6,\"batch_norm\":true,\"residual\":true,\"dropout\":0.3}],"
        "\"act\":\"gelu\",\"head\":\"gap\",\"dense\":[8]}";
    ens_model_t *m = NULL;
    char errstr[256] = "";
    CHECK_OK(ens_model_new_from_json(arch, 2, 8, 8, 5, 3, &m, errstr, sizeof errstr));
    if (!m)
        return;
    int32_t bn = -1;
    for (int32_t i = 0; i < m->n_nodes && bn < 0; i++)
        if (m->nodes[i].s.kind == NN_BATCHNORM)
            bn = i;
    CHECK(bn >= 0);
    if (bn >= 0)
        m->bufs[m->nodes[bn].b_off + m->nodes[bn].out.c] = -0.5f; /* running var of channel 0 */
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_OK(export_one(m, &buf, &len));
    read_model(buf, len, &rm);
    check_graph(&rm, 2 * 8 * 8, 5);
    int n_conv = 0, n_bn = 0, n_add = 0, n_gelu = 0;
    for (int32_t i = 0; i < m->n_nodes; i++) {
        n_conv += m->nodes[i].s.kind == NN_CONV2D;
        n_bn += m->nodes[i].s.kind == NN_BATCHNORM;
        n_add += m->nodes[i].s.kind == NN_ADD;
        n_gelu += m->nodes[i].s.kind == NN_GELU;
    }
    CHECK_EQ_INT(n_conv, 6); /* 2 per block and a 1x1 skip (the channels change in both) */
    CHECK_EQ_INT(count_op(&rm, "Conv"), n_conv);
    CHECK_EQ_INT(count_op(&rm, "BatchNormalization"), n_bn);
    CHECK_EQ_INT(count_op(&rm, "Erf"), n_gelu);
    /* add nodes, plus one Add inside each GELU */
    CHECK_EQ_INT(count_op(&rm, "Add"), n_add + n_gelu);
    CHECK_EQ_INT(count_op(&rm, "AveragePool"), 1);
    CHECK_EQ_INT(count_op(&rm, "MaxPool"), 1); /* block 2 pools with the default, max */
    CHECK_EQ_INT(count_op(&rm, "GlobalAveragePool"), 1);
    CHECK_EQ_INT(count_op(&rm, "Reshape"), 1); /* the flat input, once for both its readers */
    CHECK_EQ_INT(count_op(&rm, "Dropout"), 0); /* the identity at inference: no node */
    char name[64];
    snprintf(name, sizeof name, "m0_n%d_batchnorm_var", (int)bn);
    const rinit_t *var = find_init(&rm, name);
    CHECK(var != NULL);
    if (var)
        CHECK_NEAR(le_float(var->raw), 0.0, 0);
    for (int i = 0; i < rm.n_nodes; i++)
        if (!strcmp(rm.nodes[i].op, "AveragePool")) {
            int counted = 0;
            for (int k = 0; k < rm.nodes[i].n_attr; k++)
                counted |=
                    !strcmp(rm.nodes[i].attr[k], "count_include_pad") && rm.nodes[i].attr_i[k] == 1;
            CHECK(counted); /* avgpool.c divides by k*k, padding included */
        }
    free(buf);
    ens_model_free(m);
}

/* Three members: a Softmax each, their weights normalised by the sum, added in member order. */
static void test_ensemble(void) {
    ens_model_t *ms[3] = {NULL};
    const int32_t h1[] = {8}, h2[] = {6, 5};
    CHECK_OK(ens_model_new_mlp(12, h1, 1, 4, 1, &ms[0]));
    CHECK_OK(ens_model_new_mlp(12, h2, 2, 4, 2, &ms[1]));
    CHECK_OK(ens_model_new_mlp(12, NULL, 0, 4, 3, &ms[2]));
    if (!ms[0] || !ms[1] || !ms[2])
        return;
    const double w[3] = {1.0, 1.0, 2.0};
    uint8_t *buf = NULL;
    size_t len = 0;
    char errstr[256] = "";
    CHECK_OK(
        ens_onnx_export((const ens_model_t *const *)ms, w, 3, &buf, &len, errstr, sizeof errstr));
    read_model(buf, len, &rm);
    check_graph(&rm, 12, 4);
    CHECK_EQ_INT(count_op(&rm, "Softmax"), 3);
    CHECK_EQ_INT(count_op(&rm, "Sub"), 3);
    CHECK_EQ_INT(count_op(&rm, "Mul"), 3 + 3); /* normalisation + weight, per member */
    CHECK_EQ_INT(count_op(&rm, "Add"), 2);
    CHECK_EQ_INT(count_op(&rm, "Gemm"), 2 + 3 + 1);
    const double want[3] = {0.25, 0.25, 0.5};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%d_weight", i);
        const rinit_t *t = find_init(&rm, name);
        CHECK(t != NULL);
        if (t)
            CHECK_NEAR(le_float(t->raw), want[i], 0);
    }
    /* (m0 + m1) + m2, as ens_ensemble_combine accumulates */
    const rnode_t *last = &rm.nodes[rm.n_nodes - 1];
    CHECK_STR(last->op, "Add");
    CHECK_STR(last->in[1], "m2_weighted");
    free(buf);

    /* equal weights when none are given */
    CHECK_OK(ens_onnx_export((const ens_model_t *const *)ms, NULL, 3, &buf, &len, errstr,
                             sizeof errstr));
    read_model(buf, len, &rm);
    const rinit_t *t = find_init(&rm, "m2_weight");
    CHECK(t != NULL);
    if (t)
        CHECK_NEAR(le_float(t->raw), (float)(1.0 / 3.0), 0);
    free(buf);
    for (int i = 0; i < 3; i++)
        ens_model_free(ms[i]);
}

/* Bad arguments are ENS_ERR_INVALID; a layer without an ONNX form is ENS_ERR_UNSUPPORTED with
 * a reason naming the member, the node and the layer; nothing is returned then. */
static void test_refusals(void) {
    ens_model_t *a = NULL, *b = NULL, *c = NULL;
    const int32_t h[] = {4};
    CHECK_OK(ens_model_new_mlp(6, h, 1, 3, 1, &a));
    CHECK_OK(ens_model_new_mlp(6, h, 1, 3, 2, &b));
    CHECK_OK(ens_model_new_mlp(6, h, 1, 2, 3, &c)); /* 2 classes */
    if (!a || !b || !c)
        return;
    uint8_t *buf = (uint8_t *)"x";
    size_t len = 7;
    char errstr[256] = "";
    const ens_model_t *ab[2] = {a, b}, *ac[2] = {a, c};
    CHECK_EQ_INT(ens_onnx_export(ab, NULL, 0, &buf, &len, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(buf == NULL && len == 0);
    CHECK_EQ_INT(ens_onnx_export(ab, NULL, 2, NULL, &len, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_onnx_export(ac, NULL, 2, &buf, &len, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(strstr(errstr, "member 1") != NULL);
    const double zero[2] = {0.0, 0.0}, neg[2] = {1.0, -1.0}, nan2[2] = {1.0, NAN};
    CHECK_EQ_INT(ens_onnx_export(ab, zero, 2, &buf, &len, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_onnx_export(ab, neg, 2, &buf, &len, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_onnx_export(ab, nan2, 2, &buf, &len, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK(buf == NULL);

    /* a layer kind this exporter does not know (a model from a newer engine) */
    int32_t kind = b->nodes[1].s.kind;
    b->nodes[1].s.kind = NN_KIND_END + 7;
    errstr[0] = '\0';
    CHECK_EQ_INT(ens_onnx_export(ab, NULL, 2, &buf, &len, errstr, sizeof errstr),
                 ENS_ERR_UNSUPPORTED);
    CHECK(buf == NULL && len == 0);
    CHECK(strstr(errstr, "member 1") && strstr(errstr, "node 1") &&
          strstr(errstr, "has no ONNX form"));
    const ens_model_t *bb = b;
    CHECK_EQ_INT(ens_onnx_export(&bb, NULL, 1, &buf, &len, errstr, sizeof errstr),
                 ENS_ERR_UNSUPPORTED);
    CHECK(strstr(errstr, "member") == NULL && strstr(errstr, "node 1") != NULL);
    b->nodes[1].s.kind = kind;
    CHECK_OK(ens_onnx_export(ab, NULL, 2, &buf, &len, errstr, sizeof errstr));
    free(buf);
    ens_model_free(a);
    ens_model_free(b);
    ens_model_free(c);
}

int main(void) {
    test_mlp();
    test_cnn();
    test_ensemble();
    test_refusals();
    return check_done("test_onnx_export");
}
