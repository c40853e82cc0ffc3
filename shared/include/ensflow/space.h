/* space.h - search spaces in JSON and seeded sampling of trial configurations. */
#ifndef ENSFLOW_SPACE_H
#define ENSFLOW_SPACE_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/nn.h"

/**
 * The space is a JSON object; each key is a hyperparameter of the MLP family and each value
 * one of: a scalar (fixed), an array (choice), {"uniform":[lo,hi]}, {"log_uniform":[lo,hi]}
 * or {"int":[lo,hi]} (inclusive). Keys left out take the defaults:
 *   layers {"int":[1,3]}, width [64,128,256,512] (sampled per layer),
 *   lr {"log_uniform":[0.005,0.1]}, momentum [0.8,0.9,0.95], batch_size [64,128,256],
 *   weight_decay {"log_uniform":[1e-6,1e-3]}.
 * {"choice":[...]} is the object form of a choice.
 *
 * Conditional parameters: a range object may carry "cond" and "else":
 *   "width":    {"cond": {"param": "layers", "values": [2, 3]}, "choice": [32, 64], "else": 256}
 *   "momentum": {"cond": {"param": "batch_size", "values": [256]}, "uniform": [0.5, 0.9]}
 * The parameter is drawn from its range only when the sampled value of cond.param is one of
 * cond.values; otherwise it takes "else", or without one a fixed fallback (layers 2, width
 * 128, lr 0.01, momentum 0.9, batch_size 128, weight_decay 1e-4). cond.param must be another
 * known hyperparameter other than width, itself unconditional or gated only by family (no
 * other chains). Every value is drawn in a fixed order whether its cond holds or not, so a
 * cond changes only the parameter it guards.
 *
 * Families: "family" is "mlp" (the default) or "cnn", or a choice of both
 * ({"family":["cnn"]} makes every trial a CNN). The CNN keys are gated by family = cnn in the
 * default space (their defaults): conv_blocks [1,2,3], conv_width [16,32,64] (block i has
 * conv_width * 2^i filters, 3x3 or 5x5 convs, max pool 2, then dense 128), kernel [3,5],
 * batch_norm [0,1], dropout {"uniform":[0,0.3]}, residual [0,1],
 * optimizer ["sgd","nesterov","adam","adamw"], cnn_lr (the CNN's learning rate:
 * {"log_uniform":[3e-4,3e-3]} for adam and adamw, else 0.05), augment [0,1] (random crop
 * with padding 2 and horizontal flip), label_smoothing [0,0.05,0.1], lr_restart [0] (1: a
 * cosine cycle per job, a warm restart at each promotion). momentum, batch_size and
 * weight_decay are shared with the MLP family; layers, width and lr are the MLP's only.
 */

/** @brief Check a space; errstr names the bad field and why. NULL or "" means defaults. */
ens_err_t ens_space_validate(const char *space_json, char *errstr, size_t errstr_size);

/**
 * @brief Configuration number `index` of the space for this seed, as a JSON object
 *        {"hidden":[...],"lr":..,"momentum":..,"batch_size":..,"weight_decay":..} for an MLP,
 *        {"family":"cnn","arch":{...},"optimizer":..,"lr":..,"momentum":..,"batch_size":..,
 *        "weight_decay":..,"augment":0|1,"label_smoothing":..} for a CNN ("arch" is the
 *        architecture in the form of ens_model_new_from_json).
 *        The same (space, seed, index) always gives the same configuration.
 * @remark *config_json is malloc'd; the caller frees it.
 */
ens_err_t ens_space_sample(const char *space_json, uint64_t seed, int32_t index,
                           char **config_json, char *errstr, size_t errstr_size);

typedef enum { ENS_FAMILY_MLP = 0, ENS_FAMILY_CNN = 1 } ens_family_t;

/** A trial configuration, decoded. */
typedef struct {
    ens_family_t family;
    int32_t n_hidden;      /**< MLP */
    int32_t hidden[8];
    double lr, momentum, weight_decay;
    int32_t batch_size;
    char arch[512];        /**< CNN: the architecture JSON for ens_model_new_from_json */
    int32_t optimizer;     /**< CNN: 0 sgd, 1 nesterov, 2 adam, 3 adamw (ens_optimizer_t) */
    int32_t augment;       /**< CNN: random crop (pad 2) and horizontal flip */
    double label_smoothing; /**< CNN */
    int32_t lr_restart;    /**< CNN: a cosine cycle per job (warm restart at a promotion) */
} ens_trial_config_t;

/** @brief Parse and bound-check a configuration made by ens_space_sample. */
ens_err_t ens_trial_config_parse(const char *config_json, ens_trial_config_t *cfg, char *errstr,
                                 size_t errstr_size);

/**
 * @brief The training recipe of a configuration for a job that trains it from job_from to
 *        job_to epochs in a study whose top rung is study_epochs. MLPs: SGD with momentum at a
 *        constant rate. CNNs: the configuration's optimiser, a half-epoch warm-up,
 *        augmentation, label smoothing, and a cosine schedule: one cycle over the study's top
 *        rung (a rung and its promotion then train the same model as one job would), or with
 *        lr_restart a cycle from job_from to job_to (every rung's checkpoint annealed).
 */
void ens_trial_train_opts(const ens_trial_config_t *cfg, double job_from, double job_to,
                          double study_epochs, ens_train_opts_t *opts);

#endif
