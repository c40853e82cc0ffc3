/* space.c - JSON search spaces: validation, seeded sampling, configuration parsing. */
#include "ensflow/space.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/data.h"

static const char *default_space =
    "{\"layers\":{\"int\":[1,3]},\"width\":[64,128,256,512],"
    "\"lr\":{\"log_uniform\":[0.005,0.1]},\"momentum\":[0.8,0.9,0.95],"
    "\"batch_size\":[64,128,256],\"weight_decay\":{\"log_uniform\":[1e-6,1e-3]}}";

static const struct {
    const char *name;
    double lo, hi; /* what a trainer accepts */
    int integer;
} params[] = {{"layers", 1, 8, 1},      {"width", 1, 8192, 1},     {"lr", 1e-6, 10, 0},
              {"momentum", 0, 0.999, 0}, {"batch_size", 1, 4096, 1}, {"weight_decay", 0, 1, 0}};
#define N_PARAMS (int)(sizeof params / sizeof params[0])

static int param_index(const char *name) {
    for (int i = 0; i < N_PARAMS; i++)
        if (strcmp(params[i].name, name) == 0)
            return i;
    return -1;
}

static ens_err_t bad(char *errstr, size_t size, const char *field, const char *why) {
    return ens_err_set(errstr, size, ENS_ERR_INVALID, "search space field \"%s\": %s", field, why);
}

static ens_err_t check_value(int p, json_t *v, const char *field, char *errstr, size_t size) {
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
    json_t *target = user ? json_object_get(user, on) : NULL;
    if (json_is_object(target) && json_object_get(target, "cond"))
        return bad(errstr, size, key, "cond.param may not itself be conditional");
    return check_choice(p, values, key, errstr, size);
}

/* One entry: scalar, choice array, or an object with one of "uniform" | "log_uniform" |
 * "int" : [lo, hi] or "choice": [..], and optionally "cond" and "else". */
static ens_err_t check_entry(const char *key, json_t *v, json_t *user, char *errstr,
                             size_t size) {
    int p = param_index(key);
    if (p < 0)
        return bad(errstr, size, key, "unknown hyperparameter (known: layers, width, lr, "
                                      "momentum, batch_size, weight_decay)");
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
    *out = space;
    return ENS_OK;
}

ens_err_t ens_space_validate(const char *space_json, char *errstr, size_t errstr_size) {
    json_t *space = NULL;
    ens_err_t err = load_space(space_json, &space, errstr, errstr_size);
    json_decref(space);
    return err;
}

/* Value of a parameter whose cond does not hold and that has no "else". */
static const double fallback[] = {2, 128, 0.01, 0.9, 128, 1e-4};

static double sample(json_t *v, ens_rng_t *rng) {
    if (json_is_array(v))
        return json_number_value(
            json_array_get(v, (size_t)(ens_rng_next(rng) % json_array_size(v))));
    if (json_is_object(v)) {
        const char *kind = range_kind(v);
        json_t *r = json_object_get(v, kind);
        if (!strcmp(kind, "choice"))
            return sample(r, rng);
        double lo = json_number_value(json_array_get(r, 0));
        double hi = json_number_value(json_array_get(r, 1));
        double u = ens_rng_uniform(rng);
        if (!strcmp(kind, "log_uniform"))
            return exp(log(lo) + u * (log(hi) - log(lo)));
        if (!strcmp(kind, "int"))
            return lo + (double)(ens_rng_next(rng) % (uint64_t)(hi - lo + 1));
        return lo + u * (hi - lo);
    }
    return json_number_value(v);
}

/* Does the cond of parameter `name` hold for the values sampled (vals, by params index)? */
static int cond_holds(json_t *space, const char *name, const double *vals) {
    json_t *cond = json_object_get(json_object_get(space, name), "cond");
    if (!cond)
        return 1;
    double x = vals[param_index(json_string_value(json_object_get(cond, "param")))];
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(cond, "values"), i, c) {
        if (fabs(json_number_value(c) - x) <= 1e-12 * (fabs(x) + 1))
            return 1;
    }
    return 0;
}

static double else_value(json_t *space, const char *name) {
    json_t *e = json_object_get(json_object_get(space, name), "else");
    return e ? json_number_value(e) : fallback[param_index(name)];
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
     * for every space shape, so adding a cond changes only the parameter it guards. */
    double vals[N_PARAMS], widths[8];
    int layers = (int)round(sample(json_object_get(space, "layers"), &rng));
    vals[param_index("layers")] = layers;
    for (int l = 0; l < 8; l++)
        widths[l] = l < layers ? round(sample(json_object_get(space, "width"), &rng)) : 0;
    const char *rest[] = {"lr", "momentum", "batch_size", "weight_decay"};
    for (int i = 0; i < 4; i++)
        vals[param_index(rest[i])] = sample(json_object_get(space, rest[i]), &rng);
    vals[param_index("width")] = widths[0];
    /* conds look at unconditional parameters only (checked), so the order does not matter */
    double cooked[N_PARAMS];
    for (int i = 0; i < N_PARAMS; i++)
        cooked[i] = cond_holds(space, params[i].name, vals) ? vals[i]
                                                            : else_value(space, params[i].name);
    if (cooked[param_index("layers")] != layers) {
        layers = (int)round(cooked[param_index("layers")]);
        for (int l = 0; l < layers && l < 8; l++)
            widths[l] = round(sample(json_object_get(space, "width"), &rng));
    }
    int width_on = cond_holds(space, "width", vals);
    json_t *cfg = json_object(), *hidden = json_array();
    for (int l = 0; l < layers && l < 8; l++)
        json_array_append_new(hidden, json_integer((json_int_t)(
                                          width_on ? widths[l] : else_value(space, "width"))));
    json_object_set_new(cfg, "hidden", hidden);
    json_object_set_new(cfg, "lr", json_real(cooked[param_index("lr")]));
    json_object_set_new(cfg, "momentum", json_real(cooked[param_index("momentum")]));
    json_object_set_new(cfg, "batch_size",
                        json_integer((json_int_t)round(cooked[param_index("batch_size")])));
    json_object_set_new(cfg, "weight_decay", json_real(cooked[param_index("weight_decay")]));
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
    json_t *hidden = json_object_get(j, "hidden");
    if (!json_is_array(hidden) || json_array_size(hidden) < 1 || json_array_size(hidden) > 8)
        err = bad(errstr, errstr_size, "hidden", "must be an array of 1 to 8 widths");
    for (size_t i = 0; !err && i < json_array_size(hidden); i++) {
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
