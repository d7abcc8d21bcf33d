/* ctl_load: aggregates worker reports into the fleet-wide load vector
 * (DESIGN §4), without sockets so it is unit-tested directly.
 *
 * Per worker (keyed by pm_report.worker_id) it keeps the latest report's
 * per-endpoint in-flight requests and tokens, its seq and when it was heard
 * from. A report whose seq is not newer than the worker's last one is stale
 * and ignored. Workers silent for longer than <expiry_ms> are dropped by
 * ctl_load_expire, and their in-flight no longer counts.
 *
 * Per endpoint id it keeps, across workers:
 *   latency_ms / ttft_ms  EWMA (alpha 0.2) of each report's mean
 *                         (latency_ms_sum / completed; ttft only when its sum
 *                         is non-zero); -1 until a sample exists;
 *   tokens_per_s          prompt + completion tokens reported over windows of
 *                         at least one second; -1 until the first window
 *                         since the endpoint first appeared closes.
 * Stats of ids absent from the snapshot passed to ctl_load_build are dropped
 * (ids are never reused, so they cannot come back).
 *
 * ctl_load_build emits, for every endpoint of the snapshot in its order,
 * inflight = sum over live workers of their latest report's inflight (same
 * for inflight_tokens); running, waiting and kv_usage are -1 (engine
 * scraping comes later); plus workers[] = (worker_id, seq) of every live
 * worker, so a worker can subtract its own share (DESIGN §4).
 *
 * Time is passed in (monotonic ms) so tests need no clock. At most
 * PM_MAX_WORKERS workers are tracked; reports from more are refused.
 * Loop thread only. */
#ifndef CTL_LOAD_H
#define CTL_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

#define CTL_LOAD_EWMA_ALPHA    0.2
#define CTL_LOAD_TPS_WINDOW_MS 1000

typedef struct ctl_load ctl_load;

ctl_load *ctl_load_new(uint64_t expiry_ms);
void ctl_load_free(ctl_load *l);

/* Takes in one decoded report (borrowed; copied as needed) received at
 * <now_ms>. GW_OK when applied; GW_EAGAIN when stale (seq not newer);
 * GW_EFULL when it comes from a new worker and PM_MAX_WORKERS are tracked. */
GW_MUST_CHECK gw_err ctl_load_report(ctl_load *l, const pm_report *r, uint64_t now_ms);

/* Drops workers last heard from more than expiry_ms before <now_ms>;
 * returns how many were dropped. */
unsigned ctl_load_expire(ctl_load *l, uint64_t now_ms);

/* Builds the load message for <snap> (borrowed; NULL gives no endpoints):
 * env.gen = snap's gen, env.epoch = snap's epoch, env.sent_ms = <wall_ms>.
 * Also advances the throughput windows at <now_ms>. The caller frees *out
 * with pm_load_free. */
void ctl_load_build(ctl_load *l, const pm_snapshot *snap, uint64_t now_ms, uint64_t wall_ms,
                    pm_load **out);

/* Number of live workers. */
unsigned ctl_load_workers(const ctl_load *l);

#endif
