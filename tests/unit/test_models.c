/* test_models.c - the model store (models.c) on a temporary directory and the harness Redis:
 * atomic files, CRC and length checks, references, the previous version's Redis blobs, odd
 * ids, listing, usage and removal. */
#include "ensflow/models.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "check.h"

static char errstr[512];
static char study[64];

static long long exists(ens_redis_t *r, const char *key) {
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "EXISTS %s", key);
    long long v = rep && rep->type == ENS_REPLY_INTEGER ? rep->integer : -1;
    ens_redis_reply_free(rep);
    return v;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

typedef struct {
    int n;
    char names[8][128];
} seen_t;

static int collect(void *opaque, const char *name, uint64_t bytes, double age_s) {
    seen_t *s = opaque;
    (void)bytes;
    CHECK(age_s >= -1 && age_s < 600); /* written by this test */
    if (s->n < 8)
        snprintf(s->names[s->n++], sizeof s->names[0], "%s", name);
    return 0;
}

static int seen_has(const seen_t *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return 1;
    return 0;
}

/* Write bytes over a file (corruption, truncation). */
static void write_raw(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, len, f) == len);
        fclose(f);
    }
}

static void *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

static void test_round_trip(ens_models_t *ms, ens_redis_t *r) {
    char data[3000], path[1024], key[256];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 + 3);
    CHECK_OK(ens_models_put(ms, r, study, "model:t-0001-e1", data, sizeof data, errstr,
                            sizeof errstr));
    snprintf(path, sizeof path, "%s/%s/model/t-0001-e1.ensm", ens_models_dir(ms), study);
    CHECK(file_exists(path));
    ens_key(key, sizeof key, study, "model:t-0001-e1:ref");
    CHECK_EQ_INT(exists(r, key), 1);
    void *got = NULL;
    size_t len = 0;
    CHECK_OK(ens_models_get(ms, r, study, "model:t-0001-e1", &got, &len, errstr, sizeof errstr));
    CHECK(len == sizeof data && got && !memcmp(got, data, len));
    free(got);
    /* overwritten with fewer bytes: the new bytes, whole */
    CHECK_OK(ens_models_put(ms, r, study, "model:t-0001-e1", "short", 5, errstr, sizeof errstr));
    CHECK_OK(ens_models_get(ms, r, study, "model:t-0001-e1", &got, &len, errstr, sizeof errstr));
    CHECK(len == 5 && got && !memcmp(got, "short", 5));
    free(got);
    /* without Redis: the file alone */
    CHECK_OK(ens_models_get(ms, NULL, study, "model:t-0001-e1", &got, &len, errstr,
                            sizeof errstr));
    CHECK(len == 5);
    free(got);
    /* no temporary file is left beside it */
    uint64_t bytes = 0;
    long files = 0;
    CHECK_OK(ens_models_study_usage(ms, study, &bytes, &files, errstr, sizeof errstr));
    CHECK_EQ_INT(files, 1);
    CHECK_EQ_INT((long long)bytes, 24 + 5);
}

static void test_damage(ens_models_t *ms, ens_redis_t *r) {
    char data[1000], path[1024];
    memset(data, 'x', sizeof data);
    CHECK_OK(ens_models_put(ms, r, study, "model:t-0002-e1", data, sizeof data, errstr,
                            sizeof errstr));
    snprintf(path, sizeof path, "%s/%s/model/t-0002-e1.ensm", ens_models_dir(ms), study);
    size_t flen = 0;
    unsigned char *file = slurp(path, &flen);
    CHECK(file && flen == 24 + sizeof data);
    void *got = NULL;
    size_t len = 0;
    if (!file)
        return;
    /* torn: the writer's bytes cut short */
    write_raw(path, file, flen - 10);
    errstr[0] = '\0';
    CHECK_EQ_INT(ens_models_get(ms, r, study, "model:t-0002-e1", &got, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(errstr, "t-0002-e1.ensm") && strstr(errstr, "torn"));
    CHECK(got == NULL);
    /* one byte flipped: the CRC */
    file[500] ^= 1;
    write_raw(path, file, flen);
    CHECK_EQ_INT(ens_models_get(ms, r, study, "model:t-0002-e1", &got, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(errstr, "CRC") != NULL);
    /* not a model file at all */
    write_raw(path, "hello", 5);
    CHECK_EQ_INT(ens_models_get(ms, r, study, "model:t-0002-e1", &got, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_CORRUPT);
    /* referenced, but the file is gone */
    unlink(path);
    CHECK_EQ_INT(ens_models_get(ms, r, study, "model:t-0002-e1", &got, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(errstr, "missing") != NULL);
    free(file);
    CHECK_OK(ens_models_del(ms, r, study, "model:t-0002-e1", errstr, sizeof errstr));
}

/* A writer killed mid-write leaves a temporary file; one killed after the rename leaves a file
 * without a reference. Neither is a model for a reader. */
static void test_killed_writer(ens_models_t *ms, ens_redis_t *r) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s/model", ens_models_dir(ms), study);
    snprintf(path, sizeof path, "%s/.tmp.t-0003-e1.999.1", dir);
    write_raw(path, "ENSMODL1half", 12);
    void *got = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ens_models_get(ms, r, study, "model:t-0003-e1", &got, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_models_put(ms, NULL, study, "model:t-0004-e1", "abc", 3, errstr,
                            sizeof errstr)); /* no reference: as if killed before it */
    CHECK_EQ_INT(ens_models_get(ms, r, study, "model:t-0004-e1", &got, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_NOTFOUND);
    seen_t s = {0};
    CHECK_OK(ens_models_list(ms, study, collect, &s, errstr, sizeof errstr));
    CHECK(!seen_has(&s, "model:t-0003-e1")); /* the temporary file is not listed */
    CHECK(seen_has(&s, "model:t-0004-e1"));
    CHECK(seen_has(&s, "model:t-0001-e1"));
    uint64_t bytes = 0;
    long files = 0;
    CHECK_OK(ens_models_study_usage(ms, study, &bytes, &files, errstr, sizeof errstr));
    CHECK_EQ_INT(files, 3); /* usage counts what the disk holds, temporary files too */
    long removed = -1;
    CHECK_OK(ens_models_sweep_temp(ms, study, 60, &removed, errstr, sizeof errstr));
    CHECK_EQ_INT(removed, 0); /* young: perhaps a live writer's */
    CHECK(file_exists(path));
    struct utimbuf old = {.actime = time(NULL) - 600, .modtime = time(NULL) - 600};
    CHECK_EQ_INT(utime(path, &old), 0);
    CHECK_OK(ens_models_sweep_temp(ms, study, 60, &removed, errstr, sizeof errstr));
    CHECK_EQ_INT(removed, 1);
    CHECK(!file_exists(path));
    CHECK_OK(ens_models_del(ms, r, study, "model:t-0004-e1", errstr, sizeof errstr));
}

/* A study of the previous version: its models are blobs in Redis. */
static void test_previous_version(ens_models_t *ms, ens_redis_t *r) {
    char key[256], meta[300];
    ens_key(key, sizeof key, study, "ckpt:t-0005");
    snprintf(meta, sizeof meta, "%s:meta", key);
    CHECK_OK(ens_store_blob_put(r, key, "old-bytes", 9, 0, errstr, sizeof errstr));
    void *got = NULL;
    size_t len = 0;
    CHECK_OK(ens_models_get(ms, r, study, "ckpt:t-0005", &got, &len, errstr, sizeof errstr));
    CHECK(len == 9 && got && !memcmp(got, "old-bytes", 9));
    free(got);
    /* written again through the store: on disk, and the Redis copy is dropped */
    CHECK_OK(ens_models_put(ms, r, study, "ckpt:t-0005", "new", 3, errstr, sizeof errstr));
    CHECK_EQ_INT(exists(r, meta), 0);
    CHECK_OK(ens_models_get(ms, r, study, "ckpt:t-0005", &got, &len, errstr, sizeof errstr));
    CHECK(len == 3 && got && !memcmp(got, "new", 3));
    free(got);
    /* deleting removes reference, file and any blob */
    CHECK_OK(ens_store_blob_put(r, key, "stray", 5, 0, errstr, sizeof errstr));
    CHECK_OK(ens_models_del(ms, r, study, "ckpt:t-0005", errstr, sizeof errstr));
    CHECK_EQ_INT(exists(r, meta), 0);
    snprintf(meta, sizeof meta, "%s:ref", key);
    CHECK_EQ_INT(exists(r, meta), 0);
    CHECK_EQ_INT(ens_models_get(ms, r, study, "ckpt:t-0005", &got, &len, errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    CHECK_OK(ens_models_del(ms, r, study, "ckpt:t-0005", errstr, sizeof errstr)); /* again */
}

/* Ids are not file names: any id maps to one name inside the study's directory. */
static void test_odd_ids(ens_models_t *ms) {
    char odd_study[80];
    snprintf(odd_study, sizeof odd_study, "../%s/x y", study);
    CHECK_OK(ens_models_put(ms, NULL, odd_study, "model:../../etc/%zz", "q", 1, errstr,
                            sizeof errstr));
    seen_t s = {0};
    CHECK_OK(ens_models_list(ms, odd_study, collect, &s, errstr, sizeof errstr));
    CHECK_EQ_INT(s.n, 1);
    CHECK(seen_has(&s, "model:../../etc/%zz"));
    char parent[1024];
    snprintf(parent, sizeof parent, "%s/../%s", ens_models_dir(ms), study);
    CHECK(!file_exists(parent)); /* nothing climbed out of the store */
    CHECK_OK(ens_models_study_remove(ms, odd_study, errstr, sizeof errstr));
    CHECK_EQ_INT(ens_models_put(ms, NULL, study, "Model:x", "q", 1, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_models_put(ms, NULL, study, "model:", "q", 1, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_models_put(ms, NULL, "", "model:x", "q", 1, errstr, sizeof errstr),
                 ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_models_put(ms, NULL, "a{b}", "model:x", "q", 1, errstr, sizeof errstr),
                 ENS_ERR_INVALID); /* not a Redis key either */
}

static void test_remove(ens_models_t *ms, ens_redis_t *r) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", ens_models_dir(ms), study);
    CHECK(file_exists(dir));
    CHECK_OK(ens_models_del(ms, r, study, "model:t-0001-e1", errstr, sizeof errstr));
    CHECK_OK(ens_models_study_remove(ms, study, errstr, sizeof errstr));
    CHECK(!file_exists(dir));
    uint64_t bytes = 1;
    long files = 1;
    CHECK_OK(ens_models_study_usage(ms, study, &bytes, &files, errstr, sizeof errstr));
    CHECK(bytes == 0 && files == 0);
    CHECK_OK(ens_models_study_remove(ms, study, errstr, sizeof errstr)); /* gone is fine */
}

int main(void) {
    ens_models_t *ms = NULL;
    CHECK_EQ_INT(ens_models_open("", &ms, errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_models_open("/proc/version/models", &ms, errstr, sizeof errstr),
                 ENS_ERR_IO);
    char tmpl[] = "/tmp/ens-models-XXXXXX", root[256];
    CHECK(mkdtemp(tmpl) != NULL);
    snprintf(root, sizeof root, "%s/store/nested", tmpl);
    CHECK_OK(ens_models_open(root, &ms, errstr, sizeof errstr));
    snprintf(study, sizeof study, "test-models-%d-%lld", (int)getpid(), (long long)time(NULL));
    test_odd_ids(ms);

    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_models: Redis parts skipped: no redis.url in ENSFLOW_TEST_DIR; "
                        "run tests/harness/up.sh first\n");
    } else {
        ens_redis_t *r = NULL;
        CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
        if (r) {
            test_round_trip(ms, r);
            test_damage(ms, r);
            test_killed_writer(ms, r);
            test_previous_version(ms, r);
            test_remove(ms, r);
            char pattern[128];
            ens_key(pattern, sizeof pattern, study, "*");
            ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "KEYS %s", pattern);
            CHECK(rep && rep->type == ENS_REPLY_ARRAY && rep->elements == 0);
            ens_redis_reply_free(rep);
            ens_redis_free(r);
        }
    }
    ens_models_close(ms);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    CHECK_EQ_INT(system(cmd), 0);
    return check_done("test_models");
}
