/* dp_parse: extracts what routing needs from an OpenAI request body: model,
 * stream flag, stream_options.include_usage, max tokens, the prompt size and
 * (optionally) the routing text, validating the shape the way the engine
 * would (so a malformed request is answered by the gateway with a clear 400,
 * not forwarded). One pass over the body with dp_json, which accepts what
 * jansson would; nothing of the body is kept except the copied model name
 * and the routing text, decoded once into the caller's buffer. Pure: no I/O,
 * no globals.
 *
 * The routing text (what prefix-cache hashes, dp_prefix.h) is, in order:
 * - chat: for each message, its role, "\n", its content's text, "\n"; the
 *   content's text is the string, or for an array of parts the "text" of
 *   each part that has one, concatenated (images and other parts add
 *   nothing; a null content adds nothing);
 * - completions (`prompt`) and embeddings (`input`): the string; for an
 *   array, each string element's bytes and each integer element (a token
 *   id) as 4 little-endian bytes, in order (nested arrays add nothing).
 * Bytes are the UTF-8 of the decoded JSON strings, so two spellings of one
 * string (escapes) give the same text. A later turn of a conversation
 * therefore extends the text of the earlier one. Cut at the buffer's cap. */
#ifndef DP_PARSE_H
#define DP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"

typedef enum dp_api {
    DP_API_CHAT,        /* /v1/chat/completions */
    DP_API_COMPLETIONS, /* /v1/completions */
    DP_API_EMBEDDINGS,  /* /v1/embeddings */
} dp_api;

typedef enum dp_parse_status {
    DP_PARSE_OK = 0,
    DP_PARSE_BAD_BODY, /* not JSON, not an object, wrong field types, missing messages/prompt */
    DP_PARSE_NO_MODEL, /* no "model", or not a non-empty string */
} dp_parse_status;

typedef struct dp_reqinfo {
    char *model; /* owned; NULL unless DP_PARSE_OK */
    bool stream;
    bool include_usage;  /* stream_options.include_usage */
    int64_t max_tokens;  /* max_tokens or max_completion_tokens; -1 if absent */
    size_t prompt_bytes; /* bytes of prompt/message text (a size hint) */
    char why[256];       /* for errors: a client-facing explanation */
} dp_reqinfo;

/* Parses <body>/<len> for <api>. On DP_PARSE_OK info->model is set and the
 * caller frees it with dp_reqinfo_fini. On error only info->why is set. */
dp_parse_status dp_parse_request(dp_api api, const char *body, size_t len, dp_reqinfo *info);
/* As dp_parse_request, and also writes the routing text (file comment) into
 * <text> (reset first; at most text->max bytes: longer text is cut there).
 * <text> holds it only on DP_PARSE_OK. NULL <text>: as dp_parse_request. */
dp_parse_status dp_parse_request_text(dp_api api, const char *body, size_t len, dp_reqinfo *info,
                                      gw_buf *text);
void dp_reqinfo_fini(dp_reqinfo *info);
/* Whether a Content-Type header value announces JSON as vLLM (FastAPI)
 * reads it: absent or empty (then the body is read as JSON anyway),
 * application/json or application/<anything>+json, parameters ignored, case
 * insensitive. Anything else is refused with 400, as vLLM does. */
bool dp_parse_json_content_type(const char *value);

#endif
