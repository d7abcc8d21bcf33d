/* Unit tests for dp_usage: usage read from SSE and JSON bodies however the
 * bytes are split. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_usage.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_usage, .fini = fini, .timeout = 10);

static const char sse[] =
    "data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":null}\n\n"
    "data: {\"id\":\"1\",\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\r\n\r\n"
    "data: {\"id\":\"1\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":2,"
    "\"total_tokens\":13}}\n\n"
    "data: [DONE]\n\n";

Test(dp_usage, sse_usage_is_found_for_every_split_point)
{
    size_t n = strlen(sse);
    for (size_t cut = 0; cut <= n; cut++) {
        dp_usage u;
        dp_usage_init(&u, true);
        dp_usage_feed(&u, sse, cut);
        dp_usage_feed(&u, sse + cut, n - cut);
        dp_usage_finish(&u);
        cr_assert(u.found, "split at %zu", cut);
        cr_assert_eq(u.prompt_tokens, 11);
        cr_assert_eq(u.completion_tokens, 2);
        cr_assert(u.done_seen);
        dp_usage_fini(&u);
    }
}

Test(dp_usage, sse_byte_by_byte)
{
    dp_usage u;
    dp_usage_init(&u, true);
    for (size_t i = 0; sse[i] != '\0'; i++)
        dp_usage_feed(&u, &sse[i], 1);
    dp_usage_finish(&u);
    cr_assert(u.found);
    cr_assert_eq(u.prompt_tokens, 11);
    dp_usage_fini(&u);
}

Test(dp_usage, sse_without_usage_finds_nothing)
{
    const char *s = "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"usage\":null}\n\n";
    dp_usage u;
    dp_usage_init(&u, true);
    dp_usage_feed(&u, s, strlen(s));
    dp_usage_finish(&u);
    cr_assert_not(u.found);
    dp_usage_fini(&u);
}

Test(dp_usage, over_long_sse_line_is_skipped_and_scanning_resumes)
{
    dp_usage u;
    static char big[DP_USAGE_MAX_LINE + 100];
    const char *tail = "\ndata: {\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n";

    memset(big, 'x', sizeof(big));
    dp_usage_init(&u, true);
    dp_usage_feed(&u, big, sizeof(big));
    dp_usage_feed(&u, tail, strlen(tail));
    dp_usage_finish(&u);
    cr_assert(u.found);
    cr_assert_eq(u.completion_tokens, 4);
    dp_usage_fini(&u);
}

Test(dp_usage, json_usage_is_read_from_the_tail)
{
    const char *j =
        "{\"id\":\"x\",\"choices\":[{\"message\":{\"content\":\"\\\"usage\\\" in text\"}}],"
        "\"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 6, \"total_tokens\": 11}}";
    size_t n = strlen(j);
    for (size_t cut = 0; cut <= n; cut += 7) {
        dp_usage u;
        dp_usage_init(&u, false);
        dp_usage_feed(&u, j, cut);
        dp_usage_feed(&u, j + cut, n - cut);
        dp_usage_finish(&u);
        cr_assert(u.found, "cut %zu", cut);
        cr_assert_eq(u.prompt_tokens, 5);
        cr_assert_eq(u.completion_tokens, 6);
        dp_usage_fini(&u);
    }
}

Test(dp_usage, json_body_larger_than_the_window_keeps_only_the_tail)
{
    dp_usage u;
    static char filler[3 * DP_USAGE_TAIL];
    const char *end = "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";

    memset(filler, ' ', sizeof(filler));
    dp_usage_init(&u, false);
    dp_usage_feed(&u, "{\"a\":\"", 6);
    for (int i = 0; i < 3; i++)
        dp_usage_feed(&u, filler, sizeof(filler));
    dp_usage_feed(&u, "\",", 2);
    dp_usage_feed(&u, end, strlen(end));
    cr_assert_leq(u.pending.len, 2 * DP_USAGE_TAIL);
    dp_usage_finish(&u);
    cr_assert(u.found);
    cr_assert_eq(u.completion_tokens, 2);
    dp_usage_fini(&u);
}
