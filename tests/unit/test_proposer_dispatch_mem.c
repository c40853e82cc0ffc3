/* test_proposer_dispatch_mem.c - the proposer's view of the trainers on the in-memory state:
 * live trainers counted by heartbeat, partitions owned by whoever published them last, stale
 * and unusable records left out. */
#include "check.h"
#include "proposer.h"

static char errstr[512];

static void put(ens_state_t *st, const char *id, int64_t beat, const char *record) {
    CHECK_OK(ens_state_trainer_beat(st, id, beat, errstr, sizeof errstr));
    CHECK_OK(ens_state_trainer_parts_put(st, id, record, errstr, sizeof errstr));
}

int main(void) {
    ens_state_t *st = NULL;
    CHECK_OK(ens_state_mem_new(&st));
    if (!st)
        return check_done("test_proposer_dispatch_mem");
    int64_t now = ens_now_ms();
    char rec[64];
    int n = -1;
    CHECK_OK(ens_proposer_live_trainers(st, 15000, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 0);

    snprintf(rec, sizeof rec, "%lld 0,1", (long long)now - 1000);
    put(st, "tr-a", now - 1000, rec);
    snprintf(rec, sizeof rec, "%lld 1,2", (long long)now); /* newer: takes partition 1 */
    put(st, "tr-b", now, rec);
    snprintf(rec, sizeof rec, "%lld 3", (long long)now - 60000); /* gone */
    put(st, "tr-c", now - 60000, rec);
    put(st, "tr-d", now, "garbage"); /* unusable: skipped */
    snprintf(rec, sizeof rec, "%lld -", (long long)now); /* alive, no partitions */
    put(st, "tr-e", now, rec);

    CHECK_OK(ens_proposer_live_trainers(st, 15000, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 4);
    CHECK_OK(ens_proposer_live_trainers(st, 120000, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 5);

    ens_dispatch_t *d = NULL;
    CHECK_OK(ens_proposer_dispatch_trainers(st, now, 15000, &d, errstr, sizeof errstr));
    if (d) {
        const char *o0 = ens_dispatch_owner(d, 0), *o1 = ens_dispatch_owner(d, 1),
                   *o2 = ens_dispatch_owner(d, 2);
        CHECK(o0 && !strcmp(o0, "tr-a"));
        CHECK(o1 && !strcmp(o1, "tr-b"));
        CHECK(o2 && !strcmp(o2, "tr-b"));
        CHECK(ens_dispatch_owner(d, 3) == NULL);
        CHECK_EQ_INT(ens_dispatch_trainer_load(d, "tr-e", NULL, NULL), -1);
        /* two jobs: one to each trainer that owns partitions, least loaded first */
        const char *who = NULL;
        int32_t p1 = ens_dispatch_pick(d, 1.0, &who);
        CHECK(who && !strcmp(who, "tr-a") && p1 == 0);
        int32_t p2 = ens_dispatch_pick(d, 1.0, &who);
        CHECK(who && !strcmp(who, "tr-b") && (p2 == 1 || p2 == 2));
    }
    ens_dispatch_free(d);

    /* a trainer that left (its record removed) owns nothing */
    CHECK_OK(ens_state_trainer_remove(st, "tr-b", errstr, sizeof errstr));
    CHECK_OK(ens_proposer_dispatch_trainers(st, now, 15000, &d, errstr, sizeof errstr));
    if (d) {
        const char *o1 = ens_dispatch_owner(d, 1);
        CHECK(o1 && !strcmp(o1, "tr-a"));
        CHECK(ens_dispatch_owner(d, 2) == NULL);
    }
    ens_dispatch_free(d);
    CHECK_OK(ens_proposer_live_trainers(st, 15000, &n, errstr, sizeof errstr));
    CHECK_EQ_INT(n, 3);

    ens_state_free(st);
    return check_done("test_proposer_dispatch_mem");
}
