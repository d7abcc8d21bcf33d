/* gw_prom: a parser of the Prometheus text exposition format 0.0.4, for
 * /metrics pages fetched from inference engines (outside bytes: the
 * controller scrapes them, DESIGN §3).
 *
 * gw_prom_parse walks a buffer line by line and calls back once per sample
 * line with its metric name, its labels (escapes undone) and its value:
 *
 *     metric_name [ "{" label "=" "\"" value "\"" { "," ... } [ "," ] "}" ] value [ timestamp ]
 *
 * Comments, `# HELP`, `# TYPE` and `# EOF` lines and empty lines are skipped.
 * Lines may end in "\n" or "\r\n"; blanks (space, tab) may surround tokens.
 * Values are floats as Prometheus writes them, including `NaN`, `+Inf`,
 * `-Inf` (any case) and exponents; a timestamp (integer milliseconds) may
 * follow. Label values undo the three escapes of the format (\\ \" \n);
 * any other backslash pair is kept as written, as Prometheus does.
 *
 * Robustness (the input is untrusted): the parser never reads past
 * <text> + <len> and needs no NUL terminator; a line longer than
 * GW_PROM_MAX_LINE bytes, with more than GW_PROM_MAX_LABELS labels, with a
 * duplicate label name, a NUL byte, a bad name, an unterminated value or a
 * bad number is skipped and counted in gw_prom_stats.malformed; parsing goes
 * on with the next line. Memory: one scratch allocation per call, bounded by
 * the line cap.
 *
 * Pure and reentrant: no globals; safe from any thread on distinct buffers. */
#ifndef GW_PROM_H
#define GW_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"

#define GW_PROM_MAX_LINE   65536u /* bytes per line, terminator excluded */
#define GW_PROM_MAX_LABELS 32u    /* labels per sample */

/* One label of a sample. Both strings are NUL-terminated and valid only
 * during the callback that received them. */
typedef struct gw_prom_label {
    const char *name;
    const char *value; /* unescaped; may be empty */
} gw_prom_label;

/* One sample line, valid only during the callback. */
typedef struct gw_prom_sample {
    const char *name; /* metric name incl. any suffix (_total, _bucket, _sum, _count) */
    const gw_prom_label *labels;
    size_t n_labels; /* 0..GW_PROM_MAX_LABELS, in the order written */
    double value;    /* may be NaN or +-Inf */
    bool has_ts;
    int64_t ts_ms; /* the optional timestamp, when has_ts */
} gw_prom_sample;

/* Called once per well-formed sample line, in input order. Return false to
 * stop parsing (gw_prom_parse then returns GW_OK with the counts so far). */
typedef bool (*gw_prom_sample_fn)(const gw_prom_sample *s, void *arg);

/* What one gw_prom_parse call saw. */
typedef struct gw_prom_stats {
    size_t lines;     /* lines looked at (incl. comments and blank lines) */
    size_t samples;   /* sample lines handed to the callback */
    size_t malformed; /* lines skipped as malformed, too long or over the label cap */
} gw_prom_stats;

/* Parses <len> bytes at <text> (no NUL needed; a final line without "\n"
 * counts) and calls <fn>(sample, <arg>) per sample. <stats> (optional) is
 * filled in. Returns GW_OK whatever the content; GW_EINVAL only when <fn> is
 * NULL or <text> is NULL with <len> > 0 (then nothing is called). */
GW_MUST_CHECK gw_err gw_prom_parse(const char *text, size_t len, gw_prom_sample_fn fn, void *arg,
                                   gw_prom_stats *stats);

/* The value of label <name> in <s>, or NULL when the sample has no such
 * label. Borrowed from <s> (valid during the callback only). */
const char *gw_prom_label_value(const gw_prom_sample *s, const char *name);

#endif
