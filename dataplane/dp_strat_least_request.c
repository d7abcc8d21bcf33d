/* least-request: the fewest requests in flight.
 *
 *   score(e) = L(e) = fleet_inflight(e) - this worker's share in it
 *                     + this worker's in-flight requests on e now
 *
 * (dp_ep_load: the controller's fleet-wide sum of worker reports, corrected
 * with this worker's exact count, so a burst on this worker sees each of its
 * own reservations at once). Lowest wins; ties uniformly at random. Always
 * known, so it never falls back: it is what every other strategy falls back
 * to. Counts requests the gateway has in flight, not the engine's own
 * num_requests_running. */
#include "dp_strategy.h"

uint32_t
dp_strat_least_request(const dp_pick *pick, double *scores, const char **why)
{
    (void)why;
    for (uint32_t i = 0; i < pick->n_cands; i++)
        scores[i] = (double)dp_ep_load(dp_pick_ep(pick, i));
    return pick->n_cands;
}
