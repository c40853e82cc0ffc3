/* state_sched_keys.h - the names of the scheduler's and the jobs' keys and fields, once, for
 * both implementations (the table in state_sched.h says what each holds; the Lua scripts of
 * state_redis_asha.c and state_redis_jobs.c spell the ones they touch, see there). */
#ifndef ENSFLOW_STATE_SCHED_KEYS_H
#define ENSFLOW_STATE_SCHED_KEYS_H

/* global keys */
#define K_STUDIES "ens:studies"
#define K_STUDIES_ACTIVE "ens:studies:active"
#define K_STUDIES_SETTLING "ens:studies:settling"
/* ens:studies:compact is state_studies.h's (compact_add, compact_remove) */

/* a study's keys: ens_key(buf, size, study, K_...) */
#define K_STUDY "study"
#define K_ASHA "asha"
#define K_RUNG "rung:%d:%d"
#define K_CAND "cand:%d:%d"
#define K_INFLIGHT "inflight"
#define K_OUTBOX "outbox"
#define K_DECISIONS "decisions"
#define K_DISPATCHED "dispatched"
#define K_TRIAL "trial:%s"
#define K_TRIALS_DONE "trials:done"
#define K_TRIALS_FAILED "trials:failed"
#define K_MODELS "models"
#define K_SPEED "speed"
#define K_EVALWATCH "evalwatch"
#define K_LEASE "lease:%s"
#define K_ATTEMPTS "attempts:%s"
#define K_JOB "job:%s"
#define K_LIBRARY "library"    /* state.h's: the library of evaluated models */
#define K_SEEN_SCOPE_CMD "cmd" /* store.h's first-time mark: ens:{s}:seen:cmd:<event> */

/* ens:{s}:study */
#define F_STUDY_ID "study_id"
#define F_DATASET "dataset"
#define F_SEARCH_SPACE "search_space"
#define F_N_TRIALS "n_trials"
#define F_EPOCHS "epochs"
#define F_SEED "seed"
#define F_VAL_FRACTION "val_fraction"
#define F_TOP_K "top_k"
#define F_CREATED_MS "created_ms"
#define F_STATUS "status"
#define F_SCHEDULER "scheduler"
#define F_ETA "eta"
#define F_MIN_EPOCHS "min_epochs"
#define F_S_MAX "s_max"
#define F_MAX_EPOCHS_BUDGET "max_epochs_budget"
#define F_DEADLINE_MS "deadline_ms"
#define F_ERROR "error"

/* ens:{s}:asha */
#define F_DECISIONS "decisions"
#define F_CONFIGS "configs"
#define F_EPOCHS_ISSUED "epochs_issued"
#define F_VERSION "version"
#define F_ENTERED "entered:%d:%d"
#define F_DONE "done:%d:%d"

/* ens:{s}:trial:<t> */
#define F_CONFIG "config"

/* ens:{s}:evalwatch */
#define F_COUNT "count"
#define F_SINCE_MS "since_ms"
#define F_ROUNDS "rounds"

/* ens:{s}:job:<m> */
#define F_TRAINED_MODEL "trained_model"
#define F_VAL_ACCURACY "val_accuracy"
#define F_VAL_LOSS "val_loss"
#define F_TRAIN_SECONDS "train_seconds"
#define F_EPOCHS_DONE "epochs_done"
#define F_SPS "sps"
#define F_PROGRESS_EPOCHS "progress_epochs"

/* a StudyCommand's first-time mark lives this long */
#define COMMAND_SEEN_TTL_S (7 * 86400)

#endif
