/* Unit tests for dp_retry_queue on a real gw_loop: the backoff sequence and
 * its cap, the size bound (a full queue refuses at once), the worker bound
 * (ready items wait in FIFO order), and cancel in every state. */
#include <criterion/criterion.h>

#include "dp_retry_queue.h"
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
TestSuite(dp_retry_queue, .init = setup, .fini = teardown, .timeout = 10);

Test(dp_retry_queue, backoff_doubles_up_to_the_cap)
{
    dp_rq_cfg c = {.init_ms = 500, .max_ms = 5000};

    cr_assert_eq(dp_rq_delay_ms(&c, 0), 500);
    cr_assert_eq(dp_rq_delay_ms(&c, 1), 1000);
    cr_assert_eq(dp_rq_delay_ms(&c, 2), 2000);
    cr_assert_eq(dp_rq_delay_ms(&c, 3), 4000);
    cr_assert_eq(dp_rq_delay_ms(&c, 4), 5000);
    cr_assert_eq(dp_rq_delay_ms(&c, 1000000), 5000, "no overflow on huge attempts");
    c.init_ms = c.max_ms = 7;
    cr_assert_eq(dp_rq_delay_ms(&c, 3), 7);
}

typedef struct rec {
    int order[8];
    int n;
    int stop_after;
    bool done_on_fire; /* the retry "finishes" at once: frees its slot */
} rec;

typedef struct item {
    dp_rq_item it;
    int id;
    rec *r;
} item;

static void
fired(dp_rq_item *it, void *arg)
{
    item *x = arg;

    cr_assert_eq(it, &x->it);
    cr_assert_eq(it->state, DP_RQ_RUNNING);
    x->r->order[x->r->n++] = x->id;
    if (x->r->done_on_fire)
        dp_rq_cancel(it);
    if (x->r->n == x->r->stop_after)
        gw_loop_stop(loop);
}

static void
stop_loop(gw_loop *l, void *arg)
{
    (void)arg;
    gw_loop_stop(l);
}

Test(dp_retry_queue, full_queue_refuses_at_once)
{
    dp_rq_cfg c = {.size = 2, .workers = 1, .init_ms = 1000, .max_ms = 1000};
    dp_rq *q = dp_rq_new(loop, &c);
    rec r = {0};
    item a = {.id = 1, .r = &r}, b = {.id = 2, .r = &r}, d = {.id = 3, .r = &r};

    cr_assert(dp_rq_push(q, &a.it, 1000, fired, &a));
    cr_assert(dp_rq_push(q, &b.it, 1000, fired, &b));
    cr_assert_not(dp_rq_push(q, &d.it, 1000, fired, &d), "the third is refused");
    cr_assert_eq(d.it.state, DP_RQ_IDLE);
    cr_assert_not(dp_rq_push(q, &a.it, 10, fired, &a), "an item already queued is refused");
    cr_assert_eq(dp_rq_waiting(q), 2);
    cr_assert_eq(dp_rq_get_stats(q)->overflows, 2);
    cr_assert_eq(dp_rq_get_stats(q)->pushed, 2);
    dp_rq_cancel(&a.it);
    cr_assert_eq(dp_rq_waiting(q), 1, "a cancel frees its place");
    cr_assert(dp_rq_push(q, &d.it, 1000, fired, &d));
    dp_rq_cancel(&b.it);
    dp_rq_cancel(&d.it);
    dp_rq_cancel(&d.it); /* idle: no-op */
    cr_assert_eq(dp_rq_waiting(q), 0);
    cr_assert_eq(r.n, 0, "nothing fired");
    dp_rq_free(q);
}

Test(dp_retry_queue, workers_bound_running_retries_fifo)
{
    dp_rq_cfg c = {.size = 10, .workers = 2, .init_ms = 1, .max_ms = 10};
    dp_rq *q = dp_rq_new(loop, &c);
    rec r = {.stop_after = 2};
    item x[4];
    gw_timer *guard = gw_timer_new(loop, stop_loop, NULL);

    for (int i = 0; i < 4; i++) {
        x[i] = (item){.id = i, .r = &r};
        /* Backoffs end in order 0, 1, 2, 3. */
        cr_assert(dp_rq_push(q, &x[i].it, (uint64_t)(5 + 5 * i), fired, &x[i]));
    }
    gw_timer_start(guard, 2000);
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(r.n, 2);
    /* Let the other two backoffs end: they must wait for a worker. */
    r.stop_after = 100;
    gw_timer_start(guard, 60);
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(r.n, 2, "two workers: the other two wait");
    cr_assert_eq(dp_rq_running(q), 2);
    cr_assert_eq(dp_rq_waiting(q), 2);
    cr_assert_eq(x[2].it.state, DP_RQ_READY);
    dp_rq_cancel(&x[0].it); /* a retry ends: the oldest ready one runs */
    cr_assert_eq(r.n, 3);
    cr_assert_eq(r.order[2], 2);
    dp_rq_cancel(&x[3].it); /* a ready one leaves (its client went away) */
    cr_assert_eq(dp_rq_waiting(q), 0);
    dp_rq_cancel(&x[1].it);
    cr_assert_eq(r.n, 3, "the cancelled one never fires");
    dp_rq_cancel(&x[2].it);
    cr_assert_eq(dp_rq_running(q), 0);
    cr_assert_eq(dp_rq_get_stats(q)->fired, 3);
    cr_assert_eq(r.order[0], 0);
    cr_assert_eq(r.order[1], 1);
    gw_timer_free(guard);
    dp_rq_free(q);
}

Test(dp_retry_queue, a_retry_that_ends_in_its_fire_frees_the_slot)
{
    dp_rq_cfg c = {.size = 10, .workers = 1, .init_ms = 1, .max_ms = 10};
    dp_rq *q = dp_rq_new(loop, &c);
    rec r = {.stop_after = 3, .done_on_fire = true};
    item x[3];

    for (int i = 0; i < 3; i++) {
        x[i] = (item){.id = i, .r = &r};
        cr_assert(dp_rq_push(q, &x[i].it, 2, fired, &x[i]));
    }
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    cr_assert_eq(r.n, 3, "one worker served all three in turn");
    cr_assert_eq(dp_rq_running(q), 0);
    cr_assert_eq(dp_rq_waiting(q), 0);
    dp_rq_free(q);
}
