/* backend.c - which backend a model computes on: the CPU one, or the cuDNN module loaded on
 * first use. Below both the layer engine (graph.c, which honours ENSFLOW_BACKEND) and the
 * model API (nn.c). */
#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef ENSFLOW_HAVE_CUDNN
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#endif

#ifdef ENSFLOW_HAVE_CUDNN
/* The cuDNN backend is a module (libensflow_cudnn.so, built beside the binaries) loaded on
 * first use. Why: linking cuDNN and cuBLAS into every binary cost each process start
 * 0.4-0.6 s of CPU, GPU or not, and most processes (the CLI, the broker, every CPU worker)
 * never use it. The module is $ENSFLOW_CUDNN_MODULE when set; else the first that exists of
 * one beside the executable and (for executables of the build tree, such as the tests) the
 * build tree's; else the loader's search path. It must be of this build (ENS_NN_ABI). */
static struct {
    pthread_once_t once;
    const struct ens_backend_i *be;
    ens_err_t (*open)(char *why, size_t why_size);
    char why[1024];
} g_cudnn = {.once = PTHREAD_ONCE_INIT};

/* Open the module at path (a file name alone: the loader's path) and take its entries, or
 * fill g_cudnn.why. */
static void open_module(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const char *e = h ? NULL : dlerror();
    if (h) {
        const uint32_t *abi = dlsym(h, "ens_cudnn_abi");
        const struct ens_backend_i *be = dlsym(h, "ens_backend_cudnn");
        void *open = dlsym(h, "nn_cudnn_device_open");
        if (!abi || !be || !open)
            e = "an entry (ens_cudnn_abi, ens_backend_cudnn, nn_cudnn_device_open) is missing";
        else if (*abi != ENS_NN_ABI)
            e = "it is of another build (its data layouts differ from this binary's)";
        else {
            g_cudnn.be = be;
            *(void **)&g_cudnn.open = open;
            return;
        }
        dlclose(h);
    }
    snprintf(g_cudnn.why, sizeof g_cudnn.why,
             "the cudnn backend module %.400s did not load: %.400s", path,
             e ? e : "unknown error");
}

static void load_cudnn(void) {
    const char *env = getenv("ENSFLOW_CUDNN_MODULE");
    if (env && *env) {
        open_module(env);
        return;
    }
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        snprintf(path, sizeof path, "%s/%s", exe, ENS_CUDNN_MODULE_NAME);
        if (access(path, F_OK) == 0) {
            open_module(path);
            return;
        }
        size_t bl = strlen(ENS_BUILD_DIR);
        if (!strncmp(exe, ENS_BUILD_DIR, bl) && (exe[bl] == '/' || exe[bl] == '\0') &&
            access(ENS_CUDNN_MODULE_BUILT, F_OK) == 0) {
            open_module(ENS_CUDNN_MODULE_BUILT);
            return;
        }
    }
    open_module(ENS_CUDNN_MODULE_NAME);
    if (!g_cudnn.be) {
        size_t len = strlen(g_cudnn.why);
        snprintf(g_cudnn.why + len, sizeof g_cudnn.why - len,
                 " (none beside the executable either; set ENSFLOW_CUDNN_MODULE to its path)");
    }
}

ens_err_t nn_cudnn_open(char *why, size_t why_size) {
    pthread_once(&g_cudnn.once, load_cudnn);
    if (!g_cudnn.be) {
        if (why && why_size)
            snprintf(why, why_size, "%s", g_cudnn.why);
        return ENS_ERR_UNSUPPORTED;
    }
    return g_cudnn.open(why, why_size);
}
#endif

ens_err_t ens_model_set_backend(ens_model_t *m, const char *name, char *errstr,
                                size_t errstr_size) {
    if (!m || !name)
        return ENS_ERR_INVALID;
    if (!strcmp(name, "cpu")) {
        m->be = &ens_backend_cpu;
        return ENS_OK;
    }
    if (strcmp(name, "cudnn")) {
        if (errstr && errstr_size)
            snprintf(errstr, errstr_size, "unknown backend \"%s\" (cpu or cudnn)", name);
        return ENS_ERR_INVALID;
    }
#ifdef ENSFLOW_HAVE_CUDNN
    ens_err_t err = nn_cudnn_open(errstr, errstr_size);
    if (err)
        return err;
    m->be = g_cudnn.be;
    return ENS_OK;
#else
    if (errstr && errstr_size)
        snprintf(errstr, errstr_size, "this build has no cudnn backend (CUDA not found by CMake)");
    return ENS_ERR_UNSUPPORTED;
#endif
}

const char *ens_model_backend_name(const ens_model_t *m) { return m ? m->be->name : NULL; }
