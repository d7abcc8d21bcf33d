/* Unit tests for dp_mirror: the mirror file's parser (seed 004's keys, case
 * and snake_case spellings, every refusal named), the Ratio draw, and the
 * hot reload on a real loop: missing, applied, unchanged, invalid (the last
 * good config stays), removed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dp_mirror.h"
#include "ut_file.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_mirror, .fini = fini, .timeout = 10);

static void
expect_refused(const char *json, const char *needle)
{
    gw_mirror_cfg c;
    char why[256];

    cr_assert_eq(gw_mirror_cfg_parse(json, strlen(json), &c, why, sizeof(why)), GW_EINVAL,
                 "accepted: %s", json);
    cr_assert(strstr(why, needle) != NULL, "'%s' lacks '%s'", why, needle);
    cr_assert_null(c.target);
    cr_assert_null(c.authorization);
}

Test(dp_mirror, seed_example_parses)
{
    const char *j = "{\"Enable\": true, \"Target\": \"http://mirror-target:8000/\", \"Ratio\": 10,"
                    " \"Timeout\": 5000, \"Authorization\": \"\", \"EnableLog\": true}";
    gw_mirror_cfg c;
    char why[256];

    cr_assert_eq(gw_mirror_cfg_parse(j, strlen(j), &c, why, sizeof(why)), GW_OK, "%s", why);
    cr_assert(c.enable);
    cr_assert_str_eq(c.target, "http://mirror-target:8000");
    cr_assert_float_eq(c.ratio, 10.0, 1e-9);
    cr_assert_float_eq(c.timeout_ms, 5000.0, 1e-9);
    cr_assert_null(c.authorization, "empty = keep the client's");
    cr_assert(c.enable_log);
    gw_mirror_cfg_fini(&c);

    j = "{\"enable\":false,\"target\":\"https://m\",\"ratio\":0.5,\"authorization\":\"Bearer k\","
        "\"enable_log\":true}";
    cr_assert_eq(gw_mirror_cfg_parse(j, strlen(j), &c, why, sizeof(why)), GW_OK, "%s", why);
    cr_assert_not(c.enable);
    cr_assert_str_eq(c.authorization, "Bearer k");
    cr_assert(c.enable_log, "snake_case accepted");
    gw_mirror_cfg_fini(&c);

    j = "{\"Enable\":false,\"Target\":\"http://mirror-target:8000\",\"Ratio\":0}"; /* seed */
    cr_assert_eq(gw_mirror_cfg_parse(j, strlen(j), &c, why, sizeof(why)), GW_OK, "%s", why);
    gw_mirror_cfg_fini(&c);
}

Test(dp_mirror, every_refusal_names_the_key)
{
    expect_refused("", "not JSON");
    expect_refused("[]", "must be a JSON object");
    expect_refused("{\"Enable\":1}", "Enable: must be true or false");
    expect_refused("{\"Target\":3}", "Target: must be a string");
    expect_refused("{\"Target\":\"mirror:8000\"}", "Target: \"mirror:8000\" is not");
    expect_refused("{\"Enable\":true}", "Target: required when Enable is true");
    expect_refused("{\"Ratio\":101}", "Ratio: must be a number from 0 to 100");
    expect_refused("{\"Ratio\":-1}", "Ratio");
    expect_refused("{\"Ratio\":\"10\"}", "Ratio");
    expect_refused("{\"Timeout\":-5}", "Timeout: must be milliseconds");
    expect_refused("{\"Authorization\":\"a\\nb\"}", "Authorization: must be a string");
    expect_refused("{\"EnableLog\":\"yes\"}", "EnableLog: must be true or false");
    expect_refused("{\"Enabled\":true}", "Enabled: unknown key");
    expect_refused("{\"Target\":\"http://a\",\"Authorization\":\"k\",\"Ratio\":300}", "Ratio");
    expect_refused("{\"Enable\":true,\"Enable\":false}", "not JSON");
}

static double
child_value(gw_metric_fam *fam, const char *label)
{
    return gw_metric_value(gw_metric_child(fam, label));
}

/* A mirror on a real loop reading <path> (a fresh name, no file yet). */
typedef struct fx {
    gw_loop *loop;
    gw_metrics *reg;
    gw_metric_fam *reqs, *reloads;
    dp_mirror *m;
    char path[64];
} fx;

static void
fx_init(fx *f)
{
    int fd;
    dp_mirror_opts o = {.path = f->path,
                        .reload_interval_ms = 100000,
                        .max_inflight = 2,
                        .connect_timeout_ms = 100,
                        .default_timeout_ms = 100};

    snprintf(f->path, sizeof(f->path), "/tmp/dp_mirror_test_XXXXXX");
    fd = mkstemp(f->path);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(f->path);
    f->reg = gw_metrics_new();
    cr_assert_eq(
        gw_metrics_counter(f->reg, "r", "r", (const char *const[]){"result", NULL}, &f->reqs),
        GW_OK);
    cr_assert_eq(
        gw_metrics_counter(f->reg, "l", "l", (const char *const[]){"result", NULL}, &f->reloads),
        GW_OK);
    o.requests = f->reqs;
    o.reloads = f->reloads;
    cr_assert_eq(gw_loop_new(&f->loop), GW_OK);
    cr_assert_eq(dp_mirror_new(f->loop, &o, &f->m), GW_OK);
}

static void
fx_fini(fx *f)
{
    dp_mirror_free(f->m);
    gw_loop_free(f->loop);
    gw_metrics_free(f->reg);
    unlink(f->path);
}

Test(dp_mirror, hot_reload_keeps_the_last_good_config)
{
    fx f;
    dp_mirror *m;
    gw_metric_fam *reqs, *reloads;
    const char *path;
    unsigned wanted = 0;

    fx_init(&f);
    m = f.m;
    reqs = f.reqs;
    reloads = f.reloads;
    path = f.path;
    cr_assert_not(dp_mirror_enabled(m), "missing file: off");
    cr_assert_float_eq(child_value(reloads, "missing"), 1, 1e-9);

    ut_write_file(path, "{\"Enable\":true,\"Target\":\"http://127.0.0.1:1\",\"Ratio\":25}");
    dp_mirror_reload(m);
    cr_assert(dp_mirror_enabled(m));
    cr_assert_float_eq(child_value(reloads, "applied"), 1, 1e-9);
    for (uint32_t i = 0; i < 1000; i++)
        wanted += dp_mirror_wants(m, i * 4294967u);
    cr_assert(wanted >= 240 && wanted <= 260, "Ratio 25: %u of 1000", wanted);
    dp_mirror_reload(m);
    cr_assert_float_eq(child_value(reloads, "applied"), 1, 1e-9, "unchanged: not re-applied");

    ut_write_file(path, "{\"Enable\":true,\"Ratio\":250}");
    dp_mirror_reload(m);
    cr_assert(dp_mirror_enabled(m), "an invalid file keeps the last good config");
    cr_assert_float_eq(child_value(reloads, "invalid"), 1, 1e-9);

    /* Copies over the in-flight cap drop (the target refuses connections;
     * the transfers are cancelled by dp_mirror_free). */
    ut_write_file(path, "{\"Enable\":true,\"Target\":\"http://127.0.0.1:1\",\"Ratio\":100}");
    dp_mirror_reload(m);
    for (int i = 0; i < 3; i++)
        dp_mirror_send(m, "/v1/chat/completions", "id", "{}", 2,
                       curl_slist_append(NULL, "Authorization: Bearer c"));
    cr_assert_eq(dp_mirror_inflight(m), 2);
    cr_assert_float_eq(child_value(reqs, "sent"), 2, 1e-9);
    cr_assert_float_eq(child_value(reqs, "dropped"), 1, 1e-9);

    unlink(path);
    dp_mirror_reload(m);
    cr_assert_not(dp_mirror_enabled(m), "a removed file turns it off");
    cr_assert_not(dp_mirror_wants(m, 0));
    fx_fini(&f);
}

/* The controller's config from the snapshot: applied while the worker has
 * no file of its own, ignored while one exists, back when it goes; an
 * invalid one keeps the last good config; a snapshot without one turns the
 * mirror off. */
Test(dp_mirror, snapshot_config_applies_without_a_file_of_its_own)
{
    fx f;
    dp_mirror *m;
    gw_metric_fam *reloads;
    const char *path;

    fx_init(&f);
    m = f.m;
    reloads = f.reloads;
    path = f.path;
    cr_assert_not(dp_mirror_enabled(m));

    dp_mirror_set_snapshot(m, "{\"Enable\":true,\"Target\":\"http://127.0.0.1:1\",\"Ratio\":100}");
    cr_assert(dp_mirror_enabled(m), "no file: the controller's config applies");
    cr_assert(dp_mirror_wants(m, 4294967295u));
    cr_assert_float_eq(child_value(reloads, "applied"), 1, 1e-9);
    dp_mirror_set_snapshot(m, "{\"Enable\":true,\"Target\":\"http://127.0.0.1:1\",\"Ratio\":100}");
    cr_assert_float_eq(child_value(reloads, "applied"), 1, 1e-9, "same text: nothing to do");

    /* The worker's own file wins while it exists. */
    ut_write_file(path, "{\"Enable\":false}");
    dp_mirror_reload(m);
    cr_assert_not(dp_mirror_enabled(m), "the worker's own file wins");
    dp_mirror_set_snapshot(m, "{\"Enable\":true,\"Target\":\"http://127.0.0.1:2\",\"Ratio\":50}");
    cr_assert_not(dp_mirror_enabled(m), "still the file's config");
    unlink(path);
    dp_mirror_reload(m);
    cr_assert(dp_mirror_enabled(m), "file gone: the controller's config again");
    cr_assert_not(dp_mirror_wants(m, 4294967295u), "Ratio 50 from the latest snapshot");

    /* Invalid from the snapshot (the controller validated it: "cannot
     * happen"): the last good stays, counted. */
    dp_mirror_set_snapshot(m, "{\"Enable\":true,\"Ratio\":500}");
    cr_assert(dp_mirror_enabled(m));
    cr_assert_float_eq(child_value(reloads, "invalid"), 1, 1e-9);

    dp_mirror_set_snapshot(m, NULL);
    cr_assert_not(dp_mirror_enabled(m), "the controller's mirror went away: off");
    fx_fini(&f);
}
