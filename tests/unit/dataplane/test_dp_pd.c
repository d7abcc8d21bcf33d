/* Unit tests for dp_pd: roles and rolesets, eligibility (an incomplete
 * roleset is skipped), the imbalance fast paths, the scores (prefix match,
 * load, KV, throughput) and staged decode choice. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_fixture.h"
#include "dp_pd.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static dp_load *load;
static dp_snap *snap;
static uint64_t rng = 99;
static uint32_t cands[16];
static int32_t groups[16];
static dp_pick_req preq = {.max_tokens = -1};
static const dp_pd_cfg cfg = {.prefill_spread = 16, .decode_spread = 16};

static void
teardown(void)
{
    dp_snap_unref(snap);
    dp_load_free(load);
    snap = NULL;
    load = NULL;
    ut_leak_check();
}
TestSuite(dp_pd, .fini = teardown, .timeout = 10);

/* Endpoints described as "roleset/role" ("-" = no roleset, role "" =
 * combined), all candidates. */
static void
build(const char *const *desc, unsigned n)
{
    pm_snapshot *pm = fx_snapshot("m", n);

    for (unsigned i = 0; i < n; i++) {
        const char *slash = strchr(desc[i], '/');
        if (desc[i][0] != '-')
            pm->endpoints[i].roleset = gw_xstrndup(desc[i], (size_t)(slash - desc[i]));
        if (slash[1] != '\0')
            pm->endpoints[i].role = gw_xstrdup(slash + 1);
        cands[i] = i;
    }
    load = dp_load_new();
    snap = dp_snap_new(pm, dp_load_apply_snapshot(load, pm));
}

static dp_pick
pick(unsigned n)
{
    return (dp_pick){.snap = snap,
                     .states = dp_snap_states(snap),
                     .cands = cands,
                     .n_cands = n,
                     .rng = &rng,
                     .req = &preq};
}

static dp_ep *
ep(uint32_t i)
{
    return dp_snap_state(snap, i);
}

Test(dp_pd, roles_come_from_the_role_label)
{
    pm_endpoint e = {0};

    cr_assert_eq(dp_pd_role_of(&e), DP_PD_COMBINED);
    e.role = "prefill";
    cr_assert_eq(dp_pd_role_of(&e), DP_PD_PREFILL);
    e.role = "decode";
    cr_assert_eq(dp_pd_role_of(&e), DP_PD_DECODE);
    e.role = "Prefill";
    cr_assert_eq(dp_pd_role_of(&e), DP_PD_COMBINED, "exact names only");
}

Test(dp_pd, no_complete_roleset_means_no_pd_pair)
{
    const char *d[] = {"a/prefill", "b/decode", "-/", "-/worker"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 4);
    p = pick(4);
    cr_assert_not(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c),
                  "a's decode and b's prefill are missing");
    cr_assert_not(dp_pd_has_roleset(&p, groups));
}

Test(dp_pd, has_roleset_agrees_with_choose)
{
    const char *d[] = {"a/prefill", "b/prefill", "b/decode", "a/decode"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 4);
    p = pick(4);
    cr_assert(dp_pd_has_roleset(&p, groups));
    /* Without a's decode (a redo that excluded b's prefill sees a/prefill,
     * b/decode only): nothing complete is left. */
    cands[0] = 0;
    cands[1] = 2;
    p = pick(2);
    cr_assert_not(dp_pd_has_roleset(&p, groups));
    cr_assert_not(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cands[1] = 3;
    p = pick(2);
    cr_assert(dp_pd_has_roleset(&p, groups));
    cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cr_assert_eq(c.prefill, 0);
    cr_assert_eq(c.decode, 1);
}

Test(dp_pd, the_pair_comes_from_one_complete_roleset_and_incomplete_ones_are_skipped)
{
    const char *d[] = {"a/prefill", "b/prefill", "b/decode", "c/decode", "-/"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 5);
    p = pick(5);
    for (int i = 0; i < 50; i++) {
        cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
        cr_assert_eq(c.prefill, 1);
        cr_assert_eq(c.decode, 2);
        cr_assert(c.has_decode);
    }
}

Test(dp_pd, pods_without_a_roleset_form_one_pool)
{
    const char *d[] = {"-/prefill", "-/decode"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 2);
    p = pick(2);
    cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cr_assert_eq(c.prefill, 0);
    cr_assert_eq(c.decode, 1);
}

Test(dp_pd, a_prefill_imbalance_takes_the_least_loaded_prefill_and_its_roleset)
{
    const char *d[] = {"a/prefill", "a/decode", "b/prefill", "b/decode"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 4);
    ep(0)->inflight = 20; /* spread 20 > 16 */
    ep(3)->inflight = 5;  /* b's decode busier than a's: the fast path ignores it */
    p = pick(4);
    cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cr_assert_str_eq(c.how, "prefill_imbalance");
    cr_assert_eq(c.prefill, 2);
    cr_assert_eq(c.decode, 3);
    ep(0)->inflight = 16; /* spread 16 is not more than 16 */
    cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cr_assert_str_neq(c.how, "prefill_imbalance");
}

Test(dp_pd, a_decode_imbalance_takes_the_least_loaded_decode_and_its_roleset)
{
    const char *d[] = {"a/prefill", "a/decode", "b/prefill", "b/decode"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 4);
    ep(1)->inflight = 16; /* spread 16 >= 16 */
    p = pick(4);
    cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cr_assert_str_eq(c.how, "decode_imbalance");
    cr_assert_eq(c.decode, 3);
    cr_assert_eq(c.prefill, 2);
}

Test(dp_pd, scores_prefer_the_prefix_match_and_the_free_kv)
{
    const char *d[] = {"a/prefill", "a/decode", "b/prefill", "b/decode"};
    uint32_t match[4] = {0, 0, 8, 0};
    dp_pick p;
    dp_pd_choice c;

    build(d, 4);
    p = pick(4);
    cr_assert(dp_pd_choose(&p, &cfg, true, match, 8, groups, &c));
    cr_assert_str_eq(c.how, "score");
    cr_assert_eq(c.prefill, 2, "b's prefill holds the whole prefix");
    match[2] = 0;
    ep(1)->kv_usage = 0.95; /* a's decode nearly full */
    ep(3)->kv_usage = 0.10;
    for (int i = 0; i < 20; i++) {
        cr_assert(dp_pd_choose(&p, &cfg, true, match, 8, groups, &c));
        cr_assert_eq(c.decode, 3);
    }
}

Test(dp_pd, staged_chooses_the_prefill_first_and_the_decode_within_its_roleset)
{
    const char *d[] = {"a/prefill", "a/decode", "a/decode", "b/decode", "b/prefill"};
    dp_pick p;
    dp_pd_choice c;
    uint32_t dec;

    build(d, 5);
    ep(0)->inflight = 30; /* prefill imbalance: b's prefill */
    p = pick(5);
    cr_assert(dp_pd_choose(&p, &cfg, false, NULL, 0, groups, &c));
    cr_assert_not(c.has_decode);
    cr_assert_eq(c.prefill, 4);
    cr_assert(dp_pd_choose_decode(&p, "b", &dec));
    cr_assert_eq(dec, 3);
    ep(1)->inflight = 3;
    cr_assert(dp_pd_choose_decode(&p, "a", &dec));
    cr_assert_eq(dec, 2, "the less loaded decode of a");
    cr_assert_not(dp_pd_choose_decode(&p, "zzz", &dec));
}

Test(dp_pd, a_decode_busy_with_others_work_counts_its_engine_queue)
{
    const char *d[] = {"a/prefill", "a/decode", "b/prefill", "b/decode"};
    dp_pick p;
    dp_pd_choice c;

    build(d, 4);
    ep(1)->running = 30; /* a's decode runs 30 requests the gateway did not send */
    ep(1)->waiting = 2;
    p = pick(4);
    cr_assert(dp_pd_choose(&p, &cfg, true, NULL, 0, groups, &c));
    cr_assert_str_eq(c.how, "decode_imbalance");
    cr_assert_eq(c.decode, 3);
}
