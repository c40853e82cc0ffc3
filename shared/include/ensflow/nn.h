/* nn.h - neural networks: MLPs and CNNs on the layer engine (shared/src/nn), training, files. */
#ifndef ENSFLOW_NN_H
#define ENSFLOW_NN_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/data.h"
#include "ensflow/err.h"

#define ENS_MODEL_MAX_LAYERS 8 /**< hidden layers of an MLP */

typedef struct ens_model_s ens_model_t;

/** Hyperparameters of one training run. */
typedef struct {
    double lr;            /**< learning rate */
    double momentum;      /**< SGD momentum, 0..1 */
    double weight_decay;  /**< L2 on weights (not biases) */
    int32_t batch_size;
} ens_sgd_t;

/**
 * @brief A new MLP in_dim -> hidden[0] -> ... -> n_classes with ReLU between dense layers,
 *        He-initialised from seed. Input normalisation defaults to mean 0, std 1.
 */
ens_err_t ens_model_new_mlp(int32_t in_dim, const int32_t *hidden, int32_t n_hidden,
                            int32_t n_classes, uint64_t seed, ens_model_t **out);

/** @brief Free. NULL is a no-op. */
void ens_model_free(ens_model_t *m);

/** @brief Per-model input normalisation x' = (x - mean) / std applied inside forward. */
void ens_model_set_normalisation(ens_model_t *m, float mean, float std);

int32_t ens_model_in_dim(const ens_model_t *m);
int32_t ens_model_n_classes(const ens_model_t *m);
int64_t ens_model_n_params(const ens_model_t *m);
/** @brief Bytes of weights plus activations for a forward pass at batch size b. */
int64_t ens_model_memory_bytes(const ens_model_t *m, int32_t b);

/**
 * @brief Floating-point operations of one forward pass (inference) for one sample, counted
 *        layer by layer from the graph's shapes; independent of the backend and batch size.
 *
 * A multiply-add is 2 FLOPs; every other elementwise operation, compare or add is 1.
 *   dense in -> out:            2*in*out + out (bias) [+ out for a fused ReLU]
 *   conv2d C -> F, k x k:       2*k*k*C*F*Ho*Wo + F*Ho*Wo (bias, always present)
 *                               [+ F*Ho*Wo for a fused ReLU]; the engine has no groups
 *   batch norm (running stats): 2*C*H*W (a scale and a shift per value)
 *   max / avg pool k x k:       k*k*C*Ho*Wo (one compare or add per window element)
 *   global average pool:        C*H*W of its input
 *   relu, leaky relu, gelu, add: C*H*W (1 per value, whatever the function's real cost)
 *   dropout (identity at inference), flatten: 0
 *   softmax over the classes:   3*n_classes (exp, sum, scale), once per model
 * Input normalisation ((x - mean) / std, done before the graph) is not counted.
 * Example: the MLP 784-256-10 counts (2*784*256 + 256 + 256) + (2*256*10 + 10) + 3*10.
 */
int64_t ens_model_flops_per_sample(const ens_model_t *m);

/**
 * @brief Class probabilities for n samples (softmax of the logits), probs is n*n_classes.
 *        Works in batches internally; any n.
 */
ens_err_t ens_model_predict(ens_model_t *m, const float *x, int32_t n, float *probs);

/**
 * @brief One epoch of minibatch SGD with momentum over ds in an order shuffled by rng.
 *        The momentum buffers live in the model and are saved with it.
 * @param mean_loss out: mean training cross-entropy over the epoch (may be NULL); not finite
 *        when training diverged
 * @remark adds 1 to ens_model_epochs_done. A model holds its batch buffers: use one model
 *         from one thread at a time (predict and evaluate included).
 */
ens_err_t ens_model_train_epoch(ens_model_t *m, const ens_dataset_t *ds, const ens_sgd_t *sgd,
                                ens_rng_t *rng, double *mean_loss);

/**
 * @brief Part of an epoch: n_steps minibatches (at most one epoch's worth) of a fresh shuffle
 *        by rng. Lets a trainer stop at a fractional epoch or checkpoint inside an epoch.
 * @remark adds n_steps * batch / ds->n (the share of samples seen) to ens_model_epochs_done.
 */
ens_err_t ens_model_train_steps(ens_model_t *m, const ens_dataset_t *ds, const ens_sgd_t *sgd,
                                ens_rng_t *rng, int32_t n_steps, double *mean_loss);

/**
 * @brief Accuracy and mean cross-entropy on ds; probs (n*n_classes) may be NULL,
 *        else receives the probabilities.
 */
ens_err_t ens_model_evaluate(ens_model_t *m, const ens_dataset_t *ds, double *accuracy,
                             double *mean_loss, float *probs);

/**
 * @brief Serialise to the self-describing model file format (magic "ENSM", format version,
 *        architecture, normalisation, epochs done, weights, optimiser state), little-endian.
 * @remark *buf is malloc'd; the caller frees it.
 */
ens_err_t ens_model_save(const ens_model_t *m, uint8_t **buf, size_t *len);

/**
 * @brief Load a model file; a truncated, corrupt or foreign file gives ENS_ERR_CORRUPT
 *        with errstr saying what is wrong, never a crash.
 */
ens_err_t ens_model_load(const uint8_t *buf, size_t len, ens_model_t **out, char *errstr,
                         size_t errstr_size);

/** @brief Epochs of training recorded in the model (saved with it). */
double ens_model_epochs_done(const ens_model_t *m);
void ens_model_set_epochs_done(ens_model_t *m, double epochs);

/**
 * @brief Free the optimiser's state (momentum, Adam moments: twice the weights for Adam), for
 *        a model that will not be trained further; saving it then writes the weights alone.
 *        Training it again starts the optimiser afresh.
 * @return 1 when there was state to drop, else 0.
 */
int ens_model_drop_optimiser(ens_model_t *m);

/* --- CNNs, training options, class names --------------------------------------------- */

/**
 * @brief A new network from an architecture in JSON, for inputs of in_c x in_h x in_w
 *        (NCHW; a sample is a flat row of in_c*in_h*in_w floats) and n_classes outputs.
 *
 * Keys (all optional; defaults in brackets):
 *   "blocks": [ {block}, ... ]  the conv blocks, or generated from
 *   "n_blocks" [2], "width" [32], "width_mult" [2]: block i has width * width_mult^i filters
 *   defaults for every block, each overridable inside a block:
 *     "filters", "kernel" [3], "stride" [1], "pad" [kernel/2], "batch_norm" [false],
 *     "residual" [false], "pool" ["max" | "avg" | "none", default "max"], "pool_size" [2],
 *     "dropout" [0]
 *   "act": "relu" | "leaky_relu" | "gelu" ["relu"], "leaky_alpha" [0.01]
 *   "head": "flatten" | "gap" ["flatten"]: how the last block reaches the dense layers
 *   "dense": [128]  hidden dense units after the blocks ([] for none)
 *   "dense_dropout": [0] dropout before each hidden dense layer's successor
 * A block is conv(k, stride, pad) [+ batch norm] + act; with "residual" a second conv(k)
 * [+ batch norm] follows, the block input is added (through a 1x1 conv [+ batch norm] when
 * the channels or the stride differ) and act applied after the add; then the pool
 * (pool_size x pool_size, stride pool_size), then dropout. The head ends in dense(n_classes).
 * Example, the reference CNN:
 *   {"blocks":[{"filters":32},{"filters":64}],"dense":[128]}
 * @return ENS_ERR_INVALID with errstr naming the bad field.
 */
ens_err_t ens_model_new_from_json(const char *arch_json, int32_t in_c, int32_t in_h,
                                  int32_t in_w, int32_t n_classes, uint64_t seed,
                                  ens_model_t **out, char *errstr, size_t errstr_size);

/** @brief The input shape (channels, height, width); an MLP has in_dim x 1 x 1. */
void ens_model_input_shape(const ens_model_t *m, int32_t *c, int32_t *h, int32_t *w);

/** @brief Optional class names (n = n_classes strings, copied; NULL clears); saved with the
 *         model. */
ens_err_t ens_model_set_class_names(ens_model_t *m, const char *const *names, int32_t n);
/** @brief The name of class k, or NULL when the model has none. */
const char *ens_model_class_name(const ens_model_t *m, int32_t k);

typedef enum {
    ENS_OPT_SGD = 0,      /**< SGD with momentum (PyTorch's form: v = mu v + g; w -= lr v) */
    ENS_OPT_NESTEROV = 1, /**< SGD with Nesterov momentum */
    ENS_OPT_ADAM = 2,     /**< Adam; weight decay is L2 added to the gradient */
    ENS_OPT_ADAMW = 3     /**< Adam with decoupled weight decay (w -= lr wd w) */
} ens_optimizer_t;

typedef enum {
    ENS_LR_CONSTANT = 0,
    ENS_LR_STEP = 1,  /**< lr * step_gamma^floor(epoch / step_epochs) */
    ENS_LR_COSINE = 2 /**< lr * (1 + cos(pi * epoch / total_epochs)) / 2 */
} ens_lr_schedule_t;

/** Options of ens_model_train_epoch_opts; start from ens_train_opts_default. */
typedef struct {
    ens_optimizer_t optimizer;
    double lr;
    double momentum;         /**< SGD / Nesterov, [0, 1) */
    double beta1, beta2, eps; /**< Adam(W) */
    double weight_decay;     /**< on weights of dense and conv layers, not biases or BN */
    int32_t batch_size;
    ens_lr_schedule_t schedule;
    double total_epochs;     /**< cosine horizon (fractions allowed) */
    double cycle_start_epochs; /**< cosine: where the current cycle began (a warm restart, as
                                    at an ASHA promotion); 0 = one cycle from the start */
    int32_t step_epochs;     /**< step schedule period */
    double step_gamma;
    double warmup_epochs;    /**< linear warm-up from 0, in epochs (fractions allowed) */
    double clip_norm;        /**< clip the global gradient L2 norm; 0 = off */
    int32_t aug_crop_pad;    /**< random crop of the input image after zero padding; 0 = off */
    int32_t aug_hflip;       /**< random horizontal flip with probability 1/2 */
    double label_smoothing;  /**< [0, 1) */
} ens_train_opts_t;

/** @brief Defaults: SGD lr 0.01 momentum 0.9, Adam betas 0.9/0.999 eps 1e-8, batch 128,
 *         constant lr, step_gamma 0.1, everything else off. */
void ens_train_opts_default(ens_train_opts_t *o);

/**
 * @brief One epoch with the given options over ds in an order shuffled by rng. The learning
 *        rate of each step follows the schedule at the model's fractional epoch
 *        (ens_model_epochs_done + steps done / steps per epoch).
 * @remark adds 1 to ens_model_epochs_done; optimiser state is kept in the model and saved.
 *         Deterministic for a seed and a thread count (ENSFLOW_NN_THREADS).
 */
ens_err_t ens_model_train_epoch_opts(ens_model_t *m, const ens_dataset_t *ds,
                                     const ens_train_opts_t *opts, ens_rng_t *rng,
                                     double *mean_loss);

/**
 * @brief Minibatches [step_begin, step_end) of the epoch that ens_model_train_epoch_opts would
 *        train with the same options and generator: the same shuffle and augmentation draws,
 *        the schedule's rate at each step's fractional epoch, the optimiser (momentum or
 *        Adam(W) state, kept in the model and saved), clipping and label smoothing. Training
 *        [0, k) and then [k, steps), with a save and load between or not, gives bit for bit
 *        the model of one ens_model_train_epoch_opts call (same thread count).
 * @param rng the epoch's generator in its state at the start of the epoch, the same for every
 *        range of one epoch (e.g. seeded from the epoch's number); on return it stands where
 *        the whole-epoch call would have left it after step_end
 * @param step_begin, step_end 0 <= step_begin <= step_end <= steps per epoch
 *        (ceil(ds->n / batch_size))
 * @param mean_loss out (may be NULL): mean training loss over the range's samples
 * @remark The model stands at step_begin of its epoch: the epoch began at
 *         e0 = epochs_done - step_begin / steps (snapped to an integer within 1e-6 when
 *         step_begin > 0). On return epochs_done is e0 + step_end / steps, e0 + 1 at the end.
 */
ens_err_t ens_model_train_steps_opts(ens_model_t *m, const ens_dataset_t *ds,
                                     const ens_train_opts_t *opts, ens_rng_t *rng,
                                     int32_t step_begin, int32_t step_end, double *mean_loss);

/* --- backends -------------------------------------------------------------------------- */

/**
 * @brief Runs m on the named backend from now on: "cpu" (OpenBLAS and a thread pool, the
 *        default) or "cudnn" (cuDNN and cuBLAS on CUDA device 0, in builds where CMake found
 *        CUDA). A new model starts on the backend named by ENSFLOW_BACKEND (cpu|cudnn; unset:
 *        cpu), and its creation fails when that backend cannot be used.
 * @return ENS_ERR_INVALID for an unknown name, ENS_ERR_UNSUPPORTED when the build has no
 *         cudnn backend or its module (libensflow_cudnn.so, ENSFLOW_CUDNN_MODULE) does not
 *         load, ENS_ERR_CUDA when there is no usable device; errstr says why.
 *         m is unchanged on error.
 */
ens_err_t ens_model_set_backend(ens_model_t *m, const char *name, char *errstr,
                                size_t errstr_size);

/** @brief The backend's name ("cpu-openblas", "cudnn"). */
const char *ens_model_backend_name(const ens_model_t *m);

#endif
