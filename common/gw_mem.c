/* gw_mem: aborting allocators (see gw_mem.h). */
#include "gw/gw_mem.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"

static void
oom(size_t n)
{
    gw_log_raw(GW_LOG_ALERT, "GW-MEM-OOM", "bytes=%zu msg=\"out of memory\"", n);
    abort();
}

void *
gw_xmalloc(size_t n)
{
    void *p = malloc(n == 0 ? 1 : n);
    if (p == NULL)
        oom(n);
    return p;
}

void *
gw_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

void *
gw_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL)
        oom(n);
    return q;
}

char *
gw_xstrdup(const char *s)
{
    return gw_xstrndup(s, strlen(s));
}

char *
gw_xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = gw_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

size_t
gw_strlcpy(char *dst, const char *src, size_t n)
{
    size_t len = strlen(src);
    if (n > 0) {
        size_t c = len < n - 1 ? len : n - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return len;
}
