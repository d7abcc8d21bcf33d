/* gw_buf: a growable byte buffer with a hard cap set at init (curl's dynbuf).
 * Sizes that come from the network are never trusted: going over the cap
 * returns GW_EFULL and leaves the buffer unchanged, and the caller turns that
 * into a 413/502. The contents are always NUL-terminated (not counted in len)
 * so text can be handed to string functions. Not thread-safe. */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "gw/gw_err.h"

typedef struct gw_buf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the trailing NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len */
} gw_buf;

void gw_buf_init(gw_buf *b, size_t max);
void gw_buf_fini(gw_buf *b);
/* Empties the buffer, keeping its allocation. */
void gw_buf_reset(gw_buf *b);

GW_MUST_CHECK gw_err gw_buf_append(gw_buf *b, const void *p, size_t n);
GW_MUST_CHECK gw_err gw_buf_append_str(gw_buf *b, const char *s);
GW_MUST_CHECK gw_err gw_buf_printf(gw_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
GW_MUST_CHECK gw_err gw_buf_vprintf(gw_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Removes the first <n> bytes (n > len empties it). */
void gw_buf_consume(gw_buf *b, size_t n);

/* Hands the data to the caller (who frees it) and resets <b> to empty. May
 * return NULL when nothing was appended. */
char *gw_buf_steal(gw_buf *b);

#endif
