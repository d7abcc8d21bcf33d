/* Unit tests for gw_redis against a real redis-server forked on a free port
 * (skipped when redis-server is missing): the handshake (PING, AUTH, a
 * wrong password), commands and error replies, the no-connection and
 * deadline paths (hiredis 0.14 has no async timeout: ours closes and
 * reconnects), reconnecting after a server restart, name resolution, and
 * gw_redis_free completing pending commands; ut_redis itself does not take
 * another process's listener for its server. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "gw/gw_redis.h"
#include "ut_leak.h"
#include "ut_redis.h"

static gw_loop *loop;
static ut_redis srv;
static gw_redis *r;
static int ups, downs;

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the worker does: a write to a closed socket */
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
    memset(&srv, 0, sizeof(srv));
    r = NULL;
    ups = downs = 0;
}

static void
teardown(void)
{
    gw_redis_free(r);
    ut_redis_stop(&srv);
    gw_loop_free(loop);
    ut_leak_check();
}
TestSuite(gw_redis, .init = setup, .fini = teardown, .timeout = 30);

static void
need_redis(void)
{
    if (!ut_redis_available())
        cr_skip_test("redis-server is not installed");
    cr_assert(ut_redis_start(&srv), "redis-server starts");
}

static void
on_state(gw_redis *c, bool up, void *arg)
{
    (void)c;
    (void)arg;
    if (up)
        ups++;
    else
        downs++;
}

static void
open_conn(const char *host, uint16_t port, const char *password)
{
    gw_redis_opts o = {.name = "test",
                       .host = host,
                       .port = port,
                       .password = password,
                       .connect_timeout_ms = 1000,
                       .backoff_min_ms = 20,
                       .backoff_max_ms = 100,
                       .on_state = on_state};
    cr_assert_eq(gw_redis_new(loop, &o, &r), GW_OK);
}

static bool
is_up(void *arg)
{
    (void)arg;
    return gw_redis_is_up(r);
}

static bool
is_down(void *arg)
{
    (void)arg;
    return !gw_redis_is_up(r);
}

typedef struct result {
    bool done;
    gw_err rc;
    int type;
    char str[128];
    long long integer;
} result;

static void
on_reply(gw_redis *c, gw_err rc, const struct redisReply *reply, void *arg)
{
    result *res = arg;
    (void)c;

    res->done = true;
    res->rc = rc;
    if (reply != NULL) {
        res->type = reply->type;
        res->integer = reply->integer;
        if (reply->str != NULL)
            snprintf(res->str, sizeof(res->str), "%.*s", (int)reply->len, reply->str);
    }
}

static bool
is_done(void *arg)
{
    return ((result *)arg)->done;
}

/* Runs <cmd> (space-separated words) and waits for its reply. */
static result
run(const char *cmd, uint64_t timeout_ms)
{
    char buf[256], *save = NULL;
    const char *argv[16];
    size_t lens[16];
    int argc = 0;
    result res = {0};

    snprintf(buf, sizeof(buf), "%s", cmd);
    for (char *w = strtok_r(buf, " ", &save); w != NULL && argc < 16;
         w = strtok_r(NULL, " ", &save)) {
        argv[argc] = w;
        lens[argc++] = strlen(w);
    }
    cr_assert_eq(gw_redis_command(r, argc, argv, lens, timeout_ms, on_reply, &res), GW_OK, "%s",
                 cmd);
    cr_assert(ut_loop_until(loop, is_done, &res, timeout_ms + 3000), "%s: no reply", cmd);
    return res;
}

Test(gw_redis, connects_runs_commands_and_translates_error_replies)
{
    result res;
    const char *argv[] = {"SET", "k", "v\0w"};
    size_t lens[] = {3, 1, 3};
    result set = {0};

    need_redis();
    open_conn("127.0.0.1", srv.port, NULL);
    cr_assert_not(gw_redis_is_up(r));
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    cr_assert_eq(ups, 1);
    cr_assert_eq(gw_redis_command(r, 3, argv, lens, 1000, on_reply, &set), GW_OK);
    cr_assert_eq(gw_redis_pending(r), 1);
    cr_assert(ut_loop_until(loop, is_done, &set, 3000));
    cr_assert_eq(set.rc, GW_OK);
    cr_assert_str_eq(set.str, "OK");
    res = run("STRLEN k", 1000);
    cr_assert_eq(res.integer, 3, "arguments are binary-safe");
    res = run("NOSUCHCOMMAND x", 1000);
    cr_assert_eq(res.rc, GW_EPROTO);
    cr_assert_eq(res.type, REDIS_REPLY_ERROR);
    cr_assert(strstr(res.str, "unknown command") != NULL, "%s", res.str);
    res = run("PING", 1000);
    cr_assert_eq(res.rc, GW_OK, "an error reply does not hurt the connection");
    cr_assert_eq(gw_redis_pending(r), 0);
    cr_assert_eq(downs, 0);
}

Test(gw_redis, refuses_commands_while_not_connected)
{
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    result res = {0};

    need_redis();
    open_conn("127.0.0.1", srv.port, NULL);
    cr_assert_eq(gw_redis_command(r, 1, argv, lens, 1000, on_reply, &res), GW_ECLOSED);
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    ut_loop_for(loop, 20);
    cr_assert_not(res.done, "a refused command's callback never runs");
}

Test(gw_redis, authenticates_and_reports_a_wrong_password)
{
    need_redis();
    ut_redis_stop(&srv);
    snprintf(srv.password, sizeof(srv.password), "s3cret");
    cr_assert(ut_redis_start(&srv));
    open_conn("127.0.0.1", srv.port, "s3cret");
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    cr_assert_str_eq(run("PING", 1000).str, "PONG");
    gw_redis_free(r);
    r = NULL;
    open_conn("127.0.0.1", srv.port, "wrong");
    ut_loop_for(loop, 400);
    cr_assert_not(gw_redis_is_up(r));
    cr_assert_eq(ups, 1, "never up with a wrong password");
    cr_assert_geq(downs, 2, "each refused attempt is reported, and retried");
}

Test(gw_redis, a_missed_deadline_closes_the_connection_and_it_comes_back)
{
    result res;

    need_redis();
    open_conn("127.0.0.1", srv.port, NULL);
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    /* BLPOP answers after 1 s; the deadline is 100 ms. */
    res = run("BLPOP nokey 1", 100);
    cr_assert_eq(res.rc, GW_ETIMEDOUT);
    cr_assert_geq(downs, 1);
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000), "reconnects");
    cr_assert_eq(ups, 2);
    cr_assert_str_eq(run("PING", 1000).str, "PONG");
}

Test(gw_redis, reconnects_after_the_server_restarts)
{
    const char *argv[] = {"BLPOP", "nokey", "5"};
    size_t lens[] = {5, 5, 1};
    result pending = {0};

    need_redis();
    open_conn("127.0.0.1", srv.port, NULL);
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    cr_assert_eq(gw_redis_command(r, 3, argv, lens, 10000, on_reply, &pending), GW_OK);
    ut_loop_for(loop, 50);
    ut_redis_stop(&srv);
    cr_assert(ut_loop_until(loop, is_down, NULL, 3000));
    cr_assert(pending.done);
    cr_assert_eq(pending.rc, GW_ECLOSED, "a command in flight ends with the connection");
    ut_loop_for(loop, 300); /* a few failed attempts */
    cr_assert_geq(downs, 2);
    cr_assert(ut_redis_start(&srv), "same port again");
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    cr_assert_str_eq(run("PING", 1000).str, "PONG");
}

Test(gw_redis, resolves_a_host_name_without_blocking)
{
    need_redis();
    open_conn("localhost", srv.port, NULL);
    cr_assert(ut_loop_until(loop, is_up, NULL, 5000));
    cr_assert_str_eq(run("PING", 1000).str, "PONG");
}

Test(gw_redis, an_unreachable_server_is_retried_with_backoff)
{
    uint16_t port;

    need_redis();
    port = srv.port;
    ut_redis_stop(&srv); /* nothing listens there now */
    open_conn("127.0.0.1", port, NULL);
    ut_loop_for(loop, 500);
    cr_assert_eq(ups, 0);
    /* backoff 20, 40, 80, 100, 100...: about 6 attempts in 500 ms */
    cr_assert(downs >= 3 && downs <= 10, "%d attempts", downs);
    cr_assert_eq(gw_redis_new(loop, &(gw_redis_opts){.host = "", .port = 1}, &r), GW_EINVAL);
}

Test(gw_redis, free_completes_pending_commands)
{
    const char *argv[] = {"BLPOP", "nokey", "5"};
    size_t lens[] = {5, 5, 1};
    result a = {0}, b = {0};

    need_redis();
    open_conn("127.0.0.1", srv.port, NULL);
    cr_assert(ut_loop_until(loop, is_up, NULL, 3000));
    cr_assert_eq(gw_redis_command(r, 3, argv, lens, 10000, on_reply, &a), GW_OK);
    cr_assert_eq(gw_redis_command(r, 3, argv, lens, 10000, on_reply, &b), GW_OK);
    ut_loop_for(loop, 20);
    gw_redis_free(r);
    r = NULL;
    cr_assert(a.done && b.done);
    cr_assert_eq(a.rc, GW_ECLOSED);
    cr_assert_eq(b.rc, GW_ECLOSED);
    cr_assert_eq(downs, 0, "no state callback from free");
}

/* A port another process listens on (another suite's redis took it between
 * free_port and the spawn, or while a test restarts on the same port) is not
 * taken for our redis-server: that one cannot bind and exits. */
Test(gw_redis, a_port_another_process_listens_on_is_not_taken_for_our_server)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (!ut_redis_available())
        cr_skip_test("redis-server is not installed");
    cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 8) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    srv.port = ntohs(a.sin_port);
    cr_assert_not(ut_redis_start(&srv), "port %u is another process's", (unsigned)srv.port);
    cr_assert_eq(srv.pid, 0, "our redis-server exited");
    close(fd);
}
