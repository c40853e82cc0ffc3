/* mpi_group.h - an inference group over several devices: rank 0 does the Kafka I/O and
 * batching, hands each batch to every rank, and sums the ranks' shares with MPI_Reduce. */
#ifndef ENSFLOW_MPI_GROUP_H
#define ENSFLOW_MPI_GROUP_H

#include <mpi.h>

#include "ensflow/store.h"
#include "ensflow/inference.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    char instance[ENS_ID_MAX]; /**< the group's id, the same on every rank */
    int32_t member_batch;      /**< --member-batch on every rank (0 = the plan's batch sizes) */
    ens_models_t *store;       /**< the model store, open on every rank (not owned) */
} ens_mpi_group_t;

/** @brief The group of MPI_COMM_WORLD (MPI must be initialised). */
ens_err_t ens_mpi_group_init(ens_mpi_group_t *g, char *errstr, size_t errstr_size);

/**
 * @brief Every rank: take rank 0's instance id (its devices are <instance>-r<rank>), so that
 *        each rank runs the plan rows placed on its own device. Collective.
 */
ens_err_t ens_mpi_group_share_instance(ens_mpi_group_t *g, const char *instance);

/** @brief Hooks for ens_inference_set_partition on rank 0 (ctx = the group). */
ens_inference_hooks_t ens_mpi_group_hooks(ens_mpi_group_t *g);

/**
 * @brief Rank 0: give every rank the plan (its encoded PlacementPlan) and load it everywhere.
 *        All or nothing: the plan comes into force on every rank or on none.
 */
ens_err_t ens_mpi_group_load_plan(ens_mpi_group_t *g, ens_inference_t *inf, ens_redis_t *r,
                                  const uint8_t *plan, size_t len, char *errstr,
                                  size_t errstr_size);

/** @brief Rank 0: tell the other ranks to stop. */
ens_err_t ens_mpi_group_stop(ens_mpi_group_t *g);

/**
 * @brief Ranks > 0: follow rank 0 (plans, batches) until it says stop.
 * @return 0 after stop, 1 on an MPI or load error.
 */
int ens_mpi_group_follow(ens_mpi_group_t *g, ens_redis_t *r);

#endif
