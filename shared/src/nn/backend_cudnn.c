/* backend_cudnn.c - the GPU backend: cuDNN convolution, pooling, batch norm and ReLU, cuBLAS
 * for the matrix products of dense layers (CUDA runtime API). Built only where CMake finds
 * CUDA, as a module of its own (libensflow_cudnn.so) that backend.c loads on first use. */
#include "nn_internal.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Scope of this first version. Activations, parameters and gradients stay in the model's host
 * arena (the optimiser, softmax and the layers cuDNN does not cover run on the host), so every
 * node run here uploads its inputs, runs cuDNN / cuBLAS on the device and downloads its
 * outputs. Correct and comparable op by op with the CPU backend (tests/unit/
 * test_backend_parity.c); a device-resident arena that skips the copies is the next step.
 *
 * On the device: conv2d (forward, backward data/filter/bias; algorithms chosen once per shape
 * with cudnnFind*, cudnnGet*_v7 when Find fails), max and average pooling, batch norm
 * (training and inference), ReLU (a node or fused after conv2d), and every sgemm (dense
 * layers) through cuBLAS. Leaky ReLU, GELU, dropout, add, flatten, global average pooling
 * and dense bias/ReLU run the layers' host code. Convolutions use FMA math (no TF32), so the
 * results match the CPU's float32 within rounding.
 *
 * One device context per process (device 0), used under one mutex. CUDA, cuDNN and cuBLAS
 * status codes are translated to ENS_ERR_CUDA here only; the first failure is logged and kept
 * (sticky) until nn_backend_take_error reads it, since the layer interface returns void.
 */

#define SLOTS 8
#define ALGO_CACHE 64
#define WS_LIMIT ((size_t)512 << 20) /* most workspace an algorithm may ask for */

typedef struct {
    int32_t key[9]; /* op, b, C, H, W, F, k, stride, pad */
    int algo;
    size_t ws;
} algo_t;

static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    ens_err_t open_err;
    char why[256];
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    cudnnTensorDescriptor_t xd, yd, bd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnPoolingDescriptor_t pd;
    cudnnActivationDescriptor_t ad;
    float *slot[SLOTS];
    size_t cap[SLOTS];
    void *ws;
    size_t ws_cap;
    algo_t algos[ALGO_CACHE];
    int n_algos;
    ens_err_t err; /* sticky */
} g = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

enum { S_X, S_Y, S_W, S_B, S_DY, S_DX, S_DW, S_T };

static ens_err_t fail(const char *lib, const char *call, const char *what) {
    if (g.err == ENS_OK) {
        g.err = ENS_ERR_CUDA;
        fprintf(stderr, "lvl=error svc=nn backend=cudnn msg=\"%s call failed\" call=\"%s\" "
                        "status=\"%s\"\n", lib, call, what);
    }
    return ENS_ERR_CUDA;
}

static const char *blas_str(cublasStatus_t s) {
    static char buf[32];
    snprintf(buf, sizeof buf, "cublasStatus %d", (int)s);
    return buf;
}

#define CU(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess)                                                                \
            return fail("cuda", #call, cudaGetErrorString(e_));                               \
    } while (0)
#define DNN(call)                                                                             \
    do {                                                                                      \
        cudnnStatus_t e_ = (call);                                                            \
        if (e_ != CUDNN_STATUS_SUCCESS)                                                       \
            return fail("cudnn", #call, cudnnGetErrorString(e_));                             \
    } while (0)
#define BLAS(call)                                                                            \
    do {                                                                                      \
        cublasStatus_t e_ = (call);                                                           \
        if (e_ != CUBLAS_STATUS_SUCCESS)                                                      \
            return fail("cublas", #call, blas_str(e_));                                       \
    } while (0)
#define TRY(expr)                                                                             \
    do {                                                                                      \
        ens_err_t t_ = (expr);                                                                \
        if (t_ != ENS_OK)                                                                     \
            return t_;                                                                        \
    } while (0)

/* --- opening the device ------------------------------------------------------------------ */

static void open_once(void) {
    int n = 0;
    cudaError_t ce = cudaGetDeviceCount(&n);
    if (ce != cudaSuccess || n == 0) {
        snprintf(g.why, sizeof g.why, "no CUDA device: cudaGetDeviceCount %s, %d devices",
                 ce != cudaSuccess ? cudaGetErrorString(ce) : "ok", n);
        g.open_err = ENS_ERR_CUDA;
        return;
    }
    cudnnStatus_t ds = cudnnCreate(&g.dnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        snprintf(g.why, sizeof g.why, "cudnnCreate: %s", cudnnGetErrorString(ds));
        g.open_err = ENS_ERR_CUDA;
        return;
    }
    cublasStatus_t bs = cublasCreate(&g.blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        snprintf(g.why, sizeof g.why, "cublasCreate: %s", blas_str(bs));
        g.open_err = ENS_ERR_CUDA;
        return;
    }
    if (cublasSetMathMode(g.blas, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS ||
        cudnnCreateTensorDescriptor(&g.xd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateTensorDescriptor(&g.yd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateTensorDescriptor(&g.bd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateFilterDescriptor(&g.wd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateConvolutionDescriptor(&g.cd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreatePoolingDescriptor(&g.pd) != CUDNN_STATUS_SUCCESS ||
        cudnnCreateActivationDescriptor(&g.ad) != CUDNN_STATUS_SUCCESS ||
        cudnnSetActivationDescriptor(g.ad, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN,
                                     0.0) != CUDNN_STATUS_SUCCESS) {
        snprintf(g.why, sizeof g.why, "creating cuDNN/cuBLAS descriptors failed");
        g.open_err = ENS_ERR_CUDA;
        return;
    }
    g.open_err = ENS_OK;
}

ens_err_t nn_cudnn_device_open(char *why, size_t why_size) {
    pthread_once(&g.once, open_once);
    if (g.open_err && why && why_size)
        snprintf(why, why_size, "%s", g.why);
    return g.open_err;
}

static ens_err_t cudnn_take_error(void) {
    pthread_mutex_lock(&g.mu);
    ens_err_t e = g.err;
    g.err = ENS_OK;
    pthread_mutex_unlock(&g.mu);
    return e;
}

/* --- device scratch: grow-only buffers, one per role ----------------------------------- */

static ens_err_t slot(int i, size_t floats, float **out) {
    if (floats == 0)
        floats = 1;
    if (g.cap[i] < floats) {
        if (g.slot[i])
            CU(cudaFree(g.slot[i]));
        g.slot[i] = NULL;
        g.cap[i] = 0;
        CU(cudaMalloc((void **)&g.slot[i], floats * sizeof(float)));
        g.cap[i] = floats;
    }
    *out = g.slot[i];
    return ENS_OK;
}

static ens_err_t up(int i, const float *h, size_t floats, float **out) {
    TRY(slot(i, floats, out));
    if (h)
        CU(cudaMemcpy(*out, h, floats * sizeof(float), cudaMemcpyHostToDevice));
    return ENS_OK;
}

static ens_err_t down(float *h, const float *d, size_t floats) {
    CU(cudaMemcpy(h, d, floats * sizeof(float), cudaMemcpyDeviceToHost));
    return ENS_OK;
}

static ens_err_t workspace(size_t bytes) {
    if (g.ws_cap < bytes) {
        if (g.ws)
            CU(cudaFree(g.ws));
        g.ws = NULL;
        g.ws_cap = 0;
        CU(cudaMalloc(&g.ws, bytes));
        g.ws_cap = bytes;
    }
    return ENS_OK;
}

static ens_err_t tensor(cudnnTensorDescriptor_t d, int32_t b, const nn_shape_t *s) {
    DNN(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, b, s->c, s->h,
                                   s->w));
    return ENS_OK;
}

/* --- cuBLAS: the sgemm of every layer that asks the backend for one --------------------- */

static ens_err_t gemm_dev(int ta, int tb, int32_t M, int32_t N, int32_t K, float alpha,
                          const float *A, int32_t lda, const float *B, int32_t ldb, float beta,
                          float *C, int32_t ldc) {
    if (M <= 0 || N <= 0)
        return ENS_OK;
    size_t na = ta ? (size_t)(K - 1) * lda + M : (size_t)(M - 1) * lda + K;
    size_t nb = tb ? (size_t)(N - 1) * ldb + K : (size_t)(K - 1) * ldb + N;
    size_t nc = (size_t)(M - 1) * ldc + N;
    float *dA, *dB, *dC;
    TRY(up(S_X, K > 0 ? A : NULL, K > 0 ? na : 1, &dA));
    TRY(up(S_W, K > 0 ? B : NULL, K > 0 ? nb : 1, &dB));
    TRY(up(S_Y, beta != 0.0f ? C : NULL, nc, &dC));
    /* row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T */
    BLAS(cublasSgemm(g.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N,
                     M, K, &alpha, dB, ldb, dA, lda, &beta, dC, ldc));
    return down(C, dC, nc);
}

static void cudnn_gemm(int ta, int tb, int32_t M, int32_t N, int32_t K, float alpha,
                       const float *A, int32_t lda, const float *B, int32_t ldb, float beta,
                       float *C, int32_t ldc) {
    pthread_mutex_lock(&g.mu);
    if (g.err == ENS_OK)
        gemm_dev(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    pthread_mutex_unlock(&g.mu);
}

/* host code of the layers runs on the calling thread: the device is the parallel part */
static void cudnn_parallel(void (*fn)(void *, int32_t, int32_t), void *arg, int32_t n_chunks) {
    for (int32_t i = 0; i < n_chunks; i++)
        fn(arg, i, 0);
}

static int32_t cudnn_max_threads(void) { return 1; }

/* --- convolution --------------------------------------------------------------------------- */

enum { OP_FWD = 1, OP_BWD_DATA = 2, OP_BWD_FILTER = 3 };

static ens_err_t conv_descs(const nn_node_t *n, int32_t b) {
    TRY(tensor(g.xd, b, &n->in_shape));
    TRY(tensor(g.yd, b, &n->out));
    DNN(cudnnSetTensor4dDescriptor(g.bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, n->out.c, 1,
                                   1));
    DNN(cudnnSetFilter4dDescriptor(g.wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, n->out.c,
                                   n->in_shape.c, n->s.k, n->s.k));
    DNN(cudnnSetConvolution2dDescriptor(g.cd, n->s.pad, n->s.pad, n->s.stride, n->s.stride, 1,
                                        1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN(cudnnSetConvolutionMathType(g.cd, CUDNN_FMA_MATH));
    int on, oc, oh, ow;
    DNN(cudnnGetConvolution2dForwardOutputDim(g.cd, g.xd, g.wd, &on, &oc, &oh, &ow));
    if (on != b || oc != n->out.c || oh != n->out.h || ow != n->out.w)
        return fail("cudnn", "cudnnGetConvolution2dForwardOutputDim", "shape differs from CPU");
    return ENS_OK;
}

/* Chooses (once per op and shape) the fastest algorithm that fits WS_LIMIT: cudnnFind*
 * times them on the device; cudnnGet*_v7 (heuristics) when Find fails. */
static ens_err_t pick_algo(int op, const nn_node_t *n, int32_t b, int *algo, size_t *ws) {
    int32_t key[9] = {op, b, n->in_shape.c, n->in_shape.h, n->in_shape.w, n->out.c, n->s.k,
                      n->s.stride, n->s.pad};
    for (int i = 0; i < g.n_algos; i++)
        if (!memcmp(g.algos[i].key, key, sizeof key)) {
            *algo = g.algos[i].algo, *ws = g.algos[i].ws;
            return ENS_OK;
        }
    int found = 0, best = -1;
    size_t best_ws = 0;
    cudnnStatus_t st;
#define PICK(PERF_T, FIND, GET, COUNT, ...)                                                   \
    do {                                                                                      \
        PERF_T perf[COUNT];                                                                   \
        st = FIND(g.dnn, __VA_ARGS__, COUNT, &found, perf);                                   \
        if (st != CUDNN_STATUS_SUCCESS) {                                                     \
            DNN(GET(g.dnn, __VA_ARGS__, COUNT, &found, perf));                                \
        }                                                                                     \
        for (int i_ = 0; i_ < found && best < 0; i_++)                                        \
            if (perf[i_].status == CUDNN_STATUS_SUCCESS && perf[i_].memory <= WS_LIMIT)       \
                best = (int)perf[i_].algo, best_ws = perf[i_].memory;                         \
    } while (0)
    if (op == OP_FWD)
        PICK(cudnnConvolutionFwdAlgoPerf_t, cudnnFindConvolutionForwardAlgorithm,
             cudnnGetConvolutionForwardAlgorithm_v7, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, g.xd,
             g.wd, g.cd, g.yd);
    else if (op == OP_BWD_DATA)
        PICK(cudnnConvolutionBwdDataAlgoPerf_t, cudnnFindConvolutionBackwardDataAlgorithm,
             cudnnGetConvolutionBackwardDataAlgorithm_v7, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
             g.wd, g.yd, g.cd, g.xd);
    else
        PICK(cudnnConvolutionBwdFilterAlgoPerf_t, cudnnFindConvolutionBackwardFilterAlgorithm,
             cudnnGetConvolutionBackwardFilterAlgorithm_v7,
             CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, g.xd, g.yd, g.cd, g.wd);
#undef PICK
    if (best < 0)
        return fail("cudnn", "algorithm selection", "no algorithm fits the workspace limit");
    if (g.n_algos < ALGO_CACHE) {
        memcpy(g.algos[g.n_algos].key, key, sizeof key);
        g.algos[g.n_algos].algo = best;
        g.algos[g.n_algos].ws = best_ws;
        g.n_algos++;
    }
    *algo = best, *ws = best_ws;
    return ENS_OK;
}

static ens_err_t conv_forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x) {
    TRY(conv_descs(n, b));
    int algo;
    size_t wsb;
    TRY(pick_algo(OP_FWD, n, b, &algo, &wsb));
    TRY(workspace(wsb));
    float *dx, *dw, *db, *dy;
    const float *w = c->params + n->p_off;
    TRY(up(S_X, x, (size_t)b * n->size_in, &dx));
    TRY(up(S_W, w, (size_t)n->w_n, &dw));
    TRY(up(S_B, w + n->w_n, (size_t)n->out.c, &db));
    TRY(up(S_Y, NULL, (size_t)b * n->size_out, &dy));
    const float one = 1.0f, zero = 0.0f;
    DNN(cudnnConvolutionForward(g.dnn, &one, g.xd, dx, g.wd, dw, g.cd,
                                (cudnnConvolutionFwdAlgo_t)algo, g.ws, wsb, &zero, g.yd, dy));
    DNN(cudnnAddTensor(g.dnn, &one, g.bd, db, &one, g.yd, dy));
    if (n->s.relu)
        DNN(cudnnActivationForward(g.dnn, g.ad, &one, g.yd, dy, &zero, g.yd, dy));
    return down(n->y, dy, (size_t)b * n->size_out);
}

static ens_err_t conv_backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                               int acc) {
    TRY(conv_descs(n, b));
    size_t ny = (size_t)b * n->size_out, nx = (size_t)b * n->size_in;
    const float one = 1.0f, zero = 0.0f;
    float *d_x, *d_w, *d_dy, *d_y, *d_dw, *d_dx;
    TRY(up(S_DY, n->dy, ny, &d_dy));
    if (n->s.relu) {
        float *d_t;
        TRY(up(S_Y, n->y, ny, &d_y));
        TRY(slot(S_T, ny, &d_t));
        DNN(cudnnActivationBackward(g.dnn, g.ad, &one, g.yd, d_y, g.yd, d_dy, g.yd, d_y, &zero,
                                    g.yd, d_t));
        d_dy = d_t;
    }
    TRY(up(S_X, x, nx, &d_x));
    int algo;
    size_t wsb;
    TRY(pick_algo(OP_BWD_FILTER, n, b, &algo, &wsb));
    TRY(workspace(wsb));
    TRY(slot(S_DW, (size_t)n->p_n, &d_dw));
    DNN(cudnnConvolutionBackwardFilter(g.dnn, &one, g.xd, d_x, g.yd, d_dy, g.cd,
                                       (cudnnConvolutionBwdFilterAlgo_t)algo, g.ws, wsb, &zero,
                                       g.wd, d_dw));
    DNN(cudnnConvolutionBackwardBias(g.dnn, &one, g.yd, d_dy, &zero, g.bd, d_dw + n->w_n));
    TRY(down(c->grads + n->p_off, d_dw, (size_t)n->p_n));
    if (!dx)
        return ENS_OK;
    TRY(pick_algo(OP_BWD_DATA, n, b, &algo, &wsb));
    TRY(workspace(wsb));
    TRY(up(S_W, c->params + n->p_off, (size_t)n->w_n, &d_w));
    TRY(up(S_DX, acc ? dx : NULL, nx, &d_dx));
    DNN(cudnnConvolutionBackwardData(g.dnn, &one, g.wd, d_w, g.yd, d_dy, g.cd,
                                     (cudnnConvolutionBwdDataAlgo_t)algo, g.ws, wsb,
                                     acc ? &one : &zero, g.xd, d_dx));
    return down(dx, d_dx, nx);
}

/* --- pooling and ReLU ------------------------------------------------------------------------ */

static ens_err_t pool_descs(const nn_node_t *n, int32_t b) {
    TRY(tensor(g.xd, b, &n->in_shape));
    TRY(tensor(g.yd, b, &n->out));
    /* the CPU's average pool divides by k*k (padding counts as zeros); max ignores padding */
    DNN(cudnnSetPooling2dDescriptor(g.pd,
                                    n->s.kind == NN_MAXPOOL
                                        ? CUDNN_POOLING_MAX_DETERMINISTIC
                                        : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
                                    CUDNN_NOT_PROPAGATE_NAN, n->s.k, n->s.k, n->s.pad,
                                    n->s.pad, n->s.stride, n->s.stride));
    return ENS_OK;
}

static ens_err_t pool_forward(nn_node_t *n, int32_t b, const float *x) {
    TRY(pool_descs(n, b));
    float *d_x, *d_y;
    const float one = 1.0f, zero = 0.0f;
    TRY(up(S_X, x, (size_t)b * n->size_in, &d_x));
    TRY(slot(S_Y, (size_t)b * n->size_out, &d_y));
    DNN(cudnnPoolingForward(g.dnn, g.pd, &one, g.xd, d_x, &zero, g.yd, d_y));
    return down(n->y, d_y, (size_t)b * n->size_out);
}

static ens_err_t pool_backward(nn_node_t *n, int32_t b, const float *x, float *dx, int acc) {
    if (!dx)
        return ENS_OK;
    TRY(pool_descs(n, b));
    size_t ny = (size_t)b * n->size_out, nx = (size_t)b * n->size_in;
    float *d_x, *d_y, *d_dy, *d_dx;
    const float one = 1.0f, zero = 0.0f;
    TRY(up(S_X, x, nx, &d_x));
    TRY(up(S_Y, n->y, ny, &d_y));
    TRY(up(S_DY, n->dy, ny, &d_dy));
    TRY(up(S_DX, acc ? dx : NULL, nx, &d_dx));
    DNN(cudnnPoolingBackward(g.dnn, g.pd, &one, g.yd, d_y, g.yd, d_dy, g.xd, d_x,
                             acc ? &one : &zero, g.xd, d_dx));
    return down(dx, d_dx, nx);
}

static ens_err_t relu_forward(nn_node_t *n, int32_t b, const float *x) {
    TRY(tensor(g.yd, b, &n->out));
    size_t ny = (size_t)b * n->size_out;
    float *d_x, *d_y;
    const float one = 1.0f, zero = 0.0f;
    TRY(up(S_X, x, ny, &d_x));
    TRY(slot(S_Y, ny, &d_y));
    DNN(cudnnActivationForward(g.dnn, g.ad, &one, g.yd, d_x, &zero, g.yd, d_y));
    return down(n->y, d_y, ny);
}

static ens_err_t relu_backward(nn_node_t *n, int32_t b, const float *x, float *dx, int acc) {
    if (!dx)
        return ENS_OK;
    TRY(tensor(g.yd, b, &n->out));
    size_t ny = (size_t)b * n->size_out;
    float *d_x, *d_y, *d_dy, *d_dx;
    const float one = 1.0f, zero = 0.0f;
    TRY(up(S_X, x, ny, &d_x));
    TRY(up(S_Y, n->y, ny, &d_y));
    TRY(up(S_DY, n->dy, ny, &d_dy));
    TRY(up(S_DX, acc ? dx : NULL, ny, &d_dx));
    DNN(cudnnActivationBackward(g.dnn, g.ad, &one, g.yd, d_y, g.yd, d_dy, g.yd, d_x,
                                acc ? &one : &zero, g.yd, d_dx));
    return down(dx, d_dx, ny);
}

/* --- batch norm ------------------------------------------------------------------------------ */

#define BN_EPS 1e-5 /* as batchnorm.c */

/* cuDNN, like batchnorm.c and PyTorch, updates the running variance with the unbiased batch
 * variance and the running statistics as (1 - momentum) old + momentum new. The saved batch
 * mean and inverse std go where batchnorm.c keeps them (after xhat in aux). */
static ens_err_t bn_forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x) {
    int train = c->train && n->aux;
    int32_t C = n->out.c;
    size_t ny = (size_t)b * n->size_out;
    TRY(tensor(g.xd, b, &n->out));
    DNN(cudnnSetTensor4dDescriptor(g.bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, C, 1, 1));
    float *d_x, *d_y, *d_p, *d_r, *d_s;
    const float one = 1.0f, zero = 0.0f;
    float *rm = c->bufs + n->b_off;
    TRY(up(S_X, x, ny, &d_x));
    TRY(slot(S_Y, ny, &d_y));
    TRY(up(S_W, c->params + n->p_off, 2 * (size_t)C, &d_p)); /* gamma, beta */
    TRY(up(S_B, rm, 2 * (size_t)C, &d_r));                   /* running mean, var */
    if (train) {
        TRY(slot(S_T, 2 * (size_t)C, &d_s));
        DNN(cudnnBatchNormalizationForwardTraining(
            g.dnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, g.xd, d_x, g.xd, d_y, g.bd, d_p,
            d_p + C, (double)n->s.alpha, d_r, d_r + C, BN_EPS, d_s, d_s + C));
        TRY(down(rm, d_r, 2 * (size_t)C));
        TRY(down(n->aux + ny, d_s, 2 * (size_t)C));
    } else {
        DNN(cudnnBatchNormalizationForwardInference(g.dnn, CUDNN_BATCHNORM_SPATIAL, &one,
                                                    &zero, g.xd, d_x, g.xd, d_y, g.bd, d_p,
                                                    d_p + C, d_r, d_r + C, BN_EPS));
    }
    return down(n->y, d_y, ny);
}

static ens_err_t bn_backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                             int acc) {
    int32_t C = n->out.c;
    size_t ny = (size_t)b * n->size_out;
    TRY(tensor(g.xd, b, &n->out));
    DNN(cudnnSetTensor4dDescriptor(g.bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, C, 1, 1));
    float *d_x, *d_dy, *d_dx, *d_p, *d_s, *d_g;
    const float one = 1.0f, zero = 0.0f;
    TRY(up(S_X, x, ny, &d_x));
    TRY(up(S_DY, n->dy, ny, &d_dy));
    TRY(up(S_DX, dx && acc ? dx : NULL, ny, &d_dx));
    TRY(up(S_W, c->params + n->p_off, 2 * (size_t)C, &d_p));
    TRY(up(S_T, n->aux + ny, 2 * (size_t)C, &d_s));
    TRY(slot(S_DW, 2 * (size_t)C, &d_g));
    DNN(cudnnBatchNormalizationBackward(g.dnn, CUDNN_BATCHNORM_SPATIAL, &one,
                                        dx && acc ? &one : &zero, &one, &zero, g.xd, d_x, g.xd,
                                        d_dy, g.xd, d_dx, g.bd, d_p, d_g, d_g + C, BN_EPS, d_s,
                                        d_s + C));
    TRY(down(c->grads + n->p_off, d_g, 2 * (size_t)C));
    return dx ? down(dx, d_dx, ny) : ENS_OK;
}

/* --- the node entry points ------------------------------------------------------------------ */

static int handled(const nn_node_t *n) {
    switch (n->s.kind) {
    case NN_CONV2D:
    case NN_MAXPOOL:
    case NN_AVGPOOL:
    case NN_RELU:
    case NN_BATCHNORM:
        return 1;
    default:
        return 0;
    }
}

static int cudnn_node_forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x0,
                              const float *x1) {
    (void)x1;
    if (!handled(n))
        return 1;
    pthread_mutex_lock(&g.mu);
    if (g.err == ENS_OK) {
        switch (n->s.kind) {
        case NN_CONV2D: conv_forward(c, n, b, x0); break;
        case NN_MAXPOOL:
        case NN_AVGPOOL: pool_forward(n, b, x0); break;
        case NN_RELU: relu_forward(n, b, x0); break;
        default: bn_forward(c, n, b, x0); break;
        }
    }
    pthread_mutex_unlock(&g.mu);
    return 0;
}

static int cudnn_node_backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x0,
                               float *dx0, float *dx1, int acc0, int acc1) {
    (void)dx1, (void)acc1;
    if (!handled(n))
        return 1;
    pthread_mutex_lock(&g.mu);
    if (g.err == ENS_OK) {
        switch (n->s.kind) {
        case NN_CONV2D: conv_backward(c, n, b, x0, dx0, acc0); break;
        case NN_MAXPOOL:
        case NN_AVGPOOL: pool_backward(n, b, x0, dx0, acc0); break;
        case NN_RELU: relu_backward(n, b, x0, dx0, acc0); break;
        default: bn_backward(c, n, b, x0, dx0, acc0); break;
        }
    }
    pthread_mutex_unlock(&g.mu);
    return 0;
}

const uint32_t ens_cudnn_abi = ENS_NN_ABI;

const struct ens_backend_i ens_backend_cudnn = {
    .name = "cudnn",
    .gemm = cudnn_gemm,
    .parallel = cudnn_parallel,
    .max_threads = cudnn_max_threads,
    .node_forward = cudnn_node_forward,
    .node_backward = cudnn_node_backward,
    .take_error = cudnn_take_error,
};
