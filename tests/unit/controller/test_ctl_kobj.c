/* Unit tests for ctl_kobj (pod JSON -> endpoint) and ctl_kevent's Event
 * object. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_kevent.h"
#include "ctl_kobj.h"
#include "ctl_set.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

TestSuite(ctl_kobj, .fini = ut_leak_check, .timeout = 10);

static json_t *
pod(const char *json)
{
    json_error_t err;
    json_t *j = json_loads(json, 0, &err);

    cr_assert_not_null(j, "bad test JSON: %s", err.text);
    return j;
}

#define READY_POD                                                                                  \
    "{\"metadata\":{\"name\":\"p\",\"namespace\":\"ns\",\"uid\":\"u1\",\"resourceVersion\":\"9\"," \
    "\"labels\":{\"model.aibrix.ai/name\":\"m\",\"model.aibrix.ai/port\":\"9001\","                \
    "\"model.aibrix.ai/engine\":\"sglang\",\"roleset-name\":\"rs\",\"role-name\":\"decode\","      \
    "\"app\":\"x\"},\"annotations\":{\"model.aibrix.ai/config\":\"{}\"}},"                         \
    "\"status\":{\"podIP\":\"10.0.0.7\",\"conditions\":[{\"type\":\"PodScheduled\",\"status\":"    \
    "\"True\"},{\"type\":\"Ready\",\"status\":\"True\"}]}}"

Test(ctl_kobj, a_ready_pod_becomes_a_ready_endpoint_with_its_labels)
{
    json_t *j = pod(READY_POD);
    ctl_kpod p = {0};
    pm_endpoint ep = {0};
    char *why = NULL;

    cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK, "%s", why);
    cr_assert_str_eq(p.model, "m");
    cr_assert_eq(p.port, 9001);
    cr_assert_eq(p.metric_port, 9001, "the metrics port defaults to the port");
    cr_assert_str_eq(p.engine, "sglang");
    cr_assert_str_eq(p.config, "{}");
    cr_assert(ctl_kpod_is_endpoint(&p));
    ctl_kpod_endpoint(&p, &ep);
    cr_assert(ep.ready);
    cr_assert_not(ep.draining);
    cr_assert_str_eq(ep.ip, "10.0.0.7");
    cr_assert_str_eq(ep.pod, "p");
    cr_assert_str_eq(ep.ns, "ns");
    cr_assert_str_eq(ep.roleset, "rs");
    cr_assert_str_eq(ep.role, "decode");
    cr_assert_eq(ep.n_labels, 6);
    cr_assert_str_eq(ep.labels[0], "app=x", "labels are sorted by key");
    ctl_endpoint_fini(&ep);
    ctl_kpod_fini(&p);
    json_decref(j);
}

Test(ctl_kobj, defaults_port_8000_engine_vllm)
{
    json_t *j = pod("{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"labels\":{"
                    "\"model.aibrix.ai/name\":\"m\",\"model.aibrix.ai/metric-port\":\"9100\"}}}");
    ctl_kpod p = {0};
    char *why = NULL;

    cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK, "%s", why);
    cr_assert_eq(p.port, 8000);
    cr_assert_eq(p.metric_port, 9100);
    cr_assert_str_eq(p.engine, "vllm");
    cr_assert_null(p.ip);
    cr_assert_not(ctl_kpod_is_endpoint(&p), "no IP: not an endpoint yet");
    ctl_kpod_fini(&p);
    json_decref(j);
}

Test(ctl_kobj, not_ready_and_terminating_pods)
{
    json_t *j = pod(READY_POD);
    ctl_kpod p = {0};
    pm_endpoint ep = {0};
    char *why = NULL;

    json_object_set_new(json_object_get(j, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK);
    ctl_kpod_endpoint(&p, &ep);
    cr_assert_not(ep.ready, "terminating: no new requests");
    cr_assert(ep.draining, "terminating: in-flight requests finish");
    ctl_endpoint_fini(&ep);
    ctl_kpod_fini(&p);
    json_decref(j);

    j = pod(READY_POD);
    json_object_set_new(
        json_array_get(json_object_get(json_object_get(j, "status"), "conditions"), 1), "status",
        json_string("False"));
    cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK);
    cr_assert_not(p.ready);
    ctl_kpod_endpoint(&p, &ep);
    cr_assert_not(ep.ready);
    cr_assert_not(ep.draining);
    ctl_endpoint_fini(&ep);
    ctl_kpod_fini(&p);
    json_decref(j);
}

Test(ctl_kobj, workers_of_multi_node_groups_are_skipped)
{
    const char *labels[] = {"\"ray.io/node-type\":\"worker\"",
                            "\"stormservice.orchestration.aibrix.ai/pod-group-index\":\"1\""};
    for (size_t i = 0; i < 2; i++) {
        char buf[512];
        ctl_kpod p = {0};
        char *why = NULL;
        snprintf(buf, sizeof(buf),
                 "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"labels\":{"
                 "\"model.aibrix.ai/name\":\"m\",%s}},\"status\":{\"podIP\":\"1.2.3.4\"}}",
                 labels[i]);
        json_t *j = pod(buf);
        cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK);
        cr_assert(p.skipped);
        cr_assert_not(ctl_kpod_is_endpoint(&p));
        ctl_kpod_fini(&p);
        json_decref(j);
    }
}

Test(ctl_kobj, the_model_may_come_from_the_annotation)
{
    json_t *j = pod("{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"annotations\":{"
                    "\"model.aibrix.ai/name\":\"org/model\"}}}");
    ctl_kpod p = {0};
    char *why = NULL;

    cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK);
    cr_assert_str_eq(p.model, "org/model");
    ctl_kpod_fini(&p);
    json_decref(j);
    j = pod("{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"}}");
    cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_OK);
    cr_assert_null(p.model, "no model: not a model pod");
    ctl_kpod_fini(&p);
    json_decref(j);
}

Test(ctl_kobj, bad_pods_are_refused_with_the_field)
{
    struct {
        const char *json, *needle;
    } cases[] = {
        {"[]", "not an object"},
        {"{\"metadata\":{\"name\":\"p\"}}", "metadata.namespace"},
        {"{\"metadata\":{\"name\":\"\",\"namespace\":\"n\"}}", "metadata.name"},
        {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"labels\":{\"model.aibrix.ai/port\":"
         "\"80x\"}}}",
         "model.aibrix.ai/port"},
        {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"labels\":{\"model.aibrix.ai/port\":"
         "\"70000\"}}}",
         "1..65535"},
        {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"labels\":{\"a\":1}}}",
         "not a string"},
        {"{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"},\"status\":{\"podIP\":\"a b\"}}",
         "podIP"},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        json_t *j = pod(cases[i].json);
        ctl_kpod p = {0};
        char *why = NULL;
        cr_assert_eq(ctl_kpod_parse(j, &p, &why), GW_EINVAL, "accepted %s", cases[i].json);
        cr_assert(strstr(why, cases[i].needle) != NULL, "\"%s\" lacks \"%s\"", why,
                  cases[i].needle);
        cr_assert_null(p.name, "out untouched on error");
        free(why);
        json_decref(j);
    }
}

Test(ctl_kobj, a_service_selector_matches_pod_labels)
{
    char *labels[] = {"app=x", "tier=gpu"};
    json_t *sel = pod("{\"app\":\"x\"}"), *other = pod("{\"app\":\"y\"}"), *empty = pod("{}");

    cr_assert(ctl_kobj_selects(sel, labels, 2));
    cr_assert_not(ctl_kobj_selects(other, labels, 2));
    cr_assert_not(ctl_kobj_selects(empty, labels, 2), "an empty selector selects nothing");
    cr_assert_not(ctl_kobj_selects(NULL, labels, 2));
    json_decref(sel);
    json_decref(other);
    json_decref(empty);
}

Test(ctl_kobj, an_event_names_its_object_and_caps_the_message)
{
    json_t *p = pod(READY_POD);
    char big[3000];
    json_t *ev;

    json_object_set_new(p, "apiVersion", json_string("v1"));
    json_object_set_new(p, "kind", json_string("Pod"));
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ev = ctl_kevent_build(p, "Warning", "InvalidModelConfig", big, "ctl-a", 1000);
    cr_assert_not_null(ev);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(ev, "metadata"), "name")),
                     "p.3b9aca00", "<object>.<hex nanoseconds>, as client-go names events");
    cr_assert_str_eq(ctl_kobj_str(ev, "involvedObject", "uid", NULL), "u1");
    cr_assert_str_eq(ctl_kobj_str(ev, "involvedObject", "kind", NULL), "Pod");
    cr_assert_str_eq(ctl_kobj_str(ev, "metadata", "namespace", NULL), "ns");
    cr_assert_str_eq(ctl_kobj_str(ev, "reportingInstance", NULL), "ctl-a");
    cr_assert_eq(strlen(ctl_kobj_str(ev, "message", NULL)), 1024);
    json_decref(ev);
    json_decref(p);
}
