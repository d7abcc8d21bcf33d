/* Unit tests for ctl_metrics: the readiness churn counter across snapshots
 * (seed 002's "pod readiness churn") and that the exposition carries it. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_metrics.h"
#include "ut_leak.h"

TestSuite(ctl_metrics, .fini = ut_leak_check, .timeout = 10);

/* <n> endpoints of model "m" (pods p0..), ready per <ready>, draining per
 * <draining> (NULL: none), all on the stack. */
#define EP(pod_, ready_, draining_)                                                                \
    (pm_endpoint)                                                                                  \
    {                                                                                              \
        .model = "m", .pod = (pod_), .ns = "models", .ip = "10.0.0.1", .port = 8000,               \
        .ready = (ready_), .draining = (draining_)                                                 \
    }

static char *
render(ctl_metrics *m)
{
    gw_buf out;
    char *s;

    gw_buf_init(&out, 1 << 20);
    cr_assert_eq(ctl_metrics_render(m, &out), GW_OK);
    s = strndup(out.data, out.len);
    gw_buf_fini(&out);
    return s;
}

/* The value of sample <line_prefix> in the exposition, -1 when absent. */
static double
sample(ctl_metrics *m, const char *line_prefix)
{
    char *page = render(m), *p = strstr(page, line_prefix);
    double v = p ? strtod(p + strlen(line_prefix), NULL) : -1;

    free(page);
    return v;
}

Test(ctl_metrics, readiness_flips_are_counted_by_model_and_direction)
{
    ctl_metrics *m = ctl_metrics_new("test");
    pm_endpoint gen1[] = {EP("p0", true, false), EP("p1", true, false)};
    pm_endpoint gen2[] = {EP("p0", false, false), EP("p1", true, false), EP("p2", false, false)};
    pm_endpoint gen3[] = {EP("p0", true, false), EP("p1", false, true), EP("p2", true, false)};
    pm_snapshot s = {.env = {.gen = 1}, .n_endpoints = 2, .endpoints = gen1};
    const char *to_ready =
        "llmgw_controller_endpoint_readiness_transitions_total{model=\"m\",to=\"ready\"} ";
    const char *to_not =
        "llmgw_controller_endpoint_readiness_transitions_total{model=\"m\",to=\"not_ready\"} ";

    ctl_metrics_snapshot(m, &s);
    cr_assert_eq(sample(m, to_ready), -1, "the first snapshot is no churn");
    s = (pm_snapshot){.env = {.gen = 2}, .n_endpoints = 3, .endpoints = gen2};
    ctl_metrics_snapshot(m, &s);
    cr_assert_eq(sample(m, to_not), 1, "p0 went not ready; p2 is new, not a flip");
    cr_assert_eq(sample(m, to_ready), -1);
    s = (pm_snapshot){.env = {.gen = 3}, .n_endpoints = 3, .endpoints = gen3};
    ctl_metrics_snapshot(m, &s);
    cr_assert_eq(sample(m, to_ready), 2, "p0 and p2 became ready");
    cr_assert_eq(sample(m, to_not), 1, "p1 terminating is leaving, not churning");
    ctl_metrics_snapshot(m, &s);
    cr_assert_eq(sample(m, to_ready), 2, "the same snapshot again changes nothing");
    cr_assert_eq(sample(m, "\nllmgw_controller_snapshot_generation "), 3);
    ctl_metrics_free(m);
}

Test(ctl_metrics, an_endpoint_absent_from_the_previous_snapshot_counts_as_new)
{
    ctl_metrics *m = ctl_metrics_new("test");
    pm_endpoint a[] = {EP("p0", true, false)};
    pm_endpoint none[] = {EP("p9", true, false)};
    pm_endpoint back[] = {EP("p0", false, false), EP("p9", true, false)};
    pm_snapshot s = {.n_endpoints = 1, .endpoints = a};

    ctl_metrics_snapshot(m, &s);
    s = (pm_snapshot){.n_endpoints = 1, .endpoints = none};
    ctl_metrics_snapshot(m, &s);
    s = (pm_snapshot){.n_endpoints = 2, .endpoints = back};
    ctl_metrics_snapshot(m, &s);
    cr_assert_eq(sample(m, "llmgw_controller_endpoint_readiness_transitions_total{model=\"m\","
                           "to=\"not_ready\"} "),
                 -1, "p0 was absent from the previous snapshot: a new pod, no flip");
    ctl_metrics_free(m);
}
