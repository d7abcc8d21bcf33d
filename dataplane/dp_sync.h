/* dp_sync: the worker's side of the wire contract (DESIGN §4): a SUB socket
 * for snapshots ('S') and load ('L'), a REQ socket to ask for the full
 * snapshot (at start, and whenever a load message shows a generation we
 * missed), and a PUSH socket for this worker's reports. Static stability:
 * when the controller is gone the worker keeps its last snapshot forever;
 * nng redials by itself and the next snapshot or load message resyncs.
 * Loop thread only. */
#ifndef DP_SYNC_H
#define DP_SYNC_H

#include "gw/gw_err.h"

#include "dp_ctx.h"

GW_MUST_CHECK gw_err dp_sync_start(dp_ctx *ctx, dp_sync **out);
void dp_sync_free(dp_sync *s);

#endif
