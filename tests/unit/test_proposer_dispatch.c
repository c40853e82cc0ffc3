/* test_proposer_dispatch.c - partition-aware job dispatch: the least-loaded live trainer (work
 * in epochs, then jobs) wins, stale and conflicting claims, the key-hash fallback, the
 * tie-break; on the harness broker, jobs produced to an explicit partition arrive there with
 * their key, and a consumer's assignment is what it publishes. */
#include <unistd.h>

#include "check.h"
#include "dispatch.h"
#include "ensflow/kafka.h"

#define NOW 1000000
#define TTL 15000

static ens_dispatch_t *state(void) {
    ens_dispatch_t *d = NULL;
    CHECK_OK(ens_dispatch_new(NOW, TTL, &d));
    return d;
}

static void add(ens_dispatch_t *d, const char *id, int64_t beat, const char *parts) {
    int32_t p[16];
    int n = 0;
    char rec[128];
    snprintf(rec, sizeof rec, "%lld %s", (long long)beat, parts);
    int64_t b = 0;
    CHECK_OK(ens_dispatch_record_parse(rec, &b, p, 16, &n));
    CHECK_EQ_INT(b, beat);
    CHECK_OK(ens_dispatch_add_trainer(d, id, b, p, n));
}

static void check_load(const ens_dispatch_t *d, const char *id, double work, int jobs) {
    double w = -1;
    int j = -1;
    CHECK_EQ_INT(ens_dispatch_trainer_load(d, id, &w, &j), 0);
    CHECK_NEAR(w, work, 1e-9);
    CHECK_EQ_INT(j, jobs);
}

static void test_least_loaded(void) {
    ens_dispatch_t *d = state();
    add(d, "t-a", NOW - 100, "0,1");
    add(d, "t-b", NOW - 200, "2,3");
    /* a: two 1/3-epoch jobs queued on 0; b: one 2-epoch promotion on 2 */
    ens_dispatch_add_job(d, 0, 1.0 / 3);
    ens_dispatch_add_job(d, 0, 1.0 / 3);
    ens_dispatch_add_job(d, 2, 2.0);
    check_load(d, "t-a", 2.0 / 3, 2);
    check_load(d, "t-b", 2.0, 1);
    const char *who = NULL;
    /* a has less work though more jobs; of its partitions the empty one */
    CHECK_EQ_INT(ens_dispatch_pick(d, 1.0 / 3, &who), 1);
    CHECK_STR(who, "t-a");
    CHECK_EQ_INT(ens_dispatch_pick(d, 1.0 / 3, &who), 1);
    CHECK_STR(who, "t-a");
    check_load(d, "t-a", 4.0 / 3, 4);
    /* its partitions now equal (2/3 epoch, 2 jobs each): the lower number */
    CHECK_EQ_INT(ens_dispatch_pick(d, 1.0, &who), 0);
    CHECK_STR(who, "t-a");
    /* a: 7/3 epochs, b: 2 */
    CHECK_EQ_INT(ens_dispatch_pick(d, 1.0 / 3, &who), 3);
    CHECK_STR(who, "t-b");
    check_load(d, "t-b", 7.0 / 3, 2);
    /* jobs of unknown partitions (sent by key) and out of range are not counted anywhere */
    ens_dispatch_add_job(d, ENS_DISPATCH_BY_KEY, 1);
    ens_dispatch_add_job(d, ENS_DISPATCH_MAX_PARTITIONS, 1);
    check_load(d, "t-a", 7.0 / 3, 5);
    check_load(d, "t-b", 7.0 / 3, 2);
    /* equal work: the fewer jobs win over the smaller id */
    CHECK_EQ_INT(ens_dispatch_pick(d, 0, &who), 3);
    CHECK_STR(who, "t-b");
    ens_dispatch_free(d);

    /* equal work in a different sum (1/3 + 1/3 + 1/3 against 1): the fewer jobs */
    d = state();
    add(d, "t-a", NOW, "0");
    add(d, "t-b", NOW, "1");
    for (int i = 0; i < 3; i++)
        ens_dispatch_add_job(d, 0, 1.0 / 3);
    ens_dispatch_add_job(d, 1, 1.0);
    CHECK_EQ_INT(ens_dispatch_pick(d, 1.0, &who), 1);
    CHECK_STR(who, "t-b");
    ens_dispatch_free(d);
}

/* A burst of picks from empty queues: one job per partition before any gets a second. */
static void test_spread(void) {
    ens_dispatch_t *d = state();
    add(d, "t-b", NOW, "1,3");
    add(d, "t-a", NOW, "0,2");
    int per_part[4] = {0, 0, 0, 0};
    for (int i = 0; i < 8; i++) {
        int32_t p = ens_dispatch_pick(d, 1.0, NULL);
        CHECK(p >= 0 && p < 4);
        if (p >= 0 && p < 4)
            per_part[p]++;
        if (i == 3)
            for (int k = 0; k < 4; k++)
                CHECK_EQ_INT(per_part[k], 1);
    }
    for (int k = 0; k < 4; k++)
        CHECK_EQ_INT(per_part[k], 2);
    check_load(d, "t-a", 4.0, 4);
    check_load(d, "t-b", 4.0, 4);
    ens_dispatch_free(d);
}

static void test_stale_and_conflicts(void) {
    ens_dispatch_t *d = state();
    /* a dead trainer's old record: never chosen, though its partitions are empty */
    add(d, "t-dead", NOW - TTL - 1, "4,5");
    add(d, "t-live", NOW - 10, "0");
    ens_dispatch_add_job(d, 0, 1);
    ens_dispatch_add_job(d, 0, 1);
    const char *who = NULL;
    CHECK_EQ_INT(ens_dispatch_pick(d, 1, &who), 0);
    CHECK_STR(who, "t-live");
    CHECK_EQ_INT(ens_dispatch_trainer_load(d, "t-dead", NULL, NULL), -1);
    ens_dispatch_free(d);

    /* a rebalance between two beats: the survivor's newer record takes the partitions that
     * the killed trainer (still within the ttl) claims too */
    d = state();
    add(d, "t-killed", NOW - 3000, "0,1");
    add(d, "t-survivor", NOW - 500, "0,1,2,3");
    CHECK_EQ_INT(ens_dispatch_trainer_load(d, "t-killed", NULL, NULL), -1);
    check_load(d, "t-survivor", 0, 0);
    ens_dispatch_add_job(d, 1, 1); /* queued on the killed trainer's old partition: survivor's */
    check_load(d, "t-survivor", 1, 1);
    CHECK_EQ_INT(ens_dispatch_pick(d, 1, &who), 0);
    CHECK_STR(who, "t-survivor");
    ens_dispatch_free(d);

    /* the same in the other order, and an equal beat going to the smaller id */
    d = state();
    add(d, "t-survivor", NOW - 500, "0,1,2,3");
    add(d, "t-killed", NOW - 3000, "0,1");
    add(d, "t-b", NOW - 500, "3");
    add(d, "t-a", NOW - 500, "3");
    CHECK_EQ_INT(ens_dispatch_trainer_load(d, "t-killed", NULL, NULL), -1);
    CHECK_EQ_INT(ens_dispatch_trainer_load(d, "t-b", NULL, NULL), -1);
    check_load(d, "t-a", 0, 0);
    ens_dispatch_add_job(d, 3, 1);
    check_load(d, "t-a", 1, 1);
    ens_dispatch_free(d);
}

static void test_fallback(void) {
    const char *who = "unset";
    /* nobody has published partitions */
    ens_dispatch_t *d = state();
    CHECK_EQ_INT(ens_dispatch_pick(d, 1, &who), ENS_DISPATCH_BY_KEY);
    CHECK(who == NULL);
    /* a trainer still joining the group owns none */
    add(d, "t-joining", NOW, "-");
    CHECK_EQ_INT(ens_dispatch_pick(d, 1, &who), ENS_DISPATCH_BY_KEY);
    /* every record stale */
    add(d, "t-old", NOW - TTL - 5000, "0,1,2,3");
    CHECK_EQ_INT(ens_dispatch_pick(d, 1, &who), ENS_DISPATCH_BY_KEY);
    CHECK(who == NULL);
    ens_dispatch_free(d);
    CHECK_EQ_INT(ens_dispatch_pick(NULL, 1, &who), ENS_DISPATCH_BY_KEY);
    ens_dispatch_free(NULL);
}

/* The choice depends on the records, not the order they were read in. */
static void test_deterministic(void) {
    static const char *ids[3] = {"host-31", "host-112", "host-7"};
    static const char *parts[3] = {"0,5", "1,4", "2,3"};
    int32_t first[12];
    for (int order = 0; order < 3; order++) {
        ens_dispatch_t *d = state();
        for (int i = 0; i < 3; i++) {
            int k = (i + order) % 3;
            add(d, ids[k], NOW - 1, parts[k]);
        }
        ens_dispatch_add_job(d, 4, 1);
        for (int j = 0; j < 12; j++) {
            int32_t p = ens_dispatch_pick(d, 1, NULL);
            if (order == 0)
                first[j] = p;
            else
                CHECK_EQ_INT(p, first[j]);
        }
        ens_dispatch_free(d);
    }
    /* all empty but host-112's partition 4: "host-112" < "host-31" < "host-7", so host-31
     * (load 0) comes first, onto its lower partition; then host-7; then host-112's empty 1 */
    CHECK_EQ_INT(first[0], 0);
    CHECK_EQ_INT(first[1], 2);
    CHECK_EQ_INT(first[2], 1);
}

static void test_records(void) {
    int32_t p[4];
    int n = -1;
    int64_t beat = 0;
    const int32_t three[] = {0, 2, 13};
    /* the records test_trainer_resume has ens_trainer_parts_record write */
    CHECK_OK(ens_dispatch_record_parse("1234 0,2,13", &beat, p, 4, &n));
    CHECK_EQ_INT(beat, 1234);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(p[0], 0);
    CHECK_EQ_INT(p[1], 2);
    CHECK_EQ_INT(p[2], 13);
    CHECK_OK(ens_dispatch_record_parse("99 -", &beat, p, 4, &n));
    CHECK_EQ_INT(beat, 99);
    CHECK_EQ_INT(n, 0);
    static const char *bad[] = {
        "",       "abc",  "12",           "12 ",    "12 1,,2",       "12 -1",
        "12 1,x", "-5 1", "12 1,2,3,4,5", "12 1 2", "12 99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (ens_dispatch_record_parse(bad[i], &beat, p, 4, &n) != ENS_ERR_INVALID) {
            fprintf(stderr, "record \"%s\" accepted\n", bad[i]);
            check_failures++;
        }
    ens_dispatch_t *d = state();
    const int32_t out_of_range[] = {ENS_DISPATCH_MAX_PARTITIONS};
    CHECK_EQ_INT(ens_dispatch_add_trainer(d, "t", NOW, out_of_range, 1), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_dispatch_add_trainer(d, "", NOW, three, 1), ENS_ERR_INVALID);
    CHECK_EQ_INT(ens_dispatch_pick(d, 1, NULL), ENS_DISPATCH_BY_KEY);
    ens_dispatch_free(d);
    CHECK_EQ_INT(ens_dispatch_new(NOW, 0, &d), ENS_ERR_INVALID);
}

/* On the harness broker: a lone member of a fresh group is assigned every partition of
 * trial.jobs and says so; jobs produced to explicit partitions arrive there, key intact. */
static void test_broker(const char *boot) {
    char errstr[512], flag[600], group[128], key[64], study[64];
    long long stamp = (long long)ens_now_ms();
    snprintf(flag, sizeof flag, "--kafka-bootstrap=%s", boot);
    snprintf(group, sizeof group, "test-dispatch-%d-%lld", (int)getpid(), stamp);
    snprintf(study, sizeof study, "dispatch-%d-%lld", (int)getpid(), stamp);
    snprintf(key, sizeof key, "t-%05d", (int)(stamp % 100000));
    char *argv[] = {"test", flag};
    static const ens_conf_def_t no_defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    setenv("ENSFLOW_RDKAFKA_SESSION_TIMEOUT_MS", "6000", 1);
    ens_conf_t *conf = NULL;
    ens_kafka_t *prod = NULL, *cons = NULL;
    CHECK_OK(ens_conf_new("test", no_defs, 2, argv, &conf, errstr, sizeof errstr));
    if (!conf)
        return;
    const char *topics[] = {ENS_TOPIC_TRIAL_JOBS};
    CHECK_OK(ens_kafka_producer_new(conf, &prod, errstr, sizeof errstr));
    CHECK_OK(ens_kafka_consumer_new(conf, group, topics, 1, 5, &cons, errstr, sizeof errstr));
    int32_t parts[64];
    int n = 0;
    CHECK_EQ_INT(ens_kafka_assignment_partitions(prod, ENS_TOPIC_TRIAL_JOBS, parts, 64, &n, errstr,
                                                 sizeof errstr),
                 ENS_ERR_INVALID);
    if (!prod || !cons) {
        ens_kafka_free(cons);
        ens_kafka_free(prod);
        ens_conf_free(conf);
        return;
    }
    /* joining: poll until the group assigns (a lone member gets every partition) */
    for (int i = 0; i < 300 && n == 0; i++) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(cons, 100, &m) == ENS_OK)
            ens_kafka_msg_free(m);
        CHECK_OK(ens_kafka_assignment_partitions(cons, ENS_TOPIC_TRIAL_JOBS, parts, 64, &n, errstr,
                                                 sizeof errstr));
    }
    CHECK(n >= 2);
    CHECK_EQ_INT(n, ens_kafka_assignment_count(cons));
    for (int i = 1; i < n; i++)
        CHECK(parts[i - 1] < parts[i]);
    int n_all = n, n_one = -1;
    CHECK_EQ_INT(ens_kafka_assignment_partitions(cons, ENS_TOPIC_TRIAL_JOBS, parts, 1, &n_one,
                                                 errstr, sizeof errstr),
                 n_all > 1 ? ENS_ERR_INVALID : ENS_OK);
    CHECK_OK(ens_kafka_assignment_partitions(cons, ENS_TOPIC_TRIAL_JOBS, parts, 64, &n, errstr,
                                             sizeof errstr));
    if (n < 2) {
        ens_kafka_free(cons);
        ens_kafka_free(prod);
        ens_conf_free(conf);
        return;
    }
    /* the same key to the first and the last partition: one of them is not the key's hash */
    int32_t want[2] = {parts[0], parts[n - 1]};
    for (int i = 0; i < 2; i++) {
        ens_event_t ev;
        ens_event_init(&ev, ENS_EV_TRIAL_JOB);
        snprintf(ev.u.trial_job.study_id, ENS_ID_MAX, "%s", study);
        snprintf(ev.u.trial_job.trial_id, ENS_ID_MAX, "%s", key);
        ev.u.trial_job.config_json = strdup("{}");
        ev.u.trial_job.dataset = strdup("none");
        ev.u.trial_job.epochs = 1 + i;
        CHECK_OK(ens_kafka_produce_event_to(prod, ENS_TOPIC_TRIAL_JOBS, want[i], key, &ev, NULL,
                                            errstr, sizeof errstr));
        ens_event_free(&ev);
    }
    CHECK_EQ_INT(ens_kafka_produce_to(prod, ENS_TOPIC_TRIAL_JOBS, -2, key, "x", 1, NULL, NULL,
                                      errstr, sizeof errstr),
                 ENS_ERR_INVALID);
    CHECK_OK(ens_kafka_flush(prod, 10000, errstr, sizeof errstr));
    int got = 0;
    for (int i = 0; i < 300 && got < 2; i++) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(cons, 100, &m) != ENS_OK)
            continue;
        size_t len = 0, klen = 0;
        const uint8_t *payload = ens_kafka_msg_payload(m, &len);
        const char *k = ens_kafka_msg_key(m, &klen);
        ens_event_t ev;
        if (ens_event_decode(payload, len, &ev, errstr, sizeof errstr) == ENS_OK) {
            if (ev.type == ENS_EV_TRIAL_JOB && !strcmp(ev.u.trial_job.study_id, study)) {
                int which = ev.u.trial_job.epochs > 1.5;
                CHECK_EQ_INT(ens_kafka_msg_partition(m), want[which]);
                CHECK(k && klen == strlen(key) && !memcmp(k, key, klen));
                got++;
            }
            ens_event_free(&ev);
        }
        ens_kafka_msg_free(m);
    }
    CHECK_EQ_INT(got, 2);
    ens_kafka_free(cons);
    ens_kafka_free(prod);
    ens_conf_free(conf);
}

int main(void) {
    test_least_loaded();
    test_spread();
    test_stale_and_conflicts();
    test_fallback();
    test_deterministic();
    test_records();
    const char *boot = check_env_file("bootstrap");
    if (boot)
        test_broker(boot);
    else
        fprintf(stderr, "test_proposer_dispatch: no bootstrap from the harness: broker part "
                        "skipped\n");
    return check_done("test_proposer_dispatch");
}
