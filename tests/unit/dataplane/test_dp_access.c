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

Test(dp_access, batches_are_whole_lines_of_at_most_pipe_buf)
{
    int p[2];
    gw_buf pending;
    char line[300], back[65536];
    size_t total = 0, got = 0;
    ssize_t r;

    cr_assert_eq(pipe(p), 0);
    gw_buf_init(&pending, 16384);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "req=%03d %0200d\n", i, 0);
        total += (size_t)n;
        cr_assert_eq(dp_access_append(p[1], &pending, line, (size_t)n), 0);
    }
    cr_assert_eq(dp_access_flush(p[1], &pending), 0);
    cr_assert_eq(pending.len, 0);
    close(p[1]);
    while ((r = read(p[0], back + got, sizeof(back) - got)) > 0)
        got += (size_t)r;
    close(p[0]);
    cr_assert_eq(got, total, "every line arrives exactly once");
    cr_assert_eq(strncmp(back, "req=000 ", 8), 0);
    cr_assert_eq(back[got - 1], '\n');
    cr_assert_not_null(strstr(back, "req=099 "));
    gw_buf_fini(&pending);
}

Test(dp_access, a_failed_write_counts_its_lines_as_dropped)
{
    gw_buf pending;

    gw_buf_init(&pending, 4096);
    cr_assert_eq(dp_access_append(-2, &pending, "a=1\n", 4), 0);
    cr_assert_eq(dp_access_append(-2, &pending, "b=2\n", 4), 0);
    /* fd -2 is "off" for dp_access_write (fd < 0): nothing fails. */
    cr_assert_eq(dp_access_flush(-2, &pending), 0);
    cr_assert_eq(dp_access_append(1000, &pending, "c=3\n", 4), 0);
    cr_assert_eq(dp_access_flush(1000, &pending), 1, "EBADF drops the one pending line");
    gw_buf_fini(&pending);
}
