/* registry.c - devices announced in Redis with a TTL, listed for the placer: the Redis half of
 * the state layer's devices (state_redis.c's device operations call it; services call
 * ens_state_device_*). */
#include "ensflow/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_INDEX "ens:devices"
#define REGISTRY_MAX 4096

ens_err_t ens_registry_heartbeat(ens_redis_t *r, const ens_device_t *d, int ttl_seconds,
                                 char *errstr, size_t errstr_size) {
    if (!d->device_id[0] || ttl_seconds < 1)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "device id and ttl needed");
    char key[128];
    snprintf(key, sizeof key, "ens:device:%.64s", d->device_id);
    ens_err_t err = ens_redis_exec(r, errstr, errstr_size,
                                   "HSET %s kind %s worker %s memory_bytes %lld cores %d "
                                   "overhead_ms %.6f speed %.6f",
                                   key, d->kind, d->worker, (long long)d->memory_bytes,
                                   (int)d->cores, d->overhead_ms > 0 ? d->overhead_ms : 0.0,
                                   d->speed > 0 ? d->speed : 0.0);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "EXPIRE %s %d", key, ttl_seconds);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "ZADD %s %lld %s", REGISTRY_INDEX,
                             (long long)ens_now_ms(), d->device_id);
    return err;
}

ens_err_t ens_registry_remove(ens_redis_t *r, const char *device_id, char *errstr,
                              size_t errstr_size) {
    char key[128];
    snprintf(key, sizeof key, "ens:device:%.64s", device_id);
    ens_err_t err = ens_redis_exec(r, errstr, errstr_size, "DEL %s", key);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "ZREM %s %s", REGISTRY_INDEX, device_id);
    return err;
}

static int cmp_device(const void *a, const void *b) {
    return strcmp(((const ens_device_t *)a)->device_id, ((const ens_device_t *)b)->device_id);
}

ens_err_t ens_registry_list(ens_redis_t *r, ens_device_t **devices, int *n, char *errstr,
                            size_t errstr_size) {
    *devices = NULL;
    *n = 0;
    ens_redis_reply_t *ids = ens_redis_command(r, errstr, errstr_size, "ZRANGE %s 0 %d", REGISTRY_INDEX,
                                        REGISTRY_MAX - 1);
    if (!ids)
        return ENS_ERR_REDIS;
    if (ids->type != ENS_REPLY_ARRAY) {
        ens_redis_reply_free(ids);
        return ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "device index is not a zset");
    }
    ens_device_t *out = calloc(ids->elements ? ids->elements : 1, sizeof *out);
    if (!out) {
        ens_redis_reply_free(ids);
        return ENS_ERR_NOMEM;
    }
    ens_err_t err = ENS_OK;
    int count = 0;
    for (size_t i = 0; !err && i < ids->elements; i++) {
        const char *id = ids->element[i]->str;
        if (!id || strlen(id) >= ENS_ID_MAX)
            continue;
        char key[128];
        snprintf(key, sizeof key, "ens:device:%s", id);
        ens_redis_reply_t *h = ens_redis_command(r, errstr, errstr_size,
                                          "HMGET %s kind worker memory_bytes cores overhead_ms "
                                          "speed",
                                          key);
        if (!h) {
            err = ENS_ERR_REDIS;
            break;
        }
        if (h->type == ENS_REPLY_ARRAY && h->elements == 6 &&
            h->element[0]->type == ENS_REPLY_STRING) {
            ens_device_t *d = &out[count++];
            snprintf(d->device_id, sizeof d->device_id, "%s", id);
            snprintf(d->kind, sizeof d->kind, "%s", h->element[0]->str);
            snprintf(d->worker, sizeof d->worker, "%s",
                     h->element[1]->str ? h->element[1]->str : "");
            d->memory_bytes = h->element[2]->str ? strtoll(h->element[2]->str, NULL, 10) : 0;
            d->cores = h->element[3]->str ? (int32_t)strtol(h->element[3]->str, NULL, 10) : 0;
            d->overhead_ms = h->element[4]->str ? strtod(h->element[4]->str, NULL) : 0;
            if (!(d->overhead_ms >= 0 && d->overhead_ms < 1e6)) /* NaN or absurd: unknown */
                d->overhead_ms = 0;
            d->speed = h->element[5]->str ? strtod(h->element[5]->str, NULL) : 0;
            if (!(d->speed > 0 && d->speed < 1e6))
                d->speed = 0;
        } else {
            /* expired: its worker stopped refreshing it */
            err = ens_redis_exec(r, errstr, errstr_size, "ZREM %s %s", REGISTRY_INDEX, id);
        }
        ens_redis_reply_free(h);
    }
    ens_redis_reply_free(ids);
    if (err) {
        free(out);
        return err;
    }
    qsort(out, (size_t)count, sizeof *out, cmp_device);
    *devices = count ? out : (free(out), NULL);
    *n = count;
    return ENS_OK;
}
