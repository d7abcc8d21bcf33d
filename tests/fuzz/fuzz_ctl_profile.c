/* fuzz_ctl_profile: the model.aibrix.ai/config JSON parser
 * (ctl_profile_parse), from memory. Accepted configs must satisfy the wire
 * encoder's rules for profiles; refusals must carry a message. */
#include <stdint.h>
#include <stdlib.h>

#include "ctl_profile.h"
#include "gw/gw_buf.h"
#include "gw/gw_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_model m = {0};
    char *why = NULL;

    if (ctl_profile_parse((const char *)data, size, &m, &why) == GW_OK) {
        pm_snapshot s = {.n_models = 1, .models = &m};
        gw_buf b;

        m.name = gw_xstrdup("fuzz");
        gw_buf_init(&b, PM_MAX_MSG_BYTES);
        if (pm_snapshot_encode(&s, &b) != GW_OK)
            abort();
        gw_buf_fini(&b);
        ctl_profile_clear(&m);
        free(m.name);
    } else if (why == NULL || m.profiles != NULL) {
        abort();
    }
    free(why);
    return 0;
}
