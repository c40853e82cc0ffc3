/* check.h - tiny assertion helpers for ensflow unit tests (exit 1 on failure, 77 = skipped). */
#ifndef ENSFLOW_TEST_CHECK_H
#define ENSFLOW_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures = 0;

#define CHECK(cond)                                                                             \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);            \
            check_failures++;                                                                   \
        }                                                                                       \
    } while (0)

#define CHECK_OK(expr)                                                                          \
    do {                                                                                        \
        int check_rc_ = (int)(expr);                                                            \
        if (check_rc_ != 0) {                                                                   \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #expr, check_rc_);   \
            check_failures++;                                                                   \
        }                                                                                       \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                      \
    do {                                                                                        \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                         \
        if (check_a_ != check_b_) {                                                             \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, \
                    check_a_, #b, check_b_);                                                    \
            check_failures++;                                                                   \
        }                                                                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                   \
    do {                                                                                        \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                  \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                            \
            fprintf(stderr, "%s:%d: %s == %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__,  \
                    #a, check_a_, check_b_, (double)(tol));                                     \
            check_failures++;                                                                   \
        }                                                                                       \
    } while (0)

#define CHECK_STR(a, b)                                                                         \
    do {                                                                                        \
        const char *check_a_ = (a), *check_b_ = (b);                                            \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                        \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,   \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");            \
            check_failures++;                                                                   \
        }                                                                                       \
    } while (0)

/* Print the plain summary line and return the exit status for main(). */
static inline int check_done(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    fprintf(stderr, "%s: all checks passed\n", name);
    return 0;
}

/* Read a one-line file from the test harness directory (ENSFLOW_TEST_DIR), e.g. "redis.url"
 * or "bootstrap". Returns a static buffer, or NULL when the harness did not write it. */
static inline const char *check_env_file(const char *name) {
    static char buf[4][512];
    static int next = 0;
    const char *dir = getenv("ENSFLOW_TEST_DIR");
    if (!dir)
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *b = buf[next++ % 4];
    if (!fgets(b, sizeof buf[0], f)) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    b[strcspn(b, "\r\n")] = '\0';
    return b;
}

#endif
