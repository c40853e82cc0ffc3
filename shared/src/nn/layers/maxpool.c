/* maxpool.c - max pooling over k x k windows; the argmax is kept for backward when training. */
#include "pool_common.h"

#include <float.h>
#include <string.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    return pool_setup(n, in);
}

static int64_t aux_floats(const nn_node_t *n, int32_t b) { return (int64_t)b * n->size_out; }

typedef struct {
    nn_node_t *n;
    const float *x;
    float *dx;
    int acc, train;
    int generic; /* the general loop even where a fast path exists (tests) */
} job_t;

/*
 * 2x2 windows, stride 2, no padding (every pooling the architecture builder makes by
 * default): no bounds checks and no branches, so the compiler keeps it in registers. The same
 * result as the general loop, argmax included: the first maximum in window order wins and a
 * NaN in the first position stays.
 */
static void fwd_2x2(const nn_node_t *n, const float *x, int32_t *am, float *y) {
    int32_t H = n->in_shape.h, W = n->in_shape.w, Ho = n->out.h, Wo = n->out.w;
    for (int32_t c = 0; c < n->out.c; c++) {
        const float *plane = x + (size_t)c * H * W;
        for (int32_t oy = 0; oy < Ho; oy++) {
            const float *r0 = plane + (size_t)(2 * oy) * W, *r1 = r0 + W;
            float *yr = y + ((size_t)c * Ho + oy) * Wo;
            int32_t base = c * H * W + 2 * oy * W;
            if (!am) {
                for (int32_t ox = 0; ox < Wo; ox++) {
                    float best = r0[2 * ox], v;
                    v = r0[2 * ox + 1], best = v > best ? v : best;
                    v = r1[2 * ox], best = v > best ? v : best;
                    v = r1[2 * ox + 1], best = v > best ? v : best;
                    yr[ox] = best;
                }
                continue;
            }
            int32_t *ar = am + ((size_t)c * Ho + oy) * Wo;
            for (int32_t ox = 0; ox < Wo; ox++) {
                float best = r0[2 * ox], v;
                int32_t bi = base + 2 * ox;
                v = r0[2 * ox + 1], bi = v > best ? base + 2 * ox + 1 : bi;
                best = v > best ? v : best;
                v = r1[2 * ox], bi = v > best ? base + W + 2 * ox : bi;
                best = v > best ? v : best;
                v = r1[2 * ox + 1], bi = v > best ? base + W + 2 * ox + 1 : bi;
                best = v > best ? v : best;
                yr[ox] = best;
                ar[ox] = bi;
            }
        }
    }
}

static void fwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    (void)chunk, (void)tid;
    job_t *j = arg;
    const nn_node_t *n = j->n;
    int32_t H = n->in_shape.h, W = n->in_shape.w, Ho = n->out.h, Wo = n->out.w;
    int32_t k = n->s.k, st = n->s.stride, p = n->s.pad;
    if (k == 2 && st == 2 && p == 0 && !j->generic) {
        for (int32_t s = s0; s < s1; s++)
            fwd_2x2(n, j->x + (size_t)s * n->size_in,
                    j->train ? (int32_t *)n->aux + (size_t)s * n->size_out : NULL,
                    n->y + (size_t)s * n->size_out);
        return;
    }
    for (int32_t s = s0; s < s1; s++)
        for (int32_t c = 0; c < n->out.c; c++) {
            const float *plane = j->x + (size_t)s * n->size_in + (size_t)c * H * W;
            float *y = n->y + (size_t)s * n->size_out + (size_t)c * Ho * Wo;
            int32_t *am = j->train ? (int32_t *)n->aux + (size_t)s * n->size_out +
                                         (size_t)c * Ho * Wo
                                   : NULL;
            for (int32_t oy = 0; oy < Ho; oy++)
                for (int32_t ox = 0; ox < Wo; ox++) {
                    float best = -FLT_MAX;
                    int32_t bi = -1;
                    for (int32_t ki = 0; ki < k; ki++) {
                        int32_t iy = oy * st - p + ki;
                        if (iy < 0 || iy >= H)
                            continue;
                        for (int32_t kj = 0; kj < k; kj++) {
                            int32_t ix = ox * st - p + kj;
                            if (ix < 0 || ix >= W)
                                continue;
                            float v = plane[iy * W + ix];
                            if (bi < 0 || v > best)
                                best = v, bi = c * H * W + iy * W + ix;
                        }
                    }
                    y[oy * Wo + ox] = best;
                    if (am)
                        am[oy * Wo + ox] = bi;
                }
        }
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    job_t j = {n, x, NULL, 0, c->train && n->aux, nn_reference_kernels};
    nn_par_samples(c, b, fwd_chunk, &j);
}

static void bwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    (void)chunk, (void)tid;
    job_t *j = arg;
    const nn_node_t *n = j->n;
    for (int32_t s = s0; s < s1; s++) {
        float *dx = j->dx + (size_t)s * n->size_in;
        const float *dy = n->dy + (size_t)s * n->size_out;
        const int32_t *am = (const int32_t *)n->aux + (size_t)s * n->size_out;
        if (!j->acc)
            memset(dx, 0, (size_t)n->size_in * sizeof *dx);
        for (int64_t i = 0; i < n->size_out; i++)
            dx[am[i]] += dy[i];
    }
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)x, (void)dx1, (void)acc1;
    if (!dx)
        return;
    job_t j = {n, NULL, dx, acc, 1, 0};
    nn_par_samples(c, b, bwd_chunk, &j);
}

const nn_layer_ops_t nn_maxpool_ops = {"maxpool", setup, aux_floats, NULL, forward, backward};
