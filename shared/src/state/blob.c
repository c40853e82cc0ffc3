/* blob.c - binary blobs in Redis, chunked: <key>:meta {len, chunks, crc32, csize} and
 * <key>:c:<i>, written in one WATCHed MULTI/EXEC and read back with length and CRC checks. */
#include "ensflow/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../redis_internal.h"

#define BLOB_DEFAULT_CHUNK ((size_t)512 * 1024)
#define BLOB_MAX_LEN ((unsigned long long)4 << 30)   /* 4 GiB */
#define BLOB_MAX_CHUNK ((size_t)512 * 1024 * 1024)   /* Redis string limit */
#define BLOB_MAX_CHUNKS 1048576ULL
#define BLOB_MAX_KEY 1024
#define BLOB_GET_GROUP 32      /* chunks fetched per round trip */
#define BLOB_PUT_TRIES 8       /* WATCH conflicts or lost connections before giving up */
#define BLOB_GET_TRIES 3       /* re-reads when a concurrent writer replaced the blob */

/* Parse a decimal field of an HMGET reply element. 1 = present and valid, 0 = nil,
 * -1 = present but not a number within max. */
static int reply_ull(const ens_redis_reply_t *e, unsigned long long max, unsigned long long *out) {
    if (!e || e->type == ENS_REPLY_NIL)
        return 0;
    if (e->type != ENS_REPLY_STRING)
        return -1;
    return ens_redis_parse_ull(e->str, e->len, max, out) == 0 ? 1 : -1;
}

/* key + ":c:" + up to 20 digits */
#define CHUNK_KEY_SLOT(keylen) ((keylen) + 24)

static ens_err_t check_blob_key(const char *key, char *errstr, size_t esz) {
    if (!key || !key[0])
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "blob: empty key");
    if (strlen(key) > BLOB_MAX_KEY)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "blob: key longer than %d bytes",
                           BLOB_MAX_KEY);
    return ENS_OK;
}

/* Write (data != NULL or len == 0 with write = 1) or delete (write = 0) a blob: WATCH the
 * meta key, read how many chunks the old blob had, then one MULTI/EXEC that writes meta and
 * chunks and deletes the old blob's chunks beyond the new count. Retries when EXEC is
 * aborted by a concurrent writer or the connection dropped in between. */
static ens_err_t blob_write(ens_redis_t *r, const char *key, const void *data, size_t len,
                            size_t csize, int write, char *errstr, size_t esz) {
    size_t klen = strlen(key);
    char meta[BLOB_MAX_KEY + 8];
    snprintf(meta, sizeof meta, "%s:meta", key);
    unsigned long long nchunks = write && len ? (len + csize - 1) / csize : 0;
    char lens[24], chunks_s[24], crcs[16], csizes[24];
    if (write) {
        snprintf(lens, sizeof lens, "%zu", len);
        snprintf(chunks_s, sizeof chunks_s, "%llu", nchunks);
        snprintf(crcs, sizeof crcs, "%u", (unsigned)ens_crc32(data, len));
        snprintf(csizes, sizeof csizes, "%zu", csize);
    }
    ens_err_t err = ENS_ERR_REDIS;
    char last[256] = "no attempt";
    for (int attempt = 0; attempt < BLOB_PUT_TRIES; attempt++) {
        /* 1. WATCH meta and read the old chunk count */
        const char *w_argv[2] = {"WATCH", meta};
        const char *g_argv[3] = {"HGET", meta, "chunks"};
        const char **pcmds[2] = {w_argv, g_argv};
        int pargc[2] = {2, 3};
        ens_redis_reply_t *pre[2];
        err = ens_redis_pipeline(r, 2, pargc, pcmds, pre, errstr, esz);
        if (err)
            return err;
        unsigned long gen = ens_redis_generation(r);
        unsigned long long old_chunks = 0;
        if (pre[0]->type != ENS_REPLY_STATUS) {
            err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: WATCH failed: %.*s", key,
                              pre[0]->type == ENS_REPLY_ERROR ? (int)pre[0]->len : 0,
                              pre[0]->type == ENS_REPLY_ERROR ? pre[0]->str : "");
        } else if (pre[1]->type == ENS_REPLY_ERROR) {
            err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: HGET meta: %.*s", key,
                              (int)pre[1]->len, pre[1]->str);
        } else if (reply_ull(pre[1], BLOB_MAX_CHUNKS, &old_chunks) < 0) {
            old_chunks = 0; /* damaged meta: nothing reliable to clean up */
        }
        ens_redis_reply_free(pre[0]);
        ens_redis_reply_free(pre[1]);
        if (err) {
            ens_redis_reply_t *u = ens_redis_command(r, NULL, 0, "UNWATCH");
            ens_redis_reply_free(u);
            return err;
        }
        /* 2. MULTI ... EXEC */
        unsigned long long maxk = nchunks > old_chunks ? nchunks : old_chunks;
        size_t slot = CHUNK_KEY_SLOT(klen);
        char *keys = maxk ? malloc((size_t)maxk * slot) : NULL;
        ens_redis_batch_t cl = {0};
        if (maxk && !keys) {
            err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        } else {
            for (unsigned long long i = 0; i < maxk; i++)
                snprintf(keys + i * slot, slot, "%s:c:%llu", key, i);
            ens_redis_batch_begin(&cl);
            ens_redis_batch_str(&cl, "MULTI");
            ens_redis_batch_begin(&cl);
            ens_redis_batch_str(&cl, "DEL");
            ens_redis_batch_str(&cl, meta);
            for (unsigned long long i = nchunks; i < old_chunks; i++)
                ens_redis_batch_str(&cl, keys + i * slot);
            if (write) {
                for (unsigned long long i = 0; i < nchunks; i++) {
                    size_t off = (size_t)i * csize;
                    size_t n = len - off < csize ? len - off : csize;
                    ens_redis_batch_begin(&cl);
                    ens_redis_batch_str(&cl, "SET");
                    ens_redis_batch_str(&cl, keys + i * slot);
                    ens_redis_batch_arg(&cl, (const char *)data + off, n);
                }
                ens_redis_batch_begin(&cl);
                ens_redis_batch_str(&cl, "HSET");
                ens_redis_batch_str(&cl, meta);
                ens_redis_batch_str(&cl, "len");
                ens_redis_batch_str(&cl, lens);
                ens_redis_batch_str(&cl, "chunks");
                ens_redis_batch_str(&cl, chunks_s);
                ens_redis_batch_str(&cl, "crc32");
                ens_redis_batch_str(&cl, crcs);
                ens_redis_batch_str(&cl, "csize");
                ens_redis_batch_str(&cl, csizes);
            }
            ens_redis_batch_begin(&cl);
            ens_redis_batch_str(&cl, "EXEC");
            if (cl.oom)
                err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        }
        if (err) {
            ens_redis_batch_free(&cl);
            free(keys);
            ens_redis_reply_t *u = ens_redis_command(r, NULL, 0, "UNWATCH");
            ens_redis_reply_free(u);
            return err;
        }
        ens_redis_reply_t **rep = calloc((size_t)cl.n, sizeof *rep);
        if (!rep) {
            ens_redis_batch_free(&cl);
            free(keys);
            ens_redis_reply_t *u = ens_redis_command(r, NULL, 0, "UNWATCH");
            ens_redis_reply_free(u);
            return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        }
        /* no transparent resend: a new connection would have lost the WATCH */
        err = ENS_OK;
        if (ens_redis_generation(r) != gen || !ens_redis_connected(r)) {
            err = ENS_ERR_IO;
            snprintf(last, sizeof last, "connection changed after WATCH");
        } else {
            err = ens_redis_batch_run(r, &cl, rep, 0, last, sizeof last);
        }
        int nrep = cl.n;
        ens_redis_batch_free(&cl);
        free(keys);
        if (err == ENS_ERR_IO) {
            free(rep);
            continue; /* the next pipeline reconnects with backoff */
        }
        if (err) {
            free(rep);
            return ens_err_set(errstr, esz, err, "blob %s: %s", key, last);
        }
        /* replies: +OK, +QUEUED..., EXEC array (or nil when the WATCH fired) */
        ens_redis_reply_t *exec = rep[nrep - 1];
        int queued_ok = rep[0]->type == ENS_REPLY_STATUS;
        for (int i = 1; i < nrep - 1 && queued_ok; i++)
            if (rep[i]->type != ENS_REPLY_STATUS) {
                queued_ok = 0;
                snprintf(last, sizeof last, "command %d not queued: %.*s", i,
                         rep[i]->type == ENS_REPLY_ERROR ? (int)rep[i]->len : 0,
                         rep[i]->type == ENS_REPLY_ERROR ? rep[i]->str : "");
            }
        int done = 0;
        if (!queued_ok) {
            err = ENS_ERR_REDIS;
        } else if (exec->type == ENS_REPLY_NIL) {
            snprintf(last, sizeof last, "concurrent writer (WATCH aborted EXEC)");
        } else if (exec->type == ENS_REPLY_ARRAY && exec->elements == (size_t)(nrep - 2)) {
            done = 1;
            for (size_t i = 0; i < exec->elements; i++)
                if (!exec->element[i] || exec->element[i]->type == ENS_REPLY_ERROR) {
                    err = ENS_ERR_REDIS;
                    snprintf(last, sizeof last, "transaction command %zu failed: %.*s", i,
                             exec->element[i] ? (int)exec->element[i]->len : 0,
                             exec->element[i] ? exec->element[i]->str : "");
                    break;
                }
        } else {
            err = ENS_ERR_REDIS;
            snprintf(last, sizeof last, "EXEC failed: %.*s",
                     exec->type == ENS_REPLY_ERROR ? (int)exec->len : 0,
                     exec->type == ENS_REPLY_ERROR ? exec->str : "unexpected reply");
        }
        for (int i = 0; i < nrep; i++)
            ens_redis_reply_free(rep[i]);
        free(rep);
        if (err)
            return ens_err_set(errstr, esz, err, "blob %s: %s", key, last);
        if (done)
            return ENS_OK;
    }
    return ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: gave up after %d tries: %s", key,
                       BLOB_PUT_TRIES, last);
}

ens_err_t ens_store_blob_put(ens_redis_t *r, const char *key, const void *data, size_t len,
                             size_t chunk_size, char *errstr, size_t errstr_size) {
    if (!r)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "blob: NULL handle");
    ens_err_t err = check_blob_key(key, errstr, errstr_size);
    if (err)
        return err;
    if (!data && len)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "blob %s: NULL data", key);
    if ((unsigned long long)len > BLOB_MAX_LEN)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "blob %s: %zu bytes is over the 4 GiB limit", key, len);
    if (chunk_size == 0)
        chunk_size = BLOB_DEFAULT_CHUNK;
    if (chunk_size > BLOB_MAX_CHUNK)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "blob %s: chunk size %zu over Redis' 512 MiB string limit", key,
                           chunk_size);
    if (len && (len - 1) / chunk_size + 1 > BLOB_MAX_CHUNKS)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "blob %s: chunk size %zu too small for %zu bytes (max %llu chunks)",
                           key, chunk_size, len, BLOB_MAX_CHUNKS);
    return blob_write(r, key, data ? data : "", len, chunk_size, 1, errstr, errstr_size);
}

ens_err_t ens_store_blob_del(ens_redis_t *r, const char *key, char *errstr, size_t errstr_size) {
    if (!r)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "blob: NULL handle");
    ens_err_t err = check_blob_key(key, errstr, errstr_size);
    if (err)
        return err;
    return blob_write(r, key, NULL, 0, 1, 0, errstr, errstr_size);
}

struct blob_meta {
    unsigned long long len, chunks, crc, csize; /* csize 0 = not recorded */
};

/* ENS_OK, ENS_ERR_NOTFOUND, ENS_ERR_CORRUPT, ENS_ERR_REDIS */
static ens_err_t blob_read_meta(ens_redis_t *r, const char *key, struct blob_meta *m,
                                char *errstr, size_t esz) {
    char meta[BLOB_MAX_KEY + 8];
    snprintf(meta, sizeof meta, "%s:meta", key);
    const char *argv[6] = {"HMGET", meta, "len", "chunks", "crc32", "csize"};
    ens_redis_reply_t *rep = ens_redis_commandv(r, 6, argv, NULL, errstr, esz);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == ENS_REPLY_ERROR) {
        err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: HMGET meta: %.*s", key,
                          (int)rep->len, rep->str);
    } else if (rep->type != ENS_REPLY_ARRAY || rep->elements != 4) {
        err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: HMGET meta: unexpected reply",
                          key);
    } else {
        int a = reply_ull(rep->element[0], BLOB_MAX_LEN, &m->len);
        int b = reply_ull(rep->element[1], BLOB_MAX_CHUNKS, &m->chunks);
        int c = reply_ull(rep->element[2], UINT32_MAX, &m->crc);
        int d = reply_ull(rep->element[3], BLOB_MAX_CHUNK, &m->csize);
        if (a == 0 && b == 0 && c == 0 && d == 0)
            err = ens_err_set(errstr, esz, ENS_ERR_NOTFOUND, "blob %s: not found", key);
        else if (a != 1 || b != 1 || c != 1 || d < 0)
            err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                              "blob %s: meta is missing fields or holds bad values "
                              "(len <= 4 GiB, chunks <= %llu)",
                              key, BLOB_MAX_CHUNKS);
        else if (d == 0)
            m->csize = 0;
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    /* every chunk holds at least one byte; with a recorded chunk size the count is exact */
    int ok = (m->len == 0) == (m->chunks == 0) && m->chunks <= m->len;
    if (ok && m->csize)
        ok = m->chunks == (m->len + m->csize - 1) / m->csize;
    if (!ok)
        return ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                           "blob %s: meta inconsistent: len=%llu chunks=%llu csize=%llu", key,
                           m->len, m->chunks, m->csize);
    return ENS_OK;
}

/* Fetch the chunks of a blob whose meta is m into a new buffer. */
static ens_err_t blob_read_chunks(ens_redis_t *r, const char *key, const struct blob_meta *m,
                                  void **out, char *errstr, size_t esz) {
    size_t slot = CHUNK_KEY_SLOT(strlen(key));
    unsigned char *buf = malloc(m->len ? (size_t)m->len : 1);
    char *keys = malloc(BLOB_GET_GROUP * slot);
    ens_redis_reply_t *rep[BLOB_GET_GROUP];
    ens_err_t err = ENS_OK;
    size_t off = 0;
    if (!buf || !keys) {
        err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory (%llu bytes)",
                          key, m->len);
        goto out;
    }
    for (unsigned long long first = 0; first < m->chunks && !err; first += BLOB_GET_GROUP) {
        int n = (int)(m->chunks - first < BLOB_GET_GROUP ? m->chunks - first : BLOB_GET_GROUP);
        ens_redis_batch_t cl = {0};
        for (int i = 0; i < n; i++) {
            snprintf(keys + (size_t)i * slot, slot, "%s:c:%llu", key, first + (unsigned)i);
            ens_redis_batch_begin(&cl);
            ens_redis_batch_str(&cl, "GET");
            ens_redis_batch_str(&cl, keys + (size_t)i * slot);
        }
        if (cl.oom)
            err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        else
            err = ens_redis_batch_run(r, &cl, rep, 1, errstr, esz);
        ens_redis_batch_free(&cl);
        if (err)
            break;
        for (int i = 0; i < n; i++) {
            const ens_redis_reply_t *e = rep[i];
            unsigned long long idx = first + (unsigned)i;
            if (err) {
                /* already failed: just free the rest */
            } else if (e->type == ENS_REPLY_NIL) {
                err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                                  "blob %s: chunk %llu of %llu is missing", key, idx, m->chunks);
            } else if (e->type == ENS_REPLY_ERROR) {
                err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: GET chunk %llu: %.*s",
                                  key, idx, (int)e->len, e->str);
            } else if (e->type != ENS_REPLY_STRING || e->len == 0 ||
                       e->len > m->len - off ||
                       (m->csize && idx + 1 < m->chunks && e->len != m->csize)) {
                err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                                  "blob %s: chunk %llu has %zu bytes, which does not fit "
                                  "len=%llu chunks=%llu csize=%llu",
                                  key, idx, e->type == ENS_REPLY_STRING ? e->len : 0,
                                  m->len, m->chunks, m->csize);
            } else {
                memcpy(buf + off, e->str, e->len);
                off += e->len;
            }
            ens_redis_reply_free(rep[i]);
        }
    }
    if (!err && off != m->len)
        err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                          "blob %s: chunks hold %zu bytes, meta says %llu", key, off, m->len);
    if (!err) {
        uint32_t crc = ens_crc32(buf, off);
        if (crc != m->crc)
            err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                              "blob %s: CRC-32 mismatch: data %u, meta %llu", key,
                              (unsigned)crc, m->crc);
    }
out:
    free(keys);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    return ENS_OK;
}

ens_err_t ens_store_blob_get(ens_redis_t *r, const char *key, void **data, size_t *len,
                             char *errstr, size_t errstr_size) {
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!r || !data || !len)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "blob: NULL argument");
    ens_err_t err = check_blob_key(key, errstr, errstr_size);
    if (err)
        return err;
    for (int attempt = 0;; attempt++) {
        struct blob_meta m = {0}, again = {0};
        err = blob_read_meta(r, key, &m, errstr, errstr_size);
        if (err)
            return err;
        if ((unsigned long long)(size_t)m.len != m.len)
            return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM,
                               "blob %s: %llu bytes do not fit in memory", key, m.len);
        void *buf = NULL;
        err = blob_read_chunks(r, key, &m, &buf, errstr, errstr_size);
        if (!err) {
            *data = buf;
            *len = (size_t)m.len;
            return ENS_OK;
        }
        if (err != ENS_ERR_CORRUPT || attempt + 1 >= BLOB_GET_TRIES)
            return err;
        /* a writer may have replaced the blob between meta and chunks: read again if the
         * meta changed, otherwise the damage is real */
        char tmp[8];
        ens_err_t err2 = blob_read_meta(r, key, &again, tmp, sizeof tmp);
        if (err2 == ENS_ERR_NOTFOUND)
            return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                               "blob %s: deleted while reading", key);
        if (err2 || (again.len == m.len && again.chunks == m.chunks && again.crc == m.crc &&
                     again.csize == m.csize))
            return err;
    }
}

