/* retain.c - optimiser state dropped when no longer needed; a finished study compacted, a
 * slice at a time, under a lock. */
#include "retain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/log.h"
#include "ensflow/nn.h"

#define LOCK_MS 60000

/* The model without optimiser state, written back when it had some (or always: a blob of the
 * previous version moves into the store). */
static ens_err_t rewrite(ens_models_t *ms, ens_state_t *st, const char *study,
                         const char *name, int always, int *rewritten, char *errstr,
                         size_t size) {
    void *blob = NULL;
    size_t len = 0;
    *rewritten = 0;
    ens_err_t err = ens_state_model_file_get(st, ms, study, name, &blob, &len, errstr, size);
    if (err)
        return err;
    ens_model_t *m = NULL;
    err = ens_model_load(blob, len, &m, errstr, size);
    free(blob);
    if (err)
        return err;
    if (ens_model_drop_optimiser(m) || always) {
        uint8_t *out = NULL;
        size_t out_len = 0;
        if (!(err = ens_model_save(m, &out, &out_len)))
            err = ens_state_model_file_put(st, ms, study, name, out, out_len, errstr, size);
        free(out);
        *rewritten = !err;
    }
    ens_model_free(m);
    return err;
}

ens_err_t ens_retain_model_weights_only(ens_models_t *ms, ens_state_t *st, const char *study,
                                        const char *name, int *rewritten, char *errstr,
                                        size_t size) {
    return rewrite(ms, st, study, name, 0, rewritten, errstr, size);
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --- the state: lock, study status, references ------------------------------------------ */

/* 1 when owner holds (or now took, released) the study's lock, 0 when not, -1 state away. */
static int lock_op(ens_state_t *st, const char *study, const char *owner,
                   ens_state_lock_op_t op) {
    int held = 0;
    return ens_state_compact_lock(st, study, owner, op, LOCK_MS, &held, NULL, 0) ? -1 : held;
}

/* The study's status: 1 complete or stopped, 0 anything else or gone, -1 state away. */
static int study_final(ens_state_t *st, const char *study) {
    ens_state_study_t s;
    ens_err_t err = ens_state_study_get(st, study, &s, NULL, 0);
    if (err && err != ENS_ERR_NOTFOUND) /* a record without a dataset still has a status */
        return err == ENS_ERR_INVALID ? 0 : -1;
    return !strcmp(s.status, "complete") || !strcmp(s.status, "stopped");
}

/* 1 when the state references study/name, 0 when not, -1 state away. */
static int referenced(ens_state_t *st, const char *study, const char *name) {
    int ref = 0;
    return ens_state_model_file_referenced(st, study, name, &ref, NULL, 0) ? -1 : ref;
}

/* --- one study ---------------------------------------------------------------------------- */

typedef struct {
    ens_retain_job_t *job;
    int cap;
} collect_t;

static int add_file(collect_t *c, const char *name, double age_s, int legacy) {
    ens_retain_job_t *job = c->job;
    if (job->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        void *p = realloc(job->files, (size_t)cap * sizeof *job->files);
        if (!p)
            return 1;
        job->files = p;
        c->cap = cap;
    }
    snprintf(job->files[job->n].name, sizeof job->files[0].name, "%s", name);
    job->files[job->n].legacy = legacy;
    job->files[job->n++].age_s = age_s;
    return 0;
}

static int collect(void *opaque, const char *name, uint64_t bytes, double age_s) {
    (void)bytes;
    return add_file(opaque, name, age_s, 0);
}

/* The previous version's model and checkpoint blobs of the study, kept in Redis itself. */
static ens_err_t collect_legacy(collect_t *c, ens_state_t *st, const char *study, char *errstr,
                                size_t size) {
    char **names = NULL;
    int n = 0;
    ens_err_t err = ens_state_model_legacy_list(st, study, &names, &n, errstr, size);
    for (int i = 0; !err && i < n; i++)
        if (add_file(c, names[i], 1e9, 1))
            err = ens_err_set(errstr, size, ENS_ERR_NOMEM, "out of memory");
    ens_state_strings_free(names, n);
    return err;
}

static void job_clear(ens_retain_job_t *job) {
    double grace = job->grace_s;
    free(job->files);
    memset(job, 0, sizeof *job);
    job->grace_s = grace;
}

static double grace_of(const ens_retain_job_t *job) {
    return job->grace_s > 0 ? job->grace_s : ENS_RETAIN_GRACE_S;
}

void ens_retain_job_release(ens_retain_job_t *job, ens_state_t *st, const char *owner) {
    if (job->study[0] && st && owner)
        lock_op(st, job->study, owner, ENS_STATE_LOCK_RELEASE);
    job_clear(job);
}

/* Take study in hand: its lock, the temporary files of dead writers swept, its files listed.
 * 1 when claimed; 0 when another trainer has it or it is no longer to be compacted (taken
 * off the queue then); negative on error. */
static int claim(ens_retain_job_t *job, ens_models_t *ms, ens_state_t *st, const char *study,
                 const char *owner, char *errstr, size_t size) {
    job_clear(job);
    int fin = study_final(st, study);
    if (fin < 0)
        return ENS_ERR_REDIS;
    if (!fin) /* running again (extended) or deleted: nothing to compact */
        return ens_state_compact_remove(st, study, errstr, size) ? ENS_ERR_REDIS : 0;
    int got = lock_op(st, study, owner, ENS_STATE_LOCK_TAKE);
    if (got <= 0)
        return got < 0 ? ENS_ERR_REDIS : 0;
    snprintf(job->study, sizeof job->study, "%s", study);
    long files = 0;
    collect_t c = {job, 0};
    ens_err_t err = ens_models_study_usage(ms, study, &job->stats.bytes_before, &files, errstr,
                                           size);
    if (!err)
        err = ens_models_sweep_temp(ms, study, grace_of(job), &job->stats.temp_deleted, errstr,
                                    size);
    if (!err && (err = ens_models_list(ms, study, collect, &c, errstr, size)) == ENS_ERR_STOPPED)
        err = ens_err_set(errstr, size, ENS_ERR_NOMEM, "out of memory listing %s", study);
    if (!err)
        err = collect_legacy(&c, st, study, errstr, size);
    if (err) {
        ens_retain_job_release(job, st, owner);
        return err == ENS_ERR_INVALID ? 0 : err; /* an id the store cannot hold: no files */
    }
    return 1;
}

/* One file. Redis away is an error (the slice stops, the file is done again later); a file
 * that cannot be read or rewritten is logged and left. */
static ens_err_t one_file(ens_retain_job_t *job, ens_models_t *ms, ens_state_t *st,
                          const struct ens_retain_file_s *f) {
    char errstr[512] = "";
    const char *name = f->name;
    ens_retain_stats_t *stats = &job->stats;
    int ref = f->legacy ? 1 : referenced(st, job->study, name);
    ens_err_t err = ENS_OK;
    if (ref < 0)
        return ENS_ERR_REDIS;
    if (f->legacy && strncmp(name, "ckpt:", 5)) { /* into the store, weights only */
        int moved = 0;
        err = rewrite(ms, st, job->study, name, 1, &moved, errstr, sizeof errstr);
        stats->models_stripped += moved;
    } else if (!ref) { /* no reference: a writer died before it, unless it is writing now */
        if (f->age_s < grace_of(job))
            return ENS_OK;
        if (!(err = ens_models_del(ms, NULL, job->study, name, errstr, sizeof errstr)))
            stats->orphans_deleted++;
    } else if (!strncmp(name, "ckpt:", 5)) {
        if (!(err = ens_state_model_file_del(st, ms, job->study, name, errstr, sizeof errstr)))
            stats->checkpoints_deleted++;
    } else {
        int rewritten = 0;
        err = ens_retain_model_weights_only(ms, st, job->study, name, &rewritten, errstr,
                                            sizeof errstr);
        stats->models_stripped += rewritten;
    }
    if (err == ENS_ERR_REDIS)
        return err;
    if (err) {
        ENS_WARN("study=%s msg=\"file left as it is\" name=%s error=\"%s\"", job->study, name,
                 errstr[0] ? errstr : ens_err_str(err));
        stats->skipped++;
    }
    return ENS_OK;
}

/* Work on the job's files for about budget_ms (< 0: to the end). 1 when all are done. */
static int work(ens_retain_job_t *job, ens_models_t *ms, ens_state_t *st, const char *owner,
                double budget_ms, char *errstr, size_t size) {
    /* still ours, still finished: `study extend` or `study delete` may have come meanwhile */
    int mine = lock_op(st, job->study, owner, ENS_STATE_LOCK_RENEW);
    int fin = mine > 0 ? study_final(st, job->study) : 0;
    if (mine < 0 || fin < 0)
        return ENS_ERR_REDIS;
    if (!mine || !fin) {
        ENS_INFO("study=%s msg=\"compaction stopped: the study %s\"", job->study,
                 !mine ? "is another's now" : "runs again or is gone");
        ens_retain_job_release(job, st, owner);
        return 1;
    }
    double t0 = mono_ms();
    for (int first = 1; job->next < job->n &&
                        (first || budget_ms < 0 || mono_ms() - t0 < budget_ms);
         first = 0) { /* at least one file a slice */
        if (one_file(job, ms, st, &job->files[job->next]))
            return ENS_ERR_REDIS;
        job->next++;
    }
    if (job->next < job->n)
        return 0;
    long files = 0;
    ens_err_t err = ens_models_study_usage(ms, job->study, &job->stats.bytes_after, &files,
                                           errstr, size);
    if (!err)
        err = ens_state_compact_remove(st, job->study, errstr, size);
    return err ? err : 1;
}

int ens_retain_study_step(ens_retain_job_t *job, ens_models_t *ms, ens_state_t *st,
                          const char *owner, double budget_ms) {
    char errstr[512] = "";
    if (!ms || !st)
        return 0;
    if (!job->study[0]) {
        char study[256] = "";
        ens_err_t err = ens_state_compact_next(st, study, sizeof study, errstr, sizeof errstr);
        if (err == ENS_ERR_NOTFOUND)
            return 0;
        if (err)
            return ENS_ERR_REDIS;
        int got = claim(job, ms, st, study, owner, errstr, sizeof errstr);
        if (got <= 0) {
            if (got < 0)
                ENS_WARN("study=%s msg=\"compaction not started; tried again later\" "
                         "error=\"%s\"",
                         study, errstr[0] ? errstr : ens_err_str(got));
            return got;
        }
    }
    char study[256];
    snprintf(study, sizeof study, "%s", job->study);
    int done = work(job, ms, st, owner, budget_ms, errstr, sizeof errstr);
    if (done < 0) {
        ENS_WARN("study=%s msg=\"compaction paused; goes on later\" error=\"%s\"", study,
                 errstr[0] ? errstr : ens_err_str(done));
        return done;
    }
    if (done && job->study[0]) {
        const ens_retain_stats_t *stats = &job->stats;
        ENS_INFO("study=%s msg=\"model files compacted\" checkpoints_deleted=%ld "
                 "models_stripped=%ld orphans_deleted=%ld temp_deleted=%ld skipped=%ld "
                 "bytes_before=%llu bytes_after=%llu",
                 study, stats->checkpoints_deleted, stats->models_stripped,
                 stats->orphans_deleted, stats->temp_deleted, stats->skipped,
                 (unsigned long long)stats->bytes_before, (unsigned long long)stats->bytes_after);
        ens_retain_job_release(job, st, owner);
    }
    return 1;
}

ens_err_t ens_retain_study_compact(ens_models_t *ms, ens_state_t *st, const char *study,
                                   ens_retain_stats_t *stats, char *errstr, size_t size) {
    ens_retain_job_t job = {0};
    char owner[64];
    snprintf(owner, sizeof owner, "compact-%ld", (long)time(NULL));
    memset(stats, 0, sizeof *stats);
    int got = claim(&job, ms, st, study, owner, errstr, size);
    if (got <= 0)
        return got < 0 ? (ens_err_t)got
                       : ens_err_set(errstr, size, ENS_ERR_INVALID,
                                     "%s is not complete or stopped, or is being compacted",
                                     study);
    int done = work(&job, ms, st, owner, -1, errstr, size);
    *stats = job.stats;
    ens_retain_job_release(&job, st, owner);
    return done < 0 ? (ens_err_t)done : ENS_OK;
}
