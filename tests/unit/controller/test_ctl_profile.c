/* Unit tests for ctl_profile: the model.aibrix.ai/config JSON parser. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_profile.h"
#include "ut_leak.h"

TestSuite(ctl_profile, .fini = ut_leak_check, .timeout = 10);

/* Parses <json>; on failure returns the error and puts the message in *why. */
static gw_err
parse(const char *json, pm_model *m, char **why)
{
    *why = NULL;
    return ctl_profile_parse(json, strlen(json), m, why);
}

/* Asserts <json> is refused with GW_EINVAL and a message containing <needle>. */
static void
expect_refused(const char *json, const char *needle)
{
    pm_model m = {0};
    char *why = NULL;

    cr_assert_eq(parse(json, &m, &why), GW_EINVAL, "accepted: %s", json);
    cr_assert_not_null(why);
    cr_assert(strstr(why, needle) != NULL, "message \"%s\" lacks \"%s\"", why, needle);
    cr_assert_null(m.profiles, "out must be untouched on error");
    cr_assert_eq(m.n_profiles, 0);
    cr_assert_null(m.locked_strategy);
    cr_assert_null(m.default_profile);
    free(why);
}

Test(ctl_profile, full_config_fills_every_field)
{
    const char *json = "{\"lockedRoutingStrategy\":\"prefix-cache\",\"defaultProfile\":\"fast\","
                       "\"profiles\":{\"fast\":{\"routingStrategy\":\"least-request\","
                       "\"requestsPerSecond\":25,\"routingConfig\":{\"b\": 1, \"a\": [true, "
                       "null]}},\"default\":{\"routingStrategy\":\"random\"}}}";
    pm_model m = {.name = "keep"};
    char *why;

    cr_assert_eq(parse(json, &m, &why), GW_OK, "%s", why);
    cr_assert_str_eq(m.name, "keep", "name is not touched");
    cr_assert_str_eq(m.locked_strategy, "prefix-cache");
    cr_assert_str_eq(m.default_profile, "fast");
    cr_assert_eq(m.n_profiles, 2);
    /* Sorted by name. */
    cr_assert_str_eq(m.profiles[0].name, "default");
    cr_assert_str_eq(m.profiles[0].routing_strategy, "random");
    cr_assert_eq(m.profiles[0].requests_per_second, 0);
    cr_assert_null(m.profiles[0].routing_config_json);
    cr_assert_str_eq(m.profiles[1].name, "fast");
    cr_assert_str_eq(m.profiles[1].routing_strategy, "least-request");
    cr_assert_eq(m.profiles[1].requests_per_second, 25);
    ctl_profile_clear(&m);
    cr_assert_str_eq(m.name, "keep");
    cr_assert_null(m.profiles);
}

Test(ctl_profile, routing_config_is_kept_as_compact_json_in_key_order)
{
    const char *json = "{\"profiles\":{\"p\":{\"routingConfig\": { \"promptTokensGte\" : 10 ,"
                       "  \"combined\": true, \"policy\": \"x y\" } }}}";
    pm_model m = {0};
    char *why;

    cr_assert_eq(parse(json, &m, &why), GW_OK, "%s", why);
    cr_assert_str_eq(m.profiles[0].routing_config_json,
                     "{\"promptTokensGte\":10,\"combined\":true,\"policy\":\"x y\"}");
    ctl_profile_clear(&m);
}

Test(ctl_profile, unknown_keys_are_ignored_at_every_level)
{
    const char *json = "{\"future\":{\"x\":1},\"profiles\":{\"default\":{\"routingStrategy\":"
                       "\"random\",\"newKnob\":[1,2]}},\"alsoNew\":3}";
    pm_model m = {0};
    char *why;

    cr_assert_eq(parse(json, &m, &why), GW_OK, "%s", why);
    cr_assert_eq(m.n_profiles, 1);
    cr_assert_str_eq(m.profiles[0].routing_strategy, "random");
    ctl_profile_clear(&m);
}

Test(ctl_profile, null_and_empty_strings_count_as_absent)
{
    const char *json = "{\"lockedRoutingStrategy\":null,\"defaultProfile\":\"\",\"profiles\":{"
                       "\"default\":{\"routingStrategy\":\"\",\"requestsPerSecond\":null,"
                       "\"routingConfig\":null}}}";
    pm_model m = {0};
    char *why;

    cr_assert_eq(parse(json, &m, &why), GW_OK, "%s", why);
    cr_assert_null(m.locked_strategy);
    cr_assert_null(m.default_profile);
    cr_assert_null(m.profiles[0].routing_strategy);
    cr_assert_eq(m.profiles[0].requests_per_second, 0);
    cr_assert_null(m.profiles[0].routing_config_json);
    ctl_profile_clear(&m);
}

Test(ctl_profile, duplicate_keys_keep_the_last_like_go)
{
    const char *json = "{\"profiles\":{\"default\":{\"routingStrategy\":\"a\","
                       "\"routingStrategy\":\"b\"}}}";
    pm_model m = {0};
    char *why;

    cr_assert_eq(parse(json, &m, &why), GW_OK, "%s", why);
    cr_assert_str_eq(m.profiles[0].routing_strategy, "b");
    ctl_profile_clear(&m);
}

Test(ctl_profile, parses_from_a_buffer_without_a_terminator)
{
    const char text[] = "{\"profiles\":{\"default\":{}}}GARBAGE";
    pm_model m = {0};
    char *why = NULL;

    cr_assert_eq(ctl_profile_parse(text, strlen(text) - 7, &m, &why), GW_OK, "%s", why);
    cr_assert_eq(m.n_profiles, 1);
    ctl_profile_clear(&m);
}

Test(ctl_profile, invalid_json_is_einval_with_position)
{
    expect_refused("{\"profiles\": {", "invalid JSON at line 1");
    expect_refused("", "invalid JSON");
    expect_refused("\"just a string\"", "invalid JSON");
}

Test(ctl_profile, top_level_must_be_an_object)
{
    expect_refused("[1,2]", "$: must be a JSON object");
}

Test(ctl_profile, profiles_is_required_non_empty_object)
{
    expect_refused("{}", "$.profiles: required");
    expect_refused("{\"profiles\":null}", "$.profiles: required");
    expect_refused("{\"profiles\":[]}", "$.profiles: must be an object");
    expect_refused("{\"profiles\":{}}", "$.profiles: must not be empty");
}

Test(ctl_profile, top_level_strings_must_be_strings)
{
    expect_refused("{\"lockedRoutingStrategy\":1,\"profiles\":{\"d\":{}}}",
                   "$.lockedRoutingStrategy: must be a string");
    expect_refused("{\"defaultProfile\":true,\"profiles\":{\"d\":{}}}",
                   "$.defaultProfile: must be a string");
}

Test(ctl_profile, profile_must_be_an_object)
{
    expect_refused("{\"profiles\":{\"fast\":\"random\"}}", "$.profiles.fast: must be an object");
}

Test(ctl_profile, profile_fields_are_type_checked_with_their_path)
{
    expect_refused("{\"profiles\":{\"d\":{\"routingStrategy\":[\"a\"]}}}",
                   "$.profiles.d.routingStrategy: must be a string");
    expect_refused("{\"profiles\":{\"d\":{\"requestsPerSecond\":-1}}}",
                   "$.profiles.d.requestsPerSecond: must be a non-negative integer");
    expect_refused("{\"profiles\":{\"d\":{\"requestsPerSecond\":1.5}}}",
                   "$.profiles.d.requestsPerSecond: must be a non-negative integer");
    expect_refused("{\"profiles\":{\"d\":{\"requestsPerSecond\":\"5\"}}}",
                   "$.profiles.d.requestsPerSecond: must be a non-negative integer");
    expect_refused("{\"profiles\":{\"d\":{\"routingConfig\":\"{}\"}}}",
                   "$.profiles.d.routingConfig: must be an object");
}

Test(ctl_profile, odd_profile_names_are_quoted_in_paths)
{
    expect_refused("{\"profiles\":{\"a.b c\":{\"requestsPerSecond\":-3}}}",
                   "$.profiles[\"a.b c\"].requestsPerSecond");
}

Test(ctl_profile, an_error_in_a_later_profile_frees_earlier_ones)
{
    /* LeakSanitizer (suite fini) catches a leak of the first profile. */
    expect_refused("{\"profiles\":{\"a\":{\"routingStrategy\":\"x\",\"routingConfig\":{\"k\":1}},"
                   "\"b\":{\"routingStrategy\":5}}}",
                   "$.profiles.b.routingStrategy");
}

Test(ctl_profile, empty_profile_names_are_refused)
{
    expect_refused("{\"profiles\":{\"\":{}}}", "profile names must not be empty");
}

Test(ctl_profile, limits_are_enforced)
{
    char *big;
    size_t n = 0, cap = 64 * 1024 + 256;

    /* 65 profiles: one over PM_MAX_PROFILES. */
    big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{\"profiles\":{");
    for (int i = 0; i < 65; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s\"p%d\":{}", i ? "," : "", i);
    snprintf(big + n, cap - n, "}}");
    expect_refused(big, "more than 64 profiles");

    /* A strategy one byte over PM_MAX_STR. */
    n = (size_t)snprintf(big, cap, "{\"profiles\":{\"d\":{\"routingStrategy\":\"");
    memset(big + n, 'x', PM_MAX_STR + 1);
    n += PM_MAX_STR + 1;
    snprintf(big + n, cap - n, "\"}}}");
    expect_refused(big, "routingStrategy: longer than");

    /* routingConfig over PM_MAX_JSON once compacted. */
    n = (size_t)snprintf(big, cap, "{\"profiles\":{\"d\":{\"routingConfig\":{\"k\":\"");
    memset(big + n, 'y', PM_MAX_JSON);
    n += PM_MAX_JSON;
    snprintf(big + n, cap - n, "\"}}}}");
    expect_refused(big, "routingConfig: larger than");
    free(big);
}

Test(ctl_profile, from_json_takes_a_decoded_value)
{
    json_t *root = json_pack("{s:{s:{s:s, s:i}}}", "profiles", "default", "routingStrategy",
                             "throughput", "requestsPerSecond", 7);
    pm_model m = {0};
    char *why = NULL;

    cr_assert_eq(ctl_profile_from_json(root, &m, &why), GW_OK, "%s", why);
    cr_assert_str_eq(m.profiles[0].routing_strategy, "throughput");
    cr_assert_eq(m.profiles[0].requests_per_second, 7);
    json_decref(root);
    ctl_profile_clear(&m);
}
