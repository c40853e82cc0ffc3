/* mlp.c - the minimal network: dense + ReLU layers, softmax cross-entropy, SGD with momentum. */
#include "mlp_internal.h"
#include "mlp_model.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Every matrix product goes through OpenBLAS sgemm, row-major, batch x features. Results are
 * deterministic for a given seed when OpenBLAS runs single-threaded (OPENBLAS_NUM_THREADS=1);
 * with several threads it may split the sums differently, so the last bits can change.
 * A model is not safe for concurrent use: its batch buffers live inside it.
 */

#define PREDICT_BATCH 256

/* Sizes checked, layout computed, parameters and momentum zeroed; no batch buffers yet. */
ens_err_t ens_mlp_alloc(const int32_t *sizes, int32_t n_sizes, ens_model_t **out) {
    if (n_sizes < 2 || n_sizes > MLP_MAX_DENSE + 1)
        return ENS_ERR_INVALID;
    ens_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return ENS_ERR_NOMEM;
    m->n_layers = n_sizes - 1;
    m->mean = 0.0f;
    m->std = 1.0f;
    int64_t off = 0;
    for (int32_t i = 0; i < n_sizes; i++) {
        if (sizes[i] < 1 || sizes[i] > MLP_MAX_WIDTH) {
            free(m);
            return ENS_ERR_INVALID;
        }
        m->sizes[i] = sizes[i];
    }
    for (int32_t l = 0; l < m->n_layers; l++) {
        m->w_off[l] = off;
        off += (int64_t)sizes[l] * sizes[l + 1];
        m->b_off[l] = off;
        off += sizes[l + 1];
        if (off > MLP_MAX_PARAMS) {
            free(m);
            return ENS_ERR_INVALID;
        }
    }
    m->n_params = off;
    m->params = calloc((size_t)off, sizeof(float));
    m->grads = calloc((size_t)off, sizeof(float));
    m->velocity = calloc((size_t)off, sizeof(float));
    if (!m->params || !m->grads || !m->velocity) {
        ens_model_free(m);
        return ENS_ERR_NOMEM;
    }
    *out = m;
    return ENS_OK;
}

ens_err_t ens_model_new_mlp(int32_t in_dim, const int32_t *hidden, int32_t n_hidden,
                            int32_t n_classes, uint64_t seed, ens_model_t **out) {
    if (!out || n_hidden < 0 || n_hidden > MLP_MAX_DENSE - 1 || (n_hidden > 0 && !hidden))
        return ENS_ERR_INVALID;
    *out = NULL;
    int32_t sizes[MLP_MAX_DENSE + 1];
    sizes[0] = in_dim;
    for (int32_t i = 0; i < n_hidden; i++)
        sizes[i + 1] = hidden[i];
    sizes[n_hidden + 1] = n_classes;
    ens_model_t *m;
    ens_err_t err = ens_mlp_alloc(sizes, n_hidden + 2, &m);
    if (err)
        return err;
    /* He initialisation: W ~ N(0, 2 / fan_in), biases zero. */
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    for (int32_t l = 0; l < m->n_layers; l++) {
        double sd = sqrt(2.0 / m->sizes[l]);
        float *w = m->params + m->w_off[l];
        for (int64_t i = 0; i < (int64_t)m->sizes[l] * m->sizes[l + 1]; i++)
            w[i] = (float)(sd * ens_rng_normal(&rng));
    }
    *out = m;
    return ENS_OK;
}

void ens_model_free(ens_model_t *m) {
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m->velocity);
    free(m->arena);
    free(m);
}

void ens_model_set_normalisation(ens_model_t *m, float mean, float std) {
    ENS_ASSERT(m && isfinite(mean) && isfinite(std));
    m->mean = mean;
    m->std = std > 1e-12f ? std : 1.0f; /* a constant input has nothing to scale */
}

int32_t ens_model_in_dim(const ens_model_t *m) { return m->sizes[0]; }
int32_t ens_model_n_classes(const ens_model_t *m) { return m->sizes[m->n_layers]; }
int64_t ens_model_n_params(const ens_model_t *m) { return m->n_params; }
double ens_model_epochs_done(const ens_model_t *m) { return m->epochs_done; }
void ens_model_set_epochs_done(ens_model_t *m, double epochs) { m->epochs_done = epochs; }

int64_t ens_model_memory_bytes(const ens_model_t *m, int32_t b) {
    int64_t acts = 0;
    for (int32_t i = 0; i <= m->n_layers; i++)
        acts += m->sizes[i];
    acts += m->sizes[m->n_layers]; /* probabilities */
    return (int64_t)sizeof(float) * (m->n_params + (int64_t)b * acts);
}

/* Batch buffers for b rows: allocated once, grown only when a larger batch comes. */
static ens_err_t ensure_batch(ens_model_t *m, int32_t b) {
    if (b <= m->cap)
        return ENS_OK;
    int64_t per_row = 0, widest = 0;
    for (int32_t i = 0; i <= m->n_layers; i++) {
        per_row += m->sizes[i];
        widest = m->sizes[i] > widest ? m->sizes[i] : widest;
    }
    per_row += m->sizes[m->n_layers] + 2 * widest; /* probs, two deltas */
    float *arena = malloc((size_t)b * (size_t)per_row * sizeof(float));
    if (!arena)
        return ENS_ERR_NOMEM;
    free(m->arena);
    m->arena = arena;
    m->cap = b;
    for (int32_t i = 0; i <= m->n_layers; i++) {
        m->act[i] = arena;
        arena += (size_t)b * m->sizes[i];
    }
    m->probs = arena;
    arena += (size_t)b * m->sizes[m->n_layers];
    m->delta[0] = arena;
    m->delta[1] = arena + (size_t)b * widest;
    return ENS_OK;
}

/* act[0] = normalised rows (rows idx[i] of x when idx is given, else rows start..start+b). */
static void load_input(ens_model_t *m, const float *x, const int32_t *idx, int32_t b) {
    size_t d = (size_t)m->sizes[0];
    float mean = m->mean, inv = 1.0f / m->std;
    for (int32_t i = 0; i < b; i++) {
        const float *src = x + (idx ? (size_t)idx[i] : (size_t)i) * d;
        float *dst = m->act[0] + (size_t)i * d;
        for (size_t j = 0; j < d; j++)
            dst[j] = (src[j] - mean) * inv;
    }
}

/* act[l+1] = relu(act[l] W_l + b_l); the last layer leaves logits in act[n_layers]. */
static void forward(ens_model_t *m, int32_t b) {
    for (int32_t l = 0; l < m->n_layers; l++) {
        int32_t in = m->sizes[l], out = m->sizes[l + 1];
        const float *bias = m->params + m->b_off[l];
        float *z = m->act[l + 1];
        for (int32_t i = 0; i < b; i++)
            memcpy(z + (size_t)i * out, bias, (size_t)out * sizeof *z);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, out, in, 1.0f, m->act[l], in,
                    m->params + m->w_off[l], out, 1.0f, z, out);
        if (l + 1 < m->n_layers)
            for (size_t i = 0; i < (size_t)b * out; i++)
                z[i] = z[i] > 0.0f ? z[i] : 0.0f;
    }
}

/* probs = softmax(logits), max-shifted; returns the summed cross-entropy when y is given. */
static double softmax(ens_model_t *m, int32_t b, const int32_t *y) {
    int32_t c = m->sizes[m->n_layers];
    double loss = 0.0;
    for (int32_t i = 0; i < b; i++) {
        const float *z = m->act[m->n_layers] + (size_t)i * c;
        float *p = m->probs + (size_t)i * c;
        float mx = z[0];
        for (int32_t k = 1; k < c; k++)
            mx = z[k] > mx ? z[k] : mx;
        double sum = 0.0;
        for (int32_t k = 0; k < c; k++) {
            p[k] = expf(z[k] - mx);
            sum += p[k];
        }
        float inv = (float)(1.0 / sum);
        for (int32_t k = 0; k < c; k++)
            p[k] *= inv;
        if (y)
            loss += log(sum) - (double)(z[y[i]] - mx);
    }
    return loss;
}

/* Gradients of the mean cross-entropy over the batch into m->grads (probs must be fresh). */
static void backward(ens_model_t *m, int32_t b, const int32_t *y) {
    int32_t L = m->n_layers, c = m->sizes[L];
    float *d = m->delta[0], scale = 1.0f / (float)b;
    for (int32_t i = 0; i < b; i++) {
        for (int32_t k = 0; k < c; k++)
            d[(size_t)i * c + k] = m->probs[(size_t)i * c + k] * scale;
        d[(size_t)i * c + y[i]] -= scale;
    }
    for (int32_t l = L - 1; l >= 0; l--) {
        int32_t in = m->sizes[l], out = m->sizes[l + 1];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, b, 1.0f, m->act[l], in, d,
                    out, 0.0f, m->grads + m->w_off[l], out);
        float *gb = m->grads + m->b_off[l];
        memset(gb, 0, (size_t)out * sizeof *gb);
        for (int32_t i = 0; i < b; i++)
            for (int32_t j = 0; j < out; j++)
                gb[j] += d[(size_t)i * out + j];
        if (l == 0)
            break; /* no gradient for the input */
        float *dn = d == m->delta[0] ? m->delta[1] : m->delta[0];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, in, out, 1.0f, d, out,
                    m->params + m->w_off[l], out, 0.0f, dn, in);
        const float *a = m->act[l]; /* post-ReLU: a > 0 exactly where the ReLU passed */
        for (size_t i = 0; i < (size_t)b * in; i++)
            dn[i] = a[i] > 0.0f ? dn[i] : 0.0f;
        d = dn;
    }
}

/* v = mu v + g (+ wd w for weights); w -= lr v. */
static void sgd_step(ens_model_t *m, float lr, float mu, float wd) {
    for (int32_t l = 0; l < m->n_layers; l++) {
        int64_t nw = m->b_off[l] - m->w_off[l], nb = m->sizes[l + 1];
        float *w = m->params + m->w_off[l], *v = m->velocity + m->w_off[l];
        const float *g = m->grads + m->w_off[l];
        for (int64_t i = 0; i < nw; i++) {
            v[i] = mu * v[i] + g[i] + wd * w[i];
            w[i] -= lr * v[i];
        }
        w += nw, v += nw, g += nw;
        for (int64_t i = 0; i < nb; i++) {
            v[i] = mu * v[i] + g[i];
            w[i] -= lr * v[i];
        }
    }
}

static int labels_ok(const ens_model_t *m, const int32_t *y, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= m->sizes[m->n_layers])
            return 0;
    return 1;
}

float *ens_mlp_params(ens_model_t *m) { return m->params; }
const float *ens_mlp_grads(const ens_model_t *m) { return m->grads; }

ens_err_t ens_mlp_loss_grad(ens_model_t *m, const float *x, const int32_t *y, int32_t b,
                            double *loss) {
    if (!m || !x || !y || b < 1 || !labels_ok(m, y, b))
        return ENS_ERR_INVALID;
    ens_err_t err = ensure_batch(m, b);
    if (err)
        return err;
    load_input(m, x, NULL, b);
    forward(m, b);
    double sum = softmax(m, b, y);
    backward(m, b, y);
    if (loss)
        *loss = sum / b;
    return ENS_OK;
}

ens_err_t ens_model_train_epoch(ens_model_t *m, const ens_dataset_t *ds, const ens_sgd_t *sgd,
                                ens_rng_t *rng, double *mean_loss) {
    if (!m || !ds || !sgd || !rng || ds->dim != m->sizes[0] || ds->n < 1 ||
        sgd->batch_size < 1 || sgd->batch_size > MLP_MAX_BATCH || !(sgd->lr >= 0.0) ||
        !isfinite(sgd->lr) || !(sgd->momentum >= 0.0 && sgd->momentum < 1.0) ||
        !(sgd->weight_decay >= 0.0) || !isfinite(sgd->weight_decay) ||
        !labels_ok(m, ds->y, ds->n))
        return ENS_ERR_INVALID;
    int32_t bs = sgd->batch_size < ds->n ? sgd->batch_size : ds->n;
    ens_err_t err = ensure_batch(m, bs);
    int32_t *perm = err ? NULL : malloc((size_t)ds->n * sizeof *perm);
    if (err || !perm)
        return ENS_ERR_NOMEM;
    for (int32_t i = 0; i < ds->n; i++)
        perm[i] = i;
    ens_rng_shuffle(rng, perm, ds->n);
    int32_t *yb = malloc((size_t)bs * sizeof *yb);
    if (!yb) {
        free(perm);
        return ENS_ERR_NOMEM;
    }
    double total = 0.0;
    for (int32_t start = 0; start < ds->n; start += bs) {
        int32_t b = ds->n - start < bs ? ds->n - start : bs;
        for (int32_t i = 0; i < b; i++)
            yb[i] = ds->y[perm[start + i]];
        load_input(m, ds->x, perm + start, b);
        forward(m, b);
        total += softmax(m, b, yb);
        backward(m, b, yb);
        sgd_step(m, (float)sgd->lr, (float)sgd->momentum, (float)sgd->weight_decay);
    }
    free(yb);
    free(perm);
    m->epochs_done += 1.0;
    if (mean_loss)
        *mean_loss = total / ds->n; /* not finite when training diverged */
    return ENS_OK;
}

ens_err_t ens_model_predict(ens_model_t *m, const float *x, int32_t n, float *probs) {
    if (!m || n < 0 || (n > 0 && (!x || !probs)))
        return ENS_ERR_INVALID;
    int32_t c = m->sizes[m->n_layers];
    for (int32_t start = 0; start < n; start += PREDICT_BATCH) {
        int32_t b = n - start < PREDICT_BATCH ? n - start : PREDICT_BATCH;
        ens_err_t err = ensure_batch(m, b);
        if (err)
            return err;
        load_input(m, x + (size_t)start * m->sizes[0], NULL, b);
        forward(m, b);
        softmax(m, b, NULL);
        memcpy(probs + (size_t)start * c, m->probs, (size_t)b * c * sizeof *probs);
    }
    return ENS_OK;
}

ens_err_t ens_model_evaluate(ens_model_t *m, const ens_dataset_t *ds, double *accuracy,
                             double *mean_loss, float *probs) {
    if (!m || !ds || ds->dim != m->sizes[0] || ds->n < 1 || !labels_ok(m, ds->y, ds->n))
        return ENS_ERR_INVALID;
    int32_t c = m->sizes[m->n_layers];
    int64_t correct = 0;
    double total = 0.0;
    for (int32_t start = 0; start < ds->n; start += PREDICT_BATCH) {
        int32_t b = ds->n - start < PREDICT_BATCH ? ds->n - start : PREDICT_BATCH;
        ens_err_t err = ensure_batch(m, b);
        if (err)
            return err;
        load_input(m, ds->x + (size_t)start * m->sizes[0], NULL, b);
        forward(m, b);
        total += softmax(m, b, ds->y + start);
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
