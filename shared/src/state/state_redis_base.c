/* state_redis_base.c - the commands the Redis scheduler's files (state_redis_sched.c,
 * state_redis_jobs.c) both send: one whose answer must be an array, one that counts. Below
 * both, so that neither calls into the other for them. */
#include <stdarg.h>

#include "state_redis_sched.h"

/* A command whose answer must be an array (HGETALL, HMGET, SMEMBERS...), or ENS_ERR_REDIS. */
ens_err_t ens_state_redis_array_cmd(ens_redis_t *r, ens_redis_reply_t **out, char *errstr,
                                    size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ens_redis_reply_t *rep = ens_redis_vcommand(r, errstr, errstr_size, fmt, ap);
    va_end(ap);
    *out = NULL;
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type != ENS_REPLY_ARRAY) {
        ens_err_t err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "%s: %s", fmt,
                                    rep->type == ENS_REPLY_ERROR ? rep->str : "unexpected reply");
        ens_redis_reply_free(rep);
        return err;
    }
    *out = rep;
    return ENS_OK;
}

/* An integer-answering command; anything else reads 0 (missing counts as none). */
ens_err_t ens_state_redis_int_cmd(ens_redis_t *r, long long *out, char *errstr, size_t errstr_size,
                                  const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ens_redis_reply_t *rep = ens_redis_vcommand(r, errstr, errstr_size, fmt, ap);
    va_end(ap);
    if (!rep)
        return ENS_ERR_REDIS;
    *out = rep->type == ENS_REPLY_INTEGER ? rep->integer : 0;
    ens_redis_reply_free(rep);
    return ENS_OK;
}
