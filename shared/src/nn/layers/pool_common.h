/* pool_common.h - window geometry shared by max and average pooling. */
#ifndef ENSFLOW_NN_POOL_COMMON_H
#define ENSFLOW_NN_POOL_COMMON_H

#include "../nn_internal.h"

/* k x k windows, stride (0 = k), zero/ignored padding pad <= k/2 */
static inline const char *pool_setup(nn_node_t *n, const nn_shape_t *in) {
    nn_spec_t *s = &n->s;
    if (s->stride == 0)
        s->stride = s->k;
    if (s->k < 1 || s->k > NN_MAX_KERNEL || s->stride < 1 || s->stride > NN_MAX_KERNEL ||
        s->pad < 0 || 2 * s->pad > s->k)
        return "kernel, stride or padding out of range";
    int32_t hp = in->h + 2 * s->pad, wp = in->w + 2 * s->pad;
    if (hp < s->k || wp < s->k)
        return "window larger than the padded input";
    n->out = (nn_shape_t){in->c, (hp - s->k) / s->stride + 1, (wp - s->k) / s->stride + 1};
    return NULL;
}

#endif
