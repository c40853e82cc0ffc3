/* export.c - `ensflow export`: a study's model or ensemble, or a model file, as an ONNX file. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ensflow/models.h"
#include "ensflow/nn.h"
#include "ensflow/onnx.h"

#define PROG "ensflow export"
#define USAGE                                                                                      \
    "usage: ensflow export MODEL_ID|ENSEMBLE_ID --study STUDY --format onnx -o FILE\n"             \
    "       ensflow export --file MODEL_FILE --format onnx -o FILE\n"

static int read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    *buf = NULL;
    *len = 0;
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *b = malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = cap <= SIZE_MAX / 2 ? realloc(b, cap * 2) : NULL;
            if (!nb)
                free(b);
            b = nb;
            cap *= 2;
        }
    }
    int bad = !b || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, PROG ": cannot read %s%s\n", path, b ? "" : " (out of memory)");
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

/* The whole file or nothing: a temporary file beside it, renamed over it. */
static int write_file(const char *path, const uint8_t *buf, size_t len) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        fprintf(stderr, PROG ": output path too long\n");
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, PROG ": cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

static int load_model(const uint8_t *buf, size_t len, const char *what, ens_model_t **m) {
    char errstr[512] = "";
    ens_err_t err = ens_model_load(buf, len, m, errstr, sizeof errstr);
    if (err)
        fprintf(stderr, PROG ": %s is not a model: %s %s\n", what, ens_err_str(err), errstr);
    return err ? -1 : 0;
}

/* A model of the study from the model store; 1 when the study has no model of that id. */
static int study_model(ens_models_t *ms, ens_state_t *st, const char *study, const char *id,
                       ens_model_t **m) {
    char name[256], errstr[512] = "", what[256];
    void *blob = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, "model:%s", id);
    ens_err_t err =
        ens_state_model_file_get(st, ms, study, name, &blob, &len, errstr, sizeof errstr);
    if (err == ENS_ERR_NOTFOUND)
        return 1;
    if (err) {
        fprintf(stderr, PROG ": model %s of study %s: %s %s\n", id, study, ens_err_str(err),
                errstr);
        return -1;
    }
    snprintf(what, sizeof what, "model %s of study %s", id, study);
    int rc = load_model(blob, len, what, m);
    free(blob);
    return rc;
}

typedef struct {
    ens_model_t **models;
    double *weights;
    int n;
    char what[256]; /* "model X" or "ensemble Y (n members)" */
} export_set_t;

static void set_free(export_set_t *s) {
    for (int i = 0; s->models && i < s->n; i++)
        ens_model_free(s->models[i]);
    free(s->models);
    free(s->weights);
}

/* id as a model of the study, else as an ensemble of its front (members and the weights the
 * placer hands inference). */
static int study_set(const ens_conf_t *conf, const char *study, const char *id, export_set_t *s) {
    char errstr[512] = "";
    ens_models_t *ms = NULL;
    if (ens_models_open_conf(conf, &ms, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": model store: %s\n", errstr);
        return -1;
    }
    ens_redis_t *r = NULL;
    ens_state_t *st = cli_state_open(conf, &r);
    ens_event_t ev;
    int rc = -1, have_front = 0;
    if (!st || !(s->models = calloc(1, sizeof *s->models)))
        goto out;
    if ((rc = study_model(ms, st, study, id, &s->models[0])) <= 0) {
        s->n = rc == 0;
        snprintf(s->what, sizeof s->what, "model %s", id);
        goto out;
    }
    free(s->models);
    s->models = NULL;
    rc = -1;
    if (ens_state_front_get(st, study, &ev, errstr, sizeof errstr)) {
        fprintf(stderr, PROG ": study %s has no model %s and no ensemble front yet\n", study, id);
        goto out;
    }
    have_front = 1;
    const ens_ensemble_front_t *f = &ev.u.ensemble_front;
    const ens_ensemble_t *e = NULL;
    for (int i = 0; i < f->n_ensembles && !e; i++)
        if (!strcmp(f->ensembles[i].ensemble_id, id))
            e = &f->ensembles[i];
    if (!e) {
        fprintf(stderr,
                PROG ": study %s has no model or ensemble %s (ensflow front %s lists "
                     "the ensembles)\n",
                study, id, study);
    } else if (e->n_members < 1 || !e->weights) {
        fprintf(stderr, PROG ": ensemble %s has no members\n", id);
    } else if (!(s->models = calloc((size_t)e->n_members, sizeof *s->models)) ||
               !(s->weights = calloc((size_t)e->n_members, sizeof *s->weights))) {
        fprintf(stderr, PROG ": out of memory\n");
    } else {
        rc = 0;
        for (int i = 0; i < e->n_members && rc == 0; i++) {
            int got = study_model(ms, st, study, e->members[i], &s->models[i]);
            if (got == 1)
                fprintf(stderr, PROG ": member %s of ensemble %s is not in the model store\n",
                        e->members[i], id);
            rc = got == 0 ? 0 : -1;
            s->n += got == 0;
            s->weights[i] = e->weights[i];
        }
        snprintf(s->what, sizeof s->what, "ensemble %s (%d members)", id, (int)e->n_members);
    }
out:
    if (have_front)
        ens_event_free(&ev);
    cli_state_close(st, r);
    ens_models_close(ms);
    return rc;
}

int cli_export(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"study", ENS_CONF_STR, "", 0, 0, "the study whose model or ensemble is exported"},
        {"file", ENS_CONF_STR, "", 0, 0,
         "export this model file (as ens_model_save writes it) instead of a study's model"},
        {"format", ENS_CONF_STR, "onnx", 0, 0, "onnx (the only format)"},
        {"output", ENS_CONF_STR, "", 0, 0, "the file to write (-o FILE)"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int rc = cli_conf(PROG, defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    const char *study = ens_conf_str(conf, "study"), *file = ens_conf_str(conf, "file");
    const char *format = ens_conf_str(conf, "format"), *out = ens_conf_str(conf, "output");
    int npos = ens_conf_positional_count(conf);
    rc = 2;
    if (strcmp(format, "onnx"))
        fprintf(stderr, PROG ": unknown format '%s' (onnx is the only one)\n", format);
    else if (!out[0])
        fprintf(stderr, PROG ": no output file: -o FILE\n" USAGE);
    else if (file[0] && (npos != 0 || study[0]))
        fprintf(stderr,
                PROG ": --file exports a model file; it takes no id and no --study\n" USAGE);
    else if (!file[0] && (npos != 1 || !study[0]))
        fprintf(stderr, PROG ": name one model or ensemble id and its --study\n" USAGE);
    else
        rc = 0;
    if (rc) {
        ens_conf_free(conf);
        return rc;
    }
    export_set_t s = {0};
    int have = 0;
    rc = 1;
    if (file[0]) {
        uint8_t *buf = NULL;
        size_t len = 0;
        if (read_file(file, &buf, &len) == 0 && (s.models = calloc(1, sizeof *s.models)) &&
            load_model(buf, len, file, &s.models[0]) == 0) {
            s.n = 1;
            have = 1;
            snprintf(s.what, sizeof s.what, "model file %s", file);
        }
        free(buf);
    } else {
        have = study_set(conf, study, ens_conf_positional(conf, 0), &s) == 0;
    }
    if (have) {
        uint8_t *onnx = NULL;
        size_t len = 0;
        char errstr[512] = "";
        ens_err_t err = ens_onnx_export((const ens_model_t *const *)s.models, s.weights, s.n, &onnx,
                                        &len, errstr, sizeof errstr);
        if (err)
            fprintf(stderr, PROG ": %s: %s\n", s.what, errstr[0] ? errstr : ens_err_str(err));
        else if (write_file(out, onnx, len) == 0) {
            printf("%s -> %s (ONNX, opset %d, %zu bytes)\n", s.what, out, ENS_ONNX_OPSET, len);
            rc = 0;
        }
        free(onnx);
    }
    set_free(&s);
    ens_conf_free(conf);
    return rc;
}
