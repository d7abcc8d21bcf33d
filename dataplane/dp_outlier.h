/* dp_outlier: passive outlier ejection (DESIGN §7). An endpoint that fails
 * <after> times in a row before answering (connect refused or timed out,
 * no response headers within the first-byte timeout) leaves this worker's
 * routing for a while, as Envoy's consecutive-gateway-failure detector does;
 * the Kubernetes watch removes a dead pod too, but a file or endpoints
 * source never does, and a hung engine stays Ready.
 *
 * The n-th ejection in a row lasts n * base, at most max. When it ends the
 * endpoint takes one probe at a time (routable only while this worker has
 * nothing in flight on it, so a still-hung engine costs one request per
 * ejection, not every request of its first-byte timeout): the probe's
 * success clears the streak and the count, its failure ejects again. Each
 * worker judges alone (no shared state: one worker's network trouble is
 * its own). Routing ignores the ejection when every candidate of a request
 * is ejected (better a try than a 503 for sure). Loop thread only. */
#ifndef DP_OUTLIER_H
#define DP_OUTLIER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct dp_outlier_cfg {
    uint32_t after;   /* consecutive failures that eject; 0 = never eject */
    uint64_t base_us; /* first ejection's length */
    uint64_t max_us;  /* cap on an ejection's length */
} dp_outlier_cfg;

typedef struct dp_outlier {
    uint32_t streak;        /* failures in a row before headers */
    uint32_t ejections;     /* ejections since the last success */
    uint64_t ejected_until; /* monotonic us; 0 = routable */
} dp_outlier;

/* A failure before the response headers at <now_us>. Returns true when it
 * ejects the endpoint (its state's ejected_until is then in the future). */
bool dp_outlier_failure(dp_outlier *o, const dp_outlier_cfg *cfg, uint64_t now_us);
/* The endpoint answered (response headers arrived): it is healthy. */
void dp_outlier_success(dp_outlier *o);
/* Whether the endpoint is ejected at <now_us>. */
static inline bool
dp_outlier_ejected(const dp_outlier *o, uint64_t now_us)
{
    return o->ejected_until > now_us;
}
/* Whether routing should skip the endpoint at <now_us>, with <inflight>
 * requests of this worker on it: ejected, or probing (see above). */
static inline bool
dp_outlier_skip(const dp_outlier *o, const dp_outlier_cfg *cfg, uint32_t inflight, uint64_t now_us)
{
    return dp_outlier_ejected(o, now_us) ||
           (cfg->after > 0 && o->streak >= cfg->after && inflight > 0);
}

#endif
