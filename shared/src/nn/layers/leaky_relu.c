/* leaky_relu.c - y = x for x > 0, alpha x otherwise (alpha in [0, 1), default 0.01). */
#include "../nn_internal.h"

#include <math.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    if (!(n->s.alpha >= 0.0f && n->s.alpha < 1.0f))
        return "slope outside [0, 1)";
    n->out = *in;
    return NULL;
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)c, (void)x1;
    size_t len = (size_t)b * n->size_out;
    float a = n->s.alpha;
    for (size_t i = 0; i < len; i++)
        n->y[i] = x[i] > 0.0f ? x[i] : a * x[i];
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)c, (void)dx1, (void)acc1;
    if (!dx)
        return;
    size_t len = (size_t)b * n->size_out;
    float a = n->s.alpha;
    for (size_t i = 0; i < len; i++) {
        float g = x[i] > 0.0f ? n->dy[i] : a * n->dy[i];
        dx[i] = acc ? dx[i] + g : g;
    }
}

const nn_layer_ops_t nn_leaky_relu_ops = {"leaky_relu", setup, NULL, NULL, forward, backward};
