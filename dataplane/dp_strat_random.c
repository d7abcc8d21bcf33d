/* random: uniform over the candidate endpoints. */
#include "dp_strategy.h"

uint32_t
dp_strat_random(const dp_pick *pick)
{
    return dp_rand(pick->rng, pick->n_cands);
}
