/* least-kv-cache: the lowest KV cache usage, estimated for now.
 *
 *   score(e) = max(0, kv_usage(e) + (T(e) - T_scrape(e)) / capacity(e))
 *
 * kv_usage: the engine's KV cache usage 0..1 (vllm:kv_cache_usage_perc,
 * SGLang token_usage, TRT-LLM kv_cache_utilization) as last scraped;
 * T: the in-flight token estimate (dp_ep_tokens: the fleet's, with this
 * worker's own exact count); T_scrape: T when that usage was scraped;
 * capacity: the engine's KV capacity in tokens (vllm:cache_config_info
 * num_gpu_blocks x block_size, sglang:max_total_num_tokens). dp_load.h
 * (dp_ep_kv_estimate) says how T_scrape is found; a fresh scrape resets the
 * estimate to the engine's word. Why: the scraped value is up to a scrape
 * interval (plus a load interval) old, and ranking by it alone sent every
 * request between two scrapes to the same engine (bench/routing: TTFT p90
 * 2.2x random's on multiturn). Requests this worker (or, through the
 * controller, the fleet) sent since the scrape now count at once.
 *
 * An engine without a capacity (one that exports none) among candidates
 * with one is scored with the largest of theirs (one model's engines are
 * usually alike): with none its estimate could not move between scrapes,
 * and a burst went to it (1/1/1/9 of 12 on 4 engines). When no candidate
 * has a capacity the score is the scraped usage, and equal usages (idle
 * engines, the start of a burst) go to the smaller change of T since the
 * scrape: it is added scaled below 1e-9, under the resolution of any
 * engine's usage (1 / its block count).
 *
 * Lowest wins; ties uniformly at random. Unlike AIBrix it does not add the
 * CPU cache metric (vLLM V1 no longer exports it, which made AIBrix's
 * version skip every pod), and AIBrix ranks by the scraped value alone. An
 * endpoint without kv_usage (< 0) ranks after every endpoint with one; when
 * no candidate has it, least-request decides (fallback reason no_metrics). */
#include "dp_strategy.h"

#include <math.h>

/* Below one block of any real engine's usage: breaks ties only. */
#define TIE_SCALE 1e-9

uint32_t
dp_strat_least_kv_cache(const dp_pick *pick, double *scores, const char **why)
{
    uint32_t n = 0;
    double lent = 0; /* the largest capacity among the candidates */

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double c = dp_pick_ep(pick, i)->kv_capacity;
        lent = c > lent ? c : lent;
    }
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        const dp_ep *ep = dp_pick_ep(pick, i);
        double cap = ep->kv_capacity > 0 ? ep->kv_capacity : lent;
        double v = dp_ep_kv_estimate_as(ep, cap);

        if (v >= 0 && !(cap > 0)) {
            double d = (double)dp_ep_tokens(ep) - (double)ep->kv_base_tokens;
            d = d > 0 ? d : 0;
            v += TIE_SCALE * d / (d + 1);
        }
        scores[i] = v >= 0 ? v : NAN;
        n += v >= 0;
    }
    if (n == 0)
        *why = DP_WHY_NO_METRICS;
    return n;
}
