/* dp_access: the access log, one logfmt line per completed proxied request,
 * on its own stream (STYLE §6: not the error log):
 *
 *   ts=2026-11-21T17:46:01.123Z req=9f2c... path=/v1/chat/completions
 *   model=llama3 strategy=least-request profile=default pod=llama3-7f9c
 *   ep=10.0.3.7:8000 status=200 dur_ms=812.4 ttfb_ms=95.2 prompt_tokens=42
 *   completion_tokens=128 tries=1 fallback=-
 *
 * (one line). A field the request never reached is "-" (no endpoint when
 * it was rejected, no ttfb before the engine's headers, no tokens without
 * a usage object). Values that may hold outside bytes (model, strategy,
 * profile, pod) are quoted and escaped when they are not plain tokens. Never
 * prompts, completions, credentials or the `user` header.
 *
 * The stream is `--access-log`: "-" stdout (default), "off", or a file
 * opened with O_APPEND. Lines are batched: appended to a buffer and written
 * once per loop iteration (a write(2) per request cost ~10% of throughput),
 * in writes of whole lines of at most DP_ACCESS_BATCH bytes, so workers
 * sharing a pipe or file never interleave inside a line (PIPE_BUF). A line
 * that cannot be written is dropped and counted. Loop thread only. */
#ifndef DP_ACCESS_H
#define DP_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

#define DP_ACCESS_LINE_MAX 2048u
#define DP_ACCESS_BATCH    4096u /* PIPE_BUF: atomic on pipes */

typedef struct dp_access_rec {
    uint64_t wall_ms;  /* completion time, ms since the Unix epoch */
    const char *id;    /* request id */
    const char *path;  /* API path */
    const char *model; /* as requested; NULL before the body was parsed */
    const char *strategy;
    const char *profile;
    const char *pod; /* target-pod; NULL if never routed */
    const char *ep;  /* ip:port */
    unsigned status; /* 499: client gone first */
    double dur_ms;
    double ttfb_ms;            /* < 0: none */
    int64_t prompt_tokens;     /* < 0: unknown */
    int64_t completion_tokens; /* < 0: unknown */
    uint32_t tries;            /* endpoints tried */
    const char *fallback;      /* routing fallback reason, or NULL */
} dp_access_rec;

/* Opens the stream named by <spec> ("-", "off" or a path). On GW_OK *fd is
 * the descriptor (1 for stdout, -1 for off; the caller closes a file's
 * with close() when > 2). GW_ESYS (logged) if the file cannot be opened. */
GW_MUST_CHECK gw_err dp_access_open(const char *spec, int *fd);

/* Formats <r> as one line (with its newline) into <out> (size <n>,
 * DP_ACCESS_LINE_MAX is enough; longer values are truncated). Returns the
 * length. Pure. */
size_t dp_access_format(const dp_access_rec *r, char *out, size_t n);

/* Writes one line to <fd> (no-op when fd < 0). False if it was not written
 * whole. */
bool dp_access_write(int fd, const char *line, size_t len);

/* Appends <line> to <pending> (capped; flushes first when full). Returns the
 * number of lines dropped on the way (write failures). */
unsigned dp_access_append(int fd, gw_buf *pending, const char *line, size_t len);

/* Writes out <pending> in whole-line batches of at most DP_ACCESS_BATCH
 * bytes and empties it. Returns the number of lines dropped. */
unsigned dp_access_flush(int fd, gw_buf *pending);

#endif
