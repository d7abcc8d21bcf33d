/* dp_strategy: the registry of routing strategies, selected by name (the
 * `routing-strategy` header, a profile's routingStrategy, ROUTING_ALGORITHM).
 * Each strategy lives in its own dp_strat_<name>.c and only picks: the
 * caller reserves the chosen endpoint's in-flight slot in the same loop
 * turn, before anything else can run, so concurrent requests always see each
 * other's reservations (the aibrix #2422 race cannot happen).
 * Pure: no I/O, no allocation. Loop thread only. */
#ifndef DP_STRATEGY_H
#define DP_STRATEGY_H

#include <stdint.h>

#include "dp_snap.h"

typedef struct dp_pick {
    const dp_snap *snap;
    const dp_model *model;
    const uint32_t *cands; /* endpoint indexes (into the snapshot) that may be picked */
    uint32_t n_cands;      /* >= 1 */
    uint64_t *rng;         /* xorshift state, advanced by dp_rand */
} dp_pick;

/* Returns a position in pick->cands (0 .. n_cands-1). */
typedef uint32_t (*dp_strategy_fn)(const dp_pick *pick);

typedef struct dp_strategy {
    const char *name;
    dp_strategy_fn pick;
} dp_strategy;

/* The strategy called <name> (exact, case-sensitive), or NULL. */
const dp_strategy *dp_strategy_find(const char *name);

/* Uniform integer in [0, n) from the xorshift64* generator at <state>. */
uint32_t dp_rand(uint64_t *state, uint32_t n);

/* The strategies (one file each). */
uint32_t dp_strat_random(const dp_pick *pick);
uint32_t dp_strat_least_request(const dp_pick *pick);

#endif
