/* local_group.c - the devices of one process as an inference group: a thread per extra device,
 * handed each batch by share_inputs and joined by sum_outputs. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "local_group.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ens_local_group_t *lg;
    pthread_t thread;
    int started;
    ens_inference_t *inf; /* this device's engine: rank d of the group */
    float *out;           /* its share of the last batch, rows x k */
    size_t cap;
    ens_err_t err;
} device_t;

struct ens_local_group_s {
    int n; /* devices, the calling thread's included */
    char instance[ENS_ID_MAX];
    device_t *dev; /* dev[1..n-1]; dev[0] unused (the caller's engine is not ours) */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t gen;    /* batches handed out */
    int running;     /* devices still on the current batch */
    int quit;
    const float *x;  /* the current batch */
    int32_t rows;
};

static void *device_loop(void *arg) {
    device_t *d = arg;
    ens_local_group_t *lg = d->lg;
    uint64_t seen = 0;
    pthread_mutex_lock(&lg->mu);
    for (;;) {
        while (lg->gen == seen && !lg->quit)
            pthread_cond_wait(&lg->go, &lg->mu);
        if (lg->quit)
            break;
        seen = lg->gen;
        const float *x = lg->x;
        int32_t rows = lg->rows;
        pthread_mutex_unlock(&lg->mu);
        int32_t k = ens_inference_n_classes(d->inf);
        size_t need = (size_t)rows * (size_t)k;
        if (need > d->cap) {
            free(d->out);
            d->cap = (d->out = malloc(need * sizeof *d->out)) ? need : 0;
        }
        d->err = d->out ? ens_inference_partial(d->inf, x, rows, d->out) : ENS_ERR_NOMEM;
        pthread_mutex_lock(&lg->mu);
        if (--lg->running == 0)
            pthread_cond_signal(&lg->done);
    }
    pthread_mutex_unlock(&lg->mu);
    return NULL;
}

void ens_local_group_free(ens_local_group_t *lg) {
    if (!lg)
        return;
    pthread_mutex_lock(&lg->mu);
    lg->quit = 1;
    pthread_cond_broadcast(&lg->go);
    pthread_mutex_unlock(&lg->mu);
    for (int d = 1; d < lg->n; d++) {
        if (lg->dev[d].started)
            pthread_join(lg->dev[d].thread, NULL);
        ens_inference_free(lg->dev[d].inf);
        free(lg->dev[d].out);
    }
    pthread_mutex_destroy(&lg->mu);
    pthread_cond_destroy(&lg->go);
    pthread_cond_destroy(&lg->done);
    free(lg->dev);
    free(lg);
}

ens_err_t ens_local_group_new(int devices, const char *instance, ens_local_group_t **out,
                              char *errstr, size_t size) {
    *out = NULL;
    if (devices < 1 || devices > ENS_INFERENCE_MAX_MEMBERS)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "devices must be 1 to %d, not %d",
                           ENS_INFERENCE_MAX_MEMBERS, devices);
    ens_local_group_t *lg = calloc(1, sizeof *lg);
    if (!lg || !(lg->dev = calloc((size_t)devices, sizeof *lg->dev))) {
        free(lg);
        return ens_err_set(errstr, size, ENS_ERR_NOMEM, "out of memory for %d devices",
                           devices);
    }
    lg->n = devices;
    snprintf(lg->instance, sizeof lg->instance, "%s", instance);
    pthread_mutex_init(&lg->mu, NULL);
    pthread_cond_init(&lg->go, NULL);
    pthread_cond_init(&lg->done, NULL);
    ens_err_t err = ENS_OK;
    for (int d = 1; !err && d < devices; d++) {
        device_t *dv = &lg->dev[d];
        dv->lg = lg;
        if ((err = ens_inference_new(&dv->inf)))
            break;
        ens_inference_set_partition(dv->inf, d, devices, NULL);
        ens_inference_set_instance(dv->inf, instance);
        if (pthread_create(&dv->thread, NULL, device_loop, dv) != 0) {
            err = ENS_ERR_IO;
        } else {
            char name[16];
            snprintf(name, sizeof name, "ens-dev%d", d);
            pthread_setname_np(dv->thread, name); /* names threads in top -H; best effort */
            dv->started = 1;
        }
    }
    if (err) {
        ens_local_group_free(lg);
        return ens_err_set(errstr, size, err, "cannot start the threads of %d devices",
                           devices);
    }
    *out = lg;
    return ENS_OK;
}

/* Wait until no device is on a batch (mu held). */
static void wait_idle(ens_local_group_t *lg) {
    while (lg->running > 0)
        pthread_cond_wait(&lg->done, &lg->mu);
}

static ens_err_t share_inputs(void *ctx, const float *x, int32_t rows, int32_t dim) {
    (void)dim; /* the devices share this process's memory: x is read in place */
    ens_local_group_t *lg = ctx;
    pthread_mutex_lock(&lg->mu);
    wait_idle(lg); /* a batch whose sum was never taken is finished first */
    lg->x = x;
    lg->rows = rows;
    lg->running = lg->n - 1;
    lg->gen++;
    pthread_cond_broadcast(&lg->go);
    pthread_mutex_unlock(&lg->mu);
    return ENS_OK;
}

/* Wait for the other devices, then add their shares in device order (deterministic). */
static ens_err_t sum_outputs(void *ctx, float *probs, int32_t rows, int32_t k) {
    ens_local_group_t *lg = ctx;
    pthread_mutex_lock(&lg->mu);
    wait_idle(lg);
    pthread_mutex_unlock(&lg->mu);
    for (int d = 1; d < lg->n; d++) {
        if (lg->dev[d].err)
            return lg->dev[d].err;
        const float *o = lg->dev[d].out;
        for (size_t i = 0; i < (size_t)rows * (size_t)k; i++)
            probs[i] += o[i];
    }
    return ENS_OK;
}

ens_inference_hooks_t ens_local_group_hooks(ens_local_group_t *lg) {
    ens_inference_hooks_t h = {.share_inputs = share_inputs, .sum_outputs = sum_outputs,
                               .ctx = lg};
    return h;
}

ens_err_t ens_local_group_load_plan(ens_local_group_t *lg, ens_inference_t *inf,
                                    ens_redis_t *r, const ens_placement_plan_t *plan,
                                    char *errstr, size_t size) {
    /* no device may be on a batch while engines and buffers change */
    pthread_mutex_lock(&lg->mu);
    wait_idle(lg);
    pthread_mutex_unlock(&lg->mu);
    /* fresh engines for devices 1..n-1 first; swapped in only when every device loaded */
    ens_inference_t **next = calloc((size_t)lg->n, sizeof *next);
    if (!next)
        return ens_err_set(errstr, size, ENS_ERR_NOMEM, "out of memory");
    ens_err_t err = ENS_OK;
    for (int d = 1; !err && d < lg->n; d++) {
        if ((err = ens_inference_new(&next[d])))
            break;
        ens_inference_set_partition(next[d], d, lg->n, NULL);
        ens_inference_set_instance(next[d], lg->instance);
        ens_inference_set_member_batch(next[d], ens_inference_member_batch(inf));
        ens_inference_set_store(next[d], ens_inference_store(inf));
        err = ens_inference_load_plan(next[d], r, plan, errstr, size);
    }
    if (!err) /* device 0 last: on failure it keeps its plan, and so do the others */
        err = ens_inference_load_plan(inf, r, plan, errstr, size);
    for (int d = 1; d < lg->n; d++) {
        if (err) {
            ens_inference_free(next[d]);
            continue;
        }
        ens_inference_free(lg->dev[d].inf); /* idle: batches run on the caller's thread */
        lg->dev[d].inf = next[d];
    }
    free(next);
    return err;
}
