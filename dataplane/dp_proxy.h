/* dp_proxy: the life of one proxied request (DESIGN §5): read the body
 * (capped, 413 beyond), parse, route and reserve, send upstream with libcurl,
 * relay the response as it arrives (SSE chunk by chunk, never buffering the
 * whole stream), read usage on the way, account, and release the endpoint
 * reservation exactly once on every path: success, error, client gone,
 * shutdown.
 *
 * The MHD connection is suspended whenever the client side has nothing to do
 * (waiting for the upstream's headers or its next bytes) and resumed by the
 * curl callbacks. A request can be retried on another endpoint only before
 * its first byte reached the client. Loop thread only. */
#ifndef DP_PROXY_H
#define DP_PROXY_H

#include <curl/curl.h>
#include <microhttpd.h>

#include "dp_ctx.h"
#include "dp_parse.h"

/* The MHD access handler for an API path (<api>, <path> the upstream path). */
enum MHD_Result dp_proxy_handle(dp_ctx *ctx, struct MHD_Connection *conn, dp_api api,
                                const char *path, const char *upload, size_t *upload_size,
                                void **con_cls);

/* MHD's request-completed notification for a proxied request: cancels the
 * upstream if it still runs, accounts, releases, frees. */
void dp_proxy_completed(dp_ctx *ctx, void *con_cls, enum MHD_RequestTerminationCode toe);

/* gw_curlm's done callback (arg = ctx). */
void dp_proxy_on_curl_done(CURL *easy, CURLcode result, void *arg);

/* Shutdown after the drain deadline: ends every live request (streams get an
 * error event, requests still waiting for the engine a 503) and resumes
 * suspended connections so MHD can finish them; complete responses still
 * flush. */
void dp_proxy_abort_all(dp_ctx *ctx);

/* Frees the idle curl handles kept for reuse (at exit). */
void dp_proxy_pool_free(dp_ctx *ctx);

#endif
