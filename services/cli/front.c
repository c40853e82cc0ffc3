/* front.c - `ensflow front`: the study's ensembles as a table and an HTML page with an SVG plot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "ensflow/ensemble.h"

/* One point of the plot: a library model on its own. */
typedef struct {
    char id[ENS_ID_MAX];
    double sel_acc, hold_acc, cost;
    int64_t memory;
} model_point_t;

static void print_front(const ens_ensemble_front_t *f) {
    printf("front of %s: %d ensembles from %d models\n", f->study_id, (int)f->n_ensembles,
           (int)f->n_models);
    printf("%-24s %-8s %7s %9s %9s %12s %10s\n", "ensemble", "method", "members", "val_acc",
           "hold_acc", "ms/sample", "memory_MB");
    for (int i = 0; i < f->n_ensembles; i++) {
        const ens_ensemble_t *e = &f->ensembles[i];
        printf("%-24s %-8s %7d %9.4f %9.4f %12.4f %10.2f\n", e->ensemble_id, e->method,
               (int)e->n_members, e->val_accuracy, e->holdout_accuracy, e->cost_ms_per_sample,
               (double)e->memory_bytes / 1e6);
    }
    /* a line of its own: scripts read the table's 7-column rows */
    int b = ens_ensemble_choose(f->ensembles, f->n_ensembles, NULL);
    if (b >= 0)
        printf("deploy without limits takes %s: highest holdout accuracy, %.4f (log-loss %.4f)\n",
               f->ensembles[b].ensemble_id, f->ensembles[b].holdout_accuracy,
               f->ensembles[b].holdout_logloss);
}

/* The front as one JSON object: the table's rows with their members and weights, the
 * ensemble deploy takes without limits and why, coverage of the library, the report file. */
static json_t *front_json(const ens_ensemble_front_t *f, long library, const char *report) {
    json_t *list = json_array(), *o = NULL;
    for (int i = 0; list && i < f->n_ensembles; i++) {
        const ens_ensemble_t *e = &f->ensembles[i];
        json_t *members = json_array();
        for (int m = 0; members && m < e->n_members; m++)
            if (json_array_append_new(members, json_pack("{s:s, s:f}", "model_id",
                                                         e->members[m], "weight",
                                                         e->weights ? e->weights[m] : 0.0))) {
                json_decref(members);
                members = NULL;
            }
        if (json_array_append_new(
                list, json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:I, s:o}",
                                "ensemble_id", e->ensemble_id, "method", e->method, "n_members",
                                (int)e->n_members, "val_accuracy", e->val_accuracy,
                                "holdout_accuracy", e->holdout_accuracy, "val_logloss",
                                e->val_logloss, "holdout_logloss", e->holdout_logloss,
                                "cost_ms_per_sample", e->cost_ms_per_sample, "memory_bytes",
                                (json_int_t)e->memory_bytes, "members", members))) {
            json_decref(list);
            return NULL;
        }
    }
    int b = ens_ensemble_choose(f->ensembles, f->n_ensembles, NULL);
    json_t *chosen = b < 0 ? json_null()
                           : json_pack("{s:s, s:s}", "ensemble_id", f->ensembles[b].ensemble_id,
                                       "by", "highest holdout accuracy");
    o = json_pack("{s:s, s:i, s:i, s:I, s:b, s:o, s:o, s:o}", "study_id", f->study_id,
                  "n_ensembles", (int)f->n_ensembles, "n_models", (int)f->n_models,
                  "library_models", (json_int_t)library, "partial", f->n_models < library,
                  "deploy_default", chosen, "report", report ? json_string(report) : json_null(),
                  "ensembles", list);
    return o; /* NULL when the pack failed; it released list and chosen then */
}

/* Every library model's own accuracy on both halves (recorded by the selector) and cost;
 * a model the selector has not placed yet, or without a cost, is left out. */
static int load_models(ens_state_t *st, const char *study, model_point_t **out, int *n_out) {
    char errstr[256];
    char **ids = NULL;
    int k = 0;
    *out = NULL;
    *n_out = 0;
    if (ens_state_library_list(st, study, &ids, &k, errstr, sizeof errstr))
        return -1;
    model_point_t *p = calloc((size_t)k + 1, sizeof *p);
    int n = 0;
    for (int i = 0; p && i < k; i++) {
        ens_state_eval_t e;
        if (ens_state_eval_get(st, study, ids[i], &e, errstr, sizeof errstr) || !e.has_halves)
            continue;
        snprintf(p[n].id, sizeof p[n].id, "%s", ids[i]);
        p[n].sel_acc = e.sel_accuracy;
        p[n].hold_acc = e.holdout_accuracy;
        p[n].cost = e.ms_per_sample;
        p[n].memory = e.memory_bytes;
        n++;
    }
    ens_state_strings_free(ids, k);
    if (!p)
        return -1;
    *out = p;
    *n_out = n;
    return 0;
}

/* The study's library size; 0 when it cannot be read (a front then looks complete). */
static long library_size(ens_state_t *st, const char *study) {
    long n = 0;
    return ens_state_library_count(st, study, &n, NULL, 0) ? 0 : n;
}

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

/* Plot geometry: holdout accuracy against cost, with margins for the axes. */
typedef struct {
    double x0, x1, y0, y1;
} range_t;
#define W 760
#define H 460
#define ML 70
#define MR 20
#define MT 30
#define MB 50

static double px(const range_t *g, double c) {
    return ML + (c - g->x0) / (g->x1 - g->x0) * (W - ML - MR);
}
static double py(const range_t *g, double a) {
    return H - MB - (a - g->y0) / (g->y1 - g->y0) * (H - MT - MB);
}

static void point(FILE *f, const range_t *g, double c, double a, const char *shape,
                  const char *colour, const char *title) {
    double x = px(g, c), y = py(g, a);
    if (!strcmp(shape, "square"))
        fprintf(f, "<rect x='%.1f' y='%.1f' width='10' height='10' fill='%s'>", x - 5, y - 5,
                colour);
    else if (!strcmp(shape, "diamond"))
        fprintf(f, "<polygon points='%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f' fill='%s'>", x,
                y - 7, x + 7, y, x, y + 7, x - 7, y, colour);
    else
        fprintf(f, "<circle cx='%.1f' cy='%.1f' r='%s' fill='%s'%s>", x, y,
                !strcmp(shape, "small") ? "3" : "5", colour,
                !strcmp(shape, "small") ? " fill-opacity='0.55'" : "");
    fputs("<title>", f);
    html_escape(f, title);
    fprintf(f, "</title></%s>\n",
            !strcmp(shape, "square") ? "rect" : !strcmp(shape, "diamond") ? "polygon" : "circle");
}

static int write_html(const char *path, const ens_ensemble_front_t *fr, const model_point_t *mp,
                      int n_mp) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    range_t g = {1e300, -1e300, 1e300, -1e300};
    for (int i = 0; i < fr->n_ensembles + n_mp; i++) {
        double c = i < fr->n_ensembles ? fr->ensembles[i].cost_ms_per_sample
                                       : mp[i - fr->n_ensembles].cost;
        double a = i < fr->n_ensembles ? fr->ensembles[i].holdout_accuracy
                                       : mp[i - fr->n_ensembles].hold_acc;
        g.x0 = c < g.x0 ? c : g.x0;
        g.x1 = c > g.x1 ? c : g.x1;
        g.y0 = a < g.y0 ? a : g.y0;
        g.y1 = a > g.y1 ? a : g.y1;
    }
    double dx = (g.x1 - g.x0) * 0.05 + 1e-6, dy = (g.y1 - g.y0) * 0.08 + 1e-3;
    g.x0 = g.x0 - dx > 0 ? g.x0 - dx : 0;
    g.x1 += dx;
    g.y0 -= dy;
    g.y1 += dy;
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>ensflow front ");
    html_escape(f, fr->study_id);
    fprintf(f, "</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
               "collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
               "td:first-child,td:nth-child(2){text-align:left}</style></head><body>\n<h1>"
               "Ensemble front of ");
    html_escape(f, fr->study_id);
    fprintf(f, "</h1>\n<p>%d ensembles from %d models. Accuracy on the holdout half of "
               "validation (selection used the other half) against inference cost, the sum of "
               "the members' measured time per sample at the serving batch size. Hover a point "
               "for its id.</p>\n",
            (int)fr->n_ensembles, (int)fr->n_models);
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
               "viewBox='0 0 %d %d' font-size='12'>\n<rect width='%d' height='%d' fill='white'/>\n",
            W, H, W, H, W, H);
    for (int t = 0; t <= 5; t++) { /* axes, grid and ticks */
        double c = g.x0 + (g.x1 - g.x0) * t / 5, a = g.y0 + (g.y1 - g.y0) * t / 5;
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#eee'/>"
                   "<text x='%.1f' y='%d' text-anchor='middle'>%.3f</text>\n",
                px(&g, c), MT, px(&g, c), H - MB, px(&g, c), H - MB + 16, c);
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/>"
                   "<text x='%d' y='%.1f' text-anchor='end'>%.3f</text>\n",
                ML, py(&g, a), W - MR, py(&g, a), ML - 6, py(&g, a) + 4, a);
    }
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='black'/>"
               "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='black'/>\n",
            ML, H - MB, W - MR, H - MB, ML, MT, ML, H - MB);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>cost (ms per sample)</text>\n"
               "<text x='16' y='%d' text-anchor='middle' transform='rotate(-90 16 %d)'>holdout "
               "accuracy</text>\n",
            (W + ML) / 2, H - 10, H / 2, H / 2);
    char title[256];
    for (int i = 0; i < n_mp; i++) {
        snprintf(title, sizeof title, "%s: holdout %.4f, %.4f ms", mp[i].id, mp[i].hold_acc,
                 mp[i].cost);
        point(f, &g, mp[i].cost, mp[i].hold_acc, "small", "#888", title);
    }
    fputs("<polyline fill='none' stroke='#1f77b4' stroke-width='2' points='", f);
    for (int i = 0; i < fr->n_ensembles; i++)
        if (!strcmp(fr->ensembles[i].method, "mogreedy"))
            fprintf(f, "%.1f,%.1f ", px(&g, fr->ensembles[i].cost_ms_per_sample),
                    py(&g, fr->ensembles[i].holdout_accuracy));
    fputs("'/>\n", f);
    for (int i = 0; i < fr->n_ensembles; i++) {
        const ens_ensemble_t *e = &fr->ensembles[i];
        const char *shape = "circle", *colour = "#1f77b4";
        if (!strcmp(e->method, "caruana"))
            shape = "diamond", colour = "#d62728";
        else if (!strcmp(e->method, "topk"))
            shape = "square", colour = "#2ca02c";
        else if (!strcmp(e->method, "single"))
            shape = "square", colour = "#ff7f0e";
        snprintf(title, sizeof title, "%s (%s, %d members): holdout %.4f, %.4f ms",
                 e->ensemble_id, e->method, (int)e->n_members, e->holdout_accuracy,
                 e->cost_ms_per_sample);
        point(f, &g, e->cost_ms_per_sample, e->holdout_accuracy, shape, colour, title);
    }
    static const struct { const char *label, *shape, *colour; } legend[] = {
        {"mogreedy front", "circle", "#1f77b4"}, {"Caruana", "diamond", "#d62728"},
        {"top-K", "square", "#2ca02c"},          {"best single", "square", "#ff7f0e"},
        {"each model", "small", "#888"}};
    for (int i = 0; i < 5; i++) {
        double x = ML + 16, y = MT + 10 + 18 * i;
        if (!strcmp(legend[i].shape, "square"))
            fprintf(f, "<rect x='%.1f' y='%.1f' width='10' height='10' fill='%s'/>", x - 5,
                    y - 5, legend[i].colour);
        else if (!strcmp(legend[i].shape, "diamond"))
            fprintf(f, "<polygon points='%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f' fill='%s'/>",
                    x, y - 7, x + 7, y, x, y + 7, x - 7, y, legend[i].colour);
        else
            fprintf(f, "<circle cx='%.1f' cy='%.1f' r='%d' fill='%s'/>", x, y,
                    !strcmp(legend[i].shape, "small") ? 3 : 5, legend[i].colour);
        fprintf(f, "<text x='%.1f' y='%.1f'>%s</text>\n", x + 12, y + 4, legend[i].label);
    }
    fputs("</svg>\n<h2>Ensembles</h2>\n<table><tr><th>ensemble</th><th>method</th>"
          "<th>members</th><th>selection acc</th><th>holdout acc</th>"
          "<th>selection log-loss</th><th>holdout log-loss</th><th>ms/sample</th>"
          "<th>memory MB</th></tr>\n", f);
    for (int i = 0; i < fr->n_ensembles; i++) {
        const ens_ensemble_t *e = &fr->ensembles[i];
        fputs("<tr><td>", f);
        html_escape(f, e->ensemble_id);
        fputs("</td><td>", f);
        html_escape(f, e->method);
        fprintf(f,
                "</td><td>%d</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td>"
                "<td>%.4f</td><td>%.2f</td></tr>\n",
                (int)e->n_members, e->val_accuracy, e->holdout_accuracy, e->val_logloss,
                e->holdout_logloss, e->cost_ms_per_sample, (double)e->memory_bytes / 1e6);
    }
    fputs("</table>\n</body></html>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

int cli_wait_front(ens_state_t *st, const char *study, double wait_s, ens_event_t *ev) {
    char errstr[512];
    /* the selector debounces: wait (a little) until the front covers the whole library */
    double deadline = cli_now() + wait_s;
    for (;;) {
        ens_err_t err = ens_state_front_get(st, study, ev, errstr, sizeof errstr);
        int have = err == ENS_OK;
        long lib = library_size(st, study);
        if (have && ev->u.ensemble_front.n_models >= lib)
            return 0;
        if (cli_now() >= deadline) {
            if (have)
                return 0; /* the caller says that it is partial */
            if (err == ENS_ERR_NOTFOUND)
                fprintf(stderr, "ensflow: no front of study %s stored yet\n", study);
            else
                fprintf(stderr, "ensflow: %s\n", errstr);
            return 1;
        }
        if (have)
            ens_event_free(ev);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int cli_front(int argc, char **argv) {
    static const ens_conf_def_t defs[] = {
        {"html", ENS_CONF_STR, "", 0, 0, "HTML report file (empty = <run-dir>/front-<study>.html)"},
        {"wait", ENS_CONF_DOUBLE, "10", 0, 3600,
         "seconds to wait for a front that covers every evaluated model"},
        {"output", ENS_CONF_STR, "text", 0, 0,
         "text, or json for one JSON object on stdout (-o json); the HTML report either way"},
        {NULL, 0, NULL, 0, 0, NULL}};
    ens_conf_t *conf = NULL;
    int json = 0;
    int rc = cli_conf("ensflow front", defs, argc, argv, &conf);
    if (rc >= 0)
        return rc;
    if (ens_conf_positional_count(conf) != 1) {
        fprintf(stderr, "usage: ensflow front STUDY [--html FILE] [--wait S] [-o json]\n");
        ens_conf_free(conf);
        return 2;
    }
    if (cli_output_json(conf, "ensflow front", &json)) {
        ens_conf_free(conf);
        return 2;
    }
    const char *study = ens_conf_positional(conf, 0);
    ens_redis_t *r = NULL;
    ens_state_t *st = cli_state_open(conf, &r);
    ens_event_t ev;
    rc = 1;
    int have = st && cli_wait_front(st, study, ens_conf_double(conf, "wait"), &ev) == 0;
    if (have) {
        const ens_ensemble_front_t *f = &ev.u.ensemble_front;
        long lib = library_size(st, study);
        if (f->n_models < lib)
            fprintf(stderr, "ensflow front: the front covers %d of %ld models (the selector "
                            "is still working)\n", (int)f->n_models, lib);
        if (!json)
            print_front(f);
        model_point_t *mp = NULL;
        int n_mp = 0;
        char path[1024];
        const char *html = ens_conf_str(conf, "html");
        if (html && html[0])
            snprintf(path, sizeof path, "%s", html);
        else
            snprintf(path, sizeof path, "%s/front-%s.html", ens_conf_str(conf, "run-dir"), study);
        if (load_models(st, study, &mp, &n_mp))
            fprintf(stderr, "ensflow front: cannot read the library's models\n");
        int written = write_html(path, f, mp, n_mp) == 0;
        if (!written)
            fprintf(stderr, "ensflow front: cannot write %s\n", path);
        else if (!json)
            printf("report: %s\n", path);
        rc = written ? 0 : 1;
        if (json && cli_json_print("ensflow front", front_json(f, lib, written ? path : NULL)))
            rc = 1;
        free(mp);
        ens_event_free(&ev);
    }
    cli_state_close(st, r);
    ens_conf_free(conf);
    return rc;
}
