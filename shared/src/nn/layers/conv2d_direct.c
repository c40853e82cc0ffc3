/* conv2d_direct.c - stride-1 convolutions of few input channels, without im2col.
 *
 * A first layer has one to three input channels: im2col makes a product with an inner
 * dimension of k*k*C (9 for a grey image), too thin to run at speed, and builds a copy k*k
 * times the input. Here the input is copied once into a zero-bordered buffer whose rows are
 * as long as the output row rounded up to 32, and every output row is a sum of k*k*C shifted
 * input rows times a weight, four filters at a time in AVX-512 registers. The weight gradient
 * is the same sums the other way round: one vector of partial sums per weight, added over
 * the output rows, then summed across its lanes. Only where AVX-512 runs (nn_direct_applies);
 * im2col is the path elsewhere and the reference.
 */
#include "conv2d_direct.h"
#include "../small_gemm.h"

#include <string.h>

#ifdef NN_HAVE_AVX512
#define AVX512 NN_AVX512
#define INLINE static inline __attribute__((always_inline))
#endif

/* AVX-512 only (where small_gemm's kernels run): elsewhere im2col serves these layers. */
int nn_direct_applies(const nn_conv_geom_t *g) {
#ifdef NN_HAVE_AVX512
    return g->s == 1 && g->k > 1 && g->C <= NN_DIRECT_MAX_C && nn_small_gemm_ok();
#else
    (void)g;
    return 0;
#endif
}

/* the output row length rounded up to 32, and the padded input's row length and rows */
static int64_t row_len(const nn_conv_geom_t *g) { return ((int64_t)g->Wo + 31) / 32 * 32; }
static int64_t in_row(const nn_conv_geom_t *g) { return row_len(g) + g->k - 1; }
static int64_t in_rows(const nn_conv_geom_t *g) { return (int64_t)g->H + 2 * g->p; }

int64_t nn_direct_ws(const nn_conv_geom_t *g) {
    /* the padded input, then a padded output gradient plane */
    return (int64_t)g->C * in_rows(g) * in_row(g) + (int64_t)g->Ho * row_len(g);
}

/* xp [C][H + 2p][in_row] = x with p zeros above, below and left, zeros right to the end */
static void pad_input(const nn_conv_geom_t *g, const float *x, float *xp) {
    int64_t ir = in_row(g), rows = in_rows(g);
    memset(xp, 0, (size_t)(g->C * rows * ir) * sizeof *xp);
    for (int32_t c = 0; c < g->C; c++)
        for (int32_t y = 0; y < g->H; y++)
            memcpy(xp + (c * rows + y + g->p) * ir + g->p, x + ((int64_t)c * g->H + y) * g->W,
                   (size_t)g->W * sizeof *xp);
}

#ifdef NN_HAVE_AVX512

/* Four filters by 32 outputs of a row at a time: eight accumulators in registers, each input
 * row vector loaded once for the four filters. */
INLINE AVX512 void forward_k(const nn_conv_geom_t *g, const int32_t k, const float *w,
                             const float *bias, int relu, const float *restrict xp,
                             float *restrict y) {
    int64_t rl = row_len(g), ir = in_row(g), rows = in_rows(g);
    for (int32_t f0 = 0; f0 < g->F; f0 += 4)
        for (int32_t oy = 0; oy < g->Ho; oy++)
            for (int64_t i0 = 0; i0 < rl; i0 += 32) {
                __m512 acc[4][2];
                int32_t fq[4];
                for (int q = 0; q < 4; q++) { /* past F: the last filter again, not stored */
                    fq[q] = f0 + q < g->F ? f0 + q : g->F - 1;
                    acc[q][0] = acc[q][1] = _mm512_set1_ps(bias[fq[q]]);
                }
                for (int32_t c = 0; c < g->C; c++)
                    for (int32_t ki = 0; ki < k; ki++) {
                        const float *src = xp + (c * rows + oy + ki) * ir + i0;
                        for (int32_t kj = 0; kj < k; kj++) {
                            __m512 s0 = _mm512_loadu_ps(src + kj);
                            __m512 s1 = _mm512_loadu_ps(src + kj + 16);
                            for (int q = 0; q < 4; q++) {
                                __m512 wv = _mm512_set1_ps(
                                    w[(((int64_t)fq[q] * g->C + c) * k + ki) * k + kj]);
                                acc[q][0] = _mm512_fmadd_ps(wv, s0, acc[q][0]);
                                acc[q][1] = _mm512_fmadd_ps(wv, s1, acc[q][1]);
                            }
                        }
                    }
                int64_t left = g->Wo - i0;
                __mmask16 m0 = (__mmask16)(left >= 16 ? 0xffff : left > 0 ? (1u << left) - 1 : 0);
                __mmask16 m1 =
                    (__mmask16)(left >= 32 ? 0xffff : left > 16 ? (1u << (left - 16)) - 1 : 0);
                for (int q = 0; q < 4 && f0 + q < g->F; q++) {
                    float *dst = y + ((int64_t)(f0 + q) * g->Ho + oy) * g->Wo + i0;
                    if (relu) {
                        acc[q][0] = _mm512_max_ps(acc[q][0], _mm512_setzero_ps());
                        acc[q][1] = _mm512_max_ps(acc[q][1], _mm512_setzero_ps());
                    }
                    _mm512_mask_storeu_ps(dst, m0, acc[q][0]);
                    _mm512_mask_storeu_ps(dst + 16, m1, acc[q][1]);
                }
            }
}

AVX512 static void forward_rows(const nn_conv_geom_t *g, const float *w, const float *bias,
                                int relu, const float *restrict xp, float *restrict y) {
    if (g->k == 3)
        forward_k(g, 3, w, bias, relu, xp, y);
    else if (g->k == 5)
        forward_k(g, 5, w, bias, relu, xp, y);
    else
        forward_k(g, g->k, w, bias, relu, xp, y);
}


/* One accumulator per weight (k*k of them, in registers for k = 3), over the output rows'
 * chunks of 16; each is summed across its lanes at the end. */
INLINE AVX512 void grad_k(const nn_conv_geom_t *g, const int32_t k, const float *restrict xp,
                          const float *restrict dy, float *dw, float *restrict dp) {
    int64_t rl = row_len(g), ir = in_row(g), rows = in_rows(g);
    for (int32_t f = 0; f < g->F; f++) {
        /* dp [Ho][rl]: this filter's output gradient, zeros past Wo */
        for (int32_t oy = 0; oy < g->Ho; oy++) {
            float *d = dp + oy * rl;
            memcpy(d, dy + ((int64_t)f * g->Ho + oy) * g->Wo, (size_t)g->Wo * sizeof *d);
            memset(d + g->Wo, 0, (size_t)(rl - g->Wo) * sizeof *d);
        }
        for (int32_t c = 0; c < g->C; c++) {
            __m512 acc[NN_MAX_KERNEL * NN_MAX_KERNEL];
            for (int32_t q = 0; q < k * k; q++)
                acc[q] = _mm512_setzero_ps();
            for (int32_t oy = 0; oy < g->Ho; oy++)
                for (int64_t i0 = 0; i0 < rl; i0 += 16) {
                    __m512 d = _mm512_loadu_ps(dp + oy * rl + i0);
                    for (int32_t ki = 0; ki < k; ki++) {
                        const float *src = xp + (c * rows + oy + ki) * ir + i0;
                        for (int32_t kj = 0; kj < k; kj++)
                            acc[ki * k + kj] =
                                _mm512_fmadd_ps(d, _mm512_loadu_ps(src + kj), acc[ki * k + kj]);
                    }
                }
            float *wg = dw + ((int64_t)f * g->C + c) * k * k;
            for (int32_t q = 0; q < k * k; q++)
                wg[q] += _mm512_reduce_add_ps(acc[q]);
        }
    }
}

AVX512 static void grad_rows(const nn_conv_geom_t *g, const float *restrict xp,
                             const float *restrict dy, float *dw, float *restrict dp) {
    if (g->k == 3)
        grad_k(g, 3, xp, dy, dw, dp);
    else if (g->k == 5)
        grad_k(g, 5, xp, dy, dw, dp);
    else
        grad_k(g, g->k, xp, dy, dw, dp);
}

#endif /* NN_HAVE_AVX512 */

void nn_direct_forward(const nn_conv_geom_t *g, const float *w, const float *bias, int relu,
                       const float *x, float *y, float *ws) {
    pad_input(g, x, ws);
#ifdef NN_HAVE_AVX512
    forward_rows(g, w, bias, relu, ws, y);
#else
    (void)w, (void)bias, (void)relu, (void)y;
#endif
}

void nn_direct_weight_grad(const nn_conv_geom_t *g, const float *x, const float *dy, float *dw,
                           float *ws) {
    float *xp = ws, *dp = xp + g->C * in_rows(g) * in_row(g);
    pad_input(g, x, xp);
#ifdef NN_HAVE_AVX512
    grad_rows(g, xp, dy, dw, dp);
#else
    (void)dy, (void)dw, (void)dp;
#endif
}
