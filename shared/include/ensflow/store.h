/* store.h - model ids, study keys, the dedupe guard and chunked blobs over a Redis connection. */
#ifndef ENSFLOW_STORE_H
#define ENSFLOW_STORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"
#include "ensflow/redis.h"

/** @brief The model id of a trial's checkpoint at this many epochs ("t-00003-e1.667") in out
 *         (ENS_ID_MAX bytes are enough): the trainer names its checkpoints so, and the
 *         proposer finds a job's records by it. */
void ens_model_id(const char *trial_id, double epochs, char *out, size_t size);

/** @brief The trial id of a model id made by ens_model_id, into trial.
 *  @return ENS_OK, or ENS_ERR_INVALID when model_id is not of that form or trial too small. */
ens_err_t ens_model_id_trial(const char *model_id, char *trial, size_t size);

/**
 * @brief Build "ens:{<study>}:<suffix>" into buf; the braces are a Redis Cluster hash tag,
 *        so one study's keys share a slot.
 * @return buf, or NULL when it does not fit or study_id is NULL, empty or holds '{' or '}'
 *         (a brace would move the hash tag).
 */
char *ens_key(char *buf, size_t size, const char *study_id, const char *suffix_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * @brief Idempotency guard: SET ens:{study}:seen:<scope>:<event_id> NX EX ttl.
 * @return 1 when this is the first time (the caller goes on), 0 when already seen,
 *         negative ens_err_t on error.
 * @remark ttl_seconds 0 keeps the mark forever; negative is ENS_ERR_INVALID.
 */
int ens_store_first_time(ens_redis_t *r, const char *study_id, const char *scope,
                         const char *event_id, int ttl_seconds);

/**
 * @brief Store a binary blob under key, chunked (chunk_size bytes, 0 = 512 KiB):
 *        <key>:meta hash {len, chunks, crc32, csize} and <key>:c:<i> strings, in one
 *        MULTI/EXEC (WATCHed, so chunks of an older, longer blob are deleted too).
 *        Overwriting a blob replaces it whole. len <= 4 GiB, chunk_size <= 512 MiB,
 *        at most 1048576 chunks; otherwise ENS_ERR_INVALID.
 */
ens_err_t ens_store_blob_put(ens_redis_t *r, const char *key, const void *data, size_t len,
                             size_t chunk_size, char *errstr, size_t errstr_size);

/**
 * @brief Load a blob written by ens_store_blob_put; checks length and CRC-32.
 * @return ENS_OK, ENS_ERR_NOTFOUND, ENS_ERR_CORRUPT or ENS_ERR_REDIS.
 * @remark *data is malloc'd; the caller frees it.
 */
ens_err_t ens_store_blob_get(ens_redis_t *r, const char *key, void **data, size_t *len,
                             char *errstr, size_t errstr_size);

/**
 * @brief s with Redis glob characters (* ? [ ] \) escaped, for SCAN MATCH patterns.
 * @return out, or NULL when it does not fit (a cut pattern would match other keys).
 */
char *ens_redis_glob_escape(const char *s, char *out, size_t size);

/** @brief CRC-32 (zlib's polynomial) of len bytes, any length. */
uint32_t ens_crc32(const void *data, size_t len);

/** @brief Delete a blob (meta and chunks). Missing is not an error. */
ens_err_t ens_store_blob_del(ens_redis_t *r, const char *key, char *errstr, size_t errstr_size);

#endif
