/* dp_sse_strip: removes the usage event the gateway asked for from an SSE
 * stream, so the client sees exactly the stream it requested.
 *
 * When a tokens-per-minute limit needs the usage of a streamed request whose
 * client did not set stream_options.include_usage, the gateway sets it
 * (dp_body_usage.h); the engine then sends one extra event,
 * `data: {..."choices":[],"usage":{...}}`, before `data: [DONE]`. dp_usage
 * reads it; this module drops it from the bytes relayed to the client.
 *
 * Events are cut on the WHATWG SSE rules (HTML "Server-sent events",
 * "Interpreting an event stream"): a line ends with CRLF, LF or CR, and an
 * event ends at an empty line. Every event that is not usage-only is copied
 * byte for byte (never re-serialised); the bytes of an incomplete event are
 * held until it completes. An event is usage-only when its only field is a
 * single `data` field (comment lines aside) whose value is a JSON object with
 * "choices": [] and a "usage" object. Only events containing the bytes
 * "usage" (quoted) are parsed. An event with other fields (id, event, retry)
 * is kept: dropping it would lose them.
 *
 * An event longer than DP_SSE_STRIP_MAX_EVENT is not held: what is held is
 * flushed and the rest of that event goes straight through, unfiltered, up to
 * the next event boundary. Bytes are never lost or reordered.
 *
 * Pure: no I/O. One per request, loop thread only. */
#ifndef DP_SSE_STRIP_H
#define DP_SSE_STRIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

#define DP_SSE_STRIP_MAX_EVENT (1u << 20) /* longer events pass through unfiltered */

/* Where the last byte seen was a CR ending a line: a LF right after it is the
 * second half of a CRLF, and belongs with it. */
typedef enum dp_sse_strip_cr {
    DP_SSE_STRIP_CR_NONE = 0,
    DP_SSE_STRIP_CR_LINE,    /* ended a line inside the event being held */
    DP_SSE_STRIP_CR_KEPT,    /* ended an event already copied to the output */
    DP_SSE_STRIP_CR_DROPPED, /* ended an event that was dropped */
} dp_sse_strip_cr;

typedef struct dp_sse_strip {
    gw_buf held;        /* the current incomplete event; held.max is the cap
                         * (tests lower it after init to reach the cap quickly) */
    bool line_empty;    /* no byte of the current line seen yet */
    bool passthrough;   /* inside an over-long event: bytes go straight out */
    dp_sse_strip_cr cr; /* see dp_sse_strip_cr */
    uint64_t dropped;   /* usage-only events removed so far */
} dp_sse_strip;

/* Caller-provided storage; nothing is allocated until an event is held.
 * fini frees the held bytes (a stream cut short simply loses them). */
void dp_sse_strip_init(dp_sse_strip *s);
void dp_sse_strip_fini(dp_sse_strip *s);

/* Appends to <out> every event of <p>/<n> that completes, except usage-only
 * ones, and holds the bytes of an incomplete event. <p> is borrowed for the
 * call; it may be NULL when <n> is 0.
 * GW_EFULL: <out> has no room for s->held.len + <n> bytes (the most one call
 * can write); nothing was consumed and neither <s> nor <out> changed, so the
 * caller can drain <out> and offer the same bytes again. A caller whose <out>
 * is capped checks that room first (an <out> smaller than the held bytes can
 * never take them). */
GW_MUST_CHECK gw_err dp_sse_strip_feed(dp_sse_strip *s, const char *p, size_t n, gw_buf *out);

/* End of stream: appends whatever is held (an unterminated last event goes
 * out as is) and resets <s> for another stream (the dropped count stays).
 * GW_EFULL as for feed, with nothing changed. */
GW_MUST_CHECK gw_err dp_sse_strip_finish(dp_sse_strip *s, gw_buf *out);

#endif
