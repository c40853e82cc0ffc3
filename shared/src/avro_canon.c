/* avro_canon.c - Avro Parsing Canonical Form of a schema and its CRC-64-AVRO fingerprint. */
#include "ensflow/events.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define CANON_MAX_DEPTH 64

uint64_t ens_avro_fingerprint64(const char *canonical, size_t len) {
    /* Bitwise form of the spec's table-driven Rabin fingerprint (same result, no table). */
    const uint64_t empty = 0xc15d213aa4d7a795ULL;
    uint64_t fp = empty;
    for (size_t i = 0; i < len; i++) {
        fp ^= (uint8_t)canonical[i];
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (empty & (0 - (fp & 1)));
    }
    return fp;
}

static int is_primitive(const char *t) {
    static const char *const prims[] = {"null", "boolean", "int",    "long",
                                        "float", "double", "bytes", "string"};
    for (size_t i = 0; i < sizeof prims / sizeof prims[0]; i++)
        if (strcmp(t, prims[i]) == 0)
            return 1;
    return 0;
}

/* Full name of a named type or reference: names with a dot are already full. */
static json_t *fullname(const char *name, const char *ns) {
    if (strchr(name, '.') || !ns || !*ns)
        return json_string(name);
    return json_sprintf("%s.%s", ns, name);
}

/* Canonical JSON of schema s inside namespace ns, or NULL (with *why set) when malformed. */
static json_t *canon(const json_t *s, const char *ns, int depth, const char **why) {
    if (depth > CANON_MAX_DEPTH) {
        *why = "schema nested too deeply";
        return NULL;
    }
    if (json_is_string(s)) {
        const char *t = json_string_value(s);
        return is_primitive(t) ? json_string(t) : fullname(t, ns);
    }
    if (json_is_array(s)) { /* union */
        json_t *out = json_array();
        size_t i;
        const json_t *b;
        json_array_foreach(s, i, b) {
            json_t *c = canon(b, ns, depth + 1, why);
            if (!c || json_array_append_new(out, c) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        return out;
    }
    const json_t *type = json_is_object(s) ? json_object_get(s, "type") : NULL;
    if (!type) {
        *why = "a schema must be a string, an array or an object with \"type\"";
        return NULL;
    }
    if (!json_is_string(type)) /* {"type": {...}} wraps another schema */
        return canon(type, ns, depth + 1, why);
    const char *t = json_string_value(type);
    json_t *out = json_object(), *child = NULL;
    int named = !strcmp(t, "record") || !strcmp(t, "error") || !strcmp(t, "enum") ||
                !strcmp(t, "fixed");
    char *inner_ns = NULL;
    if (named) {
        const json_t *name = json_object_get(s, "name"), *space = json_object_get(s, "namespace");
        if (!json_is_string(name)) {
            *why = "named type without a string \"name\"";
            goto fail;
        }
        json_t *full = fullname(json_string_value(name),
                                json_is_string(space) ? json_string_value(space) : ns);
        const char *fs = json_string_value(full), *dot = strrchr(fs, '.');
        inner_ns = strndup(fs, dot ? (size_t)(dot - fs) : 0);
        json_object_set_new(out, "name", full);
        json_object_set_new(out, "type", json_string(t));
        if (!strcmp(t, "enum")) {
            child = json_object_get(s, "symbols");
            if (!json_is_array(child)) {
                *why = "enum without \"symbols\"";
                goto fail;
            }
            json_object_set(out, "symbols", child);
        } else if (!strcmp(t, "fixed")) {
            child = json_object_get(s, "size");
            if (!json_is_integer(child)) {
                *why = "fixed without an integer \"size\"";
                goto fail;
            }
            json_object_set_new(out, "size", json_integer(json_integer_value(child)));
        } else {
            const json_t *fields = json_object_get(s, "fields"), *f;
            size_t i;
            if (!json_is_array(fields)) {
                *why = "record without \"fields\"";
                goto fail;
            }
            json_t *cf = json_array();
            json_object_set_new(out, "fields", cf);
            json_array_foreach(fields, i, f) {
                const json_t *fname = json_object_get(f, "name");
                const json_t *ftype = json_object_get(f, "type");
                if (!json_is_string(fname) || !ftype) {
                    *why = "record field without \"name\" or \"type\"";
                    goto fail;
                }
                json_t *ct = canon(ftype, inner_ns, depth + 1, why);
                if (!ct)
                    goto fail;
                json_array_append_new(cf, json_pack("{s:O,s:o}", "name", fname, "type", ct));
            }
        }
    } else if (!strcmp(t, "array") || !strcmp(t, "map")) {
        const char *key = t[0] == 'a' ? "items" : "values";
        const json_t *sub = json_object_get(s, key);
        if (!sub) {
            *why = "array without \"items\" or map without \"values\"";
            goto fail;
        }
        json_t *c = canon(sub, ns, depth + 1, why);
        if (!c)
            goto fail;
        json_object_set_new(out, "type", json_string(t));
        json_object_set_new(out, key, c);
    } else { /* {"type":"int", ...} or {"type":"ns.Name"}: attributes do not matter */
        json_decref(out);
        return is_primitive(t) ? json_string(t) : fullname(t, ns);
    }
    free(inner_ns);
    return out;
fail:
    free(inner_ns);
    json_decref(out);
    return NULL;
}

ens_err_t ens_avro_canonical_form(const char *schema_json, char **out, char *errstr,
                                  size_t errstr_size) {
    if (!schema_json || !out)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "NULL argument");
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(schema_json, JSON_DECODE_ANY, &jerr);
    if (!root)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "schema is not JSON: %s (line %d)",
                           jerr.text, jerr.line);
    const char *why = "out of memory";
    json_t *c = canon(root, "", 0, &why);
    json_decref(root);
    if (!c)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "bad schema: %s", why);
    *out = json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(c);
    if (!*out)
        return ens_err_set(errstr, errstr_size, ENS_ERR_NOMEM, "json_dumps failed");
    return ENS_OK;
}
