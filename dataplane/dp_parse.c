/* dp_parse: request-body extraction in one pass over the body with dp_json
 * (see dp_parse.h). The scan validates the whole document as jansson would
 * (duplicate keys refused: two "model" keys could route to one model while
 * the engine reads the other) and notes what each field it needs holds; the
 * checks then run in a fixed order, so the first problem reported does not
 * depend on the order of the keys. */
#include "dp_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dp_json.h"
#include "gw/gw_mem.h"

#define MODEL_MAX_BYTES 1024

typedef enum field {
    FIELD_ABSENT = 0,
    FIELD_NULL,
    FIELD_OK,
    FIELD_BAD, /* present with the wrong type or value */
} field;

/* What the scan found; judged after it, in dp_parse_request_text. */
typedef struct scan {
    dp_api api;
    gw_buf *text; /* routing text, NULL if not wanted */
    field model;
    dp_json_str model_str;
    field prompt;           /* messages / prompt / input */
    const char *prompt_why; /* when FIELD_BAD */
    field stream;
    bool stream_true;
    field stream_options;
    bool include_usage;
    field max_tokens, max_completion_tokens;
    int64_t max_tokens_v, max_completion_tokens_v;
    size_t prompt_bytes;
    /* The text parts of the message being scanned (its role comes first in
     * the routing text, wherever it stands in the object). */
    dp_json_str *parts;
    size_t nparts, capparts;
} scan;

static dp_parse_status
bad(dp_reqinfo *info, const char *why)
{
    snprintf(info->why, sizeof(info->why), "%s", why);
    return DP_PARSE_BAD_BODY;
}

static void
text_add(scan *sc, const void *p, size_t n)
{
    gw_buf *t = sc->text;
    if (t == NULL || t->len >= t->max)
        return;
    if (n > t->max - t->len)
        n = t->max - t->len;
    if (gw_buf_append(t, p, n) != GW_OK)
        return; /* cannot happen: n fits the cap */
}

static void
text_add_str(dp_json *j, scan *sc, const dp_json_str *s)
{
    if (sc->text != NULL)
        dp_json_decode(j, s, sc->text);
}

static void
part_push(scan *sc, const dp_json_str *s)
{
    if (sc->nparts == sc->capparts) {
        sc->capparts = sc->capparts == 0 ? 8 : sc->capparts * 2;
        sc->parts = gw_xrealloc(sc->parts, sc->capparts * sizeof(*sc->parts));
    }
    sc->parts[sc->nparts++] = *s;
}

/* A boolean-or-null field. */
static void
scan_bool(dp_json *j, field *f, bool *val)
{
    char lit;
    int c = dp_json_peek(j);

    if (c != 't' && c != 'f' && c != 'n') {
        *f = FIELD_BAD;
        dp_json_skip(j);
        return;
    }
    if (!dp_json_literal(j, &lit))
        return;
    *f = lit == 'n' ? FIELD_NULL : FIELD_OK;
    *val = lit == 't';
}

/* A non-negative integer or null. */
static void
scan_count(dp_json *j, field *f, int64_t *val)
{
    int c = dp_json_peek(j);
    bool is_int;
    char lit;

    if (c == 'n' && dp_json_literal(j, &lit) && lit == 'n') {
        *f = FIELD_NULL;
        return;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        if (dp_json_number(j, &is_int, val))
            *f = is_int && *val >= 0 ? FIELD_OK : FIELD_BAD;
        return;
    }
    *f = FIELD_BAD;
    dp_json_skip(j);
}

static void
scan_model(dp_json *j, scan *sc)
{
    sc->model = FIELD_BAD;
    if (dp_json_peek(j) != '"') {
        dp_json_skip(j);
        return;
    }
    if (dp_json_string(j, &sc->model_str) && sc->model_str.decoded_len > 0 &&
        sc->model_str.decoded_len <= MODEL_MAX_BYTES)
        sc->model = FIELD_OK;
}

static void
scan_stream_options(dp_json *j, scan *sc)
{
    dp_json_iter it;
    dp_json_str key;
    char lit;
    int c = dp_json_peek(j);

    if (c != '{') {
        if (c == 'n' && dp_json_literal(j, &lit) && lit == 'n')
            sc->stream_options = FIELD_NULL;
        else {
            sc->stream_options = FIELD_BAD;
            dp_json_skip(j);
        }
        return;
    }
    sc->stream_options = FIELD_OK;
    if (!dp_json_object_open(j, &it))
        return;
    while (dp_json_object_key(j, &it, &key)) {
        if (dp_json_str_is(j, &key, "include_usage") && dp_json_peek(j) == 't')
            sc->include_usage = dp_json_literal(j, &lit) && lit == 't';
        else
            dp_json_skip(j);
    }
}

/* A message's "content": a string, or an array of parts whose "text"
 * strings count; anything else adds nothing. */
static void
scan_content(dp_json *j, scan *sc)
{
    dp_json_iter arr, obj;
    dp_json_str s, key;

    if (dp_json_peek(j) == '"') {
        if (dp_json_string(j, &s))
            part_push(sc, &s);
        return;
    }
    if (dp_json_peek(j) != '[') {
        dp_json_skip(j);
        return;
    }
    if (!dp_json_array_open(j, &arr))
        return;
    while (dp_json_array_next(j, &arr)) {
        if (dp_json_peek(j) != '{') {
            dp_json_skip(j);
            continue;
        }
        if (!dp_json_object_open(j, &obj))
            return;
        while (dp_json_object_key(j, &obj, &key)) {
            if (dp_json_str_is(j, &key, "text") && dp_json_peek(j) == '"') {
                if (dp_json_string(j, &s))
                    part_push(sc, &s);
            } else
                dp_json_skip(j);
        }
    }
}

/* One element of "messages": an object with a string "role". Its routing
 * text is the role, "\n", the content's text, "\n". */
static void
scan_message(dp_json *j, scan *sc)
{
    dp_json_iter it;
    dp_json_str key, role;
    bool has_role = false;

    sc->nparts = 0;
    if (dp_json_peek(j) != '{') {
        dp_json_skip(j);
        goto refuse;
    }
    if (!dp_json_object_open(j, &it))
        return;
    while (dp_json_object_key(j, &it, &key)) {
        if (dp_json_str_is(j, &key, "role") && dp_json_peek(j) == '"')
            has_role = dp_json_string(j, &role);
        else if (dp_json_str_is(j, &key, "content"))
            scan_content(j, sc);
        else
            dp_json_skip(j);
    }
    if (!has_role)
        goto refuse;
    if (sc->prompt != FIELD_OK)
        return; /* an earlier message was refused */
    text_add_str(j, sc, &role);
    text_add(sc, "\n", 1);
    for (size_t i = 0; i < sc->nparts; i++) {
        sc->prompt_bytes += sc->parts[i].decoded_len;
        text_add_str(j, sc, &sc->parts[i]);
    }
    text_add(sc, "\n", 1);
    return;
refuse:
    if (sc->prompt == FIELD_OK) {
        sc->prompt = FIELD_BAD;
        sc->prompt_why = "each message must be an object with a string 'role'";
    }
}

static void
scan_messages(dp_json *j, scan *sc)
{
    dp_json_iter it;
    size_t n = 0;

    if (dp_json_peek(j) != '[') {
        sc->prompt = FIELD_BAD;
        dp_json_skip(j);
        return;
    }
    sc->prompt = FIELD_OK;
    if (!dp_json_array_open(j, &it))
        return;
    while (dp_json_array_next(j, &it)) {
        n++;
        scan_message(j, sc);
    }
    if (n == 0)
        sc->prompt = FIELD_BAD;
}

/* "prompt" / "input": a string, or a non-empty array of strings, token ids
 * (4 little-endian bytes each in the routing text) and nested arrays (which
 * add nothing). */
static void
scan_prompt(dp_json *j, scan *sc)
{
    const char *wrong_elem = sc->api == DP_API_COMPLETIONS
                                 ? "'prompt' has an element of the wrong type"
                                 : "'input' has an element of the wrong type";
    dp_json_iter it;
    dp_json_str s;
    size_t n = 0;
    int c = dp_json_peek(j);

    if (c == '"') {
        if (dp_json_string(j, &s)) {
            sc->prompt = FIELD_OK;
            sc->prompt_bytes = s.decoded_len;
            text_add_str(j, sc, &s);
        }
        return;
    }
    if (c != '[') {
        sc->prompt = FIELD_BAD;
        dp_json_skip(j);
        return;
    }
    sc->prompt = FIELD_OK;
    if (!dp_json_array_open(j, &it))
        return;
    while (dp_json_array_next(j, &it)) {
        bool is_int = false, wrong = false;
        int64_t v;
        n++;
        c = dp_json_peek(j);
        if (c == '"') {
            if (dp_json_string(j, &s) && sc->prompt == FIELD_OK) {
                sc->prompt_bytes += s.decoded_len;
                text_add_str(j, sc, &s);
            }
        } else if (c == '[') {
            dp_json_skip(j);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (dp_json_number(j, &is_int, &v) && is_int && sc->prompt == FIELD_OK) {
                uint32_t id = (uint32_t)v;
                unsigned char le[4] = {(unsigned char)id, (unsigned char)(id >> 8),
                                       (unsigned char)(id >> 16), (unsigned char)(id >> 24)};
                sc->prompt_bytes += 4; /* a token id */
                text_add(sc, le, sizeof(le));
            }
            wrong = !is_int;
        } else {
            dp_json_skip(j);
            wrong = true;
        }
        if (wrong && sc->prompt == FIELD_OK) {
            sc->prompt = FIELD_BAD;
            sc->prompt_why = wrong_elem;
        }
    }
    if (n == 0)
        sc->prompt = FIELD_BAD;
}

static void
scan_root(dp_json *j, scan *sc)
{
    const char *prompt_key = sc->api == DP_API_CHAT         ? "messages"
                             : sc->api == DP_API_EMBEDDINGS ? "input"
                                                            : "prompt";
    dp_json_iter it;
    dp_json_str key;

    if (!dp_json_object_open(j, &it))
        return;
    while (dp_json_object_key(j, &it, &key)) {
        if (dp_json_str_is(j, &key, "model"))
            scan_model(j, sc);
        else if (dp_json_str_is(j, &key, prompt_key)) {
            if (sc->api == DP_API_CHAT)
                scan_messages(j, sc);
            else
                scan_prompt(j, sc);
        } else if (dp_json_str_is(j, &key, "stream"))
            scan_bool(j, &sc->stream, &sc->stream_true);
        else if (dp_json_str_is(j, &key, "stream_options"))
            scan_stream_options(j, sc);
        else if (dp_json_str_is(j, &key, "max_tokens"))
            scan_count(j, &sc->max_tokens, &sc->max_tokens_v);
        else if (dp_json_str_is(j, &key, "max_completion_tokens"))
            scan_count(j, &sc->max_completion_tokens, &sc->max_completion_tokens_v);
        else
            dp_json_skip(j);
    }
}

/* The checks, in the order the client should hear about them. */
static dp_parse_status
judge(dp_json *j, scan *sc, dp_reqinfo *info)
{
    if (sc->model == FIELD_ABSENT)
        return snprintf(info->why, sizeof(info->why), "no 'model' in the request"),
               DP_PARSE_NO_MODEL;
    if (sc->model != FIELD_OK)
        return snprintf(info->why, sizeof(info->why),
                        "'model' must be a non-empty string of at most 1024 bytes"),
               DP_PARSE_NO_MODEL;
    if (sc->prompt != FIELD_OK) {
        if (sc->prompt_why != NULL)
            return bad(info, sc->prompt_why);
        return bad(info, sc->api == DP_API_CHAT ? "'messages' must be a non-empty array"
                         : sc->api == DP_API_COMPLETIONS
                             ? "'prompt' must be a string or a non-empty array"
                             : "'input' must be a string or a non-empty array");
    }
    if (sc->stream == FIELD_BAD)
        return bad(info, "'stream' must be a boolean");
    info->stream = sc->stream == FIELD_OK && sc->stream_true;
    if (info->stream && sc->api == DP_API_EMBEDDINGS)
        return bad(info, "embeddings do not support 'stream'");
    if (sc->stream_options == FIELD_BAD)
        return bad(info, "'stream_options' must be an object");
    info->include_usage = sc->include_usage;
    if (sc->max_tokens == FIELD_OK || sc->max_tokens == FIELD_BAD) {
        if (sc->max_tokens == FIELD_BAD)
            return bad(info, "'max_tokens' must be a non-negative integer");
        info->max_tokens = sc->max_tokens_v;
    } else if (sc->max_completion_tokens == FIELD_BAD)
        return bad(info, "'max_tokens' must be a non-negative integer");
    else if (sc->max_completion_tokens == FIELD_OK)
        info->max_tokens = sc->max_completion_tokens_v;
    info->prompt_bytes = sc->prompt_bytes;
    gw_buf model;
    gw_buf_init(&model, MODEL_MAX_BYTES);
    dp_json_decode(j, &sc->model_str, &model);
    info->model = gw_buf_steal(&model);
    return DP_PARSE_OK;
}

dp_parse_status
dp_parse_request(dp_api api, const char *body, size_t len, dp_reqinfo *info)
{
    return dp_parse_request_text(api, body, len, info, NULL);
}

dp_parse_status
dp_parse_request_text(dp_api api, const char *body, size_t len, dp_reqinfo *info, gw_buf *t)
{
    scan sc = {.api = api, .text = t};
    dp_parse_status st;
    dp_json j;

    memset(info, 0, sizeof(*info));
    info->max_tokens = -1;
    if (t != NULL)
        gw_buf_reset(t);
    if (len == 0)
        return bad(info, "request body is empty");
    dp_json_init(&j, body, len);
    int c = dp_json_peek(&j);
    if (c == '{')
        scan_root(&j, &sc);
    else if (c == '[')
        dp_json_skip(&j); /* valid JSON, still refused below */
    if (c != '{' && c != '[')
        st = bad(info, "invalid JSON: the body must be a JSON object");
    else if (!dp_json_end(&j)) {
        snprintf(info->why, sizeof(info->why), "invalid JSON at byte %zu: %s", j.err_pos, j.err);
        st = DP_PARSE_BAD_BODY;
    } else if (c != '{')
        st = bad(info, "request body must be a JSON object");
    else
        st = judge(&j, &sc, info);
    if (st != DP_PARSE_OK && t != NULL)
        gw_buf_reset(t);
    GW_FREE(sc.parts);
    dp_json_fini(&j);
    return st;
}

void
dp_reqinfo_fini(dp_reqinfo *info)
{
    GW_FREE(info->model);
}

bool
dp_parse_json_content_type(const char *value)
{
    const char *p = value, *end;
    size_t n;

    if (p == NULL)
        return true;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return true;
    if (strncasecmp(p, "application/", 12) != 0)
        return false;
    p += 12;
    for (end = p; *end != '\0' && *end != ';' && *end != ' ' && *end != '\t'; end++)
        ;
    n = (size_t)(end - p);
    return (n == 4 && strncasecmp(p, "json", 4) == 0) ||
           (n > 5 && strncasecmp(end - 5, "+json", 5) == 0);
}
