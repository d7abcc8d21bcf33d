/* fuzz_gw_prom: the Prometheus text parser (gw_prom_parse) on arbitrary
 * bytes. Besides "no crash, no leak, no sanitizer report", every sample it
 * hands out must be well formed (valid metric and label names, no duplicate
 * label, at most GW_PROM_MAX_LABELS labels), the counts must add up, and a
 * sample written back in canonical form must parse to the same sample.
 * abort() on any broken promise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_buf.h"
#include "gw/gw_prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
valid_name(const char *s, bool colon)
{
    if (*s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return false;
    }
    return true;
}

/* Writes <s> in canonical text form (escaping label values). */
static void
render(const gw_prom_sample *s, gw_buf *b)
{
    gw_buf_reset(b);
    if (gw_buf_append_str(b, s->name) != GW_OK || gw_buf_append_str(b, "{") != GW_OK)
        abort();
    for (size_t i = 0; i < s->n_labels; i++) {
        if (gw_buf_printf(b, "%s=\"", s->labels[i].name) != GW_OK)
            abort();
        for (const char *p = s->labels[i].value; *p != '\0'; p++) {
            const char *rep = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
            gw_err rc = rep != NULL ? gw_buf_append_str(b, rep) : gw_buf_append(b, p, 1);
            if (rc != GW_OK)
                abort();
        }
        if (gw_buf_append_str(b, "\",") != GW_OK)
            abort();
    }
    if (isnan(s->value)) {
        if (gw_buf_append_str(b, "} NaN") != GW_OK)
            abort();
    } else if (isinf(s->value)) {
        if (gw_buf_append_str(b, s->value > 0 ? "} +Inf" : "} -Inf") != GW_OK)
            abort();
    } else if (gw_buf_printf(b, "} %.17g", s->value) != GW_OK) {
        abort();
    }
    if (s->has_ts && gw_buf_printf(b, " %lld", (long long)s->ts_ms) != GW_OK)
        abort();
}

typedef struct again {
    const gw_prom_sample *orig;
    int n;
} again;

static bool
compare(const gw_prom_sample *s, void *arg)
{
    again *a = arg;
    const gw_prom_sample *o = a->orig;

    a->n++;
    if (strcmp(s->name, o->name) != 0 || s->n_labels != o->n_labels || s->has_ts != o->has_ts ||
        (s->has_ts && s->ts_ms != o->ts_ms))
        abort();
    if (isnan(o->value) ? !isnan(s->value) : s->value != o->value)
        abort();
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i].name, o->labels[i].name) != 0 ||
            strcmp(s->labels[i].value, o->labels[i].value) != 0)
            abort();
    }
    return true;
}

static bool
check(const gw_prom_sample *s, void *arg)
{
    size_t *count = ((void **)arg)[0];
    gw_buf *b = ((void **)arg)[1];
    gw_prom_stats st;
    again a = {s, 0};

    (*count)++;
    if (!valid_name(s->name, true) || s->n_labels > GW_PROM_MAX_LABELS)
        abort();
    for (size_t i = 0; i < s->n_labels; i++) {
        if (!valid_name(s->labels[i].name, false) || s->labels[i].value == NULL)
            abort();
        if (gw_prom_label_value(s, s->labels[i].name) != s->labels[i].value)
            abort(); /* names are unique, so lookup finds this very label */
    }
    render(s, b);
    if (gw_prom_parse(b->data, b->len, compare, &a, &st) != GW_OK || a.n != 1 || st.malformed != 0)
        abort();
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_prom_stats st;
    size_t count = 0;
    gw_buf b;
    void *args[2] = {&count, &b};

    gw_buf_init(&b, 4u * GW_PROM_MAX_LINE);
    if (gw_prom_parse((const char *)data, size, check, args, &st) != GW_OK)
        abort();
    if (st.samples != count || st.samples + st.malformed > st.lines)
        abort();
    gw_buf_fini(&b);
    return 0;
}
