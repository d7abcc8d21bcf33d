/* ctl_publish: nng PUB/REP/PULL for snapshots, load and reports (see
 * ctl_publish.h). Everything runs on the loop: gw_bus delivers received
 * messages through callbacks and every send is non-blocking, so a slow or
 * absent worker never stalls the controller (nng PUB drops for a peer whose
 * queue is full; the worker notices the generation gap on the next load
 * message and asks over REQ). */
#include "ctl_publish.h"

#include <stdbool.h>
#include <stdlib.h>

#include "gw/gw_buf.h"
#include "gw/gw_bus.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct ctl_publish {
    gw_loop *loop;
    ctl_compile *compile; /* borrowed */
    ctl_load *load;       /* borrowed */
    ctl_metrics *metrics; /* borrowed */
    gw_bus *pub, *rep, *pull;
    gw_timer *load_timer;
    uint64_t load_interval_ms;
    gw_buf snap_bytes; /* encoded current snapshot; empty before the first */
    pm_load *last_load;
    bool standby; /* not the leader: nothing is sent, REQs get no answer */
};

/* msgpack maps start with 0x80..0x8f (fixmap), 0xde or 0xdf. */
static bool
is_msgpack_map(const unsigned char *p, size_t n)
{
    return n > 0 && ((p[0] & 0xf0) == 0x80 || p[0] == 0xde || p[0] == 0xdf);
}

/* Skips one leading topic byte when the message does not start as a map. */
static void
strip_topic(const void **data, size_t *len)
{
    const unsigned char *p = *data;

    if (!is_msgpack_map(p, *len) && *len > 1 && is_msgpack_map(p + 1, *len - 1)) {
        *data = p + 1;
        *len -= 1;
    }
}

static void
on_rep(gw_bus *bus, const void *data, size_t len, void *arg)
{
    ctl_publish *p = arg;
    pm_envelope env;
    gw_err rc;

    if (p->standby) {
        /* A standby must not hand out its snapshot: the worker retries and
         * reaches the leader once the Service routes it there. */
        gw_log_ratelimited(GW_LOG_INFO, 1, "CTL-REP-STANDBY", "msg=\"standby: request ignored\"");
        return;
    }
    strip_topic(&data, &len);
    rc = pm_peek_envelope(data, len, &env);
    if (rc != GW_OK || env.kind != PM_KIND_SNAPSHOT_REQ) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-REP-BAD", "bytes=%zu err=%s kind=%d", len,
                           gw_strerror(rc), rc == GW_OK ? (int)env.kind : -1);
        return;
    }
    if (p->snap_bytes.len > 0) {
        rc = gw_bus_send(bus, 0, p->snap_bytes.data, p->snap_bytes.len);
    } else {
        /* Nothing compiled yet: an empty gen-0 snapshot says so. */
        pm_snapshot empty = {.env = {.v = PM_SCHEMA_MAJOR,
                                     .kind = PM_KIND_SNAPSHOT,
                                     .gen = 0,
                                     .epoch = ctl_compile_epoch(p->compile),
                                     .sent_ms = gw_wall_ms()}};
        gw_buf b;
        gw_buf_init(&b, PM_MAX_MSG_BYTES);
        rc = pm_snapshot_encode(&empty, &b);
        if (rc == GW_OK)
            rc = gw_bus_send(bus, 0, b.data, b.len);
        gw_buf_fini(&b);
    }
    if (rc != GW_OK)
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-REP-SEND", "err=%s", gw_strerror(rc));
    else
        gw_log(GW_LOG_DEBUG, "CTL-REP-SNAPSHOT", "gen=%llu",
               (unsigned long long)ctl_compile_gen(p->compile));
}

static void
on_pull(gw_bus *bus, const void *data, size_t len, void *arg)
{
    ctl_publish *p = arg;
    pm_report *r = NULL;
    gw_err rc;
    (void)bus;

    strip_topic(&data, &len);
    rc = pm_report_decode(data, len, &r);
    if (rc != GW_OK) {
        ctl_metrics_report_bad(p->metrics);
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-REPORT-BAD", "bytes=%zu err=%s", len,
                           gw_strerror(rc));
        return;
    }
    rc = ctl_load_report(p->load, r, gw_now_ms());
    if (rc == GW_EFULL)
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-REPORT-WORKERS",
                           "msg=\"too many workers; report ignored\" max=%u", PM_MAX_WORKERS);
    else if (rc == GW_OK)
        ctl_metrics_report(p->metrics);
    ctl_metrics_workers(p->metrics, ctl_load_workers(p->load));
    pm_report_free(r);
}

void
ctl_publish_load_tick(ctl_publish *p)
{
    const pm_snapshot *snap = ctl_compile_current(p->compile);
    unsigned dropped = ctl_load_expire(p->load, gw_now_ms());
    pm_load *ld = NULL;
    gw_buf b;
    gw_err rc;

    if (dropped > 0) {
        gw_log(GW_LOG_INFO, "CTL-WORKER-EXPIRE", "dropped=%u live=%u", dropped,
               ctl_load_workers(p->load));
        ctl_metrics_workers(p->metrics, ctl_load_workers(p->load));
    }
    if (snap == NULL)
        return; /* load refers to a generation; there is none yet */
    ctl_load_build(p->load, snap, gw_now_ms(), gw_wall_ms(), &ld);
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    rc = pm_load_encode(ld, &b);
    if (rc == GW_OK && !p->standby)
        rc = gw_bus_send(p->pub, 'L', b.data, b.len);
    if (rc != GW_OK && rc != GW_EAGAIN)
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-LOAD-SEND", "err=%s", gw_strerror(rc));
    gw_buf_fini(&b);
    pm_load_free(p->last_load);
    p->last_load = ld;
}

static void
on_load_timer(gw_loop *loop, void *arg)
{
    ctl_publish *p = arg;
    (void)loop;

    ctl_publish_load_tick(p);
    gw_timer_start(p->load_timer, p->load_interval_ms);
}

void
ctl_publish_snapshot(ctl_publish *p)
{
    const pm_snapshot *snap = ctl_compile_current(p->compile);
    gw_err rc;

    if (snap == NULL)
        return;
    gw_buf_reset(&p->snap_bytes);
    rc = pm_snapshot_encode(snap, &p->snap_bytes);
    if (rc != GW_OK) {
        /* Sizes are capped by the sources, so this is a broken invariant. */
        gw_log(GW_LOG_ALERT, "CTL-SNAP-ENCODE", "gen=%llu err=%s",
               (unsigned long long)snap->env.gen, gw_strerror(rc));
        gw_buf_reset(&p->snap_bytes);
        return;
    }
    if (p->standby)
        return; /* kept encoded for the moment this process leads */
    rc = gw_bus_send(p->pub, 'S', p->snap_bytes.data, p->snap_bytes.len);
    if (rc != GW_OK && rc != GW_EAGAIN)
        gw_log(GW_LOG_WARN, "CTL-SNAP-SEND", "gen=%llu err=%s", (unsigned long long)snap->env.gen,
               gw_strerror(rc));
    /* Follow with a load message right away so workers see the new
     * generation's endpoints with numbers without waiting for the tick. */
    ctl_publish_load_tick(p);
}

void
ctl_publish_set_standby(ctl_publish *p, bool standby)
{
    if (p->standby == standby)
        return;
    p->standby = standby;
    if (!standby)
        ctl_publish_snapshot(p); /* workers connected to us get it now */
}

const pm_load *
ctl_publish_last_load(const ctl_publish *p)
{
    return p->last_load;
}

gw_err
ctl_publish_start(gw_loop *loop, const ctl_publish_opts *o, ctl_compile *compile, ctl_load *load,
                  ctl_metrics *metrics, ctl_publish **out)
{
    ctl_publish *p = gw_xcalloc(1, sizeof(*p));

    p->loop = loop;
    p->compile = compile;
    p->load = load;
    p->metrics = metrics;
    p->load_interval_ms = o->load_interval_ms;
    gw_buf_init(&p->snap_bytes, PM_MAX_MSG_BYTES);
    if (gw_bus_listen(loop, GW_BUS_PUB, o->pub_url, NULL, NULL, &p->pub) != GW_OK ||
        gw_bus_listen(loop, GW_BUS_REP, o->rep_url, on_rep, p, &p->rep) != GW_OK ||
        gw_bus_listen(loop, GW_BUS_PULL, o->pull_url, on_pull, p, &p->pull) != GW_OK) {
        ctl_publish_free(p);
        return GW_EIO;
    }
    gw_bus_set_recv_max(p->pull, PM_MAX_MSG_BYTES + 1); /* + an optional topic byte */
    gw_bus_set_recv_max(p->rep, PM_MAX_MSG_BYTES + 1);
    p->load_timer = gw_timer_new(loop, on_load_timer, p);
    gw_timer_start(p->load_timer, p->load_interval_ms);
    *out = p;
    return GW_OK;
}

void
ctl_publish_free(ctl_publish *p)
{
    if (p == NULL)
        return;
    gw_timer_free(p->load_timer);
    gw_bus_free(p->pub);
    gw_bus_free(p->rep);
    gw_bus_free(p->pull);
    gw_buf_fini(&p->snap_bytes);
    pm_load_free(p->last_load);
    free(p);
}
