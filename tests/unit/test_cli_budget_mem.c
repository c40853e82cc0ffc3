/* test_cli_budget_mem.c - a study's settings planned from its data and its time budget: the
 * default space per kind of data, the top rung a budget affords, and what the plan leaves to
 * the user's own flags. */
#include "budget.h"
#include "check.h"
#include "ensflow/space.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_default_space(const char *csv) {
    CHECK(cli_data_is_images("fashion-mnist"));
    CHECK(cli_data_is_images("/")); /* a directory: IDX files */
    CHECK(!cli_data_is_images(csv));
    const char *short_space = cli_default_space("fashion-mnist", 10);
    const char *long_space = cli_default_space("fashion-mnist", 30);
    CHECK(strstr(short_space, "\"family\":\"cnn\"") != NULL);
    CHECK(strstr(short_space, "\"augment\":0") != NULL);
    CHECK(strstr(long_space, "\"augment\":[0,1]") != NULL);
    /* both are valid spaces; the long one samples two and three blocks, the short one two */
    CHECK_EQ_INT(ens_space_validate(short_space, NULL, 0), ENS_OK);
    CHECK_EQ_INT(ens_space_validate(long_space, NULL, 0), ENS_OK);
    int depths[2][4] = {{0}};
    for (int s = 0; s < 2; s++)
        for (int32_t i = 0; i < 40; i++) {
            char *cfg = NULL;
            CHECK_EQ_INT(ens_space_sample(s ? long_space : short_space, 42, i, &cfg, NULL, 0),
                         ENS_OK);
            const char *b = cfg ? strstr(cfg, "\"n_blocks\":") : NULL;
            CHECK(b != NULL);
            int d = b ? atoi(b + strlen("\"n_blocks\":")) : 0;
            CHECK(d >= 1 && d <= 3);
            depths[s][d >= 0 && d <= 3 ? d : 0]++;
            free(cfg);
        }
    CHECK_EQ_INT(depths[0][2], 40);
    CHECK(depths[1][2] > 0 && depths[1][3] > 0 && depths[1][2] + depths[1][3] == 40);
    CHECK_STR(cli_default_space(csv, 10), ""); /* tables: the MLP defaults */
}

static void test_top_epochs(const char *csv) {
    double prev = 0;
    for (double m = 0.5; m <= 240; m *= 1.5) {
        double e = cli_budget_top_epochs("fashion-mnist", m);
        CHECK(e >= 0.2 && e <= 27);
        CHECK(e >= prev); /* more time never buys a shorter top rung */
        prev = e;
    }
    CHECK(cli_budget_top_epochs("fashion-mnist", 10000) == 27);
    /* a budget too short to share gives each job a larger part of it */
    double per_min_short = cli_budget_top_epochs("fashion-mnist", 2.5) / 2.5;
    double per_min_long = cli_budget_top_epochs("fashion-mnist", 12) / 12;
    CHECK(per_min_short > 2 * per_min_long);
    /* a 10-minute budget trains the default CNN for several epochs, not one */
    CHECK(cli_budget_top_epochs("fashion-mnist", 10) >= 5);
    /* a small table: many epochs are cheap, up to the cap */
    CHECK(cli_budget_top_epochs(csv, 10) == 27);
}

static void test_plan(const char *csv) {
    cli_study_opts_t o = {.dataset = "fashion-mnist", .space_json = "", .scheduler = "random"};
    cli_study_plan(&o, 10, 0);
    CHECK(strstr(o.space_json, "cnn") != NULL);
    CHECK_STR(o.scheduler, "asha");
    CHECK(o.trials >= 1000); /* configurations until the budget is spent */
    CHECK_NEAR(o.max_wall_seconds, 600, 1e-9);
    CHECK_NEAR(o.epochs, cli_budget_top_epochs("fashion-mnist", 10), 1e-9);
    CHECK_NEAR(o.min_epochs, o.epochs / 3, 1e-9); /* two rungs */

    cli_study_opts_t l = {.dataset = "fashion-mnist", .space_json = "", .eta = 4};
    cli_study_plan(&l, 40, 0);
    CHECK_NEAR(l.min_epochs, l.epochs / 4, 1e-9); /* two rungs at any budget and eta */

    /* what the user gave stays: trials, scheduler, epochs, a shorter --max-seconds, a space */
    cli_study_opts_t g = {.dataset = csv,
                          .space_json = "{\"width\":[64]}",
                          .scheduler = "random",
                          .trials = 7,
                          .epochs = 3,
                          .min_epochs = 1,
                          .max_wall_seconds = 100};
    cli_study_plan(&g, 10, CLI_GIVEN_TRIALS | CLI_GIVEN_SCHEDULER | CLI_GIVEN_EPOCHS |
                               CLI_GIVEN_MIN_EPOCHS);
    CHECK_STR(g.space_json, "{\"width\":[64]}");
    CHECK_STR(g.scheduler, "random");
    CHECK_EQ_INT(g.trials, 7);
    CHECK_NEAR(g.epochs, 3, 1e-9);
    CHECK_NEAR(g.min_epochs, 1, 1e-9);
    CHECK_NEAR(g.max_wall_seconds, 100, 1e-9);

    /* no budget: only the space is filled in */
    cli_study_opts_t n = {.dataset = csv, .space_json = NULL, .scheduler = "random", .trials = 5};
    cli_study_plan(&n, 0, 0);
    CHECK_STR(n.space_json, "");
    CHECK_STR(n.scheduler, "random");
    CHECK_EQ_INT(n.trials, 5);
}

int main(void) {
    char csv[] = "/tmp/ensflow-budget-XXXXXX.csv";
    int fd = mkstemps(csv, 4);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    CHECK(f != NULL);
    for (int i = 0; i < 200; i++) /* label first, then 4 features */
        fprintf(f, "%d,%d,%d,%d,%d\n", i % 3, i, i % 7, i % 5, (i * 13) % 11);
    fclose(f);
    test_default_space(csv);
    test_top_epochs(csv);
    test_plan(csv);
    unlink(csv);
    return check_done("test_cli_budget_mem");
}
