/* ctl_http: the controller's admin HTTP server on gw_httpd:
 *   GET /healthz         200 "ok" while the loop runs;
 *   GET /readyz          200 "ready" once a snapshot with gen > 0 exists,
 *                        else 503 "no snapshot yet"; 503 "standby (not the
 *                        leader)" while leader election has not picked us;
 *   GET /metrics         Prometheus text (ctl_metrics);
 *   GET /debug/snapshot  JSON view of the current snapshot and fleet load;
 * HEAD is answered like GET; another method on these paths is 405, any
 * other path 404, both as JSON {"error":{"message","type","code"}}.
 * Loop thread only. */
#ifndef CTL_HTTP_H
#define CTL_HTTP_H

#include <stdint.h>

#include "ctl_ctx.h"
#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

/* Listens on <host>:<port> (0 = any free port). <ctx> is borrowed and must
 * outlive the server. GW_ESYS when the port cannot be bound (logged). */
GW_MUST_CHECK gw_err ctl_http_start(ctl_ctx *ctx, const char *host, uint16_t port, ctl_http **out);

/* The bound port. */
uint16_t ctl_http_port(const ctl_http *h);

/* Stops the server, closing its connections. NULL ok. */
void ctl_http_free(ctl_http *h);

/* The /debug/snapshot document for <snap> (NULL = none yet, shown as gen 0),
 * <load> (NULL = no load yet) and <workers> live workers, as a heap string
 * the caller frees. Pure; exposed for tests. */
char *ctl_http_snapshot_json(const pm_snapshot *snap, uint64_t epoch, const pm_load *load,
                             unsigned workers);

#endif
