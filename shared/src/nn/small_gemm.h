/* small_gemm.h - products of matrices small enough to sit in the caches (the sixteen products
 * of a Winograd block), by AVX-512 kernels where the CPU has them. */
#ifndef ENSFLOW_NN_SMALL_GEMM_H
#define ENSFLOW_NN_SMALL_GEMM_H

#include <stdint.h>

/* x86-64 with GCC: AVX-512 code is compiled (functions marked NN_AVX512) and picked at run
 * time where nn_small_gemm_ok() */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NN_HAVE_AVX512 1
#include <immintrin.h>
#define NN_AVX512 __attribute__((target("avx512f")))
#endif

/* Nonzero when the kernels below can run here (x86-64 with AVX-512F, and not turned off by
 * ENSFLOW_NN_AVX512=0); otherwise callers use the backend's sgemm. */
int nn_small_gemm_ok(void);

/* C [m x n] = A B + beta C, where A(i, p) = a[i * ars + p * acs] (row- or column-major, so
 * the same kernel takes A or its transpose) and B [k x n] is row-major with row stride ldb;
 * beta is 0 (C is only written) or 1. Only when nn_small_gemm_ok(). */
void nn_small_gemm_nn(int32_t m, int32_t n, int32_t k, const float *a, int64_t ars, int64_t acs,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* C [m x n] = A B^T + beta C, with A [m x k] and B [n x k] row-major (row strides lda, ldb);
 * beta is 0 or 1. Only when nn_small_gemm_ok(). */
void nn_small_gemm_nt(int32_t m, int32_t n, int32_t k, const float *a, int64_t lda,
                      const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

#endif
