/* ensflow - the command line: local stack, studies, fronts, deployment, prediction, demo. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ensflow/log.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ensflow COMMAND [options]   (ensflow COMMAND --help for its options)\n"
            "       ensflow --version\n\n"
            "  up                    start the local stack (redis-server, ensflow-broker, services)\n"
            "  down                  stop it\n"
            "  study create          start a study (prints its id)\n"
            "  study status STUDY    one summary\n"
            "  study watch STUDY     live progress until every trial is trained and evaluated\n"
            "  study stop STUDY      no new jobs; the study ends when the running ones report\n"
            "  study extend STUDY    add trials / epochs / seconds to a study's budget\n"
            "  front STUDY           the study's ensembles: accuracy against cost\n"
            "  deploy STUDY          place an ensemble of the front and wait until it serves\n"
            "  plan STUDY --explain  the plan in force: allocation matrix and predicted throughput\n"
            "  predict               stream samples through inference.requests, collect answers\n"
            "  export ID --study S   a model or ensemble as an ONNX file (-o FILE)\n"
            "  demo                  all of the above on Fashion-MNIST, with a JSON report\n");
}

int main(int argc, char **argv) {
    ens_log_init("cli");
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        ens_conf_version("ensflow", stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {{"up", cli_up},         {"down", cli_down},       {"study", cli_study},
                    {"front", cli_front},   {"deploy", cli_deploy},   {"plan", cli_plan},
                    {"predict", cli_predict}, {"demo", cli_demo},     {"export", cli_export}};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ensflow: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
