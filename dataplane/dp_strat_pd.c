/* pd: prefill/decode disaggregation. The pair of endpoints is chosen by
 * dp_pd (dp_route_pick_pd) and the request is split by dp_proxy; this entry
 * only decides when the model has no complete roleset and the request goes
 * whole to a combined endpoint (AIBrix: a random combined pod): the fewest
 * requests in flight, as least-request, ties at random. */
#include "dp_strategy.h"

uint32_t
dp_strat_pd_combined(const dp_pick *pick)
{
    uint32_t best = 0, ties = 0;
    uint64_t bv = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        uint64_t v = dp_ep_load(dp_pick_ep(pick, i));
        if (ties == 0 || v < bv) {
            bv = v;
            best = i;
            ties = 1;
        } else if (v == bv && dp_rand(pick->rng, ++ties) == 0) {
            best = i;
        }
    }
    return best;
}
