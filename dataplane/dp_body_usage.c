/* dp_body_usage: sets stream_options.include_usage in a request body (see
 * dp_body_usage.h).
 *
 * jansson decides (is the body an object, is "stream" true, what is
 * stream_options); a small scanner then finds where the member to insert or
 * the value to replace sits in the text. The scanner only ever sees text
 * jansson has accepted (RFC 8259 JSON, no duplicate keys), so it needs no
 * validation of its own: it skips strings (minding escapes), counts brackets
 * and compares keys. Anything it cannot follow is reported as GW_EINVAL
 * rather than guessed at. */
#include "dp_body_usage.h"

#include <jansson.h>
#include <string.h>

#define INSERT_MEMBER "\"stream_options\":{\"include_usage\":true},"
#define NEW_OPTIONS   "{\"include_usage\":true}"
#define USAGE_MEMBER  "\"include_usage\":true"

static size_t
skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

/* p[i] is '"': returns the index after the closing quote, 0 if none. */
static size_t
skip_string(const char *p, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (p[i] == '\\')
            i++;
        else if (p[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Returns the index after the value starting at p[i], 0 if it does not end. */
static size_t
skip_value(const char *p, size_t n, size_t i)
{
    size_t depth = 0;

    if (i >= n)
        return 0;
    if (p[i] != '{' && p[i] != '[' && p[i] != '"') {
        /* number, true, false, null */
        while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' &&
               p[i] != '\n' && p[i] != '\r')
            i++;
        return i;
    }
    do {
        if (p[i] == '"') {
            i = skip_string(p, n, i);
            if (i == 0)
                return 0;
            continue;
        }
        if (p[i] == '{' || p[i] == '[')
            depth++;
        else if (p[i] == '}' || p[i] == ']')
            depth--;
        i++;
    } while (depth > 0 && i < n);
    return depth == 0 ? i : 0;
}

/* True if the string token <tok>/<n> (quotes included) decodes to <key>.
 * Escaped keys ("stream\u005foptions") are decoded by jansson, as the
 * engine's parser would decode them. */
static bool
key_is(const char *tok, size_t n, const char *key)
{
    size_t klen = strlen(key);
    json_t *s;
    bool eq;

    if (memchr(tok, '\\', n) == NULL)
        return n == klen + 2 && memcmp(tok + 1, key, klen) == 0;
    s = json_loadb(tok, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    eq = json_is_string(s) && json_string_length(s) == klen &&
         memcmp(json_string_value(s), key, klen) == 0;
    json_decref(s);
    return eq;
}

/* Finds member <key> of the object whose '{' is at p[obj]. Returns 1 and its
 * value's span [*vs, *ve), 0 if the object has no such member, -1 if the
 * text cannot be followed. */
static int
find_member(const char *p, size_t n, size_t obj, const char *key, size_t *vs, size_t *ve)
{
    size_t i = skip_ws(p, n, obj + 1);

    if (i < n && p[i] == '}')
        return 0;
    while (i < n && p[i] == '"') {
        size_t ks = i, ke = skip_string(p, n, i), end;

        if (ke == 0)
            return -1;
        i = skip_ws(p, n, ke);
        if (i >= n || p[i] != ':')
            return -1;
        i = skip_ws(p, n, i + 1);
        end = skip_value(p, n, i);
        if (end == 0)
            return -1;
        if (key_is(p + ks, ke - ks, key)) {
            *vs = i;
            *ve = end;
            return 1;
        }
        i = skip_ws(p, n, end);
        if (i < n && p[i] == '}')
            return 0;
        if (i >= n || p[i] != ',')
            return -1;
        i = skip_ws(p, n, i + 1);
    }
    return -1;
}

/* The edit: the result is body[0, at) + ins + body[at + cut, len). */
typedef struct edit {
    size_t at;
    size_t cut;
    const char *ins;
} edit;

static gw_err
plan_edit(const char *p, size_t n, const json_t *so, edit *e)
{
    size_t top = skip_ws(p, n, 0), vs, ve, us, ue;
    int found;

    if (top >= n || p[top] != '{')
        return GW_EINVAL;
    if (so == NULL) {
        /* The object has "stream", so it is not empty: a comma follows. */
        *e = (edit){.at = top + 1, .cut = 0, .ins = INSERT_MEMBER};
        return GW_OK;
    }
    if (find_member(p, n, top, "stream_options", &vs, &ve) != 1)
        return GW_EINVAL;
    if (!json_is_object(so)) {
        *e = (edit){.at = vs, .cut = ve - vs, .ins = NEW_OPTIONS};
        return GW_OK;
    }
    found = find_member(p, n, vs, "include_usage", &us, &ue);
    if (found < 0)
        return GW_EINVAL;
    if (found == 1)
        *e = (edit){.at = us, .cut = ue - us, .ins = "true"};
    else if (json_object_size(so) == 0)
        *e = (edit){.at = vs + 1, .cut = 0, .ins = USAGE_MEMBER};
    else
        *e = (edit){.at = vs + 1, .cut = 0, .ins = USAGE_MEMBER ","};
    return GW_OK;
}

gw_err
dp_body_request_usage(const char *body, size_t len, gw_buf *out, bool *changed)
{
    json_t *root, *so;
    edit e;
    size_t ilen, room;
    gw_err rc;

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return GW_EINVAL;
    }
    so = json_object_get(root, "stream_options");
    if (!json_is_true(json_object_get(root, "stream")) ||
        json_is_true(json_object_get(so, "include_usage"))) {
        json_decref(root);
        *changed = false;
        return GW_OK;
    }
    rc = plan_edit(body, len, so, &e);
    json_decref(root);
    if (rc != GW_OK)
        return rc;
    ilen = strlen(e.ins);
    room = out->len < out->max ? out->max - out->len : 0;
    if (len - e.cut > room || ilen > room - (len - e.cut))
        return GW_EFULL;
    /* Cannot fail now: the room was checked for all three. */
    if (gw_buf_append(out, body, e.at) != GW_OK || gw_buf_append(out, e.ins, ilen) != GW_OK ||
        gw_buf_append(out, body + e.at + e.cut, len - e.at - e.cut) != GW_OK)
        return GW_EFULL;
    *changed = true;
    return GW_OK;
}
