/* data.c - labelled data sets: IDX (via zlib, gzip or plain), CSV, seeded split, ens_rng. */
#include "ensflow/data.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define DATA_MAX_SIDE 65536              /* rows, cols of one image */
#define DATA_MAX_VALUES ((int64_t)INT32_MAX) /* n * dim: fits every int32 index */
#define DATA_MAX_DIM (1 << 22)           /* CSV features per row */
#define DATA_MAX_CLASSES 65536           /* CSV labels are < this */
#define IDX_FIRST_CHUNK ((size_t)1 << 24) /* payload buffers grow as data arrives */

/* ---------------------------------------------------------------- rng (xoshiro256**) */

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void ens_rng_seed(ens_rng_t *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) { /* splitmix64 expands the seed into the state */
        uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        rng->s[i] = z ^ (z >> 31);
    }
}

uint64_t ens_rng_next(ens_rng_t *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ens_rng_uniform(ens_rng_t *rng) { return (double)(ens_rng_next(rng) >> 11) * 0x1.0p-53; }

double ens_rng_normal(ens_rng_t *rng) {
    /* Box-Muller without a cached second value: the state stays the four words. */
    double u1 = 1.0 - ens_rng_uniform(rng); /* (0, 1] */
    double u2 = ens_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Unbiased integer in [0, bound) (Lemire's multiply-shift with rejection). */
static uint32_t rng_below(ens_rng_t *rng, uint32_t bound) {
    uint64_t m = (ens_rng_next(rng) >> 32) * bound;
    uint32_t low = (uint32_t)m;
    if (low < bound) {
        uint32_t threshold = (uint32_t)(-bound) % bound;
        while (low < threshold) {
            m = (ens_rng_next(rng) >> 32) * bound;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void ens_rng_shuffle(ens_rng_t *rng, int32_t *a, int32_t n) {
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)rng_below(rng, (uint32_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------------------------------------------------------- dataset basics */

/* A data set with room for n rows of dim (at least one byte each so malloc never says 0). */
static ens_dataset_t *dataset_alloc(int32_t n, int32_t dim) {
    ens_dataset_t *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->n = n;
    ds->dim = dim;
    ds->x = malloc(((size_t)n * (size_t)dim + 1) * sizeof *ds->x);
    ds->y = malloc(((size_t)n + 1) * sizeof *ds->y);
    if (!ds->x || !ds->y) {
        ens_dataset_free(ds);
        return NULL;
    }
    return ds;
}

void ens_dataset_free(ens_dataset_t *ds) {
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    free(ds);
}

ens_err_t ens_dataset_subset(const ens_dataset_t *src, const int32_t *idx, int32_t n,
                             ens_dataset_t **out) {
    if (!src || !out || n < 0 || (n > 0 && !idx))
        return ENS_ERR_INVALID;
    *out = NULL;
    for (int32_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= src->n)
            return ENS_ERR_INVALID;
    ens_dataset_t *ds = dataset_alloc(n, src->dim);
    if (!ds)
        return ENS_ERR_NOMEM;
    ds->height = src->height;
    ds->width = src->width;
    ds->n_classes = src->n_classes; /* kept, so a split's parts agree on the classes */
    size_t row = (size_t)src->dim;
    for (int32_t i = 0; i < n; i++) {
        memcpy(ds->x + (size_t)i * row, src->x + (size_t)idx[i] * row, row * sizeof *ds->x);
        ds->y[i] = src->y[idx[i]];
    }
    *out = ds;
    return ENS_OK;
}

ens_err_t ens_dataset_split(const ens_dataset_t *all, double val_fraction, uint64_t seed,
                            ens_dataset_t **train, ens_dataset_t **val, char *errstr,
                            size_t errstr_size) {
    if (!all || !train || !val || !(val_fraction >= 0.0 && val_fraction <= 1.0))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "split: need a data set and 0 <= val_fraction <= 1 (got %g)",
                           val_fraction);
    *train = *val = NULL;
    int32_t *perm = malloc(((size_t)all->n + 1) * sizeof *perm);
    if (!perm)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "split: out of memory");
    for (int32_t i = 0; i < all->n; i++)
        perm[i] = i;
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    ens_rng_shuffle(&rng, perm, all->n);
    int32_t n_val = (int32_t)llround((double)all->n * val_fraction);
    ens_err_t err = ens_dataset_subset(all, perm, n_val, val);
    if (!err)
        err = ens_dataset_subset(all, perm + n_val, all->n - n_val, train);
    free(perm);
    if (err) {
        ens_dataset_free(*val);
        *val = NULL;
        return ens_err_set(errstr, errstr_size, err, "split: out of memory");
    }
    return ENS_OK;
}

/* ---------------------------------------------------------------- IDX */

/* Read exactly len bytes; a short read is a truncated file. */
static ens_err_t gz_read_exact(gzFile gz, void *buf, size_t len, const char *path,
                               const char *what, char *errstr, size_t errstr_size) {
    size_t got = 0;
    while (got < len) {
        size_t want = len - got > (1u << 30) ? (1u << 30) : len - got;
        int r = gzread(gz, (char *)buf + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            return ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT, "%s: reading %s: %s",
                               path, what, msg ? msg : "zlib error");
        }
        if (r == 0)
            return ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                               "%s: truncated: %s ends after %zu of %zu bytes", path, what, got,
                               len);
        got += (size_t)r;
    }
    return ENS_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Open path, check magic, read the ndims dimensions that follow it. */
static ens_err_t idx_open(const char *path, uint32_t magic, int ndims, uint32_t *dims,
                          gzFile *gz_out, char *errstr, size_t errstr_size) {
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return ens_err_set(errstr, errstr_size,
                           errno == ENOENT ? ENS_ERR_NOTFOUND : ENS_ERR_IO, "%s: cannot open: %s",
                           path, errno ? strerror(errno) : "zlib could not allocate");
    gzbuffer(gz, 1u << 17);
    uint8_t hdr[16];
    ens_err_t err = gz_read_exact(gz, hdr, 4 + 4 * (size_t)ndims, path, "header", errstr,
                                  errstr_size);
    if (!err && be32(hdr) != magic)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                          "%s: not an IDX %s file: magic 0x%08x, expected 0x%08x", path,
                          ndims == 3 ? "images" : "labels", be32(hdr), magic);
    for (int i = 0; !err && i < ndims; i++)
        dims[i] = be32(hdr + 4 + 4 * i);
    if (err) {
        gzclose(gz);
        return err;
    }
    *gz_out = gz;
    return ENS_OK;
}

/* Read the len-byte payload, growing the buffer only as data actually arrives (a tiny gzip
 * file must not make us allocate what its header claims), then insist on end of file. */
static ens_err_t idx_payload(gzFile gz, size_t len, const char *path, uint8_t **out,
                             char *errstr, size_t errstr_size) {
    size_t cap = len < IDX_FIRST_CHUNK ? len : IDX_FIRST_CHUNK, got = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "%s: out of memory", path);
    ens_err_t err = ENS_OK;
    while (!err && got < len) {
        if (got == cap) {
            cap = cap > len / 2 ? len : cap * 2;
            uint8_t *nb = realloc(buf, cap + 1);
            if (!nb) {
                err = ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
        }
        size_t want = cap - got > (1u << 30) ? (1u << 30) : cap - got;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0) {
            int zerr = 0;
            const char *msg = gzerror(gz, &zerr);
            err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT, "%s: reading data: %s",
                              path, msg ? msg : "zlib error");
        } else if (r == 0) {
            err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                              "%s: truncated: %zu of the %zu data bytes the header promises",
                              path, got, len);
        }
        got += r > 0 ? (size_t)r : 0;
    }
    uint8_t extra;
    if (!err && gzread(gz, &extra, 1) != 0)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                          "%s: unexpected bytes after the %zu data bytes", path, len);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    return ENS_OK;
}

ens_err_t ens_dataset_load_idx(const char *images_path, const char *labels_path,
                               ens_dataset_t **out, char *errstr, size_t errstr_size) {
    if (!images_path || !labels_path || !out)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "load_idx: NULL argument");
    *out = NULL;
    uint32_t idims[3], ldims[1];
    gzFile gi = NULL, gl = NULL;
    uint8_t *pix = NULL, *lab = NULL;
    ens_dataset_t *ds = NULL;
    ens_err_t err = idx_open(images_path, IDX_MAGIC_IMAGES, 3, idims, &gi, errstr, errstr_size);
    if (!err)
        err = idx_open(labels_path, IDX_MAGIC_LABELS, 1, ldims, &gl, errstr, errstr_size);
    if (err)
        goto done;
    uint64_t n = idims[0], rows = idims[1], cols = idims[2];
    if (rows == 0 || cols == 0 || rows > DATA_MAX_SIDE || cols > DATA_MAX_SIDE ||
        n > (uint64_t)INT32_MAX || n * rows * cols > (uint64_t)DATA_MAX_VALUES) {
        err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                          "%s: implausible dimensions %llu x %llu x %llu", images_path,
                          (unsigned long long)n, (unsigned long long)rows,
                          (unsigned long long)cols);
        goto done;
    }
    if (ldims[0] != n) {
        err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                          "%s has %u labels but %s has %llu images", labels_path, ldims[0],
                          images_path, (unsigned long long)n);
        goto done;
    }
    size_t dim = (size_t)(rows * cols);
    err = idx_payload(gi, (size_t)n * dim, images_path, &pix, errstr, errstr_size);
    if (!err)
        err = idx_payload(gl, (size_t)n, labels_path, &lab, errstr, errstr_size);
    if (err)
        goto done;
    if (!(ds = dataset_alloc((int32_t)n, (int32_t)dim))) {
        err = ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "%s: out of memory", images_path);
        goto done;
    }
    ds->height = (int32_t)rows;
    ds->width = (int32_t)cols;
    for (size_t i = 0; i < (size_t)n * dim; i++)
        ds->x[i] = (float)pix[i] * (1.0f / 255.0f);
    for (size_t i = 0; i < (size_t)n; i++) {
        ds->y[i] = lab[i];
        if (lab[i] + 1 > ds->n_classes)
            ds->n_classes = lab[i] + 1;
    }
    *out = ds;
done:
    free(pix);
    free(lab);
    if (gi)
        gzclose(gi);
    if (gl)
        gzclose(gl);
    return err;
}

/* ---------------------------------------------------------------- CSV */

typedef struct {
    float *x;
    int32_t *y;
    size_t nx, capx, ny, capy;
} csv_acc_t;

static int csv_push_x(csv_acc_t *a, float v) {
    if (a->nx == a->capx) {
        size_t cap = a->capx ? a->capx * 2 : 4096;
        float *nx = realloc(a->x, cap * sizeof *nx);
        if (!nx)
            return -1;
        a->x = nx;
        a->capx = cap;
    }
    a->x[a->nx++] = v;
    return 0;
}

static int csv_push_y(csv_acc_t *a, int32_t v) {
    if (a->ny == a->capy) {
        size_t cap = a->capy ? a->capy * 2 : 1024;
        int32_t *ny = realloc(a->y, cap * sizeof *ny);
        if (!ny)
            return -1;
        a->y = ny;
        a->capy = cap;
    }
    a->y[a->ny++] = v;
    return 0;
}

/* Next comma-separated field of *p (trimmed, NUL-terminated in place); NULL at end of line. */
static char *csv_field(char **p) {
    if (!*p)
        return NULL;
    char *s = *p, *comma = strchr(s, ',');
    if (comma) {
        *comma = '\0';
        *p = comma + 1;
    } else {
        *p = NULL;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

static int parse_float(const char *s, float *v) {
    char *end;
    errno = 0;
    float f = strtof(s, &end);
    if (end == s || *end != '\0' || !isfinite(f))
        return -1;
    *v = f;
    return 0;
}

static int parse_label(const char *s, long *v) {
    char *end;
    errno = 0;
    long l = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno)
        return -1;
    *v = l;
    return 0;
}

ens_err_t ens_dataset_load_csv(const char *path, ens_dataset_t **out, char *errstr,
                               size_t errstr_size) {
    if (!path || !out)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "load_csv: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return ens_err_set(errstr, errstr_size, errno == ENOENT ? ENS_ERR_NOTFOUND : ENS_ERR_IO,
                           "%s: cannot open: %s", path, strerror(errno));
    csv_acc_t a = {0};
    char *line = NULL;
    size_t line_cap = 0;
    long lineno = 0, dim = -1, n_classes = 0;
    ens_err_t err = ENS_OK;
    while (!err && getline(&line, &line_cap, f) >= 0) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[strspn(line, " \t")] == '\0')
            continue; /* blank line */
        char *p = line, *field = csv_field(&p);
        long label;
        if (parse_label(field, &label) != 0) {
            char *end;
            (void)strtod(field, &end);
            if (dim < 0 && lineno == 1 && end == field)
                continue; /* header row: its first field is not a number */
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "%s:%ld: label \"%.40s\" is not an integer", path, lineno, field);
            break;
        }
        if (label < 0 || label >= DATA_MAX_CLASSES) {
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "%s:%ld: label %ld outside [0, %d)", path, lineno, label,
                              DATA_MAX_CLASSES);
            break;
        }
        long cols = 0;
        while (!err && (field = csv_field(&p)) != NULL) {
            float v;
            if (parse_float(field, &v) != 0)
                err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                  "%s:%ld: column %ld: \"%.40s\" is not a finite number", path,
                                  lineno, cols + 2, field);
            else if (++cols > DATA_MAX_DIM)
                err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                  "%s:%ld: more than %d features", path, lineno, DATA_MAX_DIM);
            else if (csv_push_x(&a, v) != 0)
                err = ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "%s: out of memory", path);
        }
        if (err)
            break;
        if (cols == 0)
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "%s:%ld: a label but no features", path, lineno);
        else if (dim >= 0 && cols != dim)
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "%s:%ld: %ld features, earlier rows have %ld", path, lineno, cols,
                              dim);
        else if ((int64_t)(a.ny + 1) * cols > DATA_MAX_VALUES)
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s:%ld: too many rows",
                              path, lineno);
        else if (csv_push_y(&a, (int32_t)label) != 0)
            err = ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "%s: out of memory", path);
        dim = cols;
        if (label + 1 > n_classes)
            n_classes = label + 1;
    }
    if (!err && ferror(f))
        err = ens_err_set(errstr, errstr_size, ENS_ERR_IO, "%s: read error", path);
    if (!err && a.ny == 0)
        err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s: no data rows", path);
    free(line);
    fclose(f);
    ens_dataset_t *ds = NULL;
    if (!err && !(ds = calloc(1, sizeof *ds)))
        err = ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "%s: out of memory", path);
    if (err) {
        free(a.x);
        free(a.y);
        return err;
    }
    ds->n = (int32_t)a.ny;
    ds->dim = (int32_t)dim;
    ds->height = 1;
    ds->width = (int32_t)dim;
    ds->n_classes = (int32_t)n_classes;
    ds->x = a.x;
    ds->y = a.y;
    *out = ds;
    return ENS_OK;
}

/* ---------------------------------------------------------------- spec dispatch */

/* dir/name or dir/name.gz, whichever exists (plain preferred). */
static ens_err_t find_idx(const char *dir, const char *name, char *path, size_t path_size,
                          char *errstr, size_t errstr_size) {
    struct stat st;
    snprintf(path, path_size, "%s/%s", dir, name);
    if (stat(path, &st) == 0)
        return ENS_OK;
    snprintf(path, path_size, "%s/%s.gz", dir, name);
    if (stat(path, &st) == 0)
        return ENS_OK;
    return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "%s: no %s or %s.gz%s", dir, name,
                       name,
                       strcmp(dir, FASHION_MNIST_DIR) == 0
                           ? " (install the Debian package dataset-fashion-mnist)"
                           : "");
}

static ens_err_t load_idx_dir(const char *dir, ens_data_part_t part, ens_dataset_t **out,
                              char *errstr, size_t errstr_size) {
    const char *pre = part == ENS_DATA_TEST ? "t10k" : "train";
    char name[64], img[4096], lab[4096];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", pre);
    ens_err_t err = find_idx(dir, name, img, sizeof img, errstr, errstr_size);
    if (err)
        return err;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", pre);
    if ((err = find_idx(dir, name, lab, sizeof lab, errstr, errstr_size)))
        return err;
    return ens_dataset_load_idx(img, lab, out, errstr, errstr_size);
}

ens_err_t ens_dataset_load(const char *spec, ens_data_part_t part, ens_dataset_t **out,
                           char *errstr, size_t errstr_size) {
    if (!spec || !out || (part != ENS_DATA_TRAIN && part != ENS_DATA_TEST))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "load: bad arguments");
    *out = NULL;
    if (strcmp(spec, "fashion-mnist") == 0)
        return load_idx_dir(FASHION_MNIST_DIR, part, out, errstr, errstr_size);
    struct stat st;
    if (stat(spec, &st) != 0)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                           "data set \"%s\": no such file or directory (expected "
                           "\"fashion-mnist\", an IDX directory or a CSV file)",
                           spec);
    if (S_ISDIR(st.st_mode))
        return load_idx_dir(spec, part, out, errstr, errstr_size);
    if (part == ENS_DATA_TRAIN)
        return ens_dataset_load_csv(spec, out, errstr, errstr_size);
    size_t len = strlen(spec);
    size_t stem = len >= 4 && strcmp(spec + len - 4, ".csv") == 0 ? len - 4 : len;
    char test[4096];
    if (stem + sizeof ".test.csv" > sizeof test)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s: path too long", spec);
    snprintf(test, sizeof test, "%.*s.test.csv", (int)stem, spec);
    if (stat(test, &st) != 0)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND, "%s: no test file %s", spec,
                           test);
    return ens_dataset_load_csv(test, out, errstr, errstr_size);
}
