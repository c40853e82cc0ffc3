/* nn.h - the minimal network: MLP of dense + ReLU, softmax cross-entropy, SGD with momentum. */
#ifndef ENSFLOW_NN_H
#define ENSFLOW_NN_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/data.h"
#include "ensflow/err.h"

#define ENS_MODEL_MAX_LAYERS 8

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

#endif
