/* test_store.c - store.c against the harness redis-server: URLs, keys, dedupe, blobs, reconnect. */
#include "ensflow/store.h"

#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char study[64];
static char base_url[256]; /* redis://127.0.0.1:P (no /db) */
static char errstr[512];

static ens_redis_reply_t *cmd_ok(ens_redis_t *r, ens_redis_reply_t *reply, const char *what) {
    if (!reply)
        fprintf(stderr, "%s: NULL reply: %s\n", what, errstr);
    (void)r;
    return reply;
}

static long long cmd_int(ens_redis_t *r, const char *fmt, const char *arg) {
    ens_redis_reply_t *rep = cmd_ok(r, ens_redis_command(r, errstr, sizeof errstr, fmt, arg), fmt);
    long long v = -1;
    CHECK(rep && rep->type == ENS_REPLY_INTEGER);
    if (rep && rep->type == ENS_REPLY_INTEGER)
        v = rep->integer;
    ens_redis_reply_free(rep);
    return v;
}

static void test_url_errors(void) {
    ens_redis_t *r = (ens_redis_t *)1;
    static const char *bad[] = {
        "http://127.0.0.1:6379",  "127.0.0.1:6379",          "redis://127.0.0.1:0",
        "redis://127.0.0.1:65536", "redis://127.0.0.1:12ab",  "redis://127.0.0.1:",
        "redis://",               "redis://:6379",           "redis://h/x",
        "redis://h/1?foo=bar",    "redis://user@h",          "redis://:pw%zz@h",
        "unix://relative.sock",   "unix:///tmp/x.sock?db=q", "rediss://h",
        "redis://[::1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errstr[0] = '\0';
        int rc = ens_redis_connect(bad[i], &r, errstr, sizeof errstr);
        if (rc != ENS_ERR_INVALID)
            fprintf(stderr, "url '%s' gave %d (%s)\n", bad[i], rc, errstr);
        CHECK_EQ_INT(rc, ENS_ERR_INVALID);
        CHECK(r == NULL);
        CHECK(errstr[0] != '\0');
    }
    CHECK_EQ_INT(ens_redis_connect(NULL, &r, errstr, sizeof errstr), ENS_ERR_INVALID);
    /* nothing listens on port 1: unreachable is ENS_ERR_REDIS, at once */
    CHECK_EQ_INT(ens_redis_connect("redis://127.0.0.1:1/0", &r, errstr, sizeof errstr),
                 ENS_ERR_REDIS);
    CHECK(r == NULL);
    CHECK_EQ_INT(ens_redis_connect("unix:///nonexistent/redis.sock", &r, errstr, sizeof errstr),
                 ENS_ERR_REDIS);
    ens_redis_free(NULL);
    ens_redis_reply_free(NULL);
}

static void test_keys(void) {
    char buf[64];
    CHECK_STR(ens_key(buf, sizeof buf, "s1", "trial:%d", 7), "ens:{s1}:trial:7");
    CHECK(ens_key(buf, sizeof buf, "s1", "%s", "") == buf);
    CHECK_STR(buf, "ens:{s1}:");
    char small[12];
    CHECK(ens_key(small, sizeof small, "s1", "trial:%d", 7) == NULL);   /* suffix overflow */
    CHECK(ens_key(small, 10, "s1", "x") == NULL);                    /* exact fit + NUL: 11 */
    CHECK(ens_key(small, 11, "s1", "x") != NULL);
    CHECK(ens_key(small, sizeof small, "a-very-long-study", "x") == NULL); /* prefix overflow */
    CHECK(ens_key(buf, sizeof buf, NULL, "x") == NULL);
    CHECK(ens_key(buf, sizeof buf, "", "x") == NULL);
    CHECK(ens_key(buf, sizeof buf, "a}b", "x") == NULL); /* would move the hash tag */
    /* model ids and their trial */
    char mid[64], trial[64];
    ens_model_id("t-00003", 5.0 / 3, mid, sizeof mid);
    CHECK_STR(mid, "t-00003-e1.667");
    CHECK_OK(ens_model_id_trial(mid, trial, sizeof trial));
    CHECK_STR(trial, "t-00003");
    ens_model_id("t-00004", 1e-5, mid, sizeof mid);
    CHECK_OK(ens_model_id_trial(mid, trial, sizeof trial));
    CHECK_STR(trial, "t-00004");
    CHECK_EQ_INT(ens_model_id_trial("t-00003", trial, sizeof trial), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_model_id_trial("-e5", trial, sizeof trial), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_model_id_trial("t-00003-e", trial, sizeof trial), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_model_id_trial("t-00003-e5", trial, 4), ENS_ERR_INVALID);
}

static void test_basic(ens_redis_t *r) {
    /* an error reply is a reply, not NULL, and is not retried */
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "NOSUCHCOMMAND %s", "x");
    CHECK(rep && rep->type == ENS_REPLY_ERROR);
    ens_redis_reply_free(rep);

    /* binary-safe argv */
    char key[256];
    ens_key(key, sizeof key, study, "bin");
    const char val[] = {'a', 0, 'b', 0, (char)0xff};
    const char *argv[3] = {"SET", key, val};
    size_t lens[3] = {3, strlen(key), sizeof val};
    rep = ens_redis_commandv(r, 3, argv, lens, errstr, sizeof errstr);
    CHECK(rep && rep->type == ENS_REPLY_STATUS);
    ens_redis_reply_free(rep);
    rep = ens_redis_command(r, errstr, sizeof errstr, "GET %b", key, strlen(key));
    CHECK(rep && rep->type == ENS_REPLY_STRING && rep->len == sizeof val &&
          memcmp(rep->str, val, sizeof val) == 0);
    ens_redis_reply_free(rep);
    CHECK_EQ_INT(cmd_int(r, "DEL %s", key), 1);
    CHECK(ens_redis_commandv(r, 0, argv, NULL, errstr, sizeof errstr) == NULL);
}

static void test_first_time(ens_redis_t *r) {
    CHECK_EQ_INT(ens_store_first_time(r, study, "trainer", "ev-1", 60), 1);
    CHECK_EQ_INT(ens_store_first_time(r, study, "trainer", "ev-1", 60), 0);
    CHECK_EQ_INT(ens_store_first_time(r, study, "trainer", "ev-2", 60), 1);
    CHECK_EQ_INT(ens_store_first_time(r, study, "evaluator", "ev-1", 60), 1);
    char key[256];
    ens_key(key, sizeof key, study, "seen:trainer:ev-1");
    long long ttl = cmd_int(r, "TTL %s", key);
    CHECK(ttl > 0 && ttl <= 60);
    CHECK_EQ_INT(ens_store_first_time(r, study, "trainer", "ev-1", -1), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_store_first_time(r, "", "trainer", "ev-1", 60), ENS_ERR_INVALID);
    const char *scopes[3][2] = {{"trainer", "ev-1"}, {"trainer", "ev-2"}, {"evaluator", "ev-1"}};
    for (int i = 0; i < 3; i++) {
        ens_key(key, sizeof key, study, "seen:%s:%s", scopes[i][0], scopes[i][1]);
        CHECK_EQ_INT(cmd_int(r, "DEL %s", key), 1);
    }
}

static void fill(unsigned char *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (unsigned char)(seed >> 24);
    }
}

static long long key_exists(ens_redis_t *r, const char *key) {
    return cmd_int(r, "EXISTS %s", key);
}

static void roundtrip(ens_redis_t *r, const char *key, size_t n, size_t chunk) {
    unsigned char *src = malloc(n ? n : 1);
    fill(src, n, (uint32_t)n);
    int rc = ens_store_blob_put(r, key, src, n, chunk, errstr, sizeof errstr);
    if (rc)
        fprintf(stderr, "put %zu/%zu: %s\n", n, chunk, errstr);
    CHECK_OK(rc);
    void *got = NULL;
    size_t len = 12345;
    rc = ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr);
    if (rc)
        fprintf(stderr, "get %zu/%zu: %s\n", n, chunk, errstr);
    CHECK_OK(rc);
    CHECK_EQ_INT(len, n);
    CHECK(got != NULL);
    CHECK(got && len == n && (n == 0 || memcmp(got, src, n) == 0));
    free(got);
    free(src);
}

static void test_blobs(ens_redis_t *r) {
    enum { CH = 1000 };
    char key[256], ck[300];
    ens_key(key, sizeof key, study, "blob:a");
    size_t sizes[] = {0, 1, CH - 1, CH, CH + 1, 5 * CH};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        roundtrip(r, key, sizes[i], CH);
    roundtrip(r, key, 3 * 1000 * 1000, 16 * 1024); /* 184 chunks: several GET groups */
    roundtrip(r, key, 3 * 1000 * 1000, 0);         /* default chunk size */

    /* overwrite a 5-chunk blob with a 2-chunk one: stale chunks 2..4 are gone */
    roundtrip(r, key, 5 * CH, CH);
    snprintf(ck, sizeof ck, "%s:c:4", key);
    CHECK_EQ_INT(key_exists(r, ck), 1);
    roundtrip(r, key, 2 * CH - 10, CH);
    for (int i = 0; i < 6; i++) {
        snprintf(ck, sizeof ck, "%s:c:%d", key, i);
        CHECK_EQ_INT(key_exists(r, ck), i < 2 ? 1 : 0);
    }

    /* corruption: same length other bytes (CRC), other length, missing chunk, bad meta */
    void *got = (void *)1;
    size_t len = 1;
    snprintf(ck, sizeof ck, "%s:c:1", key);
    char junk[CH];
    memset(junk, 'x', sizeof junk);
    ens_redis_reply_t *rep =
        ens_redis_command(r, errstr, sizeof errstr, "SET %s %b", ck, junk, (size_t)(CH - 10));
    ens_redis_reply_free(rep);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(errstr, "CRC") != NULL);
    CHECK(got == NULL && len == 0);
    rep = ens_redis_command(r, errstr, sizeof errstr, "SET %s %b", ck, junk, (size_t)5);
    ens_redis_reply_free(rep);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK_EQ_INT(cmd_int(r, "DEL %s", ck), 1);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(errstr, "missing") != NULL);
    char meta[300];
    snprintf(meta, sizeof meta, "%s:meta", key);
    rep = ens_redis_command(r, errstr, sizeof errstr, "HSET %s len 99999999999", meta);
    ens_redis_reply_free(rep);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    rep = ens_redis_command(r, errstr, sizeof errstr, "HSET %s len 1000 chunks 7", meta);
    ens_redis_reply_free(rep);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);
    rep = ens_redis_command(r, errstr, sizeof errstr, "HDEL %s crc32", meta);
    ens_redis_reply_free(rep);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_CORRUPT);

    /* delete, then missing */
    CHECK_OK(ens_store_blob_del(r, key, errstr, sizeof errstr));
    CHECK_EQ_INT(key_exists(r, meta), 0);
    snprintf(ck, sizeof ck, "%s:c:0", key);
    CHECK_EQ_INT(key_exists(r, ck), 0);
    CHECK_EQ_INT(ens_store_blob_get(r, key, &got, &len, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_store_blob_del(r, key, errstr, sizeof errstr)); /* missing is fine */

    /* a delete also removes the chunks */
    roundtrip(r, key, 3 * CH, CH);
    CHECK_OK(ens_store_blob_del(r, key, errstr, sizeof errstr));
    for (int i = 0; i < 3; i++) {
        snprintf(ck, sizeof ck, "%s:c:%d", key, i);
        CHECK_EQ_INT(key_exists(r, ck), 0);
    }

    /* argument checks */
    CHECK_EQ_INT(ens_store_blob_put(r, key, NULL, 5, 0, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_store_blob_put(r, "", "x", 1, 0, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_store_blob_get(r, key, NULL, &len, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
}

static void test_pipeline(ens_redis_t *r) {
    enum { N = 100 };
    char key[256];
    ens_key(key, sizeof key, study, "counter");
    const char *argv[2] = {"INCR", key};
    const char **cmds[N];
    int argc[N];
    ens_redis_reply_t *rep[N];
    for (int i = 0; i < N; i++) {
        cmds[i] = argv;
        argc[i] = 2;
    }
    CHECK_OK(ens_redis_pipeline(r, N, argc, cmds, rep, errstr, sizeof errstr));
    for (int i = 0; i < N; i++) {
        CHECK(rep[i] && rep[i]->type == ENS_REPLY_INTEGER && rep[i]->integer == i + 1);
        ens_redis_reply_free(rep[i]);
    }
    CHECK_EQ_INT(cmd_int(r, "DEL %s", key), 1);
    CHECK_OK(ens_redis_pipeline(r, 0, NULL, NULL, NULL, errstr, sizeof errstr));
}

static long long client_id(ens_redis_t *r) {
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "CLIENT ID");
    long long id = rep && rep->type == ENS_REPLY_INTEGER ? rep->integer : -1;
    ens_redis_reply_free(rep);
    return id;
}

static void kill_client(ens_redis_t *killer, long long id) {
    ens_redis_reply_t *rep = ens_redis_command(killer, errstr, sizeof errstr, "CLIENT KILL ID %lld", id);
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1);
    ens_redis_reply_free(rep);
}

/* The killed connection reconnects, SELECTs its database again and resends the command. */
static void test_reconnect(ens_redis_t *killer) {
    char url[300], key[256];
    snprintf(url, sizeof url, "%s/3", base_url);
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    if (!r)
        return;
    ens_key(key, sizeof key, study, "db3");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "SET %s here", key);
    ens_redis_reply_free(rep);
    long long id = client_id(r);
    CHECK(id > 0);
    kill_client(killer, id);
    rep = ens_redis_command(r, errstr, sizeof errstr, "GET %s", key);
    if (!rep)
        fprintf(stderr, "after CLIENT KILL: %s\n", errstr);
    CHECK(rep && rep->type == ENS_REPLY_STRING && strcmp(rep->str, "here") == 0);
    ens_redis_reply_free(rep);
    long long id2 = client_id(r);
    CHECK(id2 > 0 && id2 != id);
    /* the killer is on db 0: the key is not there */
    CHECK_EQ_INT(cmd_int(killer, "EXISTS %s", key), 0);

    /* pipelines and blobs reconnect too */
    kill_client(killer, id2);
    test_pipeline(r);
    kill_client(killer, client_id(r));
    roundtrip(r, key, 3000, 1000);
    CHECK_OK(ens_store_blob_del(r, key, errstr, sizeof errstr));
    CHECK_EQ_INT(cmd_int(r, "DEL %s", key), 1);

    /* budget 0: no resend within the call, the next call connects again */
    CHECK_OK(ens_redis_set_timeouts(r, 1000, 5000, 0));
    kill_client(killer, client_id(r));
    rep = ens_redis_command(r, errstr, sizeof errstr, "PING");
    CHECK(rep == NULL);
    ens_redis_reply_free(rep);
    rep = ens_redis_command(r, errstr, sizeof errstr, "PING");
    CHECK(rep && rep->type == ENS_REPLY_STATUS);
    ens_redis_reply_free(rep);
    ens_redis_free(r);
}

/* ACL user in the URL: AUTH user pass, again after a reconnect; a wrong password fails. */
static void test_acl(ens_redis_t *admin) {
    char user[64], url[400];
    snprintf(user, sizeof user, "ens-test-%d", (int)getpid());
    ens_redis_reply_t *rep = ens_redis_command(admin, errstr, sizeof errstr,
                                        "ACL SETUSER %s on >p@ss:w ~* &* +@all", user);
    CHECK(rep && rep->type == ENS_REPLY_STATUS);
    ens_redis_reply_free(rep);
    /* '@' and ':' in the password are %-escaped in the URL */
    snprintf(url, sizeof url, "redis://%s:p%%40ss%%3Aw@%s/0", user, base_url + 8);
    ens_redis_t *r = NULL;
    int rc = ens_redis_connect(url, &r, errstr, sizeof errstr);
    if (rc)
        fprintf(stderr, "acl connect: %s\n", errstr);
    CHECK_OK(rc);
    if (r) {
        rep = ens_redis_command(r, errstr, sizeof errstr, "ACL WHOAMI");
        CHECK(rep && rep->type == ENS_REPLY_STRING && strcmp(rep->str, user) == 0);
        ens_redis_reply_free(rep);
        kill_client(admin, client_id(r));
        rep = ens_redis_command(r, errstr, sizeof errstr, "ACL WHOAMI");
        CHECK(rep && rep->type == ENS_REPLY_STRING && strcmp(rep->str, user) == 0);
        ens_redis_reply_free(rep);
        ens_redis_free(r);
    }
    r = NULL;
    snprintf(url, sizeof url, "redis://%s:wrong@%s/0", user, base_url + 8);
    CHECK_EQ_INT(ens_redis_connect(url, &r, errstr, sizeof errstr), ENS_ERR_REDIS);
    CHECK(r == NULL);
    CHECK(strstr(errstr, "AUTH") != NULL && strstr(errstr, "wrong") == NULL);
    rep = ens_redis_command(admin, errstr, sizeof errstr, "ACL DELUSER %s", user);
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1);
    ens_redis_reply_free(rep);
}

int main(void) {
    test_url_errors();
    test_keys();

    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_store: skipped: no redis.url in ENSFLOW_TEST_DIR (%s); run "
                        "tests/harness/up.sh first\n",
                getenv("ENSFLOW_TEST_DIR") ? getenv("ENSFLOW_TEST_DIR") : "unset");
        return check_failures ? check_done("test_store") : 77;
    }
    snprintf(base_url, sizeof base_url, "%s", url);
    char *slash = strrchr(base_url + 8, '/');
    if (slash)
        *slash = '\0';
    snprintf(study, sizeof study, "test-store-%d-%lld", (int)getpid(), (long long)time(NULL));

    ens_redis_t *r = NULL;
    int rc = ens_redis_connect(url, &r, errstr, sizeof errstr);
    if (rc) {
        fprintf(stderr, "test_store: connect %s: %s\n", url, errstr);
        CHECK_OK(rc);
        return check_done("test_store");
    }
    test_basic(r);
    test_first_time(r);
    test_blobs(r);
    test_pipeline(r);
    test_reconnect(r);
    test_acl(r);

    /* nothing of this run is left behind */
    char pattern[128];
    ens_key(pattern, sizeof pattern, study, "*");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "KEYS %s", pattern);
    CHECK(rep && rep->type == ENS_REPLY_ARRAY && rep->elements == 0);
    if (rep && rep->type == ENS_REPLY_ARRAY)
        for (size_t i = 0; i < rep->elements; i++) {
            fprintf(stderr, "left behind: %s\n", rep->element[i]->str);
            ens_redis_reply_free(ens_redis_command(r, errstr, sizeof errstr, "DEL %s",
                                                   rep->element[i]->str));
        }
    ens_redis_reply_free(rep);
    ens_redis_free(r);
    return check_done("test_store");
}
