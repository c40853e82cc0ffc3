/* redis.c - one Redis connection: AUTH/SELECT, reconnect with backoff, commands,
 * pipelines and command batches; hiredis replies are copied into ens_redis_reply_t here, so
 * this is the only file that includes hiredis. */
#include "ensflow/redis.h"
#include "redis_internal.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_CONNECT_TIMEOUT_MS 2000
#define STORE_COMMAND_TIMEOUT_MS 30000
#define STORE_RETRY_BUDGET_MS 10000
#define STORE_BACKOFF_FIRST_MS 50
#define STORE_BACKOFF_MAX_MS 2000


struct ens_redis_s {
    redisContext *c;
    ens_redis_url_t url;
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
    redisContext *c = r->url.path ? redisConnectUnixWithTimeout(r->url.path, ctv)
                              : redisConnectWithTimeout(r->url.host, r->url.port, ctv);
    if (!c)
        return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis: out of memory");
    ens_err_t err = ENS_OK;
    if (c->err) {
        if (r->url.path)
            err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: connect %s: %s", r->url.path,
                              c->errstr);
        else
            err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: connect %s:%d: %s", r->url.host,
                              r->url.port, c->errstr);
        goto fail;
    }
    /* always: hiredis keeps the connect timeout on the socket otherwise; 0 = none */
    if (redisSetTimeout(c, ms_to_tv(r->command_timeout_ms)) != REDIS_OK) {
        err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: set timeout: %s", c->errstr);
        goto fail;
    }
    if (!r->url.path && redisEnableKeepAlive(c) != REDIS_OK) {
        err = ens_err_set(errstr, esz, ENS_ERR_IO, "redis: keepalive: %s", c->errstr);
        goto fail;
    }
    if (r->url.pass) {
        const char *argv[3] = {"AUTH", r->url.user ? r->url.user : r->url.pass, r->url.pass};
        err = setup_cmd(c, "AUTH", r->url.user ? 3 : 2, argv, errstr, esz);
        if (err)
            goto fail;
    }
    if (r->url.db != 0) {
        char dbs[16];
        snprintf(dbs, sizeof dbs, "%d", r->url.db);
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
    ens_err_t err = ens_redis_url_parse(&r->url, url, errstr, errstr_size);
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
    ens_redis_url_clear(&r->url);
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
/* replies                                                                                  */

/* A deep copy of a hiredis reply; NULL when out of memory. */
static ens_redis_reply_t *reply_copy(const redisReply *h) {
    ens_redis_reply_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->type = h->type;
    e->integer = h->integer;
    if (h->type == REDIS_REPLY_STRING || h->type == REDIS_REPLY_STATUS ||
        h->type == REDIS_REPLY_ERROR) {
        e->str = malloc(h->len + 1);
        if (!e->str) {
            free(e);
            return NULL;
        }
        if (h->len)
            memcpy(e->str, h->str, h->len);
        e->str[h->len] = '\0';
        e->len = h->len;
    } else if (h->type == REDIS_REPLY_ARRAY && h->elements > 0) {
        e->element = calloc(h->elements, sizeof *e->element);
        if (!e->element) {
            free(e);
            return NULL;
        }
        e->elements = h->elements;
        for (size_t i = 0; i < h->elements; i++)
            if (!(e->element[i] = reply_copy(h->element[i]))) {
                ens_redis_reply_free(e);
                return NULL;
            }
    }
    return e;
}

void ens_redis_reply_free(ens_redis_reply_t *reply) {
    if (!reply)
        return;
    for (size_t i = 0; i < reply->elements; i++)
        ens_redis_reply_free(reply->element[i]);
    free(reply->element);
    free(reply->str);
    free(reply);
}

/* ---------------------------------------------------------------------------------------- */
/* the one send/receive loop                                                                */

typedef int (*append_fn)(redisContext *c, void *ctx);

/* Append the commands (append(c, ctx)), read n replies. On a lost connection reconnect with
 * exponential backoff inside the retry budget and send everything again (retry = 1), or
 * return ENS_ERR_IO at once (retry = 0). Error replies are replies: never retried.
 * replies[0..n) are all set on ENS_OK and all NULL otherwise. */
static ens_err_t run_cmds(ens_redis_t *r, int n, append_fn append, void *ctx,
                          ens_redis_reply_t **replies, int retry, char *errstr, size_t esz) {
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
                int i, oom = 0;
                for (i = 0; i < n; i++) {
                    void *rep = NULL;
                    if (redisGetReply(c, &rep) != REDIS_OK || !rep) {
                        if (rep)
                            freeReplyObject(rep);
                        break;
                    }
                    /* copy even after a failed copy, to keep the stream in step */
                    replies[i] = oom ? NULL : reply_copy(rep);
                    oom |= !replies[i];
                    freeReplyObject(rep);
                }
                if (i == n && !oom)
                    return ENS_OK;
                for (int j = 0; j < i; j++) {
                    ens_redis_reply_free(replies[j]);
                    replies[j] = NULL;
                }
                if (i == n)
                    return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis: out of memory");
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

ens_redis_reply_t *ens_redis_vcommand(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt,
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
    ens_redis_reply_t *reply = NULL;
    ens_err_t err = run_cmds(r, 1, append_formatted, &f, &reply, 1, errstr, errstr_size);
    redisFreeCommand(cmd);
    return err ? NULL : reply;
}

ens_redis_reply_t *ens_redis_command(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt,
                              ...) {
    va_list ap;
    va_start(ap, fmt);
    ens_redis_reply_t *reply = ens_redis_vcommand(r, errstr, errstr_size, fmt, ap);
    va_end(ap);
    return reply;
}

ens_err_t ens_redis_exec(ens_redis_t *r, char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ens_redis_reply_t *reply = ens_redis_vcommand(r, errstr, errstr_size, fmt, ap);
    va_end(ap);
    if (!reply)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (reply->type == ENS_REPLY_ERROR)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "redis: %.*s", (int)reply->len,
                          reply->str);
    ens_redis_reply_free(reply);
    return err;
}

void ens_redis_batch_free(ens_redis_batch_t *cl) {
    free(cl->argc);
    free(cl->first);
    free(cl->argv);
    free(cl->argvlen);
    memset(cl, 0, sizeof *cl);
}

void ens_redis_batch_begin(ens_redis_batch_t *cl) {
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

void ens_redis_batch_arg(ens_redis_batch_t *cl, const void *ptr, size_t len) {
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

void ens_redis_batch_str(ens_redis_batch_t *cl, const char *s) {
    ens_redis_batch_arg(cl, s, strlen(s));
}

static int append_cmdlist(redisContext *c, void *ctx) {
    const ens_redis_batch_t *cl = ctx;
    for (int i = 0; i < cl->n; i++)
        if (redisAppendCommandArgv(c, cl->argc[i], cl->argv + cl->first[i],
                                   cl->argvlen + cl->first[i]) != REDIS_OK)
            return REDIS_ERR;
    return REDIS_OK;
}

ens_redis_reply_t *ens_redis_commandv(ens_redis_t *r, int argc, const char **argv,
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
    ens_redis_batch_t cl = {.n = 1, .cap = 1, .argc = &one_argc, .first = &zero, .argv = argv,
                    .argvlen = lens, .nargs = (size_t)argc, .capargs = (size_t)argc};
    ens_redis_reply_t *reply = NULL;
    ens_err_t err = run_cmds(r, 1, append_cmdlist, &cl, &reply, 1, errstr, errstr_size);
    free(lens);
    return err ? NULL : reply;
}

ens_err_t ens_redis_pipeline(ens_redis_t *r, int n, const int *cmd_argc, const char ***cmds,
                             ens_redis_reply_t **replies, char *errstr, size_t errstr_size) {
    if (!r || n < 0 || (n > 0 && (!cmd_argc || !cmds || !replies)))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: bad pipeline");
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    if (n == 0)
        return ENS_OK;
    ens_redis_batch_t cl = {0};
    for (int i = 0; i < n; i++) {
        if (cmd_argc[i] <= 0 || !cmds[i]) {
            ens_redis_batch_free(&cl);
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                               "redis: pipeline command %d is empty", i);
        }
        ens_redis_batch_begin(&cl);
        for (int k = 0; k < cmd_argc[i]; k++) {
            if (!cmds[i][k]) {
                ens_redis_batch_free(&cl);
                return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                   "redis: pipeline command %d argument %d is NULL", i, k);
            }
            ens_redis_batch_str(&cl, cmds[i][k]);
        }
    }
    ens_err_t err = cl.oom ? ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM,
                                         "redis: out of memory")
                           : run_cmds(r, n, append_cmdlist, &cl, replies, 1, errstr,
                                      errstr_size);
    ens_redis_batch_free(&cl);
    return err;
}



ens_err_t ens_redis_batch_run(ens_redis_t *r, const ens_redis_batch_t *b,
                              ens_redis_reply_t **replies, int retry, char *errstr,
                              size_t errstr_size) {
    if (!r || !b || b->n <= 0 || !replies)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "redis: empty batch");
    if (b->oom)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "redis: out of memory");
    return run_cmds(r, b->n, append_cmdlist, (void *)b, replies, retry, errstr, errstr_size);
}

unsigned long ens_redis_generation(const ens_redis_t *r) {
    return r->generation;
}

int ens_redis_connected(const ens_redis_t *r) {
    return r->c != NULL;
}
