/* fuzz_ctl_scrape: the controller's readers of engine answers on arbitrary
 * bytes: ctl_scrape_apply_page (a /metrics page, applied twice so the rate
 * and histogram derivations run on fuzzed totals, under both engine name
 * sets) and ctl_scrape_parse_models (a /v1/models answer). Every signal
 * must be -1 or a finite, non-negative number (the wire refuses the rest),
 * and every adapter name must be one the snapshot encoder accepts. abort()
 * on any broken promise. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_scrape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_value(double v)
{
    if (!(v == -1 || (isfinite(v) && v >= 0)))
        abort();
}

static void
check_names(char *const *names, size_t n)
{
    if (n > PM_MAX_ADAPTERS)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (len == 0 || len >= PM_MAX_STR)
            abort();
        if (i > 0 && strcmp(names[i - 1], names[i]) >= 0)
            abort(); /* sorted and unique */
    }
}

static void
run_pages(const char *engine, const char *text, size_t len)
{
    ctl_scrape_state st;
    ctl_signals s;
    gw_err rc[4];

    ctl_scrape_state_init(&st, engine);
    rc[0] = ctl_scrape_apply_page(&st, text, len, 1000, NULL);
    /* The second time the totals equal the baseline: no division by zero. */
    rc[1] = ctl_scrape_apply_page(&st, text, len, 1000 + CTL_SCRAPE_RATE_WINDOW_MS, NULL);
    /* Half the page then the whole: counters may go down and up. */
    rc[2] = ctl_scrape_apply_page(&st, text, len / 2, 5000, NULL);
    rc[3] = ctl_scrape_apply_page(&st, text, len, 9000, NULL);
    if (rc[0] != rc[1] || rc[0] != rc[3] || (rc[0] != GW_OK && rc[0] != GW_EPROTO))
        abort(); /* the same bytes, the same verdict */
    ctl_scrape_state_signals(&st, 9000, 2000, &s);
    check_value(s.running);
    check_value(s.waiting);
    check_value(s.kv_usage);
    check_value(s.gpu_usage);
    check_value(s.ttft_ms);
    check_value(s.tpot_ms);
    check_value(s.tokens_per_s);
    check_value(s.age_ms);
    check_value(s.kv_capacity);
    check_names(st.lora, st.n_lora);
    ctl_scrape_state_fini(&st);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char **names = NULL;
    size_t n = 0;

    run_pages("vllm", (const char *)data, size);
    run_pages("sglang", (const char *)data, size);
    if (ctl_scrape_parse_models((const char *)data, size, &names, &n) == GW_OK) {
        check_names(names, n);
        ctl_scrape_names_free(names, n);
    }
    return 0;
}
