/* store.c - Redis connection (URL, AUTH/SELECT, reconnect/backoff), keys, dedupe, chunked blobs. */
#include "ensflow/store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define STORE_DEFAULT_PORT 6379
#define STORE_CONNECT_TIMEOUT_MS 2000
#define STORE_COMMAND_TIMEOUT_MS 30000
#define STORE_RETRY_BUDGET_MS 10000
#define STORE_BACKOFF_FIRST_MS 50
#define STORE_BACKOFF_MAX_MS 2000

#define BLOB_DEFAULT_CHUNK ((size_t)512 * 1024)
#define BLOB_MAX_LEN ((unsigned long long)4 << 30)   /* 4 GiB */
#define BLOB_MAX_CHUNK ((size_t)512 * 1024 * 1024)   /* Redis string limit */
#define BLOB_MAX_CHUNKS 1048576ULL
#define BLOB_MAX_KEY 1024
#define BLOB_GET_GROUP 32      /* chunks fetched per round trip */
#define BLOB_PUT_TRIES 8       /* WATCH conflicts or lost connections before giving up */
#define BLOB_GET_TRIES 3       /* re-reads when a concurrent writer replaced the blob */

struct ens_redis_s {
    redisContext *c;
    char *host;     /* TCP host, NULL for a Unix socket */
    int port;
    char *path;     /* Unix socket path, NULL for TCP */
    char *user;     /* ACL user, may be NULL */
    char *pass;     /* password, may be NULL */
    int db;
    long connect_timeout_ms;
    long command_timeout_ms; /* 0 = no read/write timeout */
    long retry_budget_ms;
    unsigned long generation; /* bumped on every successful (re)connect */
};

/* ---------------------------------------------------------------------------------------- */
/* small helpers                                                                            */

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static struct timeval ms_to_tv(long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Parse an unsigned decimal that fills [s, s+n) exactly, at most max. */
static int parse_ull(const char *s, size_t n, unsigned long long max, unsigned long long *out) {
    unsigned long long v = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Copy [s, s+n) into a new string, decoding %XX escapes. *out is NULL on a bad escape or
 * an embedded NUL; returns ENS_ERR_NOMEM only when allocation fails. */
static ens_err_t dup_decoded(const char *s, size_t n, char **out) {
    char *d = malloc(n + 1);
    size_t j = 0;
    *out = NULL;
    if (!d)
        return ENS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                return ENS_OK;
            }
            d[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    *out = d;
    return ENS_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static void redis_free_fields(ens_redis_t *r) {
    free(r->host);
    free(r->path);
    free(r->user);
    if (r->pass) {
        /* do not leave the password in freed heap memory */
        volatile char *p = r->pass;
        while (*p)
            *p++ = '\0';
    }
    free(r->pass);
}

/* ---------------------------------------------------------------------------------------- */
/* URL parsing                                                                              */

/* unix:///path[?db=N&user=U&password=P] */
static ens_err_t parse_unix_url(ens_redis_t *r, const char *rest, char *errstr, size_t esz) {
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0 || rest[0] != '/')
        return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                           "redis url: unix:// needs an absolute socket path (unix:///path)");
    if (dup_decoded(rest, plen, &r->path) != ENS_OK)
        return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
    if (!r->path)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: bad %%-escape in path");
    while (q && *q) {
        const char *p = q + 1;
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: query parameter without '=': %.*s", (int)n, p);
        size_t kn = (size_t)(eq - p), vn = n - kn - 1;
        const char *v = eq + 1;
        char **dst = NULL;
        if (kn == 2 && memcmp(p, "db", 2) == 0) {
            unsigned long long db;
            if (parse_ull(v, vn, INT_MAX, &db) != 0)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad database number '%.*s'", (int)vn, v);
            r->db = (int)db;
        } else if (kn == 4 && memcmp(p, "user", 4) == 0) {
            dst = &r->user;
        } else if (kn == 8 && memcmp(p, "password", 8) == 0) {
            dst = &r->pass;
        } else {
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: unknown query parameter '%.*s'", (int)kn, p);
        }
        if (dst) {
            free(*dst);
            if (dup_decoded(v, vn, dst) != ENS_OK)
                return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
            if (!*dst)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad %%-escape in '%.*s'", (int)kn, p);
        }
        q = end;
    }
    if (r->user && !r->pass)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: user without password");
    return ENS_OK;
}

/* redis://[[user]:password@]host[:port][/db] */
static ens_err_t parse_tcp_url(ens_redis_t *r, const char *rest, char *errstr, size_t esz) {
    size_t alen = strcspn(rest, "/?#");
    const char *auth_end = rest + alen;
    const char *at = NULL;
    for (const char *p = rest; p < auth_end; p++)
        if (*p == '@')
            at = p;
    const char *hp = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: user without password (use redis://user:pass@host "
                               "or redis://:pass@host)");
        if (colon > rest) {
            if (dup_decoded(rest, (size_t)(colon - rest), &r->user) != ENS_OK)
                return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
            if (!r->user)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad %%-escape in user");
        }
        if (dup_decoded(colon + 1, (size_t)(at - colon - 1), &r->pass) != ENS_OK)
            return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
        if (!r->pass)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: bad %%-escape in password");
        if (r->pass[0] == '\0')
            return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: empty password");
        hp = at + 1;
    }
    /* host, [v6], then :port */
    const char *host = hp, *host_end, *port = NULL;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(auth_end - hp));
        if (!rb)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: unterminated '[' host");
        host = hp + 1;
        host_end = rb;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: junk after ']' in host");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
        host_end = colon ? colon : auth_end;
        if (colon)
            port = colon + 1;
    }
    if (host_end == host)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: missing host");
    r->host = dup_n(host, (size_t)(host_end - host));
    if (!r->host)
        return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
    r->port = STORE_DEFAULT_PORT;
    if (port) {
        unsigned long long p;
        if (parse_ull(port, (size_t)(auth_end - port), 65535, &p) != 0 || p == 0)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: bad port '%.*s'",
                               (int)(auth_end - port), port);
        r->port = (int)p;
    }
    /* optional /db; no query or fragment */
    const char *tail = auth_end;
    if (*tail == '/') {
        tail++;
        size_t n = strcspn(tail, "?#");
        if (n > 0) {
            unsigned long long db;
            if (parse_ull(tail, n, INT_MAX, &db) != 0)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad database number '%.*s'", (int)n, tail);
            r->db = (int)db;
        }
        tail += n;
    }
    if (*tail != '\0')
        return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                           "redis url: unexpected '%s' (query parameters are not supported "
                           "for redis://)",
                           tail);
    return ENS_OK;
}

static ens_err_t parse_url(ens_redis_t *r, const char *url, char *errstr, size_t esz) {
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp_url(r, url + 8, errstr, esz);
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix_url(r, url + 7, errstr, esz);
    if (strncmp(url, "rediss://", 9) == 0)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                           "redis url: rediss:// (TLS) is not supported by this build "
                           "(hiredis 0.14)");
    char shown[64];
    ens_redis_url_redact(url, shown, sizeof shown);
    return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                       "redis url: scheme must be redis:// or unix:// in '%.40s'", shown);
}

/* Append n bytes of s to out[*len..size), always NUL-terminated. */
static void put_n(char *out, size_t size, size_t *len, const char *s, size_t n) {
    while (n-- > 0 && *len + 1 < size)
        out[(*len)++] = *s++;
    out[*len] = 0;
}

void ens_redis_url_redact(const char *url, char *out, size_t size) {
    if (!out || size == 0)
        return;
    size_t len = 0;
    out[0] = 0;
    if (!url)
        return;
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme) {
        const char *auth = scheme + 3;
        const char *auth_end = auth + strcspn(auth, "/?#"), *at = NULL;
        for (const char *q = auth; q < auth_end; q++)
            if (*q == '@')
                at = q;
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            const char *keep = colon ? colon + 1 : auth;
            put_n(out, size, &len, url, (size_t)(keep - url));
            put_n(out, size, &len, "***", 3);
            p = at;
        }
    } else if (strchr(url, '@')) { /* not a URL we know: nothing before the last '@' */
        const char *at = strrchr(url, '@');
        put_n(out, size, &len, "***", 3);
        p = at;
    }
    /* query parameters (unix:///path?password=...): the value of every password= */
    const char *search = strchr(p, '?');
    while (search) {
        const char *hit = strstr(search, "password=");
        if (!hit)
            break;
        if (hit[-1] != '?' && hit[-1] != '&') { /* e.g. "oldpassword=": not ours */
            search = hit + 1;
            continue;
        }
        hit += strlen("password=");
        put_n(out, size, &len, p, (size_t)(hit - p));
        put_n(out, size, &len, "***", 3);
        p = hit + strcspn(hit, "&#");
        search = p;
    }
    put_n(out, size, &len, p, strlen(p));
}

/* ---------------------------------------------------------------------------------------- */
/* connection                                                                               */

static void drop_conn(ens_redis_t *r) {
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
}

/* Is the hiredis error on c worth reconnecting for? */
static int conn_err_retriable(const redisContext *c) {
    return c->err != REDIS_ERR_OOM;
}

/* Send one setup command on a fresh context. ENS_ERR_IO: connection trouble (retriable);
 * ENS_ERR_REDIS: the server refused it (not retried). */
static ens_err_t setup_cmd(redisContext *c, const char *what, int argc, const char **argv,
                           char *errstr, size_t esz) {
    redisReply *reply = redisCommandArgv(c, argc, argv, NULL);
    if (!reply) {
        if (c->err == REDIS_ERR_OOM)
            return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis: out of memory");
        return ens_err_set(errstr, esz, ENS_ERR_IO, "redis: %s: %s", what, c->errstr);
    }
    ens_err_t err = ENS_OK;
    if (reply->type == REDIS_REPLY_ERROR)
        err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "redis: %s failed: %.*s", what,
                          (int)reply->len, reply->str);
    else if (reply->type != REDIS_REPLY_STATUS)
        err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "redis: %s: unexpected reply type %d",
                          what, reply->type);
    freeReplyObject(reply);
    return err;
}

/* One connection attempt: ENS_OK, ENS_ERR_IO (retriable), ENS_ERR_REDIS (server refused
 * AUTH/SELECT) or ENS_ERR_NOMEM. */
static ens_err_t connect_once(ens_redis_t *r, char *errstr, size_t esz) {
    drop_conn(r);
    struct timeval ctv = ms_to_tv(r->connect_timeout_ms);
    redisContext *c = r->path ? redisConnectUnixWithTimeout(r->path, ctv)
                              : redisConnectWithTimeout(r->host, r->port, ctv);
    if (!c)
        return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis: out of memory");
    ens_err_t err = ENS_OK;
    if (c->err) {
        if (r->path)
            err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: connect %s: %s", r->path,
                              c->errstr);
        else
            err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: connect %s:%d: %s", r->host,
                              r->port, c->errstr);
        goto fail;
    }
    /* always: hiredis keeps the connect timeout on the socket otherwise; 0 = none */
    if (redisSetTimeout(c, ms_to_tv(r->command_timeout_ms)) != REDIS_OK) {
        err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: set timeout: %s", c->errstr);
        goto fail;
    }
    if (!r->path && redisEnableKeepAlive(c) != REDIS_OK) {
        err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: keepalive: %s", c->errstr);
        goto fail;
    }
    if (r->pass) {
        const char *argv[3] = {"AUTH", r->user ? r->user : r->pass, r->pass};
        err = setup_cmd(c, "AUTH", r->user ? 3 : 2, argv, errstr, esz);
        if (err)
            goto fail;
    }
    if (r->db != 0) {
        char dbs[16];
        snprintf(dbs, sizeof dbs, "%d", r->db);
        const char *argv[2] = {"SELECT", dbs};
        err = setup_cmd(c, "SELECT", 2, argv, errstr, esz);
        if (err)
            goto fail;
    }
    r->c = c;
    r->generation++;
    return ENS_OK;
fail:
    redisFree(c);
    return err;
}

ens_err_t ens_redis_connect(const char *url, ens_redis_t **out, char *errstr, size_t errstr_size) {
    if (!out)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: out is NULL");
    *out = NULL;
    if (!url)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: url is NULL");
    ens_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "redis: out of memory");
    r->connect_timeout_ms = STORE_CONNECT_TIMEOUT_MS;
    r->command_timeout_ms = STORE_COMMAND_TIMEOUT_MS;
    r->retry_budget_ms = STORE_RETRY_BUDGET_MS;
    ens_err_t err = parse_url(r, url, errstr, errstr_size);
    if (!err) {
        err = connect_once(r, errstr, errstr_size);
        if (err == ENS_ERR_IO)
            err = ENS_ERR_REDIS; /* documented: unreachable server is ENS_ERR_REDIS */
    }
    if (err) {
        ens_redis_free(r);
        return err;
    }
    *out = r;
    return ENS_OK;
}

void ens_redis_free(ens_redis_t *r) {
    if (!r)
        return;
    drop_conn(r);
    redis_free_fields(r);
    free(r);
}

ens_err_t ens_redis_set_timeouts(ens_redis_t *r, long connect_ms, long command_ms,
                                 long retry_budget_ms) {
    if (!r || connect_ms <= 0 || command_ms < 0 || retry_budget_ms < 0)
        return ENS_ERR_INVALID;
    r->connect_timeout_ms = connect_ms;
    r->command_timeout_ms = command_ms;
    r->retry_budget_ms = retry_budget_ms;
    /* the current connection gets the new command timeout at once */
    if (r->c && !r->c->err &&
        redisSetTimeout(r->c, ms_to_tv(command_ms)) != REDIS_OK)
        drop_conn(r); /* the next call connects with the new settings */
    return ENS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* the one send/receive loop                                                                */

typedef int (*append_fn)(redisContext *c, void *ctx);

/* Append the commands (append(c, ctx)), read n replies. On a lost connection reconnect with
 * exponential backoff inside the retry budget and send everything again (retry = 1), or
 * return ENS_ERR_IO at once (retry = 0). Error replies are replies: never retried.
 * replies[0..n) are all set on ENS_OK and all NULL otherwise. */
static ens_err_t run_cmds(ens_redis_t *r, int n, append_fn append, void *ctx,
                          redisReply **replies, int retry, char *errstr, size_t esz) {
    long long deadline = now_ms() + r->retry_budget_ms;
    long backoff = STORE_BACKOFF_FIRST_MS;
    int failures = 0;
    char last[256] = "";
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    for (;;) {
        if (!r->c || r->c->err) {
            ens_err_t err = connect_once(r, last, sizeof last);
            if (err && err != ENS_ERR_IO)
                return ens_err_set(errstr, esz, err, "%s", last);
        }
        if (r->c) {
            redisContext *c = r->c;
            if (append(c, ctx) != REDIS_OK) {
                if (!conn_err_retriable(c)) {
                    drop_conn(r);
                    return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis: out of memory");
                }
                snprintf(last, sizeof last, "redis: send: %s", c->errstr);
            } else {
                int i;
                for (i = 0; i < n; i++) {
                    void *rep = NULL;
                    if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
                        if (rep)
                            freeReplyObject(rep);
                        break;
                    }
                    replies[i] = rep;
                }
                if (i == n)
                    return ENS_OK;
                for (int j = 0; j < i; j++) {
                    freeReplyObject(replies[j]);
                    replies[j] = NULL;
                }
                if (c->err && !conn_err_retriable(c)) {
                    drop_conn(r);
                    return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis: out of memory");
                }
                snprintf(last, sizeof last, "redis: %s%s",
                         c->err ? c->errstr : "connection lost",
                         c->err == REDIS_ERR_IO && strstr(c->errstr, "temporarily unavailable")
                             ? " (command timeout)"
                             : "");
            }
            drop_conn(r);
            if (!retry)
                return ens_err_set(errstr, esz, ENS_ERR_IO, "%s", last);
        }
        long long left = deadline - now_ms();
        if (left <= 0)
            return ens_err_set(errstr, esz, ENS_ERR_REDIS,
                               "redis: giving up after %d attempt(s) in %ld ms: %s",
                               failures + 1, r->retry_budget_ms, last);
        /* the first reconnect is immediate: most losses are one dropped connection */
        if (failures++ > 0) {
            sleep_ms(backoff < left ? backoff : (long)left);
            backoff = backoff * 2 > STORE_BACKOFF_MAX_MS ? STORE_BACKOFF_MAX_MS : backoff * 2;
        }
    }
}

struct formatted {
    const char *cmd;
    size_t len;
};

static int append_formatted(redisContext *c, void *ctx) {
    const struct formatted *f = ctx;
    return redisAppendFormattedCommand(c, f->cmd, f->len);
}

redisReply *ens_redis_vcommand(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt,
                               va_list ap) {
    if (!r || !fmt) {
        ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: NULL handle or format");
        return NULL;
    }
    char *cmd = NULL;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len < 0 || !cmd) {
        ens_err_set(errstr, errstr_size, len == -1 ? ENS_ERR_NOMEM : ENS_ERR_INVALID,
                    "redis: cannot format command '%.60s'", fmt);
        return NULL;
    }
    struct formatted f = {cmd, (size_t)len};
    redisReply *reply = NULL;
    ens_err_t err = run_cmds(r, 1, append_formatted, &f, &reply, 1, errstr, errstr_size);
    redisFreeCommand(cmd);
    return err ? NULL : reply;
}

redisReply *ens_redis_command(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt,
                              ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = ens_redis_vcommand(r, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return reply;
}

ens_err_t ens_redis_exec(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = ens_redis_vcommand(r, errstr, errstr_size, fmt, ap);
    va_end(ap);
    if (!reply)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (reply->type == REDIS_REPLY_ERROR)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "redis: %.*s", (int)reply->len,
                          reply->str);
    freeReplyObject(reply);
    return err;
}

/* A list of argv commands sharing one argument array. */
typedef struct {
    int n, cap;
    int *argc;
    size_t *first;
    const char **argv;
    size_t *argvlen;
    size_t nargs, capargs;
    int oom;
} cmdlist_t;

static void cmdlist_free(cmdlist_t *cl) {
    free(cl->argc);
    free(cl->first);
    free(cl->argv);
    free(cl->argvlen);
    memset(cl, 0, sizeof *cl);
}

static void cmdlist_begin(cmdlist_t *cl) {
    if (cl->oom)
        return;
    if (cl->n == cl->cap) {
        int cap = cl->cap ? cl->cap * 2 : 16;
        int *a = realloc(cl->argc, (size_t)cap * sizeof *a);
        if (a)
            cl->argc = a;
        size_t *f = realloc(cl->first, (size_t)cap * sizeof *f);
        if (f)
            cl->first = f;
        if (!a || !f) {
            cl->oom = 1;
            return;
        }
        cl->cap = cap;
    }
    cl->argc[cl->n] = 0;
    cl->first[cl->n] = cl->nargs;
    cl->n++;
}

/* ptr must stay valid until the list is sent */
static void cmdlist_arg(cmdlist_t *cl, const void *ptr, size_t len) {
    if (cl->oom)
        return;
    if (cl->nargs == cl->capargs) {
        size_t cap = cl->capargs ? cl->capargs * 2 : 64;
        const char **a = realloc(cl->argv, cap * sizeof *a);
        if (a)
            cl->argv = a;
        size_t *l = realloc(cl->argvlen, cap * sizeof *l);
        if (l)
            cl->argvlen = l;
        if (!a || !l) {
            cl->oom = 1;
            return;
        }
        cl->capargs = cap;
    }
    cl->argv[cl->nargs] = ptr;
    cl->argvlen[cl->nargs] = len;
    cl->nargs++;
    cl->argc[cl->n - 1]++;
}

static void cmdlist_str(cmdlist_t *cl, const char *s) {
    cmdlist_arg(cl, s, strlen(s));
}

static int append_cmdlist(redisContext *c, void *ctx) {
    const cmdlist_t *cl = ctx;
    for (int i = 0; i < cl->n; i++)
        if (redisAppendCommandArgv(c, cl->argc[i], cl->argv + cl->first[i],
                                   cl->argvlen + cl->first[i]) != REDIS_OK)
            return REDIS_ERR;
    return REDIS_OK;
}

redisReply *ens_redis_commandv(ens_redis_t *r, int argc, const char **argv,
                               const size_t *argvlen, char *errstr, size_t errstr_size) {
    if (!r || argc <= 0 || !argv) {
        ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: bad command vector");
        return NULL;
    }
    for (int i = 0; i < argc; i++)
        if (!argv[i] && !(argvlen && argvlen[i] == 0)) {
            ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: argv[%d] is NULL", i);
            return NULL;
        }
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    if (!lens) {
        ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "redis: out of memory");
        return NULL;
    }
    for (int i = 0; i < argc; i++)
        lens[i] = argvlen ? argvlen[i] : strlen(argv[i]);
    int one_argc = argc;
    size_t zero = 0;
    cmdlist_t cl = {.n = 1, .cap = 1, .argc = &one_argc, .first = &zero, .argv = argv,
                    .argvlen = lens, .nargs = (size_t)argc, .capargs = (size_t)argc};
    redisReply *reply = NULL;
    ens_err_t err = run_cmds(r, 1, append_cmdlist, &cl, &reply, 1, errstr, errstr_size);
    free(lens);
    return err ? NULL : reply;
}

ens_err_t ens_redis_pipeline(ens_redis_t *r, int n, const int *cmd_argc, const char ***cmds,
                             redisReply **replies, char *errstr, size_t errstr_size) {
    if (!r || n < 0 || (n > 0 && (!cmd_argc || !cmds || !replies)))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: bad pipeline");
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    if (n == 0)
        return ENS_OK;
    cmdlist_t cl = {0};
    for (int i = 0; i < n; i++) {
        if (cmd_argc[i] <= 0 || !cmds[i]) {
            cmdlist_free(&cl);
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "redis: pipeline command %d is empty", i);
        }
        cmdlist_begin(&cl);
        for (int k = 0; k < cmd_argc[i]; k++) {
            if (!cmds[i][k]) {
                cmdlist_free(&cl);
                return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                   "redis: pipeline command %d argument %d is NULL", i, k);
            }
            cmdlist_str(&cl, cmds[i][k]);
        }
    }
    ens_err_t err = cl.oom ? ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM,
                                         "redis: out of memory")
                           : run_cmds(r, n, append_cmdlist, &cl, replies, 1, errstr,
                                      errstr_size);
    cmdlist_free(&cl);
    return err;
}

void ens_redis_reply_free(redisReply *reply) {
    if (reply)
        freeReplyObject(reply);
}

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
    char key[BLOB_MAX_KEY];
    if (!ens_key(key, sizeof key, study_id, "seen:%s:%s", scope, event_id))
        return ENS_ERR_INVALID;
    redisReply *reply;
    /* ttl 0: remember forever */
    if (ttl_seconds > 0)
        reply = ens_redis_command(r, NULL, 0, "SET %s 1 NX EX %d", key, ttl_seconds);
    else
        reply = ens_redis_command(r, NULL, 0, "SET %s 1 NX", key);
    if (!reply)
        return ENS_ERR_REDIS;
    int rc;
    if (reply->type == REDIS_REPLY_STATUS && reply->len == 2 && memcmp(reply->str, "OK", 2) == 0)
        rc = 1;
    else if (reply->type == REDIS_REPLY_NIL)
        rc = 0;
    else
        rc = ENS_ERR_REDIS;
    freeReplyObject(reply);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* chunked blobs                                                                            */

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

/* Parse a decimal field of an HMGET reply element. 1 = present and valid, 0 = nil,
 * -1 = present but not a number within max. */
static int reply_ull(const redisReply *e, unsigned long long max, unsigned long long *out) {
    if (!e || e->type == REDIS_REPLY_NIL)
        return 0;
    if (e->type != REDIS_REPLY_STRING)
        return -1;
    return parse_ull(e->str, e->len, max, out) == 0 ? 1 : -1;
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
        redisReply *pre[2];
        err = ens_redis_pipeline(r, 2, pargc, pcmds, pre, errstr, esz);
        if (err)
            return err;
        unsigned long gen = r->generation;
        unsigned long long old_chunks = 0;
        if (pre[0]->type != REDIS_REPLY_STATUS) {
            err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: WATCH failed: %.*s", key,
                              pre[0]->type == REDIS_REPLY_ERROR ? (int)pre[0]->len : 0,
                              pre[0]->type == REDIS_REPLY_ERROR ? pre[0]->str : "");
        } else if (pre[1]->type == REDIS_REPLY_ERROR) {
            err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: HGET meta: %.*s", key,
                              (int)pre[1]->len, pre[1]->str);
        } else if (reply_ull(pre[1], BLOB_MAX_CHUNKS, &old_chunks) < 0) {
            old_chunks = 0; /* damaged meta: nothing reliable to clean up */
        }
        freeReplyObject(pre[0]);
        freeReplyObject(pre[1]);
        if (err) {
            redisReply *u = ens_redis_command(r, NULL, 0, "UNWATCH");
            ens_redis_reply_free(u);
            return err;
        }
        /* 2. MULTI ... EXEC */
        unsigned long long maxk = nchunks > old_chunks ? nchunks : old_chunks;
        size_t slot = CHUNK_KEY_SLOT(klen);
        char *keys = maxk ? malloc((size_t)maxk * slot) : NULL;
        cmdlist_t cl = {0};
        if (maxk && !keys) {
            err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        } else {
            for (unsigned long long i = 0; i < maxk; i++)
                snprintf(keys + i * slot, slot, "%s:c:%llu", key, i);
            cmdlist_begin(&cl);
            cmdlist_str(&cl, "MULTI");
            cmdlist_begin(&cl);
            cmdlist_str(&cl, "DEL");
            cmdlist_str(&cl, meta);
            for (unsigned long long i = nchunks; i < old_chunks; i++)
                cmdlist_str(&cl, keys + i * slot);
            if (write) {
                for (unsigned long long i = 0; i < nchunks; i++) {
                    size_t off = (size_t)i * csize;
                    size_t n = len - off < csize ? len - off : csize;
                    cmdlist_begin(&cl);
                    cmdlist_str(&cl, "SET");
                    cmdlist_str(&cl, keys + i * slot);
                    cmdlist_arg(&cl, (const char *)data + off, n);
                }
                cmdlist_begin(&cl);
                cmdlist_str(&cl, "HSET");
                cmdlist_str(&cl, meta);
                cmdlist_str(&cl, "len");
                cmdlist_str(&cl, lens);
                cmdlist_str(&cl, "chunks");
                cmdlist_str(&cl, chunks_s);
                cmdlist_str(&cl, "crc32");
                cmdlist_str(&cl, crcs);
                cmdlist_str(&cl, "csize");
                cmdlist_str(&cl, csizes);
            }
            cmdlist_begin(&cl);
            cmdlist_str(&cl, "EXEC");
            if (cl.oom)
                err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        }
        if (err) {
            cmdlist_free(&cl);
            free(keys);
            redisReply *u = ens_redis_command(r, NULL, 0, "UNWATCH");
            ens_redis_reply_free(u);
            return err;
        }
        redisReply **rep = calloc((size_t)cl.n, sizeof *rep);
        if (!rep) {
            cmdlist_free(&cl);
            free(keys);
            redisReply *u = ens_redis_command(r, NULL, 0, "UNWATCH");
            ens_redis_reply_free(u);
            return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        }
        /* no transparent resend: a new connection would have lost the WATCH */
        err = ENS_OK;
        if (r->generation != gen || !r->c) {
            err = ENS_ERR_IO;
            snprintf(last, sizeof last, "connection changed after WATCH");
        } else {
            err = run_cmds(r, cl.n, append_cmdlist, &cl, rep, 0, last, sizeof last);
        }
        int nrep = cl.n;
        cmdlist_free(&cl);
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
        redisReply *exec = rep[nrep - 1];
        int queued_ok = rep[0]->type == REDIS_REPLY_STATUS;
        for (int i = 1; i < nrep - 1 && queued_ok; i++)
            if (rep[i]->type != REDIS_REPLY_STATUS) {
                queued_ok = 0;
                snprintf(last, sizeof last, "command %d not queued: %.*s", i,
                         rep[i]->type == REDIS_REPLY_ERROR ? (int)rep[i]->len : 0,
                         rep[i]->type == REDIS_REPLY_ERROR ? rep[i]->str : "");
            }
        int done = 0;
        if (!queued_ok) {
            err = ENS_ERR_REDIS;
        } else if (exec->type == REDIS_REPLY_NIL) {
            snprintf(last, sizeof last, "concurrent writer (WATCH aborted EXEC)");
        } else if (exec->type == REDIS_REPLY_ARRAY && exec->elements == (size_t)(nrep - 2)) {
            done = 1;
            for (size_t i = 0; i < exec->elements; i++)
                if (!exec->element[i] || exec->element[i]->type == REDIS_REPLY_ERROR) {
                    err = ENS_ERR_REDIS;
                    snprintf(last, sizeof last, "transaction command %zu failed: %.*s", i,
                             exec->element[i] ? (int)exec->element[i]->len : 0,
                             exec->element[i] ? exec->element[i]->str : "");
                    break;
                }
        } else {
            err = ENS_ERR_REDIS;
            snprintf(last, sizeof last, "EXEC failed: %.*s",
                     exec->type == REDIS_REPLY_ERROR ? (int)exec->len : 0,
                     exec->type == REDIS_REPLY_ERROR ? exec->str : "unexpected reply");
        }
        for (int i = 0; i < nrep; i++)
            freeReplyObject(rep[i]);
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
    redisReply *rep = ens_redis_commandv(r, 6, argv, NULL, errstr, esz);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == REDIS_REPLY_ERROR) {
        err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: HMGET meta: %.*s", key,
                          (int)rep->len, rep->str);
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4) {
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
    freeReplyObject(rep);
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
    redisReply *rep[BLOB_GET_GROUP];
    ens_err_t err = ENS_OK;
    size_t off = 0;
    if (!buf || !keys) {
        err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory (%llu bytes)",
                          key, m->len);
        goto out;
    }
    for (unsigned long long first = 0; first < m->chunks && !err; first += BLOB_GET_GROUP) {
        int n = (int)(m->chunks - first < BLOB_GET_GROUP ? m->chunks - first : BLOB_GET_GROUP);
        cmdlist_t cl = {0};
        for (int i = 0; i < n; i++) {
            snprintf(keys + (size_t)i * slot, slot, "%s:c:%llu", key, first + (unsigned)i);
            cmdlist_begin(&cl);
            cmdlist_str(&cl, "GET");
            cmdlist_str(&cl, keys + (size_t)i * slot);
        }
        if (cl.oom)
            err = ens_err_set(errstr, esz, ENS_ERR_NOMEM, "blob %s: out of memory", key);
        else
            err = run_cmds(r, n, append_cmdlist, &cl, rep, 1, errstr, esz);
        cmdlist_free(&cl);
        if (err)
            break;
        for (int i = 0; i < n; i++) {
            const redisReply *e = rep[i];
            unsigned long long idx = first + (unsigned)i;
            if (err) {
                /* already failed: just free the rest */
            } else if (e->type == REDIS_REPLY_NIL) {
                err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                                  "blob %s: chunk %llu of %llu is missing", key, idx, m->chunks);
            } else if (e->type == REDIS_REPLY_ERROR) {
                err = ens_err_set(errstr, esz, ENS_ERR_REDIS, "blob %s: GET chunk %llu: %.*s",
                                  key, idx, (int)e->len, e->str);
            } else if (e->type != REDIS_REPLY_STRING || e->len == 0 ||
                       e->len > m->len - off ||
                       (m->csize && idx + 1 < m->chunks && e->len != m->csize)) {
                err = ens_err_set(errstr, esz, ENS_ERR_CORRUPT,
                                  "blob %s: chunk %llu has %zu bytes, which does not fit "
                                  "len=%llu chunks=%llu csize=%llu",
                                  key, idx, e->type == REDIS_REPLY_STRING ? e->len : 0,
                                  m->len, m->chunks, m->csize);
            } else {
                memcpy(buf + off, e->str, e->len);
                off += e->len;
            }
            freeReplyObject(rep[i]);
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
