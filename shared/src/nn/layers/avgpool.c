/* avgpool.c - average pooling over k x k windows; padding counts as zeros (divide by k*k). */
#include "pool_common.h"

#include <string.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    return pool_setup(n, in);
}

typedef struct {
    nn_node_t *n;
    const float *x;
    float *dx;
    int acc;
} job_t;

static void fwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    (void)chunk, (void)tid;
    job_t *j = arg;
    const nn_node_t *n = j->n;
    int32_t H = n->in_shape.h, W = n->in_shape.w, Ho = n->out.h, Wo = n->out.w;
    int32_t k = n->s.k, st = n->s.stride, p = n->s.pad;
    float inv = 1.0f / (float)(k * k);
    for (int32_t s = s0; s < s1; s++)
        for (int32_t c = 0; c < n->out.c; c++) {
            const float *plane = j->x + (size_t)s * n->size_in + (size_t)c * H * W;
            float *y = n->y + (size_t)s * n->size_out + (size_t)c * Ho * Wo;
            for (int32_t oy = 0; oy < Ho; oy++)
                for (int32_t ox = 0; ox < Wo; ox++) {
                    float sum = 0.0f;
                    for (int32_t ki = 0; ki < k; ki++) {
                        int32_t iy = oy * st - p + ki;
                        if (iy < 0 || iy >= H)
                            continue;
                        for (int32_t kj = 0; kj < k; kj++) {
                            int32_t ix = ox * st - p + kj;
                            if (ix >= 0 && ix < W)
                                sum += plane[iy * W + ix];
                        }
                    }
                    y[oy * Wo + ox] = sum * inv;
                }
        }
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    job_t j = {n, x, NULL, 0};
    nn_par_samples(c, b, fwd_chunk, &j);
}

static void bwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    (void)chunk, (void)tid;
    job_t *j = arg;
    const nn_node_t *n = j->n;
    int32_t H = n->in_shape.h, W = n->in_shape.w, Ho = n->out.h, Wo = n->out.w;
    int32_t k = n->s.k, st = n->s.stride, p = n->s.pad;
    float inv = 1.0f / (float)(k * k);
    for (int32_t s = s0; s < s1; s++) {
        if (!j->acc)
            memset(j->dx + (size_t)s * n->size_in, 0, (size_t)n->size_in * sizeof(float));
        for (int32_t c = 0; c < n->out.c; c++) {
            float *plane = j->dx + (size_t)s * n->size_in + (size_t)c * H * W;
            const float *dy = n->dy + (size_t)s * n->size_out + (size_t)c * Ho * Wo;
            for (int32_t oy = 0; oy < Ho; oy++)
                for (int32_t ox = 0; ox < Wo; ox++) {
                    float g = dy[oy * Wo + ox] * inv;
                    for (int32_t ki = 0; ki < k; ki++) {
                        int32_t iy = oy * st - p + ki;
                        if (iy < 0 || iy >= H)
                            continue;
                        for (int32_t kj = 0; kj < k; kj++) {
                            int32_t ix = ox * st - p + kj;
                            if (ix >= 0 && ix < W)
                                plane[iy * W + ix] += g;
                        }
                    }
                }
        }
    }
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)x, (void)dx1, (void)acc1;
    if (!dx)
        return;
    job_t j = {n, NULL, dx, acc};
    nn_par_samples(c, b, bwd_chunk, &j);
}

const nn_layer_ops_t nn_avgpool_ops = {"avgpool", setup, NULL, NULL, forward, backward};
