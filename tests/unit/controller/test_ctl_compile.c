/* Unit tests for ctl_compile: merging, ids, generations and "same content,
 * same generation". */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ctl_compile.h"
#include "ctl_set.h"
#include "ctl_src_endpoints.h"
#include "ctl_src_file.h"
#include "ctl_store.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

TestSuite(ctl_compile, .fini = ut_leak_check, .timeout = 10);

static pm_snapshot *
yaml_set(const char *text)
{
    pm_snapshot *set = NULL;
    char *why = NULL;

    cr_assert_eq(ctl_src_file_parse(text, strlen(text), "t.yaml", &set, &why), GW_OK, "%s", why);
    return set;
}

static bool
compile(ctl_compile *c, ctl_store *st)
{
    bool changed = false;

    cr_assert_eq(ctl_compile_run(c, st, 12345, &changed), GW_OK);
    return changed;
}

static const pm_endpoint *
find_ep(const pm_snapshot *s, const char *ip, uint16_t port)
{
    for (uint32_t i = 0; i < s->n_endpoints; i++) {
        if (strcmp(s->endpoints[i].ip, ip) == 0 && s->endpoints[i].port == port)
            return &s->endpoints[i];
    }
    return NULL;
}

Test(ctl_compile, nothing_before_the_first_compile)
{
    ctl_compile *c = ctl_compile_new(1000, 77);

    cr_assert_null(ctl_compile_current(c));
    cr_assert_eq(ctl_compile_gen(c), 0, "gen 0 means none yet");
    cr_assert_eq(ctl_compile_epoch(c), 77);
    ctl_compile_free(c);
}

Test(ctl_compile, first_compile_is_seed_plus_one_with_envelope)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(1000, 77);
    const pm_snapshot *s;

    ctl_store_replace(st, CTL_SRC_FILE, yaml_set("models: []\n"));
    cr_assert(compile(c, st), "even an empty first snapshot is published");
    s = ctl_compile_current(c);
    cr_assert_eq(s->env.gen, 1001);
    cr_assert_eq(s->env.epoch, 77);
    cr_assert_eq(s->env.kind, PM_KIND_SNAPSHOT);
    cr_assert_eq(s->env.v, PM_SCHEMA_MAJOR);
    cr_assert_eq(s->env.sent_ms, 12345);
    cr_assert_eq(ctl_compile_gen(c), 1001);
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, identical_content_keeps_the_generation)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(1000, 1);
    const char *yaml = "gateway: {routingStrategy: random}\n"
                       "models:\n"
                       "  - name: m\n"
                       "    config: '{\"profiles\":{\"default\":{\"routingStrategy\":\"x\"}}}'\n"
                       "    endpoints: ['h:1', 'h:2']\n";
    const pm_snapshot *first;

    ctl_store_replace(st, CTL_SRC_FILE, yaml_set(yaml));
    cr_assert(compile(c, st));
    first = ctl_compile_current(c);
    ctl_store_replace(st, CTL_SRC_FILE, yaml_set(yaml));
    cr_assert(!compile(c, st), "same content: nothing new");
    cr_assert_eq(ctl_compile_current(c), first, "the snapshot object is kept");
    cr_assert_eq(ctl_compile_gen(c), 1001);

    /* Any change in content is a new generation: a profile field ... */
    ctl_store_replace(
        st, CTL_SRC_FILE,
        yaml_set("gateway: {routingStrategy: random}\n"
                 "models:\n"
                 "  - name: m\n"
                 "    config: '{\"profiles\":{\"default\":{\"routingStrategy\":\"y\"}}}'\n"
                 "    endpoints: ['h:1', 'h:2']\n"));
    cr_assert(compile(c, st));
    cr_assert_eq(ctl_compile_gen(c), 1002);
    /* ... an endpoint flag ... */
    ctl_store_replace(
        st, CTL_SRC_FILE,
        yaml_set("gateway: {routingStrategy: random}\n"
                 "models:\n"
                 "  - name: m\n"
                 "    config: '{\"profiles\":{\"default\":{\"routingStrategy\":\"y\"}}}'\n"
                 "    endpoints: ['h:1', {address: h, port: 2, draining: true}]\n"));
    cr_assert(compile(c, st));
    cr_assert_eq(ctl_compile_gen(c), 1003);
    /* ... or the settings. */
    ctl_store_replace(
        st, CTL_SRC_FILE,
        yaml_set("models:\n"
                 "  - name: m\n"
                 "    config: '{\"profiles\":{\"default\":{\"routingStrategy\":\"y\"}}}'\n"
                 "    endpoints: ['h:1', {address: h, port: 2, draining: true}]\n"));
    cr_assert(compile(c, st));
    cr_assert_eq(ctl_compile_gen(c), 1004);
    cr_assert_null(ctl_compile_current(c)->settings.routing_strategy);
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, generations_increase_by_one_per_change)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(5000, 1);
    char yaml[128];

    for (int i = 1; i <= 20; i++) {
        snprintf(yaml, sizeof(yaml), "models: [{name: m, endpoints: ['h:%d']}]\n", i);
        ctl_store_replace(st, CTL_SRC_FILE, yaml_set(yaml));
        cr_assert(compile(c, st));
        cr_assert_eq(ctl_compile_gen(c), 5000 + (uint64_t)i);
    }
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, endpoint_ids_are_stable_across_recompiles_and_not_reused)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(0, 1);
    const pm_snapshot *s;
    uint32_t id1, id2, id3;

    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("models: [{name: m, endpoints: ['a:1', 'b:1']}]\n"));
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    id1 = find_ep(s, "a", 1)->id;
    id2 = find_ep(s, "b", 1)->id;
    cr_assert_neq(id1, id2);

    /* Reordered, one removed, one added. */
    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("models: [{name: m, endpoints: ['c:1', 'b:1']}]\n"));
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    cr_assert_eq(find_ep(s, "b", 1)->id, id2, "a known endpoint keeps its id");
    id3 = find_ep(s, "c", 1)->id;
    cr_assert(id3 != id1 && id3 != id2);
    cr_assert(s->endpoints[0].id < s->endpoints[1].id, "endpoints are sorted by id");

    /* The removed one comes back: a fresh id, not its old one. */
    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("models: [{name: m, endpoints: ['a:1', 'b:1', 'c:1']}]\n"));
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    cr_assert(find_ep(s, "a", 1)->id != id1);
    cr_assert(find_ep(s, "a", 1)->id > id3);
    cr_assert_eq(find_ep(s, "b", 1)->id, id2);
    cr_assert_eq(find_ep(s, "c", 1)->id, id3);
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, models_are_sorted_and_first_source_wins)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(0, 1);
    pm_snapshot *eps = NULL;
    const pm_snapshot *s;
    char *why = NULL;

    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("models:\n"
                               "  - {name: zeta, endpoints: ['z:1']}\n"
                               "  - name: alpha\n"
                               "    config: '{\"profiles\":{\"p\":{}}}'\n"
                               "    endpoints: [{address: a, port: 1, name: from-file}]\n"));
    cr_assert_eq(ctl_src_endpoints_parse("a:1,b:1", "alpha", &eps, &why), GW_OK);
    ctl_store_replace(st, CTL_SRC_ENDPOINTS, eps);
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    cr_assert_eq(s->n_models, 2);
    cr_assert_str_eq(s->models[0].name, "alpha");
    cr_assert_eq(s->models[0].n_profiles, 1, "the file's definition wins over endpoints'");
    cr_assert_str_eq(s->models[1].name, "zeta");
    cr_assert_eq(s->n_endpoints, 3, "a:1 is listed twice but compiled once");
    cr_assert_str_eq(find_ep(s, "a", 1)->pod, "from-file");
    cr_assert_not_null(find_ep(s, "b", 1));
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, endpoints_of_an_unlisted_model_get_a_bare_model)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(0, 1);
    pm_snapshot *set = ctl_set_new();
    pm_endpoint *ep = ctl_set_add_endpoint(set);
    const pm_snapshot *s;

    ep->model = gw_xstrdup("orphan");
    ep->pod = gw_xstrdup("p");
    ep->ip = gw_xstrdup("h");
    ep->port = 1;
    ctl_set_add_model(set)->name = gw_xstrdup("b-model");
    ctl_store_replace(st, CTL_SRC_KUBERNETES, set);
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    cr_assert_eq(s->n_models, 2);
    cr_assert_str_eq(s->models[0].name, "b-model");
    cr_assert_str_eq(s->models[1].name, "orphan");
    cr_assert_eq(s->models[1].n_profiles, 0);
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, compiled_snapshots_encode_and_decode_back)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(0, 1);
    pm_snapshot *back = NULL;
    gw_buf b;

    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("gateway: {routingStrategy: random}\n"
                               "models:\n"
                               "  - name: m\n"
                               "    config: {profiles: {d: {routingConfig: {k: 1}}}}\n"
                               "    endpoints: [{address: h, adapters: [x], role: prefill}]\n"));
    cr_assert(compile(c, st));
    gw_buf_init(&b, PM_MAX_MSG_BYTES);
    cr_assert_eq(pm_snapshot_encode(ctl_compile_current(c), &b), GW_OK);
    cr_assert_eq(pm_snapshot_decode(b.data, b.len, &back), GW_OK);
    back->env.sent_ms = ctl_compile_current(c)->env.sent_ms;
    cr_assert(ctl_snapshot_same_content(back, ctl_compile_current(c)));
    pm_snapshot_free(back);
    gw_buf_fini(&b);
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, discovered_adapters_join_declared_ones_and_make_a_new_generation)
{
    ctl_compile *c = ctl_compile_new(100, 1);
    ctl_store *st = ctl_store_new();
    const pm_snapshot *s;
    const pm_endpoint *ep;
    uint64_t gen;

    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("models:\n"
                               "  - name: base\n"
                               "    endpoints:\n"
                               "      - address: 10.0.0.1\n"
                               "        port: 8000\n"
                               "        adapters: [declared, shared]\n"
                               "      - 10.0.0.2:8000\n"
                               "  - name: other\n"
                               "    endpoints: [10.0.0.1:8000]\n"));
    cr_assert(compile(c, st));
    gen = ctl_compile_gen(c);

    cr_assert(ctl_store_set_adapters(st, "10.0.0.1", 8000,
                                     (const char *[]){"shared", "zeta", "found", "base"}, 4));
    cr_assert(compile(c, st), "a discovered adapter is new content");
    cr_assert_eq(ctl_compile_gen(c), gen + 1);
    s = ctl_compile_current(c);
    ep = find_ep(s, "10.0.0.1", 8000);
    /* Both endpoints at that address get them; the source's own list
     * comes first, then the discovered names sorted, minus duplicates and
     * the endpoint's model. */
    for (uint32_t i = 0; i < s->n_endpoints; i++) {
        const pm_endpoint *e = &s->endpoints[i];
        if (strcmp(e->ip, "10.0.0.1") != 0)
            continue;
        if (strcmp(e->model, "base") == 0) {
            cr_assert_eq(e->n_adapters, 4);
            cr_assert_str_eq(e->adapters[0], "declared");
            cr_assert_str_eq(e->adapters[1], "shared");
            cr_assert_str_eq(e->adapters[2], "found");
            cr_assert_str_eq(e->adapters[3], "zeta");
        } else {
            cr_assert_eq(e->n_adapters, 4, "model 'other' also lists 'base' as an adapter");
            cr_assert_str_eq(e->adapters[0], "base");
        }
    }
    cr_assert_not_null(ep);
    cr_assert_eq(find_ep(s, "10.0.0.2", 8000)->n_adapters, 0);

    /* The source's own set is untouched by the overlay. */
    const pm_snapshot *src = ctl_store_set(st, CTL_SRC_FILE);
    cr_assert_eq(src->endpoints[0].n_adapters, 2);

    /* The same overlay again: same content, same generation. */
    cr_assert(!ctl_store_set_adapters(st, "10.0.0.1", 8000,
                                      (const char *[]){"zeta", "found", "shared", "base"}, 4));
    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("models:\n"
                               "  - name: base\n"
                               "    endpoints:\n"
                               "      - address: 10.0.0.1\n"
                               "        port: 8000\n"
                               "        adapters: [declared, shared]\n"
                               "      - 10.0.0.2:8000\n"
                               "  - name: other\n"
                               "    endpoints: [10.0.0.1:8000]\n"));
    cr_assert(!compile(c, st), "a source replacing its set keeps what was discovered");
    cr_assert_eq(ctl_compile_gen(c), gen + 1);

    /* The engine dropped them: back to the declared list, gen + 1. */
    cr_assert(ctl_store_set_adapters(st, "10.0.0.1", 8000, NULL, 0));
    cr_assert(compile(c, st));
    cr_assert_eq(ctl_compile_gen(c), gen + 2);
    ep = find_ep(ctl_compile_current(c), "10.0.0.1", 8000);
    cr_assert_eq(ep->n_adapters, ep->model[0] == 'b' ? 2 : 0);
    ctl_compile_free(c);
    ctl_store_free(st);
}

Test(ctl_compile, users_merge_by_name_and_a_shared_key_stays_with_the_first_user)
{
    ctl_store *st = ctl_store_new();
    ctl_compile *c = ctl_compile_new(0, 1);
    const pm_snapshot *s;
    uint64_t gen;

    /* Kubernetes (the earlier kind) wins the name "carol" over the file. */
    ctl_store_replace(st, CTL_SRC_KUBERNETES,
                      yaml_set("users:\n  - {name: carol, rpm: 1, apiKeys: [k-carol]}\n"));
    ctl_store_replace(st, CTL_SRC_FILE,
                      yaml_set("users:\n"
                               "  - {name: zed, rpm: 5, apiKeys: [k-zed, k-carol]}\n"
                               "  - {name: carol, rpm: 99}\n"
                               "  - {name: amy, tpm: 7}\n"));
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    cr_assert_eq(s->n_users, 3);
    cr_assert_str_eq(s->users[0].name, "amy", "users are sorted by name");
    cr_assert_str_eq(s->users[1].name, "carol");
    cr_assert_eq(s->users[1].rpm, 1);
    cr_assert_eq(s->users[1].n_keys, 1);
    cr_assert_str_eq(s->users[2].name, "zed");
    cr_assert_eq(s->users[2].n_keys, 1, "k-carol is carol's; zed keeps only k-zed");
    gen = s->env.gen;

    /* Revoking a key is a new generation; the same content is not. */
    ctl_store_replace(st, CTL_SRC_KUBERNETES,
                      yaml_set("users:\n  - {name: carol, rpm: 1, apiKeys: [k-carol]}\n"));
    cr_assert_not(compile(c, st));
    ctl_store_replace(st, CTL_SRC_KUBERNETES, yaml_set("users:\n  - {name: carol, rpm: 1}\n"));
    cr_assert(compile(c, st));
    s = ctl_compile_current(c);
    cr_assert_eq(s->env.gen, gen + 1);
    cr_assert_eq(s->users[1].n_keys, 0);
    cr_assert_eq(s->users[2].n_keys, 2, "with carol's key gone, zed's copy is no longer shared");
    ctl_compile_free(c);
    ctl_store_free(st);
}
