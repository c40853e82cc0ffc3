/* common.c - what every subcommand shares: Redis, counts and stored events. In a
 * module of its own rather than main.c, so that the CLI's logic links without its main. */
#include <hiredis/hiredis.h>
#include <stdio.h>

#include "cli.h"

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
