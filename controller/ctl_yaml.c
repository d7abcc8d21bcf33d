/* ctl_yaml: builds a small node tree from libyaml's event stream (see
 * ctl_yaml.h). We use events rather than yaml_parser_load because the
 * document loader resolves aliases into shared nodes (an alias to an
 * ancestor makes a cycle that a naive walker follows forever) and has no
 * depth or size limit; here both are checked as events arrive, and the
 * builder keeps its own explicit stack so hostile nesting cannot exhaust the
 * C stack. Pure and allocation-bounded by CTL_YAML_MAX_NODES. */
#include "ctl_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "ctl_util.h"
#include "gw/gw_mem.h"

/* Keys per mapping: duplicate detection is a linear scan, so bound it. */
#define MAX_MAP_KEYS 4096u

typedef struct builder {
    ctl_ynode *root;
    ctl_ynode *stack[CTL_YAML_MAX_DEPTH];
    unsigned depth;
    size_t nodes;
    unsigned docs;
    char *why; /* first error, owned */
} builder;

static void
node_free(ctl_ynode *n)
{
    if (n == NULL)
        return;
    /* Closed mappings hold 2n items; open ones were normalised by the caller. */
    size_t count = n->kind == CTL_Y_MAP ? 2 * n->n : n->n;
    for (size_t i = 0; i < count; i++)
        node_free(n->items[i]);
    free(n->items);
    free(n->str);
    free(n);
}

void
ctl_yaml_free(ctl_ynode *root)
{
    node_free(root);
}

static void fail(builder *b, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(builder *b, const yaml_mark_t *m, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (b->why != NULL)
        return;
    va_start(ap, fmt);
    msg = ctl_vstrf(fmt, ap);
    va_end(ap);
    b->why = ctl_strf("%zu:%zu: %s", m->line + 1, m->column + 1, msg);
    free(msg);
}

static bool
key_equal(const ctl_ynode *a, const ctl_ynode *b)
{
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

/* Links <n> under the open container on top of the stack (or makes it the
 * root). On failure <n> is freed and the error recorded. */
static bool
attach(builder *b, ctl_ynode *n, const yaml_mark_t *m)
{
    ctl_ynode *parent;

    if (b->depth == 0) {
        b->root = n;
        return true;
    }
    parent = b->stack[b->depth - 1];
    /* During building n counts item pointers for both kinds; a mapping's
     * even slots are keys. */
    if (parent->kind == CTL_Y_MAP && parent->n % 2 == 0) {
        if (n->kind != CTL_Y_SCALAR) {
            fail(b, m, "mapping keys must be plain strings");
            node_free(n);
            return false;
        }
        if (parent->n / 2 >= MAX_MAP_KEYS) {
            fail(b, m, "a mapping has more than 4096 keys");
            node_free(n);
            return false;
        }
        for (size_t i = 0; i < parent->n; i += 2) {
            if (key_equal(parent->items[i], n)) {
                fail(b, m, "duplicate key \"%.64s\"", n->str);
                node_free(n);
                return false;
            }
        }
    }
    /* Grow at powers of two, so no capacity field is needed. */
    if (parent->n == 0 || (parent->n & (parent->n - 1)) == 0) {
        size_t cap = parent->n < 4 ? 4 : parent->n * 2;
        parent->items = gw_xrealloc(parent->items, cap * sizeof(*parent->items));
    }
    parent->items[parent->n++] = n;
    return true;
}

static ctl_ynode *
node_new(builder *b, ctl_ykind kind, const yaml_mark_t *m)
{
    ctl_ynode *n;

    if (++b->nodes > CTL_YAML_MAX_NODES) {
        fail(b, m, "document has too many nodes");
        return NULL;
    }
    n = gw_xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->line = (unsigned)m->line + 1;
    n->col = (unsigned)m->column + 1;
    return n;
}

static bool
on_event(builder *b, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    ctl_ynode *n;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            fail(b, m, "only one YAML document is allowed");
            return false;
        }
        return true;
    case YAML_ALIAS_EVENT:
        fail(b, m, "aliases are not supported (*%.64s)", (const char *)ev->data.alias.anchor);
        return false;
    case YAML_SCALAR_EVENT:
        n = node_new(b, CTL_Y_SCALAR, m);
        if (n == NULL)
            return false;
        n->len = ev->data.scalar.length;
        n->str = gw_xmalloc(n->len + 1);
        memcpy(n->str, ev->data.scalar.value, n->len);
        n->str[n->len] = '\0';
        n->plain = ev->data.scalar.plain_implicit != 0;
        return attach(b, n, m);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (b->depth >= CTL_YAML_MAX_DEPTH) {
            fail(b, m, "nesting is deeper than 64 levels");
            return false;
        }
        n = node_new(b, ev->type == YAML_MAPPING_START_EVENT ? CTL_Y_MAP : CTL_Y_SEQ, m);
        if (n == NULL || !attach(b, n, m))
            return false;
        b->stack[b->depth++] = n;
        return true;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        n = b->stack[--b->depth];
        if (n->kind == CTL_Y_MAP)
            n->n /= 2; /* libyaml guarantees whole pairs at MAPPING_END */
        return true;
    default:
        return true;
    }
}

gw_err
ctl_yaml_parse(const char *text, size_t len, ctl_ynode **out, char **why)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    builder b = {0};
    bool done = false;

    if (!yaml_parser_initialize(&parser)) {
        *why = gw_xstrdup("cannot initialise the YAML parser");
        return GW_EINVAL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            const char *problem = parser.problem != NULL ? parser.problem : "invalid YAML";
            if (parser.context != NULL)
                b.why = ctl_strf("%zu:%zu: %s %s", parser.problem_mark.line + 1,
                                 parser.problem_mark.column + 1, problem, parser.context);
            else
                b.why = ctl_strf("%zu:%zu: %s", parser.problem_mark.line + 1,
                                 parser.problem_mark.column + 1, problem);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        bool ok = on_event(&b, &ev);
        yaml_event_delete(&ev);
        if (!ok)
            break;
    }
    yaml_parser_delete(&parser);
    if (b.why != NULL) {
        /* Open containers still count item pointers: drop a dangling key and
         * turn mapping counts into pair counts so node_free sees whole pairs. */
        for (unsigned i = 0; i < b.depth; i++) {
            ctl_ynode *n = b.stack[i];
            if (n->kind != CTL_Y_MAP)
                continue;
            if (n->n % 2 == 1)
                node_free(n->items[--n->n]);
            n->n /= 2;
        }
        node_free(b.root);
        *why = b.why;
        return GW_EINVAL;
    }
    *out = b.root;
    return GW_OK;
}

const ctl_ynode *
ctl_yaml_get(const ctl_ynode *map, const char *key)
{
    size_t klen;

    if (map == NULL || map->kind != CTL_Y_MAP)
        return NULL;
    klen = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const ctl_ynode *k = map->items[2 * i];
        if (k->len == klen && memcmp(k->str, key, klen) == 0)
            return map->items[2 * i + 1];
    }
    return NULL;
}

bool
ctl_yaml_is_null(const ctl_ynode *n)
{
    if (n == NULL || n->kind != CTL_Y_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

bool
ctl_yaml_bool(const ctl_ynode *n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};

    if (n == NULL || n->kind != CTL_Y_SCALAR || strlen(n->str) != n->len)
        return false;
    for (size_t i = 0; i < GW_ARRAY_LEN(yes); i++) {
        if (strcasecmp(n->str, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(n->str, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool
ctl_yaml_int(const ctl_ynode *n, int64_t *out)
{
    const char *p;
    char *end;
    long long v;

    if (n == NULL || n->kind != CTL_Y_SCALAR || n->len == 0 || strlen(n->str) != n->len)
        return false;
    p = n->str;
    if (*p == '+' || *p == '-')
        p++;
    if (*p == '\0')
        return false;
    for (const char *q = p; *q != '\0'; q++) {
        if (*q < '0' || *q > '9')
            return false;
    }
    errno = 0;
    v = strtoll(n->str, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

const char *
ctl_yaml_kind_name(const ctl_ynode *n)
{
    if (n == NULL || ctl_yaml_is_null(n))
        return "null";
    switch (n->kind) {
    case CTL_Y_SCALAR:
        return "a scalar";
    case CTL_Y_SEQ:
        return "a list";
    case CTL_Y_MAP:
        return "a mapping";
    }
    return "unknown";
}
