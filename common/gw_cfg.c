/* gw_cfg: the typed option table (see gw_cfg.h).
 *
 * gw_cfg_parse works in passes so that every error is found in one run:
 *   1. tokenize argv into built-ins and (row, value) assignments;
 *   2. write every default into the struct;
 *   3. apply the options file, then the environment, then the assignments,
 *      each overwriting the previous layer and recording where the value
 *      came from (for --print-config and for error messages);
 *   4. check required rows, then run the binary's validate callback.
 * Errors are collected as lines in a capped buffer and printed at the end.
 * A bad value in a lower layer is still an error even if a higher layer
 * overrides it: the file or environment is broken either way.
 *
 * Secrets: a GW_CFG_F_SECRET row's value is never copied into a message.
 * Positional arguments and the part after '=' of unknown flags are never
 * echoed either, since a typo in a secret's flag name would otherwise print
 * the secret. */
#include "gw/gw_cfg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "gw/gw_buf.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define CFG_ERRS_MAX  (64 * 1024)   /* bytes of error text kept; more are only counted */
#define CFG_FILE_MAX  (1024 * 1024) /* an options file is a few hundred bytes */
#define CFG_OPTS_FILE "options-file"

typedef enum src_kind {
    SRC_NONE = 0, /* not yet written (zero-filled struct) */
    SRC_DEFAULT,
    SRC_FILE,
    SRC_ENV,
    SRC_FLAG,
} src_kind;

typedef struct src {
    src_kind kind;
    unsigned line; /* SRC_FILE: 1-based line of the key */
} src;

struct gw_cfg_errs {
    gw_buf buf;       /* "message\n" lines */
    unsigned n;       /* errors reported, including dropped ones */
    unsigned dropped; /* not kept because buf was full */
};

/* One parse: the table, the struct and where each row's value came from. */
typedef struct cfg_run {
    const gw_cfg_opt *table;
    size_t n;         /* rows */
    char *base;       /* the binary's config struct */
    src *srcs;        /* n entries */
    const char *path; /* options file path for messages; borrowed */
    gw_cfg_errs errs;
} cfg_run;

/* One command-line assignment: row <idx> gets <val> (borrowed from argv). */
typedef struct cfg_assign {
    size_t idx;
    const char *val;
} cfg_assign;

static void errs_vadd(gw_cfg_errs *e, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
errs_vadd(gw_cfg_errs *e, const char *fmt, va_list ap)
{
    size_t len = e->buf.len;

    e->n++;
    /* On GW_EFULL gw_buf leaves the contents unchanged, but the message and
     * its newline are two appends: roll back to keep whole lines only. */
    if (gw_buf_vprintf(&e->buf, fmt, ap) != GW_OK || gw_buf_append(&e->buf, "\n", 1) != GW_OK) {
        e->buf.len = len;
        if (e->buf.data != NULL)
            e->buf.data[len] = '\0';
        e->dropped++;
    }
}

void
gw_cfg_errorf(gw_cfg_errs *errs, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    errs_vadd(errs, fmt, ap);
    va_end(ap);
}

static void
run_init(cfg_run *run, const gw_cfg_opt *table, void *cfg)
{
    size_t n = 0;

    while (table[n].name != NULL)
        n++;
    run->table = table;
    run->n = n;
    run->base = cfg;
    run->srcs = gw_xcalloc(n, sizeof(*run->srcs));
    run->path = NULL;
    gw_buf_init(&run->errs.buf, CFG_ERRS_MAX);
    run->errs.n = 0;
    run->errs.dropped = 0;
}

static void
run_fini(cfg_run *run)
{
    GW_FREE(run->srcs);
    gw_buf_fini(&run->errs.buf);
}

static const gw_cfg_opt *
find_row(const cfg_run *run, const char *name, size_t len, size_t *idx)
{
    for (size_t i = 0; i < run->n; i++) {
        const char *o = run->table[i].name;
        if (strncmp(o, name, len) == 0 && o[len] == '\0') {
            *idx = i;
            return &run->table[i];
        }
    }
    return NULL;
}

const gw_cfg_opt *
gw_cfg_find(const gw_cfg_opt *table, const char *name)
{
    for (; table->name != NULL; table++) {
        if (strcmp(table->name, name) == 0)
            return table;
    }
    return NULL;
}

/* ---- formatting ---------------------------------------------------------- */

/* Shortest of %.15g/%.17g that reads back as <v>, so 0.1 prints as "0.1". */
static void
fmt_dbl(char *dst, size_t n, double v)
{
    snprintf(dst, n, "%.15g", v);
    if (strtod(dst, NULL) != v)
        snprintf(dst, n, "%.17g", v);
}

/* Milliseconds in the largest whole unit, re-parseable: 5m, 2s, 250ms. */
static void
fmt_ms(char *dst, size_t n, uint64_t ms)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(dst, n, "%" PRIu64 "h", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(dst, n, "%" PRIu64 "m", ms / 60000);
    else if (ms != 0 && ms % 1000 == 0)
        snprintf(dst, n, "%" PRIu64 "s", ms / 1000);
    else
        snprintf(dst, n, "%" PRIu64 "ms", ms);
}

/* The accepted values of <o>, for messages and --help. */
static void
fmt_range(char *dst, size_t n, const gw_cfg_opt *o)
{
    char a[40], b[40];

    switch (o->type) {
    case GW_CFG_TSTR:
        snprintf(dst, n, "any string");
        break;
    case GW_CFG_TBOOL:
        snprintf(dst, n, "true|false|yes|no|on|off|1|0");
        break;
    case GW_CFG_TINT:
    case GW_CFG_TU16:
        snprintf(dst, n, "%" PRId64 "..%" PRId64, o->min_i, o->max_i);
        break;
    case GW_CFG_TMS:
        fmt_ms(a, sizeof(a), (uint64_t)o->min_i);
        fmt_ms(b, sizeof(b), (uint64_t)o->max_i);
        snprintf(dst, n, "%s..%s (units ms, s, m, h; bare numbers are ms)", a, b);
        break;
    case GW_CFG_TDBL:
        fmt_dbl(a, sizeof(a), o->min_d);
        fmt_dbl(b, sizeof(b), o->max_d);
        snprintf(dst, n, "%s..%s", a, b);
        break;
    }
}

static void
fmt_src(char *dst, size_t n, const cfg_run *run, const gw_cfg_opt *o, const src *s)
{
    switch (s->kind) {
    case SRC_NONE:
    case SRC_DEFAULT:
        snprintf(dst, n, "default");
        break;
    case SRC_FILE:
        snprintf(dst, n, "file %s:%u", run->path != NULL ? run->path : "?", s->line);
        break;
    case SRC_ENV:
        snprintf(dst, n, "env %s", o->env);
        break;
    case SRC_FLAG:
        snprintf(dst, n, "flag");
        break;
    }
}

/* The value of row <o> held in field <f> as text; secrets are <redacted>
 * when set. */
static void
fmt_value(char *dst, size_t n, const void *f, const gw_cfg_opt *o)
{
    switch (o->type) {
    case GW_CFG_TSTR: {
        const char *s = *(char *const *)f;
        if (s == NULL)
            s = "";
        if ((o->flags & GW_CFG_F_SECRET) && *s != '\0')
            s = "<redacted>";
        snprintf(dst, n, "%s", s);
        return;
    }
    case GW_CFG_TBOOL:
        snprintf(dst, n, "%s", *(const bool *)f ? "true" : "false");
        break;
    case GW_CFG_TINT:
        snprintf(dst, n, "%" PRId64, *(const int64_t *)f);
        break;
    case GW_CFG_TU16:
        snprintf(dst, n, "%u", (unsigned)*(const uint16_t *)f);
        break;
    case GW_CFG_TMS:
        fmt_ms(dst, n, *(const uint64_t *)f);
        break;
    case GW_CFG_TDBL:
        fmt_dbl(dst, n, *(const double *)f);
        break;
    }
    /* A non-string secret (odd, but allowed) is redacted too. */
    if (o->flags & GW_CFG_F_SECRET)
        snprintf(dst, n, "<redacted>");
}

/* ---- value parsing ------------------------------------------------------- */

typedef enum num_rc {
    NUM_OK,
    NUM_SYNTAX,   /* not a number of this type */
    NUM_RANGE,    /* a number, but outside the type's or the row's range */
    NUM_FRACTION, /* a duration that is not a whole number of milliseconds */
} num_rc;

static bool
parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < GW_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

static num_rc
parse_int(const char *s, int64_t *out)
{
    const char *p = s;
    char *end;
    long long v;

    /* strtoll would skip leading blanks and accept hex with base 0: be strict. */
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return NUM_SYNTAX;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0')
        return NUM_SYNTAX;
    if (errno == ERANGE)
        return NUM_RANGE;
    *out = v;
    return NUM_OK;
}

/* "<digits>[.<digits>][ms|s|m|h]"; a bare number is milliseconds. Computed in
 * integers so "1.1s" is exactly 1100 and "0.0005s" is refused, not rounded. */
static num_rc
parse_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *p = s;
    uint64_t ip = 0, frac = 0, pow10 = 1, mult = 0, v;
    bool overflow = false;
    unsigned nfrac = 0;

    if (!isdigit((unsigned char)*p))
        return NUM_SYNTAX;
    for (; isdigit((unsigned char)*p); p++) {
        if (ip > (UINT64_MAX - 9) / 10)
            overflow = true;
        else
            ip = ip * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        const char *fs = ++p;
        const char *fe;
        if (!isdigit((unsigned char)*p))
            return NUM_SYNTAX;
        while (isdigit((unsigned char)*p))
            p++;
        fe = p;
        while (fe > fs && fe[-1] == '0') /* "1.50s" == "1.5s" */
            fe--;
        for (const char *q = fs; q < fe; q++) {
            /* 9 significant digits with a multiplier <= 3.6e6 fit in 64 bits;
             * anything finer cannot be a whole millisecond anyway. */
            if (++nfrac > 9)
                return NUM_FRACTION;
            frac = frac * 10 + (uint64_t)(*q - '0');
            pow10 *= 10;
        }
    }
    for (size_t i = 0; i < GW_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit) == 0) {
            mult = units[i].mult;
            break;
        }
    }
    if (mult == 0)
        return NUM_SYNTAX;
    if (overflow || ip > (uint64_t)INT64_MAX / mult)
        return NUM_RANGE;
    if ((frac * mult) % pow10 != 0)
        return NUM_FRACTION;
    v = ip * mult + (frac * mult) / pow10;
    if (v > (uint64_t)INT64_MAX)
        return NUM_RANGE;
    *out = v;
    return NUM_OK;
}

static num_rc
parse_dbl(const char *s, double *out)
{
    char *end;
    double v;

    /* Decimal only: strtod would also take "nan", "inf", hex and blanks. */
    if (*s == '\0' || strspn(s, "0123456789+-.eE") != strlen(s))
        return NUM_SYNTAX;
    errno = 0;
    v = strtod(s, &end);
    if (end == s || *end != '\0')
        return NUM_SYNTAX;
    if (errno == ERANGE && fabs(v) == HUGE_VAL)
        return NUM_RANGE;
    if (!isfinite(v))
        return NUM_RANGE;
    *out = v;
    return NUM_OK;
}

/* Reports a bad value for row <o>. The value is echoed unless the row is secret. */
static void
bad_value(cfg_run *run, const gw_cfg_opt *o, const char *text, const src *s, const char *what)
{
    char q[96], sd[512], range[160];

    fmt_src(sd, sizeof(sd), run, o, s);
    fmt_range(range, sizeof(range), o);
    if (o->flags & GW_CFG_F_SECRET)
        gw_cfg_errorf(&run->errs, "--%s: invalid value (%s): %s; accepted %s", o->name, sd, what,
                      range);
    else
        gw_cfg_errorf(&run->errs, "--%s: %s (%s) %s; accepted %s", o->name,
                      gw_log_q(q, sizeof(q), text), sd, what, range);
}

/* Parses <text> for row <idx> and stores it, recording <s>; on error reports
 * and leaves the field as it was. */
static void
set_value(cfg_run *run, size_t idx, const char *text, src s)
{
    const gw_cfg_opt *o = &run->table[idx];
    void *f = run->base + o->off;
    num_rc rc = NUM_OK;
    int64_t iv = 0;
    uint64_t ms = 0;
    double dv = 0;
    bool bv = false;

    switch (o->type) {
    case GW_CFG_TSTR: {
        char **sp = f;
        free(*sp);
        *sp = gw_xstrdup(text);
        break;
    }
    case GW_CFG_TBOOL:
        if (!parse_bool(text, &bv)) {
            bad_value(run, o, text, &s, "is not a boolean");
            return;
        }
        *(bool *)f = bv;
        break;
    case GW_CFG_TINT:
    case GW_CFG_TU16:
        rc = parse_int(text, &iv);
        if (rc == NUM_OK && (iv < o->min_i || iv > o->max_i))
            rc = NUM_RANGE;
        if (rc != NUM_OK) {
            bad_value(run, o, text, &s, rc == NUM_RANGE ? "is out of range" : "is not an integer");
            return;
        }
        if (o->type == GW_CFG_TINT)
            *(int64_t *)f = iv;
        else
            *(uint16_t *)f = (uint16_t)iv;
        break;
    case GW_CFG_TMS:
        rc = parse_ms(text, &ms);
        if (rc == NUM_OK && (ms < (uint64_t)o->min_i || ms > (uint64_t)o->max_i))
            rc = NUM_RANGE;
        if (rc != NUM_OK) {
            bad_value(run, o, text, &s,
                      rc == NUM_RANGE      ? "is out of range"
                      : rc == NUM_FRACTION ? "is not a whole number of milliseconds"
                                           : "is not a duration (e.g. 250ms, 2s, 1.5s, 5m)");
            return;
        }
        *(uint64_t *)f = ms;
        break;
    case GW_CFG_TDBL:
        rc = parse_dbl(text, &dv);
        if (rc == NUM_OK && (dv < o->min_d || dv > o->max_d))
            rc = NUM_RANGE;
        if (rc != NUM_OK) {
            bad_value(run, o, text, &s, rc == NUM_RANGE ? "is out of range" : "is not a number");
            return;
        }
        *(double *)f = dv;
        break;
    }
    run->srcs[idx] = s;
}

/* Writes the table's default into a zero-filled field (strings are not freed
 * first: see the gw_cfg_parse contract). */
static void
set_default(cfg_run *run, size_t idx)
{
    const gw_cfg_opt *o = &run->table[idx];
    void *f = run->base + o->off;

    switch (o->type) {
    case GW_CFG_TSTR:
        *(char **)f = o->def_s != NULL ? gw_xstrdup(o->def_s) : NULL;
        break;
    case GW_CFG_TBOOL:
        *(bool *)f = o->def_i != 0;
        break;
    case GW_CFG_TINT:
        *(int64_t *)f = o->def_i;
        break;
    case GW_CFG_TU16:
        *(uint16_t *)f = (uint16_t)o->def_i;
        break;
    case GW_CFG_TMS:
        *(uint64_t *)f = (uint64_t)o->def_i;
        break;
    case GW_CFG_TDBL:
        *(double *)f = o->def_d;
        break;
    }
    run->srcs[idx] = (src){.kind = SRC_DEFAULT};
}

/* ---- the options file ---------------------------------------------------- */

static bool
yaml_next(yaml_parser_t *p, yaml_event_t *ev, cfg_run *run)
{
    if (yaml_parser_parse(p, ev))
        return true;
    gw_cfg_errorf(&run->errs, "options file %s:%zu:%zu: YAML syntax error: %s", run->path,
                  p->problem_mark.line + 1, p->problem_mark.column + 1,
                  p->problem != NULL ? p->problem : "unknown");
    return false;
}

/* After a MAPPING_START or SEQUENCE_START: consumes events up to and
 * including the matching end. Iterative, so deep nesting costs no stack. */
static bool
yaml_skip(yaml_parser_t *p, cfg_run *run)
{
    size_t depth = 1;
    yaml_event_t ev;

    while (depth > 0) {
        if (!yaml_next(p, &ev, run))
            return false;
        switch (ev.type) {
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            depth--;
            break;
        case YAML_STREAM_END_EVENT: /* cannot happen in a well-formed stream */
            depth = 0;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    return true;
}

/* YAML 1.1/1.2 core-schema nulls, only when unquoted: `key: ""` is an empty
 * string, `key:` means "not set here". */
static bool
yaml_is_null(const yaml_event_t *ev)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    const char *v = (const char *)ev->data.scalar.value;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < GW_ARRAY_LEN(nulls); i++) {
        if (strcmp(v, nulls[i]) == 0)
            return true;
    }
    return false;
}

/* Handles one `key: value` pair whose key event is <key>. Returns false when
 * the parser failed and the stream must be abandoned. */
static bool
yaml_pair(yaml_parser_t *p, cfg_run *run, const yaml_event_t *key, unsigned *seen)
{
    const char *k = (const char *)key->data.scalar.value;
    unsigned line = (unsigned)key->start_mark.line + 1;
    const gw_cfg_opt *o = NULL;
    size_t idx = 0;
    yaml_event_t val;
    bool ok = true;
    char q[96];

    if (strlen(k) != key->data.scalar.length) {
        gw_cfg_errorf(&run->errs, "options file %s:%u: key contains a NUL byte", run->path, line);
    } else if (strcmp(k, CFG_OPTS_FILE) == 0) {
        gw_cfg_errorf(&run->errs, "options file %s:%u: %s cannot be set inside an options file",
                      run->path, line, CFG_OPTS_FILE);
    } else {
        o = find_row(run, k, strlen(k), &idx);
        if (o == NULL)
            gw_cfg_errorf(&run->errs, "options file %s:%u: unknown option %s", run->path, line,
                          gw_log_q(q, sizeof(q), k));
    }
    if (!yaml_next(p, &val, run))
        return false;
    switch (val.type) {
    case YAML_SCALAR_EVENT:
        if (o == NULL || yaml_is_null(&val))
            break;
        if (seen[idx] != 0) {
            gw_cfg_errorf(&run->errs, "options file %s:%u: duplicate key %s (first on line %u)",
                          run->path, line, o->name, seen[idx]);
            break;
        }
        seen[idx] = line;
        if (strlen((const char *)val.data.scalar.value) != val.data.scalar.length) {
            src s = {.kind = SRC_FILE, .line = line};
            bad_value(run, o, "", &s, "contains a NUL byte");
            break;
        }
        set_value(run, idx, (const char *)val.data.scalar.value,
                  (src){.kind = SRC_FILE, .line = line});
        break;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        gw_cfg_errorf(&run->errs,
                      "options file %s:%u: %s: nested %s not allowed; values must be scalars",
                      run->path, line, gw_log_q(q, sizeof(q), k),
                      val.type == YAML_MAPPING_START_EVENT ? "mapping" : "sequence");
        ok = yaml_skip(p, run);
        break;
    case YAML_ALIAS_EVENT:
        gw_cfg_errorf(&run->errs, "options file %s:%u: %s: aliases are not supported", run->path,
                      line, gw_log_q(q, sizeof(q), k));
        break;
    default: /* the parser never produces anything else here */
        break;
    }
    yaml_event_delete(&val);
    return ok;
}

/* Applies one flat mapping from <text>. Errors go to run->errs. libyaml's
 * event API is used rather than its document loader so nothing is built in
 * memory and line numbers come straight from the events. After an error
 * inside the mapping the parse continues, so one run reports every bad key;
 * a structural error at the root stops it. */
static void
apply_yaml(cfg_run *run, const char *text, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    unsigned *seen; /* per row: line of its key, 0 if not seen */
    unsigned docs = 0;
    bool done = false;

    if (len > CFG_FILE_MAX) {
        gw_cfg_errorf(&run->errs, "options file %s: larger than %d bytes", run->path, CFG_FILE_MAX);
        return;
    }
    if (!yaml_parser_initialize(&p)) {
        gw_cfg_errorf(&run->errs, "options file %s: cannot initialise the YAML parser", run->path);
        return;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    seen = gw_xcalloc(run->n + 1, sizeof(*seen));
    while (!done) {
        if (!yaml_next(&p, &ev, run))
            break;
        unsigned line = (unsigned)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                gw_cfg_errorf(&run->errs, "options file %s:%u: only one YAML document is allowed",
                              run->path, line);
                done = true;
            }
            break;
        case YAML_MAPPING_START_EVENT: {
            /* The root mapping: pairs until its end. */
            bool in_map = true;
            yaml_event_delete(&ev);
            while (in_map && !done) {
                if (!yaml_next(&p, &ev, run)) {
                    done = true;
                    break;
                }
                line = (unsigned)ev.start_mark.line + 1;
                switch (ev.type) {
                case YAML_MAPPING_END_EVENT:
                    in_map = false;
                    break;
                case YAML_SCALAR_EVENT:
                    if (!yaml_pair(&p, run, &ev, seen))
                        done = true;
                    break;
                case YAML_MAPPING_START_EVENT:
                case YAML_SEQUENCE_START_EVENT:
                    gw_cfg_errorf(&run->errs, "options file %s:%u: keys must be plain scalars",
                                  run->path, line);
                    /* Skip the complex key, then its value. */
                    if (!yaml_skip(&p, run)) {
                        done = true;
                        break;
                    }
                    yaml_event_delete(&ev);
                    if (!yaml_next(&p, &ev, run)) {
                        done = true;
                        break;
                    }
                    if ((ev.type == YAML_MAPPING_START_EVENT ||
                         ev.type == YAML_SEQUENCE_START_EVENT) &&
                        !yaml_skip(&p, run))
                        done = true;
                    break;
                case YAML_ALIAS_EVENT:
                    gw_cfg_errorf(&run->errs, "options file %s:%u: aliases are not supported",
                                  run->path, line);
                    yaml_event_delete(&ev);
                    if (!yaml_next(&p, &ev, run)) {
                        done = true;
                        break;
                    }
                    if ((ev.type == YAML_MAPPING_START_EVENT ||
                         ev.type == YAML_SEQUENCE_START_EVENT) &&
                        !yaml_skip(&p, run))
                        done = true;
                    break;
                default:
                    break;
                }
                yaml_event_delete(&ev);
            }
            continue; /* ev already deleted */
        }
        case YAML_SEQUENCE_START_EVENT:
            gw_cfg_errorf(&run->errs,
                          "options file %s:%u: must be a mapping of option names to values, "
                          "not a sequence",
                          run->path, line);
            done = true;
            break;
        case YAML_SCALAR_EVENT:
            /* An empty document ("---" alone, or just comments) is fine. */
            if (!yaml_is_null(&ev)) {
                gw_cfg_errorf(&run->errs,
                              "options file %s:%u: must be a mapping of option names to values",
                              run->path, line);
                done = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            gw_cfg_errorf(&run->errs, "options file %s:%u: aliases are not supported", run->path,
                          line);
            done = true;
            break;
        default: /* STREAM_START, DOCUMENT_END */
            break;
        }
        yaml_event_delete(&ev);
    }
    free(seen);
    yaml_parser_delete(&p);
}

gw_err
gw_cfg_apply_yaml(const gw_cfg_opt *table, void *cfg, const char *text, size_t len,
                  const char *path, char **why)
{
    cfg_run run;
    gw_err rc = GW_OK;

    if (why != NULL)
        *why = NULL;
    run_init(&run, table, cfg);
    run.path = path != NULL ? path : "-";
    apply_yaml(&run, text, len);
    if (run.errs.n > 0) {
        rc = GW_EINVAL;
        if (why != NULL)
            *why = run.errs.buf.data != NULL ? gw_buf_steal(&run.errs.buf)
                                             : gw_xstrdup("options file: errors dropped\n");
    }
    run_fini(&run);
    return rc;
}

/* Reads <path> whole (capped) and applies it. */
static void
apply_file(cfg_run *run, const char *path)
{
    FILE *f;
    char *text;
    size_t n;
    int err;

    run->path = path;
    f = fopen(path, "rb");
    if (f == NULL) {
        err = errno;
        gw_cfg_errorf(&run->errs, "cannot open options file %s: %s", path, strerror(err));
        return;
    }
    text = gw_xmalloc(CFG_FILE_MAX + 1);
    n = fread(text, 1, CFG_FILE_MAX + 1, f);
    if (ferror(f)) {
        err = errno;
        gw_cfg_errorf(&run->errs, "cannot read options file %s: %s", path, strerror(err));
    } else {
        apply_yaml(run, text, n); /* n > CFG_FILE_MAX is reported there */
    }
    free(text);
    fclose(f);
}

/* ---- the table, --help, --print-config ---------------------------------- */

static bool
name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    for (; *s != '\0'; s++) {
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-'))
            return false;
    }
    return true;
}

/* A bad table is a programming error: says what is wrong and returns false. */
static bool
check_table(const cfg_run *run)
{
    static const char *const reserved[] = {"help", "version", "print-config", "check-config"};
    char why[160] = "";

    for (size_t i = 0; i < run->n && why[0] == '\0'; i++) {
        const gw_cfg_opt *o = &run->table[i];

        if (!name_ok(o->name) || strncmp(o->name, "no-", 3) == 0)
            snprintf(why, sizeof(why), "bad option name");
        for (size_t r = 0; r < GW_ARRAY_LEN(reserved); r++) {
            if (strcmp(o->name, reserved[r]) == 0)
                snprintf(why, sizeof(why), "name reserved for a built-in");
        }
        if (strcmp(o->name, CFG_OPTS_FILE) == 0 && o->type != GW_CFG_TSTR)
            snprintf(why, sizeof(why), "options-file must be a string");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(o->name, run->table[j].name) == 0)
                snprintf(why, sizeof(why), "duplicate name");
        }
        if (o->env != NULL && o->env[0] == '\0')
            snprintf(why, sizeof(why), "empty env name");
        if (o->help == NULL)
            snprintf(why, sizeof(why), "missing help");
        switch (o->type) {
        case GW_CFG_TSTR:
        case GW_CFG_TBOOL:
            break;
        case GW_CFG_TU16:
            if (o->min_i < 0 || o->max_i > 65535)
                snprintf(why, sizeof(why), "u16 range outside 0..65535");
            /* fall through */
        case GW_CFG_TINT:
        case GW_CFG_TMS:
            if (o->min_i > o->max_i || o->def_i < o->min_i || o->def_i > o->max_i)
                snprintf(why, sizeof(why), "default outside [min, max]");
            if (o->type == GW_CFG_TMS && o->min_i < 0)
                snprintf(why, sizeof(why), "negative duration bound");
            break;
        case GW_CFG_TDBL:
            if (!(o->min_d <= o->max_d) || !(o->def_d >= o->min_d && o->def_d <= o->max_d))
                snprintf(why, sizeof(why), "default outside [min, max]");
            break;
        default:
            snprintf(why, sizeof(why), "bad type %d", (int)o->type);
        }
        if (why[0] != '\0') {
            char q[96];
            gw_log(GW_LOG_ALERT, "GW-CFG-TABLE", "option=%s msg=\"%s\"",
                   gw_log_q(q, sizeof(q), o->name), why);
        }
    }
    return why[0] == '\0';
}

static const char *
metavar(const gw_cfg_opt *o)
{
    switch (o->type) {
    case GW_CFG_TSTR:
        return "STRING";
    case GW_CFG_TBOOL:
        return "";
    case GW_CFG_TINT:
    case GW_CFG_TU16:
        return "INT";
    case GW_CFG_TMS:
        return "DURATION";
    case GW_CFG_TDBL:
        return "NUMBER";
    }
    return "VALUE";
}

static void
print_help(const cfg_run *run, const gw_cfg_prog *prog, FILE *out)
{
    fprintf(out, "Usage: %s [options]\n", prog->name);
    if (prog->summary != NULL)
        fprintf(out, "%s\n", prog->summary);
    fprintf(out, "\nPrecedence: default < options file < environment < flag.\n\nOptions:\n");
    for (size_t i = 0; i < run->n; i++) {
        const gw_cfg_opt *o = &run->table[i];
        char def[128], range[160];

        if (o->type == GW_CFG_TBOOL)
            fprintf(out, "  --[no-]%s\n", o->name);
        else
            fprintf(out, "  --%s %s\n", o->name, metavar(o));
        fprintf(out, "        %s\n        ", o->help);
        if (o->env != NULL)
            fprintf(out, "env %s; ", o->env);
        if (o->flags & GW_CFG_F_SECRET) {
            fprintf(out, "secret");
        } else if (o->type == GW_CFG_TSTR) {
            if (o->def_s != NULL)
                fprintf(out, "default \"%s\"", o->def_s);
            else
                fprintf(out, "no default");
        } else {
            /* Format the default the way --print-config shows values. */
            union {
                bool b;
                int64_t i;
                uint16_t u;
                uint64_t ms;
                double d;
            } v;
            switch (o->type) {
            case GW_CFG_TBOOL:
                v.b = o->def_i != 0;
                break;
            case GW_CFG_TU16:
                v.u = (uint16_t)o->def_i;
                break;
            case GW_CFG_TMS:
                v.ms = (uint64_t)o->def_i;
                break;
            case GW_CFG_TDBL:
                v.d = o->def_d;
                break;
            default:
                v.i = o->def_i;
                break;
            }
            fmt_value(def, sizeof(def), &v, o);
            fprintf(out, "default %s", def);
            if (o->type != GW_CFG_TBOOL) {
                fmt_range(range, sizeof(range), o);
                fprintf(out, "; range %s", range);
            }
        }
        if (o->flags & GW_CFG_F_REQUIRED)
            fprintf(out, "; required");
        fprintf(out, "\n");
    }
    fprintf(out, "\nBuilt-in:\n");
    if (gw_cfg_find(run->table, CFG_OPTS_FILE) == NULL)
        fprintf(out, "  --options-file PATH\n"
                     "        read options from a YAML file holding one flat mapping "
                     "(name: value)\n");
    fprintf(out, "  --print-config\n        print the effective configuration and exit\n"
                 "  --check-config\n        validate the configuration, print \"config ok\" or "
                 "the errors, exit 0 or 1\n"
                 "  --version\n        print the version and exit\n"
                 "  --help, -h\n        print this help and exit\n");
}

static void
print_config(const cfg_run *run, FILE *out)
{
    for (size_t i = 0; i < run->n; i++) {
        const gw_cfg_opt *o = &run->table[i];
        char val[128], sd[512];

        fmt_src(sd, sizeof(sd), run, o, &run->srcs[i]);
        if (o->type == GW_CFG_TSTR && !(o->flags & GW_CFG_F_SECRET)) {
            /* Strings may be long (endpoint lists): print them whole. */
            const char *s = *(char *const *)(void *)(run->base + o->off);
            fprintf(out, "%s=%s  # %s\n", o->name, s != NULL ? s : "", sd);
            continue;
        }
        fmt_value(val, sizeof(val), run->base + o->off, o);
        fprintf(out, "%s=%s  # %s\n", o->name, val, sd);
    }
}

static void
print_errors(const cfg_run *run, const gw_cfg_prog *prog, FILE *err)
{
    const char *p = run->errs.buf.data;

    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        int len = nl != NULL ? (int)(nl - p) : (int)strlen(p);
        fprintf(err, "%s: %.*s\n", prog->name, len, p);
        p += len + (nl != NULL ? 1 : 0);
    }
    if (run->errs.dropped > 0)
        fprintf(err, "%s: (%u more errors not shown)\n", prog->name, run->errs.dropped);
    fprintf(err, "%s: configuration invalid (%u error%s)\n", prog->name, run->errs.n,
            run->errs.n == 1 ? "" : "s");
}

/* ---- gw_cfg_parse --------------------------------------------------------- */

void
gw_cfg_free(const gw_cfg_opt *table, void *cfg)
{
    for (; table->name != NULL; table++) {
        if (table->type == GW_CFG_TSTR) {
            char **sp = (void *)((char *)cfg + table->off);
            GW_FREE(*sp);
        }
    }
}

typedef struct cfg_cmdline {
    cfg_assign *as;
    size_t nas;
    const char *file; /* --options-file value, borrowed from argv */
    bool help, version, print, check;
} cfg_cmdline;

/* Quotes the first <len> bytes of <s> (an option name, never its value). */
static const char *
quote_name(char *dst, unsigned n, const char *s, size_t len)
{
    char nm[64];

    if (len > sizeof(nm) - 1)
        len = sizeof(nm) - 1;
    memcpy(nm, s, len);
    nm[len] = '\0';
    return gw_log_q(dst, n, nm);
}

static bool
name_is(const char *name, size_t nlen, const char *lit)
{
    return strlen(lit) == nlen && memcmp(name, lit, nlen) == 0;
}

/* Splits argv into built-ins and assignments; syntax errors go to run->errs. */
static void
tokenize(cfg_run *run, cfg_cmdline *cl, int argc, char **argv)
{
    cl->as = gw_xcalloc((size_t)(argc > 0 ? argc : 1), sizeof(*cl->as));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name, *eq, *val;
        size_t nlen, idx;
        const gw_cfg_opt *o;
        bool *sw;
        char q[96];

        if (strcmp(a, "--") == 0) {
            /* Never echo positional text: it may be a mistyped flag's secret. */
            for (i++; i < argc; i++)
                gw_cfg_errorf(&run->errs,
                              "unexpected argument #%d (positional arguments are not "
                              "accepted)",
                              i);
            break;
        }
        if (strcmp(a, "-h") == 0) {
            cl->help = true;
            continue;
        }
        if (a[0] != '-' || a[1] != '-' || a[2] == '\0') {
            if (a[0] == '-' && a[1] != '\0' && a[1] != '-')
                gw_cfg_errorf(&run->errs, "unknown option %s (options are spelled --name)",
                              quote_name(q, sizeof(q), a, strcspn(a, "=")));
            else
                gw_cfg_errorf(&run->errs,
                              "unexpected argument #%d (positional arguments are not accepted)", i);
            continue;
        }
        name = a + 2;
        eq = strchr(name, '=');
        nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        val = eq != NULL ? eq + 1 : NULL;
        quote_name(q, sizeof(q), a, (size_t)(name - a) + nlen);

        sw = NULL;
        if (name_is(name, nlen, "help"))
            sw = &cl->help;
        else if (name_is(name, nlen, "version"))
            sw = &cl->version;
        else if (name_is(name, nlen, "print-config"))
            sw = &cl->print;
        else if (name_is(name, nlen, "check-config"))
            sw = &cl->check;
        if (sw != NULL) {
            if (val != NULL)
                gw_cfg_errorf(&run->errs, "--%.*s takes no value", (int)nlen, name);
            else
                *sw = true;
            continue;
        }
        if (name_is(name, nlen, CFG_OPTS_FILE)) {
            if (val == NULL && i + 1 < argc)
                val = argv[++i];
            if (val == NULL)
                gw_cfg_errorf(&run->errs, "--%s requires a value", CFG_OPTS_FILE);
            else
                cl->file = val;
            continue;
        }

        o = find_row(run, name, nlen, &idx);
        if (o == NULL && nlen > 3 && strncmp(name, "no-", 3) == 0) {
            o = find_row(run, name + 3, nlen - 3, &idx);
            if (o != NULL && o->type == GW_CFG_TBOOL) {
                if (val != NULL)
                    gw_cfg_errorf(&run->errs, "--no-%s takes no value", o->name);
                else
                    cl->as[cl->nas++] = (cfg_assign){.idx = idx, .val = "false"};
                continue;
            }
            o = NULL;
        }
        if (o == NULL) {
            gw_cfg_errorf(&run->errs, "unknown option %s", q);
            continue;
        }
        if (val == NULL && o->type == GW_CFG_TBOOL) {
            val = "true";
        } else if (val == NULL) {
            if (i + 1 >= argc) {
                gw_cfg_errorf(&run->errs, "--%s requires a value", o->name);
                continue;
            }
            val = argv[++i];
        }
        cl->as[cl->nas++] = (cfg_assign){.idx = idx, .val = val};
    }
}

/* Options named GW_CFG_F_REQUIRED must come from file/env/flag (strings: non-empty). */
static void
check_required(cfg_run *run)
{
    for (size_t i = 0; i < run->n; i++) {
        const gw_cfg_opt *o = &run->table[i];
        bool missing;

        if (!(o->flags & GW_CFG_F_REQUIRED))
            continue;
        if (o->type == GW_CFG_TSTR) {
            const char *s = *(char *const *)(void *)(run->base + o->off);
            missing = s == NULL || *s == '\0';
        } else {
            missing = run->srcs[i].kind == SRC_DEFAULT;
        }
        if (!missing)
            continue;
        if (o->env != NULL)
            gw_cfg_errorf(&run->errs, "--%s is required (set --%s or env %s)", o->name, o->name,
                          o->env);
        else
            gw_cfg_errorf(&run->errs, "--%s is required", o->name);
    }
}

gw_cfg_outcome
gw_cfg_parse(const gw_cfg_opt *table, void *cfg, const gw_cfg_prog *prog, int argc, char **argv)
{
    FILE *out = prog->out != NULL ? prog->out : stdout;
    FILE *err = prog->err != NULL ? prog->err : stderr;
    cfg_run run;
    cfg_cmdline cl = {0};
    gw_cfg_outcome oc;
    size_t fidx = 0;
    const char *file;
    const gw_cfg_opt *frow;

    run_init(&run, table, cfg);
    if (!check_table(&run)) {
        fprintf(err, "%s: internal error: malformed option table\n", prog->name);
        oc = GW_CFG_EXIT_ERR;
        goto out;
    }
    tokenize(&run, &cl, argc, argv);
    if (cl.help) {
        print_help(&run, prog, out);
        oc = GW_CFG_EXIT_OK;
        goto out;
    }
    if (cl.version) {
        fprintf(out, "%s %s\n", prog->name, prog->version != NULL ? prog->version : "unknown");
        oc = GW_CFG_EXIT_OK;
        goto out;
    }

    for (size_t i = 0; i < run.n; i++)
        set_default(&run, i);

    /* The file path itself: flag > env (when the table has an options-file row). */
    frow = find_row(&run, CFG_OPTS_FILE, strlen(CFG_OPTS_FILE), &fidx);
    file = cl.file;
    if (frow != NULL) {
        const char *ev = frow->env != NULL ? getenv(frow->env) : NULL;
        if (file != NULL)
            set_value(&run, fidx, file, (src){.kind = SRC_FLAG});
        else if (ev != NULL && *ev != '\0')
            set_value(&run, fidx, ev, (src){.kind = SRC_ENV});
        file = *(char **)(void *)(run.base + frow->off);
        if (file != NULL && *file == '\0')
            file = NULL;
    }
    if (file != NULL)
        apply_file(&run, file);

    for (size_t i = 0; i < run.n; i++) {
        const gw_cfg_opt *o = &run.table[i];
        const char *ev;

        if (o == frow || o->env == NULL)
            continue;
        ev = getenv(o->env);
        if (ev != NULL && *ev != '\0')
            set_value(&run, i, ev, (src){.kind = SRC_ENV});
    }
    for (size_t i = 0; i < cl.nas; i++)
        set_value(&run, cl.as[i].idx, cl.as[i].val, (src){.kind = SRC_FLAG});
    check_required(&run);
    if (run.errs.n == 0 && prog->validate != NULL)
        prog->validate(cfg, &run.errs);

    if (run.errs.n > 0) {
        print_errors(&run, prog, err);
        oc = GW_CFG_EXIT_ERR;
    } else if (cl.print || cl.check) {
        if (cl.print)
            print_config(&run, out);
        if (cl.check)
            fprintf(out, "config ok\n");
        oc = GW_CFG_EXIT_OK;
    } else {
        oc = GW_CFG_RUN;
    }
out:
    if (oc != GW_CFG_RUN)
        gw_cfg_free(table, cfg);
    fflush(out);
    fflush(err);
    free(cl.as);
    run_fini(&run);
    return oc;
}
