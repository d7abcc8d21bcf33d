/* Unit tests for dp_load: state identity across snapshots, the fleet view
 * minus this worker's share, and reports. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_fixture.h"
#include "dp_load.h"
#include "dp_snap.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_load, .fini = fini, .timeout = 10);

Test(dp_load, state_follows_the_endpoint_not_its_id)
{
    dp_load *l = dp_load_new();
    pm_snapshot *a = fx_snapshot("m", 2);
    pm_snapshot *b = fx_snapshot("m", 2);
    dp_ep **sa = dp_load_apply_snapshot(l, a);
    dp_ep **sb;

    sa[1]->inflight = 3;
    /* A restarted controller renumbers the endpoints. */
    b->endpoints[0].id = 7;
    b->endpoints[1].id = 3;
    sb = dp_load_apply_snapshot(l, b);
    cr_assert_eq(sb[1], sa[1]);
    cr_assert_eq(sb[1]->inflight, 3);
    free(sa);
    free(sb);
    pm_snapshot_free(a);
    pm_snapshot_free(b);
    dp_load_free(l);
}

Test(dp_load, removed_endpoint_state_lives_while_requests_hold_it)
{
    dp_load *l = dp_load_new();
    pm_snapshot *a = fx_snapshot("m", 2);
    pm_snapshot *b = fx_snapshot("m", 1);
    dp_ep **sa = dp_load_apply_snapshot(l, a);
    dp_ep *held = sa[1];
    dp_ep **sb;

    held->inflight = 1;
    sb = dp_load_apply_snapshot(l, b);
    cr_assert_eq(dp_load_total_inflight(l), 1, "the held state still counts");
    held->inflight = 0;
    free(sb);
    sb = dp_load_apply_snapshot(l, b);
    cr_assert_eq(dp_load_total_inflight(l), 0);
    free(sa);
    free(sb);
    pm_snapshot_free(a);
    pm_snapshot_free(b);
    dp_load_free(l);
}

Test(dp_load, view_is_fleet_minus_own_share_at_report_time_plus_own_now)
{
    dp_load *l = dp_load_new();
    pm_snapshot *s = fx_snapshot("m", 1);
    dp_ep **st = dp_load_apply_snapshot(l, s);
    pm_report *r;
    pm_load msg = {0};
    pm_ep_load el = {.id = 100, .inflight = 10, .latency_ms = -1, .ttft_ms = -1};
    pm_worker_seq ws = {.worker_id = 77, .seq = 5};

    st[0]->inflight = 4;
    r = dp_load_report(l, s, st, 77, 5); /* we said 4 in report 5 */
    cr_assert_eq(r->eps[0].inflight, 4);
    pm_report_free(r);
    st[0]->inflight = 6; /* two more since */
    msg.n_eps = 1;
    msg.eps = &el;
    msg.n_workers = 1;
    msg.workers = &ws;
    dp_load_apply_fleet(l, &msg, s, st, 77, 1000);
    /* 10 fleet-wide, 4 of them ours at the time: 6 others + 6 ours now. */
    cr_assert_eq(dp_ep_load(st[0]), 12);
    /* A message that does not include us: the whole fleet value is others'. */
    msg.n_workers = 0;
    dp_load_apply_fleet(l, &msg, s, st, 77, 1000);
    cr_assert_eq(dp_ep_load(st[0]), 16);
    free(st);
    pm_snapshot_free(s);
    dp_load_free(l);
}

Test(dp_load, report_resets_the_since_last_report_counters)
{
    dp_load *l = dp_load_new();
    pm_snapshot *s = fx_snapshot("m", 1);
    dp_ep **st = dp_load_apply_snapshot(l, s);
    pm_report *r;

    st[0]->completed = 3;
    st[0]->prompt_tokens = 30;
    r = dp_load_report(l, s, st, 1, 1);
    cr_assert_eq(r->eps[0].completed, 3);
    cr_assert_eq(r->eps[0].prompt_tokens, 30);
    cr_assert_eq(r->env.gen, 7);
    pm_report_free(r);
    r = dp_load_report(l, s, st, 1, 2);
    cr_assert_eq(r->eps[0].completed, 0);
    pm_report_free(r);
    free(st);
    pm_snapshot_free(s);
    dp_load_free(l);
}

Test(dp_load, state_lives_while_an_old_snapshot_references_it)
{
    dp_load *l = dp_load_new();
    pm_snapshot *a = fx_snapshot("m", 2);
    pm_snapshot *b = fx_snapshot("m", 1);
    dp_snap *old = dp_snap_new(a, dp_load_apply_snapshot(l, a));
    dp_snap *cur;

    /* Endpoint 1 leaves; a request still holding the old generation may
     * retry and pick from it, so its state must stay valid. */
    cur = dp_snap_new(b, dp_load_apply_snapshot(l, b));
    dp_snap_state(old, 1)->inflight++;
    cr_assert_eq(dp_load_total_inflight(l), 1);
    dp_snap_state(old, 1)->inflight--;
    dp_snap_unref(old);
    dp_snap_unref(cur);
    dp_load_free(l);
}

Test(dp_load, fleet_message_carries_every_engine_signal_and_token_share)
{
    dp_load *l = dp_load_new();
    pm_snapshot *s = fx_snapshot("m", 1);
    dp_ep **st = dp_load_apply_snapshot(l, s);
    pm_report *r;
    pm_load msg = {0};
    pm_ep_load el = {.id = 100,
                     .inflight = 3,
                     .inflight_tokens = 5000,
                     .running = 7,
                     .waiting = 2,
                     .kv_usage = 0.5,
                     .gpu_usage = 0.25,
                     .latency_ms = 900,
                     .ttft_ms = 80,
                     .tpot_ms = 12,
                     .tokens_per_s = 3000,
                     .metrics_age_ms = 150};
    pm_worker_seq ws = {.worker_id = 9, .seq = 1};

    /* Unknown until the first load message. */
    cr_assert_lt(st[0]->kv_usage, 0);
    cr_assert_lt(st[0]->tokens_per_s, 0);
    cr_assert_lt(st[0]->tpot_ms, 0);
    st[0]->inflight_tokens = 1200;
    r = dp_load_report(l, s, st, 9, 1); /* we said 1200 tokens in report 1 */
    pm_report_free(r);
    st[0]->inflight_tokens = 200; /* one request finished since */
    msg.n_eps = 1;
    msg.eps = &el;
    msg.n_workers = 1;
    msg.workers = &ws;
    dp_load_apply_fleet(l, &msg, s, st, 9, 1000);
    cr_assert_eq(dp_ep_tokens(st[0]), 5000 - 1200 + 200);
    cr_assert_eq(st[0]->running, 7);
    cr_assert_eq(st[0]->waiting, 2);
    cr_assert_eq(st[0]->kv_usage, 0.5);
    cr_assert_eq(st[0]->gpu_usage, 0.25);
    cr_assert_eq(st[0]->latency_ms, 900);
    cr_assert_eq(st[0]->ttft_ms, 80);
    cr_assert_eq(st[0]->tpot_ms, 12);
    cr_assert_eq(st[0]->tokens_per_s, 3000);
    cr_assert_eq(st[0]->metrics_age_ms, 150);
    /* Stale data arrives as -1 and replaces what was there. */
    el.kv_usage = -1;
    dp_load_apply_fleet(l, &msg, s, st, 9, 1000);
    cr_assert_lt(st[0]->kv_usage, 0);
    free(st);
    pm_snapshot_free(s);
    dp_load_free(l);
}

/* One load message for endpoint 100 of fx_snapshot("m", 1): usage <kv> of
 * capacity <cap> tokens scraped <age> ms before <now>, <fleet> tokens
 * in flight fleet-wide (none of them this worker's). */
static void
send_load(dp_load *l, pm_snapshot *s, dp_ep **st, double kv, double cap, double age, uint64_t fleet,
          uint64_t now)
{
    pm_ep_load el = {.id = 100,
                     .inflight_tokens = fleet,
                     .running = -1,
                     .waiting = -1,
                     .kv_usage = kv,
                     .gpu_usage = -1,
                     .latency_ms = -1,
                     .ttft_ms = -1,
                     .tpot_ms = -1,
                     .tokens_per_s = -1,
                     .metrics_age_ms = age,
                     .kv_capacity = cap};
    pm_load msg = {.n_eps = 1, .eps = &el};

    dp_load_apply_fleet(l, &msg, s, st, 9, now);
}

/* least-kv-cache's input: the scraped usage plus what was sent since that
 * scrape, over the capacity; each fresh scrape starts it over. */
Test(dp_load, kv_estimate_adds_tokens_since_the_scrape_and_resets_on_a_fresh_one)
{
    dp_load *l = dp_load_new();
    pm_snapshot *s = fx_snapshot("m", 1);
    dp_ep **st = dp_load_apply_snapshot(l, s);

    cr_assert_lt(dp_ep_kv_estimate(st[0]), 0, "unknown before any message");
    /* t=1000: scraped just now, 25% of 10000 tokens. */
    send_load(l, s, st, 0.25, 10000, 0, 0, 1000);
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.25, 1e-12);
    st[0]->inflight_tokens = 1000; /* this worker sends 1000 tokens there */
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.35, 1e-12, "counted at once");
    /* t=1050: the same scrape, 50 ms older; other workers sent 500. */
    send_load(l, s, st, 0.25, 10000, 50, 500, 1050);
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.40, 1e-12, "still since the t=1000 scrape");
    /* t=1100: a scrape from t=1080 saw all of that (40%); 200 more since
     * t=1050 (the sample at or before the scrape) count on top. */
    st[0]->inflight_tokens = 1200;
    send_load(l, s, st, 0.40, 10000, 20, 500, 1100);
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.42, 1e-12, "reset to the fresh scrape");
    /* Requests finishing free KV: the estimate falls, never below 0. */
    st[0]->inflight_tokens = 0;
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.30, 1e-12);
    send_load(l, s, st, 0.01, 10000, 0, 0, 1150);
    st[0]->inflight_tokens = 0;
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.01, 1e-12);
    /* A scrape older than every kept sample: the oldest one is the base. */
    for (uint64_t t = 1200; t < 1200 + 50 * DP_LOAD_RING; t += 50) {
        st[0]->inflight_tokens = t; /* fresh scrapes; each sample holds its t */
        send_load(l, s, st, 0.5, 10000, 0, 0, t);
    }
    st[0]->inflight_tokens = 2000;
    send_load(l, s, st, 0.5, 10000, 2000, 0, 2000); /* scraped at 0; 1250 is the oldest kept */
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.5 + (2000 - 1250) / 1e4, 1e-12);
    /* No capacity: the scraped usage as it is. No usage: unknown. */
    send_load(l, s, st, 0.5, -1, 0, 0, 3000);
    st[0]->inflight_tokens += 5000;
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.5, 1e-12);
    send_load(l, s, st, -1, 10000, 0, 0, 3050);
    cr_assert_lt(dp_ep_kv_estimate(st[0]), 0);
    free(st);
    pm_snapshot_free(s);
    dp_load_free(l);
}

/* A scrape that stays the newest for more than DP_LOAD_RING load messages
 * (a --scrape-interval above 16 load intervals, or an engine whose scrapes
 * fail until --metrics-stale-after): the base stays the tokens at that
 * scrape, so everything sent since still counts, however many messages
 * repeat it. */
Test(dp_load, kv_estimate_keeps_the_base_of_a_scrape_older_than_the_ring)
{
    dp_load *l = dp_load_new();
    pm_snapshot *s = fx_snapshot("m", 1);
    dp_ep **st = dp_load_apply_snapshot(l, s);
    uint64_t k;

    send_load(l, s, st, 0.25, 10000, 0, 0, 1000);
    for (k = 1; k <= 2 * DP_LOAD_RING; k++) {
        st[0]->inflight_tokens = 100 * k; /* 100 more tokens per load interval */
        send_load(l, s, st, 0.25, 10000, (double)(100 * k), 0, 1000 + 100 * k);
    }
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.25 + 100.0 * 2 * DP_LOAD_RING / 1e4, 1e-12,
                       "everything since the t=1000 scrape counts: %g", dp_ep_kv_estimate(st[0]));
    /* A fresh scrape (10 ms ago) saw it all: the engine's word again. */
    send_load(l, s, st, 0.6, 10000, 10, 0, 1000 + 100 * k);
    cr_assert_float_eq(dp_ep_kv_estimate(st[0]), 0.6, 1e-12);
    free(st);
    pm_snapshot_free(s);
    dp_load_free(l);
}
