/* dp_strategy: name -> strategy table (see dp_strategy.h). New strategies
 * add one line here and one file. */
#include "dp_strategy.h"

#include <string.h>

static const dp_strategy strategies[] = {
    {"random", dp_strat_random},
    {"least-request", dp_strat_least_request},
};

const dp_strategy *
dp_strategy_find(const char *name)
{
    for (size_t i = 0; i < sizeof(strategies) / sizeof(strategies[0]); i++) {
        if (strcmp(strategies[i].name, name) == 0)
            return &strategies[i];
    }
    return NULL;
}

uint32_t
dp_rand(uint64_t *state, uint32_t n)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    /* Multiply-shift maps the 64-bit output onto [0, n) without modulo bias
     * worth measuring at our n. */
    return (uint32_t)(((x * 2685821657736338717ull) >> 32) * (uint64_t)n >> 32);
}
