/* serve_answered.c - the answered offsets of an inference group's request partitions, kept by
 * the state layer, so that a request answered before a rebalance or a crash is not answered
 * again. */
#include "serve_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "ensflow/log.h"

/* The partition's last answered offset, read once per assignment, and trusted only while the
 * group has a committed offset there: a broker that lost its log (the embedded one keeps
 * nothing across a restart) or a recreated topic numbers from 0 again, and a stale offset
 * would then skip requests nobody answered. Without a commit the stale record is forgotten:
 * at worst a request is answered twice, never lost. */
void ens_serve_answered_load(ens_serve_answered_t *a, const char *topic, int32_t part,
                             int drains, int64_t committed) {
    if (!a->state || part < 0 || part >= MAX_PARTS)
        return;
    char errstr[256] = "";
    int64_t off = -1;
    a->last[part] = -1;
    a->loaded[part] = drains + 1;
    ens_err_t err = committed < 0 ? ens_state_answered_forget(a->state, a->group, topic, part,
                                                              errstr, sizeof errstr)
                                  : ens_state_answered_get(a->state, a->group, topic, part,
                                                           &off, errstr, sizeof errstr);
    if (err == ENS_OK && committed >= 0)
        a->last[part] = off;
    else if (err && err != ENS_ERR_NOTFOUND)
        ENS_WARN("msg=\"answered offsets not read\" error=\"%s\"",
                 errstr[0] ? errstr : ens_err_str(err));
    ENS_DEBUG("offsets",
              "msg=\"answered offset read\" partition=%d committed=%lld answered=%lld",
              (int)part, (long long)committed, (long long)a->last[part]);
}

/* Was m answered before (by this group or one that owned its partition)? Unknown (no state,
 * no broker answer) counts as not. */
int ens_serve_answered_before(ens_serve_answered_t *a, ens_kafka_t *requests, int drains,
                              const ens_kafka_msg_t *m) {
    int32_t part = ens_kafka_msg_partition(m);
    if (!a->state || part < 0 || part >= MAX_PARTS)
        return 0;
    if (a->loaded[part] != drains + 1) {
        const char *topic = ens_kafka_msg_topic(m);
        int64_t committed = -1;
        if (ens_kafka_committed(requests, topic, part, 5000, &committed) != ENS_OK) {
            a->last[part] = -1;
            a->loaded[part] = drains + 1;
            ENS_WARN("msg=\"committed offset not read: not skipping\" partition=%d", (int)part);
            return 0;
        }
        ens_serve_answered_load(a, topic, part, drains, committed);
        ENS_DEBUG("offsets", "msg=\"answered offset checked\" partition=%d offset=%lld",
                  (int)part, (long long)ens_kafka_msg_offset(m));
    }
    return ens_kafka_msg_offset(m) <= a->last[part];
}

/* Record offset as the partition's last answered one, raised only (a group draining
 * partitions it has already lost must not move the next owner's record back). */
void ens_serve_answered_mark(ens_serve_answered_t *a, const char *topic, int32_t part,
                             int64_t offset) {
    if (!a->state || part < 0 || part >= MAX_PARTS)
        return;
    char errstr[256] = "";
    ens_err_t err = ens_state_answered_raise(a->state, a->group, topic, part, offset, errstr,
                                             sizeof errstr);
    if (err) {
        ENS_WARN("msg=\"answered offset not recorded\" error=\"%s\"",
                 errstr[0] ? errstr : ens_err_str(err));
        return;
    }
    if (offset > a->last[part]) /* raised only, as in the state: a batch of skipped requests */
        a->last[part] = offset; /* finishes while later ones, up to last, are being taken */
}

/* Record m, the last message of its partition in an answered batch (its answers acked). */
void ens_serve_answered_record(ens_serve_answered_t *a, const ens_kafka_msg_t *m) {
    int32_t part = ens_kafka_msg_partition(m);
    if (!a->state || part < 0 || part >= MAX_PARTS)
        return;
    ens_serve_answered_mark(a, ens_kafka_msg_topic(m), part, ens_kafka_msg_offset(m));
    if (ens_log_enabled(ENS_LOG_DEBUG, "offsets")) {
        size_t klen = 0;
        const char *key = ens_kafka_msg_key(m, &klen);
        ENS_DEBUG("offsets",
                  "msg=\"answered offset recorded\" partition=%d offset=%lld key=%.*s",
                  (int)part, (long long)ens_kafka_msg_offset(m),
                  key ? (int)(klen < 64 ? klen : 64) : 0, key ? key : "");
    }
}

void ens_serve_answered_open_state(ens_serve_answered_t *a, ens_state_t *st,
                                   const char *group) {
    snprintf(a->group, sizeof a->group, "%s", group);
    a->state = st;
    a->own_state = 0;
}

void ens_serve_answered_open(ens_serve_answered_t *a, ens_conf_t *conf) {
    char url[512], errstr[512];
    snprintf(a->group, sizeof a->group, "%s", ens_conf_str(conf, "group"));
    ens_conf_redis_url(conf, url, sizeof url);
    if (ens_redis_connect(url, &a->redis, errstr, sizeof errstr) != ENS_OK) {
        ENS_WARN("msg=\"no Redis connection for answered offsets: a rebalance may answer "
                 "requests twice\" error=\"%s\"",
                 errstr);
        return;
    }
    if (ens_state_redis_new(a->redis, NULL, &a->state) != ENS_OK) {
        ENS_WARN("msg=\"no state for answered offsets (out of memory): a rebalance may answer "
                 "requests twice\"");
        ens_redis_free(a->redis);
        a->redis = NULL;
        return;
    }
    a->own_state = 1;
}

void ens_serve_answered_close(ens_serve_answered_t *a) {
    if (a->own_state)
        ens_state_free(a->state);
    a->state = NULL;
    a->own_state = 0;
    ens_redis_free(a->redis);
    a->redis = NULL;
}
