/* flatten.c - C x H x W -> (C*H*W) x 1 x 1; NCHW samples are contiguous, so a copy. */
#include "../nn_internal.h"

#include <string.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    n->out = (nn_shape_t){in->c * in->h * in->w, 1, 1};
    return NULL;
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)c, (void)x1;
    memcpy(n->y, x, (size_t)b * n->size_out * sizeof(float));
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)c, (void)x, (void)dx1, (void)acc1;
    if (!dx)
        return;
    size_t len = (size_t)b * n->size_out;
    if (acc)
        for (size_t i = 0; i < len; i++)
            dx[i] += n->dy[i];
    else
        memcpy(dx, n->dy, len * sizeof(float));
}

const nn_layer_ops_t nn_flatten_ops = {"flatten", setup, NULL, NULL, forward, backward};
