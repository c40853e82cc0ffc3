/* ensflow - the command line: local stack, studies, fronts, deployment, prediction, demo. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ensflow/log.h"
#include "ensflow/svc.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: ensflow COMMAND [options]   (ensflow COMMAND --help for its options)\n\n"
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
            "  demo                  all of the above on Fashion-MNIST, with a JSON report\n");
}

int cli_conf(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
             ens_conf_t **conf) {
    char errstr[512];
    ens_err_t err = ens_conf_new(prog, defs, argc, argv, conf, errstr, sizeof errstr);
    if (err == ENS_ERR_STOPPED)
        return 0;
    if (err) {
        fprintf(stderr, "%s: %s\n", prog, errstr);
        return 2;
    }
    ens_log_set_level(ens_conf_str(*conf, "log-level"));
    return -1;
}

ens_redis_t *cli_redis(const ens_conf_t *conf) {
    char url[512], errstr[512];
    ens_redis_t *r = NULL;
    ens_conf_redis_url(conf, url, sizeof url);
    if (ens_redis_connect(url, &r, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow: redis %s: %s (is the stack up? ensflow up)\n", url, errstr);
        return NULL;
    }
    return r;
}

long cli_count(ens_redis_t *r, const char *cmd, const char *study, const char *suffix) {
    char key[256];
    ens_key(key, sizeof key, study, "%s", suffix);
    redisReply *rep = ens_redis_command(r, NULL, 0, "%s %s", cmd, key);
    long n = rep && rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : 0;
    ens_redis_reply_free(rep);
    return n;
}

int cli_get_event(ens_redis_t *r, const char *key, ens_event_t *ev, int quiet) {
    char errstr[512];
    redisReply *rep = ens_redis_command(r, errstr, sizeof errstr, "GET %s", key);
    int rc = 1;
    if (!rep)
        ; /* errstr says why */
    else if (rep->type != REDIS_REPLY_STRING)
        snprintf(errstr, sizeof errstr, "nothing stored at %s yet", key);
    else if (ens_event_decode((const uint8_t *)rep->str, rep->len, ev, errstr, sizeof errstr) ==
             ENS_OK)
        rc = 0;
    if (rc && !quiet)
        fprintf(stderr, "ensflow: %s\n", errstr);
    ens_redis_reply_free(rep);
    return rc;
}

int main(int argc, char **argv) {
    ens_log_init("cli");
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {{"up", cli_up},         {"down", cli_down},       {"study", cli_study},
                    {"front", cli_front},   {"deploy", cli_deploy},   {"plan", cli_plan},
                    {"predict", cli_predict}, {"demo", cli_demo}};
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "ensflow: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
