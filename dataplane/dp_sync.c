/* dp_sync: snapshot/load subscriber and report publisher (see dp_sync.h).
 *
 * Acceptance rule: a snapshot is applied when its generation is newer than
 * the current one, or when it comes from another controller epoch (a
 * restarted controller seeds its generations from the wall clock, so they
 * keep increasing, but the epoch check also covers a clock step back).
 * Generation 0 means "the controller has nothing yet" and is never applied. */
#include "dp_sync.h"

#include <stdlib.h>

#include "gw/gw_bus.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_metrics.h"
#include "dp_mirror.h"
#include "dp_prefix.h"
#include "dp_quota.h"

struct dp_sync {
    dp_ctx *ctx;
    gw_bus *sub;
    gw_bus *req;
    gw_bus *push;
    gw_timer *report_timer;
    gw_timer *resync_timer;
    uint64_t seq;
    uint64_t last_req_ms;
    bool traffic_ignored; /* the "own --route-config wins" line was logged */
};

static void
ask_full_snapshot(dp_sync *s)
{
    pm_envelope env = {.v = PM_SCHEMA_MAJOR,
                       .kind = PM_KIND_SNAPSHOT_REQ,
                       .gen = s->ctx->snap ? dp_snap_gen(s->ctx->snap) : 0,
                       .sent_ms = gw_wall_ms()};
    gw_buf b;

    gw_buf_init(&b, 1024);
    if (pm_snapshot_req_encode(&env, &b) == GW_OK && gw_bus_send(s->req, 0, b.data, b.len) == GW_OK)
        s->last_req_ms = gw_now_ms();
    gw_buf_fini(&b);
}

/* The controller's route config and mirror (docs/traffic.md). The worker's
 * own --route-config wins (logged once); its own mirror file wins while it
 * exists (dp_mirror). */
static void
apply_traffic(dp_sync *s, dp_snap *snap, const pm_snapshot *pm)
{
    dp_ctx *ctx = s->ctx;

    if (ctx->traffic.policy != GW_ROUTE_OFF) {
        if (pm->traffic.policy != NULL && !s->traffic_ignored) {
            s->traffic_ignored = true;
            gw_log(GW_LOG_NOTICE, "DP-TRAFFIC",
                   "msg=\"this worker's own --route-config wins; the controller's route config "
                   "is ignored\"");
        }
    } else {
        dp_snap_set_traffic(
            snap,
            dp_traffic_from_snapshot(dp_snap_traffic_ref(ctx->snap), &pm->traffic,
                                     ctx->metrics ? ctx->metrics->traffic_snapshot_invalid : NULL));
    }
    if (ctx->mirror != NULL)
        dp_mirror_set_snapshot(ctx->mirror, pm->mirror.config_json);
}

static void
apply_snapshot(dp_sync *s, const void *p, size_t n)
{
    dp_ctx *ctx = s->ctx;
    pm_snapshot *pm = NULL;
    dp_snap *snap;
    gw_err rc = pm_snapshot_decode(p, n, &pm);

    if (rc != GW_OK) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "DP-SNAP-DECODE", "msg=\"%s\" bytes=%zu",
                           gw_strerror(rc), n);
        return;
    }
    if (pm->env.gen == 0 ||
        (ctx->snap != NULL && pm->env.epoch == dp_snap_pm(ctx->snap)->env.epoch &&
         pm->env.gen <= dp_snap_gen(ctx->snap))) {
        pm_snapshot_free(pm);
        return;
    }
    dp_ep **states = dp_load_apply_snapshot(ctx->load, pm);
    /* Before the previous snapshot goes: endpoints that left are still
     * alive, so the prefix index can free their slots. */
    if (ctx->prefix != NULL)
        dp_prefix_apply_snapshot(ctx->prefix, pm, states);
    gw_log(GW_LOG_NOTICE, "DP-SNAP-APPLY", "gen=%llu models=%u endpoints=%u",
           (unsigned long long)pm->env.gen, pm->n_models, pm->n_endpoints);
    snap = dp_snap_new(pm, states);
    apply_traffic(s, snap, pm);
    dp_ctx_set_snapshot(ctx, snap);
    gw_counter_inc(gw_metric_child0(ctx->metrics->snapshots));
}

static void
apply_load(dp_sync *s, const void *p, size_t n)
{
    dp_ctx *ctx = s->ctx;
    pm_load *l = NULL;

    if (pm_load_decode(p, n, &l) != GW_OK)
        return;
    /* The controller lists the workers it heard from recently: the local
     * rate-limit windows split limits by that count. */
    if (l->n_workers > 0)
        dp_quota_set_workers(ctx->quota, l->n_workers);
    if (ctx->snap == NULL || l->env.epoch != dp_snap_pm(ctx->snap)->env.epoch ||
        l->env.gen != dp_snap_gen(ctx->snap)) {
        /* A generation we don't hold: we missed a snapshot (or the
         * controller restarted). Ask, at most every 200 ms. */
        if (l->env.gen != 0 && gw_now_ms() - s->last_req_ms > 200)
            ask_full_snapshot(s);
    } else {
        dp_load_apply_fleet(ctx->load, l, dp_snap_pm(ctx->snap), ctx->snap_states, ctx->worker_id,
                            gw_now_ms());
    }
    pm_load_free(l);
}

static void
on_sub(gw_bus *bus, const void *data, size_t len, void *arg)
{
    const char *p = data;
    (void)bus;

    if (len < 1)
        return;
    if (p[0] == 'S')
        apply_snapshot(arg, p + 1, len - 1);
    else if (p[0] == 'L')
        apply_load(arg, p + 1, len - 1);
}

static void
on_rep(gw_bus *bus, const void *data, size_t len, void *arg)
{
    (void)bus;
    apply_snapshot(arg, data, len);
}

static void
on_report_timer(gw_loop *loop, void *arg)
{
    dp_sync *s = arg;
    dp_ctx *ctx = s->ctx;
    pm_report *r;
    gw_buf b;
    (void)loop;

    gw_timer_start(s->report_timer, ctx->cfg.report_interval_ms);
    if (ctx->snap == NULL)
        return;
    r = dp_load_report(ctx->load, dp_snap_pm(ctx->snap), ctx->snap_states, ctx->worker_id,
                       ++s->seq);
    r->env.sent_ms = gw_wall_ms();
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    /* A report that cannot be sent (no controller) is dropped: the next one
     * carries current values, and deltas lost meanwhile only blur EWMAs. */
    if (pm_report_encode(r, &b) == GW_OK && gw_bus_send(s->push, 0, b.data, b.len) != GW_OK)
        gw_log_ratelimited(GW_LOG_INFO, 1, "DP-REPORT-DROP", "seq=%llu",
                           (unsigned long long)s->seq);
    gw_buf_fini(&b);
    pm_report_free(r);
}

/* Until the first snapshot arrives, keep asking (the REQ socket re-sends on
 * its own, but a controller that restarts drops pending requests). */
static void
on_resync_timer(gw_loop *loop, void *arg)
{
    dp_sync *s = arg;
    (void)loop;

    if (s->ctx->snap == NULL) {
        ask_full_snapshot(s);
        gw_timer_start(s->resync_timer, 500);
    }
}

gw_err
dp_sync_start(dp_ctx *ctx, dp_sync **out)
{
    dp_sync *s = gw_xcalloc(1, sizeof(*s));
    gw_err rc;

    s->ctx = ctx;
    rc = gw_bus_dial(ctx->loop, GW_BUS_SUB, ctx->cfg.controller_pub, on_sub, s, &s->sub);
    if (rc == GW_OK)
        rc = gw_bus_dial(ctx->loop, GW_BUS_REQ, ctx->cfg.controller_rep, on_rep, s, &s->req);
    if (rc == GW_OK)
        rc = gw_bus_dial(ctx->loop, GW_BUS_PUSH, ctx->cfg.controller_pull, NULL, NULL, &s->push);
    if (rc != GW_OK) {
        dp_sync_free(s);
        return rc;
    }
    gw_bus_set_resend_ms(s->req, 1000);
    gw_bus_set_recv_max(s->sub, PM_MAX_MSG_BYTES + 1); /* + the topic byte */
    gw_bus_set_recv_max(s->req, PM_MAX_MSG_BYTES);
    s->report_timer = gw_timer_new(ctx->loop, on_report_timer, s);
    gw_timer_start(s->report_timer, ctx->cfg.report_interval_ms);
    s->resync_timer = gw_timer_new(ctx->loop, on_resync_timer, s);
    gw_timer_start(s->resync_timer, 0);
    *out = s;
    return GW_OK;
}

void
dp_sync_free(dp_sync *s)
{
    if (s == NULL)
        return;
    gw_timer_free(s->report_timer);
    gw_timer_free(s->resync_timer);
    gw_bus_free(s->sub);
    gw_bus_free(s->req);
    gw_bus_free(s->push);
    free(s);
}
