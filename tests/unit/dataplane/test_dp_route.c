/* Unit tests for dp_route and the strategies: resolution precedence, error
 * answers, candidate filtering, and reservation on pick. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_fixture.h"
#include "dp_route.h"
#include "ut_leak.h"

static dp_ctx ctx;
static dp_load *load;
static dp_snap *snap;

static void
setup_n(unsigned n)
{
    pm_snapshot *pm = fx_snapshot("llama", n);
    memset(&ctx, 0, sizeof(ctx));
    ctx.rng = 12345;
    ctx.cfg.routing_algorithm = "";
    load = dp_load_new();
    snap = dp_snap_new(pm, dp_load_apply_snapshot(load, pm));
}

static void
setup(void)
{
    setup_n(4);
}

static void
teardown(void)
{
    dp_snap_unref(snap);
    dp_load_free(load);
    free(ctx.scratch);
    ut_leak_check();
}
TestSuite(dp_route, .init = setup, .fini = teardown, .timeout = 10);

Test(dp_route, unknown_model_is_404_with_the_model_in_the_header)
{
    dp_route r;
    dp_error e;
    cr_assert_not(dp_route_resolve(&ctx, snap, "nope", NULL, NULL, &r, &e));
    cr_assert_eq(e.status, 404);
    cr_assert_str_eq(e.header, "x-error-no-model-backends");
    cr_assert_str_eq(e.header_value, "nope");
    cr_assert_str_eq(e.code, "model_not_found");
}

Test(dp_route, unknown_strategy_is_400)
{
    dp_route r;
    dp_error e;
    cr_assert_not(dp_route_resolve(&ctx, snap, "llama", "bogus", NULL, &r, &e));
    cr_assert_eq(e.status, 400);
    cr_assert_str_eq(e.header, "x-error-invalid-routing-strategy");
}

Test(dp_route, strategy_precedence_locked_header_profile_env_default)
{
    pm_model *m = &((pm_snapshot *)dp_snap_pm(snap))->models[0];
    dp_route r;
    dp_error e;

    cr_assert(dp_route_resolve(&ctx, snap, "llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.strategy->name, "random");
    ctx.cfg.routing_algorithm = "least-request";
    cr_assert(dp_route_resolve(&ctx, snap, "llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.strategy->name, "least-request");
    ctx.cfg.routing_algorithm = "";
    fx_add_profile((pm_snapshot *)dp_snap_pm(snap), "default", "least-request");
    cr_assert(dp_route_resolve(&ctx, snap, "llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.strategy->name, "least-request");
    cr_assert_str_eq(r.profile->name, "default");
    cr_assert(dp_route_resolve(&ctx, snap, "llama", "random", NULL, &r, &e));
    cr_assert_str_eq(r.strategy->name, "random", "the header beats the profile");
    m->locked_strategy = strdup("least-request");
    cr_assert(dp_route_resolve(&ctx, snap, "llama", "random", NULL, &r, &e));
    cr_assert_str_eq(r.strategy->name, "least-request", "the locked strategy beats the header");
}

Test(dp_route, config_profile_header_selects_and_falls_back_to_default)
{
    pm_snapshot *pm = (pm_snapshot *)dp_snap_pm(snap);
    dp_route r;
    dp_error e;

    fx_add_profile(pm, "default", "random");
    fx_add_profile(pm, "batch", "least-request");
    cr_assert(dp_route_resolve(&ctx, snap, "llama", NULL, "batch", &r, &e));
    cr_assert_str_eq(r.profile->name, "batch");
    cr_assert_str_eq(r.strategy->name, "least-request");
    cr_assert(dp_route_resolve(&ctx, snap, "llama", NULL, "missing", &r, &e));
    cr_assert_str_eq(r.profile->name, "default");
    pm->models[0].default_profile = strdup("batch");
    cr_assert(dp_route_resolve(&ctx, snap, "llama", NULL, NULL, &r, &e));
    cr_assert_str_eq(r.profile->name, "batch", "defaultProfile applies without a header");
}

Test(dp_route, pick_reserves_the_endpoint_in_the_same_step)
{
    dp_route r;
    dp_error e;
    int64_t idx;

    cr_assert(dp_route_resolve(&ctx, snap, "llama", "least-request", NULL, &r, &e));
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

Test(dp_route, least_request_counts_the_rest_of_the_fleet)
{
    dp_route r;
    dp_error e;

    cr_assert(dp_route_resolve(&ctx, snap, "llama", "least-request", NULL, &r, &e));
    for (uint32_t i = 0; i < 4; i++)
        dp_snap_state(snap, i)->fleet_inflight = i == 2 ? 0 : 5;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e), 2);
}

Test(dp_route, skips_not_ready_draining_and_excluded_endpoints)
{
    pm_snapshot *pm = (pm_snapshot *)dp_snap_pm(snap);
    dp_route r;
    dp_error e;
    uint32_t exclude[] = {3};

    pm->endpoints[0].ready = false;
    pm->endpoints[1].draining = true;
    cr_assert(dp_route_resolve(&ctx, snap, "llama", "random", NULL, &r, &e));
    for (int i = 0; i < 20; i++) {
        int64_t idx = dp_route_pick(&ctx, snap, &r, exclude, 1, 0, &e);
        cr_assert_eq(idx, 2);
        dp_route_release(dp_snap_state(snap, 2), 0);
    }
    pm->endpoints[2].ready = false;
    cr_assert_eq(dp_route_pick(&ctx, snap, &r, exclude, 1, 0, &e), -1);
    cr_assert_eq(e.status, 503);
    cr_assert_str_eq(e.header, "x-error-no-model-backends");
}

Test(dp_route, random_spreads_over_all_candidates)
{
    dp_route r;
    dp_error e;
    unsigned hits[4] = {0};

    cr_assert(dp_route_resolve(&ctx, snap, "llama", "random", NULL, &r, &e));
    for (int i = 0; i < 4000; i++) {
        int64_t idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 0, &e);
        hits[idx]++;
        dp_route_release(dp_snap_state(snap, (uint32_t)idx), 0);
    }
    for (int i = 0; i < 4; i++)
        cr_assert(hits[i] > 800 && hits[i] < 1200, "endpoint %d got %u of 4000", i, hits[i]);
}
