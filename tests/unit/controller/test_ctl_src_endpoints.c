/* Unit tests for ctl_src_endpoints: the --llm-backend-endpoints list. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_src_endpoints.h"
#include "ut_leak.h"

TestSuite(ctl_src_endpoints, .fini = ut_leak_check, .timeout = 10);

static void
expect_refused(const char *list, const char *model, const char *needle)
{
    pm_snapshot *set = (pm_snapshot *)0x1;
    char *why = NULL;

    cr_assert_eq(ctl_src_endpoints_parse(list, model, &set, &why), GW_EINVAL, "accepted: %s",
                 list != NULL ? list : "(null)");
    cr_assert_eq(set, (pm_snapshot *)0x1);
    cr_assert(why != NULL && strstr(why, needle) != NULL, "message \"%s\" lacks \"%s\"", why,
              needle);
    free(why);
}

Test(ctl_src_endpoints, parses_a_list_into_one_model)
{
    pm_snapshot *s = NULL;
    char *why = NULL;

    cr_assert_eq(ctl_src_endpoints_parse(" 10.0.0.1:8090, host-b ,[::1]:9000", "llama", &s, &why),
                 GW_OK, "%s", why);
    cr_assert_eq(s->n_models, 1);
    cr_assert_str_eq(s->models[0].name, "llama");
    cr_assert_eq(s->models[0].n_profiles, 0);
    cr_assert_eq(s->n_endpoints, 3);
    cr_assert_str_eq(s->endpoints[0].ip, "10.0.0.1");
    cr_assert_eq(s->endpoints[0].port, 8090);
    cr_assert_str_eq(s->endpoints[0].pod, "10.0.0.1:8090");
    cr_assert_str_eq(s->endpoints[0].model, "llama");
    cr_assert_str_eq(s->endpoints[0].engine, "vllm");
    cr_assert(s->endpoints[0].ready);
    cr_assert_str_eq(s->endpoints[1].ip, "host-b");
    cr_assert_eq(s->endpoints[1].port, 80, "Llumnix's static default port");
    cr_assert_str_eq(s->endpoints[2].ip, "::1");
    cr_assert_str_eq(s->endpoints[2].pod, "[::1]:9000");
    pm_snapshot_free(s);
}

Test(ctl_src_endpoints, empty_lists_and_entries_are_refused)
{
    expect_refused("", "m", "--llm-backend-endpoints is empty");
    expect_refused("  ", "m", "--llm-backend-endpoints is empty");
    expect_refused(NULL, "m", "--llm-backend-endpoints is empty");
    expect_refused("a:1,,b:2", "m", "entry 2 is empty");
    expect_refused("a:1,", "m", "entry 2 is empty");
}

Test(ctl_src_endpoints, bad_entries_are_named)
{
    expect_refused("a:1,b:x", "m", "entry 2 \"b:x\": port must be a number in 1..65535");
    expect_refused("a:70000", "m", "entry 1 \"a:70000\": port must be");
    expect_refused("a:0", "m", "port must be");
    expect_refused(":80", "m", "entry 1 \":80\": empty host");
    expect_refused("::1:80", "m", "IPv6 addresses need brackets");
    expect_refused("[::1", "m", "missing ']'");
    expect_refused("[a]:1", "m", "brackets are only for IPv6");
    expect_refused("a/b:1", "m", "invalid host");
}

Test(ctl_src_endpoints, duplicates_are_refused)
{
    expect_refused("a:80,b:1,a", "m", "entry 3 \"a\" repeats entry 1");
}

Test(ctl_src_endpoints, the_model_name_is_required)
{
    expect_refused("a:1", "", "--llm-backend-model");
}
