/* backend_cpu.c - the CPU backend: OpenBLAS sgemm on one thread each, our own thread pool. */
#include "nn_internal.h"
#include "small_gemm.h"
#include "ensflow/cgroup.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * The cores have one owner: this pool. OpenBLAS is set to one thread and every sgemm runs
 * on the thread that calls it; the pool splits a batch (or a large product) into chunks.
 * OpenBLAS's own threads fighting a caller's threads made PyTorch 1.6x to 3x slower here.
 * One process-wide pool: a model that finds it busy (another thread's model is using it)
 * runs its chunks on the calling thread, so nothing waits and nothing oversubscribes.
 * The thread count is ENSFLOW_NN_THREADS, else the online CPUs (at most 16).
 */

#define POOL_MAX 16

static struct {
    pthread_once_t once;
    int32_t n; /* threads including the caller */
    pthread_mutex_t busy, mu;
    pthread_cond_t go, done;
    uint64_t gen;
    void (*fn)(void *, int32_t, int32_t);
    void *arg;
    int32_t n_chunks;
    atomic_int next;
    int32_t running; /* workers still in the current job */
} pool = {.once = PTHREAD_ONCE_INIT,
          .busy = PTHREAD_MUTEX_INITIALIZER,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .go = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void run_chunks(int32_t tid) {
    for (;;) {
        int32_t i = atomic_fetch_add(&pool.next, 1);
        if (i >= pool.n_chunks)
            return;
        pool.fn(pool.arg, i, tid);
    }
}

static void *worker(void *p) {
    int32_t tid = (int32_t)(intptr_t)p;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.gen == seen)
            pthread_cond_wait(&pool.go, &pool.mu);
        seen = pool.gen;
        pthread_mutex_unlock(&pool.mu);
        run_chunks(tid);
        pthread_mutex_lock(&pool.mu);
        if (--pool.running == 0)
            pthread_cond_signal(&pool.done);
    }
    return NULL;
}

static void pool_init(void) {
    openblas_set_num_threads(1);
    long n = ens_cgroup_cpus(NULL); /* the container's CPUs, not the node's */
    const char *env = getenv("ENSFLOW_NN_THREADS");
    if (env && atoi(env) > 0)
        n = atoi(env);
    if (n < 1)
        n = 1;
    if (n > POOL_MAX)
        n = POOL_MAX;
    pool.n = 1;
    for (int32_t t = 1; t < n; t++) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, worker, (void *)(intptr_t)t) == 0)
            pool.n++;
        pthread_attr_destroy(&attr);
    }
}

static int32_t cpu_max_threads(void) {
    pthread_once(&pool.once, pool_init);
    return pool.n;
}

static void cpu_parallel(void (*fn)(void *, int32_t, int32_t), void *arg, int32_t n_chunks) {
    pthread_once(&pool.once, pool_init);
    if (n_chunks <= 0)
        return;
    if (pool.n == 1 || n_chunks == 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int32_t i = 0; i < n_chunks; i++)
            fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.arg = arg;
    pool.n_chunks = n_chunks;
    atomic_store(&pool.next, 0);
    pool.running = pool.n - 1;
    pool.gen++;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    run_chunks(0);
    pthread_mutex_lock(&pool.mu);
    while (pool.running > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.busy);
}

static void cpu_gemm(int ta, int tb, int32_t M, int32_t N, int32_t K, float alpha,
                     const float *A, int32_t lda, const float *B, int32_t ldb, float beta,
                     float *C, int32_t ldc) {
    if (alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && !(ta && tb) && nn_small_gemm_ok()) {
        if (tb)
            nn_small_gemm_nt(M, N, K, A, lda, B, ldb, beta, C, ldc);
        else /* op(A)(i, p) = A[i * lda + p], or A[p * lda + i] transposed */
            nn_small_gemm_nn(M, N, K, A, ta ? 1 : lda, ta ? lda : 1, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const struct ens_backend_i ens_backend_cpu = {
    .name = "cpu-openblas",
    .gemm = cpu_gemm,
    .parallel = cpu_parallel,
    .max_threads = cpu_max_threads,
    .node_forward = NULL, /* every node runs the layer's own code */
    .node_backward = NULL,
    .take_error = NULL,
};
