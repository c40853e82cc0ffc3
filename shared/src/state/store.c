/* store.c - model ids, study keys ("ens:{<study>}:..."), the first-time guard, glob escaping
 * and CRC-32. The connection is redis.c, chunked blobs blob.c. */
#include "ensflow/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* ---------------------------------------------------------------------------------------- */
/* keys and dedupe                                                                          */

static int study_ok(const char *study_id) {
    return study_id && study_id[0] && !strpbrk(study_id, "{}");
}

void ens_model_id(const char *trial_id, double epochs, char *out, size_t size) {
    snprintf(out, size, "%.40s-e%.4g", trial_id, epochs);
}

ens_err_t ens_model_id_trial(const char *model_id, char *trial, size_t size) {
    /* the last "-e" followed by a number: epochs print as %g, so "1e-05" has no "-e" */
    const char *e = NULL;
    for (const char *s = model_id; (s = strstr(s, "-e")) != NULL; s += 2)
        e = s;
    if (!e || e == model_id || !strchr("0123456789.", e[2]) || e[2] == '\0' ||
        (size_t)(e - model_id) >= size)
        return ENS_ERR_INVALID;
    snprintf(trial, size, "%.*s", (int)(e - model_id), model_id);
    return ENS_OK;
}

char *ens_key(char *buf, size_t size, const char *study_id, const char *suffix_fmt, ...) {
    if (!buf || size == 0 || !suffix_fmt)
        return NULL;
    buf[0] = '\0';
    /* a brace in the study id would move the hash tag and split a study across slots */
    if (!study_ok(study_id))
        return NULL;
    int n = snprintf(buf, size, "ens:{%s}:", study_id);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return NULL;
    }
    va_list ap;
    va_start(ap, suffix_fmt);
    int m = vsnprintf(buf + n, size - (size_t)n, suffix_fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= size - (size_t)n) {
        buf[0] = '\0';
        return NULL;
    }
    return buf;
}

int ens_store_first_time(ens_redis_t *r, const char *study_id, const char *scope,
                         const char *event_id, int ttl_seconds) {
    if (!r || !scope || !event_id || ttl_seconds < 0)
        return ENS_ERR_INVALID;
    char key[1024];
    if (!ens_key(key, sizeof key, study_id, "seen:%s:%s", scope, event_id))
        return ENS_ERR_INVALID;
    ens_redis_reply_t *reply;
    /* ttl 0: remember forever */
    if (ttl_seconds > 0)
        reply = ens_redis_command(r, NULL, 0, "SET %s 1 NX EX %d", key, ttl_seconds);
    else
        reply = ens_redis_command(r, NULL, 0, "SET %s 1 NX", key);
    if (!reply)
        return ENS_ERR_REDIS;
    int rc;
    if (reply->type == ENS_REPLY_STATUS && reply->len == 2 && memcmp(reply->str, "OK", 2) == 0)
        rc = 1;
    else if (reply->type == ENS_REPLY_NIL)
        rc = 0;
    else
        rc = ENS_ERR_REDIS;
    ens_redis_reply_free(reply);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* patterns and checksums                                                                   */

char *ens_redis_glob_escape(const char *s, char *out, size_t size) {
    size_t o = 0;
    for (; s && *s; s++) {
        if (o + 3 > size)
            return NULL;
        if (strchr("*?[]\\", *s))
            out[o++] = '\\';
        out[o++] = *s;
    }
    if (!s || size == 0)
        return NULL;
    out[o] = '\0';
    return out;
}

uint32_t ens_crc32(const void *data, size_t len) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p = data;
    while (len > 0) {
        uInt n = len > (size_t)1 << 30 ? (uInt)1 << 30 : (uInt)len;
        crc = crc32(crc, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)crc;
}

