/* conf.h - one configuration table per program: defaults < ENSFLOW_<NAME> env < --name=value. */
#ifndef ENSFLOW_CONF_H
#define ENSFLOW_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ensflow/err.h"

typedef enum { ENS_CONF_STR = 0, ENS_CONF_INT, ENS_CONF_DOUBLE, ENS_CONF_BOOL } ens_conf_type_t;

/** One setting. A table of these ends with an entry whose name is NULL. */
typedef struct {
    const char *name;   /**< flag name without dashes, e.g. "max-batch"; env ENSFLOW_MAX_BATCH */
    ens_conf_type_t type;
    const char *def;    /**< default value as text */
    double min, max;    /**< bounds for numbers (ignored when min == max) */
    const char *doc;    /**< one line for --help; say the unit */
} ens_conf_def_t;

typedef struct ens_conf_s ens_conf_t;

/**
 * @brief Parse the table (plus the common settings every program has: kafka-bootstrap,
 *        redis-url, topic-prefix, run-dir, model-store, log-level) from the environment and argv.
 *        Flags are --name=value or --name value; a bool flag alone means true.
 *        Arguments that are not flags are kept as positionals (ens_conf_positional).
 * @return ENS_OK; ENS_ERR_STOPPED after printing --help or --version to stdout (the first of
 *         them given wins); ENS_ERR_INVALID with errstr naming the option and the problem.
 */
ens_err_t ens_conf_new(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
                       ens_conf_t **out, char *errstr, size_t errstr_size);
void ens_conf_free(ens_conf_t *conf);

/** @brief Print the table: flag, env variable, default, doc. */
void ens_conf_help(const char *prog, const ens_conf_def_t *defs, FILE *out);

/**
 * @brief Print "<binary> <version>" and " (commit <hash>[-dirty])" when the build knew it, one
 *        line; <binary> is prog up to its first space ("ensflow study" -> "ensflow").
 */
void ens_conf_version(const char *prog, FILE *out);
/** @brief The project's version, "MAJOR.MINOR.PATCH" (CMake's project VERSION). */
const char *ens_conf_version_str(void);
/** @brief The git commit built ("<12 hex>" or "<12 hex>-dirty"); "" when not known. */
const char *ens_conf_commit_str(void);

const char *ens_conf_str(const ens_conf_t *conf, const char *name);
int64_t ens_conf_int(const ens_conf_t *conf, const char *name);
double ens_conf_double(const ens_conf_t *conf, const char *name);
int ens_conf_bool(const ens_conf_t *conf, const char *name);

/** @brief Set a value (validated as its type); for tests and programs that compute settings. */
ens_err_t ens_conf_set(ens_conf_t *conf, const char *name, const char *value, char *errstr,
                       size_t errstr_size);

int ens_conf_positional_count(const ens_conf_t *conf);
const char *ens_conf_positional(const ens_conf_t *conf, int i);

/**
 * @brief The Kafka bootstrap servers: kafka-bootstrap when set, else the first line of
 *        <run-dir>/bootstrap written by ensflow-broker.
 */
ens_err_t ens_conf_bootstrap(const ens_conf_t *conf, char *buf, size_t size, char *errstr,
                             size_t errstr_size);

/** @brief The Redis URL: redis-url when set, else <run-dir>/redis.url, else localhost:6379. */
void ens_conf_redis_url(const ens_conf_t *conf, char *buf, size_t size);

/** @brief The model store's directory: model-store when set, else <run-dir>/models. */
void ens_conf_model_store(const ens_conf_t *conf, char *buf, size_t size);

/** @brief Full topic name: topic-prefix + short name ("trial.jobs" -> "ensflow.trial.jobs"). */
const char *ens_conf_topic(const ens_conf_t *conf, const char *short_name, char *buf, size_t size);

/**
 * @brief Call fn(prop, value) for every ENSFLOW_RDKAFKA_<PROP>=value in the environment,
 *        prop lower-cased with underscores turned into dots (SASL_MECHANISMS -> sasl.mechanisms).
 * @return the first non-zero value fn returns, else 0.
 */
int ens_conf_rdkafka_each(int (*fn)(void *opaque, const char *prop, const char *value),
                          void *opaque);

#endif
