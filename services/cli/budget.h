/* budget.h - a study's settings filled in from its data and its time budget. */
#ifndef ENSFLOW_CLI_BUDGET_H
#define ENSFLOW_CLI_BUDGET_H

#include "cli.h"

/** Settings the user gave, which the defaults leave alone. */
enum {
    CLI_GIVEN_TRIALS = 1 << 0,
    CLI_GIVEN_EPOCHS = 1 << 1,
    CLI_GIVEN_MIN_EPOCHS = 1 << 2,
    CLI_GIVEN_SCHEDULER = 1 << 3,
};

/** @brief 1 when the data set is images (fashion-mnist or a directory of IDX files), 0 for a
 *         table (a CSV file). */
int cli_data_is_images(const char *dataset);

/** @brief The default search space of a data set: a CNN space for images (augmentation only
 *         for budgets of 30 minutes and more, where enough epochs are trained for it to pay),
 *         "" (the MLP defaults) for tables. Static storage. */
const char *cli_default_space(const char *dataset, double budget_minutes);

/**
 * @brief Fill in what the user did not give (given: CLI_GIVEN_* bits). Always: the data set's
 *        default space when the space is empty. With budget_minutes > 0: the wall-clock
 *        budget, configurations until it is spent, ASHA, and two rungs planned from the
 *        budget (top rung R epochs, lowest R/eta; see the README's budget table).
 *        A --max-seconds the user gave stays when it is shorter than the budget.
 */
void cli_study_plan(cli_study_opts_t *o, double budget_minutes, unsigned given);

/**
 * @brief The top rung (epochs) a budget affords on a data set: a top-rung job takes about a
 *        third of the budget at the speed measured here for the default space (README), for
 *        the data set's size (and image size); within 0.2-27 epochs.
 */
double cli_budget_top_epochs(const char *dataset, double budget_minutes);

/** @brief The CLI_GIVEN_* bits of argv (--trials, ... or their ENSFLOW_* variables). */
unsigned cli_study_given(int argc, char **argv);

#endif
