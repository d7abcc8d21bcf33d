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
