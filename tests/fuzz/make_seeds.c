/* make_seeds.c - writes the seed corpora under tests/fuzz/corpus/ (run once; the files are
 * committed): one encoded event of each type, requests for the fuzz plan (4 features), model
 * files, and search spaces.  usage: make_seeds CORPUS_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/events.h"
#include "ensflow/nn.h"

static const char *dir;

static void put(const char *sub, const char *name, const void *p, size_t len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void put_event(const char *sub, const char *name, ens_event_t *ev) {
    char errstr[256];
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ens_event_encode(ev, &buf, &len, errstr, sizeof errstr)) {
        fprintf(stderr, "%s: %s\n", name, errstr);
        exit(1);
    }
    put(sub, name, buf, len);
    free(buf);
}

static void request(const char *name, int n, const int32_t *shape, int n_shape, float fill) {
    ens_event_t ev;
    ens_event_init(&ev, ENS_EV_INFERENCE_REQUEST);
    snprintf(ev.event_id, sizeof ev.event_id, "00000000-0000-4000-8000-000000000001");
    ens_inference_request_t *q = &ev.u.inference_request;
    snprintf(q->request_id, sizeof q->request_id, "r-%s", name);
    q->n_shape = n_shape;
    memcpy(q->shape, shape, (size_t)n_shape * sizeof *shape);
    q->n_data = n;
    q->data = calloc((size_t)(n ? n : 1), sizeof *q->data);
    for (int i = 0; i < n; i++)
        q->data[i] = i == 1 ? fill : 0.5f * (float)i;
    put_event("inference", name, &ev);
    put_event("event_decode", name, &ev);
    ens_event_free(&ev);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    dir = argv[1];
    for (int t = 0; t < ENS_EV__COUNT; t++) {
        ens_event_t ev;
        ens_event_init(&ev, (ens_event_type_t)t);
        snprintf(ev.event_id, sizeof ev.event_id, "00000000-0000-4000-8000-%012d", t);
        if (t == ENS_EV_DEAD_LETTER) {
            ev.u.dead_letter.reason = strdup("bad marker");
            ev.u.dead_letter.payload = (uint8_t *)strdup("xyz");
            ev.u.dead_letter.payload_len = 3;
        }
        if (t == ENS_EV_STUDY_CREATED) {
            ev.u.study_created.dataset = strdup("data.csv");
            ev.u.study_created.search_space_json = strdup("{}");
        }
        if (t == ENS_EV_TRIAL_JOB) {
            ev.u.trial_job.dataset = strdup("data.csv");
            ev.u.trial_job.config_json = strdup("{\"hidden\":[8],\"lr\":0.1}");
        }
        if (t == ENS_EV_STUDY_REJECTED)
            ev.u.study_rejected.reason = strdup("lr: out of range");
        if (t == ENS_EV_INFERENCE_RESPONSE)
            ev.u.inference_response.error = strdup("no plan in force");
        char name[64];
        snprintf(name, sizeof name, "%s.bin", ens_event_type_name((ens_event_type_t)t));
        put_event("event_decode", name, &ev);
        ens_event_free(&ev);
    }
    const int32_t s4[] = {4}, s22[] = {2, 2}, s3[] = {3};
    request("ok-4.bin", 4, s4, 1, 1.0f);
    request("ok-2x2.bin", 4, s22, 2, 1.0f);
    request("noshape.bin", 4, s4, 0, 1.0f);
    request("wrong-shape.bin", 3, s3, 1, 1.0f);
    request("nan.bin", 4, s4, 1, NAN);
    request("inf.bin", 4, s4, 1, INFINITY);

    const int32_t h1[] = {3}, h2[] = {5, 4};
    for (int i = 0; i < 2; i++) {
        ens_model_t *m = NULL;
        uint8_t *buf = NULL;
        size_t len = 0;
        if (ens_model_new_mlp(i ? 6 : 4, i ? h2 : h1, i ? 2 : 1, i ? 3 : 2, 9, &m) ||
            ens_model_save(m, &buf, &len))
            return 1;
        put("model_load", i ? "mlp-6-5-4-3.ensm" : "mlp-4-3-2.ensm", buf, len);
        free(buf);
        ens_model_free(m);
    }
    static const char *spaces[] = {
        "{}", "{\"layers\":{\"int\":[1,2]},\"width\":[128,256],\"lr\":{\"log_uniform\":[0.01,0.1]}}",
        ("{\"layers\":{\"int\":[2,4]},\"width\":[32,96],\"lr\":{\"log_uniform\":[0.001,0.01]},"
         "\"momentum\":0.9,\"batch_size\":[16,32],\"weight_decay\":{\"uniform\":[0,0.01]}}"),
        "{\"momentum\":[0.8,0.9,0.95],\"batch_size\":[64,128,256]}", "{\"lr\":{\"uniform\":[0.1]}}"};
    for (size_t i = 0; i < sizeof spaces / sizeof spaces[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "space-%zu.json", i);
        put("space", name, spaces[i], strlen(spaces[i]));
    }
    return 0;
}
