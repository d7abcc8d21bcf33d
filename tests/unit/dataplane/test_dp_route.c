/* Unit tests for dp_route: resolution precedence, config profiles (by name
 * and `auto`), error answers, external-filter, LoRA adapters, candidate
 * filtering, fallbacks, session affinity across workers, and reservation on
 * pick. The strategies themselves are tested in test_dp_strategy.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dp_cbreaker.h"
#include "dp_fixture.h"
#include "dp_prefix.h"
#include "dp_route.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static dp_ctx ctx;
static dp_load *load;
static pm_snapshot *pm; /* until build() hands it to snap */
static dp_snap *snap;

static void
setup(void)
{
    memset(&ctx, 0, sizeof(ctx));
    ctx.rng = 12345;
    ctx.cfg.routing_algorithm = "";
    load = dp_load_new();
    pm = fx_snapshot("llama", 4);
    snap = NULL;
}

/* Compiles the snapshot; tests mutate <pm> before calling it. */
static void
build(void)
{
    snap = dp_snap_new(pm, dp_load_apply_snapshot(load, pm));
}

static void
teardown(void)
{
    if (snap != NULL)
        dp_snap_unref(snap);
    else
        pm_snapshot_free(pm);
    dp_load_free(load);
    dp_route_fini(&ctx);
    dp_prefix_free(ctx.prefix);
    ut_leak_check();
}
TestSuite(dp_route, .init = setup, .fini = teardown, .timeout = 10);

static dp_route_in
in_of(const char *model, const char *strategy, const char *profile)
{
    return (dp_route_in){
        .model = model, .strategy = strategy, .profile = profile, .max_tokens = -1};
}

static bool
resolve(const char *model, const char *strategy, const char *profile, dp_route *r, dp_error *e)
{
    dp_route_in in = in_of(model, strategy, profile);
    return dp_route_resolve(&ctx, snap, &in, r, e);
}

Test(dp_route, unknown_model_is_404_with_the_model_in_the_header)
{
    dp_route r;
    dp_error e;

    build();
    cr_assert_not(resolve("nope", NULL, NULL, &r, &e));
    cr_assert_eq(e.status, 404);
    cr_assert_str_eq(e.header, "x-error-no-model-backends");
    cr_assert_str_eq(e.header_value, "nope");
    cr_assert_str_eq(e.code, "model_not_found");
}

Test(dp_route, unknown_strategy_header_is_400_including_names_of_later_issues)
{
    const char *bad[] = {"bogus",
                         "slo-routing",
                         "pd-disagg",
                         "least-request:2,pd",
                         "least-request:x",
                         "random,least-request",
                         "least-request:0",
                         "least-request,least-request",
                         "least-request:1000001"};
    dp_route r;
    dp_error e;

    build();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_not(resolve("llama", bad[i], NULL, &r, &e), "%s", bad[i]);
        cr_assert_eq(e.status, 400);
        cr_assert_str_eq(e.header, "x-error-invalid-routing-strategy");
        cr_assert_str_eq(e.code, "invalid_routing_strategy");
    }
}

Test(dp_route, strategy_precedence_locked_header_profile_env_gateway_default_random)
{
    dp_route r;
    dp_error e;

    /* random, when nothing is set */
    build();
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "random");
    dp_snap_unref(snap);

    /* gateway default */
    pm = fx_snapshot("llama", 4);
    pm->settings.routing_strategy = gw_xstrdup("least-kv-cache");
    build();
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-kv-cache");
    /* ROUTING_ALGORITHM beats it */
    ctx.cfg.routing_algorithm = "least-request";
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-request");
    dp_snap_unref(snap);

    /* the profile beats ROUTING_ALGORITHM, the header the profile, the
     * locked strategy the header */
    pm = fx_snapshot("llama", 4);
    fx_add_profile(pm, "default", "throughput");
    build();
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "throughput");
    cr_assert_str_eq(r.profile->name, "default");
    cr_assert(resolve("llama", "random", NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "random", "the header beats the profile");
    dp_snap_unref(snap);

    pm = fx_snapshot("llama", 4);
    fx_add_profile(pm, "default", "throughput");
    pm->models[0].locked_strategy = gw_xstrdup("least-latency");
    build();
    cr_assert(resolve("llama", "random", NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-latency", "the locked strategy beats the header");
    cr_assert_not(resolve("llama", "bogus", NULL, &r, &e),
                  "a bad header is still the client's error");
}

Test(dp_route, bad_strategies_in_config_are_skipped_in_precedence_order)
{
    dp_route r;
    dp_error e;

    pm->models[0].locked_strategy = gw_xstrdup("bogus-locked");
    fx_add_profile(pm, "default", "least-request:abc");
    pm->settings.routing_strategy = gw_xstrdup("least-kv-cache");
    build();
    cr_assert_null(dp_snap_model(snap, "llama")->locked);
    cr_assert_null(dp_snap_model(snap, "llama")->profs[0].plan);
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-kv-cache");
}

Test(dp_route, weighted_lists_resolve_to_their_canonical_label)
{
    dp_route r;
    dp_error e;

    fx_add_profile(pm, "default", "least-kv-cache:2, least-latency ,random:0");
    build();
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-kv-cache:2,least-latency:1");
    cr_assert(resolve("llama", "throughput:3,least-request", NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "throughput:3,least-request:1");
    cr_assert_eq(r.plan.n, 2);
    /* Served from the cache the second time: same result. */
    cr_assert(resolve("llama", "throughput:3,least-request", NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "throughput:3,least-request:1");
    cr_assert(resolve("llama", "least-request:5,throughput:0", NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-request", "one member left: that strategy alone");
}

Test(dp_route, plan_cache_survives_many_distinct_strings)
{
    dp_route r;
    dp_error e;
    char s[64];

    build();
    for (int i = 0; i < 500; i++) {
        snprintf(s, sizeof(s), "least-request:%d,least-kv-cache:%d", i + 1, 500 - i);
        cr_assert(resolve("llama", s, NULL, &r, &e));
        snprintf(s, sizeof(s), "least-request:%d,least-kv-cache:%d", i + 1, 500 - i);
        cr_assert_str_eq(r.plan.label, s);
    }
}

Test(dp_route, config_profile_header_selects_and_falls_back_to_default)
{
    dp_route r;
    dp_error e;

    fx_add_profile(pm, "default", "random");
    fx_add_profile(pm, "batch", "least-request");
    build();
    cr_assert(resolve("llama", NULL, "batch", &r, &e));
    cr_assert_str_eq(r.profile->name, "batch");
    cr_assert_str_eq(r.plan.label, "least-request");
    cr_assert_not(r.profile_auto);
    cr_assert(resolve("llama", NULL, "missing", &r, &e));
    cr_assert_str_eq(r.profile->name, "default");
    dp_snap_unref(snap);

    pm = fx_snapshot("llama", 4);
    fx_add_profile(pm, "default", "random");
    fx_add_profile(pm, "batch", "least-request");
    pm->models[0].default_profile = gw_xstrdup("batch");
    build();
    cr_assert(resolve("llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.profile->name, "batch", "defaultProfile applies without a header");
}

static const char *
auto_pick(uint64_t prompt_bytes, int64_t max_tokens, bool *echo)
{
    dp_route_in in = in_of("llama", NULL, "auto");
    dp_route r;
    dp_error e;

    in.prompt_bytes = prompt_bytes;
    in.max_tokens = max_tokens;
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    *echo = r.profile_auto;
    return r.profile ? r.profile->name : NULL;
}

Test(dp_route, auto_profile_most_specific_match_wins)
{
    bool echo;

    fx_add_profile(pm, "default", "random");
    /* prompt tokens are ceil(bytes / 4) */
    fx_add_profile_rc(pm, "short", "least-request", "{\"promptTokensLt\":100}");
    fx_add_profile_rc(pm, "long", "least-kv-cache", "{\"promptTokensGte\":1000}");
    fx_add_profile_rc(pm, "long-gen", "least-latency",
                      "{\"promptTokensGte\":1000,\"maxTokensGte\":512}");
    fx_add_profile_rc(pm, "mid", "throughput", "{\"promptTokensGte\":100,\"promptTokensLt\":1000}");
    fx_add_profile_rc(pm, "mid-narrow", "throughput",
                      "{\"promptTokensGte\":200,\"promptTokensLt\":300}");
    fx_add_profile_rc(pm, "bad", "random", "{\"promptTokensGte\":\"lots\",\"other\":1}");
    build();
    cr_assert_str_eq(auto_pick(4 * 50, -1, &echo), "short");
    cr_assert(echo, "the resolved profile is echoed");
    cr_assert_str_eq(auto_pick(4 * 2000, 100, &echo), "long");
    cr_assert_str_eq(auto_pick(4 * 2000, 600, &echo), "long-gen", "more hints wins");
    cr_assert_str_eq(auto_pick(4 * 2000, -1, &echo), "long",
                     "output hints never hold without max_tokens");
    cr_assert_str_eq(auto_pick(4 * 500, -1, &echo), "mid");
    cr_assert_str_eq(auto_pick(4 * 250, -1, &echo), "mid-narrow", "tighter bounds win");
    cr_assert_str_eq(auto_pick(4 * 100 - 3, -1, &echo), "mid", "397 bytes are 100 tokens");
    cr_assert_str_eq(auto_pick(4 * 99, -1, &echo), "short", "boundaries: Gte inclusive, Lt not");
    /* "bad" has no valid hint: it never takes part in auto. */
    cr_assert_eq(dp_snap_model(snap, "llama")->n_auto, 5);
}

Test(dp_route, auto_profile_without_match_is_the_default_and_ties_go_by_name)
{
    bool echo;

    fx_add_profile(pm, "default", "random");
    fx_add_profile_rc(pm, "zeta", "least-request", "{\"promptTokensGte\":10}");
    fx_add_profile_rc(pm, "alpha", "least-request", "{\"promptTokensGte\":10}");
    fx_add_profile_rc(pm, "gen", "least-request", "{\"maxTokensLt\":5}");
    build();
    cr_assert_str_eq(auto_pick(4, -1, &echo), "default");
    cr_assert(echo, "auto echoes the default it fell back to");
    cr_assert_str_eq(auto_pick(400, -1, &echo), "alpha", "equal specificity: first by name");
    cr_assert_str_eq(auto_pick(4, 4, &echo), "gen");
}

Test(dp_route, pick_reserves_the_endpoint_in_the_same_step)
{
    dp_route r;
    dp_error e;
    int64_t idx;

    build();
    cr_assert(resolve("llama", "least-request", NULL, &r, &e));
    for (int i = 0; i < 8; i++) {
        idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 10, &e);
        cr_assert_geq(idx, 0);
    }
    /* 8 picks over 4 idle endpoints with least-request: exactly 2 each. */
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(dp_snap_state(snap, i)->inflight, 2, "endpoint %u", i);
        cr_assert_eq(dp_snap_state(snap, i)->inflight_tokens, 20);
    }
    dp_route_release(dp_snap_state(snap, 0), 10);
    cr_assert_eq(dp_snap_state(snap, 0)->inflight, 1);
    idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 10, &e);
    cr_assert_eq(idx, 0, "the endpoint with a freed slot is least loaded");
}

Test(dp_route, ejected_endpoints_are_skipped_unless_all_are)
{
    dp_route r;
    dp_error e;
    int64_t idx;

    ctx.cfg.eject_after = 1;
    build();
    cr_assert(resolve("llama", "random", NULL, &r, &e));
    for (uint32_t i = 0; i < 3; i++)
        dp_snap_state(snap, i)->outlier.ejected_until = UINT64_MAX;
    for (int k = 0; k < 20; k++) {
        idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
        cr_assert_eq(idx, 3, "only the endpoint not ejected");
        dp_route_release(dp_snap_state(snap, 3), 0);
    }
    /* Probing (ejection over, streak still at the threshold): one at a time. */
    dp_snap_state(snap, 0)->outlier = (dp_outlier){.streak = 1, .ejections = 1};
    dp_snap_state(snap, 3)->outlier.ejected_until = UINT64_MAX;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 0, "the probe");
    idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
    cr_assert(idx >= 0 && idx < 4,
              "the others ejected and the probe busy: every candidate is used anyway");
    dp_snap_state(snap, 0)->outlier.ejected_until = UINT64_MAX;
    idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
    cr_assert(idx >= 0 && idx < 4, "all ejected: still routed, not a 503");
}

/* dp_cbreaker: an endpoint at its cap is passed over even when the strategy
 * would choose it; when all are at it the answer is 503 overflow. */
Test(dp_route, endpoints_at_their_concurrency_cap_are_passed_over_then_overflow)
{
    dp_route r;
    dp_error e;
    int64_t idx;

    ctx.ep_cap = dp_cbreaker_cap(2, 0, 0);
    build();
    cr_assert(resolve("llama", "random", NULL, &r, &e));
    for (int i = 0; i < 8; i++) {
        idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 1, &e);
        cr_assert_geq(idx, 0, "pick %d of 8 fits under 4 endpoints x cap 2", i);
    }
    for (uint32_t i = 0; i < 4; i++)
        cr_assert_eq(dp_snap_state(snap, i)->inflight, 2, "random never exceeds the cap");
    memset(&e, 0, sizeof(e));
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 1, &e), -1);
    cr_assert_eq(e.status, 503);
    cr_assert_str_eq(e.header, "x-error-upstream-overflow");
    cr_assert_str_eq(e.code, "service_unavailable");
    cr_assert_not_null(strstr(e.message, "llama"));
    for (uint32_t i = 0; i < 4; i++)
        cr_assert_eq(dp_snap_state(snap, i)->inflight, 2, "a refused pick reserves nothing");
    dp_route_release(dp_snap_state(snap, 3), 1);
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 1, &e), 3, "the only free slot");
}

Test(dp_route, least_request_counts_the_rest_of_the_fleet)
{
    dp_route r;
    dp_error e;

    build();
    cr_assert(resolve("llama", "least-request", NULL, &r, &e));
    for (uint32_t i = 0; i < 4; i++)
        dp_snap_state(snap, i)->fleet_inflight = i == 2 ? 0 : 5;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 2);
}

Test(dp_route, skips_not_ready_draining_and_excluded_endpoints)
{
    dp_route r;
    dp_error e;
    uint32_t exclude[] = {3};

    pm->endpoints[0].ready = false;
    pm->endpoints[1].draining = true;
    build();
    cr_assert(resolve("llama", "random", NULL, &r, &e));
    for (int i = 0; i < 20; i++) {
        int64_t idx = dp_route_pick(&ctx, snap, &r, exclude, 1, 0, &e);
        cr_assert_eq(idx, 2);
        dp_route_release(dp_snap_state(snap, 2), 0);
    }
    ((pm_snapshot *)dp_snap_pm(snap))->endpoints[2].ready = false;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, exclude, 1, 0, &e), -1);
    cr_assert_eq(e.status, 503);
    cr_assert_str_eq(e.header, "x-error-no-model-backends");
}

Test(dp_route, random_spreads_over_all_candidates)
{
    dp_route r;
    dp_error e;
    unsigned hits[4] = {0};

    build();
    cr_assert(resolve("llama", "random", NULL, &r, &e));
    for (int i = 0; i < 4000; i++) {
        int64_t idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
        hits[idx]++;
        dp_route_release(dp_snap_state(snap, (uint32_t)idx), 0);
    }
    for (int i = 0; i < 4; i++)
        cr_assert(hits[i] > 800 && hits[i] < 1200, "endpoint %d got %u of 4000", i, hits[i]);
}

Test(dp_route, metric_strategy_without_any_input_falls_back_to_least_request)
{
    dp_route r;
    dp_error e;

    build();
    cr_assert(resolve("llama", "least-kv-cache", NULL, &r, &e));
    for (uint32_t i = 0; i < 4; i++)
        dp_snap_state(snap, i)->fleet_inflight = i == 1 ? 0 : 3;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 1);
    cr_assert_str_eq(r.fallback, "no_metrics");
    /* With one endpoint scored, no fallback: it wins. */
    dp_snap_state(snap, 3)->kv_usage = 0.9;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 3);
    cr_assert_null(r.fallback);
}

Test(dp_route, one_endpoint_is_picked_whatever_the_strategy)
{
    const char *names[] = {"random",        "least-request",   "power-of-two",    "throughput",
                           "least-latency", "least-kv-cache",  "least-gpu-cache", "least-busy-time",
                           "vtc-basic",     "session-affinity"};
    dp_route r;
    dp_error e;

    pm->endpoints[0].ready = false;
    pm->endpoints[1].ready = false;
    pm->endpoints[3].ready = false;
    build();
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_assert(resolve("llama", names[i], NULL, &r, &e), "%s", names[i]);
        cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 2, "%s", names[i]);
        cr_assert_null(r.fallback);
        dp_route_release(dp_snap_state(snap, 2), 0);
    }
}

static dp_route_in
filter_in(const char *filter)
{
    dp_route_in in = in_of("llama", "least-request", NULL);
    in.filter = filter;
    return in;
}

Test(dp_route, external_filter_narrows_candidates_by_pod_labels)
{
    dp_route r;
    dp_error e;
    dp_route_in in;

    fx_add_label(pm, 0, "zone=a");
    fx_add_label(pm, 1, "zone=b");
    fx_add_label(pm, 2, "zone=b");
    fx_add_label(pm, 2, "gpu=h100");
    fx_add_label(pm, 3, "gpu=a10");
    build();
    in = filter_in("zone=b,gpu");
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 2);
    in = filter_in("zone notin (b), !missing");
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    for (int i = 0; i < 6; i++) {
        int64_t idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
        cr_assert(idx == 0 || idx == 3, "got %lld", (long long)idx);
    }
    in = filter_in("  ");
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    cr_assert_eq(r.filter.n, 0, "a blank filter is no filter");
}

Test(dp_route, malformed_external_filter_is_400_and_no_match_is_503)
{
    dp_route r;
    dp_error e;
    dp_route_in in;

    fx_add_label(pm, 0, "zone=a");
    build();
    in = filter_in("zone in (a");
    cr_assert_not(dp_route_resolve(&ctx, snap, &in, &r, &e));
    cr_assert_eq(e.status, 400);
    cr_assert_str_eq(e.header, "x-error-invalid-external-filter");
    cr_assert_str_eq(e.header_value, "true");
    in = filter_in("zone=z");
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), -1);
    cr_assert_eq(e.status, 503);
    cr_assert_str_eq(e.header, "x-error-no-model-backends");
    cr_assert(strstr(e.message, "external-filter") != NULL);
}

Test(dp_route, lora_adapter_routes_only_to_endpoints_serving_it)
{
    dp_route r;
    dp_error e;
    const dp_model *m;

    fx_add_profile(pm, "default", "least-request");
    fx_add_adapter(pm, 1, "sql-lora");
    fx_add_adapter(pm, 3, "sql-lora");
    fx_add_adapter(pm, 3, "sql-lora"); /* listed twice: counted once */
    fx_add_adapter(pm, 2, "llama");    /* named like the base model: ignored */
    fx_add_model(pm, "mistral");
    fx_add_endpoint(pm, "mistral", "10.0.1.1");
    fx_add_adapter(pm, 4, "sql-lora"); /* another base model: left out */
    fx_add_adapter(pm, 4, "mistral-lora");
    build();
    m = dp_snap_model(snap, "sql-lora");
    cr_assert_not_null(m);
    cr_assert(m->adapter);
    cr_assert_str_eq(m->name, "sql-lora");
    cr_assert_str_eq(m->model->name, "llama", "the adapter uses its base model's config");
    cr_assert_eq(m->n_eps, 2);
    cr_assert_eq(dp_snap_model(snap, "llama")->n_eps, 4);
    cr_assert_not(dp_snap_model(snap, "llama")->adapter);
    cr_assert_eq(dp_snap_model(snap, "mistral-lora")->n_eps, 1);
    cr_assert(resolve("sql-lora", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.plan.label, "least-request", "base model's profile");
    for (int i = 0; i < 10; i++) {
        int64_t idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
        cr_assert(idx == 1 || idx == 3, "got %lld", (long long)idx);
    }
}

static int64_t
pick_with(dp_ctx *c, const char *sid, const char *key)
{
    dp_route_in in = in_of("llama", "session-affinity", NULL);
    dp_route r;
    dp_error e;
    int64_t idx;

    in.session_id = sid;
    in.session_key = key;
    cr_assert(dp_route_resolve(c, snap, &in, &r, &e));
    cr_assert(r.affinity);
    idx = dp_route_pick(c, snap, &r, NULL, 0, 0, &e);
    dp_route_release(dp_snap_state(snap, (uint32_t)idx), 0);
    return idx;
}

Test(dp_route, session_affinity_is_stable_across_workers_and_snapshots)
{
    dp_ctx other = {.rng = 999, .cfg.routing_algorithm = ""};
    char sid[64];
    int64_t idx, again;
    int moved = 0;

    build();
    /* x-session-id pins the endpoint it encodes. */
    dp_session_id_encode("10.0.0.3:8000", sid, sizeof(sid));
    cr_assert_eq(pick_with(&ctx, sid, "k"), 2);
    cr_assert_eq(pick_with(&ctx, sid, NULL), 2);
    /* A session key: the same endpoint on every worker, every time. */
    idx = pick_with(&ctx, NULL, "conversation-42");
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(pick_with(&ctx, NULL, "conversation-42"), idx);
        cr_assert_eq(pick_with(&other, NULL, "conversation-42"), idx);
    }
    /* An id for an endpoint that left falls through to the key. */
    dp_session_id_encode("10.9.9.9:8000", sid, sizeof(sid));
    cr_assert_eq(pick_with(&ctx, sid, "conversation-42"), idx);
    /* Keys longer than 256 bytes are ignored: least-request decides. */
    {
        char big[300];
        dp_route_in in = in_of("llama", "session-affinity", NULL);
        dp_route r;
        dp_error e;
        memset(big, 'k', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        in.session_key = big;
        cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
        cr_assert_null(r.preq.session_key);
        dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
        cr_assert_str_eq(r.fallback, "no_session");
    }
    /* Rendezvous hashing: when an endpoint leaves, only its keys move. */
    {
        int64_t before[200];
        char key[32];
        for (int k = 0; k < 200; k++) {
            snprintf(key, sizeof(key), "user-%d", k);
            before[k] = pick_with(&ctx, NULL, key);
        }
        ((pm_snapshot *)dp_snap_pm(snap))->endpoints[1].ready = false;
        for (int k = 0; k < 200; k++) {
            snprintf(key, sizeof(key), "user-%d", k);
            again = pick_with(&ctx, NULL, key);
            if (before[k] != 1)
                cr_assert_eq(again, before[k], "key %d moved", k);
            else
                moved++;
            cr_assert_neq(again, 1);
        }
        cr_assert(moved > 20 && moved < 80, "endpoint 1 held %d of 200 keys", moved);
    }
    dp_route_fini(&other);
}

Test(dp_route, vtc_charges_the_user_and_settles_on_usage)
{
    dp_route_in in = in_of("llama", "vtc-basic", NULL);
    dp_route r, r2;
    dp_error e;

    build();
    in.user = "alice";
    in.prompt_bytes = 400; /* 100 tokens */
    in.max_tokens = 50;
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    cr_assert(r.preq.has_user);
    cr_assert_eq(r.preq.user_tokens, 0);
    cr_assert_eq(r.vtc_charged, 200, "100 prompt + 2 * 50 output");
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r2, &e));
    cr_assert_eq(r2.preq.user_tokens, 200);
    cr_assert_eq(r2.preq.mean_user_tokens, 200);
    /* The first request used 100 + 2 * 10. */
    dp_route_settle(&ctx, &r, 100, 10);
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    cr_assert_eq(r.preq.user_tokens, 120 + 200);
    in.user = NULL;
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    cr_assert_not(r.preq.has_user);
    dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
    cr_assert_str_eq(r.fallback, "no_user");
}

/* ---- prefix-cache ------------------------------------------------------------ */

/* A prefix index over the snapshot, with the worker's defaults but 16-byte
 * blocks. */
static void
with_prefix(void)
{
    dp_prefix_cfg c = {.block_size = 16, .seed = 0, .capacity = 4096, .max_blocks = 64};

    ctx.prefix = dp_prefix_new(&c);
    ctx.cfg.pfx_imbalance_abs = 16;
    ctx.cfg.pfx_stddev_factor = 2;
    ctx.cfg.pfx_min_match = 1;
    dp_prefix_apply_snapshot(ctx.prefix, dp_snap_pm(snap), dp_snap_states(snap));
}

/* Routes one request with routing text <text>; returns the endpoint. */
static int64_t
route_text(const char *strategy, const char *model, const char *text, dp_route *r)
{
    dp_route_in in = in_of(model, strategy, NULL);
    dp_error e;
    int64_t idx;

    in.text = text;
    in.text_len = strlen(text);
    cr_assert(dp_route_resolve(&ctx, snap, &in, r, &e));
    idx = dp_route_pick(&ctx, snap, r, NULL, 0, 1, &e);
    cr_assert_geq(idx, 0);
    return idx;
}

static const char *turn1 = "system\nYou are a helpful assistant for llmgw.\nuser\nWhat is a KV "
                           "cache, and why does prefix routing help?\n";
static const char *turn2 = "system\nYou are a helpful assistant for llmgw.\nuser\nWhat is a KV "
                           "cache, and why does prefix routing help?\nassistant\nIt stores "
                           "attention keys and values.\nuser\nAnd the block size?\n";

Test(dp_route, prefix_cache_hashes_once_inserts_the_pick_and_follows_the_conversation)
{
    dp_route r;
    int64_t first, again;

    build();
    with_prefix();
    first = route_text("prefix-cache", "llama", turn1, &r);
    cr_assert(r.pfx_plan);
    cr_assert_eq(r.pfx_n, strlen(turn1) / 16);
    cr_assert_str_eq(r.pfx_outcome, DP_PFX_FALLBACK, "nothing known yet");
    cr_assert_str_eq(r.pfx_bucket, "0");
    /* Its slot is held (tokens 1, in flight 1), yet the next turn goes there:
     * the load is within mean + 2 sd. */
    again = route_text("prefix-cache", "llama", turn2, &r);
    cr_assert_eq(again, first);
    cr_assert_str_eq(r.pfx_outcome, DP_PFX_PREFIX_MATCH);
    cr_assert_str_eq(r.pfx_bucket, "51-75", "turn 1 is 6 of turn 2's 11 blocks");
    again = route_text("prefix-cache", "llama", turn2, &r);
    cr_assert_eq(again, first);
    cr_assert_str_eq(r.pfx_bucket, "76-100");
    cr_assert_null(r.fallback);
}

Test(dp_route, prefix_cache_spreads_a_hot_prefix_when_its_endpoint_is_overloaded)
{
    dp_route r;
    int64_t first, idx;
    unsigned others = 0;

    build();
    with_prefix();
    first = route_text("prefix-cache", "llama", turn1, &r);
    /* The same prompt again and again, never released: after enough of them
     * its endpoint is too loaded and others take it (and learn it). */
    for (int i = 0; i < 40; i++) {
        idx = route_text("prefix-cache", "llama", turn1, &r);
        others += idx != first;
    }
    cr_assert_gt(others, 10, "a hot prefix spreads");
    cr_assert_leq(dp_snap_state(snap, (uint32_t)first)->inflight, 20);
}

Test(dp_route, prefix_cache_with_one_candidate_still_learns_and_adapters_are_apart)
{
    dp_route r;
    uint32_t cands[4] = {0, 1, 2, 3}, m[4];
    uint64_t h[16];
    uint32_t n;

    fx_add_adapter(pm, 2, "sql-lora");
    build();
    with_prefix();
    cr_assert_eq(route_text("prefix-cache", "sql-lora", turn1, &r), 2);
    cr_assert_str_eq(r.pfx_bucket, "0");
    /* The base model's hashes do not match the adapter's blocks. */
    n = dp_prefix_hash(0, 0, 16, turn1, strlen(turn1), h, 16);
    dp_prefix_match(ctx.prefix, h, n, dp_snap_states(snap), cands, 4, m);
    cr_assert_eq(m[2], 0);
    cr_assert_eq(route_text("prefix-cache", "sql-lora", turn1, &r), 2);
    cr_assert_str_eq(r.pfx_bucket, "76-100", "one candidate: inserted anyway");
}

Test(dp_route, prefix_cache_in_a_list_and_a_retry_after_other_requests)
{
    dp_route r, other;
    dp_error e;
    dp_route_in in = in_of("llama", "prefix-cache", NULL);
    int64_t first, idx;
    uint32_t tried[1];

    build();
    with_prefix();
    first = route_text("prefix-cache:3,least-request:1", "llama", turn1, &r);
    cr_assert_null(r.pfx_outcome);
    dp_route_release(dp_snap_state(snap, (uint32_t)first), 1);
    idx = route_text("prefix-cache:3,least-request:1", "llama", turn1, &r);
    cr_assert_eq(idx, first);
    cr_assert_str_eq(r.pfx_bucket, "76-100");
    dp_route_release(dp_snap_state(snap, (uint32_t)idx), 1);
    /* A retry picks after other requests reused the hash scratch: no prefix
     * information then, and nothing inserted. */
    in.text = turn2;
    in.text_len = strlen(turn2);
    cr_assert(dp_route_resolve(&ctx, snap, &in, &r, &e));
    route_text("least-request", "llama", turn1, &other);
    route_text("prefix-cache", "llama", "a different prompt, long enough for blocks", &other);
    tried[0] = (uint32_t)first;
    idx = dp_route_pick(&ctx, snap, &r, tried, 1, 1, &e);
    cr_assert_neq(idx, first);
    cr_assert_str_eq(r.pfx_bucket, "0");
    cr_assert_str_eq(r.pfx_outcome, DP_PFX_FALLBACK);
    /* No index at all: prefix-cache is least-request. */
    dp_prefix_free(ctx.prefix);
    ctx.prefix = NULL;
    route_text("prefix-cache", "llama", turn1, &r);
    cr_assert_str_eq(r.pfx_outcome, DP_PFX_FALLBACK);
}

Test(dp_route, pfx_bucket_edges)
{
    cr_assert_str_eq(dp_route_pfx_bucket(0, 10), "0");
    cr_assert_str_eq(dp_route_pfx_bucket(0, 0), "0");
    cr_assert_str_eq(dp_route_pfx_bucket(1, 200), "0", "half a percent rounds down");
    cr_assert_str_eq(dp_route_pfx_bucket(1, 4), "1-25");
    cr_assert_str_eq(dp_route_pfx_bucket(2, 4), "26-50");
    cr_assert_str_eq(dp_route_pfx_bucket(3, 4), "51-75");
    cr_assert_str_eq(dp_route_pfx_bucket(76, 100), "76-100");
    cr_assert_str_eq(dp_route_pfx_bucket(4, 4), "76-100");
}

/* bench/routing's multiturn herd: every request shares a prefix held by one
 * endpoint, and prefix-cache:2,least-request:1 sent all of them there. The
 * list now has the load-imbalance guard (AIBRIX_PREFIX_CACHE_POD_RUNNING_
 * REQUEST_IMBALANCE_ABS_COUNT, 16): in flight, the holder is never more than
 * 17 ahead (it may take one more at 16 ahead), and the rest spread. */
Test(dp_route, weighted_list_with_prefix_cache_does_not_herd)
{
    dp_route r;
    int64_t first;
    uint32_t lmin = UINT32_MAX, lmax = 0;

    build();
    with_prefix();
    first = route_text("prefix-cache:2,least-request:1", "llama", turn1, &r);
    for (int i = 0; i < 60; i++)
        route_text("prefix-cache:2,least-request:1", "llama", turn2, &r);
    for (uint32_t i = 0; i < 4; i++) {
        uint32_t l = dp_snap_state(snap, i)->inflight;
        lmin = l < lmin ? l : lmin;
        lmax = l > lmax ? l : lmax;
    }
    cr_assert_eq(dp_snap_state(snap, (uint32_t)first)->inflight, lmax, "the holder leads");
    cr_assert_leq(lmax - lmin, 17, "61 requests: %u to %u in flight", lmin, lmax);
    cr_assert_geq(lmin, 10, "the others took the rest");
}
