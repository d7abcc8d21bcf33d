/* Fuzz target: the worker's request-body parser (outside bytes), for each
 * API shape. Checks the contract: OK implies a model; errors leave none; the
 * routing text never exceeds its buffer's cap, and asking for it changes
 * nothing else. And differentially: the one-pass scanner accepts, refuses
 * and extracts exactly what the jansson-based reference (dp_parse_ref) does,
 * for inputs without a NUL byte: jansson's reader drops a NUL read right
 * after a number or a literal (its unget takes the NUL for an empty buffer),
 * so it accepts "[1\0]", which we refuse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_parse.h"
#include "dp_parse_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_as_reference(dp_api api, const char *body, size_t size, dp_parse_status st,
                  const dp_reqinfo *info, const gw_buf *text)
{
    dp_reqinfo ref;
    gw_buf ref_text;

    gw_buf_init(&ref_text, text->max);
    if (dp_parse_ref_request_text(api, body, size, &ref, &ref_text) != st)
        abort();
    if (st == DP_PARSE_OK &&
        (strcmp(ref.model, info->model) != 0 || ref.stream != info->stream ||
         ref.include_usage != info->include_usage || ref.max_tokens != info->max_tokens ||
         ref.prompt_bytes != info->prompt_bytes || ref_text.len != text->len ||
         (text->len > 0 && memcmp(ref_text.data, text->data, text->len) != 0)))
        abort();
    dp_reqinfo_fini(&ref);
    gw_buf_fini(&ref_text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_buf text;

    gw_buf_init(&text, 100);
    for (int api = DP_API_CHAT; api <= DP_API_EMBEDDINGS; api++) {
        dp_reqinfo info, again;
        dp_parse_status st = dp_parse_request((dp_api)api, (const char *)data, size, &info);
        if (st == DP_PARSE_OK) {
            if (info.model == NULL || info.model[0] == '\0')
                abort();
        } else if (info.model != NULL) {
            abort();
        }
        if (dp_parse_request_text((dp_api)api, (const char *)data, size, &again, &text) != st ||
            text.len > text.max || again.prompt_bytes != info.prompt_bytes)
            abort();
        if (memchr(data, '\0', size) == NULL)
            same_as_reference((dp_api)api, (const char *)data, size, st, &again, &text);
        dp_reqinfo_fini(&info);
        dp_reqinfo_fini(&again);
    }
    gw_buf_fini(&text);
    return 0;
}
