/* Unit tests for dp_parse: what routing reads from a request body, and the
 * exact outcome for each malformed shape. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_parse.h"
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
