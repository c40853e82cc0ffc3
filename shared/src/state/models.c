/* models.c - the model store: atomic, checked model files; their references in Redis. */
#define _XOPEN_SOURCE 700
#include "ensflow/models.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A file's reference in Redis: ens:{<study>}:<name>:ref (hash path, len, crc32). */
#define REF_FMT "%s:ref"

#define MAGIC "ENSMODL1"
#define HEADER 24
#define SUFFIX ".ensm"
#define TMP_PREFIX ".tmp."

struct ens_models_s {
    char *dir;
};

/* --- names and paths ------------------------------------------------------------------- */

/* An id as a file name: bytes outside [A-Za-z0-9_.-] (and a leading '.') as %XX, so any id
 * maps to one plain name and back, and none climbs out of its directory. */
static int encode(const char *id, char *out, size_t size) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (!id || !*id)
        return -1;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                    (*p == '.' && p != (const unsigned char *)id);
        if (o + (plain ? 1 : 3) >= size)
            return -1;
        if (plain)
            out[o++] = (char)*p;
        else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

static int unhex(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int decode(const char *name, size_t n, char *out, size_t size) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)name[i];
        if (c == '%') {
            int h = i + 2 < n ? unhex(name[i + 1]) : -1, l = h >= 0 ? unhex(name[i + 2]) : -1;
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (o + 1 >= size || c == 0)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* "kind:id" -> kind ([a-z]+) and the encoded id. */
static ens_err_t split_name(const char *name, char *kind, size_t ksize, char *eid, size_t isize,
                            char *errstr, size_t size) {
    const char *colon = name ? strchr(name, ':') : NULL;
    size_t k = colon ? (size_t)(colon - name) : 0;
    int ok = k > 0 && k < ksize;
    for (size_t i = 0; ok && i < k; i++)
        ok = name[i] >= 'a' && name[i] <= 'z';
    if (!ok || encode(colon + 1, eid, isize))
        return ens_err_set(errstr, size, ENS_ERR_INVALID,
                           "model store: bad name \"%.80s\" (want kind:id, kind in a-z)",
                           name ? name : "(null)");
    memcpy(kind, name, k);
    kind[k] = '\0';
    return ENS_OK;
}

typedef struct {
    char study[200], kind[16], id[200];
    char dir[4096], path[4096]; /* the kind's directory, the file */
    char key[256];              /* the Redis key of the name (blob of the previous version) */
} loc_t;

/* Where study/name lives; with no store (ms NULL) only its Redis key. */
static ens_err_t locate(const ens_models_t *ms, const char *study, const char *name, loc_t *l,
                        char *errstr, size_t size) {
    ens_err_t err = split_name(name, l->kind, sizeof l->kind, l->id, sizeof l->id, errstr, size);
    if (err)
        return err;
    if (encode(study, l->study, sizeof l->study) || !ens_key(l->key, sizeof l->key, study, "%s", name))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: bad study id \"%.80s\"",
                           study ? study : "(null)");
    l->dir[0] = l->path[0] = '\0';
    if (ms && ((size_t)snprintf(l->dir, sizeof l->dir, "%s/%s/%s", ms->dir, l->study, l->kind) >=
            sizeof l->dir ||
        (size_t)snprintf(l->path, sizeof l->path, "%s/%s" SUFFIX, l->dir, l->id) >=
            sizeof l->path))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: path too long");
    return ENS_OK;
}

/* locate, for what needs the store itself (put, delete). */
static ens_err_t locate_in(const ens_models_t *ms, const char *study, const char *name, loc_t *l,
                           char *errstr, size_t size) {
    if (!ms)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: not open");
    return locate(ms, study, name, l, errstr, size);
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: a file system that cannot sync a directory still renames */
        close(fd);
    }
}

/* mkdir -p; a directory it creates is synced into its parent, so that a reference written
 * after a file's rename never outlives the directory holding the file (power loss). */
static int mkdirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) == 0) {
            char *slash = strrchr(buf, '/');
            if (slash && slash != buf) {
                *slash = '\0';
                fsync_dir(buf);
                *slash = '/';
            }
        } else if (errno != EEXIST)
            return -1;
        *p = c;
        if (!c)
            return 0;
    }
}

/* --- open ------------------------------------------------------------------------------ */

ens_err_t ens_models_open(const char *dir, ens_models_t **out, char *errstr, size_t size) {
    *out = NULL;
    if (!dir || !*dir)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: no directory given");
    if (mkdirs(dir))
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot create %s: %s", dir,
                           strerror(errno));
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode))
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: %s is not a directory", dir);
    ens_models_t *ms = calloc(1, sizeof *ms);
    if (!ms || !(ms->dir = strdup(dir))) {
        free(ms);
        return ENS_ERR_NOMEM;
    }
    size_t n = strlen(ms->dir);
    while (n > 1 && ms->dir[n - 1] == '/')
        ms->dir[--n] = '\0';
    *out = ms;
    return ENS_OK;
}

void ens_models_close(ens_models_t *ms) {
    if (!ms)
        return;
    free(ms->dir);
    free(ms);
}

const char *ens_models_dir(const ens_models_t *ms) { return ms ? ms->dir : ""; }

ens_err_t ens_models_open_conf(const ens_conf_t *conf, ens_models_t **out, char *errstr,
                               size_t size) {
    char dir[2048];
    ens_conf_model_store(conf, dir, sizeof dir);
    return ens_models_open(dir, out, errstr, size);
}

/* --- put ------------------------------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* The file, written whole under a temporary name, synced, then renamed into place. */
static ens_err_t write_file(const loc_t *l, const void *data, size_t len, uint32_t crc,
                            char *errstr, size_t size) {
    if (mkdirs(l->dir))
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot create %s: %s",
                           l->dir, strerror(errno));
    char tmp[4400];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tmp, sizeof tmp, "%s/" TMP_PREFIX "%s.%ld.%ld", l->dir, l->id, (long)getpid(),
             (long)ts.tv_nsec);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot write %s: %s", tmp,
                           strerror(errno));
    unsigned char h[HEADER] = {0};
    memcpy(h, MAGIC, 8);
    put_le(h + 8, len, 8);
    put_le(h + 16, crc, 4);
    int bad = write_all(fd, h, HEADER) || write_all(fd, data, len) || fsync(fd);
    int e = errno;
    if (close(fd) && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, l->path)) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot write %s: %s",
                           l->path, strerror(e));
    }
    fsync_dir(l->dir); /* the rename itself, durable */
    return ENS_OK;
}

ens_err_t ens_models_put(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         const void *data, size_t len, char *errstr, size_t size) {
    loc_t l;
    ens_err_t err = locate_in(ms, study, name, &l, errstr, size);
    if (err)
        return err;
    if (!data && len)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: no data");
    uint32_t crc = ens_crc32(data, len);
    if ((err = write_file(&l, data, len, crc, errstr, size)) || !r)
        return err;
    char ref[300], rel[600];
    snprintf(ref, sizeof ref, REF_FMT, l.key);
    snprintf(rel, sizeof rel, "%s/%s/%s" SUFFIX, l.study, l.kind, l.id);
    err = ens_redis_exec(r, errstr, size, "HSET %s path %s len %llu crc32 %u", ref, rel,
                         (unsigned long long)len, (unsigned)crc);
    if (!err) /* the previous version's copy in Redis, if any: the file replaces it */
        err = ens_store_blob_del(r, l.key, errstr, size);
    return err;
}

/* --- get ------------------------------------------------------------------------------- */

static ens_err_t read_file(const char *path, void **data, size_t *len, char *errstr,
                           size_t size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return ens_err_set(errstr, size, errno == ENOENT ? ENS_ERR_NOTFOUND : ENS_ERR_IO,
                           "model store: cannot read %s: %s", path, strerror(errno));
    unsigned char h[HEADER];
    struct stat st;
    ens_err_t err = ENS_OK;
    /* the file system failing (EIO, NFS's ESTALE) is IO, which a caller may retry; only bytes
     * that are there and wrong are CORRUPT */
    if (fstat(fileno(f), &st))
        err = ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot read %s: %s", path,
                          strerror(errno));
    else if (fread(h, 1, HEADER, f) != HEADER && ferror(f))
        err = ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot read %s", path);
    else if (st.st_size < HEADER || memcmp(h, MAGIC, 8))
        err = ens_err_set(errstr, size, ENS_ERR_CORRUPT,
                          "model store: %s is not a model file (bad or short header)", path);
    uint64_t n = err ? 0 : get_le(h + 8, 8);
    uint32_t crc = (uint32_t)get_le(h + 16, 4);
    if (!err && (uint64_t)(st.st_size - HEADER) != n)
        err = ens_err_set(errstr, size, ENS_ERR_CORRUPT,
                          "model store: %s is torn: %lld bytes, its header says %llu", path,
                          (long long)st.st_size, (unsigned long long)n + HEADER);
    void *buf = NULL;
    if (!err && !(buf = malloc(n ? n : 1)))
        err = ENS_ERR_NOMEM;
    if (!err && n && fread(buf, 1, n, f) != n)
        err = ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot read %s", path);
    if (!err && ens_crc32(buf, n) != crc)
        err = ens_err_set(errstr, size, ENS_ERR_CORRUPT, "model store: %s fails its CRC", path);
    fclose(f);
    if (err) {
        free(buf);
        return err;
    }
    *data = buf;
    *len = n;
    return ENS_OK;
}

ens_err_t ens_models_get(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         void **data, size_t *len, char *errstr, size_t size) {
    loc_t l;
    if (!data || !len)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: no output");
    *data = NULL;
    *len = 0;
    ens_err_t err = locate(ms, study, name, &l, errstr, size);
    if (err || (!r && !ms))
        return err ? err
                   : ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: not open");
    if (!r)
        return read_file(l.path, data, len, errstr, size);
    char ref[300];
    snprintf(ref, sizeof ref, REF_FMT, l.key);
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, size, "EXISTS %s", ref);
    if (!rep)
        return ENS_ERR_REDIS;
    int referenced = rep->type == ENS_REPLY_INTEGER && rep->integer > 0;
    ens_redis_reply_free(rep);
    if (!referenced) /* not in the store: the previous version kept models in Redis */
        return ens_store_blob_get(r, l.key, data, len, errstr, size);
    if (!ms)
        return ens_err_set(errstr, size, ENS_ERR_INVALID,
                           "%s is in the model store, and this process has none (set "
                           "--model-store)",
                           name);
    /* a file replaced while it was read (a weights-only rewrite renamed over it; on NFS the
     * open file can go stale) reads whole on a second try */
    for (int attempt = 0; attempt < 2; attempt++) {
        err = read_file(l.path, data, len, errstr, size);
        if (err != ENS_ERR_NOTFOUND && err != ENS_ERR_CORRUPT && err != ENS_ERR_IO)
            break;
    }
    if (err == ENS_ERR_NOTFOUND)
        err = ens_err_set(errstr, size, ENS_ERR_CORRUPT,
                          "model store: %s is referenced in Redis but missing", l.path);
    return err;
}

ens_err_t ens_models_del(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         char *errstr, size_t size) {
    loc_t l;
    ens_err_t err = locate_in(ms, study, name, &l, errstr, size);
    if (err)
        return err;
    if (r) { /* the reference first: no reader is sent to a file that is going */
        char ref[300];
        snprintf(ref, sizeof ref, REF_FMT, l.key);
        if ((err = ens_redis_exec(r, errstr, size, "DEL %s", ref)) ||
            (err = ens_store_blob_del(r, l.key, errstr, size)))
            return err;
    }
    if (unlink(l.path) && errno != ENOENT)
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot delete %s: %s",
                           l.path, strerror(errno));
    return ENS_OK;
}

/* --- a study's files ------------------------------------------------------------------- */

typedef struct {
    int (*fn)(void *, const char *, uint64_t, double);
    void *opaque;
    double min_age_s; /* sweep: only temporary files this old */
    uint64_t bytes;
    long files;
    int all;   /* count temporary files too (usage) */
    int sweep; /* delete temporary files (counted in files) */
} walk_t;

static ens_err_t walk(ens_models_t *ms, const char *study, walk_t *w, char *errstr,
                      size_t size) {
    char est[200], sdir[4096];
    if (!ms || encode(study, est, sizeof est))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: bad study id");
    snprintf(sdir, sizeof sdir, "%s/%s", ms->dir, est);
    DIR *d = opendir(sdir);
    if (!d)
        return errno == ENOENT ? ENS_OK
                               : ens_err_set(errstr, size, ENS_ERR_IO,
                                             "model store: cannot list %s: %s", sdir,
                                             strerror(errno));
    ens_err_t err = ENS_OK;
    struct dirent *k;
    while (!err && (k = readdir(d))) {
        if (k->d_name[0] == '.')
            continue;
        char kdir[4400];
        snprintf(kdir, sizeof kdir, "%s/%s", sdir, k->d_name);
        DIR *kd = opendir(kdir);
        if (!kd)
            continue; /* not a directory */
        struct dirent *e;
        while (!err && (e = readdir(kd))) {
            size_t n = strlen(e->d_name), sl = strlen(SUFFIX);
            int tmp = !strncmp(e->d_name, TMP_PREFIX, strlen(TMP_PREFIX));
            int model = !tmp && e->d_name[0] != '.' && n > sl &&
                        !strcmp(e->d_name + n - sl, SUFFIX);
            if (!model && !(tmp && (w->all || w->sweep)))
                continue;
            char path[4800], id[256], name[520];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", kdir, e->d_name);
            if (stat(path, &st) || !S_ISREG(st.st_mode))
                continue;
            double age = difftime(time(NULL), st.st_mtime);
            if (w->sweep) {
                if (tmp && age >= w->min_age_s && unlink(path) == 0)
                    w->files++;
                continue;
            }
            w->bytes += (uint64_t)st.st_size;
            w->files++;
            if (!model || !w->fn || decode(e->d_name, n - sl, id, sizeof id))
                continue;
            snprintf(name, sizeof name, "%s:%s", k->d_name, id);
            if (w->fn(w->opaque, name, (uint64_t)st.st_size, age))
                err = ENS_ERR_STOPPED;
        }
        closedir(kd);
    }
    closedir(d);
    return err;
}

ens_err_t ens_models_list(ens_models_t *ms, const char *study,
                          int (*fn)(void *opaque, const char *name, uint64_t bytes,
                                    double age_s),
                          void *opaque, char *errstr, size_t size) {
    walk_t w = {.fn = fn, .opaque = opaque};
    return walk(ms, study, &w, errstr, size);
}

ens_err_t ens_models_study_usage(ens_models_t *ms, const char *study, uint64_t *bytes,
                                 long *files, char *errstr, size_t size) {
    walk_t w = {.all = 1};
    ens_err_t err = walk(ms, study, &w, errstr, size);
    *bytes = w.bytes;
    *files = w.files;
    return err;
}

ens_err_t ens_models_sweep_temp(ens_models_t *ms, const char *study, double min_age_s,
                               long *removed, char *errstr, size_t size) {
    walk_t w = {.sweep = 1, .min_age_s = min_age_s};
    ens_err_t err = walk(ms, study, &w, errstr, size);
    *removed = w.files;
    return err;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) && errno != ENOENT ? -1 : 0;
}

ens_err_t ens_models_study_remove(ens_models_t *ms, const char *study, char *errstr,
                                  size_t size) {
    char est[200], sdir[4096];
    if (!ms || encode(study, est, sizeof est))
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "model store: bad study id");
    snprintf(sdir, sizeof sdir, "%s/%s", ms->dir, est);
    if (nftw(sdir, remove_one, 16, FTW_DEPTH | FTW_PHYS) && errno != ENOENT)
        return ens_err_set(errstr, size, ENS_ERR_IO, "model store: cannot remove %s: %s", sdir,
                           strerror(errno));
    return ENS_OK;
}

char *ens_models_ref_key(char *buf, size_t size, const char *study, const char *name) {
    char key[256];
    if (!buf || size == 0 || !name || !ens_key(key, sizeof key, study, "%s", name) ||
        (size_t)snprintf(buf, size, REF_FMT, key) >= size)
        return NULL;
    return buf;
}
