/* Unit tests for dp_access: the access-log line format and stream opening. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_access.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_access, .fini = fini, .timeout = 10);

Test(dp_access, formats_one_logfmt_line_with_every_field)
{
    dp_access_rec r = {.wall_ms = 1795000000123ull,
                       .id = "abc-1",
                       .path = "/v1/chat/completions",
                       .model = "llama",
                       .strategy = "least-kv-cache:2,least-request:1",
                       .profile = "default",
                       .pod = "pod-1",
                       .ep = "10.0.0.2:8000",
                       .status = 200,
                       .dur_ms = 812.44,
                       .ttfb_ms = 95.25,
                       .prompt_tokens = 42,
                       .completion_tokens = 128,
                       .tries = 1,
                       .fallback = NULL};
    char line[DP_ACCESS_LINE_MAX];
    size_t n = dp_access_format(&r, line, sizeof(line));

    cr_assert_eq(n, strlen(line));
    cr_assert_str_eq(line, "ts=2026-11-18T11:06:40.123Z req=abc-1 path=/v1/chat/completions "
                           "model=llama strategy=least-kv-cache:2,least-request:1 "
                           "profile=default pod=pod-1 ep=10.0.0.2:8000 status=200 dur_ms=812.4 "
                           "ttfb_ms=95.2 prompt_tokens=42 completion_tokens=128 tries=1 "
                           "fallback=-\n");
}

Test(dp_access, missing_fields_are_dashes_and_odd_values_are_quoted)
{
    dp_access_rec r = {.wall_ms = 0,
                       .id = "x",
                       .path = "/v1/completions",
                       .model = "my model \"q\"",
                       .status = 499,
                       .dur_ms = 1,
                       .ttfb_ms = -1,
                       .prompt_tokens = -1,
                       .completion_tokens = -1,
                       .fallback = "no_metrics"};
    char line[DP_ACCESS_LINE_MAX];

    dp_access_format(&r, line, sizeof(line));
    cr_assert(strstr(line, "model=\"my model \\\"q\\\"\" strategy=- profile=- pod=- ep=- "
                           "status=499 dur_ms=1.0 ttfb_ms=- prompt_tokens=- "
                           "completion_tokens=- tries=0 fallback=no_metrics\n") != NULL,
              "%s", line);
    cr_assert_eq(strchr(line, '\n'), line + strlen(line) - 1, "one line");
}

Test(dp_access, truncated_lines_still_end_with_a_newline)
{
    dp_access_rec r = {.id = "x", .path = "/v1/completions", .model = "m", .status = 200};
    char line[40];
    size_t n = dp_access_format(&r, line, sizeof(line));

    cr_assert_eq(n, sizeof(line) - 1);
    cr_assert_eq(line[n - 1], '\n');
}

Test(dp_access, opens_stdout_off_and_files_in_append_mode)
{
    char path[] = "/tmp/llmgw-access-XXXXXX";
    int tmp = mkstemp(path), fd = -2;
    char buf[64] = {0};

    cr_assert_geq(tmp, 0);
    cr_assert_eq(write(tmp, "old\n", 4), 4);
    close(tmp);
    cr_assert_eq(dp_access_open("-", &fd), GW_OK);
    cr_assert_eq(fd, 1);
    cr_assert_eq(dp_access_open("off", &fd), GW_OK);
    cr_assert_eq(fd, -1);
    cr_assert(dp_access_write(-1, "x\n", 2), "off swallows lines");
    cr_assert_eq(dp_access_open(path, &fd), GW_OK);
    cr_assert(dp_access_write(fd, "new\n", 4));
    close(fd);
    fd = open(path, O_RDONLY);
    cr_assert_eq(read(fd, buf, sizeof(buf) - 1), 8);
    cr_assert_str_eq(buf, "old\nnew\n");
    close(fd);
    unlink(path);
    cr_assert_eq(dp_access_open("/nonexistent-dir/x.log", &fd), GW_ESYS);
}
