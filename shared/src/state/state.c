/* state.c - the public ens_state_* functions: arguments checked, events and float16 coded
 * here once, then the implementation's operation. */
#include "ensflow/state.h"
#include "state_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ens_state_s {
    const struct ens_state_i *iface;
    void *ctx;
};

const int32_t ens_state_profile_batches[ENS_STATE_N_PROFILE] = {1, 8, 32, 128};

ens_err_t ens_state_new(const struct ens_state_i *iface, void *ctx, ens_state_t **out) {
    if (!iface || !out)
        return ENS_ERR_INVALID;
    ens_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return ENS_ERR_NOMEM;
    st->iface = iface;
    st->ctx = ctx;
    *out = st;
    return ENS_OK;
}

void ens_state_free(ens_state_t *st) {
    if (!st)
        return;
    if (st->iface->free)
        st->iface->free(st->ctx);
    free(st);
}

/* studies, compaction and serving: for the public functions of state_studies.c */
const struct ens_state_i *ens_state_iface(const ens_state_t *st) {
    return st->iface;
}

void *ens_state_ctx(const ens_state_t *st) {
    return st->ctx;
}

const char *ens_state_name(const ens_state_t *st) {
    return st && st->iface->name ? st->iface->name : "?";
}

void ens_state_strings_free(char **s, int n) {
    for (int i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

uint16_t ens_state_f16_encode(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, m = x & 0x7fffffu;
    if (e == 0xff) /* inf, nan */
        return (uint16_t)(sign | 0x7c00u | (m ? 0x200u : 0));
    int32_t he = (int32_t)e - 127 + 15;
    if (he >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (he <= 0) { /* subnormal half: m * 2^-24, rounded to nearest even */
        if (he < -10)
            return (uint16_t)sign;
        m |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - he), hm = m >> shift, rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (hm & 1u)))
            hm++;
        return (uint16_t)(sign | hm);
    }
    uint32_t h = sign | ((uint32_t)he << 10) | (m >> 13), rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is still the right rounding */
    return (uint16_t)h;
}

void ens_state_f16_decode(const uint16_t *in, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t h = in[i], sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
        uint32_t x;
        if (e == 0) { /* zero or subnormal: m * 2^-24 */
            float f = (float)m * 0x1p-24f;
            out[i] = sign ? -f : f;
            continue;
        }
        if (e == 31)
            x = sign | 0x7f800000u | (m << 13);
        else
            x = sign | ((e + 112u) << 23) | (m << 13);
        memcpy(&out[i], &x, sizeof x);
    }
}

/* The checks every public function makes; a NULL optional operation is unsupported. */
#define NEED(cond)                                                                              \
    do {                                                                                        \
        if (!st || !(cond))                                                                     \
            return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "%s: bad argument",       \
                               __func__);                                                       \
    } while (0)
#define OPTIONAL(op)                                                                            \
    do {                                                                                        \
        if (!st->iface->op)                                                                     \
            return ens_err_set(errstr, errstr_size, ENS_ERR_UNSUPPORTED,                       \
                               "the %s state does not " #op, ens_state_name(st));               \
    } while (0)

static int id_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_ID_MAX;
}

ens_err_t ens_state_study_get(ens_state_t *st, const char *study, ens_state_study_t *out,
                              char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && out);
    memset(out, 0, sizeof *out);
    out->val_fraction = 0.1;
    out->top_k = 5;
    return st->iface->study_get(st->ctx, study, out, errstr, errstr_size);
}

ens_err_t ens_state_study_put(ens_state_t *st, const char *study, const ens_state_study_t *s,
                              char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && s);
    OPTIONAL(study_put);
    return st->iface->study_put(st->ctx, study, s, errstr, errstr_size);
}

ens_err_t ens_state_model_get(ens_state_t *st, const char *study, const char *model,
                              void **data, size_t *len, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && data && len);
    *data = NULL;
    *len = 0;
    return st->iface->model_get(st->ctx, study, model, data, len, errstr, errstr_size);
}

ens_err_t ens_state_model_put(ens_state_t *st, const char *study, const char *model,
                              const void *data, size_t len, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && (data || !len));
    OPTIONAL(model_put);
    return st->iface->model_put(st->ctx, study, model, data, len, errstr, errstr_size);
}

ens_err_t ens_state_eval_put(ens_state_t *st, const char *study, const char *model,
                             const ens_state_eval_t *e, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && e);
    return st->iface->eval_put(st->ctx, study, model, e, errstr, errstr_size);
}

ens_err_t ens_state_eval_put_halves(ens_state_t *st, const char *study, const char *model,
                                    const ens_state_eval_t *e, char *errstr,
                                    size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && e);
    return st->iface->eval_put_halves(st->ctx, study, model, e, errstr, errstr_size);
}

ens_err_t ens_state_eval_get(ens_state_t *st, const char *study, const char *model,
                             ens_state_eval_t *e, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && e);
    memset(e, 0, sizeof *e);
    return st->iface->eval_get(st->ctx, study, model, e, errstr, errstr_size);
}

ens_err_t ens_state_probs_put(ens_state_t *st, const char *study, const char *model,
                              const float *probs, int32_t n_val, int32_t k, char *errstr,
                              size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && probs && n_val > 0 && k > 0);
    /* float16: half the bytes, and ~3 significant digits are plenty to rank ensembles */
    size_t cells = (size_t)n_val * (size_t)k;
    uint16_t *half = malloc(cells * sizeof *half + 1);
    if (!half)
        return ENS_ERR_NOMEM;
    for (size_t i = 0; i < cells; i++)
        half[i] = ens_state_f16_encode(probs[i]);
    ens_err_t err =
        st->iface->probs_put(st->ctx, study, model, half, cells * sizeof *half, errstr,
                             errstr_size);
    free(half);
    return err;
}

ens_err_t ens_state_probs_get(ens_state_t *st, const char *study, const char *model,
                              int32_t n_val, int32_t k, int f16, float **probs, char *errstr,
                              size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model) && probs && n_val > 0 && k > 0);
    *probs = NULL;
    void *blob = NULL;
    size_t len = 0, cells = (size_t)n_val * (size_t)k;
    ens_err_t err = st->iface->probs_get(st->ctx, study, model, &blob, &len, errstr,
                                         errstr_size);
    if (err)
        return err;
    if (len != cells * (f16 ? 2 : 4)) {
        free(blob);
        return ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                           "probabilities of %s have %zu bytes, expected %zu (%s)", model, len,
                           cells * (f16 ? 2 : 4), f16 ? "float16" : "float32");
    }
    if (!f16) { /* an older float32 blob, as it is */
        *probs = blob;
        return ENS_OK;
    }
    float *p = malloc(cells * sizeof *p + 1);
    if (p)
        ens_state_f16_decode(blob, cells, p);
    free(blob);
    if (!p)
        return ENS_ERR_NOMEM;
    *probs = p;
    return ENS_OK;
}

ens_err_t ens_state_labels_put(ens_state_t *st, const char *study, const int32_t *labels,
                               int32_t n, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && labels && n > 0);
    return st->iface->labels_put(st->ctx, study, labels, (size_t)n * sizeof *labels, errstr,
                                 errstr_size);
}

ens_err_t ens_state_labels_get(ens_state_t *st, const char *study, int32_t n, int32_t k,
                               int32_t **labels, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && labels && n > 0 && k > 0);
    *labels = NULL;
    void *blob = NULL;
    size_t len = 0;
    ens_err_t err = st->iface->labels_get(st->ctx, study, &blob, &len, errstr, errstr_size);
    if (err)
        return err;
    if (len != (size_t)n * sizeof(int32_t)) {
        free(blob);
        return ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                           "validation labels have %zu bytes", len);
    }
    int32_t *y = blob;
    for (int32_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= k) {
            free(blob);
            return ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT,
                               "validation label out of range");
        }
    *labels = y;
    return ENS_OK;
}

ens_err_t ens_state_library_add(ens_state_t *st, const char *study, const char *model,
                                char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(model));
    return st->iface->library_add(st->ctx, study, model, errstr, errstr_size);
}

ens_err_t ens_state_library_list(ens_state_t *st, const char *study, char ***models, int *n,
                                 char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && models && n);
    *models = NULL;
    *n = 0;
    return st->iface->library_list(st->ctx, study, models, n, errstr, errstr_size);
}

ens_err_t ens_state_dirty_add(ens_state_t *st, const char *study, char *errstr,
                              size_t errstr_size) {
    NEED(id_ok(study));
    return st->iface->dirty_add(st->ctx, study, errstr, errstr_size);
}

ens_err_t ens_state_dirty_remove(ens_state_t *st, const char *study, char *errstr,
                                 size_t errstr_size) {
    NEED(id_ok(study));
    return st->iface->dirty_remove(st->ctx, study, errstr, errstr_size);
}

ens_err_t ens_state_dirty_list(ens_state_t *st, char ***studies, int *n, char *errstr,
                               size_t errstr_size) {
    NEED(studies && n);
    *studies = NULL;
    *n = 0;
    return st->iface->dirty_list(st->ctx, studies, n, errstr, errstr_size);
}

/* An event's bytes handed to put(); the encoding is Avro single-object, as on Kafka. */
static ens_err_t put_event(const ens_event_t *ev, ens_event_type_t type, uint8_t **buf,
                           size_t *len, char *errstr, size_t errstr_size) {
    if (ev->type != type)
        return ens_err_set(errstr, errstr_size, ENS_ERR_INVALID, "a %s where a %s belongs",
                           ens_event_type_name(ev->type), ens_event_type_name(type));
    return ens_event_encode(ev, buf, len, errstr, errstr_size);
}

/* Decode bytes got from the implementation (freed here), checking the event's type. */
static ens_err_t got_event(ens_err_t err, void *data, size_t len, ens_event_type_t type,
                           ens_event_t *ev, char *errstr, size_t errstr_size) {
    if (!err)
        err = ens_event_decode(data, len, ev, errstr, errstr_size);
    free(data);
    if (!err && ev->type != type) {
        err = ens_err_set(errstr, errstr_size, ENS_ERR_CORRUPT, "stored %s where a %s belongs",
                          ens_event_type_name(ev->type), ens_event_type_name(type));
        ens_event_free(ev);
    }
    return err;
}

ens_err_t ens_state_front_put(ens_state_t *st, const char *study, const ens_event_t *front,
                              char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && front);
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_err_t err = put_event(front, ENS_EV_ENSEMBLE_FRONT, &buf, &len, errstr, errstr_size);
    if (!err)
        err = st->iface->front_put(st->ctx, study, buf, len, errstr, errstr_size);
    free(buf);
    return err;
}

ens_err_t ens_state_front_get(ens_state_t *st, const char *study, ens_event_t *front,
                              char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && front);
    void *data = NULL;
    size_t len = 0;
    ens_err_t err = st->iface->front_get(st->ctx, study, &data, &len, errstr, errstr_size);
    return got_event(err, data, len, ENS_EV_ENSEMBLE_FRONT, front, errstr, errstr_size);
}

ens_err_t ens_state_deploy_put(ens_state_t *st, const char *study, const char *event_id,
                               const ens_event_t *plan, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(event_id) && plan);
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_err_t err = put_event(plan, ENS_EV_PLACEMENT_PLAN, &buf, &len, errstr, errstr_size);
    if (!err)
        err = st->iface->deploy_put(st->ctx, study, event_id, buf, len, errstr, errstr_size);
    free(buf);
    return err;
}

ens_err_t ens_state_deploy_get(ens_state_t *st, const char *study, const char *event_id,
                               ens_event_t *plan, char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && id_ok(event_id) && plan);
    void *data = NULL;
    size_t len = 0;
    ens_err_t err =
        st->iface->deploy_get(st->ctx, study, event_id, &data, &len, errstr, errstr_size);
    return got_event(err, data, len, ENS_EV_PLACEMENT_PLAN, plan, errstr, errstr_size);
}

ens_err_t ens_state_plan_put(ens_state_t *st, const char *study, const ens_event_t *plan,
                             char *errstr, size_t errstr_size) {
    NEED(id_ok(study) && plan);
    uint8_t *buf = NULL;
    size_t len = 0;
    ens_err_t err = put_event(plan, ENS_EV_PLACEMENT_PLAN, &buf, &len, errstr, errstr_size);
    if (!err)
        err = st->iface->plan_put(st->ctx, study, buf, len, errstr, errstr_size);
    free(buf);
    return err;
}

ens_err_t ens_state_plan_get(ens_state_t *st, const char *study, ens_event_t *plan,
                             char *errstr, size_t errstr_size) {
    NEED((!study || id_ok(study)) && plan);
    void *data = NULL;
    size_t len = 0;
    ens_err_t err = st->iface->plan_get(st->ctx, study, &data, &len, errstr, errstr_size);
    return got_event(err, data, len, ENS_EV_PLACEMENT_PLAN, plan, errstr, errstr_size);
}

ens_err_t ens_state_plan_version_next(ens_state_t *st, int64_t *version, char *errstr,
                                      size_t errstr_size) {
    NEED(version);
    return st->iface->plan_version_next(st->ctx, version, errstr, errstr_size);
}

ens_err_t ens_state_plan_version_get(ens_state_t *st, int64_t *version, char *errstr,
                                     size_t errstr_size) {
    NEED(version);
    return st->iface->plan_version_get(st->ctx, version, errstr, errstr_size);
}

ens_err_t ens_state_plan_compute_put(ens_state_t *st, int64_t version,
                                     const char *const *devices, const double *ms, int n,
                                     char *errstr, size_t errstr_size) {
    NEED(version > 0 && n >= 0 && (!n || (devices && ms)));
    for (int i = 0; i < n; i++)
        NEED(id_ok(devices[i]));
    return st->iface->plan_compute_put(st->ctx, version, devices, ms, n, errstr, errstr_size);
}

ens_err_t ens_state_plan_compute_get(ens_state_t *st, int64_t version, const char *device,
                                     double *ms, char *errstr, size_t errstr_size) {
    NEED(version > 0 && id_ok(device) && ms);
    *ms = 0;
    return st->iface->plan_compute_get(st->ctx, version, device, ms, errstr, errstr_size);
}

ens_err_t ens_state_device_put(ens_state_t *st, const ens_device_t *d, int ttl_seconds,
                               char *errstr, size_t errstr_size) {
    NEED(d && id_ok(d->device_id) && ttl_seconds > 0);
    return st->iface->device_put(st->ctx, d, ttl_seconds, errstr, errstr_size);
}

ens_err_t ens_state_device_remove(ens_state_t *st, const char *device_id, char *errstr,
                                  size_t errstr_size) {
    NEED(id_ok(device_id));
    return st->iface->device_remove(st->ctx, device_id, errstr, errstr_size);
}

ens_err_t ens_state_device_list(ens_state_t *st, ens_device_t **devices, int *n, char *errstr,
                                size_t errstr_size) {
    NEED(devices && n);
    *devices = NULL;
    *n = 0;
    return st->iface->device_list(st->ctx, devices, n, errstr, errstr_size);
}

/* ---- trainers ------------------------------------------------------------------------- */

static int trainer_ok(const char *s) {
    return s && s[0] && strlen(s) < ENS_STATE_TRAINER_ID_MAX && !strpbrk(s, " \t\r\n");
}

ens_err_t ens_state_trainer_beat(ens_state_t *st, const char *trainer, int64_t beat_ms,
                                 char *errstr, size_t errstr_size) {
    NEED(trainer_ok(trainer) && beat_ms >= 0);
    return st->iface->trainer_beat(st->ctx, trainer, beat_ms, errstr, errstr_size);
}

ens_err_t ens_state_trainer_state_put(ens_state_t *st, const char *trainer, const char *state,
                                      char *errstr, size_t errstr_size) {
    NEED(trainer_ok(trainer) && state && strlen(state) < ENS_STATE_TRAINER_STATE_MAX);
    return st->iface->trainer_state_put(st->ctx, trainer, state, errstr, errstr_size);
}

ens_err_t ens_state_trainer_busy_add(ens_state_t *st, const char *trainer, double seconds,
                                     char *errstr, size_t errstr_size) {
    NEED(trainer_ok(trainer) && isfinite(seconds));
    return st->iface->trainer_busy_add(st->ctx, trainer, seconds, errstr, errstr_size);
}

ens_err_t ens_state_trainer_parts_put(ens_state_t *st, const char *trainer, const char *record,
                                      char *errstr, size_t errstr_size) {
    NEED(trainer_ok(trainer) && (!record || strlen(record) < ENS_STATE_TRAINER_RECORD_MAX));
    return st->iface->trainer_parts_put(st->ctx, trainer, record, errstr, errstr_size);
}

ens_err_t ens_state_trainer_remove(ens_state_t *st, const char *trainer, char *errstr,
                                   size_t errstr_size) {
    NEED(trainer_ok(trainer));
    return st->iface->trainer_remove(st->ctx, trainer, errstr, errstr_size);
}

ens_err_t ens_state_trainer_live(ens_state_t *st, int64_t since_ms, int *n, char *errstr,
                                 size_t errstr_size) {
    NEED(n);
    *n = 0;
    return st->iface->trainer_live(st->ctx, since_ms, n, errstr, errstr_size);
}

ens_err_t ens_state_trainer_parts_list(ens_state_t *st, char ***trainers, char ***records,
                                       int *n, char *errstr, size_t errstr_size) {
    NEED(trainers && records && n);
    *trainers = *records = NULL;
    *n = 0;
    return st->iface->trainer_parts_list(st->ctx, trainers, records, n, errstr, errstr_size);
}

ens_err_t ens_state_trainer_state_list(ens_state_t *st, char ***trainers, char ***states,
                                       int *n, char *errstr, size_t errstr_size) {
    NEED(trainers && states && n);
    *trainers = *states = NULL;
    *n = 0;
    return st->iface->trainer_state_list(st->ctx, trainers, states, n, errstr, errstr_size);
}

ens_err_t ens_state_trainer_get(ens_state_t *st, const char *trainer, ens_state_trainer_t *out,
                                char *errstr, size_t errstr_size) {
    NEED(trainer_ok(trainer) && out);
    memset(out, 0, sizeof *out);
    out->beat_ms = -1;
    return st->iface->trainer_get(st->ctx, trainer, out, errstr, errstr_size);
}
