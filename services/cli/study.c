/* study.c - `ensflow study create|status|watch`. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ensflow/space.h"

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

/* Counts of a study, read from Redis. */
typedef struct {
    int found;
    long n_trials, done, failed, running, evaluated;
    double best_val, epochs;
    char status[32], dataset[256];
} progress_t;

static long scard(ens_redis_t *r, const char *study, const char *suffix) {
    char key[256];
    ens_key(key, sizeof key, study, "%s", suffix);
    redisReply *rep = ens_redis_command(r, NULL, 0, "SCARD %s", key);
    long n = rep && rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : 0;
    ens_redis_reply_free(rep);
    return n;
}

static void read_progress(ens_redis_t *r, const char *study, progress_t *pr) {
    char key[256];
    memset(pr, 0, sizeof *pr);
    ens_key(key, sizeof key, study, "study");
    redisReply *rep = ens_redis_command(r, NULL, 0, "HMGET %s n_trials status dataset epochs", key);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 4 &&
        rep->element[0]->type == REDIS_REPLY_STRING) {
        pr->found = 1;
        pr->n_trials = strtol(rep->element[0]->str, NULL, 10);
        snprintf(pr->status, sizeof pr->status, "%s",
                 rep->element[1]->str ? rep->element[1]->str : "?");
        snprintf(pr->dataset, sizeof pr->dataset, "%s",
                 rep->element[2]->str ? rep->element[2]->str : "?");
        pr->epochs = rep->element[3]->str ? strtod(rep->element[3]->str, NULL) : 0;
    }
    ens_redis_reply_free(rep);
    if (!pr->found)
        return;
    pr->done = scard(r, study, "trials:done");
    pr->failed = scard(r, study, "trials:failed");
    pr->evaluated = scard(r, study, "library");
    for (long i = 0; i < pr->n_trials && i < 100000; i++) {
        ens_key(key, sizeof key, study, "trial:t-%04ld", i);
        rep = ens_redis_command(r, NULL, 0, "HMGET %s status progress_epochs val_accuracy", key);
        if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3) {
            const char *st = rep->element[0]->str;
            if (st && !strcmp(st, "queued") && rep->element[1]->str)
                pr->running++;
            if (rep->element[2]->str) {
                double acc = strtod(rep->element[2]->str, NULL);
                if (acc > pr->best_val)
                    pr->best_val = acc;
            }
        }
        ens_redis_reply_free(rep);
    }
}

static void print_progress(const char *study, const progress_t *pr, double elapsed, int final) {
    long finished = pr->done + pr->failed;
    double eta = finished > 0 ? elapsed / (double)finished * (double)(pr->n_trials - finished) : 0;
    fprintf(stderr,
            "%sstudy %s: trials %ld/%ld done (%ld running, %ld failed), %ld evaluated, "
            "best val acc %.4f, elapsed %.0fs, remaining ~%s%.0fs   %s",
            isatty(2) ? "\r" : "", study, pr->done, pr->n_trials, pr->running, pr->failed,
            pr->evaluated, pr->best_val, elapsed, finished ? "" : "?", eta,
            final || !isatty(2) ? "\n" : "");
}

int cli_study_watch_run(const ens_conf_t *conf, const char *study_id, double timeout_s) {
    ens_redis_t *r = cli_redis(conf);
    if (!r)
        return 1;
    double t0 = cli_now(), last_print = -100;
    int rc = 3;
    progress_t pr;
    while (timeout_s <= 0 || cli_now() - t0 < timeout_s) {
        read_progress(r, study_id, &pr);
        int complete = pr.found && pr.done + pr.failed >= pr.n_trials && pr.evaluated >= pr.done;
        double now = cli_now();
        if (complete || isatty(2) || now - last_print >= 10) {
            if (pr.found)
                print_progress(study_id, &pr, now - t0, complete);
            else
                fprintf(stderr, "study %s: waiting for the proposer ...\n", study_id);
            last_print = now;
        }
        if (complete) {
            rc = 0;
            break;
        }
        usleep(500000);
    }
    if (rc)
        fprintf(stderr, "\nensflow study watch: %s not complete after %.0f s\n", study_id,
                timeout_s);
    ens_redis_free(r);
    return rc;
}

static int study_status(const ens_conf_t *conf, const char *study_id) {
    ens_redis_t *r = cli_redis(conf);
    if (!r)
        return 1;
    progress_t pr;
    read_progress(r, study_id, &pr);
    ens_redis_free(r);
    if (!pr.found) {
        fprintf(stderr, "ensflow study status: no study %s\n", study_id);
        return 1;
    }
    printf("study:      %s\nstatus:     %s\ndataset:    %s\ntrials:     %ld done, %ld failed, "
           "%ld running, of %ld\nepochs:     %g per trial\nevaluated:  %ld models\n"
           "best val:   %.4f\n",
           study_id, pr.status, pr.dataset, pr.done, pr.failed, pr.running, pr.n_trials,
           pr.epochs, pr.evaluated, pr.best_val);
    return 0;
}

int cli_study(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"dataset", ENS_CONF_STR, "fashion-mnist", 0, 0,
         "fashion-mnist, a directory of MNIST-style IDX files, or a CSV file (label first)"},
        {"trials", ENS_CONF_INT, "12", 1, 100000, "configurations to train"},
        {"epochs", ENS_CONF_DOUBLE, "3", 0.01, 1000, "epochs per trial"},
        {"seed", ENS_CONF_INT, "42", 0, 0, "study seed (split, proposals, initialisation)"},
        {"val-fraction", ENS_CONF_DOUBLE, "0.1", 0.001, 0.9, "share of training data held out"},
        {"top-k", ENS_CONF_INT, "5", 1, 1000, "members of the top-K ensemble"},
        {"space", ENS_CONF_STR, "", 0, 0, "search space as JSON or @file (empty = defaults)"},
        {"timeout", ENS_CONF_DOUBLE, "0", 0, 1e9, "watch: give up after this many seconds"},
        {NULL, 0, NULL, 0, 0, NULL}};
    const char *sub = argc > 1 ? argv[1] : "";
    if (strcmp(sub, "create") && strcmp(sub, "status") && strcmp(sub, "watch")) {
        fprintf(stderr, "usage: ensflow study create [--dataset D] [--trials N] [--epochs E] ...\n"
                        "       ensflow study status STUDY\n"
                        "       ensflow study watch STUDY\n");
        return 2;
    }
    ens_conf_t *conf = NULL;
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
                              .top_k = (int32_t)ens_conf_int(conf, "top-k")};
        char id[ENS_ID_MAX];
        if (!space) {
            fprintf(stderr, "ensflow study create: cannot read %s\n", ens_conf_str(conf, "space"));
            rc = 2;
        } else if ((rc = cli_study_create_run(conf, &o, id)) == 0)
            printf("%s\n", id);
        free(space);
    } else if (ens_conf_positional_count(conf) != 1) {
        fprintf(stderr, "ensflow study %s: give the study id\n", sub);
        rc = 2;
    } else if (!strcmp(sub, "status"))
        rc = study_status(conf, ens_conf_positional(conf, 0));
    else
        rc = cli_study_watch_run(conf, ens_conf_positional(conf, 0),
                                 ens_conf_double(conf, "timeout"));
    ens_conf_free(conf);
    return rc;
}
