/* ctl_yaml: a small YAML document tree for the controller's config parsers,
 * built from libyaml's event API so we control its shape and its limits.
 *
 * What it accepts: exactly one document (an empty stream is an empty tree);
 * scalars, sequences and mappings whose keys are scalars. What it refuses,
 * with a message "<line>:<col>: ..." (1-based): YAML syntax errors, aliases
 * (they can form cycles and make "last good config" reasoning murky), more
 * than one document, non-scalar mapping keys, duplicate mapping keys, nesting
 * deeper than CTL_YAML_MAX_DEPTH and more than CTL_YAML_MAX_NODES nodes.
 * Anchors and tags are accepted; a scalar with an explicit tag or any
 * quoting is not "plain" (so it is never resolved to null/bool/number).
 *
 * Ownership: the tree owns every node and string; free it with
 * ctl_yaml_free. Pure: no I/O, no globals; safe from any thread on distinct
 * trees. */
#ifndef CTL_YAML_H
#define CTL_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"

#define CTL_YAML_MAX_DEPTH 64
#define CTL_YAML_MAX_NODES (1u << 21)

typedef enum ctl_ykind {
    CTL_Y_SCALAR = 1,
    CTL_Y_SEQ,
    CTL_Y_MAP,
} ctl_ykind;

typedef struct ctl_ynode ctl_ynode;
struct ctl_ynode {
    ctl_ykind kind;
    unsigned line; /* 1-based position of the node's first character */
    unsigned col;
    /* CTL_Y_SCALAR: the value (NUL-terminated, may contain NULs: use <len>). */
    char *str;
    size_t len;
    bool plain; /* unquoted and untagged: subject to null/bool/int resolution */
    /* CTL_Y_SEQ: n items. CTL_Y_MAP: n pairs stored as items[2i] = key, items[2i+1] = value. */
    size_t n;
    ctl_ynode **items;
};

/* Parses <len> bytes of <text> (need not be NUL-terminated). On GW_OK *out is
 * the document's root node, or NULL for a stream without a document (empty
 * file, only comments). On GW_EINVAL *why gets a heap message the caller
 * frees ("line:col: ..."), and *out is untouched. */
GW_MUST_CHECK gw_err ctl_yaml_parse(const char *text, size_t len, ctl_ynode **out, char **why);

/* Frees a tree returned by ctl_yaml_parse. NULL is a no-op. */
void ctl_yaml_free(ctl_ynode *root);

/* The value of key <key> in mapping <map>, or NULL if <map> is not a mapping
 * or has no such key. */
const ctl_ynode *ctl_yaml_get(const ctl_ynode *map, const char *key);

/* True for a plain scalar spelling YAML null (empty, ~, null, Null, NULL). */
bool ctl_yaml_is_null(const ctl_ynode *n);

/* Reads a plain or quoted scalar as a bool (true/false, yes/no, on/off in any
 * case, as gw_cfg does). False if <n> is not such a scalar. */
bool ctl_yaml_bool(const ctl_ynode *n, bool *out);

/* Reads a scalar as a decimal int64 (optional sign, no spaces). False if <n>
 * is not a scalar holding one, or it overflows. */
bool ctl_yaml_int(const ctl_ynode *n, int64_t *out);

/* Short human name of the node's kind for messages: "a string", "a list",
 * "a mapping", "null". */
const char *ctl_yaml_kind_name(const ctl_ynode *n);

#endif
