/* test_conf.c - configuration tables: defaults < environment < flags, errors, help, version,
 * helpers. */
#include "ensflow/conf.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char errstr[512];

static const ens_conf_def_t defs[] = {
    {"workers", ENS_CONF_INT, "4", 1, 64, "worker threads"},
    {"ratio", ENS_CONF_DOUBLE, "0.5", 0, 1, "a share"},
    {"name", ENS_CONF_STR, "alpha", 0, 0, "a name"},
    {"verbose", ENS_CONF_BOOL, "false", 0, 0, "chatty"},
    {"log-level", ENS_CONF_STR, "debug", 0, 0, "overrides the common default"},
    {NULL, 0, NULL, 0, 0, NULL}};

static const ens_conf_def_t no_defs[] = {{NULL, 0, NULL, 0, 0, NULL}};

#define ARGC(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* Parse argv; on failure *out is left NULL. */
static ens_err_t parse(const ens_conf_def_t *d, int argc, char **argv, ens_conf_t **out) {
    *out = NULL;
    errstr[0] = '\0';
    return ens_conf_new("test", d, argc, argv, out, errstr, sizeof errstr);
}

static void expect_invalid(char **argv, int argc, const char *needle) {
    ens_conf_t *c = NULL;
    CHECK_EQ_INT(parse(defs, argc, argv, &c), ENS_ERR_INVALID);
    CHECK(c == NULL);
    if (!strstr(errstr, needle))
        fprintf(stderr, "errstr \"%s\" does not name \"%s\"\n", errstr, needle);
    CHECK(strstr(errstr, needle) != NULL);
    ens_conf_free(c);
}

static void test_defaults(void) {
    char *argv[] = {"test"};
    ens_conf_t *c = NULL;
    CHECK_OK(parse(defs, ARGC(argv), argv, &c));
    if (!c)
        return;
    CHECK_EQ_INT(ens_conf_int(c, "workers"), 4);
    CHECK_NEAR(ens_conf_double(c, "ratio"), 0.5, 0);
    CHECK_STR(ens_conf_str(c, "name"), "alpha");
    CHECK_EQ_INT(ens_conf_bool(c, "verbose"), 0);
    CHECK_STR(ens_conf_str(c, "log-level"), "debug"); /* the program's default wins */
    CHECK_STR(ens_conf_str(c, "topic-prefix"), "ensflow.");
    CHECK_STR(ens_conf_str(c, "kafka-bootstrap"), "");
    CHECK_STR(ens_conf_str(c, "run-dir"), ".ensflow");
    CHECK_EQ_INT(ens_conf_positional_count(c), 0);
    CHECK(ens_conf_positional(c, 0) == NULL);
    /* ens_conf_set validates as the type */
    CHECK_OK(ens_conf_set(c, "workers", "9", errstr, sizeof errstr));
    CHECK_EQ_INT(ens_conf_int(c, "workers"), 9);
    CHECK_EQ_INT(ens_conf_set(c, "workers", "0", errstr, sizeof errstr), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_conf_int(c, "workers"), 9);
    CHECK_EQ_INT(ens_conf_set(c, "nope", "1", errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_conf_free(c);
    ens_conf_free(NULL);
}

static void test_precedence(void) {
    setenv("ENSFLOW_WORKERS", "8", 1);
    setenv("ENSFLOW_NAME", "from-env", 1);
    setenv("ENSFLOW_TOPIC_PREFIX", "envpfx.", 1); /* dashes become underscores */
    char *argv0[] = {"test"};
    ens_conf_t *c = NULL;
    CHECK_OK(parse(defs, ARGC(argv0), argv0, &c));
    if (c) {
        CHECK_EQ_INT(ens_conf_int(c, "workers"), 8);
        CHECK_STR(ens_conf_str(c, "name"), "from-env");
        CHECK_STR(ens_conf_str(c, "topic-prefix"), "envpfx.");
        ens_conf_free(c);
    }
    /* flags beat the environment, in both spellings */
    char *argv1[] = {"test", "--workers=16", "--name", "from-flag", "--verbose"};
    CHECK_OK(parse(defs, ARGC(argv1), argv1, &c));
    if (c) {
        CHECK_EQ_INT(ens_conf_int(c, "workers"), 16);
        CHECK_STR(ens_conf_str(c, "name"), "from-flag");
        CHECK_EQ_INT(ens_conf_bool(c, "verbose"), 1);
        CHECK_EQ_INT(ens_conf_positional_count(c), 0); /* "from-flag" was consumed */
        ens_conf_free(c);
    }
    char *argv2[] = {"test", "--verbose=false", "--ratio", "0.25"};
    CHECK_OK(parse(defs, ARGC(argv2), argv2, &c));
    if (c) {
        CHECK_EQ_INT(ens_conf_bool(c, "verbose"), 0);
        CHECK_NEAR(ens_conf_double(c, "ratio"), 0.25, 0);
        ens_conf_free(c);
    }
    /* a bad environment value is an error naming the option */
    setenv("ENSFLOW_WORKERS", "lots", 1);
    CHECK_EQ_INT(parse(defs, ARGC(argv0), argv0, &c), ENS_ERR_INVALID);
    CHECK(strstr(errstr, "workers") != NULL);
    unsetenv("ENSFLOW_WORKERS");
    unsetenv("ENSFLOW_NAME");
    unsetenv("ENSFLOW_TOPIC_PREFIX");
}

static void test_errors(void) {
    char *a1[] = {"test", "--bogus=1"};
    expect_invalid(a1, ARGC(a1), "bogus");
    char *a2[] = {"test", "--workers=12abc"};
    expect_invalid(a2, ARGC(a2), "workers");
    char *a3[] = {"test", "--workers=65"};
    expect_invalid(a3, ARGC(a3), "workers");
    char *a4[] = {"test", "--workers=0"};
    expect_invalid(a4, ARGC(a4), "workers");
    char *a5[] = {"test", "--workers="};
    expect_invalid(a5, ARGC(a5), "workers");
    char *a6[] = {"test", "--workers=99999999999999999999999"};
    expect_invalid(a6, ARGC(a6), "workers");
    char *a7[] = {"test", "--ratio=1.5"};
    expect_invalid(a7, ARGC(a7), "ratio");
    char *a8[] = {"test", "--ratio=nan"}; /* NaN is in no range */
    expect_invalid(a8, ARGC(a8), "ratio");
    char *a9[] = {"test", "--verbose=maybe"};
    expect_invalid(a9, ARGC(a9), "verbose");
    char *a10[] = {"test", "--workers"}; /* a non-bool flag at the end needs a value */
    expect_invalid(a10, ARGC(a10), "workers");
}

static void test_positionals(void) {
    char *argv[] = {"test", "train", "--workers", "2", "data.csv", "-x"};
    ens_conf_t *c = NULL;
    CHECK_OK(parse(defs, ARGC(argv), argv, &c));
    if (!c)
        return;
    CHECK_EQ_INT(ens_conf_positional_count(c), 3);
    CHECK_STR(ens_conf_positional(c, 0), "train");
    CHECK_STR(ens_conf_positional(c, 1), "data.csv");
    CHECK_STR(ens_conf_positional(c, 2), "-x");
    CHECK(ens_conf_positional(c, 3) == NULL);
    CHECK(ens_conf_positional(c, -1) == NULL);
    CHECK_EQ_INT(ens_conf_int(c, "workers"), 2);
    ens_conf_free(c);
}

static void test_help(void) {
    char *argv[] = {"test", "--workers=2", "--help"};
    ens_conf_t *c = NULL;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    CHECK(saved >= 0 && devnull >= 0);
    dup2(devnull, STDOUT_FILENO);
    ens_err_t err = parse(defs, ARGC(argv), argv, &c);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(devnull);
    CHECK_EQ_INT(err, ENS_ERR_STOPPED);
    CHECK(c == NULL);
    ens_conf_free(c);
}

/* Run ens_conf_new on argv with stdout sent to a file; returns the error, out the text. */
static ens_err_t parse_to_text(int argc, char **argv, char *text, size_t size) {
    ens_conf_t *c = NULL;
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return ENS_ERR_IO;
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    CHECK(saved >= 0 && dup2(fileno(f), STDOUT_FILENO) >= 0);
    ens_err_t err = parse(defs, argc, argv, &c);
    fflush(stdout);
    CHECK(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    CHECK(c == NULL || err == ENS_OK);
    ens_conf_free(c);
    rewind(f);
    size_t n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    fclose(f);
    return err;
}

static void test_version(void) {
    /* the version the library reports is CMake's project VERSION, passed to this test too */
    CHECK_STR(ens_conf_version_str(), ENS_TEST_PROJECT_VERSION);
    const char *commit = ens_conf_commit_str();
    CHECK(commit != NULL);
    size_t hex = strspn(commit, "0123456789abcdef");
    CHECK(commit[0] == '\0' || (hex == 12 && (!commit[hex] || !strcmp(commit + hex, "-dirty"))));

    char want[128], text[512];
    if (*commit)
        snprintf(want, sizeof want, "test %s (commit %s)\n", ENS_TEST_PROJECT_VERSION, commit);
    else
        snprintf(want, sizeof want, "test %s\n", ENS_TEST_PROJECT_VERSION);
    char *argv[] = {"test", "--workers=2", "--version", "--bogus-option"};
    CHECK_EQ_INT(parse_to_text(ARGC(argv), argv, text, sizeof text), ENS_ERR_STOPPED);
    CHECK_STR(text, want); /* one line, nothing else: --version stops before --bogus-option */

    /* a CLI subcommand's prog ("ensflow study") prints as the binary's name */
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        ens_conf_version("ensflow study", f);
        rewind(f);
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
        CHECK(!strncmp(text, "ensflow ", 8) && !strncmp(text + 8, ENS_TEST_PROJECT_VERSION,
                                                         strlen(ENS_TEST_PROJECT_VERSION)));
    }

    /* an earlier error still wins: the option before --version is checked first */
    char *bad[] = {"test", "--workers=0", "--version"};
    CHECK_EQ_INT(parse_to_text(ARGC(bad), bad, text, sizeof text), ENS_ERR_INVALID);
    CHECK_STR(text, "");
}

typedef struct {
    int seen, calls;
    const char *stop_at; /* return 7 when this prop shows up */
} rdk_t;

static int rdk_cb(void *opaque, const char *prop, const char *value) {
    rdk_t *r = opaque;
    r->calls++;
    if (!strcmp(prop, "sasl.mechanisms") && !strcmp(value, "PLAIN"))
        r->seen++;
    return r->stop_at && !strcmp(prop, r->stop_at) ? 7 : 0;
}

static void test_rdkafka_each(void) {
    setenv("ENSFLOW_RDKAFKA_SASL_MECHANISMS", "PLAIN", 1);
    setenv("ENSFLOW_RDKAFKAX", "ignored", 1); /* no underscore after the prefix */
    rdk_t r = {0, 0, NULL};
    CHECK_EQ_INT(ens_conf_rdkafka_each(rdk_cb, &r), 0);
    CHECK_EQ_INT(r.seen, 1);
    rdk_t s = {0, 0, "sasl.mechanisms"};
    CHECK_EQ_INT(ens_conf_rdkafka_each(rdk_cb, &s), 7);
    unsetenv("ENSFLOW_RDKAFKA_SASL_MECHANISMS");
    unsetenv("ENSFLOW_RDKAFKAX");
    rdk_t t = {0, 0, NULL};
    CHECK_EQ_INT(ens_conf_rdkafka_each(rdk_cb, &t), 0);
    CHECK_EQ_INT(t.seen, 0);
}

static void test_bootstrap_and_topic(void) {
    char dir[] = "/tmp/ens-conf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], runflag[300], buf[256];
    snprintf(path, sizeof path, "%s/bootstrap", dir);
    snprintf(runflag, sizeof runflag, "--run-dir=%s", dir);

    char *argv[] = {"test", runflag};
    ens_conf_t *c = NULL;
    CHECK_OK(parse(no_defs, ARGC(argv), argv, &c));
    if (!c)
        return;
    /* no file yet: NOTFOUND naming the path */
    CHECK_EQ_INT(ens_conf_bootstrap(c, buf, sizeof buf, errstr, sizeof errstr), ENS_ERR_NOTFOUND);
    CHECK(strstr(errstr, path) != NULL);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("127.0.0.1:19092\nsecond-line\n", f);
        fclose(f);
    }
    CHECK_OK(ens_conf_bootstrap(c, buf, sizeof buf, errstr, sizeof errstr));
    CHECK_STR(buf, "127.0.0.1:19092");
    /* an explicit value wins over the file */
    CHECK_OK(ens_conf_set(c, "kafka-bootstrap", "broker:9092", errstr, sizeof errstr));
    CHECK_OK(ens_conf_bootstrap(c, buf, sizeof buf, errstr, sizeof errstr));
    CHECK_STR(buf, "broker:9092");

    CHECK_STR(ens_conf_topic(c, "trial.jobs", buf, sizeof buf), "ensflow.trial.jobs");
    CHECK_OK(ens_conf_set(c, "topic-prefix", "t1.", errstr, sizeof errstr));
    CHECK_STR(ens_conf_topic(c, "dlq", buf, sizeof buf), "t1.dlq");
    ens_conf_free(c);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    static const char *const clear[] = {"ENSFLOW_WORKERS", "ENSFLOW_RATIO", "ENSFLOW_NAME",
                                        "ENSFLOW_VERBOSE", "ENSFLOW_LOG_LEVEL",
                                        "ENSFLOW_KAFKA_BOOTSTRAP", "ENSFLOW_TOPIC_PREFIX",
                                        "ENSFLOW_RUN_DIR", "ENSFLOW_REDIS_URL"};
    for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++)
        unsetenv(clear[i]);
    test_defaults();
    test_precedence();
    test_errors();
    test_positionals();
    test_help();
    test_version();
    test_rdkafka_each();
    test_bootstrap_and_topic();
    return check_done("test_conf");
}
