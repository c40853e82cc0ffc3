/* dense.c - fully connected layer y = x W + b (optional fused ReLU); x is a flat sample. */
#include "../nn_internal.h"

#include <math.h>
#include <string.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in0, const nn_shape_t *in1) {
    (void)in1;
    (void)in0;
    if (n->s.units < 1 || n->s.units > NN_MAX_DIM)
        return "units out of range";
    if (n->s.relu != 0 && n->s.relu != 1)
        return "bad fused activation";
    n->out = (nn_shape_t){n->s.units, 1, 1};
    n->w_n = n->size_in * n->s.units;
    n->p_n = n->w_n + n->s.units;
    return NULL;
}

static void init(const nn_node_t *n, float *p, float *buf, ens_rng_t *rng) {
    (void)buf;
    double sd = sqrt(2.0 / (double)n->size_in); /* He */
    for (int64_t i = 0; i < n->w_n; i++)
        p[i] = (float)(sd * ens_rng_normal(rng));
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    int32_t in = (int32_t)n->size_in, out = n->s.units;
    const float *w = c->params + n->p_off, *bias = w + n->w_n;
    float *y = n->y;
    for (int32_t i = 0; i < b; i++)
        memcpy(y + (size_t)i * out, bias, (size_t)out * sizeof *y);
    nn_par_gemm(c, 0, 0, b, out, in, x, in, w, out, 1.0f, y, out);
    if (n->s.relu)
        for (size_t i = 0; i < (size_t)b * out; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)dx1, (void)acc1;
    int32_t in = (int32_t)n->size_in, out = n->s.units;
    float *dy = n->dy;
    if (n->s.relu)
        for (size_t i = 0; i < (size_t)b * out; i++)
            dy[i] = n->y[i] > 0.0f ? dy[i] : 0.0f;
    float *gw = c->grads + n->p_off, *gb = gw + n->w_n;
    nn_par_gemm(c, 1, 0, in, out, b, x, in, dy, out, 0.0f, gw, out);
    memset(gb, 0, (size_t)out * sizeof *gb);
    for (int32_t i = 0; i < b; i++)
        for (int32_t j = 0; j < out; j++)
            gb[j] += dy[(size_t)i * out + j];
    if (dx)
        nn_par_gemm(c, 0, 1, b, in, out, dy, out, c->params + n->p_off, out, acc ? 1.0f : 0.0f,
                    dx, in);
}

const nn_layer_ops_t nn_dense_ops = {"dense", setup, NULL, init, forward, backward};
