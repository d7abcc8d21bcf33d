/* Unit tests for ctl_disc_rec: the registration record of the redis and
 * etcd discovery sources. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_disc_rec.h"
#include "ctl_set.h"
#include "ut_leak.h"

TestSuite(ctl_disc_rec, .fini = ut_leak_check, .timeout = 10);

static gw_err
parse(const char *json, const char *key_id, ctl_disc_rec *r, char **why)
{
    return ctl_disc_rec_parse(json, strlen(json), key_id, r, why);
}

static void
expect_refused(const char *json, const char *needle)
{
    ctl_disc_rec r = {.port = 7};
    char *why = NULL;

    cr_assert_eq(parse(json, "k", &r, &why), GW_EINVAL, "accepted: %s", json);
    cr_assert(why != NULL && strstr(why, needle) != NULL, "message \"%s\" lacks \"%s\"", why,
              needle);
    cr_assert_eq(r.port, 7, "out is untouched on error");
    free(why);
}

Test(ctl_disc_rec, parses_every_field)
{
    ctl_disc_rec r;
    char *why = NULL;

    cr_assert_eq(parse("{\"id\":\"vllm-0\",\"model\":\"llama3\",\"ip\":\"10.0.3.7\",\"port\":8000,"
                       "\"metric_port\":8001,\"role\":\"prefill\",\"engine\":\"sglang\","
                       "\"roleset\":\"rs-1\",\"draining\":false,\"timestamp_ms\":1732222222000,"
                       "\"future_field\":[1,2]}",
                       "ignored", &r, &why),
                 GW_OK, "%s", why);
    cr_assert_str_eq(r.id, "vllm-0");
    cr_assert_str_eq(r.model, "llama3");
    cr_assert_str_eq(r.ip, "10.0.3.7");
    cr_assert_eq(r.port, 8000);
    cr_assert_eq(r.metric_port, 8001);
    cr_assert_str_eq(r.role, "prefill");
    cr_assert_str_eq(r.engine, "sglang");
    cr_assert_str_eq(r.roleset, "rs-1");
    cr_assert_not(r.draining);
    cr_assert_eq(r.timestamp_ms, 1732222222000LL);
    ctl_disc_rec_fini(&r);
}

Test(ctl_disc_rec, fills_defaults_and_takes_the_id_from_the_key)
{
    ctl_disc_rec r;
    char *why = NULL;

    cr_assert_eq(parse("{\"model\":\"m\",\"ip\":\"engine.ns.svc\",\"port\":80,\"role\":\"both\","
                       "\"timestamp_ms\":0}",
                       "pod-7", &r, &why),
                 GW_OK, "%s", why);
    cr_assert_str_eq(r.id, "pod-7");
    cr_assert_str_eq(r.engine, "vllm");
    cr_assert_null(r.role, "both is the snapshot's combined role (none)");
    cr_assert_null(r.roleset);
    cr_assert_eq(r.metric_port, 0);
    ctl_disc_rec_fini(&r);
}

Test(ctl_disc_rec, refuses_what_a_snapshot_cannot_carry)
{
    expect_refused("", "not JSON");
    expect_refused("\x0a\x05pod-1", "not JSON"); /* a Llumnix protobuf value */
    expect_refused("[1]", "not a JSON object");
    expect_refused("{\"ip\":\"a\",\"port\":1,\"timestamp_ms\":1}", "\"model\" is missing");
    expect_refused("{\"model\":\"\",\"ip\":\"a\",\"port\":1,\"timestamp_ms\":1}", "\"model\"");
    expect_refused("{\"model\":\"m\",\"port\":1,\"timestamp_ms\":1}", "\"ip\" is missing");
    expect_refused("{\"model\":\"m\",\"ip\":\"a b\",\"port\":1,\"timestamp_ms\":1}", "\"ip\"");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":0,\"timestamp_ms\":1}", "\"port\"");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":65536,\"timestamp_ms\":1}", "\"port\"");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":\"80\",\"timestamp_ms\":1}", "\"port\"");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":1}", "\"timestamp_ms\"");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":1,\"timestamp_ms\":-5}",
                   "\"timestamp_ms\"");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":1,\"timestamp_ms\":1,\"role\":\"x\"}",
                   "prefill, decode or both");
    expect_refused("{\"model\":\"m\",\"ip\":\"a\",\"port\":1,\"timestamp_ms\":1,\"draining\":1}",
                   "\"draining\"");
    expect_refused("{\"model\":\"m\",\"model\":\"n\",\"ip\":\"a\",\"port\":1,\"timestamp_ms\":1}",
                   "not JSON");
}

Test(ctl_disc_rec, needs_an_id_from_the_record_or_the_key)
{
    ctl_disc_rec r;
    char *why = NULL;

    cr_assert_eq(
        parse("{\"model\":\"m\",\"ip\":\"a\",\"port\":1,\"timestamp_ms\":1}", NULL, &r, &why),
        GW_EINVAL);
    cr_assert(strstr(why, "no \"id\"") != NULL, "%s", why);
    free(why);
}

Test(ctl_disc_rec, refuses_an_oversized_record)
{
    size_t n = CTL_DISC_REC_MAX_BYTES + 1;
    char *big = malloc(n);
    ctl_disc_rec r;
    char *why = NULL;

    memset(big, ' ', n);
    cr_assert_eq(ctl_disc_rec_parse(big, n, "k", &r, &why), GW_EINVAL);
    cr_assert(strstr(why, "over") != NULL, "%s", why);
    free(why);
    free(big);
}

Test(ctl_disc_rec, encode_then_parse_is_the_same_record)
{
    ctl_disc_rec a = {.id = "e-1",
                      .model = "qwen",
                      .ip = "::1",
                      .port = 9000,
                      .metric_port = 9100,
                      .role = "decode",
                      .engine = "vllm",
                      .roleset = "set-a",
                      .draining = true,
                      .timestamp_ms = 1795298223444LL};
    ctl_disc_rec b;
    char *why = NULL, *s = ctl_disc_rec_encode(&a);

    cr_assert_str_eq(s, "{\"id\":\"e-1\",\"model\":\"qwen\",\"ip\":\"::1\",\"port\":9000,"
                        "\"metric_port\":9100,\"role\":\"decode\",\"engine\":\"vllm\","
                        "\"roleset\":\"set-a\",\"draining\":true,\"timestamp_ms\":1795298223444}");
    cr_assert_eq(parse(s, NULL, &b, &why), GW_OK, "%s", why);
    cr_assert(ctl_disc_rec_same(&a, &b));
    cr_assert_eq(b.timestamp_ms, a.timestamp_ms);
    b.port++;
    cr_assert_not(ctl_disc_rec_same(&a, &b));
    ctl_disc_rec_fini(&b);
    free(s);
}

Test(ctl_disc_rec, combined_role_is_written_as_both)
{
    ctl_disc_rec a = {.model = "m", .ip = "h", .port = 1, .timestamp_ms = 5};
    char *s = ctl_disc_rec_encode(&a);

    cr_assert(strstr(s, "\"role\":\"both\"") != NULL, "%s", s);
    cr_assert(strstr(s, "\"engine\":\"vllm\"") != NULL, "%s", s);
    cr_assert(strstr(s, "\"id\"") == NULL, "no id: the key names the instance");
    free(s);
}

Test(ctl_disc_rec, makes_a_ready_or_draining_endpoint)
{
    ctl_disc_rec r = {.id = "e", .model = "m", .ip = "h", .port = 80, .engine = "vllm"};
    pm_endpoint ep = {0};

    ctl_disc_rec_endpoint(&r, &ep);
    cr_assert_str_eq(ep.pod, "e");
    cr_assert_eq(ep.metric_port, 80, "metric port defaults to the serving port");
    cr_assert(ep.ready);
    cr_assert_not(ep.draining);
    cr_assert_null(ep.role);
    ctl_endpoint_fini(&ep);
    r.draining = true;
    r.role = "prefill";
    ctl_disc_rec_endpoint(&r, &ep);
    cr_assert_not(ep.ready);
    cr_assert(ep.draining);
    cr_assert_str_eq(ep.role, "prefill");
    ctl_endpoint_fini(&ep);
}
