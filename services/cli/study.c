/* study.c - `ensflow study create|status|watch|stop|extend`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "cli.h"
#include "ensflow/ensemble.h"
#include "ensflow/space.h"
#include "ensflow/state_sched.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static int dataset_exists(const char *spec) {
    struct stat st;
    if (!strcmp(spec, "fashion-mnist"))
        return stat(FASHION_DIR, &st) == 0;
    return stat(spec, &st) == 0;
}

/* A space given as JSON text or @file. */
static char *read_space(const char *arg) {
    if (arg[0] != '@')
        return strdup(arg);
    FILE *f = fopen(arg + 1, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

int cli_study_create_run(const ens_conf_t *conf, const cli_study_opts_t *o,
                         char study_id[ENS_ID_MAX]) {
    char errstr[512];
    if (!dataset_exists(o->dataset)) {
        fprintf(stderr, "ensflow study create: data set '%s' not found (%s)\n", o->dataset,
                !strcmp(o->dataset, "fashion-mnist")
                    ? "install the Debian package dataset-fashion-mnist"
                    : "give fashion-mnist, a directory of MNIST-style IDX files or a CSV file");
        return 2;
    }
    if (ens_space_validate(o->space_json, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow study create: %s\n", errstr);
        return 2;
    }
    const char *sched = o->scheduler && *o->scheduler ? o->scheduler : "random";
    if (strcmp(sched, "random") && strcmp(sched, "sha") && strcmp(sched, "asha") &&
        strcmp(sched, "hyperband")) {
        fprintf(stderr, "ensflow study create: --scheduler: '%s' is not random, sha, asha or "
                        "hyperband\n", sched);
        return 2;
    }
    double eta = o->eta > 0 ? o->eta : 3;
    if (strcmp(sched, "random") &&
        (o->min_epochs > o->epochs ||
         (o->min_epochs > 0 && log(o->epochs / o->min_epochs) / log(eta) > 11))) {
        fprintf(stderr, "ensflow study create: --min-epochs must be at most --epochs and give "
                        "at most 12 rungs\n");
        return 2;
    }
    ens_kafka_t *p = NULL;
    if (ens_kafka_producer_new(conf, &p, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow study create: %s\n", errstr);
        return 1;
    }
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_STUDY_CREATED);
    ens_study_created_t *s = &ev.u.study_created;
    char uuid[37];
    ens_uuid(uuid);
    snprintf(s->study_id, sizeof s->study_id, "s-%.8s", uuid);
    s->dataset = strdup(o->dataset);
    s->search_space_json = strdup(o->space_json && *o->space_json ? o->space_json : "{}");
    s->n_trials = o->trials;
    s->epochs = o->epochs;
    s->seed = o->seed;
    s->val_fraction = o->val_fraction;
    s->top_k = o->top_k;
    snprintf(s->scheduler, sizeof s->scheduler, "%s", o->scheduler ? o->scheduler : "random");
    s->eta = o->eta > 0 ? o->eta : 3;
    s->min_epochs = o->min_epochs;
    s->max_epochs_budget = o->max_epochs_budget;
    s->max_wall_seconds = o->max_wall_seconds;
    ens_err_t err = s->dataset && s->search_space_json ? ENS_OK : ENS_ERR_NOMEM;
    if (!err)
        err = ens_kafka_produce_event(p, ENS_TOPIC_STUDY_COMMANDS, s->study_id, &ev, NULL, errstr,
                                      sizeof errstr);
    if (!err)
        err = ens_kafka_flush(p, 15000, errstr, sizeof errstr);
    if (!err)
        snprintf(study_id, ENS_ID_MAX, "%s", s->study_id);
    else
        fprintf(stderr, "ensflow study create: %s\n", errstr);
    ens_event_free(&ev);
    ens_kafka_free(p);
    return err ? 1 : 0;
}

/* Counts of a study, read from the state. */
typedef struct {
    int found;
    long n_trials, done, failed, evaluated, models, inflight, configs;
    double best_val, epochs, eta, min_epochs, budget, epochs_issued;
    int64_t deadline_ms;   /**< the wall-clock budget's end, 0 = none */
    int s_max;
    char status[32], dataset[256], scheduler[16];
} progress_t;

/* The rungs of bracket 0 less one (m), as the proposer plans them. */
static int top_rung(const progress_t *pr) {
    int m = !strcmp(pr->scheduler, "random") || !(pr->min_epochs > 0) || !(pr->eta >= 2)
                ? 0
                : (int)floor(log(pr->epochs / pr->min_epochs) / log(pr->eta) + 1e-9);
    return m < 0 ? 0 : m < ENS_ASHA_MAX_RUNGS ? m : ENS_ASHA_MAX_RUNGS - 1;
}

static void read_progress(ens_state_t *st, const char *study, progress_t *pr) {
    ens_state_sched_study_t s;
    memset(pr, 0, sizeof *pr);
    if (ens_state_sched_study_get(st, study, &s, NULL, 0))
        return;
    if (s.n_trials > 0) { /* the proposer accepted it (a rejected study has no settings) */
        pr->found = 1;
        pr->n_trials = s.n_trials;
        snprintf(pr->status, sizeof pr->status, "%s", s.status[0] ? s.status : "?");
        snprintf(pr->dataset, sizeof pr->dataset, "%s", s.dataset ? s.dataset : "?");
        pr->epochs = s.epochs;
        snprintf(pr->scheduler, sizeof pr->scheduler, "%s",
                 s.scheduler[0] ? s.scheduler : "random");
        pr->eta = s.eta > 0 ? s.eta : 3;
        pr->min_epochs = s.min_epochs > 0 ? s.min_epochs : pr->epochs;
        pr->s_max = s.s_max > 0 && s.s_max < ENS_ASHA_MAX_BRACKETS ? s.s_max : 0;
        pr->budget = s.max_epochs_budget;
        pr->deadline_ms = s.deadline_ms;
    }
    ens_state_sched_study_clear(&s);
    if (!pr->found)
        return;
    ens_state_sched_counts_t c;
    if (!ens_state_sched_counts(st, study, &c, NULL, 0)) {
        pr->done = c.trials_done;
        pr->failed = c.trials_failed;
        pr->evaluated = c.library;
        pr->models = c.models;
        pr->inflight = c.inflight;
        pr->configs = c.configs;
        pr->epochs_issued = c.epochs_issued;
    }
    int m = top_rung(pr);
    for (int b = 0; b <= pr->s_max; b++)
        for (int k = 0; k <= m - b; k++) {
            ens_state_sched_rung_t r;
            if (!ens_state_sched_rung_get(st, study, b, k, &r, NULL, 0) && r.n > 0 &&
                r.best > pr->best_val)
                pr->best_val = r.best;
        }
}

static int study_finished(const progress_t *pr) {
    return pr->found && (!strcmp(pr->status, "complete") || !strcmp(pr->status, "stopped") ||
                         !strcmp(pr->status, "rejected")) &&
           pr->inflight == 0 && pr->evaluated >= pr->models;
}

/* Epochs the study will spend in all: its budget, else n_trials * (each rung costs about
 * r_0 * n_0 of a bracket: m - s + 1 rungs of r_min * eta^s). */
static double total_epochs_estimate(const progress_t *pr) {
    if (pr->budget > 0)
        return pr->budget;
    if (!strcmp(pr->scheduler, "random") || !(pr->min_epochs > 0) || !(pr->eta >= 2))
        return (double)pr->n_trials * pr->epochs;
    int m = (int)floor(log(pr->epochs / pr->min_epochs) / log(pr->eta) + 1e-9);
    double per = 0;
    for (int s = 0; s <= pr->s_max; s++)
        per += pr->min_epochs * pow(pr->eta, s) * (m - s + 1);
    return (double)pr->n_trials * per / (pr->s_max + 1);
}

/* Live trainers (beat within 15 s), and how many of them are busy. */
static void count_trainers(ens_state_t *st, long *busy, long *idle) {
    int64_t since = ens_now_ms() - 15000;
    char **ids = NULL, **states = NULL;
    int live = 0, n = 0;
    *busy = *idle = 0;
    if (ens_state_trainer_live(st, since, &live, NULL, 0) ||
        ens_state_trainer_state_list(st, &ids, &states, &n, NULL, 0))
        return;
    for (int i = 0; i < n; i++) {
        ens_state_trainer_t tr;
        if (!strncmp(states[i], "busy", 4) && ids[i][0] &&
            !ens_state_trainer_get(st, ids[i], &tr, NULL, 0) && tr.beat_ms >= since)
            (*busy)++;
    }
    ens_state_strings_free(ids, n);
    ens_state_strings_free(states, n);
    *idle = live - *busy > 0 ? live - *busy : 0;
}

/* The live table: rungs, trainers, budget, ETA. */
static void print_table(ens_state_t *st, const char *study, const progress_t *pr,
                        double elapsed) {
    int tty = isatty(2);
    if (tty)
        fputs("\033[H\033[J", stderr);
    fprintf(stderr, "study %s  scheduler %s  status %s  elapsed %.0fs\n", study, pr->scheduler,
            pr->status, elapsed);
    fprintf(stderr, "  %-7s %-5s %8s %8s %8s %8s %8s\n", "bracket", "rung", "epochs", "trials",
            "running", "best", "median");
    int m = top_rung(pr);
    for (int b = 0; b <= pr->s_max; b++)
        for (int k = 0; k <= m - b; k++) {
            ens_state_sched_rung_t r;
            if (ens_state_sched_rung_get(st, study, b, k, &r, NULL, 0)) {
                r.n = r.entered = r.done = 0;
                r.best = r.median = NAN;
            }
            double ep = b + k >= m ? pr->epochs : pr->min_epochs * pow(pr->eta, b + k);
            fprintf(stderr, "  %-7d %-5d %8.3g %8ld %8ld %8.4f %8.4f\n", b, k, ep, r.n,
                    r.entered - r.done, r.best, r.median);
        }
    long busy = 0, idle = 0;
    count_trainers(st, &busy, &idle);
    fprintf(stderr, "trainers: %ld busy, %ld idle   configurations %ld", busy, idle,
            pr->configs);
    if (pr->deadline_ms > 0) { /* budget first: the time left is the ETA */
        double left = (double)(pr->deadline_ms - ens_now_ms()) / 1e3;
        fprintf(stderr, "   epochs %.1f   jobs in flight %ld   budget: %.0fs left\n",
                pr->epochs_issued, pr->inflight, left > 0 ? left : 0.0);
    } else {
        double total = total_epochs_estimate(pr);
        double frac = total > 0 ? pr->epochs_issued / total : 0;
        fprintf(stderr, "/%ld   epochs %.1f of ~%.0f   jobs in flight %ld   ETA %s%.0fs\n",
                pr->n_trials, pr->epochs_issued, total, pr->inflight, frac > 0.02 ? "~" : "?",
                frac > 0.02 ? elapsed * (1 - frac) / frac : 0.0);
    }
    fprintf(stderr, "results: %ld trials ok, %ld failed, %ld models, %ld evaluated, best val acc "
                    "%.4f\n",
            pr->done, pr->failed, pr->models, pr->evaluated, pr->best_val);
    /* the best ensemble so far: the one deploy takes without limits */
    ens_event_t front;
    if (ens_state_front_get(st, study, &front, NULL, 0) == ENS_OK) {
        const ens_ensemble_front_t *f = &front.u.ensemble_front;
        int b = ens_ensemble_choose(f->ensembles, f->n_ensembles, NULL);
        const ens_ensemble_t *best = b >= 0 ? &f->ensembles[b] : NULL;
        if (best)
            fprintf(stderr, "best ensemble so far: %s, %d member(s), holdout accuracy %.4f "
                            "(library of %d)\n",
                    best->ensemble_id, (int)best->n_members, best->holdout_accuracy,
                    (int)f->n_models);
        ens_event_free(&front);
    }
}

int cli_study_watch_run(const ens_conf_t *conf, const char *study_id, double timeout_s) {
    ens_redis_t *r = cli_redis(conf);
    ens_state_t *st = NULL;
    if (!r)
        return 1;
    if (ens_state_redis_new(r, NULL, &st)) {
        fprintf(stderr, "ensflow study watch: out of memory\n");
        ens_redis_free(r);
        return 1;
    }
    double t0 = cli_now(), last_print = -100;
    int rc = 3;
    progress_t pr;
    while (timeout_s <= 0 || cli_now() - t0 < timeout_s) {
        read_progress(st, study_id, &pr);
        int complete = study_finished(&pr);
        double now = cli_now();
        if (complete || (isatty(2) && now - last_print >= 1) || now - last_print >= 10) {
            if (pr.found)
                print_table(st, study_id, &pr, now - t0);
            else
                fprintf(stderr, "study %s: waiting for the proposer ...\n", study_id);
            last_print = now;
        }
        if (complete) {
            rc = !strcmp(pr.status, "rejected") ? 1 : 0;
            break;
        }
        usleep(500000);
    }
    if (rc == 3)
        fprintf(stderr, "\nensflow study watch: %s not complete after %.0f s\n", study_id,
                timeout_s);
    ens_state_free(st);
    ens_redis_free(r);
    return rc;
}

/* stop / extend: a StudyCommand on study.commands. */
static int study_command(const ens_conf_t *conf, const char *study_id, const char *command,
                         int argc, char **argv) {
    char errstr[512];
    ens_kafka_t *p = NULL;
    if (ens_kafka_producer_new(conf, &p, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow study %s: %s\n", command, errstr);
        return 1;
    }
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_STUDY_COMMAND);
    ens_study_command_t *c = &ev.u.study_command;
    snprintf(c->study_id, sizeof c->study_id, "%s", study_id);
    snprintf(c->command, sizeof c->command, "%s", command);
    if (!strcmp(command, "extend")) {
        /* --trials has a default for create; extend adds only what is given */
        c->add_trials = cli_study_given(argc, argv) & CLI_GIVEN_TRIALS
                            ? (int32_t)ens_conf_int(conf, "trials")
                            : 0;
        c->add_epochs_budget = ens_conf_double(conf, "epochs-budget");
        c->add_wall_seconds = ens_conf_double(conf, "max-seconds");
    }
    ens_err_t err = ens_kafka_produce_event(p, ENS_TOPIC_STUDY_COMMANDS, study_id, &ev, NULL,
                                            errstr, sizeof errstr);
    if (!err)
        err = ens_kafka_flush(p, 15000, errstr, sizeof errstr);
    if (err)
        fprintf(stderr, "ensflow study %s: %s\n", command, errstr);
    ens_event_free(&ev);
    ens_kafka_free(p);
    return err ? 1 : 0;
}

static int study_status(const ens_conf_t *conf, const char *study_id) {
    int json = 0;
    if (cli_output_json(conf, "ensflow study status", &json))
        return 2;
    ens_redis_t *r = cli_redis(conf);
    ens_state_t *st = NULL;
    if (!r)
        return 1;
    if (ens_state_redis_new(r, NULL, &st)) {
        fprintf(stderr, "ensflow study status: out of memory\n");
        ens_redis_free(r);
        return 1;
    }
    progress_t pr;
    read_progress(st, study_id, &pr);
    ens_state_free(st);
    ens_redis_free(r);
    if (!pr.found) {
        fprintf(stderr, "ensflow study status: no study %s\n", study_id);
        return 1;
    }
    if (json) /* the text's facts, one key each */
        return cli_json_print(
            "ensflow study status",
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:f}",
                      "study_id", study_id, "status", pr.status, "scheduler", pr.scheduler,
                      "dataset", pr.dataset, "trials_started", (json_int_t)pr.configs,
                      "trials_planned", (json_int_t)pr.n_trials, "trials_ok",
                      (json_int_t)pr.done, "trials_failed", (json_int_t)pr.failed,
                      "jobs_in_flight", (json_int_t)pr.inflight, "epochs_per_trial",
                      pr.epochs, "epochs_issued", pr.epochs_issued, "models_evaluated",
                      (json_int_t)pr.evaluated, "models", (json_int_t)pr.models,
                      "best_val_accuracy", pr.best_val));
    printf("study:      %s\nstatus:     %s\nscheduler:  %s\ndataset:    %s\n"
           "trials:     %ld started of %ld, %ld ok, %ld failed, %ld jobs in flight\n"
           "epochs:     %g max per trial, %.1f issued\nevaluated:  %ld of %ld models\n"
           "best val:   %.4f\n",
           study_id, pr.status, pr.scheduler, pr.dataset, pr.configs, pr.n_trials, pr.done,
           pr.failed, pr.inflight, pr.epochs, pr.epochs_issued, pr.evaluated, pr.models,
           pr.best_val);
    return 0;
}

int cli_study(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"dataset", ENS_CONF_STR, "fashion-mnist", 0, 0,
         "fashion-mnist, a directory of MNIST-style IDX files, or a CSV file (label first)"},
        {"trials", ENS_CONF_INT, "12", 1, 100000,
         "configurations to train (with --budget-minutes: a cap, default none)"},
        {"epochs", ENS_CONF_DOUBLE, "3", 0.01, 1000,
         "epochs per trial, the top rung (with --budget-minutes: planned from it)"},
        {"seed", ENS_CONF_INT, "42", 0, 0, "study seed (split, proposals, initialisation)"},
        {"val-fraction", ENS_CONF_DOUBLE, "0.1", 0.001, 0.9, "share of training data held out"},
        {"top-k", ENS_CONF_INT, "5", 1, 1000, "members of the top-K ensemble"},
        {"space", ENS_CONF_STR, "", 0, 0,
         "search space as JSON or @file (empty = the data's default: CNNs for images, MLPs "
         "for tables)"},
        {"timeout", ENS_CONF_DOUBLE, "0", 0, 1e9, "watch: give up after this many seconds"},
        {"scheduler", ENS_CONF_STR, "random", 0, 0,
         "random, sha, asha or hyperband (with --budget-minutes: asha)"},
        {"eta", ENS_CONF_DOUBLE, "3", 2, 100, "rung reduction factor (top 1/eta promoted)"},
        {"min-epochs", ENS_CONF_DOUBLE, "0", 0, 1000,
         "epochs of the lowest rung (0 = epochs / eta^2; fractions allowed)"},
        {"epochs-budget", ENS_CONF_DOUBLE, "0", 0, 1e9,
         "total epochs over all trials (0 = no limit); extend: epochs to add"},
        {"max-seconds", ENS_CONF_DOUBLE, "0", 0, 1e9,
         "wall-clock cap (0 = no limit); extend: seconds to add"},
        {"budget-minutes", ENS_CONF_DOUBLE, "0", 0, 1e6,
         "the study's time budget: configurations keep coming until it is spent, ASHA, rungs "
         "planned from it (0 = none; then --trials and --epochs decide)"},
        {"output", ENS_CONF_STR, "text", 0, 0,
         "status, list: text, or json on stdout (-o json)"},
        {"force", ENS_CONF_BOOL, "false", 0, 0,
         "delete: also a study that is running or whose ensemble is deployed"},
        {NULL, 0, NULL, 0, 0, NULL}};
    const char *sub = argc > 1 ? argv[1] : "";
    ens_conf_t *conf = NULL;
    if (!strcmp(sub, "--version")) /* `ensflow study --version`, as every command answers it */
        return ens_svc_conf("ensflow study", defs, argc, argv, &conf);
    if (strcmp(sub, "create") && strcmp(sub, "status") && strcmp(sub, "watch") &&
        strcmp(sub, "stop") && strcmp(sub, "extend") && strcmp(sub, "list") &&
        strcmp(sub, "delete")) {
        fprintf(stderr, "usage: ensflow study create [--dataset D] [--budget-minutes M] "
                        "[--trials N] [--epochs E] [--scheduler asha|hyperband|sha|random] ...\n"
                        "       ensflow study status STUDY [-o json]\n"
                        "       ensflow study watch STUDY\n"
                        "       ensflow study stop STUDY\n"
                        "       ensflow study extend STUDY [--trials N] [--epochs-budget E] "
                        "[--max-seconds S]\n"
                        "       ensflow study list [-o json]\n"
                        "       ensflow study delete STUDY [--force]\n");
        return 2;
    }
    int rc = cli_conf("ensflow study", defs, argc - 1, argv + 1, &conf);
    if (rc >= 0)
        return rc;
    if (!strcmp(sub, "create")) {
        char *space = read_space(ens_conf_str(conf, "space"));
        cli_study_opts_t o = {.dataset = ens_conf_str(conf, "dataset"),
                              .space_json = space,
                              .trials = (int32_t)ens_conf_int(conf, "trials"),
                              .epochs = ens_conf_double(conf, "epochs"),
                              .seed = ens_conf_int(conf, "seed"),
                              .val_fraction = ens_conf_double(conf, "val-fraction"),
                              .top_k = (int32_t)ens_conf_int(conf, "top-k"),
                              .scheduler = ens_conf_str(conf, "scheduler"),
                              .eta = ens_conf_double(conf, "eta"),
                              .min_epochs = ens_conf_double(conf, "min-epochs"),
                              .max_epochs_budget = ens_conf_double(conf, "epochs-budget"),
                              .max_wall_seconds = ens_conf_double(conf, "max-seconds")};
        cli_study_plan(&o, ens_conf_double(conf, "budget-minutes"),
                       cli_study_given(argc - 1, argv + 1));
        char id[ENS_ID_MAX];
        if (!space) {
            fprintf(stderr, "ensflow study create: cannot read %s\n", ens_conf_str(conf, "space"));
            rc = 2;
        } else if ((rc = cli_study_create_run(conf, &o, id)) == 0)
            printf("%s\n", id);
        free(space);
    } else if (!strcmp(sub, "list")) {
        if (ens_conf_positional_count(conf) != 0) {
            fprintf(stderr, "ensflow study list: takes no study id\n");
            rc = 2;
        } else
            rc = cli_study_list(conf);
    } else if (ens_conf_positional_count(conf) != 1) {
        fprintf(stderr, "ensflow study %s: give the study id\n", sub);
        rc = 2;
    } else if (!strcmp(sub, "stop") || !strcmp(sub, "extend"))
        rc = study_command(conf, ens_conf_positional(conf, 0), sub, argc, argv);
    else if (!strcmp(sub, "status"))
        rc = study_status(conf, ens_conf_positional(conf, 0));
    else if (!strcmp(sub, "delete"))
        rc = cli_study_delete(conf, ens_conf_positional(conf, 0), ens_conf_bool(conf, "force"));
    else
        rc = cli_study_watch_run(conf, ens_conf_positional(conf, 0),
                                 ens_conf_double(conf, "timeout"));
    ens_conf_free(conf);
    return rc;
}
