/* relu.c - y = max(x, 0). */
#include "../nn_internal.h"

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    n->out = *in;
    return NULL;
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)c, (void)x1;
    size_t len = (size_t)b * n->size_out;
    for (size_t i = 0; i < len; i++)
        n->y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)c, (void)dx1, (void)acc1;
    if (!dx)
        return;
    size_t len = (size_t)b * n->size_out;
    const float *dy = n->dy;
    if (acc)
        for (size_t i = 0; i < len; i++)
            dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
    else
        for (size_t i = 0; i < len; i++)
            dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

const nn_layer_ops_t nn_relu_ops = {"relu", setup, NULL, NULL, forward, backward};
