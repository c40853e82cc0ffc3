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
static ens_err_t rewrite(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         int always, int *rewritten, char *errstr, size_t size) {
    void *blob = NULL;
    size_t len = 0;
    *rewritten = 0;
    ens_err_t err = ens_models_get(ms, r, study, name, &blob, &len, errstr, size);
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
            err = ens_models_put(ms, r, study, name, out, out_len, errstr, size);
        free(out);
        *rewritten = !err;
    }
    ens_model_free(m);
    return err;
}

ens_err_t ens_retain_weights_only(ens_models_t *ms, ens_redis_t *r, const char *study,
                                  const char *name, int *rewritten, char *errstr, size_t size) {
    return rewrite(ms, r, study, name, 0, rewritten, errstr, size);
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --- the lock: ens:{s}:compacting = owner ------------------------------------------------ */

static const char RENEW_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                "end\n"
                                "return 0\n";
static const char RELEASE_LUA[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                                  "  return redis.call('DEL', KEYS[1])\n"
                                  "end\n"
                                  "return 0\n";

/* 1 when owner holds (or now took: take=1) the study's lock, 0 when not, -1 Redis away. */
static int lock_op(ens_redis_t *r, const char *study, const char *owner, int take,
                   const char *script) {
    char key[300], ms[16];
    if (!ens_key(key, sizeof key, study, "compacting"))
        return 0;
    snprintf(ms, sizeof ms, "%d", LOCK_MS);
    ens_redis_reply_t *rep =
        take ? ens_redis_command(r, NULL, 0, "SET %s %s NX PX %s", key, owner, ms)
             : ens_redis_commandv(r, 6, (const char *[]){"EVAL", script, "1", key, owner, ms},
                                  NULL, NULL, 0);
    int v = !rep ? -1
            : take ? rep->type == ENS_REPLY_STATUS
                   : rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
    return v;
}

/* The study's status: 1 complete or stopped, 0 anything else or gone, -1 Redis away. */
static int study_final(ens_redis_t *r, const char *study) {
    char key[300];
    if (!ens_key(key, sizeof key, study, "study"))
        return 0;
    ens_redis_reply_t *rep = ens_redis_command(r, NULL, 0, "HGET %s status", key);
    int v = !rep ? -1
                 : rep->type == ENS_REPLY_STRING &&
                       (!strcmp(rep->str, "complete") || !strcmp(rep->str, "stopped"));
    ens_redis_reply_free(rep);
    return v;
}

/* 1 when Redis references study/name, 0 when not, -1 Redis away. */
static int referenced(ens_redis_t *r, const char *study, const char *name) {
    char key[400];
    if (!ens_key(key, sizeof key, study, "%s:ref", name))
        return 0;
    ens_redis_reply_t *rep = ens_redis_command(r, NULL, 0, "EXISTS %s", key);
    int v = !rep ? -1 : rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
    return v;
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

/* The previous version's model and checkpoint blobs of the study (their :meta keys). */
static ens_err_t collect_legacy(collect_t *c, ens_redis_t *r, const char *study, char *errstr,
                                size_t size) {
    char esc[200], pattern[300], cursor[32] = "0";
    if (!ens_redis_glob_escape(study, esc, sizeof esc))
        return ENS_OK; /* too long for a pattern: not a study of ours */
    snprintf(pattern, sizeof pattern, "ens:{%s}:*:meta", esc);
    do {
        ens_redis_reply_t *rep = ens_redis_command(r, errstr, size, "SCAN %s MATCH %s COUNT 1000",
                                            cursor, pattern);
        if (!rep || rep->type != ENS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != ENS_REPLY_STRING) {
            ens_redis_reply_free(rep);
            return ENS_ERR_REDIS;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        const ens_redis_reply_t *keys = rep->element[1];
        for (size_t i = 0; keys->type == ENS_REPLY_ARRAY && i < keys->elements; i++) {
            /* ens:{s}:model:<m>:meta -> model:<m> (probability blobs are not models) */
            const char *k = keys->element[i]->str, *tail = k ? strstr(k, "}:") : NULL;
            size_t n = tail ? strlen(tail + 2) : 0;
            if (n <= 5 || (strncmp(tail + 2, "model:", 6) && strncmp(tail + 2, "ckpt:", 5)))
                continue;
            char name[320];
            snprintf(name, sizeof name, "%.*s", (int)(n - 5), tail + 2);
            if (add_file(c, name, 1e9, 1)) {
                ens_redis_reply_free(rep);
                return ens_err_set(errstr, size, ENS_ERR_NOMEM, "out of memory");
            }
        }
        ens_redis_reply_free(rep);
    } while (strcmp(cursor, "0"));
    return ENS_OK;
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

void ens_retain_job_free(ens_retain_job_t *job, ens_redis_t *r, const char *owner) {
    if (job->study[0] && r && owner)
        lock_op(r, job->study, owner, 0, RELEASE_LUA);
    job_clear(job);
}

/* Take study in hand: its lock, the temporary files of dead writers swept, its files listed.
 * 1 when claimed; 0 when another trainer has it or it is no longer to be compacted (taken
 * off the queue then); negative on error. */
static int claim(ens_retain_job_t *job, ens_models_t *ms, ens_redis_t *r, const char *study,
                 const char *owner, char *errstr, size_t size) {
    job_clear(job);
    int fin = study_final(r, study);
    if (fin < 0)
        return ENS_ERR_REDIS;
    if (!fin) /* running again (extended) or deleted: nothing to compact */
        return ens_redis_exec(r, errstr, size, "SREM " ENS_MODELS_COMPACT_KEY " %s", study)
                   ? ENS_ERR_REDIS
                   : 0;
    int got = lock_op(r, study, owner, 1, NULL);
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
        err = collect_legacy(&c, r, study, errstr, size);
    if (err) {
        ens_retain_job_free(job, r, owner);
        return err == ENS_ERR_INVALID ? 0 : err; /* an id the store cannot hold: no files */
    }
    return 1;
}

/* One file. Redis away is an error (the slice stops, the file is done again later); a file
 * that cannot be read or rewritten is logged and left. */
static ens_err_t one_file(ens_retain_job_t *job, ens_models_t *ms, ens_redis_t *r,
                          const struct ens_retain_file_s *f) {
    char errstr[512] = "";
    const char *name = f->name;
    ens_retain_stats_t *st = &job->stats;
    int ref = f->legacy ? 1 : referenced(r, job->study, name);
    ens_err_t err = ENS_OK;
    if (ref < 0)
        return ENS_ERR_REDIS;
    if (f->legacy && strncmp(name, "ckpt:", 5)) { /* into the store, weights only */
        int moved = 0;
        err = rewrite(ms, r, job->study, name, 1, &moved, errstr, sizeof errstr);
        st->models_stripped += moved;
    } else if (!ref) { /* no reference: a writer died before it, unless it is writing now */
        if (f->age_s < grace_of(job))
            return ENS_OK;
        if (!(err = ens_models_del(ms, NULL, job->study, name, errstr, sizeof errstr)))
            st->orphans_deleted++;
    } else if (!strncmp(name, "ckpt:", 5)) {
        if (!(err = ens_models_del(ms, r, job->study, name, errstr, sizeof errstr)))
            st->checkpoints_deleted++;
    } else {
        int rewritten = 0;
        err = ens_retain_weights_only(ms, r, job->study, name, &rewritten, errstr,
                                      sizeof errstr);
        st->models_stripped += rewritten;
    }
    if (err == ENS_ERR_REDIS)
        return err;
    if (err) {
        ENS_WARN("study=%s msg=\"file left as it is\" name=%s error=\"%s\"", job->study, name,
                 errstr[0] ? errstr : ens_err_str(err));
        st->skipped++;
    }
    return ENS_OK;
}

/* Work on the job's files for about budget_ms (< 0: to the end). 1 when all are done. */
static int work(ens_retain_job_t *job, ens_models_t *ms, ens_redis_t *r, const char *owner,
                double budget_ms, char *errstr, size_t size) {
    /* still ours, still finished: `study extend` or `study delete` may have come meanwhile */
    int mine = lock_op(r, job->study, owner, 0, RENEW_LUA);
    int fin = mine > 0 ? study_final(r, job->study) : 0;
    if (mine < 0 || fin < 0)
        return ENS_ERR_REDIS;
    if (!mine || !fin) {
        ENS_INFO("study=%s msg=\"compaction stopped: the study %s\"", job->study,
                 !mine ? "is another's now" : "runs again or is gone");
        ens_retain_job_free(job, r, owner);
        return 1;
    }
    double t0 = mono_ms();
    for (int first = 1; job->next < job->n &&
                        (first || budget_ms < 0 || mono_ms() - t0 < budget_ms);
         first = 0) { /* at least one file a slice */
        if (one_file(job, ms, r, &job->files[job->next]))
            return ENS_ERR_REDIS;
        job->next++;
    }
    if (job->next < job->n)
        return 0;
    long files = 0;
    ens_err_t err = ens_models_study_usage(ms, job->study, &job->stats.bytes_after, &files,
                                           errstr, size);
    if (!err)
        err = ens_redis_exec(r, errstr, size, "SREM " ENS_MODELS_COMPACT_KEY " %s", job->study);
    return err ? err : 1;
}

int ens_retain_step(ens_retain_job_t *job, ens_models_t *ms, ens_redis_t *r, const char *owner,
                    double budget_ms) {
    char errstr[512] = "";
    if (!ms || !r)
        return 0;
    if (!job->study[0]) {
        ens_redis_reply_t *rep =
            ens_redis_command(r, errstr, sizeof errstr, "SRANDMEMBER " ENS_MODELS_COMPACT_KEY);
        if (!rep)
            return ENS_ERR_REDIS;
        char study[256] = "";
        if (rep->type == ENS_REPLY_STRING)
            snprintf(study, sizeof study, "%s", rep->str);
        ens_redis_reply_free(rep);
        if (!study[0])
            return 0;
        int got = claim(job, ms, r, study, owner, errstr, sizeof errstr);
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
    int done = work(job, ms, r, owner, budget_ms, errstr, sizeof errstr);
    if (done < 0) {
        ENS_WARN("study=%s msg=\"compaction paused; goes on later\" error=\"%s\"", study,
                 errstr[0] ? errstr : ens_err_str(done));
        return done;
    }
    if (done && job->study[0]) {
        const ens_retain_stats_t *st = &job->stats;
        ENS_INFO("study=%s msg=\"model files compacted\" checkpoints_deleted=%ld "
                 "models_stripped=%ld orphans_deleted=%ld temp_deleted=%ld skipped=%ld "
                 "bytes_before=%llu bytes_after=%llu",
                 study, st->checkpoints_deleted, st->models_stripped, st->orphans_deleted,
                 st->temp_deleted, st->skipped, (unsigned long long)st->bytes_before,
                 (unsigned long long)st->bytes_after);
        ens_retain_job_free(job, r, owner);
    }
    return 1;
}

ens_err_t ens_retain_compact_study(ens_models_t *ms, ens_redis_t *r, const char *study,
                                   ens_retain_stats_t *stats, char *errstr, size_t size) {
    ens_retain_job_t job = {0};
    char owner[64];
    snprintf(owner, sizeof owner, "compact-%ld", (long)time(NULL));
    memset(stats, 0, sizeof *stats);
    int got = claim(&job, ms, r, study, owner, errstr, size);
    if (got <= 0)
        return got < 0 ? (ens_err_t)got
                       : ens_err_set(errstr, size, ENS_ERR_INVALID,
                                     "%s is not complete or stopped, or is being compacted",
                                     study);
    int done = work(&job, ms, r, owner, -1, errstr, size);
    *stats = job.stats;
    ens_retain_job_free(&job, r, owner);
    return done < 0 ? (ens_err_t)done : ENS_OK;
}
