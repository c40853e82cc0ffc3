/* dropout.c - inverted dropout: training zeroes each value with probability p and scales the
 * rest by 1/(1-p); inference is the identity. Masks come from the model's seeded stream. */
#include "../nn_internal.h"

#include <string.h>

static const char *setup(nn_node_t *n, const nn_shape_t *in, const nn_shape_t *in1) {
    (void)in1;
    if (!(n->s.alpha >= 0.0f && n->s.alpha < 1.0f))
        return "probability outside [0, 1)";
    n->out = *in;
    return NULL;
}

static int64_t aux_floats(const nn_node_t *n, int32_t b) { return (int64_t)b * n->size_out; }

static void forward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, const float *x1) {
    (void)x1;
    size_t len = (size_t)b * n->size_out;
    if (!c->train || !n->aux || n->s.alpha == 0.0f) {
        memcpy(n->y, x, len * sizeof(float));
        if (c->train && n->aux)
            for (size_t i = 0; i < len; i++)
                n->aux[i] = 1.0f;
        return;
    }
    float keep = 1.0f / (1.0f - n->s.alpha);
    uint32_t thresh = (uint32_t)((double)n->s.alpha * 4294967296.0);
    for (size_t i = 0; i < len; i += 2) {
        uint64_t r = ens_rng_next(c->rng);
        n->aux[i] = (uint32_t)r >= thresh ? keep : 0.0f;
        if (i + 1 < len)
            n->aux[i + 1] = (uint32_t)(r >> 32) >= thresh ? keep : 0.0f;
    }
    for (size_t i = 0; i < len; i++)
        n->y[i] = x[i] * n->aux[i];
}

static void backward(nn_ctx_t *c, nn_node_t *n, int32_t b, const float *x, float *dx,
                     float *dx1, int acc, int acc1) {
    (void)c, (void)x, (void)dx1, (void)acc1;
    if (!dx)
        return;
    size_t len = (size_t)b * n->size_out;
    for (size_t i = 0; i < len; i++) {
        float g = n->dy[i] * n->aux[i];
        dx[i] = acc ? dx[i] + g : g;
    }
}

const nn_layer_ops_t nn_dropout_ops = {"dropout", setup, aux_floats, NULL, forward, backward};
