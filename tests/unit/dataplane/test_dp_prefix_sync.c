/* Unit tests for dp_prefix_sync: simulated workers (each its own snapshot,
 * index and sync, on one loop) sharing a real redis-server forked on a free
 * port (skipped when redis-server is missing). An insert on one worker
 * reaches the others and not itself; a starting worker catches up from the
 * stream; Redis down means local-only routing and counted errors, and what
 * could not be published goes out once Redis is back; a dropped connection
 * resumes after the last id it read; malformed entries are skipped. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "dp_fixture.h"
#include "dp_prefix.h"
#include "dp_prefix_sync.h"
#include "dp_snap.h"
#include "ut_leak.h"
#include "ut_redis.h"

#define STREAM "test:prefix-sync"

typedef struct wk {
    dp_load *load;
    dp_snap *snap;
    dp_prefix *p;
    dp_prefix_sync *s;
    gw_metrics *reg;
    gw_metric_fam *errors, *blocks;
} wk;

static gw_loop *loop;
static ut_redis srv;
static wk A, B, C;

static void
wk_start(wk *w, uint64_t id)
{
    pm_snapshot *pm = fx_snapshot("m", 4);
    dp_ep **states;
    dp_prefix_cfg pc = {.block_size = 4, .capacity = 4096, .max_blocks = 64};
    dp_prefix_sync_cfg sc = {.host = "127.0.0.1",
                             .port = srv.port,
                             .stream = STREAM,
                             .maxlen = 1000,
                             .interval_ms = 5,
                             .timeout_ms = 1000,
                             .block_ms = 200,
                             .worker_id = id,
                             .batch_max = 16384};
    dp_prefix_sync_metrics m;

    w->load = dp_load_new();
    states = dp_load_apply_snapshot(w->load, pm);
    w->p = dp_prefix_new(&pc);
    dp_prefix_apply_snapshot(w->p, pm, states);
    w->snap = dp_snap_new(pm, states);
    w->reg = gw_metrics_new();
    cr_assert_eq(gw_metrics_counter(w->reg, "errors_total", "e", NULL, &w->errors), GW_OK);
    cr_assert_eq(gw_metrics_counter(w->reg, "blocks_total", "b",
                                    (const char *const[]){"direction", NULL}, &w->blocks),
                 GW_OK);
    m = (dp_prefix_sync_metrics){.errors = gw_metric_child0(w->errors),
                                 .sent = gw_metric_child(w->blocks, "sent"),
                                 .received = gw_metric_child(w->blocks, "received")};
    cr_assert_eq(dp_prefix_sync_new(loop, w->p, &sc, &m, &w->s), GW_OK);
}

static void
wk_stop(wk *w)
{
    if (w->load == NULL)
        return;
    dp_prefix_sync_free(w->s);
    dp_prefix_free(w->p);
    dp_snap_unref(w->snap);
    dp_load_free(w->load);
    gw_metrics_free(w->reg);
    memset(w, 0, sizeof(*w));
}

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
    memset(&srv, 0, sizeof(srv));
    memset(&A, 0, sizeof(A));
    memset(&B, 0, sizeof(B));
    memset(&C, 0, sizeof(C));
}

static void
teardown(void)
{
    wk_stop(&A);
    wk_stop(&B);
    wk_stop(&C);
    ut_redis_stop(&srv);
    gw_loop_free(loop);
    ut_leak_check();
}
TestSuite(dp_prefix_sync, .init = setup, .fini = teardown, .timeout = 60);

static void
need_redis(void)
{
    if (!ut_redis_available())
        cr_skip_test("redis-server is not installed");
    cr_assert(ut_redis_start(&srv), "redis-server starts");
}

static uint64_t P1[6], P2[6], P3[6];

static void
prompts(void)
{
    cr_assert_eq(dp_prefix_hash(0, 0, 4, "system: x\nuser: one two three", 24, P1, 6), 6);
    cr_assert_eq(dp_prefix_hash(0, 0, 4, "system: y\nuser: four five six", 24, P2, 6), 6);
    cr_assert_eq(dp_prefix_hash(0, 0, 4, "system: z\nuser: seven eight n", 24, P3, 6), 6);
}

static uint32_t
matched(wk *w, const uint64_t *h, uint32_t n, uint32_t ep)
{
    uint32_t cands[4] = {0, 1, 2, 3}, m[4];
    dp_prefix_match(w->p, h, n, dp_snap_states(w->snap), cands, 4, m);
    return m[ep];
}

static void
insert(wk *w, uint32_t ep, const uint64_t *h, uint32_t n)
{
    dp_prefix_insert(w->p, dp_snap_state(w->snap, ep), h, n);
}

static double
count(wk *w, const char *direction)
{
    return gw_metric_value(gw_metric_child(w->blocks, direction));
}

static bool
both_connected(void *arg)
{
    (void)arg;
    return dp_prefix_sync_connected(A.s) && dp_prefix_sync_connected(B.s) &&
           dp_prefix_sync_caught_up(A.s) && dp_prefix_sync_caught_up(B.s);
}

static bool
both_down(void *arg)
{
    (void)arg;
    return !dp_prefix_sync_connected(A.s) && !dp_prefix_sync_connected(B.s);
}

typedef struct want {
    wk *w;
    const uint64_t *h;
    uint32_t n, ep;
} want;

static bool
has(void *arg)
{
    want *x = arg;
    return matched(x->w, x->h, x->n, x->ep) == x->n;
}

/* Writes an entry as another worker would, with a synchronous client. */
static void
xadd_raw(const char *worker, const void *d, size_t dlen)
{
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    const char *argv[] = {"XADD", STREAM, "*", "w", worker, "d", d};
    size_t lens[] = {4, strlen(STREAM), 1, 1, strlen(worker), 1, dlen};
    redisReply *rep;

    cr_assert(c != NULL && c->err == 0);
    rep = redisCommandArgv(c, 7, argv, lens);
    cr_assert(rep != NULL && rep->type == REDIS_REPLY_STRING, "XADD");
    freeReplyObject(rep);
    redisFree(c);
}

Test(dp_prefix_sync, an_insert_on_one_worker_reaches_the_others_only)
{
    want w = {.w = &B, .h = P1, .n = 6, .ep = 1};

    need_redis();
    prompts();
    wk_start(&A, 0xa);
    wk_start(&B, 0xb);
    cr_assert(ut_loop_until(loop, both_connected, NULL, 5000));
    insert(&A, 1, P1, 6);
    cr_assert(ut_loop_until(loop, has, &w, 3000), "B learns A's blocks");
    cr_assert_eq(matched(&B, P1, 6, 0), 0, "for the endpoint A chose only");
    ut_loop_for(loop, 100);
    cr_assert_eq(count(&A, "sent"), 6);
    cr_assert_eq(count(&B, "received"), 6);
    cr_assert_eq(count(&A, "received"), 0, "a worker skips its own entries");
    /* The next turn publishes its new blocks only. */
    insert(&A, 1, P1, 6);
    ut_loop_for(loop, 50);
    cr_assert_eq(count(&A, "sent"), 6);
    /* And the other way round. */
    w = (want){.w = &A, .h = P2, .n = 4, .ep = 3};
    insert(&B, 3, P2, 4);
    cr_assert(ut_loop_until(loop, has, &w, 3000), "A learns B's blocks");
    cr_assert_eq(gw_metric_value(gw_metric_child0(A.errors)), 0);
}

Test(dp_prefix_sync, a_starting_worker_catches_up_from_the_stream)
{
    want w = {.w = &C, .h = P3, .n = 6, .ep = 2};

    need_redis();
    prompts();
    wk_start(&A, 0xa);
    wk_start(&B, 0xb);
    cr_assert(ut_loop_until(loop, both_connected, NULL, 5000));
    insert(&A, 0, P1, 6);
    insert(&A, 1, P2, 6);
    insert(&B, 2, P3, 6);
    ut_loop_for(loop, 100);
    wk_start(&C, 0xc);
    cr_assert(ut_loop_until(loop, has, &w, 3000));
    cr_assert_eq(matched(&C, P1, 6, 0), 6);
    cr_assert_eq(matched(&C, P2, 6, 1), 6);
    cr_assert_eq(count(&C, "received"), 18);
}

Test(dp_prefix_sync, redis_down_is_local_only_and_unpublished_blocks_go_out_when_back)
{
    want w = {.w = &B, .h = P2, .n = 6, .ep = 3};

    need_redis();
    prompts();
    wk_start(&A, 0xa);
    wk_start(&B, 0xb);
    cr_assert(ut_loop_until(loop, both_connected, NULL, 5000));
    ut_redis_stop(&srv);
    cr_assert(ut_loop_until(loop, both_down, NULL, 5000));
    insert(&A, 3, P2, 6); /* while Redis is down */
    cr_assert_eq(matched(&A, P2, 6, 3), 6, "routing goes on with local knowledge");
    ut_loop_for(loop, 200);
    cr_assert_eq(matched(&B, P2, 6, 3), 0);
    cr_assert_gt(gw_metric_value(gw_metric_child0(A.errors)), 0);
    cr_assert(ut_redis_start(&srv), "Redis is back (empty: no persistence)");
    cr_assert(ut_loop_until(loop, both_connected, NULL, 5000));
    insert(&A, 3, P2, 6); /* the next use publishes what could not be */
    cr_assert(ut_loop_until(loop, has, &w, 3000));
    cr_assert_eq(count(&A, "sent"), 6);
}

Test(dp_prefix_sync, a_dropped_connection_resumes_after_the_last_id_read)
{
    want w1 = {.w = &B, .h = P1, .n = 6, .ep = 0}, w2 = {.w = &B, .h = P2, .n = 5, .ep = 2};
    redisContext *c;
    redisReply *rep;
    gw_buf d;

    need_redis();
    prompts();
    wk_start(&A, 0xa);
    wk_start(&B, 0xb);
    cr_assert(ut_loop_until(loop, both_connected, NULL, 5000));
    insert(&A, 0, P1, 6);
    cr_assert(ut_loop_until(loop, has, &w1, 3000));
    /* Drop every client connection, and write an entry before the workers
     * reconnect: they must read it from where they stopped. */
    gw_buf_init(&d, 4096);
    cr_assert_eq(dp_prefix_delta_append(&d, "m|10.0.0.3:8000", P2, 5), GW_OK);
    c = redisConnect("127.0.0.1", srv.port);
    cr_assert(c != NULL && c->err == 0);
    rep = redisCommand(c, "CLIENT KILL TYPE normal SKIPME yes");
    cr_assert(rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 4, "killed %lld",
              rep ? rep->integer : -1);
    freeReplyObject(rep);
    redisFree(c);
    xadd_raw("00000000000000ff", d.data, d.len);
    gw_buf_fini(&d);
    cr_assert(ut_loop_until(loop, has, &w2, 5000), "the entry written meanwhile is read");
    cr_assert_eq(count(&B, "received"), 6 + 5, "nothing read twice");
}

Test(dp_prefix_sync, malformed_entries_are_skipped_and_counted)
{
    want w = {.w = &B, .h = P3, .n = 2, .ep = 1};
    gw_buf d;

    need_redis();
    prompts();
    wk_start(&B, 0xb);
    ut_loop_for(loop, 200);
    xadd_raw("00000000000000ff", "\x01garbage", 8);
    xadd_raw("00000000000000ff", "\x07", 1);
    gw_buf_init(&d, 4096);
    cr_assert_eq(dp_prefix_delta_append(&d, "m|10.0.0.2:8000", P3, 2), GW_OK);
    cr_assert_eq(dp_prefix_delta_append(&d, "other|10.0.0.2:8000", P3, 2), GW_OK);
    xadd_raw("00000000000000ff", d.data, d.len);
    gw_buf_fini(&d);
    cr_assert(ut_loop_until(loop, has, &w, 3000), "a good entry after bad ones is applied");
    cr_assert_eq(gw_metric_value(gw_metric_child0(B.errors)), 2);
    cr_assert_eq(count(&B, "received"), 2, "a record for an unknown model is ignored");
}
