/* cgroup.c - CPUs and memory from the process's cgroup (v1 and v2) and its affinity mask. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "ensflow/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CG_PATH_MAX 1024
/* v1 reports "no limit" as a page-rounded INT64_MAX; anything this large is no limit */
#define CG_NO_LIMIT ((int64_t)1 << 62)

typedef enum { CG_CPU, CG_MEMORY } cg_res_t;

/* Read a small file into buf (NUL-terminated, trailing newline dropped): 1 read, 0 absent. */
static int read_small(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, size - 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return 0;
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = 0;
    return 1;
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Does the comma-separated controller list contain name? */
static int has_controller(const char *list, size_t len, const char *name) {
    size_t nlen = strlen(name);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && list[j] != ',')
            j++;
        if (j - i == nlen && strncmp(list + i, name, nlen) == 0)
            return 1;
        i = j + 1;
    }
    return 0;
}

/* The process's cgroup path for the resource (v2: the "0::" line; v1: the line naming the
 * controller) and the directory its hierarchy is mounted on. 1 found, 0 not. */
static int locate(const char *root, cg_res_t res, int *v2, char *mount, size_t msize, char *path,
                  size_t psize) {
    char file[CG_PATH_MAX];
    snprintf(file, sizeof file, "%s/sys/fs/cgroup/cgroup.controllers", root);
    struct stat st;
    *v2 = stat(file, &st) == 0;
    const char *ctl = res == CG_CPU ? "cpu" : "memory";
    snprintf(file, sizeof file, "%s/proc/self/cgroup", root);
    FILE *f = fopen(file, "r");
    int found = 0;
    path[0] = 0;
    if (f) {
        char line[CG_PATH_MAX];
        while (!found && fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2)
                continue;
            const char *ctls = c1 + 1;
            size_t clen = (size_t)(c2 - ctls);
            if (*v2 ? (clen == 0 && strncmp(line, "0:", 2) == 0)
                    : has_controller(ctls, clen, ctl)) {
                snprintf(path, psize, "%s", strcmp(c2 + 1, "/") ? c2 + 1 : "");
                if (*v2)
                    snprintf(mount, msize, "%s/sys/fs/cgroup", root);
                else
                    snprintf(mount, msize, "%s/sys/fs/cgroup/%.*s", root, (int)clen, ctls);
                found = 1;
            }
        }
        fclose(f);
    }
    if (!found) { /* no /proc/self/cgroup entry: the mount's own files, if any */
        if (*v2)
            snprintf(mount, msize, "%s/sys/fs/cgroup", root);
        else
            snprintf(mount, msize, "%s/sys/fs/cgroup/%s", root, ctl);
    }
    /* v1 mounts "cpu,cpuacct" in most distributions, "cpu" (a link) in some */
    if (!*v2 && !is_dir(mount)) {
        snprintf(mount, msize, "%s/sys/fs/cgroup/%s", root, ctl);
        if (!is_dir(mount))
            return 0;
    }
    return is_dir(mount);
}

/* The limit one cgroup directory sets for the resource: 1 with *out (CPUs or bytes), 0 none,
 * -1 a file that does not parse. */
static int dir_limit(const char *dir, cg_res_t res, int v2, double *out) {
    char file[2 * CG_PATH_MAX + 64], buf[128];
    if (res == CG_CPU && v2) {
        snprintf(file, sizeof file, "%s/cpu.max", dir);
        if (!read_small(file, buf, sizeof buf))
            return 0;
        char quota[32];
        long long period = 0;
        if (sscanf(buf, "%31s %lld", quota, &period) < 1)
            return -1;
        if (strcmp(quota, "max") == 0)
            return 0;
        char *end;
        long long q = strtoll(quota, &end, 10);
        if (*end || q <= 0)
            return -1;
        if (period <= 0)
            period = 100000; /* the kernel's default when only the quota is written */
        *out = (double)q / (double)period;
        return 1;
    }
    if (res == CG_CPU) {
        char pbuf[64];
        snprintf(file, sizeof file, "%s/cpu.cfs_quota_us", dir);
        if (!read_small(file, buf, sizeof buf))
            return 0;
        snprintf(file, sizeof file, "%s/cpu.cfs_period_us", dir);
        if (!read_small(file, pbuf, sizeof pbuf))
            return -1;
        char *e1, *e2;
        long long q = strtoll(buf, &e1, 10), p = strtoll(pbuf, &e2, 10);
        if (*e1 || *e2 || e1 == buf || e2 == pbuf || p <= 0)
            return -1;
        if (q < 0) /* -1: no limit */
            return 0;
        if (q == 0)
            return -1;
        *out = (double)q / (double)p;
        return 1;
    }
    snprintf(file, sizeof file, "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    if (!read_small(file, buf, sizeof buf))
        return 0;
    if (strcmp(buf, "max") == 0)
        return 0;
    char *end;
    errno = 0;
    long long b = strtoll(buf, &end, 10);
    if (*end || end == buf || b < 0)
        return -1;
    if (errno == ERANGE || b >= CG_NO_LIMIT)
        return 0;
    *out = (double)b;
    return 1;
}

/* The tightest limit over the process's cgroup and its ancestors up to the mount. */
static ens_err_t limit(const char *root, cg_res_t res, double *out) {
    *out = 0;
    if (!root || strcmp(root, "/") == 0)
        root = "";
    char mount[CG_PATH_MAX], path[CG_PATH_MAX], dir[2 * CG_PATH_MAX + 2];
    int v2;
    if (!locate(root, res, &v2, mount, sizeof mount, path, sizeof path))
        return ENS_OK;
    snprintf(dir, sizeof dir, "%s%s", mount, path);
    if (!is_dir(dir))
        snprintf(dir, sizeof dir, "%s", mount); /* namespaced: the mount is our cgroup */
    size_t mlen = strlen(mount);
    double best = 0;
    for (;;) {
        double v = 0;
        int rc = dir_limit(dir, res, v2, &v);
        if (rc < 0)
            return ENS_ERR_INVALID;
        if (rc > 0 && (best == 0 || v < best))
            best = v;
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= mlen || !slash || (size_t)(slash - dir) < mlen)
            break;
        *slash = 0;
    }
    *out = best;
    return ENS_OK;
}

ens_err_t ens_cgroup_cpu_limit(const char *root, double *cpus) {
    if (!cpus)
        return ENS_ERR_INVALID;
    return limit(root, CG_CPU, cpus);
}

ens_err_t ens_cgroup_memory_limit(const char *root, int64_t *bytes) {
    if (!bytes)
        return ENS_ERR_INVALID;
    *bytes = 0;
    double v = 0;
    ens_err_t err = limit(root, CG_MEMORY, &v);
    if (!err)
        *bytes = (int64_t)v;
    return err;
}

int32_t ens_cgroup_cpus(const char *root) {
    long n = 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    double quota = 0;
    if (ens_cgroup_cpu_limit(root, &quota) == ENS_OK && quota > 0) {
        long q = (long)ceil(quota - 1e-9);
        if (q < n || n <= 0)
            n = q;
    }
    return n < 1 ? 1 : n > INT32_MAX ? INT32_MAX : (int32_t)n;
}

int64_t ens_cgroup_memory(const char *root) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t phys = pages > 0 && page > 0 ? (int64_t)pages * page : 0, lim = 0;
    if (ens_cgroup_memory_limit(root, &lim) != ENS_OK || lim <= 0)
        return phys;
    return phys > 0 && phys < lim ? phys : lim;
}
