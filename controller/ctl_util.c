/* ctl_util: formatting and error-collection helpers for the controller's
 * parsers (see ctl_util.h). The error collector exists because a config file
 * is easier to fix when every problem is reported at once (gw_cfg does the
 * same for options), while a cap keeps a hostile file from producing an
 * unbounded message. */
#include "ctl_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

char *
ctl_vstrf(const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *s;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return gw_xstrdup("(format error)");
    s = gw_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *
ctl_strf(const char *fmt, ...)
{
    va_list ap;
    char *s;

    va_start(ap, fmt);
    s = ctl_vstrf(fmt, ap);
    va_end(ap);
    return s;
}

void
ctl_errs_add(ctl_errs *e, const char *fmt, ...)
{
    va_list ap;
    char *msg, *joined;

    e->n++;
    if (e->n > CTL_ERRS_MAX)
        return;
    va_start(ap, fmt);
    msg = ctl_vstrf(fmt, ap);
    va_end(ap);
    if (e->text == NULL) {
        e->text = msg;
        return;
    }
    joined = ctl_strf("%s\n%s", e->text, msg);
    free(msg);
    free(e->text);
    e->text = joined;
}

char *
ctl_errs_take(ctl_errs *e)
{
    char *s = e->text;

    if (s != NULL && e->n > CTL_ERRS_MAX) {
        char *more = ctl_strf("%s\n(%u more errors)", s, e->n - CTL_ERRS_MAX);
        free(s);
        s = more;
    }
    e->text = NULL;
    e->n = 0;
    return s;
}

void
ctl_errs_fini(ctl_errs *e)
{
    GW_FREE(e->text);
    e->n = 0;
}

bool
ctl_host_is_valid(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '@' || c == '?' || c == '#' || c == '"' ||
            c == '\'' || c == '\\')
            return false;
    }
    return true;
}

/* Reads a decimal port in 1..65535 from <len> bytes of <s>. */
static bool
parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

gw_err
ctl_parse_hostport(const char *s, size_t len, char **host, uint16_t *port, char **why)
{
    const char *h = s, *colon = NULL;
    size_t hlen;
    uint16_t p = 0;

    if (len == 0) {
        *why = gw_xstrdup("empty address");
        return GW_EINVAL;
    }
    if (memchr(s, '\0', len) != NULL) {
        *why = gw_xstrdup("address contains a NUL byte");
        return GW_EINVAL;
    }
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            *why = gw_xstrdup("missing ']' after an IPv6 address");
            return GW_EINVAL;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        if (close + 1 < s + len) {
            if (close[1] != ':') {
                *why = gw_xstrdup("expected ':port' after ']'");
                return GW_EINVAL;
            }
            colon = close + 1;
        }
        if (memchr(h, ':', hlen) == NULL) {
            *why = gw_xstrdup("brackets are only for IPv6 addresses");
            return GW_EINVAL;
        }
    } else {
        colon = memchr(s, ':', len);
        if (colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) != NULL) {
            *why = gw_xstrdup("IPv6 addresses need brackets, e.g. [::1]:8000");
            return GW_EINVAL;
        }
        hlen = colon != NULL ? (size_t)(colon - s) : len;
    }
    if (colon != NULL && !parse_port(colon + 1, len - (size_t)(colon + 1 - s), &p)) {
        *why = gw_xstrdup("port must be a number in 1..65535");
        return GW_EINVAL;
    }
    if (!ctl_host_is_valid(h, hlen)) {
        *why = gw_xstrdup(hlen == 0 ? "empty host" : "invalid host");
        return GW_EINVAL;
    }
    *host = gw_xstrndup(h, hlen);
    *port = p;
    return GW_OK;
}

char *
ctl_hostport_str(const char *host, uint16_t port)
{
    if (strchr(host, ':') != NULL)
        return ctl_strf("[%s]:%u", host, (unsigned)port);
    return ctl_strf("%s:%u", host, (unsigned)port);
}

int
ctl_addr_cmp(const char *ip_a, uint16_t port_a, const char *ip_b, uint16_t port_b)
{
    int c = strcmp(ip_a, ip_b);

    if (c != 0)
        return c;
    return (port_a > port_b) - (port_a < port_b);
}
