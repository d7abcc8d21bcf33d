/* Fuzz target: the worker's request-body parser (outside bytes), for each
 * API shape. Checks the contract: OK implies a model; errors leave none. */
#include <stdint.h>
#include <stdlib.h>

#include "dp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int api = DP_API_CHAT; api <= DP_API_EMBEDDINGS; api++) {
        dp_reqinfo info;
        if (dp_parse_request((dp_api)api, (const char *)data, size, &info) == DP_PARSE_OK) {
            if (info.model == NULL || info.model[0] == '\0')
                abort();
            dp_reqinfo_fini(&info);
        } else if (info.model != NULL) {
            abort();
        }
    }
    return 0;
}
