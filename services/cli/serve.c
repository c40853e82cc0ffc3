/* serve.c - `ensflow deploy` and `ensflow predict`. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "ensflow/data.h"
#include "ensflow/ensemble.h"
#include "ensflow/log.h"
#include "ensflow/inference.h"

int cli_deploy_run(const ens_conf_t *conf, const ens_deploy_command_t *cmd_in, double timeout_s,
                   ens_event_t *plan_out) {
    char errstr[512];
    ens_redis_t *r = NULL;
    ens_state_t *st = cli_state_open(conf, &r);
    if (!st)
        return 1;
    ens_event_t front, ev;
    if (cli_wait_front(st, cmd_in->study_id, 30, &front)) {
        cli_state_close(st, r);
        return 1;
    }
    /* choose here with the placer's own rule, so that a bad constraint is reported now */
    int idx = 0;
    if (ens_ensemble_choose_front(&front.u.ensemble_front, cmd_in, &idx, errstr,
                                  sizeof errstr)) {
        fprintf(stderr, "ensflow deploy: %s\n", errstr);
        ens_event_free(&front);
        cli_state_close(st, r);
        return 2;
    }
    ens_event_init(&ev, ENS_EV_DEPLOY_COMMAND);
    ev.u.deploy_command = *cmd_in;
    snprintf(ev.u.deploy_command.ensemble_id, ENS_ID_MAX, "%s",
             front.u.ensemble_front.ensembles[idx].ensemble_id);
    fprintf(stderr, "ensflow: deploying %s (%d members, holdout accuracy %.4f)\n",
            ev.u.deploy_command.ensemble_id,
            (int)front.u.ensemble_front.ensembles[idx].n_members,
            front.u.ensemble_front.ensembles[idx].holdout_accuracy);
    ens_event_free(&front);
    ens_kafka_t *p = NULL;
    ens_err_t err = ens_kafka_producer_new(conf, &p, errstr, sizeof errstr);
    if (!err)
        err = ens_kafka_produce_event(p, ENS_TOPIC_DEPLOY_COMMANDS, cmd_in->study_id, &ev, NULL,
                                      errstr, sizeof errstr);
    if (!err)
        err = ens_kafka_flush(p, 15000, errstr, sizeof errstr);
    ens_kafka_free(p);
    if (err) {
        fprintf(stderr, "ensflow deploy: %s\n", errstr);
        cli_state_close(st, r);
        return 1;
    }
    /* the placer stores the plan under the command's id; a group then says it serves it */
    int rc = 3;
    double t0 = cli_now();
    int have_plan = 0;
    while (cli_now() - t0 < timeout_s) {
        if (!have_plan &&
            ens_state_deploy_get(st, cmd_in->study_id, ev.event_id, plan_out, NULL, 0) == ENS_OK)
            have_plan = 1;
        if (have_plan) {
            int64_t served = 0;
            if (ens_state_serving_newest(st, cmd_in->study_id, &served, NULL, 0) == ENS_OK &&
                served >= plan_out->u.placement_plan.version)
                rc = 0;
            if (rc == 0)
                break;
        }
        usleep(100000);
    }
    if (rc == 0)
        fprintf(stderr, "ensflow: plan %s (version %lld) is served\n",
                plan_out->u.placement_plan.plan_id,
                (long long)plan_out->u.placement_plan.version);
    else {
        fprintf(stderr, "ensflow deploy: %s after %.0f s (see the placer and inference logs)\n",
                have_plan ? "no inference group serves the plan" : "no plan", timeout_s);
        if (have_plan)
            ens_event_free(plan_out);
    }
    cli_state_close(st, r);
    return rc;
}

int cli_deploy(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"ensemble", ENS_CONF_STR, "", 0, 0, "ensemble id of the front (empty = choose)"},
        {"max-cost", ENS_CONF_DOUBLE, "0", 0, 1e9, "most ms per sample (0 = no limit)"},
        {"max-memory", ENS_CONF_DOUBLE, "0", 0, 1e9, "most MB of memory (0 = no limit)"},
        {"min-accuracy", ENS_CONF_DOUBLE, "0", 0, 1, "least holdout accuracy (0 = none)"},
        {"timeout", ENS_CONF_DOUBLE, "60", 1, 1e6, "seconds to wait until it is served"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = ens_svc_conf("ensflow deploy", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    if (ens_conf_positional_count(conf) != 1) {
        fprintf(stderr, "usage: ensflow deploy STUDY [--ensemble ID] [--max-cost MS] "
                        "[--max-memory MB] [--min-accuracy A]\n");
        ens_conf_free(conf);
        return 2;
    }
    ens_deploy_command_t cmd = {0};
    snprintf(cmd.study_id, sizeof cmd.study_id, "%s", ens_conf_positional(conf, 0));
    snprintf(cmd.ensemble_id, sizeof cmd.ensemble_id, "%s", ens_conf_str(conf, "ensemble"));
    cmd.max_cost_ms = ens_conf_double(conf, "max-cost");
    cmd.max_memory_bytes = (int64_t)(ens_conf_double(conf, "max-memory") * 1e6);
    cmd.min_accuracy = ens_conf_double(conf, "min-accuracy");
    ens_event_t plan;
    rc = cli_deploy_run(conf, &cmd, ens_conf_double(conf, "timeout"), &plan);
    if (rc == 0) {
        const ens_placement_plan_t *pl = &plan.u.placement_plan;
        printf("plan %s: ensemble %s, version %lld, predicted %.0f samples/s\n", pl->plan_id,
               pl->ensemble_id, (long long)pl->version, pl->predicted_throughput);
        for (int i = 0; i < pl->n_members; i++)
            printf("  %-16s weight %.4f on %s x%d batch %d\n", pl->members[i].model_id,
                   pl->members[i].weight, pl->members[i].device, (int)pl->members[i].instances,
                   (int)pl->members[i].batch_size);
        ens_event_free(&plan);
    }
    ens_conf_free(conf);
    return rc;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* 1 when id (len bytes) is one of this run's: "<first 8 of run>-..." (its requests and its
 * probe). */
static int run_id(const char *id, size_t len, const char *run) {
    return len >= 9 && memcmp(id, run, 8) == 0 && id[8] == '-';
}

/* 1 when m is keyed as an answer to another run: responses are keyed by request id (README,
 * "Delivery"). Why: other clients' answers arrive on the same topic while this run streams,
 * and decoding them costs CPU this run's timing would count. Unkeyed messages are decoded. */
static int foreign_answer(const ens_kafka_msg_t *m, const char *run) {
    size_t len;
    const char *key = ens_kafka_msg_key(m, &len);
    return key && !run_id(key, len, run);
}

/* Poll one message: 1 with *ev decoded, an answer of this run's (the caller frees it); 0 when
 * it was another run's answer or undecodable; -1 when none came within timeout_ms. */
static int poll_answer(ens_kafka_t *c, const char *run, int timeout_ms, ens_event_t *ev) {
    char errstr[256];
    ens_kafka_msg_t *m = NULL;
    if (ens_kafka_poll(c, timeout_ms, &m) != ENS_OK)
        return -1;
    size_t len;
    const uint8_t *pl = ens_kafka_msg_payload(m, &len);
    int ours = !foreign_answer(m, run) &&
               ens_event_decode(pl, len, ev, errstr, sizeof errstr) == ENS_OK;
    ens_kafka_msg_free(m);
    return ours;
}

/* Send one request and wait for its answer. */
static int probe(ens_kafka_t *p, ens_kafka_t *c, const char *run, const float *x, int32_t dim,
                 double timeout_s) {
    char errstr[256];
    ens_event_t req;
    ens_event_init(&req, ENS_EV_INFERENCE_REQUEST);
    ens_inference_request_t *q = &req.u.inference_request;
    snprintf(q->request_id, sizeof q->request_id, "%.8s-probe", run);
    q->n_shape = 1;
    q->shape[0] = q->n_data = dim;
    q->data = (float *)x; /* borrowed */
    ens_err_t err = ens_kafka_produce_event(p, ENS_TOPIC_INFERENCE_REQUESTS, q->request_id, &req,
                                            NULL, errstr, sizeof errstr);
    if (!err)
        err = ens_kafka_flush(p, 10000, errstr, sizeof errstr);
    int rc = 1;
    for (double t0 = cli_now(); !err && rc && cli_now() - t0 < timeout_s;) {
        ens_event_t ev;
        if (poll_answer(c, run, 100, &ev) != 1)
            continue;
        rc = !(ev.type == ENS_EV_INFERENCE_RESPONSE &&
               !strcmp(ev.u.inference_response.request_id, q->request_id));
        ens_event_free(&ev);
    }
    q->data = NULL;
    ens_event_free(&req);
    return rc;
}

/* CPU seconds of this process (all threads: librdkafka's included) so far. */
static double cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* predict --rate: requests per second, 0 = as fast as the window allows; --linger: seconds
 * to keep listening after the last first answer, so that late duplicates are counted */
static double g_rate, g_linger;

/* Count a first answer under the plan version that gave it. */
static void count_version(cli_predict_stats_t *st, const ens_inference_response_t *r) {
    for (int v = 0; v < st->n_versions; v++)
        if (st->versions[v].plan_version == r->plan_version) {
            st->versions[v].answered++;
            return;
        }
    if (st->n_versions == CLI_PREDICT_MAX_VERSIONS)
        return;
    st->versions[st->n_versions].plan_version = r->plan_version;
    snprintf(st->versions[st->n_versions].ensemble_id, ENS_ID_MAX, "%s", r->ensemble_id);
    st->versions[st->n_versions++].answered = 1;
}

/* What cli_predict_run keeps about the requests in flight and the answers. */
typedef struct {
    const char *run;  /* request ids are "<first 8 of run>-<index>" */
    int32_t n;        /* requests to send */
    int32_t next;     /* requests sent */
    int32_t answered; /* first answers */
    int32_t hits;     /* first answers that match the label */
    double *sent, *lat, last_answer;
    char *seen;
    int32_t *pred;
    const int32_t *labels;
    float *probs;
    int32_t k;
    cli_predict_stats_t *st;
} predict_state_t;

int32_t cli_request_index(const char *request_id, const char *run, int32_t n) {
    if (!request_id || !run || !run_id(request_id, strlen(request_id), run) ||
        !isdigit((unsigned char)request_id[9]))
        return -1; /* another run's, or the probe's "<run>-probe" */
    char *end;
    long v = strtol(request_id + 9, &end, 10);
    return *end == '\0' && v < n ? (int32_t)v : -1;
}

/* Count one response: a first answer (latency, class, probabilities) or a duplicate. */
static void take_answer(predict_state_t *s, const ens_event_t *ev) {
    const ens_inference_response_t *r = &ev->u.inference_response;
    int32_t i = ev->type == ENS_EV_INFERENCE_RESPONSE
                    ? cli_request_index(r->request_id, s->run, s->next)
                    : -1;
    if (i < 0)
        return;
    if (s->seen[i]) {
        if (s->st->duplicates++ < 10) /* which ones: what a server's logs are searched for */
            fprintf(stderr, "ensflow predict: request %s answered again (plan version %lld)\n",
                    r->request_id, (long long)r->plan_version);
        return;
    }
    s->seen[i] = 1;
    s->answered++;
    s->last_answer = cli_now();
    s->lat[s->answered - 1] = (s->last_answer - s->sent[i]) * 1e3;
    s->pred[i] = r->predicted_class;
    count_version(s->st, r);
    if (r->status != ENS_RESPONSE_OK)
        s->st->errors++;
    else if (s->probs && r->n_probabilities == s->k)
        memcpy(s->probs + (size_t)i * (size_t)s->k, r->probabilities, (size_t)s->k * sizeof(float));
    s->hits += s->labels && r->status == ENS_RESPONSE_OK && s->pred[i] == s->labels[i];
}

/* Most answers taken from the consumer before the requests they free are sent. */
#define PREDICT_DRAIN_MAX 256

/* Wait up to timeout_ms for an answer, then take every answer already received (up to
 * PREDICT_DRAIN_MAX) without waiting. Why: the requests that the answers free then go out
 * together, in one produce batch and one wake-up of librdkafka's broker thread, rather than
 * one each: the answers come in batches (a group answers a batch at a time). It stops at the
 * last first answer, so that the caller notes the end as soon as before. Returns how many
 * messages were taken. */
static int take_answers(predict_state_t *s, ens_kafka_t *c, int timeout_ms) {
    int got = 0;
    for (; got < PREDICT_DRAIN_MAX && (got == 0 || s->answered < s->n); got++) {
        ens_event_t ev;
        int ours = poll_answer(c, s->run, got ? 0 : timeout_ms, &ev);
        if (ours < 0)
            break;
        if (ours) {
            take_answer(s, &ev);
            ens_event_free(&ev);
        }
    }
    return got;
}

int cli_predict_run(const ens_conf_t *conf, const float *x, int32_t n, int32_t dim,
                    const int32_t *labels, int window, double timeout_s, float *probs, int32_t k,
                    cli_predict_stats_t *st) {
    char errstr[512], run[37], group[64];
    memset(st, 0, sizeof *st);
    st->accuracy = -1;
    ens_uuid(run);
    snprintf(group, sizeof group, "ensflow-cli-%.8s", run);
    ens_kafka_t *p = NULL, *c = NULL;
    /* answers from the responses topic's end as it is now, before the first request goes */
    if (ens_kafka_producer_new(conf, &p, errstr, sizeof errstr) ||
        ens_kafka_tail_new(conf, group, ENS_TOPIC_INFERENCE_RESPONSES, 2, 10000, &c, errstr,
                           sizeof errstr)) {
        fprintf(stderr, "ensflow predict: %s\n", errstr);
        ens_kafka_free(p);
        return 1;
    }
    /* one request through the whole path first, so that latencies measure serving rather
     * than the client's start-up (connections, the first fetch) */
    if (n > 0 && probe(p, c, run, x, dim, timeout_s) != 0)
        fprintf(stderr, "ensflow predict: no answer to the probe request; going on\n");
    predict_state_t s = {.run = run, .n = n, .labels = labels, .probs = probs, .k = k, .st = st};
    s.sent = calloc((size_t)n, sizeof *s.sent);
    s.lat = calloc((size_t)n, sizeof *s.lat);
    s.seen = calloc((size_t)n, 1);
    s.pred = malloc((size_t)n * sizeof *s.pred);
    int rc = s.sent && s.lat && s.seen && s.pred ? 0 : 1;
    double t0 = cli_now(), last_progress = t0, cpu0 = cpu_seconds();
    s.last_answer = t0;
    ens_event_t req;
    ens_event_init(&req, ENS_EV_INFERENCE_REQUEST);
    ens_inference_request_t *q = &req.u.inference_request;
    q->n_shape = 1;
    q->shape[0] = dim;
    q->n_data = dim;
    double done_at = -1; /* when the last first answer came */
    while (!rc && cli_now() - s.last_answer < timeout_s) {
        if (s.answered == n && done_at < 0)
            done_at = cli_now();
        if (done_at >= 0 && cli_now() - done_at >= g_linger)
            break;
        int32_t first = s.next;
        while (s.next < n && s.next - s.answered < window &&
               (g_rate <= 0 || s.next < (cli_now() - t0) * g_rate)) {
            snprintf(q->request_id, sizeof q->request_id, "%.8s-%d", run, (int)s.next);
            ens_uuid(req.event_id);
            q->data = (float *)x + (size_t)s.next * (size_t)dim; /* borrowed, not freed */
            s.sent[s.next] = cli_now();
            if (ens_kafka_produce_event(p, ENS_TOPIC_INFERENCE_REQUESTS, q->request_id, &req, NULL,
                                        errstr, sizeof errstr)) {
                fprintf(stderr, "ensflow predict: %s\n", errstr);
                rc = 1;
                break;
            }
            s.next++;
        }
        q->data = NULL;
        if (s.next > first) /* send now, not after linger.ms */
            ens_kafka_flush(p, 0, NULL, 0);
        if (take_answers(&s, c, 50) == 0)
            continue;
        if (cli_now() - last_progress > 2) {
            fprintf(stderr, "%spredict: %d/%d answered, %.0f req/s   %s", isatty(2) ? "\r" : "",
                    (int)s.answered, (int)n, s.answered / (cli_now() - t0), isatty(2) ? "" : "\n");
            last_progress = cli_now();
        }
    }
    ens_event_free(&req);
    /* the client's own CPU while it is timed: what it takes from a server on the same cores
     * (start-up, loading the input and the probe come before and are not counted) */
    double cpu_ms = (cpu_seconds() - cpu0) * 1e3;
    ENS_DEBUG("predict", "msg=\"client cpu\" requests=%d cpu_ms=%.1f cpu_ms_per_request=%.4f",
              (int)s.next, cpu_ms, s.next > 0 ? cpu_ms / s.next : 0.0);
    st->requests = n;
    st->answered = s.answered;
    st->seconds = (done_at >= 0 ? done_at : cli_now()) - t0;
    st->throughput_rps = st->seconds > 0 ? s.answered / st->seconds : 0;
    if (s.answered > 0) {
        qsort(s.lat, (size_t)s.answered, sizeof *s.lat, cmp_double);
        st->latency_ms_p50 = s.lat[(size_t)(0.50 * (s.answered - 1))];
        st->latency_ms_p99 = s.lat[(size_t)(0.99 * (s.answered - 1))];
    }
    if (labels && s.answered > 0)
        st->accuracy = (double)s.hits / n;
    if (isatty(2))
        fprintf(stderr, "\n");
    if (!rc && s.answered < n) {
        fprintf(stderr, "ensflow predict: only %d of %d answered (no answer for %.0f s)\n",
                (int)s.answered, (int)n, timeout_s);
        rc = 3;
    }
    free(s.sent);
    free(s.lat);
    free(s.seen);
    free(s.pred);
    ens_kafka_free(c);
    ens_kafka_free(p);
    return rc;
}

/* Offline: the plan in force computed in this process, for comparison with the service. */
static int predict_offline(const ens_conf_t *conf, const ens_dataset_t *ds, float *probs,
                           int32_t *k_out) {
    char errstr[512] = "";
    ens_redis_t *r = cli_redis(conf);
    ens_event_t plan;
    if (!r || cli_get_plan(r, NULL, &plan, 0)) {
        ens_redis_free(r);
        return 1;
    }
    ens_inference_t *inf = NULL;
    ens_models_t *store = NULL;
    ens_err_t err = ens_models_open_conf(conf, &store, errstr, sizeof errstr);
    if (!err)
        err = ens_inference_new(&inf);
    if (!err) {
        ens_inference_set_store(inf, store);
        err = ens_inference_load_plan(inf, r, &plan.u.placement_plan, errstr, sizeof errstr);
    }
    ens_event_free(&plan);
    for (int32_t i = 0; !err && i < ds->n; i += 256) {
        int32_t nb = ds->n - i < 256 ? ds->n - i : 256;
        ens_inference_request_t reqs[256];
        const ens_inference_request_t *ptrs[256];
        ens_event_t resp[256];
        for (int32_t j = 0; j < nb; j++) {
            memset(&reqs[j], 0, sizeof reqs[j]);
            reqs[j].n_data = ds->dim;
            reqs[j].data = ds->x + (size_t)(i + j) * (size_t)ds->dim;
            ptrs[j] = &reqs[j];
        }
        err = ens_inference_run(inf, ptrs, nb, ens_now_ms(), resp);
        for (int32_t j = 0; j < nb; j++) {
            const ens_inference_response_t *rr = &resp[j].u.inference_response;
            if (!err && rr->status == ENS_RESPONSE_OK) {
                *k_out = rr->n_probabilities;
                memcpy(probs + (size_t)(i + j) * (size_t)rr->n_probabilities, rr->probabilities,
                       (size_t)rr->n_probabilities * sizeof(float));
            } else if (!err)
                err = ENS_ERR_INVALID;
            ens_event_free(&resp[j]);
        }
    }
    if (err)
        fprintf(stderr, "ensflow predict --offline: %s\n", errstr[0] ? errstr : ens_err_str(err));
    ens_inference_free(inf);
    ens_models_close(store);
    ens_redis_free(r);
    return err ? 1 : 0;
}

/* Whether the user set the output format: -o, --output or ENSFLOW_OUTPUT. */
static int output_given(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output") ||
            !strncmp(argv[i], "--output=", 9))
            return 1;
    return getenv("ENSFLOW_OUTPUT") != NULL;
}

/* x rounded to the given decimals: the summary keeps the precision it always printed */
static double rounded(double x, double scale) { return round(x * scale) / scale; }

/* predict's summary, one JSON object (its only output, with or without -o json) */
static json_t *predict_json(const cli_predict_stats_t *st) {
    json_t *versions = json_array();
    for (int v = 0; versions && v < st->n_versions; v++)
        if (json_array_append_new(versions,
                                  json_pack("{s:I, s:s, s:i}", "plan_version",
                                            (json_int_t)st->versions[v].plan_version,
                                            "ensemble_id", st->versions[v].ensemble_id,
                                            "answered", (int)st->versions[v].answered))) {
            json_decref(versions);
            return NULL;
        }
    return json_pack("{s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:o}", "requests",
                     (int)st->requests, "answered", (int)st->answered, "errors", (int)st->errors,
                     "duplicates", (int)st->duplicates, "latency_ms_p50",
                     rounded(st->latency_ms_p50, 1e3), "latency_ms_p99",
                     rounded(st->latency_ms_p99, 1e3), "throughput_rps",
                     rounded(st->throughput_rps, 1e1), "accuracy", rounded(st->accuracy, 1e4),
                     "versions", versions);
}

int cli_predict(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"input", ENS_CONF_STR, "fashion-mnist", 0, 0,
         "samples: fashion-mnist, an IDX directory or a CSV file (label first)"},
        {"part", ENS_CONF_STR, "test", 0, 0, "which file of the input: test or train"},
        {"limit", ENS_CONF_INT, "0", 0, 1e9, "send only the first N samples (0 = all)"},
        {"window", ENS_CONF_INT, "256", 1, 1e6, "most requests in flight"},
        {"timeout", ENS_CONF_DOUBLE, "60", 1, 1e6, "give up after this long without an answer"},
        {"rate", ENS_CONF_DOUBLE, "0", 0, 1e7,
         "send at this many requests per second (0 = as fast as --window allows)"},
        {"probs", ENS_CONF_STR, "", 0, 0, "write the probabilities (float32 rows) here"},
        {"output", ENS_CONF_STR, "json", 0, 0,
         "json (-o json): the summary is one JSON object on stdout; any other value than "
         "json is a file for the probabilities, as --probs (the flag's old meaning)"},
        {"linger", ENS_CONF_DOUBLE, "0", 0, 3600,
         "after the last answer, keep listening this many seconds to count duplicates"},
        {"offline", ENS_CONF_BOOL, "false", 0, 0,
         "compute the plan in force in this process instead of through Kafka"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = cli_conf("ensflow predict", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    /* --output FILE wrote the probabilities before -o json existed; scripts still use it */
    const char *fmt = ens_conf_str(conf, "output"), *out = ens_conf_str(conf, "probs");
    if (!strcmp(fmt, "text")) {
        fprintf(stderr, "ensflow predict: the summary is JSON only (-o json)\n");
        ens_conf_free(conf);
        return 2;
    }
    int json_given = !strcmp(fmt, "json") && output_given(argc, argv);
    if (strcmp(fmt, "json")) {
        if (*out && strcmp(out, fmt)) {
            fprintf(stderr, "ensflow predict: two files for the probabilities (--probs and "
                            "--output); give --probs only\n");
            ens_conf_free(conf);
            return 2;
        }
        out = fmt;
    }
    char errstr[512];
    ens_dataset_t *ds = NULL;
    ens_data_part_t part = strcmp(ens_conf_str(conf, "part"), "train") ? ENS_DATA_TEST
                                                                      : ENS_DATA_TRAIN;
    if (ens_dataset_load(ens_conf_str(conf, "input"), part, &ds, errstr, sizeof errstr)) {
        fprintf(stderr, "ensflow predict: %s\n", errstr);
        ens_conf_free(conf);
        return 2;
    }
    g_rate = ens_conf_double(conf, "rate");
    g_linger = ens_conf_double(conf, "linger");
    int64_t limit = ens_conf_int(conf, "limit");
    if (limit > 0 && limit < ds->n)
        ds->n = (int32_t)limit;
    int32_t k = ds->n_classes > 0 ? ds->n_classes : 1;
    float *probs = calloc((size_t)ds->n * (size_t)k, sizeof *probs);
    cli_predict_stats_t st = {0};
    if (!probs)
        rc = 1;
    else if (ens_conf_bool(conf, "offline")) {
        rc = predict_offline(conf, ds, probs, &k);
        /* offline printed nothing before -o json; asked for JSON, it says what it did */
        if (!rc && json_given)
            rc = cli_json_print("ensflow predict",
                                json_pack("{s:b, s:i, s:i}", "offline", 1, "requests",
                                          (int)ds->n, "answered", (int)ds->n));
    } else {
        rc = cli_predict_run(conf, ds->x, ds->n, ds->dim, ds->y, (int)ens_conf_int(conf, "window"),
                             ens_conf_double(conf, "timeout"), probs, k, &st);
        int prc = cli_json_print("ensflow predict", predict_json(&st));
        rc = rc ? rc : prc;
    }
    if (probs && *out) {
        FILE *f = fopen(out, "wb");
        size_t cnt = (size_t)ds->n * (size_t)k;
        if (!f || fwrite(probs, sizeof *probs, cnt, f) != cnt) {
            fprintf(stderr, "ensflow predict: cannot write %s\n", out);
            rc = rc ? rc : 1;
        }
        if (f)
            fclose(f);
    }
    free(probs);
    ens_dataset_free(ds);
    ens_conf_free(conf);
    return rc;
}
