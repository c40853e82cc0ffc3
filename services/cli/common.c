/* common.c - what every subcommand shares: the state layer over Redis, plans, devices, the
 * output. In a module of its own rather than main.c, so that the CLI's logic links without
 * its main. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ensflow/state.h"

ens_redis_t *cli_redis(const ens_conf_t *conf) {
    char url[512], shown[512], errstr[512];
    ens_redis_t *r = NULL;
    ens_conf_redis_url(conf, url, sizeof url);
    if (ens_redis_connect(url, &r, errstr, sizeof errstr)) {
        ens_redis_url_redact(url, shown, sizeof shown); /* never print the password */
        fprintf(stderr, "ensflow: redis %s: %s (is the stack up? ensflow up)\n", shown, errstr);
        return NULL;
    }
    return r;
}

ens_state_t *cli_state_open(const ens_conf_t *conf, ens_redis_t **r) {
    ens_state_t *st = NULL;
    if (!(*r = cli_redis(conf)))
        return NULL;
    if (ens_state_redis_new(*r, NULL, &st)) {
        fprintf(stderr, "ensflow: cannot create the state (out of memory)\n");
        ens_redis_free(*r);
        *r = NULL;
        return NULL;
    }
    return st;
}

void cli_state_close(ens_state_t *st, ens_redis_t *r) {
    ens_state_free(st);
    ens_redis_free(r);
}

int cli_get_plan(ens_redis_t *r, const char *study, ens_event_t *ev, int quiet) {
    char errstr[512] = "";
    ens_state_t *st = NULL;
    ens_err_t err = ens_state_redis_new(r, NULL, &st);
    if (err)
        snprintf(errstr, sizeof errstr, "state: %s", ens_err_str(err));
    else if ((err = ens_state_plan_get(st, study, ev, errstr, sizeof errstr)) ==
                 ENS_ERR_NOTFOUND) {
        if (study)
            snprintf(errstr, sizeof errstr, "no plan stored for study %s yet", study);
        else
            snprintf(errstr, sizeof errstr, "no plan in force yet");
    }
    ens_state_free(st);
    if (err && !quiet)
        fprintf(stderr, "ensflow: %s\n", errstr);
    return err != ENS_OK;
}

int cli_devices(ens_redis_t *r, ens_device_t **devices, int *n) {
    ens_state_t *st = NULL;
    *devices = NULL;
    *n = 0;
    ens_err_t err = ens_state_redis_new(r, NULL, &st);
    if (!err)
        err = ens_state_device_list(st, devices, n, NULL, 0);
    ens_state_free(st);
    return err != ENS_OK;
}

int cli_conf(const char *prog, const ens_conf_def_t *defs, int argc, char **argv,
             ens_conf_t **conf) {
    /* ens_conf parses long flags only; `-o X` is spelled `--output X` for it */
    static char long_o[] = "--output";
    char **av = calloc((size_t)argc + 1, sizeof *av);
    if (!av) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    for (int i = 0; i < argc; i++)
        av[i] = i > 0 && !strcmp(argv[i], "-o") ? long_o : argv[i];
    /* the parsed configuration keeps the strings, not the array */
    int rc = ens_svc_conf(prog, defs, argc, av, conf);
    free(av);
    return rc;
}

int cli_output_json(const ens_conf_t *conf, const char *prog, int *json) {
    const char *v = ens_conf_str(conf, "output");
    if (strcmp(v, "text") && strcmp(v, "json")) {
        fprintf(stderr, "%s: -o/--output: '%s' is not text or json\n", prog, v);
        return 2;
    }
    *json = !strcmp(v, "json");
    return 0;
}

int cli_json_print(const char *prog, json_t *obj) {
    /* one line, ", " and ": " between items (as predict always printed it); 15 significant
     * digits: 0.9013 prints as 0.9013, not 0.90129999999999999 */
    char *text = obj ? json_dumps(obj, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(obj);
    if (!text) {
        fprintf(stderr, "%s: cannot build the JSON output (out of memory)\n", prog);
        return 1;
    }
    int ok = printf("%s\n", text) >= 0 && fflush(stdout) == 0;
    free(text);
    return ok ? 0 : 1;
}
