/* log.h - one key=value line per event on stderr, level checked before formatting. */
#ifndef ENSFLOW_LOG_H
#define ENSFLOW_LOG_H

typedef enum { ENS_LOG_DEBUG = 0, ENS_LOG_INFO, ENS_LOG_WARN, ENS_LOG_ERROR } ens_log_level_t;

/**
 * @brief Name the service for every line and read ENSFLOW_LOG_LEVEL (debug|info|warn|error)
 *        and ENSFLOW_DEBUG (comma list of facilities whose debug lines are shown, or "all").
 */
void ens_log_init(const char *service);

/** @brief Override the level (e.g. from a --log-level flag). Unknown names are ignored. */
void ens_log_set_level(const char *name);

/** @brief 1 when a line of this level (and facility, for debug; may be NULL) would be written. */
int ens_log_enabled(ens_log_level_t level, const char *facility);

/** @brief Write "ts=... lvl=... svc=... pid=... <formatted>" to stderr. */
void ens_log_write(ens_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ENS_LOG_(lvl, fac, ...)                                                                 \
    do {                                                                                        \
        if (ens_log_enabled((lvl), (fac)))                                                      \
            ens_log_write((lvl), __VA_ARGS__);                                                  \
    } while (0)
#define ENS_DEBUG(fac, ...) ENS_LOG_(ENS_LOG_DEBUG, fac, __VA_ARGS__)
#define ENS_INFO(...) ENS_LOG_(ENS_LOG_INFO, NULL, __VA_ARGS__)
#define ENS_WARN(...) ENS_LOG_(ENS_LOG_WARN, NULL, __VA_ARGS__)
#define ENS_ERROR(...) ENS_LOG_(ENS_LOG_ERROR, NULL, __VA_ARGS__)

#endif
