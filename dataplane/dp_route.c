/* dp_route: model/profile/strategy resolution and the reserve-on-pick step
 * (see dp_route.h). */
#include "dp_route.h"

#include "dp_pd.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_loop.h"
#include "gw/gw_mem.h"

#include "dp_cbreaker.h"
#include "dp_prefix.h"
#include "dp_vtc.h"

/* An absent upper bound, for comparing how tight hints are. */
#define HINT_INF ((uint64_t)1 << 53)

static bool
nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static const dp_prof *
find_profile(const dp_model *m, const char *name)
{
    for (uint32_t i = 0; name != NULL && i < m->model->n_profiles; i++) {
        if (strcmp(m->profs[i].p->name, name) == 0)
            return &m->profs[i];
    }
    return NULL;
}

static bool
hints_match(const dp_prof *p, uint64_t prompt, int64_t max_tokens)
{
    if (p->prompt_gte != DP_HINT_NONE && prompt < (uint64_t)p->prompt_gte)
        return false;
    if (p->prompt_lt != DP_HINT_NONE && prompt >= (uint64_t)p->prompt_lt)
        return false;
    if (p->max_gte == DP_HINT_NONE && p->max_lt == DP_HINT_NONE)
        return true;
    /* Without max_tokens the output length is unknown: no output hint holds. */
    if (max_tokens < 0)
        return false;
    if (p->max_gte != DP_HINT_NONE && max_tokens < p->max_gte)
        return false;
    if (p->max_lt != DP_HINT_NONE && max_tokens >= p->max_lt)
        return false;
    return true;
}

static uint64_t
width(int64_t gte, int64_t lt)
{
    uint64_t lo = gte == DP_HINT_NONE ? 0 : (uint64_t)gte;
    uint64_t hi = lt == DP_HINT_NONE ? HINT_INF : (uint64_t)lt;

    lo = lo < HINT_INF ? lo : HINT_INF;
    hi = hi < HINT_INF ? hi : HINT_INF;
    return hi > lo ? hi - lo : 0;
}

/* `config-profile: auto`: among the profiles with hints (scanned in name
 * order), those whose every hint holds; the most specific wins: more hints,
 * then the smallest total width of its ranges (absent bounds are 0 and
 * 2^53), then the first by name. */
static const dp_prof *
auto_profile(const dp_model *m, uint64_t prompt, int64_t max_tokens)
{
    const dp_prof *best = NULL;
    uint64_t best_w = 0;

    for (uint32_t k = 0; k < m->n_auto; k++) {
        const dp_prof *p = &m->profs[m->auto_order[k]];
        uint64_t w;
        if (!hints_match(p, prompt, max_tokens))
            continue;
        w = width(p->prompt_gte, p->prompt_lt) + width(p->max_gte, p->max_lt);
        if (best == NULL || p->n_hints > best->n_hints ||
            (p->n_hints == best->n_hints && w < best_w)) {
            best = p;
            best_w = w;
        }
    }
    return best;
}

/* A `config-profile` header naming an unknown profile falls back to the
 * model's defaultProfile, then to "default" (aibrix.md §5); `auto` with no
 * matching profile does the same. */
static const dp_prof *
resolve_profile(const dp_model *m, const char *hdr, uint64_t prompt, int64_t max_tokens,
                bool *is_auto)
{
    const dp_prof *p = NULL;

    *is_auto = hdr != NULL && strcmp(hdr, "auto") == 0;
    if (*is_auto)
        p = auto_profile(m, prompt, max_tokens);
    else if (hdr != NULL)
        p = find_profile(m, hdr);
    if (p == NULL)
        p = find_profile(m, m->model->default_profile ? m->model->default_profile : "default");
    if (p == NULL)
        p = find_profile(m, "default");
    return p;
}

uint64_t
dp_route_prompt_tokens(size_t prompt_bytes)
{
    return ((uint64_t)prompt_bytes + 3) / 4;
}

/* What a request counts for its user's vtc window: prompt tokens plus
 * twice the output tokens (VTC's weights: output costs the engine more),
 * with the output estimated as in least-latency until usage settles it. */
static int64_t
vtc_cost(uint64_t prompt, int64_t max_tokens)
{
    uint64_t out = max_tokens >= 0 ? (uint64_t)max_tokens : DP_DEFAULT_OUTPUT_TOKENS;
    uint64_t c = prompt + 2 * (out < (1u << 24) ? out : (1u << 24));

    return (int64_t)(c < (1u << 26) ? c : (1u << 26));
}

static void
setup_vtc(dp_ctx *ctx, const dp_route_in *in, dp_route *out)
{
    uint64_t now = gw_now_ms();

    out->vtc_user = 0;
    out->vtc_charged = 0;
    if (!nonempty(in->user))
        return;
    if (ctx->vtc == NULL)
        ctx->vtc = dp_vtc_new();
    out->preq.has_user = true;
    out->vtc_user = dp_vtc_user(in->user);
    dp_vtc_lookup(ctx->vtc, out->vtc_user, now, &out->preq.user_tokens,
                  &out->preq.mean_user_tokens);
    /* Charged now, so the user's next request (maybe in the same burst)
     * sees this one; settled on the real usage at completion. */
    out->vtc_charged = vtc_cost(out->preq.prompt_tokens, in->max_tokens);
    dp_vtc_charge(ctx->vtc, out->vtc_user, out->vtc_charged, now);
}

/* Hashes the request's routing text once, into ctx->pfx_hashes (reused by
 * every request). A LoRA adapter's blocks chain from its own first parent:
 * its KV cache is not the base model's. */
static void
hash_prompt(dp_ctx *ctx, const dp_model *m, const dp_route_in *in, dp_route *out)
{
    const dp_prefix_cfg *cfg = dp_prefix_config(ctx->prefix);
    uint64_t parent0 = dp_prefix_parent0(cfg->seed, m->adapter ? m->name : NULL);

    if (ctx->pfx_hash_cap < cfg->max_blocks) {
        ctx->pfx_hash_cap = cfg->max_blocks;
        ctx->pfx_hashes =
            gw_xrealloc(ctx->pfx_hashes, ctx->pfx_hash_cap * sizeof(*ctx->pfx_hashes));
    }
    out->pfx_n = dp_prefix_hash(cfg->seed, parent0, cfg->block_size, in->text, in->text_len,
                                ctx->pfx_hashes, cfg->max_blocks);
    out->pfx_stamp = ++ctx->pfx_stamp;
}

const char *
dp_route_pfx_bucket(uint32_t matched, uint32_t total)
{
    uint64_t pct = total > 0 ? (uint64_t)matched * 100 / total : 0;

    if (pct == 0)
        return "0";
    return pct <= 25 ? "1-25" : pct <= 50 ? "26-50" : pct <= 75 ? "51-75" : "76-100";
}

bool
dp_route_resolve(dp_ctx *ctx, const dp_snap *snap, const dp_route_in *in, dp_route *out,
                 dp_error *err)
{
    const dp_model *m = dp_snap_model(snap, in->model);
    const dp_prof *prof;
    const dp_plan *cfg = NULL;
    bool have = false;
    char why[200];

    if (m == NULL) {
        dp_error_set(err, 404, "x-error-no-model-backends", in->model, "model_not_found",
                     "The model `%.128s` does not exist.", in->model);
        return false;
    }
    out->model = m;
    out->fallback = NULL;
    out->preq = (dp_pick_req){.max_tokens = in->max_tokens,
                              .prompt_tokens = dp_route_prompt_tokens(in->prompt_bytes),
                              .session_id = in->session_id};
    if (nonempty(in->session_key) && strlen(in->session_key) <= DP_SESSION_KEY_MAX)
        out->preq.session_key = in->session_key;
    prof = resolve_profile(m, in->profile, out->preq.prompt_tokens, in->max_tokens,
                           &out->profile_auto);
    out->profile = prof != NULL ? prof->p : NULL;
    out->profile_auto = out->profile_auto && prof != NULL;
    /* A bad name in the client's header is the client's error (400), even
     * when a locked strategy would win. A bad name in operator config
     * (locked, profile, gateway default) must not fail every request of the
     * model: it was logged when the snapshot arrived and counts as unset, so
     * the next source in precedence order decides. */
    if (ctx->plans == NULL)
        ctx->plans = dp_plan_cache_new();
    if (nonempty(in->strategy)) {
        if (!dp_plan_get(ctx->plans, in->strategy, &out->plan, why, sizeof(why))) {
            dp_error_set(err, 400, "x-error-invalid-routing-strategy", "true",
                         "invalid_routing_strategy", "incorrect routing strategy: %.160s", why);
            return false;
        }
        have = true;
    }
    out->filter.n = 0;
    out->filter.src = NULL;
    if (in->filter != NULL &&
        !dp_selector_parse(in->filter, strlen(in->filter), &out->filter, why, sizeof(why))) {
        dp_error_set(err, 400, "x-error-invalid-external-filter", "true", "invalid_external_filter",
                     "%s", why);
        return false;
    }
    if (m->locked != NULL) {
        cfg = m->locked;
    } else if (have) {
        /* the header's plan, already in out->plan */
    } else if (prof != NULL && prof->plan != NULL) {
        cfg = prof->plan;
    } else if (nonempty(ctx->cfg.routing_algorithm) &&
               dp_plan_get(ctx->plans, ctx->cfg.routing_algorithm, &out->plan, why, sizeof(why))) {
        /* ROUTING_ALGORITHM, in out->plan (main validated it at start) */
    } else {
        if (nonempty(ctx->cfg.routing_algorithm))
            gw_log_ratelimited(GW_LOG_WARN, 1, "DP-ROUTE-BAD-STRATEGY",
                               "strategy=%.64s msg=\"ROUTING_ALGORITHM invalid; ignored\"",
                               ctx->cfg.routing_algorithm);
        cfg = dp_snap_default_plan(snap);
        if (cfg == NULL)
            dp_plan_single(dp_strategy_find("random"), &out->plan);
    }
    if (cfg != NULL)
        out->plan = *cfg;
    out->affinity = dp_plan_has(&out->plan, "session-affinity");
    out->pfx_plan = dp_plan_has(&out->plan, "prefix-cache");
    out->pd = dp_plan_has(&out->plan, "pd");
    out->pd_prefill = -1;
    out->pd_how = NULL;
    out->pfx_n = 0;
    out->pfx_stamp = 0;
    out->pfx_bucket = NULL;
    out->pfx_outcome = NULL;
    out->pfx_imbalance = false;
    /* pd reads prefix matches to place the prefill. */
    if ((out->pfx_plan || out->pd) && ctx->prefix != NULL && in->text != NULL)
        hash_prompt(ctx, m, in, out);
    setup_vtc(ctx, in, out);
    return true;
}

/* Fills ctx->scratch with the routable endpoints of the route's model:
 * ready, not draining, matching its filter, not in <exclude>, not ejected
 * (dp_outlier; unless all are). Prefill and
 * decode endpoints serve only through pd: <role> DP_PD_COMBINED keeps
 * combined ones only (any plan but pd, and pd without a complete roleset),
 * -2 keeps every role (pd), and DP_PD_PREFILL/DP_PD_DECODE keep that role.
 * *filtered counts those the filter removed, *capped those at their
 * concurrency cap (dp_cbreaker). Returns the count. */
static uint32_t
list_candidates(dp_ctx *ctx, const dp_snap *snap, const dp_route *route, const uint32_t *exclude,
                uint32_t n_exclude, int role, uint32_t *filtered, uint32_t *capped)
{
    const pm_snapshot *pm = dp_snap_pm(snap);
    const dp_model *m = route->model;
    uint32_t n = 0;
    uint64_t now = gw_now_us();
    dp_outlier_cfg oc = dp_outlier_cfg_of(&ctx->cfg);
    bool keep_ejected = false, any_ejected = false;
    const dp_ep *st;

    if (ctx->scratch_cap < m->n_eps) {
        ctx->scratch_cap = m->n_eps;
        ctx->scratch = gw_xrealloc(ctx->scratch, ctx->scratch_cap * sizeof(*ctx->scratch));
        ctx->scores = gw_xrealloc(ctx->scores, 2 * ctx->scratch_cap * sizeof(*ctx->scores));
        ctx->pfx_match = gw_xrealloc(ctx->pfx_match, ctx->scratch_cap * sizeof(*ctx->pfx_match));
        ctx->pd_groups = gw_xrealloc(ctx->pd_groups, ctx->scratch_cap * sizeof(*ctx->pd_groups));
    }
again:
    *filtered = *capped = 0;
    for (uint32_t i = 0; i < m->n_eps; i++) {
        const pm_endpoint *e = &pm->endpoints[m->eps[i]];
        dp_pd_role r = dp_pd_role_of(e);
        bool skip = !e->ready || e->draining;
        if (role == -1 || role == DP_PD_COMBINED)
            skip = skip || r != DP_PD_COMBINED;
        else if (role != -2)
            skip = skip || (int)r != role;
        for (uint32_t x = 0; !skip && x < n_exclude; x++)
            skip = exclude[x] == m->eps[i];
        if (!skip && route->filter.n > 0 &&
            !dp_selector_matches(&route->filter, e->labels, e->n_labels)) {
            skip = true;
            (*filtered)++;
        }
        if (!skip && dp_cbreaker_open(dp_snap_state(snap, m->eps[i]), ctx->ep_cap)) {
            skip = true;
            (*capped)++;
        }
        if (!skip && !keep_ejected && (st = dp_snap_state(snap, m->eps[i])) != NULL &&
            dp_outlier_skip(&st->outlier, &oc, st->inflight, now)) {
            skip = true;
            any_ejected = true;
        }
        if (!skip)
            ctx->scratch[n++] = m->eps[i];
    }
    if (n == 0 && any_ejected && !keep_ejected) {
        keep_ejected = true; /* all ejected: try them rather than fail for sure (dp_outlier.h) */
        goto again;
    }
    return n;
}

static void
reserve(dp_ep *ep, uint64_t tokens)
{
    ep->inflight++;
    ep->inflight_tokens += tokens;
}

/* Every candidate left was at its concurrency cap (dp_cbreaker): 503 at
 * once, as Envoy's circuit breaker overflow. True when that was the case. */
static bool
overflow_error(const dp_route *route, uint32_t n, uint32_t capped, dp_error *err)
{
    if (n > 0 || capped == 0)
        return false;
    dp_error_set(err, 503, "x-error-upstream-overflow", "true", "service_unavailable",
                 "every endpoint of model %.128s is at its concurrency cap "
                 "(--max-parallel-requests, --max-pending-requests)",
                 route->model->name);
    return true;
}

/* pd: a pick over the candidates of every role not in <exclude> (*capped as
 * list_candidates). */
static dp_pick
pd_candidates(dp_ctx *ctx, const dp_snap *snap, const dp_route *route, const uint32_t *exclude,
              uint32_t n_exclude, uint32_t *capped)
{
    uint32_t filtered;
    uint32_t n = list_candidates(ctx, snap, route, exclude, n_exclude, -2, &filtered, capped);

    return (dp_pick){.snap = snap,
                     .states = dp_snap_states(snap),
                     .cands = ctx->scratch,
                     .n_cands = n,
                     .rng = &ctx->rng,
                     .req = &route->preq};
}

bool
dp_route_pick_pd(dp_ctx *ctx, const dp_snap *snap, dp_route *route, bool staged,
                 const uint32_t *exclude, uint32_t n_exclude, uint64_t tokens, int64_t *decode,
                 dp_error *err)
{
    dp_pd_cfg cfg = {.prefill_spread = (uint32_t)ctx->cfg.pd_prefill_spread,
                     .decode_spread = (uint32_t)ctx->cfg.pd_decode_spread};
    uint32_t capped;
    dp_pick pick = pd_candidates(ctx, snap, route, exclude, n_exclude, &capped);
    uint32_t n = pick.n_cands;
    bool mine = route->pfx_stamp != 0 && route->pfx_stamp == ctx->pfx_stamp;
    uint32_t n_blocks = mine && ctx->prefix != NULL ? route->pfx_n : 0;
    dp_pd_choice c;
    dp_ep *pre;

    *decode = -1;
    if (n_blocks > 0)
        dp_prefix_match(ctx->prefix, ctx->pfx_hashes, n_blocks, pick.states, pick.cands, n,
                        ctx->pfx_match);
    if (overflow_error(route, n, capped, err))
        return false;
    if (n == 0 || !dp_pd_choose(&pick, &cfg, !staged, n_blocks > 0 ? ctx->pfx_match : NULL,
                                n_blocks, ctx->pd_groups, &c)) {
        dp_error_set(err, 503, "x-error-no-model-backends", "true", "service_unavailable",
                     "model %.128s has no roleset with a ready prefill and a ready decode "
                     "endpoint%s",
                     route->model->name, n_exclude > 0 ? " left to try" : "");
        return false;
    }
    route->pd_prefill = ctx->scratch[c.prefill];
    route->pd_how = c.how;
    pre = dp_snap_state(snap, (uint32_t)route->pd_prefill);
    reserve(pre, tokens);
    /* The prompt's KV will live on the prefill endpoint. */
    if (n_blocks > 0)
        dp_prefix_insert(ctx->prefix, pre, ctx->pfx_hashes, n_blocks);
    if (c.has_decode) {
        *decode = ctx->scratch[c.decode];
        reserve(dp_snap_state(snap, (uint32_t)*decode), tokens);
    }
    return true;
}

/* Lists the decode candidates (<n>, <capped> as list_candidates) and
 * chooses one in the roleset of route->pd_prefill: false when none. */
static bool
choose_decode(dp_ctx *ctx, const dp_snap *snap, const dp_route *route, const uint32_t *exclude,
              uint32_t n_exclude, uint32_t *n, uint32_t *capped, uint32_t *pos)
{
    uint32_t filtered;
    dp_pick pick = {.snap = snap,
                    .states = dp_snap_states(snap),
                    .cands = NULL,
                    .rng = &ctx->rng,
                    .req = &route->preq};

    *n = list_candidates(ctx, snap, route, exclude, n_exclude, DP_PD_DECODE, &filtered, capped);
    pick.cands = ctx->scratch; /* list_candidates may have grown it */
    pick.n_cands = *n;
    return *n > 0 &&
           dp_pd_choose_decode(&pick, dp_snap_pm(snap)->endpoints[route->pd_prefill].roleset, pos);
}

int64_t
dp_route_pick_pd_decode(dp_ctx *ctx, const dp_snap *snap, dp_route *route, const uint32_t *exclude,
                        uint32_t n_exclude, uint64_t tokens, dp_error *err)
{
    uint32_t n, capped, pos;
    bool found = choose_decode(ctx, snap, route, exclude, n_exclude, &n, &capped, &pos);

    if (overflow_error(route, n, capped, err))
        return -1;
    if (!found) {
        dp_error_set(err, 503, "x-error-routing", "true", "service_unavailable",
                     "no ready decode endpoint left in the prefill's roleset for model %.128s",
                     route->model->name);
        return -1;
    }
    reserve(dp_snap_state(snap, ctx->scratch[pos]), tokens);
    return ctx->scratch[pos];
}

bool
dp_route_has_untried(dp_ctx *ctx, const dp_snap *snap, const dp_route *route, bool pd_decode,
                     const uint32_t *exclude, uint32_t n_exclude)
{
    uint32_t n, capped, pos;

    if (pd_decode)
        return choose_decode(ctx, snap, route, exclude, n_exclude, &n, &capped, &pos);
    return list_candidates(ctx, snap, route, exclude, n_exclude, route->pd ? DP_PD_COMBINED : -1,
                           &n, &capped) > 0;
}

bool
dp_route_has_untried_pd(dp_ctx *ctx, const dp_snap *snap, const dp_route *route,
                        const uint32_t *exclude, uint32_t n_exclude)
{
    uint32_t capped;
    dp_pick pick = pd_candidates(ctx, snap, route, exclude, n_exclude, &capped);

    return pick.n_cands > 0 && dp_pd_has_roleset(&pick, ctx->pd_groups);
}

int64_t
dp_route_pick(dp_ctx *ctx, const dp_snap *snap, dp_route *route, const uint32_t *exclude,
              uint32_t n_exclude, uint64_t tokens, dp_error *err)
{
    const dp_model *m = route->model;
    uint32_t n = 0, filtered = 0, capped = 0, pos = 0;
    dp_pick pick;
    dp_pfx_pick pfx = {0};
    uint32_t idx;
    dp_ep *ep;

    route->fallback = NULL;
    n = list_candidates(ctx, snap, route, exclude, n_exclude, route->pd ? DP_PD_COMBINED : -1,
                        &filtered, &capped);
    if (overflow_error(route, n, capped, err))
        return -1;
    if (n == 0) {
        dp_error_set(err, 503, "x-error-no-model-backends", "true", "service_unavailable",
                     filtered > 0    ? "no ready endpoint of model %.128s matches external-filter"
                     : n_exclude > 0 ? "no reachable endpoint for model %.128s"
                                     : "model %.128s has no ready endpoint",
                     m->name);
        return -1;
    }
    pick = (dp_pick){.snap = snap,
                     .states = dp_snap_states(snap),
                     .cands = ctx->scratch,
                     .n_cands = n,
                     .rng = &ctx->rng,
                     .req = &route->preq,
                     .imbalance_guard = route->pfx_plan, /* dp_strat_weighted.c */
                     .imbalance_abs = (uint32_t)ctx->cfg.pfx_imbalance_abs};
    if (route->pfx_plan) {
        bool mine = route->pfx_stamp != 0 && route->pfx_stamp == ctx->pfx_stamp;
        pfx = (dp_pfx_pick){.index = ctx->prefix,
                            .hashes = ctx->pfx_hashes,
                            .n_blocks = mine ? route->pfx_n : 0,
                            .imbalance_abs = (uint32_t)ctx->cfg.pfx_imbalance_abs,
                            .stddev_factor = ctx->cfg.pfx_stddev_factor,
                            .min_match_blocks = (uint32_t)ctx->cfg.pfx_min_match,
                            .match = ctx->pfx_match};
        pick.pfx = &pfx;
    }
    if (n > 1) {
        pos = dp_plan_pick(&route->plan, &pick, ctx->scores, &route->fallback);
    } else if (route->pfx_plan) {
        /* Nothing to choose, but the match feeds the decision metrics. */
        const char *unused = NULL;
        if (route->plan.n == 1)
            (void)dp_strat_prefix_cache_choose(&pick);
        else
            (void)dp_strat_prefix_cache(&pick, ctx->scores, &unused);
    }
    /* Missing engine signals are the operator's business (a scrape
     * problem): warn. A request without a user or session is the client's
     * choice: info. */
    if (route->fallback != NULL && strcmp(route->fallback, DP_WHY_NO_METRICS) == 0)
        gw_log_ratelimited(GW_LOG_WARN, 1, "DP-ROUTE-FALLBACK",
                           "model=%s strategy=%s reason=%s msg=\"no candidate has the "
                           "strategy's input; least-request decided\"",
                           m->name, route->plan.label, route->fallback);
    else if (route->fallback != NULL)
        gw_log_ratelimited(GW_LOG_INFO, 1, "DP-ROUTE-FALLBACK",
                           "model=%s strategy=%s reason=%s msg=\"least-request decided\"", m->name,
                           route->plan.label, route->fallback);
    idx = ctx->scratch[pos];
    /* Reserve now, before the loop can run anything else. */
    ep = dp_snap_state(snap, idx);
    reserve(ep, tokens);
    if (route->pfx_plan) {
        route->pfx_bucket = dp_route_pfx_bucket(pfx.matched ? pfx.match[pos] : 0, pfx.n_blocks);
        route->pfx_outcome = pfx.outcome;
        route->pfx_imbalance = pfx.imbalance;
        /* The chosen endpoint will hold these blocks: the next request with
         * this prefix (maybe in the same burst, maybe on another worker
         * through the sync) finds them there. */
        if (ctx->prefix != NULL && pfx.n_blocks > 0)
            dp_prefix_insert(ctx->prefix, ep, pfx.hashes, pfx.n_blocks);
    }
    return idx;
}

void
dp_route_release(dp_ep *ep, uint64_t tokens)
{
    if (ep->inflight > 0)
        ep->inflight--;
    ep->inflight_tokens = ep->inflight_tokens > tokens ? ep->inflight_tokens - tokens : 0;
}

void
dp_route_settle(dp_ctx *ctx, const dp_route *route, int64_t prompt_tokens,
                int64_t completion_tokens)
{
    int64_t actual;

    if (route->vtc_user == 0 || ctx->vtc == NULL || prompt_tokens < 0 || completion_tokens < 0)
        return;
    actual = prompt_tokens + 2 * completion_tokens;
    dp_vtc_charge(ctx->vtc, route->vtc_user, actual - route->vtc_charged, gw_now_ms());
}

void
dp_route_fini(dp_ctx *ctx)
{
    GW_FREE(ctx->scratch);
    GW_FREE(ctx->scores);
    ctx->scratch_cap = 0;
    dp_plan_cache_free(ctx->plans);
    ctx->plans = NULL;
    dp_vtc_free(ctx->vtc);
    ctx->vtc = NULL;
    GW_FREE(ctx->pfx_hashes);
    ctx->pfx_hash_cap = 0;
    GW_FREE(ctx->pfx_match);
    GW_FREE(ctx->pd_groups);
    gw_buf_fini(&ctx->pfx_text);
}
