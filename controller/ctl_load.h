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
 * for inflight_tokens), plus workers[] = (worker_id, seq) of every live
 * worker, so a worker can subtract its own share (DESIGN §4).
 *
 * Engine-side signals come from a provider (ctl_scrape in the binary, a
 * fake in tests) set with ctl_load_set_signals; per endpoint it answers
 * running, waiting, kv_usage, gpu_usage, ttft_ms, tpot_ms, tokens_per_s,
 * metrics_age_ms and kv_capacity (< 0 = unknown; stale numbers are already
 * -1). They merge with the report-derived values as follows:
 *   running, waiting, kv_usage, gpu_usage, tpot_ms, metrics_age_ms,
 *   kv_capacity   the engine's (-1 without a provider or without data);
 *   ttft_ms       the engine's when known, else the reports' EWMA;
 *   tokens_per_s  the engine's counters when known, else the reports';
 *   latency_ms    the reports' EWMA (the engine has no cheaper source).
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

/* The engine-side numbers of one endpoint; every field < 0 = unknown. */
typedef struct ctl_signals {
    double running;      /* requests the engine is running */
    double waiting;      /* requests queued in the engine */
    double kv_usage;     /* KV cache usage 0..1 */
    double gpu_usage;    /* GPU KV cache usage 0..1 (legacy name) */
    double ttft_ms;      /* mean time to first token, recent */
    double tpot_ms;      /* mean time per output token, recent */
    double tokens_per_s; /* prompt + generation tokens per second, recent */
    double age_ms;       /* since the last good scrape; < 0 = never */
    double kv_capacity;  /* KV cache capacity in tokens */
} ctl_signals;

/* All fields unknown (-1). */
#define CTL_SIGNALS_UNKNOWN ((ctl_signals){-1, -1, -1, -1, -1, -1, -1, -1, -1})

/* Fills *out with the signals of <ep> (borrowed for the call) at <now_ms>
 * (monotonic). Must write every field; unknown ones as -1. Called from
 * ctl_load_build on the loop thread, once per endpoint. */
typedef void (*ctl_load_signals_fn)(void *arg, const pm_endpoint *ep, uint64_t now_ms,
                                    ctl_signals *out);

ctl_load *ctl_load_new(uint64_t expiry_ms);
void ctl_load_free(ctl_load *l);

/* Sets (or with NULL <fn>, clears) the engine-signal provider; <arg> is
 * borrowed and must stay valid until cleared or ctl_load_free. */
void ctl_load_set_signals(ctl_load *l, ctl_load_signals_fn fn, void *arg);

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
