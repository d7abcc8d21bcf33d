/* dp_error: the gateway's error contract (aibrix.md §1.5, seed 003): an
 * OpenAI-shaped body {"error":{"message","type","param","code"}} with the
 * matching status and one x-error-* header. The "type" follows AIBrix's
 * mapping from the status: 400/404/413 invalid_request_error, 401
 * authentication_error, 403 permission_error (ours: AIBrix has no 403),
 * 429 rate_limit_error, 503 overloaded_error, anything
 * else api_error. Pure formatting; no I/O. */
#ifndef DP_ERROR_H
#define DP_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/gw_buf.h"

typedef struct dp_error {
    unsigned status;
    const char *header;       /* x-error-* header name; NULL = none */
    const char *header_value; /* e.g. "true" or the model name; borrowed */
    const char *code;         /* OpenAI error code, e.g. "model_not_found" */
    const char *param;        /* OpenAI "param", e.g. "api_key"; NULL = null */
    /* Seed 002's documented rps answer, byte for byte: no "param", and
     * ", " / ": " separators. */
    bool seed_shape;
    const char *retry_after; /* Retry-After header value; NULL = none */
    char message[256];
} dp_error;

/* Fills <e> (param, seed_shape and retry_after reset). <message> is a
 * printf format. */
void dp_error_set(dp_error *e, unsigned status, const char *header, const char *header_value,
                  const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* The OpenAI "type" for <status>. */
const char *dp_error_type(unsigned status);

/* Appends the JSON body of <e> to <out> (GW_EFULL if it does not fit). */
gw_err dp_error_body(const dp_error *e, gw_buf *out);

/* The same error as an SSE event, for streams that fail after their headers
 * were sent: "data: {...}\n\n". */
gw_err dp_error_sse_event(const dp_error *e, gw_buf *out);

#endif
