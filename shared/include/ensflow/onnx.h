/* onnx.h - export of a model, or of a weighted ensemble of models, as one ONNX graph. */
#ifndef ENSFLOW_ONNX_H
#define ENSFLOW_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/nn.h"

#define ENS_ONNX_IR_VERSION 8 /**< ModelProto.ir_version written (ONNX 1.10 and later read it) */
#define ENS_ONNX_OPSET 13     /**< version of the default operator set the graph uses */

/**
 * @brief Serialise n models as one ONNX ModelProto (protobuf) that computes what
 *        ens_model_predict and ens_ensemble_combine compute.
 *
 * The graph takes "input", float [N, D] (D = ens_model_in_dim: the flat NCHW rows
 * ens_model_predict takes, unnormalised) and gives "probs", float [N, K] (K classes). Each
 * member normalises the input as ens_model_set_normalisation says ((x - mean) * (1 / std)),
 * runs its layers in inference mode and ends in Softmax over the classes. With n > 1 the
 * output is sum_m w_m probs_m with w_m = weights[m] / sum(weights) (ens_ensemble_combine's
 * rule, added in member order).
 *
 * Layers: dense (Gemm), conv2d (Conv), batch norm with its running statistics
 * (BatchNormalization, eps 1e-5), relu, leaky_relu (LeakyRelu), gelu (the exact form, with
 * Erf), maxpool, avgpool (AveragePool counting padding), gap (GlobalAveragePool), flatten,
 * add (residual) and dropout (the identity at inference). Values between layers are [N, C, H, W]
 * or [N, C*H*W], with a Reshape or Flatten where a layer needs the other form.
 *
 * @param models n models (not modified; the caller keeps them)
 * @param weights n combination weights (finite, >= 0, positive sum), or NULL for equal
 *        weights; unused when n == 1
 * @param buf out: the file's bytes, malloc'd; the caller frees it
 * @return ENS_OK; ENS_ERR_INVALID for bad arguments, members that differ in input size or
 *         classes, or bad weights; ENS_ERR_UNSUPPORTED when a layer has no ONNX form or the
 *         graph would pass the 2 GiB limit of one protobuf message (errstr names the member,
 *         the node and the layer); ENS_ERR_NOMEM.
 */
ens_err_t ens_onnx_export(const ens_model_t *const *models, const double *weights, int n,
                          uint8_t **buf, size_t *len, char *errstr, size_t errstr_size);

#endif
