/* test_trainer_retain_mem.c - retain.c on a store directory and the in-memory state, no stack:
 * the queue (a running study is taken off it untouched), the lock (another trainer's study is
 * not touched; the compacting trainer holds it while it works and releases it at the end), a
 * finished study compacted in slices (resume checkpoints and their references gone, optimiser
 * state dropped with the weights kept, orphans and dead writers' files deleted, young files
 * kept), twice the same as once, and the weights-only rewrite of one model. */
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
static const char *study = "s-retain";

/* A small trained MLP (one step: it has optimiser state), stored under name. */
static ens_model_t *put_model(ens_models_t *ms, ens_state_t *st, const char *name) {
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_model_t *m = fixture_trained_model(&buf, &len);
    if (!m)
        return NULL;
    CHECK_OK(ens_state_model_file_put(st, ms, study, name, buf, len, errstr, sizeof errstr));
    free(buf);
    return m;
}

/* 1 when the stored model has optimiser state; 0 when not; -1 when it does not load. */
static int has_state(ens_models_t *ms, ens_state_t *st, const char *name, ens_model_t *same) {
    void *blob = NULL;
    size_t len = 0;
    if (ens_state_model_file_get(st, ms, study, name, &blob, &len, errstr, sizeof errstr))
        return -1;
    return fixture_has_state(blob, len, same);
}

static int queued(ens_state_t *st) {
    int q = -1;
    CHECK_OK(ens_state_compact_queued(st, study, &q, errstr, sizeof errstr));
    return q;
}

static void set_status(ens_state_t *st, const char *status) {
    ens_state_study_t s = {.dataset = "data", .val_fraction = 0.1, .top_k = 5};
    snprintf(s.status, sizeof s.status, "%s", status);
    CHECK_OK(ens_state_study_put(st, study, &s, errstr, sizeof errstr));
}

/* The lock's owner, "" when nobody holds it. */
static const char *owner(ens_state_t *st) {
    static char who[64];
    ens_err_t err = ens_state_compact_owner(st, study, who, sizeof who, errstr, sizeof errstr);
    CHECK(err == ENS_OK || err == ENS_ERR_NOTFOUND);
    return who;
}

static void test_compaction(ens_models_t *ms, ens_state_t *st) {
    ens_model_t *m1 = put_model(ms, st, "model:t-00001-e1");
    ens_model_t *m2 = put_model(ms, st, "model:t-00002-e3");
    ens_model_t *ck = put_model(ms, st, "ckpt:t-00002");
    CHECK(m1 && m2 && ck);
    if (!m1 || !m2 || !ck)
        return;
    CHECK_EQ_INT(has_state(ms, st, "model:t-00001-e1", NULL), 1);
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
    set_status(st, "running");
    CHECK_OK(ens_state_compact_add(st, study, errstr, sizeof errstr));
    CHECK_EQ_INT(queued(st), 1);
    CHECK_EQ_INT(ens_retain_study_step(&job, ms, st, "trainer-a", 1000), 0);
    CHECK_EQ_INT(queued(st), 0);
    CHECK_EQ_INT(has_state(ms, st, "model:t-00001-e1", NULL), 1);

    /* the study ends: queued again; another trainer holds its lock: not touched either */
    set_status(st, "complete");
    CHECK_OK(ens_state_compact_add(st, study, errstr, sizeof errstr));
    int held = 0;
    CHECK_OK(ens_state_compact_lock(st, study, "trainer-b", ENS_STATE_LOCK_TAKE, 60000, &held,
                                    errstr, sizeof errstr));
    CHECK_EQ_INT(held, 1);
    CHECK_EQ_INT(ens_retain_study_step(&job, ms, st, "trainer-a", 1000), 0);
    CHECK_EQ_INT(has_state(ms, st, "model:t-00001-e1", NULL), 1);
    CHECK_EQ_INT(queued(st), 1); /* still to do */
    CHECK_STR(owner(st), "trainer-b");
    CHECK_OK(ens_state_compact_lock(st, study, "trainer-b", ENS_STATE_LOCK_RELEASE, 60000,
                                    &held, errstr, sizeof errstr));
    CHECK_EQ_INT(held, 1);

    /* an idle trainer compacts it, in slices (a budget of 0 ms: one file a step), holding
     * the lock while it works */
    int steps = 0, rc, held_meanwhile = 1;
    while ((rc = ens_retain_study_step(&job, ms, st, "trainer-a", 0)) == 1 && queued(st) == 1 &&
           steps < 50) {
        held_meanwhile &= !strcmp(owner(st), "trainer-a");
        steps++;
    }
    CHECK_EQ_INT(rc, 1);
    CHECK(steps >= 3); /* several slices */
    CHECK(held_meanwhile);
    CHECK_EQ_INT(queued(st), 0);
    CHECK(job.study[0] == '\0'); /* done */
    CHECK_STR(owner(st), "");    /* lock released */
    CHECK_EQ_INT(ens_retain_study_step(&job, ms, st, "trainer-a", 0), 0); /* nothing queued */

    CHECK_EQ_INT(has_state(ms, st, "model:t-00001-e1", m1), 0); /* weights only, same weights */
    CHECK_EQ_INT(has_state(ms, st, "model:t-00002-e3", m2), 0);
    void *blob = NULL;
    size_t len = 0;
    CHECK_EQ_INT(ens_state_model_file_get(st, ms, study, "ckpt:t-00002", &blob, &len, errstr,
                                          sizeof errstr),
                 ENS_ERR_NOTFOUND);
    int ref = 1;
    CHECK_OK(ens_state_model_file_referenced(st, study, "ckpt:t-00002", &ref, errstr,
                                             sizeof errstr));
    CHECK_EQ_INT(ref, 0); /* the checkpoint's reference went with it */
    CHECK_OK(ens_state_model_file_referenced(st, study, "model:t-00001-e1", &ref, errstr,
                                             sizeof errstr));
    CHECK_EQ_INT(ref, 1);
    struct stat sb;
    CHECK(stat(path, &sb) != 0);      /* swept */
    CHECK(stat(orphan, &sb) != 0);    /* no reference, old: no model, deleted */
    CHECK(stat(young_tmp, &sb) == 0); /* young: perhaps a live writer's, kept */
    CHECK(stat(young, &sb) == 0);
    unlink(young_tmp);

    /* twice is the same as once */
    ens_retain_stats_t s;
    CHECK_OK(ens_retain_study_compact(ms, st, study, &s, errstr, sizeof errstr));
    CHECK(s.models_stripped == 0 && s.checkpoints_deleted == 0 && s.orphans_deleted == 0 &&
          s.temp_deleted == 0 && s.bytes_before == s.bytes_after && s.bytes_after > 0);
    CHECK_STR(owner(st), "");
    set_status(st, "running"); /* compacting a running study is refused */
    CHECK_EQ_INT(ens_retain_study_compact(ms, st, study, &s, errstr, sizeof errstr),
                 ENS_ERR_INVALID);

    ens_model_free(m1);
    ens_model_free(m2);
    ens_model_free(ck);
}

/* The rewrite of one model: only a model with state is rewritten; the bytes shrink. */
static void test_weights_only(ens_models_t *ms, ens_state_t *st) {
    ens_model_t *m = put_model(ms, st, "model:t-00004-e1");
    uint64_t before = 0, after = 0;
    long files = 0;
    CHECK_OK(ens_models_study_usage(ms, study, &before, &files, errstr, sizeof errstr));
    int rewritten = 0;
    CHECK_OK(ens_retain_model_weights_only(ms, st, study, "model:t-00004-e1", &rewritten,
                                           errstr, sizeof errstr));
    CHECK_EQ_INT(rewritten, 1);
    CHECK_OK(ens_models_study_usage(ms, study, &after, &files, errstr, sizeof errstr));
    CHECK(after < before);
    CHECK_EQ_INT(has_state(ms, st, "model:t-00004-e1", m), 0);
    CHECK_OK(ens_retain_model_weights_only(ms, st, study, "model:t-00004-e1", &rewritten,
                                           errstr, sizeof errstr));
    CHECK_EQ_INT(rewritten, 0);
    CHECK_EQ_INT(ens_retain_model_weights_only(ms, st, study, "model:t-00099-e1", &rewritten,
                                               errstr, sizeof errstr),
                 ENS_ERR_NOTFOUND);
    ens_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/ens-test-retain-mem-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    ens_models_t *ms = NULL;
    ens_state_t *st = NULL;
    CHECK_OK(ens_models_open(dir, &ms, errstr, sizeof errstr));
    CHECK_OK(ens_state_mem_new(&st));
    if (ms && st) {
        test_compaction(ms, st);
        test_weights_only(ms, st);
        CHECK_OK(ens_models_study_remove(ms, study, errstr, sizeof errstr));
    }
    ens_state_free(st);
    ens_models_close(ms);
    CHECK_EQ_INT(rmdir(dir), 0);
    return check_done("test_trainer_retain_mem");
}
