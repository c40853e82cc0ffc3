/* asha_sim.c - scheduler benchmark on synthetic learning curves: schedulers side by side at an
 * equal epoch budget (simulated time), and decision latency against a real redis-server.
 * usage: asha_sim sched BUDGET_EPOCHS WORKERS SEED
 *        asha_sim scale REDIS_URL TRIALS TRAINERS
 * Prints one JSON object on stdout. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ensflow/asha.h"
#include "ensflow/state_sched.h"
#include "ensflow/data.h"

/* Synthetic learning curve: each configuration has an asymptote and a speed. */
static double curve(int32_t trial, double epochs, uint64_t seed) {
    ens_rng_t r;
    ens_rng_seed(&r, seed * 1000003u + (uint64_t)trial);
    double top = 0.70 + 0.22 * ens_rng_uniform(&r), speed = 0.2 + 1.5 * ens_rng_uniform(&r);
    double noise = 0.004 * (ens_rng_uniform(&r) - 0.5);
    return top - (top - 0.1) * exp(-speed * epochs) + noise;
}

typedef struct {
    ens_asha_decision_t d;
    double end;
} job_t;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Event-driven: a job of e epochs takes e time units; a free worker asks for a decision. */
static int sched(double budget, int workers, uint64_t seed) {
    const char *names[] = {"asha", "hyperband", "sha", "random"};
    ens_sched_kind_t kinds[] = {ENS_SCHED_ASHA, ENS_SCHED_HYPERBAND, ENS_SCHED_SHA,
                                ENS_SCHED_RANDOM};
    char err[256];
    printf("{");
    for (int s = 0; s < 4; s++) {
        ens_asha_params_t p = {.kind = kinds[s], .eta = 3, .r_max = 9, .r_min = 1, .s_max = -1,
                               .max_configs = kinds[s] == ENS_SCHED_SHA ? 27 : 100000,
                               .max_epochs = budget};
        if (ens_asha_params_init(&p, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (kinds[s] == ENS_SCHED_SHA) { /* one synchronous bracket that spends the budget */
            double per = 0;
            for (int k = 0; k <= p.m; k++)
                per += (ens_asha_rung_epochs(&p, 0, k) - (k ? ens_asha_rung_epochs(&p, 0, k - 1)
                                                            : 0)) / pow(p.eta, k);
            p.max_configs = (int)(budget / per);
        }
        ens_asha_mem_t *m = NULL;
        if (ens_asha_mem_new(&p, &m))
            return 1;
        job_t *run = calloc((size_t)workers, sizeof *run);
        int *busy = calloc((size_t)workers, sizeof *busy);
        double t = 0, busy_time = 0, best = 0;
        int per_rung[ENS_ASHA_MAX_RUNGS] = {0}, configs = 0;
        for (;;) {
            for (int w = 0; w < workers; w++) {
                if (busy[w])
                    continue;
                ens_asha_view_t v;
                ens_asha_mem_view(m, &v);
                ens_asha_decide(&p, &v, &run[w].d);
                if (run[w].d.action == ENS_ASHA_NONE)
                    continue;
                ens_asha_mem_commit(m, &run[w].d);
                configs += run[w].d.action == ENS_ASHA_NEW;
                run[w].end = t + run[w].d.to_epochs - run[w].d.from_epochs;
                busy_time += run[w].d.to_epochs - run[w].d.from_epochs;
                busy[w] = 1;
            }
            int next = -1;
            for (int w = 0; w < workers; w++)
                if (busy[w] && (next < 0 || run[w].end < run[next].end))
                    next = w;
            if (next < 0)
                break;
            t = run[next].end;
            busy[next] = 0;
            const ens_asha_decision_t *d = &run[next].d;
            double acc = curve(d->config_index, d->to_epochs, seed);
            ens_asha_mem_result(m, d->bracket, d->rung, d->trial_id, 1, acc);
            per_rung[d->bracket + d->rung]++;
            if (acc > best)
                best = acc;
        }
        printf("%s\"best_val_%s\": %.4f, \"configs_%s\": %d, "
               "\"utilization_%s\": %.4f, \"wall_units_%s\": %.1f, \"per_rung_%s\": [",
               s ? ", " : "", names[s], best, names[s], configs, names[s],
               t > 0 ? busy_time / (workers * t) : 0, names[s], t, names[s]);
        int models = 0;
        for (int k = 0; k <= p.m; k++) {
            printf("%s%d", k ? ", " : "", per_rung[k]);
            models += per_rung[k];
        }
        printf("], \"models_%s\": %d", names[s], models);
        free(run);
        free(busy);
        ens_asha_mem_free(m);
    }
    printf("}\n");
    return 0;
}

/* 1000 simulated trainers keep jobs in flight; every finished job is recorded in Redis and
 * the freed trainer asks for the next decision, timed: decide from the state the last script
 * answered with, commit (one EVALSHA that answers with the next state). The result scripts
 * are timed apart (they answer with the state too, so they do the view's reads). */
static int scale(const char *url, int trials, int trainers) {
    char err[512], study[64];
    ens_redis_t *r = NULL;
    if (ens_redis_connect(url, &r, err, sizeof err)) {
        fprintf(stderr, "redis: %s\n", err);
        return 1;
    }
    ens_state_t *st = NULL;
    if (ens_state_redis_new(r, NULL, &st)) {
        fprintf(stderr, "state: out of memory\n");
        return 1;
    }
    snprintf(study, sizeof study, "bench-%d", (int)getpid());
    ens_asha_params_t p = {.kind = ENS_SCHED_ASHA, .eta = 3, .r_max = 27, .r_min = 1,
                           .max_configs = trials};
    if (ens_asha_params_init(&p, err, sizeof err))
        return 1;
    job_t *pool = calloc((size_t)trainers, sizeof *pool);
    size_t cap = (size_t)trials * 2 + 1000, n_lat = 0, n_rlat = 0;
    double *lat = malloc(cap * sizeof *lat), *rlat = malloc(cap * sizeof *rlat);
    static ens_asha_view_t v;
    int have_view = 0;
    if (!pool || !lat || !rlat)
        return 1;
    ens_rng_t rng;
    ens_rng_seed(&rng, 1);
    int n = 0;
    long decisions = 0, trips_total = 0, stale = 0;
    double t_start = now_ms();
    for (;;) {
        while (n < trainers) {
            double t0 = now_ms();
            ens_asha_decision_t d;
            int trips = 0, applied = 0;
            if (!have_view) {
                if (ens_state_sched_asha_view(st, study, &p, &v, &trips, err, sizeof err)) {
                    fprintf(stderr, "view: %s\n", err);
                    return 1;
                }
                have_view = 1;
            }
            ens_asha_decide(&p, &v, &d);
            if (d.action == ENS_ASHA_NONE)
                break;
            if (ens_state_sched_asha_commit(st, study, &p, &d, v.version, "{}", &applied, &v, err,
                                            sizeof err)) {
                fprintf(stderr, "commit: %s\n", err);
                return 1;
            }
            trips_total += trips + 1;
            if (!applied) { /* never with one writer; counted in the trips */
                stale++;
                continue;
            }
            if (n_lat < cap)
                lat[n_lat++] = now_ms() - t0;
            decisions++;
            pool[n++].d = d;
        }
        if (n == 0)
            break;
        int i = (int)(ens_rng_next(&rng) % (uint64_t)n);
        ens_asha_decision_t d = pool[i].d;
        pool[i] = pool[--n];
        int applied = 0;
        double t0 = now_ms();
        if (ens_state_sched_asha_result(st, study, &p, d.trial_id, 1,
                                        curve(d.config_index, d.to_epochs, 7), d.to_epochs, "m",
                                        NULL, &applied, &v, err, sizeof err)) {
            fprintf(stderr, "result: %s\n", err);
            return 1;
        }
        if (n_rlat < cap)
            rlat[n_rlat++] = now_ms() - t0;
    }
    double wall = now_ms() - t_start;
    qsort(lat, n_lat, sizeof *lat, cmp_double);
    qsort(rlat, n_rlat, sizeof *rlat, cmp_double);
    double p50 = n_lat ? lat[n_lat / 2] : 0, p99 = n_lat ? lat[(size_t)(n_lat * 0.99)] : 0;
    double rp50 = n_rlat ? rlat[n_rlat / 2] : 0, rp99 = n_rlat ? rlat[(size_t)(n_rlat * 0.99)] : 0;
    printf("{\"trials\": %d, \"trainers\": %d, \"decisions\": %ld, \"decision_ms_p50\": %.4f, "
           "\"decision_ms_p99\": %.4f, \"round_trips_per_decision\": %.3f, "
           "\"stale_commits\": %ld, \"result_ms_p50\": %.4f, \"result_ms_p99\": %.4f, "
           "\"decisions_per_s\": %.0f}\n",
           trials, trainers, decisions, p50, p99,
           decisions ? (double)trips_total / decisions : 0, stale, rp50, rp99,
           decisions / (wall / 1e3));
    /* leave nothing behind */
    ens_redis_exec(r, NULL, 0, "FLUSHDB");
    free(lat);
    free(rlat);
    free(pool);
    ens_state_free(st);
    ens_redis_free(r);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "sched"))
        return sched(atof(argv[2]), atoi(argv[3]), (uint64_t)atoll(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "scale"))
        return scale(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: asha_sim sched BUDGET WORKERS SEED | scale REDIS_URL TRIALS "
                    "TRAINERS\n");
    return 2;
}
