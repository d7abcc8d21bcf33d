/* Unit tests for dp_quota: local windows (no Redis, and the split across
 * workers), and the Lua admission on a real redis-server forked on a free
 * port shared by two limiters (two workers): exact counts fleet-wide, no
 * quota consumed by a refusal, TPM settlement, rollback, a cancelled
 * admission, a flushed script cache, and Redis down then back. Skipped
 * without redis-server. */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "dp_quota.h"
#include "gw/gw_log.h"
#include "ut_leak.h"
#include "ut_redis.h"

static gw_loop *loop;
static ut_redis srv;
static dp_quota *qa, *qb;

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
    memset(&srv, 0, sizeof(srv));
    qa = qb = NULL;
}

static void
teardown(void)
{
    dp_quota_free(qa);
    dp_quota_free(qb);
    ut_redis_stop(&srv);
    gw_loop_free(loop);
    ut_leak_check();
}
TestSuite(dp_quota, .init = setup, .fini = teardown, .timeout = 60);

static dp_quota *
limiter(bool redis)
{
    dp_quota_cfg c = {.redis_host = redis ? "127.0.0.1" : "",
                      .redis_port = srv.port,
                      .timeout_ms = 1000,
                      .key_prefix = "t:rl"};
    return dp_quota_new(loop, &c);
}

static bool
is_up(void *arg)
{
    return dp_quota_redis_up(arg);
}

static dp_quota *
redis_limiter(void)
{
    dp_quota *q = limiter(true);
    dp_quota_need(q);
    cr_assert(ut_loop_until(loop, is_up, q, 5000), "limiter connects");
    return q;
}

static void
need_redis(void)
{
    if (!ut_redis_available())
        cr_skip_test("redis-server is not installed");
    cr_assert(ut_redis_start(&srv), "redis-server starts");
}

/* Windows are fixed: keep a test's steps inside one minute and one second. */
static void
away_from_boundaries(void)
{
    for (;;) {
        uint64_t now = gw_wall_ms();
        if (now % 60000 < 57000 && now % 1000 < 600)
            return;
        usleep(20000);
    }
}

typedef struct waiter {
    bool done;
    dp_quota_grant g;
} waiter;

static void
on_done(dp_quota_grant *g, void *arg)
{
    waiter *w = arg;
    w->g = *g;
    w->done = true;
}

static bool
waiter_done(void *arg)
{
    return ((waiter *)arg)->done;
}

/* Admits and waits for the answer; the caller finishes the grant. */
static dp_quota_grant
admit(dp_quota *q, const dp_quota_ask *ask)
{
    waiter w = {0};
    dp_quota_ticket *t = dp_quota_admit(q, ask, &w.g, on_done, &w);

    if (t != NULL)
        cr_assert(ut_loop_until(loop, waiter_done, &w, 5000), "admission answered");
    return w.g;
}

static long long
redis_get(const char *key_fmt, long long window)
{
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    redisReply *r;
    long long v = -1;

    cr_assert(c != NULL && c->err == 0);
    r = redisCommand(c, key_fmt, window);
    if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    else if (r != NULL && r->type == REDIS_REPLY_NIL)
        v = 0;
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static void
redis_do(const char *cmd)
{
    redisContext *c = redisConnect("127.0.0.1", srv.port);
    cr_assert(c != NULL && c->err == 0);
    freeReplyObject(redisCommand(c, cmd));
    redisFree(c);
}

static const dp_quota_ask alice = {.user = "alice", .rpm = 5, .tpm = 0, .tokens = 10};

Test(dp_quota, nothing_to_count_is_decided_at_once_and_holds_nothing)
{
    dp_quota_ask ask = {.user = "u", .model = "m"}; /* no limits */
    dp_quota_grant g;

    qa = limiter(false);
    memset(&g, 0xff, sizeof(g));
    cr_assert_null(dp_quota_admit(qa, &ask, &g, on_done, NULL));
    cr_assert_eq(g.verdict, DP_QUOTA_OK);
    cr_assert_not(g.counted_user);
    cr_assert_null(g.rpm_key);
    cr_assert_not(dp_quota_degraded(qa), "no Redis configured is not degraded");
}

Test(dp_quota, local_windows_count_and_split_limits_across_workers)
{
    dp_quota_grant g[8];
    int ok = 0;

    qa = limiter(false);
    away_from_boundaries();
    for (int i = 0; i < 7; i++) {
        g[i] = admit(qa, &alice);
        cr_assert(g[i].local);
        ok += g[i].verdict == DP_QUOTA_OK;
    }
    cr_assert_eq(ok, 5, "rpm 5 on one worker");
    cr_assert_eq(g[6].verdict, DP_QUOTA_RPM);
    cr_assert_eq(g[6].rpm_count, 5);
    cr_assert_null(g[6].rpm_key, "a refusal holds nothing");
    /* A rollback gives its request back. */
    dp_quota_rollback(qa, &g[0]);
    g[7] = admit(qa, &alice);
    cr_assert_eq(g[7].verdict, DP_QUOTA_OK);
    for (int i = 1; i < 8; i++)
        dp_quota_grant_fini(&g[i]);

    /* Three live workers: each admits ceil(5 / 3) = 2 of another user. */
    dp_quota_set_workers(qa, 3);
    {
        dp_quota_ask bob = alice;
        bob.user = "bob";
        dp_quota_grant a = admit(qa, &bob), b = admit(qa, &bob), c = admit(qa, &bob);
        cr_assert_eq(a.verdict, DP_QUOTA_OK);
        cr_assert_eq(b.verdict, DP_QUOTA_OK);
        cr_assert_eq(c.verdict, DP_QUOTA_RPM);
        cr_assert_eq(c.rpm_limit, 2);
        dp_quota_grant_fini(&a);
        dp_quota_grant_fini(&b);
    }
}

Test(dp_quota, two_workers_on_redis_admit_exactly_the_limit)
{
    int ok = 0;
    dp_quota_grant g[12];

    need_redis();
    qa = redis_limiter();
    qb = redis_limiter();
    away_from_boundaries();
    for (int i = 0; i < 12; i++) {
        g[i] = admit(i % 2 ? qb : qa, &alice);
        cr_assert_not(g[i].local);
        ok += g[i].verdict == DP_QUOTA_OK;
    }
    cr_assert_eq(ok, 5, "rpm 5 fleet-wide, not per worker");
    cr_assert_eq(redis_get("GET t:rl:u:alice:rpm:%lld", (long long)(gw_wall_ms() / 60000)), 5,
                 "refusals consumed nothing");
    cr_assert_eq(g[11].verdict, DP_QUOTA_RPM);
    cr_assert(g[11].user_reset_ms > 0 && g[11].user_reset_ms <= 60000);
    for (int i = 0; i < 12; i++)
        dp_quota_grant_fini(&g[i]);
}

Test(dp_quota, tpm_reserves_then_settles_to_real_usage)
{
    dp_quota_ask ask = {.user = "carol", .tpm = 100, .tokens = 60};
    dp_quota_grant a, b, c;
    long long minute;

    need_redis();
    qa = redis_limiter();
    away_from_boundaries();
    minute = (long long)(gw_wall_ms() / 60000);
    a = admit(qa, &ask);
    cr_assert_eq(a.verdict, DP_QUOTA_OK, "an empty window admits");
    cr_assert_eq(a.tpm_count, 60);
    b = admit(qa, &ask);
    cr_assert_eq(b.verdict, DP_QUOTA_TPM, "60 + 60 > 100");
    dp_quota_settle(qa, &a, 15); /* the engine used 15 */
    ut_loop_for(loop, 50);
    cr_assert_eq(redis_get("GET t:rl:u:carol:tpm:%lld", minute), 15);
    c = admit(qa, &ask);
    cr_assert_eq(c.verdict, DP_QUOTA_OK, "15 + 60 <= 100");
    dp_quota_settle(qa, &c, -1); /* usage unknown: the reservation stands */
    ut_loop_for(loop, 50);
    cr_assert_eq(redis_get("GET t:rl:u:carol:tpm:%lld", minute), 75);
    dp_quota_grant_fini(&b);
}

Test(dp_quota, model_rps_is_per_profile_and_rolls_back)
{
    dp_quota_ask def = {.model = "m", .profile = NULL, .rps = 2};
    dp_quota_ask batch = {.model = "m", .profile = "batch", .rps = 1};
    dp_quota_grant a, b, c, d;
    long long sec;

    need_redis();
    qa = redis_limiter();
    away_from_boundaries();
    sec = (long long)(gw_wall_ms() / 1000);
    a = admit(qa, &def);
    b = admit(qa, &def);
    c = admit(qa, &def);
    d = admit(qa, &batch);
    cr_assert_eq(a.verdict, DP_QUOTA_OK);
    cr_assert_eq(b.verdict, DP_QUOTA_OK);
    cr_assert_eq(c.verdict, DP_QUOTA_RPS);
    cr_assert_eq(d.verdict, DP_QUOTA_OK, "the batch profile has its own counter");
    cr_assert_eq(redis_get("GET t:rl:m:m|default:rps:%lld", sec), 2, "the refusal left no trace");
    dp_quota_rollback(qa, &b); /* routing failed after admission */
    ut_loop_for(loop, 50);
    cr_assert_eq(redis_get("GET t:rl:m:m|default:rps:%lld", sec), 1);
    dp_quota_grant_fini(&a);
    dp_quota_grant_fini(&c);
    dp_quota_grant_fini(&d);
}

Test(dp_quota, a_cancelled_admission_gives_back_what_it_took)
{
    waiter w = {0};
    dp_quota_ticket *t;
    long long minute;

    need_redis();
    qa = redis_limiter();
    away_from_boundaries();
    minute = (long long)(gw_wall_ms() / 60000);
    t = dp_quota_admit(qa, &alice, &w.g, on_done, &w);
    cr_assert_not_null(t, "Redis decides asynchronously");
    dp_quota_cancel(t);
    ut_loop_for(loop, 100);
    cr_assert_not(w.done, "no callback after cancel");
    cr_assert_eq(redis_get("GET t:rl:u:alice:rpm:%lld", minute), 0);
}

Test(dp_quota, a_flushed_script_cache_is_reloaded)
{
    dp_quota_grant g;

    need_redis();
    qa = redis_limiter();
    redis_do("SCRIPT FLUSH");
    g = admit(qa, &alice);
    cr_assert_eq(g.verdict, DP_QUOTA_OK);
    cr_assert_not(g.local, "EVAL after NOSCRIPT, still on Redis");
    dp_quota_grant_fini(&g);
}

static bool
is_degraded(void *arg)
{
    return dp_quota_degraded(arg);
}

Test(dp_quota, redis_down_means_local_windows_and_back_when_it_returns)
{
    dp_quota_grant g;

    need_redis();
    qa = redis_limiter();
    ut_redis_stop(&srv);
    g = admit(qa, &alice);
    cr_assert_eq(g.verdict, DP_QUOTA_OK, "requests keep flowing");
    cr_assert(g.local);
    dp_quota_grant_fini(&g);
    cr_assert(ut_loop_until(loop, is_degraded, qa, 5000));
    cr_assert_gt(dp_quota_get_stats(qa)->local_decisions, 0);
    cr_assert(ut_redis_start(&srv), "redis-server restarts on its port");
    cr_assert(ut_loop_until(loop, is_up, qa, 10000), "the limiter reconnects");
    g = admit(qa, &alice);
    cr_assert_not(g.local);
    dp_quota_grant_fini(&g);
}
