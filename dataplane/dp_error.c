/* dp_error: OpenAI-shaped error bodies (see dp_error.h). jansson does the
 * escaping so a model name or parser message can never break the JSON. */
#include "dp_error.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void
dp_error_set(dp_error *e, unsigned status, const char *header, const char *header_value,
             const char *code, const char *fmt, ...)
{
    va_list ap;

    e->status = status;
    e->header = header;
    e->header_value = header_value;
    e->code = code;
    e->param = NULL;
    e->seed_shape = false;
    e->retry_after = NULL;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

const char *
dp_error_type(unsigned status)
{
    switch (status) {
    case 400:
    case 404:
    case 413:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 429:
        return "rate_limit_error";
    case 503:
        return "overloaded_error";
    default:
        return "api_error";
    }
}

gw_err
dp_error_body(const dp_error *e, gw_buf *out)
{
    const char *code = e->code ? e->code : "error";
    json_t *err = e->seed_shape
                      ? json_pack("{s:s, s:s, s:s}", "message", e->message, "type",
                                  dp_error_type(e->status), "code", code)
                      : json_pack("{s:s, s:s, s:o, s:s}", "message", e->message, "type",
                                  dp_error_type(e->status), "param",
                                  e->param ? json_string(e->param) : json_null(), "code", code);
    json_t *root = json_pack("{s:o}", "error", err);
    char *text;
    gw_err rc;

    if (root == NULL)
        return GW_ENOMEM;
    /* Without JSON_COMPACT jansson separates with ", " and ": ", which is
     * the seed's text exactly (keys keep their insertion order). */
    text = json_dumps(root, e->seed_shape ? 0 : JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        return GW_ENOMEM;
    rc = gw_buf_append_str(out, text);
    free(text);
    return rc;
}

gw_err
dp_error_sse_event(const dp_error *e, gw_buf *out)
{
    gw_err rc = gw_buf_append_str(out, "data: ");
    if (rc == GW_OK)
        rc = dp_error_body(e, out);
    if (rc == GW_OK)
        rc = gw_buf_append_str(out, "\n\n");
    return rc;
}
