/* Fuzz target: the decode body built from a prefill engine's response (bytes
 * from outside). Whatever the response, the result is refused or is a JSON
 * object whose kv_transfer_params is an object. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_pd_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char req[] = "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":true}";
    for (int p = DP_PD_AIBRIX; p <= DP_PD_MOONCAKE; p++) {
        gw_buf out;
        const char *why = NULL;
        gw_buf_init(&out, 4 * size + 4096);
        if (dp_pd_decode_body((dp_pd_proto)p, p == DP_PD_AIBRIX, req, strlen(req),
                              (const char *)data, size, "10.0.0.1", 8000, &out, &why) == GW_OK) {
            json_t *o = json_loadb(out.data, out.len, 0, NULL);
            if (o == NULL || !json_is_object(json_object_get(o, "kv_transfer_params")))
                abort();
            json_decref(o);
        } else if (out.len != 0 || why == NULL) {
            abort();
        }
        gw_buf_fini(&out);
    }
    return 0;
}
