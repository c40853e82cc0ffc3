/* cli.h - the ensflow command: local stack, studies, fronts, deployment, prediction, demo. */
#ifndef ENSFLOW_CLI_H
#define ENSFLOW_CLI_H

#include <jansson.h>
#include <stdint.h>

#include "ensflow/conf.h"
#include "ensflow/events.h"
#include "ensflow/registry.h"
#include "ensflow/kafka.h"
#include "ensflow/state.h"
#include "ensflow/store.h"
#include "ensflow/svc.h" /* ens_svc_conf: each subcommand's configuration */

/* Each command takes argc/argv starting at its own name and returns the exit status. */
int cli_up(int argc, char **argv);
int cli_down(int argc, char **argv);
int cli_study(int argc, char **argv);
int cli_front(int argc, char **argv);
int cli_deploy(int argc, char **argv);
int cli_plan(int argc, char **argv);
int cli_predict(int argc, char **argv);
int cli_demo(int argc, char **argv);
int cli_export(int argc, char **argv);

/** Options of `ensflow up`, shared with the demo. */
typedef struct {
    const char *run_dir;
    int trainers;
    int inference_groups; /**< single-device inference processes (usually 1) */
    int partitions;
} cli_stack_opts_t;

/** @brief Start the supervised local stack; 0 when it is up (or already was). */
int cli_stack_up(const cli_stack_opts_t *o);
/** @brief Stop it; 0 when it is down (or already was). */
int cli_stack_down(const char *run_dir);

/** Settings of a new study. */
typedef struct {
    const char *dataset;
    const char *space_json;
    int32_t trials;
    double epochs;
    int64_t seed;
    double val_fraction;
    int32_t top_k;
    const char *scheduler;      /**< "random" (NULL), "sha", "asha", "hyperband" */
    double eta;                 /**< 0 = 3 */
    double min_epochs;          /**< r_min; 0 = epochs / eta^2 */
    double max_epochs_budget;   /**< total epochs; 0 = no limit */
    double max_wall_seconds;    /**< 0 = no limit */
} cli_study_opts_t;

/** @brief Validate and send StudyCreated; writes the new id into study_id. */
int cli_study_create_run(const ens_conf_t *conf, const cli_study_opts_t *o,
                         char study_id[ENS_ID_MAX]);
/** @brief `study list`: every study (its keys in Redis), with its size in Redis and on disk. */
int cli_study_list(const ens_conf_t *conf);
/** @brief `study delete`: the study's keys and model files; refused while it runs or serves
 *         unless force. 0 when deleted. */
int cli_study_delete(const ens_conf_t *conf, const char *study_id, int force);
/** @brief Show progress until every trial is trained and evaluated, or timeout_s passes
 *         (0 = no limit). Returns 0 when complete, 3 on timeout. */
int cli_study_watch_run(const ens_conf_t *conf, const char *study_id, double timeout_s);
/** @brief Deploy (ensemble_id "" = highest holdout accuracy) and wait until a group serves it. */
int cli_deploy_run(const ens_conf_t *conf, const ens_deploy_command_t *cmd, double timeout_s,
                   ens_event_t *plan_out);

#define CLI_PREDICT_MAX_VERSIONS 8

/** What `ensflow predict` measured. */
typedef struct {
    int32_t requests, answered, errors, duplicates;
    /** first answers per plan version that gave them (the first CLI_PREDICT_MAX_VERSIONS) */
    int n_versions;
    struct {
        int64_t plan_version;
        char ensemble_id[ENS_ID_MAX];
        int32_t answered;
    } versions[CLI_PREDICT_MAX_VERSIONS];
    double latency_ms_p50, latency_ms_p99, throughput_rps, seconds;
    double accuracy; /**< -1 when the input has no labels */
} cli_predict_stats_t;

/**
 * @brief Stream n samples through inference.requests (at most window in flight) and collect
 *        the responses; probs (n*k, may be NULL) receives the answered probabilities.
 */
int cli_predict_run(const ens_conf_t *conf, const float *x, int32_t n, int32_t dim,
                    const int32_t *labels, int window, double timeout_s, float *probs,
                    int32_t k, cli_predict_stats_t *st);

/**
 * @brief The index of a predict request from its id, "<first 8 of run>-<index>": -1 for
 *        another run's id, the probe's ("<run>-probe"), anything else, or an index >= n.
 */
int32_t cli_request_index(const char *request_id, const char *run, int32_t n);

/**
 * @brief The study's front, waiting up to wait_s for one that covers every evaluated model
 *        (the selector debounces). 0 with *ev set (possibly partial after the wait), else 1.
 */
int cli_wait_front(ens_state_t *st, const char *study, double wait_s, ens_event_t *ev);
/**
 * @brief ens_svc_conf with `-o X` read as `--output X` (the short form scripts expect).
 * @return as ens_svc_conf: ENS_SVC_GO_ON to go on, else the exit status.
 */
int cli_conf(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
             ens_conf_t **conf);
/** @brief The "output" setting: *json = 1 for json, 0 for text; 2 (printed why) otherwise. */
int cli_output_json(const ens_conf_t *conf, const char *prog, int *json);
/**
 * @brief Print obj as one line of JSON on stdout; takes obj (NULL: a failed json_pack).
 * @return 0, or 1 (printed why) when it could not be built or written.
 */
int cli_json_print(const char *prog, json_t *obj);
/** @brief Connect to Redis as conf says; prints the error and returns NULL on failure. */
ens_redis_t *cli_redis(const ens_conf_t *conf);
/**
 * @brief The state layer over a Redis connection made as conf says (*r, owned by the caller
 *        with the state: cli_state_close); prints the error and returns NULL on failure.
 */
ens_state_t *cli_state_open(const ens_conf_t *conf, ens_redis_t **r);
/** @brief Free what cli_state_open made (NULLs are no-ops). */
void cli_state_close(ens_state_t *st, ens_redis_t *r);
/**
 * @brief The study's plan (study NULL: the plan in force) through the state layer over r;
 *        0 on success, prints why otherwise (unless quiet).
 */
int cli_get_plan(ens_redis_t *r, const char *study, ens_event_t *ev, int quiet);
/**
 * @brief The live devices of the registry through the state layer over r (*devices malloc'd,
 *        NULL when none); 0 on success, nonzero (nothing printed) otherwise.
 */
int cli_devices(ens_redis_t *r, ens_device_t **devices, int *n);
/** @brief Seconds on a monotonic clock. */
double cli_now(void);

#endif
