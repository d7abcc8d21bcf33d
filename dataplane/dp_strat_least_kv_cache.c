/* least-kv-cache: the lowest KV cache usage.
 *
 *   score(e) = kv_usage(e)
 *
 * the engine's KV cache usage 0..1 (vllm:kv_cache_usage_perc, SGLang
 * token_usage, TRT-LLM kv_cache_utilization), as last scraped. Lowest wins;
 * ties uniformly at random. Unlike AIBrix it does not add the CPU cache
 * metric (vLLM V1 no longer exports it, which made AIBrix's version skip
 * every pod). An endpoint without the value (< 0) ranks after every
 * endpoint with one; when no candidate has it, least-request decides
 * (fallback reason no_metrics). The value is at most one scrape interval
 * old; compose with least-request to spread bursts. */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_least_kv_cache(const dp_pick *pick, double *scores, const char **why)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double v = dp_pick_ep(pick, i)->kv_usage;
        scores[i] = v >= 0 ? v : NAN;
        n += v >= 0;
    }
    if (n == 0)
        *why = DP_WHY_NO_METRICS;
    return n;
}
