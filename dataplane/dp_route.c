/* dp_route: model/profile/strategy resolution and the reserve-on-pick step
 * (see dp_route.h). */
#include "dp_route.h"

#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

static const pm_profile *
find_profile(const pm_model *m, const char *name)
{
    for (uint32_t i = 0; name != NULL && i < m->n_profiles; i++) {
        if (strcmp(m->profiles[i].name, name) == 0)
            return &m->profiles[i];
    }
    return NULL;
}

/* A `config-profile` header naming an unknown profile falls back to the
 * model's defaultProfile, then to "default" (aibrix.md §5). "auto" picks by
 * request hints in a later milestone; until then it resolves like a missing
 * header. */
static const pm_profile *
resolve_profile(const pm_model *m, const char *hdr)
{
    const pm_profile *p = NULL;

    if (hdr != NULL && strcmp(hdr, "auto") != 0)
        p = find_profile(m, hdr);
    if (p == NULL)
        p = find_profile(m, m->default_profile ? m->default_profile : "default");
    if (p == NULL)
        p = find_profile(m, "default");
    return p;
}

static bool
nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

bool
dp_route_resolve(const dp_ctx *ctx, const dp_snap *snap, const char *model_name,
                 const char *strategy_hdr, const char *profile_hdr, dp_route *out, dp_error *err)
{
    const dp_model *m = dp_snap_model(snap, model_name);
    const char *name;

    if (m == NULL) {
        dp_error_set(err, 404, "x-error-no-model-backends", model_name, "model_not_found",
                     "The model `%.128s` does not exist.", model_name);
        return false;
    }
    out->model = m;
    out->profile = resolve_profile(m->model, profile_hdr);
    /* A bad name in the client's header is the client's error (400). A bad
     * name in operator config (locked, profile, gateway default) must not
     * fail every request of the model: it is logged and the next source in
     * precedence order decides. */
    if (nonempty(strategy_hdr) && dp_strategy_find(strategy_hdr) == NULL) {
        dp_error_set(err, 400, "x-error-invalid-routing-strategy", "true",
                     "invalid_routing_strategy", "incorrect routing strategy %.64s", strategy_hdr);
        return false;
    }
    const char *const order[] = {
        m->model->locked_strategy,
        strategy_hdr,
        out->profile != NULL ? out->profile->routing_strategy : NULL,
        ctx->cfg.routing_algorithm,
        dp_snap_pm(snap)->settings.routing_strategy,
    };
    out->strategy = NULL;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && out->strategy == NULL; i++) {
        name = order[i];
        if (!nonempty(name))
            continue;
        out->strategy = dp_strategy_find(name);
        if (out->strategy == NULL)
            gw_log_ratelimited(
                GW_LOG_WARN, 1, "DP-ROUTE-BAD-STRATEGY",
                "model=%s strategy=%.64s msg=\"unknown strategy in config; ignored\"",
                m->model->name, name);
    }
    if (out->strategy == NULL)
        out->strategy = dp_strategy_find("random");
    return true;
}

int64_t
dp_route_pick(dp_ctx *ctx, const dp_snap *snap, const dp_route *route, const uint32_t *exclude,
              uint32_t n_exclude, uint64_t tokens, dp_error *err)
{
    const pm_snapshot *pm = dp_snap_pm(snap);
    const dp_model *m = route->model;
    uint32_t n = 0;
    dp_pick pick;
    uint32_t idx;
    dp_ep *ep;

    if (ctx->scratch_cap < m->n_eps) {
        ctx->scratch_cap = m->n_eps;
        ctx->scratch = gw_xrealloc(ctx->scratch, ctx->scratch_cap * sizeof(*ctx->scratch));
    }
    for (uint32_t i = 0; i < m->n_eps; i++) {
        const pm_endpoint *e = &pm->endpoints[m->eps[i]];
        bool skip = !e->ready || e->draining;
        for (uint32_t x = 0; !skip && x < n_exclude; x++)
            skip = exclude[x] == m->eps[i];
        if (!skip)
            ctx->scratch[n++] = m->eps[i];
    }
    if (n == 0) {
        dp_error_set(err, 503, "x-error-no-model-backends", "true", "service_unavailable",
                     n_exclude > 0 ? "no reachable endpoint for model %.128s"
                                   : "model %.128s has no ready endpoint",
                     m->model->name);
        return -1;
    }
    pick =
        (dp_pick){.snap = snap, .model = m, .cands = ctx->scratch, .n_cands = n, .rng = &ctx->rng};
    idx = ctx->scratch[n == 1 ? 0 : route->strategy->pick(&pick)];
    /* Reserve now, before the loop can run anything else. */
    ep = dp_snap_state(snap, idx);
    ep->inflight++;
    ep->inflight_tokens += tokens;
    return idx;
}

void
dp_route_release(dp_ep *ep, uint64_t tokens)
{
    if (ep->inflight > 0)
        ep->inflight--;
    ep->inflight_tokens = ep->inflight_tokens > tokens ? ep->inflight_tokens - tokens : 0;
}
