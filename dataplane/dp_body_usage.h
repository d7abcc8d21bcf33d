/* dp_body_usage: asks the engine for the usage chunk of a streamed request.
 *
 * A user with a tokens-per-minute limit needs the token count of every
 * request, but a streamed chat/completions request only ends with usage when
 * the client set stream_options.include_usage. When it did not, the gateway
 * sets it in the body it forwards, reads the usage (dp_usage.h) and removes
 * that event from what the client receives (dp_sse_strip.h).
 *
 * The body is edited in place, not re-serialised: one member is inserted or
 * one value replaced, and every other byte (key order, spacing, number
 * spelling, escapes) reaches the engine as the client wrote it.
 *
 * Pure: no I/O, no globals; any thread. */
#ifndef DP_BODY_USAGE_H
#define DP_BODY_USAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

/* <body>/<len> is a JSON request body (parsed as dp_parse does: duplicate
 * keys refused). If it is an object with "stream": true whose
 * stream_options.include_usage is not true, appends to <out> the body with
 * stream_options.include_usage set to true (stream_options added if absent,
 * replaced by an object if it is not one, other members kept) and sets
 * *changed. Otherwise sets *changed to false and leaves <out> alone.
 * Errors (nothing written, *changed untouched): GW_EINVAL if the body is not
 * valid JSON or not an object; GW_EFULL if <out> has no room for the result. */
GW_MUST_CHECK gw_err dp_body_request_usage(const char *body, size_t len, gw_buf *out,
                                           bool *changed);

#endif
