/* dp_usage: usage extraction from relayed bytes (see dp_usage.h). */
#include "dp_usage.h"

#include <jansson.h>
#include <string.h>

void
dp_usage_init(dp_usage *u, bool sse)
{
    memset(u, 0, sizeof(*u));
    u->sse = sse;
    gw_buf_init(&u->pending, sse ? DP_USAGE_MAX_LINE : 2 * DP_USAGE_TAIL);
}

void
dp_usage_fini(dp_usage *u)
{
    gw_buf_fini(&u->pending);
}

/* Reads prompt/completion tokens from a parsed "usage" value; false if it is
 * not an object with integer counts (e.g. "usage": null on ordinary chunks). */
static bool
take_usage(dp_usage *u, const json_t *usage)
{
    const json_t *p = json_object_get(usage, "prompt_tokens");
    const json_t *c = json_object_get(usage, "completion_tokens");

    if (!json_is_object(usage) || !json_is_integer(p))
        return false;
    u->found = true;
    u->prompt_tokens = json_integer_value(p);
    u->completion_tokens = json_is_integer(c) ? json_integer_value(c) : 0;
    return true;
}

static void
sse_line(dp_usage *u, const char *line, size_t n)
{
    json_t *root;

    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n < 5 || memcmp(line, "data:", 5) != 0)
        return;
    line += 5;
    n -= 5;
    while (n > 0 && *line == ' ') {
        line++;
        n--;
    }
    if (n == 6 && memcmp(line, "[DONE]", 6) == 0) {
        u->done_seen = true;
        return;
    }
    /* Cheap pre-filter: most chunks carry no usage and are never parsed. */
    if (memmem(line, n, "\"usage\"", 7) == NULL)
        return;
    root = json_loadb(line, n, 0, NULL);
    if (root == NULL)
        return;
    take_usage(u, json_object_get(root, "usage"));
    json_decref(root);
}

static void
feed_sse(dp_usage *u, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;

        if (u->skipping) {
            if (nl != NULL)
                u->skipping = false;
        } else if (nl != NULL && u->pending.len == 0) {
            sse_line(u, p, take); /* whole line inside this chunk: no copy */
        } else if (gw_buf_append(&u->pending, p, take) != GW_OK) {
            gw_buf_reset(&u->pending);
            u->skipping = nl == NULL;
        } else if (nl != NULL) {
            sse_line(u, u->pending.data, u->pending.len);
            gw_buf_reset(&u->pending);
        }
        if (nl == NULL)
            return;
        p = nl + 1;
        n -= take + 1;
    }
}

static void
feed_tail(dp_usage *u, const char *p, size_t n)
{
    if (n >= DP_USAGE_TAIL) {
        gw_buf_reset(&u->pending);
        p += n - DP_USAGE_TAIL;
        n = DP_USAGE_TAIL;
    } else if (u->pending.len + n > 2 * DP_USAGE_TAIL) {
        gw_buf_consume(&u->pending, u->pending.len + n - DP_USAGE_TAIL);
    }
    if (gw_buf_append(&u->pending, p, n) != GW_OK)
        gw_buf_reset(&u->pending); /* cannot happen: sizes are bounded above */
}

void
dp_usage_feed(dp_usage *u, const char *p, size_t n)
{
    if (u->sse)
        feed_sse(u, p, n);
    else
        feed_tail(u, p, n);
}

void
dp_usage_finish(dp_usage *u)
{
    const char *s, *last = NULL, *hit;
    size_t left;
    json_t *usage;

    if (u->sse) {
        if (u->pending.len > 0)
            sse_line(u, u->pending.data, u->pending.len);
        gw_buf_reset(&u->pending);
        return;
    }
    s = u->pending.data;
    left = u->pending.len;
    while (s != NULL && (hit = memmem(s, left, "\"usage\"", 7)) != NULL) {
        last = hit;
        left -= (size_t)(hit + 7 - s);
        s = hit + 7;
    }
    if (last == NULL)
        return;
    s = last + 7;
    left = u->pending.len - (size_t)(s - u->pending.data);
    while (left > 0 && (*s == ' ' || *s == ':' || *s == '\n' || *s == '\r' || *s == '\t')) {
        s++;
        left--;
    }
    usage = json_loadb(s, left, JSON_DISABLE_EOF_CHECK, NULL);
    if (usage != NULL) {
        take_usage(u, usage);
        json_decref(usage);
    }
}
