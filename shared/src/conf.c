/* conf.c - configuration tables: defaults, ENSFLOW_* environment, --flags, --help. */
#include "ensflow/conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ens_version_gen.h" /* ENSFLOW_GIT_COMMIT, written at build time (cmake/version.cmake) */

#ifndef ENSFLOW_VERSION
#error "ENSFLOW_VERSION is defined by CMakeLists.txt from project(VERSION)"
#endif

extern char **environ;

static const ens_conf_def_t common_defs[] = {
    {"kafka-bootstrap", ENS_CONF_STR, "", 0, 0,
     "Kafka bootstrap.servers; empty = read <run-dir>/bootstrap (written by ensflow-broker)"},
    {"redis-url", ENS_CONF_STR, "", 0, 0,
     "redis://[user:pass@]host:port/db; empty = <run-dir>/redis.url, else 127.0.0.1:6379"},
    {"topic-prefix", ENS_CONF_STR, "ensflow.", 0, 0, "prefix of every Kafka topic name"},
    {"run-dir", ENS_CONF_STR, ".ensflow", 0, 0, "directory of the local stack (logs, pids)"},
    {"model-store", ENS_CONF_STR, "", 0, 0,
     "directory of model files (a volume all trainers, evaluators and inference groups "
     "mount); empty = <run-dir>/models"},
    {"log-level", ENS_CONF_STR, "info", 0, 0, "debug | info | warn | error"},
    {"metrics-port", ENS_CONF_INT, "0", 0, 65535,
     "HTTP port of /metrics and /healthz (services); 0 = off"},
    {"healthcheck", ENS_CONF_BOOL, "false", 0, 0,
     "only GET 127.0.0.1:<metrics-port>/healthz and exit 0 when healthy (container probes)"},
    {"max-message-bytes", ENS_CONF_INT, "1048576", 1024, 1000000000,
     "largest Kafka message produced or accepted; larger ones are dead-lettered"},
    {NULL, 0, NULL, 0, 0, NULL}};

struct ens_conf_s {
    int n;
    const ens_conf_def_t **defs;
    char **values;
    int n_pos;
    char **pos;
};

static int find(const ens_conf_t *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->defs[i]->name, name) == 0)
            return i;
    return -1;
}

static void env_name(const char *name, char *buf, size_t size) {
    size_t o = (size_t)snprintf(buf, size, "ENSFLOW_");
    for (const char *p = name; *p && o + 1 < size; p++)
        buf[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    buf[o] = '\0';
}

static ens_err_t validate(const ens_conf_def_t *d, const char *value, const char *origin,
                          char *errstr, size_t errstr_size) {
    char *end = NULL;
    double v = 0;
    switch (d->type) {
    case ENS_CONF_STR:
        return ENS_OK;
    case ENS_CONF_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "false") || !strcmp(value, "1") ||
            !strcmp(value, "0") || !strcmp(value, "yes") || !strcmp(value, "no"))
            return ENS_OK;
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "%s %s: '%s' is not true or false", origin, d->name, value);
    case ENS_CONF_INT:
        errno = 0;
        v = (double)strtoll(value, &end, 10);
        break;
    case ENS_CONF_DOUBLE:
        errno = 0;
        v = strtod(value, &end);
        break;
    }
    if (!*value || !end || *end || errno)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s %s: '%s' is not %s", origin,
                           d->name, value, d->type == ENS_CONF_INT ? "an integer" : "a number");
    /* written so that NaN ("nan" parses as a double) fails the bounds too */
    if (d->min != d->max && !(v >= d->min && v <= d->max))
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "%s %s: %s is out of range [%g, %g]", origin, d->name, value, d->min,
                           d->max);
    return ENS_OK;
}

ens_err_t ens_conf_set(ens_conf_t *c, const char *name, const char *value, char *errstr,
                       size_t errstr_size) {
    int i = find(c, name);
    if (i < 0)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "unknown option --%s", name);
    ens_err_t err = validate(c->defs[i], value, "option", errstr, errstr_size);
    if (err)
        return err;
    char *copy = strdup(value);
    if (!copy)
        return ENS_ERR_NOMEM;
    free(c->values[i]);
    c->values[i] = copy;
    return ENS_OK;
}

void ens_conf_help(const char *prog, const ens_conf_def_t *defs, FILE *out) {
    fprintf(out, "usage: %s [--option=value ...]\n\noptions (flag, environment, default):\n",
            prog);
    const ens_conf_def_t *tables[2] = {defs, common_defs};
    for (int t = 0; t < 2; t++)
        for (const ens_conf_def_t *d = tables[t]; d && d->name; d++) {
            char env[128];
            env_name(d->name, env, sizeof env);
            fprintf(out, "  --%-20s %-28s [%s]\n      %s\n", d->name, env,
                    d->def && *d->def ? d->def : "", d->doc);
        }
    fprintf(out, "\nAny ENSFLOW_RDKAFKA_<PROP>=value sets librdkafka property <prop> "
                 "(underscores become dots).\n");
}

const char *ens_conf_version_str(void) { return ENSFLOW_VERSION; }

const char *ens_conf_commit_str(void) { return ENSFLOW_GIT_COMMIT; }

void ens_conf_version(const char *prog, FILE *out) {
    /* the binary's name: "ensflow study" (a CLI subcommand) prints as "ensflow" */
    int len = (int)strcspn(prog, " ");
    if (*ENSFLOW_GIT_COMMIT)
        fprintf(out, "%.*s %s (commit %s)\n", len, prog, ENSFLOW_VERSION, ENSFLOW_GIT_COMMIT);
    else
        fprintf(out, "%.*s %s\n", len, prog, ENSFLOW_VERSION);
}

ens_err_t ens_conf_new(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
                       ens_conf_t **out, char *errstr, size_t errstr_size) {
    ens_conf_t *c = calloc(1, sizeof *c);
    int n = 0;
    for (const ens_conf_def_t *d = defs; d && d->name; d++)
        n++;
    n += (int)(sizeof common_defs / sizeof common_defs[0]) - 1;
    if (!c || !(c->defs = calloc((size_t)n, sizeof *c->defs)) ||
        !(c->values = calloc((size_t)n, sizeof *c->values)) ||
        !(c->pos = calloc((size_t)argc + 1, sizeof *c->pos))) {
        ens_conf_free(c);
        return ENS_ERR_NOMEM;
    }
    ens_err_t err = ENS_OK;
    const ens_conf_def_t *tables[2] = {defs, common_defs};
    for (int t = 0; t < 2; t++)
        for (const ens_conf_def_t *d = tables[t]; d && d->name; d++) {
            if (find(c, d->name) >= 0)
                continue; /* a program may override a common default */
            c->defs[c->n] = d;
            c->values[c->n] = strdup(d->def ? d->def : "");
            if (!c->values[c->n++]) {
                ens_conf_free(c);
                return ENS_ERR_NOMEM;
            }
        }
    for (int i = 0; i < c->n && !err; i++) {
        char env[128];
        env_name(c->defs[i]->name, env, sizeof env);
        const char *v = getenv(env);
        if (v) {
            err = validate(c->defs[i], v, "environment", errstr, errstr_size);
            if (!err && !(c->values[i] = (free(c->values[i]), strdup(v))))
                err = ENS_ERR_NOMEM;
        }
    }
    for (int a = 1; a < argc && !err; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            ens_conf_help(prog, defs, stdout);
            err = ENS_ERR_STOPPED;
            break;
        }
        if (strcmp(arg, "--version") == 0) {
            ens_conf_version(prog, stdout);
            err = ENS_ERR_STOPPED;
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            c->pos[c->n_pos++] = argv[a];
            continue;
        }
        char name[128];
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (len >= sizeof name) {
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "option %s is too long", arg);
            break;
        }
        memcpy(name, arg + 2, len);
        name[len] = '\0';
        int i = find(c, name);
        if (i < 0) {
            err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                              "unknown option --%s (see %s --help)", name, prog);
            break;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (c->defs[i]->type == ENS_CONF_BOOL)
                value = "true";
            else if (a + 1 < argc)
                value = argv[++a];
            else {
                err = ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                                  "option --%s needs a value", name);
                break;
            }
        }
        err = ens_conf_set(c, name, value, errstr, errstr_size);
    }
    if (err) {
        ens_conf_free(c);
        return err;
    }
    *out = c;
    return ENS_OK;
}

void ens_conf_free(ens_conf_t *c) {
    if (!c)
        return;
    for (int i = 0; i < c->n; i++)
        free(c->values[i]);
    free(c->values);
    free(c->defs);
    free(c->pos);
    free(c);
}

const char *ens_conf_str(const ens_conf_t *c, const char *name) {
    int i = find(c, name);
    ENS_ASSERT(i >= 0);
    return c->values[i];
}

int64_t ens_conf_int(const ens_conf_t *c, const char *name) {
    return strtoll(ens_conf_str(c, name), NULL, 10);
}

double ens_conf_double(const ens_conf_t *c, const char *name) {
    return strtod(ens_conf_str(c, name), NULL);
}

int ens_conf_bool(const ens_conf_t *c, const char *name) {
    const char *v = ens_conf_str(c, name);
    return !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes");
}

int ens_conf_positional_count(const ens_conf_t *c) { return c->n_pos; }

const char *ens_conf_positional(const ens_conf_t *c, int i) {
    return i >= 0 && i < c->n_pos ? c->pos[i] : NULL;
}

static int read_first_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] ? 0 : -1;
}

ens_err_t ens_conf_bootstrap(const ens_conf_t *c, char *buf, size_t size, char *errstr,
                             size_t errstr_size) {
    const char *v = ens_conf_str(c, "kafka-bootstrap");
    if (*v) {
        snprintf(buf, size, "%s", v);
        return ENS_OK;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/bootstrap", ens_conf_str(c, "run-dir"));
    if (read_first_line(path, buf, size) == 0)
        return ENS_OK;
    return ens_err_set(errstr, errstr_size, ENS_ERR_NOTFOUND,
                       "no Kafka bootstrap: set --kafka-bootstrap / ENSFLOW_KAFKA_BOOTSTRAP, or "
                       "start the local stack (ensflow up) so that %s exists",
                       path);
}

void ens_conf_redis_url(const ens_conf_t *c, char *buf, size_t size) {
    const char *v = ens_conf_str(c, "redis-url");
    if (*v) {
        snprintf(buf, size, "%s", v);
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/redis.url", ens_conf_str(c, "run-dir"));
    if (read_first_line(path, buf, size) != 0)
        snprintf(buf, size, "redis://127.0.0.1:6379/0");
}

void ens_conf_model_store(const ens_conf_t *c, char *buf, size_t size) {
    const char *v = ens_conf_str(c, "model-store");
    if (*v)
        snprintf(buf, size, "%s", v);
    else
        snprintf(buf, size, "%s/models", ens_conf_str(c, "run-dir"));
}

const char *ens_conf_topic(const ens_conf_t *c, const char *short_name, char *buf, size_t size) {
    snprintf(buf, size, "%s%s", ens_conf_str(c, "topic-prefix"), short_name);
    return buf;
}

int ens_conf_rdkafka_each(int (*fn)(void *opaque, const char *prop, const char *value),
                          void *opaque) {
    static const char pfx[] = "ENSFLOW_RDKAFKA_";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, pfx, sizeof pfx - 1) != 0)
            continue;
        const char *name = *e + sizeof pfx - 1;
        const char *eq = strchr(name, '=');
        if (!eq || eq == name || (size_t)(eq - name) >= 128)
            continue;
        char prop[128];
        size_t len = (size_t)(eq - name);
        for (size_t i = 0; i < len; i++)
            prop[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
        prop[len] = '\0';
        int rc = fn(opaque, prop, eq + 1);
        if (rc)
            return rc;
    }
    return 0;
}
