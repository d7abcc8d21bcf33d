/* Unit tests for dp_parse: what routing reads from a request body, and the
 * exact outcome for each malformed shape. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_parse.h"
#include "dp_parse_ref.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_parse, .fini = fini, .timeout = 10);

static dp_parse_status
parse(dp_api api, const char *body, dp_reqinfo *info)
{
    return dp_parse_request(api, body, strlen(body), info);
}

Test(dp_parse, reads_model_stream_usage_and_max_tokens)
{
    dp_reqinfo info;
    const char *b =
        "{\"model\":\"llama\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"max_tokens\":64,\"messages\":[{\"role\":\"system\",\"content\":\"abcd\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"xyz\"}]}]}";

    cr_assert_eq(parse(DP_API_CHAT, b, &info), DP_PARSE_OK);
    cr_assert_str_eq(info.model, "llama");
    cr_assert(info.stream);
    cr_assert(info.include_usage);
    cr_assert_eq(info.max_tokens, 64);
    cr_assert_eq(info.prompt_bytes, 7);
    dp_reqinfo_fini(&info);
}

Test(dp_parse, max_completion_tokens_is_used_when_max_tokens_is_absent)
{
    dp_reqinfo info;
    cr_assert_eq(
        parse(DP_API_CHAT,
              "{\"model\":\"m\",\"max_completion_tokens\":9,\"messages\":[{\"role\":\"u\"}]}",
              &info),
        DP_PARSE_OK);
    cr_assert_eq(info.max_tokens, 9);
    cr_assert_not(info.stream);
    dp_reqinfo_fini(&info);
}

Test(dp_parse, completions_accept_string_and_token_array_prompts)
{
    dp_reqinfo info;
    cr_assert_eq(parse(DP_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"hello\"}", &info),
                 DP_PARSE_OK);
    cr_assert_eq(info.prompt_bytes, 5);
    dp_reqinfo_fini(&info);
    cr_assert_eq(parse(DP_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":[1,2,3]}", &info),
                 DP_PARSE_OK);
    dp_reqinfo_fini(&info);
}

Test(dp_parse, embeddings_need_input_and_refuse_stream)
{
    dp_reqinfo info;
    cr_assert_eq(parse(DP_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":[\"a\",\"b\"]}", &info),
                 DP_PARSE_OK);
    dp_reqinfo_fini(&info);
    cr_assert_eq(parse(DP_API_EMBEDDINGS, "{\"model\":\"m\"}", &info), DP_PARSE_BAD_BODY);
    cr_assert_eq(
        parse(DP_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"a\",\"stream\":true}", &info),
        DP_PARSE_BAD_BODY);
    cr_assert_null(info.model);
}

Test(dp_parse, malformed_bodies_are_bad_body_with_a_reason)
{
    static const char *const bad[] = {
        "",
        "{",
        "[1]",
        "\"str\"",
        "{\"model\":\"m\"}",
        "{\"model\":\"m\",\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":{}}",
        "{\"model\":\"m\",\"messages\":[1]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":\"no role\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],\"stream\":1}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],\"stream_options\":[]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],\"max_tokens\":-1}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],\"max_tokens\":\"5\"}",
        "{\"model\":\"m\",\"model\":\"n\",\"messages\":[{\"role\":\"u\"}]}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}]} trailing",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dp_reqinfo info;
        cr_assert_eq(parse(DP_API_CHAT, bad[i], &info), DP_PARSE_BAD_BODY, "body %zu: %s", i,
                     bad[i]);
        cr_assert_neq(info.why[0], '\0', "body %zu has no reason", i);
        cr_assert_null(info.model);
    }
}

Test(dp_parse, missing_or_empty_model_is_no_model)
{
    static const char *const bad[] = {
        "{\"messages\":[{\"role\":\"u\"}]}",
        "{\"model\":\"\",\"messages\":[{\"role\":\"u\"}]}",
        "{\"model\":5,\"messages\":[{\"role\":\"u\"}]}",
        "{\"model\":null,\"messages\":[{\"role\":\"u\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dp_reqinfo info;
        cr_assert_eq(parse(DP_API_CHAT, bad[i], &info), DP_PARSE_NO_MODEL, "body %zu", i);
        cr_assert_null(info.model);
    }
}

Test(dp_parse, stream_null_means_not_streaming)
{
    dp_reqinfo info;
    cr_assert_eq(parse(DP_API_CHAT,
                       "{\"model\":\"m\",\"stream\":null,\"messages\":[{\"role\":\"u\"}]}", &info),
                 DP_PARSE_OK);
    cr_assert_not(info.stream);
    dp_reqinfo_fini(&info);
}

/* ---- routing text --------------------------------------------------------------- */

static const char *
text_of(dp_api api, const char *body, size_t cap, gw_buf *t)
{
    dp_reqinfo info;

    gw_buf_init(t, cap);
    cr_assert_eq(dp_parse_request_text(api, body, strlen(body), &info, t), DP_PARSE_OK);
    dp_reqinfo_fini(&info);
    return t->data ? t->data : "";
}

Test(dp_parse, chat_routing_text_is_role_newline_content_newline_per_message)
{
    gw_buf t;
    const char *b =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"image_"
        "url\","
        "\"image_url\":{\"url\":\"http://x\"}},{\"type\":\"text\",\"text\":\"b\"}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]},"
        "{\"role\":\"user\",\"content\":\"caf\\u00e9\"}]}";

    cr_assert_str_eq(text_of(DP_API_CHAT, b, 4096, &t),
                     "system\nBe brief.\nuser\nab\nassistant\n\nuser\ncaf\xc3\xa9\n");
    gw_buf_fini(&t);
}

Test(dp_parse, a_later_turn_extends_the_earlier_turns_text)
{
    gw_buf a, b;
    const char *t1 = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *t2 =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\","
        "\"content\":\"hello\"},{\"role\":\"user\",\"content\":\"more\"}],"
        "\"model\":\"m\",\"stream\":true}";

    text_of(DP_API_CHAT, t1, 4096, &a);
    text_of(DP_API_CHAT, t2, 4096, &b);
    cr_assert(b.len > a.len && memcmp(a.data, b.data, a.len) == 0);
    gw_buf_fini(&a);
    gw_buf_fini(&b);
}

Test(dp_parse, completion_routing_text_is_the_prompt_and_token_ids_are_4_le_bytes)
{
    gw_buf t;
    const char *ids = "{\"model\":\"m\",\"prompt\":[\"ab\",258,[1,2],\"c\"]}";

    cr_assert_str_eq(
        text_of(DP_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"Once upon\"}", 64, &t),
        "Once upon");
    gw_buf_fini(&t);
    text_of(DP_API_COMPLETIONS, ids, 64, &t);
    cr_assert_eq(t.len, 2 + 4 + 1);
    cr_assert(memcmp(t.data,
                     "ab\x02\x01\x00\x00"
                     "c",
                     7) == 0);
    gw_buf_fini(&t);
    cr_assert_str_eq(text_of(DP_API_EMBEDDINGS, "{\"model\":\"m\",\"input\":\"vec\"}", 64, &t),
                     "vec");
    gw_buf_fini(&t);
}

Test(dp_parse, routing_text_is_cut_at_the_cap_and_reset_per_request)
{
    gw_buf t;
    dp_reqinfo info;
    const char *b = "{\"model\":\"m\",\"prompt\":\"0123456789abcdef\"}";

    cr_assert_str_eq(text_of(DP_API_COMPLETIONS, b, 10, &t), "0123456789");
    cr_assert_eq(dp_parse_request_text(DP_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"xy\"}",
                                       27, &info, &t),
                 DP_PARSE_OK);
    dp_reqinfo_fini(&info);
    cr_assert_str_eq(t.data, "xy", "reset, not appended");
    cr_assert_eq(dp_parse_request_text(DP_API_COMPLETIONS, "{\"prompt\":\"xy\"}", 15, &info, &t),
                 DP_PARSE_NO_MODEL);
    gw_buf_fini(&t);
}

/* The scanner against the jansson-based reference (dp_parse_ref): the same
 * status, model, flags, counts and routing text for every API shape. */
static void
assert_same_as_reference(const char *body, size_t len)
{
    for (int api = DP_API_CHAT; api <= DP_API_EMBEDDINGS; api++) {
        dp_reqinfo a, b;
        gw_buf ta, tb;
        gw_buf_init(&ta, 4096);
        gw_buf_init(&tb, 4096);
        dp_parse_status sa = dp_parse_request_text((dp_api)api, body, len, &a, &ta);
        dp_parse_status sb = dp_parse_ref_request_text((dp_api)api, body, len, &b, &tb);
        cr_assert_eq(sa, sb, "api %d, status %d vs reference %d (%s / %s): %.200s", api, sa, sb,
                     a.why, b.why, body);
        if (sa == DP_PARSE_OK) {
            cr_assert_str_eq(a.model, b.model);
            cr_assert_eq(a.stream, b.stream);
            cr_assert_eq(a.include_usage, b.include_usage);
            cr_assert_eq(a.max_tokens, b.max_tokens, "%.200s", body);
            cr_assert_eq(a.prompt_bytes, b.prompt_bytes, "%.200s", body);
            cr_assert_eq(ta.len, tb.len, "%.200s", body);
            cr_assert(ta.len == 0 || memcmp(ta.data, tb.data, ta.len) == 0, "%.200s", body);
        }
        dp_reqinfo_fini(&a);
        dp_reqinfo_fini(&b);
        gw_buf_fini(&ta);
        gw_buf_fini(&tb);
    }
}

/* A chat body whose one message's content is <content> and with <extra>
 * top-level members. */
static char *
chat_with(const char *content, const char *extra)
{
    gw_buf b;
    gw_buf_init(&b, 1 << 20);
    cr_assert_eq(gw_buf_printf(&b,
                               "{\"model\":\"m\",\"prompt\":\"p\",\"input\":[1,\"i\"],"
                               "\"messages\":[{\"role\":\"u\",\"content\":%s}]%s}",
                               content, extra),
                 GW_OK);
    return gw_buf_steal(&b);
}

Test(dp_parse, strings_and_numbers_follow_jansson_exactly)
{
    static const struct {
        const char *content, *extra;
        bool ok;
    } cases[] = {
        {"\"a\\u00e9b\\n\\t\\/\\\"\"", "", true},
        {"\"\\ud83d\\ude00\"", "", true},
        {"\"\\ud83d\"", "", false},
        {"\"\\ude00\"", "", false},
        {"\"\\ud83d\\u0041\"", "", false},
        {"\"\\u0000\"", "", false},
        {"\"\\u00zz\"", "", false},
        {"\"\\x\"", "", false},
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"", "", true},
        {"\"\xc0\xaf\"", "", false},
        {"\"\xed\xa0\x80\"", "", false},
        {"\"\xf4\x90\x80\x80\"", "", false},
        {"\"\xe2\x82\"", "", false},
        {"\"\x80\"", "", false},
        {"\"\x1f\"", "", false},
        {"\"tab\there\"", "", false},
        {"[{\"type\":\"text\",\"text\":\"a\"},{\"text\":5},7,{\"text\":\"b\"}]", "", true},
        {"{\"text\":\"not an array\"}", "", true},
        {"null", ",\"x\":9223372036854775807,\"y\":-9223372036854775808", true},
        {"null", ",\"x\":9223372036854775808", false},
        {"null", ",\"x\":-9223372036854775809", false},
        {"null", ",\"x\":123456789012345678901234567890", false},
        {"null", ",\"x\":[1e308,-1e308,1e-400,1E+5,-0,0.5e-3]", true},
        {"null", ",\"x\":1e309", false},
        {"null", ",\"x\":-1e309", false},
        {"null", ",\"x\":01", false},
        {"null", ",\"x\":-", false},
        {"null", ",\"x\":1.", false},
        {"null", ",\"x\":.5", false},
        {"null", ",\"x\":1e", false},
        {"null", ",\"x\":+1", false},
        {"null", ",\"x\":nul", false},
        {"null", ",\"x\":nullx", false},
        {"null", ",\"x\":True", false},
        {"null", ",\"\":1", true},
        {"null", ",\"max_tokens\":5.0", false},
        {"null", ",\"max_tokens\":null,\"max_completion_tokens\":7", true},
        {"null", ",\"stream_options\":{\"include_usage\":1}", true},
        {"null", ",\"stream_options\":{\"include_usage\":true,\"x\":[]}", true},
        {"null", ",\"stream\":false,\"stream_options\":null", true},
        {"null", ",\"m\\u006fdel\":\"n\"", false},
        {"null", ",\"x\":{\"a\":1,\"\\u0061\":2}", false},
        {"null", ",\"x\":{\"a\":1,\"b\":{\"a\":2}}", true},
        {"null", ",\"x\":[1,]", false},
        {"null", ",\"x\":{\"a\":1,}", false},
        {"null", ",\"x\":[1 2]", false},
        {"null", ",\"x\" 1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = chat_with(cases[i].content, cases[i].extra);
        dp_reqinfo info;
        dp_parse_status st = parse(DP_API_CHAT, body, &info);
        cr_assert_eq(st == DP_PARSE_OK, cases[i].ok, "case %zu (%s): %s", i, info.why, body);
        dp_reqinfo_fini(&info);
        assert_same_as_reference(body, strlen(body));
        free(body);
    }
}

Test(dp_parse, duplicate_keys_are_refused_in_any_object_large_or_small)
{
    gw_buf b;
    gw_buf_init(&b, 1 << 20);
    for (int dup = 0; dup <= 1; dup++) {
        gw_buf_reset(&b);
        cr_assert_eq(gw_buf_append_str(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],"
                                           "\"x\":{"),
                     GW_OK);
        for (int k = 0; k < 500; k++)
            cr_assert_eq(gw_buf_printf(&b, "\"k%d\":%d,", k, k), GW_OK);
        /* The last key repeats the 7th, spelled with an escape. */
        cr_assert_eq(gw_buf_append_str(&b, dup ? "\"k\\u0037\":0}}" : "\"k\\u0037x\":0}}"), GW_OK);
        dp_reqinfo info;
        cr_assert_eq(dp_parse_request(DP_API_CHAT, b.data, b.len, &info),
                     dup ? DP_PARSE_BAD_BODY : DP_PARSE_OK);
        dp_reqinfo_fini(&info);
        assert_same_as_reference(b.data, b.len);
    }
    gw_buf_fini(&b);
}

Test(dp_parse, nesting_is_limited_to_jansson_depth)
{
    /* "x" is 2 deep; k arrays inside it put the innermost at k + 1. */
    for (int k = 2046; k <= 2049; k++) {
        gw_buf b;
        gw_buf_init(&b, 1 << 20);
        cr_assert_eq(gw_buf_append_str(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],"
                                           "\"x\":"),
                     GW_OK);
        for (int i = 0; i < k; i++)
            cr_assert_eq(gw_buf_append_str(&b, "["), GW_OK);
        for (int i = 0; i < k; i++)
            cr_assert_eq(gw_buf_append_str(&b, "]"), GW_OK);
        cr_assert_eq(gw_buf_append_str(&b, "}"), GW_OK);
        dp_reqinfo info;
        cr_assert_eq(dp_parse_request(DP_API_CHAT, b.data, b.len, &info) == DP_PARSE_OK,
                     k + 1 <= 2048, "k=%d: %s", k, info.why);
        dp_reqinfo_fini(&info);
        assert_same_as_reference(b.data, b.len);
        gw_buf_fini(&b);
    }
}

Test(dp_parse, completions_prompt_elements_match_the_reference)
{
    static const char *const bodies[] = {
        "{\"model\":\"m\",\"prompt\":[1,\"a\",[2,[3]],4294967297,-1]}",
        "{\"model\":\"m\",\"prompt\":[1.5]}",
        "{\"model\":\"m\",\"prompt\":[true]}",
        "{\"model\":\"m\",\"prompt\":[{}]}",
        "{\"model\":\"m\",\"prompt\":[]}",
        "{\"model\":\"m\",\"prompt\":\"\"}",
        "{\"model\":\"m\",\"input\":null}",
        " \n{\"model\":\"m\\u00e9\",\"input\":\"x\",\"prompt\":[\"y\"]}\r\n\t",
        "[{\"model\":\"m\"}]",
        "[{\"model\":\"m\"},]",
        "  ",
        "5",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        assert_same_as_reference(bodies[i], strlen(bodies[i]));
}

Test(dp_parse, a_nul_byte_outside_strings_is_refused_where_jansson_would_drop_it)
{
    /* jansson's reader skips a NUL read right after a number or a literal;
     * a NUL byte is never valid JSON, so the scanner refuses it. */
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"u\"}],\"x\":1\0}";
    dp_reqinfo info;

    cr_assert_eq(dp_parse_request(DP_API_CHAT, body, sizeof(body) - 1, &info), DP_PARSE_BAD_BODY);
    cr_assert_null(info.model);
}

Test(dp_parse, json_content_types_as_vllm_reads_them)
{
    cr_assert(dp_parse_json_content_type(NULL));
    cr_assert(dp_parse_json_content_type(""));
    cr_assert(dp_parse_json_content_type("application/json"));
    cr_assert(dp_parse_json_content_type("Application/JSON; charset=utf-8"));
    cr_assert(dp_parse_json_content_type(" application/json"));
    cr_assert(dp_parse_json_content_type("application/vnd.api+json"));
    cr_assert_not(dp_parse_json_content_type("text/plain"));
    cr_assert_not(dp_parse_json_content_type("application/x-www-form-urlencoded"));
    cr_assert_not(dp_parse_json_content_type("multipart/form-data; boundary=x"));
    cr_assert_not(dp_parse_json_content_type("application/jsonx"));
    cr_assert_not(dp_parse_json_content_type("application/+json"));
    cr_assert_not(dp_parse_json_content_type("application/"));
    cr_assert_not(dp_parse_json_content_type("json"));
}
