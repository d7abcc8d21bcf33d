/* vtc-basic: virtual token counter fairness per user (after VTC, Sheng et
 * al., OSDI'24, simplified for a router): light users land on one end of
 * the endpoint list, heavy users on the other, so a heavy user's backlog
 * does not sit in front of light users' requests, while load still counts.
 *
 *   u        = the `user`'s tokens in this worker's sliding window (dp_vtc:
 *              60 s in 10 s buckets; a request counts prompt tokens
 *              + 2 * output tokens, estimated when routed and settled on
 *              the engine's usage when it completes), before this request
 *   m        = the mean of u over this worker's users active in the window
 *   f        = u / (u + m), 0 when both are 0: 0 for a new user, 0.5 for
 *              an average one, towards 1 for heavy ones
 *   i        = the candidate's position (0..n-1) in snapshot order
 *   fair(i)  = |i - f * (n - 1)| / max(1, n - 1)
 *   util(i)  = L(e_i) / max(1, max_j L(e_j))     (L: least-request's count)
 *   score(i) = fair(i) + util(i)
 *
 * Lowest wins; ties uniformly at random. A request without a `user` header
 * has no input: least-request decides (fallback reason no_user). The window
 * is per worker (not shared), like AIBrix's. */
#include "dp_strategy.h"

#include <math.h>

uint32_t
dp_strat_vtc_basic(const dp_pick *pick, double *scores, const char **why)
{
    const dp_pick_req *r = pick->req;
    double f = 0, target, span = pick->n_cands > 1 ? pick->n_cands - 1 : 1;
    uint32_t lmax = 1;

    if (r == NULL || !r->has_user) {
        for (uint32_t i = 0; i < pick->n_cands; i++)
            scores[i] = NAN;
        *why = DP_WHY_NO_USER;
        return 0;
    }
    if (r->user_tokens + r->mean_user_tokens > 0)
        f = r->user_tokens / (r->user_tokens + r->mean_user_tokens);
    target = f * (pick->n_cands - 1);
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        uint32_t l = dp_ep_load(dp_pick_ep(pick, i));
        if (l > lmax)
            lmax = l;
    }
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double l = dp_ep_load(dp_pick_ep(pick, i));
        scores[i] = fabs((double)i - target) / span + l / lmax;
    }
    return pick->n_cands;
}
