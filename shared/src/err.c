/* err.c - names of ens_err_t codes and the errstr helper. */
#include "ensflow/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *ens_err_str(ens_err_t err) {
    switch (err) {
    case ENS_OK: return "ENS_OK: success";
    case ENS_ERR_NOMEM: return "ENS_ERR_NOMEM: out of memory";
    case ENS_ERR_INVALID: return "ENS_ERR_INVALID: invalid argument or input";
    case ENS_ERR_TIMEOUT: return "ENS_ERR_TIMEOUT: timed out";
    case ENS_ERR_IO: return "ENS_ERR_IO: input/output error";
    case ENS_ERR_KAFKA: return "ENS_ERR_KAFKA: Kafka error";
    case ENS_ERR_REDIS: return "ENS_ERR_REDIS: Redis error";
    case ENS_ERR_AVRO: return "ENS_ERR_AVRO: Avro encoding or decoding error";
    case ENS_ERR_NOTFOUND: return "ENS_ERR_NOTFOUND: not found";
    case ENS_ERR_CORRUPT: return "ENS_ERR_CORRUPT: corrupt data";
    case ENS_ERR_UNSUPPORTED: return "ENS_ERR_UNSUPPORTED: not supported by this build";
    case ENS_ERR_CUDA: return "ENS_ERR_CUDA: CUDA error";
    case ENS_ERR_MPI: return "ENS_ERR_MPI: MPI error";
    case ENS_ERR_STOPPED: return "ENS_ERR_STOPPED: stopped";
    }
    return "ENS_ERR_?: unknown error code";
}

int ens_err_is_retriable(ens_err_t err) {
    return err == ENS_ERR_TIMEOUT || err == ENS_ERR_IO || err == ENS_ERR_KAFKA ||
           err == ENS_ERR_REDIS;
}

ens_err_t ens_err_set(char *errstr, size_t errstr_size, ens_err_t err, const char *fmt, ...) {
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

void ens_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "ensflow: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
