/* gw_mem: allocation that never returns NULL. On out-of-memory the process
 * logs an alert and aborts: the pod restarts, as the OOM killer would do
 * anyway (STYLE §4). Sizes that come from the network must be capped before
 * they reach these functions. */
#ifndef GW_MEM_H
#define GW_MEM_H

#include <stddef.h>

void *gw_xmalloc(size_t n);
void *gw_xcalloc(size_t nmemb, size_t size);
void *gw_xrealloc(void *p, size_t n);
char *gw_xstrdup(const char *s);
char *gw_xstrndup(const char *s, size_t n);

/* Frees and nulls the pointer (haproxy ha_free). */
#define GW_FREE(p)                                                                                 \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

/* Copies <src> into <dst> of size <n> always NUL-terminating; returns strlen(src). */
size_t gw_strlcpy(char *dst, const char *src, size_t n);

#define GW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
