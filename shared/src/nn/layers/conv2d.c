/* conv2d.c - 2-D convolution (stride, zero padding, optional fused ReLU): im2col + sgemm. */
#include "../nn_internal.h"

#include <math.h>
#include <string.h>

/*
 * Per sample: col [C*k*k x Ho*Wo] = im2col(x), y [F x Ho*Wo] = W [F x C*k*k] col.
 * The batch is split into NN_CHUNKS chunks over the threads; weight gradients are summed per
 * chunk and then over chunks in order, so the result does not depend on the thread count.
 * A 1x1 convolution with stride 1 and no padding uses x itself as col.
 * Small feature maps (the deeper layers of a CNN: 14x14, 7x7) make products too narrow for
 * sgemm to run at speed, so there up to group_max() samples of a chunk share one product: their
 * columns side by side, col [C*k*k x nb*Ho*Wo], and y (or dy) staged as [F x nb*Ho*Wo].
 * nn_reference_kernels keeps one sample a product.
 */
#define GROUP_COLS 784 /* columns a grouped product aims at (one 28x28 map's worth) */
#define GROUP_MAX 16

typedef struct {
    int32_t C, H, W, F, k, s, p, Ho, Wo;
} geom_t;

static geom_t geom(const nn_node_t *n) {
    return (geom_t){n->in_shape.c, n->in_shape.h, n->in_shape.w, n->s.units, n->s.k,
                    n->s.stride, n->s.pad, n->out.h, n->out.w};
}

static int is_pointwise(const geom_t *g) { return g->k == 1 && g->s == 1 && g->p == 0; }

/* Floats of one sample's share of the workspace: col, dcol, staged y/dy. */
static int64_t ws_per_sample(const geom_t *g) {
    int64_t hw = (int64_t)g->Ho * g->Wo;
    return (2 * (int64_t)g->C * g->k * g->k + g->F) * hw;
}

/* Samples a product takes for this layer (1 = one at a time). */
static int32_t group_max(const geom_t *g) {
    int32_t hw = g->Ho * g->Wo;
    if (hw >= GROUP_COLS / 2)
        return 1;
    int32_t nb = (GROUP_COLS + hw - 1) / hw;
    nb = nb < GROUP_MAX ? nb : GROUP_MAX;
    while (nb > 1 && nb * ws_per_sample(g) > NN_MAX_SAMPLE * 2)
        nb--;
    return nb;
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
    geom_t g = {in->c, in->h, in->w, s->units, s->k, s->stride, s->pad, n->out.h, n->out.w};
    n->ws_n = group_max(&g) * ws_per_sample(&g);
    n->part_n = n->p_n;
    return NULL;
}

static void init(const nn_node_t *n, float *p, float *buf, ens_rng_t *rng) {
    (void)buf;
    double sd = sqrt(2.0 / ((double)n->in_shape.c * n->s.k * n->s.k));
    for (int64_t i = 0; i < n->w_n; i++)
        p[i] = (float)(sd * ens_rng_normal(rng));
}

/* col's rows are ld floats apart (Ho*Wo for one sample, more when samples share col). */
static void im2col(const geom_t *g, const float *x, float *col, size_t ld) {
    for (int32_t c = 0; c < g->C; c++)
        for (int32_t ki = 0; ki < g->k; ki++)
            for (int32_t kj = 0; kj < g->k; kj++) {
                float *row = col + (size_t)((c * g->k + ki) * g->k + kj) * ld;
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
static void col2im_add(const geom_t *g, const float *col, size_t ld, float *dx) {
    for (int32_t c = 0; c < g->C; c++)
        for (int32_t ki = 0; ki < g->k; ki++)
            for (int32_t kj = 0; kj < g->k; kj++) {
                const float *row = col + (size_t)((c * g->k + ki) * g->k + kj) * ld;
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

/* Samples s .. s+nb-1 (nb >= 2) in one product. */
static void fwd_group(job_t *j, int32_t s, int32_t nb, float *ws) {
    const geom_t *g = &j->g;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    size_t ld = (size_t)nb * hw;
    const float *w = j->c->params + j->n->p_off;
    float *col = ws, *yt = ws + (size_t)ckk * ld;
    for (int32_t q = 0; q < nb; q++)
        im2col(g, j->x + (size_t)(s + q) * j->n->size_in, col + (size_t)q * hw, ld);
    j->c->be->gemm(0, 0, g->F, (int32_t)ld, ckk, 1.0f, w, ckk, col, (int32_t)ld, 0.0f, yt,
                   (int32_t)ld);
    for (int32_t q = 0; q < nb; q++) {
        float *ys = j->n->y + (size_t)(s + q) * j->n->size_out;
        for (int32_t f = 0; f < g->F; f++)
            memcpy(ys + (size_t)f * hw, yt + (size_t)f * ld + (size_t)q * hw,
                   (size_t)hw * sizeof *ys);
        bias_relu(j->n, w + j->n->w_n, ys, hw);
    }
}

static void fwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    (void)chunk;
    job_t *j = arg;
    const geom_t *g = &j->g;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    int32_t nb_max = nn_reference_kernels ? 1 : group_max(g);
    const float *w = j->c->params + j->n->p_off;
    float *col = j->c->ws + (size_t)tid * j->c->ws_per_thread;
    for (int32_t s = s0; s < s1;) {
        int32_t nb = s1 - s < nb_max ? s1 - s : nb_max;
        if (nb >= 2) {
            fwd_group(j, s, nb, col);
            s += nb;
            continue;
        }
        const float *xs = j->x + (size_t)s * j->n->size_in;
        float *ys = j->n->y + (size_t)s * j->n->size_out;
        const float *cs = xs;
        if (!is_pointwise(g)) {
            im2col(g, xs, col, (size_t)hw);
            cs = col;
        }
        j->c->be->gemm(0, 0, g->F, hw, ckk, 1.0f, w, ckk, cs, hw, 0.0f, ys, hw);
        bias_relu(j->n, w + j->n->w_n, ys, hw);
        s++;
    }
}

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    job_t j = {c, n, geom(n), x, NULL, 0};
    if (b >= 2 || c->be->max_threads() == 1) {
        nn_par_samples(c, b, fwd_chunk, &j);
        return;
    }
    /* one sample: split the product instead */
    const geom_t *g = &j.g;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    const float *w = c->params + n->p_off, *cs = x;
    if (!is_pointwise(g)) {
        im2col(g, x, c->ws, (size_t)hw);
        cs = c->ws;
    }
    nn_par_gemm(c, 0, 0, g->F, hw, ckk, w, ckk, cs, hw, 0.0f, n->y, hw);
    bias_relu(n, w + n->w_n, n->y, hw);
}

/* The fused ReLU's gradient mask on sample s's dy. */
static void relu_mask(const nn_node_t *n, int32_t s) {
    if (!n->s.relu)
        return;
    float *dys = n->dy + (size_t)s * n->size_out;
    const float *ys = n->y + (size_t)s * n->size_out;
    for (int64_t i = 0; i < n->size_out; i++)
        dys[i] = ys[i] > 0.0f ? dys[i] : 0.0f;
}

/* Samples s .. s+nb-1 (nb >= 2) in one product each for dW, the bias and dx. */
static void bwd_group(job_t *j, int32_t s, int32_t nb, float *ws, float *part) {
    const geom_t *g = &j->g;
    const nn_node_t *n = j->n;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    size_t ld = (size_t)nb * hw;
    const float *w = j->c->params + n->p_off;
    float *col = ws, *dcol = col + (size_t)ckk * ld, *dyt = dcol + (size_t)ckk * ld;
    float *pb = part + n->w_n;
    for (int32_t q = 0; q < nb; q++) {
        relu_mask(n, s + q);
        const float *dys = n->dy + (size_t)(s + q) * n->size_out;
        for (int32_t f = 0; f < g->F; f++)
            memcpy(dyt + (size_t)f * ld + (size_t)q * hw, dys + (size_t)f * hw,
                   (size_t)hw * sizeof *dyt);
        im2col(g, j->x + (size_t)(s + q) * n->size_in, col + (size_t)q * hw, ld);
    }
    j->c->be->gemm(0, 1, g->F, ckk, (int32_t)ld, 1.0f, dyt, (int32_t)ld, col, (int32_t)ld, 1.0f,
                   part, ckk);
    for (int32_t f = 0; f < g->F; f++) {
        const float *r = dyt + (size_t)f * ld;
        float sum = 0.0f;
        for (size_t i = 0; i < ld; i++)
            sum += r[i];
        pb[f] += sum;
    }
    if (!j->dx)
        return;
    j->c->be->gemm(1, 0, ckk, (int32_t)ld, g->F, 1.0f, w, ckk, dyt, (int32_t)ld, 0.0f, dcol,
                   (int32_t)ld);
    for (int32_t q = 0; q < nb; q++) {
        float *dxs = j->dx + (size_t)(s + q) * n->size_in;
        if (!j->acc)
            memset(dxs, 0, (size_t)n->size_in * sizeof *dxs);
        col2im_add(g, dcol + (size_t)q * hw, ld, dxs);
    }
}

static void bwd_chunk(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid) {
    job_t *j = arg;
    const geom_t *g = &j->g;
    const nn_node_t *n = j->n;
    int32_t hw = g->Ho * g->Wo, ckk = g->C * g->k * g->k;
    int32_t nb_max = nn_reference_kernels ? 1 : group_max(g);
    const float *w = j->c->params + n->p_off;
    float *col = j->c->ws + (size_t)tid * j->c->ws_per_thread, *dcol = col + (size_t)ckk * hw;
    float *part = j->c->parts + (size_t)chunk * n->part_n, *pb = part + n->w_n;
    memset(part, 0, (size_t)n->p_n * sizeof *part);
    for (int32_t s = s0; s < s1; s++) {
        int32_t nb = s1 - s < nb_max ? s1 - s : nb_max;
        if (nb >= 2) {
            bwd_group(j, s, nb, col, part);
            s += nb - 1;
            continue;
        }
        const float *xs = j->x + (size_t)s * n->size_in;
        float *dys = n->dy + (size_t)s * n->size_out;
        relu_mask(n, s);
        const float *cs = xs;
        if (!is_pointwise(g)) {
            im2col(g, xs, col, (size_t)hw);
            cs = col;
        }
        j->c->be->gemm(0, 1, g->F, ckk, hw, 1.0f, dys, hw, cs, hw, 1.0f, part, ckk);
        for (int32_t f = 0; f < g->F; f++) {
            const float *r = dys + (size_t)f * hw;
            float sum = 0.0f;
            for (int32_t i = 0; i < hw; i++)
                sum += r[i];
            pb[f] += sum;
        }
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
            col2im_add(g, dcol, (size_t)hw, dxs);
        }
    }
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)dx1, (void)acc1;
    job_t j = {c, n, geom(n), x, dx, acc};
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
