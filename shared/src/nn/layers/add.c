/* add.c - residual add y = x0 + x1 of two nodes of the same shape. */
#include "../nn_internal.h"

#include <string.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in0, const nn_shape_t *in1) {
    if (!in1 || in0->c != in1->c || in0->h != in1->h || in0->w != in1->w)
        return "the two inputs differ in shape";
    n->out = *in0;
    return NULL;
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x0, const float *x1) {
    (void)c;
    size_t len = (size_t)b * n->size_out;
    for (size_t i = 0; i < len; i++)
        n->y[i] = x0[i] + x1[i];
}

static void pass(float *dx, const float *dy, size_t len, int acc) {
    if (!dx)
        return;
    if (acc)
        for (size_t i = 0; i < len; i++)
            dx[i] += dy[i];
    else
        memcpy(dx, dy, len * sizeof *dx);
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx0,
                     float *dx1, int acc0, int acc1) {
    (void)c, (void)x;
    size_t len = (size_t)b * n->size_out;
    pass(dx0, n->dy, len, acc0);
    pass(dx1, n->dy, len, acc1);
}

const nn_layer_ops_t nn_add_ops = {"add", setup, NULL, NULL, forward, backward};
