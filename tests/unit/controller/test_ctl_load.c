/* Unit tests for ctl_load: fleet-wide aggregation of worker reports. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ctl_load.h"
#include "ctl_set.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

TestSuite(ctl_load, .fini = ut_leak_check, .timeout = 10);

/* A snapshot with endpoints of the given ids (in order). */
static pm_snapshot *
snap_with(const uint32_t *ids, size_t n)
{
    pm_snapshot *s = ctl_set_new();

    s->env.gen = 42;
    s->env.epoch = 9;
    ctl_set_add_model(s)->name = gw_xstrdup("m");
    for (size_t i = 0; i < n; i++) {
        pm_endpoint *ep = ctl_set_add_endpoint(s);
        ep->id = ids[i];
        ep->model = gw_xstrdup("m");
        ep->pod = gw_xstrdup("p");
        ep->ip = gw_xstrdup("h");
        ep->port = (uint16_t)(i + 1);
    }
    return s;
}

typedef struct rep_ep {
    uint32_t id, inflight, completed;
    uint64_t tokens, lat_sum, ttft_sum, prompt, compl ;
} rep_ep;

static gw_err
report(ctl_load *l, uint64_t worker, uint64_t seq, const rep_ep *eps, size_t n, uint64_t now)
{
    pm_ep_report r_eps[8];
    pm_report r = {.worker_id = worker, .seq = seq, .n_eps = (uint32_t)n, .eps = r_eps};

    for (size_t i = 0; i < n; i++)
        r_eps[i] = (pm_ep_report){.id = eps[i].id,
                                  .inflight = eps[i].inflight,
                                  .inflight_tokens = eps[i].tokens,
                                  .completed = eps[i].completed,
                                  .latency_ms_sum = eps[i].lat_sum,
                                  .ttft_ms_sum = eps[i].ttft_sum,
                                  .prompt_tokens = eps[i].prompt,
                                  .completion_tokens = eps[i].compl };
    return ctl_load_report(l, &r, now);
}

static const pm_ep_load *
ep_of(const pm_load *ld, uint32_t id)
{
    for (uint32_t i = 0; i < ld->n_eps; i++) {
        if (ld->eps[i].id == id)
            return &ld->eps[i];
    }
    return NULL;
}

Test(ctl_load, inflight_is_summed_across_workers_latest_report_only)
{
    uint32_t ids[] = {1, 2, 3};
    pm_snapshot *s = snap_with(ids, 3);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 100, 1, (rep_ep[]){{.id = 1, .inflight = 5, .tokens = 50}}, 1, 0),
                 GW_OK);
    cr_assert_eq(report(l, 100, 2,
                        (rep_ep[]){{.id = 1, .inflight = 2, .tokens = 20},
                                   {.id = 2, .inflight = 1, .tokens = 7}},
                        2, 10),
                 GW_OK);
    cr_assert_eq(report(l, 200, 1, (rep_ep[]){{.id = 1, .inflight = 3, .tokens = 30}}, 1, 10),
                 GW_OK);
    ctl_load_build(l, s, 20, 999, &ld);
    cr_assert_eq(ld->env.gen, 42);
    cr_assert_eq(ld->env.epoch, 9);
    cr_assert_eq(ld->env.kind, PM_KIND_LOAD);
    cr_assert_eq(ld->env.sent_ms, 999);
    cr_assert_eq(ld->n_eps, 3);
    cr_assert_eq(ld->eps[0].id, 1, "in snapshot order");
    cr_assert_eq(ep_of(ld, 1)->inflight, 5, "2 from worker 100's latest + 3 from worker 200");
    cr_assert_eq(ep_of(ld, 1)->inflight_tokens, 50);
    cr_assert_eq(ep_of(ld, 2)->inflight, 1);
    cr_assert_eq(ep_of(ld, 3)->inflight, 0);
    cr_assert(ep_of(ld, 3)->running < 0 && ep_of(ld, 3)->waiting < 0 && ep_of(ld, 3)->kv_usage < 0,
              "without a signal provider engine numbers are unknown");
    cr_assert(ep_of(ld, 3)->gpu_usage < 0 && ep_of(ld, 3)->tpot_ms < 0 &&
              ep_of(ld, 3)->metrics_age_ms < 0);
    cr_assert_eq(ld->n_workers, 2);
    cr_assert_eq(ld->workers[0].worker_id, 100);
    cr_assert_eq(ld->workers[0].seq, 2);
    cr_assert_eq(ld->workers[1].worker_id, 200);
    cr_assert_eq(ld->workers[1].seq, 1);
    cr_assert_eq(ctl_load_workers(l), 2);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, stale_and_duplicate_reports_are_ignored)
{
    uint32_t ids[] = {1};
    pm_snapshot *s = snap_with(ids, 1);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 1, 5, (rep_ep[]){{.id = 1, .inflight = 4}}, 1, 0), GW_OK);
    cr_assert_eq(report(l, 1, 5, (rep_ep[]){{.id = 1, .inflight = 9}}, 1, 0), GW_EAGAIN);
    cr_assert_eq(report(l, 1, 3, (rep_ep[]){{.id = 1, .inflight = 9}}, 1, 0), GW_EAGAIN);
    ctl_load_build(l, s, 0, 0, &ld);
    cr_assert_eq(ld->eps[0].inflight, 4);
    cr_assert_eq(ld->workers[0].seq, 5);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, silent_workers_expire_and_stop_counting)
{
    uint32_t ids[] = {1};
    pm_snapshot *s = snap_with(ids, 1);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 1, 1, (rep_ep[]){{.id = 1, .inflight = 4}}, 1, 1000), GW_OK);
    cr_assert_eq(report(l, 2, 1, (rep_ep[]){{.id = 1, .inflight = 6}}, 1, 2500), GW_OK);
    cr_assert_eq(ctl_load_expire(l, 4000), 0, "exactly at the expiry is still alive");
    cr_assert_eq(ctl_load_expire(l, 4001), 1);
    cr_assert_eq(ctl_load_workers(l), 1);
    ctl_load_build(l, s, 4001, 0, &ld);
    cr_assert_eq(ld->eps[0].inflight, 6);
    cr_assert_eq(ld->n_workers, 1);
    cr_assert_eq(ld->workers[0].worker_id, 2);
    pm_load_free(ld);
    cr_assert_eq(ctl_load_expire(l, 10000), 1);
    ctl_load_build(l, s, 10000, 0, &ld);
    cr_assert_eq(ld->eps[0].inflight, 0);
    cr_assert_eq(ld->n_workers, 0);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, latency_and_ttft_are_ewma_of_report_means)
{
    uint32_t ids[] = {1};
    pm_snapshot *s = snap_with(ids, 1);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    ctl_load_build(l, s, 0, 0, &ld);
    cr_assert(ld->eps[0].latency_ms < 0 && ld->eps[0].ttft_ms < 0, "unknown before samples");
    pm_load_free(ld);

    /* Mean 100 (first sample sets the average), then mean 200. */
    cr_assert_eq(report(l, 1, 1,
                        (rep_ep[]){{.id = 1, .completed = 2, .lat_sum = 200, .ttft_sum = 40}}, 1,
                        0),
                 GW_OK);
    cr_assert_eq(
        report(l, 2, 1, (rep_ep[]){{.id = 1, .completed = 1, .lat_sum = 200, .ttft_sum = 0}}, 1, 0),
        GW_OK);
    /* A report without completions is not a sample. */
    cr_assert_eq(report(l, 1, 2, (rep_ep[]){{.id = 1, .completed = 0, .lat_sum = 9999}}, 1, 0),
                 GW_OK);
    ctl_load_build(l, s, 0, 0, &ld);
    cr_assert_float_eq(ld->eps[0].latency_ms, 0.2 * 200 + 0.8 * 100, 1e-9);
    cr_assert_float_eq(ld->eps[0].ttft_ms, 20, 1e-9, "a zero ttft sum is not a sample");
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, tokens_per_second_comes_from_token_deltas_over_a_window)
{
    uint32_t ids[] = {1};
    pm_snapshot *s = snap_with(ids, 1);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 1, 1, (rep_ep[]){{.id = 1, .prompt = 100, .compl = 50}}, 1, 1000),
                 GW_OK);
    ctl_load_build(l, s, 1500, 0, &ld);
    cr_assert(ld->eps[0].tokens_per_s < 0, "unknown until a window closes");
    pm_load_free(ld);
    cr_assert_eq(report(l, 1, 2, (rep_ep[]){{.id = 1, .prompt = 200, .compl = 150}}, 1, 1800),
                 GW_OK);
    ctl_load_build(l, s, 3000, 0, &ld);
    cr_assert_float_eq(ld->eps[0].tokens_per_s, 500.0 / 2.0, 1e-9);
    pm_load_free(ld);
    /* An idle window reads 0, not unknown. */
    ctl_load_build(l, s, 4000, 0, &ld);
    cr_assert_float_eq(ld->eps[0].tokens_per_s, 0, 1e-9);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, ids_outside_the_snapshot_are_not_emitted)
{
    uint32_t ids[] = {7, 3};
    pm_snapshot *s = snap_with(ids, 2);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 1, 1,
                        (rep_ep[]){{.id = 99, .inflight = 1},
                                   {.id = 3, .inflight = 2},
                                   {.id = 7, .inflight = 4}},
                        3, 0),
                 GW_OK);
    ctl_load_build(l, s, 0, 0, &ld);
    cr_assert_eq(ld->n_eps, 2);
    cr_assert_eq(ld->eps[0].id, 7);
    cr_assert_eq(ld->eps[0].inflight, 4);
    cr_assert_eq(ld->eps[1].id, 3);
    cr_assert_eq(ld->eps[1].inflight, 2);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, no_snapshot_gives_an_empty_vector_with_workers)
{
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 5, 1, (rep_ep[]){{.id = 1, .inflight = 1}}, 1, 0), GW_OK);
    ctl_load_build(l, NULL, 0, 0, &ld);
    cr_assert_eq(ld->env.gen, 0);
    cr_assert_eq(ld->n_eps, 0);
    cr_assert_eq(ld->n_workers, 1);
    pm_load_free(ld);
    ctl_load_free(l);
}

Test(ctl_load, sums_saturate_instead_of_wrapping)
{
    uint32_t ids[] = {1};
    pm_snapshot *s = snap_with(ids, 1);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;

    cr_assert_eq(report(l, 1, 1, (rep_ep[]){{.id = 1, .inflight = UINT32_MAX - 1}}, 1, 0), GW_OK);
    cr_assert_eq(report(l, 2, 1, (rep_ep[]){{.id = 1, .inflight = 5}}, 1, 0), GW_OK);
    ctl_load_build(l, s, 0, 0, &ld);
    cr_assert_eq(ld->eps[0].inflight, UINT32_MAX);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

/* A fake signal provider: endpoint id 1 has full engine numbers, id 2 has
 * only some (the rest unknown), others none; it also records the calls. */
typedef struct fake_sig {
    int calls;
    uint64_t now;
} fake_sig;

static void
fake_signals(void *arg, const pm_endpoint *ep, uint64_t now_ms, ctl_signals *out)
{
    fake_sig *f = arg;

    f->calls++;
    f->now = now_ms;
    *out = CTL_SIGNALS_UNKNOWN;
    if (ep->id == 1)
        *out = (ctl_signals){.running = 3,
                             .waiting = 2,
                             .kv_usage = 0.5,
                             .gpu_usage = 0.25,
                             .ttft_ms = 80,
                             .tpot_ms = 9,
                             .tokens_per_s = 1234,
                             .age_ms = 40,
                             .kv_capacity = 40960};
    else if (ep->id == 2) {
        out->running = 1;
        out->age_ms = 5000;
        out->kv_usage = NAN; /* a provider bug must not leak onto the wire */
    }
}

Test(ctl_load, engine_signals_merge_over_report_values)
{
    uint32_t ids[] = {1, 2, 3};
    pm_snapshot *s = snap_with(ids, 3);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;
    fake_sig f = {0};

    /* Reports give every endpoint a latency, a TTFT and a token rate. */
    for (uint32_t id = 1; id <= 3; id++)
        cr_assert_eq(report(l, 7, id,
                            (rep_ep[]){{.id = id,
                                        .completed = 2,
                                        .lat_sum = 400,
                                        .ttft_sum = 100,
                                        .prompt = 500,
                                        .compl = 500}},
                            1, 0),
                     GW_OK);
    ctl_load_set_signals(l, fake_signals, &f);
    ctl_load_build(l, s, 2000, 0, &ld);
    cr_assert_eq(f.calls, 3, "one query per endpoint");
    cr_assert_eq(f.now, 2000);

    const pm_ep_load *e1 = ep_of(ld, 1), *e2 = ep_of(ld, 2), *e3 = ep_of(ld, 3);
    cr_assert_float_eq(e1->running, 3, 1e-9);
    cr_assert_float_eq(e1->waiting, 2, 1e-9);
    cr_assert_float_eq(e1->kv_usage, 0.5, 1e-9);
    cr_assert_float_eq(e1->gpu_usage, 0.25, 1e-9);
    cr_assert_float_eq(e1->tpot_ms, 9, 1e-9);
    cr_assert_float_eq(e1->metrics_age_ms, 40, 1e-9);
    cr_assert_float_eq(e1->kv_capacity, 40960, 1e-9);
    cr_assert_float_eq(e1->ttft_ms, 80, 1e-9, "the engine's TTFT wins over the reports'");
    cr_assert_float_eq(e1->tokens_per_s, 1234, 1e-9, "the engine's counters win");
    cr_assert_float_eq(e1->latency_ms, 200, 1e-9, "latency stays the reports' EWMA");

    cr_assert_float_eq(e2->running, 1, 1e-9);
    cr_assert(e2->waiting < 0 && e2->gpu_usage < 0 && e2->tpot_ms < 0 && e2->kv_capacity < 0);
    cr_assert(e2->kv_usage < 0, "NaN from a provider is published as unknown");
    cr_assert_float_eq(e2->metrics_age_ms, 5000, 1e-9);
    cr_assert_float_eq(e2->ttft_ms, 50, 1e-9, "unknown engine TTFT falls back to the reports'");
    cr_assert_float_eq(e2->tokens_per_s, 500, 1e-9, "and so does the token rate");

    cr_assert(e3->running < 0 && e3->metrics_age_ms < 0 && e3->kv_capacity < 0);
    cr_assert_float_eq(e3->ttft_ms, 50, 1e-9);

    /* Unhooked: engine numbers are unknown again. */
    pm_load_free(ld);
    ctl_load_set_signals(l, NULL, &f);
    ctl_load_build(l, s, 2100, 0, &ld);
    cr_assert_eq(f.calls, 3);
    cr_assert(ep_of(ld, 1)->running < 0);
    cr_assert_float_eq(ep_of(ld, 1)->ttft_ms, 50, 1e-9);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}

Test(ctl_load, merged_load_always_encodes)
{
    uint32_t ids[] = {1, 2};
    pm_snapshot *s = snap_with(ids, 2);
    ctl_load *l = ctl_load_new(3000);
    pm_load *ld = NULL;
    fake_sig f = {0};
    gw_buf b;

    ctl_load_set_signals(l, fake_signals, &f);
    ctl_load_build(l, s, 0, 0, &ld);
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    cr_assert_eq(pm_load_encode(ld, &b), GW_OK);
    gw_buf_fini(&b);
    pm_load_free(ld);
    ctl_load_free(l);
    pm_snapshot_free(s);
}
