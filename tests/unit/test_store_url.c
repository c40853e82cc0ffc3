/* test_store_url.c - Redis URLs as they may be shown: no password survives redaction. */
#include "check.h"
#include "ensflow/store.h"

static void expect(const char *url, const char *want) {
    char out[256];
    ens_redis_url_redact(url, out, sizeof out);
    if (strcmp(out, want) != 0) {
        fprintf(stderr, "redact(%s) = %s, expected %s\n", url, out, want);
        check_failures++;
    }
}

int main(void) {
    expect("redis://:s3cret@ensflow-redis:6379/0", "redis://:***@ensflow-redis:6379/0");
    expect("redis://app:s3cret@10.0.0.1/2", "redis://app:***@10.0.0.1/2");
    expect("redis://s3cret@host", "redis://***@host");             /* userinfo without ':' */
    expect("redis://:p%40ss@h@host:1/0", "redis://:***@host:1/0"); /* the last '@' ends it */
    expect("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0");
    expect("unix:///run/redis.sock?db=1&password=s3cret&user=u",
           "unix:///run/redis.sock?db=1&password=***&user=u");
    expect("unix:///run/redis.sock?password=a&oldpassword=b",
           "unix:///run/redis.sock?password=***&oldpassword=b");
    expect("redis:/:s3cret@host/0", "***@host/0"); /* no "://": all before the '@' goes */
    expect("", "");

    /* cut to the buffer, still terminated */
    char small[12];
    ens_redis_url_redact("redis://:s3cret@host", small, sizeof small);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(strstr(small, "s3cret") == NULL);
    ens_redis_url_redact(NULL, small, sizeof small);
    CHECK(small[0] == 0);

    /* a URL that does not parse: the error names no password either */
    char err[256];
    ens_redis_t *r = NULL;
    CHECK(ens_redis_connect("rediz://:s3cret@host:1/0", &r, err, sizeof err) == ENS_ERR_INVALID);
    CHECK(r == NULL);
    CHECK(strstr(err, "s3cret") == NULL);
    CHECK(strstr(err, "***") != NULL);
    return check_done("test_store_url");
}
