/* Fuzz target: the mirror file's parser (gw_mirror_cfg) (bytes from a mounted file): an
 * accepted config is self-consistent (Ratio in range, an enabled one has a
 * Target). */
#include <stdint.h>
#include <stdlib.h>

#include "gw/gw_mirror_cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_mirror_cfg c;
    char why[256];

    if (gw_mirror_cfg_parse((const char *)data, size, &c, why, sizeof(why)) != GW_OK)
        return 0;
    if (c.ratio < 0 || c.ratio > 100 || c.timeout_ms < 0 || (c.enable && c.target == NULL))
        abort();
    gw_mirror_cfg_fini(&c);
    return 0;
}
