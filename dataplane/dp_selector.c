/* dp_selector: label-selector parser and matcher (see dp_selector.h). A
 * hand-written scanner over the bounded input: every read checks the
 * position against the end first. */
#include "dp_selector.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct scan {
    const char *s;
    size_t len, pos;
    char *why;
    size_t why_n;
} scan;

static bool bad(scan *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
bad(scan *sc, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(sc->why, sc->why_n, "invalid external-filter at byte %zu: ", sc->pos);

    if (n >= 0 && (size_t)n < sc->why_n) {
        va_start(ap, fmt);
        vsnprintf(sc->why + n, sc->why_n - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return false;
}

static void
blanks(scan *sc)
{
    while (sc->pos < sc->len && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t'))
        sc->pos++;
}

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_name_char(char c)
{
    return is_alnum(c) || c == '-' || c == '_' || c == '.';
}

static bool
is_prefix_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* A name or value: 0..63 name chars, alphanumeric at both ends if any. */
static bool
valid_name(const char *p, size_t n, bool allow_empty)
{
    if (n == 0)
        return allow_empty;
    if (n > 63 || !is_alnum(p[0]) || !is_alnum(p[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_name_char(p[i]))
            return false;
    }
    return true;
}

static bool
valid_key(const char *p, size_t n)
{
    const char *slash = memchr(p, '/', n);

    if (slash == NULL)
        return valid_name(p, n, false);
    size_t pl = (size_t)(slash - p);
    if (pl == 0 || pl > 253 || !is_alnum(p[0]) || !is_alnum(p[pl - 1]))
        return false;
    for (size_t i = 0; i < pl; i++) {
        if (!is_prefix_char(p[i]))
            return false;
    }
    return valid_name(slash + 1, n - pl - 1, false);
}

/* The longest run of key characters at the cursor. */
static dp_sel_span
word(scan *sc, bool key)
{
    dp_sel_span w = {.off = (uint16_t)sc->pos, .len = 0};

    while (sc->pos < sc->len && (is_name_char(sc->s[sc->pos]) || (key && sc->s[sc->pos] == '/')))
        sc->pos++;
    w.len = (uint16_t)(sc->pos - w.off);
    return w;
}

static bool
at(const scan *sc, char c)
{
    return sc->pos < sc->len && sc->s[sc->pos] == c;
}

static bool
value(scan *sc, dp_sel_req *r, bool allow_empty)
{
    dp_sel_span v;

    blanks(sc);
    v = word(sc, false);
    if (!valid_name(sc->s + v.off, v.len, allow_empty))
        return bad(sc, "bad label value (0-63 of [A-Za-z0-9._-], alphanumeric at both ends)");
    if (r->n_values == DP_SEL_MAX_VALUES)
        return bad(sc, "more than %u values in a set", DP_SEL_MAX_VALUES);
    r->values[r->n_values++] = v;
    return true;
}

static bool
requirement(scan *sc, dp_sel_req *r)
{
    bool neg;

    blanks(sc);
    neg = at(sc, '!');
    if (neg) {
        sc->pos++;
        blanks(sc);
    }
    r->key = word(sc, true);
    r->n_values = 0;
    if (!valid_key(sc->s + r->key.off, r->key.len))
        return bad(sc, "bad label key");
    blanks(sc);
    if (neg || sc->pos == sc->len || at(sc, ',')) {
        r->op = neg ? DP_SEL_NOT_EXISTS : DP_SEL_EXISTS;
        return true;
    }
    if (at(sc, '=') || at(sc, '!')) {
        r->op = at(sc, '!') ? DP_SEL_NE : DP_SEL_EQ;
        sc->pos++;
        if (r->op == DP_SEL_NE && !at(sc, '='))
            return bad(sc, "expected '!='");
        if (at(sc, '='))
            sc->pos++;
        return value(sc, r, true);
    }
    dp_sel_span op = word(sc, false);
    if (op.len == 2 && memcmp(sc->s + op.off, "in", 2) == 0)
        r->op = DP_SEL_IN;
    else if (op.len == 5 && memcmp(sc->s + op.off, "notin", 5) == 0)
        r->op = DP_SEL_NOTIN;
    else
        return bad(sc, "expected '=', '==', '!=', 'in', 'notin', ',' or the end");
    blanks(sc);
    if (!at(sc, '('))
        return bad(sc, "expected '('");
    sc->pos++;
    for (;;) {
        if (!value(sc, r, false))
            return false;
        blanks(sc);
        if (at(sc, ')')) {
            sc->pos++;
            return true;
        }
        if (!at(sc, ','))
            return bad(sc, "expected ',' or ')'");
        sc->pos++;
    }
}

bool
dp_selector_parse(const char *s, size_t len, dp_selector *out, char *why, size_t why_n)
{
    scan sc = {.s = s, .len = len, .pos = 0, .why = why, .why_n = why_n};

    out->src = s;
    out->n = 0;
    if (len > DP_SEL_MAX_LEN)
        return bad(&sc, "longer than %u bytes", DP_SEL_MAX_LEN);
    blanks(&sc);
    if (sc.pos == len)
        return true; /* empty: everything */
    for (;;) {
        if (out->n == DP_SEL_MAX_REQS)
            return bad(&sc, "more than %u requirements", DP_SEL_MAX_REQS);
        if (!requirement(&sc, &out->reqs[out->n]))
            return false;
        out->n++;
        blanks(&sc);
        if (sc.pos == len)
            return true;
        if (!at(&sc, ','))
            return bad(&sc, "expected ',' or the end");
        sc.pos++;
    }
}

/* The value of label <key> (span of <src>) in <labels>, or NULL if absent;
 * *vlen is its length. */
static const char *
label_value(const char *src, dp_sel_span key, char *const *labels, uint32_t n, size_t *vlen)
{
    const char *k = src + key.off;

    for (uint32_t i = 0; i < n; i++) {
        const char *l = labels[i];
        if (l[0] != k[0] || strncmp(l, k, key.len) != 0)
            continue;
        if (l[key.len] == '=') {
            *vlen = strlen(l + key.len + 1);
            return l + key.len + 1;
        }
        if (l[key.len] == '\0') {
            *vlen = 0;
            return l + key.len;
        }
    }
    return NULL;
}

static bool
in_set(const char *src, const dp_sel_req *r, const char *v, size_t vlen)
{
    for (uint32_t i = 0; i < r->n_values; i++) {
        if (r->values[i].len == vlen && memcmp(src + r->values[i].off, v, vlen) == 0)
            return true;
    }
    return false;
}

bool
dp_selector_matches(const dp_selector *sel, char *const *labels, uint32_t n)
{
    for (uint32_t i = 0; i < sel->n; i++) {
        const dp_sel_req *r = &sel->reqs[i];
        size_t vlen = 0;
        const char *v = label_value(sel->src, r->key, labels, n, &vlen);
        bool ok;

        switch (r->op) {
        case DP_SEL_EXISTS:
            ok = v != NULL;
            break;
        case DP_SEL_NOT_EXISTS:
            ok = v == NULL;
            break;
        case DP_SEL_EQ:
        case DP_SEL_IN:
            ok = v != NULL && in_set(sel->src, r, v, vlen);
            break;
        case DP_SEL_NE:
        case DP_SEL_NOTIN:
        default:
            ok = v == NULL || !in_set(sel->src, r, v, vlen);
            break;
        }
        if (!ok)
            return false;
    }
    return true;
}
