/* Unit tests for dp_body_usage: include_usage is set exactly when a streamed
 * request lacks it, and nothing else of the body changes. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "dp_body_usage.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_body_usage, .fini = fini, .timeout = 30);

/* Runs the edit on <in>; asserts GW_OK and the changed flag; returns the
 * output (static storage; "" when unchanged). */
static const char *
edit(const char *in, bool want_changed)
{
    static char res[4096];
    gw_buf out;
    bool changed = !want_changed;

    gw_buf_init(&out, 1 << 20);
    cr_assert_eq(dp_body_request_usage(in, strlen(in), &out, &changed), GW_OK, "%s", in);
    cr_assert_eq(changed, want_changed, "changed=%d for %s", changed, in);
    if (!changed)
        cr_assert_eq(out.len, 0, "out untouched when unchanged");
    gw_strlcpy(res, out.data != NULL ? out.data : "", sizeof(res));
    gw_buf_fini(&out);
    return res;
}

Test(dp_body_usage, stream_options_absent_is_added)
{
    cr_assert_str_eq(
        edit("{\"model\":\"m\",\"stream\":true}", true),
        "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true}");
}

Test(dp_body_usage, include_usage_false_or_null_becomes_true)
{
    cr_assert_str_eq(edit("{\"stream\":true,\"stream_options\":{\"include_usage\":false}}", true),
                     "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    cr_assert_str_eq(
        edit("{\"stream\": true, \"stream_options\": { \"include_usage\" : null , \"x\": 1 } }",
             true),
        "{\"stream\": true, \"stream_options\": { \"include_usage\" : true , \"x\": 1 } }");
}

Test(dp_body_usage, include_usage_absent_is_added_keeping_other_members)
{
    cr_assert_str_eq(
        edit("{\"stream\":true,\"stream_options\":{\"continuous_usage_stats\":false}}", true),
        "{\"stream\":true,\"stream_options\":{\"include_usage\":true,"
        "\"continuous_usage_stats\":false}}");
    cr_assert_str_eq(edit("{\"stream\":true,\"stream_options\":{ }}", true),
                     "{\"stream\":true,\"stream_options\":{\"include_usage\":true }}");
}

Test(dp_body_usage, include_usage_true_changes_nothing)
{
    edit("{\"stream\":true,\"stream_options\":{\"include_usage\":true}}", false);
    edit("{\"stream_options\":{\"x\":{\"include_usage\":false},\"include_usage\":true},"
         "\"stream\":true}",
         false);
}

Test(dp_body_usage, not_streamed_changes_nothing)
{
    edit("{\"model\":\"m\"}", false);
    edit("{\"model\":\"m\",\"stream\":false}", false);
    edit("{\"model\":\"m\",\"stream\":null}", false);
    edit("{\"model\":\"m\",\"stream\":false,\"stream_options\":{\"include_usage\":false}}", false);
}

Test(dp_body_usage, stream_options_that_is_not_an_object_is_replaced)
{
    cr_assert_str_eq(edit("{\"stream_options\":null,\"stream\":true}", true),
                     "{\"stream_options\":{\"include_usage\":true},\"stream\":true}");
    cr_assert_str_eq(edit("{\"stream_options\": [1, {\"a\": \"]\"}] ,\"stream\":true}", true),
                     "{\"stream_options\": {\"include_usage\":true} ,\"stream\":true}");
    cr_assert_str_eq(edit("{\"stream\":true,\"stream_options\":\"x}\"}", true),
                     "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    cr_assert_str_eq(edit("{\"stream\":true,\"stream_options\":-1.5e3}", true),
                     "{\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

Test(dp_body_usage, numbers_unicode_and_escapes_are_kept_byte_for_byte)
{
    const char *in = "  {\"model\":\"m\",\"seed\":9223372036854775807,\"temperature\":0.7,"
                     "\"top_p\":1e-300,\"logit_bias\":{\"50256\":-100},"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \xe2\x82\xac "
                     "\\\"stream_options\\\" \\\\\"}],\"stream\":true}\n";
    const char *want = "  {\"stream_options\":{\"include_usage\":true},\"model\":\"m\","
                       "\"seed\":9223372036854775807,\"temperature\":0.7,"
                       "\"top_p\":1e-300,\"logit_bias\":{\"50256\":-100},"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"caf\\u00e9 \xe2\x82\xac "
                       "\\\"stream_options\\\" \\\\\"}],\"stream\":true}\n";

    cr_assert_str_eq(edit(in, true), want);
}

Test(dp_body_usage, strings_with_quotes_and_brackets_are_skipped_whole)
{
    /* A content string that looks like the member being searched for. */
    cr_assert_str_eq(edit("{\"messages\":[{\"content\":\"a\\\"}],\\\"stream_options\\\":{\\\\\"}],"
                          "\"stream\":true,\"stream_options\":{\"include_usage\":false}}",
                          true),
                     "{\"messages\":[{\"content\":\"a\\\"}],\\\"stream_options\\\":{\\\\\"}],"
                     "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
}

Test(dp_body_usage, escaped_key_names_are_recognised)
{
    /* The engine decodes "stream\u005foptions" as stream_options: the
     * member must be edited, not a second one added. */
    cr_assert_str_eq(
        edit("{\"stream\":true,\"stream\\u005foptions\":{\"include\\u005fusage\":false}}", true),
        "{\"stream\":true,\"stream\\u005foptions\":{\"include\\u005fusage\":true}}");
    edit("{\"stream\":true,\"stream\\u005foptions\":{\"include_usage\":true}}", false);
}

Test(dp_body_usage, invalid_or_non_object_bodies_are_einval)
{
    static const char *const bad[] = {
        "",
        "[]",
        "[{\"stream\":true}]",
        "\"x\"",
        "7",
        "null",
        "{\"stream\":true",
        "{\"stream\":tru}",
        "{\"stream\":true}x",
        "{\"stream\":true,\"stream\":true}",
    };

    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        gw_buf out;
        bool changed = true;

        gw_buf_init(&out, 1024);
        cr_assert_eq(dp_body_request_usage(bad[i], strlen(bad[i]), &out, &changed), GW_EINVAL, "%s",
                     bad[i]);
        cr_assert(changed, "out-param untouched on error");
        cr_assert_eq(out.len, 0);
        gw_buf_fini(&out);
    }
}

Test(dp_body_usage, efull_when_out_has_no_room)
{
    const char *in = "{\"stream\":true}";
    gw_buf out;
    bool changed = false;

    gw_buf_init(&out, strlen(in) + strlen("\"stream_options\":{\"include_usage\":true},") - 1);
    cr_assert_eq(dp_body_request_usage(in, strlen(in), &out, &changed), GW_EFULL);
    cr_assert_eq(out.len, 0);
    out.max++;
    cr_assert_eq(dp_body_request_usage(in, strlen(in), &out, &changed), GW_OK);
    cr_assert(changed);
    cr_assert_eq(out.len, out.max);
    gw_buf_fini(&out);
}

Test(dp_body_usage, output_appends_after_existing_bytes)
{
    const char *in = "{\"stream\":true}";
    gw_buf out;
    bool changed = false;

    gw_buf_init(&out, 1024);
    cr_assert_eq(gw_buf_append_str(&out, "POST "), GW_OK);
    cr_assert_eq(dp_body_request_usage(in, strlen(in), &out, &changed), GW_OK);
    cr_assert_str_eq(out.data,
                     "POST {\"stream_options\":{\"include_usage\":true},\"stream\":true}");
    gw_buf_fini(&out);
}

/* Every combination of stream value, stream_options shape, member order and
 * spacing: the result must parse (no duplicate keys) to the input with only
 * stream_options.include_usage set, exactly when it should be. */
Test(dp_body_usage, result_equals_the_input_with_only_include_usage_set)
{
    static const char *const streams[] = {NULL, "true", "false", "null", "1"};
    static const char *const opts[] = {
        NULL,
        "null",
        "1",
        "\"s\"",
        "[]",
        "{}",
        "{\"include_usage\":false}",
        "{\"include_usage\":true}",
        "{\"x\":1}",
        "{\"x\":{\"include_usage\":true},\"include_usage\":null,\"y\":[1,\"}\"]}",
        "{\"continuous_usage_stats\":true,\"include_usage\":0}",
    };
    static const char *const sp[] = {"", " ", "\n\t ", "\r\n"};
    unsigned checked = 0;

    for (size_t s = 0; s < GW_ARRAY_LEN(streams); s++) {
        for (size_t o = 0; o < GW_ARRAY_LEN(opts); o++) {
            for (unsigned v = 0; v < 16; v++) {
                const char *w = sp[v % 4];
                char part[128], optpart[256];
                const char *members[3], *in;
                size_t nm = 0;
                json_t *want, *got, *so;
                gw_buf b, out;
                bool changed = false, expect;

                members[nm++] = "\"model\":\"m\"";
                if (streams[s] != NULL) {
                    snprintf(part, sizeof(part), "\"stream\"%s:%s%s", w, w, streams[s]);
                    members[nm++] = part;
                }
                if (opts[o] != NULL) {
                    snprintf(optpart, sizeof(optpart), "\"stream_options\"%s:%s%s", w, w, opts[o]);
                    members[nm++] = optpart;
                }
                /* v / 4 picks a rotation of the member order. */
                gw_buf_init(&b, 4096);
                cr_assert_eq(gw_buf_printf(&b, "%s{%s", w, w), GW_OK);
                for (size_t k = 0; k < nm; k++)
                    cr_assert_eq(gw_buf_printf(&b, "%s%s%s%s", members[(k + v / 4) % nm], w,
                                               k + 1 < nm ? "," : "", k + 1 < nm ? w : ""),
                                 GW_OK);
                cr_assert_eq(gw_buf_printf(&b, "}%s", w), GW_OK);
                in = b.data;

                want = json_loads(in, JSON_REJECT_DUPLICATES, NULL);
                cr_assert_not_null(want, "test body must be valid: %s", in);
                so = json_object_get(want, "stream_options");
                expect = json_is_true(json_object_get(want, "stream")) &&
                         !json_is_true(json_object_get(so, "include_usage"));
                if (!json_is_object(so)) {
                    so = json_object();
                    json_object_set_new(want, "stream_options", so);
                }
                json_object_set_new(so, "include_usage", json_true());

                gw_buf_init(&out, 4096);
                cr_assert_eq(dp_body_request_usage(in, strlen(in), &out, &changed), GW_OK, "%s",
                             in);
                cr_assert_eq(changed, expect, "%s", in);
                if (changed) {
                    got = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
                    cr_assert_not_null(got, "result must parse: %s", out.data);
                    cr_assert(json_equal(got, want), "%s\n-> %s", in, out.data);
                    json_decref(got);
                    checked++;
                }
                gw_buf_fini(&out);
                gw_buf_fini(&b);
                json_decref(want);
            }
        }
    }
    cr_assert_gt(checked, 100);
}
