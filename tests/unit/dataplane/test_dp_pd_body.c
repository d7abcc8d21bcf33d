/* Unit tests for dp_pd_body: the prefill and decode bodies of each
 * disaggregation protocol (llumnix.md §2, aibrix.md §9.3). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "dp_pd_body.h"
#include "ut_leak.h"

TestSuite(dp_pd_body, .fini = ut_leak_check, .timeout = 10);

static const char REQ[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                          "\"max_tokens\":50,\"min_tokens\":3,\"stream\":true,"
                          "\"stream_options\":{\"include_usage\":true},"
                          "\"kv_transfer_params\":{\"client\":\"x\"},\"temperature\":0.5}";

static json_t *
prefill(dp_pd_proto p, const char *body)
{
    gw_buf b;
    json_t *o;

    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(dp_pd_prefill_body(p, body, strlen(body), &b), GW_OK);
    o = json_loads(b.data, 0, NULL);
    cr_assert_not_null(o, "%s", b.data);
    gw_buf_fini(&b);
    return o;
}

static json_t *
decode(dp_pd_proto p, bool staged, const char *resp)
{
    gw_buf b;
    json_t *o;
    const char *why = NULL;

    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(dp_pd_decode_body(p, staged, REQ, strlen(REQ), resp, resp ? strlen(resp) : 0,
                                   "10.0.0.7", 8000, &b, &why),
                 GW_OK, "%s", why);
    o = json_loads(b.data, 0, NULL);
    cr_assert_not_null(o);
    gw_buf_fini(&b);
    return o;
}

#define GET(o, path) json_object_get((o), (path))
#define KV(o, k)     json_object_get(json_object_get((o), "kv_transfer_params"), (k))

Test(dp_pd_body, protocol_names_parse)
{
    dp_pd_proto p;

    cr_assert(dp_pd_proto_parse("", &p) && p == DP_PD_AIBRIX);
    cr_assert(dp_pd_proto_parse(NULL, &p) && p == DP_PD_AIBRIX);
    cr_assert(dp_pd_proto_parse("vllm-kvt", &p) && p == DP_PD_KVT);
    cr_assert(dp_pd_proto_parse("vllm-mooncake", &p) && p == DP_PD_MOONCAKE);
    cr_assert_not(dp_pd_proto_parse("sglang-mooncake", &p));
    cr_assert_not(dp_pd_proto_parse("VLLM-KVT", &p));
    cr_assert_not(dp_pd_has_prefill_call(DP_PD_KVT, false), "kvt batched: decode only");
    cr_assert(dp_pd_has_prefill_call(DP_PD_KVT, true));
    cr_assert(dp_pd_has_prefill_call(DP_PD_MOONCAKE, false));
}

Test(dp_pd_body, kvt_prefill_keeps_stream_and_merges_do_remote_decode)
{
    json_t *o = prefill(DP_PD_KVT, REQ);

    cr_assert_eq(json_integer_value(GET(o, "max_tokens")), 1);
    cr_assert(json_is_true(GET(o, "stream")), "kvt staged keeps the stream");
    cr_assert_not_null(GET(o, "stream_options"));
    cr_assert(json_is_true(KV(o, "do_remote_decode")));
    cr_assert_str_eq(json_string_value(KV(o, "client")), "x", "merged, not replaced");
    cr_assert_eq(json_integer_value(GET(o, "min_tokens")), 3);
    json_decref(o);
}

Test(dp_pd_body, mooncake_prefill_is_one_token_without_stream_and_with_producer_params)
{
    json_t *o = prefill(DP_PD_MOONCAKE, REQ);

    cr_assert_eq(json_integer_value(GET(o, "max_tokens")), 1);
    cr_assert(json_is_false(GET(o, "stream")));
    cr_assert_null(GET(o, "stream_options"));
    cr_assert(json_is_true(KV(o, "do_remote_decode")));
    cr_assert(json_is_false(KV(o, "do_remote_prefill")));
    cr_assert(json_is_null(KV(o, "remote_engine_id")));
    cr_assert(json_is_null(KV(o, "remote_block_ids")));
    cr_assert(json_is_null(KV(o, "remote_host")));
    cr_assert(json_is_null(KV(o, "remote_port")));
    cr_assert_null(KV(o, "client"), "replaced, not merged");
    cr_assert_null(GET(o, "max_completion_tokens"));
    cr_assert_eq(json_integer_value(GET(o, "min_tokens")), 3);
    cr_assert_str_eq(json_string_value(GET(o, "model")), "m");
    json_decref(o);
}

Test(dp_pd_body, aibrix_prefill_also_caps_max_completion_tokens_and_drops_min_tokens)
{
    json_t *o = prefill(DP_PD_AIBRIX, REQ);

    cr_assert_eq(json_integer_value(GET(o, "max_completion_tokens")), 1);
    cr_assert_null(GET(o, "min_tokens"));
    cr_assert(json_is_false(GET(o, "stream")));
    json_decref(o);
}

Test(dp_pd_body, kvt_decode_points_at_the_prefill)
{
    json_t *b = decode(DP_PD_KVT, false, NULL), *s = decode(DP_PD_KVT, true, NULL);

    cr_assert_str_eq(json_string_value(KV(b, "remote_host")), "10.0.0.7");
    cr_assert_eq(json_integer_value(KV(b, "remote_port")), 8000);
    cr_assert_null(KV(b, "do_remote_prefill"), "batched: no do_remote_* flag");
    cr_assert_eq(json_integer_value(GET(b, "max_tokens")), 50, "the client's own limits");
    cr_assert(json_is_true(GET(b, "stream")));
    cr_assert(json_is_true(KV(s, "do_remote_prefill")));
    cr_assert_str_eq(json_string_value(KV(s, "client")), "x");
    json_decref(b);
    json_decref(s);
}

Test(dp_pd_body, mooncake_decode_copies_the_prefill_params_verbatim_and_aibrix_sets_the_host)
{
    const char *resp = "{\"id\":\"c\",\"choices\":[],\"kv_transfer_params\":{\"do_remote_prefill\":"
                       "true,\"remote_engine_id\":\"e1\",\"remote_block_ids\":[1,2],"
                       "\"remote_host\":\"pod-ip\",\"remote_port\":5600}}";
    json_t *m = decode(DP_PD_MOONCAKE, false, resp), *a = decode(DP_PD_AIBRIX, true, resp);

    cr_assert_str_eq(json_string_value(KV(m, "remote_engine_id")), "e1");
    cr_assert_eq(json_array_size(KV(m, "remote_block_ids")), 2);
    cr_assert_str_eq(json_string_value(KV(m, "remote_host")), "pod-ip");
    cr_assert_eq(json_integer_value(KV(m, "remote_port")), 5600);
    cr_assert_null(KV(m, "client"));
    cr_assert_eq(json_integer_value(GET(m, "max_tokens")), 50);
    cr_assert_str_eq(json_string_value(KV(a, "remote_host")), "10.0.0.7");
    json_decref(m);
    json_decref(a);
}

Test(dp_pd_body, bad_inputs_are_refused_with_a_reason)
{
    gw_buf b;
    const char *why = NULL;

    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(dp_pd_prefill_body(DP_PD_MOONCAKE, "[1]", 3, &b), GW_EINVAL);
    cr_assert_eq(dp_pd_prefill_body(DP_PD_MOONCAKE, "{", 1, &b), GW_EINVAL);
    cr_assert_eq(dp_pd_decode_body(DP_PD_MOONCAKE, false, REQ, strlen(REQ), "{\"id\":1}", 8, "h", 1,
                                   &b, &why),
                 GW_EINVAL);
    cr_assert(strstr(why, "kv_transfer_params") != NULL);
    cr_assert_eq(
        dp_pd_decode_body(DP_PD_AIBRIX, false, REQ, strlen(REQ), "not json", 8, "h", 1, &b, &why),
        GW_EINVAL);
    cr_assert_eq(
        dp_pd_decode_body(DP_PD_AIBRIX, false, REQ, strlen(REQ), NULL, 0, "h", 1, &b, &why),
        GW_EINVAL);
    cr_assert_eq(b.len, 0, "nothing written on error");
    gw_buf_init(&b, 8);
    cr_assert_eq(dp_pd_prefill_body(DP_PD_KVT, REQ, strlen(REQ), &b), GW_EFULL);
    gw_buf_fini(&b);
}
