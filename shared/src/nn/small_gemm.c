/* small_gemm.c - AVX-512 kernels for products whose operands sit in the caches.
 *
 * The Winograd path multiplies sixteen pairs of matrices per block of 128 tiles, with inner
 * dimensions of 32 or 64: too small for OpenBLAS to amortise its packing, and its kernels
 * are whatever OPENBLAS_CORETYPE says (AVX2 ones where it names Haswell). These kernels read
 * the operands in place and use the CPU's 512-bit registers when it has them.
 *
 * nn: C = A B. A block of up to 8 rows x 32 columns of C stays in 16 registers; each step of
 * the inner dimension loads two vectors of B's row and broadcasts one element of A per row.
 * nt: C = A B^T, as A (B^T) with B transposed into a buffer by blocks of 16 x 16.
 * Tails (rows, columns, inner dimension) use masked loads and stores, never reading outside
 * the operands.
 */
#include "small_gemm.h"

#include <stdlib.h>
#include <string.h>

#ifdef NN_HAVE_AVX512
#define AVX512 NN_AVX512 NN_NO_ASAN
#define INLINE static inline __attribute__((always_inline))
#endif

/* Under AddressSanitizer each 64-byte load of a kernel became a call into the runtime, and
 * the sanitizer build's trainings ran five times slower than with OpenBLAS (uninstrumented),
 * too slow for the integration tests' budgets. So there the kernels themselves are not
 * instrumented; instead every line an operand spans is checked once per call, before any
 * kernel reads it (a bad one is read once more by instrumented code, for ASan's report). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define NN_NO_ASAN __attribute__((no_sanitize_address))
/* `lines` runs of `len` floats, `stride` floats apart */
static void check_lines(const float *p, int64_t lines, int64_t stride, int64_t len) {
    if (lines <= 0 || len <= 0)
        return;
    for (int64_t i = 0; i < lines; i++) {
        const float *l = p + i * stride;
        void *bad = __asan_region_is_poisoned((void *)l, (size_t)len * sizeof(float));
        if (bad)
            (void)*(volatile const char *)bad;
    }
}
/* A(i, p) = a[i * rs + p * cs] for i < rows, p < cols, with rs or cs equal to 1 */
static void check_matrix(const float *a, int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
    if (cs == 1)
        check_lines(a, rows, rs, cols);
    else
        check_lines(a, cols, cs, rows);
}
#else
#define NN_NO_ASAN
#define check_matrix(a, rows, cols, rs, cs) ((void)0)
#endif

int nn_small_gemm_ok(void) {
#ifdef NN_HAVE_AVX512
    static int ok = -1;
    int v = __atomic_load_n(&ok, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *env = getenv("ENSFLOW_NN_AVX512");
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && !(env && strcmp(env, "0") == 0);
        __atomic_store_n(&ok, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

#ifdef NN_HAVE_AVX512

/* rows x (32 columns, the last ones masked off unless full) of C */
INLINE AVX512 void nn_block(const int rows, const int full, int32_t k, const float *a,
                            int64_t ars, int64_t acs, const float *b, int64_t ldb, float beta,
                            float *c, int64_t ldc, __mmask16 m0, __mmask16 m1) {
    __m512 acc0[8], acc1[8];
    for (int r = 0; r < rows; r++)
        acc0[r] = _mm512_setzero_ps(), acc1[r] = _mm512_setzero_ps();
    for (int32_t p = 0; p < k; p++) {
        const float *bp = b + p * ldb, *ap = a + p * acs;
        __m512 b0 = full ? _mm512_loadu_ps(bp) : _mm512_maskz_loadu_ps(m0, bp);
        __m512 b1 = full ? _mm512_loadu_ps(bp + 16) : _mm512_maskz_loadu_ps(m1, bp + 16);
        for (int r = 0; r < rows; r++) {
            __m512 av = _mm512_set1_ps(ap[r * ars]);
            acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
        }
    }
    for (int r = 0; r < rows; r++) {
        float *cr = c + r * ldc;
        if (full) {
            if (beta != 0.0f) {
                acc0[r] = _mm512_add_ps(acc0[r], _mm512_loadu_ps(cr));
                acc1[r] = _mm512_add_ps(acc1[r], _mm512_loadu_ps(cr + 16));
            }
            _mm512_storeu_ps(cr, acc0[r]);
            _mm512_storeu_ps(cr + 16, acc1[r]);
        } else {
            if (beta != 0.0f) {
                acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, cr));
                acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, cr + 16));
            }
            _mm512_mask_storeu_ps(cr, m0, acc0[r]);
            _mm512_mask_storeu_ps(cr + 16, m1, acc1[r]);
        }
    }
}

#define NN_ROWS(R)                                                                             \
    case R:                                                                                    \
        if (full)                                                                              \
            nn_block(R, 1, k, a, ars, acs, b, ldb, beta, c, ldc, m0, m1);                     \
        else                                                                                   \
            nn_block(R, 0, k, a, ars, acs, b, ldb, beta, c, ldc, m0, m1);                     \
        break;

/* The inner dimension is taken NN_KC at a time, so that a block of B (NN_KC x 32) stays in
 * the first-level cache while every row block of C passes over it. */
#define NN_KC 256

AVX512 static void nn_avx512(int32_t m, int32_t n, int32_t k, const float *A, int64_t ars,
                             int64_t acs, const float *B, int64_t ldb, float beta, float *C,
                             int64_t ldc) {
    if (k > NN_KC) {
        for (int32_t p0 = 0; p0 < k; p0 += NN_KC)
            nn_avx512(m, n, k - p0 < NN_KC ? k - p0 : NN_KC, A + p0 * acs, ars, acs,
                      B + p0 * ldb, ldb, p0 ? 1.0f : beta, C, ldc);
        return;
    }
    for (int32_t j0 = 0; j0 < n; j0 += 32) {
        int32_t w = n - j0 < 32 ? n - j0 : 32;
        int full = w == 32;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xffff : (1u << w) - 1);
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xffff : w > 16 ? (1u << (w - 16)) - 1 : 0);
        const float *b = B + j0;
        for (int32_t i0 = 0; i0 < m; i0 += 8) {
            const float *a = A + i0 * ars;
            float *c = C + i0 * ldc + j0;
            switch (m - i0 < 8 ? m - i0 : 8) {
                NN_ROWS(1)
                NN_ROWS(2)
                NN_ROWS(3)
                NN_ROWS(4)
                NN_ROWS(5)
                NN_ROWS(6)
                NN_ROWS(7)
                NN_ROWS(8)
            }
        }
    }
}

/* dst[j * ldd + i] = src[i * lds + j] for a 16 x 16 block */
INLINE AVX512 void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m512 r[16], u[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; i++) { /* rows 2i, 2i+1 interleaved */
        u[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        u[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* r[4g + e], 128-bit lane l: column 4l + e of rows 4g..4g+3 */
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(u[4 * g]), b = _mm512_castps_pd(u[4 * g + 1]);
        __m512d c = _mm512_castps_pd(u[4 * g + 2]), d = _mm512_castps_pd(u[4 * g + 3]);
        r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* output row 4l + e is lane l of r[e], r[4 + e], r[8 + e], r[12 + e] */
    for (int e = 0; e < 4; e++) {
        __m512 v1 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x44);
        __m512 v2 = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xee);
        __m512 w1 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x44);
        __m512 w2 = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xee);
        _mm512_storeu_ps(dst + e * ldd, _mm512_shuffle_f32x4(v1, w1, 0x88));
        _mm512_storeu_ps(dst + (4 + e) * ldd, _mm512_shuffle_f32x4(v1, w1, 0xdd));
        _mm512_storeu_ps(dst + (8 + e) * ldd, _mm512_shuffle_f32x4(v2, w2, 0x88));
        _mm512_storeu_ps(dst + (12 + e) * ldd, _mm512_shuffle_f32x4(v2, w2, 0xdd));
    }
}

/* A B^T as A (B^T): B^T is made 32 columns by 128 rows at a time in a buffer on the stack,
 * by 16 x 16 transposes, and multiplied by the nn kernel (a dot-product kernel summing
 * across lanes ran at half its speed). */
#define NT_ROWS 128
AVX512 static void nt_avx512(int32_t m, int32_t n, int32_t k, const float *A, int64_t lda,
                             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    float bt[NT_ROWS * 32] __attribute__((aligned(64)));
    for (int32_t j0 = 0; j0 < n; j0 += 32) {
        int32_t w = n - j0 < 32 ? n - j0 : 32;
        for (int32_t p0 = 0; p0 < k; p0 += NT_ROWS) {
            int32_t kk = k - p0 < NT_ROWS ? k - p0 : NT_ROWS;
            const float *b = B + (int64_t)j0 * ldb + p0;
            for (int32_t jb = 0; jb < w; jb += 16)
                for (int32_t pb = 0; pb < kk; pb += 16) {
                    if (jb + 16 <= w && pb + 16 <= kk) {
                        transpose16(b + jb * ldb + pb, ldb, bt + pb * 32 + jb, 32);
                        continue;
                    }
                    for (int32_t j = jb; j < w && j < jb + 16; j++)
                        for (int32_t p = pb; p < kk && p < pb + 16; p++)
                            bt[p * 32 + j] = b[j * ldb + p];
                }
            nn_avx512(m, w, kk, A + p0, lda, 1, bt, 32, p0 ? 1.0f : beta, C + j0, ldc);
        }
    }
}

#endif /* NN_HAVE_AVX512 */

/* Plain loops where the kernels cannot run (callers use sgemm there; these keep the
 * interface whole on every target): C = A B + beta C with B(p, j) = b[p * brs + j * bcs]. */
static void plain_gemm(int32_t m, int32_t n, int32_t k, const float *a, int64_t ars, int64_t acs,
                       const float *b, int64_t brs, int64_t bcs, float beta, float *c,
                       int64_t ldc) {
    for (int32_t i = 0; i < m; i++)
        for (int32_t j = 0; j < n; j++) {
            float s = 0.0f;
            for (int32_t p = 0; p < k; p++)
                s += a[i * ars + p * acs] * b[p * brs + j * bcs];
            c[i * ldc + j] = s + (beta != 0.0f ? c[i * ldc + j] : 0.0f);
        }
}

void nn_small_gemm_nn(int32_t m, int32_t n, int32_t k, const float *a, int64_t ars, int64_t acs,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    check_matrix(a, m, k, ars, acs);
    check_matrix(b, k, n, ldb, 1);
    check_matrix(c, m, n, ldc, 1);
#ifdef NN_HAVE_AVX512
    if (nn_small_gemm_ok()) {
        nn_avx512(m, n, k, a, ars, acs, b, ldb, beta, c, ldc);
        return;
    }
#endif
    plain_gemm(m, n, k, a, ars, acs, b, ldb, 1, beta, c, ldc);
}

void nn_small_gemm_nt(int32_t m, int32_t n, int32_t k, const float *a, int64_t lda,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    check_matrix(a, m, k, lda, 1);
    check_matrix(b, n, k, ldb, 1);
    check_matrix(c, m, n, ldc, 1);
#ifdef NN_HAVE_AVX512
    if (nn_small_gemm_ok()) {
        nt_avx512(m, n, k, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    plain_gemm(m, n, k, a, lda, 1, b, 1, ldb, beta, c, ldc);
}
