/* Fuzz target: the usage scanner over upstream bytes, in SSE and JSON mode,
 * fed whole and split at a data-dependent point; both feedings must agree. */
#include <stdint.h>
#include <stdlib.h>

#include "dp_usage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t cut = size ? data[0] % (size + 1) : 0;

    for (int sse = 0; sse <= 1; sse++) {
        dp_usage whole, split;
        dp_usage_init(&whole, sse);
        dp_usage_init(&split, sse);
        dp_usage_feed(&whole, (const char *)data, size);
        dp_usage_feed(&split, (const char *)data, cut);
        dp_usage_feed(&split, (const char *)data + cut, size - cut);
        dp_usage_finish(&whole);
        dp_usage_finish(&split);
        if (sse && (whole.found != split.found || whole.prompt_tokens != split.prompt_tokens))
            abort();
        dp_usage_fini(&whole);
        dp_usage_fini(&split);
    }
    return 0;
}
