/* dp_cbreaker: per-endpoint concurrency caps, the worker's form of Envoy's
 * circuit breakers (AIBrix's gateway.backendTrafficPolicy.circuitBreaker and
 * envoyPatchPolicy.circuitBreakers; charts/llmgw/README.md maps them).
 *
 * An endpoint (a model on one engine address: dp_load's key) whose
 * in-flight requests from this worker process reached the cap is "open": the router passes it over
 * and prefers another endpoint; when every candidate is open the request gets 503
 * `x-error-upstream-overflow` at once (Envoy answers 503 with `x-envoy-overloaded`). Like Envoy's,
 * the caps are per proxy process, not fleet-wide: the Helm chart divides the AIBrix numbers by the
 * processes per pod.
 *
 * The cap is the smaller of
 *   --max-parallel-requests (maxParallelRequests / maxRequests), and
 *   --max-host-conns + --max-pending-requests when --max-host-conns is set:
 * curl keeps requests beyond --max-host-conns waiting for a connection to
 * that endpoint, and those waiting are Envoy's "pending requests".
 * 0 means no limit for each flag. */
#ifndef DP_CBREAKER_H
#define DP_CBREAKER_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_load.h"

/* The per-endpoint cap for the flags' values (each >= 0, 0 = unlimited);
 * 0 when nothing limits. */
uint32_t dp_cbreaker_cap(int64_t max_parallel, int64_t max_host_conns, int64_t max_pending);

/* True when <ep> must not take another request under <cap> (0 = never). */
static inline bool
dp_cbreaker_open(const dp_ep *ep, uint32_t cap)
{
    return cap != 0 && ep->inflight >= cap;
}

/* --max-parallel-retries (AIBrix's circuitBreaker.maxParallelRetries):
 * requests of this process on a retry at once. A request takes a slot with
 * its first retry and keeps it (<*held>) until it ends; with every slot
 * taken a failed attempt is not retried and the request fails as without
 * retries. <*inflight> counts the slots taken; <max>
 * 0 = unlimited. */
bool dp_cbreaker_retry_admit(uint32_t *inflight, int64_t max, bool *held);
/* Gives back the slot a request held, if any (once; safe to repeat). */
void dp_cbreaker_retry_release(uint32_t *inflight, bool *held);

#endif
