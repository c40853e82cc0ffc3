/* mpi_group.c - rank 0 broadcasts plans and batches; every rank computes its members' share;
 * MPI_Reduce sums the shares on rank 0. */
#include "mpi_group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/events.h"
#include "ensflow/log.h"

enum { CMD_STOP = 0, CMD_PLAN = 1, CMD_BATCH = 2 };

/* MPI errors are returned (MPI_ERRORS_RETURN), named, and turned into ENS_ERR_MPI. */
static ens_err_t mpi_check(int rc, const char *what) {
    if (rc == MPI_SUCCESS)
        return ENS_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    ENS_ERROR("msg=\"MPI call failed\" call=%s error=\"%.*s\"", what, len, msg);
    return ENS_ERR_MPI;
}

/* Wait for a nonblocking collective without holding a core. Open MPI's blocking collectives
 * busy-poll: an idle follower waiting for the next batch's header, or rank 0 waiting for a
 * slower rank's share, burned a whole core that the broker, the client and rank 0's Kafka
 * thread needed. A few quick tests first, then sleeps growing from 20 us to 0.5 ms. Only small
 * messages wait this way: a large one moves in segments, each needing a test call, so the
 * batch's inputs go by a blocking broadcast right after the header (both sides are ready). */
static ens_err_t mpi_wait(MPI_Request *req, const char *what) {
    long sleep_ns = 20000;
    for (int tries = 0;; tries++) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return mpi_check(rc, what);
        if (done)
            return ENS_OK;
        if (tries < 64)
            continue;
        struct timespec ts = {0, sleep_ns};
        nanosleep(&ts, NULL);
        sleep_ns = sleep_ns * 2 > 500000 ? 500000 : sleep_ns * 2;
    }
}

static ens_err_t bcast(void *buf, int count, MPI_Datatype type, MPI_Comm comm,
                       const char *what) {
    MPI_Request req;
    ens_err_t err = mpi_check(MPI_Ibcast(buf, count, type, 0, comm, &req), what);
    return err ? err : mpi_wait(&req, what);
}

static ens_err_t bcast_now(void *buf, int count, MPI_Datatype type, MPI_Comm comm,
                           const char *what) {
    return mpi_check(MPI_Bcast(buf, count, type, 0, comm), what);
}

static ens_err_t reduce_sum(const void *send, void *recv, int count, MPI_Comm comm) {
    MPI_Request req;
    ens_err_t err = mpi_check(MPI_Ireduce(send, recv, count, MPI_FLOAT, MPI_SUM, 0, comm, &req),
                              "MPI_Ireduce");
    return err ? err : mpi_wait(&req, "MPI_Ireduce");
}

ens_err_t ens_mpi_group_init(ens_mpi_group_t *g, char *errstr, size_t errstr_size) {
    memset(g, 0, sizeof *g);
    g->comm = MPI_COMM_WORLD;
    ens_err_t err = mpi_check(MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN),
                              "MPI_Comm_set_errhandler");
    if (!err)
        err = mpi_check(MPI_Comm_rank(g->comm, &g->rank), "MPI_Comm_rank");
    if (!err)
        err = mpi_check(MPI_Comm_size(g->comm, &g->size), "MPI_Comm_size");
    if (err)
        ens_err_set(errstr, errstr_size, err, "MPI group set-up failed (see log)");
    return err;
}

ens_err_t ens_mpi_group_share_instance(ens_mpi_group_t *g, const char *instance) {
    char buf[ENS_ID_MAX] = {0};
    if (g->rank == 0)
        snprintf(buf, sizeof buf, "%s", instance);
    ens_err_t err = bcast(buf, (int)sizeof buf, MPI_CHAR, g->comm, "MPI_Ibcast(instance)");
    buf[sizeof buf - 1] = 0;
    if (!err)
        memcpy(g->instance, buf, sizeof buf);
    return err;
}

static ens_err_t send_header(ens_mpi_group_t *g, int64_t cmd, int64_t a, int64_t b) {
    int64_t h[3] = {cmd, a, b};
    return bcast(h, 3, MPI_INT64_T, g->comm, "MPI_Ibcast(header)");
}

static ens_err_t share_inputs(void *ctx, const float *x, int32_t rows, int32_t dim) {
    ens_mpi_group_t *g = ctx;
    ens_err_t err = send_header(g, CMD_BATCH, rows, dim);
    if (!err)
        err = bcast_now((void *)x, rows * dim, MPI_FLOAT, g->comm, "MPI_Bcast(x)");
    return err;
}

static ens_err_t sum_outputs(void *ctx, float *probs, int32_t rows, int32_t k) {
    ens_mpi_group_t *g = ctx;
    return reduce_sum(MPI_IN_PLACE, probs, rows * k, g->comm);
}

ens_inference_hooks_t ens_mpi_group_hooks(ens_mpi_group_t *g) {
    ens_inference_hooks_t h = {.share_inputs = share_inputs, .sum_outputs = sum_outputs,
                               .ctx = g};
    return h;
}

/* Decode and load a plan into a fresh engine; 1 when it loaded. */
static int try_load(ens_mpi_group_t *g, ens_redis_t *r, const uint8_t *buf, size_t len,
                    ens_inference_t **out) {
    char errstr[512];
    ens_event_t ev;
    ens_inference_t *inf = NULL;
    int ok = ens_event_decode(buf, len, &ev, errstr, sizeof errstr) == ENS_OK;
    if (ok && ev.type != ENS_EV_PLACEMENT_PLAN) {
        snprintf(errstr, sizeof errstr, "not a PlacementPlan");
        ok = 0;
        ens_event_free(&ev);
    }
    if (ok) {
        ok = ens_inference_new(&inf) == ENS_OK;
        if (ok) {
            ens_inference_set_partition(inf, g->rank, g->size, NULL);
            ens_inference_set_instance(inf, g->instance);
            ens_inference_set_member_batch(inf, g->member_batch);
            ens_inference_set_store(inf, g->store);
            ok = ens_inference_load_plan(inf, r, &ev.u.placement_plan, errstr, sizeof errstr) ==
                 ENS_OK;
        }
        ens_event_free(&ev);
    }
    if (!ok) {
        ENS_ERROR("msg=\"rank cannot load the plan\" rank=%d error=\"%s\"", g->rank, errstr);
        ens_inference_free(inf);
        inf = NULL;
    }
    *out = inf;
    return ok;
}

/* Every rank says whether it could load; the plan counts only if all could. */
static ens_err_t agree(ens_mpi_group_t *g, int ok, int *all_ok) {
    return mpi_check(MPI_Allreduce(&ok, all_ok, 1, MPI_INT, MPI_LAND, g->comm), "MPI_Allreduce");
}

ens_err_t ens_mpi_group_load_plan(ens_mpi_group_t *g, ens_inference_t *inf, ens_redis_t *r,
                                  const uint8_t *plan, size_t len, char *errstr,
                                  size_t errstr_size) {
    ens_err_t err = send_header(g, CMD_PLAN, (int64_t)len, 0);
    if (!err)
        err = bcast_now((void *)plan, (int)len, MPI_BYTE, g->comm, "MPI_Bcast(plan)");
    if (err)
        return ens_err_set(errstr, errstr_size, err, "plan broadcast failed");
    /* rank 0 loads the plan on a scratch engine, agrees with the others, and only then puts
     * that engine's plan in force: loading it a second time could fail after the others
     * switched, leaving the ranks on different plans */
    ens_inference_t *scratch = NULL;
    int ok = try_load(g, r, plan, len, &scratch), all_ok = 0;
    if ((err = agree(g, ok, &all_ok))) {
        ens_inference_free(scratch);
        return ens_err_set(errstr, errstr_size, err, "plan agreement failed");
    }
    if (!all_ok) {
        ens_inference_free(scratch);
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID,
                           "a rank of the group could not load the plan; the previous one stays");
    }
    ens_inference_adopt(inf, scratch);
    ens_inference_free(scratch);
    return ENS_OK;
}

ens_err_t ens_mpi_group_stop(ens_mpi_group_t *g) { return send_header(g, CMD_STOP, 0, 0); }

int ens_mpi_group_follow(ens_mpi_group_t *g, ens_redis_t *r) {
    ens_inference_t *inf = NULL;
    float *x = NULL, *out = NULL;
    size_t cap_x = 0, cap_out = 0;
    int rc = 0;
    for (;;) {
        int64_t h[3];
        if (bcast(h, 3, MPI_INT64_T, g->comm, "MPI_Ibcast(header)")) {
            rc = 1;
            break;
        }
        if (h[0] == CMD_STOP)
            break;
        if (h[0] == CMD_PLAN) {
            if (h[1] <= 0 || h[1] > (1 << 26)) {
                rc = 1;
                break;
            }
            uint8_t *buf = malloc((size_t)h[1]);
            int ok = buf != NULL;
            if (bcast_now(buf, (int)h[1], MPI_BYTE, g->comm, "MPI_Bcast(plan)")) {
                free(buf);
                rc = 1;
                break;
            }
            ens_inference_t *next = NULL;
            ok = ok && try_load(g, r, buf, (size_t)h[1], &next);
            free(buf);
            int all_ok = 0;
            if (agree(g, ok, &all_ok)) {
                ens_inference_free(next);
                rc = 1;
                break;
            }
            if (all_ok) { /* in force on every rank, or on none */
                ens_inference_free(inf);
                inf = next;
            } else
                ens_inference_free(next);
            continue;
        }
        /* CMD_BATCH: rows x dim inputs; answer with this rank's share */
        int64_t rows = h[1], dim = h[2];
        if (rows <= 0 || dim <= 0 || rows * dim > (1 << 26) || !inf ||
            dim != ens_inference_input_dim(inf)) {
            ENS_ERROR("msg=\"batch this rank cannot serve\" rows=%lld dim=%lld", (long long)rows,
                      (long long)dim);
            rc = 1;
            break;
        }
        int32_t k = ens_inference_n_classes(inf);
        size_t need_x = (size_t)rows * (size_t)dim, need_out = (size_t)rows * (size_t)k;
        if (need_x > cap_x) {
            free(x);
            cap_x = (x = malloc(need_x * sizeof *x)) ? need_x : 0;
        }
        if (need_out > cap_out) {
            free(out);
            cap_out = (out = malloc(need_out * sizeof *out)) ? need_out : 0;
        }
        if (!x || !out) {
            rc = 1;
            break;
        }
        if (bcast_now(x, (int)(rows * dim), MPI_FLOAT, g->comm, "MPI_Bcast(x)") ||
            ens_inference_partial(inf, x, (int32_t)rows, out) != ENS_OK) {
            rc = 1;
            break;
        }
        if (reduce_sum(out, NULL, (int)(rows * k), g->comm)) {
            rc = 1;
            break;
        }
    }
    free(x);
    free(out);
    ens_inference_free(inf);
    return rc;
}
