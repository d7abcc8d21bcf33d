/* gw_buf: capped growable buffer (see gw_buf.h). */
#include "gw/gw_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

void
gw_buf_init(gw_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void
gw_buf_fini(gw_buf *b)
{
    GW_FREE(b->data);
    b->len = 0;
    b->cap = 0;
}

void
gw_buf_reset(gw_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static gw_err
buf_reserve(gw_buf *b, size_t extra)
{
    size_t need;

    if (extra > b->max || b->len > b->max - extra)
        return GW_EFULL;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return GW_OK;
    size_t ncap = b->cap < 256 ? 256 : b->cap;
    while (ncap < need)
        ncap *= 2;
    if (ncap > b->max + 1)
        ncap = b->max + 1;
    b->data = gw_xrealloc(b->data, ncap);
    b->cap = ncap;
    return GW_OK;
}

gw_err
gw_buf_append(gw_buf *b, const void *p, size_t n)
{
    gw_err rc = buf_reserve(b, n);
    if (rc != GW_OK)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return GW_OK;
}

gw_err
gw_buf_append_str(gw_buf *b, const char *s)
{
    return gw_buf_append(b, s, strlen(s));
}

gw_err
gw_buf_vprintf(gw_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    gw_err rc;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return GW_EINVAL;
    rc = buf_reserve(b, (size_t)n);
    if (rc != GW_OK)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return GW_OK;
}

gw_err
gw_buf_printf(gw_buf *b, const char *fmt, ...)
{
    va_list ap;
    gw_err rc;

    va_start(ap, fmt);
    rc = gw_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void
gw_buf_consume(gw_buf *b, size_t n)
{
    if (n >= b->len) {
        gw_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *
gw_buf_steal(gw_buf *b)
{
    char *p = b->data;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
