/* power-of-two: the better of two random choices.
 *
 * Draws two distinct candidates uniformly at random; the one with fewer
 * requests in flight, L(e) as in least-request (fleet view plus this
 * worker's exact reservations, no Redis), wins; on a tie the first drawn
 * wins, which is itself a uniform choice. With one candidate, that one.
 * Never falls back. A chooser: it cannot be part of a weighted list.
 *
 * Compared with least-request it avoids herding when many workers act on
 * the same slightly stale fleet view, at the cost of sometimes skipping the
 * least loaded endpoint. */
#include "dp_strategy.h"

uint32_t
dp_strat_power_of_two(const dp_pick *pick)
{
    uint32_t a, b;

    if (pick->n_cands < 2)
        return 0;
    a = dp_rand(pick->rng, pick->n_cands);
    /* A uniform draw among the other n-1, mapped around <a>: distinct. */
    b = dp_rand(pick->rng, pick->n_cands - 1);
    if (b >= a)
        b++;
    return dp_ep_load(dp_pick_ep(pick, b)) < dp_ep_load(dp_pick_ep(pick, a)) ? b : a;
}
