/* test_state_studies.c - state_studies.h: the same checks on the in-memory state and, when the
 * harness runs, on Redis (the compaction queue and lock, model files and their references,
 * serving versions, answered offsets, study listing and counts), study usage and deletion on
 * Redis (unsupported in memory), and the Redis keys and fields as the previous version wrote
 * and read them. */
#include <unistd.h>

#include "check.h"
#include "ensflow/state.h"

static char errstr[512];

static int has(char **v, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return 1;
    return 0;
}

static void test_compaction(ens_state_t *st, const char *study) {
    int q = -1, held = -1;
    char who[64], next[ENS_ID_MAX];
    CHECK_OK(ens_state_compact_queued(st, study, &q, errstr, sizeof errstr));
    CHECK_EQ_INT(q, 0);
    CHECK_OK(ens_state_compact_add(st, study, errstr, sizeof errstr));
    CHECK_OK(ens_state_compact_add(st, study, errstr, sizeof errstr)); /* a set */
    CHECK_OK(ens_state_compact_queued(st, study, &q, errstr, sizeof errstr));
    CHECK_EQ_INT(q, 1);
    CHECK_OK(ens_state_compact_next(st, next, sizeof next, errstr, sizeof errstr));
    CHECK(next[0] != '\0');
    CHECK_OK(ens_state_compact_remove(st, study, errstr, sizeof errstr));
    CHECK_OK(ens_state_compact_queued(st, study, &q, errstr, sizeof errstr));
    CHECK_EQ_INT(q, 0);
    CHECK_OK(ens_state_compact_remove(st, study, errstr, sizeof errstr)); /* missing: fine */

    /* the lock: one owner; renew and release by the owner only */
    CHECK_EQ_INT(ens_state_compact_owner(st, study, who, sizeof who, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_compact_lock(st, study, "tr-a", ENS_STATE_LOCK_RENEW, 60000, &held,
                                    errstr, sizeof errstr));
    CHECK_EQ_INT(held, 0);
    CHECK_OK(ens_state_compact_lock(st, study, "tr-a", ENS_STATE_LOCK_TAKE, 60000, &held, errstr,
                                    sizeof errstr));
    CHECK_EQ_INT(held, 1);
    CHECK_OK(ens_state_compact_lock(st, study, "tr-b", ENS_STATE_LOCK_TAKE, 60000, &held, errstr,
                                    sizeof errstr));
    CHECK_EQ_INT(held, 0);
    CHECK_OK(ens_state_compact_lock(st, study, "tr-a", ENS_STATE_LOCK_TAKE, 60000, &held, errstr,
                                    sizeof errstr));
    CHECK_EQ_INT(held, 0); /* taken is taken, by the owner too */
    CHECK_OK(ens_state_compact_owner(st, study, who, sizeof who, errstr, sizeof errstr));
    CHECK_STR(who, "tr-a");
    CHECK_OK(ens_state_compact_lock(st, study, "tr-b", ENS_STATE_LOCK_RENEW, 60000, &held,
                                    errstr, sizeof errstr));
    CHECK_EQ_INT(held, 0);
    CHECK_OK(ens_state_compact_lock(st, study, "tr-b", ENS_STATE_LOCK_RELEASE, 60000, &held,
                                    errstr, sizeof errstr));
    CHECK_EQ_INT(held, 0);
    CHECK_OK(ens_state_compact_owner(st, study, who, sizeof who, errstr, sizeof errstr));
    CHECK_STR(who, "tr-a");
    CHECK_OK(ens_state_compact_lock(st, study, "tr-a", ENS_STATE_LOCK_RENEW, 60000, &held,
                                    errstr, sizeof errstr));
    CHECK_EQ_INT(held, 1);
    CHECK_OK(ens_state_compact_lock(st, study, "tr-a", ENS_STATE_LOCK_RELEASE, 60000, &held,
                                    errstr, sizeof errstr));
    CHECK_EQ_INT(held, 1);
    CHECK_EQ_INT(ens_state_compact_owner(st, study, who, sizeof who, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_EQ_INT(ens_state_compact_lock(st, study, "", ENS_STATE_LOCK_TAKE, 60000, &held,
                                        errstr, sizeof errstr),
                 ENS_ERR_INVALID);
}

static void test_model_files(ens_state_t *st, ens_models_t *ms, const char *study) {
    void *data = NULL;
    size_t len = 0;
    int ref = -1;
    CHECK_EQ_INT(ens_state_model_file_get(st, ms, study, "model:m-1", &data, &len, errstr,
                                          sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_model_file_referenced(st, study, "model:m-1", &ref, errstr,
                                             sizeof errstr));
    CHECK_EQ_INT(ref, 0);
    CHECK_OK(ens_state_model_file_put(st, ms, study, "model:m-1", "weights", 7, errstr,
                                      sizeof errstr));
    CHECK_OK(ens_state_model_file_referenced(st, study, "model:m-1", &ref, errstr,
                                             sizeof errstr));
    CHECK_EQ_INT(ref, 1);
    CHECK_OK(ens_state_model_file_get(st, ms, study, "model:m-1", &data, &len, errstr,
                                      sizeof errstr));
    CHECK(len == 7 && data && !memcmp(data, "weights", 7));
    free(data);
    data = NULL;
    CHECK_OK(ens_state_model_file_del(st, ms, study, "model:m-1", errstr, sizeof errstr));
    CHECK_OK(ens_state_model_file_referenced(st, study, "model:m-1", &ref, errstr,
                                             sizeof errstr));
    CHECK_EQ_INT(ref, 0);
    CHECK_EQ_INT(ens_state_model_file_get(st, ms, study, "model:m-1", &data, &len, errstr,
                                          sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_model_file_del(st, ms, study, "model:m-1", errstr, sizeof errstr));
    CHECK_EQ_INT(ens_state_model_file_put(st, ms, study, "no-kind", "x", 1, errstr,
                                          sizeof errstr),
                 ENS_ERR_INVALID);
    char **names = NULL;
    int n = -1;
    CHECK_OK(ens_state_model_legacy_list(st, study, &names, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);
    ens_state_strings_free(names, n);
}

static void test_serving(ens_state_t *st, const char *study, const char *group) {
    int64_t v = -1, off = -1;
    const char *topic = "ensflow.inference.requests";
    CHECK_EQ_INT(ens_state_serving_newest(st, study, &v, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_serving_put(st, study, "grp-1", 3, errstr, sizeof errstr));
    CHECK_OK(ens_state_serving_put(st, study, "grp-2", 5, errstr, sizeof errstr));
    CHECK_OK(ens_state_serving_put(st, study, "grp-1", 4, errstr, sizeof errstr));
    CHECK_OK(ens_state_serving_newest(st, study, &v, errstr, sizeof errstr));
    CHECK_EQ_INT(v, 5);

    CHECK_EQ_INT(ens_state_answered_get(st, group, topic, 2, &off, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_answered_raise(st, group, topic, 2, 41, errstr, sizeof errstr));
    CHECK_OK(ens_state_answered_raise(st, group, topic, 2, 17, errstr, sizeof errstr));
    CHECK_OK(ens_state_answered_get(st, group, topic, 2, &off, errstr, sizeof errstr));
    CHECK_EQ_INT(off, 41); /* raised only */
    CHECK_OK(ens_state_answered_raise(st, group, topic, 2, 42, errstr, sizeof errstr));
    CHECK_OK(ens_state_answered_get(st, group, topic, 2, &off, errstr, sizeof errstr));
    CHECK_EQ_INT(off, 42);
    CHECK_EQ_INT(ens_state_answered_get(st, group, topic, 3, &off, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_answered_forget(st, group, topic, 2, errstr, sizeof errstr));
    CHECK_EQ_INT(ens_state_answered_get(st, group, topic, 2, &off, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_state_answered_forget(st, group, topic, 2, errstr, sizeof errstr));
}

/* Listing and counts; the study has a record (written by the caller) and two models. */
static void test_listing(ens_state_t *st, const char *study) {
    char **ids = NULL;
    int n = 0, exists = -1;
    long count = -1;
    CHECK_OK(ens_state_study_exists(st, study, &exists, errstr, sizeof errstr));
    CHECK_EQ_INT(exists, 1);
    CHECK_OK(ens_state_study_exists(st, "s-nosuch-study", &exists, errstr, sizeof errstr));
    CHECK_EQ_INT(exists, 0);
    CHECK_OK(ens_state_studies_list(st, &ids, &n, errstr, sizeof errstr));
    CHECK(has(ids, n, study));
    ens_state_strings_free(ids, n);
    CHECK_OK(ens_state_library_add(st, study, "m-1", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_add(st, study, "m-2", errstr, sizeof errstr));
    CHECK_OK(ens_state_library_count(st, study, &count, errstr, sizeof errstr));
    CHECK_EQ_INT(count, 2);
}

static void test_all(ens_state_t *st, ens_models_t *ms, const char *study, const char *group) {
    fprintf(stderr, "test_state_studies: %s\n", ens_state_name(st));
    test_compaction(st, study);
    test_model_files(st, ms, study);
    test_serving(st, study, group);
}

/* Redis: what the previous version wrote reads, what this one writes is where it was. */
static void test_redis_compat(ens_redis_t *r, ens_state_t *st, ens_models_t *ms,
                              const char *study, const char *group) {
    char key[256];
    ens_redis_reply_t *rep;
    /* the study record as the proposer writes it: listed, counted, then deleted */
    ens_key(key, sizeof key, study, "study");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "HSET %s dataset d status complete", key));
    test_listing(st, study);
    ens_key(key, sizeof key, study, "trials:done");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SADD %s t-1 t-2 t-3", key));
    long done = 0;
    CHECK_OK(ens_state_trials_done_count(st, study, &done, errstr, sizeof errstr));
    CHECK_EQ_INT(done, 3);

    /* the lock, the queue, the serving hash and answered offsets under their old keys */
    int held = 0;
    CHECK_OK(ens_state_compact_lock(st, study, "tr-a", ENS_STATE_LOCK_TAKE, 60000, &held,
                                    errstr, sizeof errstr));
    ens_key(key, sizeof key, study, "compacting");
    rep = ens_redis_command(r, errstr, sizeof errstr, "GET %s", key);
    CHECK(rep && rep->type == ENS_REPLY_STRING && !strcmp(rep->str, "tr-a"));
    ens_redis_reply_free(rep);
    rep = ens_redis_command(r, errstr, sizeof errstr, "PTTL %s", key);
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer > 0 && rep->integer <= 60000);
    ens_redis_reply_free(rep);
    CHECK_OK(ens_state_compact_add(st, study, errstr, sizeof errstr));
    rep = ens_redis_command(r, errstr, sizeof errstr, "SISMEMBER ens:studies:compact %s", study);
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1);
    ens_redis_reply_free(rep);
    CHECK_OK(ens_state_serving_put(st, study, "grp-9", 12, errstr, sizeof errstr));
    ens_key(key, sizeof key, study, "serving");
    rep = ens_redis_command(r, errstr, sizeof errstr, "HGET %s grp-9", key);
    CHECK(rep && rep->type == ENS_REPLY_STRING && !strcmp(rep->str, "12"));
    ens_redis_reply_free(rep);
    char akey[256];
    snprintf(akey, sizeof akey, "ens:serving:answered:%s", group);
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "HSET %s ensflow.t/1 77", akey));
    int64_t off = 0;
    CHECK_OK(ens_state_answered_get(st, group, "ensflow.t", 1, &off, errstr, sizeof errstr));
    CHECK_EQ_INT(off, 77);
    CHECK_OK(ens_state_answered_raise(st, group, "ensflow.t", 1, 78, errstr, sizeof errstr));
    rep = ens_redis_command(r, errstr, sizeof errstr, "HGET %s ensflow.t/1", akey);
    CHECK(rep && rep->type == ENS_REPLY_STRING && !strcmp(rep->str, "78"));
    ens_redis_reply_free(rep);
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "DEL %s", akey));

    /* a model of the previous version, a blob in Redis: listed and read */
    ens_key(key, sizeof key, study, "model:m-old");
    CHECK_OK(ens_store_blob_put(r, key, "old weights", 11, 0, errstr, sizeof errstr));
    ens_key(key, sizeof key, study, "probs:m-old"); /* not a model */
    CHECK_OK(ens_store_blob_put(r, key, "probs", 5, 0, errstr, sizeof errstr));
    char **names = NULL;
    int n = 0;
    CHECK_OK(ens_state_model_legacy_list(st, study, &names, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 1);
    if (n == 1)
        CHECK_STR(names[0], "model:m-old");
    ens_state_strings_free(names, n);
    void *data = NULL;
    size_t len = 0;
    CHECK_OK(ens_state_model_file_get(st, ms, study, "model:m-old", &data, &len, errstr,
                                      sizeof errstr));
    CHECK(len == 11 && data && !memcmp(data, "old weights", 11));
    free(data);

    /* usage, then deletion: every key gone, the study out of every set */
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SADD ens:studies:active %s", study));
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SADD ens:studies:settling %s", study));
    CHECK_OK(ens_state_dirty_add(st, study, errstr, sizeof errstr));
    ens_state_usage_t u;
    CHECK_OK(ens_state_study_usage(st, study, &u, errstr, sizeof errstr));
    CHECK(u.keys >= 8 && u.bytes > 0);
    long deleted = 0;
    CHECK_OK(ens_state_study_delete(st, study, &deleted, errstr, sizeof errstr));
    CHECK_EQ_INT(deleted, u.keys);
    CHECK_OK(ens_state_study_usage(st, study, &u, errstr, sizeof errstr));
    CHECK_EQ_INT(u.keys, 0);
    static const char *const sets[] = {"ens:studies:active", "ens:studies:settling",
                                       "ens:studies:compact", "ens:selector:dirty"};
    for (int i = 0; i < 4; i++) {
        rep = ens_redis_command(r, errstr, sizeof errstr, "SISMEMBER %s %s", sets[i], study);
        CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 0);
        ens_redis_reply_free(rep);
    }
    int exists = 1;
    CHECK_OK(ens_state_study_exists(st, study, &exists, errstr, sizeof errstr));
    CHECK_EQ_INT(exists, 0);
}

int main(void) {
    char dir[] = "/tmp/ens-test-state-studies-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    ens_models_t *ms = NULL;
    CHECK_OK(ens_models_open(dir, &ms, errstr, sizeof errstr));
    ens_state_t *mem = NULL;
    CHECK_OK(ens_state_mem_new(&mem));
    if (mem && ms) {
        test_all(mem, ms, "s-studies-mem", "grp-mem");
        ens_state_study_t s = {.dataset = "d"};
        CHECK_OK(ens_state_study_put(mem, "s-studies-mem", &s, errstr, sizeof errstr));
        test_listing(mem, "s-studies-mem");
        /* what only the CLI does on Redis */
        ens_state_usage_t u;
        long n = 0;
        CHECK_EQ_INT(ens_state_study_usage(mem, "s-studies-mem", &u, errstr, sizeof errstr),
                     ENS_ERR_UNSUPPORTED);
        CHECK_EQ_INT(ens_state_study_delete(mem, "s-studies-mem", &n, errstr, sizeof errstr),
                     ENS_ERR_UNSUPPORTED);
        CHECK_EQ_INT(ens_state_trials_done_count(mem, "s-studies-mem", &n, errstr,
                                                 sizeof errstr),
                     ENS_ERR_UNSUPPORTED);
        CHECK_OK(ens_models_study_remove(ms, "s-studies-mem", errstr, sizeof errstr));
    }
    ens_state_free(mem);

    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_state_studies: no redis.url from the harness; Redis skipped\n");
        ens_models_close(ms);
        rmdir(dir);
        return check_done("test_state_studies");
    }
    ens_redis_t *r = NULL;
    ens_state_t *st = NULL;
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    if (r)
        CHECK_OK(ens_state_redis_new(r, ms, &st));
    if (st && ms) {
        char study[64], group[64];
        snprintf(study, sizeof study, "s-studies-%d", (int)getpid());
        snprintf(group, sizeof group, "grp-studies-%d", (int)getpid());
        test_all(st, ms, study, group);
        test_redis_compat(r, st, ms, study, group);
        CHECK_OK(ens_models_study_remove(ms, study, errstr, sizeof errstr));
    }
    ens_state_free(st);
    ens_redis_free(r);
    ens_models_close(ms);
    CHECK_EQ_INT(rmdir(dir), 0);
    return check_done("test_state_studies");
}
