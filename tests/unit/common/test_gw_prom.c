/* Unit tests for gw_prom: the Prometheus text format parser the controller
 * runs on engines' /metrics pages (samples, labels and escapes, special
 * values, timestamps, CRLF, comments, malformed lines, caps, early stop). */
#include "gw/gw_prom.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"
#include "ut_leak.h"

TestSuite(gw_prom, .fini = ut_leak_check, .timeout = 10);

/* Everything the callback saw, copied out. */
#define MAX_SEEN 16
typedef struct seen {
    size_t n;
    char name[MAX_SEEN][128];
    char labels[MAX_SEEN][512]; /* "k=v;k=v;" */
    double value[MAX_SEEN];
    bool has_ts[MAX_SEEN];
    int64_t ts[MAX_SEEN];
    size_t stop_after; /* 0 = never stop */
} seen;

static bool
collect(const gw_prom_sample *s, void *arg)
{
    seen *w = arg;
    size_t o = 0;

    cr_assert_lt(w->n, MAX_SEEN);
    snprintf(w->name[w->n], sizeof(w->name[0]), "%s", s->name);
    w->labels[w->n][0] = '\0';
    for (size_t i = 0; i < s->n_labels; i++)
        o += (size_t)snprintf(w->labels[w->n] + o, sizeof(w->labels[0]) - o, "%s=%s;",
                              s->labels[i].name, s->labels[i].value);
    w->value[w->n] = s->value;
    w->has_ts[w->n] = s->has_ts;
    w->ts[w->n] = s->ts_ms;
    w->n++;
    return w->stop_after == 0 || w->n < w->stop_after;
}

static gw_prom_stats
parse(const char *text, seen *w)
{
    gw_prom_stats st;

    memset(w, 0, sizeof(*w));
    cr_assert_eq(gw_prom_parse(text, strlen(text), collect, w, &st), GW_OK);
    return st;
}

Test(gw_prom, parses_a_vllm_page_and_skips_help_and_type)
{
    seen w;
    gw_prom_stats st = parse("# HELP vllm:num_requests_running Number of requests.\n"
                             "# TYPE vllm:num_requests_running gauge\n"
                             "vllm:num_requests_running{model_name=\"llama\"} 3.0\n"
                             "vllm:prompt_tokens_total{model_name=\"llama\"} 1.5e3\n"
                             "\n"
                             "up 1\n",
                             &w);

    cr_assert_eq(w.n, 3);
    cr_assert_str_eq(w.name[0], "vllm:num_requests_running");
    cr_assert_str_eq(w.labels[0], "model_name=llama;");
    cr_assert_float_eq(w.value[0], 3.0, 1e-12);
    cr_assert_float_eq(w.value[1], 1500.0, 1e-9);
    cr_assert_str_eq(w.name[2], "up");
    cr_assert_str_eq(w.labels[2], "");
    cr_assert_eq(st.lines, 6);
    cr_assert_eq(st.samples, 3);
    cr_assert_eq(st.malformed, 0);
}

Test(gw_prom, label_values_undo_the_three_escapes_and_keep_others)
{
    seen w;

    parse("m{a=\"x\\\"y\",b=\"back\\\\slash\",c=\"line\\nbreak\",d=\"keep\\t\"} 1\n", &w);
    cr_assert_eq(w.n, 1);
    cr_assert_str_eq(w.labels[0], "a=x\"y;b=back\\slash;c=line\nbreak;d=keep\\t;");
}

Test(gw_prom, accepts_blanks_trailing_comma_and_empty_braces)
{
    seen w;

    parse("  m1 { a = \"1\" , b=\"2\", }   7  \n"
          "m2{} 8\n"
          "m3{a=\"\"}\t9\n",
          &w);
    cr_assert_eq(w.n, 3);
    cr_assert_str_eq(w.labels[0], "a=1;b=2;");
    cr_assert_float_eq(w.value[0], 7, 1e-12);
    cr_assert_str_eq(w.labels[1], "");
    cr_assert_str_eq(w.labels[2], "a=;");
    cr_assert_float_eq(w.value[2], 9, 1e-12);
}

Test(gw_prom, special_values_nan_and_infinities)
{
    seen w;

    parse("a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\nf 1e308\ng -0.5\n", &w);
    cr_assert_eq(w.n, 7);
    cr_assert(isnan(w.value[0]));
    cr_assert(isinf(w.value[1]) && w.value[1] > 0);
    cr_assert(isinf(w.value[2]) && w.value[2] < 0);
    cr_assert(isinf(w.value[3]) && w.value[3] > 0);
    cr_assert(isnan(w.value[4]));
    cr_assert_float_eq(w.value[5], 1e308, 1e295);
    cr_assert_float_eq(w.value[6], -0.5, 1e-12);
}

Test(gw_prom, histogram_buckets_keep_the_le_label)
{
    seen w;

    parse("h_bucket{model_name=\"m\",le=\"0.5\"} 2\n"
          "h_bucket{model_name=\"m\",le=\"+Inf\"} 3\n"
          "h_sum{model_name=\"m\"} 1.25\n"
          "h_count{model_name=\"m\"} 3\n",
          &w);
    cr_assert_eq(w.n, 4);
    cr_assert_str_eq(w.labels[1], "model_name=m;le=+Inf;");
    cr_assert_str_eq(w.name[2], "h_sum");
    cr_assert_float_eq(w.value[2], 1.25, 1e-12);
}

Test(gw_prom, timestamps_are_read)
{
    seen w;

    parse("a 1 1700000000123\nb 2 -5\n", &w);
    cr_assert_eq(w.n, 2);
    cr_assert(w.has_ts[0]);
    cr_assert_eq(w.ts[0], 1700000000123LL);
    cr_assert_eq(w.ts[1], -5);
}

Test(gw_prom, crlf_line_ends_and_a_last_line_without_newline)
{
    seen w;
    gw_prom_stats st = parse("# TYPE a gauge\r\na{x=\"y\"} 1\r\nb 2", &w);

    cr_assert_eq(w.n, 2);
    cr_assert_str_eq(w.labels[0], "x=y;");
    cr_assert_float_eq(w.value[1], 2, 1e-12);
    cr_assert_eq(st.lines, 3);
    cr_assert_eq(st.malformed, 0);
}

Test(gw_prom, exemplar_after_the_value_is_ignored)
{
    seen w;
    gw_prom_stats st = parse("a_bucket{le=\"1\"} 3 # {trace_id=\"x\"} 0.5\n", &w);

    cr_assert_eq(w.n, 1);
    cr_assert_eq(st.malformed, 0);
    cr_assert_float_eq(w.value[0], 3, 1e-12);
}

Test(gw_prom, malformed_lines_are_skipped_and_counted)
{
    static const char *const bad[] = {
        "1abc 1",                   /* name starts with a digit */
        "a{b=\"1\"",                /* unterminated braces */
        "a{b=\"1} 2",               /* unterminated value */
        "a{b=1} 2",                 /* unquoted value */
        "a{b=\"1\" c=\"2\"} 3",     /* missing comma */
        "a{b=\"1\",b=\"2\"} 3",     /* duplicate label */
        "a{1b=\"1\"} 3",            /* bad label name */
        "a{le:x=\"1\"} 3",          /* colon in a label name */
        "a",                        /* no value */
        "a x",                      /* not a number */
        "a 1.0.0",                  /* trailing garbage in the number */
        "a 1 2 3",                  /* junk after the timestamp */
        "a 1 1.5",                  /* fractional timestamp */
        "a 1 99999999999999999999", /* timestamp overflows int64 */
        "a{b=\"x\\",                /* backslash at the end */
        "-a 1",                     /* bad first character */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        seen w;
        gw_prom_stats st;

        snprintf(text, sizeof(text), "ok1 1\n%s\nok2 2\n", bad[i]);
        st = parse(text, &w);
        cr_assert_eq(w.n, 2, "line %zu (%s): %zu samples", i, bad[i], w.n);
        cr_assert_eq(st.malformed, 1, "line %zu (%s) should be malformed", i, bad[i]);
        cr_assert_str_eq(w.name[1], "ok2");
    }
}

Test(gw_prom, nul_bytes_make_a_line_malformed)
{
    static const char text[] = "a{b=\"x\0y\"} 1\nc 1\0\nd 4\n";
    seen w;
    gw_prom_stats st;

    memset(&w, 0, sizeof(w));
    cr_assert_eq(gw_prom_parse(text, sizeof(text) - 1, collect, &w, &st), GW_OK);
    cr_assert_eq(w.n, 1);
    cr_assert_str_eq(w.name[0], "d");
    cr_assert_eq(st.malformed, 2);
}

Test(gw_prom, too_many_labels_is_malformed_and_the_cap_itself_is_fine)
{
    char *text = gw_xmalloc(8192);
    size_t o = 0;
    seen w;
    gw_prom_stats st;

    for (unsigned line = 0; line < 2; line++) {
        unsigned n = GW_PROM_MAX_LABELS + line; /* exactly the cap, then one more */
        o += (size_t)snprintf(text + o, 8192 - o, "m%u{", line);
        for (unsigned i = 0; i < n; i++)
            o += (size_t)snprintf(text + o, 8192 - o, "l%u=\"v\",", i);
        o += (size_t)snprintf(text + o, 8192 - o, "} 1\n");
    }
    st = parse(text, &w);
    cr_assert_eq(w.n, 1);
    cr_assert_str_eq(w.name[0], "m0");
    cr_assert_eq(st.malformed, 1);
    free(text);
}

Test(gw_prom, lines_over_the_length_cap_are_skipped)
{
    size_t n = GW_PROM_MAX_LINE + 100;
    char *text = gw_xmalloc(n + 64);
    size_t o;
    seen w;
    gw_prom_stats st;

    o = (size_t)snprintf(text, 64, "big{v=\"");
    memset(text + o, 'x', n - o);
    o = n;
    o += (size_t)snprintf(text + o, 64, "\"} 1\nsmall 2\n");
    memset(&w, 0, sizeof(w));
    cr_assert_eq(gw_prom_parse(text, o, collect, &w, &st), GW_OK);
    cr_assert_eq(w.n, 1);
    cr_assert_str_eq(w.name[0], "small");
    cr_assert_eq(st.malformed, 1);
    free(text);
}

Test(gw_prom, a_line_exactly_at_the_cap_is_parsed)
{
    size_t n = GW_PROM_MAX_LINE;
    char *text = gw_xmalloc(n + 2);
    const char *head = "m{v=\"";
    const char *tail = "\"} 1";
    size_t hl = strlen(head), tl = strlen(tail);
    seen w;

    memcpy(text, head, hl);
    memset(text + hl, 'y', n - hl - tl);
    memcpy(text + n - tl, tail, tl);
    text[n] = '\n';
    memset(&w, 0, sizeof(w));
    cr_assert_eq(gw_prom_parse(text, n + 1, collect, &w, NULL), GW_OK);
    cr_assert_eq(w.n, 1);
    free(text);
}

Test(gw_prom, the_callback_can_stop_parsing)
{
    seen w;
    gw_prom_stats st;

    memset(&w, 0, sizeof(w));
    w.stop_after = 2;
    cr_assert_eq(gw_prom_parse("a 1\nb 2\nc 3\n", 12, collect, &w, &st), GW_OK);
    cr_assert_eq(w.n, 2);
    cr_assert_eq(st.samples, 2);
}

Test(gw_prom, empty_input_and_bad_arguments)
{
    seen w;
    gw_prom_stats st;

    memset(&w, 0, sizeof(w));
    cr_assert_eq(gw_prom_parse(NULL, 0, collect, &w, &st), GW_OK);
    cr_assert_eq(st.lines, 0);
    cr_assert_eq(gw_prom_parse(NULL, 3, collect, &w, &st), GW_EINVAL);
    cr_assert_eq(gw_prom_parse("a 1", 3, NULL, &w, &st), GW_EINVAL);
    cr_assert_eq(w.n, 0);
}

static bool
check_label_lookup(const gw_prom_sample *s, void *arg)
{
    int *calls = arg;

    cr_assert_str_eq(gw_prom_label_value(s, "model_name"), "m");
    cr_assert_str_eq(gw_prom_label_value(s, "running_lora_adapters"), "a,b");
    cr_assert_str_eq(gw_prom_label_value(s, "waiting_lora_adapters"), "");
    cr_assert_null(gw_prom_label_value(s, "absent"));
    (*calls)++;
    return true;
}

Test(gw_prom, label_value_finds_labels_by_name)
{
    const char *text = "vllm:lora_requests_info{max_lora=\"2\",model_name=\"m\","
                       "running_lora_adapters=\"a,b\",waiting_lora_adapters=\"\"} 1.7e9\n";
    int calls = 0;

    cr_assert_eq(gw_prom_parse(text, strlen(text), check_label_lookup, &calls, NULL), GW_OK);
    cr_assert_eq(calls, 1);
}
