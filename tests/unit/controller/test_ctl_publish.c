/* Unit tests for ctl_publish over nng inproc:// sockets on a real gw_loop
 * (no network): REP answers snapshot requests (gen 0 before the first
 * compile), PUB carries 'S' snapshots and 'L' load, PULL feeds reports into
 * ctl_load. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ctl_compile.h"
#include "ctl_load.h"
#include "ctl_metrics.h"
#include "ctl_publish.h"
#include "ctl_src_file.h"
#include "ctl_store.h"
#include "gw/gw_bus.h"
#include "gw/gw_loop.h"
#include "ut_leak.h"

TestSuite(ctl_publish, .fini = ut_leak_check, .timeout = 20);

typedef struct fx {
    gw_loop *loop;
    ctl_store *store;
    ctl_compile *compile;
    ctl_load *load;
    ctl_metrics *metrics;
    ctl_publish *pub;
    gw_bus *req, *sub, *push;
    gw_timer *guard;
    gw_timer *poll; /* waits for the controller to count a worker */
    bool timed_out;
    /* what the fake worker saw */
    pm_snapshot *rep_snap;
    pm_snapshot *sub_snap;
    pm_load *sub_load;
    char want; /* 'R' reply, 'S' snapshot, 'L' load, 'W' workers > 0 */
} fx;

static void
on_guard(gw_loop *loop, void *arg)
{
    ((fx *)arg)->timed_out = true;
    gw_loop_stop(loop);
}

static void
on_req_reply(gw_bus *bus, const void *data, size_t len, void *arg)
{
    fx *f = arg;
    (void)bus;

    pm_snapshot_free(f->rep_snap);
    f->rep_snap = NULL;
    cr_assert_eq(pm_snapshot_decode(data, len, &f->rep_snap), GW_OK);
    if (f->want == 'R')
        gw_loop_stop(f->loop);
}

static void
on_sub(gw_bus *bus, const void *data, size_t len, void *arg)
{
    fx *f = arg;
    const char *p = data;
    (void)bus;

    cr_assert(len > 1);
    if (p[0] == 'S') {
        pm_snapshot_free(f->sub_snap);
        f->sub_snap = NULL;
        cr_assert_eq(pm_snapshot_decode(p + 1, len - 1, &f->sub_snap), GW_OK);
    } else if (p[0] == 'L') {
        pm_load_free(f->sub_load);
        f->sub_load = NULL;
        cr_assert_eq(pm_load_decode(p + 1, len - 1, &f->sub_load), GW_OK);
    } else {
        cr_assert_fail("unknown topic %c", p[0]);
    }
    /* Load messages also follow every snapshot; only one that includes a
     * worker is the one the report test waits for. */
    if (f->want == p[0] && (p[0] == 'S' || f->sub_load->n_workers > 0))
        gw_loop_stop(f->loop);
}

/* Runs the loop until a callback stops it (or 2 s pass: a failure). */
static void
run_until(fx *f, char want)
{
    f->want = want;
    f->timed_out = false;
    gw_timer_start(f->guard, 2000);
    cr_assert_eq(gw_loop_run(f->loop), GW_OK);
    gw_timer_stop(f->guard);
    cr_assert(!f->timed_out, "timed out waiting for '%c'", want);
}

/* Runs the loop until <want> arrives or <ms> pass; true if it arrived. */
static bool
run_for(fx *f, char want, uint64_t ms)
{
    f->want = want;
    f->timed_out = false;
    gw_timer_start(f->guard, ms);
    cr_assert_eq(gw_loop_run(f->loop), GW_OK);
    gw_timer_stop(f->guard);
    return !f->timed_out;
}

/* Stops the loop once the controller counts a live worker. */
static void
on_poll_workers(gw_loop *loop, void *arg)
{
    fx *f = arg;

    if (ctl_load_workers(f->load) > 0)
        gw_loop_stop(loop);
    else
        gw_timer_start(f->poll, 5);
}

static void
fx_init(fx *f, const char *tag)
{
    char pub[64], rep[64], pull[64];
    ctl_publish_opts o = {
        .pub_url = pub, .rep_url = rep, .pull_url = pull, .load_interval_ms = 60000};

    memset(f, 0, sizeof(*f));
    snprintf(pub, sizeof(pub), "inproc://ctl-%s-pub", tag);
    snprintf(rep, sizeof(rep), "inproc://ctl-%s-rep", tag);
    snprintf(pull, sizeof(pull), "inproc://ctl-%s-pull", tag);
    cr_assert_eq(gw_loop_new(&f->loop), GW_OK);
    f->store = ctl_store_new();
    f->compile = ctl_compile_new(100, 5);
    f->load = ctl_load_new(3000);
    f->metrics = ctl_metrics_new("t");
    cr_assert_eq(ctl_publish_start(f->loop, &o, f->compile, f->load, f->metrics, &f->pub), GW_OK);
    cr_assert_eq(gw_bus_dial(f->loop, GW_BUS_REQ, rep, on_req_reply, f, &f->req), GW_OK);
    cr_assert_eq(gw_bus_dial(f->loop, GW_BUS_SUB, pub, on_sub, f, &f->sub), GW_OK);
    cr_assert_eq(gw_bus_dial(f->loop, GW_BUS_PUSH, pull, NULL, NULL, &f->push), GW_OK);
    f->guard = gw_timer_new(f->loop, on_guard, f);
    f->poll = gw_timer_new(f->loop, on_poll_workers, f);
}

static void
fx_fini(fx *f)
{
    gw_timer_free(f->guard);
    gw_timer_free(f->poll);
    gw_bus_free(f->req);
    gw_bus_free(f->sub);
    gw_bus_free(f->push);
    ctl_publish_free(f->pub);
    ctl_metrics_free(f->metrics);
    ctl_load_free(f->load);
    ctl_compile_free(f->compile);
    ctl_store_free(f->store);
    pm_snapshot_free(f->rep_snap);
    pm_snapshot_free(f->sub_snap);
    pm_load_free(f->sub_load);
    gw_loop_free(f->loop);
}

static void
on_spin(gw_loop *loop, void *arg)
{
    (void)arg;
    gw_loop_stop(loop);
}

/* Sends on <bus>, turning the loop for a few ms while the dial is still
 * connecting (gw_bus_send says GW_EAGAIN until a peer is there). */
static void
send_when_connected(fx *f, gw_bus *bus, const gw_buf *b)
{
    gw_timer *spin = gw_timer_new(f->loop, on_spin, NULL);
    gw_err rc = GW_EAGAIN;

    for (int i = 0; i < 400 && rc == GW_EAGAIN; i++) {
        rc = gw_bus_send(bus, 0, b->data, b->len);
        if (rc == GW_EAGAIN) {
            gw_timer_start(spin, 5);
            cr_assert_eq(gw_loop_run(f->loop), GW_OK);
        }
    }
    gw_timer_free(spin);
    cr_assert_eq(rc, GW_OK);
}

static void
send_snapshot_req(fx *f)
{
    pm_envelope env = {.kind = PM_KIND_SNAPSHOT_REQ};
    gw_buf b;

    gw_buf_init(&b, 1024);
    cr_assert_eq(pm_snapshot_req_encode(&env, &b), GW_OK);
    send_when_connected(f, f->req, &b);
    gw_buf_fini(&b);
}

static void
compile_yaml(fx *f, const char *yaml)
{
    pm_snapshot *set = NULL;
    char *why = NULL;
    bool changed = false;

    cr_assert_eq(ctl_src_file_parse(yaml, strlen(yaml), "t", &set, &why), GW_OK, "%s", why);
    ctl_store_replace(f->store, CTL_SRC_FILE, set);
    cr_assert_eq(ctl_compile_run(f->compile, f->store, 1, &changed), GW_OK);
    cr_assert(changed);
}

Test(ctl_publish, rep_answers_gen_zero_before_the_first_compile)
{
    fx f;

    fx_init(&f, "rep0");
    send_snapshot_req(&f);
    run_until(&f, 'R');
    cr_assert_eq(f.rep_snap->env.gen, 0, "gen 0 marks 'nothing yet'");
    cr_assert_eq(f.rep_snap->env.epoch, 5);
    cr_assert_eq(f.rep_snap->n_models, 0);
    cr_assert_eq(f.rep_snap->n_endpoints, 0);
    fx_fini(&f);
}

Test(ctl_publish, snapshots_go_out_on_pub_and_rep_and_reports_become_load)
{
    fx f;
    pm_ep_report rep_ep = {.id = 1, .inflight = 3, .inflight_tokens = 30};
    pm_report r = {.worker_id = 77, .seq = 1, .n_eps = 1, .eps = &rep_ep};
    gw_buf b;

    fx_init(&f, "flow");
    /* Let the SUB connection settle before publishing (PUB drops otherwise). */
    send_snapshot_req(&f);
    run_until(&f, 'R');

    compile_yaml(&f, "models: [{name: m, endpoints: ['h:1', 'h:2']}]\n");
    /* The REQ round trip does not prove the SUB pipe is up (a PUB drops
     * messages for subscribers still connecting, more so on a loaded CI
     * machine): publish again until one arrives, within 5 s. */
    bool got = false;
    for (int i = 0; i < 100 && !got; i++) {
        ctl_publish_snapshot(f.pub);
        got = run_for(&f, 'S', 50);
    }
    cr_assert(got, "timed out waiting for 'S'");
    cr_assert_eq(f.sub_snap->env.gen, 101);
    cr_assert_eq(f.sub_snap->n_endpoints, 2);

    send_snapshot_req(&f);
    run_until(&f, 'R');
    cr_assert_eq(f.rep_snap->env.gen, 101, "REP answers with the current snapshot");

    /* A worker report over PUSH -> PULL. */
    r.env.gen = 101;
    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(pm_report_encode(&r, &b), GW_OK);
    send_when_connected(&f, f.push, &b);
    gw_buf_fini(&b);
    gw_timer_start(f.poll, 1);
    run_until(&f, 0);
    cr_assert_eq(ctl_load_workers(f.load), 1);

    ctl_publish_load_tick(f.pub);
    run_until(&f, 'L');
    cr_assert_eq(f.sub_load->env.gen, 101);
    cr_assert_eq(f.sub_load->n_eps, 2);
    cr_assert_eq(f.sub_load->eps[0].inflight, 3);
    cr_assert_eq(f.sub_load->eps[0].inflight_tokens, 30);
    cr_assert_eq(f.sub_load->n_workers, 1);
    cr_assert_eq(f.sub_load->workers[0].worker_id, 77);
    cr_assert_eq(f.sub_load->workers[0].seq, 1);
    cr_assert_not_null(ctl_publish_last_load(f.pub));
    fx_fini(&f);
}
