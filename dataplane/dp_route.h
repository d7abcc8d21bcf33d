/* dp_route: from a parsed request to a reserved endpoint (DESIGN §5):
 * resolve the model and its config profile, derive the strategy (locked >
 * `routing-strategy` header > profile > ROUTING_ALGORITHM > the snapshot's
 * fleet default > random), list the routable candidates, pick, and reserve
 * the endpoint's in-flight slot in the same step. Loop thread only. */
#ifndef DP_ROUTE_H
#define DP_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_ctx.h"
#include "dp_error.h"
#include "dp_strategy.h"

typedef struct dp_route {
    const dp_model *model;     /* borrowed from the request's snapshot ref */
    const pm_profile *profile; /* resolved profile; NULL if the model has none */
    const dp_strategy *strategy;
} dp_route;

/* Resolves <model_name> with the request headers <strategy_hdr> and
 * <profile_hdr> (either may be NULL) against <snap>. On false <err> holds the
 * client answer: 404 unknown model, 400 unknown strategy. */
bool dp_route_resolve(const dp_ctx *ctx, const dp_snap *snap, const char *model_name,
                      const char *strategy_hdr, const char *profile_hdr, dp_route *out,
                      dp_error *err);

/* Picks an endpoint for <route> among the ready, non-draining endpoints not in
 * <exclude> (<n_exclude> endpoint indexes), and reserves it: its in-flight
 * count is raised by one and <tokens> before this returns. Returns the
 * endpoint index, or -1 with <err> = 503 when nothing is routable. */
int64_t dp_route_pick(dp_ctx *ctx, const dp_snap *snap, const dp_route *route,
                      const uint32_t *exclude, uint32_t n_exclude, uint64_t tokens, dp_error *err);

/* Releases a reservation made by dp_route_pick. */
void dp_route_release(dp_ep *ep, uint64_t tokens);

#endif
