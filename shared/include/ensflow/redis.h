/* redis.h - one Redis connection (URL, AUTH/SELECT, reconnect with backoff) and its commands.
 * The only module that includes hiredis is redis.c: replies come back as ens_redis_reply_t,
 * a copy with hiredis's field names, so nothing else depends on the client library. */
#ifndef ENSFLOW_REDIS_H
#define ENSFLOW_REDIS_H

#include <stdarg.h>
#include <stddef.h>

#include "ensflow/err.h"

/** Reply types (the RESP2 kinds). */
typedef enum {
    ENS_REPLY_STRING = 1,
    ENS_REPLY_ARRAY = 2,
    ENS_REPLY_INTEGER = 3,
    ENS_REPLY_NIL = 4,
    ENS_REPLY_STATUS = 5,
    ENS_REPLY_ERROR = 6,
} ens_reply_type_t;

/** A reply: str/len for STRING, STATUS and ERROR (str is NUL-terminated), integer for
 *  INTEGER, element[0..elements) for ARRAY. Owned by the caller: ens_redis_reply_free. */
typedef struct ens_redis_reply_s {
    int type;                            /**< an ens_reply_type_t */
    long long integer;
    size_t len;
    char *str;
    size_t elements;
    struct ens_redis_reply_s **element;
} ens_redis_reply_t;

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
 *         reply of type ENS_REPLY_ERROR, not NULL.
 * @remark A command whose reply was lost with the connection is sent again, so it may run
 *         twice (INCR, LPUSH): make such writes idempotent or guard them (ens_store_first_time).
 */
ens_redis_reply_t *ens_redis_command(ens_redis_t *r, char *errstr, size_t errstr_size,
                                     const char *fmt, ...);

/** @brief ens_redis_command with a va_list. */
ens_redis_reply_t *ens_redis_vcommand(ens_redis_t *r, char *errstr, size_t errstr_size,
                                      const char *fmt, va_list ap);

/**
 * @brief Run a command whose reply is only checked: ENS_OK unless Redis cannot be reached
 *        (ENS_ERR_REDIS) or answers with an error reply (ENS_ERR_REDIS, its text in errstr).
 */
ens_err_t ens_redis_exec(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt, ...);

/** @brief Like ens_redis_command with an argv vector (binary safe). */
ens_redis_reply_t *ens_redis_commandv(ens_redis_t *r, int argc, const char **argv,
                                      const size_t *argvlen, char *errstr, size_t errstr_size);

/**
 * @brief Pipelining: send argc commands in one round trip and read all replies.
 *        cmds[i] is an argv vector of cmd_argc[i] strings (NUL-terminated, not binary).
 * @remark replies[i] are owned by the caller (ens_redis_reply_free each).
 */
ens_err_t ens_redis_pipeline(ens_redis_t *r, int n, const int *cmd_argc, const char ***cmds,
                             ens_redis_reply_t **replies, char *errstr, size_t errstr_size);

/** @brief Free a reply and its elements. NULL is a no-op. */
void ens_redis_reply_free(ens_redis_reply_t *reply);

#endif
