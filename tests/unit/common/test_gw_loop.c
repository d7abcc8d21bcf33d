/* Unit tests for gw_loop: timer order and re-arming, fd watchers, freeing a
 * watcher from inside a dispatch batch, signals through signalfd, and the
 * cross-thread wakeup. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "gw/gw_loop.h"
#include "ut_leak.h"

static gw_loop *loop;

static void
setup(void)
{
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
}

static void
teardown(void)
{
    gw_loop_free(loop);
    ut_leak_check();
}
TestSuite(gw_loop, .init = setup, .fini = teardown, .timeout = 10);

static char order[16];
static int n_order;

static void
record(gw_loop *l, void *arg)
{
    order[n_order++] = *(const char *)arg;
    if (n_order == 3)
        gw_loop_stop(l);
}

Test(gw_loop, timers_fire_in_due_order_and_restart_reschedules)
{
    static const char a = 'a', b = 'b', c = 'c';
    gw_timer *ta = gw_timer_new(loop, record, (void *)&a);
    gw_timer *tb = gw_timer_new(loop, record, (void *)&b);
    gw_timer *tc = gw_timer_new(loop, record, (void *)&c);

    gw_timer_start(ta, 30);
    gw_timer_start(tb, 10);
    gw_timer_start(tc, 5);
    gw_timer_start(tc, 50); /* re-arming moves it last */
    cr_assert(gw_timer_is_active(tc));
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(n_order, 3);
    cr_assert_eq(order[0], 'b');
    cr_assert_eq(order[1], 'a');
    cr_assert_eq(order[2], 'c');
    cr_assert_not(gw_timer_is_active(ta), "a fired timer is no longer armed");
    gw_timer_free(ta);
    gw_timer_free(tb);
    gw_timer_free(tc);
}

static void
stop_loop(gw_loop *l, void *arg)
{
    (void)arg;
    gw_loop_stop(l);
}

Test(gw_loop, stopped_timer_never_fires)
{
    static const char a = 'a';
    gw_timer *t = gw_timer_new(loop, record, (void *)&a);
    gw_timer *stop = gw_timer_new(loop, stop_loop, NULL);

    n_order = 0;
    gw_timer_start(t, 5);
    gw_timer_stop(t);
    gw_timer_start(stop, 30);
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(n_order, 0);
    gw_timer_free(t);
    gw_timer_free(stop);
}

typedef struct pair_ctx {
    gw_io *a, *b;
    int calls;
} pair_ctx;

/* Both pipes are readable in the same epoll batch; the first callback frees
 * the other watcher, whose queued event must not be delivered. */
static void
on_pipe(gw_loop *l, int fd, uint32_t events, void *arg)
{
    pair_ctx *p = arg;
    char c;
    (void)events;

    p->calls++;
    cr_assert_eq(read(fd, &c, 1), 1);
    gw_io_free(p->a);
    gw_io_free(p->b);
    p->a = p->b = NULL;
    gw_loop_stop(l);
}

Test(gw_loop, freeing_a_watcher_inside_a_batch_is_safe)
{
    int p1[2], p2[2];
    pair_ctx p = {0};

    cr_assert_eq(pipe(p1), 0);
    cr_assert_eq(pipe(p2), 0);
    cr_assert_eq(write(p1[1], "x", 1), 1);
    cr_assert_eq(write(p2[1], "y", 1), 1);
    cr_assert_eq(gw_io_new(loop, p1[0], EPOLLIN, on_pipe, &p, &p.a), GW_OK);
    cr_assert_eq(gw_io_new(loop, p2[0], EPOLLIN, on_pipe, &p, &p.b), GW_OK);
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(p.calls, 1, "the freed watcher's event was delivered");
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
}

static int got_signal;

static void
on_sig(gw_loop *l, int signo, void *arg)
{
    (void)arg;
    got_signal = signo;
    gw_loop_stop(l);
}

Test(gw_loop, signals_arrive_on_the_loop)
{
    cr_assert_eq(gw_loop_on_signal(loop, SIGUSR1, on_sig, NULL), GW_OK);
    cr_assert_eq(raise(SIGUSR1), 0); /* thread-directed: Criterion may run threads */
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(got_signal, SIGUSR1);
}

static int woken;

static void
on_wake(gw_loop *l, void *arg)
{
    (void)arg;
    woken++;
    gw_loop_stop(l);
}

static void *
waker(void *arg)
{
    usleep(20000);
    gw_loop_wake(arg);
    return NULL;
}

Test(gw_loop, wake_from_another_thread_runs_the_callback_on_the_loop)
{
    pthread_t th;

    gw_loop_set_wake(loop, on_wake, NULL);
    cr_assert_eq(pthread_create(&th, NULL, waker, loop), 0);
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    pthread_join(th, NULL);
    cr_assert_eq(woken, 1);
}

Test(gw_loop, clocks_move_forward)
{
    uint64_t a = gw_now_us();
    usleep(2000);
    cr_assert_gt(gw_now_us(), a + 1500);
    cr_assert_gt(gw_wall_ms(), 1700000000000ull);
}
