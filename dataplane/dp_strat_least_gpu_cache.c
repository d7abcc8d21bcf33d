/* least-gpu-cache: the lowest GPU KV cache usage.
 *
 *   score(e) = gpu_usage(e)
 *
 * the engine's GPU KV cache usage 0..1 (vllm:gpu_cache_usage_perc, the
 * pre-V1 name, or SGLang token_usage), as last scraped. Lowest wins; ties
 * uniformly at random. An endpoint without the value (< 0) ranks after
 * every endpoint with one; when no candidate has it, least-request decides
 * (fallback reason no_metrics). On vLLM V1, which exports only
 * kv_cache_usage_perc, use least-kv-cache. */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_least_gpu_cache(const dp_pick *pick, double *scores, const char **why)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double v = dp_pick_ep(pick, i)->gpu_usage;
        scores[i] = v >= 0 ? v : NAN;
        n += v >= 0;
    }
    if (n == 0)
        *why = DP_WHY_NO_METRICS;
    return n;
}
