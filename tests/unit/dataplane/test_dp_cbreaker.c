/* Unit tests for dp_cbreaker: the per-endpoint cap from the three flags and
 * the --max-parallel-retries slots. Routing around capped endpoints is
 * tested in test_dp_route.c, end to end in e2e/cases/endpoint_caps.sh. */
#include <criterion/criterion.h>

#include "dp_cbreaker.h"
#include "ut_leak.h"

TestSuite(dp_cbreaker, .fini = ut_leak_check, .timeout = 10);

Test(dp_cbreaker, cap_from_parallel_requests_connections_and_pending)
{
    cr_assert_eq(dp_cbreaker_cap(0, 0, 0), 0, "nothing set: unlimited");
    cr_assert_eq(dp_cbreaker_cap(0, 0, 50), 0, "pending alone: no connection cap, no queue");
    cr_assert_eq(dp_cbreaker_cap(0, 4, 0), 0, "connections alone: curl queues without limit");
    cr_assert_eq(dp_cbreaker_cap(0, 4, 3), 7, "connections + pending");
    cr_assert_eq(dp_cbreaker_cap(5, 4, 3), 5, "the smaller of the two");
    cr_assert_eq(dp_cbreaker_cap(100, 4, 3), 7);
    cr_assert_eq(dp_cbreaker_cap(9, 0, 0), 9);
    cr_assert_eq(dp_cbreaker_cap(0, 1000000, 1000000), 2000000, "no overflow at the flag maxima");
}

Test(dp_cbreaker, an_endpoint_is_open_at_its_cap)
{
    dp_ep ep = {.inflight = 2};

    cr_assert_not(dp_cbreaker_open(&ep, 0), "cap 0: never");
    cr_assert_not(dp_cbreaker_open(&ep, 3));
    cr_assert(dp_cbreaker_open(&ep, 2));
    cr_assert(dp_cbreaker_open(&ep, 1), "above the cap (the cap was lowered)");
}

Test(dp_cbreaker, retry_slots_are_taken_once_per_request_and_given_back)
{
    uint32_t inflight = 0;
    bool a = false, b = false, c = false;

    cr_assert(dp_cbreaker_retry_admit(&inflight, 2, &a));
    cr_assert(dp_cbreaker_retry_admit(&inflight, 2, &a), "a second retry of one request");
    cr_assert_eq(inflight, 1, "... takes no second slot");
    cr_assert(dp_cbreaker_retry_admit(&inflight, 2, &b));
    cr_assert_not(dp_cbreaker_retry_admit(&inflight, 2, &c), "both slots taken");
    cr_assert_not(c);
    dp_cbreaker_retry_release(&inflight, &c);
    cr_assert_eq(inflight, 2, "a request without a slot gives nothing back");
    dp_cbreaker_retry_release(&inflight, &a);
    dp_cbreaker_retry_release(&inflight, &a);
    cr_assert_eq(inflight, 1, "released once, however often called");
    cr_assert(dp_cbreaker_retry_admit(&inflight, 2, &c));
    cr_assert(dp_cbreaker_retry_admit(&inflight, 0, &a), "0: unlimited");
    cr_assert_eq(inflight, 3);
}
