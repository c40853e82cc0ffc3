/* serve_answered.c - the answered offsets of an inference group's request partitions in
 * Redis, so that a request answered before a rebalance or a crash is not answered again. */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "ensflow/log.h"

/* m's field in the answered-offsets hash: "<topic>/<partition>". */
static void answered_field(const ens_kafka_msg_t *m, char *buf, size_t size) {
    snprintf(buf, size, "%.256s/%d", ens_kafka_msg_topic(m), (int)ens_kafka_msg_partition(m));
}

/* Was m answered before (by this group or one that owned its partition)? The partition's
 * last answered offset is read once per assignment, and trusted only while the group has a
 * committed offset there: a broker that lost its log (the embedded one keeps nothing across
 * a restart) or a recreated topic numbers from 0 again, and a stale offset would then skip
 * requests nobody answered. Without a commit the stale entry is deleted: at worst a request
 * is answered twice, never lost. Unknown (no Redis, no broker answer) counts as not. */
int ens_serve_answered_before(ens_serve_answered_t *a, ens_kafka_t *requests, int drains,
                              const ens_kafka_msg_t *m) {
    int32_t part = ens_kafka_msg_partition(m);
    if (!a->redis || part < 0 || part >= MAX_PARTS)
        return 0;
    if (a->loaded[part] != drains + 1) {
        char errstr[256], field[288];
        const char *topic = ens_kafka_msg_topic(m);
        answered_field(m, field, sizeof field);
        int64_t committed = -1;
        a->last[part] = -1;
        a->loaded[part] = drains + 1;
        if (ens_kafka_committed(requests, topic, part, 5000, &committed) != ENS_OK) {
            ENS_WARN("msg=\"committed offset not read: not skipping\" partition=%d", (int)part);
            return 0;
        }
        ens_redis_reply_t *rep = ens_redis_command(
            a->redis, errstr, sizeof errstr, committed < 0 ? "HDEL %s %s" : "HGET %s %s",
            a->key, field);
        if (!rep)
            ENS_WARN("msg=\"answered offsets not read\" error=\"%s\"", errstr);
        else if (committed >= 0 && rep->type == ENS_REPLY_STRING)
            a->last[part] = strtoll(rep->str, NULL, 10);
        ens_redis_reply_free(rep);
        ENS_DEBUG("offsets",
                  "msg=\"answered offset read\" partition=%d committed=%lld answered=%lld "
                  "offset=%lld",
                  (int)part, (long long)committed, (long long)a->last[part],
                  (long long)ens_kafka_msg_offset(m));
    }
    return ens_kafka_msg_offset(m) <= a->last[part];
}

/* HSET key field offset unless the hash holds a larger one: a group draining partitions it
 * has already lost must not move the next owner's record back. */
static const char raise_script[] =
    "local c = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1') "
    "if tonumber(ARGV[2]) > c then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end "
    "return 0";

/* Record m, the last message of its partition in an answered batch (its answers acked), as
 * that partition's last answered offset. */
void ens_serve_answered_record(ens_serve_answered_t *a, const ens_kafka_msg_t *m) {
    int32_t part = ens_kafka_msg_partition(m);
    if (!a->redis || part < 0 || part >= MAX_PARTS)
        return;
    char errstr[256], field[288];
    int64_t off = ens_kafka_msg_offset(m);
    answered_field(m, field, sizeof field);
    if (ens_redis_exec(a->redis, errstr, sizeof errstr, "EVAL %s 1 %s %s %lld", raise_script,
                       a->key, field, (long long)off)) {
        ENS_WARN("msg=\"answered offset not recorded\" error=\"%s\"", errstr);
        return;
    }
    if (off > a->last[part]) /* raised only, as in Redis: a batch of skipped requests */
        a->last[part] = off; /* finishes while later ones, up to last, are being taken */
    if (ens_log_enabled(ENS_LOG_DEBUG, "offsets")) {
        size_t klen = 0;
        const char *key = ens_kafka_msg_key(m, &klen);
        ENS_DEBUG("offsets",
                  "msg=\"answered offset recorded\" partition=%d offset=%lld key=%.*s",
                  (int)part, (long long)off, key ? (int)(klen < 64 ? klen : 64) : 0,
                  key ? key : "");
    }
}

void ens_serve_answered_open(ens_serve_answered_t *a, ens_conf_t *conf) {
    char url[512], errstr[512];
    snprintf(a->key, sizeof a->key, "ens:serving:answered:%s", ens_conf_str(conf, "group"));
    ens_conf_redis_url(conf, url, sizeof url);
    if (ens_redis_connect(url, &a->redis, errstr, sizeof errstr) != ENS_OK)
        ENS_WARN("msg=\"no Redis connection for answered offsets: a rebalance may answer "
                 "requests twice\" error=\"%s\"",
                 errstr);
}

void ens_serve_answered_close(ens_serve_answered_t *a) {
    ens_redis_free(a->redis);
    a->redis = NULL;
}
