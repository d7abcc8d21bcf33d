/* dp_parse_ref: the request-body parser as it was before dp_json, on
 * jansson's full parse (JSON_REJECT_DUPLICATES). Test-only: the oracle the
 * differential fuzz target and test_dp_parse compare dp_parse against, so
 * the fast scanner accepts, refuses and extracts exactly what this does. */
#include "dp_parse_ref.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

/* Appends what fits of <p>/<n> to the routing text (NULL: not wanted). */
static void
text_add(gw_buf *t, const void *p, size_t n)
{
    if (t == NULL || t->len >= t->max)
        return;
    if (n > t->max - t->len)
        n = t->max - t->len;
    if (gw_buf_append(t, p, n) != GW_OK)
        return; /* cannot happen: n fits the cap */
}

static void
text_add_str(gw_buf *t, const json_t *s)
{
    text_add(t, json_string_value(s), json_string_length(s));
}

static size_t
content_bytes(const json_t *content, gw_buf *t)
{
    size_t n = 0, i;
    json_t *part;

    if (json_is_string(content)) {
        text_add_str(t, content);
        return json_string_length(content);
    }
    /* Multimodal/array content: count the text parts. */
    json_array_foreach(content, i, part)
    {
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text)) {
            n += json_string_length(text);
            text_add_str(t, text);
        }
    }
    return n;
}

static dp_parse_status
bad(dp_reqinfo *info, const char *why)
{
    snprintf(info->why, sizeof(info->why), "%s", why);
    return DP_PARSE_BAD_BODY;
}

static dp_parse_status
parse_chat(const json_t *root, dp_reqinfo *info, gw_buf *t)
{
    const json_t *msgs = json_object_get(root, "messages");
    size_t i;
    json_t *m;

    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return bad(info, "'messages' must be a non-empty array");
    json_array_foreach(msgs, i, m)
    {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
            return bad(info, "each message must be an object with a string 'role'");
        text_add_str(t, json_object_get(m, "role"));
        text_add(t, "\n", 1);
        info->prompt_bytes += content_bytes(json_object_get(m, "content"), t);
        text_add(t, "\n", 1);
    }
    return DP_PARSE_OK;
}

static dp_parse_status
parse_prompt(const json_t *root, const char *field, dp_reqinfo *info, gw_buf *t)
{
    const json_t *p = json_object_get(root, field);
    size_t i;
    json_t *x;

    if (json_is_string(p)) {
        info->prompt_bytes = json_string_length(p);
        text_add_str(t, p);
        return DP_PARSE_OK;
    }
    if (json_is_array(p) && json_array_size(p) > 0) {
        json_array_foreach(p, i, x)
        {
            if (json_is_string(x)) {
                info->prompt_bytes += json_string_length(x);
                text_add_str(t, x);
            } else if (json_is_integer(x)) {
                uint32_t id = (uint32_t)json_integer_value(x);
                unsigned char le[4] = {(unsigned char)id, (unsigned char)(id >> 8),
                                       (unsigned char)(id >> 16), (unsigned char)(id >> 24)};
                info->prompt_bytes += 4; /* a token id */
                text_add(t, le, sizeof(le));
            } else if (!json_is_array(x))
                return bad(info, field[0] == 'p' ? "'prompt' has an element of the wrong type"
                                                 : "'input' has an element of the wrong type");
        }
        return DP_PARSE_OK;
    }
    return bad(info, field[0] == 'p' ? "'prompt' must be a string or a non-empty array"
                                     : "'input' must be a string or a non-empty array");
}

dp_parse_status
dp_parse_ref_request_text(dp_api api, const char *body, size_t len, dp_reqinfo *info, gw_buf *t)
{
    json_error_t jerr;
    json_t *root;
    const json_t *v;
    dp_parse_status st;

    memset(info, 0, sizeof(*info));
    info->max_tokens = -1;
    if (t != NULL)
        gw_buf_reset(t);
    if (len == 0)
        return bad(info, "request body is empty");
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(info->why, sizeof(info->why), "invalid JSON at line %d column %d: %.120s",
                 jerr.line, jerr.column, jerr.text);
        return DP_PARSE_BAD_BODY;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return bad(info, "request body must be a JSON object");
    }
    v = json_object_get(root, "model");
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024) {
        json_decref(root);
        snprintf(info->why, sizeof(info->why), "%s",
                 v == NULL ? "no 'model' in the request"
                           : "'model' must be a non-empty string of at most 1024 bytes");
        return DP_PARSE_NO_MODEL;
    }
    if (api == DP_API_CHAT)
        st = parse_chat(root, info, t);
    else
        st = parse_prompt(root, api == DP_API_EMBEDDINGS ? "input" : "prompt", info, t);
    if (st != DP_PARSE_OK)
        goto out;
    v = json_object_get(root, "stream");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            st = bad(info, "'stream' must be a boolean");
            goto out;
        }
        info->stream = json_is_true(v);
        if (info->stream && api == DP_API_EMBEDDINGS) {
            st = bad(info, "embeddings do not support 'stream'");
            goto out;
        }
    }
    v = json_object_get(root, "stream_options");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            st = bad(info, "'stream_options' must be an object");
            goto out;
        }
        info->include_usage = json_is_true(json_object_get(v, "include_usage"));
    }
    v = json_object_get(root, "max_tokens");
    if (v == NULL || json_is_null(v))
        v = json_object_get(root, "max_completion_tokens");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            st = bad(info, "'max_tokens' must be a non-negative integer");
            goto out;
        }
        info->max_tokens = json_integer_value(v);
    }
    info->model = gw_xstrdup(json_string_value(json_object_get(root, "model")));
    st = DP_PARSE_OK;
out:
    json_decref(root);
    return st;
}
