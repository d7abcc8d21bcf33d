/* dp_cbreaker: per-endpoint concurrency caps (see dp_cbreaker.h). */
#include "dp_cbreaker.h"

uint32_t
dp_cbreaker_cap(int64_t max_parallel, int64_t max_host_conns, int64_t max_pending)
{
    int64_t cap = max_parallel > 0 ? max_parallel : 0;

    /* Pending requests only exist when connections are capped; without a
     * connection cap every request gets its own connection at once. */
    if (max_host_conns > 0 && max_pending > 0) {
        int64_t by_conns = max_host_conns + max_pending;
        if (cap == 0 || by_conns < cap)
            cap = by_conns;
    }
    return cap > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

bool
dp_cbreaker_retry_admit(uint32_t *inflight, int64_t max, bool *held)
{
    if (*held)
        return true;
    if (max > 0 && *inflight >= (uint64_t)max)
        return false;
    (*inflight)++;
    *held = true;
    return true;
}

void
dp_cbreaker_retry_release(uint32_t *inflight, bool *held)
{
    if (!*held)
        return;
    *held = false;
    (*inflight)--;
}
