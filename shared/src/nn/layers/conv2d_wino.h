/* conv2d_wino.h - 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3):
 * forward, input gradient and weight gradient, for one chunk of samples at a time. */
#ifndef ENSFLOW_NN_CONV2D_WINO_H
#define ENSFLOW_NN_CONV2D_WINO_H

#include "../nn_internal.h"

/* x86-64: AVX-512 and AVX2 copies of a loop-heavy function beside the baseline one, picked
 * at load time (not under the sanitizers, whose instrumentation the clones do not take) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                         \
    !defined(__SANITIZE_ADDRESS__)
#define NN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NN_VECTOR_CLONES
#endif

/* A convolution's geometry (input C x H x W, F filters of k x k, stride s, padding p). */
typedef struct {
    int32_t C, H, W, F, k, s, p, Ho, Wo;
} nn_conv_geom_t;

/* Output tiles of 2x2 transformed per block: bounds the workspace, keeps a block's transformed
 * input and products near the caches, and is long enough for the sixteen products to run at
 * sgemm speed. */
#define NN_WINO_BLOCK 128

/* Whether the Winograd path applies: 3x3, stride 1, padding below 3 (any input size). */
int nn_wino_applies(const nn_conv_geom_t *g);

/* Workspace floats one thread needs (nn_wino_forward and nn_wino_backward). */
int64_t nn_wino_ws(const nn_conv_geom_t *g);

/* Floats of the transformed weights (16 x F x C, padded). */
int64_t nn_wino_u_size(const nn_conv_geom_t *g);

/* U = the weights w [F x C x 3 x 3] transformed (before the chunks run; read by them all). */
void nn_wino_weights(const nn_conv_geom_t *g, const float *w, float *U);

/* y[s] = conv(x[s], w) + bias, then max(0, .) when relu, for the n samples at x (sample
 * stride C*H*W) into y (sample stride F*Ho*Wo); U from nn_wino_weights. */
void nn_wino_forward(const struct ens_backend_i *be, const nn_conv_geom_t *g, const float *U,
                     const float *bias, int relu, const float *x, int32_t n, float *y,
                     float *ws);

/* For the n samples: dw [F x C x 3 x 3] += the weight gradient and, when dx is not NULL, the
 * input gradient into dx (acc = 0 overwrites it, acc = 1 adds to it; U is then needed). dy is
 * the output gradient after the ReLU mask. */
void nn_wino_backward(const struct ens_backend_i *be, const nn_conv_geom_t *g, const float *U,
                      const float *x, const float *dy, int32_t n, float *dw, float *dx, int acc,
                      float *ws);

#endif
