/* Unit tests for dp_vtc: the per-user sliding token window behind
 * vtc-basic (window expiry, the active-user mean, settlement, bounds). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "dp_vtc.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_vtc, .fini = fini, .timeout = 10);

#define T0 1000000000ull /* an arbitrary monotonic start */

Test(dp_vtc, counts_a_user_over_the_window_and_forgets_old_buckets)
{
    dp_vtc *v = dp_vtc_new();
    uint64_t alice = dp_vtc_user("alice");
    double t, mean;

    dp_vtc_lookup(v, alice, T0, &t, &mean);
    cr_assert_eq(t, 0);
    cr_assert_eq(mean, 0);
    dp_vtc_charge(v, alice, 100, T0);
    dp_vtc_charge(v, alice, 50, T0 + 25000);
    dp_vtc_lookup(v, alice, T0 + 30000, &t, &mean);
    cr_assert_eq(t, 150);
    cr_assert_eq(mean, 150);
    /* 60 s later the first bucket has left the window. */
    dp_vtc_lookup(v, alice, T0 + DP_VTC_BUCKETS * DP_VTC_BUCKET_MS, &t, &mean);
    cr_assert_eq(t, 50);
    dp_vtc_charge(v, alice, 10, T0 + 70000);
    dp_vtc_lookup(v, alice, T0 + 70000, &t, &mean);
    cr_assert_eq(t, 60);
    dp_vtc_lookup(v, alice, T0 + 200000, &t, &mean);
    cr_assert_eq(t, 0);
    cr_assert_eq(mean, 0, "nobody is active any more");
    dp_vtc_free(v);
}

Test(dp_vtc, mean_is_over_users_active_in_the_window)
{
    dp_vtc *v = dp_vtc_new();
    uint64_t a = dp_vtc_user("a"), b = dp_vtc_user("b"), c = dp_vtc_user("c");
    double t, mean;

    dp_vtc_charge(v, a, 100, T0);
    dp_vtc_charge(v, b, 300, T0);
    dp_vtc_lookup(v, c, T0 + 1, &t, &mean);
    cr_assert_eq(t, 0);
    cr_assert_eq(mean, 200);
    dp_vtc_charge(v, c, 800, T0 + 30000);
    dp_vtc_lookup(v, a, T0 + 30000, &t, &mean);
    cr_assert_eq(mean, 400);
    /* a and b expire; c remains. */
    dp_vtc_lookup(v, a, T0 + 65000, &t, &mean);
    cr_assert_eq(t, 0);
    cr_assert_eq(mean, 800);
    dp_vtc_free(v);
}

Test(dp_vtc, settlement_may_refund_but_never_below_zero)
{
    dp_vtc *v = dp_vtc_new();
    uint64_t a = dp_vtc_user("a");
    double t, mean;

    dp_vtc_charge(v, a, 500, T0);
    dp_vtc_charge(v, a, -380, T0 + 10);
    dp_vtc_lookup(v, a, T0 + 20, &t, &mean);
    cr_assert_eq(t, 120);
    dp_vtc_charge(v, a, -1000, T0 + 30);
    dp_vtc_lookup(v, a, T0 + 40, &t, &mean);
    cr_assert_eq(t, 0);
    cr_assert_eq(mean, 0, "an emptied user is no longer active");
    dp_vtc_charge(v, dp_vtc_user("ghost"), -5, T0 + 40); /* unknown user: no entry made */
    dp_vtc_lookup(v, a, T0 + 50, &t, &mean);
    cr_assert_eq(mean, 0);
    dp_vtc_free(v);
}

Test(dp_vtc, table_is_bounded_and_reuses_expired_entries)
{
    dp_vtc *v = dp_vtc_new();
    char name[32];
    double t, mean;
    unsigned tracked = 0;

    for (unsigned i = 0; i < 2 * DP_VTC_USERS; i++) {
        snprintf(name, sizeof(name), "user-%u", i);
        dp_vtc_charge(v, dp_vtc_user(name), 10, T0);
    }
    for (unsigned i = 0; i < 2 * DP_VTC_USERS; i++) {
        snprintf(name, sizeof(name), "user-%u", i);
        dp_vtc_lookup(v, dp_vtc_user(name), T0, &t, &mean);
        tracked += t > 0;
    }
    cr_assert_leq(tracked, DP_VTC_USERS);
    cr_assert_geq(tracked, DP_VTC_USERS * 9 / 10, "tracked %u", tracked);
    cr_assert_eq(mean, 10);
    /* Once their windows expire, new users take the entries. */
    dp_vtc_charge(v, dp_vtc_user("late"), 7, T0 + 100000);
    dp_vtc_lookup(v, dp_vtc_user("late"), T0 + 100000, &t, &mean);
    cr_assert_eq(t, 7);
    cr_assert_eq(mean, 7);
    dp_vtc_free(v);
}
