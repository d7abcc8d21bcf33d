/* Unit tests for ctl_scrape's pure layer: crafted /metrics pages in, engine
 * signals out (gauges, token rates and histogram means across successive
 * pages, counter resets, missing series, staleness, SGLang names, LoRA
 * info), and the /v1/models adapter parser. No sockets. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_scrape.h"
#include "ut_leak.h"

TestSuite(ctl_scrape, .fini = ut_leak_check, .timeout = 10);

#define STALE 2000

static gw_err
apply(ctl_scrape_state *st, const char *page, uint64_t now)
{
    return ctl_scrape_apply_page(st, page, strlen(page), now, NULL);
}

static ctl_signals
sig_at(const ctl_scrape_state *st, uint64_t now)
{
    ctl_signals s;

    ctl_scrape_state_signals(st, now, STALE, &s);
    return s;
}

/* A vLLM page like the mock engine's, with the counters and histogram
 * totals given. */
static char *
vllm_page(double running, double waiting, double kv, double prompt, double gen, double ttft_sum,
          double ttft_cnt, double tpot_sum, double tpot_cnt)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);

    fprintf(f,
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            "vllm:num_requests_running{model_name=\"m\"} %g\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            "vllm:num_requests_waiting{model_name=\"m\"} %g\n"
            "vllm:kv_cache_usage_perc{model_name=\"m\"} %g\n"
            "vllm:gpu_cache_usage_perc{model_name=\"m\"} %g\n"
            "# TYPE vllm:prompt_tokens_total counter\n"
            "vllm:prompt_tokens_total{model_name=\"m\"} %g\n"
            "vllm:generation_tokens_total{model_name=\"m\"} %g\n"
            "# TYPE vllm:time_to_first_token_seconds histogram\n"
            "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"0.1\"} %g\n"
            "vllm:time_to_first_token_seconds_bucket{model_name=\"m\",le=\"+Inf\"} %g\n"
            "vllm:time_to_first_token_seconds_count{model_name=\"m\"} %g\n"
            "vllm:time_to_first_token_seconds_sum{model_name=\"m\"} %g\n"
            "vllm:time_per_output_token_seconds_count{model_name=\"m\"} %g\n"
            "vllm:time_per_output_token_seconds_sum{model_name=\"m\"} %g\n",
            running, waiting, kv, kv, prompt, gen, ttft_cnt, ttft_cnt, ttft_cnt, ttft_sum, tpot_cnt,
            tpot_sum);
    fclose(f);
    return p;
}

Test(ctl_scrape, nothing_is_known_before_the_first_page)
{
    ctl_scrape_state st;
    ctl_signals s;

    ctl_scrape_state_init(&st, NULL);
    s = sig_at(&st, 1000);
    cr_assert(s.running < 0 && s.waiting < 0 && s.kv_usage < 0 && s.gpu_usage < 0);
    cr_assert(s.ttft_ms < 0 && s.tpot_ms < 0 && s.tokens_per_s < 0);
    cr_assert(s.age_ms < 0, "never scraped: age unknown");
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, first_page_gives_gauges_but_no_rates_yet)
{
    ctl_scrape_state st;
    char *p = vllm_page(3, 2, 0.75, 100, 50, 0.2, 2, 0.1, 10);
    ctl_signals s;

    ctl_scrape_state_init(&st, "vllm");
    cr_assert_eq(apply(&st, p, 1000), GW_OK);
    s = sig_at(&st, 1050);
    cr_assert_float_eq(s.running, 3, 1e-9);
    cr_assert_float_eq(s.waiting, 2, 1e-9);
    cr_assert_float_eq(s.kv_usage, 0.75, 1e-9);
    cr_assert_float_eq(s.gpu_usage, 0.75, 1e-9);
    cr_assert_float_eq(s.age_ms, 50, 1e-9);
    cr_assert(s.tokens_per_s < 0, "a rate needs two pages");
    cr_assert(s.ttft_ms < 0, "a mean needs two pages: totals since start say nothing recent");
    cr_assert(s.tpot_ms < 0);
    free(p);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, two_pages_give_the_token_rate_and_histogram_means)
{
    ctl_scrape_state st;
    char *p1 = vllm_page(1, 0, 0.1, 1000, 2000, 1.0, 10, 0.5, 100);
    /* One second later: +300 prompt, +200 generated tokens; 4 more TTFT
     * observations totalling 0.8 s; 50 more TPOT ones totalling 0.5 s. */
    char *p2 = vllm_page(1, 0, 0.1, 1300, 2200, 1.8, 14, 1.0, 150);
    ctl_signals s;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, p1, 10000), GW_OK);
    cr_assert_eq(apply(&st, p2, 11000), GW_OK);
    s = sig_at(&st, 11000);
    cr_assert_float_eq(s.tokens_per_s, 500, 1e-6);
    cr_assert_float_eq(s.ttft_ms, 200, 1e-6, "0.8 s over 4 observations");
    cr_assert_float_eq(s.tpot_ms, 10, 1e-6, "0.5 s over 50 observations");
    cr_assert_float_eq(s.age_ms, 0, 1e-9);
    free(p1);
    free(p2);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, token_rate_waits_for_the_rate_window)
{
    ctl_scrape_state st;
    char *p0 = vllm_page(0, 0, 0, 0, 0, 0, 0, 0, 0);
    char *p1 = vllm_page(0, 0, 0, 100, 100, 0, 0, 0, 0);
    char *p2 = vllm_page(0, 0, 0, 400, 400, 0, 0, 0, 0);

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, p0, 0), GW_OK);
    cr_assert_eq(apply(&st, p1, 200), GW_OK);
    cr_assert(sig_at(&st, 200).tokens_per_s < 0, "200 ms is under the window");
    cr_assert_eq(apply(&st, p2, CTL_SCRAPE_RATE_WINDOW_MS + 600), GW_OK);
    /* 800 tokens over 1600 ms, measured from the first page. */
    cr_assert_float_eq(sig_at(&st, 1600).tokens_per_s, 500, 1e-6);
    free(p0);
    free(p1);
    free(p2);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, without_new_observations_the_mean_stays_then_moves_by_ewma)
{
    ctl_scrape_state st;
    char *p1 = vllm_page(0, 0, 0, 0, 0, 1.0, 10, 0, 0);
    char *p2 = vllm_page(0, 0, 0, 0, 0, 1.5, 15, 0, 0); /* 5 obs, 100 ms each */
    char *p3 = vllm_page(0, 0, 0, 0, 0, 1.5, 15, 0, 0); /* nothing new */
    char *p4 = vllm_page(0, 0, 0, 0, 0, 2.0, 16, 0, 0); /* 1 obs of 500 ms */

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, p1, 0), GW_OK);
    cr_assert_eq(apply(&st, p2, 200), GW_OK);
    cr_assert_float_eq(sig_at(&st, 200).ttft_ms, 100, 1e-6);
    cr_assert_eq(apply(&st, p3, 400), GW_OK);
    cr_assert_float_eq(sig_at(&st, 400).ttft_ms, 100, 1e-6, "no observations: value kept");
    cr_assert_eq(apply(&st, p4, 600), GW_OK);
    cr_assert_float_eq(sig_at(&st, 600).ttft_ms,
                       CTL_LOAD_EWMA_ALPHA * 500 + (1 - CTL_LOAD_EWMA_ALPHA) * 100, 1e-6);
    cr_assert(sig_at(&st, 600).tpot_ms < 0, "a histogram with no observations at all");
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, a_counter_reset_restarts_the_baseline_and_keeps_the_values)
{
    ctl_scrape_state st;
    char *p1 = vllm_page(0, 0, 0, 5000, 5000, 10, 100, 0, 0);
    char *p2 = vllm_page(0, 0, 0, 5500, 5500, 11, 110, 0, 0); /* 1000 tok/s, 100 ms */
    char *p3 = vllm_page(0, 0, 0, 10, 10, 0.05, 1, 0, 0);     /* the engine restarted */
    char *p4 = vllm_page(0, 0, 0, 110, 110, 0.65, 3, 0, 0);   /* 200 tok/s, 300 ms */

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, p1, 0), GW_OK);
    cr_assert_eq(apply(&st, p2, 1000), GW_OK);
    cr_assert_float_eq(sig_at(&st, 1000).tokens_per_s, 1000, 1e-6);
    cr_assert_float_eq(sig_at(&st, 1000).ttft_ms, 100, 1e-6);
    cr_assert_eq(apply(&st, p3, 2000), GW_OK);
    cr_assert_float_eq(sig_at(&st, 2000).tokens_per_s, 1000, 1e-6,
                       "no negative rate: the previous value stays");
    cr_assert_float_eq(sig_at(&st, 2000).ttft_ms, 100, 1e-6);
    cr_assert_eq(apply(&st, p4, 3000), GW_OK);
    cr_assert_float_eq(sig_at(&st, 3000).tokens_per_s, 200, 1e-6, "measured from the reset");
    cr_assert_float_eq(sig_at(&st, 3000).ttft_ms,
                       CTL_LOAD_EWMA_ALPHA * 300 + (1 - CTL_LOAD_EWMA_ALPHA) * 100, 1e-6);
    free(p1);
    free(p2);
    free(p3);
    free(p4);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, missing_series_are_unknown_never_zero)
{
    ctl_scrape_state st;
    char *full = vllm_page(2, 1, 0.5, 100, 100, 1, 10, 1, 10);
    char *full2 = vllm_page(2, 1, 0.5, 600, 600, 2, 20, 2, 20);
    const char *sparse = "vllm:num_requests_running{model_name=\"m\"} 4\n"
                         "process_cpu_seconds_total 12.5\n";
    ctl_signals s;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, full, 0), GW_OK);
    cr_assert_eq(apply(&st, full2, 1000), GW_OK);
    cr_assert(sig_at(&st, 1000).tokens_per_s > 0 && sig_at(&st, 1000).ttft_ms > 0);
    cr_assert_eq(apply(&st, sparse, 1200), GW_OK);
    s = sig_at(&st, 1200);
    cr_assert_float_eq(s.running, 4, 1e-9);
    cr_assert(s.waiting < 0 && s.kv_usage < 0 && s.gpu_usage < 0);
    cr_assert(s.tokens_per_s < 0 && s.ttft_ms < 0 && s.tpot_ms < 0);
    cr_assert_float_eq(s.age_ms, 0, 1e-9, "the page itself was good");
    free(full);
    free(full2);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, series_are_summed_and_usage_takes_the_largest)
{
    ctl_scrape_state st;
    const char *page = "vllm:num_requests_running{model_name=\"a\",engine=\"0\"} 2\n"
                       "vllm:num_requests_running{model_name=\"a\",engine=\"1\"} 3\n"
                       "vllm:num_requests_running{model_name=\"b\"} 1\n"
                       "vllm:num_requests_waiting{model_name=\"a\"} 4\n"
                       "vllm:num_requests_waiting{model_name=\"b\"} 5\n"
                       "vllm:kv_cache_usage_perc{model_name=\"a\"} 0.25\n"
                       "vllm:kv_cache_usage_perc{model_name=\"b\"} 0.75\n";
    ctl_signals s;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, page, 0), GW_OK);
    s = sig_at(&st, 0);
    cr_assert_float_eq(s.running, 6, 1e-9);
    cr_assert_float_eq(s.waiting, 9, 1e-9);
    cr_assert_float_eq(s.kv_usage, 0.75, 1e-9, "usage is engine-wide: largest, not summed");
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, kv_and_gpu_usage_fall_back_on_each_other)
{
    ctl_scrape_state st;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.4\n", 0), GW_OK);
    cr_assert_float_eq(sig_at(&st, 0).kv_usage, 0.4, 1e-9, "older vLLM: only the gpu name");
    cr_assert_float_eq(sig_at(&st, 0).gpu_usage, 0.4, 1e-9);
    cr_assert_eq(apply(&st, "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.6\n", 10), GW_OK);
    cr_assert_float_eq(sig_at(&st, 10).kv_usage, 0.6, 1e-9);
    cr_assert_float_eq(sig_at(&st, 10).gpu_usage, 0.6, 1e-9, "newer vLLM: only the kv name");
    cr_assert_eq(apply(&st,
                       "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.6\n"
                       "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.2\n",
                       20),
                 GW_OK);
    cr_assert_float_eq(sig_at(&st, 20).kv_usage, 0.6, 1e-9);
    cr_assert_float_eq(sig_at(&st, 20).gpu_usage, 0.2, 1e-9, "both: each its own");
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, tpot_falls_back_to_inter_token_latency)
{
    ctl_scrape_state st;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st,
                       "vllm:inter_token_latency_seconds_sum{model_name=\"m\"} 1\n"
                       "vllm:inter_token_latency_seconds_count{model_name=\"m\"} 100\n",
                       0),
                 GW_OK);
    cr_assert_eq(apply(&st,
                       "vllm:inter_token_latency_seconds_sum{model_name=\"m\"} 1.2\n"
                       "vllm:inter_token_latency_seconds_count{model_name=\"m\"} 110\n",
                       200),
                 GW_OK);
    cr_assert_float_eq(sig_at(&st, 200).tpot_ms, 20, 1e-6);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, sglang_names)
{
    ctl_scrape_state st;
    const char *p1 = "# TYPE sglang:num_running_reqs gauge\n"
                     "sglang:num_running_reqs{model_name=\"q\",tp_rank=\"0\"} 7\n"
                     "sglang:num_queue_reqs{model_name=\"q\",tp_rank=\"0\"} 3\n"
                     "sglang:token_usage{model_name=\"q\",tp_rank=\"0\"} 0.42\n"
                     "sglang:prompt_tokens_total{model_name=\"q\"} 1000\n"
                     "sglang:generation_tokens_total{model_name=\"q\"} 1000\n"
                     "sglang:time_to_first_token_seconds_sum{model_name=\"q\"} 1\n"
                     "sglang:time_to_first_token_seconds_count{model_name=\"q\"} 10\n"
                     "sglang:inter_token_latency_seconds_sum{model_name=\"q\"} 1\n"
                     "sglang:inter_token_latency_seconds_count{model_name=\"q\"} 100\n"
                     "vllm:num_requests_running{model_name=\"q\"} 99\n";
    const char *p2 = "sglang:num_running_reqs{model_name=\"q\",tp_rank=\"0\"} 7\n"
                     "sglang:prompt_tokens_total{model_name=\"q\"} 1500\n"
                     "sglang:generation_tokens_total{model_name=\"q\"} 1500\n"
                     "sglang:time_to_first_token_seconds_sum{model_name=\"q\"} 1.5\n"
                     "sglang:time_to_first_token_seconds_count{model_name=\"q\"} 11\n"
                     "sglang:inter_token_latency_seconds_sum{model_name=\"q\"} 1.3\n"
                     "sglang:inter_token_latency_seconds_count{model_name=\"q\"} 110\n";
    ctl_signals s;

    ctl_scrape_state_init(&st, "sglang");
    cr_assert_eq(apply(&st, p1, 0), GW_OK);
    s = sig_at(&st, 0);
    cr_assert_float_eq(s.running, 7, 1e-9, "the vllm: series is not read for sglang");
    cr_assert_float_eq(s.waiting, 3, 1e-9);
    cr_assert_float_eq(s.kv_usage, 0.42, 1e-9);
    cr_assert_float_eq(s.gpu_usage, 0.42, 1e-9);
    cr_assert_eq(apply(&st, p2, 2000), GW_OK);
    s = sig_at(&st, 2000);
    cr_assert_float_eq(s.tokens_per_s, 500, 1e-6);
    cr_assert_float_eq(s.ttft_ms, 500, 1e-6);
    cr_assert_float_eq(s.tpot_ms, 30, 1e-6);
    cr_assert(s.waiting < 0, "gone from the second page");
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, kv_capacity_from_cache_config_info_or_max_total_num_tokens)
{
    ctl_scrape_state st;
    /* As vLLM prints its CacheConfig (and the mock engine does). */
    const char *v1 = "# TYPE vllm:cache_config_info gauge\n"
                     "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\","
                     "enable_prefix_caching=\"True\",num_cpu_blocks=\"0\",num_gpu_blocks=\"2560\","
                     "num_gpu_blocks_override=\"None\"} 1.0\n"
                     "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"1000\"} 1.0\n"
                     "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n";
    const char *v2 = "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"None\"} 1.0\n"
                     "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n";
    const char *v3 = "vllm:cache_config_info{block_size=\"16x\",num_gpu_blocks=\"8\"} 1.0\n"
                     "sglang:max_total_num_tokens{model_name=\"q\"} 9000\n";
    const char *v4 = "vllm:cache_config_info{block_size=\"1e300\",num_gpu_blocks=\"1e300\"} 1\n";
    const char *sg = "sglang:max_total_num_tokens{model_name=\"q\",tp_rank=\"0\"} 471258\n"
                     "sglang:max_total_num_tokens{model_name=\"q\",tp_rank=\"1\"} 471000\n"
                     "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"8\"} 1.0\n";
    ctl_signals s;

    ctl_scrape_state_init(&st, NULL);
    s = sig_at(&st, 0);
    cr_assert(s.kv_capacity < 0, "unknown before the first page");
    cr_assert_eq(apply(&st, v1, 0), GW_OK);
    s = sig_at(&st, 0);
    cr_assert_float_eq(s.kv_capacity, 2560 * 16, 1e-9, "blocks x block size, largest series");
    cr_assert_eq(apply(&st, v2, 10), GW_OK);
    cr_assert(sig_at(&st, 10).kv_capacity < 0, "None (not profiled yet) gives no capacity");
    cr_assert_eq(apply(&st, v3, 20), GW_OK);
    cr_assert(sig_at(&st, 20).kv_capacity < 0, "a malformed label, and no sglang name for vllm");
    cr_assert_eq(apply(&st, v4, 25), GW_OK);
    cr_assert(sig_at(&st, 25).kv_capacity < 0, "an overflowing product is no capacity");
    cr_assert_eq(
        apply(&st, "vllm:cache_config_info{block_size=\"0.5\",num_gpu_blocks=\"1\"} 1\n", 27),
        GW_OK);
    cr_assert(sig_at(&st, 27).kv_capacity < 0, "under one token is no capacity");
    cr_assert_eq(apply(&st, v1, 30), GW_OK);
    cr_assert(sig_at(&st, 30 + STALE + 1).kv_capacity < 0, "stale like every number");
    ctl_scrape_state_fini(&st);

    ctl_scrape_state_init(&st, "sglang");
    cr_assert_eq(apply(&st, sg, 0), GW_OK);
    cr_assert_float_eq(sig_at(&st, 0).kv_capacity, 471258, 1e-9, "largest rank, not vllm's info");
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, not_a_metrics_page_leaves_the_state_untouched)
{
    ctl_scrape_state st;
    const char *html = "<html><body>502 Bad Gateway</body></html>\n";
    size_t malformed = 0;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, "vllm:num_requests_running{model_name=\"m\"} 5\n", 100), GW_OK);
    cr_assert_eq(ctl_scrape_apply_page(&st, html, strlen(html), 200, &malformed), GW_EPROTO);
    cr_assert_eq(malformed, 1);
    cr_assert_eq(ctl_scrape_apply_page(&st, "", 0, 200, NULL), GW_EPROTO);
    cr_assert_eq(st.last_ok_ms, 100);
    cr_assert_float_eq(sig_at(&st, 200).running, 5, 1e-9);
    cr_assert_float_eq(sig_at(&st, 200).age_ms, 100, 1e-9);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, bad_samples_are_ignored)
{
    ctl_scrape_state st;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st,
                       "vllm:num_requests_running{model_name=\"m\"} NaN\n"
                       "vllm:num_requests_waiting{model_name=\"m\"} -3\n"
                       "vllm:kv_cache_usage_perc{model_name=\"m\"} +Inf\n"
                       "vllm:num_requests_running{model_name=\"n\"} 2\n",
                       0),
                 GW_OK);
    cr_assert_float_eq(sig_at(&st, 0).running, 2, 1e-9);
    cr_assert(sig_at(&st, 0).waiting < 0);
    cr_assert(sig_at(&st, 0).kv_usage < 0);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, stale_numbers_are_unknown_but_the_age_is_told)
{
    ctl_scrape_state st;
    ctl_signals s;

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, "vllm:num_requests_running{model_name=\"m\"} 5\n", 1000), GW_OK);
    s = sig_at(&st, 1000 + STALE);
    cr_assert_float_eq(s.running, 5, 1e-9, "exactly at the limit is still fresh");
    s = sig_at(&st, 1000 + STALE + 1);
    cr_assert(s.running < 0 && s.waiting < 0 && s.kv_usage < 0 && s.tokens_per_s < 0);
    cr_assert_float_eq(s.age_ms, STALE + 1, 1e-9);
    s = sig_at(&st, 500);
    cr_assert_float_eq(s.age_ms, 0, 1e-9, "a clock that went back counts as fresh");
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, lora_info_uses_the_newest_series)
{
    ctl_scrape_state st;
    const char *p1 = "# TYPE vllm:lora_requests_info gauge\n"
                     "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"old\","
                     "waiting_lora_adapters=\"\"} 1.7e9\n"
                     "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"b, a\","
                     "waiting_lora_adapters=\"c,a,\"} 1.7000001e9\n"
                     "vllm:lora_requests_info{max_lora=\"2\",running_lora_adapters=\"older\","
                     "waiting_lora_adapters=\"\"} 1.6e9\n";

    ctl_scrape_state_init(&st, NULL);
    cr_assert_eq(apply(&st, p1, 0), GW_OK);
    cr_assert(st.lora_changed);
    cr_assert_eq(st.n_lora, 3);
    cr_assert_str_eq(st.lora[0], "a");
    cr_assert_str_eq(st.lora[1], "b");
    cr_assert_str_eq(st.lora[2], "c");
    st.lora_changed = false;
    cr_assert_eq(apply(&st, p1, 100), GW_OK);
    cr_assert(!st.lora_changed, "the same set is no change");
    cr_assert_eq(apply(&st, "vllm:num_requests_running 1\n", 200), GW_OK);
    cr_assert(st.lora_changed, "the gauge is gone: no adapters from it");
    cr_assert_eq(st.n_lora, 0);
    ctl_scrape_state_fini(&st);
}

Test(ctl_scrape, models_answer_gives_the_adapters_vllm_lists)
{
    const char *body =
        "{\"object\":\"list\",\"data\":["
        "{\"id\":\"base\",\"object\":\"model\",\"root\":\"/m/base\",\"parent\":null,"
        "\"max_model_len\":8192},"
        "{\"id\":\"sql-lora\",\"object\":\"model\",\"root\":\"/loras/sql\",\"parent\":\"base\","
        "\"max_model_len\":null},"
        "{\"id\":\"alpaca\",\"object\":\"model\",\"parent\":\"base\"},"
        "{\"id\":\"alpaca\",\"parent\":\"base\"},"
        "{\"id\":\"\",\"parent\":\"base\"},"
        "{\"id\":\"nul\\u0000name\",\"parent\":\"base\"},"
        "{\"id\":7,\"parent\":\"base\"},"
        "{\"id\":\"noparent\"},"
        "\"junk\"]}";
    char **names = NULL;
    size_t n = 0;

    cr_assert_eq(ctl_scrape_parse_models(body, strlen(body), &names, &n), GW_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "alpaca");
    cr_assert_str_eq(names[1], "sql-lora");
    ctl_scrape_names_free(names, n);

    names = NULL;
    n = 0;
    cr_assert_eq(ctl_scrape_parse_models("{\"data\":[]}", 11, &names, &n), GW_OK);
    cr_assert_eq(n, 0);
    cr_assert_null(names);
}

Test(ctl_scrape, bad_models_answers_are_refused_untouched)
{
    static const char *const bad[] = {"",
                                      "not json",
                                      "[]",
                                      "{\"data\":{}}",
                                      "{\"object\":\"list\"}",
                                      "{\"data\":[{\"id\":\"a\",\"parent\":\"b\"}"};
    char **names = (char **)(void *)0x1;
    size_t n = 77;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(ctl_scrape_parse_models(bad[i], strlen(bad[i]), &names, &n), GW_EPROTO, "%s",
                     bad[i]);
    cr_assert_eq(n, 77);
    cr_assert_eq(names, (char **)(void *)0x1);
}

Test(ctl_scrape, models_answer_is_capped)
{
    size_t cap = 64 + PM_MAX_ADAPTERS * 40;
    char *body = malloc(cap);
    size_t o = 0;
    char **names = NULL;
    size_t n = 0;

    o += (size_t)snprintf(body + o, cap - o, "{\"data\":[");
    for (unsigned i = 0; i < PM_MAX_ADAPTERS + 5; i++)
        o += (size_t)snprintf(body + o, cap - o, "%s{\"id\":\"a%u\",\"parent\":\"m\"}",
                              i ? "," : "", i);
    o += (size_t)snprintf(body + o, cap - o, "]}");
    cr_assert_lt(o, cap);
    cr_assert_eq(ctl_scrape_parse_models(body, o, &names, &n), GW_OK);
    cr_assert_eq(n, PM_MAX_ADAPTERS);
    ctl_scrape_names_free(names, n);
    free(body);
}
