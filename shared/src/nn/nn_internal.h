/* nn_internal.h - the layer engine: a graph of nodes, the layer and backend interfaces. */
#ifndef ENSFLOW_NN_INTERNAL_H
#define ENSFLOW_NN_INTERNAL_H

#include "ensflow/nn.h"

#include <stdint.h>

/*
 * Layout. Every activation is float32 NCHW: a batch of b samples, each sample c planes of
 * h rows of w values, contiguous (sample stride c*h*w). A dense layer sees its input sample as
 * one flat row of c*h*w values, so flatten is a copy. The model input is a flat row of
 * in_c*in_h*in_w floats, which is NCHW for one sample.
 *
 * Parameters of all nodes live in one array (model->params), node by node in graph order;
 * within a node, the decayed weights come first (w_n floats), then biases / BN gamma, beta.
 *   dense:  W [in x out] row-major (y = x W + b), then b [out]
 *   conv2d: W [F x C x k x k] (= [F x C*k*k] row-major), then b [F]
 *   batch norm: gamma [C], beta [C]; buffers (not trained): running mean [C], running var [C]
 * Gradients and optimiser state use the same layout.
 */

#define NN_MAX_NODES 256
#define NN_MAX_DIM (1 << 16)             /* channels, rows, columns, units */
#define NN_MAX_SAMPLE ((int64_t)1 << 24) /* floats in one sample's activation */
#define NN_MAX_PARAMS ((int64_t)1 << 28) /* 1 GiB of float32 */
#define NN_MAX_BATCH (1 << 16)
#define NN_MAX_KERNEL 15
#define NN_CHUNKS 8 /* fixed split of a batch: results do not depend on the thread count */

typedef enum {
    NN_DENSE = 1,
    NN_CONV2D = 2,
    NN_MAXPOOL = 3,
    NN_AVGPOOL = 4,
    NN_GAP = 5,
    NN_BATCHNORM = 6,
    NN_DROPOUT = 7,
    NN_RELU = 8,
    NN_LEAKY_RELU = 9,
    NN_GELU = 10,
    NN_ADD = 11,
    NN_FLATTEN = 12,
    NN_KIND_END
} nn_kind_t;

typedef struct {
    int32_t c, h, w;
} nn_shape_t;

/* What is stored for a node in the model file and given to nn_graph_add. */
typedef struct {
    int32_t kind;
    int32_t in[2];  /* producing nodes; -1 = the model input; in[1] only for add */
    int32_t units;  /* dense units, conv filters */
    int32_t k, stride, pad;
    int32_t relu;   /* dense, conv2d: a fused ReLU on the output */
    float alpha;    /* leaky ReLU slope, dropout probability, BN momentum */
} nn_spec_t;

typedef struct nn_node {
    nn_spec_t s;
    int32_t n_in;
    nn_shape_t in_shape, out;
    int64_t size_in, size_out; /* floats per sample */
    int64_t p_off, p_n, w_n;   /* parameters; the first w_n are weight-decayed */
    int64_t b_off, b_n;        /* buffers (BN running statistics) */
    int64_t ws_n;              /* per-thread workspace floats */
    int64_t keep_n;            /* floats the node keeps between calls (a cache, e.g. transformed
                                * weights); keep[0] = 0 whenever the arena is new */
    int64_t part_n;            /* per-chunk gradient partials (floats) */
    int32_t n_consumers;
    /* batch buffers in the arena */
    float *y, *dy, *aux, *keep;
} nn_node_t;

struct nn_ctx;

/*
 * The backend: a table of function pointers (ggml style), NULL where optional. The CPU
 * backend (backend_cpu.c) fills the required entries; layers call the backend for matrix
 * products and for splitting work over its threads. A device backend (backend_cudnn.c) also
 * runs whole nodes: node_forward / node_backward return 0 when they ran the node, 1 when the
 * layer's own code should run it; device errors are kept until take_error reads them.
 */
struct ens_backend_i {
    const char *name;
    /* C[M x N] = alpha op(A) op(B) + beta C, row-major; runs on the calling thread */
    void (*gemm)(int trans_a, int trans_b, int32_t M, int32_t N, int32_t K, float alpha,
                 const float *A, int32_t lda, const float *B, int32_t ldb, float beta, float *C,
                 int32_t ldc);
    /* fn(arg, chunk, tid) for chunk in [0, n_chunks) over the backend's threads; tid indexes
     * per-thread workspace, chunk indexes results */
    void (*parallel)(void (*fn)(void *arg, int32_t chunk, int32_t tid), void *arg,
                     int32_t n_chunks);
    int32_t (*max_threads)(void);
    /* optional */
    int (*node_forward)(struct nn_ctx *c, struct nn_node *n, int32_t b, const float *x0,
                        const float *x1);
    int (*node_backward)(struct nn_ctx *c, struct nn_node *n, int32_t b, const float *x0,
                         float *dx0, float *dx1, int acc0, int acc1);
    ens_err_t (*take_error)(void); /* first error since the last call, then clears it */
};

extern const struct ens_backend_i ens_backend_cpu;
#ifdef ENSFLOW_HAVE_CUDNN
/* What the cudnn module and the library must agree on: the layouts they share. Bump the
 * leading number when a shared struct changes meaning without changing size. */
#define ENS_NN_ABI                                                                             \
    ((uint32_t)(1u * 1000003u) ^ (uint32_t)(sizeof(struct ens_backend_i) * 8191u) ^           \
     (uint32_t)(sizeof(nn_node_t) * 131u) ^ (uint32_t)(sizeof(struct nn_ctx) * 7u) ^          \
     (uint32_t)sizeof(nn_shape_t))
/* In the cudnn module (backend_cudnn.c, loaded by backend.c on first use): */
extern const uint32_t ens_cudnn_abi; /* ENS_NN_ABI as the module was built */
extern const struct ens_backend_i ens_backend_cudnn;
/* Opens device 0 once per process; ENS_ERR_CUDA with why filled when there is none. */
ens_err_t nn_cudnn_device_open(char *why, size_t why_size);
/* In the library (backend.c): loads the module once, then nn_cudnn_device_open.
 * ENS_ERR_UNSUPPORTED with why filled when the module does not load. */
ens_err_t nn_cudnn_open(char *why, size_t why_size);
#endif

typedef struct nn_ctx {
    const struct ens_backend_i *be;
    float *params, *grads, *bufs;
    int train;
    ens_rng_t *rng;   /* dropout masks */
    float *ws;        /* max_threads * ws_per_thread floats */
    int64_t ws_per_thread;
    float *parts;     /* NN_CHUNKS * part_n floats for the node in progress */
} nn_ctx_t;

/* One per kind, one file each under layers/. */
typedef struct {
    const char *name;
    /* out shape, parameter/buffer/workspace counts from the input shapes and the spec;
     * returns NULL or what is wrong */
    const char *(*setup)(nn_node_t *n, const nn_shape_t *in0, const nn_shape_t *in1);
    int64_t (*aux_floats)(const nn_node_t *n, int32_t b); /* training-only per-batch state */
    void (*init)(const nn_node_t *n, float *p, float *buf, ens_rng_t *rng); /* NULL: zeros */
    void (*forward)(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x0, const float *x1);
    /* dx0/dx1 may be NULL (no gradient wanted); acc: add to dx instead of overwriting */
    void (*backward)(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x0, float *dx0,
                     float *dx1, int acc0, int acc1);
} nn_layer_ops_t;

extern const nn_layer_ops_t nn_dense_ops, nn_conv2d_ops, nn_maxpool_ops, nn_avgpool_ops,
    nn_gap_ops, nn_batchnorm_ops, nn_dropout_ops, nn_relu_ops, nn_leaky_relu_ops, nn_gelu_ops,
    nn_add_ops, nn_flatten_ops;
const nn_layer_ops_t *nn_ops(int32_t kind);

/* Optimiser state kinds stored in the model (which buffers exist). */
typedef enum { NN_OPTSTATE_NONE = 0, NN_OPTSTATE_MOMENTUM = 1, NN_OPTSTATE_ADAM = 2 } nn_optstate_t;

struct ens_model_s {
    nn_shape_t in;
    int32_t n_classes;
    int32_t n_nodes;
    nn_node_t nodes[NN_MAX_NODES];
    int64_t n_params, n_bufs;
    float *params, *grads, *bufs;
    float *opt_m, *opt_v; /* momentum / Adam first moment; Adam second moment */
    int32_t opt_state;    /* nn_optstate_t */
    uint64_t opt_step;    /* optimiser steps taken (Adam bias correction, schedules) */
    float mean, std;
    double epochs_done;
    ens_rng_t rng;        /* dropout and augmentation stream, saved with the model */
    char **class_names;   /* NULL or n_classes strings */
    const struct ens_backend_i *be;
    /* arena for batches of up to cap rows; train: backward buffers too */
    int32_t cap, cap_train;
    float *arena;
    float *x0, *dx_unused, *probs, *ws, *parts, *xaug;
    int32_t *ybuf, *perm;
    int32_t perm_cap;
    int64_t ws_per_thread, part_max;
};

/* graph.c */
ens_err_t nn_model_begin(nn_shape_t in, int32_t n_classes, ens_model_t **out);
/* Adds a node (validated); returns its index or -1 with errstr filled. */
int32_t nn_graph_add(ens_model_t *m, const nn_spec_t *spec, char *errstr, size_t errstr_size);
/* Checks the output, allocates parameters and optimiser buffers, initialises from seed. */
ens_err_t nn_model_finish(ens_model_t *m, uint64_t seed, int init, char *errstr,
                          size_t errstr_size);
ens_err_t nn_ensure_batch(ens_model_t *m, int32_t b, int train);
void nn_forward(ens_model_t *m, int32_t b, int train);
/* ENS_OK, or the backend's first error since the last call (device backends) */
ens_err_t nn_backend_error(ens_model_t *m);
/* softmax probs from the logits; returns summed cross-entropy (label smoothing eps) when y */
double nn_softmax_ce(ens_model_t *m, int32_t b, const int32_t *y, double smoothing);
/* gradients of the mean loss into m->grads (probs fresh) */
void nn_backward(ens_model_t *m, int32_t b, const int32_t *y, double smoothing);
int64_t nn_in_size(const ens_model_t *m);

/* Nonzero: layers take their reference paths (im2col + sgemm, the general pooling loop)
 * instead of the fast kernels, so that tests compare the two. Set it only while no model
 * runs; 0 by default (nn_par.c). */
extern int nn_reference_kernels;

/* helpers for layers (nn_par.c) */
void nn_par_samples(nn_ctx_t *c, int32_t b, void (*fn)(void *arg, int32_t s0, int32_t s1,
                                                       int32_t chunk, int32_t tid),
                    void *arg);
/* C = A B (+C) split over threads by rows of C (or columns when M is small) */
void nn_par_gemm(nn_ctx_t *c, int ta, int tb, int32_t M, int32_t N, int32_t K, const float *A,
                 int32_t lda, const float *B, int32_t ldb, float beta, float *C, int32_t ldc);

#endif
