/* demo.c - `ensflow demo`: up, study, progress, deploy, the whole test set through Kafka. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "cli.h"
#include "ensflow/models.h"
#include "ensflow/data.h"
#include "ensflow/ensemble.h"
#include "ensflow/nn.h"

/* Seconds of the budget kept for deploying and streaming the test set (at most 15%). */
#define DEMO_RESERVE_S 60.0

/* Test accuracy of one stored model, computed in process (the best single model). */
static double model_test_accuracy(const ens_conf_t *conf, ens_state_t *st, const char *study,
                                  const char *model_id, const ens_dataset_t *test) {
    char name[256], errstr[512] = "";
    void *blob = NULL;
    size_t len = 0;
    ens_model_t *m = NULL;
    ens_models_t *ms = NULL;
    double acc = -1;
    snprintf(name, sizeof name, "model:%s", model_id);
    float *probs = malloc((size_t)test->n * (size_t)test->n_classes * sizeof *probs);
    if (probs && !ens_models_open_conf(conf, &ms, errstr, sizeof errstr) &&
        !ens_state_model_file_get(st, ms, study, name, &blob, &len, errstr, sizeof errstr) &&
        !ens_model_load(blob, len, &m, errstr, sizeof errstr) &&
        ens_model_n_classes(m) == test->n_classes &&
        !ens_model_predict(m, test->x, test->n, probs))
        acc = ens_accuracy(probs, test->y, NULL, test->n, test->n_classes);
    else
        fprintf(stderr, "ensflow demo: best single model %s: %s\n", model_id,
                errstr[0] ? errstr : "not loaded");
    ens_models_close(ms);
    ens_model_free(m);
    free(blob);
    free(probs);
    return acc;
}

int cli_demo(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"dataset", ENS_CONF_STR, "fashion-mnist", 0, 0,
         "fashion-mnist, a directory of MNIST-style IDX files, or a CSV file (label first)"},
        {"budget-minutes", ENS_CONF_DOUBLE, "10", 0.5, 10000,
         "time for the whole demo: the study gets all but the deployment's and the test "
         "stream's share, and ends with the library it has"},
        {"trials", ENS_CONF_INT, "100000", 1, 100000,
         "a cap on configurations (default: as many as the budget affords)"},
        {"epochs", ENS_CONF_DOUBLE, "0", 0, 1000,
         "the top rung in epochs (0 = planned from the budget)"},
        {"scheduler", ENS_CONF_STR, "random", 0, 0,
         "random, sha, asha or hyperband (random: at a demo's budget every member trained to "
         "the top rung gives the better ensemble; README, Budget-first studies)"},
        {"space", ENS_CONF_STR, "", 0, 0,
         "search space JSON (empty = the data's default: CNNs for images, MLPs for tables)"},
        {"trainers", ENS_CONF_INT, "2", 1, 64, "trainer processes"},
        {"seed", ENS_CONF_INT, "42", 0, 0, "study seed"},
        {"json", ENS_CONF_STR, "", 0, 0, "also write the results to this JSON file"},
        {"keep-up", ENS_CONF_BOOL, "false", 0, 0, "leave the stack running afterwards"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = ens_svc_conf("ensflow demo", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    double t0 = cli_now();
    char errstr[512], study[ENS_ID_MAX];
    const char *dataset = ens_conf_str(conf, "dataset");
    ens_dataset_t *test = NULL;
    if (ens_dataset_load(dataset, ENS_DATA_TEST, &test, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow demo: %s\n", errstr);
        ens_conf_free(conf);
        return 2;
    }
    cli_stack_opts_t so = {.run_dir = ens_conf_str(conf, "run-dir"),
                           .trainers = (int)ens_conf_int(conf, "trainers"),
                           .inference_groups = 1,
                           .partitions = 4};
    cli_study_opts_t o = {.dataset = dataset,
                          .space_json = ens_conf_str(conf, "space"),
                          .trials = (int32_t)ens_conf_int(conf, "trials"),
                          .epochs = ens_conf_double(conf, "epochs"),
                          .seed = ens_conf_int(conf, "seed"),
                          .val_fraction = 0.1,
                          .top_k = 5,
                          .scheduler = ens_conf_str(conf, "scheduler")};
    /* the study's share of the budget: all but what deploying and streaming the test set
     * take (about a minute here for 10,000 images) */
    double budget = ens_conf_double(conf, "budget-minutes") * 60;
    double reserve = budget * 0.15 < DEMO_RESERVE_S ? budget * 0.15 : DEMO_RESERVE_S;
    unsigned given = CLI_GIVEN_TRIALS | CLI_GIVEN_SCHEDULER;
    if (o.epochs > 0)
        given |= CLI_GIVEN_EPOCHS;
    cli_study_plan(&o, (budget - reserve) / 60, given);
    ens_redis_t *r = NULL;
    ens_state_t *state = NULL;
    ens_event_t plan;
    int have_plan = 0;
    cli_predict_stats_t st = {0};
    double single_acc = -1;
    long trials_done = 0, evaluated = 0;
    rc = cli_stack_up(&so);
    if (!rc)
        rc = cli_study_create_run(conf, &o, study);
    if (!rc) {
        fprintf(stderr,
                "ensflow demo: study %s on %s: %s, rungs %g..%g epochs, %.0f s of a %.0f s "
                "budget\n",
                study, dataset, o.scheduler, o.min_epochs > 0 ? o.min_epochs : o.epochs,
                o.epochs, o.max_wall_seconds, budget);
        /* the study ends at its deadline, once its last jobs and evaluations are in */
        rc = cli_study_watch_run(conf, study, o.max_wall_seconds + reserve / 2);
        if (rc == 3) /* budget spent: deploy what has been evaluated */
            rc = 0;
    }
    if (!rc && !(state = cli_state_open(conf, &r)))
        rc = 1;
    if (!rc) {
        ens_deploy_command_t cmd = {0};
        snprintf(cmd.study_id, sizeof cmd.study_id, "%s", study);
        rc = cli_deploy_run(conf, &cmd, 120, &plan);
        have_plan = rc == 0;
    }
    if (!rc) {
        fprintf(stderr, "ensflow demo: streaming %d test images through Kafka ...\n",
                (int)test->n);
        rc = cli_predict_run(conf, test->x, test->n, test->dim, test->y, 256, 120, NULL,
                             test->n_classes, &st);
    }
    if (state && have_plan) {
        /* the best single model of the same front, for comparison */
        ens_event_t front;
        if (ens_state_front_get(state, study, &front, errstr, sizeof errstr) == ENS_OK) {
            const ens_ensemble_front_t *f = &front.u.ensemble_front;
            for (int i = 0; i < f->n_ensembles; i++)
                if (!strcmp(f->ensembles[i].method, "single"))
                    single_acc = model_test_accuracy(conf, state, study,
                                                     f->ensembles[i].members[0], test);
            ens_event_free(&front);
        } else
            fprintf(stderr, "ensflow: %s\n", errstr);
        /* counts for the report: 0 when they cannot be read */
        if (ens_state_trials_done_count(state, study, &trials_done, NULL, 0))
            trials_done = 0;
        if (ens_state_library_count(state, study, &evaluated, NULL, 0))
            evaluated = 0;
    }
    if (have_plan) {
        char json[2048];
        snprintf(json, sizeof json,
                 "{\n  \"study\": \"%s\",\n  \"ensemble\": \"%s\",\n  \"members\": %d,\n"
                 "  \"test_accuracy_ensemble\": %.4f,\n  \"test_accuracy_best_single\": %.4f,\n"
                 "  \"requests\": %d,\n  \"answered\": %d,\n  \"errors\": %d,\n"
                 "  \"duplicates\": %d,\n  \"latency_ms_p50\": %.3f,\n  \"latency_ms_p99\": %.3f,\n"
                 "  \"throughput_rps\": %.1f,\n  \"trials\": %ld,\n  \"models_evaluated\": %ld,\n"
                 "  \"seconds\": %.1f\n}\n",
                 study, plan.u.placement_plan.ensemble_id, (int)plan.u.placement_plan.n_members,
                 st.accuracy, single_acc, (int)st.requests, (int)st.answered, (int)st.errors,
                 (int)st.duplicates, st.latency_ms_p50, st.latency_ms_p99, st.throughput_rps,
                 trials_done, evaluated, cli_now() - t0);
        printf("%s", json);
        const char *path = ens_conf_str(conf, "json");
        FILE *f = *path ? fopen(path, "w") : NULL;
        if (*path && (!f || fputs(json, f) < 0)) {
            fprintf(stderr, "ensflow demo: cannot write %s\n", path);
            rc = rc ? rc : 1;
        }
        if (f)
            fclose(f);
        ens_event_free(&plan);
    }
    cli_state_close(state, r);
    if (!ens_conf_bool(conf, "keep-up"))
        cli_stack_down(so.run_dir);
    else
        fprintf(stderr, "ensflow demo: the stack stays up in %s (ensflow down stops it)\n",
                so.run_dir);
    ens_dataset_free(test);
    ens_conf_free(conf);
    return rc;
}
