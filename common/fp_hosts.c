/*
 * fp_hosts.c - "host[:port],..." lists of servers to dial; see fp_hosts.h.
 */
#include "fp_hosts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* One entry "host[:port]" (len bytes at s) into h. 0 or -EINVAL. */
static int hosts__parse_one(const char *s, size_t len, int default_port, fp_host *h)
{
    const char *colon = memchr(s, ':', len);
    size_t hlen = colon != NULL ? (size_t)(colon - s) : len, i;
    long port = default_port;

    if (hlen == 0 || hlen > FP_HOST_MAX)
        return -EINVAL;
    if (colon != NULL) {
        if (colon + 1 == s + len || (size_t)(s + len - colon - 1) > 5)
            return -EINVAL;
        port = 0;
        for (i = 1; colon + i < s + len; i++) {
            if (colon[i] < '0' || colon[i] > '9')
                return -EINVAL;
            port = port * 10 + (colon[i] - '0');
        }
    }
    if (port < 1 || port > 65535)
        return -EINVAL;
    for (i = 0; i < hlen; i++) {
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '[' || s[i] == ']' || s[i] == '/')
            return -EINVAL;
    }
    memcpy(h->host, s, hlen);
    h->host[hlen] = '\0';
    h->port = (int)port;
    return 0;
}

int fp_hosts_parse(const char *list, int default_port, fp_host hosts[FP_HOSTS_MAX], char *err,
                   size_t errlen)
{
    const char *p = list, *end;
    size_t len;
    int n = 0;

    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        end = strchr(p, ',');
        len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (n == FP_HOSTS_MAX) {
            snprintf(err, errlen, "more than %d hosts", FP_HOSTS_MAX);
            return -EINVAL;
        }
        if (hosts__parse_one(p, len, default_port, &hosts[n]) != 0) {
            snprintf(err, errlen, "\"%.*s\" is not host or host:port (port 1-65535)",
                     (int)(len > 80 ? 80 : len), p);
            return -EINVAL;
        }
        n++;
        if (end == NULL)
            return n;
        p = end + 1;
    }
}
