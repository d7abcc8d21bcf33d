/* dp_json: the one-pass scanner (see dp_json.h). Each rule below is the one
 * jansson 2.14 applies (src/load.c), so a body this accepts is a body
 * json_loadb accepts, and the other way round. */
#include "dp_json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "gw/gw_mem.h"

struct dp_json_key {
    uint64_t hash; /* of the decoded key */
    dp_json_str s;
};

/* Bytes a string scan may pass without a second look: not '"', '\\', a
 * control character or a non-ASCII byte. */
static const unsigned char plain_byte[256] = {
    ['\x20' ... '\x21'] = 1,
    ['\x23' ... '\x5b'] = 1,
    ['\x5d' ... '\x7f'] = 1,
};

/* The end of the run of plain bytes from p[i] (a prompt is mostly plain
 * text): 16 bytes a step with SSE2 (every x86-64 has it), else one by one. */
static size_t
plain_run(const unsigned char *p, size_t i, size_t n)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* Signed: below 0x20 is a control byte or (negative) a non-ASCII one. */
        __m128i stop =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                         _mm_cmplt_epi8(v, space));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask != 0)
            return i + (size_t)__builtin_ctz(mask);
    }
#endif
    while (i < n && plain_byte[p[i]])
        i++;
    return i;
}

static bool
fail(dp_json *j, const char *why)
{
    if (j->err == NULL) {
        j->err = why;
        j->err_pos = j->pos;
    }
    j->pos = j->len; /* nothing more is read */
    return false;
}

void
dp_json_init(dp_json *j, const char *body, size_t len)
{
    memset(j, 0, sizeof(*j));
    j->p = (const unsigned char *)body;
    j->len = len;
    /* Decoded keys are never longer than the body; two are compared at once. */
    gw_buf_init(&j->scratch, 2 * len + 16);
}

void
dp_json_fini(dp_json *j)
{
    GW_FREE(j->keys);
    gw_buf_fini(&j->scratch);
}

int
dp_json_peek(dp_json *j)
{
    while (j->pos < j->len) {
        unsigned char c = j->p[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return c;
        j->pos++;
    }
    return -1;
}

/* One more value at the current depth: jansson counts every value, so the
 * members of a container 2048 deep are refused. */
static bool
value_depth_ok(dp_json *j)
{
    return j->depth < DP_JSON_MAX_DEPTH || fail(j, "nesting too deep");
}

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits at p[0..3] (bounds checked by the caller), or -1. */
static int32_t
hex4(const unsigned char *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = (v << 4) | d;
    }
    return v;
}

/* Length of the UTF-8 sequence at p[0..n), or 0 if it is not valid
 * (overlong, surrogate, above U+10FFFF, truncated). */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t need;

    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* above U+10FFFF */
    } else
        return 0;
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

static size_t
utf8_len(int32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* A \u escape at p (pointing at 'u'), with <avail> bytes from there: its
 * code point (a surrogate pair is combined) and the escape's length, or -1. */
static int32_t
unicode_escape(const unsigned char *p, size_t avail, size_t *used)
{
    int32_t v = avail >= 5 ? hex4(p + 1) : -1;

    *used = 5;
    if (v < 0 || (v >= 0xDC00 && v <= 0xDFFF))
        return -1;
    if (v >= 0xD800 && v <= 0xDBFF) {
        int32_t lo = avail >= 11 && p[5] == '\\' && p[6] == 'u' ? hex4(p + 7) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return -1;
        *used = 11;
        v = ((v - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
    }
    return v;
}

/* Scans a string token at '"' (no depth rule: keys are not values). */
static bool
scan_string(dp_json *j, dp_json_str *s)
{
    const unsigned char *p = j->p;
    size_t i = j->pos + 1, n = j->len, extra = 0; /* bytes escapes save */

    s->escaped = false;
    s->start = i;
    for (;;) {
        i = plain_run(p, i, n);
        if (i >= n) {
            j->pos = i;
            return fail(j, "unterminated string");
        }
        if (p[i] == '"')
            break;
        if (p[i] >= 0x80) {
            size_t k = utf8_seq(p + i, n - i);
            if (k == 0) {
                j->pos = i;
                return fail(j, "invalid UTF-8");
            }
            i += k;
        } else if (p[i] == '\\') {
            s->escaped = true;
            if (i + 1 >= n) {
                j->pos = i;
                return fail(j, "unterminated string");
            }
            if (p[i + 1] == 'u') {
                size_t used;
                int32_t cp = unicode_escape(p + i + 1, n - i - 1, &used);
                if (cp <= 0) {
                    j->pos = i;
                    return fail(j, cp == 0 ? "\\u0000 is not allowed" : "invalid \\u escape");
                }
                extra += used + 1 - utf8_len(cp);
                i += used + 1;
            } else if (strchr("\"\\/bfnrt", p[i + 1]) != NULL && p[i + 1] != '\0') {
                extra++;
                i += 2;
            } else {
                j->pos = i;
                return fail(j, "invalid escape");
            }
        } else {
            j->pos = i;
            return fail(j, "control character in string");
        }
    }
    s->end = i;
    s->decoded_len = (i - s->start) - extra;
    j->pos = i + 1;
    return true;
}

bool
dp_json_string(dp_json *j, dp_json_str *s)
{
    if (!value_depth_ok(j))
        return false;
    if (dp_json_peek(j) != '"')
        return fail(j, "string expected");
    return scan_string(j, s);
}

static bool
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* A real's text, overflowing to infinity, is refused as jansson does. */
static bool
real_overflows(const unsigned char *p, size_t n)
{
    char small[64];
    char *buf = n < sizeof(small) ? small : gw_xmalloc(n + 1);
    double v;

    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    v = strtod(buf, NULL);
    bool over = errno == ERANGE && isinf(v);
    if (buf != small)
        free(buf);
    return over;
}

bool
dp_json_number(dp_json *j, bool *is_int, int64_t *ival)
{
    const unsigned char *p = j->p;
    size_t i, n = j->len, start;
    bool neg;
    uint64_t mag = 0;
    bool too_big = false;

    if (!value_depth_ok(j))
        return false;
    if (dp_json_peek(j) < 0)
        return fail(j, "number expected");
    i = start = j->pos;
    if (!(p[i] == '-' || is_digit(p[i])))
        return fail(j, "number expected");
    neg = p[i] == '-';
    if (neg)
        i++;
    if (i >= n || !is_digit(p[i])) {
        j->pos = i;
        return fail(j, "invalid number");
    }
    if (p[i] == '0') {
        i++;
        if (i < n && is_digit(p[i])) {
            j->pos = i;
            return fail(j, "invalid number (leading zero)");
        }
    } else {
        for (; i < n && is_digit(p[i]); i++) {
            unsigned d = p[i] - '0';
            if (mag > (UINT64_MAX - d) / 10)
                too_big = true;
            else
                mag = mag * 10 + d;
        }
    }
    *is_int = !(i < n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E'));
    if (*is_int) {
        /* Within int64, as strtoll reads it. */
        if (too_big || mag > (uint64_t)INT64_MAX + (neg ? 1 : 0)) {
            j->pos = start;
            return fail(j, "integer out of range");
        }
        *ival = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        j->pos = i;
        return true;
    }
    if (p[i] == '.') {
        i++;
        if (i >= n || !is_digit(p[i])) {
            j->pos = i;
            return fail(j, "invalid number");
        }
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || !is_digit(p[i])) {
            j->pos = i;
            return fail(j, "invalid number");
        }
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (real_overflows(p + start, i - start)) {
        j->pos = start;
        return fail(j, "real number overflow");
    }
    *ival = 0;
    j->pos = i;
    return true;
}

bool
dp_json_literal(dp_json *j, char *lit)
{
    static const char *const words[] = {"true", "false", "null"};
    size_t i, start;

    if (!value_depth_ok(j))
        return false;
    if (dp_json_peek(j) < 0)
        return fail(j, "value expected");
    /* jansson reads the whole run of letters, so "nullx" is one bad token. */
    start = i = j->pos;
    while (i < j->len && ((j->p[i] | 0x20) >= 'a' && (j->p[i] | 0x20) <= 'z'))
        i++;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        if (strlen(words[w]) == i - start && memcmp(j->p + start, words[w], i - start) == 0) {
            *lit = words[w][0];
            j->pos = i;
            return true;
        }
    }
    return fail(j, "invalid token");
}

static void
append_capped(gw_buf *out, const void *p, size_t n)
{
    if (out->len >= out->max)
        return;
    if (n > out->max - out->len)
        n = out->max - out->len;
    if (gw_buf_append(out, p, n) != GW_OK)
        return; /* cannot happen: n fits the cap */
}

void
dp_json_decode(const dp_json *j, const dp_json_str *s, gw_buf *out)
{
    const unsigned char *p = j->p;
    size_t i = s->start, run = s->start;

    if (!s->escaped) {
        append_capped(out, p + s->start, s->end - s->start);
        return;
    }
    while (i < s->end && out->len < out->max) {
        const unsigned char *bs = memchr(p + i, '\\', s->end - i);
        if (bs == NULL) {
            i = s->end;
            break;
        }
        i = (size_t)(bs - p);
        append_capped(out, p + run, i - run);
        unsigned char c = p[i + 1], enc[4];
        size_t used = 2, k = 1;
        if (c == 'u') {
            size_t u;
            int32_t cp = unicode_escape(p + i + 1, s->end - i - 1, &u);
            used = u + 1;
            k = utf8_len(cp);
            if (k == 1)
                enc[0] = (unsigned char)cp;
            else if (k == 2) {
                enc[0] = (unsigned char)(0xC0 | (cp >> 6));
                enc[1] = (unsigned char)(0x80 | (cp & 0x3F));
            } else if (k == 3) {
                enc[0] = (unsigned char)(0xE0 | (cp >> 12));
                enc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                enc[2] = (unsigned char)(0x80 | (cp & 0x3F));
            } else {
                enc[0] = (unsigned char)(0xF0 | (cp >> 18));
                enc[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                enc[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                enc[3] = (unsigned char)(0x80 | (cp & 0x3F));
            }
        } else {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            enc[0] = (unsigned char)to[strchr(from, c) - from];
        }
        append_capped(out, enc, k);
        i += used;
        run = i;
    }
    append_capped(out, p + run, i - run);
}

bool
dp_json_str_is(dp_json *j, const dp_json_str *s, const char *lit)
{
    size_t n = strlen(lit);

    if (s->decoded_len != n)
        return false;
    if (!s->escaped)
        return memcmp(j->p + s->start, lit, n) == 0;
    gw_buf_reset(&j->scratch);
    dp_json_decode(j, s, &j->scratch);
    return memcmp(j->scratch.data, lit, n) == 0;
}

static uint64_t
key_hash(dp_json *j, const dp_json_str *s)
{
    if (!s->escaped)
        return XXH3_64bits(j->p + s->start, s->end - s->start);
    gw_buf_reset(&j->scratch);
    dp_json_decode(j, s, &j->scratch);
    return XXH3_64bits(j->scratch.data == NULL ? "" : j->scratch.data, j->scratch.len);
}

static bool
keys_equal(dp_json *j, const dp_json_str *a, const dp_json_str *b)
{
    if (a->decoded_len != b->decoded_len)
        return false;
    if (!a->escaped && !b->escaped)
        return memcmp(j->p + a->start, j->p + b->start, a->end - a->start) == 0;
    gw_buf_reset(&j->scratch);
    dp_json_decode(j, a, &j->scratch);
    dp_json_decode(j, b, &j->scratch);
    return a->decoded_len == 0 ||
           memcmp(j->scratch.data, j->scratch.data + a->decoded_len, a->decoded_len) == 0;
}

static int
cmp_key_hash(const void *a, const void *b)
{
    uint64_t x = ((const dp_json_key *)a)->hash, y = ((const dp_json_key *)b)->hash;
    return x < y ? -1 : x > y;
}

/* At an object's '}': refuses a key that appears twice among its keys
 * (sorted by hash when there are many), then drops them. */
static bool
close_object_keys(dp_json *j, size_t mark)
{
    size_t n = j->nkeys - mark;
    bool dup = false;

    if (n < 2)
        goto done;
    dp_json_key *k = j->keys + mark;
    if (n <= 16) {
        for (size_t a = 0; a < n && !dup; a++)
            for (size_t b = a + 1; b < n && !dup; b++)
                dup = k[a].hash == k[b].hash && keys_equal(j, &k[a].s, &k[b].s);
    } else {
        qsort(k, n, sizeof(*k), cmp_key_hash);
        for (size_t a = 0; a < n && !dup; a++)
            for (size_t b = a + 1; b < n && k[b].hash == k[a].hash && !dup; b++)
                dup = keys_equal(j, &k[a].s, &k[b].s);
    }
done:
    j->nkeys = mark;
    return !dup || fail(j, "duplicate object key");
}

static void
push_key(dp_json *j, const dp_json_str *s)
{
    if (j->nkeys == j->capkeys) {
        j->capkeys = j->capkeys == 0 ? 32 : j->capkeys * 2;
        j->keys = gw_xrealloc(j->keys, j->capkeys * sizeof(*j->keys));
    }
    j->keys[j->nkeys].hash = key_hash(j, s);
    j->keys[j->nkeys].s = *s;
    j->nkeys++;
}

static bool
open_container(dp_json *j, dp_json_iter *it, int open)
{
    if (!value_depth_ok(j))
        return false;
    if (dp_json_peek(j) != open)
        return fail(j, open == '{' ? "object expected" : "array expected");
    j->pos++;
    j->depth++;
    it->keys_mark = j->nkeys;
    it->started = false;
    return true;
}

bool
dp_json_object_open(dp_json *j, dp_json_iter *it)
{
    return open_container(j, it, '{');
}

bool
dp_json_array_open(dp_json *j, dp_json_iter *it)
{
    return open_container(j, it, '[');
}

/* Before the next member: true if there is one (after a ',' when not the
 * first), false at the closing byte (consumed) or on an error. */
static bool
next_member(dp_json *j, dp_json_iter *it, int close)
{
    int c = dp_json_peek(j);

    if (j->err != NULL)
        return false;
    if (c == close) {
        j->pos++;
        j->depth--;
        return false;
    }
    if (it->started) {
        if (c != ',')
            return fail(j, close == '}' ? "',' or '}' expected" : "',' or ']' expected");
        j->pos++;
        c = dp_json_peek(j);
    }
    it->started = true;
    if (c < 0)
        return fail(j, "premature end of input");
    return true;
}

bool
dp_json_object_key(dp_json *j, dp_json_iter *it, dp_json_str *key)
{
    if (!next_member(j, it, '}')) {
        if (j->err == NULL)
            close_object_keys(j, it->keys_mark);
        return false;
    }
    if (dp_json_peek(j) != '"')
        return fail(j, "string or '}' expected");
    if (!scan_string(j, key))
        return false;
    push_key(j, key);
    if (dp_json_peek(j) != ':')
        return fail(j, "':' expected");
    j->pos++;
    return true;
}

bool
dp_json_array_next(dp_json *j, dp_json_iter *it)
{
    return next_member(j, it, ']');
}

bool
dp_json_skip(dp_json *j)
{
    dp_json_iter it;
    dp_json_str s;
    bool is_int;
    int64_t iv;
    char lit;

    switch (dp_json_peek(j)) {
    case '"':
        return dp_json_string(j, &s);
    case '{':
        if (!dp_json_object_open(j, &it))
            return false;
        while (dp_json_object_key(j, &it, &s))
            if (!dp_json_skip(j))
                return false;
        return j->err == NULL;
    case '[':
        if (!dp_json_array_open(j, &it))
            return false;
        while (dp_json_array_next(j, &it))
            if (!dp_json_skip(j))
                return false;
        return j->err == NULL;
    case '-':
    case '0' ... '9':
        return dp_json_number(j, &is_int, &iv);
    case -1:
        return fail(j, "premature end of input");
    default:
        return dp_json_literal(j, &lit);
    }
}

bool
dp_json_end(dp_json *j)
{
    if (j->err != NULL)
        return false;
    return dp_json_peek(j) < 0 || fail(j, "end of input expected");
}
