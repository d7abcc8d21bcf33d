/* dp_selector: Kubernetes label selectors for the `external-filter` request
 * header, which narrows a request's candidate endpoints by their pod labels
 * (pm_endpoint.labels, "key=value").
 *
 * Grammar (the equality- and set-based requirements of
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/):
 *   selector    = requirement *( "," requirement )     (all must hold: AND)
 *   requirement = key                        the label exists
 *               | "!" key                    the label does not exist
 *               | key ( "=" | "==" ) value   exists and equals
 *               | key "!=" value             does not exist, or differs
 *               | key "in" "(" values ")"    exists and is one of
 *               | key "notin" "(" values ")" does not exist, or is none of
 *   values      = value *( "," value )       (at least one, none empty)
 *   key         = [ prefix "/" ] name; name: 1-63 of [A-Za-z0-9._-], starting
 *                 and ending alphanumeric; prefix: 1-253 of [a-z0-9.-]
 *   value       = 0-63 of [A-Za-z0-9._-], starting and ending alphanumeric
 * Blanks (space, tab) may surround every token. A selector of only blanks
 * is empty and matches everything. Limits: DP_SEL_MAX_LEN bytes,
 * DP_SEL_MAX_REQS requirements, DP_SEL_MAX_VALUES values per set; beyond
 * them the selector is malformed.
 *
 * Parses outside bytes (a request header): never reads past <len>, never
 * allocates; a parsed selector points into the text it was parsed from,
 * which must outlive it. Pure; fuzzed by tests/fuzz/fuzz_dp_selector.c. */
#ifndef DP_SELECTOR_H
#define DP_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_SEL_MAX_LEN    1024u
#define DP_SEL_MAX_REQS   16u
#define DP_SEL_MAX_VALUES 16u

typedef enum dp_sel_op {
    DP_SEL_EXISTS,
    DP_SEL_NOT_EXISTS,
    DP_SEL_EQ,
    DP_SEL_NE,
    DP_SEL_IN,
    DP_SEL_NOTIN,
} dp_sel_op;

typedef struct dp_sel_span {
    uint16_t off, len; /* into dp_selector.src */
} dp_sel_span;

typedef struct dp_sel_req {
    dp_sel_op op;
    dp_sel_span key;
    uint32_t n_values; /* 1 for EQ/NE, 1..DP_SEL_MAX_VALUES for IN/NOTIN */
    dp_sel_span values[DP_SEL_MAX_VALUES];
} dp_sel_req;

typedef struct dp_selector {
    const char *src; /* borrowed: the text parsed */
    uint32_t n;      /* requirements; 0 = matches everything */
    dp_sel_req reqs[DP_SEL_MAX_REQS];
} dp_selector;

/* Parses <s>/<len>. On false <why> (size <why_n>) explains, for the client,
 * and <out> is undefined. */
bool dp_selector_parse(const char *s, size_t len, dp_selector *out, char *why, size_t why_n);

/* True if the labels (<n> "key=value" strings; a string without '=' is a key
 * with an empty value) satisfy every requirement of <sel>. */
bool dp_selector_matches(const dp_selector *sel, char *const *labels, uint32_t n);

#endif
