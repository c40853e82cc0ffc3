/* test_cgroup.c - CPU and memory limits read from fake cgroup v1 and v2 trees. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ensflow/cgroup.h"

/* Write text to root/rel, creating the directories on the way. 0 on success. */
static int put(const char *root, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static char base[512]; /* this run's temp directory; every fake root is under it */

/* A fresh fake root. */
static void fresh(char *root, size_t size, const char *name) {
    snprintf(root, size, "%s/%s", base, name);
    if (mkdir(root, 0755) != 0) {
        fprintf(stderr, "mkdir %s: %s\n", root, strerror(errno));
        exit(1);
    }
}

static long affinity_cpus(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
}

static int64_t phys_bytes(void) {
    return (int64_t)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
}

static long min_l(long a, long b) {
    return a < b ? a : b;
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/ens-cgroup-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        fprintf(stderr, "mkdtemp %s: %s\n", base, strerror(errno));
        return 1;
    }
    char root[1024];
    double cpus = -1;
    int64_t mem = -1;
    long aff = affinity_cpus();
    CHECK(aff >= 1);

    /* v2, a pod's container cgroup: the pod sets 2 CPUs, the container 1 GiB */
    fresh(root, sizeof root, "v2");
    CHECK_OK(put(root, "proc/self/cgroup", "0::/kubepods/pod1/ctr\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/kubepods/cpu.max", "max 100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/kubepods/pod1/cpu.max", "200000 100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/kubepods/pod1/memory.max", "max\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "1073741824\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 2.0, 1e-9);
    CHECK_OK(ens_cgroup_memory_limit(root, &mem));
    CHECK_EQ_INT(mem, 1073741824LL);
    CHECK_EQ_INT(ens_cgroup_cpus(root), min_l(aff, 2));
    CHECK_EQ_INT(ens_cgroup_memory(root), phys_bytes() < mem ? phys_bytes() : mem);
    /* the container tightens the CPUs below the pod's: the tightest wins */
    CHECK_OK(put(root, "sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "50000 100000\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 0.5, 1e-9);
    CHECK_EQ_INT(ens_cgroup_cpus(root), 1);

    /* v2 in a cgroup namespace: "0::/" and the limits on the mount itself; 1.5 CPUs round up */
    fresh(root, sizeof root, "v2ns");
    CHECK_OK(put(root, "proc/self/cgroup", "0::/\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu.max", "150000 100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/memory.max", "268435456\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 1.5, 1e-9);
    CHECK_EQ_INT(ens_cgroup_cpus(root), min_l(aff, 2));
    CHECK_OK(ens_cgroup_memory_limit(root, &mem));
    CHECK_EQ_INT(mem, 268435456LL);
    /* a host path that the namespaced mount does not have: the mount's files count */
    CHECK_OK(put(root, "proc/self/cgroup", "0::/system.slice/docker-abc.scope\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 1.5, 1e-9);

    /* v1: quota/period in cpu,cpuacct; the memory limit set on the parent only */
    fresh(root, sizeof root, "v1");
    CHECK_OK(put(root, "proc/self/cgroup",
                 "11:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n"
                 "0::/\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "300000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                 "9223372036854771712\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/memory/docker/memory.limit_in_bytes", "536870912\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 3.0, 1e-9);
    CHECK_EQ_INT(ens_cgroup_cpus(root), min_l(aff, 3));
    CHECK_OK(ens_cgroup_memory_limit(root, &mem));
    CHECK_EQ_INT(mem, 536870912LL);
    /* no quota anywhere: no limit, and the CPUs are the affinity mask's */
    CHECK_OK(put(root, "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 0.0, 1e-12);
    CHECK_EQ_INT(ens_cgroup_cpus(root), aff);
    /* v1 with the controller mounted under its own name ("cpu") */
    fresh(root, sizeof root, "v1cpu");
    CHECK_OK(put(root, "proc/self/cgroup", "1:cpu:/\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"));
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 1.0, 1e-9);
    CHECK_EQ_INT(ens_cgroup_cpus(root), 1);

    /* nothing there: no limit, not an error; physical memory */
    fresh(root, sizeof root, "none");
    CHECK_OK(ens_cgroup_cpu_limit(root, &cpus));
    CHECK_NEAR(cpus, 0.0, 1e-12);
    CHECK_OK(ens_cgroup_memory_limit(root, &mem));
    CHECK_EQ_INT(mem, 0);
    CHECK_EQ_INT(ens_cgroup_cpus(root), aff);
    CHECK_EQ_INT(ens_cgroup_memory(root), phys_bytes());

    /* files that do not parse, and a NULL out, are errors */
    fresh(root, sizeof root, "bad");
    CHECK_OK(put(root, "proc/self/cgroup", "0::/\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cgroup.controllers", "cpu\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/cpu.max", "lots 100000\n"));
    CHECK_OK(put(root, "sys/fs/cgroup/memory.max", "12x\n"));
    CHECK_EQ_INT(ens_cgroup_cpu_limit(root, &cpus), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_cgroup_memory_limit(root, &mem), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_cgroup_cpus(root), aff); /* unreadable limit: the mask alone */
    CHECK_EQ_INT(ens_cgroup_cpu_limit(root, NULL), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_cgroup_memory_limit(root, NULL), ENS_ERR_INVALID);

    /* the live system: within the mask, and some memory */
    int32_t live = ens_cgroup_cpus(NULL);
    CHECK(live >= 1 && live <= aff);
    CHECK(ens_cgroup_memory(NULL) > 0);
    CHECK(ens_cgroup_memory(NULL) <= phys_bytes());

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", base);
    CHECK_OK(system(cmd));
    return check_done("test_cgroup");
}
