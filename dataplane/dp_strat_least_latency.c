/* least-latency: the lowest expected latency for this request.
 *
 *   out     = the request's max_tokens (or max_completion_tokens) if given,
 *             else DP_DEFAULT_OUTPUT_TOKENS (256)
 *   S(e)    = latency_ms(e) if known, else ttft_ms(e) + 256 * tpot_ms(e):
 *             the mean time one request spends on the engine
 *   R(e)    = max(1, running(e)), 1 if unknown: requests the engine runs at
 *             once, so one finishes every S(e) / R(e) ms
 *   Q(e)    = max(waiting(e), L(e) - running(e)), an unknown term counting
 *             as 0: requests ahead of this one. The engine's queue as last
 *             scraped, or, when it is larger, the gateway's own fresh count
 *             of requests in flight beyond what the engine was running (so
 *             a burst between two scrapes is seen at once, like
 *             least-request)
 *   score(e) = Q(e) * S(e) / R(e) + ttft_ms(e) + out * tpot_ms(e)   [ms]
 *
 * Lowest wins; ties uniformly at random. Needs ttft_ms and tpot_ms: an
 * endpoint missing either ranks after every endpoint that has both; when no
 * candidate has them, least-request decides (fallback reason no_metrics).
 * AIBrix's version needed Prometheus queries and a queue metric that is
 * never filled, and silently fell back to random. */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_least_latency(const dp_pick *pick, double *scores, const char **why)
{
    const dp_pick_req *r = pick->req;
    double out = r != NULL && r->max_tokens >= 0 ? (double)r->max_tokens : DP_DEFAULT_OUTPUT_TOKENS;
    uint32_t n = 0;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        const dp_ep *ep = dp_pick_ep(pick, i);
        double service, conc, ahead, run;

        if (ep->ttft_ms < 0 || ep->tpot_ms < 0) {
            scores[i] = NAN;
            continue;
        }
        service = ep->latency_ms >= 0 ? ep->latency_ms
                                      : ep->ttft_ms + DP_DEFAULT_OUTPUT_TOKENS * ep->tpot_ms;
        run = ep->running >= 0 ? ep->running : 0;
        conc = run > 1 ? run : 1;
        ahead = (double)dp_ep_load(ep) - run;
        if (ep->waiting > ahead)
            ahead = ep->waiting;
        if (ahead < 0)
            ahead = 0;
        scores[i] = ahead * service / conc + ep->ttft_ms + out * ep->tpot_ms;
        n++;
    }
    if (n == 0)
        *why = DP_WHY_NO_METRICS;
    return n;
}
