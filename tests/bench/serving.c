/* serving.c - the in-process half of tests/bench/serving: builds the benchmark ensemble in the
 * model store, and measures a plan fed in process (no Kafka), alone or as an MPI group.
 *
 *   bench_serving setup REDIS_URL STUDY CSV ROWS   4 CNNs: models, cost profiles, a front
 *   bench_serving inproc REDIS_URL INSTANCE ROWS BATCH   the plan in force fed in process
 *                                                 (under mpirun: rank r runs device INSTANCE-r<r>)
 *   bench_serving local REDIS_URL INSTANCE ROWS BATCH DEVICES   the same for a group of DEVICES
 *                                                 devices in one process (ensflow-inference
 *                                                 --devices), device d = INSTANCE-r<d>
 *   bench_serving member REDIS_URL STUDY ROWS BATCH   each member served alone, in process
 *
 * Each prints one JSON object on stdout. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensflow/events.h"
#include "ensflow/nn.h"
#include "ensflow/store.h"
#include "evaluator.h"
#include "ensflow/inference.h"
#include "local_group.h"
#include "mpi/mpi_group.h"

#define N_MEMBERS 4
#define IN_H 28
#define N_CLASSES 10

/* Heterogeneous CNNs: widths and depths differ, so their costs differ about 10-fold. */
static const char *const archs[N_MEMBERS] = {
    "{\"blocks\":[{\"filters\":32},{\"filters\":64}],\"dense\":[128]}",
    "{\"blocks\":[{\"filters\":16},{\"filters\":32},{\"filters\":32}],\"dense\":[64]}",
    "{\"blocks\":[{\"filters\":24},{\"filters\":48}],\"dense\":[64]}",
    "{\"blocks\":[{\"filters\":8},{\"filters\":16}],\"dense\":[32]}",
};
static const int32_t profile_batches[4] = {1, 8, 32, 128};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Reproducible inputs in [0, 1). */
static float *make_inputs(int32_t rows) {
    float *x = malloc((size_t)rows * IN_H * IN_H * sizeof *x);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; x && i < (size_t)rows * IN_H * IN_H; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)(s >> 40) / (float)(1 << 24);
    }
    return x;
}

static int setup(const char *url, const char *study, const char *csv, int32_t rows) {
    char errstr[512], key[256];
    ens_redis_t *r = NULL;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr)) {
        fprintf(stderr, "bench_serving: %s\n", errstr);
        return 1;
    }
    float *x = make_inputs(1024);
    ens_event_t front;
    ens_event_init(&front, ENS_EV_ENSEMBLE_FRONT);
    ens_ensemble_front_t *f = &front.u.ensemble_front;
    snprintf(f->study_id, sizeof f->study_id, "%s", study);
    snprintf(f->front_id, sizeof f->front_id, "bench-front");
    f->n_models = N_MEMBERS;
    f->n_ensembles = 1;
    f->ensembles = calloc(1, sizeof *f->ensembles);
    ens_ensemble_t *e = f->ensembles;
    int rc = x && e ? 0 : 1;
    if (!rc) {
        e->members = calloc(N_MEMBERS, sizeof *e->members);
        e->weights = calloc(N_MEMBERS, sizeof *e->weights);
        rc = e->members && e->weights ? 0 : 1;
    }
    if (!rc) {
        snprintf(e->ensemble_id, sizeof e->ensemble_id, "bench-cnn4");
        snprintf(e->method, sizeof e->method, "topk");
        e->n_members = N_MEMBERS;
        e->val_accuracy = e->holdout_accuracy = 0.5;
    }
    printf("{\"members\": [");
    for (int i = 0; !rc && i < N_MEMBERS; i++) {
        ens_model_t *m = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        double prof[4];
        if (ens_model_new_from_json(archs[i], 1, IN_H, IN_H, N_CLASSES, 100 + (uint64_t)i, &m,
                                    errstr, sizeof errstr) ||
            ens_model_save(m, &buf, &len)) {
            fprintf(stderr, "bench_serving: model %d: %s\n", i, errstr);
            rc = 1;
        }
        snprintf(e->members[i], ENS_ID_MAX, "cnn%d", i);
        e->weights[i] = 1.0 / N_MEMBERS;
        ens_key(key, sizeof key, study, "model:%s", e->members[i]);
        if (!rc && ens_store_blob_put(r, key, buf, len, 0, errstr, sizeof errstr)) {
            fprintf(stderr, "bench_serving: %s\n", errstr);
            rc = 1;
        }
        free(buf);
        /* the evaluator's measurement, at its batch sizes (best of 3 passes) */
        for (int b = 0; !rc && b < 4; b++)
            prof[b] = ens_evaluator_ms_per_sample(m, x, 1024, profile_batches[b], 3);
        if (!rc) {
            int64_t mem = ens_model_memory_bytes(m, 32);
            ens_key(key, sizeof key, study, "eval:%s", e->members[i]);
            if (ens_redis_exec(r, errstr, sizeof errstr,
                               "HSET %s trial_id %s val_accuracy 0.5 n_params %lld ms_per_sample "
                               "%.6f batch_size 32 memory_bytes %lld ms_per_sample_b1 %.6f "
                               "ms_per_sample_b8 %.6f ms_per_sample_b32 %.6f "
                               "ms_per_sample_b128 %.6f",
                               key, e->members[i], (long long)ens_model_n_params(m), prof[2],
                               (long long)mem, prof[0], prof[1], prof[2], prof[3])) {
                fprintf(stderr, "bench_serving: %s\n", errstr);
                rc = 1;
            }
            e->cost_ms_per_sample += prof[2];
            e->memory_bytes += mem;
            printf("%s{\"id\": \"%s\", \"arch\": %s, \"params\": %lld, \"ms_per_sample\": "
                   "[%.4f, %.4f, %.4f, %.4f]}",
                   i ? ", " : "", e->members[i], archs[i], (long long)ens_model_n_params(m),
                   prof[0], prof[1], prof[2], prof[3]);
        }
        ens_model_free(m);
    }
    printf("], \"cost_ms_per_sample\": %.4f}\n", e ? e->cost_ms_per_sample : 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_key(key, sizeof key, study, "front");
    if (!rc && (ens_event_encode(&front, &buf, &len, errstr, sizeof errstr) ||
                ens_redis_exec(r, errstr, sizeof errstr, "SET %s %b", key, buf, len))) {
        fprintf(stderr, "bench_serving: %s\n", errstr);
        rc = 1;
    }
    free(buf);
    ens_event_free(&front);
    /* the requests: a CSV with a label first (ensflow predict --input) */
    FILE *out = rc ? NULL : fopen(csv, "w");
    float *rx = out ? make_inputs(rows) : NULL;
    for (int32_t i = 0; rx && i < rows; i++) {
        fprintf(out, "%d", (int)(i % N_CLASSES));
        for (int j = 0; j < IN_H * IN_H; j++)
            fprintf(out, ",%.4f", rx[(size_t)i * IN_H * IN_H + (size_t)j]);
        fputc('\n', out);
    }
    if (!rc && (!out || !rx || fclose(out))) {
        fprintf(stderr, "bench_serving: cannot write %s\n", csv);
        rc = 1;
    }
    free(rx);
    free(x);
    ens_redis_free(r);
    return rc;
}

/* Feed inf `rows` generated inputs in batches of `batch` as ens_inference_run does on the
 * group's first device (share with the others, compute its part, add theirs; no hooks:
 * alone): one warm-up batch, then the timed pass. 0 when every batch was computed. */
static int feed(ens_inference_t *inf, const ens_inference_hooks_t *hooks, int32_t rows,
                int32_t batch, double *secs) {
    float *x = make_inputs(rows);
    float *out = malloc((size_t)batch * N_CLASSES * sizeof *out);
    int32_t k = ens_inference_n_classes(inf);
    int rc = x && out && k == N_CLASSES ? 0 : 1;
    double t0 = 0;
    for (int pass = 0; !rc && pass < 2; pass++) {
        t0 = now_s();
        for (int32_t i = 0; !rc && i < (pass ? rows : batch); i += batch) {
            int32_t nb = rows - i < batch ? rows - i : batch;
            const float *xb = x + (size_t)i * IN_H * IN_H;
            int shared = hooks->share_inputs != NULL;
            if (shared && hooks->share_inputs(hooks->ctx, xb, nb, IN_H * IN_H))
                rc = 1, shared = 0;
            if (!rc && ens_inference_partial(inf, xb, nb, out))
                rc = 1;
            if (shared && hooks->sum_outputs(hooks->ctx, out, nb, k)) /* always join them */
                rc = 1;
        }
    }
    *secs = now_s() - t0;
    free(x);
    free(out);
    return rc;
}

/* The plan in force, fed batches of `batch` rows in process: the group does what it does
 * under ensflow-inference-mpi (rank 0 loads the plan everywhere, shares each batch, sums the
 * shares; the other ranks follow), without Kafka. Rank 0 reports. */
static int inproc(const char *url, const char *instance, int32_t rows, int32_t batch) {
    char errstr[512];
    ens_mpi_group_t g;
    if (ens_mpi_group_init(&g, errstr, sizeof errstr)) {
        fprintf(stderr, "bench_serving: %s\n", errstr);
        return 1;
    }
    ens_redis_t *r = NULL;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr)) {
        fprintf(stderr, "bench_serving: %s\n", errstr);
        return 1;
    }
    int rc = ens_mpi_group_share_instance(&g, instance) ? 1 : 0;
    if (g.rank > 0) {
        rc = rc ? rc : ens_mpi_group_follow(&g, r);
        ens_redis_free(r);
        return rc;
    }
    ens_inference_t *inf = NULL;
    ens_redis_reply_t *rep = NULL;
    double predicted = 0;
    if (!rc && (ens_inference_new(&inf) ||
                !(rep = ens_redis_command(r, errstr, sizeof errstr, "GET ens:plan:current")) ||
                rep->type != ENS_REPLY_STRING)) {
        fprintf(stderr, "bench_serving: no plan: %s\n", errstr);
        rc = 1;
    }
    ens_inference_hooks_t hooks = ens_mpi_group_hooks(&g);
    if (!rc) {
        ens_event_t plan;
        ens_inference_set_partition(inf, 0, g.size, g.size > 1 ? &hooks : NULL);
        ens_inference_set_instance(inf, g.instance);
        if (ens_event_decode((const uint8_t *)rep->str, rep->len, &plan, errstr, sizeof errstr)) {
            rc = 1;
        } else {
            predicted = plan.u.placement_plan.predicted_throughput;
            ens_event_free(&plan);
        }
        if (!rc && ens_mpi_group_load_plan(&g, inf, r, (const uint8_t *)rep->str, rep->len,
                                           errstr, sizeof errstr)) {
            fprintf(stderr, "bench_serving: %s\n", errstr);
            rc = 1;
        }
    }
    ens_redis_reply_free(rep);
    ens_inference_hooks_t none = {0};
    double secs = 0;
    if (!rc)
        rc = feed(inf, g.size > 1 ? &hooks : &none, rows, batch, &secs);
    if (!rc)
        printf("{\"ranks\": %d, \"rows\": %d, \"batch\": %d, \"seconds\": %.4f, "
               "\"throughput_rps\": %.1f, \"predicted_rps\": %.1f}\n",
               g.size, (int)rows, (int)batch, secs, rows / secs, predicted);
    if (ens_mpi_group_stop(&g))
        rc = 1;
    ens_inference_free(inf);
    ens_redis_free(r);
    return rc;
}

/* The plan in force on a group of `devices` devices in this process, fed in process. */
static int local(const char *url, const char *instance, int32_t rows, int32_t batch,
                 int devices) {
    char errstr[512];
    ens_redis_t *r = NULL;
    ens_inference_t *inf = NULL;
    ens_local_group_t *lg = NULL;
    ens_redis_reply_t *rep = NULL;
    ens_event_t plan;
    int have_plan = 0, rc = 0;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr) || ens_inference_new(&inf) ||
        ens_local_group_new(devices, instance, &lg, errstr, sizeof errstr) ||
        !(rep = ens_redis_command(r, errstr, sizeof errstr, "GET ens:plan:current")) ||
        rep->type != ENS_REPLY_STRING ||
        ens_event_decode((const uint8_t *)rep->str, rep->len, &plan, errstr, sizeof errstr)) {
        fprintf(stderr, "bench_serving: %s\n", errstr);
        rc = 1;
    } else
        have_plan = 1;
    ens_redis_reply_free(rep);
    ens_inference_hooks_t hooks = lg ? ens_local_group_hooks(lg) : (ens_inference_hooks_t){0};
    if (!rc) {
        ens_inference_set_partition(inf, 0, devices, &hooks);
        ens_inference_set_instance(inf, instance);
        if (ens_local_group_load_plan(lg, inf, r, &plan.u.placement_plan, errstr,
                                      sizeof errstr)) {
            fprintf(stderr, "bench_serving: %s\n", errstr);
            rc = 1;
        }
    }
    double secs = 0;
    if (!rc)
        rc = feed(inf, &hooks, rows, batch, &secs);
    if (!rc)
        printf("{\"devices\": %d, \"rows\": %d, \"batch\": %d, \"seconds\": %.4f, "
               "\"throughput_rps\": %.1f, \"predicted_rps\": %.1f}\n",
               devices, (int)rows, (int)batch, secs, rows / secs,
               plan.u.placement_plan.predicted_throughput);
    if (have_plan)
        ens_event_free(&plan);
    ens_local_group_free(lg);
    ens_inference_free(inf);
    ens_redis_free(r);
    return rc;
}

/* Each member of the benchmark ensemble served alone, in process, at batch rows a batch. */
static int members(const char *url, const char *study, int32_t rows, int32_t batch) {
    char errstr[512], key[256];
    ens_redis_t *r = NULL;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr)) {
        fprintf(stderr, "bench_serving: %s\n", errstr);
        return 1;
    }
    float *x = make_inputs(rows), *out = malloc((size_t)batch * N_CLASSES * sizeof *out);
    int rc = x && out ? 0 : 1;
    double slowest = 1e300;
    printf("{\"alone_rps\": [");
    for (int i = 0; !rc && i < N_MEMBERS; i++) {
        void *blob = NULL;
        size_t len = 0;
        ens_model_t *m = NULL;
        ens_key(key, sizeof key, study, "model:cnn%d", i);
        if (ens_store_blob_get(r, key, &blob, &len, errstr, sizeof errstr) ||
            ens_model_load(blob, len, &m, errstr, sizeof errstr)) {
            fprintf(stderr, "bench_serving: %s\n", errstr);
            rc = 1;
        }
        free(blob);
        double t0 = now_s();
        for (int32_t j = 0; !rc && j < rows; j += batch) {
            int32_t nb = rows - j < batch ? rows - j : batch;
            if (ens_model_predict(m, x + (size_t)j * IN_H * IN_H, nb, out))
                rc = 1;
        }
        double rps = rows / (now_s() - t0);
        slowest = rps < slowest ? rps : slowest;
        printf("%s%.1f", i ? ", " : "", rps);
        ens_model_free(m);
    }
    printf("], \"slowest_alone_rps\": %.1f}\n", rc ? 0 : slowest);
    free(x);
    free(out);
    ens_redis_free(r);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "setup"))
        return setup(argv[2], argv[3], argv[4], atoi(argv[5]));
    if (argc == 7 && !strcmp(argv[1], "local"))
        return local(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    if (argc == 6 && !strcmp(argv[1], "member"))
        return members(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    if (argc == 6 && !strcmp(argv[1], "inproc")) {
        if (MPI_Init(&argc, &argv) != MPI_SUCCESS)
            return 1;
        int rc = inproc(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
        if (rc)
            MPI_Abort(MPI_COMM_WORLD, rc);
        MPI_Finalize();
        return 0;
    }
    fprintf(stderr, "usage: bench_serving setup REDIS_URL STUDY CSV ROWS | member REDIS_URL "
                    "STUDY ROWS BATCH | inproc REDIS_URL INSTANCE ROWS BATCH | local REDIS_URL INSTANCE "
                    "ROWS BATCH DEVICES\n");
    return 2;
}
