/* gelu.c - exact GELU y = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2. */
#include "../nn_internal.h"

#include <math.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    n->out = *in;
    return NULL;
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)c, (void)x1;
    size_t len = (size_t)b * n->size_out;
    for (size_t i = 0; i < len; i++)
        n->y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)c, (void)dx1, (void)acc1;
    if (!dx)
        return;
    size_t len = (size_t)b * n->size_out;
    const float inv_sqrt_2pi = 0.3989422804014327f;
    for (size_t i = 0; i < len; i++) {
        float v = x[i];
        float d = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2)) + v * inv_sqrt_2pi * expf(-0.5f * v * v);
        float g = d * n->dy[i];
        dx[i] = acc ? dx[i] + g : g;
    }
}

const nn_layer_ops_t nn_gelu_ops = {"gelu", setup, NULL, NULL, forward, backward};
