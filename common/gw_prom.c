/* gw_prom: Prometheus text format 0.0.4 parser (see gw_prom.h).
 *
 * One pass over the buffer, one line at a time. Each line is decoded into a
 * scratch buffer (metric name, then per label its name and unescaped value,
 * each NUL-terminated) so the callback gets plain C strings. The decoded
 * form is never longer than the line plus one byte: every label costs at
 * least `=""` (three bytes) in the input and two NULs in the output, and
 * unescaping only shrinks. So one scratch buffer of (shortest of the input
 * and the line cap) + 1 bytes serves every line; that bound is what keeps an
 * engine's page from costing more memory than its own size. */
#include "gw/gw_prom.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

/* The longest number token we accept: Go's strconv output for a float64 is
 * at most ~24 characters; leave room for zero-padded forms. */
#define NUM_MAX 128

typedef enum line_kind {
    LINE_SKIP = 0,   /* blank or comment */
    LINE_SAMPLE = 1, /* a sample was decoded */
    LINE_BAD = -1,   /* malformed: skipped and counted */
} line_kind;

/* Per-line decoding state. */
typedef struct line_ctx {
    const char *p; /* the line, without its terminator */
    size_t n;
    size_t i;      /* read position in p */
    char *scratch; /* decoded strings */
    size_t o;      /* write position in scratch */
    gw_prom_label labels[GW_PROM_MAX_LABELS];
    size_t n_labels;
} line_ctx;

/* Character classes of the text format (ASCII only, locale-free). */
static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void
skip_blanks(line_ctx *c)
{
    while (c->i < c->n && is_blank(c->p[c->i]))
        c->i++;
}

/* Copies the identifier at c->i (metric name when <colon>, else label name)
 * into scratch; returns its start there, or NULL if there is none. */
static const char *
take_ident(line_ctx *c, bool colon)
{
    size_t start = c->i;
    char *out = c->scratch + c->o;

    if (c->i >= c->n || !(is_alpha_(c->p[c->i]) || (colon && c->p[c->i] == ':')))
        return NULL;
    while (c->i < c->n &&
           (is_alpha_(c->p[c->i]) || is_digit(c->p[c->i]) || (colon && c->p[c->i] == ':')))
        c->i++;
    memcpy(out, c->p + start, c->i - start);
    out[c->i - start] = '\0';
    c->o += c->i - start + 1;
    return out;
}

/* Decodes the quoted label value at c->i (opening quote included) into
 * scratch. The format escapes backslash, double quote and newline; any other
 * backslash pair is kept verbatim (Prometheus' own unescaper does the same).
 * A raw NUL is refused: callers get C strings. */
static const char *
take_value(line_ctx *c)
{
    char *out = c->scratch + c->o;
    size_t k = 0;

    if (c->i >= c->n || c->p[c->i] != '"')
        return NULL;
    c->i++;
    for (;;) {
        char ch;

        if (c->i >= c->n)
            return NULL; /* unterminated */
        ch = c->p[c->i];
        if (ch == '"') {
            c->i++;
            break;
        }
        if (ch == '\0')
            return NULL;
        if (ch == '\\') {
            char d;

            if (c->i + 1 >= c->n)
                return NULL;
            d = c->p[c->i + 1];
            if (d == '\0')
                return NULL;
            if (d == '\\' || d == '"') {
                out[k++] = d;
            } else if (d == 'n') {
                out[k++] = '\n';
            } else {
                out[k++] = '\\';
                out[k++] = d;
            }
            c->i += 2;
            continue;
        }
        out[k++] = ch;
        c->i++;
    }
    out[k] = '\0';
    c->o += k + 1;
    return out;
}

/* Parses the labels between braces (c->i is just past the "{"). A trailing
 * comma and blanks around tokens are accepted; a duplicate label name or
 * more than GW_PROM_MAX_LABELS labels make the line malformed. */
static bool
take_labels(line_ctx *c)
{
    for (;;) {
        const char *name, *value;

        skip_blanks(c);
        if (c->i >= c->n)
            return false;
        if (c->p[c->i] == '}') {
            c->i++;
            return true;
        }
        if (c->n_labels == GW_PROM_MAX_LABELS)
            return false;
        name = take_ident(c, false);
        if (name == NULL)
            return false;
        skip_blanks(c);
        if (c->i >= c->n || c->p[c->i] != '=')
            return false;
        c->i++;
        skip_blanks(c);
        value = take_value(c);
        if (value == NULL)
            return false;
        for (size_t k = 0; k < c->n_labels; k++) {
            if (strcmp(c->labels[k].name, name) == 0)
                return false;
        }
        c->labels[c->n_labels++] = (gw_prom_label){.name = name, .value = value};
        skip_blanks(c);
        if (c->i < c->n && c->p[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->i < c->n && c->p[c->i] == '}') {
            c->i++;
            return true;
        }
        return false;
    }
}

/* The next run of non-blank bytes; false when there is none. */
static bool
take_token(line_ctx *c, const char **tok, size_t *len)
{
    size_t start = c->i;

    while (c->i < c->n && !is_blank(c->p[c->i]))
        c->i++;
    *tok = c->p + start;
    *len = c->i - start;
    return *len > 0;
}

/* A float as Prometheus writes it (Go's ParseFloat syntax, which strtod
 * covers: decimal and exponent forms, NaN, Inf, +Inf, -Inf in any case).
 * The token is copied so strtod cannot read past it; embedded NULs or any
 * trailing garbage make it fail. The process never calls setlocale, so the
 * decimal point is '.'. */
static bool
parse_double(const char *tok, size_t len, double *out)
{
    char buf[NUM_MAX + 1];
    char *end = NULL;
    double v;

    if (len == 0 || len > NUM_MAX)
        return false;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    if (!(is_digit(buf[0]) || buf[0] == '+' || buf[0] == '-' || buf[0] == '.' || buf[0] == 'N' ||
          buf[0] == 'n' || buf[0] == 'I' || buf[0] == 'i'))
        return false;
    errno = 0;
    v = strtod(buf, &end);
    if (end != buf + len)
        return false;
    /* ERANGE on underflow still gives a usable (tiny or zero) value; on
     * overflow strtod returns +-HUGE_VAL, i.e. +-Inf, which is what the
     * exporter meant. */
    *out = v;
    return true;
}

/* An optional sign and 1..19 digits, fitting int64_t. */
static bool
parse_ts(const char *tok, size_t len, int64_t *out)
{
    char buf[24];
    char *end = NULL;
    long long v;
    size_t k = 0;

    if (len == 0 || len >= sizeof(buf))
        return false;
    if (tok[0] == '-' || tok[0] == '+')
        k = 1;
    if (k == len)
        return false;
    for (size_t j = k; j < len; j++) {
        if (!is_digit(tok[j]))
            return false;
    }
    memcpy(buf, tok, len);
    buf[len] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (errno != 0 || end != buf + len)
        return false;
    *out = (int64_t)v;
    return true;
}

/* Decodes one line (without its terminator) into <s>: LINE_SKIP for blank
 * and comment lines, LINE_BAD for anything malformed. */
static line_kind
parse_line(line_ctx *c, gw_prom_sample *s)
{
    const char *tok;
    size_t len;

    skip_blanks(c);
    if (c->i >= c->n || c->p[c->i] == '#')
        return LINE_SKIP;
    s->name = take_ident(c, true);
    if (s->name == NULL)
        return LINE_BAD;
    skip_blanks(c);
    if (c->i < c->n && c->p[c->i] == '{') {
        c->i++;
        if (!take_labels(c))
            return LINE_BAD;
        skip_blanks(c);
    }
    if (!take_token(c, &tok, &len) || !parse_double(tok, len, &s->value))
        return LINE_BAD;
    skip_blanks(c);
    s->has_ts = false;
    /* An OpenMetrics exemplar or trailing comment starts with '#'. */
    if (c->i < c->n && c->p[c->i] != '#') {
        take_token(c, &tok, &len);
        if (!parse_ts(tok, len, &s->ts_ms))
            return LINE_BAD;
        s->has_ts = true;
        skip_blanks(c);
        if (c->i < c->n && c->p[c->i] != '#')
            return LINE_BAD;
    }
    s->labels = c->labels;
    s->n_labels = c->n_labels;
    return LINE_SAMPLE;
}

gw_err
gw_prom_parse(const char *text, size_t len, gw_prom_sample_fn fn, void *arg, gw_prom_stats *stats)
{
    gw_prom_stats st = {0};
    line_ctx c;
    size_t pos = 0;

    if (fn == NULL || (text == NULL && len > 0))
        return GW_EINVAL;
    memset(&c, 0, sizeof(c));
    c.scratch = gw_xmalloc((len < GW_PROM_MAX_LINE ? len : GW_PROM_MAX_LINE) + 2);
    while (pos < len) {
        const char *line = text + pos;
        const char *eol = memchr(line, '\n', len - pos);
        size_t n = eol != NULL ? (size_t)(eol - line) : len - pos;
        gw_prom_sample s;

        pos += n + (eol != NULL ? 1 : 0);
        st.lines++;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n > GW_PROM_MAX_LINE) {
            st.malformed++;
            continue;
        }
        c.p = line;
        c.n = n;
        c.i = 0;
        c.o = 0;
        c.n_labels = 0;
        memset(&s, 0, sizeof(s));
        switch (parse_line(&c, &s)) {
        case LINE_SKIP:
            continue;
        case LINE_BAD:
            st.malformed++;
            continue;
        case LINE_SAMPLE:
            break;
        }
        st.samples++;
        if (!fn(&s, arg))
            break;
    }
    free(c.scratch);
    if (stats != NULL)
        *stats = st;
    return GW_OK;
}

const char *
gw_prom_label_value(const gw_prom_sample *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    }
    return NULL;
}
