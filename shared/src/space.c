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

/* One entry: scalar, choice array, or {"uniform"|"log_uniform"|"int": [lo, hi]}. */
static ens_err_t check_entry(const char *key, json_t *v, char *errstr, size_t size) {
    int p = param_index(key);
    if (p < 0)
        return bad(errstr, size, key, "unknown hyperparameter (known: layers, width, lr, "
                                      "momentum, batch_size, weight_decay)");
    if (json_is_array(v)) {
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
    if (json_is_object(v)) {
        if (json_object_size(v) != 1)
            return bad(errstr, size, key, "a range object has exactly one of uniform, "
                                          "log_uniform, int");
        const char *kind = json_object_iter_key(json_object_iter(v));
        json_t *r = json_object_get(v, kind);
        if (strcmp(kind, "uniform") && strcmp(kind, "log_uniform") && strcmp(kind, "int"))
            return bad(errstr, size, key, "range kind must be uniform, log_uniform or int");
        if (!json_is_array(r) || json_array_size(r) != 2)
            return bad(errstr, size, key, "a range is [low, high]");
        for (int i = 0; i < 2; i++) {
            ens_err_t err = check_value(p, json_array_get(r, (size_t)i), key, errstr, size);
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
            ens_err_t err = check_entry(key, v, errstr, size);
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

static double sample(json_t *v, ens_rng_t *rng) {
    if (json_is_array(v))
        return json_number_value(
            json_array_get(v, (size_t)(ens_rng_next(rng) % json_array_size(v))));
    if (json_is_object(v)) {
        const char *kind = json_object_iter_key(json_object_iter(v));
        json_t *r = json_object_get(v, kind);
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

ens_err_t ens_space_sample(const char *space_json, uint64_t seed, int32_t index,
                           char **config_json, char *errstr, size_t errstr_size) {
    json_t *space = NULL;
    ens_err_t err = load_space(space_json, &space, errstr, errstr_size);
    if (err)
        return err;
    ens_rng_t rng;
    ens_rng_seed(&rng, seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(index + 1)));
    int layers = (int)round(sample(json_object_get(space, "layers"), &rng));
    json_t *cfg = json_object(), *hidden = json_array();
    for (int l = 0; l < layers; l++)
        json_array_append_new(hidden,
                              json_integer((json_int_t)round(sample(json_object_get(space, "width"),
                                                                    &rng))));
    json_object_set_new(cfg, "hidden", hidden);
    json_object_set_new(cfg, "lr", json_real(sample(json_object_get(space, "lr"), &rng)));
    json_object_set_new(cfg, "momentum",
                        json_real(sample(json_object_get(space, "momentum"), &rng)));
    json_object_set_new(cfg, "batch_size",
                        json_integer((json_int_t)round(
                            sample(json_object_get(space, "batch_size"), &rng))));
    json_object_set_new(cfg, "weight_decay",
                        json_real(sample(json_object_get(space, "weight_decay"), &rng)));
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
