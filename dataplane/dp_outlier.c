/* dp_outlier: consecutive-failure ejection (see dp_outlier.h). */
#include "dp_outlier.h"

bool
dp_outlier_failure(dp_outlier *o, const dp_outlier_cfg *cfg, uint64_t now_us)
{
    uint64_t len;

    if (o->streak < UINT32_MAX)
        o->streak++;
    if (cfg->after == 0 || o->streak < cfg->after || dp_outlier_ejected(o, now_us))
        return false;
    /* Ejected again after a failed probe, or for the first time. */
    if (o->ejections < UINT32_MAX)
        o->ejections++;
    len = cfg->base_us * o->ejections;
    if (len > cfg->max_us || len / o->ejections != cfg->base_us)
        len = cfg->max_us;
    o->ejected_until = now_us + len;
    return true;
}

void
dp_outlier_success(dp_outlier *o)
{
    o->streak = 0;
    o->ejections = 0;
    o->ejected_until = 0;
}
