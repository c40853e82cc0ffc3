/* mlp_internal.h - MLP internals for tests: parameter layout, loss and gradient on a batch. */
#ifndef ENSFLOW_NN_MLP_INTERNAL_H
#define ENSFLOW_NN_MLP_INTERNAL_H

#include "ensflow/nn.h"

/*
 * Parameter layout (ens_model_n_params floats) of a model made by ens_model_new_mlp: for
 * each dense layer l in order, the weights W_l row-major [in_l x out_l] (so a forward pass is act_{l+1} = act_l * W_l + b_l), then the
 * bias b_l [out_l]. Gradients and momentum buffers use the same layout.
 */

/** @brief The model's parameters (writable, ens_model_n_params(m) floats). */
float *ens_mlp_params(ens_model_t *m);

/** @brief Gradients of the last ens_mlp_loss_grad call, same layout as the parameters. */
const float *ens_mlp_grads(const ens_model_t *m);

/**
 * @brief Mean softmax cross-entropy of b rows of x (labels y) and its gradient (without weight
 *        decay) into ens_mlp_grads(m), for any model (training mode: batch statistics,
 *        dropout masks from the model's stream). Parameters are not changed.
 */
ens_err_t ens_mlp_loss_grad(ens_model_t *m, const float *x, const int32_t *y, int32_t b,
                            double *loss);

#endif
