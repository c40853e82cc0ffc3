/* redis_url.c - Redis URLs: redis://[[user]:password@]host[:port][/db] and
 * unix:///path[?db=N&user=U&password=P], %-escapes decoded; and their redacted form. */
#include "ensflow/redis.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

/* Parse an unsigned decimal that fills [s, s+n) exactly, at most max. */
int ens_redis_parse_ull(const char *s, size_t n, unsigned long long max, unsigned long long *out) {
    unsigned long long v = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Copy [s, s+n) into a new string, decoding %XX escapes. *out is NULL on a bad escape or
 * an embedded NUL; returns ENS_ERR_NOMEM only when allocation fails. */
static ens_err_t dup_decoded(const char *s, size_t n, char **out) {
    char *d = malloc(n + 1);
    size_t j = 0;
    *out = NULL;
    if (!d)
        return ENS_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                return ENS_OK;
            }
            d[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    *out = d;
    return ENS_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void ens_redis_url_clear(ens_redis_url_t *r) {
    free(r->host);
    free(r->path);
    free(r->user);
    if (r->pass) {
        /* do not leave the password in freed heap memory */
        volatile char *p = r->pass;
        while (*p)
            *p++ = '\0';
    }
    free(r->pass);
}

/* ---------------------------------------------------------------------------------------- */
/* URL parsing                                                                              */

/* unix:///path[?db=N&user=U&password=P] */
static ens_err_t parse_unix_url(ens_redis_url_t *r, const char *rest, char *errstr, size_t esz) {
    const char *q = strchr(rest, '?');
    size_t plen = q ? (size_t)(q - rest) : strlen(rest);
    if (plen == 0 || rest[0] != '/')
        return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                           "redis url: unix:// needs an absolute socket path (unix:///path)");
    if (dup_decoded(rest, plen, &r->path) != ENS_OK)
        return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
    if (!r->path)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: bad %%-escape in path");
    while (q && *q) {
        const char *p = q + 1;
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: query parameter without '=': %.*s", (int)n, p);
        size_t kn = (size_t)(eq - p), vn = n - kn - 1;
        const char *v = eq + 1;
        char **dst = NULL;
        if (kn == 2 && memcmp(p, "db", 2) == 0) {
            unsigned long long db;
            if (ens_redis_parse_ull(v, vn, INT_MAX, &db) != 0)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad database number '%.*s'", (int)vn, v);
            r->db = (int)db;
        } else if (kn == 4 && memcmp(p, "user", 4) == 0) {
            dst = &r->user;
        } else if (kn == 8 && memcmp(p, "password", 8) == 0) {
            dst = &r->pass;
        } else {
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: unknown query parameter '%.*s'", (int)kn, p);
        }
        if (dst) {
            free(*dst);
            if (dup_decoded(v, vn, dst) != ENS_OK)
                return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
            if (!*dst)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad %%-escape in '%.*s'", (int)kn, p);
        }
        q = end;
    }
    if (r->user && !r->pass)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: user without password");
    return ENS_OK;
}

/* redis://[[user]:password@]host[:port][/db] */
static ens_err_t parse_tcp_url(ens_redis_url_t *r, const char *rest, char *errstr, size_t esz) {
    size_t alen = strcspn(rest, "/?#");
    const char *auth_end = rest + alen;
    const char *at = NULL;
    for (const char *p = rest; p < auth_end; p++)
        if (*p == '@')
            at = p;
    const char *hp = rest;
    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        if (!colon)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: user without password (use redis://user:pass@host "
                               "or redis://:pass@host)");
        if (colon > rest) {
            if (dup_decoded(rest, (size_t)(colon - rest), &r->user) != ENS_OK)
                return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
            if (!r->user)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad %%-escape in user");
        }
        if (dup_decoded(colon + 1, (size_t)(at - colon - 1), &r->pass) != ENS_OK)
            return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
        if (!r->pass)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                               "redis url: bad %%-escape in password");
        if (r->pass[0] == '\0')
            return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: empty password");
        hp = at + 1;
    }
    /* host, [v6], then :port */
    const char *host = hp, *host_end, *port = NULL;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(auth_end - hp));
        if (!rb)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: unterminated '[' host");
        host = hp + 1;
        host_end = rb;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: junk after ']' in host");
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
        host_end = colon ? colon : auth_end;
        if (colon)
            port = colon + 1;
    }
    if (host_end == host)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: missing host");
    r->host = dup_n(host, (size_t)(host_end - host));
    if (!r->host)
        return ens_err_set(errstr, esz, ENS_ERR_NOMEM, "redis url: out of memory");
    r->port = 6379;
    if (port) {
        unsigned long long p;
        if (ens_redis_parse_ull(port, (size_t)(auth_end - port), 65535, &p) != 0 || p == 0)
            return ens_err_set(errstr, esz, ENS_ERR_INVALID, "redis url: bad port '%.*s'",
                               (int)(auth_end - port), port);
        r->port = (int)p;
    }
    /* optional /db; no query or fragment */
    const char *tail = auth_end;
    if (*tail == '/') {
        tail++;
        size_t n = strcspn(tail, "?#");
        if (n > 0) {
            unsigned long long db;
            if (ens_redis_parse_ull(tail, n, INT_MAX, &db) != 0)
                return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                                   "redis url: bad database number '%.*s'", (int)n, tail);
            r->db = (int)db;
        }
        tail += n;
    }
    if (*tail != '\0')
        return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                           "redis url: unexpected '%s' (query parameters are not supported "
                           "for redis://)",
                           tail);
    return ENS_OK;
}

ens_err_t ens_redis_url_parse(ens_redis_url_t *r, const char *url, char *errstr, size_t esz) {
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp_url(r, url + 8, errstr, esz);
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix_url(r, url + 7, errstr, esz);
    if (strncmp(url, "rediss://", 9) == 0)
        return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                           "redis url: rediss:// (TLS) is not supported by this build "
                           "(hiredis 0.14)");
    char shown[64];
    ens_redis_url_redact(url, shown, sizeof shown);
    return ens_err_set(errstr, esz, ENS_ERR_INVALID,
                       "redis url: scheme must be redis:// or unix:// in '%.40s'", shown);
}

/* Append n bytes of s to out[*len..size), always NUL-terminated. */
static void put_n(char *out, size_t size, size_t *len, const char *s, size_t n) {
    while (n-- > 0 && *len + 1 < size)
        out[(*len)++] = *s++;
    out[*len] = 0;
}

void ens_redis_url_redact(const char *url, char *out, size_t size) {
    if (!out || size == 0)
        return;
    size_t len = 0;
    out[0] = 0;
    if (!url)
        return;
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme) {
        const char *auth = scheme + 3;
        const char *auth_end = auth + strcspn(auth, "/?#"), *at = NULL;
        for (const char *q = auth; q < auth_end; q++)
            if (*q == '@')
                at = q;
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            const char *keep = colon ? colon + 1 : auth;
            put_n(out, size, &len, url, (size_t)(keep - url));
            put_n(out, size, &len, "***", 3);
            p = at;
        }
    } else if (strchr(url, '@')) { /* not a URL we know: nothing before the last '@' */
        const char *at = strrchr(url, '@');
        put_n(out, size, &len, "***", 3);
        p = at;
    }
    /* query parameters (unix:///path?password=...): the value of every password= */
    const char *search = strchr(p, '?');
    while (search) {
        const char *hit = strstr(search, "password=");
        if (!hit)
            break;
        if (hit[-1] != '?' && hit[-1] != '&') { /* e.g. "oldpassword=": not ours */
            search = hit + 1;
            continue;
        }
        hit += strlen("password=");
        put_n(out, size, &len, p, (size_t)(hit - p));
        put_n(out, size, &len, "***", 3);
        p = hit + strcspn(hit, "&#");
        search = p;
    }
    put_n(out, size, &len, p, strlen(p));
}

