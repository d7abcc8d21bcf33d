/* Unit tests for ctl_mirror: the controller re-reads the mirror file,
 * validates it with the worker's parser, calls back only on a change, keeps
 * the last good text on a bad file (counted) and turns off on a missing
 * one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_mirror.h"
#include "ut_file.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(ctl_mirror, .fini = fini, .timeout = 10);

typedef struct seen {
    int calls;
    char last[256];
    bool last_null;
} seen;

static void
on_change(const char *text, void *arg)
{
    seen *s = arg;

    s->calls++;
    s->last_null = text == NULL;
    snprintf(s->last, sizeof(s->last), "%s", text ? text : "");
}

/* llmgw_controller_config_errors_total{source="mirror"} as rendered. */
static bool
errors_are(ctl_metrics *metrics, const char *value)
{
    gw_buf b;
    char line[128];
    bool found;

    snprintf(line, sizeof(line), "llmgw_controller_config_errors_total{source=\"mirror\"} %s\n",
             value);
    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(ctl_metrics_render(metrics, &b), GW_OK);
    cr_assert_eq(gw_buf_append(&b, "", 1), GW_OK);
    found = strstr(b.data, line) != NULL;
    gw_buf_fini(&b);
    return found;
}

static const char *const ON = "{\"Enable\":true,\"Target\":\"http://m:8000\",\"Ratio\":100}";

Test(ctl_mirror, reload_publishes_changes_and_keeps_the_last_good_file)
{
    gw_loop *loop;
    ctl_metrics *metrics = ctl_metrics_new("test");
    char path[] = "/tmp/ctl_mirror_test_XXXXXX";
    int fd = mkstemp(path);
    seen s = {0};
    ctl_mirror *m;

    cr_assert_geq(fd, 0);
    close(fd);
    ut_write_file(path, ON);
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
    m = ctl_mirror_new(loop, path, 100000, metrics, on_change, &s);
    cr_assert_str_eq(ctl_mirror_text(m), ON, "read at start");
    cr_assert(errors_are(metrics, "0"));
    cr_assert_eq(s.calls, 0, "the first read is asked for, not called back");

    ctl_mirror_reload(m);
    cr_assert_eq(s.calls, 0, "unchanged: no new generation");

    ut_write_file(path, "{\"Enable\":true,\"Ratio\":500}");
    ctl_mirror_reload(m);
    cr_assert_eq(s.calls, 0, "invalid: nothing published");
    cr_assert_str_eq(ctl_mirror_text(m), ON, "the last good config stays");
    ut_write_file(path, "{\"Enable\":tru");
    ctl_mirror_reload(m);
    cr_assert_str_eq(ctl_mirror_text(m), ON);
    cr_assert(errors_are(metrics, "2"), "each bad read counted");

    ut_write_file(path, "{\"Enable\":false}");
    ctl_mirror_reload(m);
    cr_assert_eq(s.calls, 1);
    cr_assert_str_eq(s.last, "{\"Enable\":false}");

    unlink(path);
    ctl_mirror_reload(m);
    cr_assert_eq(s.calls, 2);
    cr_assert(s.last_null, "missing file: no mirror");
    cr_assert_null(ctl_mirror_text(m));
    ctl_mirror_reload(m);
    cr_assert_eq(s.calls, 2, "still missing: nothing new");

    ctl_mirror_free(m);
    gw_loop_free(loop);
    ctl_metrics_free(metrics);
}

Test(ctl_mirror, empty_path_is_never_read_and_a_bad_first_file_is_no_mirror)
{
    gw_loop *loop;
    char path[] = "/tmp/ctl_mirror_bad_XXXXXX";
    int fd = mkstemp(path);
    ctl_mirror *m;

    cr_assert_geq(fd, 0);
    close(fd);
    ut_write_file(path, "[1]");
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
    m = ctl_mirror_new(loop, "", 100, NULL, NULL, NULL);
    cr_assert_null(ctl_mirror_text(m));
    ctl_mirror_free(m);
    m = ctl_mirror_new(loop, path, 100, NULL, NULL, NULL);
    cr_assert_null(ctl_mirror_text(m), "no good config yet: no mirror");
    ctl_mirror_free(m);
    unlink(path);
    gw_loop_free(loop);
}
