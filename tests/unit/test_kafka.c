/* test_kafka.c - produce/consume events on the harness broker, commits, dead letters. */
#include "ensflow/kafka.h"

#include <unistd.h>

#include "check.h"

#define N_EVENTS 20
#define DEADLINE_MS 30000

static char errstr[512];
static char study[64];
static ens_conf_t *conf;

/* Decode m into ev: 1 when it is a TrialResult of our study (the caller frees ev), else 0. */
static int our_result(const ens_kafka_msg_t *m, ens_event_t *ev) {
    size_t len = 0;
    const uint8_t *p = ens_kafka_msg_payload(m, &len);
    if (ens_event_decode(p, len, ev, errstr, sizeof errstr) != ENS_OK)
        return 0;
    if (ev->type == ENS_EV_TRIAL_RESULT && !strcmp(ev->u.trial_result.study_id, study))
        return 1;
    ens_event_free(ev);
    return 0;
}

/* Our study's trial number in a TrialResult message, or -1 for anyone else's message. */
static int our_trial(const ens_kafka_msg_t *m, int check) {
    ens_event_t ev;
    if (!our_result(m, &ev))
        return -1;
    int n = -1;
    const ens_trial_result_t *t = &ev.u.trial_result;
    if (sscanf(t->trial_id, "t-%d", &n) == 1 && check) {
        char buf[128], model[ENS_ID_MAX];
        snprintf(model, sizeof model, "model-%d", n);
        CHECK_STR(t->model_id, model);
        CHECK_EQ_INT(t->status, n % 2 ? ENS_TRIAL_FAILED : ENS_TRIAL_OK);
        CHECK_NEAR(t->val_accuracy, n / 100.0, 1e-12);
        CHECK_NEAR(t->epochs_done, 2.5, 0);
        if (n % 2) {
            snprintf(buf, sizeof buf, "boom-%d", n);
            CHECK_STR(t->error, buf);
        } else {
            CHECK(t->error == NULL);
        }
        CHECK(ens_kafka_msg_header(m, "event-type", buf, sizeof buf) == 0);
        CHECK_STR(buf, "TrialResult");
        CHECK(ens_kafka_msg_header(m, "trace-id", buf, sizeof buf) == 0);
        CHECK_STR(buf, ev.event_id);
        CHECK(ens_kafka_msg_header(m, "no-such-header", buf, sizeof buf) == -1);
    }
    ens_event_free(&ev);
    return n;
}

static ens_kafka_t *consumer(const char *group, const char *topic) {
    ens_kafka_t *c = NULL;
    const char *topics[] = {topic};
    CHECK_OK(ens_kafka_consumer_new(conf, group, topics, 1, 5, &c, errstr, sizeof errstr));
    return c;
}

static void produce_all(ens_kafka_t *p) {
    for (int i = 0; i < N_EVENTS; i++) {
        ens_event_t ev;
        ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
        ens_trial_result_t *t = &ev.u.trial_result;
        snprintf(t->study_id, sizeof t->study_id, "%s", study);
        snprintf(t->trial_id, sizeof t->trial_id, "t-%02d", i);
        snprintf(t->model_id, sizeof t->model_id, "model-%d", i);
        t->status = i % 2 ? ENS_TRIAL_FAILED : ENS_TRIAL_OK;
        t->epochs_done = 2.5;
        t->val_accuracy = i / 100.0;
        if (i % 2) {
            t->error = malloc(32);
            snprintf(t->error, 32, "boom-%d", i);
        }
        /* one key: one partition, so the order is kept */
        CHECK_OK(ens_kafka_produce_event(p, ENS_TOPIC_TRIAL_RESULTS, study, &ev, NULL, errstr,
                                         sizeof errstr));
        ens_event_free(&ev);
    }
    CHECK_OK(ens_kafka_flush(p, 10000, errstr, sizeof errstr));
}

static void test_consume_commit(ens_kafka_t *p, const char *group) {
    produce_all(p);
    ens_kafka_t *c = consumer(group, ENS_TOPIC_TRIAL_RESULTS);
    if (!c)
        return;
    int next = 0, partition = -1;
    int64_t last_offset = -1, deadline = ens_now_ms() + DEADLINE_MS;
    while (next < N_EVENTS && ens_now_ms() < deadline) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(c, 200, &m) != ENS_OK)
            continue;
        int n = our_trial(m, 1);
        if (n >= 0) {
            CHECK_EQ_INT(n, next); /* in order, nothing lost or repeated */
            CHECK_STR(ens_kafka_msg_topic(m), "ensflow.trial.results");
            if (partition < 0)
                partition = ens_kafka_msg_partition(m);
            CHECK_EQ_INT(ens_kafka_msg_partition(m), partition);
            CHECK(ens_kafka_msg_offset(m) > last_offset);
            last_offset = ens_kafka_msg_offset(m);
            next = n + 1;
            if (n == 9) /* commit past the first half only */
                CHECK_OK(ens_kafka_commit(c, m, 0, errstr, sizeof errstr));
        }
        ens_kafka_msg_free(m);
    }
    CHECK_EQ_INT(next, N_EVENTS);
    CHECK(ens_kafka_assignment_count(c) > 0);
    ens_kafka_free(c);

    /* the same group again: starts after the committed offset */
    c = consumer(group, ENS_TOPIC_TRIAL_RESULTS);
    if (!c)
        return;
    int first = -1, got = 0;
    deadline = ens_now_ms() + DEADLINE_MS;
    while (got < N_EVENTS - 10 && ens_now_ms() < deadline) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(c, 200, &m) != ENS_OK)
            continue;
        int n = our_trial(m, 0);
        if (n >= 0) {
            if (first < 0)
                first = n;
            CHECK(n >= 10);
            got++;
        }
        ens_kafka_msg_free(m);
    }
    CHECK_EQ_INT(first, 10);
    CHECK_EQ_INT(got, N_EVENTS - 10);
    ens_kafka_free(c);
}

static void test_dead_letter(ens_kafka_t *p, const char *group) {
    /* a message of ours to dead-letter: read it back with a fresh group */
    char reason[128];
    snprintf(reason, sizeof reason, "test reason for %s", study);
    ens_kafka_t *c = consumer(group, ENS_TOPIC_TRIAL_RESULTS);
    if (!c)
        return;
    ens_kafka_msg_t *orig = NULL;
    int64_t deadline = ens_now_ms() + DEADLINE_MS;
    while (!orig && ens_now_ms() < deadline) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(c, 200, &m) != ENS_OK)
            continue;
        if (our_trial(m, 0) == 3)
            orig = m;
        else
            ens_kafka_msg_free(m);
    }
    CHECK(orig != NULL);
    if (!orig) {
        ens_kafka_free(c);
        return;
    }
    CHECK_OK(ens_kafka_dead_letter(p, orig, "tester", reason, errstr, sizeof errstr));
    CHECK_OK(ens_kafka_flush(p, 10000, errstr, sizeof errstr));
    size_t olen = 0;
    const uint8_t *opay = ens_kafka_msg_payload(orig, &olen);
    char otrace[ENS_ID_MAX] = "";
    ens_kafka_msg_header(orig, "trace-id", otrace, sizeof otrace);

    char dgroup[160];
    snprintf(dgroup, sizeof dgroup, "%s-dlq", group);
    ens_kafka_t *d = consumer(dgroup, ENS_TOPIC_DLQ);
    int found = 0;
    deadline = ens_now_ms() + DEADLINE_MS;
    while (d && !found && ens_now_ms() < deadline) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(d, 200, &m) != ENS_OK)
            continue;
        size_t len = 0;
        const uint8_t *pay = ens_kafka_msg_payload(m, &len);
        ens_event_t ev;
        if (ens_event_decode(pay, len, &ev, errstr, sizeof errstr) != ENS_OK) {
            ens_kafka_msg_free(m);
            continue;
        }
        if (ev.type == ENS_EV_DEAD_LETTER && ev.u.dead_letter.reason &&
            !strcmp(ev.u.dead_letter.reason, reason)) {
            const ens_dead_letter_t *dl = &ev.u.dead_letter;
            found = 1;
            CHECK_STR(dl->source_topic, "ensflow.trial.results");
            CHECK_EQ_INT(dl->partition, ens_kafka_msg_partition(orig));
            CHECK_EQ_INT(dl->offset, ens_kafka_msg_offset(orig));
            CHECK_STR(dl->service, "tester");
            CHECK_EQ_INT(dl->payload_len, olen);
            CHECK(dl->payload && dl->payload_len == olen && !memcmp(dl->payload, opay, olen));
            char buf[128];
            CHECK(ens_kafka_msg_header(m, "event-type", buf, sizeof buf) == 0);
            CHECK_STR(buf, "DeadLetter");
            CHECK(ens_kafka_msg_header(m, "trace-id", buf, sizeof buf) == 0);
            CHECK_STR(buf, otrace); /* the trace goes on */
            /* the carried bytes are still the original event */
            ens_event_t inner;
            CHECK_OK(ens_event_decode(dl->payload, dl->payload_len, &inner, errstr,
                                      sizeof errstr));
            CHECK_STR(inner.u.trial_result.trial_id, "t-03");
            ens_event_free(&inner);
        }
        ens_event_free(&ev);
        ens_kafka_msg_free(m);
    }
    CHECK(found);
    ens_kafka_free(d);
    ens_kafka_msg_free(orig);
    ens_kafka_free(c);
}

/* Our study's marker of partition part (a TrialResult with trial id "m-<part>") in m, or -1. */
static int our_marker(const ens_kafka_msg_t *m) {
    ens_event_t ev;
    if (!our_result(m, &ev))
        return -1;
    int part = -1;
    if (sscanf(ev.u.trial_result.trial_id, "m-%d", &part) != 1)
        part = -1;
    ens_event_free(&ev);
    return part;
}

/* A tail consumer sees what is written after it returns, all of it and in order, on every
 * partition, and none of what came before (produce_all ran before: N_EVENTS of ours are
 * already in the topic). */
#define MAX_MARKERS 64
static void test_tail(ens_kafka_t *p, const char *group) {
    ens_kafka_t *t = NULL;
    CHECK_OK(ens_kafka_tail_new(conf, group, ENS_TOPIC_TRIAL_RESULTS, 5, 10000, &t, errstr,
                                sizeof errstr));
    if (!t)
        return;
    produce_all(p);
    /* one marker on each partition the producer knows (produce_to refuses the first beyond) */
    int parts = 0;
    for (; parts < MAX_MARKERS; parts++) {
        ens_event_t ev;
        ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
        snprintf(ev.u.trial_result.study_id, sizeof ev.u.trial_result.study_id, "%s", study);
        snprintf(ev.u.trial_result.trial_id, sizeof ev.u.trial_result.trial_id, "m-%d", parts);
        ens_err_t err = ens_kafka_produce_event_to(p, ENS_TOPIC_TRIAL_RESULTS, parts, study, &ev,
                                                   NULL, errstr, sizeof errstr);
        ens_event_free(&ev);
        if (err)
            break;
    }
    CHECK_OK(ens_kafka_flush(p, 10000, errstr, sizeof errstr));
    CHECK(parts >= 2); /* the harness topics have 2 */
    int next = 0, old = 0, markers = 0;
    char seen[MAX_MARKERS] = {0};
    for (int64_t t0 = ens_now_ms();
         (next < N_EVENTS || markers < parts) && ens_now_ms() - t0 < DEADLINE_MS;) {
        ens_kafka_msg_t *m = NULL;
        if (ens_kafka_poll(t, 100, &m) != ENS_OK)
            continue;
        int n = our_trial(m, 0), part = our_marker(m);
        if (n >= 0 && n != next)
            old++; /* out of order: an earlier copy */
        else if (n == next)
            next++;
        if (part >= 0 && part < parts && !seen[part]) {
            seen[part] = 1;
            markers++;
            CHECK_EQ_INT(ens_kafka_msg_partition(m), part);
        }
        ens_kafka_msg_free(m);
    }
    CHECK_EQ_INT(next, N_EVENTS);
    CHECK_EQ_INT(old, 0);
    CHECK_EQ_INT(markers, parts);
    ens_kafka_msg_t *m = NULL; /* and nothing after them */
    int more = 0;
    for (int64_t t0 = ens_now_ms(); ens_now_ms() - t0 < 500;)
        if (ens_kafka_poll(t, 50, &m) == ENS_OK) {
            more += our_trial(m, 0) >= 0 || our_marker(m) >= 0;
            ens_kafka_msg_free(m);
        }
    CHECK_EQ_INT(more, 0);
    ens_kafka_free(t);
    /* (a missing topic is not tried: the embedded broker creates a topic when a metadata
     * request names it, even from a consumer that does not allow auto-creation) */
}

int main(void) {
    const char *boot = check_env_file("bootstrap");
    if (!boot) {
        fprintf(stderr, "test_kafka: no bootstrap from the harness (ensflow-broker not built or "
                        "ENSFLOW_TEST_DIR unset); skipped\n");
        return 77;
    }
    long long stamp = (long long)ens_now_ms();
    snprintf(study, sizeof study, "kafka-%d-%lld", (int)getpid(), stamp);
    char flag[600], group[128];
    snprintf(flag, sizeof flag, "--kafka-bootstrap=%s", boot);
    char *argv[] = {"test", flag};
    static const ens_conf_def_t no_defs[] = {{NULL, 0, NULL, 0, 0, NULL}};
    CHECK_OK(ens_conf_new("test", no_defs, 2, argv, &conf, errstr, sizeof errstr));
    ens_kafka_t *p = NULL;
    if (conf)
        CHECK_OK(ens_kafka_producer_new(conf, &p, errstr, sizeof errstr));
    /* librdkafka's mock cluster (behind ensflow-broker) keeps a group in JOINING for
     * session.timeout.ms - 1 s after its last member leaves, so a second consumer of the same
     * group would wait ~44 s at the default. Consumers only: the producer already exists. */
    setenv("ENSFLOW_RDKAFKA_SESSION_TIMEOUT_MS", "6000", 1);
    if (p) {
        snprintf(group, sizeof group, "test-kafka-%d-%lld", (int)getpid(), stamp);
        test_consume_commit(p, group);
        snprintf(group, sizeof group, "test-kafka-dl-%d-%lld", (int)getpid(), stamp);
        test_dead_letter(p, group);
        snprintf(group, sizeof group, "test-kafka-tail-%d-%lld", (int)getpid(), stamp);
        test_tail(p, group);
    }
    ens_kafka_free(p);
    ens_conf_free(conf);
    return check_done("test_kafka");
}
