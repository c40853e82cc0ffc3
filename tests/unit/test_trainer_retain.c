/* test_trainer_retain.c - retain.c on a store directory and the harness Redis: a finished
 * study's compaction (resume checkpoints, optimiser state, files of dead writers, orphans, but
 * not files young enough to have a live writer), a model of the previous version moved into
 * the store, the queue and the lock (a running study or another trainer's is not touched),
 * and the weights-only rewrite keeping the weights. */
#include "retain.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#include "check.h"
#include "ensflow/nn.h"
#include "retain_fixture.h"

static char errstr[512];
static char study[64];
static ens_state_t *state; /* the Redis state over the test's connection */

/* A small trained MLP (one step: it has optimiser state), saved under name. */
static ens_model_t *put_model(ens_models_t *ms, ens_redis_t *r, const char *name, int legacy) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_model_t *m = fixture_trained_model(&buf, &len);
    if (!m)
        return NULL;
    if (legacy) {
        char key[256];
        ens_key(key, sizeof key, study, "%s", name);
        CHECK_OK(ens_store_blob_put(r, key, buf, len, 0, errstr, sizeof errstr));
    } else
        CHECK_OK(ens_models_put(ms, r, study, name, buf, len, errstr, sizeof errstr));
    free(buf);
    return m;
}

/* 1 when the stored model has optimiser state; -1 when it does not load. */
static int has_state(ens_models_t *ms, ens_redis_t *r, const char *name, ens_model_t *same) {
    void *blob = NULL;
    size_t len = 0;
    if (ens_models_get(ms, r, study, name, &blob, &len, errstr, sizeof errstr))
        return -1;
    return fixture_has_state(blob, len, same);
}

static int queued(ens_redis_t *r) {
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr,
                                        "SISMEMBER " ENS_STATE_KEY_STUDIES_COMPACT " %s", study);
    int v = rep && rep->type == ENS_REPLY_INTEGER ? (int)rep->integer : -1;
    ens_redis_reply_free(rep);
    return v;
}

static void set_status(ens_redis_t *r, const char *status) {
    char key[256];
    ens_key(key, sizeof key, study, "study");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "HSET %s status %s", key, status));
}

static void test_compaction(ens_models_t *ms, ens_redis_t *r) {
    ens_model_t *m1 = put_model(ms, r, "model:t-00001-e1", 0);
    ens_model_t *m2 = put_model(ms, r, "model:t-00002-e3", 0);
    ens_model_t *ck = put_model(ms, r, "ckpt:t-00002", 0);
    ens_model_t *old = put_model(ms, r, "model:t-00003-e1", 1); /* the previous version's */
    CHECK(m1 && m2 && ck && old);
    if (!m1 || !m2 || !ck || !old)
        return;
    CHECK_EQ_INT(has_state(ms, r, "model:t-00001-e1", NULL), 1);
    /* a dead writer's temporary file and a file whose writer died before its reference, both
     * old; and the same two young, as a writer at work leaves them */
    char path[1024], young_tmp[1024], young[1024], orphan[1024];
    snprintf(path, sizeof path, "%s/%s/model/.tmp.t-00009-e1.4242.1", ens_models_dir(ms), study);
    fixture_write_raw(path, "ENSMODL1 half of a model");
    fixture_age(path, 3600);
    snprintf(young_tmp, sizeof young_tmp, "%s/%s/model/.tmp.t-00007-e1.4243.1",
             ens_models_dir(ms), study);
    fixture_write_raw(young_tmp, "ENSMODL1 being written");
    CHECK_OK(ens_models_put(ms, NULL, study, "model:t-00008-e1", "orphan", 6, errstr,
                            sizeof errstr));
    snprintf(orphan, sizeof orphan, "%s/%s/model/t-00008-e1.ensm", ens_models_dir(ms), study);
    fixture_age(orphan, 3600);
    CHECK_OK(ens_models_put(ms, NULL, study, "model:t-00006-e1", "young", 5, errstr,
                            sizeof errstr));
    snprintf(young, sizeof young, "%s/%s/model/t-00006-e1.ensm", ens_models_dir(ms), study);

    /* queued while it runs (extended after it ended): taken off the queue, not touched */
    ens_retain_job_t job = {0};
    set_status(r, "running");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SADD " ENS_STATE_KEY_STUDIES_COMPACT " %s",
                            study));
    CHECK_EQ_INT(ens_retain_study_step(&job, ms, state, "trainer-a", 1000), 0);
    CHECK_EQ_INT(queued(r), 0);
    CHECK_EQ_INT(has_state(ms, r, "model:t-00001-e1", NULL), 1);

    /* the study ends: queued again; another trainer holds its lock: not touched either */
    set_status(r, "complete");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SADD " ENS_STATE_KEY_STUDIES_COMPACT " %s",
                            study));
    char lock[256];
    ens_key(lock, sizeof lock, study, "compacting");
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SET %s trainer-b PX 60000", lock));
    CHECK_EQ_INT(ens_retain_study_step(&job, ms, state, "trainer-a", 1000), 0);
    CHECK_EQ_INT(has_state(ms, r, "model:t-00001-e1", NULL), 1);
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "DEL %s", lock));

    /* an idle trainer compacts it, in slices (a budget of 0 ms: one file a step) */
    int steps = 0, rc;
    while ((rc = ens_retain_study_step(&job, ms, state, "trainer-a", 0)) == 1 && queued(r) == 1 &&
           steps < 50)
        steps++;
    CHECK_EQ_INT(rc, 1);
    CHECK(steps >= 3); /* several slices */
    CHECK_EQ_INT(queued(r), 0);
    CHECK(job.study[0] == '\0'); /* done, lock released */
    CHECK_EQ_INT(ens_retain_study_step(&job, ms, state, "trainer-a", 0), 0); /* nothing queued */

    CHECK_EQ_INT(has_state(ms, r, "model:t-00001-e1", m1), 0); /* weights only, same weights */
    CHECK_EQ_INT(has_state(ms, r, "model:t-00002-e3", m2), 0);
    void *blob = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ens_models_get(ms, r, study, "ckpt:t-00002", &blob, &len, errstr,
                                sizeof errstr),
                 ENS_ERR_NOTFOUND);
    /* the previous version's blob: moved into the store, weights only */
    CHECK_EQ_INT(has_state(ms, r, "model:t-00003-e1", old), 0);
    char key[256];
    ens_key(key, sizeof key, study, "model:t-00003-e1:ref");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "EXISTS %s", key);
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1);
    ens_redis_reply_free(rep);
    struct stat st;
    CHECK(stat(path, &st) != 0);      /* swept */
    CHECK(stat(orphan, &st) != 0);    /* no reference, old: no model, deleted */
    CHECK(stat(young_tmp, &st) == 0); /* young: perhaps a live writer's, kept */
    CHECK(stat(young, &st) == 0);
    unlink(young_tmp);

    /* twice is the same as once */
    ens_retain_stats_t s;
    CHECK_OK(ens_retain_study_compact(ms, state, study, &s, errstr, sizeof errstr));
    CHECK(s.models_stripped == 0 && s.checkpoints_deleted == 0 && s.orphans_deleted == 0 &&
          s.temp_deleted == 0 && s.bytes_before == s.bytes_after && s.bytes_after > 0);
    set_status(r, "running"); /* compacting a running study is refused */
    CHECK_EQ_INT(ens_retain_study_compact(ms, state, study, &s, errstr, sizeof errstr),
                 ENS_ERR_INVALID);

    ens_model_free(m1);
    ens_model_free(m2);
    ens_model_free(ck);
    ens_model_free(old);
}

/* The rewrite of one model: only a model with state is rewritten; the bytes shrink. */
static void test_weights_only(ens_models_t *ms, ens_redis_t *r) {
    ens_model_t *m = put_model(ms, r, "model:t-00004-e1", 0);
    uint64_t before = 0, after = 0;
    long files = 0;
    CHECK_OK(ens_models_study_usage(ms, study, &before, &files, errstr, sizeof errstr));
    int rewritten = 0;
    CHECK_OK(ens_retain_model_weights_only(ms, state, study, "model:t-00004-e1", &rewritten,
                                           errstr,
                                     sizeof errstr));
    CHECK_EQ_INT(rewritten, 1);
    CHECK_OK(ens_models_study_usage(ms, study, &after, &files, errstr, sizeof errstr));
    CHECK(after < before);
    CHECK_OK(ens_retain_model_weights_only(ms, state, study, "model:t-00004-e1", &rewritten,
                                           errstr,
                                     sizeof errstr));
    CHECK_EQ_INT(rewritten, 0);
    CHECK_EQ_INT(ens_retain_model_weights_only(ms, state, study, "model:t-00099-e1", &rewritten,
                                               errstr,
                                         sizeof errstr),
                 ENS_ERR_NOTFOUND);
    ens_model_free(m);
}

int main(void) {
    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_trainer_retain: no redis.url from the harness; skipped\n");
        return 77;
    }
    char dir[] = "/tmp/ens-test-retain-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    ens_models_t *ms = NULL;
    ens_redis_t *r = NULL;
    CHECK_OK(ens_models_open(dir, &ms, errstr, sizeof errstr));
    CHECK_OK(ens_redis_connect(url, &r, errstr, sizeof errstr));
    snprintf(study, sizeof study, "retain-%d-%lld", (int)getpid(), (long long)time(NULL));
    if (ms && r)
        CHECK_OK(ens_state_redis_new(r, ms, &state));
    if (ms && r && state) {
        test_compaction(ms, r);
        test_weights_only(ms, r);
        char pattern[128], key[256];
        ens_key(pattern, sizeof pattern, study, "*");
        ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "KEYS %s", pattern);
        for (size_t i = 0; rep && rep->type == ENS_REPLY_ARRAY && i < rep->elements; i++) {
            snprintf(key, sizeof key, "%s", rep->element[i]->str);
            ens_redis_exec(r, errstr, sizeof errstr, "DEL %s", key);
        }
        ens_redis_reply_free(rep);
        CHECK_OK(ens_models_study_remove(ms, study, errstr, sizeof errstr));
    }
    ens_state_free(state);
    ens_redis_free(r);
    ens_models_close(ms);
    CHECK_EQ_INT(rmdir(dir), 0);
    return check_done("test_trainer_retain");
}
