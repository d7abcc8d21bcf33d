/* Unit tests for ctl_src_file: the YAML schema walk (from memory) and the
 * polling source (on a temp file, polled by hand, loop never run). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_metrics.h"
#include "ctl_src_file.h"
#include "ctl_store.h"
#include "gw/gw_loop.h"
#include "gw/gw_digest.h"
#include "ut_leak.h"

TestSuite(ctl_src_file, .fini = ut_leak_check, .timeout = 10);

static pm_snapshot *
parse_ok(const char *text)
{
    pm_snapshot *set = NULL;
    char *why = NULL;

    cr_assert_eq(ctl_src_file_parse(text, strlen(text), "t.yaml", &set, &why), GW_OK, "%s", why);
    cr_assert_not_null(set);
    return set;
}

/* Asserts <text> is refused and every NULL-terminated needle is in the message. */
static void
expect_refused_all(const char *text, const char *const *needles)
{
    pm_snapshot *set = (pm_snapshot *)0x1;
    char *why = NULL;

    cr_assert_eq(ctl_src_file_parse(text, strlen(text), "t.yaml", &set, &why), GW_EINVAL,
                 "accepted:\n%s", text);
    cr_assert_eq(set, (pm_snapshot *)0x1, "out must be untouched on error");
    for (size_t i = 0; needles[i] != NULL; i++)
        cr_assert(why != NULL && strstr(why, needles[i]) != NULL, "message \"%s\" lacks \"%s\"",
                  why, needles[i]);
    free(why);
}

#define expect_refused(text, ...)                                                                  \
    expect_refused_all((text), (const char *const[]){__VA_ARGS__, NULL})

static const pm_endpoint *
find_ep(const pm_snapshot *s, const char *model, uint16_t port)
{
    for (uint32_t i = 0; i < s->n_endpoints; i++) {
        if (strcmp(s->endpoints[i].model, model) == 0 && s->endpoints[i].port == port)
            return &s->endpoints[i];
    }
    return NULL;
}

static char *
read_example(size_t *len)
{
    const char *src = getenv("LLMGW_SOURCE_DIR");
    char path[4096];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/examples/local.yaml", src != NULL ? src : ".");
    f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

Test(ctl_src_file, the_shipped_example_parses)
{
    size_t len;
    char *text = read_example(&len);
    pm_snapshot *set = NULL;
    char *why = NULL;

    cr_assert_eq(ctl_src_file_parse(text, len, "examples/local.yaml", &set, &why), GW_OK, "%s",
                 why);
    cr_assert_eq(set->n_models, 2);
    cr_assert_eq(set->n_endpoints, 4);
    cr_assert_str_eq(set->settings.routing_strategy, "random");
    cr_assert_str_eq(set->models[0].name, "mock-model");
    cr_assert_str_eq(set->models[0].default_profile, "default");
    cr_assert_eq(set->models[0].n_profiles, 2);
    cr_assert_str_eq(set->models[1].name, "mock-model-pinned");
    cr_assert_str_eq(set->models[1].locked_strategy, "least-request");
    pm_snapshot_free(set);
    free(text);
}

Test(ctl_src_file, string_endpoints_take_defaults)
{
    pm_snapshot *s = parse_ok("models:\n"
                              "  - name: m\n"
                              "    endpoints: [10.0.0.1:9001, 10.0.0.2, '[::1]:7000']\n");
    const pm_endpoint *ep;

    cr_assert_eq(s->n_models, 1);
    cr_assert_eq(s->models[0].n_profiles, 0);
    cr_assert_eq(s->n_endpoints, 3);
    ep = find_ep(s, "m", 9001);
    cr_assert_not_null(ep);
    cr_assert_str_eq(ep->ip, "10.0.0.1");
    cr_assert_str_eq(ep->pod, "10.0.0.1:9001");
    cr_assert_str_eq(ep->engine, "vllm");
    cr_assert_eq(ep->metric_port, 9001);
    cr_assert(ep->ready && !ep->draining);
    cr_assert_null(ep->ns);
    cr_assert_null(ep->role);
    ep = find_ep(s, "m", 8000);
    cr_assert_not_null(ep, "a host without port gets the AIBrix default 8000");
    cr_assert_str_eq(ep->ip, "10.0.0.2");
    ep = find_ep(s, "m", 7000);
    cr_assert_str_eq(ep->ip, "::1");
    cr_assert_str_eq(ep->pod, "[::1]:7000");
    pm_snapshot_free(s);
}

Test(ctl_src_file, mapping_endpoints_read_every_field)
{
    pm_snapshot *s = parse_ok("models:\n"
                              "  - name: m\n"
                              "    engine: sglang\n"
                              "    port: 8100\n"
                              "    endpoints:\n"
                              "      - address: pod-a.local\n"
                              "        metricPort: 9100\n"
                              "        name: pod-a\n"
                              "        namespace: ns1\n"
                              "        ready: false\n"
                              "        draining: true\n"
                              "        adapters: [lora-1, lora-2]\n"
                              "        roleset: rs-1\n"
                              "        role: decode\n");
    const pm_endpoint *ep = &s->endpoints[0];

    cr_assert_eq(s->n_endpoints, 1);
    cr_assert_str_eq(ep->ip, "pod-a.local");
    cr_assert_eq(ep->port, 8100, "the model's port is the default");
    cr_assert_eq(ep->metric_port, 9100);
    cr_assert_str_eq(ep->pod, "pod-a");
    cr_assert_str_eq(ep->ns, "ns1");
    cr_assert_str_eq(ep->engine, "sglang");
    cr_assert(!ep->ready);
    cr_assert(ep->draining);
    cr_assert_eq(ep->n_adapters, 2);
    cr_assert_str_eq(ep->adapters[1], "lora-2");
    cr_assert_str_eq(ep->roleset, "rs-1");
    cr_assert_str_eq(ep->role, "decode");
    pm_snapshot_free(s);
}

Test(ctl_src_file, config_as_json_string_and_as_mapping_give_the_same_model)
{
    pm_snapshot *a =
        parse_ok("models:\n"
                 "  - name: m\n"
                 "    config: '{\"lockedRoutingStrategy\":\"pd\",\"profiles\":{\"default\":"
                 "{\"routingStrategy\":\"random\",\"requestsPerSecond\":5,"
                 "\"routingConfig\":{\"promptTokensGte\":10,\"combined\":true,\"ratio\":0.5,"
                 "\"name\":\"x\",\"none\":null,\"list\":[1,\"2\"]}}}}'\n");
    pm_snapshot *b = parse_ok("models:\n"
                              "  - name: m\n"
                              "    config:\n"
                              "      lockedRoutingStrategy: pd\n"
                              "      profiles:\n"
                              "        default:\n"
                              "          routingStrategy: random\n"
                              "          requestsPerSecond: 5\n"
                              "          routingConfig:\n"
                              "            promptTokensGte: 10\n"
                              "            combined: true\n"
                              "            ratio: 0.5\n"
                              "            name: x\n"
                              "            none: ~\n"
                              "            list: [1, '2']\n");

    cr_assert_str_eq(a->models[0].locked_strategy, "pd");
    cr_assert_str_eq(b->models[0].locked_strategy, "pd");
    cr_assert_eq(b->models[0].profiles[0].requests_per_second, 5);
    cr_assert_str_eq(a->models[0].profiles[0].routing_config_json,
                     b->models[0].profiles[0].routing_config_json);
    cr_assert_str_eq(b->models[0].profiles[0].routing_config_json,
                     "{\"promptTokensGte\":10,\"combined\":true,\"ratio\":0.5,\"name\":\"x\","
                     "\"none\":null,\"list\":[1,\"2\"]}");
    pm_snapshot_free(a);
    pm_snapshot_free(b);
}

Test(ctl_src_file, empty_and_null_lists_are_an_empty_fleet)
{
    pm_snapshot *s = parse_ok("models: []\n");

    cr_assert_eq(s->n_models, 0);
    cr_assert_null(s->settings.routing_strategy);
    pm_snapshot_free(s);
    s = parse_ok("gateway:\nmodels:\n  - name: m\n    endpoints:\n");
    cr_assert_eq(s->n_models, 1);
    cr_assert_eq(s->n_endpoints, 0);
    pm_snapshot_free(s);
}

Test(ctl_src_file, an_empty_file_is_refused)
{
    expect_refused("", "t.yaml: the file is empty");
    expect_refused("# nothing\n", "the file is empty");
    expect_refused("~\n", "the file is empty");
}

Test(ctl_src_file, yaml_syntax_errors_name_file_and_line)
{
    expect_refused("models:\n  - name: [oops\n", "t.yaml:3:1:");
}

Test(ctl_src_file, top_level_must_be_a_mapping_of_known_keys)
{
    expect_refused("- a\n", "t.yaml:1:1: (top level): must be a mapping");
    expect_refused("model: []\n", "t.yaml:1:1: (top level): unknown key \"model\"");
    expect_refused("models: {}\n", "t.yaml:1:9: models: must be a list");
    expect_refused("gateway: {routingStrategy: random, foo: 1}\n", "gateway: unknown key \"foo\"");
    expect_refused("gateway: {routingStrategy: [a]}\n",
                   "gateway.routingStrategy: must be a string");
}

Test(ctl_src_file, model_names_are_required_non_empty_and_unique)
{
    expect_refused("models:\n  - engine: vllm\n", "t.yaml:2:5: models[0]: name is required");
    expect_refused("models:\n  - name: ''\n", "t.yaml:2:11: models[0].name: must not be empty");
    expect_refused("models:\n  - name: [x]\n", "models[0].name: must be a string, not a list");
    expect_refused("models:\n  - name: a\n  - name: b\n  - name: a\n",
                   "t.yaml:4:11: models[2].name: duplicate model \"a\" (also models[0])");
    expect_refused("models:\n  - 42\n", "models[0]: must be a mapping");
    expect_refused("models:\n  - name: a\n    enigne: vllm\n", "models[0]: unknown key \"enigne\"");
}

Test(ctl_src_file, ports_must_be_in_range)
{
    expect_refused("models:\n  - name: a\n    port: 0\n",
                   "t.yaml:3:11: models[0].port: must be a port number in 1..65535");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: h, port: 65536}\n",
                   "models[0].endpoints[0].port: must be a port number");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: h, metricPort: x}\n",
                   "models[0].endpoints[0].metricPort: must be a port number");
    expect_refused("models:\n  - name: a\n    endpoints: ['h:0']\n",
                   "t.yaml:3:17: models[0].endpoints[0]: port must be a number in 1..65535");
}

Test(ctl_src_file, endpoint_hosts_must_be_present_and_valid)
{
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {port: 1}\n",
                   "models[0].endpoints[0]: address is required");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: ''}\n",
                   "models[0].endpoints[0].address: must not be empty");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: 'a b'}\n",
                   "models[0].endpoints[0].address: invalid host");
    expect_refused("models:\n  - name: a\n    endpoints: [':80']\n", "empty host");
    expect_refused("models:\n  - name: a\n    endpoints: ['::1:80']\n", "need brackets");
    expect_refused("models:\n  - name: a\n    endpoints: [[x]]\n",
                   "must be \"host:port\" or a mapping, not a list");
    expect_refused("models:\n  - name: a\n    endpoints: {a: 1}\n",
                   "models[0].endpoints: must be a list");
}

Test(ctl_src_file, endpoint_fields_are_type_checked)
{
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: h, ready: maybe}\n",
                   "models[0].endpoints[0].ready: must be true or false");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: h, adapters: x}\n",
                   "models[0].endpoints[0].adapters: must be a list of strings");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: h, adapters: ['']}\n",
                   "models[0].endpoints[0].adapters[0]: must not be empty");
    expect_refused("models:\n  - name: a\n    endpoints:\n      - {address: h, weight: 3}\n",
                   "models[0].endpoints[0]: unknown key \"weight\"");
}

Test(ctl_src_file, duplicate_endpoints_within_a_model_are_refused)
{
    expect_refused("models:\n"
                   "  - name: a\n"
                   "    port: 9000\n"
                   "    endpoints:\n"
                   "      - 10.0.0.1\n"
                   "      - 10.0.0.2:9000\n"
                   "      - {address: 10.0.0.1, port: 9000}\n",
                   "t.yaml:7:9: models[0].endpoints[2]: duplicate endpoint 10.0.0.1:9000 (also "
                   "endpoints[0])");
}

Test(ctl_src_file, the_same_endpoint_in_two_models_is_fine)
{
    pm_snapshot *s = parse_ok("models:\n"
                              "  - {name: a, endpoints: [h:1]}\n"
                              "  - {name: b, endpoints: [h:1]}\n");

    cr_assert_eq(s->n_endpoints, 2);
    pm_snapshot_free(s);
}

Test(ctl_src_file, bad_config_reports_the_json_path_at_the_config_line)
{
    expect_refused("models:\n"
                   "  - name: a\n"
                   "    config: '{\"profiles\":{\"d\":{\"requestsPerSecond\":-1}}}'\n",
                   "t.yaml:3:13: models[0].config: $.profiles.d.requestsPerSecond: must be a "
                   "non-negative integer");
    expect_refused("models:\n  - name: a\n    config: '{'\n", "models[0].config: invalid JSON");
    expect_refused("models:\n  - name: a\n    config:\n      profiles: {}\n",
                   "t.yaml:4:7: models[0].config: $.profiles: must not be empty");
    expect_refused("models:\n  - name: a\n    config: [1]\n",
                   "models[0].config: must be a JSON string or a mapping, not a list");
}

Test(ctl_src_file, every_problem_is_reported_in_one_round)
{
    expect_refused("models:\n"
                   "  - name: a\n"
                   "    port: 0\n"
                   "    endpoints: ['h:99999', {address: h, ready: 2}]\n"
                   "  - name: a\n",
                   "models[0].port", "models[0].endpoints[0]", "models[0].endpoints[1].ready",
                   "models[1].name: duplicate model");
}

Test(ctl_src_file, aliases_are_refused_with_position)
{
    expect_refused("models:\n  - &m {name: a}\n  - *m\n", "t.yaml:3:5: aliases are not supported");
}

/* ---- the polling source ---- */

typedef struct fixture {
    char dir[64];
    char path[128];
    gw_loop *loop;
    ctl_store *store;
    ctl_metrics *metrics;
    unsigned changes;
} fixture;

static void
on_change(ctl_store *st, void *arg)
{
    (void)st;
    ((fixture *)arg)->changes++;
}

/* Writes <text> to a temp file and renames it over the config path, as a
 * ConfigMap update swaps files (a new inode every time). */
static void
put_file(fixture *fx, const char *text)
{
    char tmp[160];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s/new.yaml", fx->dir);
    f = fopen(tmp, "wb");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(rename(tmp, fx->path), 0);
}

static void
fixture_init(fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    strcpy(fx->dir, "/tmp/ctl-src-file-XXXXXX");
    cr_assert_not_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/config.yaml", fx->dir);
    cr_assert_eq(gw_loop_new(&fx->loop), GW_OK);
    fx->store = ctl_store_new();
    fx->metrics = ctl_metrics_new("test");
    ctl_store_on_change(fx->store, on_change, fx);
}

static void
fixture_fini(fixture *fx)
{
    unlink(fx->path);
    rmdir(fx->dir);
    ctl_metrics_free(fx->metrics);
    ctl_store_free(fx->store);
    gw_loop_free(fx->loop);
}

static double
file_errors(fixture *fx)
{
    gw_buf b;
    const char *p;
    double v = -1;

    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(ctl_metrics_render(fx->metrics, &b), GW_OK);
    p = strstr(b.data, "llmgw_controller_config_errors_total{source=\"file\"} ");
    if (p != NULL)
        v = strtod(p + strlen("llmgw_controller_config_errors_total{source=\"file\"} "), NULL);
    gw_buf_fini(&b);
    return v;
}

Test(ctl_src_file, reloads_on_change_and_keeps_the_last_good_file)
{
    fixture fx;
    ctl_src_file *src = NULL;

    fixture_init(&fx);
    put_file(&fx, "models:\n  - {name: a, endpoints: ['h:1']}\n");
    cr_assert_eq(ctl_src_file_start(fx.loop, fx.store, fx.metrics, fx.path, 1000, &src), GW_OK);
    cr_assert_eq(fx.changes, 1);
    cr_assert_eq(ctl_store_set(fx.store, CTL_SRC_FILE)->n_endpoints, 1);

    /* Unchanged file: polling does nothing. */
    ctl_src_file_poll(src);
    cr_assert_eq(fx.changes, 1);

    /* A good edit replaces the set. */
    put_file(&fx, "models:\n  - {name: a, endpoints: ['h:1', 'h:2']}\n");
    ctl_src_file_poll(src);
    cr_assert_eq(fx.changes, 2);
    cr_assert_eq(ctl_store_set(fx.store, CTL_SRC_FILE)->n_endpoints, 2);

    /* A bad edit is counted and the last good set stays. */
    put_file(&fx, "models:\n  - {name: a, endpoints: ['h:0']}\n");
    ctl_src_file_poll(src);
    cr_assert_eq(fx.changes, 2);
    cr_assert_eq(ctl_store_set(fx.store, CTL_SRC_FILE)->n_endpoints, 2);
    cr_assert_eq(file_errors(&fx), 1);
    ctl_src_file_poll(src);
    cr_assert_eq(file_errors(&fx), 1, "a bad file is reported once, not every poll");

    /* A deleted file keeps the last good set too. */
    unlink(fx.path);
    ctl_src_file_poll(src);
    cr_assert_eq(fx.changes, 2);
    cr_assert_eq(file_errors(&fx), 2);

    /* Fixed again: picked up. */
    put_file(&fx, "models:\n  - {name: b}\n");
    ctl_src_file_poll(src);
    cr_assert_eq(fx.changes, 3);
    cr_assert_str_eq(ctl_store_set(fx.store, CTL_SRC_FILE)->models[0].name, "b");

    /* SIGHUP's reload re-reads even when nothing changed. */
    ctl_src_file_reload(src);
    cr_assert_eq(fx.changes, 4);

    ctl_src_file_free(src);
    fixture_fini(&fx);
}

Test(ctl_src_file, a_bad_file_at_start_refuses_start)
{
    fixture fx;
    ctl_src_file *src = NULL;

    fixture_init(&fx);
    put_file(&fx, "models: [{name: ''}]\n");
    cr_assert_eq(ctl_src_file_start(fx.loop, fx.store, fx.metrics, fx.path, 1000, &src), GW_EINVAL);
    cr_assert_null(src);
    cr_assert_eq(fx.changes, 0);
    cr_assert_eq(file_errors(&fx), 1);
    unlink(fx.path);
    cr_assert_eq(ctl_src_file_start(fx.loop, fx.store, fx.metrics, fx.path, 1000, &src), GW_EIO,
                 "a missing file is an I/O error");
    fixture_fini(&fx);
}

Test(ctl_src_file, endpoint_labels_become_key_value_strings)
{
    pm_snapshot *s = parse_ok("models:\n"
                              "  - name: m\n"
                              "    endpoints:\n"
                              "      - address: 10.0.0.1\n"
                              "        port: 8000\n"
                              "        labels: {zone: us-east-1a, gpu: a100, tier: 2}\n");

    cr_assert_eq(s->n_endpoints, 1);
    cr_assert_eq(s->endpoints[0].n_labels, 3);
    cr_assert_str_eq(s->endpoints[0].labels[0], "zone=us-east-1a");
    cr_assert_str_eq(s->endpoints[0].labels[1], "gpu=a100");
    cr_assert_str_eq(s->endpoints[0].labels[2], "tier=2");
    pm_snapshot_free(s);
}

Test(ctl_src_file, labels_must_be_a_mapping_of_scalars)
{
    expect_refused("models:\n  - name: m\n    endpoints:\n"
                   "      - {address: h, port: 1, labels: [a, b]}\n",
                   "labels: must be a mapping");
    expect_refused("models:\n  - name: m\n    endpoints:\n"
                   "      - {address: h, port: 1, labels: {a: [x]}}\n",
                   "labels need a non-empty name");
}

Test(ctl_src_file, users_read_limits_and_keep_only_key_digests)
{
    pm_snapshot *s = parse_ok("users:\n"
                              "  - name: alice\n"
                              "    rpm: 60\n"
                              "    tpm: 1000\n"
                              "    apiKeys:\n"
                              "      - sk-alice\n"
                              "      - sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495"
                              "991B7852B855\n"
                              "  - name: bob@example.com\n"
                              "models: []\n");
    char want[GW_SHA256_HEX_LEN + 1];

    cr_assert_eq(s->n_users, 2);
    cr_assert_str_eq(s->users[0].name, "alice");
    cr_assert_eq(s->users[0].rpm, 60);
    cr_assert_eq(s->users[0].tpm, 1000);
    cr_assert_eq(s->users[0].n_keys, 2);
    gw_sha256_hex("sk-alice", 8, want);
    cr_assert_str_eq(s->users[0].key_hashes[0], want);
    /* a digest is taken as written, lower-cased */
    cr_assert_str_eq(s->users[0].key_hashes[1],
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cr_assert_str_eq(s->users[1].name, "bob@example.com");
    cr_assert_eq(s->users[1].rpm, 0, "absent limits are unlimited");
    cr_assert_eq(s->users[1].n_keys, 0);
    pm_snapshot_free(s);
}

Test(ctl_src_file, bad_users_are_refused_with_their_path)
{
    expect_refused("users: {alice: 1}\n", "t.yaml:1:8: users: must be a list");
    expect_refused("users:\n  - rpm: 5\n", "users[0]: name is required");
    expect_refused("users:\n  - name: a\n  - name: a\n", "users[1].name: duplicate user");
    expect_refused("users:\n  - name: \"a b\"\n", "users[0].name: must be 1..256 printable");
    expect_refused("users:\n  - name: a\n    rpm: -1\n", "users[0].rpm: must be a whole number");
    expect_refused("users:\n  - name: a\n    tpm: lots\n", "users[0].tpm: must be a whole number");
    expect_refused("users:\n  - name: a\n    apiKeys: k\n", "users[0].apiKeys: must be a list");
    expect_refused("users:\n  - name: a\n    apiKeys: [\"sha256:abc\"]\n",
                   "users[0].apiKeys[0]: a sha256: digest must be 64 hex digits");
    expect_refused("users:\n  - name: a\n    apiKeys: [\"\"]\n",
                   "users[0].apiKeys[0]: must be a non-empty string");
    expect_refused("users:\n  - name: a\n    quota: 5\n", "unknown key \"quota\"");
}
