/* cgroup.h - the CPUs and memory this process may use: its cgroup's limits (v1 or v2) and its
 * CPU affinity mask, not the node's, so that a pod limited to 2 CPUs on a 64-core node starts
 * 2 threads and announces 2 cores. */
#ifndef ENSFLOW_CGROUP_H
#define ENSFLOW_CGROUP_H

#include <stdint.h>

#include "ensflow/err.h"

/**
 * @brief The CPU bandwidth limit of this process's cgroup, in CPUs (quota / period).
 *
 * Reads `<root>/proc/self/cgroup` for the process's cgroup, then `cpu.max` (v2) or
 * `cpu.cfs_quota_us` and `cpu.cfs_period_us` (v1) under `<root>/sys/fs/cgroup`, in that
 * cgroup and each of its ancestors up to the mount (the tightest wins). Where the cgroup's
 * path is not under the mount (a cgroup namespace, or v1 in a container), the mount's own
 * files are read.
 *
 * @param root "/" on a live system (NULL means "/"); a test points it at fake files
 * @param cpus out: the limit in CPUs (may be fractional), 0 when there is none
 * @return ENS_OK (also when no cgroup file exists: *cpus = 0), ENS_ERR_INVALID on a NULL out
 *         or a file that does not parse
 */
ens_err_t ens_cgroup_cpu_limit(const char *root, double *cpus);

/**
 * @brief The memory limit of this process's cgroup: `memory.max` (v2) or
 *        `memory.limit_in_bytes` (v1), the tightest over the cgroup and its ancestors.
 * @param root as for ens_cgroup_cpu_limit
 * @param bytes out: the limit, 0 when there is none ("max", or v1's page-rounded INT64_MAX)
 * @return as for ens_cgroup_cpu_limit
 */
ens_err_t ens_cgroup_memory_limit(const char *root, int64_t *bytes);

/**
 * @brief The CPUs this process may use: the CPUs in its affinity mask (sched_getaffinity;
 *        a cpuset limits it), capped by the cgroup's bandwidth limit rounded up. At least 1.
 * @param root as for ens_cgroup_cpu_limit
 */
int32_t ens_cgroup_cpus(const char *root);

/**
 * @brief The memory this process may use: physical memory, capped by the cgroup's limit.
 *        0 when neither is known.
 * @param root as for ens_cgroup_cpu_limit
 */
int64_t ens_cgroup_memory(const char *root);

#endif
