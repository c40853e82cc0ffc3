/* test_data.c - IDX (plain and gzip) and CSV loading, their errors, seeded split, ens_rng. */
#include "check.h"
#include "ensflow/data.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char dir[256];

static const char *path_in(const char *name) {
    static char buf[4][512];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void write_file(const char *name, const void *data, size_t len, int gz) {
    if (gz) {
        gzFile f = gzopen(path_in(name), "wb");
        CHECK(f != NULL && gzwrite(f, data, (unsigned)len) == (int)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path_in(name), "wb");
        CHECK(f != NULL && fwrite(data, 1, len, f) == len);
        fclose(f);
    }
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* 3 images of 2x2 (pixel i*4+j = 10*i + 60*j) and labels 2, 0, 1. */
static size_t idx_images(uint8_t *b, uint32_t magic, uint32_t n) {
    put_be32(b, magic), put_be32(b + 4, n), put_be32(b + 8, 2), put_be32(b + 12, 2);
    for (int i = 0; i < 12; i++)
        b[16 + i] = (uint8_t)(10 * (i / 4) + 60 * (i % 4));
    return 16 + 12;
}

static size_t idx_labels(uint8_t *b, uint32_t n) {
    put_be32(b, 0x801), put_be32(b + 4, n);
    b[8] = 2, b[9] = 0, b[10] = 1;
    return 8 + 3;
}

static void check_small(const ens_dataset_t *ds) {
    CHECK_EQ_INT(ds->n, 3);
    CHECK_EQ_INT(ds->dim, 4);
    CHECK_EQ_INT(ds->height, 2);
    CHECK_EQ_INT(ds->width, 2);
    CHECK_EQ_INT(ds->n_classes, 3);
    CHECK_EQ_INT(ds->y[0], 2);
    CHECK_EQ_INT(ds->y[2], 1);
    CHECK_NEAR(ds->x[0], 0.0, 0);
    CHECK_NEAR(ds->x[3], 180.0 / 255.0, 1e-7);
    CHECK_NEAR(ds->x[9], 80.0 / 255.0, 1e-7);
}

static void test_idx(void) {
    uint8_t img[64], lab[16];
    char es[512];
    ens_dataset_t *ds = NULL;
    size_t ni = idx_images(img, 0x803, 3), nl = idx_labels(lab, 3);
    write_file("img", img, ni, 0);
    write_file("lab", lab, nl, 0);
    write_file("img.gz", img, ni, 1);
    write_file("lab.gz", lab, nl, 1);
    const char *pairs[][2] = {{"img", "lab"}, {"img.gz", "lab.gz"}, {"img.gz", "lab"}};
    for (int k = 0; k < 3; k++) {
        ds = NULL;
        CHECK_OK(ens_dataset_load_idx(path_in(pairs[k][0]), path_in(pairs[k][1]), &ds, es,
                                      sizeof es));
        if (ds)
            check_small(ds);
        ens_dataset_free(ds);
    }
    /* a directory of MNIST names, mixed .gz and plain */
    write_file("train-images-idx3-ubyte.gz", img, ni, 1);
    write_file("train-labels-idx1-ubyte", lab, nl, 0);
    ds = NULL;
    CHECK_OK(ens_dataset_load(dir, ENS_DATA_TRAIN, &ds, es, sizeof es));
    if (ds)
        check_small(ds);
    ens_dataset_free(ds);
    CHECK_EQ_INT(ens_dataset_load(dir, ENS_DATA_TEST, &ds, es, sizeof es), ENS_ERR_NOTFOUND);
    CHECK(strstr(es, "t10k-images-idx3-ubyte") != NULL);
    CHECK_EQ_INT(ens_dataset_load(path_in("nope"), ENS_DATA_TRAIN, &ds, es, sizeof es),
                 ENS_ERR_NOTFOUND);

    /* errors: each names the file */
    idx_images(img, 0x801, 3); /* labels magic in an images file */
    write_file("bad_magic", img, ni, 1);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("bad_magic"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(es, "bad_magic") && strstr(es, "magic"));
    CHECK(ds == NULL);
    idx_images(img, 0x803, 3);
    write_file("short", img, ni - 1, 0);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("short"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(es, "short") && strstr(es, "truncated"));
    write_file("short.gz", img, ni - 1, 1);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("short.gz"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    write_file("hdr", img, 10, 0); /* ends inside the header */
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("hdr"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    /* a gzip stream cut short */
    FILE *f = fopen(path_in("img.gz"), "rb");
    uint8_t gzbuf[256];
    size_t gzlen = fread(gzbuf, 1, sizeof gzbuf, f);
    fclose(f);
    write_file("cut.gz", gzbuf, gzlen - 12, 0);
    CHECK(ens_dataset_load_idx(path_in("cut.gz"), path_in("lab"), &ds, es, sizeof es) != ENS_OK);
    CHECK(ds == NULL);
    write_file("extra", img, ni + 1, 0);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("extra"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    /* a tiny file that claims 2^31-1 images must fail as truncated, not allocate them */
    put_be32(img + 4, 0x7fffffff), put_be32(img + 8, 1), put_be32(img + 12, 1);
    write_file("huge.gz", img, ni, 1);
    idx_labels(lab, 0x7fffffff);
    write_file("hugelab", lab, nl, 0);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("huge.gz"), path_in("hugelab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(es, "truncated") != NULL);
    put_be32(img + 4, 3), put_be32(img + 8, 0); /* zero rows */
    write_file("zero", img, ni, 0);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("zero"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    put_be32(img + 8, 70000), put_be32(img + 12, 70000);
    write_file("wide", img, ni, 0);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("wide"), path_in("lab"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    idx_labels(lab, 4); /* 4 labels for 3 images */
    write_file("lab4", lab, nl, 0);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("img"), path_in("lab4"), &ds, es, sizeof es),
                 ENS_ERR_CORRUPT);
    CHECK(strstr(es, "lab4") != NULL);
    CHECK_EQ_INT(ens_dataset_load_idx(path_in("img"), path_in("missing"), &ds, es, sizeof es),
                 ENS_ERR_NOTFOUND);
}

static void test_csv(void) {
    char es[512];
    ens_dataset_t *ds = NULL;
    const char *good = "label,a,b,c\n1, 0.5,2,-3\r\n0,1e-3,0,0\n\n3,7,8,9\n";
    write_file("d.csv", good, strlen(good), 0);
    CHECK_OK(ens_dataset_load_csv(path_in("d.csv"), &ds, es, sizeof es));
    if (ds) {
        CHECK_EQ_INT(ds->n, 3);
        CHECK_EQ_INT(ds->dim, 3);
        CHECK_EQ_INT(ds->height, 1);
        CHECK_EQ_INT(ds->width, 3);
        CHECK_EQ_INT(ds->n_classes, 4);
        CHECK_EQ_INT(ds->y[2], 3);
        CHECK_NEAR(ds->x[0], 0.5, 0);
        CHECK_NEAR(ds->x[2], -3.0, 0);
        CHECK_NEAR(ds->x[3], 1e-3, 1e-9);
        CHECK_NEAR(ds->x[8], 9.0, 0);
    }
    ens_dataset_free(ds);
    /* through the spec, and its test part */
    CHECK_OK(ens_dataset_load(path_in("d.csv"), ENS_DATA_TRAIN, &ds, es, sizeof es));
    ens_dataset_free(ds);
    CHECK_EQ_INT(ens_dataset_load(path_in("d.csv"), ENS_DATA_TEST, &ds, es, sizeof es),
                 ENS_ERR_NOTFOUND);
    write_file("d.test.csv", "2,1,1,1\n", 8, 0);
    ds = NULL;
    CHECK_OK(ens_dataset_load(path_in("d.csv"), ENS_DATA_TEST, &ds, es, sizeof es));
    CHECK(ds && ds->n == 1 && ds->y[0] == 2);
    ens_dataset_free(ds);

    struct { const char *text, *want; } bad[] = {
        {"1,2,3\n0,4\n", ":2:"},              /* ragged */
        {"1,2,3\n0,4,5,6\n", ":2:"},          /* ragged, longer */
        {"h1,h2\n1,2\n0,x\n", ":3:"},         /* bad value */
        {"1,2\n-1,3\n", ":2:"},               /* negative label */
        {"1,2\n1.5,3\n", ":2:"},              /* fractional label */
        {"1,2\n0,nan\n", ":2:"},              /* not finite */
        {"1,2\n0,\n", ":2:"},                 /* empty field */
        {"1\n", ":1:"},                       /* no features */
        {"label,a\n", "no data"},             /* header only */
        {"", "no data"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_file("bad.csv", bad[k].text, strlen(bad[k].text), 0);
        ds = NULL;
        es[0] = '\0';
        CHECK_EQ_INT(ens_dataset_load_csv(path_in("bad.csv"), &ds, es, sizeof es),
                     ENS_ERR_INVALID);
        CHECK(ds == NULL);
        if (!strstr(es, bad[k].want) || !strstr(es, "bad.csv"))
            fprintf(stderr, "case %zu: errstr \"%s\" lacks \"%s\"\n", k, es, bad[k].want),
                check_failures++;
    }
}

static ens_dataset_t *counting(int32_t n) {
    ens_dataset_t *ds = calloc(1, sizeof *ds);
    ds->n = n, ds->dim = 2, ds->height = 1, ds->width = 2, ds->n_classes = 5;
    ds->x = malloc((size_t)n * 2 * sizeof(float));
    ds->y = malloc((size_t)n * sizeof(int32_t));
    for (int32_t i = 0; i < n; i++)
        ds->x[2 * i] = (float)i, ds->x[2 * i + 1] = (float)-i, ds->y[i] = i % 5;
    return ds;
}

static void test_split(void) {
    char es[256];
    ens_dataset_t *all = counting(1000), *tr, *va, *tr2, *va2, *tr3, *va3;
    CHECK_OK(ens_dataset_split(all, 0.1, 42, &tr, &va, es, sizeof es));
    CHECK_OK(ens_dataset_split(all, 0.1, 42, &tr2, &va2, es, sizeof es));
    CHECK_OK(ens_dataset_split(all, 0.1, 43, &tr3, &va3, es, sizeof es));
    CHECK_EQ_INT(va->n, 100);
    CHECK_EQ_INT(tr->n, 900);
    CHECK_EQ_INT(va->n_classes, 5);
    CHECK_EQ_INT(tr->dim, 2);
    CHECK(memcmp(va->x, va2->x, 200 * sizeof(float)) == 0);
    CHECK(memcmp(tr->y, tr2->y, 900 * sizeof(int32_t)) == 0);
    CHECK(memcmp(va->x, va3->x, 200 * sizeof(float)) != 0);
    int seen[1000] = {0};
    for (int i = 0; i < va->n; i++)
        seen[(int)va->x[2 * i]]++;
    for (int i = 0; i < tr->n; i++) {
        int j = (int)tr->x[2 * i];
        seen[j]++;
        CHECK(tr->x[2 * i + 1] == (float)-j && tr->y[i] == j % 5); /* rows stay whole */
    }
    int ok = 1;
    for (int i = 0; i < 1000; i++)
        ok &= seen[i] == 1;
    CHECK(ok); /* disjoint and complete */
    ens_dataset_free(tr), ens_dataset_free(va), ens_dataset_free(tr2), ens_dataset_free(va2);
    ens_dataset_free(tr3), ens_dataset_free(va3);
    CHECK_EQ_INT(ens_dataset_split(all, 1.5, 1, &tr, &va, es, sizeof es), ENS_ERR_INVALID);
    CHECK_OK(ens_dataset_split(all, 0.0, 1, &tr, &va, es, sizeof es));
    CHECK(va->n == 0 && tr->n == 1000);
    ens_dataset_free(tr), ens_dataset_free(va);
    int32_t idx[] = {5, 1000};
    ens_dataset_t *sub = NULL;
    CHECK_EQ_INT(ens_dataset_subset(all, idx, 2, &sub), ENS_ERR_INVALID);
    CHECK_OK(ens_dataset_subset(all, idx, 1, &sub));
    CHECK(sub && sub->n == 1 && sub->x[0] == 5.0f && sub->y[0] == 0);
    ens_dataset_free(sub);
    ens_dataset_free(all);
    ens_dataset_free(NULL);
}

static void test_rng(void) {
    ens_rng_t a, b, c;
    ens_rng_seed(&a, 7), ens_rng_seed(&b, 7), ens_rng_seed(&c, 8);
    int same = 1, diff = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t va = ens_rng_next(&a), vc = ens_rng_next(&c);
        same &= va == ens_rng_next(&b);
        diff += va != vc;
    }
    CHECK(same);
    CHECK(diff > 95);
    double sum = 0, sq = 0, lo = 1, hi = 0;
    for (int i = 0; i < 100000; i++) {
        double u = ens_rng_uniform(&a), z = ens_rng_normal(&a);
        lo = u < lo ? u : lo, hi = u > hi ? u : hi;
        sum += z, sq += z * z;
    }
    CHECK(lo >= 0.0 && hi < 1.0);
    CHECK_NEAR(sum / 100000, 0.0, 0.02);
    CHECK_NEAR(sq / 100000, 1.0, 0.02);
    int32_t p[50], seen[50] = {0};
    for (int i = 0; i < 50; i++)
        p[i] = i;
    ens_rng_shuffle(&a, p, 50);
    int moved = 0, ok = 1;
    for (int i = 0; i < 50; i++)
        seen[p[i]]++, moved += p[i] != i;
    for (int i = 0; i < 50; i++)
        ok &= seen[i] == 1;
    CHECK(ok && moved > 30);
}

static void test_fashion_mnist(void) {
    struct stat st;
    if (stat("/usr/share/datasets/fashion-mnist", &st) != 0) {
        fprintf(stderr, "test_data: no /usr/share/datasets/fashion-mnist, skipping that part\n");
        return;
    }
    char es[512] = "";
    ens_dataset_t *ds = NULL;
    CHECK_OK(ens_dataset_load("fashion-mnist", ENS_DATA_TRAIN, &ds, es, sizeof es));
    if (!ds) {
        fprintf(stderr, "fashion-mnist: %s\n", es);
        return;
    }
    CHECK_EQ_INT(ds->n, 60000);
    CHECK_EQ_INT(ds->dim, 784);
    CHECK_EQ_INT(ds->height, 28);
    CHECK_EQ_INT(ds->n_classes, 10);
    float lo = 1, hi = 0;
    for (size_t i = 0; i < (size_t)ds->n * 784; i++)
        lo = ds->x[i] < lo ? ds->x[i] : lo, hi = ds->x[i] > hi ? ds->x[i] : hi;
    CHECK(lo == 0.0f && hi == 1.0f);
    ens_dataset_free(ds);
    ds = NULL;
    CHECK_OK(ens_dataset_load("fashion-mnist", ENS_DATA_TEST, &ds, es, sizeof es));
    CHECK(ds && ds->n == 10000 && ds->n_classes == 10);
    ens_dataset_free(ds);
}

static void cleanup(void) {
    static const char *names[] = {"img", "lab", "img.gz", "lab.gz", "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte", "bad_magic", "short", "short.gz", "hdr", "cut.gz", "extra",
        "huge.gz", "hugelab", "zero", "wide", "lab4", "d.csv", "d.test.csv", "bad.csv"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(path_in(names[i]));
    rmdir(dir);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s/ens_test_data_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                              : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_rng();
    test_idx();
    test_csv();
    test_split();
    test_fashion_mnist();
    cleanup();
    return check_done("test_data");
}
