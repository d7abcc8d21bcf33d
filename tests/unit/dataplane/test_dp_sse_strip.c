/* Unit tests for dp_sse_strip: the injected usage event is removed and every
 * other byte comes through unchanged, however the stream is split, whatever
 * the line ends, and whatever the events look like. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_sse_strip.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_sse_strip, .fini = fini, .timeout = 30);

/* A vLLM chat stream: role chunk, two content chunks (the first with
 * "usage": null, as vLLM writes it when continuous stats are off), the
 * usage-only event the gateway asked for, then [DONE]. */
#define HEAD                                                                                       \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","                 \
    "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"                            \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"                   \
    "\"finish_reason\":null}],\"usage\":null}\n\n"                                                 \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"                    \
    "\"finish_reason\":\"stop\"}]}\n\n"
#define USAGE                                                                                      \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"total_tokens\":13,"          \
    "\"completion_tokens\":2}}\n\n"
#define DONE "data: [DONE]\n\n"

static const char vllm_in[] = HEAD USAGE DONE;
static const char vllm_out[] = HEAD DONE;

/* Feeds <in> in chunks whose sizes come from <sizes> (cycled; 0 = the rest)
 * and returns the output; *dropped gets the counter. Asserts on errors. */
static char *
strip_chunks(const char *in, size_t n, const size_t *sizes, size_t nsizes, size_t *out_len,
             uint64_t *dropped)
{
    dp_sse_strip s;
    gw_buf out;
    size_t off = 0, k = 0;
    char *res;

    dp_sse_strip_init(&s);
    gw_buf_init(&out, 64u << 20);
    while (off < n) {
        size_t take = nsizes > 0 ? sizes[k++ % nsizes] : 0;
        if (take == 0 || take > n - off)
            take = n - off;
        cr_assert_eq(dp_sse_strip_feed(&s, in + off, take, &out), GW_OK);
        off += take;
    }
    cr_assert_eq(dp_sse_strip_finish(&s, &out), GW_OK);
    *out_len = out.len;
    if (dropped != NULL)
        *dropped = s.dropped;
    res = out.data != NULL ? gw_buf_steal(&out) : calloc(1, 1);
    dp_sse_strip_fini(&s);
    return res;
}

static void
assert_strip(const char *in, size_t n, const size_t *sizes, size_t nsizes, const char *want,
             size_t want_len, uint64_t want_dropped, const char *what)
{
    size_t len;
    uint64_t dropped;
    char *got = strip_chunks(in, n, sizes, nsizes, &len, &dropped);

    cr_assert_eq(len, want_len, "%s: length %zu, want %zu", what, len, want_len);
    cr_assert(memcmp(got, want, len) == 0, "%s: output differs", what);
    cr_assert_eq(dropped, want_dropped, "%s: dropped %llu", what, (unsigned long long)dropped);
    free(got);
}

/* Splits at every position, byte by byte, and in pseudo-random chunks. */
static void
assert_every_split(const char *in, const char *want, uint64_t want_dropped)
{
    size_t n = strlen(in), want_len = strlen(want);
    size_t one = 1, sizes[64];
    uint32_t x = 2463534242u;

    assert_strip(in, n, NULL, 0, want, want_len, want_dropped, "whole");
    assert_strip(in, n, &one, 1, want, want_len, want_dropped, "byte by byte");
    for (size_t cut = 0; cut <= n; cut++) {
        size_t two[2] = {cut, 0};
        char what[32];
        snprintf(what, sizeof(what), "cut at %zu", cut);
        if (cut > 0)
            assert_strip(in, n, two, 2, want, want_len, want_dropped, what);
    }
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < GW_ARRAY_LEN(sizes); i++) {
            x ^= x << 13; /* xorshift32: deterministic, so failures reproduce */
            x ^= x >> 17;
            x ^= x << 5;
            sizes[i] = 1 + x % 40;
        }
        assert_strip(in, n, sizes, GW_ARRAY_LEN(sizes), want, want_len, want_dropped, "random");
    }
}

/* Rewrites every LF of <s> as <eol> (caller frees). */
static char *
with_eol(const char *s, const char *eol)
{
    size_t n = 0, el = strlen(eol);
    char *r = malloc(strlen(s) * el + 1), *w = r;

    for (; s[n] != '\0'; n++) {
        if (s[n] == '\n') {
            memcpy(w, eol, el);
            w += el;
        } else {
            *w++ = s[n];
        }
    }
    *w = '\0';
    return r;
}

Test(dp_sse_strip, vllm_usage_event_is_dropped_however_the_stream_is_split)
{
    assert_every_split(vllm_in, vllm_out, 1);
}

Test(dp_sse_strip, crlf_and_cr_line_ends_are_handled_at_every_split)
{
    static const char *const eols[] = {"\r\n", "\r"};

    for (size_t i = 0; i < GW_ARRAY_LEN(eols); i++) {
        char *in = with_eol(vllm_in, eols[i]), *want = with_eol(vllm_out, eols[i]);
        assert_every_split(in, want, 1);
        free(in);
        free(want);
    }
}

Test(dp_sse_strip, mixed_line_ends_end_events)
{
    /* "\n\r\n": a line ended by LF, then an empty line ended by CRLF. */
    const char *in = "data: {\"choices\":[{\"delta\":{}}]}\n\r\n"
                     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\n\n"
                     "data: [DONE]\r\r\n";
    const char *want = "data: {\"choices\":[{\"delta\":{}}]}\n\r\n"
                       "data: [DONE]\r\r\n";

    assert_every_split(in, want, 1);
}

Test(dp_sse_strip, lf_after_a_dropped_cr_event_goes_with_it)
{
    /* The CR ends the usage event; the LF in the next write is its CRLF's. */
    const char *a = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\r\r";
    const char *b = "\ndata: [DONE]\n\n";
    dp_sse_strip s;
    gw_buf out;

    dp_sse_strip_init(&s);
    gw_buf_init(&out, 1024);
    cr_assert_eq(dp_sse_strip_feed(&s, a, strlen(a), &out), GW_OK);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(s.dropped, 1, "complete at the CR, without waiting for the next byte");
    cr_assert_eq(dp_sse_strip_feed(&s, b, strlen(b), &out), GW_OK);
    cr_assert_eq(dp_sse_strip_finish(&s, &out), GW_OK);
    cr_assert_str_eq(out.data, "data: [DONE]\n\n");
    gw_buf_fini(&out);
    dp_sse_strip_fini(&s);
}

Test(dp_sse_strip, events_that_are_not_usage_only_are_kept)
{
    static const char *const kept[] = {
        /* usage in a chunk with choices (continuous_usage_stats) */
        ("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}],\"usage\":"
         "{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n"),
        /* "usage": null, with or without choices */
        "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n",
        "data: {\"choices\":[],\"usage\":null}\n\n",
        /* usage not an object; choices missing or not an array */
        "data: {\"choices\":[],\"usage\":7}\n\n",
        "data: {\"usage\":{\"prompt_tokens\":1}}\n\n",
        "data: {\"choices\":{},\"usage\":{\"prompt_tokens\":1}}\n\n",
        /* malformed JSON that contains "usage" */
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}\n\n",
        "data: \"usage\"\n\n",
        /* the usage text only inside a string */
        "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}\n\n",
        /* JSON that is not an object */
        "data: [\"usage\"]\n\n",
        /* other fields with it: dropping would lose them */
        "id: 7\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
        "event: usage\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\nretry: 10\n\n",
        /* two data fields: the client would see them joined */
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\ndata: {}\n\n",
        "data: {\"choices\":[],\"usage\":{}}\ndata: {\"choices\":[],\"usage\":{}}\n\n",
        /* "data" must be the whole field name */
        "datax: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
        "data\n\n",
        DONE,
        ": \"usage\" comment\n\n",
        "\n",
    };

    for (size_t i = 0; i < GW_ARRAY_LEN(kept); i++) {
        size_t n = strlen(kept[i]);
        assert_strip(kept[i], n, NULL, 0, kept[i], n, 0, kept[i]);
    }
}

Test(dp_sse_strip, usage_only_variants_are_dropped)
{
    static const char *const dropped[] = {
        /* no space after the colon, extra members, whitespace in the JSON */
        "data:{\"choices\":[],\"usage\":{}}\n\n",
        "data: { \"usage\" : { \"prompt_tokens\" : 1 } , \"choices\" : [ ] , \"x\": 1 }\n\n",
        /* a comment line does not count as a field */
        ": hi\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
    };

    for (size_t i = 0; i < GW_ARRAY_LEN(dropped); i++) {
        char in[256];
        snprintf(in, sizeof(in), "%s%s", dropped[i], DONE);
        assert_strip(in, strlen(in), NULL, 0, DONE, strlen(DONE), 1, dropped[i]);
    }
}

Test(dp_sse_strip, every_usage_only_event_is_dropped_and_counted)
{
    const char *in = USAGE "data: {\"choices\":[{\"delta\":{}}]}\n\n" USAGE USAGE DONE;
    const char *want = "data: {\"choices\":[{\"delta\":{}}]}\n\n" DONE;

    assert_every_split(in, want, 3);
}

Test(dp_sse_strip, unterminated_last_event_is_flushed_as_is)
{
    const char *in = HEAD "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n";

    assert_every_split(in, in, 0);
}

Test(dp_sse_strip, incomplete_event_is_held_until_its_empty_line)
{
    dp_sse_strip s;
    gw_buf out;

    dp_sse_strip_init(&s);
    gw_buf_init(&out, 1024);
    cr_assert_eq(dp_sse_strip_feed(&s, "data: {\"a\":1}\n", 14, &out), GW_OK);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(s.held.len, 14);
    cr_assert_eq(dp_sse_strip_feed(&s, "\ndata: x", 8, &out), GW_OK);
    cr_assert_str_eq(out.data, "data: {\"a\":1}\n\n");
    cr_assert_eq(s.held.len, 7);
    gw_buf_fini(&out);
    dp_sse_strip_fini(&s);
}

Test(dp_sse_strip, empty_input_gives_empty_output)
{
    dp_sse_strip s;
    gw_buf out;

    dp_sse_strip_init(&s);
    gw_buf_init(&out, 16);
    cr_assert_eq(dp_sse_strip_feed(&s, NULL, 0, &out), GW_OK);
    cr_assert_eq(dp_sse_strip_feed(&s, "", 0, &out), GW_OK);
    cr_assert_eq(dp_sse_strip_finish(&s, &out), GW_OK);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(s.dropped, 0);
    gw_buf_fini(&out);
    dp_sse_strip_fini(&s);
}

Test(dp_sse_strip, over_long_event_passes_through_unfiltered_then_filtering_resumes)
{
    /* A usage-only event over the cap is kept (it cannot be judged without
     * holding it); the normal-size one after it is dropped. */
    const char *pre = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1},\"pad\":\"";
    const char *post = "\"}\n\n";
    size_t pad = DP_SSE_STRIP_MAX_EVENT, n;
    size_t plen = strlen(pre), qlen = strlen(post), ulen = strlen(USAGE), dlen = strlen(DONE);
    char *in = malloc(plen + pad + qlen + ulen + dlen + 1), *want;
    size_t sizes[] = {65536, 7, 100000, 1};

    memcpy(in, pre, plen);
    memset(in + plen, 'x', pad);
    memcpy(in + plen + pad, post, qlen);
    memcpy(in + plen + pad + qlen, USAGE, ulen);
    memcpy(in + plen + pad + qlen + ulen, DONE, dlen + 1);
    n = plen + pad + qlen + ulen + dlen;
    want = malloc(n);
    memcpy(want, in, plen + pad + qlen);
    memcpy(want + plen + pad + qlen, DONE, dlen);

    assert_strip(in, n, NULL, 0, want, n - ulen, 1, "whole");
    assert_strip(in, n, sizes, GW_ARRAY_LEN(sizes), want, n - ulen, 1, "chunks");
    free(in);
    free(want);
}

Test(dp_sse_strip, lowered_cap_passes_long_events_through_at_every_split)
{
    /* With a 40-byte cap the two usage events differ only in length. */
    const char *in = "data: {\"choices\":[],\"usage\":{}}\n\n"                     /* 34 */
                     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12}}\n\n" /* 52 */
                     "data: [DONE]\r\n\r\n";
    const char *want = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12}}\n\n"
                       "data: [DONE]\r\n\r\n";
    size_t n = strlen(in), wl = strlen(want);

    for (size_t cut = 1; cut <= n; cut++) {
        for (size_t cut2 = cut; cut2 <= n; cut2 += 5) {
            dp_sse_strip s;
            gw_buf out;

            dp_sse_strip_init(&s);
            s.held.max = 40;
            gw_buf_init(&out, 1024);
            cr_assert_eq(dp_sse_strip_feed(&s, in, cut, &out), GW_OK);
            cr_assert_eq(dp_sse_strip_feed(&s, in + cut, cut2 - cut, &out), GW_OK);
            cr_assert_eq(dp_sse_strip_feed(&s, in + cut2, n - cut2, &out), GW_OK);
            cr_assert_eq(dp_sse_strip_finish(&s, &out), GW_OK);
            cr_assert_eq(out.len, wl, "cuts %zu %zu: len %zu", cut, cut2, out.len);
            cr_assert(memcmp(out.data, want, wl) == 0, "cuts %zu %zu", cut, cut2);
            cr_assert_eq(s.dropped, 1);
            cr_assert_leq(s.held.len, 40);
            gw_buf_fini(&out);
            dp_sse_strip_fini(&s);
        }
    }
}

Test(dp_sse_strip, efull_changes_nothing_and_the_same_bytes_can_be_fed_again)
{
    dp_sse_strip s;
    gw_buf out;
    size_t n = strlen(vllm_in), cut = 40;

    dp_sse_strip_init(&s);
    gw_buf_init(&out, 16);
    cr_assert_eq(dp_sse_strip_feed(&s, vllm_in, cut, &out), GW_EFULL);
    cr_assert_eq(out.len, 0);
    cr_assert_eq(s.held.len, 0);
    out.max = cut; /* enough for these bytes, even if they all went out */
    cr_assert_eq(dp_sse_strip_feed(&s, vllm_in, cut, &out), GW_OK);
    cr_assert_eq(s.held.len, cut);
    out.max = 100;
    cr_assert_eq(dp_sse_strip_feed(&s, vllm_in + cut, n - cut, &out), GW_EFULL,
                 "held + new bytes may not fit");
    cr_assert_eq(s.held.len, cut);
    cr_assert_eq(out.len, 0);
    out.max = 64u << 10;
    cr_assert_eq(dp_sse_strip_feed(&s, vllm_in + cut, n - cut - 3, &out), GW_OK);
    /* finish needs room for the held tail */
    out.max = out.len + 1;
    cr_assert_eq(s.held.len, strlen(DONE) - 3);
    cr_assert_eq(dp_sse_strip_finish(&s, &out), GW_EFULL);
    cr_assert_eq(s.held.len, strlen(DONE) - 3);
    out.max = 64u << 10;
    cr_assert_eq(dp_sse_strip_feed(&s, vllm_in + n - 3, 3, &out), GW_OK);
    cr_assert_eq(dp_sse_strip_finish(&s, &out), GW_OK);
    cr_assert_str_eq(out.data, vllm_out);
    cr_assert_eq(s.dropped, 1);
    gw_buf_fini(&out);
    dp_sse_strip_fini(&s);
}
