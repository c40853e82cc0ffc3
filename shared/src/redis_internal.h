/* redis_internal.h - what redis.c lends the other Redis modules of shared/src (the chunked
 * blobs, the URL parser): command batches with binary arguments and the connection's generation. */
#ifndef ENSFLOW_REDIS_INTERNAL_H
#define ENSFLOW_REDIS_INTERNAL_H

#include <stddef.h>

#include "ensflow/redis.h"

/* A list of argv commands sharing one argument array; zero-initialise, then begin/arg each
 * command. An allocation failure sets oom and makes the later calls no-ops. */
typedef struct {
    int n, cap;
    int *argc;
    size_t *first;
    const char **argv;
    size_t *argvlen;
    size_t nargs, capargs;
    int oom;
} ens_redis_batch_t;

void ens_redis_batch_begin(ens_redis_batch_t *b);
/* ptr must stay valid until the batch is sent */
void ens_redis_batch_arg(ens_redis_batch_t *b, const void *ptr, size_t len);
void ens_redis_batch_str(ens_redis_batch_t *b, const char *s);
void ens_redis_batch_free(ens_redis_batch_t *b);

/* Send the batch in one round trip and read its b->n replies into replies. retry = 1
 * reconnects and sends it again within the retry budget; retry = 0 returns ENS_ERR_IO at
 * once on a lost connection (for MULTI/EXEC under WATCH, which a new connection voids). */
ens_err_t ens_redis_batch_run(ens_redis_t *r, const ens_redis_batch_t *b,
                              ens_redis_reply_t **replies, int retry, char *errstr,
                              size_t errstr_size);

/* Bumped on every successful (re)connect: a WATCH made under another generation is gone. */
unsigned long ens_redis_generation(const ens_redis_t *r);
/* 1 while a connection is open. */
int ens_redis_connected(const ens_redis_t *r);

/* A parsed URL; NULL strings are absent. */
typedef struct {
    char *host; /* TCP host, NULL for a Unix socket */
    int port;
    char *path; /* Unix socket path, NULL for TCP */
    char *user; /* ACL user, may be NULL */
    char *pass; /* password, may be NULL */
    int db;
} ens_redis_url_t;

/* Parse url into *u (zeroed first by the caller); ENS_ERR_INVALID names what is wrong. */
ens_err_t ens_redis_url_parse(ens_redis_url_t *u, const char *url, char *errstr, size_t esz);
/* Free the strings of u, wiping the password. */
void ens_redis_url_clear(ens_redis_url_t *u);

/* An unsigned decimal that fills [s, s+n) exactly, at most max: 0, else -1. */
int ens_redis_parse_ull(const char *s, size_t n, unsigned long long max, unsigned long long *out);

#endif
