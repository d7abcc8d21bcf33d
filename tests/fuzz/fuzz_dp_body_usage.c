/* Fuzz target: the in-place request-body edit that asks the engine for
 * usage. Whatever the input, a changed body must be valid JSON whose
 * stream_options.include_usage is true and whose every other top-level
 * member equals the input's; an unchanged one writes nothing. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_body_usage.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_buf out;
    bool changed = false;
    json_t *in, *res;
    const char *key;
    json_t *v;

    gw_buf_init(&out, 2 * size + 4096);
    if (dp_body_request_usage((const char *)data, size, &out, &changed) != GW_OK || !changed) {
        if (out.len != 0)
            abort();
        gw_buf_fini(&out);
        return 0;
    }
    in = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    res = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
    if (in == NULL || res == NULL || !json_is_object(res) ||
        !json_is_true(json_object_get(json_object_get(res, "stream_options"), "include_usage")))
        abort();
    json_object_foreach(in, key, v)
    {
        if (strcmp(key, "stream_options") != 0 && !json_equal(v, json_object_get(res, key)))
            abort();
    }
    json_decref(in);
    json_decref(res);
    gw_buf_fini(&out);
    return 0;
}
