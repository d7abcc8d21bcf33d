/* Unit tests for gw_route_cfg (the parser) and dp_traffic: every refusal
 * of --route-policy/--route-config names its flag or field; weight and
 * prefix matching (longest stem, exact beats wildcard, ties to the earlier
 * entry; weights summing past 32 bits refused); the fallback chain in config
 * order; URL joining; the Authorization swap; the snapshot's route config (shared,
 * last good kept). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "dp_traffic.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_traffic, .fini = fini, .timeout = 10);

static void
expect_refused(const char *policy, const char *json, const char *needle)
{
    gw_route_cfg t;
    char why[300];

    cr_assert_eq(gw_route_cfg_parse(policy, json, &t, why, sizeof(why)), GW_EINVAL, "accepted: %s",
                 json);
    cr_assert(strstr(why, needle) != NULL, "'%s' lacks '%s'", why, needle);
    cr_assert_eq(t.n, 0, "nothing left behind");
    cr_assert_null(t.eps);
}

static void
parse_ok(const char *policy, const char *json, gw_route_cfg *t)
{
    char why[300];

    cr_assert_eq(gw_route_cfg_parse(policy, json, t, why, sizeof(why)), GW_OK, "refused: %s", why);
}

Test(dp_traffic, empty_is_off)
{
    gw_route_cfg t;
    char why[64];

    cr_assert_eq(gw_route_cfg_parse("", "", &t, why, sizeof(why)), GW_OK);
    cr_assert_eq(t.policy, GW_ROUTE_OFF);
    cr_assert_eq(dp_traffic_pick(&t, "m", 1), -1);
    gw_route_cfg_fini(&t);
}

Test(dp_traffic, every_bad_flag_and_field_is_named)
{
    expect_refused("random", "[]", "--route-policy: 'random' is not weight or prefix");
    expect_refused("", "[{\"base_url\":\"local\"}]", "--route-policy: required");
    expect_refused("weight", "", "--route-config: required with --route-policy weight");
    expect_refused("weight", "[{", "--route-config: not JSON");
    expect_refused("weight", "{}", "--route-config: must be a JSON array");
    expect_refused("weight", "[]", "--route-config: must be a JSON array");
    expect_refused("weight", "[1]", "--route-config[0]: must be an object");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":1,\"wieght\":2}]",
                   "--route-config[0].wieght: unknown field");
    expect_refused("weight", "[{\"weight\":1}]", "--route-config[0].base_url: required");
    expect_refused("weight", "[{\"base_url\":5,\"weight\":1}]", "--route-config[0].base_url");
    expect_refused("weight", "[{\"base_url\":\"\",\"weight\":1}]", "--route-config[0].base_url");
    expect_refused("weight", "[{\"base_url\":\"vllm:8000\",\"weight\":1}]",
                   "--route-config[0].base_url: \"vllm:8000\" is neither");
    expect_refused("weight", "[{\"base_url\":\"http://\",\"weight\":1}]",
                   "--route-config[0].base_url");
    expect_refused("weight", "[{\"base_url\":\"http://a b\",\"weight\":1}]",
                   "--route-config[0].base_url");
    expect_refused("weight", "[{\"base_url\":\"http://a\",\"weight\":1,\"api_key\":7}]",
                   "--route-config[0].api_key: must be a string");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":1,\"api_key\":\"k\"}]",
                   "--route-config[0].api_key: only an external base_url");
    expect_refused("weight",
                   "[{\"base_url\":\"http://a\",\"weight\":1,\"api_key\":\"k\\r\\nX: y\"}]",
                   "--route-config[0].api_key: must not hold a line break");
    {
        char big[2200 + 200];
        snprintf(big, sizeof(big), "[{\"base_url\":\"http://a/%02100d\",\"weight\":1}]", 0);
        expect_refused("weight", big, "--route-config[0].base_url: longer than 2048 bytes");
        snprintf(big, sizeof(big),
                 "[{\"base_url\":\"http://a\",\"weight\":1,\"api_key\":\"%02100d\"}]", 0);
        expect_refused("weight", big, "--route-config[0].api_key: longer than 2048 bytes");
        snprintf(big, sizeof(big),
                 "[{\"base_url\":\"http://a\",\"weight\":1,\"model\":\"%02100d\"}]", 0);
        expect_refused("weight", big, "--route-config[0].model: longer than 2048 bytes");
    }
    expect_refused("weight", "[{\"base_url\":\"http://a\",\"weight\":1,\"model\":[]}]",
                   "--route-config[0].model: must be a string");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":1,\"model\":\"x\"}]",
                   "--route-config[0].model: only an external base_url");
    expect_refused("weight", "[{\"base_url\":\"http://a\",\"weight\":1,\"fallback\":\"yes\"}]",
                   "--route-config[0].fallback: must be true or false");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":1,\"fallback\":true}]",
                   "--route-config[0].fallback: the local pool cannot be a fallback");
    expect_refused("weight",
                   "[{\"base_url\":\"local\",\"weight\":1},{\"base_url\":\"local\","
                   "\"weight\":-1}]",
                   "--route-config[1].weight: must be an integer");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":1.5}]",
                   "--route-config[0].weight: must be an integer");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":\"50\"}]",
                   "--route-config[0].weight: must be an integer");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":0}]", "weights sum to 0");
    expect_refused("weight",
                   "[{\"base_url\":\"local\",\"weight\":1000000000},"
                   "{\"base_url\":\"http://a:1\",\"weight\":1000000000},"
                   "{\"base_url\":\"http://b:1\",\"weight\":1000000000},"
                   "{\"base_url\":\"http://c:1\",\"weight\":1000000000},"
                   "{\"base_url\":\"http://d:1\",\"weight\":1000000000}]",
                   "--route-config[4].weight: the weights sum above 4294967295");
    expect_refused("weight", "[{\"base_url\":\"local\",\"weight\":1,\"prefix\":\"*\"}]",
                   "--route-config[0].prefix: only with --route-policy prefix");
    expect_refused("prefix", "[{\"base_url\":\"local\",\"prefix\":\"*\",\"weight\":1}]",
                   "--route-config[0].weight: only with --route-policy weight");
    expect_refused("prefix", "[{\"base_url\":\"local\"}]", "--route-config[0].prefix: required");
    expect_refused("prefix", "[{\"base_url\":\"local\",\"prefix\":\"\"}]",
                   "--route-config[0].prefix: must be a non-empty string");
    expect_refused("prefix", "[{\"base_url\":\"local\",\"prefix\":\"Qwen/*-8B\"}]",
                   "'*' is allowed only at the end");
    expect_refused("prefix",
                   "[{\"base_url\":\"local\",\"prefix\":\"a*\"},{\"base_url\":\"local\","
                   "\"prefix\":\"a*\"}]",
                   "--route-config[1].prefix: \"a*\" repeats entry 0");
    expect_refused("prefix", "[{\"base_url\":\"local\",\"prefix\":\"a\",\"prefix\":\"b\"}]",
                   "--route-config: not JSON");
}

Test(dp_traffic, weight_split_follows_the_weights)
{
    gw_route_cfg t;
    unsigned hits[3] = {0};

    parse_ok("weight",
             "[{\"base_url\":\"local\",\"weight\":50},{\"base_url\":\"http://x:1/\",\"weight\":0,"
             "\"fallback\":true},{\"base_url\":\"https://y\",\"weight\":150}]",
             &t);
    cr_assert_eq(t.total_weight, 200);
    cr_assert(t.eps[0].local);
    cr_assert_str_eq(t.eps[1].base_url, "http://x:1", "trailing '/' dropped");
    cr_assert_str_eq(t.eps[2].label, "external-2");
    for (uint32_t r = 0; r < 2000; r++)
        hits[dp_traffic_pick(&t, "m", r)]++;
    cr_assert_eq(hits[0], 500, "rnd %% 200 < 50 a quarter of the time");
    cr_assert_eq(hits[1], 0, "weight 0 is never picked");
    cr_assert_eq(hits[2], 1500);
    gw_route_cfg_fini(&t);
    /* Weights up to the 32-bit draw: every entry is reachable. */
    parse_ok("weight",
             "[{\"base_url\":\"local\",\"weight\":1000000000},"
             "{\"base_url\":\"http://a:1\",\"weight\":1000000000},"
             "{\"base_url\":\"http://b:1\",\"weight\":1000000000},"
             "{\"base_url\":\"http://c:1\",\"weight\":1000000000}]",
             &t);
    cr_assert_eq(dp_traffic_pick(&t, "m", 3999999999u), 3);
    cr_assert_eq(dp_traffic_pick(&t, "m", 0), 0);
    gw_route_cfg_fini(&t);
}

Test(dp_traffic, prefix_longest_stem_exact_beats_wildcard_ties_to_first)
{
    gw_route_cfg t;

    parse_ok("prefix",
             "[{\"prefix\":\"Qwen/*\",\"base_url\":\"http://a\"},"
             "{\"prefix\":\"Qwen/Qwen3-*\",\"base_url\":\"local\"},"
             "{\"prefix\":\"Qwen/Qwen3-8B\",\"base_url\":\"http://b\"},"
             "{\"prefix\":\"*\",\"base_url\":\"http://c\"},"
             "{\"base_url\":\"http://e\",\"fallback\":true}]",
             &t);
    cr_assert_eq(dp_traffic_pick(&t, "Qwen/Qwen3-30B", 0), 1, "longest stem");
    cr_assert_eq(dp_traffic_pick(&t, "Qwen/Qwen3-8B", 0), 2, "exact wins");
    cr_assert_eq(dp_traffic_pick(&t, "Qwen/Qwen2.5-7B", 0), 0);
    cr_assert_eq(dp_traffic_pick(&t, "llama", 0), 3, "catch-all");
    cr_assert_eq(dp_traffic_pick(&t, "qwen/Qwen3-8B", 0), 3, "case-sensitive");
    gw_route_cfg_fini(&t);

    parse_ok("prefix",
             "[{\"prefix\":\"a*\",\"base_url\":\"http://x\"},{\"prefix\":\"b*\",\"base_url\":"
             "\"local\"}]",
             &t);
    cr_assert_eq(dp_traffic_pick(&t, "c", 0), -1, "no match: the fallback chain");
    cr_assert_eq(dp_traffic_pick(&t, "a", 0), 0, "the stem may be the whole name");
    gw_route_cfg_fini(&t);
}

Test(dp_traffic, fallback_chain_in_config_order_skipping_the_primary)
{
    gw_route_cfg t;
    uint32_t cur = 0;

    parse_ok("weight",
             "[{\"base_url\":\"http://a\",\"weight\":1,\"fallback\":true},"
             "{\"base_url\":\"local\",\"weight\":1},"
             "{\"base_url\":\"http://b\",\"fallback\":true},"
             "{\"base_url\":\"http://c\",\"weight\":1}]",
             &t);
    cr_assert(dp_traffic_has_fallback(&t, 0, 0));
    cr_assert_eq(dp_traffic_next_fallback(&t, 0, &cur), 2, "the primary is skipped");
    cr_assert_eq(dp_traffic_next_fallback(&t, 0, &cur), -1);
    cr_assert_not(dp_traffic_has_fallback(&t, 0, cur));
    cur = 0;
    cr_assert_eq(dp_traffic_next_fallback(&t, 1, &cur), 0);
    cr_assert_eq(dp_traffic_next_fallback(&t, 1, &cur), 2);
    cr_assert_eq(dp_traffic_next_fallback(&t, 1, &cur), -1);
    gw_route_cfg_fini(&t);
}

Test(dp_traffic, url_join_drops_a_repeated_version)
{
    gw_route_ep e = {.base_url = "https://api.x/v1"};
    char url[256];

    dp_traffic_url(&e, "/v1/chat/completions", url, sizeof(url));
    cr_assert_str_eq(url, "https://api.x/v1/chat/completions");
    e.base_url = "http://h:8000";
    dp_traffic_url(&e, "/v1/completions", url, sizeof(url));
    cr_assert_str_eq(url, "http://h:8000/v1/completions");
    e.base_url = "http://h/api/v12";
    dp_traffic_url(&e, "/v1/embeddings", url, sizeof(url));
    cr_assert_str_eq(url, "http://h/api/v12/embeddings");
    e.base_url = "http://h/v1";
    dp_traffic_url(&e, "/version", url, sizeof(url));
    cr_assert_str_eq(url, "http://h/v1/version", "only a whole /v<n> segment is dropped");
}

Test(dp_traffic, authorization_is_replaced_not_added)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    int auth = 0, total = 0;

    h = curl_slist_append(h, "authorization: Bearer client");
    h = dp_traffic_set_authorization(h, "Bearer route-key");
    for (struct curl_slist *p = h; p != NULL; p = p->next, total++)
        if (strncasecmp(p->data, "authorization:", 14) == 0) {
            auth++;
            cr_assert_str_eq(p->data, "Authorization: Bearer route-key");
        }
    cr_assert_eq(auth, 1);
    cr_assert_eq(total, 2);
    curl_slist_free_all(h);
}

/* The route config from the snapshot: parsed once and shared while the text
 * stays; a text that does not parse keeps the last good one (counted); a
 * snapshot without one has none. */
Test(dp_traffic, snapshot_config_is_shared_and_a_bad_one_keeps_the_last_good)
{
    gw_metrics *reg = gw_metrics_new();
    gw_metric_fam *invalid;
    pm_traffic t = {.policy = "weight",
                    .config_json = "[{\"base_url\":\"local\",\"weight\":1},"
                                   "{\"base_url\":\"http://x\",\"api_key\":\"k\",\"weight\":1}]"};
    pm_traffic bad = {.policy = "weight", .config_json = "[{\"base_url\":\"local\",\"wieght\":1}]"};
    pm_traffic none = {0};
    dp_traffic_ref *a, *b, *c;

    cr_assert_eq(gw_metrics_counter(reg, "i", "i", NULL, &invalid), GW_OK);
    a = dp_traffic_from_snapshot(NULL, &t, invalid);
    cr_assert_not_null(a);
    cr_assert_eq(a->cfg.n, 2);
    cr_assert_str_eq(a->cfg.eps[1].api_key, "k");
    b = dp_traffic_from_snapshot(a, &t, invalid);
    cr_assert_eq(b, a, "same text: shared, not re-parsed");
    cr_assert_eq(a->refs, 2);
    c = dp_traffic_from_snapshot(b, &bad, invalid);
    cr_assert_eq(c, a, "a bad text keeps the last good one");
    cr_assert_eq(a->refs, 3);
    cr_assert_float_eq(gw_metric_value(gw_metric_child0(invalid)), 1, 1e-9);
    cr_assert_null(dp_traffic_from_snapshot(c, &none, invalid), "none in the snapshot: none");
    cr_assert_null(dp_traffic_from_snapshot(NULL, &bad, invalid), "bad and nothing before");
    t.policy = "prefix";
    t.config_json = "[{\"base_url\":\"local\",\"prefix\":\"*\"}]";
    b = dp_traffic_from_snapshot(a, &t, invalid);
    cr_assert_neq(b, a, "a new text: a new config");
    cr_assert_eq(b->cfg.policy, GW_ROUTE_PREFIX);
    dp_traffic_unref(a);
    dp_traffic_unref(a);
    dp_traffic_unref(a);
    dp_traffic_unref(b);
    dp_traffic_unref(NULL);
    gw_metrics_free(reg);
}
