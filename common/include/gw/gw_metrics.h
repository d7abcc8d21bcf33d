/* gw_metrics: a registry of Prometheus metric families rendered in the text
 * exposition format 0.0.4 (what /metrics serves).
 *
 * A family (counter, gauge or histogram) has a name, a help string and 0..8
 * fixed label names. Each distinct tuple of label values is a child; the hot
 * path looks a child up once and keeps the handle:
 *
 *     gw_metric_fam *reqs;
 *     static const char *const labels[] = {"model", "strategy", NULL};
 *     rc = gw_metrics_counter(reg, "llmgw_requests_total", "Requests routed", labels, &reqs);
 *     gw_metric *c = gw_metric_child(reqs, "llama3", "random");
 *     gw_counter_add(c, 1);
 *
 * A family without labels has exactly one child, created at registration and
 * returned by gw_metric_child0().
 *
 * Values are doubles (counters too, so a counter can count seconds). Output is
 * in registration order for families and creation order for children, so it is
 * stable for tests; families that have no children are not rendered.
 *
 * Lookup cost: gw_metric_child hashes the label values (FNV-1a) into a
 * per-family table that doubles as it fills, so lookup is O(labels) expected;
 * hot paths should still keep the handle. Removing a child is O(children).
 *
 * Lifetimes: families and children belong to the registry and die with
 * gw_metrics_free. A child handle also dies when it is removed
 * (gw_metric_remove_child, gw_metric_remove_matching): whoever removes
 * children must drop cached handles to them.
 *
 * Errors: registration problems (bad metric or label name, duplicate family,
 * bad buckets) are programming errors and return GW_EINVAL or GW_EEXIST.
 * Hot-path calls never fail: a NULL child is ignored, and misuse (wrong
 * number of label values, a counter going down, an op on the wrong metric
 * type) logs a rate-limited alert and does nothing.
 *
 * Threads: none. A registry and everything in it belong to one loop thread. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

#define GW_METRICS_MAX_LABELS 8
/* Default cap on children per family; label values can come from outside
 * (model names, endpoints), so memory stays bounded. */
#define GW_METRICS_MAX_CHILDREN 10000
#define GW_METRICS_MAX_BUCKETS  64

typedef struct gw_metrics gw_metrics;       /* the registry */
typedef struct gw_metric_fam gw_metric_fam; /* one family: name, help, labels */
typedef struct gw_metric gw_metric;         /* one child: a tuple of label values */

typedef enum gw_metric_type {
    GW_METRIC_COUNTER = 1,
    GW_METRIC_GAUGE,
    GW_METRIC_HISTOGRAM,
} gw_metric_type;

/* Computes a gauge's value at render time. */
typedef double (*gw_metric_gauge_fn)(void *arg);
/* Runs at the start of every render, to refresh gauges from live state. */
typedef void (*gw_metrics_collect_fn)(gw_metrics *reg, void *arg);

gw_metrics *gw_metrics_new(void);
/* Frees the registry, its families and children. NULL is a no-op. */
void gw_metrics_free(gw_metrics *reg);

/* Registers a family. <name> must match [a-zA-Z_:][a-zA-Z0-9_:]*; <help> is
 * copied; <labels> is a NULL-terminated array of at most 8 distinct label
 * names matching [a-zA-Z_][a-zA-Z0-9_]* and not starting with "__" (NULL
 * means no labels); names are copied. On GW_OK *out is the family (owned by
 * <reg>). GW_EINVAL: bad name, label or help; GW_EEXIST: <name> is taken.
 * *out is untouched on error. */
GW_MUST_CHECK gw_err gw_metrics_counter(gw_metrics *reg, const char *name, const char *help,
                                        const char *const *labels, gw_metric_fam **out);
GW_MUST_CHECK gw_err gw_metrics_gauge(gw_metrics *reg, const char *name, const char *help,
                                      const char *const *labels, gw_metric_fam **out);
/* As above; <bounds> are the <nbounds> (0..64) bucket upper bounds, finite and
 * strictly increasing; the +Inf bucket is implicit. The label "le" is
 * reserved. Observations are counted in the first bucket whose bound is >= the
 * value (Prometheus `le`); NaN observations are ignored. */
GW_MUST_CHECK gw_err gw_metrics_histogram(gw_metrics *reg, const char *name, const char *help,
                                          const char *const *labels, const double *bounds,
                                          size_t nbounds, gw_metric_fam **out);
/* A label-less gauge whose value is <fn>(<arg>) at render time (<arg> is
 * borrowed and must outlive the registry or the render calls). */
GW_MUST_CHECK gw_err gw_metrics_gauge_fn(gw_metrics *reg, const char *name, const char *help,
                                         gw_metric_gauge_fn fn, void *arg, gw_metric_fam **out);
/* Adds a hook run at the start of every gw_metrics_render (in order added). */
void gw_metrics_add_collector(gw_metrics *reg, gw_metrics_collect_fn fn, void *arg);

/* Sets the cap on children of <fam> (default GW_METRICS_MAX_CHILDREN). */
void gw_metric_fam_set_max_children(gw_metric_fam *fam, size_t max);
size_t gw_metric_fam_nchildren(const gw_metric_fam *fam);
gw_metric_type gw_metric_fam_type(const gw_metric_fam *fam);

/* Returns the child for the <n> label <values> (copied on creation), creating
 * it at zero if needed. NULL (with a rate-limited log line) when <n> differs
 * from the family's label count, a value is NULL, or the family already has
 * its maximum number of children. The handle stays valid until the child is
 * removed or the registry freed. */
gw_metric *gw_metric_childv(gw_metric_fam *fam, const char *const *values, size_t n);
/* gw_metric_child(fam, "v1", "v2", ...): at least one value. */
#define gw_metric_child(fam, ...)                                                                  \
    gw_metric_childv((fam), (const char *const[]){__VA_ARGS__},                                    \
                     sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
/* The only child of a label-less family. */
#define gw_metric_child0(fam) gw_metric_childv((fam), NULL, 0)

/* Looks a child up without creating it; NULL if absent. */
gw_metric *gw_metric_findv(gw_metric_fam *fam, const char *const *values, size_t n);

/* Removes (and frees) the child with these label values; false if there was
 * none. A label-less family's single child cannot be removed. */
bool gw_metric_remove_childv(gw_metric_fam *fam, const char *const *values, size_t n);
#define gw_metric_remove_child(fam, ...)                                                           \
    gw_metric_remove_childv((fam), (const char *const[]){__VA_ARGS__},                             \
                            sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
/* Removes every child whose label <label> equals <value> (e.g. all series of
 * an endpoint that left); returns how many were removed. */
size_t gw_metric_remove_matching(gw_metric_fam *fam, const char *label, const char *value);

/* Counter: adds <v> >= 0 (a negative or NaN <v> is misuse and ignored). */
void gw_counter_add(gw_metric *m, double v);
void gw_counter_inc(gw_metric *m);
/* Gauge: sets or adds (a negative <v> lowers it). */
void gw_gauge_set(gw_metric *m, double v);
void gw_gauge_add(gw_metric *m, double v);
/* Histogram: records one observation. */
void gw_histogram_observe(gw_metric *m, double v);

/* Current value of a counter or gauge child (NaN for NULL or a histogram). */
double gw_metric_value(const gw_metric *m);
/* Histogram totals (0 for NULL or another type). */
uint64_t gw_histogram_count(const gw_metric *m);
double gw_histogram_sum(const gw_metric *m);

/* Runs the collectors, then appends the whole registry to <out> in text
 * format 0.0.4 (Content-Type: text/plain; version=0.0.4): per family
 * "# HELP", "# TYPE" and one line per sample; histograms as cumulative
 * name_bucket{...,le="..."} lines ending with le="+Inf", then name_sum and
 * name_count. Label values escape \ " and newline; HELP escapes \ and
 * newline. Numbers are integers when integral, else the shortest %.17g form
 * that reads back exactly; +Inf, -Inf and NaN as Prometheus spells them.
 * GW_EFULL: <out> hit its cap; it then holds a truncated prefix and the
 * caller should reset it and fail the scrape. */
GW_MUST_CHECK gw_err gw_metrics_render(gw_metrics *reg, gw_buf *out);

/* The Content-Type header value for gw_metrics_render output. */
#define GW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
