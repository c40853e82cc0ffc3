/* state_redis_asha.c - the ASHA steps of state_sched.h in Redis: view, commit and result, each
 * one Lua script run by EVALSHA that answers with the state after it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_redis_sched.h"
#include "state_sched_keys.h"

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

ens_err_t ens_state_redis_sched_asha_view(void *ctx, const char *study, const ens_asha_params_t *p,
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

ens_err_t ens_state_redis_sched_asha_commit(void *ctx, const char *study, const ens_asha_params_t *p,
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

ens_err_t ens_state_redis_sched_asha_result(void *ctx, const char *study, const ens_asha_params_t *p,
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
