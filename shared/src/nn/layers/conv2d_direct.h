/* conv2d_direct.h - stride-1 convolutions of few input channels (a network's first layer,
 * on the image's own channels), computed directly, one sample at a time. */
#ifndef ENSFLOW_NN_CONV2D_DIRECT_H
#define ENSFLOW_NN_CONV2D_DIRECT_H

#include "conv2d_wino.h"

/* Whether the direct path applies: stride 1, a kernel wider than 1 (a 1x1 layer multiplies
 * its input in place) and at most NN_DIRECT_MAX_C input channels. */
#define NN_DIRECT_MAX_C 4
int nn_direct_applies(const nn_conv_geom_t *g);

/* Workspace floats for one sample (nn_direct_forward and nn_direct_weight_grad). */
int64_t nn_direct_ws(const nn_conv_geom_t *g);

/* y = conv(x, w) + bias, then max(0, .) when relu, for one sample (x: C x H x W, y: F x Ho x
 * Wo, w: F x C x k x k). */
void nn_direct_forward(const nn_conv_geom_t *g, const float *w, const float *bias, int relu,
                       const float *x, float *y, float *ws);

/* dw [F x C x k x k] += the weight gradient of one sample, dy its output gradient (after the
 * ReLU mask). */
void nn_direct_weight_grad(const nn_conv_geom_t *g, const float *x, const float *dy, float *dw,
                           float *ws);

#endif
