/* models.h - the model store: model files on a filesystem (a directory under the run dir
 * locally, a ReadWriteMany volume in Kubernetes), with Redis holding only their reference.
 *
 * A study's files live under <dir>/<study>/<kind>/<id>.ensm, where a name "kind:id" is the
 * same suffix the study's Redis keys use ("model:<model id>", "ckpt:<trial id>"). A file is a
 * 24-byte header (magic "ENSMODL1", u64 length, u32 CRC-32, u32 0; little endian) and the
 * bytes. Writes are atomic: a temporary file in the same directory, fsync, rename, fsync of
 * the directory; then the reference ens:{study}:<name>:ref {path, len, crc32} in Redis marks
 * the file as the study's. A reader checks length and CRC and refuses a torn or foreign file
 * (ENS_ERR_CORRUPT, errstr naming the file); a file without a reference (its writer died
 * between rename and reference) is not a model. A name without a reference falls back to a
 * blob the previous version kept in Redis itself (ens_store_blob_*), so older studies read.
 */
#ifndef ENSFLOW_MODELS_H
#define ENSFLOW_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "ensflow/conf.h"
#include "ensflow/err.h"
#include "ensflow/store.h"

typedef struct ens_models_s ens_models_t;

/**
 * @brief Open the store rooted at dir, creating it (and its parents) when missing.
 * @return ENS_OK; ENS_ERR_INVALID (empty dir) or ENS_ERR_IO with errstr naming the path.
 */
ens_err_t ens_models_open(const char *dir, ens_models_t **out, char *errstr, size_t errstr_size);
/** @brief ens_models_open on the program's model-store setting (ens_conf_model_store). */
ens_err_t ens_models_open_conf(const ens_conf_t *conf, ens_models_t **out, char *errstr,
                               size_t errstr_size);
void ens_models_close(ens_models_t *ms);
/** @brief The store's root directory. */
const char *ens_models_dir(const ens_models_t *ms);

/**
 * @brief Store bytes under study/name ("model:<id>" or "ckpt:<trial>"), replacing any
 *        earlier file of that name, then set its reference in Redis and drop a blob of the
 *        previous version under the same key.
 * @return ENS_OK; ENS_ERR_INVALID for a name or study id that is not a plain id
 *         ([A-Za-z0-9._-], not starting with '.'); ENS_ERR_IO; ENS_ERR_REDIS.
 */
ens_err_t ens_models_put(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         const void *data, size_t len, char *errstr, size_t errstr_size);

/**
 * @brief Load what ens_models_put stored (or the previous version's Redis blob). With ms
 *        NULL only the previous version's blobs load; with r NULL, the file alone.
 * @return ENS_OK (*data malloc'd, the caller frees it); ENS_ERR_NOTFOUND; ENS_ERR_CORRUPT
 *         (torn, truncated or foreign file; referenced file missing); ENS_ERR_IO;
 *         ENS_ERR_REDIS.
 */
ens_err_t ens_models_get(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         void **data, size_t *len, char *errstr, size_t errstr_size);

/** @brief Delete study/name: reference, file and any old Redis blob. Missing is not an error. */
ens_err_t ens_models_del(ens_models_t *ms, ens_redis_t *r, const char *study, const char *name,
                         char *errstr, size_t errstr_size);

/**
 * @brief Call fn(opaque, name, bytes, age_s) for every file of the study ("model:<id>",
 *        "ckpt:<trial>"; age_s: seconds since it was last written); temporary files of
 *        writers are skipped.
 * @return ENS_OK, fn's first non-zero value as ENS_ERR_STOPPED, or ENS_ERR_IO.
 */
ens_err_t ens_models_list(ens_models_t *ms, const char *study,
                          int (*fn)(void *opaque, const char *name, uint64_t bytes,
                                    double age_s),
                          void *opaque, char *errstr, size_t errstr_size);

/** @brief Bytes and files the study takes on disk (0 and 0 when it has none). */
ens_err_t ens_models_study_usage(ens_models_t *ms, const char *study, uint64_t *bytes,
                                 long *files, char *errstr, size_t errstr_size);

/** @brief Delete the study's temporary files not written for min_age_s seconds: what writers
 *         killed mid-write left (a live writer's file is younger). */
ens_err_t ens_models_sweep_temp(ens_models_t *ms, const char *study, double min_age_s,
                                long *removed, char *errstr, size_t errstr_size);

/** @brief Remove the study's directory with every file in it (references are the caller's). */
ens_err_t ens_models_study_remove(ens_models_t *ms, const char *study, char *errstr,
                                  size_t errstr_size);

/** @brief The Redis key of study/name's reference (ens:{study}:<name>:ref) into buf.
 *  @return buf, or NULL when it does not fit or the study id makes no key. */
char *ens_models_ref_key(char *buf, size_t size, const char *study, const char *name);

#endif
