/* least-request: the endpoint with the fewest requests in flight, counting
 * this worker's exact reservations plus the rest of the fleet's from the
 * controller's load vector (dp_ep_load). Ties are broken uniformly at random
 * (reservoir sampling), so equal endpoints share a burst instead of the first
 * one taking it all. */
#include "dp_strategy.h"

uint32_t
dp_strat_least_request(const dp_pick *pick)
{
    uint32_t best = 0, best_load = UINT32_MAX, ties = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        uint32_t load = dp_ep_load(dp_snap_state(pick->snap, pick->cands[i]));
        if (load < best_load) {
            best_load = load;
            best = i;
            ties = 1;
        } else if (load == best_load && dp_rand(pick->rng, ++ties) == 0) {
            best = i;
        }
    }
    return best;
}
