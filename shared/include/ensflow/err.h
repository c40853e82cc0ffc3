/* err.h - the one error enum of libensflow and its names. */
#ifndef ENSFLOW_ERR_H
#define ENSFLOW_ERR_H

#include <stddef.h>

/** Error codes. ENS_OK is 0; every error is negative. */
typedef enum {
    ENS_OK = 0,
    ENS_ERR_NOMEM = -1,     /**< allocation failed */
    ENS_ERR_INVALID = -2,   /**< bad argument or malformed input */
    ENS_ERR_TIMEOUT = -3,   /**< nothing arrived in time */
    ENS_ERR_IO = -4,        /**< file or socket error */
    ENS_ERR_KAFKA = -5,     /**< librdkafka reported an error */
    ENS_ERR_REDIS = -6,     /**< the Redis client or server reported an error */
    ENS_ERR_AVRO = -7,      /**< an event failed to encode or decode */
    ENS_ERR_NOTFOUND = -8,  /**< a key, model or event type does not exist */
    ENS_ERR_CORRUPT = -9,   /**< stored data failed a consistency check */
    ENS_ERR_UNSUPPORTED = -10, /**< valid but not handled by this build */
    ENS_ERR_CUDA = -11,     /**< CUDA / cuDNN / cuBLAS reported an error */
    ENS_ERR_MPI = -12,      /**< MPI reported an error */
    ENS_ERR_STOPPED = -13,  /**< the operation was interrupted by a stop request */
} ens_err_t;

/** @brief Short, stable name of an error code ("ENS_ERR_TIMEOUT: timed out"). */
const char *ens_err_str(ens_err_t err);

/** @brief 1 when retrying the same call later may succeed (timeouts, I/O, broker and Redis). */
int ens_err_is_retriable(ens_err_t err);

/** @brief Write a formatted message into errstr (may be NULL) and return err. */
ens_err_t ens_err_set(char *errstr, size_t errstr_size, ens_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ENS_ASSERT(cond)                                                                        \
    do {                                                                                        \
        if (!(cond))                                                                            \
            ens_assert_fail(#cond, __FILE__, __LINE__);                                         \
    } while (0)

/** @brief Report a broken programmer invariant and abort. */
void ens_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
