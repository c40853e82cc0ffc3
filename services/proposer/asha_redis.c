/* asha_redis.c - the scheduler's state in Redis: snapshot, decisions and results as Lua steps. */
#include "asha_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys are built from the prefix "ens:{s}:" inside the scripts: every one shares the study's
 * hash slot, so the scripts run on a Redis Cluster node as they do on one server. */
static const char *commit_lua =
    "local p = ARGV[1]\n"
    "local asha = p .. 'asha'\n"
    "local n = tonumber(redis.call('HGET', asha, 'decisions') or '0')\n"
    "if n ~= tonumber(ARGV[2]) then return 0 end\n"
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
    "redis.call('HINCRBY', asha, 'entered:' .. b .. ':' .. k, 1)\n"
    "redis.call('HINCRBYFLOAT', asha, 'epochs_issued', tonumber(ARGV[8]) - tonumber(ARGV[7]))\n"
    "redis.call('HSET', p .. 'inflight', t, ARGV[2] .. ' ' .. b .. ' ' .. k .. ' ' .. ARGV[7] ..\n"
    "           ' ' .. ARGV[8])\n"
    "redis.call('HSET', p .. 'outbox', ARGV[2], t)\n"
    "redis.call('HSET', p .. 'decisions', ARGV[2], ARGV[3] .. ' ' .. t .. ' ' .. b .. ' ' .. k ..\n"
    "           ' ' .. ARGV[7] .. ' ' .. ARGV[8])\n"
    "redis.call('HSET', p .. 'trial:' .. t, 'status', 'queued', 'rung', k, 'target_epochs',\n"
    "           ARGV[8])\n"
    "return 1\n";

static const char *result_lua =
    "local p, t = ARGV[1], ARGV[2]\n"
    "local job = redis.call('HGET', p .. 'inflight', t)\n"
    "if not job then return 0 end\n"
    "local seq, b, k = string.match(job, '^(%S+) (%S+) (%S+) ')\n"
    "redis.call('HDEL', p .. 'inflight', t)\n"
    "redis.call('HINCRBY', p .. 'asha', 'done:' .. b .. ':' .. k, 1)\n"
    "local th = p .. 'trial:' .. t\n"
    "if ARGV[3] == '1' then\n"
    "  redis.call('ZADD', p .. 'rung:' .. b .. ':' .. k, ARGV[4], t)\n"
    "  if tonumber(b) + tonumber(k) < tonumber(ARGV[8]) then\n"
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
    "return 1\n";

static ens_err_t eval(ens_redis_t *r, const char *script, int argc, const char **args,
                      int *applied, char *errstr, size_t size) {
    const char *argv[16];
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = "0";
    for (int i = 0; i < argc; i++)
        argv[3 + i] = args[i];
    redisReply *rep = ens_redis_commandv(r, argc + 3, argv, NULL, errstr, size);
    if (!rep)
        return ENS_ERR_REDIS;
    ens_err_t err = ENS_OK;
    if (rep->type == REDIS_REPLY_INTEGER)
        *applied = rep->integer == 1;
    else
        err = ens_err_set(errstr, size, ENS_ERR_REDIS, "scheduler script: %s",
                          rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    ens_redis_reply_free(rep);
    return err;
}

static ens_err_t prefix_of(const char *study, char *buf, size_t n, char *errstr, size_t size) {
    if (!ens_key(buf, n, study, "%s", ""))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id");
    return ENS_OK;
}

ens_err_t ens_asha_redis_commit(ens_redis_t *r, const char *study, const ens_asha_decision_t *d,
                                const char *config_json, int *applied, char *errstr,
                                size_t size) {
    char prefix[128], seq[32], b[16], k[16], from[40], to[40];
    ens_err_t err = prefix_of(study, prefix, sizeof prefix, errstr, size);
    if (err)
        return err;
    if (d->action == ENS_ASHA_NONE)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "no decision to commit");
    snprintf(seq, sizeof seq, "%lld", (long long)d->seq);
    snprintf(b, sizeof b, "%d", d->bracket);
    snprintf(k, sizeof k, "%d", d->rung);
    snprintf(from, sizeof from, "%.17g", d->from_epochs);
    snprintf(to, sizeof to, "%.17g", d->to_epochs);
    const char *args[] = {prefix, seq, d->action == ENS_ASHA_NEW ? "new" : "promote",
                          d->trial_id, b, k, from, to, config_json ? config_json : "{}"};
    return eval(r, commit_lua, 9, args, applied, errstr, size);
}

ens_err_t ens_asha_redis_result(ens_redis_t *r, const char *study, int m_top,
                                const char *trial_id, int ok, double score, double epochs_done,
                                const char *model_id, const char *error, int *applied,
                                char *errstr, size_t size) {
    char prefix[128], sc[40], ep[40], mt[16];
    ens_err_t err = prefix_of(study, prefix, sizeof prefix, errstr, size);
    if (err)
        return err;
    snprintf(sc, sizeof sc, "%.17g", score);
    snprintf(ep, sizeof ep, "%.17g", epochs_done);
    snprintf(mt, sizeof mt, "%d", m_top);
    const char *args[] = {prefix, trial_id, ok ? "1" : "0", sc, ep,
                          model_id ? model_id : "", error ? error : "", mt};
    return eval(r, result_lua, 8, args, applied, errstr, size);
}

#define MAX_CMDS (1 + 2 * ENS_ASHA_MAX_BRACKETS * ENS_ASHA_MAX_RUNGS)

ens_err_t ens_asha_redis_view(ens_redis_t *r, const char *study, const ens_asha_params_t *p,
                              ens_asha_view_t *v, int *round_trips, char *errstr, size_t size) {
    static char keys[MAX_CMDS][160];
    const char *argvs[MAX_CMDS][4];
    const char **cmds[MAX_CMDS];
    int argc[MAX_CMDS], n = 0, trips = 0;
    redisReply *rep[MAX_CMDS];
    memset(v, 0, sizeof *v);
    for (int b = 0; b < ENS_ASHA_MAX_BRACKETS; b++)
        for (int k = 0; k < ENS_ASHA_MAX_RUNGS; k++)
            v->rung[b][k].cand_rank = -1;
    if (!ens_key(keys[n], sizeof keys[n], study, "asha"))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "bad study id");
    argvs[n][0] = "HGETALL";
    argvs[n][1] = keys[n];
    argc[n++] = 2;
    int nb = ens_asha_n_brackets(p);
    for (int b = 0; b < nb; b++)
        for (int k = 0; k < ens_asha_n_rungs(p, b); k++) {
            ens_key(keys[n], sizeof keys[n], study, "rung:%d:%d", b, k);
            argvs[n][0] = "ZCARD";
            argvs[n][1] = keys[n];
            argc[n++] = 2;
            ens_key(keys[n], sizeof keys[n], study, "cand:%d:%d", b, k);
            argvs[n][0] = "ZREVRANGE";
            argvs[n][1] = keys[n];
            argvs[n][2] = "0";
            argvs[n][3] = "0";
            argc[n++] = 4;
        }
    for (int i = 0; i < n; i++)
        cmds[i] = argvs[i];
    ens_err_t err = ens_redis_pipeline(r, n, argc, cmds, rep, errstr, size);
    if (err)
        return err;
    trips++;
    redisReply *h = rep[0];
    if (h->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            const char *f = h->element[i]->str, *val = h->element[i + 1]->str;
            int b, k;
            if (!f || !val)
                continue;
            if (!strcmp(f, "decisions"))
                v->decisions = strtoll(val, NULL, 10);
            else if (!strcmp(f, "configs"))
                v->configs = (int32_t)strtol(val, NULL, 10);
            else if (!strcmp(f, "epochs_issued"))
                v->epochs_issued = strtod(val, NULL);
            else if (sscanf(f, "entered:%d:%d", &b, &k) == 2 && b >= 0 && k >= 0 &&
                     b < ENS_ASHA_MAX_BRACKETS && k < ENS_ASHA_MAX_RUNGS)
                v->rung[b][k].entered = (int32_t)strtol(val, NULL, 10);
            else if (sscanf(f, "done:%d:%d", &b, &k) == 2 && b >= 0 && k >= 0 &&
                     b < ENS_ASHA_MAX_BRACKETS && k < ENS_ASHA_MAX_RUNGS)
                v->rung[b][k].done = (int32_t)strtol(val, NULL, 10);
        }
    else
        err = ens_err_set(errstr, size, ENS_ERR_REDIS, "HGETALL asha: unexpected reply");
    /* second round trip: the rank of each rung's best candidate */
    int idx = 1, m = 0, at[MAX_CMDS][2];
    const char *rargv[MAX_CMDS][3];
    for (int b = 0; b < nb && !err; b++)
        for (int k = 0; k < ens_asha_n_rungs(p, b); k++, idx += 2) {
            ens_asha_rung_t *o = &v->rung[b][k];
            if (rep[idx]->type != REDIS_REPLY_INTEGER || rep[idx + 1]->type != REDIS_REPLY_ARRAY) {
                err = ens_err_set(errstr, size, ENS_ERR_REDIS, "rung %d:%d: unexpected reply", b,
                                  k);
                break;
            }
            o->n = (int32_t)rep[idx]->integer;
            if (rep[idx + 1]->elements == 1 && rep[idx + 1]->element[0]->str) {
                snprintf(o->cand, sizeof o->cand, "%s", rep[idx + 1]->element[0]->str);
                rargv[m][0] = "ZREVRANK";
                rargv[m][1] = keys[idx];
                rargv[m][2] = o->cand;
                at[m][0] = b;
                at[m][1] = k;
                cmds[m] = rargv[m];
                argc[m++] = 3;
            }
        }
    for (int i = 0; i < n; i++)
        ens_redis_reply_free(rep[i]);
    if (!err && m > 0) {
        if ((err = ens_redis_pipeline(r, m, argc, cmds, rep, errstr, size)) != ENS_OK)
            return err;
        trips++;
        for (int i = 0; i < m; i++) {
            if (rep[i]->type == REDIS_REPLY_INTEGER)
                v->rung[at[i][0]][at[i][1]].cand_rank = (int32_t)rep[i]->integer;
            ens_redis_reply_free(rep[i]);
        }
    }
    if (round_trips)
        *round_trips = trips;
    return err;
}
