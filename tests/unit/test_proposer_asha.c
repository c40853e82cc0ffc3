/* test_proposer_asha.c - the scheduler core: hand-worked ASHA order, invariants, brackets, SHA,
 * random, budgets, and crash replay on the in-memory and the Redis backends. */
#include <time.h>
#include <unistd.h>

#include "ensflow/asha.h"
#include "check.h"
#include "ensflow/data.h"
#include "ensflow/state_sched.h"

static char errstr[512];

static ens_asha_params_t params(ens_sched_kind_t kind, double r_max, double eta, int configs) {
    ens_asha_params_t p = {.kind = kind, .eta = eta, .r_max = r_max, .s_max = -1,
                           .max_configs = configs};
    CHECK_OK(ens_asha_params_init(&p, errstr, sizeof errstr));
    return p;
}

/* Deterministic learning curve: a per-trial quality, better with more epochs. */
static double curve(int32_t trial, double epochs, uint64_t seed) {
    uint64_t h = (seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(trial + 1)) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    double q = (double)(h % 10000) / 10000.0;
    return 0.5 + 0.4 * q * (1.0 - 1.0 / (1.0 + epochs));
}

static void test_params(void) {
    ens_asha_params_t p = params(ENS_SCHED_ASHA, 9, 3, 100);
    CHECK_NEAR(p.r_min, 1, 1e-12);
    CHECK_EQ_INT(p.m, 2);
    CHECK_EQ_INT(ens_asha_n_brackets(&p), 1);
    CHECK_EQ_INT(ens_asha_n_rungs(&p, 0), 3);
    CHECK_NEAR(ens_asha_rung_epochs(&p, 0, 0), 1, 1e-12);
    CHECK_NEAR(ens_asha_rung_epochs(&p, 0, 1), 3, 1e-12);
    CHECK_NEAR(ens_asha_rung_epochs(&p, 0, 2), 9, 1e-12);
    /* fractional rungs, top rung exactly R */
    ens_asha_params_t q = {.kind = ENS_SCHED_ASHA, .eta = 3, .r_max = 5, .r_min = 0.5,
                           .max_configs = 10};
    CHECK_OK(ens_asha_params_init(&q, errstr, sizeof errstr));
    CHECK_EQ_INT(q.m, 2);
    CHECK_NEAR(ens_asha_rung_epochs(&q, 0, 1), 1.5, 1e-12);
    CHECK_NEAR(ens_asha_rung_epochs(&q, 0, 2), 5, 1e-12);
    ens_asha_params_t h = {.kind = ENS_SCHED_HYPERBAND, .eta = 3, .r_max = 27, .r_min = 1,
                           .s_max = -1, .max_configs = 100};
    CHECK_OK(ens_asha_params_init(&h, errstr, sizeof errstr));
    CHECK_EQ_INT(ens_asha_n_brackets(&h), 4);
    CHECK_EQ_INT(ens_asha_n_rungs(&h, 3), 1);
    CHECK_NEAR(ens_asha_rung_epochs(&h, 1, 0), 3, 1e-12);
    CHECK_NEAR(ens_asha_rung_epochs(&h, 3, 0), 27, 1e-12);
    ens_asha_params_t r = params(ENS_SCHED_RANDOM, 5, 3, 7);
    CHECK_EQ_INT(r.m, 0);
    CHECK_NEAR(ens_asha_rung_epochs(&r, 0, 0), 5, 0);
    ens_asha_params_t bad = {.kind = ENS_SCHED_ASHA, .eta = 1.5, .r_max = 9, .max_configs = 1};
    CHECK_EQ_INT(ens_asha_params_init(&bad, errstr, sizeof errstr), ENS_ERR_INVALID);
    bad = (ens_asha_params_t){.kind = ENS_SCHED_ASHA, .eta = 2, .r_max = 1e6, .r_min = 1e-3,
                              .max_configs = 1};
    CHECK_EQ_INT(ens_asha_params_init(&bad, errstr, sizeof errstr), ENS_ERR_INVALID);
    ens_sched_kind_t k;
    CHECK_OK(ens_asha_kind_parse("hyperband", &k));
    CHECK_EQ_INT(k, ENS_SCHED_HYPERBAND);
    CHECK_EQ_INT(ens_asha_kind_parse("bohb", &k), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_asha_trial_index("t-00042"), 42);
    CHECK_EQ_INT(ens_asha_trial_index("x-1"), -1);
}

/* decide + commit on the memory backend */
static void step(ens_asha_mem_t *m, const ens_asha_params_t *p, ens_asha_decision_t *d) {
    ens_asha_view_t v;
    ens_asha_mem_view(m, &v);
    ens_asha_decide(p, &v, d);
    if (d->action != ENS_ASHA_NONE)
        CHECK_OK(ens_asha_mem_commit(m, d));
}

static void expect(const ens_asha_decision_t *d, ens_asha_action_t a, const char *trial, int rung) {
    if (d->action != a || strcmp(d->trial_id, trial) || d->rung != rung)
        fprintf(stderr, "decision %lld: got %d %s rung %d, wanted %d %s rung %d\n",
                (long long)d->seq, d->action, d->trial_id, d->rung, a, trial, rung);
    CHECK_EQ_INT(d->action, a);
    CHECK_STR(d->trial_id, trial);
    CHECK_EQ_INT(d->rung, rung);
}

/* One worker, eta 3, rungs 1/3/9 epochs; worked by hand from the rule in asha.h. */
static void test_hand_worked(void) {
    ens_asha_params_t p = params(ENS_SCHED_ASHA, 9, 3, 100);
    ens_asha_mem_t *m = NULL;
    CHECK_OK(ens_asha_mem_new(&p, &m));
    ens_asha_decision_t d;
    /* rung 0 scores: t0 .50, t1 .70, t2 .60 */
    step(m, &p, &d);
    expect(&d, ENS_ASHA_NEW, "t-00000", 0);
    CHECK_NEAR(d.to_epochs, 1, 0);
    ens_asha_mem_result(m, 0, 0, "t-00000", 1, 0.50);
    step(m, &p, &d); /* n=1: top 0 -> new */
    expect(&d, ENS_ASHA_NEW, "t-00001", 0);
    ens_asha_mem_result(m, 0, 0, "t-00001", 1, 0.70);
    step(m, &p, &d); /* n=2: floor(2/3)=0 -> new */
    expect(&d, ENS_ASHA_NEW, "t-00002", 0);
    ens_asha_mem_result(m, 0, 0, "t-00002", 1, 0.60);
    step(m, &p, &d); /* n=3: top 1 = t1, unpromoted -> promote to rung 1, epochs 1 -> 3 */
    expect(&d, ENS_ASHA_PROMOTE, "t-00001", 1);
    CHECK_NEAR(d.from_epochs, 1, 0);
    CHECK_NEAR(d.to_epochs, 3, 0);
    ens_asha_mem_result(m, 0, 1, "t-00001", 1, 0.75);
    step(m, &p, &d); /* rung 1 n=1: none; rung 0 top 1 taken -> new t3 */
    expect(&d, ENS_ASHA_NEW, "t-00003", 0);
    ens_asha_mem_result(m, 0, 0, "t-00003", 1, 0.65);
    step(m, &p, &d); /* rung 0 n=4: top 1 = t1 (promoted) -> new t4 */
    expect(&d, ENS_ASHA_NEW, "t-00004", 0);
    ens_asha_mem_result(m, 0, 0, "t-00004", 1, 0.40);
    step(m, &p, &d); /* n=5: top 1 still -> new t5 */
    expect(&d, ENS_ASHA_NEW, "t-00005", 0);
    ens_asha_mem_result(m, 0, 0, "t-00005", 1, 0.68);
    step(m, &p, &d); /* n=6: top 2 = t1, t5 -> promote t5 */
    expect(&d, ENS_ASHA_PROMOTE, "t-00005", 1);
    ens_asha_mem_result(m, 0, 1, "t-00005", 1, 0.72);
    step(m, &p, &d); /* rung 1 n=2: none -> rung 0 top 2 done -> new t6 */
    expect(&d, ENS_ASHA_NEW, "t-00006", 0);
    ens_asha_mem_result(m, 0, 0, "t-00006", 1, 0.66);
    step(m, &p, &d); /* n=7 top 2 -> new t7 */
    expect(&d, ENS_ASHA_NEW, "t-00007", 0);
    ens_asha_mem_result(m, 0, 0, "t-00007", 1, 0.30);
    step(m, &p, &d); /* n=8 top 2 -> new t8 */
    expect(&d, ENS_ASHA_NEW, "t-00008", 0);
    ens_asha_mem_result(m, 0, 0, "t-00008", 1, 0.20);
    step(m, &p, &d); /* n=9: top 3 = t1, t5, t6 -> promote t6 */
    expect(&d, ENS_ASHA_PROMOTE, "t-00006", 1);
    ens_asha_mem_result(m, 0, 1, "t-00006", 1, 0.80);
    step(m, &p, &d); /* rung 1 n=3: top 1 = t6 -> promote to rung 2 (3 -> 9 epochs) */
    expect(&d, ENS_ASHA_PROMOTE, "t-00006", 2);
    CHECK_NEAR(d.from_epochs, 3, 0);
    CHECK_NEAR(d.to_epochs, 9, 0);
    ens_asha_mem_result(m, 0, 2, "t-00006", 1, 0.85);
    step(m, &p, &d);
    expect(&d, ENS_ASHA_NEW, "t-00009", 0);
    /* ties rank by trial id, larger first (ZREVRANGE order) */
    ens_asha_params_t q = params(ENS_SCHED_ASHA, 9, 3, 100);
    ens_asha_mem_t *t = NULL;
    CHECK_OK(ens_asha_mem_new(&q, &t));
    for (int i = 0; i < 3; i++) {
        step(t, &q, &d);
        ens_asha_mem_result(t, 0, 0, d.trial_id, 1, 0.5);
    }
    step(t, &q, &d);
    expect(&d, ENS_ASHA_PROMOTE, "t-00002", 1);
    ens_asha_mem_free(t);
    ens_asha_mem_free(m);
}

/* Asynchronous simulation: W workers, jobs finish in an order set by a seeded rng. Checks:
 * at most one promotion per trial and rung; promotions out of rung k <= floor(n_k / eta). */
typedef struct {
    ens_asha_decision_t job[64];
    int n;
} pool_t;

static int simulate(const ens_asha_params_t *p, int workers, uint64_t seed,
                    ens_asha_decision_t *log, int max_log, int crash_every) {
    ens_asha_mem_t *m = NULL;
    CHECK_OK(ens_asha_mem_new(p, &m));
    pool_t pool = {.n = 0};
    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    int n_log = 0;
    static unsigned char promoted[4096][ENS_ASHA_MAX_RUNGS];
    memset(promoted, 0, sizeof promoted);
    for (;;) {
        while (pool.n < workers && n_log < max_log) {
            ens_asha_view_t v;
            ens_asha_decision_t d;
            ens_asha_mem_view(m, &v);
            ens_asha_decide(p, &v, &d);
            if (d.action == ENS_ASHA_NONE)
                break;
            if (crash_every && n_log % crash_every == crash_every - 1) {
                /* crash after deciding, before committing: the restarted proposer rebuilds
                 * from the stored state and must decide exactly the same */
                ens_asha_mem_t *copy = NULL;
                CHECK_OK(ens_asha_mem_clone(m, &copy));
                ens_asha_mem_free(m);
                m = copy;
                ens_asha_decision_t again;
                ens_asha_mem_view(m, &v);
                ens_asha_decide(p, &v, &again);
                CHECK(memcmp(&again, &d, sizeof d) == 0);
            }
            if (d.action == ENS_ASHA_PROMOTE) {
                const ens_asha_rung_t *src = &v.rung[d.bracket][d.rung - 1];
                CHECK(src->cand_rank >= 0 && src->cand_rank < (int)floor(src->n / p->eta));
            }
            CHECK_OK(ens_asha_mem_commit(m, &d));
            /* a replayed commit of the same decision number is refused */
            CHECK_EQ_INT(ens_asha_mem_commit(m, &d), ENS_ERR_INVALID);
            if (d.action == ENS_ASHA_PROMOTE && d.config_index < 4096) {
                CHECK(!promoted[d.config_index][d.rung]);
                promoted[d.config_index][d.rung] = 1;
                ens_asha_mem_view(m, &v);
                const ens_asha_rung_t *src = &v.rung[d.bracket][d.rung - 1];
                const ens_asha_rung_t *dst = &v.rung[d.bracket][d.rung];
                /* synchronous SHA promotes exactly its top 1/eta; ASHA may promote more
                 * (a promoted trial can be overtaken later), never one outside the top */
                if (p->kind == ENS_SCHED_SHA)
                    CHECK(dst->entered <= (int)floor(src->n / p->eta));
                CHECK(dst->entered <= src->n);
            }
            log[n_log++] = d;
            pool.job[pool.n++] = d;
        }
        if (pool.n == 0)
            break;
        int i = (int)(ens_rng_next(&rng) % (uint64_t)pool.n);
        ens_asha_decision_t j = pool.job[i];
        pool.job[i] = pool.job[--pool.n];
        int ok = curve(j.config_index, j.to_epochs, seed) > 0.52; /* a few fail */
        CHECK_OK(ens_asha_mem_result(m, j.bracket, j.rung, j.trial_id, ok,
                                     curve(j.config_index, j.to_epochs, seed)));
    }
    /* at the end, every rung's top floor(n / eta) went up (the lower bound of rung sizes) */
    ens_asha_view_t v;
    ens_asha_mem_view(m, &v);
    for (int b = 0; b < ens_asha_n_brackets(p) && n_log < max_log; b++)
        for (int k = 0; k + 1 < ens_asha_n_rungs(p, b); k++)
            CHECK(v.rung[b][k + 1].entered >= (int)floor(v.rung[b][k].n / p->eta));
    ens_asha_mem_free(m);
    return n_log;
}

static void test_invariants(void) {
    static ens_asha_decision_t a[4096], b[4096];
    ens_sched_kind_t kinds[] = {ENS_SCHED_ASHA, ENS_SCHED_HYPERBAND, ENS_SCHED_SHA,
                                ENS_SCHED_RANDOM};
    for (int k = 0; k < 4; k++)
        for (uint64_t seed = 1; seed <= 5; seed++) {
            ens_asha_params_t p = params(kinds[k], 27, 3, 200);
            int na = simulate(&p, 1 + (int)(seed % 4) * 3, seed, a, 4096, 0);
            int nb = simulate(&p, 1 + (int)(seed % 4) * 3, seed, b, 4096, 7);
            CHECK_EQ_INT(na, nb);
            CHECK(memcmp(a, b, (size_t)na * sizeof a[0]) == 0);
            int news = 0, promos = 0;
            for (int i = 0; i < na; i++) {
                news += a[i].action == ENS_ASHA_NEW;
                promos += a[i].action == ENS_ASHA_PROMOTE;
                CHECK_EQ_INT(a[i].seq, i);
            }
            CHECK_EQ_INT(news, 200);
            if (kinds[k] == ENS_SCHED_RANDOM)
                CHECK_EQ_INT(promos, 0);
            else
                CHECK(promos > 0);
        }
}

static void test_brackets(void) {
    ens_asha_params_t p = params(ENS_SCHED_HYPERBAND, 9, 3, 100);
    ens_asha_mem_t *m = NULL;
    CHECK_OK(ens_asha_mem_new(&p, &m));
    ens_asha_decision_t d;
    double want[] = {1, 3, 9, 1, 3, 9};
    for (int i = 0; i < 6; i++) {
        step(m, &p, &d);
        CHECK_EQ_INT(d.action, ENS_ASHA_NEW);
        CHECK_EQ_INT(d.bracket, i % 3); /* round robin */
        CHECK_NEAR(d.to_epochs, want[i], 1e-12);
    }
    ens_asha_mem_free(m);
}

static void test_sha_and_budget(void) {
    ens_asha_params_t p = params(ENS_SCHED_SHA, 9, 3, 9);
    ens_asha_mem_t *m = NULL;
    CHECK_OK(ens_asha_mem_new(&p, &m));
    ens_asha_decision_t d;
    for (int i = 0; i < 9; i++) {
        step(m, &p, &d);
        CHECK_EQ_INT(d.action, ENS_ASHA_NEW);
    }
    for (int i = 0; i < 8; i++) {
        char id[ENS_ID_MAX];
        ens_asha_trial_id(i, id);
        ens_asha_mem_result(m, 0, 0, id, 1, 0.1 * i);
        step(m, &p, &d);
        CHECK_EQ_INT(d.action, ENS_ASHA_NONE); /* synchronous: waits for the whole rung */
    }
    ens_asha_mem_result(m, 0, 0, "t-00008", 0, 0); /* the last one fails */
    const char *order[] = {"t-00007", "t-00006"};
    for (int i = 0; i < 2; i++) {
        step(m, &p, &d);
        expect(&d, ENS_ASHA_PROMOTE, order[i], 1);
    }
    step(m, &p, &d); /* 8 OK results: floor(8/3) = 2 promotions only */
    CHECK_EQ_INT(d.action, ENS_ASHA_NONE);
    ens_asha_mem_free(m);

    /* epochs budget: random search, 5 epochs a trial, 12 epochs -> 2 trials */
    ens_asha_params_t r = params(ENS_SCHED_RANDOM, 5, 3, 100);
    r.max_epochs = 12;
    CHECK_OK(ens_asha_mem_new(&r, &m));
    step(m, &r, &d);
    step(m, &r, &d);
    CHECK_EQ_INT(d.action, ENS_ASHA_NEW);
    step(m, &r, &d);
    CHECK_EQ_INT(d.action, ENS_ASHA_NONE);
    ens_asha_mem_free(m);

    /* a deadline: a job longer than the time left is not issued, a new configuration trains
     * what is left when that is at least a third of its rung, and nothing below */
    ens_asha_params_t t = params(ENS_SCHED_ASHA, 9, 3, 100); /* rungs 1, 3, 9 */
    CHECK_OK(ens_asha_mem_new(&t, &m));
    for (int i = 0; i < 3; i++)
        step(m, &t, &d);
    for (int i = 0; i < 3; i++) {
        char id[ENS_ID_MAX];
        ens_asha_trial_id(i, id);
        ens_asha_mem_result(m, 0, 0, id, 1, 0.5 + 0.1 * i);
    }
    t.max_job_epochs = 1.5; /* the promotion (1 -> 3) no longer fits; a new rung-0 job does */
    step(m, &t, &d);
    CHECK_EQ_INT(d.action, ENS_ASHA_NEW);
    CHECK_NEAR(d.to_epochs, 1, 1e-12);
    ens_asha_mem_free(m);
    ens_asha_params_t rr = params(ENS_SCHED_RANDOM, 6, 3, 100);
    CHECK_OK(ens_asha_mem_new(&rr, &m));
    rr.max_job_epochs = 2.557;
    step(m, &rr, &d);
    CHECK_EQ_INT(d.action, ENS_ASHA_NEW);
    CHECK_NEAR(d.to_epochs, 2.55, 1e-12); /* shortened to the time left */
    rr.max_job_epochs = 1.9; /* under a third of 6 */
    step(m, &rr, &d);
    CHECK_EQ_INT(d.action, ENS_ASHA_NONE);
    ens_asha_mem_free(m);
}

/* The Redis backend decides exactly as the memory one, commits once, ignores redeliveries. */
static void test_redis(const char *url) {
    ens_redis_t *r = NULL;
    if (ens_redis_connect(url, &r, errstr, sizeof errstr)) {
        fprintf(stderr, "connect %s: %s\n", url, errstr);
        CHECK(0);
        return;
    }
    ens_state_t *st = NULL;
    if (ens_state_redis_new(r, NULL, &st)) {
        CHECK(0);
        ens_redis_free(r);
        return;
    }
    char study[64];
    snprintf(study, sizeof study, "test-asha-%d-%lld", (int)getpid(), (long long)time(NULL));
    ens_asha_params_t p = params(ENS_SCHED_HYPERBAND, 9, 3, 60);
    ens_asha_mem_t *m = NULL;
    CHECK_OK(ens_asha_mem_new(&p, &m));
    ens_rng_t rng;
    ens_rng_seed(&rng, 11);
    pool_t pool = {.n = 0};
    int steps = 0, trips = 0, have_next = 0;
    static ens_asha_view_t vm, vr, vnext;
    for (int guard = 0; guard < 10000; guard++) {
        while (pool.n < 5) {
            ens_asha_decision_t dm, dr;
            ens_asha_mem_view(m, &vm);
            CHECK_OK(ens_state_sched_asha_view(st, study, &p, &vr, &trips, errstr, sizeof errstr));
            CHECK(trips >= 1 && trips <= 2); /* 2 only when the script is loaded first */
            /* the view a step answered with is the state a fresh read sees */
            if (have_next)
                CHECK(memcmp(&vnext, &vr, sizeof vr) == 0);
            ens_asha_decide(&p, &vm, &dm);
            ens_asha_decide(&p, &vr, &dr);
            CHECK(memcmp(&dm, &dr, sizeof dm) == 0);
            if (dm.action == ENS_ASHA_NONE)
                break;
            int applied = 0;
            if (vr.version > 0) {
                /* decided from an older state: refused, answered with the current one */
                CHECK_OK(ens_state_sched_asha_commit(st, study, &p, &dr, vr.version - 1, "{}",
                                                     &applied, &vnext, errstr, sizeof errstr));
                CHECK_EQ_INT(applied, 0);
                CHECK(memcmp(&vnext, &vr, sizeof vr) == 0);
            }
            CHECK_OK(ens_state_sched_asha_commit(st, study, &p, &dr, vr.version, "{}", &applied,
                                                 &vnext, errstr, sizeof errstr));
            CHECK_EQ_INT(applied, 1);
            CHECK(vnext.decisions == vr.decisions + 1 && vnext.version == vr.version + 1);
            /* a replay of the same decision (crash after EXEC, or a resend) applies nothing */
            CHECK_OK(ens_state_sched_asha_commit(st, study, &p, &dr, -1, "{}", &applied, NULL,
                                                 errstr, sizeof errstr));
            CHECK_EQ_INT(applied, 0);
            have_next = 1;
            CHECK_OK(ens_asha_mem_commit(m, &dm));
            pool.job[pool.n++] = dm;
            steps++;
        }
        if (pool.n == 0)
            break;
        int i = (int)(ens_rng_next(&rng) % (uint64_t)pool.n);
        ens_asha_decision_t j = pool.job[i];
        pool.job[i] = pool.job[--pool.n];
        double score = curve(j.config_index, j.to_epochs, 3);
        int ok = score > 0.52, applied = 0;
        CHECK_OK(ens_asha_mem_result(m, j.bracket, j.rung, j.trial_id, ok, score));
        CHECK_OK(ens_state_sched_asha_result(st, study, &p, j.trial_id, ok, score, j.to_epochs, "m",
                                             ok ? NULL : "failed", &applied, &vnext, errstr,
                                             sizeof errstr));
        CHECK_EQ_INT(applied, 1);
        CHECK_OK(ens_state_sched_asha_result(st, study, &p, j.trial_id, ok, score, j.to_epochs, "m",
                                             NULL, &applied, NULL, errstr, sizeof errstr));
        CHECK_EQ_INT(applied, 0); /* redelivered result */
    }
    /* NOSCRIPT (a restarted server, SCRIPT FLUSH): loaded again (NOSCRIPT, LOAD, EVALSHA) */
    CHECK_OK(ens_redis_exec(r, errstr, sizeof errstr, "SCRIPT FLUSH"));
    CHECK_OK(ens_state_sched_asha_view(st, study, &p, &vr, &trips, errstr, sizeof errstr));
    CHECK_EQ_INT(trips, 3);
    CHECK(memcmp(&vnext, &vr, sizeof vr) == 0);
    CHECK_OK(ens_state_sched_asha_view(st, study, &p, &vr, &trips, errstr, sizeof errstr));
    CHECK_EQ_INT(trips, 1);
    CHECK(steps > 60);
    char pattern[128];
    ens_key(pattern, sizeof pattern, study, "*");
    ens_redis_reply_t *rep = ens_redis_command(r, errstr, sizeof errstr, "KEYS %s", pattern);
    for (size_t i = 0; rep && rep->type == ENS_REPLY_ARRAY && i < rep->elements; i++)
        ens_redis_exec(r, NULL, 0, "DEL %s", rep->element[i]->str);
    ens_redis_reply_free(rep);
    ens_asha_mem_free(m);
    ens_state_free(st);
    ens_redis_free(r);
}

/* The inflight records as a reader gets them: each (trial, record) pair that parses. */
static int inflight_of(const char *const *pairs, int n_pairs, ens_state_sched_inflight_t *out) {
    int n = 0;
    for (int i = 0; i < n_pairs; i++)
        if (ens_state_sched_inflight_parse(pairs[2 * i + 1], &out[n]))
            snprintf(out[n++].trial_id, ENS_ID_MAX, "%s", pairs[2 * i]);
    return n;
}

/* The inflight record every reader of the hash parses: one parser, one finder. */
static void test_inflight_record(void) {
    ens_state_sched_inflight_t j = {0}, list[2];
    const ens_state_sched_inflight_t *f;
    CHECK(ens_state_sched_inflight_parse("17 1 2 0.333333 1", &j));
    CHECK(j.seq == 17 && j.bracket == 1 && j.rung == 2 && j.from > 0.33 && j.to == 1.0);
    CHECK(!ens_state_sched_inflight_parse("17 1 2", &j)); /* a dispatched record is not one */
    CHECK(!ens_state_sched_inflight_parse(NULL, &j));
    CHECK(j.seq == 17); /* untouched on failure */
    const char *all[] = {"t-00001", "3 0 0 0 1", "t-00002", "9 0 1 1 3"};
    int n = inflight_of(all, 2, list);
    CHECK((f = ens_state_sched_inflight_find(list, n, "t-00002")) && f->seq == 9 && f->to == 3.0);
    CHECK((f = ens_state_sched_inflight_find(list, n, "t-00001")) && f->seq == 3);
    CHECK(!ens_state_sched_inflight_find(list, n, "t-00003"));
    all[3] = "garbage";
    n = inflight_of(all, 2, list);
    CHECK(!ens_state_sched_inflight_find(list, n, "t-00002"));
}

int main(void) {
    test_inflight_record();
    test_params();
    test_hand_worked();
    test_invariants();
    test_brackets();
    test_sha_and_budget();
    const char *url = check_env_file("redis.url");
    if (url)
        test_redis(url);
    else
        fprintf(stderr, "test_proposer_asha: no redis.url: Redis backend part skipped\n");
    return check_done("test_proposer_asha");
}
