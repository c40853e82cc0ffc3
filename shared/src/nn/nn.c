/* nn.c - the public model API (nn.h) on the layer engine: MLPs, predict, train, evaluate. */
#include "mlp_internal.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A model is not safe for concurrent use: its batch buffers live inside it. Matrix products
 * run on OpenBLAS set to one thread; the backend's pool splits batches over the cores
 * (backend_cpu.c). Results are deterministic for a seed and a thread count.
 */

#define PREDICT_BATCH 256

/* nn_opt.c */
ens_err_t nn_opt_prepare(ens_model_t *m, ens_optimizer_t opt);
void nn_opt_step(ens_model_t *m, const ens_train_opts_t *o, double lr);
double nn_lr_at(const ens_train_opts_t *o, double epoch_start, double epoch_end);
void nn_clip(ens_model_t *m, double max_norm);

ens_err_t ens_model_new_mlp(int32_t in_dim, const int32_t *hidden, int32_t n_hidden,
                            int32_t n_classes, uint64_t seed, ens_model_t **out) {
    if (!out)
        return ENS_ERR_INVALID;
    *out = NULL;
    if (n_hidden < 0 || n_hidden > ENS_MODEL_MAX_LAYERS || (n_hidden > 0 && !hidden))
        return ENS_ERR_INVALID;
    ens_model_t *m;
    ens_err_t err = nn_model_begin((nn_shape_t){in_dim, 1, 1}, n_classes, &m);
    if (err)
        return err;
    for (int32_t i = 0; i <= n_hidden; i++) {
        nn_spec_t s = {.kind = NN_DENSE, .in = {i - 1, -1}};
        s.units = i < n_hidden ? hidden[i] : n_classes;
        s.relu = i < n_hidden;
        if (nn_graph_add(m, &s, NULL, 0) < 0) {
            ens_model_free(m);
            return ENS_ERR_INVALID;
        }
    }
    if ((err = nn_model_finish(m, seed, 1, NULL, 0))) {
        ens_model_free(m);
        return err;
    }
    *out = m;
    return ENS_OK;
}

void ens_model_free(ens_model_t *m) {
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->bufs);
    free(m->opt_m);
    free(m->opt_v);
    free(m->arena);
    free(m->perm);
    if (m->class_names) {
        for (int32_t k = 0; k < m->n_classes; k++)
            free(m->class_names[k]);
        free(m->class_names);
    }
    free(m);
}

void ens_model_set_normalisation(ens_model_t *m, float mean, float std) {
    ENS_ASSERT(m && isfinite(mean) && isfinite(std));
    m->mean = mean;
    m->std = std > 1e-12f ? std : 1.0f; /* a constant input has nothing to scale */
}

int32_t ens_model_in_dim(const ens_model_t *m) { return (int32_t)nn_in_size(m); }
int32_t ens_model_n_classes(const ens_model_t *m) { return m->n_classes; }
int64_t ens_model_n_params(const ens_model_t *m) { return m->n_params; }
double ens_model_epochs_done(const ens_model_t *m) { return m->epochs_done; }
void ens_model_set_epochs_done(ens_model_t *m, double epochs) { m->epochs_done = epochs; }

void ens_model_input_shape(const ens_model_t *m, int32_t *c, int32_t *h, int32_t *w) {
    if (c)
        *c = m->in.c;
    if (h)
        *h = m->in.h;
    if (w)
        *w = m->in.w;
}

ens_err_t ens_model_set_class_names(ens_model_t *m, const char *const *names, int32_t n) {
    if (!m || (names && n != m->n_classes))
        return ENS_ERR_INVALID;
    char **copy = NULL;
    if (names) {
        copy = calloc((size_t)n, sizeof *copy);
        if (!copy)
            return ENS_ERR_NOMEM;
        for (int32_t k = 0; k < n; k++) {
            size_t len = names[k] ? strlen(names[k]) : 0;
            if (!names[k] || len > 255 || !(copy[k] = strdup(names[k]))) {
                for (int32_t j = 0; j < k; j++)
                    free(copy[j]);
                free(copy);
                return names[k] && len <= 255 ? ENS_ERR_NOMEM : ENS_ERR_INVALID;
            }
        }
    }
    if (m->class_names) {
        for (int32_t k = 0; k < m->n_classes; k++)
            free(m->class_names[k]);
        free(m->class_names);
    }
    m->class_names = copy;
    return ENS_OK;
}

const char *ens_model_class_name(const ens_model_t *m, int32_t k) {
    if (!m || !m->class_names || k < 0 || k >= m->n_classes)
        return NULL;
    return m->class_names[k];
}

int64_t ens_model_memory_bytes(const ens_model_t *m, int32_t b) {
    int64_t acts = nn_in_size(m) + m->n_classes, ws = 0; /* input, probabilities */
    for (int32_t i = 0; i < m->n_nodes; i++) {
        acts += m->nodes[i].size_out;
        ws = m->nodes[i].ws_n > ws ? m->nodes[i].ws_n : ws;
    }
    return (int64_t)sizeof(float) * (m->n_params + m->n_bufs + (int64_t)b * acts + ws / 2);
}

/* FLOPs of one node for one sample at inference; the conventions are in nn.h. */
static int64_t node_flops(const nn_node_t *n) {
    const nn_spec_t *s = &n->s;
    int64_t in = n->size_in, out = n->size_out;
    switch (s->kind) {
    case NN_DENSE: /* y = x W + b [+ ReLU] */
        return 2 * in * s->units + out + (s->relu ? out : 0);
    case NN_CONV2D: { /* every output value: a C*k*k dot product, a bias [, a ReLU] */
        int64_t ckk = (int64_t)n->in_shape.c * s->k * s->k;
        return 2 * ckk * out + out + (s->relu ? out : 0);
    }
    case NN_BATCHNORM: /* folded to y = a x + c per value */
        return 2 * out;
    case NN_MAXPOOL:
    case NN_AVGPOOL: /* one compare / add per window element */
        return (int64_t)s->k * s->k * out;
    case NN_GAP: /* one add per input value */
        return in;
    case NN_RELU:
    case NN_LEAKY_RELU:
    case NN_GELU:
    case NN_ADD:
        return out;
    case NN_DROPOUT: /* the identity at inference */
    case NN_FLATTEN: /* a copy */
    default:
        return 0;
    }
}

int64_t ens_model_flops_per_sample(const ens_model_t *m) {
    ENS_ASSERT(m);
    int64_t f = 3 * (int64_t)m->n_classes; /* softmax: exp, sum, scale per class */
    for (int32_t i = 0; i < m->n_nodes; i++)
        f += node_flops(&m->nodes[i]);
    return f;
}

/* x0 = normalised rows (rows idx[i] of x when idx is given, else rows 0..b) */
static void load_input(ens_model_t *m, const float *x, const int32_t *idx, int32_t b) {
    size_t d = (size_t)nn_in_size(m);
    float mean = m->mean, inv = 1.0f / m->std;
    for (int32_t i = 0; i < b; i++) {
        const float *src = x + (idx ? (size_t)idx[i] : (size_t)i) * d;
        float *dst = m->x0 + (size_t)i * d;
        for (size_t j = 0; j < d; j++)
            dst[j] = (src[j] - mean) * inv;
    }
}

/* x0 = normalised, randomly cropped (zero padding) and flipped rows idx[i] of x */
static void load_augmented(ens_model_t *m, const float *x, const int32_t *idx, int32_t b,
                           int32_t pad, int flip, ens_rng_t *rng) {
    int32_t C = m->in.c, H = m->in.h, W = m->in.w;
    size_t d = (size_t)nn_in_size(m);
    float mean = m->mean, inv = 1.0f / m->std, zero = -mean * inv;
    for (int32_t i = 0; i < b; i++) {
        const float *src = x + (size_t)idx[i] * d;
        float *dst = m->x0 + (size_t)i * d;
        int32_t oy = 0, ox = 0, fl = 0;
        if (pad > 0) {
            oy = (int32_t)(ens_rng_next(rng) % (uint64_t)(2 * pad + 1)) - pad;
            ox = (int32_t)(ens_rng_next(rng) % (uint64_t)(2 * pad + 1)) - pad;
        }
        if (flip)
            fl = (int32_t)(ens_rng_next(rng) >> 63);
        for (int32_t c = 0; c < C; c++)
            for (int32_t y = 0; y < H; y++) {
                int32_t sy = y + oy;
                float *row = dst + ((size_t)c * H + y) * W;
                if (sy < 0 || sy >= H) {
                    for (int32_t xx = 0; xx < W; xx++)
                        row[xx] = zero;
                    continue;
                }
                const float *srow = src + ((size_t)c * H + sy) * W;
                for (int32_t xx = 0; xx < W; xx++) {
                    int32_t sx = (fl ? W - 1 - xx : xx) + ox;
                    row[xx] = sx >= 0 && sx < W ? (srow[sx] - mean) * inv : zero;
                }
            }
    }
}

static int labels_ok(const ens_model_t *m, const int32_t *y, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= m->n_classes)
            return 0;
    return 1;
}

float *ens_mlp_params(ens_model_t *m) { return m->params; }
const float *ens_mlp_grads(const ens_model_t *m) { return m->grads; }

ens_err_t ens_mlp_loss_grad(ens_model_t *m, const float *x, const int32_t *y, int32_t b,
                            double *loss) {
    if (!m || !x || !y || b < 1 || b > NN_MAX_BATCH || !labels_ok(m, y, b))
        return ENS_ERR_INVALID;
    ens_err_t err = nn_ensure_batch(m, b, 1);
    if (err)
        return err;
    load_input(m, x, NULL, b);
    nn_forward(m, b, 1);
    double sum = nn_softmax_ce(m, b, y, 0.0);
    nn_backward(m, b, y, 0.0);
    if ((err = nn_backend_error(m)) != ENS_OK)
        return err;
    if (loss)
        *loss = sum / b;
    return ENS_OK;
}

void ens_train_opts_default(ens_train_opts_t *o) {
    memset(o, 0, sizeof *o);
    o->optimizer = ENS_OPT_SGD;
    o->lr = 0.01;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->batch_size = 128;
    o->schedule = ENS_LR_CONSTANT;
    o->step_gamma = 0.1;
}

static int opts_ok(const ens_model_t *m, const ens_train_opts_t *o) {
    int fin = isfinite(o->lr) && isfinite(o->weight_decay) && isfinite(o->clip_norm) &&
              isfinite(o->warmup_epochs) && isfinite(o->step_gamma) && isfinite(o->eps);
    return fin && o->optimizer >= ENS_OPT_SGD && o->optimizer <= ENS_OPT_ADAMW && o->lr >= 0.0 &&
           o->momentum >= 0.0 && o->momentum < 1.0 && o->beta1 >= 0.0 && o->beta1 < 1.0 &&
           o->beta2 >= 0.0 && o->beta2 < 1.0 && o->eps > 0.0 && o->weight_decay >= 0.0 &&
           o->batch_size >= 1 && o->batch_size <= NN_MAX_BATCH && o->schedule >= ENS_LR_CONSTANT &&
           o->schedule <= ENS_LR_COSINE && o->total_epochs >= 0 && o->cycle_start_epochs >= 0 &&
           o->step_epochs >= 0 &&
           o->step_gamma > 0.0 && o->warmup_epochs >= 0.0 && o->clip_norm >= 0.0 &&
           o->aug_crop_pad >= 0 && o->aug_crop_pad <= m->in.h && o->aug_crop_pad <= m->in.w &&
           (o->aug_hflip == 0 || o->aug_hflip == 1) && o->label_smoothing >= 0.0 &&
           o->label_smoothing < 1.0;
}

/* The model's permutation buffer (grown once, kept) filled with a fresh shuffle of 0..n. */
static ens_err_t shuffled_order(ens_model_t *m, int32_t n, ens_rng_t *rng, int32_t **perm) {
    if (m->perm_cap < n) {
        int32_t *p = malloc((size_t)n * sizeof *p);
        if (!p)
            return ENS_ERR_NOMEM;
        free(m->perm);
        m->perm = p;
        m->perm_cap = n;
    }
    for (int32_t i = 0; i < n; i++)
        m->perm[i] = i;
    ens_rng_shuffle(rng, m->perm, n);
    *perm = m->perm;
    return ENS_OK;
}

/* Steps [begin, end) of the epoch that starts at e0 with the order and augmentation draws of
 * rng (in its state at the start of the epoch): the draws of the steps before begin are
 * skipped, so any split of an epoch into ranges trains what one pass does. Adds the range's
 * summed loss to *total and its samples to *seen; leaves epochs_done to the caller. */
static ens_err_t train_range(ens_model_t *m, const ens_dataset_t *ds, const ens_train_opts_t *o,
                             ens_rng_t *rng, int32_t begin, int32_t end, double e0, double *total,
                             int64_t *seen) {
    int32_t bs = o->batch_size < ds->n ? o->batch_size : ds->n;
    ens_err_t err = nn_ensure_batch(m, bs, 1);
    if (!err)
        err = nn_opt_prepare(m, o->optimizer);
    if (err)
        return err;
    int32_t *perm = NULL;
    if ((err = shuffled_order(m, ds->n, rng, &perm)))
        return err;
    int augment = (o->aug_crop_pad > 0 || o->aug_hflip) && m->in.h * m->in.w > 1;
    int32_t steps = (ds->n + bs - 1) / bs;
    if (augment && begin > 0) { /* load_augmented's draws per sample, for the skipped ones */
        int64_t skipped = (int64_t)begin * bs < ds->n ? (int64_t)begin * bs : ds->n;
        int64_t draws = skipped * ((o->aug_crop_pad > 0 ? 2 : 0) + (o->aug_hflip ? 1 : 0));
        for (int64_t i = 0; i < draws; i++)
            (void)ens_rng_next(rng);
    }
    for (int32_t step = begin; step < end; step++) {
        int32_t start = step * bs, b = ds->n - start < bs ? ds->n - start : bs;
        for (int32_t i = 0; i < b; i++)
            m->ybuf[i] = ds->y[perm[start + i]];
        if (augment)
            load_augmented(m, ds->x, perm + start, b, o->aug_crop_pad, o->aug_hflip, rng);
        else
            load_input(m, ds->x, perm + start, b);
        nn_forward(m, b, 1);
        *total += nn_softmax_ce(m, b, m->ybuf, o->label_smoothing);
        nn_backward(m, b, m->ybuf, o->label_smoothing);
        if ((err = nn_backend_error(m)) != ENS_OK)
            return err;
        if (o->clip_norm > 0.0)
            nn_clip(m, o->clip_norm);
        double lr = nn_lr_at(o, e0 + (double)step / steps, e0 + (double)(step + 1) / steps);
        nn_opt_step(m, o, lr);
        *seen += b;
    }
    return ENS_OK;
}

ens_err_t ens_model_train_epoch_opts(ens_model_t *m, const ens_dataset_t *ds,
                                     const ens_train_opts_t *o, ens_rng_t *rng,
                                     double *mean_loss) {
    if (!m || !ds || !o || !rng || ds->dim != nn_in_size(m) || ds->n < 1 || !ds->x || !ds->y ||
        !opts_ok(m, o) || !labels_ok(m, ds->y, ds->n))
        return ENS_ERR_INVALID;
    int32_t bs = o->batch_size < ds->n ? o->batch_size : ds->n;
    double total = 0.0;
    int64_t seen = 0;
    ens_err_t err = train_range(m, ds, o, rng, 0, (ds->n + bs - 1) / bs, m->epochs_done, &total,
                                &seen);
    if (err)
        return err;
    m->epochs_done += 1.0;
    if (mean_loss)
        *mean_loss = total / ds->n; /* not finite when training diverged */
    return ENS_OK;
}

ens_err_t ens_model_train_steps_opts(ens_model_t *m, const ens_dataset_t *ds,
                                     const ens_train_opts_t *o, ens_rng_t *rng,
                                     int32_t step_begin, int32_t step_end, double *mean_loss) {
    if (!m || !ds || !o || !rng || ds->dim != nn_in_size(m) || ds->n < 1 || !ds->x || !ds->y ||
        !opts_ok(m, o) || !labels_ok(m, ds->y, ds->n))
        return ENS_ERR_INVALID;
    int32_t bs = o->batch_size < ds->n ? o->batch_size : ds->n;
    int32_t steps = (ds->n + bs - 1) / bs;
    if (step_begin < 0 || step_end < step_begin || step_end > steps)
        return ENS_ERR_INVALID;
    /* the epoch's start: exact (an integer) when the model got here through epochs and ranges */
    double e0 = m->epochs_done - (double)step_begin / steps;
    if (step_begin > 0 && fabs(e0 - nearbyint(e0)) <= 1e-6)
        e0 = nearbyint(e0);
    double total = 0.0;
    int64_t seen = 0;
    ens_err_t err = train_range(m, ds, o, rng, step_begin, step_end, e0, &total, &seen);
    if (err)
        return err;
    m->epochs_done = step_end == steps ? e0 + 1.0 : e0 + (double)step_end / steps;
    if (mean_loss)
        *mean_loss = seen ? total / (double)seen : 0.0; /* not finite when training diverged */
    return ENS_OK;
}

ens_err_t ens_model_train_epoch(ens_model_t *m, const ens_dataset_t *ds, const ens_sgd_t *sgd,
                                ens_rng_t *rng, double *mean_loss) {
    if (!sgd)
        return ENS_ERR_INVALID;
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.lr = sgd->lr;
    o.momentum = sgd->momentum;
    o.weight_decay = sgd->weight_decay;
    o.batch_size = sgd->batch_size;
    return ens_model_train_epoch_opts(m, ds, &o, rng, mean_loss);
}

/* Part of an epoch: the first n_steps minibatches of a fresh shuffle (ASHA rungs of a
 * fraction of an epoch; a trainer's checkpoints inside an epoch). Plain SGD settings. */
ens_err_t ens_model_train_steps(ens_model_t *m, const ens_dataset_t *ds, const ens_sgd_t *sgd,
                                ens_rng_t *rng, int32_t n_steps, double *mean_loss) {
    if (!m || !ds || !sgd || !rng || ds->dim != nn_in_size(m) || ds->n < 1 || !ds->x ||
        !ds->y || n_steps < 0)
        return ENS_ERR_INVALID;
    ens_train_opts_t o;
    ens_train_opts_default(&o);
    o.lr = sgd->lr;
    o.momentum = sgd->momentum;
    o.weight_decay = sgd->weight_decay;
    o.batch_size = sgd->batch_size;
    if (!opts_ok(m, &o) || !labels_ok(m, ds->y, ds->n))
        return ENS_ERR_INVALID;
    int32_t bs = o.batch_size < ds->n ? o.batch_size : ds->n;
    int32_t steps = (ds->n + bs - 1) / bs;
    if (n_steps > steps)
        return ENS_ERR_INVALID;
    ens_err_t err = nn_ensure_batch(m, bs, 1);
    if (!err)
        err = nn_opt_prepare(m, o.optimizer);
    if (err)
        return err;
    int32_t *perm = NULL;
    if ((err = shuffled_order(m, ds->n, rng, &perm)))
        return err;
    double total = 0.0;
    int64_t seen = 0;
    for (int32_t step = 0; step < n_steps; step++) {
        int32_t start = step * bs, b = ds->n - start < bs ? ds->n - start : bs;
        for (int32_t i = 0; i < b; i++)
            m->ybuf[i] = ds->y[perm[start + i]];
        load_input(m, ds->x, perm + start, b);
        nn_forward(m, b, 1);
        total += nn_softmax_ce(m, b, m->ybuf, o.label_smoothing);
        nn_backward(m, b, m->ybuf, o.label_smoothing);
        if ((err = nn_backend_error(m)) != ENS_OK)
            return err;
        double lr = nn_lr_at(&o, m->epochs_done + (double)seen / ds->n,
                             m->epochs_done + (double)(seen + b) / ds->n);
        nn_opt_step(m, &o, lr);
        seen += b;
    }
    m->epochs_done += (double)seen / ds->n;
    if (mean_loss)
        *mean_loss = seen ? total / (double)seen : 0.0; /* not finite when training diverged */
    return ENS_OK;
}

ens_err_t ens_model_predict(ens_model_t *m, const float *x, int32_t n, float *probs) {
    if (!m || n < 0 || (n > 0 && (!x || !probs)))
        return ENS_ERR_INVALID;
    int32_t c = m->n_classes;
    size_t d = (size_t)nn_in_size(m);
    for (int32_t start = 0; start < n; start += PREDICT_BATCH) {
        int32_t b = n - start < PREDICT_BATCH ? n - start : PREDICT_BATCH;
        ens_err_t err = nn_ensure_batch(m, b, 0);
        if (err)
            return err;
        load_input(m, x + (size_t)start * d, NULL, b);
        nn_forward(m, b, 0);
        if ((err = nn_backend_error(m)) != ENS_OK)
            return err;
        nn_softmax_ce(m, b, NULL, 0.0);
        memcpy(probs + (size_t)start * c, m->probs, (size_t)b * c * sizeof *probs);
    }
    return ENS_OK;
}

ens_err_t ens_model_evaluate(ens_model_t *m, const ens_dataset_t *ds, double *accuracy,
                             double *mean_loss, float *probs) {
    if (!m || !ds || ds->dim != nn_in_size(m) || ds->n < 1 || !labels_ok(m, ds->y, ds->n))
        return ENS_ERR_INVALID;
    int32_t c = m->n_classes;
    size_t d = (size_t)nn_in_size(m);
    int64_t correct = 0;
    double total = 0.0;
    for (int32_t start = 0; start < ds->n; start += PREDICT_BATCH) {
        int32_t b = ds->n - start < PREDICT_BATCH ? ds->n - start : PREDICT_BATCH;
        ens_err_t err = nn_ensure_batch(m, b, 0);
        if (err)
            return err;
        load_input(m, ds->x + (size_t)start * d, NULL, b);
        nn_forward(m, b, 0);
        if ((err = nn_backend_error(m)) != ENS_OK)
            return err;
        total += nn_softmax_ce(m, b, ds->y + start, 0.0);
        for (int32_t i = 0; i < b; i++) {
            const float *p = m->probs + (size_t)i * c;
            int32_t best = 0;
            for (int32_t k = 1; k < c; k++)
                best = p[k] > p[best] ? k : best;
            correct += best == ds->y[start + i];
        }
        if (probs)
            memcpy(probs + (size_t)start * c, m->probs, (size_t)b * c * sizeof *probs);
    }
    if (accuracy)
        *accuracy = (double)correct / ds->n;
    if (mean_loss)
        *mean_loss = total / ds->n;
    return ENS_OK;
}
