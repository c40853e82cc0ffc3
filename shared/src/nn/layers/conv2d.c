/* conv2d.c - 2-D convolution (stride, zero padding, optional fused ReLU): im2col + sgemm, and
 * Winograd F(2x2, 3x3) for 3x3 stride-1 layers wide enough to gain (conv2d_wino.c). */
#include "conv2d_direct.h"
#include "conv2d_wino.h"

#include <math.h>
#include <string.h>

/*
 * One sample at a time: col [C*k*k x Ho*Wo] = im2col(x), y [F x Ho*Wo] = W [F x C*k*k] col.
 * The batch is split into NN_CHUNKS chunks over the threads; weight gradients are summed per
 * chunk and then over chunks in order, so the result does not depend on the thread count.
 * A 1x1 convolution with stride 1 and no padding uses x itself as col. A 3x3 stride-1 layer
 * with at least WINO_MIN_C input channels and WINO_MIN_F filters takes the Winograd path for
 * the whole chunk (forward, input and weight gradients) unless nn_reference_kernels is set.
 * A stride-1 layer with at most NN_DIRECT_MAX_C input channels is computed directly
 * (conv2d_direct.c): forward, and the weight gradient where no input gradient is needed
 * (a first layer); its input gradient, where one is, goes through im2col.
 */

/* Below these, the sixteen Winograd products are too thin to beat one im2col product
 * (tests/bench/nn, the reference CNN: its first layer has one input channel). */
#define WINO_MIN_C 8
#define WINO_MIN_F 8

typedef nn_conv_geom_t geom_t;

static geom_t geom(const nn_node_t *n) {
    return (geom_t){n->in_shape.c, n->in_shape.h, n->in_shape.w, n->s.units, n->s.k,
                    n->s.stride, n->s.pad, n->out.h, n->out.w};
}

static int is_pointwise(const geom_t *g) { return g->k == 1 && g->s == 1 && g->p == 0; }

/* The Winograd workspace grows with F x C: a layer too wide for it keeps im2col. */
static int wino_fits(const geom_t *g) {
    return nn_wino_applies(g) && g->C >= WINO_MIN_C && g->F >= WINO_MIN_F &&
           nn_wino_ws(g) <= NN_MAX_SAMPLE && nn_wino_u_size(g) <= NN_MAX_SAMPLE;
}

/* Any batch, one sample too: the weights' transform is cached (wino_weights). */
static int use_wino(const geom_t *g) { return !nn_reference_kernels && wino_fits(g); }

static int use_direct(const geom_t *g) {
    return !nn_reference_kernels && nn_direct_applies(g) && !wino_fits(g);
}

/* The transformed weights, kept in the node between calls: n->keep holds a valid flag, U,
 * then the weights U was made from. They are transformed again whenever the weights differ
 * (an optimiser step, a load), so nothing that writes parameters needs to know of the
 * cache; the check is one memcmp of the weights, a fraction of the transform. */
static const float *wino_weights(const geom_t *g, const nn_node_t *n, const float *w) {
    float *U = n->keep + 1, *src = U + nn_wino_u_size(g);
    size_t bytes = (size_t)n->w_n * sizeof *w;
    if (n->keep[0] != 1.0f || memcmp(src, w, bytes) != 0) {
        nn_wino_weights(g, w, U);
        memcpy(src, w, bytes);
        n->keep[0] = 1.0f;
    }
    return U;
}

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    const nn_spec_t *s = &n->s;
    if (s->units < 1 || s->units > NN_MAX_DIM)
        return "filters out of range";
    if (s->k < 1 || s->k > NN_MAX_KERNEL || s->stride < 1 || s->stride > NN_MAX_KERNEL ||
        s->pad < 0 || s->pad >= s->k)
        return "kernel, stride or padding out of range";
    if (s->relu != 0 && s->relu != 1)
        return "bad fused activation";
    int32_t hp = in->h + 2 * s->pad, wp = in->w + 2 * s->pad;
    if (hp < s->k || wp < s->k)
        return "kernel larger than the padded input";
    n->out = (nn_shape_t){s->units, (hp - s->k) / s->stride + 1, (wp - s->k) / s->stride + 1};
    int64_t ckk = (int64_t)in->c * s->k * s->k;
    n->w_n = ckk * s->units;
    n->p_n = n->w_n + s->units;
    n->ws_n = 2 * ckk * n->out.h * n->out.w;
    geom_t g = geom(n);
    n->keep_n = 0;
    if (wino_fits(&g)) {
        n->ws_n = nn_wino_ws(&g) > n->ws_n ? nn_wino_ws(&g) : n->ws_n;
        n->keep_n = 1 + nn_wino_u_size(&g) + n->w_n; /* valid flag, U, the weights it is of */
    }
    if (nn_direct_applies(&g) && nn_direct_ws(&g) > n->ws_n)
        n->ws_n = nn_direct_ws(&g);
    n->part_n = n->p_n;
    return NULL;
}

static void init(const nn_node_t *n, float *p, float *buf, ens_rng_t *rng) {
    (void)buf;
    double sd = sqrt(2.0 / ((double)n->in_shape.c * n->s.k * n->s.k));
    for (int64_t i = 0; i < n->w_n; i++)
        p[i] = (float)(sd * ens_rng_normal(rng));
}

static void im2col(const geom_t *g, const float *x, float *col) {
    int32_t hw = g->Ho * g->Wo;
    for (int32_t c = 0; c < g->C; c++)
        for (int32_t ki = 0; ki < g->k; ki++)
            for (int32_t kj = 0; kj < g->k; kj++) {
                float *row = col + (size_t)((c * g->k + ki) * g->k + kj) * hw;
                const float *plane = x + (size_t)c * g->H * g->W;
                /* ox range whose input column is inside: 0 <= ox*s - p + kj < W */
                int32_t lo = 0, hi = g->Wo;
                while (lo < g->Wo && lo * g->s - g->p + kj < 0)
                    lo++;
                while (hi > lo && (hi - 1) * g->s - g->p + kj >= g->W)
                    hi--;
                for (int32_t oy = 0; oy < g->Ho; oy++) {
                    float *r = row + (size_t)oy * g->Wo;
                    int32_t iy = oy * g->s - g->p + ki;
                    if (iy < 0 || iy >= g->H) {
                        memset(r, 0, (size_t)g->Wo * sizeof *r);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * g->W - g->p + kj;
                    for (int32_t ox = 0; ox < lo; ox++)
                        r[ox] = 0.0f;
                    if (g->s == 1) {
                        if (hi > lo)
                            memcpy(r + lo, src + lo, (size_t)(hi - lo) * sizeof *r);
                    } else {
                        for (int32_t ox = lo; ox < hi; ox++)
                            r[ox] = src[ox * g->s];
                    }
                    for (int32_t ox = hi; ox < g->Wo; ox++)
                        r[ox] = 0.0f;
                }
            }
}

/* dx += col2im(dcol) */
static void col2im_add(const geom_t *g, const float *col, float *dx) {
    int32_t hw = g->Ho * g->Wo;
    for (int32_t c = 0; c < g->C; c++)
        for (int32_t ki = 0; ki < g->k; ki++)
            for (int32_t kj = 0; kj < g->k; kj++) {
                const float *row = col + (size_t)((c * g->k + ki) * g->k + kj) * hw;
                float *plane = dx + (size_t)c * g->H * g->W;
                int32_t lo = 0, hi = g->Wo;
                while (lo < g->Wo && lo * g->s - g->p + kj < 0)
                    lo++;
                while (hi > lo && (hi - 1) * g->s - g->p + kj >= g->W)
                    hi--;
                for (int32_t oy = 0; oy < g->Ho; oy++) {
                    int32_t iy = oy * g->s - g->p + ki;
                    if (iy < 0 || iy >= g->H)
                        continue;
                    const float *r = row + (size_t)oy * g->Wo;
                    float *dst = plane + (size_t)iy * g->W - g->p + kj;
                    for (int32_t ox = lo; ox < hi; ox++)
                        dst[ox * g->s] += r[ox];
                }
            }
}

typedef struct {
    nn_ctx_t *c;
    nn_node_t *n;
    geom_t g;
    const float *x;
    float *dx;
    int acc;
    const float *U; /* not NULL: the Winograd path, with these transformed weights */
    int direct;     /* the direct path (conv2d_direct.c) */
} job_t;

static void bias_relu(const nn_node_t *n, const float *bias, float *y, int32_t hw) {
    for (int32_t f = 0; f < n->s.units; f++) {
        float bf = bias[f], *r = y + (size_t)f * hw;
        if (n->s.relu)
            for (int32_t i = 0; i < hw; i++) {
                float v = r[i] + bf;
                r[i] = v > 0.0f ? v : 0.0f;
            }
        else
            for (int32_t i = 0; i < hw; i++)
                r[i] += bf;
    }
}

static void fwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    (void)chunk;
    job_t *j = arg;
    const geom_t *g = &j->g;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    const float *w = j->c->params + j->n->p_off;
    float *col = j->c->ws + (size_t)tid * j->c->ws_per_thread;
    if (j->U) {
        nn_wino_forward(j->c->be, g, j->U, w + j->n->w_n, j->n->s.relu,
                        j->x + (size_t)s0 * j->n->size_in, s1 - s0,
                        j->n->y + (size_t)s0 * j->n->size_out, col);
        return;
    }
    for (int32_t s = s0; s < s1; s++) {
        const float *xs = j->x + (size_t)s * j->n->size_in;
        float *ys = j->n->y + (size_t)s * j->n->size_out;
        if (j->direct) {
            nn_direct_forward(g, w, w + j->n->w_n, j->n->s.relu, xs, ys, col);
            continue;
        }
        const float *cs = xs;
        if (!is_pointwise(g)) {
            im2col(g, xs, col);
            cs = col;
        }
        j->c->be->gemm(0, 0, g->F, hw, ckk, 1.0f, w, ckk, cs, hw, 0.0f, ys, hw);
        bias_relu(j->n, w + j->n->w_n, ys, hw);
    }
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    job_t j = {c, n, geom(n), x, NULL, 0, NULL, 0};
    if (use_wino(&j.g))
        j.U = wino_weights(&j.g, n, c->params + n->p_off);
    j.direct = use_direct(&j.g);
    if (j.U || j.direct || b >= 2 || c->be->max_threads() == 1) {
        nn_par_samples(c, b, fwd_chunk, &j);
        return;
    }
    /* one sample: split the product instead */
    const geom_t *g = &j.g;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    const float *w = c->params + n->p_off, *cs = x;
    if (!is_pointwise(g)) {
        im2col(g, x, c->ws);
        cs = c->ws;
    }
    nn_par_gemm(c, 0, 0, g->F, hw, ckk, w, ckk, cs, hw, 0.0f, n->y, hw);
    bias_relu(n, w + n->w_n, n->y, hw);
}

/* Where y (the fused ReLU's output, NULL without one) is not positive, d = 0; returns the sum
 * of d. Sixteen partial sums, added in a fixed order, so the compiler can vectorise the loop
 * (one running sum is a chain of dependent adds, and was a fifth of a CNN's backward pass)
 * and the result still does not depend on the thread count. */
static float mask_and_sum(float *restrict d, const float *restrict y, int32_t n) {
    float acc[16] = {0.0f};
    int32_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) {
            float v = y && !(y[i + k] > 0.0f) ? 0.0f : d[i + k];
            d[i + k] = v;
            acc[k] += v;
        }
    for (; i < n; i++) {
        float v = y && !(y[i] > 0.0f) ? 0.0f : d[i];
        d[i] = v;
        acc[0] += v;
    }
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++)
            acc[k] += acc[k + w];
    return acc[0];
}

static void bwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    job_t *j = arg;
    const geom_t *g = &j->g;
    const nn_node_t *n = j->n;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    const float *w = j->c->params + n->p_off;
    float *col = j->c->ws + (size_t)tid * j->c->ws_per_thread, *dcol = col + (size_t)ckk * hw;
    float *part = j->c->parts + (size_t)chunk * n->part_n, *pb = part + n->w_n;
    memset(part, 0, (size_t)n->p_n * sizeof *part);
    int wino = j->U != NULL;
    for (int32_t s = s0; s < s1; s++) {
        const float *xs = j->x + (size_t)s * n->size_in;
        float *dys = n->dy + (size_t)s * n->size_out;
        const float *ys = n->s.relu ? n->y + (size_t)s * n->size_out : NULL;
        for (int32_t f = 0; f < g->F; f++)
            pb[f] += mask_and_sum(dys + (size_t)f * hw, ys ? ys + (size_t)f * hw : NULL, hw);
        if (wino)
            continue;
        if (j->direct && !j->dx) {
            nn_direct_weight_grad(g, xs, dys, part, col);
            continue;
        }
        const float *cs = xs;
        if (!is_pointwise(g)) {
            im2col(g, xs, col);
            cs = col;
        }
        j->c->be->gemm(0, 1, g->F, ckk, hw, 1.0f, dys, hw, cs, hw, 1.0f, part, ckk);
        if (!j->dx)
            continue;
        float *dxs = j->dx + (size_t)s * n->size_in;
        if (is_pointwise(g)) {
            j->c->be->gemm(1, 0, ckk, hw, g->F, 1.0f, w, ckk, dys, hw, j->acc ? 1.0f : 0.0f,
                           dxs, hw);
        } else {
            j->c->be->gemm(1, 0, ckk, hw, g->F, 1.0f, w, ckk, dys, hw, 0.0f, dcol, hw);
            if (!j->acc)
                memset(dxs, 0, (size_t)n->size_in * sizeof *dxs);
            col2im_add(g, dcol, dxs);
        }
    }
    if (wino)
        nn_wino_backward(j->c->be, g, j->U, j->x + (size_t)s0 * n->size_in,
                         n->dy + (size_t)s0 * n->size_out, s1 - s0, part,
                         j->dx ? j->dx + (size_t)s0 * n->size_in : NULL, j->acc, col);
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)dx1, (void)acc1;
    job_t j = {c, n, geom(n), x, dx, acc, NULL, 0};
    if (use_wino(&j.g))
        j.U = wino_weights(&j.g, n, c->params + n->p_off);
    j.direct = use_direct(&j.g);
    nn_par_samples(c, b, bwd_chunk, &j);
    int32_t chunks = b < NN_CHUNKS ? b : NN_CHUNKS;
    float *g = c->grads + n->p_off;
    memcpy(g, c->parts, (size_t)n->p_n * sizeof *g);
    for (int32_t k = 1; k < chunks; k++) {
        const float *part = c->parts + (size_t)k * n->part_n;
        for (int64_t i = 0; i < n->p_n; i++)
            g[i] += part[i];
    }
}

const nn_layer_ops_t nn_conv2d_ops = {"conv2d", setup, NULL, init, forward, backward};
