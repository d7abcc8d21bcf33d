/* Unit tests for ctl_httproute's pure parts (names, the managed route, the
 * drift test, status.parents) and ctl_leader's decision. The writes and the
 * 409 retries run against the API double in e2e/cases/kube_httproute.sh. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_httproute.h"
#include "ctl_kobj.h"
#include "ctl_leader.h"
#include "ut_leak.h"

TestSuite(ctl_httproute, .fini = ut_leak_check, .timeout = 10);

Test(ctl_httproute, names_follow_the_dns_safe_rule)
{
    char *n = ctl_httproute_name("llama-3-8b");
    cr_assert_str_eq(n, "llama-3-8b-router");
    free(n);
    n = ctl_httproute_name("llama.v2");
    cr_assert_str_eq(n, "llama.v2-router", "dots are fine in a subdomain");
    free(n);
    /* sha256("Qwen2.5-7B") starts with these 12 hex digits (sha256sum). */
    n = ctl_httproute_name("Qwen2.5-7B");
    cr_assert(strncmp(n, "qwen2-5-7b-", 11) == 0, "%s", n);
    cr_assert(strcmp(n + strlen(n) - 7, "-router") == 0, "%s", n);
    cr_assert_eq(strlen(n), strlen("qwen2-5-7b-") + 12 + 7, "%s", n);
    free(n);
    n = ctl_httproute_name("meta-llama/Llama-3.1-8B-Instruct-with-a-very-long-suffix-here");
    cr_assert(strlen(n) <= 40 + 1 + 12 + 7, "%s", n);
    cr_assert(strchr(n, '/') == NULL);
    free(n);
    n = ctl_httproute_name("///");
    cr_assert_eq(strlen(n), 12 + 7, "nothing usable: the hash alone (%s)", n);
    free(n);
    n = ctl_httproute_service_name("a.b");
    cr_assert(strncmp(n, "a-b-", 4) == 0, "a Service name is a label: no dots (%s)", n);
    free(n);
    n = ctl_httproute_service_name("mock-model");
    cr_assert_str_eq(n, "mock-model");
    free(n);
}

Test(ctl_httproute, the_managed_route)
{
    json_t *r = ctl_httproute_build("m", "ns", "svc", 8000, "gw", "gw-ns", 1500);
    const json_t *rule = json_array_get(json_object_get(json_object_get(r, "spec"), "rules"), 0);
    const json_t *m0 = json_array_get(json_object_get(rule, "matches"), 1);

    cr_assert_str_eq(ctl_kobj_name(r), "m-router");
    cr_assert_str_eq(ctl_kobj_ns(r), "ns");
    cr_assert_str_eq(ctl_kobj_label(r, "app.kubernetes.io/managed-by"), "llmgw-controller");
    cr_assert_eq(json_array_size(json_object_get(rule, "matches")), 11);
    cr_assert_str_eq(ctl_kobj_str(m0, "path", "value", NULL), "/v1/chat/completions");
    cr_assert_str_eq(ctl_kobj_str(m0, "path", "type", NULL), "PathPrefix");
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(m0, "headers"), 0), "value")),
                     "m");
    cr_assert_str_eq(ctl_kobj_str(rule, "timeouts", "request", NULL), "1500ms");
    cr_assert_eq(json_integer_value(json_object_get(
                     json_array_get(json_object_get(rule, "backendRefs"), 0), "port")),
                 8000);
    json_decref(r);
    r = ctl_httproute_build("m", "ns", "svc", 8000, "gw", "gw-ns", 120000);
    rule = json_array_get(json_object_get(json_object_get(r, "spec"), "rules"), 0);
    cr_assert_str_eq(ctl_kobj_str(rule, "timeouts", "request", NULL), "120s");
    json_decref(r);
}

Test(ctl_httproute, server_defaults_are_not_drift_but_changes_are)
{
    json_t *want = json_loads("{\"a\":1,\"b\":[{\"x\":1}]}", 0, NULL);
    json_t *defaulted = json_loads("{\"a\":1,\"z\":9,\"b\":[{\"x\":1,\"w\":1}]}", 0, NULL);
    json_t *changed = json_loads("{\"a\":2,\"b\":[{\"x\":1}]}", 0, NULL);
    json_t *longer = json_loads("{\"a\":1,\"b\":[{\"x\":1},{\"x\":2}]}", 0, NULL);

    cr_assert(ctl_httproute_subset(want, defaulted));
    cr_assert_not(ctl_httproute_subset(want, changed));
    cr_assert_not(ctl_httproute_subset(want, longer), "array lengths must match");
    json_decref(want);
    json_decref(defaulted);
    json_decref(changed);
    json_decref(longer);
}

static int resolve_result;

static int
resolve(void *arg, const char *ns, const char *svc, const char **reason, char **msg)
{
    (void)arg;
    if (resolve_result == 0)
        return 0;
    *reason = "BackendNotFound";
    *msg = strdup(ns);
    (void)svc;
    return 1;
}

static ctl_httproute_env
env(const char *now)
{
    return (ctl_httproute_env){.gateway_name = "gw",
                               .gateway_ns = "gw-ns",
                               .controller_name = "llmgw.io/c",
                               .resolve = resolve,
                               .now = now};
}

static json_t *
route(const char *parent_ns)
{
    json_t *r = json_loads("{\"metadata\":{\"name\":\"r\",\"namespace\":\"app\",\"generation\":3},"
                           "\"spec\":{\"parentRefs\":[{\"name\":\"gw\"}],\"rules\":[{"
                           "\"backendRefs\":[{\"name\":\"s\",\"port\":1}]}]}}",
                           0, NULL);
    if (parent_ns != NULL)
        json_object_set_new(
            json_array_get(json_object_get(json_object_get(r, "spec"), "parentRefs"), 0),
            "namespace", json_string(parent_ns));
    return r;
}

static const json_t *
cond(const json_t *status, size_t parent, const char *type)
{
    const json_t *c =
        json_object_get(json_array_get(json_object_get(status, "parents"), parent), "conditions");
    size_t i;
    json_t *x;
    json_array_foreach(c, i, x)
    {
        if (strcmp(json_string_value(json_object_get(x, "type")), type) == 0)
            return x;
    }
    return NULL;
}

Test(ctl_httproute, a_route_on_our_gateway_gets_accepted_and_resolved_refs)
{
    ctl_httproute_env e = env("2026-01-01T00:00:00Z");
    json_t *r = route("gw-ns"), *st;

    resolve_result = 0;
    cr_assert(ctl_httproute_targets_us(r, &e));
    st = ctl_httproute_status(r, &e);
    cr_assert_not_null(st);
    cr_assert_str_eq(
        ctl_kobj_str(json_array_get(json_object_get(st, "parents"), 0), "controllerName", NULL),
        "llmgw.io/c");
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "Accepted"), "status", NULL), "True");
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "ResolvedRefs"), "reason", NULL), "ResolvedRefs");
    cr_assert_eq(json_integer_value(json_object_get(cond(st, 0, "Accepted"), "observedGeneration")),
                 3);
    /* Written back, the same inputs need no write. */
    json_object_set_new(r, "status", st);
    cr_assert_null(ctl_httproute_status(r, &e));
    /* A later time alone changes nothing either. */
    e.now = "2027-01-01T00:00:00Z";
    cr_assert_null(ctl_httproute_status(r, &e));
    /* The backend goes: ResolvedRefs flips with a new transition time;
     * Accepted keeps its old one. */
    resolve_result = 1;
    st = ctl_httproute_status(r, &e);
    cr_assert_not_null(st);
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "ResolvedRefs"), "status", NULL), "False");
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "ResolvedRefs"), "message", NULL), "app",
                     "the backend's namespace defaults to the route's");
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "ResolvedRefs"), "lastTransitionTime", NULL),
                     "2027-01-01T00:00:00Z");
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "Accepted"), "lastTransitionTime", NULL),
                     "2026-01-01T00:00:00Z");
    json_decref(st);
    json_decref(r);
}

Test(ctl_httproute, parent_refs_default_their_namespace_to_the_routes)
{
    ctl_httproute_env e = env("t");
    json_t *r = route(NULL);

    cr_assert_not(ctl_httproute_targets_us(r, &e), "gw in the route's namespace is not ours");
    e.gateway_ns = "app";
    cr_assert(ctl_httproute_targets_us(r, &e));
    json_decref(r);
}

Test(ctl_httproute, other_controllers_entries_stay_and_ours_goes_when_detached)
{
    ctl_httproute_env e = env("t");
    json_t *r = route("gw-ns"), *st;

    resolve_result = 0;
    json_object_set_new(r, "status",
                        json_loads("{\"parents\":[{\"parentRef\":{\"name\":\"x\"},"
                                   "\"controllerName\":\"other.io/c\",\"conditions\":[]}]}",
                                   0, NULL));
    st = ctl_httproute_status(r, &e);
    cr_assert_eq(json_array_size(json_object_get(st, "parents")), 2);
    cr_assert_str_eq(
        ctl_kobj_str(json_array_get(json_object_get(st, "parents"), 0), "controllerName", NULL),
        "other.io/c");
    json_object_set_new(r, "status", st);
    /* Detached from our Gateway: our entry is removed, theirs stays. */
    json_array_clear(json_object_get(json_object_get(r, "spec"), "parentRefs"));
    st = ctl_httproute_status(r, &e);
    cr_assert_not_null(st);
    cr_assert_eq(json_array_size(json_object_get(st, "parents")), 1);
    json_decref(st);
    json_decref(r);
}

Test(ctl_httproute, a_backend_that_is_not_a_service_is_invalid_kind)
{
    ctl_httproute_env e = env("t");
    json_t *r = route("gw-ns"), *st;
    json_t *ref = json_array_get(
        json_object_get(json_array_get(json_object_get(json_object_get(r, "spec"), "rules"), 0),
                        "backendRefs"),
        0);

    json_object_set_new(ref, "group", json_string("example.com"));
    json_object_set_new(ref, "kind", json_string("Bucket"));
    st = ctl_httproute_status(r, &e);
    cr_assert_str_eq(ctl_kobj_str(cond(st, 0, "ResolvedRefs"), "reason", NULL), "InvalidKind");
    json_decref(st);
    json_decref(r);
}

static json_t *
lease(const char *holder, int secs)
{
    return json_pack("{s:{s:s,s:i}}", "spec", "holderIdentity", holder, "leaseDurationSeconds",
                     secs);
}

Test(ctl_httproute, leader_decisions_follow_client_go)
{
    json_t *mine = lease("me", 15), *theirs = lease("you", 15), *released = lease("", 15);
    json_t *no_dur = json_pack("{s:{s:s}}", "spec", "holderIdentity", "you");

    cr_assert_eq(ctl_leader_decide(mine, "me", 0, 100000, 5000), CTL_LEADER_RENEW);
    cr_assert_eq(ctl_leader_decide(theirs, "me", 1000, 15999, 5000), CTL_LEADER_WAIT,
                 "valid until observed + duration");
    cr_assert_eq(ctl_leader_decide(theirs, "me", 1000, 16000, 5000), CTL_LEADER_TAKE);
    cr_assert_eq(ctl_leader_decide(released, "me", 1000, 1000, 5000), CTL_LEADER_TAKE,
                 "a released lease is taken at once");
    cr_assert_eq(ctl_leader_decide(no_dur, "me", 0, 4999, 5000), CTL_LEADER_WAIT,
                 "without leaseDurationSeconds our own duration applies");
    cr_assert_eq(ctl_leader_decide(no_dur, "me", 0, 5000, 5000), CTL_LEADER_TAKE);
    json_decref(mine);
    json_decref(theirs);
    json_decref(released);
    json_decref(no_dur);
}
