/* prefix-cache: send a request where its prompt's prefix is probably cached
 * (AIBrix's prefix-cache semantics, with its Helm defaults).
 *
 * Inputs: the request's block hashes (dp_prefix.h: the routing text in
 * blocks of AIBRIX_PREFIX_CACHE_BLOCK_SIZE bytes, at most
 * AIBRIX_PREFIX_CACHE_MAX_PREFIX_BYTES of it), and for each candidate e
 *   m(e) = the blocks of the longest prefix the index holds for e
 *   L(e) = requests in flight (least-request's count)
 * A candidate "matches" when m(e) >= max(1, AIBRIX_PREFIX_CACHE_MIN_MATCH_BLOCKS).
 *
 * Alone, in order:
 * 1. Load-imbalance guard: if max L - min L over the candidates exceeds
 *    AIBRIX_PREFIX_CACHE_POD_RUNNING_REQUEST_IMBALANCE_ABS_COUNT (16), only
 *    the candidates with the minimum L remain; among them the longest
 *    matching m wins (ties at random), else any of them at random
 *    (counted in aibrix_prefix_cache_load_imbalance_total).
 * 2. Otherwise, among the matching candidates with
 *        L(e) <= mean(L) + AIBRIX_PREFIX_CACHE_STANDARD_DEVIATION_FACTOR * sd(L)
 *    (mean and sample standard deviation over all candidates; factor 2),
 *    the longest m wins, then the lower L, then at random: prefix_match.
 * 3. Otherwise least-request decides: prefix_match_skipped when some
 *    candidate matched but all of those were too loaded,
 *    least_request_fallback when none matched (also for a prompt shorter
 *    than one block).
 * The caller (dp_route) then inserts the request's blocks for the chosen
 * endpoint, whoever chose it.
 *
 * In a weighted composition it is a scorer: score(e) = m(e) / blocks of the
 * request when e matches, else 0; higher is better. With no full block (or
 * no index) it scores nobody (reason no_prefix).
 *
 * Differences from AIBrix: the load is the gateway's in-flight count (fresh
 * for this worker's own picks, fleet-wide through the controller), mean and
 * sd are over the candidates (after external-filter and retries), the guard
 * prefers a match among the least loaded instead of ignoring it, and a
 * minimum match length exists (default 1 block = AIBrix's behaviour). */
#include <math.h>

#include "dp_prefix.h"
#include "dp_strategy.h"

static bool
run_match(const dp_pick *pick)
{
    dp_pfx_pick *x = pick->pfx;

    if (x == NULL)
        return false;
    if (!x->matched) {
        if (x->index != NULL && x->n_blocks > 0)
            dp_prefix_match(x->index, x->hashes, x->n_blocks, pick->states, pick->cands,
                            pick->n_cands, x->match);
        else
            for (uint32_t i = 0; i < pick->n_cands; i++)
                x->match[i] = 0;
        x->matched = true;
    }
    return x->index != NULL && x->n_blocks > 0;
}

static uint32_t
min_blocks(const dp_pfx_pick *x)
{
    return x->min_match_blocks > 1 ? x->min_match_blocks : 1;
}

uint32_t
dp_strat_prefix_cache(const dp_pick *pick, double *scores, const char **why)
{
    const dp_pfx_pick *x = pick->pfx;

    if (!run_match(pick)) {
        for (uint32_t i = 0; i < pick->n_cands; i++)
            scores[i] = NAN;
        *why = DP_WHY_NO_PREFIX;
        return 0;
    }
    for (uint32_t i = 0; i < pick->n_cands; i++)
        scores[i] = x->match[i] >= min_blocks(x) ? (double)x->match[i] / x->n_blocks : 0;
    return pick->n_cands;
}

/* The least loaded candidate among those with <only_load> (UINT32_MAX: any),
 * ties uniformly at random. */
static uint32_t
least_request(const dp_pick *pick, uint32_t only_load)
{
    uint32_t best = 0, ties = 0, bl = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        uint32_t l = dp_ep_load(dp_pick_ep(pick, i));
        if (only_load != UINT32_MAX && l != only_load)
            continue;
        if (ties == 0 || l < bl) {
            bl = l;
            best = i;
            ties = 1;
        } else if (l == bl && dp_rand(pick->rng, ++ties) == 0) {
            best = i;
        }
    }
    return best;
}

uint32_t
dp_strat_prefix_cache_choose(const dp_pick *pick)
{
    dp_pfx_pick *x = pick->pfx;
    uint32_t n = pick->n_cands, lmin = UINT32_MAX, lmax = 0, best = UINT32_MAX, ties = 0;
    uint32_t bm = 0, bl = 0, need;
    double sum = 0, sumsq = 0, mean, sd, cap;
    bool any_match = false, usable;

    if (x == NULL)
        return least_request(pick, UINT32_MAX);
    usable = run_match(pick);
    need = min_blocks(x);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l = dp_ep_load(dp_pick_ep(pick, i));
        lmin = l < lmin ? l : lmin;
        lmax = l > lmax ? l : lmax;
        sum += l;
        sumsq += (double)l * l;
    }
    if (lmax - lmin > x->imbalance_abs) {
        /* 1. The least loaded only; a match among them still counts. */
        x->imbalance = true;
        for (uint32_t i = 0; usable && i < n; i++) {
            uint32_t m = x->match[i];
            if (dp_ep_load(dp_pick_ep(pick, i)) != lmin || m < need)
                continue;
            if (best == UINT32_MAX || m > bm) {
                best = i;
                bm = m;
                ties = 1;
            } else if (m == bm && dp_rand(pick->rng, ++ties) == 0) {
                best = i;
            }
        }
        x->outcome = best != UINT32_MAX ? DP_PFX_PREFIX_MATCH : DP_PFX_FALLBACK;
        return best != UINT32_MAX ? best : least_request(pick, lmin);
    }
    /* 2. The best match whose load is within mean + k * sd. */
    mean = sum / n;
    sd = n > 1 ? sqrt(fmax(0, (sumsq - n * mean * mean) / (n - 1))) : 0;
    cap = mean + x->stddev_factor * sd;
    for (uint32_t i = 0; usable && i < n; i++) {
        uint32_t m = x->match[i], l;
        if (m < need)
            continue;
        any_match = true;
        l = dp_ep_load(dp_pick_ep(pick, i));
        if ((double)l > cap + 1e-9)
            continue;
        if (best == UINT32_MAX || m > bm || (m == bm && l < bl)) {
            best = i;
            bm = m;
            bl = l;
            ties = 1;
        } else if (m == bm && l == bl && dp_rand(pick->rng, ++ties) == 0) {
            best = i;
        }
    }
    if (best != UINT32_MAX) {
        x->outcome = DP_PFX_PREFIX_MATCH;
        return best;
    }
    /* 3. least-request. */
    x->outcome = any_match ? DP_PFX_SKIPPED : DP_PFX_FALLBACK;
    return least_request(pick, UINT32_MAX);
}
