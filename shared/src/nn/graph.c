/* graph.c - building and running the layer graph: shapes, arena, forward, loss, backward. */
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const nn_layer_ops_t *nn_ops(int32_t kind) {
    switch (kind) {
    case NN_DENSE: return &nn_dense_ops;
    case NN_CONV2D: return &nn_conv2d_ops;
    case NN_MAXPOOL: return &nn_maxpool_ops;
    case NN_AVGPOOL: return &nn_avgpool_ops;
    case NN_GAP: return &nn_gap_ops;
    case NN_BATCHNORM: return &nn_batchnorm_ops;
    case NN_DROPOUT: return &nn_dropout_ops;
    case NN_RELU: return &nn_relu_ops;
    case NN_LEAKY_RELU: return &nn_leaky_relu_ops;
    case NN_GELU: return &nn_gelu_ops;
    case NN_ADD: return &nn_add_ops;
    case NN_FLATTEN: return &nn_flatten_ops;
    }
    return NULL;
}

int64_t nn_in_size(const ens_model_t *m) { return (int64_t)m->in.c * m->in.h * m->in.w; }

ens_err_t nn_model_begin(nn_shape_t in, int32_t n_classes, ens_model_t **out) {
    *out = NULL;
    if (in.c < 1 || in.h < 1 || in.w < 1 || in.c > NN_MAX_DIM || in.h > NN_MAX_DIM ||
        in.w > NN_MAX_DIM || (int64_t)in.c * in.h * in.w > NN_MAX_SAMPLE || n_classes < 1 ||
        n_classes > NN_MAX_DIM)
        return ENS_ERR_INVALID;
    ens_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return ENS_ERR_NOMEM;
    m->in = in;
    m->n_classes = n_classes;
    m->mean = 0.0f;
    m->std = 1.0f;
    m->be = &ens_backend_cpu;
    const char *be = getenv("ENSFLOW_BACKEND"); /* unset or "cpu": the CPU backend */
    if (be && *be && strcmp(be, "cpu")) {
        char why[1024] = "";
        ens_err_t err = ens_model_set_backend(m, be, why, sizeof why);
        if (err) {
            fprintf(stderr, "lvl=error svc=nn msg=\"ENSFLOW_BACKEND not usable\" backend=%s "
                            "why=\"%s\"\n", be, why);
            free(m);
            return err;
        }
    }
    *out = m;
    return ENS_OK;
}

int32_t nn_graph_add(ens_model_t *m, const nn_spec_t *spec, char *errstr, size_t errstr_size) {
    const nn_layer_ops_t *ops = nn_ops(spec->kind);
    int32_t idx = m->n_nodes;
    if (!ops) {
        ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "node %d: unknown kind %d", idx,
                    spec->kind);
        return -1;
    }
    if (idx >= NN_MAX_NODES) {
        ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "more than %d nodes", NN_MAX_NODES);
        return -1;
    }
    nn_node_t *n = &m->nodes[idx];
    memset(n, 0, sizeof *n);
    n->s = *spec;
    n->n_in = spec->kind == NN_ADD ? 2 : 1;
    nn_shape_t shp[2];
    for (int32_t i = 0; i < n->n_in; i++) {
        int32_t src = spec->in[i];
        if (src < -1 || src >= idx) {
            ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                        "node %d (%s): input %d is not an earlier node", idx, ops->name, src);
            return -1;
        }
        shp[i] = src < 0 ? m->in : m->nodes[src].out;
    }
    if (n->n_in == 1)
        n->s.in[1] = -1;
    n->in_shape = shp[0];
    n->size_in = (int64_t)shp[0].c * shp[0].h * shp[0].w;
    const char *why = ops->setup(n, &shp[0], n->n_in > 1 ? &shp[1] : NULL);
    if (!why && (n->out.c < 1 || n->out.h < 1 || n->out.w < 1 || n->out.c > NN_MAX_DIM ||
                 n->out.h > NN_MAX_DIM || n->out.w > NN_MAX_DIM))
        why = "output shape out of range";
    if (!why) {
        n->size_out = (int64_t)n->out.c * n->out.h * n->out.w;
        if (n->size_out > NN_MAX_SAMPLE || n->ws_n > NN_MAX_SAMPLE * 4 ||
            n->keep_n > NN_MAX_SAMPLE * 4)
            why = "activation too large";
    }
    if (!why && m->n_params + n->p_n > NN_MAX_PARAMS)
        why = "too many parameters";
    if (why) {
        ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "node %d (%s): %s", idx, ops->name,
                    why);
        return -1;
    }
    n->p_off = m->n_params;
    m->n_params += n->p_n;
    n->b_off = m->n_bufs;
    m->n_bufs += n->b_n;
    for (int32_t i = 0; i < n->n_in; i++)
        if (spec->in[i] >= 0)
            m->nodes[spec->in[i]].n_consumers++;
    m->n_nodes++;
    return idx;
}

ens_err_t nn_model_finish(ens_model_t *m, uint64_t seed, int init, char *errstr,
                          size_t errstr_size) {
    if (m->n_nodes < 1)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "the graph has no nodes");
    const nn_node_t *last = &m->nodes[m->n_nodes - 1];
    if (last->size_out != m->n_classes)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "the last node gives %lld values, the model has %d classes",
                           (long long)last->size_out, m->n_classes);
    for (int32_t i = 0; i + 1 < m->n_nodes; i++)
        if (m->nodes[i].n_consumers == 0)
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "node %d (%s) feeds nothing", i, nn_ops(m->nodes[i].s.kind)->name);
    size_t np = (size_t)(m->n_params > 0 ? m->n_params : 1);
    size_t nb = (size_t)(m->n_bufs > 0 ? m->n_bufs : 1);
    m->params = calloc(np, sizeof(float));
    m->grads = calloc(np, sizeof(float));
    m->bufs = calloc(nb, sizeof(float));
    if (!m->params || !m->grads || !m->bufs)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "cannot allocate parameters");
    ens_rng_seed(&m->rng, seed ^ 0x9e3779b97f4a7c15ull);
    if (init) {
        ens_rng_t rng;
        ens_rng_seed(&rng, seed);
        for (int32_t i = 0; i < m->n_nodes; i++) {
            nn_node_t *n = &m->nodes[i];
            const nn_layer_ops_t *ops = nn_ops(n->s.kind);
            if (ops->init)
                ops->init(n, m->params + n->p_off, m->bufs + n->b_off, &rng);
        }
    }
    return ENS_OK;
}

/*
 * The arena: one block for a batch of up to cap rows, laid out once; a training step after
 * the first allocates nothing. Forward buffers always; backward buffers (dy, aux, partials)
 * only once a model trains, so a served model holds only what inference needs.
 */
ens_err_t nn_ensure_batch(ens_model_t *m, int32_t b, int train) {
    if (b <= m->cap && (!train || b <= m->cap_train))
        return ENS_OK;
    int32_t cap = b > m->cap ? b : m->cap;
    if (train && m->cap_train > 0 && m->cap_train > cap)
        cap = m->cap_train;
    int want_train = train || m->cap_train > 0;
    int32_t nt = m->be->max_threads();
    int64_t in = nn_in_size(m), per_row = 2 * in + m->n_classes, fixed = 0;
    int64_t ws = 0, parts = 0;
    for (int32_t i = 0; i < m->n_nodes; i++) {
        nn_node_t *n = &m->nodes[i];
        per_row += n->size_out * (want_train ? 2 : 1);
        if (want_train && nn_ops(n->s.kind)->aux_floats)
            fixed += nn_ops(n->s.kind)->aux_floats(n, cap) + 16;
        ws = n->ws_n > ws ? n->ws_n : ws;
        parts = n->part_n > parts ? n->part_n : parts;
        fixed += n->keep_n;
    }
    if (!want_train)
        parts = 0;
    size_t total = (size_t)cap * (size_t)per_row + (size_t)fixed + (size_t)(ws + 16) * nt +
                   (size_t)parts * NN_CHUNKS + 2 * (size_t)cap + 64;
    float *a = malloc(total * sizeof(float));
    if (!a)
        return ENS_ERR_NOMEM;
    free(m->arena);
    m->arena = a;
    m->cap = cap;
    m->cap_train = want_train ? cap : 0;
    m->x0 = a;
    a += (size_t)cap * in;
    m->xaug = a;
    a += (size_t)cap * in;
    m->probs = a;
    a += (size_t)cap * m->n_classes;
    for (int32_t i = 0; i < m->n_nodes; i++) {
        nn_node_t *n = &m->nodes[i];
        n->y = a;
        a += (size_t)cap * n->size_out;
        n->dy = NULL;
        n->aux = NULL;
        n->keep = NULL;
        if (n->keep_n > 0) {
            n->keep = a;
            n->keep[0] = 0.0f; /* nothing cached yet */
            a += n->keep_n;
        }
        if (want_train) {
            n->dy = a;
            a += (size_t)cap * n->size_out;
            if (nn_ops(n->s.kind)->aux_floats) {
                n->aux = a;
                a += nn_ops(n->s.kind)->aux_floats(n, cap) + 16;
            }
        }
    }
    m->ws_per_thread = ws + 16;
    m->ws = a;
    a += (size_t)m->ws_per_thread * nt;
    m->part_max = parts;
    m->parts = a;
    a += (size_t)parts * NN_CHUNKS;
    m->ybuf = (int32_t *)a; /* labels of a batch */
    return ENS_OK;
}

static void make_ctx(ens_model_t *m, nn_ctx_t *c, int train) {
    c->be = m->be;
    c->params = m->params;
    c->grads = m->grads;
    c->bufs = m->bufs;
    c->train = train;
    c->rng = &m->rng;
    c->ws = m->ws;
    c->ws_per_thread = m->ws_per_thread;
    c->parts = m->parts;
}

static const float *node_in(const ens_model_t *m, int32_t src) {
    return src < 0 ? m->x0 : m->nodes[src].y;
}

void nn_forward(ens_model_t *m, int32_t b, int train) {
    nn_ctx_t c;
    make_ctx(m, &c, train);
    for (int32_t i = 0; i < m->n_nodes; i++) {
        nn_node_t *n = &m->nodes[i];
        const float *x0 = node_in(m, n->s.in[0]), *x1 = n->n_in > 1 ? node_in(m, n->s.in[1]) : NULL;
        if (!c.be->node_forward || c.be->node_forward(&c, n, b, x0, x1) != 0)
            nn_ops(n->s.kind)->forward(&c, n, b, x0, x1);
    }
}

ens_err_t nn_backend_error(ens_model_t *m) {
    return m->be->take_error ? m->be->take_error() : ENS_OK;
}

double nn_softmax_ce(ens_model_t *m, int32_t b, const int32_t *y, double smoothing) {
    int32_t k = m->n_classes;
    const float *logits = m->nodes[m->n_nodes - 1].y;
    double loss = 0.0, off = smoothing / k;
    for (int32_t i = 0; i < b; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = m->probs + (size_t)i * k;
        float mx = z[0];
        for (int32_t j = 1; j < k; j++)
            mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int32_t j = 0; j < k; j++) {
            p[j] = expf(z[j] - mx);
            sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        for (int32_t j = 0; j < k; j++)
            p[j] *= inv;
        if (y) {
            double lse = log(sum) + mx; /* -log p_j = lse - z_j */
            if (smoothing > 0.0) {
                double s = 0.0;
                for (int32_t j = 0; j < k; j++)
                    s += lse - z[j];
                loss += (1.0 - smoothing) * (lse - z[y[i]]) + off * s;
            } else {
                loss += lse - z[y[i]];
            }
        }
    }
    return loss;
}

void nn_backward(ens_model_t *m, int32_t b, const int32_t *y, double smoothing) {
    int32_t k = m->n_classes;
    nn_node_t *last = &m->nodes[m->n_nodes - 1];
    float scale = 1.0f / (float)b, off = (float)(smoothing / k);
    for (int32_t i = 0; i < b; i++) {
        float *d = last->dy + (size_t)i * k;
        const float *p = m->probs + (size_t)i * k;
        for (int32_t j = 0; j < k; j++)
            d[j] = (p[j] - off) * scale;
        d[y[i]] -= (float)(1.0 - smoothing) * scale;
    }
    nn_ctx_t c;
    make_ctx(m, &c, 1);
    /* a node's dy is written by its first consumer in backward order, added to by the rest */
    uint8_t written[NN_MAX_NODES];
    memset(written, 0, sizeof written);
    written[m->n_nodes - 1] = 1;
    for (int32_t i = m->n_nodes - 1; i >= 0; i--) {
        nn_node_t *n = &m->nodes[i];
        float *dx[2] = {NULL, NULL};
        int acc[2] = {0, 0};
        for (int32_t j = 0; j < n->n_in; j++) {
            int32_t src = n->s.in[j];
            if (src >= 0) {
                dx[j] = m->nodes[src].dy;
                acc[j] = written[src];
                written[src] = 1;
            }
        }
        if (n->n_in == 2 && n->s.in[0] == n->s.in[1] && dx[0])
            acc[1] = 1; /* x + x: the second half adds to the first */
        const float *x0 = node_in(m, n->s.in[0]);
        if (!c.be->node_backward ||
            c.be->node_backward(&c, n, b, x0, dx[0], dx[1], acc[0], acc[1]) != 0)
            nn_ops(n->s.kind)->backward(&c, n, b, x0, dx[0], dx[1], acc[0], acc[1]);
    }
}
