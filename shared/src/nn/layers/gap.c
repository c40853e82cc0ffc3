/* gap.c - global average pooling: C x H x W -> C x 1 x 1. */
#include "../nn_internal.h"

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    n->out = (nn_shape_t){in->c, 1, 1};
    return NULL;
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)c, (void)x1;
    int64_t hw = (int64_t)n->in_shape.h * n->in_shape.w;
    float inv = 1.0f / (float)hw;
    for (int64_t i = 0; i < (int64_t)b * n->out.c; i++) {
        const float *p = x + i * hw;
        float sum = 0.0f;
        for (int64_t j = 0; j < hw; j++)
            sum += p[j];
        n->y[i] = sum * inv;
    }
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)c, (void)x, (void)dx1, (void)acc1;
    if (!dx)
        return;
    int64_t hw = (int64_t)n->in_shape.h * n->in_shape.w;
    float inv = 1.0f / (float)hw;
    for (int64_t i = 0; i < (int64_t)b * n->out.c; i++) {
        float g = n->dy[i] * inv, *p = dx + i * hw;
        for (int64_t j = 0; j < hw; j++)
            p[j] = acc ? p[j] + g : g;
    }
}

const nn_layer_ops_t nn_gap_ops = {"gap", setup, NULL, NULL, forward, backward};
