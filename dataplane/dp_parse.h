/* dp_parse: extracts what routing needs from an OpenAI request body: model,
 * stream flag, stream_options.include_usage, max tokens and the prompt size,
 * validating the shape the way the engine would (so a malformed request is
 * answered by the gateway with a clear 400, not forwarded). Parses with
 * jansson once; nothing of the body is kept except the copied model name.
 * Pure: no I/O, no globals. */
#ifndef DP_PARSE_H
#define DP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
void dp_reqinfo_fini(dp_reqinfo *info);

#endif
