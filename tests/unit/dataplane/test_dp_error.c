/* Unit tests for dp_error: the OpenAI error shape and AIBrix's type mapping. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "dp_error.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_error, .fini = fini, .timeout = 10);

Test(dp_error, body_is_openai_shaped_and_escaped)
{
    dp_error e;
    gw_buf b;
    json_t *root;

    dp_error_set(&e, 404, "x-error-no-model-backends", "m", "model_not_found",
                 "The model `%s` does not exist.", "a\"b\n");
    gw_buf_init(&b, 4096);
    cr_assert_eq(dp_error_body(&e, &b), GW_OK);
    root = json_loads(b.data, 0, NULL);
    cr_assert_not_null(root, "body: %s", b.data);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "error"), "message")),
                     "The model `a\"b\n` does not exist.");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "error"), "type")),
                     "invalid_request_error");
    cr_assert(json_is_null(json_object_get(json_object_get(root, "error"), "param")));
    json_decref(root);
    gw_buf_fini(&b);
}

Test(dp_error, type_follows_the_status)
{
    cr_assert_str_eq(dp_error_type(400), "invalid_request_error");
    cr_assert_str_eq(dp_error_type(413), "invalid_request_error");
    cr_assert_str_eq(dp_error_type(401), "authentication_error");
    cr_assert_str_eq(dp_error_type(429), "rate_limit_error");
    cr_assert_str_eq(dp_error_type(503), "overloaded_error");
    cr_assert_str_eq(dp_error_type(502), "api_error");
}

Test(dp_error, sse_event_and_cap)
{
    dp_error e;
    gw_buf b;

    dp_error_set(&e, 502, NULL, NULL, "upstream_error", "cut");
    gw_buf_init(&b, 4096);
    cr_assert_eq(dp_error_sse_event(&e, &b), GW_OK);
    cr_assert_eq(strncmp(b.data, "data: {\"error\":", 15), 0);
    cr_assert_eq(strcmp(b.data + b.len - 2, "\n\n"), 0);
    gw_buf_fini(&b);
    gw_buf_init(&b, 10);
    cr_assert_eq(dp_error_sse_event(&e, &b), GW_EFULL);
    gw_buf_fini(&b);
}

Test(dp_error, model_rps_answer_is_the_seed_text_byte_for_byte)
{
    dp_error e;
    gw_buf b;

    dp_error_set(&e, 429, "x-error-model-rps-exceeded", "true", "rate_limit_exceeded",
                 "model: %s has exceeded RPS: %d", "my-model", 50);
    e.seed_shape = true;
    gw_buf_init(&b, 4096);
    cr_assert_eq(dp_error_body(&e, &b), GW_OK);
    cr_assert_str_eq(b.data, "{\"error\": {\"message\": \"model: my-model has exceeded RPS: 50\", "
                             "\"type\": \"rate_limit_error\", \"code\": \"rate_limit_exceeded\"}}");
    gw_buf_fini(&b);
}

Test(dp_error, param_is_written_when_set_and_reset_by_the_next_set)
{
    dp_error e;
    gw_buf b;

    dp_error_set(&e, 401, NULL, NULL, "invalid_api_key", "Incorrect API key provided.");
    e.param = "api_key";
    gw_buf_init(&b, 4096);
    cr_assert_eq(dp_error_body(&e, &b), GW_OK);
    cr_assert(strstr(b.data, "\"param\":\"api_key\"") != NULL, "%s", b.data);
    cr_assert(strstr(b.data, "\"type\":\"authentication_error\"") != NULL, "%s", b.data);
    dp_error_set(&e, 400, NULL, NULL, "x", "y");
    cr_assert_null(e.param);
    cr_assert_not(e.seed_shape);
    gw_buf_fini(&b);
}
