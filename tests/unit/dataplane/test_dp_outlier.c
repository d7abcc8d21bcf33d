/* Unit tests for dp_outlier: consecutive failures eject, the ejection grows
 * with repeated failed probes up to the cap, one success restores. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "dp_outlier.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_outlier, .fini = fini, .timeout = 10);

static const dp_outlier_cfg CFG = {.after = 3, .base_us = 1000, .max_us = 2500};

Test(dp_outlier, ejects_on_the_nth_consecutive_failure_only)
{
    dp_outlier o = {0};

    cr_assert_not(dp_outlier_failure(&o, &CFG, 100));
    cr_assert_not(dp_outlier_failure(&o, &CFG, 101));
    cr_assert_not(dp_outlier_ejected(&o, 102));
    cr_assert(dp_outlier_failure(&o, &CFG, 102));
    cr_assert(dp_outlier_ejected(&o, 102));
    cr_assert(dp_outlier_ejected(&o, 1101));
    cr_assert_not(dp_outlier_ejected(&o, 1102), "routable again after base_us");
}

Test(dp_outlier, a_success_in_between_resets_the_streak)
{
    dp_outlier o = {0};

    dp_outlier_failure(&o, &CFG, 1);
    dp_outlier_failure(&o, &CFG, 2);
    dp_outlier_success(&o);
    cr_assert_not(dp_outlier_failure(&o, &CFG, 3));
    cr_assert_not(dp_outlier_failure(&o, &CFG, 4));
    cr_assert_eq(o.streak, 2);
    cr_assert_not(dp_outlier_ejected(&o, 5));
}

Test(dp_outlier, a_failed_probe_ejects_at_once_for_longer_up_to_the_cap)
{
    dp_outlier o = {0};

    for (int i = 0; i < 3; i++)
        dp_outlier_failure(&o, &CFG, 0);
    cr_assert_eq(o.ejected_until, 1000);
    /* Failures of requests already in flight while ejected change nothing. */
    cr_assert_not(dp_outlier_failure(&o, &CFG, 500));
    cr_assert_eq(o.ejected_until, 1000);
    cr_assert(dp_outlier_failure(&o, &CFG, 1000), "the probe fails: ejected again");
    cr_assert_eq(o.ejected_until, 3000, "second ejection lasts 2 * base");
    cr_assert(dp_outlier_failure(&o, &CFG, 3000));
    cr_assert_eq(o.ejected_until, 5500, "third one is capped at max_us");
    dp_outlier_success(&o);
    cr_assert_eq(o.ejections, 0);
    cr_assert_not(dp_outlier_ejected(&o, 3001), "a success restores at once");
}

Test(dp_outlier, after_zero_never_ejects)
{
    dp_outlier_cfg off = {.after = 0, .base_us = 1000, .max_us = 1000};
    dp_outlier o = {0};

    for (int i = 0; i < 100; i++)
        cr_assert_not(dp_outlier_failure(&o, &off, (uint64_t)i));
    cr_assert_not(dp_outlier_ejected(&o, 50));
}

Test(dp_outlier, huge_base_does_not_overflow)
{
    dp_outlier_cfg big = {.after = 1, .base_us = UINT64_MAX / 2 + 1, .max_us = 7000};
    dp_outlier o = {0};

    cr_assert(dp_outlier_failure(&o, &big, 10));
    cr_assert(dp_outlier_failure(&o, &big, o.ejected_until));
    cr_assert_leq(o.ejected_until, 10 + 7000 + 7000);
}

Test(dp_outlier, after_an_ejection_one_probe_at_a_time)
{
    dp_outlier o = {0};

    cr_assert_not(dp_outlier_skip(&o, &CFG, 5, 0), "a healthy endpoint takes any load");
    for (int i = 0; i < 3; i++)
        dp_outlier_failure(&o, &CFG, 0);
    cr_assert(dp_outlier_skip(&o, &CFG, 0, 999), "ejected");
    cr_assert_not(dp_outlier_skip(&o, &CFG, 0, 1000), "ejection over: the probe may go");
    cr_assert(dp_outlier_skip(&o, &CFG, 1, 1000), "no second request while the probe runs");
    dp_outlier_success(&o);
    cr_assert_not(dp_outlier_skip(&o, &CFG, 1, 1001), "healthy again: no limit");
}
