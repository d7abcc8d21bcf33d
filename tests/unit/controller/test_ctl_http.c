/* Unit tests for ctl_http's /debug/snapshot document (pure rendering). The
 * endpoints' HTTP behaviour is exercised end to end by test_ctl_publish and
 * the e2e suite. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_compile.h"
#include "ctl_http.h"
#include "ctl_src_file.h"
#include "ctl_store.h"
#include "ut_leak.h"

TestSuite(ctl_http, .fini = ut_leak_check, .timeout = 10);

static json_t *
render(const pm_snapshot *s, uint64_t epoch, const pm_load *ld, unsigned workers)
{
    char *text = ctl_http_snapshot_json(s, epoch, ld, workers);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);

    cr_assert_not_null(j, "not JSON (%s): %s", err.text, text);
    free(text);
    return j;
}

Test(ctl_http, no_snapshot_renders_gen_zero)
{
    json_t *j = render(NULL, 0xabcULL, NULL, 0);

    cr_assert_eq(json_integer_value(json_object_get(j, "gen")), 0);
    cr_assert_str_eq(json_string_value(json_object_get(j, "epoch")), "0000000000000abc");
    cr_assert_eq(json_array_size(json_object_get(j, "models")), 0);
    cr_assert_eq(json_array_size(json_object_get(j, "endpoints")), 0);
    cr_assert(json_is_null(json_object_get(j, "loadGen")));
    cr_assert(json_is_null(json_object_get(j, "traffic")));
    cr_assert(json_is_null(json_object_get(j, "mirror")));
    json_decref(j);
}

Test(ctl_http, route_config_and_mirror_are_shown_redacted)
{
    pm_snapshot s = {.env = {.gen = 3},
                     .traffic = {.policy = "weight",
                                 .config_json = "[{\"base_url\":\"http://x\",\"api_key\":"
                                                "\"sk-secret\",\"weight\":1}]"},
                     .mirror = {.config_json = "{\"Authorization\":\"Bearer mirror-secret\"}"}};
    char *text = ctl_http_snapshot_json(&s, 1, NULL, 0);
    json_t *j = json_loads(text, 0, NULL);

    cr_assert_not_null(j);
    cr_assert_null(strstr(text, "sk-secret"), "api key in the dump: %s", text);
    cr_assert_null(strstr(text, "mirror-secret"));
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "traffic"), "policy")),
                     "weight");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "traffic"), "config")),
                     "<redacted>");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "mirror"), "config")),
                     "<redacted>");
    free(text);
    json_decref(j);
}

Test(ctl_http, snapshot_and_load_are_rendered)
{
    const char *yaml = "gateway: {routingStrategy: random}\n"
                       "models:\n"
                       "  - name: m\n"
                       "    config: '{\"lockedRoutingStrategy\":\"pd\",\"profiles\":{\"d\":"
                       "{\"requestsPerSecond\":3,\"routingConfig\":{\"k\":[1]}}}}'\n"
                       "    endpoints: [{address: h, port: 5, adapters: [a], role: decode}]\n";
    pm_snapshot *set = NULL;
    char *why = NULL;
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(10, 0x1234);
    bool changed;
    pm_ep_load el = {.id = 1,
                     .inflight = 4,
                     .inflight_tokens = 40,
                     .running = -1,
                     .waiting = -1,
                     .kv_usage = -1,
                     .latency_ms = 12.5,
                     .ttft_ms = -1,
                     .tokens_per_s = 3,
                     .gpu_usage = 0.5,
                     .tpot_ms = -1,
                     .metrics_age_ms = 150,
                     .kv_capacity = 32768};
    pm_load ld = {.env = {.gen = 11}, .n_eps = 1, .eps = &el};
    json_t *j, *m, *ep, *load;

    cr_assert_eq(ctl_src_file_parse(yaml, strlen(yaml), "t", &set, &why), GW_OK, "%s", why);
    ctl_store_replace(st, CTL_SRC_FILE, set);
    cr_assert_eq(ctl_compile_run(c, st, 0, &changed), GW_OK);
    j = render(ctl_compile_current(c), ctl_compile_epoch(c), &ld, 2);

    cr_assert_eq(json_integer_value(json_object_get(j, "gen")), 11);
    cr_assert_str_eq(json_string_value(json_object_get(j, "epoch")), "0000000000001234");
    cr_assert_eq(json_integer_value(json_object_get(j, "workers")), 2);
    cr_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "settings"), "routingStrategy")),
        "random");
    m = json_array_get(json_object_get(j, "models"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(m, "name")), "m");
    cr_assert_str_eq(json_string_value(json_object_get(m, "lockedRoutingStrategy")), "pd");
    cr_assert(json_is_null(json_object_get(m, "defaultProfile")));
    cr_assert_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(m, "profiles"), "d"), "requestsPerSecond")),
                 3);
    cr_assert(json_is_array(json_object_get(
        json_object_get(json_object_get(json_object_get(m, "profiles"), "d"), "routingConfig"),
        "k")));
    ep = json_array_get(json_object_get(j, "endpoints"), 0);
    cr_assert_eq(json_integer_value(json_object_get(ep, "id")), 1);
    cr_assert_str_eq(json_string_value(json_object_get(ep, "pod")), "h:5");
    cr_assert_str_eq(json_string_value(json_object_get(ep, "role")), "decode");
    cr_assert(json_is_null(json_object_get(ep, "roleset")));
    cr_assert_eq(json_integer_value(json_object_get(ep, "metricPort")), 5);
    cr_assert(json_is_true(json_object_get(ep, "ready")));
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(ep, "adapters"), 0)), "a");
    load = json_object_get(ep, "load");
    cr_assert_eq(json_integer_value(json_object_get(load, "inflight")), 4);
    cr_assert_float_eq(json_real_value(json_object_get(load, "latencyMs")), 12.5, 1e-9);
    cr_assert(json_is_null(json_object_get(load, "kvUsage")), "unknown (-1) renders as null");
    cr_assert_float_eq(json_real_value(json_object_get(load, "gpuUsage")), 0.5, 1e-9);
    cr_assert(json_is_null(json_object_get(load, "tpotMs")));
    cr_assert_float_eq(json_real_value(json_object_get(load, "metricsAgeMs")), 150, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(load, "kvCapacity")), 32768, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(load, "tokensPerSecond")), 3, 1e-9);
    json_decref(j);
    ctl_compile_free(c);
    ctl_store_free(st);
}
