/* store.h - Redis connection with reconnect/backoff, key helpers, dedupe, chunked blobs. */
#ifndef ENSFLOW_STORE_H
#define ENSFLOW_STORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ensflow/err.h"

struct redisReply; /* hiredis */

/** One connection. Not thread-safe: one handle per thread. */
typedef struct ens_redis_s ens_redis_t;

/**
 * @brief Connect to redis://[[user]:password@]host[:port][/db] (or unix:///path.sock).
 *        AUTH and SELECT are sent when the URL names them, again after every reconnect.
 *        User and password may be %-escaped; unix:///path?db=N&user=U&password=P.
 *        One connection attempt, no retry (an unreachable server is ENS_ERR_REDIS).
 * @return ENS_OK or ENS_ERR_REDIS / ENS_ERR_INVALID with errstr filled.
 */
ens_err_t ens_redis_connect(const char *url, ens_redis_t **out, char *errstr, size_t errstr_size);

/**
 * @brief The URL as it may be shown: the password of redis://user:password@host (or the whole
 *        userinfo without a ':') and any password= query value replaced by "***".
 * @param out receives the redacted URL, cut to size (always NUL-terminated when size > 0)
 */
void ens_redis_url_redact(const char *url, char *out, size_t size);

/**
 * @brief Tune the connection: connect timeout, per-command read/write timeout (0 = none; a
 *        command that runs longer counts as a lost connection and is retried, so blocking
 *        commands need 0 or a larger value) and the reconnect budget of one call (0 = no
 *        resend within the call; the next call connects again). Defaults: 2000, 30000, 10000 ms.
 * @return ENS_OK or ENS_ERR_INVALID.
 */
ens_err_t ens_redis_set_timeouts(ens_redis_t *r, long connect_ms, long command_ms,
                                 long retry_budget_ms);

/** @brief Close and free. NULL is a no-op. */
void ens_redis_free(ens_redis_t *r);

/**
 * @brief Run one command (hiredis printf-style format: %s, %b with (ptr, len), %d, %lld...).
 *        On a connection error it reconnects with exponential backoff (up to the retry
 *        budget, about 10 s) and sends the command again.
 * @return the reply (caller frees with ens_redis_reply_free), or NULL with errstr filled
 *         when the server cannot be reached. An error reply (-ERR ...) is returned as a
 *         reply of type REDIS_REPLY_ERROR, not NULL.
 * @remark A command whose reply was lost with the connection is sent again, so it may run
 *         twice (INCR, LPUSH): make such writes idempotent or guard them (ens_store_first_time).
 */
struct redisReply *ens_redis_command(ens_redis_t *r, char *errstr, size_t errstr_size,
                                     const char *fmt, ...);

/** @brief ens_redis_command with a va_list. */
struct redisReply *ens_redis_vcommand(ens_redis_t *r, char *errstr, size_t errstr_size,
                                      const char *fmt, va_list ap);

/**
 * @brief Run a command whose reply is only checked: ENS_OK unless Redis cannot be reached
 *        (ENS_ERR_REDIS) or answers with an error reply (ENS_ERR_REDIS, its text in errstr).
 */
ens_err_t ens_redis_exec(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt, ...);

/** @brief Like ens_redis_command with an argv vector (binary safe). */
struct redisReply *ens_redis_commandv(ens_redis_t *r, int argc, const char **argv,
                                      const size_t *argvlen, char *errstr, size_t errstr_size);

/**
 * @brief Pipelining: send argc commands in one round trip and read all replies.
 *        cmds[i] is an argv vector of cmd_argc[i] strings (NUL-terminated, not binary).
 * @remark replies[i] are owned by the caller (ens_redis_reply_free each).
 */
ens_err_t ens_redis_pipeline(ens_redis_t *r, int n, const int *cmd_argc, const char ***cmds,
                             struct redisReply **replies, char *errstr, size_t errstr_size);

/** @brief Free a reply. NULL is a no-op. */
void ens_redis_reply_free(struct redisReply *reply);

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
