/* least-busy-time: the fewest expected seconds of work already queued.
 *
 *   T(e)     = in-flight tokens: fleet_inflight_tokens(e) - this worker's
 *              share + this worker's in-flight tokens on e now (dp_ep_tokens;
 *              a request counts prompt bytes / 4 + max_tokens)
 *   r(e)     = tokens_per_s(e) if >= 1; else (an idle engine, whose rate says
 *              nothing about its speed) the mean tokens_per_s of the
 *              candidates with a rate >= 1; else 1
 *   score(e) = T(e) / r(e)   [seconds]
 *
 * Lowest wins; ties uniformly at random. Needs tokens_per_s: an endpoint
 * whose rate is unknown (< 0) ranks after every endpoint with one; when no
 * candidate has it, least-request decides (fallback reason no_metrics).
 * T(e) is fresh (this worker's reservations count at once), so bursts
 * spread. AIBrix's version read a GPU busy-time ratio no scraper fills and
 * always fell back to random. */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_least_busy_time(const dp_pick *pick, double *scores, const char **why)
{
    double sum = 0, mean = 1;
    uint32_t n = 0, n_rate = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double v = dp_pick_ep(pick, i)->tokens_per_s;
        if (v >= 1) {
            sum += v;
            n_rate++;
        }
    }
    if (n_rate > 0)
        mean = sum / n_rate;
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        const dp_ep *ep = dp_pick_ep(pick, i);
        if (ep->tokens_per_s < 0) {
            scores[i] = NAN;
            continue;
        }
        scores[i] = (double)dp_ep_tokens(ep) / (ep->tokens_per_s >= 1 ? ep->tokens_per_s : mean);
        n++;
    }
    if (n == 0)
        *why = DP_WHY_NO_METRICS;
    return n;
}
