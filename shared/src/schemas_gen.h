/* schemas_gen.h - the .avsc files compiled into libensflow (table generated at build time). */
#ifndef ENSFLOW_SCHEMAS_GEN_H
#define ENSFLOW_SCHEMAS_GEN_H

typedef struct {
    const char *file;   /**< "TrialJob.avsc" or "TrialResult.v1.avsc" (history) */
    int current;        /**< 1 for schemas/<Name>.avsc, 0 for schemas/history/ versions */
    const char *json;   /**< the file's text */
} ens_schema_file_t;

extern const ens_schema_file_t ens_schema_files[];
extern const int ens_schema_file_count;

#endif
