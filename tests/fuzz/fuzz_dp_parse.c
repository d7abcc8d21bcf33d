/* Fuzz target: the worker's request-body parser (outside bytes), for each
 * API shape. Checks the contract: OK implies a model; errors leave none; the
 * routing text never exceeds its buffer's cap, and asking for it changes
 * nothing else. */
#include <stdint.h>
#include <stdlib.h>

#include "dp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        dp_reqinfo_fini(&info);
        dp_reqinfo_fini(&again);
    }
    gw_buf_fini(&text);
    return 0;
}
