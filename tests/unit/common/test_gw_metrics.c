/* Unit tests for gw_metrics: exact exposition text for each metric type,
 * escaping, number formatting, name validation, child lookup and removal. */
#include "gw/gw_metrics.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ut_leak.h"

static gw_metrics *reg;
static gw_buf out;

static void
setup(void)
{
    reg = gw_metrics_new();
    gw_buf_init(&out, 1 << 20);
}

static void
teardown(void)
{
    gw_metrics_free(reg);
    gw_buf_fini(&out);
    ut_leak_check();
}

TestSuite(gw_metrics, .init = setup, .fini = teardown, .timeout = 10);

/* Renders the registry and returns the text (owned by `out`). */
static const char *
render(void)
{
    gw_buf_reset(&out);
    cr_assert_eq(gw_metrics_render(reg, &out), GW_OK);
    return out.data != NULL ? out.data : "";
}

static const char *const model_strategy[] = {"model", "strategy", NULL};

Test(gw_metrics, unlabeled_counter_renders_help_type_and_value)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "llmgw_up_total", "Times started", NULL, &f), GW_OK);
    gw_counter_inc(gw_metric_child0(f));
    gw_counter_add(gw_metric_child0(f), 2);
    cr_assert_str_eq(render(), "# HELP llmgw_up_total Times started\n"
                               "# TYPE llmgw_up_total counter\n"
                               "llmgw_up_total 3\n");
}

Test(gw_metrics, labeled_counter_renders_children_in_creation_order)
{
    gw_metric_fam *f = NULL;
    gw_metric *a, *b;

    cr_assert_eq(
        gw_metrics_counter(reg, "llmgw_requests_total", "Requests routed", model_strategy, &f),
        GW_OK);
    cr_assert_str_eq(render(), "", "a labeled family with no children is not rendered");
    a = gw_metric_child(f, "llama3", "random");
    b = gw_metric_child(f, "qwen", "least-request");
    gw_counter_add(b, 1);
    gw_counter_add(a, 0.5);
    gw_counter_add(a, 1);
    cr_assert_str_eq(render(),
                     "# HELP llmgw_requests_total Requests routed\n"
                     "# TYPE llmgw_requests_total counter\n"
                     "llmgw_requests_total{model=\"llama3\",strategy=\"random\"} 1.5\n"
                     "llmgw_requests_total{model=\"qwen\",strategy=\"least-request\"} 1\n");
}

Test(gw_metrics, label_values_and_help_are_escaped)
{
    static const char *const l[] = {"v", NULL};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_gauge(reg, "g", "a \\ b\nc \"q\"", l, &f), GW_OK);
    gw_gauge_set(gw_metric_child(f, "back\\slash \"quoted\"\nnewline"), 1);
    cr_assert_str_eq(render(), "# HELP g a \\\\ b\\nc \"q\"\n"
                               "# TYPE g gauge\n"
                               "g{v=\"back\\\\slash \\\"quoted\\\"\\nnewline\"} 1\n");
}

Test(gw_metrics, gauge_set_and_add_move_both_ways)
{
    gw_metric_fam *f = NULL;
    gw_metric *g;

    cr_assert_eq(gw_metrics_gauge(reg, "llmgw_inflight", "In-flight requests", NULL, &f), GW_OK);
    g = gw_metric_child0(f);
    gw_gauge_set(g, 5);
    gw_gauge_add(g, -7);
    cr_assert_eq(gw_metric_value(g), -2);
    cr_assert_str_eq(render(), "# HELP llmgw_inflight In-flight requests\n"
                               "# TYPE llmgw_inflight gauge\n"
                               "llmgw_inflight -2\n");
}

Test(gw_metrics, histogram_buckets_are_cumulative_with_sum_and_count)
{
    static const double bounds[] = {0.005, 0.1, 1, 2.5};
    static const char *const l[] = {"model", NULL};
    gw_metric_fam *f = NULL;
    gw_metric *h;

    cr_assert_eq(
        gw_metrics_histogram(reg, "llmgw_ttft_seconds", "Time to first token", l, bounds, 4, &f),
        GW_OK);
    h = gw_metric_child(f, "m");
    gw_histogram_observe(h, 0.001); /* <= 0.005 */
    gw_histogram_observe(h, 0.1);   /* exactly on a bound: le is inclusive */
    gw_histogram_observe(h, 0.5);
    gw_histogram_observe(h, 0.75);
    gw_histogram_observe(h, 100); /* +Inf only */
    gw_histogram_observe(h, NAN); /* ignored */
    cr_assert_eq(gw_histogram_count(h), 5);
    cr_assert_str_eq(render(), "# HELP llmgw_ttft_seconds Time to first token\n"
                               "# TYPE llmgw_ttft_seconds histogram\n"
                               "llmgw_ttft_seconds_bucket{model=\"m\",le=\"0.005\"} 1\n"
                               "llmgw_ttft_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
                               "llmgw_ttft_seconds_bucket{model=\"m\",le=\"1\"} 4\n"
                               "llmgw_ttft_seconds_bucket{model=\"m\",le=\"2.5\"} 4\n"
                               "llmgw_ttft_seconds_bucket{model=\"m\",le=\"+Inf\"} 5\n"
                               "llmgw_ttft_seconds_sum{model=\"m\"} 101.351\n"
                               "llmgw_ttft_seconds_count{model=\"m\"} 5\n");
}

Test(gw_metrics, unlabeled_histogram_puts_only_le_in_braces)
{
    static const double bounds[] = {1};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_histogram(reg, "h", "H", NULL, bounds, 1, &f), GW_OK);
    gw_histogram_observe(gw_metric_child0(f), 2);
    cr_assert_str_eq(render(), "# HELP h H\n"
                               "# TYPE h histogram\n"
                               "h_bucket{le=\"1\"} 0\n"
                               "h_bucket{le=\"+Inf\"} 1\n"
                               "h_sum 2\n"
                               "h_count 1\n");
}

Test(gw_metrics, histogram_without_bounds_has_only_the_inf_bucket)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_histogram(reg, "h", "H", NULL, NULL, 0, &f), GW_OK);
    gw_histogram_observe(gw_metric_child0(f), -3);
    cr_assert_str_eq(render(), "# HELP h H\n# TYPE h histogram\n"
                               "h_bucket{le=\"+Inf\"} 1\nh_sum -3\nh_count 1\n");
}

Test(gw_metrics, numbers_use_prometheus_spelling)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},           {-0.0, "0"},         {42, "42"},      {-7, "-7"},
        {0.1, "0.1"},       {1e-9, "1e-09"},     {1e20, "1e+20"}, {123456789012, "123456789012"},
        {INFINITY, "+Inf"}, {-INFINITY, "-Inf"}, {NAN, "NaN"},    {1.0 / 3, "0.3333333333333333"},
    };
    gw_metric_fam *f = NULL;
    char want[256];

    cr_assert_eq(gw_metrics_gauge(reg, "g", "G", NULL, &f), GW_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gw_gauge_set(gw_metric_child0(f), cases[i].v);
        snprintf(want, sizeof(want), "# HELP g G\n# TYPE g gauge\ng %s\n", cases[i].text);
        cr_assert_str_eq(render(), want, "case %zu", i);
    }
}

Test(gw_metrics, bad_metric_names_are_einval)
{
    static const char *const bad[] = {"", "1abc", "a-b", "a b", "caf\xc3\xa9", "a.b"};
    static const char *const good[] = {"a", "_x", "a:b_c1", ":colon", "A9"};
    gw_metric_fam *f = (gw_metric_fam *)1;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(gw_metrics_counter(reg, bad[i], "h", NULL, &f), GW_EINVAL, "%s", bad[i]);
    cr_assert_eq(gw_metrics_counter(reg, NULL, "h", NULL, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "ok", NULL, NULL, &f), GW_EINVAL, "help is required");
    cr_assert_eq(f, (gw_metric_fam *)1, "out-param untouched on error");
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        cr_assert_eq(gw_metrics_counter(reg, good[i], "h", NULL, &f), GW_OK, "%s", good[i]);
}

Test(gw_metrics, bad_label_names_are_einval)
{
    static const char *const reserved[] = {"__name", NULL};
    static const char *const colon[] = {"a:b", NULL};
    static const char *const digit[] = {"1a", NULL};
    static const char *const dup[] = {"a", "b", "a", NULL};
    static const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", NULL};
    static const char *const eight[] = {"a", "b", "c", "d", "e", "f", "g", "h", NULL};
    static const char *const le[] = {"le", NULL};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c1", "h", reserved, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "c2", "h", colon, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "c3", "h", digit, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "c4", "h", dup, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "c5", "h", nine, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "c6", "h", eight, &f), GW_OK);
    cr_assert_eq(gw_metrics_histogram(reg, "h1", "h", le, NULL, 0, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_counter(reg, "c7", "h", le, &f), GW_OK, "le is fine off histograms");
}

Test(gw_metrics, duplicate_family_name_is_eexist)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "x_total", "h", NULL, &f), GW_OK);
    cr_assert_eq(gw_metrics_gauge(reg, "x_total", "h", NULL, &f), GW_EEXIST);
}

Test(gw_metrics, bad_histogram_bounds_are_einval)
{
    static const double dec[] = {1, 0.5};
    static const double eq[] = {1, 1};
    static const double nan_b[] = {NAN};
    static const double inf_b[] = {1, INFINITY};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_histogram(reg, "h", "h", NULL, dec, 2, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_histogram(reg, "h", "h", NULL, eq, 2, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_histogram(reg, "h", "h", NULL, nan_b, 1, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_histogram(reg, "h", "h", NULL, inf_b, 2, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_histogram(reg, "h", "h", NULL, NULL, 1, &f), GW_EINVAL);
    cr_assert_eq(gw_metrics_histogram(reg, "h", "h", NULL, dec, GW_METRICS_MAX_BUCKETS + 1, &f),
                 GW_EINVAL);
}

Test(gw_metrics, child_lookup_returns_the_same_handle)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", model_strategy, &f), GW_OK);
    gw_metric *a = gw_metric_child(f, "m", "s");
    const char *const vals[] = {"m", "s"};
    cr_assert_not_null(a);
    cr_assert_eq(gw_metric_childv(f, vals, 2), a);
    cr_assert_eq(gw_metric_findv(f, vals, 2), a);
    cr_assert_neq(gw_metric_child(f, "m", "t"), a);
    cr_assert_neq(gw_metric_child(f, "ms", ""), a, "values are compared, not concatenated");
    cr_assert_eq(gw_metric_fam_nchildren(f), 3);
}

Test(gw_metrics, wrong_label_count_or_null_value_gives_null)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", model_strategy, &f), GW_OK);
    cr_assert_null(gw_metric_child(f, "only-one"));
    cr_assert_null(gw_metric_child(f, "a", "b", "c"));
    cr_assert_null(gw_metric_child(f, "a", NULL));
    cr_assert_null(gw_metric_child0(f));
    cr_assert_eq(gw_metric_fam_nchildren(f), 0);
    gw_counter_inc(NULL); /* a NULL handle is ignored */
}

Test(gw_metrics, findv_does_not_create)
{
    gw_metric_fam *f = NULL;
    const char *const v[] = {"a", "b"};

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", model_strategy, &f), GW_OK);
    cr_assert_null(gw_metric_findv(f, v, 2));
    cr_assert_eq(gw_metric_fam_nchildren(f), 0);
}

Test(gw_metrics, removed_child_disappears_from_output)
{
    static const char *const l[] = {"endpoint", NULL};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_gauge(reg, "g", "h", l, &f), GW_OK);
    gw_gauge_set(gw_metric_child(f, "10.0.0.1:8000"), 1);
    gw_gauge_set(gw_metric_child(f, "10.0.0.2:8000"), 2);
    gw_gauge_set(gw_metric_child(f, "10.0.0.3:8000"), 3);
    cr_assert(gw_metric_remove_child(f, "10.0.0.2:8000"));
    cr_assert_not(gw_metric_remove_child(f, "10.0.0.2:8000"), "already gone");
    cr_assert_str_eq(render(), "# HELP g h\n# TYPE g gauge\n"
                               "g{endpoint=\"10.0.0.1:8000\"} 1\n"
                               "g{endpoint=\"10.0.0.3:8000\"} 3\n");
    /* Re-creating starts from zero. */
    cr_assert_eq(gw_metric_value(gw_metric_child(f, "10.0.0.2:8000")), 0);
}

Test(gw_metrics, remove_matching_drops_every_series_of_a_label_value)
{
    static const char *const l[] = {"model", "endpoint", NULL};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", l, &f), GW_OK);
    gw_counter_inc(gw_metric_child(f, "a", "e1"));
    gw_counter_inc(gw_metric_child(f, "b", "e2"));
    gw_counter_inc(gw_metric_child(f, "b", "e1"));
    gw_counter_inc(gw_metric_child(f, "c", "e3"));
    cr_assert_eq(gw_metric_remove_matching(f, "endpoint", "e1"), 2);
    cr_assert_eq(gw_metric_remove_matching(f, "nolabel", "e1"), 0);
    cr_assert_eq(gw_metric_fam_nchildren(f), 2);
    cr_assert_str_eq(render(), "# HELP c h\n# TYPE c counter\n"
                               "c{model=\"b\",endpoint=\"e2\"} 1\n"
                               "c{model=\"c\",endpoint=\"e3\"} 1\n");
    const char *const v[] = {"a", "e1"};
    cr_assert_null(gw_metric_findv(f, v, 2));
}

Test(gw_metrics, unlabeled_child_cannot_be_removed)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", NULL, &f), GW_OK);
    cr_assert_not(gw_metric_remove_childv(f, NULL, 0));
    cr_assert_eq(gw_metric_fam_nchildren(f), 1);
}

Test(gw_metrics, many_children_stay_findable_across_table_growth)
{
    static const char *const l[] = {"i", NULL};
    gw_metric_fam *f = NULL;
    gw_metric *handles[1000];
    char v[16];

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", l, &f), GW_OK);
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof(v), "%d", i);
        handles[i] = gw_metric_child(f, v);
        gw_counter_add(handles[i], i);
    }
    for (int i = 0; i < 1000; i += 2) {
        snprintf(v, sizeof(v), "%d", i);
        cr_assert(gw_metric_remove_child(f, v));
    }
    for (int i = 1; i < 1000; i += 2) {
        snprintf(v, sizeof(v), "%d", i);
        cr_assert_eq(gw_metric_child(f, v), handles[i]);
        cr_assert_eq(gw_metric_value(handles[i]), i);
    }
    cr_assert_eq(gw_metric_fam_nchildren(f), 500);
}

Test(gw_metrics, child_cap_returns_null_beyond_the_limit)
{
    static const char *const l[] = {"i", NULL};
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", l, &f), GW_OK);
    gw_metric_fam_set_max_children(f, 2);
    cr_assert_not_null(gw_metric_child(f, "a"));
    cr_assert_not_null(gw_metric_child(f, "b"));
    cr_assert_null(gw_metric_child(f, "c"));
    cr_assert_not_null(gw_metric_child(f, "a"), "existing children still resolve");
}

Test(gw_metrics, counter_never_goes_down)
{
    gw_metric_fam *f = NULL;
    gw_metric *c;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", NULL, &f), GW_OK);
    c = gw_metric_child0(f);
    gw_counter_add(c, 3);
    gw_counter_add(c, -1);
    gw_counter_add(c, NAN);
    cr_assert_eq(gw_metric_value(c), 3);
}

Test(gw_metrics, ops_on_the_wrong_type_are_ignored)
{
    gw_metric_fam *cf = NULL, *gf = NULL, *hf = NULL;

    cr_assert_eq(gw_metrics_counter(reg, "c", "h", NULL, &cf), GW_OK);
    cr_assert_eq(gw_metrics_gauge(reg, "g", "h", NULL, &gf), GW_OK);
    cr_assert_eq(gw_metrics_histogram(reg, "hh", "h", NULL, NULL, 0, &hf), GW_OK);
    gw_gauge_set(gw_metric_child0(cf), 5);
    gw_counter_add(gw_metric_child0(gf), 5);
    gw_histogram_observe(gw_metric_child0(gf), 5);
    gw_gauge_add(gw_metric_child0(hf), 5);
    cr_assert_eq(gw_metric_value(gw_metric_child0(cf)), 0);
    cr_assert_eq(gw_metric_value(gw_metric_child0(gf)), 0);
    cr_assert_eq(gw_histogram_count(gw_metric_child0(hf)), 0);
    cr_assert(isnan(gw_metric_value(gw_metric_child0(hf))));
    cr_assert_eq(gw_metric_fam_type(hf), GW_METRIC_HISTOGRAM);
}

static double
answer(void *arg)
{
    return *(double *)arg;
}

Test(gw_metrics, gauge_fn_is_computed_at_render)
{
    gw_metric_fam *f = NULL;
    double v = 7;

    cr_assert_eq(
        gw_metrics_gauge_fn(reg, "llmgw_snapshot_gen", "Snapshot generation", answer, &v, &f),
        GW_OK);
    cr_assert_str_eq(render(), "# HELP llmgw_snapshot_gen Snapshot generation\n"
                               "# TYPE llmgw_snapshot_gen gauge\n"
                               "llmgw_snapshot_gen 7\n");
    v = 8;
    cr_assert_not_null(strstr(render(), "llmgw_snapshot_gen 8\n"));
    cr_assert_eq(gw_metrics_gauge_fn(reg, "x", "h", NULL, NULL, &f), GW_EINVAL);
}

static void
collect(gw_metrics *r, void *arg)
{
    (void)r;
    gw_gauge_add(gw_metric_child0((gw_metric_fam *)arg), 1);
}

Test(gw_metrics, collectors_run_before_each_render)
{
    gw_metric_fam *f = NULL;

    cr_assert_eq(gw_metrics_gauge(reg, "renders", "h", NULL, &f), GW_OK);
    gw_metrics_add_collector(reg, collect, f);
    cr_assert_not_null(strstr(render(), "renders 1\n"));
    cr_assert_not_null(strstr(render(), "renders 2\n"));
}

Test(gw_metrics, families_render_in_registration_order)
{
    gw_metric_fam *a = NULL, *b = NULL;

    cr_assert_eq(gw_metrics_gauge(reg, "zz", "h", NULL, &a), GW_OK);
    cr_assert_eq(gw_metrics_counter(reg, "aa", "h", NULL, &b), GW_OK);
    cr_assert_str_eq(render(), "# HELP zz h\n# TYPE zz gauge\nzz 0\n"
                               "# HELP aa h\n# TYPE aa counter\naa 0\n");
}

Test(gw_metrics, render_into_a_full_buffer_is_efull)
{
    gw_metric_fam *f = NULL;
    gw_buf small;

    cr_assert_eq(gw_metrics_counter(reg, "a_rather_long_metric_name_total", "h", NULL, &f), GW_OK);
    gw_buf_init(&small, 16);
    cr_assert_eq(gw_metrics_render(reg, &small), GW_EFULL);
    cr_assert_leq(small.len, 16);
    gw_buf_fini(&small);
}

Test(gw_metrics, free_null_is_a_no_op)
{
    gw_metrics *other = gw_metrics_new();

    gw_metrics_free(NULL);
    cr_assert_not_null(other, "other registries are unaffected");
    gw_metrics_free(other);
}
