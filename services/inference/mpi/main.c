/* ensflow-inference-mpi - an inference group over several devices, one MPI rank each:
 * rank 0 does the Kafka I/O and batching, every rank runs its members, MPI_Reduce sums. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "ensflow/log.h"
#include "ensflow/svc.h"
#include "mpi_group.h"
#include "serve.h"

static volatile sig_atomic_t stop;

/* Rank 0's plan loader: the plan comes into force on every rank or on none. */
static ens_err_t load_everywhere(void *ctx, ens_serve_t *g, const ens_placement_plan_t *plan,
                                 char *errstr, size_t errstr_size) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_PLACEMENT_PLAN);
    ev.u.placement_plan = *plan; /* borrowed: not freed here */
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_err_t err = ens_event_encode(&ev, &buf, &len, errstr, errstr_size);
    if (!err)
        err = ens_mpi_group_load_plan(ctx, ens_serve_inference(g), ens_serve_redis(g), buf, len,
                                      errstr, errstr_size);
    free(buf);
    return err;
}

int main(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        ENS_SERVE_CONF_DEFS,
        {NULL, 0, NULL, 0, 0, NULL}};
    /* rank 0's Kafka I/O runs on a thread of its own; MPI is called from main only */
    int provided = MPI_THREAD_SINGLE;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "ensflow-inference-mpi: MPI_Init_thread failed\n");
        return 1;
    }
    if (provided < MPI_THREAD_FUNNELED) {
        fprintf(stderr, "ensflow-inference-mpi: this MPI does not allow threads "
                        "(MPI_THREAD_FUNNELED)\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    char errstr[256];
    ens_mpi_group_t grp;
    if (ens_mpi_group_init(&grp, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow-inference-mpi: %s\n", errstr);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    ens_conf_t *conf = NULL;
    ens_redis_t *redis = NULL;
    ens_kafka_t *producer = NULL;
    int rc = ens_svc_start("ensflow-inference-mpi", "inference", defs, argc, argv, &conf, &redis,
                           grp.rank == 0 ? &producer : NULL);
    if (rc != ENS_SVC_GO_ON) {
        if (rc == 0) { /* --help: every rank printed it */
            MPI_Finalize();
            return 0;
        }
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    ens_svc_signals(&stop); /* rank 0 stops the others; they must not die first */
    grp.member_batch = (int32_t)ens_conf_int(conf, "member-batch"); /* parsed on every rank */
    ens_inference_t *inf = NULL;
    ens_serve_t *g = NULL;
    rc = ens_inference_new(&inf) == ENS_OK ? 0 : 1;
    if (!rc && ens_models_open_conf(conf, &grp.store, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow-inference-mpi: %s\n", errstr);
        rc = 1;
    }
    if (!rc)
        ens_inference_set_store(inf, grp.store);
    if (grp.rank == 0 && !rc && ens_serve_new(conf, redis, producer, inf, &stop, &g)) {
        fprintf(stderr, "ensflow-inference-mpi: out of memory\n");
        rc = 1;
    }
    /* every rank takes part, whatever rc: a rank that skipped it would leave the others
     * waiting; rank 0's id names the group's devices */
    if (ens_mpi_group_share_instance(&grp, g ? ens_serve_instance(g) : ""))
        rc = 1;
    if (!rc && grp.rank == 0) {
        ens_inference_hooks_t hooks = ens_mpi_group_hooks(&grp);
        ens_inference_set_partition(inf, 0, grp.size, &hooks);
        ens_inference_set_instance(inf, grp.instance);
        ens_serve_set_devices(g, grp.size, load_everywhere, &grp);
        ENS_INFO("msg=\"MPI inference group\" ranks=%d", grp.size);
        rc = ens_serve_run(g);
        if (ens_mpi_group_stop(&grp))
            rc = 1;
    } else if (!rc) {
        rc = ens_mpi_group_follow(&grp, redis);
    }
    ens_serve_free(g);
    ens_inference_free(inf);
    ens_models_close(grp.store);
    ens_kafka_free(producer);
    ens_redis_free(redis);
    ens_conf_free(conf);
    ens_metrics_stop();
    if (rc) /* a collective cannot finish without every rank: end the whole group */
        MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
    return 0;
}
