/* Weighted composition: `name[:weight],...`, e.g.
 * `least-kv-cache:2,least-latency:1,least-request`.
 *
 * Weights are integers 0..1000000 (default 1); 0 drops the member; a list
 * that keeps one member is that strategy alone; only scorers compose
 * (random and power-of-two must stand alone); a name appears at most once.
 * For each member m with weight w_m:
 *   raw_m(e)  = the member's score (dp_strategy.h: NAN = no input)
 *   lo, hi    = min and max of raw_m over the candidates it scored
 *   norm_m(e) = 0                          if e is unscored by m
 *             = 1                          if hi == lo (all scored equal)
 *             = (raw_m(e) - lo) / (hi - lo)      for higher-is-better
 *             = 1 - (raw_m(e) - lo) / (hi - lo)  for lower-is-better
 *   total(e)  = sum_m w_m * norm_m(e) / sum_m w_m
 * The highest total wins; ties uniformly at random. A member that scores no
 * candidate adds 0 everywhere (it does not decide, and is not counted as a
 * fallback); when no member scores any candidate, least-request decides
 * (fallback reason: the last member's). The plan's label (metrics, the
 * `routing-strategy` response header, the access log) is the canonical
 * list: members in the given order with explicit weights, zero weights
 * dropped. Plans are compiled once per distinct string (dp_plan_cache,
 * dp_snap). */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_weighted(const dp_plan *plan, const dp_pick *pick, double *scratch, const char **why)
{
    double *raw = scratch, *total = scratch + pick->n_cands, wsum = 0;
    uint32_t n = pick->n_cands, any = 0;

    for (uint32_t i = 0; i < n; i++)
        total[i] = 0;
    for (uint32_t m = 0; m < plan->n; m++)
        wsum += plan->w[m];
    for (uint32_t m = 0; m < plan->n; m++) {
        const dp_strategy *s = plan->s[m];
        double lo = INFINITY, hi = -INFINITY, w = plan->w[m] / wsum;

        if (s->score(pick, raw, why) == 0)
            continue;
        for (uint32_t i = 0; i < n; i++) {
            if (!isfinite(raw[i]))
                continue;
            lo = raw[i] < lo ? raw[i] : lo;
            hi = raw[i] > hi ? raw[i] : hi;
        }
        if (lo > hi)
            continue; /* only non-finite values: nothing scored */
        any++;
        for (uint32_t i = 0; i < n; i++) {
            double v;
            if (!isfinite(raw[i]))
                continue;
            if (hi == lo)
                v = 1;
            else {
                v = (raw[i] - lo) / (hi - lo);
                if (!s->higher_better)
                    v = 1 - v;
            }
            total[i] += w * v;
        }
    }
    if (any == 0)
        return UINT32_MAX;
    return dp_best_score(pick, total, true);
}
