/* Weighted composition: `name[:weight],...`, e.g.
 * `least-kv-cache:2,least-latency:1,least-request`.
 *
 * Weights are integers 0..1000000 (default 1); 0 drops the member; a list
 * that keeps one member is that strategy alone; only scorers compose
 * (random and power-of-two must stand alone); a name appears at most once.
 *
 * Load-imbalance guard (when the caller enables it, dp_pick.imbalance_guard;
 * dp_route does for lists with prefix-cache, with
 * AIBRIX_PREFIX_CACHE_POD_RUNNING_REQUEST_IMBALANCE_ABS_COUNT):
 * with L(e) = dp_ep_load (least-request's count), if max L - min L over the
 * candidates exceeds imbalance_abs, only the candidates with the minimum L
 * take part below; the others are treated as not candidates. Why: every
 * norm_m is relative (0..1 over the candidates), so a load member only says
 * "relatively less loaded"; a member weighted above it that always prefers
 * one endpoint (prefix-cache when one engine holds the shared prefix) would
 * otherwise win every pick however loaded that endpoint gets (bench/routing
 * measured 0/0/480/0 on 4 engines). The guard bounds that pile-up to
 * imbalance_abs requests, as prefix-cache's own guard does alone.
 *
 * For each member m with weight w_m, over the candidates taking part:
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

#include "dp_load.h"

/* The minimum load when the guard applies to <pick>, else UINT32_MAX (every
 * candidate takes part). */
static uint32_t
guard_load(const dp_pick *pick)
{
    uint32_t lmin = UINT32_MAX, lmax = 0;

    if (!pick->imbalance_guard)
        return UINT32_MAX;
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        uint32_t l = dp_ep_load(dp_pick_ep(pick, i));
        lmin = l < lmin ? l : lmin;
        lmax = l > lmax ? l : lmax;
    }
    if (lmax - lmin <= pick->imbalance_abs)
        return UINT32_MAX;
    if (pick->pfx != NULL)
        pick->pfx->imbalance = true;
    return lmin;
}

uint32_t
dp_strat_weighted(const dp_plan *plan, const dp_pick *pick, double *scratch, const char **why)
{
    double *raw = scratch, *total = scratch + pick->n_cands, wsum = 0;
    uint32_t n = pick->n_cands, any = 0, only = guard_load(pick);

    for (uint32_t i = 0; i < n; i++)
        total[i] = only == UINT32_MAX || dp_ep_load(dp_pick_ep(pick, i)) == only ? 0 : NAN;
    for (uint32_t m = 0; m < plan->n; m++)
        wsum += plan->w[m];
    for (uint32_t m = 0; m < plan->n; m++) {
        const dp_strategy *s = plan->s[m];
        double lo = INFINITY, hi = -INFINITY, w = plan->w[m] / wsum;

        if (s->score(pick, raw, why) == 0)
            continue;
        for (uint32_t i = 0; i < n; i++) {
            if (isnan(total[i]))
                raw[i] = NAN; /* left out by the guard */
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
