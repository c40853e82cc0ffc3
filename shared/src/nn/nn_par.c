/* nn_par.c - what the layers share: their work split over the backend's threads (by samples,
 * or a matrix product by rows or columns), and the switch to their reference kernels. */
#include "nn_internal.h"

int nn_reference_kernels = 0;

typedef struct {
    void (*fn)(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid);
    void *arg;
    int32_t b, n_chunks;
} par_samples_t;

static void par_samples_chunk(void *p, int32_t chunk, int32_t tid) {
    par_samples_t *ps = p;
    int32_t s0 = (int32_t)((int64_t)ps->b * chunk / ps->n_chunks);
    int32_t s1 = (int32_t)((int64_t)ps->b * (chunk + 1) / ps->n_chunks);
    ps->fn(ps->arg, s0, s1, chunk, tid);
}

void nn_par_samples(nn_ctx_t *c, int32_t b,
                    void (*fn)(void *arg, int32_t s0, int32_t s1, int32_t chunk, int32_t tid),
                    void *arg) {
    par_samples_t ps = {fn, arg, b, b < NN_CHUNKS ? b : NN_CHUNKS};
    c->be->parallel(par_samples_chunk, &ps, ps.n_chunks);
}

typedef struct {
    const struct ens_backend_i *be;
    int ta, tb;
    int32_t M, N, K, lda, ldb, ldc, n_chunks, by_rows;
    const float *A, *B;
    float beta;
    float *C;
} par_gemm_t;

static void par_gemm_chunk(void *p, int32_t chunk, int32_t tid) {
    (void)tid;
    par_gemm_t *g = p;
    int32_t len = g->by_rows ? g->M : g->N;
    int32_t i0 = (int32_t)((int64_t)len * chunk / g->n_chunks);
    int32_t i1 = (int32_t)((int64_t)len * (chunk + 1) / g->n_chunks);
    if (i1 <= i0)
        return;
    if (g->by_rows) {
        /* rows i0..i1 of op(A) */
        const float *A = g->ta ? g->A + i0 : g->A + (size_t)i0 * g->lda;
        g->be->gemm(g->ta, g->tb, i1 - i0, g->N, g->K, 1.0f, A, g->lda, g->B, g->ldb, g->beta,
                    g->C + (size_t)i0 * g->ldc, g->ldc);
    } else {
        const float *B = g->tb ? g->B + (size_t)i0 * g->ldb : g->B + i0;
        g->be->gemm(g->ta, g->tb, g->M, i1 - i0, g->K, 1.0f, g->A, g->lda, B, g->ldb, g->beta,
                    g->C + i0, g->ldc);
    }
}

void nn_par_gemm(nn_ctx_t *c, int ta, int tb, int32_t M, int32_t N, int32_t K, const float *A,
                 int32_t lda, const float *B, int32_t ldb, float beta, float *C, int32_t ldc) {
    int32_t nt = c->be->max_threads();
    double flops = (double)M * N * K;
    par_gemm_t g = {c->be, ta, tb, M, N, K, lda, ldb, ldc, 1, M >= N, A, B, beta, C};
    int32_t len = g.by_rows ? M : N;
    if (nt > 1 && flops > 2e6 && len >= 16) {
        g.n_chunks = nt;
        /* column chunks of a multiple of 16 keep the kernels' panels whole */
        c->be->parallel(par_gemm_chunk, &g, g.n_chunks);
    } else {
        c->be->gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
    }
}
