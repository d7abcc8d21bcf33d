/* dp_usage: reads token usage out of an upstream response while it is being
 * relayed, without buffering the response (DESIGN §5).
 * - SSE (stream): lines are assembled across chunk boundaries (an event may
 *   be split anywhere, aibrix #2266); only `data:` lines that contain
 *   "usage" are parsed, and the last usage object wins.
 * - JSON: only a tail window of the body is kept; at the end the last
 *   "usage" object in it is parsed (OpenAI and vLLM put usage last).
 * Pure: no I/O. One per request, loop thread only. */
#ifndef DP_USAGE_H
#define DP_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"

#define DP_USAGE_MAX_LINE (1u << 20) /* longer SSE lines are skipped */
#define DP_USAGE_TAIL     (64u << 10)

typedef struct dp_usage {
    bool sse;
    bool skipping;  /* inside an over-long SSE line */
    gw_buf pending; /* SSE: the current partial line; JSON: the tail */
    bool found;
    bool done_seen; /* SSE: data: [DONE] arrived */
    int64_t prompt_tokens;
    int64_t completion_tokens;
} dp_usage;

void dp_usage_init(dp_usage *u, bool sse);
void dp_usage_feed(dp_usage *u, const char *p, size_t n);
/* End of body: parses the JSON tail (no-op for SSE). */
void dp_usage_finish(dp_usage *u);
void dp_usage_fini(dp_usage *u);

#endif
