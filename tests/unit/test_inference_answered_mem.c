/* test_inference_answered_mem.c - an inference group's answered offsets on the in-memory
 * state, no stack: a partition's record read once per assignment and trusted only with a
 * committed offset (else forgotten), raised and never lowered, shared by the consumer group's
 * members and kept apart from another group's and partition's. */
#include <stdlib.h>

#include "check.h"
#include "serve_internal.h"

static char errstr[512];
static const char *topic = "ensflow.inference.requests";

static ens_serve_answered_t *answered_new(ens_state_t *st, const char *group) {
    ens_serve_answered_t *a = calloc(1, sizeof *a);
    CHECK(a != NULL);
    if (a)
        ens_serve_answered_open_state(a, st, group);
    return a;
}

/* The group's stored record of partition part; -1 when none. */
static int64_t stored(ens_state_t *st, const char *group, int32_t part) {
    int64_t off = -2;
    ens_err_t err = ens_state_answered_get(st, group, topic, part, &off, errstr, sizeof errstr);
    CHECK(err == ENS_OK || err == ENS_ERR_NOTFOUND);
    return err ? -1 : off;
}

int main(void) {
    ens_state_t *st = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    ens_serve_answered_t *a = st ? answered_new(st, "grp") : NULL;
    ens_serve_answered_t *b = st ? answered_new(st, "grp") : NULL;
    ens_serve_answered_t *other = st ? answered_new(st, "other") : NULL;
    if (!a || !b || !other)
        return check_done("test_inference_answered_mem");

    /* nothing answered yet: nothing to skip */
    ens_serve_answered_load(a, topic, 0, 0, 5);
    CHECK_EQ_INT(a->last[0], -1);
    CHECK_EQ_INT(a->loaded[0], 1);

    /* answered up to 10, then a late batch up to 7 (a drain): the record stays at 10 */
    ens_serve_answered_mark(a, topic, 0, 10);
    CHECK_EQ_INT(stored(st, "grp", 0), 10);
    ens_serve_answered_mark(a, topic, 0, 7);
    CHECK_EQ_INT(stored(st, "grp", 0), 10);
    CHECK_EQ_INT(a->last[0], 10);

    /* the next owner of partition 0 in the same group skips up to 10; partition 1 and the
     * other group have nothing recorded */
    ens_serve_answered_load(b, topic, 0, 3, 8);
    CHECK_EQ_INT(b->last[0], 10);
    CHECK_EQ_INT(b->loaded[0], 4);
    ens_serve_answered_load(b, topic, 1, 3, 8);
    CHECK_EQ_INT(b->last[1], -1);
    ens_serve_answered_load(other, topic, 0, 0, 8);
    CHECK_EQ_INT(other->last[0], -1);
    ens_serve_answered_mark(other, topic, 0, 3);
    CHECK_EQ_INT(stored(st, "other", 0), 3);
    CHECK_EQ_INT(stored(st, "grp", 0), 10);

    /* a broker that lost its log (no committed offset): the record is stale, forgotten */
    ens_serve_answered_load(b, topic, 0, 4, -1);
    CHECK_EQ_INT(b->last[0], -1);
    CHECK_EQ_INT(stored(st, "grp", 0), -1);
    CHECK_EQ_INT(stored(st, "other", 0), 3);

    /* numbering from 0 again, the first answer is recorded as it is */
    ens_serve_answered_mark(b, topic, 0, 2);
    CHECK_EQ_INT(stored(st, "grp", 0), 2);
    CHECK_EQ_INT(b->last[0], 2);

    /* without a state nothing is recorded nor skipped */
    ens_serve_answered_t none = {0};
    ens_serve_answered_load(&none, topic, 0, 0, 8);
    ens_serve_answered_mark(&none, topic, 0, 99);
    CHECK_EQ_INT(none.loaded[0], 0);
    CHECK_EQ_INT(stored(st, "grp", 0), 2);

    ens_serve_answered_close(a);
    ens_serve_answered_close(b);
    ens_serve_answered_close(other);
    free(a);
    free(b);
    free(other);
    ens_state_free(st);
    return check_done("test_inference_answered_mem");
}
