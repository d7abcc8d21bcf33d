/* gw_metrics: Prometheus text exposition (see gw_metrics.h).
 *
 * Each family keeps its children twice: in an array in creation order (what
 * render walks, so output is stable) and in a chained hash table keyed by the
 * label values (what gw_metric_child looks up). Histogram children store
 * per-bucket counts, not cumulative ones, so an observation touches one
 * counter; render accumulates them, which is what `le` means
 * (https://prometheus.io/docs/instrumenting/exposition_formats/).
 * Loop thread only: nothing here is atomic. */
#include "gw/gw_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct gw_metric {
    gw_metric_fam *fam;
    char **values; /* fam->nlabels owned copies */
    uint64_t hash;
    gw_metric *hnext;   /* hash chain */
    double value;       /* counter, gauge */
    double sum;         /* histogram */
    uint64_t count;     /* histogram */
    uint64_t buckets[]; /* histogram: nbounds + 1 (the last is +Inf), not cumulative */
};

struct gw_metric_fam {
    gw_metric_fam *next; /* registration order */
    gw_metric_type type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[GW_METRICS_MAX_LABELS];
    double *bounds; /* histogram */
    size_t nbounds;
    gw_metric_gauge_fn fn; /* gauge computed at render, or NULL */
    void *fn_arg;
    gw_metric **children; /* creation order */
    size_t nchildren;
    size_t cap;
    gw_metric **tab; /* hash buckets, tabsize is a power of two */
    size_t tabsize;
    size_t max_children;
};

typedef struct collector {
    gw_metrics_collect_fn fn;
    void *arg;
} collector;

struct gw_metrics {
    gw_metric_fam *head;
    gw_metric_fam *tail;
    collector *collectors;
    size_t ncollectors;
};

/* ---- registration --------------------------------------------------------- */

gw_metrics *
gw_metrics_new(void)
{
    return gw_xcalloc(1, sizeof(gw_metrics));
}

static void
child_free(gw_metric *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->fam->nlabels; i++)
        free(m->values[i]);
    free(m->values);
    free(m);
}

static void
fam_free(gw_metric_fam *fam)
{
    for (size_t i = 0; i < fam->nchildren; i++)
        child_free(fam->children[i]);
    free(fam->children);
    free(fam->tab);
    for (size_t i = 0; i < fam->nlabels; i++)
        free(fam->labels[i]);
    free(fam->bounds);
    free(fam->name);
    free(fam->help);
    free(fam);
}

void
gw_metrics_free(gw_metrics *reg)
{
    gw_metric_fam *fam, *next;

    if (reg == NULL)
        return;
    for (fam = reg->head; fam != NULL; fam = next) {
        next = fam->next;
        fam_free(fam);
    }
    free(reg->collectors);
    free(reg);
}

/* Metric names allow ':' (reserved for recording rules, but legal);
 * label names do not. Digits may not lead either. */
static bool
name_ok(const char *s, bool colon)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
        if (!alpha && !(p != s && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

static bool
labels_ok(const char *const *labels, gw_metric_type type, size_t *n)
{
    size_t k = 0;

    for (; labels != NULL && labels[k] != NULL; k++) {
        if (k == GW_METRICS_MAX_LABELS || !name_ok(labels[k], false) ||
            strncmp(labels[k], "__", 2) == 0) /* reserved for Prometheus itself */
            return false;
        if (type == GW_METRIC_HISTOGRAM && strcmp(labels[k], "le") == 0)
            return false;
        for (size_t j = 0; j < k; j++) {
            if (strcmp(labels[j], labels[k]) == 0)
                return false;
        }
    }
    *n = k;
    return true;
}

static uint64_t
hash_values(const char *const *values, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */

    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p != '\0'; p++) {
            h ^= *p;
            h *= 0x100000001b3ULL;
        }
        h ^= 0xff; /* separator: ("ab","c") and ("a","bc") differ */
        h *= 0x100000001b3ULL;
    }
    return h;
}

static gw_metric *child_new(gw_metric_fam *fam, const char *const *values, uint64_t h);

/* Validates everything before allocating, so a rejected registration leaves
 * the registry untouched and *out unwritten. */
static gw_err
fam_add(gw_metrics *reg, gw_metric_type type, const char *name, const char *help,
        const char *const *labels, const double *bounds, size_t nbounds, gw_metric_fam **out)
{
    gw_metric_fam *fam;
    size_t nl = 0;

    if (!name_ok(name, true) || help == NULL || !labels_ok(labels, type, &nl))
        return GW_EINVAL;
    if (type == GW_METRIC_HISTOGRAM) {
        if (nbounds > GW_METRICS_MAX_BUCKETS || (nbounds > 0 && bounds == NULL))
            return GW_EINVAL;
        for (size_t i = 0; i < nbounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                return GW_EINVAL;
        }
    }
    for (fam = reg->head; fam != NULL; fam = fam->next) {
        if (strcmp(fam->name, name) == 0)
            return GW_EEXIST;
    }
    fam = gw_xcalloc(1, sizeof(*fam));
    fam->type = type;
    fam->name = gw_xstrdup(name);
    fam->help = gw_xstrdup(help);
    fam->nlabels = nl;
    for (size_t i = 0; i < nl; i++)
        fam->labels[i] = gw_xstrdup(labels[i]);
    if (type == GW_METRIC_HISTOGRAM && nbounds > 0) {
        fam->bounds = gw_xmalloc(nbounds * sizeof(double));
        memcpy(fam->bounds, bounds, nbounds * sizeof(double));
    }
    fam->nbounds = type == GW_METRIC_HISTOGRAM ? nbounds : 0;
    fam->max_children = GW_METRICS_MAX_CHILDREN;
    if (reg->tail != NULL)
        reg->tail->next = fam;
    else
        reg->head = fam;
    reg->tail = fam;
    /* A label-less family always has its one series, so it renders 0 before
     * the first increment (scrapers see the series exist from the start). */
    if (nl == 0)
        (void)child_new(fam, NULL, hash_values(NULL, 0)); /* the only child */
    *out = fam;
    return GW_OK;
}

gw_err
gw_metrics_counter(gw_metrics *reg, const char *name, const char *help, const char *const *labels,
                   gw_metric_fam **out)
{
    return fam_add(reg, GW_METRIC_COUNTER, name, help, labels, NULL, 0, out);
}

gw_err
gw_metrics_gauge(gw_metrics *reg, const char *name, const char *help, const char *const *labels,
                 gw_metric_fam **out)
{
    return fam_add(reg, GW_METRIC_GAUGE, name, help, labels, NULL, 0, out);
}

gw_err
gw_metrics_histogram(gw_metrics *reg, const char *name, const char *help, const char *const *labels,
                     const double *bounds, size_t nbounds, gw_metric_fam **out)
{
    return fam_add(reg, GW_METRIC_HISTOGRAM, name, help, labels, bounds, nbounds, out);
}

gw_err
gw_metrics_gauge_fn(gw_metrics *reg, const char *name, const char *help, gw_metric_gauge_fn fn,
                    void *arg, gw_metric_fam **out)
{
    gw_metric_fam *fam;
    gw_err rc;

    if (fn == NULL)
        return GW_EINVAL;
    rc = fam_add(reg, GW_METRIC_GAUGE, name, help, NULL, NULL, 0, &fam);
    if (rc != GW_OK)
        return rc;
    fam->fn = fn;
    fam->fn_arg = arg;
    *out = fam;
    return GW_OK;
}

void
gw_metrics_add_collector(gw_metrics *reg, gw_metrics_collect_fn fn, void *arg)
{
    reg->collectors =
        gw_xrealloc(reg->collectors, (reg->ncollectors + 1) * sizeof(*reg->collectors));
    reg->collectors[reg->ncollectors++] = (collector){.fn = fn, .arg = arg};
}

void
gw_metric_fam_set_max_children(gw_metric_fam *fam, size_t max)
{
    fam->max_children = max;
}

size_t
gw_metric_fam_nchildren(const gw_metric_fam *fam)
{
    return fam->nchildren;
}

gw_metric_type
gw_metric_fam_type(const gw_metric_fam *fam)
{
    return fam->type;
}

/* ---- children --------------------------------------------------------------- */

static void
tab_insert(gw_metric **tab, size_t tabsize, gw_metric *m)
{
    size_t b = (size_t)(m->hash & (tabsize - 1));

    m->hnext = tab[b];
    tab[b] = m;
}

/* Keeps the load factor <= 1 so chains stay short. */
static void
tab_grow(gw_metric_fam *fam)
{
    size_t nsize = fam->tabsize == 0 ? 16 : fam->tabsize * 2;
    gw_metric **ntab = gw_xcalloc(nsize, sizeof(*ntab));

    for (size_t i = 0; i < fam->nchildren; i++)
        tab_insert(ntab, nsize, fam->children[i]);
    free(fam->tab);
    fam->tab = ntab;
    fam->tabsize = nsize;
}

static bool
values_eq(const gw_metric *m, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m->values[i], values[i]) != 0)
            return false;
    }
    return true;
}

static gw_metric *
lookup(const gw_metric_fam *fam, const char *const *values, uint64_t h)
{
    if (fam->tabsize == 0)
        return NULL;
    for (gw_metric *m = fam->tab[h & (fam->tabsize - 1)]; m != NULL; m = m->hnext) {
        if (m->hash == h && values_eq(m, values, fam->nlabels))
            return m;
    }
    return NULL;
}

/* Appends a zeroed child. The caller has checked the cap and that no child
 * with these values exists. */
static gw_metric *
child_new(gw_metric_fam *fam, const char *const *values, uint64_t h)
{
    size_t nb = fam->type == GW_METRIC_HISTOGRAM ? fam->nbounds + 1 : 0;
    gw_metric *m = gw_xcalloc(1, sizeof(*m) + nb * sizeof(uint64_t));

    m->fam = fam;
    m->hash = h;
    m->values = gw_xcalloc(fam->nlabels, sizeof(char *));
    for (size_t i = 0; i < fam->nlabels; i++)
        m->values[i] = gw_xstrdup(values[i]);
    if (fam->nchildren == fam->cap) {
        fam->cap = fam->cap == 0 ? 8 : fam->cap * 2;
        fam->children = gw_xrealloc(fam->children, fam->cap * sizeof(*fam->children));
    }
    fam->children[fam->nchildren++] = m;
    if (fam->nchildren > fam->tabsize)
        tab_grow(fam); /* rehashes every child, including m */
    else
        tab_insert(fam->tab, fam->tabsize, m);
    return m;
}

/* Label-value arity and NULLs are programming errors: alert, don't crash. */
static bool
args_ok(const gw_metric_fam *fam, const char *const *values, size_t n)
{
    if (n != fam->nlabels) {
        gw_log_ratelimited(GW_LOG_ALERT, 1, "GW-METRICS-MISUSE",
                           "family=%s msg=\"wrong number of label values\" want=%zu got=%zu",
                           fam->name, fam->nlabels, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            gw_log_ratelimited(GW_LOG_ALERT, 1, "GW-METRICS-MISUSE",
                               "family=%s msg=\"NULL label value\" label=%s", fam->name,
                               fam->labels[i]);
            return false;
        }
    }
    return true;
}

gw_metric *
gw_metric_findv(gw_metric_fam *fam, const char *const *values, size_t n)
{
    if (fam == NULL || !args_ok(fam, values, n))
        return NULL;
    return lookup(fam, values, hash_values(values, n));
}

gw_metric *
gw_metric_childv(gw_metric_fam *fam, const char *const *values, size_t n)
{
    gw_metric *m;
    uint64_t h;

    if (fam == NULL || !args_ok(fam, values, n))
        return NULL;
    h = hash_values(values, n);
    m = lookup(fam, values, h);
    if (m != NULL)
        return m;
    /* Label values can come from outside (model names in requests), so the
     * number of series is capped; dropping a series beats unbounded memory. */
    if (fam->nchildren >= fam->max_children) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "GW-METRICS-CHILD-CAP",
                           "family=%s max=%zu msg=\"too many label combinations; series dropped\"",
                           fam->name, fam->max_children);
        return NULL;
    }
    return child_new(fam, values, h);
}

/* Unlinks <m> from the hash chain and the array (at index <at>) and frees it. */
static void
child_remove(gw_metric_fam *fam, gw_metric *m, size_t at)
{
    gw_metric **pp = &fam->tab[m->hash & (fam->tabsize - 1)];

    while (*pp != m)
        pp = &(*pp)->hnext;
    *pp = m->hnext;
    memmove(&fam->children[at], &fam->children[at + 1],
            (fam->nchildren - at - 1) * sizeof(*fam->children));
    fam->nchildren--;
    child_free(m);
}

bool
gw_metric_remove_childv(gw_metric_fam *fam, const char *const *values, size_t n)
{
    gw_metric *m;

    if (fam == NULL || fam->nlabels == 0 || !args_ok(fam, values, n))
        return false;
    m = lookup(fam, values, hash_values(values, n));
    if (m == NULL)
        return false;
    for (size_t i = 0; i < fam->nchildren; i++) {
        if (fam->children[i] == m) {
            child_remove(fam, m, i);
            return true;
        }
    }
    return false; /* unreachable: every hashed child is in the array */
}

size_t
gw_metric_remove_matching(gw_metric_fam *fam, const char *label, const char *value)
{
    size_t li, removed = 0;

    if (fam == NULL || label == NULL || value == NULL)
        return 0;
    for (li = 0; li < fam->nlabels; li++) {
        if (strcmp(fam->labels[li], label) == 0)
            break;
    }
    if (li == fam->nlabels)
        return 0;
    /* Backwards, so removal does not shift the entries still to visit. */
    for (size_t i = fam->nchildren; i-- > 0;) {
        gw_metric *m = fam->children[i];
        if (strcmp(m->values[li], value) == 0) {
            child_remove(fam, m, i);
            removed++;
        }
    }
    return removed;
}

/* ---- hot path ------------------------------------------------------------- */

/* Every hot-path op checks the family type: one compare, and it turns a
 * copy-paste bug into an alert instead of a corrupted histogram. */
static bool
type_ok(const gw_metric *m, gw_metric_type want, const char *op)
{
    if (m == NULL)
        return false;
    if (m->fam->type != want) {
        gw_log_ratelimited(GW_LOG_ALERT, 1, "GW-METRICS-MISUSE",
                           "family=%s op=%s msg=\"wrong metric type\"", m->fam->name, op);
        return false;
    }
    return true;
}

void
gw_counter_add(gw_metric *m, double v)
{
    if (!type_ok(m, GW_METRIC_COUNTER, "counter_add"))
        return;
    if (!(v >= 0)) { /* also catches NaN */
        gw_log_ratelimited(GW_LOG_ALERT, 1, "GW-METRICS-MISUSE",
                           "family=%s msg=\"counter decrement ignored\"", m->fam->name);
        return;
    }
    m->value += v;
}

void
gw_counter_inc(gw_metric *m)
{
    gw_counter_add(m, 1);
}

void
gw_gauge_set(gw_metric *m, double v)
{
    if (type_ok(m, GW_METRIC_GAUGE, "gauge_set"))
        m->value = v;
}

void
gw_gauge_add(gw_metric *m, double v)
{
    if (type_ok(m, GW_METRIC_GAUGE, "gauge_add"))
        m->value += v;
}

void
gw_histogram_observe(gw_metric *m, double v)
{
    const gw_metric_fam *fam;
    size_t lo = 0, hi;

    if (!type_ok(m, GW_METRIC_HISTOGRAM, "histogram_observe") || isnan(v))
        return;
    fam = m->fam;
    /* First bound >= v (binary search); nbounds means the +Inf bucket. */
    hi = fam->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (fam->bounds[mid] >= v)
            hi = mid;
        else
            lo = mid + 1;
    }
    m->buckets[lo]++;
    m->count++;
    m->sum += v;
}

double
gw_metric_value(const gw_metric *m)
{
    if (m == NULL || m->fam->type == GW_METRIC_HISTOGRAM)
        return NAN;
    return m->value;
}

uint64_t
gw_histogram_count(const gw_metric *m)
{
    return m != NULL && m->fam->type == GW_METRIC_HISTOGRAM ? m->count : 0;
}

double
gw_histogram_sum(const gw_metric *m)
{
    return m != NULL && m->fam->type == GW_METRIC_HISTOGRAM ? m->sum : 0;
}

/* ---- rendering -------------------------------------------------------------- */

/* Appends to a buffer with a sticky error, so render checks once at the end. */
typedef struct rend {
    gw_buf *b;
    gw_err rc;
} rend;

static void
put(rend *r, const char *s, size_t n)
{
    if (r->rc == GW_OK)
        r->rc = gw_buf_append(r->b, s, n);
}

static void
puts_(rend *r, const char *s)
{
    put(r, s, strlen(s));
}

/* Copies <s> escaping backslash and newline, plus '"' when <quote>. */
static void
put_escaped(rend *r, const char *s, bool quote)
{
    const char *run = s;

    for (; *s != '\0'; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (esc != NULL) {
            put(r, run, (size_t)(s - run));
            puts_(r, esc);
            run = s + 1;
        }
    }
    put(r, run, (size_t)(s - run));
}

/* Prometheus float syntax; integral values without exponent or fraction. */
static void
fmt_num(char *dst, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(dst, n, "NaN");
    } else if (isinf(v)) {
        snprintf(dst, n, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(dst, n, "0"); /* also -0 */
    } else if (v == trunc(v) && fabs(v) < 1e15) {
        snprintf(dst, n, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(dst, n, "%.*g", prec, v);
            if (strtod(dst, NULL) == v)
                break;
        }
    }
}

static void
put_num(rend *r, double v)
{
    char num[40];

    fmt_num(num, sizeof(num), v);
    puts_(r, num);
}

/* Bucket and sample counts are exact integers, never floats. */
static void
put_u64(rend *r, uint64_t v)
{
    char num[24];

    snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    puts_(r, num);
}

/* `name<suffix>{labels[,le="x"]} ` (braces only when there is a label). */
static void
put_series(rend *r, const gw_metric *m, const char *suffix, const char *le)
{
    const gw_metric_fam *fam = m->fam;

    puts_(r, fam->name);
    puts_(r, suffix);
    if (fam->nlabels > 0 || le != NULL) {
        puts_(r, "{");
        for (size_t i = 0; i < fam->nlabels; i++) {
            if (i > 0)
                puts_(r, ",");
            puts_(r, fam->labels[i]);
            puts_(r, "=\"");
            put_escaped(r, m->values[i], true);
            puts_(r, "\"");
        }
        if (le != NULL) {
            puts_(r, fam->nlabels > 0 ? ",le=\"" : "le=\"");
            puts_(r, le);
            puts_(r, "\"");
        }
        puts_(r, "}");
    }
    puts_(r, " ");
}

static void
render_fam(rend *r, const gw_metric_fam *fam)
{
    static const char *const type_names[] = {
        [GW_METRIC_COUNTER] = "counter",
        [GW_METRIC_GAUGE] = "gauge",
        [GW_METRIC_HISTOGRAM] = "histogram",
    };

    if (fam->nchildren == 0)
        return;
    puts_(r, "# HELP ");
    puts_(r, fam->name);
    puts_(r, " ");
    put_escaped(r, fam->help, false);
    puts_(r, "\n# TYPE ");
    puts_(r, fam->name);
    puts_(r, " ");
    puts_(r, type_names[fam->type]);
    puts_(r, "\n");
    for (size_t c = 0; c < fam->nchildren; c++) {
        const gw_metric *m = fam->children[c];

        if (fam->type != GW_METRIC_HISTOGRAM) {
            put_series(r, m, "", NULL);
            put_num(r, m->value);
            puts_(r, "\n");
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= fam->nbounds; b++) {
            char le[40];
            if (b < fam->nbounds)
                fmt_num(le, sizeof(le), fam->bounds[b]);
            else
                snprintf(le, sizeof(le), "+Inf");
            cum += m->buckets[b];
            put_series(r, m, "_bucket", le);
            put_u64(r, cum);
            puts_(r, "\n");
        }
        put_series(r, m, "_sum", NULL);
        put_num(r, m->sum);
        puts_(r, "\n");
        put_series(r, m, "_count", NULL);
        put_u64(r, m->count);
        puts_(r, "\n");
    }
}

/* Collectors run first so gauges they set are rendered in this same scrape.
 * gauge_fn values are computed family by family, in output order. */
gw_err
gw_metrics_render(gw_metrics *reg, gw_buf *out)
{
    rend r = {.b = out, .rc = GW_OK};

    for (size_t i = 0; i < reg->ncollectors; i++)
        reg->collectors[i].fn(reg, reg->collectors[i].arg);
    for (gw_metric_fam *fam = reg->head; fam != NULL && r.rc == GW_OK; fam = fam->next) {
        if (fam->fn != NULL && fam->nchildren == 1)
            fam->children[0]->value = fam->fn(fam->fn_arg);
        render_fam(&r, fam);
    }
    return r.rc;
}
