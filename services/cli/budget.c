/* budget.c - a study's settings filled in from its data and its time budget. */
#include "budget.h"

#include "ensflow/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_data_is_images(const char *dataset) {
    struct stat st;
    if (!strcmp(dataset, "fashion-mnist"))
        return 1;
    return stat(dataset, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The default CNN space, chosen by tests/bench/space on Fashion-MNIST (README, "Default search
 * spaces"): two conv blocks of 32 and 64 filters with batch norm, AdamW at a peak rate around
 * 4e-3 on a cosine schedule. Residual blocks cost 2.5-5x the time per epoch on this CPU for no
 * gain within a budget; a third block (128 filters) pays from 9 epochs on (9-epoch models 0.4
 * validation points better, 27-epoch ones 0.35), so budgets of 30 minutes and more, whose jobs
 * are that long, search two and three blocks; augmentation lowers accuracy over 6 epochs. Every
 * job is its own cosine cycle (lr_restart), so that each rung's checkpoint, a library member,
 * is annealed rather than cut at a high rate. */
#define CNN_SPACE(BLOCKS, AUGMENT)                                                              \
    "{\"family\":\"cnn\",\"conv_blocks\":" BLOCKS ",\"conv_width\":32,\"kernel\":3,"          \
    "\"batch_norm\":1,\"residual\":0,\"dropout\":{\"uniform\":[0,0.2]},"                       \
    "\"optimizer\":[\"adamw\"],\"cnn_lr\":{\"log_uniform\":[0.003,0.006]},"                    \
    "\"augment\":" AUGMENT ",\"label_smoothing\":[0,0.1],\"batch_size\":[64,128],"              \
    "\"lr_restart\":1,\"weight_decay\":{\"log_uniform\":[0.0001,0.001]}}"

const char *cli_default_space(const char *dataset, double budget_minutes) {
    if (!cli_data_is_images(dataset))
        return "";
    return budget_minutes >= 30 ? CNN_SPACE("[2,3]", "[0,1]") : CNN_SPACE("2", "0");
}

/* Training samples a second one trainer gets through (one core of the two here): the
 * default CNN on Fashion-MNIST (~17 s an epoch of 54,000 images, two trainings side by side,
 * 3,100-3,250 samples/s with the AVX-512 kernels; ~26 s with the Winograd convolutions
 * before them, ~31 s before those) less the evaluator's share of the cores, and,
 * conservatively, an MLP of the default space on a table. */
#define CNN_SAMPLES_PER_S 3000.0
#define MLP_SAMPLES_PER_S 20000.0

double cli_budget_top_epochs(const char *dataset, double budget_minutes) {
    /* a top-rung job takes about a third of the budget, at the speed measured here; a short
     * budget buys too few epochs to share: below 6 minutes a job takes half of it, below 3
     * minutes 0.8 of it (each trainer trains one configuration; at 2 minutes two CNNs of ~2.6
     * epochs beat four of ~1). A longer budget never buys a shorter job: past each step the
     * job keeps the length the step's lower share reaches (2.4 minutes from 3, 3 from 6). */
    ens_dataset_t *ds = NULL;
    double rows = 54000, speed = cli_data_is_images(dataset) ? CNN_SAMPLES_PER_S
                                                             : MLP_SAMPLES_PER_S;
    if (strcmp(dataset, "fashion-mnist") &&
        ens_dataset_load(dataset, ENS_DATA_TRAIN, &ds, NULL, 0) == ENS_OK && ds->n > 0)
        rows = 0.9 * ds->n; /* the study's training part */
    if (ds && ds->height > 0 && ds->width > 0 && cli_data_is_images(dataset))
        speed *= 784.0 / ((double)ds->height * ds->width); /* convolutions scale with pixels */
    ens_dataset_free(ds);
    double job_min = budget_minutes < 3   ? 0.8 * budget_minutes
                     : budget_minutes < 6 ? fmax(0.5 * budget_minutes, 2.4)
                                          : fmax(budget_minutes / 3, 3.0);
    double r = job_min * 60 * speed / rows;
    r = r < 0.2 ? 0.2 : r > 27 ? 27 : r;
    return r >= 3 ? round(r) : round(r * 10) / 10;
}

void cli_study_plan(cli_study_opts_t *o, double budget_minutes, unsigned given) {
    if (!(o->space_json && *o->space_json))
        o->space_json = cli_default_space(o->dataset, budget_minutes);
    if (!(budget_minutes > 0))
        return;
    double budget_s = budget_minutes * 60;
    if (!(o->max_wall_seconds > 0) || o->max_wall_seconds > budget_s)
        o->max_wall_seconds = budget_s;
    if (!(given & CLI_GIVEN_TRIALS))
        o->trials = 100000; /* configurations keep coming until the budget is spent */
    if (!(given & CLI_GIVEN_SCHEDULER))
        o->scheduler = "asha";
    if (!(given & CLI_GIVEN_EPOCHS))
        o->epochs = cli_budget_top_epochs(o->dataset, budget_minutes);
    if (!(given & CLI_GIVEN_MIN_EPOCHS)) /* two rungs: a third of the time on R/eta models */
        o->min_epochs = o->epochs / (o->eta > 0 ? o->eta : 3);
}

/* --name, --name=value, or ENSFLOW_<NAME> in the environment. */
static int given(int argc, char **argv, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "--", 2) && !strncmp(argv[i] + 2, name, n) &&
            (argv[i][2 + n] == '\0' || argv[i][2 + n] == '='))
            return 1;
    char env[64] = "ENSFLOW_";
    for (size_t i = 0; i < n && 8 + i < sizeof env - 1; i++) {
        char c = name[i] == '-' ? '_' : name[i];
        env[8 + i] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        env[9 + i] = '\0';
    }
    return getenv(env) != NULL;
}

unsigned cli_study_given(int argc, char **argv) {
    static const struct {
        const char *name;
        unsigned bit;
    } flags[] = {{"trials", CLI_GIVEN_TRIALS},         {"epochs", CLI_GIVEN_EPOCHS},
                 {"min-epochs", CLI_GIVEN_MIN_EPOCHS}, {"scheduler", CLI_GIVEN_SCHEDULER}};
    unsigned bits = 0;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (given(argc, argv, flags[i].name))
            bits |= flags[i].bit;
    return bits;
}
