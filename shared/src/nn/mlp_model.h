/* mlp_model.h - the MLP's private struct, shared by mlp.c (maths) and mlp_io.c (file format). */
#ifndef ENSFLOW_NN_MLP_MODEL_H
#define ENSFLOW_NN_MLP_MODEL_H

#include "ensflow/nn.h"

#define MLP_MAX_DENSE (ENS_MODEL_MAX_LAYERS + 1) /* up to ENS_MODEL_MAX_LAYERS hidden layers */
#define MLP_MAX_WIDTH (1 << 20)                 /* units in one layer */
#define MLP_MAX_PARAMS ((int64_t)1 << 28)       /* 1 GiB of float32 */
#define MLP_MAX_BATCH (1 << 16)

struct ens_model_s {
    int32_t n_layers;                    /* dense layers */
    int32_t sizes[MLP_MAX_DENSE + 1];    /* sizes[0] = in_dim, sizes[n_layers] = n_classes */
    int64_t w_off[MLP_MAX_DENSE];        /* offsets of W_l and b_l in params */
    int64_t b_off[MLP_MAX_DENSE];
    int64_t n_params;
    float *params, *grads, *velocity;    /* same layout (see mlp_internal.h) */
    float mean, std;                     /* input normalisation */
    double epochs_done;
    /* batch buffers, one arena for cap rows */
    int32_t cap;
    float *arena;
    float *act[MLP_MAX_DENSE + 1];       /* act[0] input, act[l] layer l output, last = logits */
    float *probs;
    float *delta[2];
};

/** @brief A model of the given layer sizes with zero parameters and momentum. */
ens_err_t ens_mlp_alloc(const int32_t *sizes, int32_t n_sizes, ens_model_t **out);

#endif
