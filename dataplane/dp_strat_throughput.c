/* throughput: the fewest tokens processed in a recent window.
 *
 *   score(e) = tokens_per_s(e)
 *
 * the engine's recent token throughput (prompt + generation tokens per
 * second over the controller's scrape window). Lowest wins; ties uniformly
 * at random. An endpoint whose throughput is unknown (< 0: never scraped,
 * or stale) ranks after every endpoint with a value; when no candidate has
 * one, least-request decides (fallback reason no_metrics).
 *
 * The value is at most one scrape interval old: within that interval every
 * request of this worker sees the same ranking. Compose it with
 * least-request (e.g. `throughput:2,least-request:1`) to spread bursts. */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_throughput(const dp_pick *pick, double *scores, const char **why)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double v = dp_pick_ep(pick, i)->tokens_per_s;
        scores[i] = v >= 0 ? v : NAN;
        n += v >= 0;
    }
    if (n == 0)
        *why = DP_WHY_NO_METRICS;
    return n;
}
