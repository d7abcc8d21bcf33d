/* random: each candidate endpoint with probability 1/n.
 *
 * Candidates are the model's (or adapter's) endpoints that are ready, not
 * draining, not already tried by this request and matching its
 * external-filter. Needs no signal, so it never falls back. A chooser: it
 * cannot be part of a weighted list. */
#include "dp_strategy.h"

uint32_t
dp_strat_random(const dp_pick *pick)
{
    return dp_rand(pick->rng, pick->n_cands);
}
