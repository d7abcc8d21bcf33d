/* dp_pd_body: the request bodies of prefill/decode disaggregation, one
 * function per phase and protocol (llumnix.md §2, aibrix.md §9.3):
 *
 * vllm-kvt (--pd-disagg-protocol vllm-kvt)
 *   batched: no prefill call; the decode's kv_transfer_params gain
 *            remote_host/remote_port of the prefill (its connector pulls);
 *   staged:  prefill = the request with max_tokens 1 and
 *            kv_transfer_params.do_remote_decode = true (stream unchanged);
 *            decode = the request with kv_transfer_params + remote_host,
 *            remote_port and do_remote_prefill = true.
 * vllm-mooncake
 *   prefill = max_tokens 1, stream false, no stream_options, and
 *            kv_transfer_params replaced by {do_remote_decode: true,
 *            do_remote_prefill: false, remote_*: null};
 *   decode  = the request with the prefill response's kv_transfer_params,
 *            verbatim.
 * AIBrix's default for vLLM (no protocol set)
 *   as vllm-mooncake, and the prefill also gets max_completion_tokens 1 and
 *   loses min_tokens; the decode's remote_host is the prefill's address.
 *
 * Client members of kv_transfer_params are kept where the protocol merges
 * (kvt) and replaced where it replaces (mooncake, AIBrix). Bodies are
 * re-serialised (jansson, compact): a disaggregated request is rewritten by
 * nature. Pure; any thread. */
#ifndef DP_PD_BODY_H
#define DP_PD_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

typedef enum dp_pd_proto {
    DP_PD_AIBRIX = 0, /* "" */
    DP_PD_KVT,        /* "vllm-kvt" */
    DP_PD_MOONCAKE,   /* "vllm-mooncake" */
} dp_pd_proto;

/* Parses --pd-disagg-protocol ("", "vllm-kvt", "vllm-mooncake"). */
bool dp_pd_proto_parse(const char *s, dp_pd_proto *out);
const char *dp_pd_proto_name(dp_pd_proto p);

/* Whether <p> in the given mode sends the prefill an HTTP request (all but
 * batched vllm-kvt). */
bool dp_pd_has_prefill_call(dp_pd_proto p, bool staged);

/* Appends the prefill request's body to <out>. GW_EINVAL: <body> is not a
 * JSON object; GW_EFULL: <out> is full. */
GW_MUST_CHECK gw_err dp_pd_prefill_body(dp_pd_proto p, const char *body, size_t len, gw_buf *out);

/* Appends the decode request's body to <out>. <resp>/<resp_len> is the
 * prefill's response body (mooncake and AIBrix read its kv_transfer_params;
 * NULL for kvt). <host>/<port> address the prefill endpoint. GW_EINVAL with
 * *why when the body is not a JSON object or the prefill's response carries
 * no kv_transfer_params object; GW_EFULL: <out> is full. */
GW_MUST_CHECK gw_err dp_pd_decode_body(dp_pd_proto p, bool staged, const char *body, size_t len,
                                       const char *resp, size_t resp_len, const char *host,
                                       uint16_t port, gw_buf *out, const char **why);

#endif
