/* test_events.c - event round trips, canonical form, fingerprints, schema resolution, bad input. */
#include <avro.h>
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "ensflow/events.h"
#include "schemas_gen.h"

/* --- canonical form and fingerprints ---------------------------------------------------------- */

/* Vectors from the Avro project's share/test/data/schema-tests.txt. */
static void test_canonical_vectors(void) {
    static const struct {
        const char *in, *canon;
        int64_t fp;
    } v[] = {
        {"\"null\"", "\"null\"", INT64_C(7195948357588979594)},
        {"{\"type\":\"int\"}", "\"int\"", INT64_C(8247732601305521295)},
        {"\"string\"", "\"string\"", INT64_C(-8142146995180207161)},
        {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]",
         INT64_C(5392556393470105090)},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
         "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(5916914534497305771)},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
         "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4616218487480524110)},
        {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", "
         "\"default\":\"true\"},"
         "{\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],"
         "\"type\":\"record\", \"name\":\"foo\"}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},"
         "{\"name\":\"f2\",\"type\":\"int\"}]}",
         INT64_C(-4860222112080293046)},
        {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", "
         "\"symbols\":[\"A1\", \"A2\"]}",
         "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}",
         INT64_C(-4448647247586288245)},
        {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", "
         "\"size\":32}",
         "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", INT64_C(-3064184465700546786)},
        {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}",
         "{\"type\":\"array\",\"items\":\"null\"}", INT64_C(-589620603366471059)},
        {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}",
         INT64_C(-8732877298790414990)},
        {"{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\", "
         "\"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
         "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":"
         "[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
         INT64_C(-1759257747318642341)},
    };
    CHECK(ens_avro_fingerprint64("\"int\"", 5) == UINT64_C(0x7275d51a3f395c8f));
    CHECK(ens_avro_fingerprint64("\"string\"", 8) == UINT64_C(0x8f014872634503c7));
    CHECK(ens_avro_fingerprint64("", 0) == UINT64_C(0xc15d213aa4d7a795));
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char *c = NULL, err[128] = "";
        CHECK_OK(ens_avro_canonical_form(v[i].in, &c, err, sizeof err));
        CHECK_STR(c, v[i].canon);
        if (c)
            CHECK(ens_avro_fingerprint64(c, strlen(c)) == (uint64_t)v[i].fp);
        free(c);
    }
}

static void test_canonical_handwritten(void) {
    const char *in =
        "{ \"type\": \"record\", \"name\": \"Thing\", \"namespace\": \"ensflow\", \"doc\": \"d\",\n"
        "  \"aliases\": [\"Old\"], \"fields\": [\n"
        "   {\"name\": \"at\", \"type\": {\"type\": \"long\", \"logicalType\": "
        "\"timestamp-millis\"},\n"
        "    \"doc\": \"ms\"},\n"
        "   {\"name\": \"why\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
        "   {\"name\": \"st\", \"type\": {\"symbols\": [\"A\", \"B\"], \"type\": \"enum\",\n"
        "    \"name\": \"St\"}},\n"
        "   {\"name\": \"st2\", \"type\": \"St\"},\n"
        "   {\"name\": \"kids\", \"type\": {\"type\": \"array\",\n"
        "    \"items\": {\"type\": \"record\",\n"
        "    \"name\": \"other.Kid\", \"fields\": [{\"name\": \"k\", \"type\": \"Kid\"}]}}},\n"
        "   {\"name\": \"m\", \"type\": {\"values\": {\"type\": \"fixed\", \"size\": 0016,\n"
        "    \"name\": \"F\"}, \"type\": \"map\"}}]}";
    char *c = NULL, err[128] = "";
    /* 0016 is not JSON: the parser must refuse it rather than guess */
    CHECK(ens_avro_canonical_form(in, &c, err, sizeof err) == ENS_ERR_INVALID);
    free(c);
    char fixed[2048];
    snprintf(fixed, sizeof fixed, "%s", in);
    char *z = strstr(fixed, "0016");
    memcpy(z, "  16", 4);
    CHECK_OK(ens_avro_canonical_form(fixed, &c, err, sizeof err));
    CHECK_STR(c, "{\"name\":\"ensflow.Thing\",\"type\":\"record\",\"fields\":["
                 "{\"name\":\"at\",\"type\":\"long\"},"
                 "{\"name\":\"why\",\"type\":[\"null\",\"string\"]},"
                 "{\"name\":\"st\",\"type\":{\"name\":\"ensflow.St\",\"type\":\"enum\","
                 "\"symbols\":[\"A\",\"B\"]}},"
                 "{\"name\":\"st2\",\"type\":\"ensflow.St\"},"
                 "{\"name\":\"kids\",\"type\":{\"type\":\"array\","
                 "\"items\":{\"name\":\"other.Kid\","
                 "\"type\":\"record\",\"fields\":[{\"name\":\"k\",\"type\":\"other.Kid\"}]}}},"
                 "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":{\"name\":\"ensflow.F\","
                 "\"type\":\"fixed\",\"size\":16}}}]}");
    free(c);
    CHECK(ens_avro_canonical_form("{\"type\":\"record\"}", &c, err, sizeof err) != ENS_OK);
    CHECK(ens_avro_canonical_form("{", &c, err, sizeof err) != ENS_OK);
}

/* --- round trips ---------------------------------------------------------------------------- */

static ens_event_t roundtrip(const ens_event_t *in) {
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256] = "";
    ens_event_t out;
    memset(&out, 0, sizeof out);
    ens_err_t rc = ens_event_encode(in, &buf, &len, err, sizeof err);
    CHECK_OK(rc);
    if (rc) {
        fprintf(stderr, "encode %s: %s\n", ens_event_type_name(in->type), err);
        return out;
    }
    CHECK(len > 10 && buf[0] == 0xC3 && buf[1] == 0x01);
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)buf[2 + i] << (8 * i);
    CHECK(fp == ens_event_fingerprint(in->type));
    rc = ens_event_decode(buf, len, &out, err, sizeof err);
    CHECK_OK(rc);
    if (rc)
        fprintf(stderr, "decode %s: %s\n", ens_event_type_name(in->type), err);
    free(buf);
    CHECK_EQ_INT(out.type, in->type);
    CHECK_STR(out.event_id, in->event_id);
    CHECK_EQ_INT(out.occurred_at, in->occurred_at);
    return out;
}

static char *dup(const char *s) {
    return strdup(s);
}

static void test_study_and_trials(void) {
    ens_event_t ev, out;
    ens_event_init(&ev, ENS_EV_STUDY_CREATED);
    ens_study_created_t *sc = &ev.u.study_created;
    snprintf(sc->study_id, sizeof sc->study_id, "s-0001");
    sc->dataset = dup("fashion-mnist");
    sc->search_space_json = dup("{\"lr\":[0.001,0.1]}");
    sc->n_trials = 64;
    sc->epochs = 2.5;
    sc->seed = INT64_C(1) << 40;
    sc->val_fraction = 0.2;
    sc->top_k = 5;
    out = roundtrip(&ev);
    const ens_study_created_t *o1 = &out.u.study_created;
    CHECK_STR(o1->study_id, "s-0001");
    CHECK_STR(o1->dataset, "fashion-mnist");
    CHECK_STR(o1->search_space_json, "{\"lr\":[0.001,0.1]}");
    CHECK_EQ_INT(o1->n_trials, 64);
    CHECK(o1->epochs == 2.5 && o1->val_fraction == 0.2);
    CHECK_EQ_INT(o1->seed, INT64_C(1) << 40);
    CHECK_EQ_INT(o1->top_k, 5);
    ens_event_free(&out);
    ens_event_free(&ev);

    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    ens_trial_job_t *tj = &ev.u.trial_job;
    snprintf(tj->study_id, sizeof tj->study_id, "s-0001");
    snprintf(tj->trial_id, sizeof tj->trial_id, "t-0007");
    tj->config_json = dup("{\"lr\":0.01,\"layers\":[\"conv\",\"relu\"]}");
    tj->dataset = dup("/data/idx");
    tj->val_fraction = 0.1;
    tj->seed = -42;
    tj->epochs = 8;
    tj->from_epoch = 4;
    tj->attempt = 2;
    out = roundtrip(&ev);
    const ens_trial_job_t *o2 = &out.u.trial_job;
    CHECK_STR(o2->study_id, "s-0001");
    CHECK_STR(o2->trial_id, "t-0007");
    CHECK_STR(o2->config_json, tj->config_json);
    CHECK_STR(o2->dataset, "/data/idx");
    CHECK(o2->val_fraction == 0.1 && o2->epochs == 8 && o2->from_epoch == 4);
    CHECK_EQ_INT(o2->seed, -42);
    CHECK_EQ_INT(o2->attempt, 2);
    ens_event_free(&out);
    ens_event_free(&ev);

    for (int failed = 0; failed < 2; failed++) {
        ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
        ens_trial_result_t *tr = &ev.u.trial_result;
        snprintf(tr->study_id, sizeof tr->study_id, "s-0001");
        snprintf(tr->trial_id, sizeof tr->trial_id, "t-0007");
        snprintf(tr->model_id, sizeof tr->model_id, "m-%061d", 7); /* 63 chars: the maximum */
        tr->status = failed ? ENS_TRIAL_FAILED : ENS_TRIAL_OK;
        tr->epochs_done = 8;
        tr->val_accuracy = 0.9013;
        tr->val_loss = 0.31;
        tr->train_seconds = 123.5;
        tr->error = failed ? dup("CUDA out of memory") : NULL;
        tr->train_samples_per_second = 5120.25;
        out = roundtrip(&ev);
        const ens_trial_result_t *o3 = &out.u.trial_result;
        CHECK_STR(o3->study_id, "s-0001");
        CHECK_STR(o3->trial_id, "t-0007");
        CHECK_STR(o3->model_id, tr->model_id);
        CHECK_EQ_INT(o3->status, tr->status);
        CHECK(o3->epochs_done == 8 && o3->val_accuracy == 0.9013 && o3->val_loss == 0.31);
        CHECK(o3->train_seconds == 123.5 && o3->train_samples_per_second == 5120.25);
        if (failed)
            CHECK_STR(o3->error, "CUDA out of memory");
        else
            CHECK(o3->error == NULL);
        ens_event_free(&out);
        ens_event_free(&ev);
    }

    ens_event_init(&ev, ENS_EV_MODEL_EVALUATED);
    ens_model_evaluated_t *me = &ev.u.model_evaluated;
    snprintf(me->study_id, sizeof me->study_id, "s-1");
    snprintf(me->trial_id, sizeof me->trial_id, "t-2");
    snprintf(me->model_id, sizeof me->model_id, "m-3");
    me->val_accuracy = 0.88;
    me->val_logloss = 0.4;
    me->n_params = 1234567;
    me->ms_per_sample = 0.05;
    me->batch_size = 64;
    me->memory_bytes = INT64_C(5) << 30;
    me->n_val = 6000;
    me->n_classes = 10;
    out = roundtrip(&ev);
    const ens_model_evaluated_t *o4 = &out.u.model_evaluated;
    CHECK_STR(o4->study_id, "s-1");
    CHECK_STR(o4->trial_id, "t-2");
    CHECK_STR(o4->model_id, "m-3");
    CHECK(o4->val_accuracy == 0.88 && o4->val_logloss == 0.4 && o4->ms_per_sample == 0.05);
    CHECK_EQ_INT(o4->n_params, 1234567);
    CHECK_EQ_INT(o4->batch_size, 64);
    CHECK_EQ_INT(o4->memory_bytes, INT64_C(5) << 30);
    CHECK_EQ_INT(o4->n_val, 6000);
    CHECK_EQ_INT(o4->n_classes, 10);
    ens_event_free(&out);
    ens_event_free(&ev);
}

static void make_front(ens_event_t *ev) {
    ens_event_init(ev, ENS_EV_ENSEMBLE_FRONT);
    ens_ensemble_front_t *ef = &ev->u.ensemble_front;
    snprintf(ef->study_id, sizeof ef->study_id, "s-1");
    snprintf(ef->front_id, sizeof ef->front_id, "f-9");
    ef->n_models = 12;
    ef->n_ensembles = 3;
    ef->ensembles = calloc(3, sizeof *ef->ensembles);
    for (int i = 0; i < 3; i++) {
        ens_ensemble_t *e = &ef->ensembles[i];
        snprintf(e->ensemble_id, sizeof e->ensemble_id, "e-%d", i);
        snprintf(e->method, sizeof e->method, i ? "topk" : "single");
        e->n_members = i + 1; /* the third has 3 members, the first 1 */
        e->members = calloc((size_t)e->n_members, sizeof *e->members);
        e->weights = calloc((size_t)e->n_members, sizeof *e->weights);
        for (int j = 0; j < e->n_members; j++) {
            snprintf(e->members[j], sizeof e->members[j], "m-%d-%d", i, j);
            e->weights[j] = 1.0 / e->n_members;
        }
        e->val_accuracy = 0.8 + i * 0.01;
        e->holdout_accuracy = 0.79 + i * 0.01;
        e->cost_ms_per_sample = 0.1 * (i + 1);
        e->memory_bytes = (int64_t)(i + 1) << 20;
        e->val_logloss = 0.25 + i / 8.0;
        e->holdout_logloss = 0.375 - i / 16.0;
    }
}

static void test_front_and_deploy(void) {
    ens_event_t ev, out;
    make_front(&ev);
    out = roundtrip(&ev);
    const ens_ensemble_front_t *a = &ev.u.ensemble_front, *b = &out.u.ensemble_front;
    CHECK_STR(b->study_id, "s-1");
    CHECK_STR(b->front_id, "f-9");
    CHECK_EQ_INT(b->n_models, 12);
    CHECK_EQ_INT(b->n_ensembles, 3);
    for (int i = 0; b->ensembles && i < 3; i++) {
        const ens_ensemble_t *x = &a->ensembles[i], *y = &b->ensembles[i];
        CHECK_STR(y->ensemble_id, x->ensemble_id);
        CHECK_STR(y->method, x->method);
        CHECK_EQ_INT(y->n_members, x->n_members);
        for (int j = 0; y->members && y->weights && j < x->n_members; j++) {
            CHECK_STR(y->members[j], x->members[j]);
            CHECK(y->weights[j] == x->weights[j]);
        }
        CHECK(y->val_accuracy == x->val_accuracy && y->holdout_accuracy == x->holdout_accuracy);
        CHECK(y->cost_ms_per_sample == x->cost_ms_per_sample);
        CHECK_EQ_INT(y->memory_bytes, x->memory_bytes);
        CHECK(y->val_logloss == x->val_logloss && y->holdout_logloss == x->holdout_logloss);
    }
    ens_event_free(&out);
    ens_event_free(&ev);

    ens_event_init(&ev, ENS_EV_DEPLOY_COMMAND);
    ens_deploy_command_t *dc = &ev.u.deploy_command;
    snprintf(dc->study_id, sizeof dc->study_id, "s-1");
    dc->max_cost_ms = 0.5;
    dc->max_memory_bytes = INT64_C(1) << 32;
    dc->min_accuracy = 0.85;
    out = roundtrip(&ev);
    const ens_deploy_command_t *d = &out.u.deploy_command;
    CHECK_STR(d->study_id, "s-1");
    CHECK_STR(d->ensemble_id, "");
    CHECK(d->max_cost_ms == 0.5 && d->min_accuracy == 0.85);
    CHECK_EQ_INT(d->max_memory_bytes, INT64_C(1) << 32);
    ens_event_free(&out);
    ens_event_free(&ev);

    ens_event_init(&ev, ENS_EV_PLACEMENT_PLAN);
    ens_placement_plan_t *pp = &ev.u.placement_plan;
    snprintf(pp->study_id, sizeof pp->study_id, "s-1");
    snprintf(pp->plan_id, sizeof pp->plan_id, "p-4");
    snprintf(pp->ensemble_id, sizeof pp->ensemble_id, "e-2");
    pp->version = 4;
    pp->n_members = 2;
    pp->members = calloc(2, sizeof *pp->members);
    for (int i = 0; i < 2; i++) {
        snprintf(pp->members[i].model_id, ENS_ID_MAX, "m-%d", i);
        pp->members[i].weight = i ? 0.25 : 0.75;
        snprintf(pp->members[i].device, ENS_ID_MAX, i ? "cuda:0" : "cpu");
        pp->members[i].instances = i + 1;
        pp->members[i].batch_size = 32 << i;
    }
    pp->predicted_throughput = 12000.5;
    out = roundtrip(&ev);
    const ens_placement_plan_t *q = &out.u.placement_plan;
    CHECK_STR(q->study_id, "s-1");
    CHECK_STR(q->plan_id, "p-4");
    CHECK_STR(q->ensemble_id, "e-2");
    CHECK_EQ_INT(q->version, 4);
    CHECK_EQ_INT(q->n_members, 2);
    for (int i = 0; q->members && i < 2; i++) {
        CHECK_STR(q->members[i].model_id, pp->members[i].model_id);
        CHECK(q->members[i].weight == pp->members[i].weight);
        CHECK_STR(q->members[i].device, pp->members[i].device);
        CHECK_EQ_INT(q->members[i].instances, i + 1);
        CHECK_EQ_INT(q->members[i].batch_size, 32 << i);
    }
    CHECK(q->predicted_throughput == 12000.5);
    ens_event_free(&out);
    ens_event_free(&ev);
}

static void make_request(ens_event_t *ev, int n, int64_t deadline) {
    ens_event_init(ev, ENS_EV_INFERENCE_REQUEST);
    ens_inference_request_t *r = &ev->u.inference_request;
    snprintf(r->request_id, sizeof r->request_id, "r-%d", n);
    r->n_shape = 3;
    r->shape[0] = 1;
    r->shape[1] = 28;
    r->shape[2] = n / 28;
    r->n_data = n;
    r->data = malloc((size_t)n * sizeof *r->data);
    for (int i = 0; i < n; i++)
        r->data[i] = (float)i / 255.0f - 1.5f;
    r->deadline_ms = deadline;
}

static void test_inference_and_dlq(void) {
    ens_event_t ev, out;
    for (int k = 0; k < 2; k++) {
        int64_t deadline = k ? ens_now_ms() + 250 : 0;
        make_request(&ev, 784, deadline);
        out = roundtrip(&ev);
        const ens_inference_request_t *r = &out.u.inference_request;
        CHECK_STR(r->request_id, "r-784");
        CHECK_EQ_INT(r->n_shape, 3);
        CHECK(r->shape[0] == 1 && r->shape[1] == 28 && r->shape[2] == 28);
        CHECK_EQ_INT(r->n_data, 784);
        CHECK(r->data && memcmp(r->data, ev.u.inference_request.data, 784 * sizeof(float)) == 0);
        CHECK_EQ_INT(r->deadline_ms, deadline);
        ens_event_free(&out);
        ens_event_free(&ev);
    }

    for (int k = 0; k < 2; k++) {
        ens_event_init(&ev, ENS_EV_INFERENCE_RESPONSE);
        ens_inference_response_t *r = &ev.u.inference_response;
        snprintf(r->request_id, sizeof r->request_id, "r-1");
        r->status = k ? ENS_RESPONSE_TIMEOUT : ENS_RESPONSE_OK;
        r->error = k ? dup("deadline passed") : NULL;
        r->predicted_class = k ? -1 : 7;
        r->n_probabilities = k ? 0 : 10;
        r->probabilities = k ? NULL : calloc(10, sizeof(float));
        for (int i = 0; i < r->n_probabilities; i++)
            r->probabilities[i] = 0.01f * (float)i;
        snprintf(r->ensemble_id, sizeof r->ensemble_id, "e-2");
        r->plan_version = 9;
        r->n_model_versions = 2;
        r->model_versions = calloc(2, sizeof *r->model_versions);
        snprintf(r->model_versions[0], ENS_ID_MAX, "m-1@3");
        snprintf(r->model_versions[1], ENS_ID_MAX, "m-2@1");
        out = roundtrip(&ev);
        const ens_inference_response_t *o = &out.u.inference_response;
        CHECK_STR(o->request_id, "r-1");
        CHECK_EQ_INT(o->status, r->status);
        if (k)
            CHECK_STR(o->error, "deadline passed");
        else
            CHECK(o->error == NULL);
        CHECK_EQ_INT(o->predicted_class, r->predicted_class);
        CHECK_EQ_INT(o->n_probabilities, r->n_probabilities);
        CHECK(k ? o->probabilities == NULL
                : (o->probabilities && !memcmp(o->probabilities, r->probabilities, 40)));
        CHECK_STR(o->ensemble_id, "e-2");
        CHECK_EQ_INT(o->plan_version, 9);
        CHECK_EQ_INT(o->n_model_versions, 2);
        if (o->model_versions) {
            CHECK_STR(o->model_versions[0], "m-1@3");
            CHECK_STR(o->model_versions[1], "m-2@1");
        }
        ens_event_free(&out);
        ens_event_free(&ev);
    }

    ens_event_init(&ev, ENS_EV_DEAD_LETTER);
    ens_dead_letter_t *dl = &ev.u.dead_letter;
    snprintf(dl->source_topic, sizeof dl->source_topic, "ensflow.trial.results");
    dl->partition = 3;
    dl->offset = INT64_C(1) << 35;
    snprintf(dl->service, sizeof dl->service, "selector");
    dl->reason = dup("bad marker");
    dl->payload_len = 5;
    dl->payload = malloc(5);
    memcpy(dl->payload, "\0\xff\x01zz", 5);
    out = roundtrip(&ev);
    const ens_dead_letter_t *o = &out.u.dead_letter;
    CHECK_STR(o->source_topic, "ensflow.trial.results");
    CHECK_EQ_INT(o->partition, 3);
    CHECK_EQ_INT(o->offset, INT64_C(1) << 35);
    CHECK_STR(o->service, "selector");
    CHECK_STR(o->reason, "bad marker");
    CHECK_EQ_INT(o->payload_len, 5);
    CHECK(o->payload && memcmp(o->payload, "\0\xff\x01zz", 5) == 0);
    ens_event_free(&out);
    ens_event_free(&ev);
}

/* --- messages written with Avro C directly ------------------------------------------------- */

static const char *schema_text(const char *file) {
    for (int i = 0; i < ens_schema_file_count; i++)
        if (strcmp(ens_schema_files[i].file, file) == 0)
            return ens_schema_files[i].json;
    return NULL;
}

static uint64_t file_fp(const char *file) {
    char *c = NULL;
    uint64_t fp = 0;
    if (ens_avro_canonical_form(schema_text(file), &c, NULL, 0) == ENS_OK)
        fp = ens_avro_fingerprint64(c, strlen(c));
    free(c);
    return fp;
}

static void set_str(avro_value_t *rec, const char *name, const char *s) {
    avro_value_t f;
    CHECK_OK(avro_value_get_by_name(rec, name, &f, NULL));
    CHECK_OK(avro_value_set_string(&f, s));
}

static void set_dbl(avro_value_t *rec, const char *name, double d) {
    avro_value_t f;
    CHECK_OK(avro_value_get_by_name(rec, name, &f, NULL));
    CHECK_OK(avro_value_set_double(&f, d));
}

/* v as a single-object message written with the schema in `file` (marker, its fingerprint,
 * the body); v, its iface and s are released. */
static uint8_t *frame_value(avro_value_t *v, avro_value_iface_t *iface, avro_schema_t s,
                            const char *file, size_t *len) {
    size_t n = 0;
    CHECK_OK(avro_value_sizeof(v, &n));
    uint8_t *buf = malloc(10 + n);
    uint64_t fp = file_fp(file);
    buf[0] = 0xC3;
    buf[1] = 0x01;
    for (int i = 0; i < 8; i++)
        buf[2 + i] = (uint8_t)(fp >> (8 * i));
    avro_writer_t w = avro_writer_memory((const char *)buf + 10, (int64_t)n);
    CHECK_OK(avro_value_write(w, v));
    avro_writer_free(w);
    avro_value_decref(v);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);
    *len = 10 + n;
    return buf;
}

/* Write a TrialResult with the schema in `file` (current or v1); study_id is given. */
static uint8_t *write_trial_result(const char *file, const char *study_id, size_t *len) {
    const char *json = schema_text(file);
    avro_schema_t s;
    CHECK(json != NULL);
    if (!json || avro_schema_from_json_length(json, strlen(json), &s)) {
        CHECK(!"schema parses");
        return NULL;
    }
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t v, f, br;
    CHECK_OK(avro_generic_value_new(iface, &v));
    set_str(&v, "event_id", "0b7e3f9a-1111-4222-8333-444455556666");
    CHECK_OK(avro_value_get_by_name(&v, "occurred_at", &f, NULL));
    CHECK_OK(avro_value_set_long(&f, INT64_C(1777777777777)));
    set_str(&v, "study_id", study_id);
    set_str(&v, "trial_id", "t-0003");
    set_str(&v, "model_id", "m-0003");
    CHECK_OK(avro_value_get_by_name(&v, "status", &f, NULL));
    CHECK_OK(avro_value_set_enum(&f, 1));
    set_dbl(&v, "epochs_done", 3);
    set_dbl(&v, "val_accuracy", 0.5);
    set_dbl(&v, "val_loss", 1.25);
    set_dbl(&v, "train_seconds", 60);
    CHECK_OK(avro_value_get_by_name(&v, "error", &f, NULL));
    CHECK_OK(avro_value_set_branch(&f, 1, &br));
    CHECK_OK(avro_value_set_string(&br, "diverged"));
    if (avro_value_get_by_name(&v, "train_samples_per_second", &f, NULL) == 0)
        CHECK_OK(avro_value_set_double(&f, 99));
    return frame_value(&v, iface, s, file, len);
}

static void test_schema_resolution(void) {
    uint64_t v1 = file_fp("TrialResult.v1.avsc"), v2 = file_fp("TrialResult.avsc");
    CHECK(v1 != 0 && v2 != 0 && v1 != v2);
    CHECK(v2 == ens_event_fingerprint(ENS_EV_TRIAL_RESULT));
    for (int old = 0; old < 2; old++) {
        size_t len = 0;
        uint8_t *buf = write_trial_result(old ? "TrialResult.v1.avsc" : "TrialResult.avsc",
                                          "s-77", &len);
        ens_event_t ev;
        char err[256] = "";
        ens_err_t rc = ens_event_decode(buf, len, &ev, err, sizeof err);
        CHECK_OK(rc);
        if (rc)
            fprintf(stderr, "decode v%d: %s\n", old ? 1 : 2, err);
        const ens_trial_result_t *t = &ev.u.trial_result;
        CHECK_EQ_INT(ev.type, ENS_EV_TRIAL_RESULT);
        CHECK_STR(ev.event_id, "0b7e3f9a-1111-4222-8333-444455556666");
        CHECK_EQ_INT(ev.occurred_at, INT64_C(1777777777777));
        CHECK_STR(t->study_id, "s-77");
        CHECK_STR(t->trial_id, "t-0003");
        CHECK_STR(t->model_id, "m-0003");
        CHECK_EQ_INT(t->status, ENS_TRIAL_FAILED);
        CHECK(t->epochs_done == 3 && t->val_accuracy == 0.5 && t->val_loss == 1.25);
        CHECK(t->train_seconds == 60);
        CHECK_STR(t->error, "diverged");
        CHECK(t->train_samples_per_second == (old ? 0.0 : 99.0));
        /* every strict prefix of a v1 message fails too */
        for (size_t n = 0; old && n < len; n++) {
            ens_event_t e2;
            CHECK(ens_event_decode(buf, n, &e2, NULL, 0) == ENS_ERR_AVRO);
        }
        ens_event_free(&ev);
        free(buf);
    }
}

/* Write an EnsembleFront with the schema in `file` (current or v1) as an older producer
 * would: two ensembles, the log-losses (v2) only where the schema has them. */
static uint8_t *write_front(const char *file, size_t *len) {
    const char *json = schema_text(file);
    avro_schema_t s;
    CHECK(json != NULL);
    if (!json || avro_schema_from_json_length(json, strlen(json), &s)) {
        CHECK(!"schema parses");
        return NULL;
    }
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t v, f, arr, e, a, x;
    CHECK_OK(avro_generic_value_new(iface, &v));
    set_str(&v, "event_id", "0b7e3f9a-1111-4222-8333-444455556666");
    CHECK_OK(avro_value_get_by_name(&v, "occurred_at", &f, NULL));
    CHECK_OK(avro_value_set_long(&f, INT64_C(1777777777777)));
    set_str(&v, "study_id", "s-5");
    set_str(&v, "front_id", "f-5");
    CHECK_OK(avro_value_get_by_name(&v, "n_models", &f, NULL));
    CHECK_OK(avro_value_set_int(&f, 9));
    CHECK_OK(avro_value_get_by_name(&v, "ensembles", &arr, NULL));
    for (int i = 0; i < 2; i++) {
        CHECK_OK(avro_value_append(&arr, &e, NULL));
        set_str(&e, "ensemble_id", i ? "topk2-n9" : "single1-n9");
        set_str(&e, "method", i ? "topk" : "single");
        CHECK_OK(avro_value_get_by_name(&e, "members", &a, NULL));
        for (int j = 0; j <= i; j++) {
            CHECK_OK(avro_value_append(&a, &x, NULL));
            CHECK_OK(avro_value_set_string(&x, j ? "m-1" : "m-0"));
        }
        CHECK_OK(avro_value_get_by_name(&e, "weights", &a, NULL));
        for (int j = 0; j <= i; j++) {
            CHECK_OK(avro_value_append(&a, &x, NULL));
            CHECK_OK(avro_value_set_double(&x, 1.0 / (i + 1)));
        }
        set_dbl(&e, "val_accuracy", 0.8 + i / 64.0);
        set_dbl(&e, "holdout_accuracy", 0.75 + i / 64.0);
        set_dbl(&e, "cost_ms_per_sample", 0.5 * (i + 1));
        CHECK_OK(avro_value_get_by_name(&e, "memory_bytes", &f, NULL));
        CHECK_OK(avro_value_set_long(&f, INT64_C(1) << (20 + i)));
        if (avro_value_get_by_name(&e, "val_logloss", &f, NULL) == 0)
            CHECK_OK(avro_value_set_double(&f, 0.5 - i / 32.0));
        if (avro_value_get_by_name(&e, "holdout_logloss", &f, NULL) == 0)
            CHECK_OK(avro_value_set_double(&f, 0.625 - i / 32.0));
    }
    return frame_value(&v, iface, s, file, len);
}

/* EnsembleFront v1 (before the log-losses, a change inside the nested Ensemble record) still
 * decodes: every ensemble's log-losses take the default, 0 (unknown). */
static void test_front_resolution(void) {
    uint64_t v1 = file_fp("EnsembleFront.v1.avsc"), v2 = file_fp("EnsembleFront.avsc");
    CHECK(v1 != 0 && v2 != 0 && v1 != v2);
    CHECK(v2 == ens_event_fingerprint(ENS_EV_ENSEMBLE_FRONT));
    for (int old = 0; old < 2; old++) {
        size_t len = 0;
        uint8_t *buf = write_front(old ? "EnsembleFront.v1.avsc" : "EnsembleFront.avsc", &len);
        ens_event_t ev;
        char err[256] = "";
        ens_err_t rc = buf ? ens_event_decode(buf, len, &ev, err, sizeof err) : ENS_ERR_INVALID;
        CHECK_OK(rc);
        if (rc) {
            fprintf(stderr, "decode front v%d: %s\n", old ? 1 : 2, err);
            free(buf);
            continue;
        }
        const ens_ensemble_front_t *fr = &ev.u.ensemble_front;
        CHECK_EQ_INT(ev.type, ENS_EV_ENSEMBLE_FRONT);
        CHECK_STR(fr->study_id, "s-5");
        CHECK_STR(fr->front_id, "f-5");
        CHECK_EQ_INT(fr->n_models, 9);
        CHECK_EQ_INT(fr->n_ensembles, 2);
        for (int i = 0; fr->ensembles && i < fr->n_ensembles && i < 2; i++) {
            const ens_ensemble_t *e = &fr->ensembles[i];
            CHECK_STR(e->ensemble_id, i ? "topk2-n9" : "single1-n9");
            CHECK_STR(e->method, i ? "topk" : "single");
            CHECK_EQ_INT(e->n_members, i + 1);
            for (int j = 0; e->members && e->weights && j < e->n_members; j++) {
                CHECK_STR(e->members[j], j ? "m-1" : "m-0");
                CHECK(e->weights[j] == 1.0 / (i + 1));
            }
            CHECK(e->val_accuracy == 0.8 + i / 64.0 && e->holdout_accuracy == 0.75 + i / 64.0);
            CHECK(e->cost_ms_per_sample == 0.5 * (i + 1));
            CHECK_EQ_INT(e->memory_bytes, INT64_C(1) << (20 + i));
            CHECK(e->val_logloss == (old ? 0.0 : 0.5 - i / 32.0));
            CHECK(e->holdout_logloss == (old ? 0.0 : 0.625 - i / 32.0));
        }
        /* a v1 message re-encodes as v2, with the defaults */
        uint8_t *again = NULL;
        size_t again_len = 0;
        CHECK_OK(ens_event_encode(&ev, &again, &again_len, err, sizeof err));
        ens_event_t ev2;
        if (again && ens_event_decode(again, again_len, &ev2, err, sizeof err) == ENS_OK) {
            CHECK(again[2] == (uint8_t)v2);
            CHECK(ev2.u.ensemble_front.n_ensembles == 2 &&
                  ev2.u.ensemble_front.ensembles[1].holdout_logloss ==
                      fr->ensembles[1].holdout_logloss);
            ens_event_free(&ev2);
        } else {
            CHECK(!"re-encoded front decodes");
        }
        free(again);
        /* every strict prefix of a v1 message fails too */
        for (size_t n = 0; old && n < len; n++) {
            ens_event_t e2;
            CHECK(ens_event_decode(buf, n, &e2, NULL, 0) == ENS_ERR_AVRO);
        }
        ens_event_free(&ev);
        free(buf);
    }
}

/* --- bad input -------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void expect_fail(const uint8_t *buf, size_t len, const char *errpart) {
    ens_event_t ev;
    char err[256] = "";
    CHECK(ens_event_decode(buf, len, &ev, err, sizeof err) == ENS_ERR_AVRO);
    if (errpart && !strstr(err, errpart)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, errpart);
        CHECK(!"error text");
    }
}

static void test_bad_input(void) {
    ens_event_t ev;
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    make_front(&ev);
    CHECK_OK(ens_event_encode(&ev, &buf, &len, err, sizeof err));
    ens_event_free(&ev);
    uint8_t *copy = malloc(len + 1);

    memcpy(copy, buf, len);
    copy[0] = 0xC2;
    expect_fail(copy, len, "bad marker");
    memcpy(copy, buf, len);
    copy[1] = 0x02;
    expect_fail(copy, len, "bad marker");
    memcpy(copy, buf, len);
    copy[5] ^= 0x40;
    expect_fail(copy, len, "unknown fingerprint 0x");
    expect_fail(buf, 9, "too short");
    expect_fail(NULL, 0, "too short");
    for (size_t n = 0; n < len; n++) /* every strict prefix */
        expect_fail(buf, n, NULL);
    memcpy(copy, buf, len);
    copy[len] = 0;
    expect_fail(copy, len + 1, "trailing");
    /* mutated messages: anything may happen but a crash, and success must free cleanly */
    for (int i = 0; i < 2000; i++) {
        memcpy(copy, buf, len);
        for (int k = 0, m = 1 + (int)(rnd() % 4); k < m; k++)
            copy[10 + rnd() % (len - 10)] = (uint8_t)rnd();
        if (ens_event_decode(copy, len, &ev, NULL, 0) == ENS_OK)
            ens_event_free(&ev);
    }
    free(copy);
    free(buf);

    /* 2000 random strings; most carry a valid header so the body decoder is exercised */
    uint8_t rbuf[512];
    int ok = 0;
    for (int i = 0; i < 2000; i++) {
        size_t n = rnd() % sizeof rbuf;
        for (size_t k = 0; k < n; k++)
            rbuf[k] = (uint8_t)rnd();
        if (i % 4 != 0 && n >= 10) {
            uint64_t fp = ens_event_fingerprint((ens_event_type_t)(rnd() % ENS_EV__COUNT));
            rbuf[0] = 0xC3;
            rbuf[1] = 0x01;
            for (int k = 0; k < 8; k++)
                rbuf[2 + k] = (uint8_t)(fp >> (8 * k));
        }
        if (ens_event_decode(rbuf, n, &ev, NULL, 0) == ENS_OK) {
            ok++;
            ens_event_free(&ev);
        }
    }
    fprintf(stderr, "random: %d of 2000 decoded\n", ok);

    /* huge length prefixes must be refused before anything is allocated */
    uint8_t huge[32] = {0xC3, 0x01};
    uint64_t fp = ens_event_fingerprint(ENS_EV_DEAD_LETTER);
    for (int k = 0; k < 8; k++)
        huge[2 + k] = (uint8_t)(fp >> (8 * k));
    memset(huge + 10, 0xfe, 8); /* event_id length: a 9-byte varint, about 2^62 */
    huge[18] = 0x7f;
    expect_fail(huge, sizeof huge, "body does not decode as DeadLetter");

    /* oversize string for a char[64] member: an error, not truncation */
    char longid[100];
    memset(longid, 'x', 99);
    longid[99] = '\0';
    buf = write_trial_result("TrialResult.avsc", longid, &len);
    expect_fail(buf, len, "study_id");
    free(buf);
    buf = write_trial_result("TrialResult.avsc", longid + 36, &len); /* 63: fits */
    CHECK_OK(ens_event_decode(buf, len, &ev, err, sizeof err));
    CHECK_EQ_INT(strlen(ev.u.trial_result.study_id), 63);
    ens_event_free(&ev);
    free(buf);

    /* encode refuses what the schema cannot carry */
    ens_event_init(&ev, ENS_EV_TRIAL_JOB);
    CHECK(ens_event_encode(&ev, &buf, &len, err, sizeof err) == ENS_ERR_INVALID);
    CHECK(strstr(err, "config_json") != NULL);
    ens_event_free(&ev);
    ens_event_init(&ev, ENS_EV_INFERENCE_REQUEST);
    ev.u.inference_request.n_shape = 9;
    CHECK(ens_event_encode(&ev, &buf, &len, err, sizeof err) == ENS_ERR_INVALID);
    ev.u.inference_request.n_shape = 1;
    ev.u.inference_request.n_data = 3; /* data is NULL */
    CHECK(ens_event_encode(&ev, &buf, &len, err, sizeof err) == ENS_ERR_INVALID);
    ev.u.inference_request.n_data = 0;
    memset(ev.u.inference_request.request_id, 'r', ENS_ID_MAX); /* no NUL */
    CHECK(ens_event_encode(&ev, &buf, &len, err, sizeof err) == ENS_ERR_INVALID);
    ens_event_free(&ev);
    ens_event_init(&ev, ENS_EV_TRIAL_RESULT);
    ev.u.trial_result.status = (ens_trial_status_t)5;
    CHECK(ens_event_encode(&ev, &buf, &len, err, sizeof err) == ENS_ERR_INVALID);
    ens_event_free(&ev);
    ens_event_free(NULL);
}

/* --- misc ------------------------------------------------------------------------------------ */

static void test_misc(void) {
    char a[37], b[37];
    ens_uuid(a);
    ens_uuid(b);
    CHECK_EQ_INT(strlen(a), 36);
    CHECK(strcmp(a, b) != 0);
    CHECK(a[8] == '-' && a[13] == '-' && a[14] == '4' && a[18] == '-' && a[23] == '-');
    CHECK(strchr("89ab", a[19]) != NULL);
    int64_t now = ens_now_ms();
    CHECK(now > INT64_C(1600000000000));
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_DEPLOY_COMMAND);
    CHECK_EQ_INT(strlen(ev.event_id), 36);
    CHECK(ev.occurred_at >= now && ev.occurred_at < now + 10000);
    ens_event_free(&ev);
    CHECK_STR(ens_event_type_name(ENS_EV_TRIAL_JOB), "TrialJob");
    CHECK_STR(ens_event_type_name(ENS_EV_DEAD_LETTER), "DeadLetter");
    for (int t = 0; t < ENS_EV__COUNT; t++) {
        CHECK(ens_event_fingerprint((ens_event_type_t)t) != 0);
        for (int u = 0; u < t; u++)
            CHECK(ens_event_fingerprint((ens_event_type_t)t) !=
                  ens_event_fingerprint((ens_event_type_t)u));
    }
}

static void *thread_main(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) {
        ens_event_t ev, out;
        uint8_t *buf;
        size_t len;
        make_request(&ev, 56, i);
        if (ens_event_encode(&ev, &buf, &len, NULL, 0) == ENS_OK) {
            if (ens_event_decode(buf, len, &out, NULL, 0) == ENS_OK) {
                const ens_inference_request_t *r = &out.u.inference_request;
                if (r->n_data != 56 || r->deadline_ms != i)
                    return (void *)1;
                ens_event_free(&out);
            } else {
                return (void *)1;
            }
            free(buf);
        } else {
            return (void *)1;
        }
        ens_event_free(&ev);
    }
    return NULL;
}

static void test_threads(void) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK_OK(pthread_create(&th[i], NULL, thread_main, NULL));
    for (int i = 0; i < 4; i++) {
        void *rv = (void *)1;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL);
    }
}

int main(void) {
    test_threads(); /* first: several threads race to initialise the schema table */
    test_canonical_vectors();
    test_canonical_handwritten();
    test_study_and_trials();
    test_front_and_deploy();
    test_inference_and_dlq();
    test_schema_resolution();
    test_front_resolution();
    test_bad_input();
    test_misc();
    return check_done("test_events");
}
