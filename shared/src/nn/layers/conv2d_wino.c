/* conv2d_wino.c - 3x3 stride-1 convolutions by Winograd's F(2x2, 3x3) (Lavin and Gray, 2015).
 *
 * Each 2x2 output tile of filter f is A^T [sum_c U[f][c] . V[c]] A, where V = B^T d B is the
 * 4x4 input tile d transformed and U = G g G^T the filter g transformed: per tile 16 products
 * per (f, c) instead of 36, and summed over c the sixteen positions are sixteen matrix
 * products U_xi [F x C] V_xi [C x tiles]. The gradients are the adjoints of the same maps:
 * dM = A dY A^T, dV_xi = U_xi^T dM_xi (then dX += B dV B^T, tiles overlapping), and
 * dU_xi = dM_xi V_xi^T (then dW += G^T dU G). Tiles of all the chunk's samples are taken
 * NN_WINO_BLOCK at a time, so the products are long enough for sgemm whatever the image size.
 *
 *   B^T = | 1  0 -1  0 |   G = | 1    0    0   |   A^T = | 1  1  1  0 |
 *         | 0  1  1  0 |       | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
 *         | 0 -1  1  0 |       | 1/2 -1/2  1/2 |
 *         | 0  1  0 -1 |       | 0    0    1   |
 *
 * The transforms gather a block's tiles into [16][NB] arrays (one row per position in the
 * tile), so that every transform is a loop over the block's tiles that vectorises, whatever
 * the image width; the scatter back to NCHW is per tile.
 */
#include "conv2d_wino.h"
#include "../small_gemm.h"

#include <string.h>

#define NB NN_WINO_BLOCK

int nn_wino_applies(const nn_conv_geom_t *g) {
    return g->k == 3 && g->s == 1 && g->p >= 0 && g->p <= 2;
}

static int64_t tiles_across(const nn_conv_geom_t *g) { return (g->Wo + 1) / 2; }

static int64_t scratch_floats(const nn_conv_geom_t *g) {
    return 32 * NB + 2 * tiles_across(g) + 8; /* tiles, then one padded input row */
}

/* Strides between the sixteen positions of U, V and M: padded by a cache line, so that the
 * sixteen streams a transform reads or writes do not fall into one cache set (F x NB floats
 * is a multiple of 4 KiB for every power-of-two F). */
#define XI_PAD 16
static int64_t u_stride(const nn_conv_geom_t *g) { return (int64_t)g->F * g->C + XI_PAD; }
static int64_t v_stride(const nn_conv_geom_t *g) { return (int64_t)g->C * NB + XI_PAD; }
static int64_t m_stride(const nn_conv_geom_t *g) { return (int64_t)g->F * NB + XI_PAD; }

int64_t nn_wino_ws(const nn_conv_geom_t *g) {
    /* dU, then V, dV and M (or dM) for one block, then a block of gathered tiles */
    return 16 * (u_stride(g) + 2 * v_stride(g) + m_stride(g)) + scratch_floats(g);
}

int64_t nn_wino_u_size(const nn_conv_geom_t *g) { return 16 * u_stride(g); }

/* Where a block's tiles are: sample and output corner (oy, ox) of each; and the same as runs
 * of consecutive tiles of one tile row of one sample (n tiles from block column j0). */
typedef struct {
    int32_t sample[NB], oy[NB], ox[NB];
    int32_t n_runs;
    struct {
        int32_t sample, oy, ox, n, j0;
    } run[NB];
} tiles_t;

static void tiles_of(const nn_conv_geom_t *g, int64_t t0, int32_t nb, tiles_t *t) {
    int32_t tw = (int32_t)tiles_across(g), per = ((g->Ho + 1) / 2) * tw;
    t->n_runs = 0;
    for (int32_t j = 0; j < nb; j++) {
        int64_t k = t0 + j;
        int32_t r = (int32_t)(k % per);
        t->sample[j] = (int32_t)(k / per);
        t->oy[j] = 2 * (r / tw);
        t->ox[j] = 2 * (r % tw);
        if (j == 0 || t->ox[j] == 0) {
            t->run[t->n_runs].sample = t->sample[j];
            t->run[t->n_runs].oy = t->oy[j];
            t->run[t->n_runs].ox = t->ox[j];
            t->run[t->n_runs].n = 0;
            t->run[t->n_runs].j0 = j;
            t->n_runs++;
        }
        t->run[t->n_runs - 1].n++;
    }
}

void nn_wino_weights(const nn_conv_geom_t *g, const float *w, float *U) {
    int64_t fc = (int64_t)g->F * g->C, us = u_stride(g);
    for (int64_t i = 0; i < fc; i++) {
        const float *k = w + i * 9;
        float h[4][3];
        for (int c = 0; c < 3; c++) {
            h[0][c] = k[c];
            h[1][c] = 0.5f * (k[c] + k[3 + c] + k[6 + c]);
            h[2][c] = 0.5f * (k[c] - k[3 + c] + k[6 + c]);
            h[3][c] = k[6 + c];
        }
        for (int r = 0; r < 4; r++) {
            U[(r * 4 + 0) * us + i] = h[r][0];
            U[(r * 4 + 1) * us + i] = 0.5f * (h[r][0] + h[r][1] + h[r][2]);
            U[(r * 4 + 2) * us + i] = 0.5f * (h[r][0] - h[r][1] + h[r][2]);
            U[(r * 4 + 3) * us + i] = h[r][2];
        }
    }
}

/* dw [F][C][3][3] += G^T dU G */
static void weights_grad(const nn_conv_geom_t *g, const float *dU, float *dw) {
    int64_t fc = (int64_t)g->F * g->C, us = u_stride(g);
    for (int64_t i = 0; i < fc; i++) {
        float u[16], a[3][4];
        for (int x = 0; x < 16; x++)
            u[x] = dU[x * us + i];
        for (int c = 0; c < 4; c++) {
            a[0][c] = u[c] + 0.5f * (u[4 + c] + u[8 + c]);
            a[1][c] = 0.5f * (u[4 + c] - u[8 + c]);
            a[2][c] = 0.5f * (u[4 + c] + u[8 + c]) + u[12 + c];
        }
        float *k = dw + i * 9;
        for (int r = 0; r < 3; r++) {
            k[r * 3 + 0] += a[r][0] + 0.5f * (a[r][1] + a[r][2]);
            k[r * 3 + 1] += 0.5f * (a[r][1] - a[r][2]);
            k[r * 3 + 2] += 0.5f * (a[r][1] + a[r][2]) + a[r][3];
        }
    }
}

/* dst[0..len) = plane row y from column x0, zeros outside rows [0, h) and columns [0, w) */
static void load_row(const float *plane, int32_t h, int32_t w, int32_t y, int32_t x0,
                     int32_t len, float *dst) {
    if (y < 0 || y >= h) {
        memset(dst, 0, (size_t)len * sizeof *dst);
        return;
    }
    int32_t lo = x0 < 0 ? -x0 : 0, hi = w - x0 < len ? w - x0 : len;
    lo = lo < len ? lo : len;
    hi = hi > lo ? hi : lo;
    memset(dst, 0, (size_t)lo * sizeof *dst);
    memcpy(dst + lo, plane + (int64_t)y * w + x0 + lo, (size_t)(hi - lo) * sizeof *dst);
    memset(dst + hi, 0, (size_t)(len - hi) * sizeof *dst);
}

/* The tiles of size x size (stride 2) at the runs' corners, shifted by -shift, from the planes
 * at base (plane p of sample s at base + (s * planes + p) * H * W), into D [size*size][NB]:
 * D[r * size + q][j] = row r, column q of tile j, zeros outside. row is scratch. */
static void gather(const tiles_t *t, const float *base, int64_t planes, int32_t p, int32_t H,
                   int32_t W, int size, int32_t shift, float *restrict D, float *restrict row) {
    for (int32_t u = 0; u < t->n_runs; u++) {
        int32_t n = t->run[u].n, j0 = t->run[u].j0;
        const float *src = base + ((int64_t)t->run[u].sample * planes + p) * H * W;
        for (int r = 0; r < size; r++) {
            load_row(src, H, W, t->run[u].oy - shift + r, t->run[u].ox - shift,
                     2 * n + size - 2, row);
            for (int q = 0; q < size; q++) {
                float *d = D + (r * size + q) * NB + j0;
                for (int32_t k = 0; k < n; k++)
                    d[k] = row[2 * k + q];
            }
        }
    }
}

/* The combinations of B^T (one row of the transform over n tiles at once) and of A. */
static inline void bt_rows(int32_t n, const float *restrict a, const float *restrict b,
                           const float *restrict c, const float *restrict d, float *restrict o0,
                           float *restrict o1, float *restrict o2, float *restrict o3) {
    for (int32_t j = 0; j < n; j++) {
        o0[j] = a[j] - c[j];
        o1[j] = b[j] + c[j];
        o2[j] = c[j] - b[j];
        o3[j] = b[j] - d[j];
    }
}

static inline void a_rows(int32_t n, const float *restrict a, const float *restrict b,
                          float *restrict o0, float *restrict o1, float *restrict o2,
                          float *restrict o3) {
    for (int32_t j = 0; j < n; j++) {
        o0[j] = a[j];
        o1[j] = a[j] + b[j];
        o2[j] = a[j] - b[j];
        o3[j] = -b[j];
    }
}

/* V [16][C][NB] = B^T d B for the block's tiles; D [32][NB] is scratch (a channel's tiles,
 * then B^T d) */
NN_VECTOR_CLONES
static void input_transform(const nn_conv_geom_t *g, const float *x, const tiles_t *t,
                            int32_t nb, float *restrict V, float *restrict D) {
    int64_t cstride = v_stride(g);
    for (int32_t c = 0; c < g->C; c++) {
        gather(t, x, g->C, c, g->H, g->W, 4, g->p, D, D + 32 * NB);
        float *v = V + (int64_t)c * NB, *E = D + 16 * NB;
        for (int q = 0; q < 4; q++) /* B^T d, down each column of the tiles */
            bt_rows(nb, D + q * NB, D + (4 + q) * NB, D + (8 + q) * NB, D + (12 + q) * NB,
                    E + q * NB, E + (4 + q) * NB, E + (8 + q) * NB, E + (12 + q) * NB);
        for (int i = 0; i < 4; i++) /* then (B^T d) B, along each row */
            bt_rows(nb, E + (4 * i) * NB, E + (4 * i + 1) * NB, E + (4 * i + 2) * NB,
                    E + (4 * i + 3) * NB, v + (4 * i) * cstride, v + (4 * i + 1) * cstride,
                    v + (4 * i + 2) * cstride, v + (4 * i + 3) * cstride);
    }
}

/* y = A^T M A for the block's tiles, the outputs inside Ho x Wo; Y [4][NB] is scratch */
NN_VECTOR_CLONES
static void output_transform(const nn_conv_geom_t *g, const float *restrict M, const tiles_t *t,
                             int32_t nb, const float *bias, int relu, float *restrict y,
                             float *restrict Y) {
    int64_t plane = (int64_t)g->Ho * g->Wo, fstride = m_stride(g);
    for (int32_t f = 0; f < g->F; f++) {
        const float *m = M + (int64_t)f * NB;
        float bf = bias[f];
        for (int32_t j = 0; j < nb; j++) {
            float q0[4], q1[4];
            for (int c = 0; c < 4; c++) {
                float m0 = m[c * fstride + j], m1 = m[(4 + c) * fstride + j];
                float m2 = m[(8 + c) * fstride + j], m3 = m[(12 + c) * fstride + j];
                q0[c] = m0 + m1 + m2;
                q1[c] = m1 - m2 - m3;
            }
            Y[j] = q0[0] + q0[1] + q0[2] + bf;
            Y[NB + j] = q0[1] - q0[2] - q0[3] + bf;
            Y[2 * NB + j] = q1[0] + q1[1] + q1[2] + bf;
            Y[3 * NB + j] = q1[1] - q1[2] - q1[3] + bf;
        }
        if (relu)
            for (int32_t j = 0; j < 4 * NB; j++)
                Y[j] = Y[j] > 0.0f ? Y[j] : 0.0f;
        for (int32_t j = 0; j < nb; j++) {
            int32_t oy = t->oy[j], ox = t->ox[j];
            float *dst = y + ((int64_t)t->sample[j] * g->F + f) * plane + (int64_t)oy * g->Wo + ox;
            int right = ox + 1 < g->Wo, down = oy + 1 < g->Ho;
            dst[0] = Y[j];
            if (right)
                dst[1] = Y[NB + j];
            if (down) {
                dst[g->Wo] = Y[2 * NB + j];
                if (right)
                    dst[g->Wo + 1] = Y[3 * NB + j];
            }
        }
    }
}

/* dM [16][F][NB] = A dY A^T for the block's tiles (zeros outside Ho x Wo); D [12][NB] is
 * scratch */
NN_VECTOR_CLONES
static void grad_output_transform(const nn_conv_geom_t *g, const float *restrict dy,
                                  const tiles_t *t, int32_t nb, float *restrict dM,
                                  float *restrict D) {
    int64_t fstride = m_stride(g);
    for (int32_t f = 0; f < g->F; f++) {
        gather(t, dy, g->F, f, g->Ho, g->Wo, 2, 0, D, D + 32 * NB);
        float *o = dM + (int64_t)f * NB, *R = D + 4 * NB;
        for (int q = 0; q < 2; q++) /* A d, down each column: R [4][2][NB] */
            a_rows(nb, D + q * NB, D + (2 + q) * NB, R + q * NB, R + (2 + q) * NB,
                   R + (4 + q) * NB, R + (6 + q) * NB);
        for (int i = 0; i < 4; i++) /* then (A d) A^T, along each row */
            a_rows(nb, R + (2 * i) * NB, R + (2 * i + 1) * NB, o + (4 * i) * fstride,
                   o + (4 * i + 1) * fstride, o + (4 * i + 2) * fstride,
                   o + (4 * i + 3) * fstride);
    }
}

/* dx += B dV B^T for the block's tiles, the inputs inside H x W; P [16][NB] is scratch */
NN_VECTOR_CLONES
static void grad_input_transform(const nn_conv_geom_t *g, const float *restrict dV,
                                 const tiles_t *t, int32_t nb, float *restrict dx,
                                 float *restrict P) {
    int64_t plane = (int64_t)g->H * g->W, cstride = v_stride(g);
    for (int32_t c = 0; c < g->C; c++) {
        const float *v = dV + (int64_t)c * NB;
        for (int32_t j = 0; j < nb; j++) {
            float u[16], w[4][4];
            for (int x = 0; x < 16; x++)
                u[x] = v[x * cstride + j];
            for (int i = 0; i < 4; i++) {
                w[0][i] = u[i];
                w[1][i] = u[4 + i] - u[8 + i] + u[12 + i];
                w[2][i] = u[4 + i] + u[8 + i] - u[i];
                w[3][i] = -u[12 + i];
            }
            for (int i = 0; i < 4; i++) {
                P[(i * 4 + 0) * NB + j] = w[i][0];
                P[(i * 4 + 1) * NB + j] = w[i][1] - w[i][2] + w[i][3];
                P[(i * 4 + 2) * NB + j] = w[i][1] + w[i][2] - w[i][0];
                P[(i * 4 + 3) * NB + j] = -w[i][3];
            }
        }
        for (int32_t j = 0; j < nb; j++) {
            int32_t iy = t->oy[j] - g->p, ix = t->ox[j] - g->p;
            float *dst = dx + ((int64_t)t->sample[j] * g->C + c) * plane;
            if (iy >= 0 && ix >= 0 && iy + 4 <= g->H && ix + 4 <= g->W) {
                for (int r = 0; r < 4; r++)
                    for (int q = 0; q < 4; q++)
                        dst[(int64_t)(iy + r) * g->W + ix + q] += P[(r * 4 + q) * NB + j];
                continue;
            }
            for (int r = 0; r < 4; r++) {
                if (iy + r < 0 || iy + r >= g->H)
                    continue;
                for (int q = 0; q < 4; q++)
                    if (ix + q >= 0 && ix + q < g->W)
                        dst[(int64_t)(iy + r) * g->W + ix + q] += P[(r * 4 + q) * NB + j];
            }
        }
    }
}

#ifdef NN_HAVE_AVX512
/*
 * AVX-512 versions of the two gathering transforms: a run of up to 15 tiles along one tile
 * row is two 16-lane vectors per input row, so B^T d B (and A dY A^T) are computed on whole
 * rows, the tiles' columns picked out of them by lane permutations, and written to the
 * block's arrays with one masked store per position: no per-tile copies.
 */
#define RUN_MAX 15

/* lanes 2k + o of the 32 in (lo, hi), for o = 0..3 (lanes past 31 are never stored) */
NN_AVX512 static inline __m512 cols(__m512 lo, __m512 hi, int o) {
    __m512i idx = _mm512_add_epi32(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22,
                                                     24, 26, 28, 30),
                                   _mm512_set1_epi32(o));
    return _mm512_permutex2var_ps(lo, idx, hi);
}

static inline __mmask16 first_lanes(int32_t n) {
    return (__mmask16)(n >= 16 ? 0xffff : n > 0 ? (1u << n) - 1 : 0);
}

/* (lo, hi) = plane row y, columns x0 .. x0 + 31, zeros outside rows [0, h) and columns
 * [0, w); x0 >= -2 (the padding). Masked loads never touch memory outside the row. */
NN_AVX512 static inline void load32(const float *plane, int32_t h, int32_t w, int32_t y,
                                    int32_t x0, __m512 *lo, __m512 *hi) {
    if (y < 0 || y >= h) {
        *lo = *hi = _mm512_setzero_ps();
        return;
    }
    int32_t s = x0 < 0 ? -x0 : 0, avail = w - (x0 + s);
    const float *r = plane + (int64_t)y * w + x0 + s;
    __m512 a = _mm512_maskz_loadu_ps(first_lanes(avail), r);
    __m512 b = _mm512_maskz_loadu_ps(first_lanes(avail - 16), r + 16);
    if (s == 0) {
        *lo = a, *hi = b;
        return;
    }
    /* s zero lanes in front: shift the 32 lanes up by s */
    __m512i z = _mm512_setzero_si512(), ai = _mm512_castps_si512(a), bi = _mm512_castps_si512(b);
    if (s == 1) {
        *lo = _mm512_castsi512_ps(_mm512_alignr_epi32(ai, z, 15));
        *hi = _mm512_castsi512_ps(_mm512_alignr_epi32(bi, ai, 15));
    } else {
        *lo = _mm512_castsi512_ps(_mm512_alignr_epi32(ai, z, 14));
        *hi = _mm512_castsi512_ps(_mm512_alignr_epi32(bi, ai, 14));
    }
}

NN_AVX512 static void input_transform_512(const nn_conv_geom_t *g, const float *x,
                                          const tiles_t *t, float *restrict V) {
    int64_t vs = v_stride(g);
    for (int32_t c = 0; c < g->C; c++)
        for (int32_t u = 0; u < t->n_runs; u++) {
            const float *src = x + ((int64_t)t->run[u].sample * g->C + c) * g->H * g->W;
            for (int32_t k0 = 0; k0 < t->run[u].n; k0 += RUN_MAX) {
                int32_t m = t->run[u].n - k0 < RUN_MAX ? t->run[u].n - k0 : RUN_MAX;
                __m512 lo[4], hi[4], e[4][2];
                for (int r = 0; r < 4; r++)
                    load32(src, g->H, g->W, t->run[u].oy - g->p + r,
                           t->run[u].ox + 2 * k0 - g->p, &lo[r], &hi[r]);
                /* B^T d down the columns */
                e[0][0] = _mm512_sub_ps(lo[0], lo[2]), e[0][1] = _mm512_sub_ps(hi[0], hi[2]);
                e[1][0] = _mm512_add_ps(lo[1], lo[2]), e[1][1] = _mm512_add_ps(hi[1], hi[2]);
                e[2][0] = _mm512_sub_ps(lo[2], lo[1]), e[2][1] = _mm512_sub_ps(hi[2], hi[1]);
                e[3][0] = _mm512_sub_ps(lo[1], lo[3]), e[3][1] = _mm512_sub_ps(hi[1], hi[3]);
                __mmask16 mk = (__mmask16)((1u << m) - 1);
                float *v = V + (int64_t)c * NB + t->run[u].j0 + k0;
                for (int i = 0; i < 4; i++) { /* then (B^T d) B along each row, per tile */
                    __m512 c0 = cols(e[i][0], e[i][1], 0), c1 = cols(e[i][0], e[i][1], 1);
                    __m512 c2 = cols(e[i][0], e[i][1], 2), c3 = cols(e[i][0], e[i][1], 3);
                    _mm512_mask_storeu_ps(v + (4 * i) * vs, mk, _mm512_sub_ps(c0, c2));
                    _mm512_mask_storeu_ps(v + (4 * i + 1) * vs, mk, _mm512_add_ps(c1, c2));
                    _mm512_mask_storeu_ps(v + (4 * i + 2) * vs, mk, _mm512_sub_ps(c2, c1));
                    _mm512_mask_storeu_ps(v + (4 * i + 3) * vs, mk, _mm512_sub_ps(c1, c3));
                }
            }
        }
}

NN_AVX512 static void grad_output_transform_512(const nn_conv_geom_t *g, const float *dy,
                                                const tiles_t *t, float *restrict dM) {
    int64_t ms = m_stride(g);
    for (int32_t f = 0; f < g->F; f++)
        for (int32_t u = 0; u < t->n_runs; u++) {
            const float *src = dy + ((int64_t)t->run[u].sample * g->F + f) * g->Ho * g->Wo;
            for (int32_t k0 = 0; k0 < t->run[u].n; k0 += RUN_MAX) {
                int32_t m = t->run[u].n - k0 < RUN_MAX ? t->run[u].n - k0 : RUN_MAX;
                __m512 lo[2], hi[2], R[4][2];
                for (int r = 0; r < 2; r++)
                    load32(src, g->Ho, g->Wo, t->run[u].oy + r, t->run[u].ox + 2 * k0, &lo[r],
                           &hi[r]);
                /* A dY down the columns */
                R[0][0] = lo[0], R[0][1] = hi[0];
                R[1][0] = _mm512_add_ps(lo[0], lo[1]), R[1][1] = _mm512_add_ps(hi[0], hi[1]);
                R[2][0] = _mm512_sub_ps(lo[0], lo[1]), R[2][1] = _mm512_sub_ps(hi[0], hi[1]);
                R[3][0] = _mm512_sub_ps(_mm512_setzero_ps(), lo[1]);
                R[3][1] = _mm512_sub_ps(_mm512_setzero_ps(), hi[1]);
                __mmask16 mk = (__mmask16)((1u << m) - 1);
                float *o = dM + (int64_t)f * NB + t->run[u].j0 + k0;
                for (int i = 0; i < 4; i++) { /* then (A dY) A^T along each row, per tile */
                    __m512 c0 = cols(R[i][0], R[i][1], 0), c1 = cols(R[i][0], R[i][1], 1);
                    _mm512_mask_storeu_ps(o + (4 * i) * ms, mk, c0);
                    _mm512_mask_storeu_ps(o + (4 * i + 1) * ms, mk, _mm512_add_ps(c0, c1));
                    _mm512_mask_storeu_ps(o + (4 * i + 2) * ms, mk, _mm512_sub_ps(c0, c1));
                    _mm512_mask_storeu_ps(o + (4 * i + 3) * ms, mk,
                                          _mm512_sub_ps(_mm512_setzero_ps(), c1));
                }
            }
        }
}
#endif

static int64_t tile_count(const nn_conv_geom_t *g, int32_t n) {
    return (int64_t)n * ((g->Ho + 1) / 2) * tiles_across(g);
}

static void in_transform(const nn_conv_geom_t *g, const float *x, const tiles_t *t, int32_t nb,
                         float *V, float *scratch, int small) {
#ifdef NN_HAVE_AVX512
    if (small) {
        input_transform_512(g, x, t, V);
        return;
    }
#endif
    (void)small;
    input_transform(g, x, t, nb, V, scratch);
}

static void out_grad_transform(const nn_conv_geom_t *g, const float *dy, const tiles_t *t,
                               int32_t nb, float *dM, float *scratch, int small) {
#ifdef NN_HAVE_AVX512
    if (small) {
        grad_output_transform_512(g, dy, t, dM);
        return;
    }
#endif
    (void)small;
    grad_output_transform(g, dy, t, nb, dM, scratch);
}

void nn_wino_forward(const struct ens_backend_i *be, const nn_conv_geom_t *g, const float *U,
                     const float *bias, int relu, const float *x, int32_t n, float *y,
                     float *ws) {
    int64_t us = u_stride(g), vs = v_stride(g), ms = m_stride(g);
    float *V = ws + 16 * us, *M = V + 32 * vs, *scratch = M + 16 * ms;
    int64_t total = tile_count(g, n);
    int small = nn_small_gemm_ok();
    tiles_t t;
    for (int64_t t0 = 0; t0 < total; t0 += NB) {
        int32_t nb = total - t0 < NB ? (int32_t)(total - t0) : NB;
        tiles_of(g, t0, nb, &t);
        in_transform(g, x, &t, nb, V, scratch, small);
        for (int xi = 0; xi < 16; xi++)
            if (small)
                nn_small_gemm_nn(g->F, nb, g->C, U + xi * us, g->C, 1, V + xi * vs, NB, 0.0f,
                                 M + xi * ms, NB);
            else
                be->gemm(0, 0, g->F, nb, g->C, 1.0f, U + xi * us, g->C, V + xi * vs, NB, 0.0f,
                         M + xi * ms, NB);
        output_transform(g, M, &t, nb, bias, relu, y, scratch);
    }
}

void nn_wino_backward(const struct ens_backend_i *be, const nn_conv_geom_t *g, const float *U,
                      const float *x, const float *dy, int32_t n, float *dw, float *dx, int acc,
                      float *ws) {
    int64_t us = u_stride(g), vs = v_stride(g), ms = m_stride(g);
    float *dU = ws, *V = dU + 16 * us, *dV = V + 16 * vs, *dM = dV + 16 * vs;
    float *scratch = dM + 16 * ms;
    int small = nn_small_gemm_ok();
    if (dx && !acc)
        memset(dx, 0, (size_t)n * g->C * g->H * g->W * sizeof *dx);
    int64_t total = tile_count(g, n);
    tiles_t t;
    for (int64_t t0 = 0; t0 < total; t0 += NB) {
        int32_t nb = total - t0 < NB ? (int32_t)(total - t0) : NB;
        tiles_of(g, t0, nb, &t);
        out_grad_transform(g, dy, &t, nb, dM, scratch, small);
        in_transform(g, x, &t, nb, V, scratch, small);
        for (int xi = 0; xi < 16; xi++) {
            const float *dMx = dM + xi * ms;
            float beta = t0 ? 1.0f : 0.0f;
            if (small) {
                nn_small_gemm_nt(g->F, g->C, nb, dMx, NB, V + xi * vs, NB, beta, dU + xi * us,
                                 g->C);
                if (dx) /* U_xi^T: A(c, f) = U[f][c] */
                    nn_small_gemm_nn(g->C, nb, g->F, U + xi * us, 1, g->C, dMx, NB, 0.0f,
                                     dV + xi * vs, NB);
                continue;
            }
            be->gemm(0, 1, g->F, g->C, nb, 1.0f, dMx, NB, V + xi * vs, NB, beta, dU + xi * us,
                     g->C);
            if (dx)
                be->gemm(1, 0, g->C, nb, g->F, 1.0f, U + xi * us, g->C, dMx, NB, 0.0f,
                         dV + xi * vs, NB);
        }
        if (dx)
            grad_input_transform(g, dV, &t, nb, dx, scratch);
    }
    if (total > 0)
        weights_grad(g, dU, dw);
}
