/* fuzz_ctl_disc_rec: the registration record parser (ctl_disc_rec_parse)
 * on store values. An accepted record must encode and parse back to the
 * same record; a refusal must carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_disc_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ctl_disc_rec r = {0}, back;
    char *why = NULL, *s;

    if (ctl_disc_rec_parse((const char *)data, size, "fuzz-key", &r, &why) != GW_OK) {
        if (why == NULL || r.model != NULL)
            abort();
        free(why);
        return 0;
    }
    s = ctl_disc_rec_encode(&r);
    if (ctl_disc_rec_parse(s, strlen(s), NULL, &back, &why) != GW_OK ||
        !ctl_disc_rec_same(&r, &back) || back.timestamp_ms != r.timestamp_ms)
        abort();
    ctl_disc_rec_fini(&back);
    ctl_disc_rec_fini(&r);
    free(s);
    return 0;
}
