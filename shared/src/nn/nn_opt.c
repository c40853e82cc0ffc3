/* nn_opt.c - optimisers (SGD, Nesterov, Adam, AdamW), learning-rate schedules, clipping. */
#include "nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ens_model_drop_optimiser(ens_model_t *m) {
    if (m->opt_state == NN_OPTSTATE_NONE)
        return 0;
    free(m->opt_m);
    free(m->opt_v);
    m->opt_m = m->opt_v = NULL;
    m->opt_state = NN_OPTSTATE_NONE;
    return 1;
}

/* Momentum (and Adam's second moment) buffers exist once a model has trained; changing
 * between the SGD family and the Adam family starts the state afresh. */
ens_err_t nn_opt_prepare(ens_model_t *m, ens_optimizer_t opt) {
    int32_t want = opt == ENS_OPT_ADAM || opt == ENS_OPT_ADAMW ? NN_OPTSTATE_ADAM
                                                               : NN_OPTSTATE_MOMENTUM;
    if (m->opt_state == want)
        return ENS_OK;
    size_t np = (size_t)(m->n_params > 0 ? m->n_params : 1);
    float *a = calloc(np, sizeof(float));
    float *v = want == NN_OPTSTATE_ADAM ? calloc(np, sizeof(float)) : NULL;
    if (!a || (want == NN_OPTSTATE_ADAM && !v)) {
        free(a);
        free(v);
        return ENS_ERR_NOMEM;
    }
    free(m->opt_m);
    free(m->opt_v);
    m->opt_m = a;
    m->opt_v = v;
    m->opt_state = want;
    m->opt_step = 0;
    return ENS_OK;
}

double nn_lr_at(const ens_train_opts_t *o, double e0, double e1) {
    double lr = o->lr;
    if (o->schedule == ENS_LR_STEP && o->step_epochs > 0)
        lr *= pow(o->step_gamma, floor(e0 / o->step_epochs + 1e-9));
    else if (o->schedule == ENS_LR_COSINE && o->total_epochs > o->cycle_start_epochs)
        lr *= 0.5 * (1.0 + cos(M_PI * fmax(0.0, fmin((e0 - o->cycle_start_epochs) /
                                                         (o->total_epochs -
                                                          o->cycle_start_epochs),
                                                     1.0))));
    if (o->warmup_epochs > 0.0 && e1 < o->warmup_epochs)
        lr *= e1 / o->warmup_epochs;
    return lr;
}

void nn_clip(ens_model_t *m, double max_norm) {
    double ss = 0.0;
    for (int64_t i = 0; i < m->n_params; i++)
        ss += (double)m->grads[i] * m->grads[i];
    double norm = sqrt(ss);
    if (!(norm > max_norm))
        return; /* also leaves a NaN norm alone: the loss reports the divergence */
    float s = (float)(max_norm / norm);
    for (int64_t i = 0; i < m->n_params; i++)
        m->grads[i] *= s;
}

void nn_opt_step(ens_model_t *m, const ens_train_opts_t *o, double lr_d) {
    m->opt_step++;
    float lr = (float)lr_d, wd = (float)o->weight_decay, mu = (float)o->momentum;
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    double t = (double)m->opt_step;
    float c1 = (float)(1.0 / (1.0 - pow(o->beta1, t))), c2 = (float)(1.0 / (1.0 - pow(o->beta2, t)));
    for (int32_t k = 0; k < m->n_nodes; k++) {
        const nn_node_t *n = &m->nodes[k];
        float *w = m->params + n->p_off, *v = m->opt_m + n->p_off;
        const float *g = m->grads + n->p_off;
        for (int64_t i = 0; i < n->p_n; i++) {
            float d = i < n->w_n ? wd : 0.0f;
            switch (o->optimizer) {
            case ENS_OPT_SGD: {
                float gi = g[i] + d * w[i];
                v[i] = mu * v[i] + gi;
                w[i] -= lr * v[i];
                break;
            }
            case ENS_OPT_NESTEROV: {
                float gi = g[i] + d * w[i];
                v[i] = mu * v[i] + gi;
                w[i] -= lr * (gi + mu * v[i]);
                break;
            }
            case ENS_OPT_ADAM:
            case ENS_OPT_ADAMW: {
                float *s = m->opt_v + n->p_off, gi = g[i];
                if (o->optimizer == ENS_OPT_ADAM)
                    gi += d * w[i];
                else
                    w[i] -= lr * d * w[i];
                v[i] = b1 * v[i] + (1.0f - b1) * gi;
                s[i] = b2 * s[i] + (1.0f - b2) * gi * gi;
                w[i] -= lr * (v[i] * c1) / (sqrtf(s[i] * c2) + eps);
                break;
            }
            }
        }
    }
}
