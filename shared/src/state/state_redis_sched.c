/* state_redis_sched.c - the scheduler's and the jobs' state in Redis (state_sched.h): the ASHA
 * steps as Lua scripts, and the study, job and lease records. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/state_sched.h"
#include "state_internal.h"
#include "state_sched_keys.h"

/* The key of a study's thing into buf, or ENS_ERR_INVALID from the calling function. */
#define KEY(buf, study, ...)                                                                    \
    do {                                                                                        \
        if (!ens_key(buf, sizeof buf, study, __VA_ARGS__))                                     \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,                           \
                               "study id \"%s\" makes no key", study);                          \
    } while (0)

#define R(ctx) ens_state_redis_conn(ctx)

/* ---- the ASHA steps ----------------------------------------------------------------------
 *
 * The scripts build keys from the prefix "ens:{s}:" (ARGV[1]): every one shares the study's
 * hash slot, so they run on a Redis Cluster node as they do on one server. They spell the
 * names of state_sched_keys.h that they touch: asha (decisions configs epochs_issued version
 * entered:<b>:<k> done:<b>:<k>), rung:<b>:<k>, cand:<b>:<k>, inflight, outbox, decisions,
 * trial:<t> (config bracket status rung target_epochs val_accuracy epochs_done model_id error
 * r<k>_acc r<k>_model r<k>_error), trials:done, trials:failed, models.
 *
 * view(p, m, smax) is the state a decision needs, flat: decisions, configs, epochs_issued,
 * version, then for each bracket b = 0..smax and rung k = 0..m-b: n, done, entered, rank of
 * the best candidate (-1: none), candidate. smax < 0 gives the four counters only. */
#define VIEW_LUA                                                                               \
    "local function view(p, m, smax)\n"                                                        \
    "  local h = redis.call('HGETALL', p .. 'asha')\n"                                         \
    "  local f = {}\n"                                                                         \
    "  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end\n"                                          \
    "  local out = {f['decisions'] or '0', f['configs'] or '0', f['epochs_issued'] or '0',\n"  \
    "               f['version'] or '0'}\n"                                                    \
    "  for b = 0, smax do\n"                                                                   \
    "    for k = 0, m - b do\n"                                                                \
    "      local rk = p .. 'rung:' .. b .. ':' .. k\n"                                         \
    "      local c = redis.call('ZREVRANGE', p .. 'cand:' .. b .. ':' .. k, 0, 0)\n"           \
    "      local rank, cand = -1, ''\n"                                                        \
    "      if c[1] then\n"                                                                     \
    "        cand = c[1]\n"                                                                    \
    "        rank = redis.call('ZREVRANK', rk, cand) or -1\n"                                  \
    "      end\n"                                                                              \
    "      out[#out + 1] = redis.call('ZCARD', rk)\n"                                          \
    "      out[#out + 1] = tonumber(f['done:' .. b .. ':' .. k] or '0')\n"                     \
    "      out[#out + 1] = tonumber(f['entered:' .. b .. ':' .. k] or '0')\n"                  \
    "      out[#out + 1] = rank\n"                                                             \
    "      out[#out + 1] = cand\n"                                                             \
    "    end\n"                                                                                \
    "  end\n"                                                                                  \
    "  return out\n"                                                                           \
    "end\n"                                                                                    \
    "local function answer(status, v)\n"                                                       \
    "  table.insert(v, 1, status)\n"                                                           \
    "  return v\n"                                                                             \
    "end\n"

/* ARGV: prefix m smax */
static const char view_lua[] = VIEW_LUA
    "return view(ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))\n";

/* ARGV: prefix seq action trial b k from to config m smax base_version ('' = unchecked) */
static const char commit_lua[] = VIEW_LUA
    "local p = ARGV[1]\n"
    "local asha = p .. 'asha'\n"
    "local m, smax = tonumber(ARGV[10]), tonumber(ARGV[11])\n"
    "local st = redis.call('HMGET', asha, 'decisions', 'version')\n"
    "local n, ver = tonumber(st[1] or '0'), tonumber(st[2] or '0')\n"
    "if n ~= tonumber(ARGV[2]) or (ARGV[12] ~= '' and ver ~= tonumber(ARGV[12])) then\n"
    "  return answer(0, view(p, m, smax))\n"
    "end\n"
    "local t, b, k = ARGV[4], ARGV[5], ARGV[6]\n"
    "if ARGV[3] == 'promote' then\n"
    "  if redis.call('ZREM', p .. 'cand:' .. b .. ':' .. (tonumber(k) - 1), t) == 0 then\n"
    "    return redis.error_reply('ERR promoted trial ' .. t .. ' is not a candidate')\n"
    "  end\n"
    "else\n"
    "  redis.call('HINCRBY', asha, 'configs', 1)\n"
    "  redis.call('HSET', p .. 'trial:' .. t, 'config', ARGV[9], 'bracket', b)\n"
    "end\n"
    "redis.call('HSET', asha, 'decisions', n + 1)\n"
    "redis.call('HINCRBY', asha, 'version', 1)\n"
    "redis.call('HINCRBY', asha, 'entered:' .. b .. ':' .. k, 1)\n"
    "redis.call('HINCRBYFLOAT', asha, 'epochs_issued', tonumber(ARGV[8]) - tonumber(ARGV[7]))\n"
    "redis.call('HSET', p .. 'inflight', t, ARGV[2] .. ' ' .. b .. ' ' .. k .. ' ' .. ARGV[7] ..\n"
    "           ' ' .. ARGV[8])\n"
    "redis.call('HSET', p .. 'outbox', ARGV[2], t)\n"
    "redis.call('HSET', p .. 'decisions', ARGV[2], ARGV[3] .. ' ' .. t .. ' ' .. b .. ' ' .. k ..\n"
    "           ' ' .. ARGV[7] .. ' ' .. ARGV[8])\n"
    "redis.call('HSET', p .. 'trial:' .. t, 'status', 'queued', 'rung', k, 'target_epochs',\n"
    "           ARGV[8])\n"
    "return answer(1, view(p, m, smax))\n";

/* ARGV: prefix trial ok score epochs_done model error m smax */
static const char result_lua[] = VIEW_LUA
    "local p, t = ARGV[1], ARGV[2]\n"
    "local m, smax = tonumber(ARGV[8]), tonumber(ARGV[9])\n"
    "local job = redis.call('HGET', p .. 'inflight', t)\n"
    "if not job then return answer(0, view(p, m, smax)) end\n"
    "local seq, b, k = string.match(job, '^(%S+) (%S+) (%S+) ')\n"
    "redis.call('HDEL', p .. 'inflight', t)\n"
    "redis.call('HINCRBY', p .. 'asha', 'done:' .. b .. ':' .. k, 1)\n"
    "redis.call('HINCRBY', p .. 'asha', 'version', 1)\n"
    "local th = p .. 'trial:' .. t\n"
    "if ARGV[3] == '1' then\n"
    "  redis.call('ZADD', p .. 'rung:' .. b .. ':' .. k, ARGV[4], t)\n"
    "  if tonumber(b) + tonumber(k) < m then\n"
    "    redis.call('ZADD', p .. 'cand:' .. b .. ':' .. k, ARGV[4], t)\n"
    "  end\n"
    "  redis.call('HSET', th, 'status', 'done', 'val_accuracy', ARGV[4], 'epochs_done', ARGV[5],\n"
    "             'model_id', ARGV[6], 'r' .. k .. '_acc', ARGV[4], 'r' .. k .. '_model', ARGV[6])\n"
    "  redis.call('SADD', p .. 'trials:done', t)\n"
    "  redis.call('SADD', p .. 'models', ARGV[6])\n"
    "else\n"
    "  redis.call('HSET', th, 'status', 'failed', 'error', ARGV[7], 'r' .. k .. '_error', ARGV[7])\n"
    "  redis.call('SADD', p .. 'trials:failed', t)\n"
    "end\n"
    "return answer(1, view(p, m, smax))\n";

enum { S_VIEW, S_COMMIT, S_RESULT, S_COUNT };

/* SHA1 of each script as SCRIPT LOAD answered (the same on every server; loaded again after
 * NOSCRIPT, e.g. a restarted server or SCRIPT FLUSH). Services are single-threaded. */
static struct {
    const char *src;
    char sha[48];
} scripts[S_COUNT] = {{view_lua, ""}, {commit_lua, ""}, {result_lua, ""}};
static ens_err_t script_load(ens_redis_t *r, int s, char *errstr, size_t size) {
    const char *argv[] = {"SCRIPT", "LOAD", scripts[s].src};
    ens_redis_reply_t *rep = ens_redis_commandv(r, 3, argv, NULL, errstr, size);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == ENS_REPLY_STRING && rep->len > 0 && rep->len < sizeof scripts[s].sha)
        memcpy(scripts[s].sha, rep->str, rep->len + 1);
    else
        err = ens_err_set(errstr, size, ENS_ERR_REDIS, "SCRIPT LOAD: %s",
                          rep->type == ENS_REPLY_ERROR ? rep->str : "unexpected reply");
    ens_redis_reply_free(rep);
    return err;
}

/* EVALSHA script s with args; the reply (an array) is the caller's. */
static ens_err_t run_script(ens_redis_t *r, int s, int argc, const char **args,
                            ens_redis_reply_t **out, int *trips, char *errstr, size_t size) {
    const char *argv[20];
    ens_err_t err;
    *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!scripts[s].sha[0]) {
            if ((err = script_load(r, s, errstr, size)) != ENS_OK)
                return err;
            (*trips)++;
        }
        argv[0] = "EVALSHA";
        argv[1] = scripts[s].sha;
        argv[2] = "0";
        for (int i = 0; i < argc; i++)
            argv[3 + i] = args[i];
        ens_redis_reply_t *rep = ens_redis_commandv(r, argc + 3, argv, NULL, errstr, size);
        if (!rep)
            return ENS_ERR_REDIS;
        (*trips)++;
        if (rep->type == ENS_REPLY_ERROR && rep->str && !strncmp(rep->str, "NOSCRIPT", 8)) {
            ens_redis_reply_free(rep);
            scripts[s].sha[0] = '\0';
            continue;
        }
        if (rep->type != ENS_REPLY_ARRAY) {
            err = ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler script: %s",
                              rep->type == ENS_REPLY_ERROR ? rep->str : "unexpected reply");
            ens_redis_reply_free(rep);
            return err;
        }
        *out = rep;
        return ENS_OK;
    }
    return ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler script: NOSCRIPT after loading");
}

static int reply_int(const ens_redis_reply_t *e, long long *x) {
    if (e->type == ENS_REPLY_INTEGER) {
        *x = e->integer;
        return 1;
    }
    if (e->type == ENS_REPLY_STRING && e->str) {
        char *end = NULL;
        *x = strtoll(e->str, &end, 10);
        return end && *end == '\0';
    }
    return 0;
}

/* The flat view at rep->element[off..] into v. */
static ens_err_t parse_view(const ens_redis_reply_t *rep, size_t off, const ens_asha_params_t *p,
                            ens_asha_view_t *v, char *errstr, size_t size) {
    memset(v, 0, sizeof *v);
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++)
            v->rung[b][k].cand_rank = -1;
    size_t want = off + 4;
    int nb = ens_asha_n_brackets(p);
    for (int b = 0; b < nb; b++)
        want += 5 * (size_t)ens_asha_n_rungs(p, b);
    if (rep->elements != want)
        return ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler view: %zu elements, not %zu",
                           rep->elements, want);
    ens_redis_reply_t **e = rep->element + off;
    long long dec = 0, cfg = 0, ver = 0;
    if (!reply_int(e[0], &dec) || !reply_int(e[1], &cfg) || !reply_int(e[3], &ver) ||
        e[2]->type != ENS_REPLY_STRING)
        return ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler view: bad counters");
    v->decisions = dec;
    v->configs = (int32_t)cfg;
    v->epochs_issued = strtod(e[2]->str, NULL);
    v->version = ver;
    size_t i = 4;
    for (int b = 0; b < nb; b++)
        for (int k = 0; k < ens_asha_n_rungs(p, b); k++, i += 5) {
            ens_asha_rung_t *o = &v->rung[b][k];
            long long n, done, entered, rank;
            if (!reply_int(e[i], &n) || !reply_int(e[i + 1], &done) ||
                !reply_int(e[i + 2], &entered) || !reply_int(e[i + 3], &rank) ||
                e[i + 4]->type != ENS_REPLY_STRING)
                return ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler view: rung %d:%d", b,
                                   k);
            o->n = (int32_t)n;
            o->done = (int32_t)done;
            o->entered = (int32_t)entered;
            o->cand_rank = (int32_t)rank;
            if (rank >= 0)
                snprintf(o->cand, sizeof o->cand, "%s", e[i + 4]->str);
        }
    return ENS_OK;
}

/* Run a step script whose answer is {status, view...}. */
static ens_err_t step(ens_redis_t *r, int s, int argc, const char **args,
                      const ens_asha_params_t *p, int *applied, ens_asha_view_t *next,
                      char *errstr, size_t size) {
    ens_redis_reply_t *rep = NULL;
    int trips = 0;
    ens_err_t err = run_script(r, s, argc, args, &rep, &trips, errstr, size);
    if (err)
        return err;
    long long status = 0;
    if (rep->elements < 1 || !reply_int(rep->element[0], &status))
        err = ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler script: no status");
    else if (next)
        err = parse_view(rep, 1, p, next, errstr, size);
    if (!err)
        *applied = status == 1;
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_asha_view(void *ctx, const char *study, const ens_asha_params_t *p,
                                 ens_asha_view_t *v, int *round_trips, char *errstr,
                                 size_t errstr_size) {
    char prefix[128], m[16], smax[16];
    KEY(prefix, study, "%s", "");
    snprintf(m, sizeof m, "%d", p->m);
    snprintf(smax, sizeof smax, "%d", p->s_max);
    const char *args[] = {prefix, m, smax};
    ens_redis_reply_t *rep = NULL;
    ens_err_t err = run_script(R(ctx), S_VIEW, 3, args, &rep, round_trips, errstr, errstr_size);
    if (err)
        return err;
    err = parse_view(rep, 0, p, v, errstr, errstr_size);
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_asha_commit(void *ctx, const char *study, const ens_asha_params_t *p,
                                   const ens_asha_decision_t *d, int64_t base_version,
                                   const char *config_json, int *applied, ens_asha_view_t *next,
                                   char *errstr, size_t errstr_size) {
    char prefix[128], seq[32], b[16], k[16], from[40], to[40], m[16], smax[16], ver[32];
    KEY(prefix, study, "%s", "");
    snprintf(seq, sizeof seq, "%lld", (long long)d->seq);
    snprintf(b, sizeof b, "%d", d->bracket);
    snprintf(k, sizeof k, "%d", d->rung);
    snprintf(from, sizeof from, "%.17g", d->from_epochs);
    snprintf(to, sizeof to, "%.17g", d->to_epochs);
    snprintf(m, sizeof m, "%d", p->m);
    /* no view wanted: smax -1 makes the script answer with the counters only */
    snprintf(smax, sizeof smax, "%d", next ? p->s_max : -1);
    if (base_version >= 0)
        snprintf(ver, sizeof ver, "%lld", (long long)base_version);
    else
        ver[0] = '\0';
    const char *args[] = {prefix, seq, d->action == ENS_ASHA_NEW ? "new" : "promote",
                          d->trial_id, b, k, from, to, config_json, m, smax, ver};
    return step(R(ctx), S_COMMIT, 12, args, p, applied, next, errstr, errstr_size);
}

static ens_err_t redis_asha_result(void *ctx, const char *study, const ens_asha_params_t *p,
                                   const char *trial_id, int ok, double score,
                                   double epochs_done, const char *model_id, const char *error,
                                   int *applied, ens_asha_view_t *next, char *errstr,
                                   size_t errstr_size) {
    char prefix[128], sc[40], ep[40], m[16], smax[16];
    KEY(prefix, study, "%s", "");
    snprintf(sc, sizeof sc, "%.17g", score);
    snprintf(ep, sizeof ep, "%.17g", epochs_done);
    snprintf(m, sizeof m, "%d", p->m);
    snprintf(smax, sizeof smax, "%d", next ? p->s_max : -1);
    const char *args[] = {prefix, trial_id, ok ? "1" : "0", sc, ep, model_id, error, m, smax};
    return step(R(ctx), S_RESULT, 9, args, p, applied, next, errstr, errstr_size);
}

/* ---- small readers -------------------------------------------------------------------- */

static const char *str_of(const ens_redis_reply_t *e) {
    return e && e->type == ENS_REPLY_STRING ? e->str : NULL;
}

static double num_of(const ens_redis_reply_t *e) {
    const char *s = str_of(e);
    return s ? strtod(s, NULL) : 0;
}

static long long int_of(const ens_redis_reply_t *e) {
    if (e && e->type == ENS_REPLY_INTEGER)
        return e->integer;
    const char *s = str_of(e);
    return s ? strtoll(s, NULL, 10) : 0;
}

/* A command whose answer must be an array (HGETALL, HMGET, SMEMBERS...), or ENS_ERR_REDIS. */
static ens_err_t array_cmd(ens_redis_t *r, ens_redis_reply_t **out, char *errstr,
                           size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static ens_err_t array_cmd(ens_redis_t *r, ens_redis_reply_t **out, char *errstr,
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
static ens_err_t int_cmd(ens_redis_t *r, long long *out, char *errstr, size_t errstr_size,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ens_err_t int_cmd(ens_redis_t *r, long long *out, char *errstr, size_t errstr_size,
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

/* ---- studies -------------------------------------------------------------------------- */

static ens_err_t redis_study_create(void *ctx, const ens_state_sched_study_t *s, int *created,
                                    char *errstr, size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char key[256];
    long long exists = 0;
    KEY(key, s->study_id, K_STUDY);
    ens_err_t err = int_cmd(r, &exists, errstr, errstr_size, "HEXISTS %s " F_SCHEDULER, key);
    if (err || exists == 1)
        return err;
    char n_trials[16], epochs[40], seed[32], valf[40], topk[16], created_ms[32], eta[40],
        rmin[40], smax[16], maxep[40], deadline[32];
    snprintf(n_trials, sizeof n_trials, "%d", (int)s->n_trials);
    snprintf(epochs, sizeof epochs, "%.17g", s->epochs);
    snprintf(seed, sizeof seed, "%lld", (long long)s->seed);
    snprintf(valf, sizeof valf, "%.17g", s->val_fraction);
    snprintf(topk, sizeof topk, "%d", (int)s->top_k);
    snprintf(created_ms, sizeof created_ms, "%lld", (long long)s->created_ms);
    snprintf(eta, sizeof eta, "%.17g", s->eta);
    snprintf(rmin, sizeof rmin, "%.17g", s->min_epochs);
    snprintf(smax, sizeof smax, "%d", (int)s->s_max);
    snprintf(maxep, sizeof maxep, "%.17g", s->max_epochs_budget);
    snprintf(deadline, sizeof deadline, "%lld", (long long)s->deadline_ms);
    /* one HSET: the study appears whole or not at all */
    err = ens_redis_exec(r, errstr, errstr_size,
                         "HSET %s " F_STUDY_ID " %s " F_DATASET " %s " F_SEARCH_SPACE " %s "
                         F_N_TRIALS " %s " F_EPOCHS " %s " F_SEED " %s " F_VAL_FRACTION " %s "
                         F_TOP_K " %s " F_CREATED_MS " %s " F_STATUS " running " F_SCHEDULER
                         " %s " F_ETA " %s " F_MIN_EPOCHS " %s " F_S_MAX " %s "
                         F_MAX_EPOCHS_BUDGET " %s " F_DEADLINE_MS " %s",
                         key, s->study_id, s->dataset ? s->dataset : "",
                         s->search_space && *s->search_space ? s->search_space : "{}",
                         n_trials, epochs, seed, valf, topk, created_ms, s->scheduler, eta,
                         rmin, smax, maxep, deadline);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "ZADD " K_STUDIES " NX %s %s", created_ms,
                             s->study_id);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SADD " K_STUDIES_ACTIVE " %s",
                             s->study_id);
    if (!err)
        *created = 1;
    return err;
}

/* The study hash's fields, in the order study_get asks for them. */
static const char *const study_fields[] = {
    F_STATUS, F_SCHEDULER, F_DATASET, F_SEARCH_SPACE, F_N_TRIALS, F_TOP_K, F_S_MAX, F_EPOCHS,
    F_VAL_FRACTION, F_ETA, F_MIN_EPOCHS, F_MAX_EPOCHS_BUDGET, F_SEED, F_CREATED_MS,
    F_DEADLINE_MS};
enum { SF_STATUS, SF_SCHED, SF_DATASET, SF_SPACE, SF_NTRIALS, SF_TOPK, SF_SMAX, SF_EPOCHS,
       SF_VALF, SF_ETA, SF_RMIN, SF_MAXEP, SF_SEED, SF_CREATED, SF_DEADLINE, SF_COUNT };

static ens_err_t redis_study_get(void *ctx, const char *study, ens_state_sched_study_t *out,
                                 char *errstr, size_t errstr_size) {
    char key[256];
    const char *argv[2 + SF_COUNT] = {"HMGET", key};
    KEY(key, study, K_STUDY);
    for (int i = 0; i < SF_COUNT; i++)
        argv[2 + i] = study_fields[i];
    ens_redis_reply_t *rep =
        ens_redis_commandv(R(ctx), 2 + SF_COUNT, argv, NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type != ENS_REPLY_ARRAY || rep->elements != SF_COUNT) {
        ens_redis_reply_free(rep);
        return ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "HMGET study: unexpected reply");
    }
    ens_redis_reply_t **f = rep->element;
    ens_err_t err = ENS_OK;
    snprintf(out->status, sizeof out->status, "%s", str_of(f[SF_STATUS]) ? f[SF_STATUS]->str : "");
    snprintf(out->scheduler, sizeof out->scheduler, "%s",
             str_of(f[SF_SCHED]) ? f[SF_SCHED]->str : "");
    if (str_of(f[SF_DATASET]) && !(out->dataset = strdup(f[SF_DATASET]->str)))
        err = ENS_ERR_NOMEM;
    if (str_of(f[SF_SPACE]) && !(out->search_space = strdup(f[SF_SPACE]->str)))
        err = ENS_ERR_NOMEM;
    out->n_trials = (int32_t)num_of(f[SF_NTRIALS]);
    out->top_k = (int32_t)num_of(f[SF_TOPK]);
    out->s_max = (int32_t)num_of(f[SF_SMAX]);
    out->epochs = num_of(f[SF_EPOCHS]);
    out->val_fraction = num_of(f[SF_VALF]);
    out->eta = num_of(f[SF_ETA]);
    out->min_epochs = num_of(f[SF_RMIN]);
    out->max_epochs_budget = num_of(f[SF_MAXEP]);
    out->seed = int_of(f[SF_SEED]);
    out->created_ms = int_of(f[SF_CREATED]);
    out->deadline_ms = int_of(f[SF_DEADLINE]);
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_study_status_put(void *ctx, const char *study, const char *status,
                                        const char *error, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_STUDY);
    if (error)
        return ens_redis_exec(R(ctx), errstr, errstr_size,
                              "HSET %s " F_STATUS " %s " F_ERROR " %s", key, status, error);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s " F_STATUS " %s", key, status);
}

static ens_err_t redis_study_extend(void *ctx, const char *study, int32_t add_trials,
                                    double add_epochs, int64_t deadline_ms, char *errstr,
                                    size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char key[256];
    ens_err_t err = ENS_OK;
    KEY(key, study, K_STUDY);
    if (add_trials)
        err = ens_redis_exec(r, errstr, errstr_size, "HINCRBY %s " F_N_TRIALS " %d", key,
                             (int)add_trials);
    if (!err && add_epochs > 0)
        err = ens_redis_exec(r, errstr, errstr_size, "HINCRBYFLOAT %s " F_MAX_EPOCHS_BUDGET
                             " %.17g", key, add_epochs);
    if (!err && deadline_ms > 0)
        err = ens_redis_exec(r, errstr, errstr_size, "HSET %s " F_DEADLINE_MS " %lld", key,
                             (long long)deadline_ms);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "HSET %s " F_STATUS " running", key);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SADD " K_STUDIES_ACTIVE " %s", study);
    /* not compacted while it runs again; its models compacted already train on with a fresh
     * optimiser (retain.h) */
    if (!err) /* state_studies.h's compaction queue */
        err = ens_state_studies_redis.compact_remove(ctx, study, errstr, errstr_size);
    return err;
}

static ens_err_t redis_study_end(void *ctx, const char *study, const char *final_status,
                                 char *errstr, size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char key[256], disp[256];
    ens_err_t err = ENS_OK;
    KEY(key, study, K_STUDY);
    KEY(disp, study, K_DISPATCHED);
    if (final_status)
        err = ens_redis_exec(r, errstr, errstr_size, "HSET %s " F_STATUS " %s", key,
                             final_status);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SADD " K_STUDIES_SETTLING " %s", study);
    if (!err) /* its model files: trainers drop what no longer serves (retain.h), through
               * state_studies.h's compaction queue */
        err = ens_state_studies_redis.compact_add(ctx, study, errstr, errstr_size);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "SREM " K_STUDIES_ACTIVE " %s", study);
    if (!err)
        err = ens_redis_exec(r, errstr, errstr_size, "DEL %s", disp);
    return err;
}

static ens_err_t redis_command_first(void *ctx, const char *study, const char *event_id,
                                     int *first, char *errstr, size_t errstr_size) {
    int f = ens_store_first_time(R(ctx), study, K_SEEN_SCOPE_CMD, event_id, COMMAND_SEEN_TTL_S);
    if (f < 0)
        return ens_err_set(errstr, errstr_size, (ens_err_t)f, "study %s: command %s: %s", study,
                           event_id, ens_err_str((ens_err_t)f));
    *first = f;
    return ENS_OK;
}

static const char *const study_sets[2] = {K_STUDIES_ACTIVE, K_STUDIES_SETTLING};

static ens_err_t redis_studies_list(void *ctx, int which, char ***studies, int *n,
                                    char *errstr, size_t errstr_size) {
    ens_redis_reply_t *rep = NULL;
    ens_err_t err = array_cmd(R(ctx), &rep, errstr, errstr_size, "SMEMBERS %s",
                              study_sets[which]);
    if (err)
        return err;
    char **v = calloc(rep->elements + 1, sizeof *v);
    int k = 0;
    if (!v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < rep->elements; i++)
        if (str_of(rep->element[i]) && !(v[k++] = strdup(rep->element[i]->str)))
            err = ENS_ERR_NOMEM;
    ens_redis_reply_free(rep);
    if (err) {
        ens_state_strings_free(v, k);
        return err;
    }
    *studies = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t redis_studies_has(void *ctx, int which, const char *study, int *has,
                                   char *errstr, size_t errstr_size) {
    long long v = 0;
    ens_err_t err = int_cmd(R(ctx), &v, errstr, errstr_size, "SISMEMBER %s %s",
                            study_sets[which], study);
    *has = v == 1;
    return err;
}

static ens_err_t redis_studies_remove(void *ctx, int which, const char *study, char *errstr,
                                      size_t errstr_size) {
    return ens_redis_exec(R(ctx), errstr, errstr_size, "SREM %s %s", study_sets[which], study);
}

/* ---- jobs in flight, dispatched, in the outbox ------------------------------------------ */

static ens_err_t redis_inflight_list(void *ctx, const char *study,
                                     ens_state_sched_inflight_t **jobs, int *n, char *errstr,
                                     size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_INFLIGHT);
    ens_err_t err = array_cmd(R(ctx), &rep, errstr, errstr_size, "HGETALL %s", key);
    if (err)
        return err;
    size_t pairs = rep->elements / 2;
    ens_state_sched_inflight_t *v = pairs ? calloc(pairs, sizeof *v) : NULL;
    int k = 0;
    if (pairs && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < pairs; i++) {
        const char *trial = str_of(rep->element[2 * i]);
        if (trial && strlen(trial) < ENS_ID_MAX &&
            ens_state_sched_inflight_parse(str_of(rep->element[2 * i + 1]), &v[k]))
            snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", trial);
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *jobs = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t redis_inflight_get(void *ctx, const char *study, const char *trial,
                                    ens_state_sched_inflight_t *job, int *found, char *errstr,
                                    size_t errstr_size) {
    char key[256];
    KEY(key, study, K_INFLIGHT);
    ens_redis_reply_t *rep = ens_redis_command(R(ctx), errstr, errstr_size, "HGET %s %s", key,
                                               trial);
    if (!rep)
        return ENS_ERR_REDIS;
    if (ens_state_sched_inflight_parse(str_of(rep), job)) {
        snprintf(job->trial_id, sizeof job->trial_id, "%s", trial);
        *found = 1;
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_inflight_count(void *ctx, const char *study, long *n, char *errstr,
                                      size_t errstr_size) {
    char key[256];
    KEY(key, study, K_INFLIGHT);
    ens_redis_reply_t *rep = ens_redis_command(R(ctx), errstr, errstr_size, "HLEN %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == ENS_REPLY_INTEGER)
        *n = (long)rep->integer;
    else
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "HLEN %s: unexpected reply", key);
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t redis_dispatched_list(void *ctx, const char *study,
                                       ens_state_sched_dispatched_t **out, int *n, char *errstr,
                                       size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_DISPATCHED);
    ens_err_t err = array_cmd(R(ctx), &rep, errstr, errstr_size, "HGETALL %s", key);
    if (err)
        return err;
    size_t pairs = rep->elements / 2;
    ens_state_sched_dispatched_t *v = pairs ? calloc(pairs, sizeof *v) : NULL;
    int k = 0;
    if (pairs && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < pairs; i++) {
        const char *trial = str_of(rep->element[2 * i]), *rec = str_of(rep->element[2 * i + 1]);
        long long seq = -1, sent = -1;
        int part = -1;
        if (!trial || strlen(trial) >= ENS_ID_MAX || !rec ||
            sscanf(rec, "%lld %d %lld", &seq, &part, &sent) < 2)
            continue;
        snprintf(v[k].trial_id, ENS_ID_MAX, "%s", trial);
        v[k].seq = seq;
        v[k].partition = part;
        v[k++].sent_ms = sent;
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *out = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t redis_dispatched_put(void *ctx, const char *study,
                                      const ens_state_sched_dispatched_t *d, char *errstr,
                                      size_t errstr_size) {
    char key[256], rec[96];
    KEY(key, study, K_DISPATCHED);
    snprintf(rec, sizeof rec, "%lld %d %lld", d->seq, (int)d->partition, (long long)d->sent_ms);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s %s %s", key, d->trial_id, rec);
}

static ens_err_t redis_dispatched_remove(void *ctx, const char *study, const char *trial,
                                         char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_DISPATCHED);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HDEL %s %s", key, trial);
}

static ens_err_t redis_outbox_list(void *ctx, const char *study, ens_state_sched_outbox_t **out,
                                   int *n, char *errstr, size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_OUTBOX);
    ens_err_t err = array_cmd(R(ctx), &rep, errstr, errstr_size, "HGETALL %s", key);
    if (err)
        return err;
    size_t pairs = rep->elements / 2;
    ens_state_sched_outbox_t *v = pairs ? calloc(pairs, sizeof *v) : NULL;
    int k = 0;
    if (pairs && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < pairs; i++) {
        const char *seq = str_of(rep->element[2 * i]), *trial = str_of(rep->element[2 * i + 1]);
        if (!seq || !trial || strlen(trial) >= ENS_ID_MAX)
            continue;
        v[k].seq = strtoll(seq, NULL, 10);
        snprintf(v[k++].trial_id, ENS_ID_MAX, "%s", trial);
    }
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *out = v;
    *n = k;
    return ENS_OK;
}

static ens_err_t redis_outbox_put(void *ctx, const char *study, long long seq,
                                  const char *trial, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_OUTBOX);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s %lld %s", key, seq, trial);
}

static ens_err_t redis_outbox_remove(void *ctx, const char *study, long long seq, char *errstr,
                                     size_t errstr_size) {
    char key[256];
    KEY(key, study, K_OUTBOX);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HDEL %s %lld", key, seq);
}

static ens_err_t redis_trial_config(void *ctx, const char *study, const char *trial,
                                    char **config, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_TRIAL, trial);
    ens_redis_reply_t *rep = ens_redis_command(R(ctx), errstr, errstr_size,
                                               "HGET %s " F_CONFIG, key);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_ERR_NOTFOUND;
    if (str_of(rep))
        err = (*config = strdup(rep->str)) ? ENS_OK : ENS_ERR_NOMEM;
    ens_redis_reply_free(rep);
    return err;
}

/* ---- speeds, results watched, progress ------------------------------------------------- */

static ens_err_t redis_speed_put(void *ctx, const char *study, const char *trial,
                                 double seconds_per_epoch, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_SPEED);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "ZADD %s %.6g %s", key,
                          seconds_per_epoch, trial);
}

static ens_err_t redis_speed_list(void *ctx, const char *study, double **spe, int *n,
                                  char *errstr, size_t errstr_size) {
    char key[256];
    ens_redis_reply_t *rep = NULL;
    KEY(key, study, K_SPEED);
    ens_err_t err = array_cmd(R(ctx), &rep, errstr, errstr_size, "ZRANGE %s 0 -1 WITHSCORES",
                              key);
    if (err)
        return err;
    size_t k = rep->elements / 2;
    double *v = k ? malloc(k * sizeof *v) : NULL;
    if (k && !v)
        err = ENS_ERR_NOMEM;
    for (size_t i = 0; !err && i < k; i++)
        v[i] = num_of(rep->element[2 * i + 1]);
    ens_redis_reply_free(rep);
    if (err)
        return err;
    *spe = v;
    *n = (int)k;
    return ENS_OK;
}

static ens_err_t redis_results_get(void *ctx, const char *study, ens_state_sched_results_t *out,
                                   char *errstr, size_t errstr_size) {
    char models[256], lib[256], watch[256];
    KEY(models, study, K_MODELS);
    KEY(lib, study, K_LIBRARY);
    KEY(watch, study, K_EVALWATCH);
    const char *c0[] = {"SDIFF", models, lib}, *c1[] = {"SCARD", lib}, *c2[] = {"SCARD", models},
               *c3[] = {"HMGET", watch, F_COUNT, F_SINCE_MS, F_ROUNDS};
    const char **cmds[] = {c0, c1, c2, c3};
    const int argc[] = {3, 2, 2, 5};
    ens_redis_reply_t *r[4] = {NULL, NULL, NULL, NULL};
    ens_err_t err = ens_redis_pipeline(R(ctx), 4, argc, cmds, r, errstr, errstr_size);
    if (!err && (r[0]->type != ENS_REPLY_ARRAY || r[1]->type != ENS_REPLY_INTEGER ||
                 r[2]->type != ENS_REPLY_INTEGER || r[3]->type != ENS_REPLY_ARRAY ||
                 r[3]->elements != 3))
        err = ens_err_set(errstr, errstr_size, ENS_ERR_REDIS, "recover results: unexpected reply");
    if (!err) {
        out->library = r[1]->integer;
        out->models = r[2]->integer;
        const char *count = str_of(r[3]->element[0]), *since = str_of(r[3]->element[1]),
                   *rounds = str_of(r[3]->element[2]);
        out->watched = count != NULL;
        out->count = count ? strtoll(count, NULL, 10) : -1;
        out->since_ms = since ? strtoll(since, NULL, 10) : -1;
        out->rounds = rounds ? strtoll(rounds, NULL, 10) : 0;
        out->missing = calloc(r[0]->elements + 1, sizeof *out->missing);
        if (!out->missing)
            err = ENS_ERR_NOMEM;
        for (size_t i = 0; !err && i < r[0]->elements; i++)
            if (str_of(r[0]->element[i]) &&
                !(out->missing[out->n_missing++] = strdup(r[0]->element[i]->str)))
                err = ENS_ERR_NOMEM;
    }
    for (int i = 0; i < 4; i++)
        ens_redis_reply_free(r[i]);
    return err;
}

static ens_err_t redis_evalwatch_put(void *ctx, const char *study, long long count,
                                     int64_t since_ms, long long rounds, char *errstr,
                                     size_t errstr_size) {
    char key[256];
    KEY(key, study, K_EVALWATCH);
    if (count < 0 && rounds < 0 && since_ms < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "DEL %s", key);
    if (rounds < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size,
                              "HSET %s " F_COUNT " %lld " F_SINCE_MS " %lld", key, count,
                              (long long)since_ms);
    if (count < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size,
                              "HSET %s " F_SINCE_MS " %lld " F_ROUNDS " %lld", key,
                              (long long)since_ms, rounds);
    return ens_redis_exec(R(ctx), errstr, errstr_size,
                          "HSET %s " F_COUNT " %lld " F_SINCE_MS " %lld " F_ROUNDS " %lld", key,
                          count, (long long)since_ms, rounds);
}

static ens_err_t redis_counts(void *ctx, const char *study, ens_state_sched_counts_t *out,
                              char *errstr, size_t errstr_size) {
    char done[256], failed[256], lib[256], models[256], infl[256], asha[256];
    KEY(done, study, K_TRIALS_DONE);
    KEY(failed, study, K_TRIALS_FAILED);
    KEY(lib, study, K_LIBRARY);
    KEY(models, study, K_MODELS);
    KEY(infl, study, K_INFLIGHT);
    KEY(asha, study, K_ASHA);
    const char *c0[] = {"SCARD", done}, *c1[] = {"SCARD", failed}, *c2[] = {"SCARD", lib},
               *c3[] = {"SCARD", models}, *c4[] = {"HLEN", infl},
               *c5[] = {"HMGET", asha, F_CONFIGS, F_EPOCHS_ISSUED};
    const char **cmds[] = {c0, c1, c2, c3, c4, c5};
    const int argc[] = {2, 2, 2, 2, 2, 4};
    ens_redis_reply_t *r[6] = {NULL};
    ens_err_t err = ens_redis_pipeline(R(ctx), 6, argc, cmds, r, errstr, errstr_size);
    if (!err) {
        long *n[] = {&out->trials_done, &out->trials_failed, &out->library, &out->models,
                     &out->inflight};
        for (int i = 0; i < 5; i++)
            *n[i] = r[i]->type == ENS_REPLY_INTEGER ? (long)r[i]->integer : 0;
        if (r[5]->type == ENS_REPLY_ARRAY && r[5]->elements == 2) {
            out->configs = (long)int_of(r[5]->element[0]);
            out->epochs_issued = num_of(r[5]->element[1]);
        }
    }
    for (int i = 0; i < 6; i++)
        ens_redis_reply_free(r[i]);
    return err;
}

/* The score at rank i of a zset, highest first; NAN when there is none. */
static ens_err_t rank_score(ens_redis_t *r, const char *key, long i, double *score,
                            char *errstr, size_t errstr_size) {
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, errstr_size,
                                               "ZREVRANGE %s %ld %ld WITHSCORES", key, i, i);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_ARRAY && rep->elements == 2 && str_of(rep->element[1]))
        *score = strtod(rep->element[1]->str, NULL);
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_rung_get(void *ctx, const char *study, int bracket, int rung,
                                ens_state_sched_rung_t *out, char *errstr,
                                size_t errstr_size) {
    ens_redis_t *r = R(ctx);
    char asha[256], key[256], fe[32], fd[32];
    KEY(asha, study, K_ASHA);
    KEY(key, study, K_RUNG, bracket, rung);
    snprintf(fe, sizeof fe, F_ENTERED, bracket, rung);
    snprintf(fd, sizeof fd, F_DONE, bracket, rung);
    ens_redis_reply_t *rep = NULL;
    ens_err_t err = array_cmd(r, &rep, errstr, errstr_size, "HMGET %s %s %s", asha, fe, fd);
    if (err)
        return err;
    if (rep->elements == 2) {
        out->entered = (long)int_of(rep->element[0]);
        out->done = (long)int_of(rep->element[1]);
    }
    ens_redis_reply_free(rep);
    long long n = 0;
    if ((err = int_cmd(r, &n, errstr, errstr_size, "ZCARD %s", key)))
        return err;
    out->n = (long)n;
    if (!err && n > 0)
        err = rank_score(r, key, 0, &out->best, errstr, errstr_size);
    if (!err && n > 0)
        err = rank_score(r, key, (long)(n / 2), &out->median, errstr, errstr_size);
    return err;
}

/* ---- the trainer's side: leases, attempts, job records ------------------------------------ */

/* Take the job's lease: ens:{s}:lease:<trial> = "<trainer> <model id>", expiring ttl after its
 * last renewal. Refused (the holder named) only when another trainer holds this very job: a
 * lease of the trial's earlier job, or this trainer's own, is taken over.
 * KEYS: lease; ARGV: value ttl_ms model trainer */
static const char LEASE_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[1] then\n"
    "  local holder, mid = string.match(v, '^(%S+) (%S+)$')\n"
    "  if mid == ARGV[3] and holder ~= ARGV[4] then return v end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return false\n";

/* Renew the lease only while it is still this trainer's; take it again if it ran out and
 * nobody took it (Redis was away). 0 when another trainer holds it now.
 * KEYS: lease; ARGV: value ttl_ms */
static const char RENEW_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "return 1\n";

static ens_err_t redis_lease_take(void *ctx, const char *study, const char *trial,
                                  const char *trainer, const char *model, int ttl_ms,
                                  char *holder, size_t holder_size, char *errstr,
                                  size_t errstr_size) {
    char key[256], val[160], ms[16];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    snprintf(ms, sizeof ms, "%d", ttl_ms);
    const char *argv[] = {"EVAL", LEASE_LUA, "1", key, val, ms, model, trainer};
    ens_redis_reply_t *rep = ens_redis_commandv(R(ctx), 8, argv, NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_STRING)
        snprintf(holder, holder_size, "%s", rep->str[0] ? rep->str : "?");
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_lease_renew(void *ctx, const char *study, const char *trial,
                                   const char *trainer, const char *model, int ttl_ms,
                                   int *lost, char *errstr, size_t errstr_size) {
    char key[256], val[160], ms[16];
    KEY(key, study, K_LEASE, trial);
    snprintf(val, sizeof val, "%s %s", trainer, model);
    snprintf(ms, sizeof ms, "%d", ttl_ms);
    const char *argv[] = {"EVAL", RENEW_LUA, "1", key, val, ms};
    ens_redis_reply_t *rep = ens_redis_commandv(R(ctx), 6, argv, NULL, errstr, errstr_size);
    if (!rep)
        return ENS_ERR_REDIS;
    *lost = rep->type == ENS_REPLY_INTEGER && rep->integer == 0;
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_lease_drop(void *ctx, const char *study, const char *trial,
                                  char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_LEASE, trial);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "DEL %s", key);
}

static ens_err_t redis_lease_held(void *ctx, const char *study, const char *trial, int *held,
                                  char *errstr, size_t errstr_size) {
    char key[256];
    long long n = 0;
    KEY(key, study, K_LEASE, trial);
    ens_err_t err = int_cmd(R(ctx), &n, errstr, errstr_size, "EXISTS %s", key);
    *held = n > 0;
    return err;
}

static ens_err_t redis_attempt_add(void *ctx, const char *study, const char *model, int delta,
                                   long long *attempt, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_ATTEMPTS, model);
    if (delta == 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "DEL %s", key);
    if (delta < 0)
        return ens_redis_exec(R(ctx), errstr, errstr_size, "DECR %s", key);
    ens_redis_reply_t *rep = ens_redis_command(R(ctx), errstr, errstr_size, "INCR %s", key);
    if (!rep)
        return ENS_ERR_REDIS;
    *attempt = rep->type == ENS_REPLY_INTEGER ? rep->integer : 1;
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_job_put(void *ctx, const char *study, const ens_trial_result_t *res,
                               char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_JOB, res->model_id);
    return ens_redis_exec(R(ctx), errstr, errstr_size,
                          "HSET %s " F_TRAINED_MODEL " %s " F_VAL_ACCURACY " %.6f " F_VAL_LOSS
                          " %.6f " F_TRAIN_SECONDS " %.3f " F_EPOCHS_DONE " %.17g " F_SPS " %.1f",
                          key, res->model_id, res->val_accuracy, res->val_loss,
                          res->train_seconds, res->epochs_done, res->train_samples_per_second);
}

static ens_err_t redis_job_get(void *ctx, const char *study, const char *model,
                               ens_trial_result_t *res, int *found, char *errstr,
                               size_t errstr_size) {
    char key[256];
    KEY(key, study, K_JOB, model);
    ens_redis_reply_t *rep = ens_redis_command(
        R(ctx), errstr, errstr_size,
        "HMGET %s " F_TRAINED_MODEL " " F_VAL_ACCURACY " " F_VAL_LOSS " " F_TRAIN_SECONDS
        " " F_EPOCHS_DONE " " F_SPS,
        key);
    if (!rep)
        return ENS_ERR_REDIS;
    if (rep->type == ENS_REPLY_ARRAY && rep->elements == 6 && str_of(rep->element[0])) {
        *found = 1;
        snprintf(res->model_id, sizeof res->model_id, "%s", rep->element[0]->str);
        double *fields[] = {&res->val_accuracy, &res->val_loss, &res->train_seconds,
                            &res->epochs_done, &res->train_samples_per_second};
        for (int i = 0; i < 5; i++)
            *fields[i] = num_of(rep->element[i + 1]);
        res->status = ENS_TRIAL_OK;
    }
    ens_redis_reply_free(rep);
    return ENS_OK;
}

static ens_err_t redis_job_progress(void *ctx, const char *study, const char *model,
                                    double epochs, char *errstr, size_t errstr_size) {
    char key[256];
    KEY(key, study, K_JOB, model);
    return ens_redis_exec(R(ctx), errstr, errstr_size, "HSET %s " F_PROGRESS_EPOCHS " %.4g",
                          key, epochs);
}

const struct ens_state_sched_i ens_state_sched_redis = {
    .study_create = redis_study_create,
    .study_get = redis_study_get,
    .study_status_put = redis_study_status_put,
    .study_extend = redis_study_extend,
    .study_end = redis_study_end,
    .command_first = redis_command_first,
    .studies_list = redis_studies_list,
    .studies_has = redis_studies_has,
    .studies_remove = redis_studies_remove,
    .asha_view = redis_asha_view,
    .asha_commit = redis_asha_commit,
    .asha_result = redis_asha_result,
    .inflight_list = redis_inflight_list,
    .inflight_get = redis_inflight_get,
    .inflight_count = redis_inflight_count,
    .dispatched_list = redis_dispatched_list,
    .dispatched_put = redis_dispatched_put,
    .dispatched_remove = redis_dispatched_remove,
    .outbox_list = redis_outbox_list,
    .outbox_put = redis_outbox_put,
    .outbox_remove = redis_outbox_remove,
    .trial_config = redis_trial_config,
    .speed_put = redis_speed_put,
    .speed_list = redis_speed_list,
    .results_get = redis_results_get,
    .evalwatch_put = redis_evalwatch_put,
    .counts = redis_counts,
    .rung_get = redis_rung_get,
    .lease_take = redis_lease_take,
    .lease_renew = redis_lease_renew,
    .lease_drop = redis_lease_drop,
    .lease_held = redis_lease_held,
    .attempt_add = redis_attempt_add,
    .job_put = redis_job_put,
    .job_get = redis_job_get,
    .job_progress = redis_job_progress,
};
