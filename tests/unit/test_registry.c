/* test_registry.c - device registry against a live redis-server. */
#include <unistd.h>

#include "check.h"
#include "ensflow/registry.h"

int main(void) {
    const char *url = check_env_file("redis.url");
    if (!url) {
        fprintf(stderr, "test_registry: skipped: no redis.url from the test harness\n");
        return 77;
    }
    char err[256];
    ens_redis_t *r = NULL;
    CHECK_OK(ens_redis_connect(url, &r, err, sizeof err));
    if (!r)
        return check_done("test_registry");
    /* a database of its own: the registry keys are global */
    ens_redis_reply_t *rep = ens_redis_command(r, err, sizeof err, "SELECT 5");
    ens_redis_reply_free(rep);
    rep = ens_redis_command(r, err, sizeof err, "FLUSHDB");
    ens_redis_reply_free(rep);

    ens_device_t b = {.device_id = "cpu-b", .kind = "cpu", .worker = "w1",
                      .memory_bytes = 2000000000LL, .cores = 1, .overhead_ms = 0.0625,
                      .speed = 0.8125};
    ens_device_t a = {.device_id = "cpu-a", .kind = "cpu", .worker = "w1",
                      .memory_bytes = 1000000000LL, .cores = 1};
    CHECK_OK(ens_registry_heartbeat(r, &b, 60, err, sizeof err));
    CHECK_OK(ens_registry_heartbeat(r, &a, 1, err, sizeof err));
    CHECK_EQ_INT(ens_registry_heartbeat(r, &a, 0, err, sizeof err), ENS_ERR_INVALID);
    ens_device_t *list = NULL;
    int n = 0;
    CHECK_OK(ens_registry_list(r, &list, &n, err, sizeof err));
    CHECK_EQ_INT(n, 2);
    if (n == 2) { /* sorted by id, fields intact */
        CHECK_STR(list[0].device_id, "cpu-a");
        CHECK_STR(list[1].device_id, "cpu-b");
        CHECK_EQ_INT(list[1].memory_bytes, 2000000000LL);
        CHECK_EQ_INT(list[1].cores, 1);
        CHECK_STR(list[1].kind, "cpu");
        CHECK_NEAR(list[1].overhead_ms, 0.0625, 1e-12); /* the group's measured overhead */
        CHECK_NEAR(list[0].overhead_ms, 0, 0);          /* not measured */
        CHECK_NEAR(list[1].speed, 0.8125, 1e-12);       /* the group's measured speed */
        CHECK_NEAR(list[0].speed, 0, 0);
    }
    free(list);
    sleep(2); /* cpu-a's heartbeat expires */
    CHECK_OK(ens_registry_list(r, &list, &n, err, sizeof err));
    CHECK_EQ_INT(n, 1);
    if (n == 1)
        CHECK_STR(list[0].device_id, "cpu-b");
    free(list);
    rep = ens_redis_command(r, err, sizeof err, "ZCARD ens:devices");
    CHECK(rep && rep->type == ENS_REPLY_INTEGER && rep->integer == 1); /* index pruned */
    ens_redis_reply_free(rep);
    CHECK_OK(ens_registry_remove(r, "cpu-b", err, sizeof err));
    CHECK_OK(ens_registry_list(r, &list, &n, err, sizeof err));
    CHECK_EQ_INT(n, 0);
    CHECK(list == NULL);
    rep = ens_redis_command(r, err, sizeof err, "FLUSHDB");
    ens_redis_reply_free(rep);
    ens_redis_free(r);
    return check_done("test_registry");
}
