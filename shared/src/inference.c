/* inference.c - the plan in force and the combined prediction of a batch of requests. */
#include "ensflow/inference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensflow/ensemble.h"
#include "ensflow/log.h"
#include "ensflow/nn.h"

typedef struct {
    int n;
    ens_model_t **models;
    double *weights;
    char (*ids)[ENS_ID_MAX];
    double *lo, *hi; /* this rank's share of a batch's rows for each member it runs */
    int32_t *batch;  /* the plan's batch size for each member on this rank (0 = whole batch) */
    int placed;      /* 1: members follow the plan's device rows; 0: round robin */
    char ensemble_id[ENS_ID_MAX];
    int64_t version;
    int32_t dim, k;
} plan_state_t;

struct ens_inference_s {
    plan_state_t cur;
    int rank, size;                 /* this process's share of the members (MPI groups) */
    char instance[ENS_ID_MAX];      /* the group's devices are <instance>-r<rank> */
    int64_t max_values;             /* largest request answered (0 = no limit) */
    int32_t member_batch;           /* every member's batch size (0 = the plan's) */
    ens_inference_hooks_t hooks;
    ens_models_t *store;            /* where members' files are (not owned) */
    float *x, *out, **member_out; /* batch buffers, grown on demand */
    size_t cap_rows;
};

static void plan_clear(plan_state_t *p) {
    for (int i = 0; i < p->n; i++)
        ens_model_free(p->models[i]);
    free(p->models);
    free(p->weights);
    free(p->ids);
    free(p->lo);
    free(p->hi);
    free(p->batch);
    memset(p, 0, sizeof *p);
    p->version = -1;
}

ens_err_t ens_inference_new(ens_inference_t **out) {
    ens_inference_t *inf = calloc(1, sizeof *inf);
    if (!inf)
        return ENS_ERR_NOMEM;
    inf->cur.version = -1;
    inf->size = 1;
    *out = inf;
    return ENS_OK;
}

static void free_buffers(ens_inference_t *inf) {
    for (int i = 0; inf->member_out && i < inf->cur.n; i++)
        free(inf->member_out[i]);
    free(inf->member_out);
    free(inf->x);
    free(inf->out);
    inf->member_out = NULL;
    inf->x = inf->out = NULL;
    inf->cap_rows = 0;
}

void ens_inference_free(ens_inference_t *inf) {
    if (!inf)
        return;
    free_buffers(inf);
    plan_clear(&inf->cur);
    free(inf);
}

int64_t ens_inference_plan_version(const ens_inference_t *inf) { return inf->cur.version; }

void ens_inference_adopt(ens_inference_t *inf, ens_inference_t *from) {
    free_buffers(inf);
    free_buffers(from);
    plan_clear(&inf->cur);
    inf->cur = from->cur;
    memset(&from->cur, 0, sizeof from->cur);
    from->cur.version = -1;
}

int32_t ens_inference_input_dim(const ens_inference_t *inf) { return inf->cur.dim; }

int32_t ens_inference_n_classes(const ens_inference_t *inf) { return inf->cur.k; }

void ens_inference_set_partition(ens_inference_t *inf, int rank, int size,
                                  const ens_inference_hooks_t *hooks) {
    inf->rank = rank;
    inf->size = size > 0 ? size : 1;
    if (hooks)
        inf->hooks = *hooks;
    else
        memset(&inf->hooks, 0, sizeof inf->hooks);
}

void ens_inference_set_max_values(ens_inference_t *inf, int64_t max_values) {
    inf->max_values = max_values > 0 ? max_values : 0;
}

void ens_inference_set_member_batch(ens_inference_t *inf, int32_t n) {
    inf->member_batch = n > 0 ? n : 0;
}

int32_t ens_inference_member_batch(const ens_inference_t *inf) { return inf->member_batch; }

void ens_inference_set_instance(ens_inference_t *inf, const char *instance) {
    snprintf(inf->instance, sizeof inf->instance, "%s", instance ? instance : "");
}

void ens_inference_set_store(ens_inference_t *inf, ens_models_t *store) { inf->store = store; }

ens_models_t *ens_inference_store(const ens_inference_t *inf) { return inf->store; }

/* A member's model from the model store. */
static ens_err_t load_member(ens_models_t *store, ens_redis_t *r, const char *study_id,
                             const char *model_id, ens_model_t **out, char *errstr,
                             size_t size) {
    char name[ENS_ID_MAX + 8];
    void *blob = NULL;
    size_t len = 0;
    snprintf(name, sizeof name, "model:%s", model_id);
    ens_err_t err = ens_models_get(store, r, study_id, name, &blob, &len, errstr, size);
    if (!err)
        err = ens_model_load(blob, len, out, errstr, size);
    free(blob);
    return err;
}

/* The rank of the group whose registered device is `device`, or -1 when it is not ours. */
static int device_rank(const ens_inference_t *inf, const char *device) {
    if (!inf->instance[0])
        return -1;
    char want[ENS_ID_MAX + 16];
    for (int r = 0; r < inf->size; r++) {
        snprintf(want, sizeof want, "%.40s-r%d", inf->instance, r); /* as serve.c registers */
        if (!strcmp(want, device))
            return r;
    }
    return -1;
}

/* 1 when every row of the plan names a device of this group: then each rank runs the rows
 * on its device, a model on several devices sharing a batch's rows in proportion to its
 * instances there. Otherwise members go round robin over the ranks. */
static int plan_is_ours(const ens_inference_t *inf, const ens_placement_plan_t *plan) {
    for (int i = 0; i < plan->n_members; i++)
        if (device_rank(inf, plan->members[i].device) < 0 || plan->members[i].instances < 1)
            return 0;
    return plan->n_members > 0;
}

/* This rank's share [lo, hi) of a batch for model_id under a placed plan (lo == hi: none). */
static void plan_share(const ens_inference_t *inf, const ens_placement_plan_t *plan,
                       const char *model_id, double *lo, double *hi, int32_t *batch) {
    double total = 0, before = 0, mine = 0;
    for (int i = 0; i < plan->n_members; i++) {
        const ens_placement_t *row = &plan->members[i];
        if (strcmp(row->model_id, model_id))
            continue;
        int r = device_rank(inf, row->device);
        if (r < inf->rank)
            before += row->instances;
        else if (r == inf->rank) {
            mine += row->instances;
            *batch = row->batch_size;
        }
        total += row->instances;
    }
    *lo = total > 0 ? before / total : 0;
    *hi = total > 0 ? (before + mine) / total : 0;
}

ens_err_t ens_inference_load_plan(ens_inference_t *inf, ens_redis_t *r,
                                  const ens_placement_plan_t *plan, char *errstr, size_t size) {
    if (plan->n_members < 1)
        return ens_err_set(errstr, size, ENS_ERR_INVALID, "plan %s has no members",
                           plan->plan_id);
    plan_state_t next = {0};
    next.version = plan->version;
    snprintf(next.ensemble_id, sizeof next.ensemble_id, "%s", plan->ensemble_id);
    next.models = calloc((size_t)plan->n_members, sizeof *next.models);
    next.weights = calloc((size_t)plan->n_members, sizeof *next.weights);
    next.ids = calloc((size_t)plan->n_members, sizeof *next.ids);
    next.lo = calloc((size_t)plan->n_members, sizeof *next.lo);
    next.hi = calloc((size_t)plan->n_members, sizeof *next.hi);
    next.batch = calloc((size_t)plan->n_members, sizeof *next.batch);
    ens_err_t err = next.models && next.weights && next.ids && next.lo && next.hi && next.batch
                        ? ENS_OK
                        : ENS_ERR_NOMEM;
    next.placed = inf->size > 1 && plan_is_ours(inf, plan);
    int have_dims = 0;
    for (int i = 0; !err && i < plan->n_members; i++) {
        /* a plan lists a model once per device that runs it: the ensemble has it once */
        int seen = 0;
        for (int j = 0; j < next.n; j++)
            seen |= !strcmp(next.ids[j], plan->members[i].model_id);
        if (seen)
            continue;
        if (next.n == ENS_INFERENCE_MAX_MEMBERS) {
            err = ens_err_set(errstr, size, ENS_ERR_INVALID, "plan %s has more than %d members",
                              plan->plan_id, ENS_INFERENCE_MAX_MEMBERS);
            break;
        }
        int m = next.n++;
        next.weights[m] = plan->members[i].weight;
        snprintf(next.ids[m], ENS_ID_MAX, "%s", plan->members[i].model_id);
        if (next.placed)
            plan_share(inf, plan, next.ids[m], &next.lo[m], &next.hi[m], &next.batch[m]);
        else if (m % inf->size == inf->rank % inf->size) {
            next.hi[m] = 1;
            next.batch[m] = plan->members[i].batch_size;
        }
        if (!(next.hi[m] > next.lo[m]))
            continue; /* another rank of the group runs it */
        err = load_member(inf->store, r, plan->study_id, next.ids[m], &next.models[m], errstr, size);
        if (err)
            break;
        int32_t dim = ens_model_in_dim(next.models[m]), k = ens_model_n_classes(next.models[m]);
        if (!have_dims) {
            next.dim = dim;
            next.k = k;
            have_dims = 1;
        } else if (dim != next.dim || k != next.k)
            err = ens_err_set(errstr, size, ENS_ERR_INVALID,
                              "member %s takes %d inputs and gives %d classes, unlike the first",
                              next.ids[m], (int)dim, (int)k);
    }
    if (!err && !have_dims && next.placed) {
        /* the plan gives this rank no rows: it still must know the shapes of a batch */
        ens_model_t *first = NULL;
        err = load_member(inf->store, r, plan->study_id, next.ids[0], &first, errstr, size);
        if (!err) {
            next.dim = ens_model_in_dim(first);
            next.k = ens_model_n_classes(first);
            have_dims = 1;
        }
        ens_model_free(first);
    }
    if (!err && !have_dims)
        err = ens_err_set(errstr, size, ENS_ERR_INVALID,
                          "rank %d of %d has no member of %s: the group is larger than the "
                          "ensemble",
                          inf->rank, inf->size, plan->ensemble_id);
    if (err) {
        plan_clear(&next);
        return err;
    }
    free_buffers(inf);
    plan_clear(&inf->cur);
    inf->cur = next;
    int mine = 0;
    for (int m = 0; m < next.n; m++)
        mine += next.models[m] != NULL;
    ENS_INFO("msg=\"plan loaded\" plan=%s ensemble=%s version=%lld members=%d rank=%d/%d "
             "local=%d split=%s member_batch=%d",
             plan->plan_id, next.ensemble_id, (long long)next.version, next.n, inf->rank,
             inf->size, mine, next.placed ? "plan" : "round-robin", (int)inf->member_batch);
    return ENS_OK;
}

ens_err_t ens_inference_set_models(ens_inference_t *inf, ens_model_t **models,
                                   const double *weights, int n, int64_t version,
                                   const char *ensemble_id, char *errstr, size_t size) {
    plan_state_t next = {0};
    next.version = version;
    snprintf(next.ensemble_id, sizeof next.ensemble_id, "%s", ensemble_id);
    next.models = calloc((size_t)(n > 0 ? n : 1), sizeof *next.models);
    next.weights = calloc((size_t)(n > 0 ? n : 1), sizeof *next.weights);
    next.ids = calloc((size_t)(n > 0 ? n : 1), sizeof *next.ids);
    next.lo = calloc((size_t)(n > 0 ? n : 1), sizeof *next.lo);
    next.hi = calloc((size_t)(n > 0 ? n : 1), sizeof *next.hi);
    next.batch = calloc((size_t)(n > 0 ? n : 1), sizeof *next.batch);
    ens_err_t err = n < 1 ? ens_err_set(errstr, size, ENS_ERR_INVALID, "no members")
                    : next.models && next.weights && next.ids && next.lo && next.hi && next.batch
                        ? ENS_OK
                        : ENS_ERR_NOMEM;
    for (int i = 0; i < n; i++) { /* ours from here on, whatever happens */
        if (next.models)
            next.models[next.n++] = models[i];
        else
            ens_model_free(models[i]);
    }
    for (int i = 0; !err && i < n; i++) {
        next.weights[i] = weights[i];
        next.hi[i] = 1;
        snprintf(next.ids[i], ENS_ID_MAX, "m%d", i);
        if (ens_model_in_dim(models[i]) != ens_model_in_dim(models[0]) ||
            ens_model_n_classes(models[i]) != ens_model_n_classes(models[0]))
            err = ens_err_set(errstr, size, ENS_ERR_INVALID, "member %d differs in shape", i);
    }
    if (err) {
        plan_clear(&next);
        return err;
    }
    next.dim = ens_model_in_dim(models[0]);
    next.k = ens_model_n_classes(models[0]);
    free_buffers(inf);
    plan_clear(&inf->cur);
    inf->cur = next;
    return ENS_OK;
}

static ens_err_t reserve(ens_inference_t *inf, size_t rows) {
    if (rows <= inf->cap_rows)
        return ENS_OK;
    free_buffers(inf);
    const plan_state_t *p = &inf->cur;
    inf->x = malloc(rows * (size_t)p->dim * sizeof *inf->x);
    inf->out = malloc(rows * (size_t)p->k * sizeof *inf->out);
    inf->member_out = calloc((size_t)p->n, sizeof *inf->member_out);
    if (!inf->x || !inf->out || !inf->member_out)
        return ENS_ERR_NOMEM;
    for (int i = 0; i < p->n; i++)
        if (!(inf->member_out[i] = malloc(rows * (size_t)p->k * sizeof(float))))
            return ENS_ERR_NOMEM;
    inf->cap_rows = rows;
    return ENS_OK;
}

static const char *check_request(const plan_state_t *p, int64_t max_values,
                                 const ens_inference_request_t *q, int64_t now_ms,
                                 ens_response_status_t *status) {
    *status = ENS_RESPONSE_ERROR;
    if (q->deadline_ms > 0 && now_ms > q->deadline_ms) {
        *status = ENS_RESPONSE_TIMEOUT;
        return "deadline passed before the request was served";
    }
    if (max_values > 0 && q->n_data > max_values)
        return "request too large: more values than max-request-values";
    int64_t prod = 1;
    for (int i = 0; i < q->n_shape; i++) /* capped: 8 huge dimensions overflow an int64 */
        prod = prod > INT32_MAX ? prod : prod * (q->shape[i] > 0 ? q->shape[i] : 0);
    if (q->n_data != p->dim || (q->n_shape > 0 && prod != q->n_data))
        return "wrong tensor shape: the ensemble takes a different number of features";
    for (int i = 0; i < q->n_data; i++)
        if (!isfinite(q->data[i]))
            return "non-finite value in the input";
    return NULL;
}

ens_err_t ens_inference_partial(ens_inference_t *inf, const float *x, int32_t rows,
                                float *out) {
    const plan_state_t *p = &inf->cur;
    if (p->n == 0)
        return ENS_ERR_INVALID;
    ens_err_t err = reserve(inf, (size_t)rows);
    if (err)
        return err;
    /* each member this rank runs adds weight / total weight times its probabilities on its
     * share of the rows (all of them unless the plan splits the member over devices); the
     * arithmetic is ens_ensemble_combine's, so one rank alone gives the same floats */
    double w_all = 0;
    for (int m = 0; m < p->n; m++)
        w_all += p->weights[m];
    size_t k = (size_t)p->k;
    memset(out, 0, (size_t)rows * k * sizeof *out);
    if (w_all <= 0)
        return ENS_OK;
    for (int m = 0; !err && m < p->n; m++) {
        if (!p->models[m])
            continue;
        int32_t lo = (int32_t)(p->lo[m] * rows + 0.5), hi = (int32_t)(p->hi[m] * rows + 0.5);
        if (hi <= lo)
            continue;
        float *mo = inf->member_out[m];
        /* at the plan's batch size for this member here (the one its cost was measured at) */
        int32_t step = inf->member_batch > 0 ? inf->member_batch
                       : p->batch[m] > 0     ? p->batch[m]
                                             : hi - lo;
        for (int32_t i = lo; !err && i < hi; i += step)
            err = ens_model_predict(p->models[m], x + (size_t)i * (size_t)p->dim,
                                    hi - i < step ? hi - i : step, mo + (size_t)(i - lo) * k);
        float w = (float)(p->weights[m] / w_all);
        for (size_t i = 0; !err && i < (size_t)(hi - lo) * k; i++)
            out[(size_t)lo * k + i] += w * mo[i];
    }
    return err;
}

ens_err_t ens_inference_run(ens_inference_t *inf, const ens_inference_request_t *const *reqs,
                            int n, int64_t now_ms, ens_event_t *responses) {
    const plan_state_t *p = &inf->cur;
    ens_err_t err = p->n > 0 ? reserve(inf, (size_t)n) : ENS_OK;
    int *row = malloc((size_t)(n ? n : 1) * sizeof *row);
    if (!row)
        return ENS_ERR_NOMEM;
    int rows = 0;
    for (int i = 0; i < n; i++) {
        ens_event_init(&responses[i], ENS_EV_INFERENCE_RESPONSE);
        ens_inference_response_t *r = &responses[i].u.inference_response;
        snprintf(r->request_id, sizeof r->request_id, "%s", reqs[i]->request_id);
        snprintf(r->ensemble_id, sizeof r->ensemble_id, "%s", p->ensemble_id);
        r->plan_version = p->version;
        r->predicted_class = -1;
        row[i] = -1;
        const char *why = p->n == 0 ? "no plan in force" : err ? "out of memory" : NULL;
        ens_response_status_t status = ENS_RESPONSE_ERROR;
        if (!why)
            why = check_request(p, inf->max_values, reqs[i], now_ms, &status);
        if (why) {
            r->status = status;
            r->error = strdup(why);
            continue;
        }
        memcpy(inf->x + (size_t)rows * (size_t)p->dim, reqs[i]->data,
               (size_t)p->dim * sizeof(float));
        row[i] = rows++;
    }
    int shared = 0;
    if (!err && rows > 0 && inf->hooks.share_inputs)
        shared = !(err = inf->hooks.share_inputs(inf->hooks.ctx, inf->x, rows, p->dim));
    if (!err && rows > 0)
        err = ens_inference_partial(inf, inf->x, rows, inf->out);
    if (shared && inf->hooks.sum_outputs) {
        /* once the batch is shared the others are computing it: always join them (an MPI
         * group's ranks are waiting in the reduce), keeping this rank's error if it had one */
        ens_err_t sum_err = inf->hooks.sum_outputs(inf->hooks.ctx, inf->out, rows, p->k);
        err = err ? err : sum_err;
    }
    for (int i = 0; i < n; i++) {
        ens_inference_response_t *r = &responses[i].u.inference_response;
        if (row[i] < 0)
            continue;
        if (err) {
            r->status = ENS_RESPONSE_ERROR;
            r->error = strdup(ens_err_str(err));
            continue;
        }
        const float *probs = inf->out + (size_t)row[i] * (size_t)p->k;
        int finite = 1;
        for (int c = 0; c < p->k; c++)
            finite &= isfinite(probs[c]) != 0;
        if (!finite) { /* huge finite inputs overflow the members (found by fuzz_inference) */
            r->status = ENS_RESPONSE_ERROR;
            r->error = strdup("the ensemble's output is not finite: input values out of range");
            continue;
        }
        r->status = ENS_RESPONSE_OK;
        r->probabilities = malloc((size_t)p->k * sizeof *r->probabilities);
        r->model_versions = calloc((size_t)p->n, sizeof *r->model_versions);
        if (!r->probabilities || !r->model_versions) {
            err = ENS_ERR_NOMEM;
            continue;
        }
        memcpy(r->probabilities, probs, (size_t)p->k * sizeof *probs);
        r->n_probabilities = p->k;
        r->predicted_class = ens_argmax(probs, p->k);
        for (int m = 0; m < p->n; m++)
            memcpy(r->model_versions[m], p->ids[m], ENS_ID_MAX);
        r->n_model_versions = p->n;
    }
    free(row);
    return err;
}
