/* Unit tests for the strategies and plans (dp_strategy and dp_strat_*):
 * each strategy on crafted load vectors (ties, missing inputs, one
 * endpoint, nothing known -> fallback), weighted composition and its
 * normalisation, and plan parsing. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dp_fixture.h"
#include "dp_prefix.h"
#include "dp_strategy.h"
#include "ut_leak.h"

#define N 4

static dp_load *load;
static dp_snap *snap;
static uint64_t rng;
static uint32_t cands[64];
static double scratch[128];
static dp_pick_req preq;
static bool guard_on;      /* dp_pick.imbalance_guard of pick_n */
static uint32_t guard_abs; /* dp_pick.imbalance_abs of pick_n */

static void
setup_n(unsigned n)
{
    pm_snapshot *pm = fx_snapshot("m", n);

    load = dp_load_new();
    snap = dp_snap_new(pm, dp_load_apply_snapshot(load, pm));
    rng = 777;
    for (uint32_t i = 0; i < n; i++)
        cands[i] = i;
    preq = (dp_pick_req){.max_tokens = -1};
    guard_on = false;
    guard_abs = 16;
}

static void
setup(void)
{
    setup_n(N);
}

static dp_prefix *pfx; /* prefix-cache tests */

static void
teardown(void)
{
    dp_prefix_free(pfx);
    pfx = NULL;
    dp_snap_unref(snap);
    dp_load_free(load);
    ut_leak_check();
}
TestSuite(dp_strategy, .init = setup, .fini = teardown, .timeout = 10);

static dp_ep *
ep(uint32_t i)
{
    return dp_snap_state(snap, i);
}

static dp_pick
pick_n(uint32_t n)
{
    return (dp_pick){.snap = snap,
                     .states = dp_snap_states(snap),
                     .cands = cands,
                     .n_cands = n,
                     .rng = &rng,
                     .req = &preq,
                     .imbalance_guard = guard_on,
                     .imbalance_abs = guard_abs};
}

/* Runs <str> over the first <n> endpoints; *fb gets the fallback reason. */
static uint32_t
run_n(const char *str, uint32_t n, const char **fb)
{
    dp_plan plan;
    char why[128];
    dp_pick p = pick_n(n);

    cr_assert(dp_plan_parse(str, &plan, why, sizeof(why)), "%s: %s", str, why);
    return dp_plan_pick(&plan, &p, scratch, fb);
}

static uint32_t
run(const char *str, const char **fb)
{
    return run_n(str, N, fb);
}

/* How often each of the N endpoints wins over <iters> runs. */
static void
histogram(const char *str, int iters, unsigned hits[N])
{
    const char *fb;
    memset(hits, 0, N * sizeof(unsigned));
    for (int i = 0; i < iters; i++)
        hits[run(str, &fb)]++;
}

/* ---- plans -------------------------------------------------------------- */

Test(dp_strategy, plan_parse_accepts_names_and_weighted_lists)
{
    dp_plan p;
    char why[128];

    cr_assert(dp_plan_parse("least-request", &p, why, sizeof(why)));
    cr_assert_eq(p.n, 1);
    cr_assert_str_eq(p.label, "least-request");
    cr_assert(
        dp_plan_parse("least-kv-cache:2,least-latency:1,least-request", &p, why, sizeof(why)));
    cr_assert_eq(p.n, 3);
    cr_assert_eq(p.w[0], 2);
    cr_assert_eq(p.w[2], 1);
    cr_assert_str_eq(p.label, "least-kv-cache:2,least-latency:1,least-request:1");
    cr_assert(dp_plan_parse(" throughput : 1000000 ,\tvtc-basic:0 , session-affinity", &p, why,
                            sizeof(why)));
    cr_assert_eq(p.n, 2, "a zero weight drops the member");
    cr_assert_str_eq(p.label, "throughput:1000000,session-affinity:1");
    cr_assert(dp_plan_parse("random:7", &p, why, sizeof(why)));
    cr_assert_str_eq(p.label, "random", "one member left is that strategy alone");
    cr_assert(dp_plan_parse("power-of-two,least-request:0", &p, why, sizeof(why)));
    cr_assert_str_eq(p.label, "power-of-two");
}

Test(dp_strategy, plan_parse_rejects_bad_strings_with_a_reason)
{
    const char *bad[] = {"",
                         "prefix-cache,random",
                         "prefill-decode",
                         "slo",
                         "Least-Request",
                         "least-request,",
                         ",least-request",
                         "least-request:",
                         "least-request:-1",
                         "least-request:1.5",
                         "least-request:1000001",
                         "least-request:00000001",
                         "least-request:0",
                         "least-request,least-request:2",
                         "random,least-request",
                         "least-request,power-of-two",
                         "least-request:1:2",
                         "least request"};
    dp_plan p;
    char why[128];
    char big[600];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        cr_assert_not(dp_plan_parse(bad[i], &p, why, sizeof(why)), "'%s' accepted", bad[i]);
        cr_assert(why[0] != '\0', "'%s' has no reason", bad[i]);
    }
    memset(big, ' ', sizeof(big) - 1);
    memcpy(big, "random", 6);
    big[sizeof(big) - 1] = '\0';
    cr_assert_not(dp_plan_parse(big, &p, why, sizeof(why)));
    cr_assert(strstr(why, "longer") != NULL);
    /* 17 members */
    cr_assert_not(dp_plan_parse("least-request,throughput,least-latency,least-kv-cache,"
                                "least-gpu-cache,least-busy-time,vtc-basic,session-affinity,"
                                "least-request:0,throughput:0,least-latency:0,least-kv-cache:0,"
                                "least-gpu-cache:0,least-busy-time:0,vtc-basic:0,"
                                "session-affinity:0,random:0",
                                &p, why, sizeof(why)));
}

Test(dp_strategy, plan_cache_returns_the_same_plan_and_skips_invalid_strings)
{
    dp_plan_cache *c = dp_plan_cache_new();
    dp_plan a, b;
    char why[128];

    cr_assert(dp_plan_get(c, "least-request:3,least-kv-cache", &a, why, sizeof(why)));
    cr_assert(dp_plan_get(c, "least-request:3,least-kv-cache", &b, why, sizeof(why)));
    cr_assert_str_eq(a.label, b.label);
    cr_assert_eq(a.w[0], b.w[0]);
    cr_assert_not(dp_plan_get(c, "nope:1,least-request", &a, why, sizeof(why)));
    cr_assert_not(dp_plan_get(c, "nope:1,least-request", &a, why, sizeof(why)));
    cr_assert(dp_plan_get(c, "throughput", &a, why, sizeof(why)));
    cr_assert_str_eq(a.label, "throughput");
    dp_plan_cache_free(c);
}

Test(dp_strategy, registry_knows_exactly_the_implemented_names)
{
    const char *yes[] = {"random",        "least-request",    "power-of-two",    "throughput",
                         "least-latency", "least-kv-cache",   "least-gpu-cache", "least-busy-time",
                         "vtc-basic",     "session-affinity", "prefix-cache"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_assert_not_null(dp_strategy_find(yes[i]), "%s", yes[i]);
    cr_assert_not_null(dp_strategy_find("pd"));
    cr_assert_null(dp_strategy_find("slo-routing"));
    cr_assert_null(dp_strategy_find("least-utilization"));
}

/* ---- single strategies -------------------------------------------------- */

Test(dp_strategy, least_request_lowest_load_wins_and_ties_are_shared)
{
    unsigned hits[N];
    const char *fb;

    ep(0)->inflight = 3;
    ep(1)->fleet_inflight = 1;
    ep(2)->inflight = 1;
    ep(3)->fleet_inflight = 5;
    ep(3)->own_in_fleet = 5; /* all ours at report time, none now */
    histogram("least-request", 1000, hits);
    cr_assert_eq(hits[3], 1000, "endpoint 3's fleet share was ours and is gone");
    ep(3)->inflight = 1;
    histogram("least-request", 3000, hits);
    cr_assert_eq(hits[0], 0);
    for (int i = 1; i < N; i++)
        cr_assert(hits[i] > 850 && hits[i] < 1150, "tie %d got %u", i, hits[i]);
    run("least-request", &fb);
    cr_assert_null(fb, "least-request always has its input");
}

Test(dp_strategy, power_of_two_never_picks_the_busiest_and_needs_no_metrics)
{
    unsigned hits[N];
    const char *fb;

    ep(0)->inflight = 9;
    ep(1)->inflight = 1;
    ep(2)->inflight = 2;
    ep(3)->inflight = 3;
    histogram("power-of-two", 4000, hits);
    cr_assert_eq(hits[0], 0, "the busiest loses every duel");
    /* P(win) = P(drawn with a busier one): 1: 3/6, 2: 2/6, 3: 1/6. */
    cr_assert(hits[1] > hits[2] && hits[2] > hits[3], "%u %u %u", hits[1], hits[2], hits[3]);
    cr_assert(hits[1] > 1700 && hits[1] < 2300);
    run("power-of-two", &fb);
    cr_assert_null(fb);
    cr_assert_eq(run_n("power-of-two", 1, &fb), 0);
}

Test(dp_strategy, throughput_lowest_tokens_per_second_unknown_ranked_last)
{
    const char *fb;

    ep(0)->tokens_per_s = 500;
    ep(1)->tokens_per_s = -1; /* unknown: never chosen while others have values */
    ep(2)->tokens_per_s = 120;
    ep(3)->tokens_per_s = 900;
    for (int i = 0; i < 50; i++)
        cr_assert_eq(run("throughput", &fb), 2);
    cr_assert_null(fb);
}

Test(dp_strategy, kv_and_gpu_cache_pick_the_lowest_usage)
{
    const char *fb;

    for (uint32_t i = 0; i < N; i++) {
        ep(i)->kv_usage = 0.2 * (i + 1);
        ep(i)->gpu_usage = 0.9 - 0.2 * i;
    }
    ep(0)->kv_usage = -1;
    cr_assert_eq(run("least-kv-cache", &fb), 1);
    cr_assert_null(fb);
    cr_assert_eq(run("least-gpu-cache", &fb), 3);
    cr_assert_null(fb);
}

/* A burst between two scrapes: each pick's reservation (as dp_route_pick
 * makes it) raises that engine's estimated usage at once, so the burst
 * spreads. Ranking by the scraped usage alone sent all 12 to endpoint 0. */
Test(dp_strategy, least_kv_cache_spreads_a_burst_between_scrapes)
{
    const char *fb;
    unsigned hits[N] = {0};

    for (uint32_t i = 0; i < N; i++) {
        ep(i)->kv_usage = 0.10 + 0.02 * i;
        ep(i)->kv_capacity = 10000;
    }
    /* 1000 tokens are 10% of an engine: estimates .10 .12 .14 .16, +.1 per
     * pick, so the picks go round. */
    for (int k = 0; k < 12; k++) {
        uint32_t pos = run("least-kv-cache", &fb);
        cr_assert_null(fb);
        cr_assert_eq(pos, (uint32_t)k % N, "pick %d", k);
        hits[pos]++;
        ep(pos)->inflight++;
        ep(pos)->inflight_tokens += 1000;
    }
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(hits[i], 3, "endpoint %u got %u of 12", i, hits[i]);
    /* A fresh scrape that saw them all: the estimate is the engine's word. */
    for (uint32_t i = 0; i < N; i++) {
        ep(i)->kv_usage = i == 3 ? 0.05 : 0.5;
        ep(i)->kv_base_tokens = ep(i)->inflight_tokens;
    }
    cr_assert_eq(run("least-kv-cache", &fb), 3);
}

/* Without a capacity the scraped usage decides, and equal usages go to the
 * engine with the fewest tokens sent since the scrape. */
Test(dp_strategy, least_kv_cache_without_capacity_breaks_ties_by_tokens_since_the_scrape)
{
    const char *fb;
    unsigned hits[N] = {0};

    for (uint32_t i = 0; i < N; i++)
        ep(i)->kv_usage = 0.2;
    for (int k = 0; k < 8; k++) {
        uint32_t pos = run("least-kv-cache", &fb);
        hits[pos]++;
        ep(pos)->inflight_tokens += 1000 + 100 * (uint64_t)k;
    }
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(hits[i], 2, "endpoint %u got %u of 8", i, hits[i]);
    ep(2)->kv_usage = 0.19; /* a lower usage wins whatever was sent */
    cr_assert_eq(run("least-kv-cache", &fb), 2);
}

Test(dp_strategy, every_metric_strategy_falls_back_to_least_request_when_nothing_is_known)
{
    const char *names[] = {"throughput", "least-latency", "least-kv-cache", "least-gpu-cache",
                           "least-busy-time"};
    const char *fb;

    for (uint32_t i = 0; i < N; i++)
        ep(i)->inflight = i == 2 ? 0 : 4;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        cr_assert_eq(run(names[k], &fb), 2, "%s", names[k]);
        cr_assert_str_eq(fb, "no_metrics", "%s", names[k]);
    }
}

Test(dp_strategy, least_latency_follows_its_formula)
{
    const char *fb;
    dp_pick p = pick_n(N);

    /* e0: fast first token, slow decode; e1: the opposite. */
    ep(0)->ttft_ms = 50;
    ep(0)->tpot_ms = 40;
    ep(1)->ttft_ms = 400;
    ep(1)->tpot_ms = 10;
    /* e2: fast but with a queue; e3: ttft only (unscored). */
    ep(2)->ttft_ms = 50;
    ep(2)->tpot_ms = 10;
    ep(2)->waiting = 3;
    ep(2)->running = 2;
    ep(2)->latency_ms = 2000;
    ep(3)->ttft_ms = 1;
    preq.max_tokens = 10;
    dp_strat_least_latency(&p, scratch, &fb);
    cr_assert_float_eq(scratch[0], 50 + 10 * 40.0, 1e-9);
    cr_assert_float_eq(scratch[1], 400 + 10 * 10.0, 1e-9);
    /* Q = max(3, 0 - 2) = 3; S = 2000; R = 2 */
    cr_assert_float_eq(scratch[2], 3 * 2000 / 2.0 + 50 + 100, 1e-9);
    cr_assert(isnan(scratch[3]));
    cr_assert_eq(run("least-latency", &fb), 0, "short output: low ttft wins");
    preq.max_tokens = 1000;
    cr_assert_eq(run("least-latency", &fb), 1, "long output: low tpot wins");
    /* Without max_tokens: 256 expected tokens. */
    preq.max_tokens = -1;
    dp_strat_least_latency(&p, scratch, &fb);
    cr_assert_float_eq(scratch[0], 50 + 256 * 40.0, 1e-9);
    /* A burst this worker sent since the last scrape counts at once:
     * e1 now has 5 in flight beyond the 0 it was running. */
    ep(1)->inflight = 5;
    dp_strat_least_latency(&p, scratch, &fb);
    cr_assert_float_eq(scratch[1], 5 * (400 + 256 * 10.0) + 400 + 2560, 1e-9);
}

Test(dp_strategy, least_busy_time_is_inflight_tokens_over_rate)
{
    const char *fb;
    dp_pick p = pick_n(N);

    ep(0)->inflight_tokens = 1000;
    ep(0)->tokens_per_s = 100; /* 10 s */
    ep(1)->inflight_tokens = 3000;
    ep(1)->tokens_per_s = 1000; /* 3 s */
    ep(2)->inflight_tokens = 1100;
    ep(2)->tokens_per_s = 0; /* idle: the mean rate, 550 -> 2 s */
    ep(3)->fleet_tokens = 0;
    ep(3)->tokens_per_s = -1; /* unknown */
    dp_strat_least_busy_time(&p, scratch, &fb);
    cr_assert_float_eq(scratch[0], 10, 1e-9);
    cr_assert_float_eq(scratch[1], 3, 1e-9);
    cr_assert_float_eq(scratch[2], 2, 1e-9);
    cr_assert(isnan(scratch[3]));
    cr_assert_eq(run("least-busy-time", &fb), 2);
    /* Fleet tokens count too, minus our share at report time. */
    ep(2)->fleet_tokens = 5000;
    ep(2)->own_tokens_in_fleet = 1000;
    cr_assert_eq(run("least-busy-time", &fb), 1);
}

Test(dp_strategy, vtc_basic_puts_heavy_users_away_from_light_ones)
{
    const char *fb;
    dp_pick p = pick_n(N);

    preq.has_user = true;
    preq.user_tokens = 0; /* a new user: target position 0 */
    preq.mean_user_tokens = 1000;
    cr_assert_eq(run("vtc-basic", &fb), 0);
    cr_assert_null(fb);
    preq.user_tokens = 9000; /* f = 0.9: target 2.7 */
    cr_assert_eq(run("vtc-basic", &fb), 3);
    dp_strat_vtc_basic(&p, scratch, &fb);
    cr_assert_float_eq(scratch[3], 0.3 / 3, 1e-9);
    cr_assert_float_eq(scratch[0], 2.7 / 3, 1e-9);
    /* Load counts: the heavy user's endpoint is busy, the next one wins. */
    ep(3)->inflight = 4;
    ep(0)->inflight = 4;
    ep(1)->inflight = 4;
    dp_strat_vtc_basic(&p, scratch, &fb);
    cr_assert_float_eq(scratch[3], 0.1 + 1, 1e-9);
    cr_assert_float_eq(scratch[2], 0.7 / 3, 1e-9);
    cr_assert_eq(run("vtc-basic", &fb), 2);
    /* No user: least-request decides. */
    preq.has_user = false;
    cr_assert_eq(run("vtc-basic", &fb), 2);
    cr_assert_str_eq(fb, "no_user");
}

Test(dp_strategy, session_ids_round_trip_and_reject_garbage)
{
    char id[64], addr[64];

    dp_session_id_encode("10.0.0.3:8000", id, sizeof(id));
    cr_assert_str_eq(id, "MTAuMC4wLjM6ODAwMA==");
    cr_assert(dp_session_id_decode(id, addr, sizeof(addr)));
    cr_assert_str_eq(addr, "10.0.0.3:8000");
    cr_assert(dp_session_id_decode("MTAuMC4wLjM6ODAwMA", addr, sizeof(addr)), "no padding");
    cr_assert_str_eq(addr, "10.0.0.3:8000");
    dp_session_id_encode("[::1]:80", id, sizeof(id));
    cr_assert(dp_session_id_decode(id, addr, sizeof(addr)));
    cr_assert_str_eq(addr, "[::1]:80");
    cr_assert_not(dp_session_id_decode("not base64!", addr, sizeof(addr)));
    cr_assert_not(dp_session_id_decode("", addr, sizeof(addr)));
    cr_assert_not(dp_session_id_decode("A", addr, sizeof(addr)));
    cr_assert_not(dp_session_id_decode("AAAA", addr, sizeof(addr)), "decodes to NULs");
    cr_assert_not(dp_session_id_decode(id, addr, 4), "does not fit");
    dp_session_id_encode("10.0.0.3:8000", id, 8);
    cr_assert_str_eq(id, "", "too small: empty");
}

Test(dp_strategy, session_affinity_scores_one_endpoint)
{
    const char *fb;
    dp_pick p = pick_n(N);
    char id[64];

    dp_session_id_encode("10.0.0.2:8000", id, sizeof(id));
    preq.session_id = id;
    cr_assert_eq(dp_strat_session_affinity(&p, scratch, &fb), N);
    cr_assert_eq(scratch[1], 1);
    cr_assert_eq(scratch[0] + scratch[2] + scratch[3], 0);
    cr_assert_eq(run("session-affinity", &fb), 1);
    preq.session_id = NULL;
    preq.session_key = "abc";
    uint32_t k = run("session-affinity", &fb);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(run("session-affinity", &fb), k);
    preq.session_key = NULL;
    ep(0)->inflight = 1;
    ep(1)->inflight = 1;
    ep(3)->inflight = 1;
    cr_assert_eq(run("session-affinity", &fb), 2);
    cr_assert_str_eq(fb, "no_session");
}

Test(dp_strategy, session_key_spreads_keys_over_endpoints)
{
    unsigned hits[N] = {0};
    const char *fb;
    char key[32];

    for (int k = 0; k < 4000; k++) {
        snprintf(key, sizeof(key), "session-%d", k);
        preq.session_key = key;
        hits[run("session-affinity", &fb)]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert(hits[i] > 850 && hits[i] < 1150, "endpoint %d has %u of 4000 keys", i, hits[i]);
}

/* ---- composition -------------------------------------------------------- */

Test(dp_strategy, weighted_normalises_reverses_and_sums)
{
    dp_plan plan;
    char why[128];
    const char *fb = NULL;
    dp_pick p = pick_n(3);
    double *total = scratch + 3;

    /* least-request raw [0, 5, 10] -> [1, 0.5, 0];
     * least-kv-cache raw [0.9, 0.1, unknown] -> [0, 1, 0]. */
    ep(0)->inflight = 0;
    ep(1)->inflight = 5;
    ep(2)->inflight = 10;
    ep(0)->kv_usage = 0.9;
    ep(1)->kv_usage = 0.1;
    cr_assert(dp_plan_parse("least-request:1,least-kv-cache:1", &plan, why, sizeof(why)));
    cr_assert_eq(dp_strat_weighted(&plan, &p, scratch, &fb), 1);
    cr_assert_float_eq(total[0], 0.5, 1e-12);
    cr_assert_float_eq(total[1], 0.75, 1e-12);
    cr_assert_float_eq(total[2], 0, 1e-12);
    /* Weight 3:1 for least-request: [0.75, 0.625, 0] -> endpoint 0. */
    cr_assert(dp_plan_parse("least-request:3,least-kv-cache:1", &plan, why, sizeof(why)));
    cr_assert_eq(dp_strat_weighted(&plan, &p, scratch, &fb), 0);
    cr_assert_float_eq(total[1], 0.75 * 0.5 + 0.25, 1e-12);
    /* All-equal scores normalise to 1 for every scored endpoint. */
    for (uint32_t i = 0; i < 3; i++)
        ep(i)->tokens_per_s = 7;
    cr_assert(dp_plan_parse("throughput,least-kv-cache", &plan, why, sizeof(why)));
    dp_strat_weighted(&plan, &p, scratch, &fb);
    cr_assert_float_eq(total[0], 0.5, 1e-12);
    cr_assert_float_eq(total[1], 1, 1e-12);
    cr_assert_float_eq(total[2], 0.5, 1e-12);
}

Test(dp_strategy, weighted_higher_is_better_members_and_member_without_input)
{
    const char *fb;
    char id[64];

    /* session-affinity (higher is better) names endpoint 3; vtc has no
     * user, so it adds nothing and decides nothing. */
    dp_session_id_encode("10.0.0.4:8000", id, sizeof(id));
    preq.session_id = id;
    ep(3)->inflight = 2;
    cr_assert_eq(run("session-affinity:2,least-request:1,vtc-basic", &fb), 3);
    cr_assert_null(fb, "one member scoring nothing is not a fallback");
    /* Weighted the other way, load wins: 3 scores 1/3, the others 2/3. */
    for (int i = 0; i < 20; i++)
        cr_assert_neq(run("session-affinity:1,least-request:2", &fb), 3);
}

Test(dp_strategy, weighted_with_no_input_anywhere_falls_back)
{
    const char *fb;

    for (uint32_t i = 0; i < N; i++)
        ep(i)->inflight = i == 1 ? 0 : 2;
    cr_assert_eq(run("least-kv-cache:3,throughput", &fb), 1);
    cr_assert_str_eq(fb, "no_metrics");
}

Test(dp_strategy, weighted_ties_are_random)
{
    unsigned hits[N];

    histogram("least-request,least-kv-cache", 4000, hits);
    for (int i = 0; i < N; i++)
        cr_assert(hits[i] > 850 && hits[i] < 1150, "%d got %u", i, hits[i]);
}

/* ---- prefix-cache ------------------------------------------------------------ */

static uint64_t ph[8];
static uint32_t pmatch[64];
static dp_pfx_pick pp;

/* An index over the fixture's endpoints, and the 8 block hashes of one
 * prompt in ph. */
static void
pfx_setup(void)
{
    dp_prefix_cfg c = {.block_size = 4, .seed = 0, .capacity = 1024, .max_blocks = 8};
    const char *text = "system: be brief\nuser: hi there, how are you";

    pfx = dp_prefix_new(&c);
    dp_prefix_apply_snapshot(pfx, dp_snap_pm(snap), dp_snap_states(snap));
    cr_assert_eq(dp_prefix_hash(0, 0, 4, text, strlen(text), ph, 8), 8);
}

static void
pfx_hold(uint32_t i, uint32_t blocks)
{
    dp_prefix_insert(pfx, ep(i), ph, blocks);
}

/* Runs <str> with the prompt's first <n_blocks> blocks. */
static uint32_t
pfx_run(const char *str, uint32_t n_blocks, const char **fb)
{
    dp_plan plan;
    char why[128];
    dp_pick pk = pick_n(N);

    pp.index = pfx;
    pp.hashes = ph;
    pp.n_blocks = n_blocks;
    pp.match = pmatch;
    pp.matched = false;
    pp.outcome = NULL;
    pp.imbalance = false;
    pk.pfx = &pp;
    cr_assert(dp_plan_parse(str, &plan, why, sizeof(why)), "%s: %s", str, why);
    return dp_plan_pick(&plan, &pk, scratch, fb);
}

static void
pfx_defaults(void)
{
    pp = (dp_pfx_pick){.imbalance_abs = 16, .stddev_factor = 2, .min_match_blocks = 1};
}

Test(dp_strategy, prefix_cache_picks_the_longest_match)
{
    const char *fb;

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 4);
    pfx_hold(2, 8);
    pfx_hold(3, 2);
    cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 2);
    cr_assert_null(fb);
    cr_assert_str_eq(pp.outcome, DP_PFX_PREFIX_MATCH);
    cr_assert_not(pp.imbalance);
    cr_assert_eq(pmatch[0], 4);
    cr_assert_eq(pmatch[1], 0);
    cr_assert_eq(pmatch[2], 8);
    cr_assert_eq(pmatch[3], 2);
}

Test(dp_strategy, prefix_cache_equal_matches_go_to_the_lower_load)
{
    const char *fb;

    pfx_setup();
    pfx_defaults();
    pfx_hold(1, 8);
    pfx_hold(3, 8);
    ep(0)->inflight = 1;
    ep(1)->inflight = 3;
    ep(2)->inflight = 1;
    ep(3)->inflight = 1;
    for (int i = 0; i < 20; i++)
        cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 3);
    ep(1)->inflight = 1;
    unsigned hits[N] = {0};
    for (int i = 0; i < 400; i++)
        hits[pfx_run("prefix-cache", 8, &fb)]++;
    cr_assert(hits[1] > 140 && hits[3] > 140, "full ties are random: %u/%u", hits[1], hits[3]);
}

Test(dp_strategy, prefix_cache_skips_a_match_above_mean_plus_k_sd)
{
    const char *fb;
    uint32_t pos;

    pfx_setup();
    pfx_defaults();
    pfx_hold(2, 8);
    pfx_hold(0, 2);
    ep(2)->inflight = 10; /* mean 2.5, sd 5 */
    ep(0)->inflight = 1;
    pp.stddev_factor = 0.5; /* cap 5: endpoint 2 is too loaded, 0 is not */
    cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 0, "the next best match within the cap");
    cr_assert_str_eq(pp.outcome, DP_PFX_PREFIX_MATCH);
    ep(0)->inflight = 8; /* mean 4.5, sd 5.2: cap 7.1; both matches too loaded */
    pos = pfx_run("prefix-cache", 8, &fb);
    cr_assert(pos == 1 || pos == 3, "least-request decides, got %u", pos);
    cr_assert_str_eq(pp.outcome, DP_PFX_SKIPPED);
    pp.stddev_factor = 2; /* cap 15: back to the best match */
    cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 2);
}

Test(dp_strategy, prefix_cache_imbalance_guard_keeps_only_the_least_loaded)
{
    const char *fb;
    uint32_t pos;

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 8);
    pfx_hold(2, 2);
    ep(0)->inflight = 20;
    ep(2)->inflight = 3;
    for (int i = 0; i < 20; i++) {
        pos = pfx_run("prefix-cache", 8, &fb);
        cr_assert(pos == 1 || pos == 3, "got %u", pos);
    }
    cr_assert(pp.imbalance);
    cr_assert_str_eq(pp.outcome, DP_PFX_FALLBACK);
    pfx_hold(3, 1); /* a match among the least loaded wins */
    cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 3);
    cr_assert(pp.imbalance);
    cr_assert_str_eq(pp.outcome, DP_PFX_PREFIX_MATCH);
    ep(0)->inflight = 16; /* spread 16 is not above 16 */
    cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 0);
    cr_assert_not(pp.imbalance);
}

Test(dp_strategy, prefix_cache_minimum_match_length)
{
    const char *fb;

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 1);
    ep(1)->inflight = 1;
    ep(2)->inflight = 1;
    ep(3)->inflight = 1;
    ep(0)->inflight = 2;
    cr_assert_eq(pfx_run("prefix-cache", 8, &fb), 0);
    pp.min_match_blocks = 2;
    pfx_run("prefix-cache", 8, &fb);
    cr_assert_str_eq(pp.outcome, DP_PFX_FALLBACK, "one block is below the minimum");
}

Test(dp_strategy, prefix_cache_without_a_full_block_is_least_request)
{
    const char *fb;

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 8);
    for (uint32_t i = 0; i < N; i++)
        ep(i)->inflight = i == 2 ? 0 : 3;
    cr_assert_eq(pfx_run("prefix-cache", 0, &fb), 2);
    cr_assert_null(fb, "not a routing fallback: prefix-cache's own least-request step");
    cr_assert_str_eq(pp.outcome, DP_PFX_FALLBACK);
}

Test(dp_strategy, prefix_cache_in_a_list_scores_the_matched_share)
{
    const char *fb;
    double sc[N];
    const char *why = NULL;
    dp_pick pk = pick_n(N);

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 8);
    pfx_hold(1, 4);
    ep(0)->inflight = 2;
    /* prefix: 1, .5, 0, 0; least-request: 0, 1, 1, 1 -> totals .5, .75, .5, .5 */
    cr_assert_eq(pfx_run("prefix-cache:1,least-request:1", 8, &fb), 1);
    cr_assert_null(fb);
    cr_assert_null(pp.outcome, "outcomes are counted for prefix-cache alone");
    pp.matched = false;
    pp.min_match_blocks = 5;
    pk.pfx = &pp;
    cr_assert_eq(dp_strat_prefix_cache(&pk, sc, &why), N);
    cr_assert_float_eq(sc[0], 1.0, 1e-9);
    cr_assert_float_eq(sc[1], 0.0, 1e-9, "below the minimum scores 0");
    pp.n_blocks = 0;
    pp.matched = false;
    cr_assert_eq(dp_strat_prefix_cache(&pk, sc, &why), 0);
    cr_assert_str_eq(why, DP_WHY_NO_PREFIX);
    pp.min_match_blocks = 1;
    /* Without blocks the member adds nothing: least-request decides alone. */
    for (uint32_t i = 0; i < N; i++)
        ep(i)->inflight = i == 3 ? 0 : 1;
    cr_assert_eq(pfx_run("prefix-cache:5,least-request:1", 0, &fb), 3);
    cr_assert_null(fb);
}

/* The herd bench/routing measured (0/0/480/0): one endpoint holds the
 * prefix every request shares, prefix-cache weighs 2, least-request 1. Min-max
 * normalisation makes the load term 0..1 whatever the absolute load, so the
 * holder won every pick. With the guard it loses once it is more than
 * imbalance_abs requests ahead, and wins again within it. */
Test(dp_strategy, weighted_imbalance_guard_stops_a_prefix_herd)
{
    const char *fb;
    uint32_t pos;

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 8);
    guard_on = true;
    ep(0)->inflight = 17;
    ep(1)->inflight = 1;
    ep(2)->inflight = 0;
    ep(3)->inflight = 0;
    for (int i = 0; i < 20; i++) {
        pos = pfx_run("prefix-cache:2,least-request:1", 8, &fb);
        cr_assert(pos == 2 || pos == 3, "17 ahead of the least loaded: got %u", pos);
        cr_assert_null(fb);
        cr_assert(pp.imbalance, "the guard decided");
    }
    ep(0)->inflight = 16; /* 16 ahead is not above 16: the prefix decides */
    cr_assert_eq(pfx_run("prefix-cache:2,least-request:1", 8, &fb), 0);
    cr_assert_not(pp.imbalance);
    guard_on = false; /* the old behaviour, without the guard */
    ep(0)->inflight = 1000;
    cr_assert_eq(pfx_run("prefix-cache:2,least-request:1", 8, &fb), 0);
}

/* Under the guard the members see only the least loaded: a match among
 * them still counts, normalisation is over them, and a list whose members
 * score none of them falls back to least-request. */
Test(dp_strategy, weighted_imbalance_guard_scores_among_the_least_loaded)
{
    const char *fb;
    dp_plan plan;
    char why[128];
    dp_pick p;
    double *total = scratch + N;
    uint32_t pos;

    pfx_setup();
    pfx_defaults();
    pfx_hold(0, 8);
    pfx_hold(3, 2);
    guard_on = true;
    guard_abs = 4;
    ep(0)->inflight = 9;
    ep(1)->inflight = 2;
    for (int i = 0; i < 20; i++)
        cr_assert_eq(pfx_run("prefix-cache:2,least-request:1", 8, &fb), 3);
    /* kv usage: endpoint 0 (left out) would stretch the range to 0.9. */
    ep(0)->kv_usage = 0.9;
    ep(1)->kv_usage = 0.1;
    ep(2)->kv_usage = 0.3;
    ep(3)->kv_usage = 0.5;
    p = pick_n(N);
    cr_assert(dp_plan_parse("least-kv-cache:1,throughput:1", &plan, why, sizeof(why)));
    cr_assert_eq(dp_strat_weighted(&plan, &p, scratch, &fb), 2);
    cr_assert(isnan(total[0]) && isnan(total[1]), "left out by the guard");
    cr_assert_float_eq(total[2], 0.5, 1e-12, "0.3 is the lowest usage taking part");
    cr_assert_float_eq(total[3], 0, 1e-12);
    /* Only endpoints outside the guard's set have the input: fallback. */
    ep(2)->kv_usage = -1;
    ep(3)->kv_usage = -1;
    cr_assert_eq(dp_strat_weighted(&plan, &p, scratch, &fb), UINT32_MAX);
    pos = run("least-kv-cache:1,throughput:1", &fb);
    cr_assert(pos == 2 || pos == 3, "got %u", pos);
    cr_assert_str_eq(fb, DP_WHY_NO_METRICS);
}

/* A mixed fleet: one engine exports no capacity. It is scored with the
 * others' capacity, so its estimate rises with what it is sent too; with
 * the scraped usage alone it took 9 of the 12 (1/1/1/9). */
Test(dp_strategy, least_kv_cache_lends_a_capacity_to_an_engine_without_one)
{
    const char *fb;
    unsigned hits[N] = {0};

    for (uint32_t i = 0; i < N; i++) {
        ep(i)->kv_usage = 0.10;
        ep(i)->kv_capacity = i == 3 ? -1 : 10000;
    }
    for (int k = 0; k < 12; k++) {
        uint32_t pos = run("least-kv-cache", &fb);
        cr_assert_null(fb);
        hits[pos]++;
        ep(pos)->inflight++;
        ep(pos)->inflight_tokens += 1000;
    }
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(hits[i], 3, "endpoint %u got %u of 12", i, hits[i]);
}
