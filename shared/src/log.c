/* log.c - structured key=value logging to stderr. */
#include "ensflow/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static ens_log_level_t log_level = ENS_LOG_INFO;
static char log_service[32] = "ensflow";
static char log_debug[256] = "";

static const char *level_names[] = {"debug", "info", "warn", "error"};

void ens_log_set_level(const char *name) {
    for (int i = 0; name && i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            log_level = (ens_log_level_t)i;
}

void ens_log_init(const char *service) {
    snprintf(log_service, sizeof log_service, "%s", service ? service : "ensflow");
    ens_log_set_level(getenv("ENSFLOW_LOG_LEVEL"));
    const char *dbg = getenv("ENSFLOW_DEBUG");
    snprintf(log_debug, sizeof log_debug, "%s", dbg ? dbg : "");
}

int ens_log_enabled(ens_log_level_t level, const char *facility) {
    if (level >= log_level)
        return 1;
    if (level != ENS_LOG_DEBUG || !facility || !log_debug[0])
        return 0;
    if (strcmp(log_debug, "all") == 0)
        return 1;
    size_t n = strlen(facility);
    for (const char *p = log_debug; (p = strstr(p, facility)) != NULL; p += n)
        if ((p == log_debug || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

void ens_log_write(ens_log_level_t level, const char *fmt, ...) {
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int off = snprintf(line, sizeof line,
                       "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s svc=%s pid=%d ",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], log_service,
                       (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    va_end(ap);
    /* one write per line so that lines of concurrent processes do not interleave */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) {
        line[len++] = '\n';
        line[len] = '\0';
    } else {
        line[sizeof line - 2] = '\n';
        len = sizeof line - 1;
    }
    fwrite(line, 1, len, stderr);
    fflush(stderr);
}
