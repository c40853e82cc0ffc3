/* trainer.h - trains (or resumes) the model of a TrialJob and reports a TrialResult. */
#ifndef ENSFLOW_TRAINER_H
#define ENSFLOW_TRAINER_H

#include <pthread.h>
#include <signal.h>

#include "ensflow/events.h"
#include "ensflow/kafka.h"
#include "ensflow/models.h"
#include "ensflow/state.h"
#include "ensflow/store.h"
#include "ensflow/study_data.h"
#include "retain.h"

/** Most partitions of trial.jobs one trainer publishes (a larger assignment is not published). */
#define ENS_TRAINER_MAX_PARTITIONS 1024

typedef struct {
    ens_state_t *state;              /**< heartbeat, state, busy seconds, partitions, the
                                          job's lease, attempts and record (not owned; NULL:
                                          not registered) */
    ens_state_t *state_bg;           /**< the same over a second connection, for
                                          ens_trainer_busy_tick's thread alone, which runs
                                          beside the handler (NULL: no heartbeat nor lease
                                          renewal while training) */
    ens_models_t *store;             /**< the model store (not owned) */
    ens_kafka_t *producer;
    ens_kafka_t *consumer;           /**< its trial.jobs consumer (may be NULL), not owned: the
                                          partitions assigned to it go out with each heartbeat */
    ens_study_data_t *data;          /**< cached split, owned */
    volatile sig_atomic_t *stop;     /**< checked between chunks of training (may be NULL) */
    char id[64];                     /**< trainer id among the trainers ("" = host-pid) */
    int max_attempts;                /**< a job started this many times without an outcome
                                          is reported FAILED (default 3) */
    int lease_ms;                    /**< a job's lease lives this long past its last renewal
                                          (default 30000) */
    int64_t last_beat_ms;
    double busy_since;               /**< monotonic seconds; 0 when idle */
    /* the job held now, shared with ens_trainer_busy_tick */
    pthread_mutex_t mu;              /**< PTHREAD_MUTEX_INITIALIZER */
    char lease_study[ENS_ID_MAX];    /**< the study of the job held */
    char lease_trial[ENS_ID_MAX];    /**< its trial; "" when no job is held */
    char lease_model[ENS_ID_MAX];    /**< the model it trains */
    volatile sig_atomic_t lease_lost; /**< set by the busy tick: another trainer holds the job */
    int64_t bg_beat_ms;
    int64_t last_compact_ms;         /**< the last look for a finished study to compact */
    double compact_grace_s;          /**< compaction leaves files younger than this (0 = 300) */
    ens_retain_job_t compact;        /**< the finished study being compacted, a slice a tick */
} ens_trainer_t;

/**
 * @brief Train the trial's model from from_epoch (its latest checkpoint) up to epochs
 *        (fractions of an epoch allowed), store the checkpoint in the model store as
 *        "<trial>-e<epochs>" and produce its TrialResult. A job already trained (a
 *        redelivery) is reported again from its record without training; a job that started
 *        max_attempts times (its trainers died) is reported FAILED. A bad configuration
 *        or data set, or a diverged run, yields a FAILED result.
 */
ens_err_t ens_trainer_handle(void *ctx, const ens_event_t *ev, char *errstr, size_t errstr_size);

/**
 * @brief ens_svc_loop_t.busy_tick: while a job trains, about once a second: renew the job's
 *        lease and beat, both on state_bg, as ens_trainer_tick does, so that the proposer sees
 *        the trainer alive and the job held however long it trains.
 */
void ens_trainer_busy_tick(void *ctx);

/**
 * @brief Heartbeat (at most once a second; also between chunks of training): the trainer's
 *        beat (the proposer counts live trainers) and, with a consumer, its partitions record
 *        (the partitions of trial.jobs assigned to this trainer now, which the proposer sends
 *        jobs to). With a consumer the first beat waits until the group has assigned it
 *        partitions.
 */
void ens_trainer_tick(void *ctx);

/**
 * @brief The partitions record of a heartbeat: "<beat_ms> <p>,<p>,..." in the order
 *        given, or "<beat_ms> -" when no partition is assigned (the proposer's dispatch.h parses
 *        it).
 * @return ENS_OK, or ENS_ERR_INVALID when it does not fit buf or n is negative.
 */
ens_err_t ens_trainer_parts_record(char *buf, size_t size, int64_t beat_ms, const int32_t *parts,
                                   int n);

/** @brief ens_svc_loop_t.on_consumer: keep the consumer (its assignment goes out with the
 *         heartbeat) and register at once if the group has assigned partitions. */
void ens_trainer_on_consumer(void *ctx, ens_kafka_t *consumer);

/** @brief Leave the trainers (heartbeat, state, partitions record) and release the cache. */
void ens_trainer_close(ens_trainer_t *t);

#endif
