/* space.c - JSON search spaces: validation, seeded sampling, configuration parsing. */
#include "ensflow/space.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/data.h"

/* The CNN keys are gated by family = cnn: the default space stays MLP-only, and an MLP trial
 * draws exactly what it drew before the CNN family existed (the CNN draws come after). */
#define CNN_ONLY "\"cond\":{\"param\":\"family\",\"values\":[\"cnn\"]},"
static const char *default_space =
    "{\"layers\":{\"int\":[1,3]},\"width\":[64,128,256,512],"
    "\"lr\":{\"log_uniform\":[0.005,0.1]},\"momentum\":[0.8,0.9,0.95],"
    "\"batch_size\":[64,128,256],\"weight_decay\":{\"log_uniform\":[1e-6,1e-3]},"
    "\"family\":\"mlp\","
    "\"conv_blocks\":{" CNN_ONLY "\"choice\":[1,2,3]},"
    "\"conv_width\":{" CNN_ONLY "\"choice\":[16,32,64]},"
    "\"kernel\":{" CNN_ONLY "\"choice\":[3,5]},"
    "\"batch_norm\":{" CNN_ONLY "\"choice\":[0,1]},"
    "\"dropout\":{" CNN_ONLY "\"uniform\":[0,0.3]},"
    "\"residual\":{" CNN_ONLY "\"choice\":[0,1]},"
    "\"optimizer\":{" CNN_ONLY "\"choice\":[\"sgd\",\"nesterov\",\"adam\",\"adamw\"]},"
    "\"cnn_lr\":{\"cond\":{\"param\":\"optimizer\",\"values\":[\"adam\",\"adamw\"]},"
    "\"log_uniform\":[0.0003,0.003],\"else\":0.05},"
    "\"augment\":{" CNN_ONLY "\"choice\":[0,1]},"
    "\"label_smoothing\":{" CNN_ONLY "\"choice\":[0,0.05,0.1]},"
    "\"lr_restart\":{" CNN_ONLY "\"choice\":[0]}}";

static const char *const family_names[] = {"mlp", "cnn", NULL};
static const char *const optimizer_names[] = {"sgd", "nesterov", "adam", "adamw", NULL};

/* What a trainer accepts, the value a parameter takes when its cond does not hold and it has
 * no "else", and for a named choice (family, optimizer) the names, stored as their index. */
static const struct {
    const char *name;
    double lo, hi;
    int integer;
    double fallback;
    const char *const *names;
} params[] = {{"layers", 1, 8, 1, 2, NULL},
              {"width", 1, 8192, 1, 128, NULL},
              {"lr", 1e-6, 10, 0, 0.01, NULL},
              {"momentum", 0, 0.999, 0, 0.9, NULL},
              {"batch_size", 1, 4096, 1, 128, NULL},
              {"weight_decay", 0, 1, 0, 1e-4, NULL},
              {"family", 0, 1, 1, 0, family_names},
              {"conv_blocks", 1, 4, 1, 2, NULL},
              {"conv_width", 1, 512, 1, 32, NULL},
              {"kernel", 1, 7, 1, 3, NULL},
              {"batch_norm", 0, 1, 1, 0, NULL},
              {"dropout", 0, 0.9, 0, 0, NULL},
              {"residual", 0, 1, 1, 0, NULL},
              {"optimizer", 0, 3, 1, 2, optimizer_names},
              {"cnn_lr", 1e-6, 10, 0, 1e-3, NULL},
              {"augment", 0, 1, 1, 0, NULL},
              {"label_smoothing", 0, 0.5, 0, 0, NULL},
              {"lr_restart", 0, 1, 1, 0, NULL}};
#define N_PARAMS (int)(sizeof params / sizeof params[0])
#define FIRST_CNN 6 /* family and after: drawn after the MLP parameters */

static int param_index(const char *name) {
    for (int i = 0; i < N_PARAMS; i++)
        if (strcmp(params[i].name, name) == 0)
            return i;
    return -1;
}

static ens_err_t bad(char *errstr, size_t size, const char *field, const char *why) {
    return ens_err_set(errstr, size, ENS_ERR_INVALID, "search space field \"%s\": %s", field, why);
}

/* A value as a number: a named choice's index (-1: not one of the names). */
static double num_value(int p, json_t *v) {
    if (params[p].names && json_is_string(v)) {
        for (int i = 0; params[p].names[i]; i++)
            if (!strcmp(params[p].names[i], json_string_value(v)))
                return i;
        return -1;
    }
    return json_number_value(v);
}

static ens_err_t check_value(int p, json_t *v, const char *field, char *errstr, size_t size) {
    if (params[p].names) {
        if (!json_is_string(v) || num_value(p, v) < 0)
            return bad(errstr, size, field,
                       p == param_index("family") ? "values are \"mlp\" or \"cnn\""
                                                  : "values are \"sgd\", \"nesterov\", "
                                                    "\"adam\" or \"adamw\"");
        return ENS_OK;
    }
    if (!json_is_number(v))
        return bad(errstr, size, field, "values must be numbers");
    double x = json_number_value(v);
    if (x < params[p].lo || x > params[p].hi)
        return bad(errstr, size, field, "value out of the accepted range");
    if (params[p].integer && x != floor(x))
        return bad(errstr, size, field, "values must be integers");
    return ENS_OK;
}

static ens_err_t check_choice(int p, json_t *v, const char *key, char *errstr, size_t size) {
    if (json_array_size(v) == 0)
        return bad(errstr, size, key, "a choice needs at least one value");
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        ens_err_t err = check_value(p, x, key, errstr, size);
        if (err)
            return err;
    }
    return ENS_OK;
}

/* The distribution key of a range object: uniform, log_uniform, int or choice (NULL: none). */
static const char *range_kind(json_t *v) {
    static const char *kinds[] = {"uniform", "log_uniform", "int", "choice"};
    for (int i = 0; i < 4; i++)
        if (json_object_get(v, kinds[i]))
            return kinds[i];
    return NULL;
}

/* {"param": P, "values": [..]}: P a known, unconditional, scalar-per-trial hyperparameter. */
static ens_err_t check_cond(const char *key, json_t *cond, json_t *user, char *errstr,
                            size_t size) {
    json_t *param = json_object_get(cond, "param"), *values = json_object_get(cond, "values");
    if (!json_is_object(cond) || !json_is_string(param) || !json_is_array(values) ||
        json_array_size(values) == 0 || json_object_size(cond) != 2)
        return bad(errstr, size, key, "cond is {\"param\": NAME, \"values\": [v, ...]}");
    const char *on = json_string_value(param);
    int p = param_index(on);
    if (p < 0 || !strcmp(on, "width") || !strcmp(on, key))
        return bad(errstr, size, key, "cond.param must name another hyperparameter (not width)");
    (void)user;
    return check_choice(p, values, key, errstr, size);
}

/* One entry: scalar, choice array, or an object with one of "uniform" | "log_uniform" |
 * "int" : [lo, hi] or "choice": [..], and optionally "cond" and "else". */
static ens_err_t check_entry(const char *key, json_t *v, json_t *user, char *errstr,
                             size_t size) {
    int p = param_index(key);
    if (p < 0)
        return bad(errstr, size, key,
                   "unknown hyperparameter (known: layers, width, lr, momentum, batch_size, "
                   "weight_decay, family, conv_blocks, conv_width, kernel, batch_norm, "
                   "dropout, residual, optimizer, cnn_lr, augment, label_smoothing)");
    if (json_is_array(v))
        return check_choice(p, v, key, errstr, size);
    if (json_is_object(v)) {
        json_t *cond = json_object_get(v, "cond"), *els = json_object_get(v, "else");
        const char *kind = range_kind(v);
        size_t extra = (cond != NULL) + (els != NULL);
        if (!kind || json_object_size(v) != 1 + extra)
            return bad(errstr, size, key, "a range object has exactly one of uniform, "
                                          "log_uniform, int, choice (plus cond and else)");
        if (els && !cond)
            return bad(errstr, size, key, "else needs a cond");
        ens_err_t err;
        if (cond && (err = check_cond(key, cond, user, errstr, size)))
            return err;
        if (els && (err = check_value(p, els, key, errstr, size)))
            return err;
        json_t *r = json_object_get(v, kind);
        if (!strcmp(kind, "choice"))
            return json_is_array(r) ? check_choice(p, r, key, errstr, size)
                                    : bad(errstr, size, key, "choice is an array of values");
        if (!json_is_array(r) || json_array_size(r) != 2)
            return bad(errstr, size, key, "a range is [low, high]");
        for (int i = 0; i < 2; i++) {
            err = check_value(p, json_array_get(r, (size_t)i), key, errstr, size);
            if (err)
                return err;
        }
        if (params[p].names)
            return bad(errstr, size, key, "a named hyperparameter takes a choice");
        double lo = json_number_value(json_array_get(r, 0));
        double hi = json_number_value(json_array_get(r, 1));
        if (lo > hi)
            return bad(errstr, size, key, "low is above high");
        if (!strcmp(kind, "log_uniform") && lo <= 0)
            return bad(errstr, size, key, "log_uniform needs low > 0");
        if (params[p].integer && strcmp(kind, "int") && strcmp(kind, "uniform"))
            return bad(errstr, size, key, "integer hyperparameter: use int or a choice");
        return ENS_OK;
    }
    return check_value(p, v, key, errstr, size);
}

/* The default space with the user's keys laid over it. */
static ens_err_t load_space(const char *space_json, json_t **out, char *errstr, size_t size) {
    json_error_t jerr;
    json_t *space = json_loads(default_space, 0, &jerr);
    if (!space)
        return ENS_ERR_NOMEM;
    if (space_json && *space_json) {
        json_t *user = json_loads(space_json, 0, &jerr);
        if (!user || !json_is_object(user)) {
            json_decref(user);
            json_decref(space);
            return ens_err_set(errstr, size, ENS_ERR_INVALID,
                               "search space is not a JSON object: %s (line %d)",
                               user ? "not an object" : jerr.text, jerr.line);
        }
        const char *key;
        json_t *v;
        json_object_foreach(user, key, v) {
            ens_err_t err = check_entry(key, v, user, errstr, size);
            if (err) {
                json_decref(user);
                json_decref(space);
                return err;
            }
        }
        json_object_update(space, user);
        json_decref(user);
    }
    /* cond.param may itself be conditional only on family (the family gate): no chains */
    const char *key;
    json_t *v;
    json_object_foreach(space, key, v) {
        json_t *cond = json_object_get(v, "cond");
        if (!json_is_object(cond))
            continue;
        json_t *target = json_object_get(space, json_string_value(json_object_get(cond,
                                                                              "param")));
        json_t *tcond = json_object_get(target, "cond");
        ens_err_t err = ENS_OK;
        if (tcond && strcmp(json_string_value(json_object_get(tcond, "param")), "family"))
            err = bad(errstr, size, key, "cond.param may not itself be conditional (except "
                                         "on family)");
        if (err) { /* key lives in space: free it after the message is written */
            json_decref(space);
            return err;
        }
    }
    json_t *fam = json_object_get(space, "family");
    if (json_is_object(fam) && json_object_get(fam, "cond")) {
        json_decref(space);
        return bad(errstr, size, "family", "family may not be conditional");
    }
    *out = space;
    return ENS_OK;
}

ens_err_t ens_space_validate(const char *space_json, char *errstr, size_t errstr_size) {
    json_t *space = NULL;
    ens_err_t err = load_space(space_json, &space, errstr, errstr_size);
    json_decref(space);
    return err;
}

static double sample(int p, json_t *v, ens_rng_t *rng) {
    if (json_is_array(v))
        return num_value(p, json_array_get(v, (size_t)(ens_rng_next(rng) % json_array_size(v))));
    if (json_is_object(v)) {
        const char *kind = range_kind(v);
        json_t *r = json_object_get(v, kind);
        if (!strcmp(kind, "choice"))
            return sample(p, r, rng);
        double lo = json_number_value(json_array_get(r, 0));
        double hi = json_number_value(json_array_get(r, 1));
        double u = ens_rng_uniform(rng);
        if (!strcmp(kind, "log_uniform"))
            return exp(log(lo) + u * (log(hi) - log(lo)));
        if (!strcmp(kind, "int"))
            return lo + (double)(ens_rng_next(rng) % (uint64_t)(hi - lo + 1));
        return lo + u * (hi - lo);
    }
    return num_value(p, v);
}

static double sample_named(json_t *space, const char *name, ens_rng_t *rng) {
    return sample(param_index(name), json_object_get(space, name), rng);
}

/* Does the cond of parameter `name` hold for the values (vals, by params index)? */
static int cond_holds(json_t *space, const char *name, const double *vals) {
    json_t *cond = json_object_get(json_object_get(space, name), "cond");
    if (!cond)
        return 1;
    int on = param_index(json_string_value(json_object_get(cond, "param")));
    double x = vals[on];
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(cond, "values"), i, c) {
        double y = num_value(on, c);
        if (fabs(y - x) <= 1e-12 * (fabs(x) + 1))
            return 1;
    }
    return 0;
}

/* Value of a parameter whose cond does not hold: its "else", or the fixed fallback. */
static double else_value(json_t *space, const char *name) {
    int p = param_index(name);
    json_t *e = json_object_get(json_object_get(space, name), "else");
    return e ? num_value(p, e) : params[p].fallback;
}

/* {"family":"cnn","arch":{...},"optimizer":..,"lr":..,...}: the architecture in the form
 * ens_model_new_from_json reads (block i has conv_width * 2^i filters). */
static json_t *cnn_config(const double *v) {
    json_t *arch = json_object(), *cfg = json_object();
#define V(name) v[param_index(name)]
    json_object_set_new(arch, "n_blocks", json_integer((json_int_t)round(V("conv_blocks"))));
    json_object_set_new(arch, "width", json_integer((json_int_t)round(V("conv_width"))));
    json_object_set_new(arch, "kernel", json_integer((json_int_t)round(V("kernel"))));
    json_object_set_new(arch, "batch_norm", json_boolean(round(V("batch_norm")) != 0));
    json_object_set_new(arch, "residual", json_boolean(round(V("residual")) != 0));
    json_object_set_new(arch, "dropout", json_real(V("dropout")));
    json_t *dense = json_array();
    json_array_append_new(dense, json_integer(128));
    json_object_set_new(arch, "dense", dense);
    json_object_set_new(cfg, "family", json_string("cnn"));
    json_object_set_new(cfg, "arch", arch);
    json_object_set_new(cfg, "optimizer",
                        json_string(optimizer_names[(int)round(V("optimizer"))]));
    json_object_set_new(cfg, "lr", json_real(V("cnn_lr")));
    json_object_set_new(cfg, "momentum", json_real(V("momentum")));
    json_object_set_new(cfg, "batch_size", json_integer((json_int_t)round(V("batch_size"))));
    json_object_set_new(cfg, "weight_decay", json_real(V("weight_decay")));
    json_object_set_new(cfg, "augment", json_integer((json_int_t)round(V("augment"))));
    json_object_set_new(cfg, "label_smoothing", json_real(V("label_smoothing")));
    if (round(V("lr_restart")) != 0) /* absent = 0: configurations made before it unchanged */
        json_object_set_new(cfg, "lr_restart", json_integer(1));
#undef V
    return cfg;
}

ens_err_t ens_space_sample(const char *space_json, uint64_t seed, int32_t index,
                           char **config_json, char *errstr, size_t errstr_size) {
    json_t *space = NULL;
    ens_err_t err = load_space(space_json, &space, errstr, errstr_size);
    if (err)
        return err;
    ens_rng_t rng;
    ens_rng_seed(&rng, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(index + 1)));
    /* Every value is drawn, in a fixed order, whether its cond holds or not: the same draws
     * for every space shape, so adding a cond changes only the parameter it guards. The CNN
     * family's values come last, so MLP configurations are what they were before it. */
    double vals[N_PARAMS], widths[8];
    int layers = (int)round(sample_named(space, "layers", &rng));
    vals[param_index("layers")] = layers;
    for (int l = 0; l < 8; l++)
        widths[l] = l < layers ? round(sample_named(space, "width", &rng)) : 0;
    const char *rest[] = {"lr", "momentum", "batch_size", "weight_decay"};
    for (int i = 0; i < 4; i++)
        vals[param_index(rest[i])] = sample_named(space, rest[i], &rng);
    vals[param_index("width")] = widths[0];
    vals[FIRST_CNN] = sample_named(space, "family", &rng); /* a constant draws nothing */
    /* a conditional layers count off its cond: the widths of the else value, drawn here as
     * before the CNN family existed */
    int mlp_layers = layers;
    if (!cond_holds(space, "layers", vals)) {
        mlp_layers = (int)round(else_value(space, "layers"));
        if (mlp_layers != layers)
            for (int l = 0; l < mlp_layers && l < 8; l++)
                widths[l] = round(sample_named(space, "width", &rng));
    }
    for (int i = FIRST_CNN + 1; i < N_PARAMS; i++)
        vals[i] = sample_named(space, params[i].name, &rng);
    /* conds look at unconditional parameters or at ones gated by family (checked): family
     * first, then the gated ones, then the rest */
    double cooked[N_PARAMS];
    memcpy(cooked, vals, sizeof cooked);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < N_PARAMS; i++)
            cooked[i] = cond_holds(space, params[i].name, cooked)
                            ? vals[i]
                            : else_value(space, params[i].name);
    json_t *cfg;
    if (round(cooked[param_index("family")]) == 1) {
        cfg = cnn_config(cooked);
    } else {
        layers = mlp_layers;
        int width_on = cond_holds(space, "width", vals);
        json_t *hidden = json_array();
        cfg = json_object();
        for (int l = 0; l < layers && l < 8; l++)
            json_array_append_new(hidden,
                                  json_integer((json_int_t)(width_on ? widths[l]
                                                                     : else_value(space,
                                                                                  "width"))));
        json_object_set_new(cfg, "hidden", hidden);
        json_object_set_new(cfg, "lr", json_real(cooked[param_index("lr")]));
        json_object_set_new(cfg, "momentum", json_real(cooked[param_index("momentum")]));
        json_object_set_new(cfg, "batch_size",
                            json_integer((json_int_t)round(cooked[param_index("batch_size")])));
        json_object_set_new(cfg, "weight_decay", json_real(cooked[param_index("weight_decay")]));
    }
    *config_json = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(cfg);
    json_decref(space);
    return *config_json ? ENS_OK : ENS_ERR_NOMEM;
}

ens_err_t ens_trial_config_parse(const char *config_json, ens_trial_config_t *cfg, char *errstr,
                                 size_t errstr_size) {
    json_error_t jerr;
    json_t *j = json_loads(config_json ? config_json : "", 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "config is not a JSON object");
    }
    memset(cfg, 0, sizeof *cfg);
    ens_err_t err = ENS_OK;
    json_t *fam = json_object_get(j, "family");
    if (fam && (err = check_value(param_index("family"), fam, "family", errstr, errstr_size))) {
        json_decref(j);
        return err;
    }
    cfg->family = fam ? (ens_family_t)num_value(param_index("family"), fam) : ENS_FAMILY_MLP;
    json_t *hidden = json_object_get(j, "hidden");
    if (cfg->family == ENS_FAMILY_CNN) {
        json_t *arch = json_object_get(j, "arch"), *opt = json_object_get(j, "optimizer");
        json_t *aug = json_object_get(j, "augment"), *ls = json_object_get(j, "label_smoothing");
        json_t *rs = json_object_get(j, "lr_restart");
        char *a = json_is_object(arch) ? json_dumps(arch, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (!a || strlen(a) >= sizeof cfg->arch)
            err = bad(errstr, errstr_size, "arch", "must be an architecture object");
        else
            memcpy(cfg->arch, a, strlen(a) + 1);
        free(a);
        if (!err && !(err = check_value(param_index("optimizer"), opt, "optimizer", errstr,
                                        errstr_size)))
            cfg->optimizer = (int32_t)num_value(param_index("optimizer"), opt);
        if (!err && aug && !(err = check_value(param_index("augment"), aug, "augment", errstr,
                                               errstr_size)))
            cfg->augment = (int32_t)json_number_value(aug);
        if (!err && ls && !(err = check_value(param_index("label_smoothing"), ls,
                                              "label_smoothing", errstr, errstr_size)))
            cfg->label_smoothing = json_number_value(ls);
        if (!err && rs && !(err = check_value(param_index("lr_restart"), rs, "lr_restart",
                                              errstr, errstr_size)))
            cfg->lr_restart = (int32_t)json_number_value(rs);
    } else if (!json_is_array(hidden) || json_array_size(hidden) < 1 ||
               json_array_size(hidden) > 8)
        err = bad(errstr, errstr_size, "hidden", "must be an array of 1 to 8 widths");
    for (size_t i = 0; !err && cfg->family == ENS_FAMILY_MLP && i < json_array_size(hidden);
         i++) {
        err = check_value(param_index("width"), json_array_get(hidden, i), "hidden", errstr,
                          errstr_size);
        cfg->hidden[cfg->n_hidden++] = (int32_t)json_number_value(json_array_get(hidden, i));
    }
    const char *names[] = {"lr", "momentum", "batch_size", "weight_decay"};
    double vals[4];
    for (int i = 0; !err && i < 4; i++) {
        json_t *v = json_object_get(j, names[i]);
        if (!v)
            err = bad(errstr, errstr_size, names[i], "missing");
        else
            err = check_value(param_index(names[i]), v, names[i], errstr, errstr_size);
        vals[i] = json_number_value(v);
    }
    if (!err) {
        cfg->lr = vals[0];
        cfg->momentum = vals[1];
        cfg->batch_size = (int32_t)vals[2];
        cfg->weight_decay = vals[3];
    }
    json_decref(j);
    return err;
}

void ens_trial_train_opts(const ens_trial_config_t *cfg, double job_from, double job_to,
                          double study_epochs, ens_train_opts_t *opts) {
    ens_train_opts_default(opts);
    opts->lr = cfg->lr;
    opts->momentum = cfg->momentum;
    opts->weight_decay = cfg->weight_decay;
    opts->batch_size = cfg->batch_size;
    if (cfg->family == ENS_FAMILY_CNN) {
        opts->optimizer = (ens_optimizer_t)cfg->optimizer;
        opts->schedule = ENS_LR_COSINE;
        /* one cosine over the study's top rung, or a cycle per job (warm restarts): each
         * rung's checkpoint is then trained to the end of a cycle */
        opts->total_epochs = cfg->lr_restart ? job_to : study_epochs;
        opts->cycle_start_epochs = cfg->lr_restart ? job_from : 0;
        opts->warmup_epochs = 0.5;
        opts->aug_crop_pad = cfg->augment ? 2 : 0;
        opts->aug_hflip = cfg->augment ? 1 : 0;
        opts->label_smoothing = cfg->label_smoothing;
    }
}
