/* dp_load: per-endpoint runtime state of this worker: its own exact in-flight
 * counts, the fleet-wide view from the controller's load messages, and the
 * counters it reports back (DESIGN §4).
 *
 * States are keyed by endpoint identity (model, address, port), not by the
 * controller's endpoint id, so a reservation made before a controller restart
 * is released on the same endpoint even if ids were reassigned. A state
 * outlives the snapshots that list it while requests still hold it.
 *
 * A state is freed only when it is in no live snapshot, no dp_snap still
 * references it (an old generation a request holds) and nothing is in
 * flight on it.
 *
 * The worker's view of an endpoint's load is
 *   fleet-wide value - this worker's share in it + this worker's exact value now,
 * which is fresh locally and consistent fleet-wide; this holds for in-flight
 * requests (dp_ep_load) and in-flight tokens (dp_ep_tokens). The engine's
 * own signals (running, waiting, KV usage, latencies, throughput) come from
 * the controller's scrape as they are: a double < 0 means unknown (never
 * scraped, or stale: the controller sends -1 for data it no longer trusts).
 *
 * KV usage is also estimated for now (dp_ep_kv_estimate): the scraped usage
 * plus the change of the in-flight tokens (dp_ep_tokens) since that scrape,
 * over the engine's KV capacity. The scrape happened metrics_age_ms before
 * the load message arrived; the tokens at that time are read from a ring of
 * what dp_ep_tokens was right after each of the last DP_LOAD_RING load
 * messages (the newest at or before the scrape; the oldest kept when the
 * scrape is older than all of them) when a message first announces that
 * scrape, and kept while later messages repeat it (however many: a slow
 * --scrape-interval, failing scrapes), so each fresh scrape resets the
 * estimate to the engine's word and nothing sent since it is forgotten.
 * Requests started between the scrape and the sample before it count
 * twice: the estimate errs toward spreading. Loop thread only. */
#ifndef DP_LOAD_H
#define DP_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_outlier.h"
#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

#define DP_LOAD_RING 16

typedef struct dp_load dp_load;

/* Visible because the hot path reads and bumps these fields directly. */
typedef struct dp_ep {
    char *key;                    /* "model|address:port", owned */
    uint32_t inflight;            /* this worker's requests in flight now */
    uint64_t inflight_tokens;     /* this worker's token estimate in flight now */
    uint32_t fleet_inflight;      /* fleet-wide value from the last load message */
    uint32_t own_in_fleet;        /* this worker's share inside fleet_inflight */
    uint64_t fleet_tokens;        /* fleet-wide in-flight tokens, last load message */
    uint64_t own_tokens_in_fleet; /* this worker's share inside fleet_tokens */
    /* From the last load message; every double < 0 = unknown. */
    double running;          /* engine num_requests_running */
    double waiting;          /* engine num_requests_waiting */
    double kv_usage;         /* engine KV cache usage, 0..1 */
    double gpu_usage;        /* engine GPU KV cache usage, 0..1 (legacy vLLM / SGLang name) */
    double latency_ms;       /* EWMA end-to-end latency */
    double ttft_ms;          /* EWMA time to first token */
    double tpot_ms;          /* engine mean time per output token */
    double tokens_per_s;     /* recent token throughput (prompt + generation) */
    double metrics_age_ms;   /* since the last good scrape */
    double kv_capacity;      /* engine KV cache capacity in tokens */
    uint64_t kv_base_tokens; /* dp_ep_tokens when kv_usage was scraped (estimated) */
    double kv_scrape_at;     /* when that scrape was (monotonic ms, this worker's); < 0 = none */
    /* counters since the previous report */
    uint32_t completed;
    uint32_t errors;
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t latency_ms_sum;
    uint64_t ttft_ms_sum;
    /* what the last DP_LOAD_RING reports said about inflight, by seq */
    uint64_t ring_seq[DP_LOAD_RING];
    uint32_t ring_inflight[DP_LOAD_RING];
    uint64_t ring_tokens[DP_LOAD_RING];
    /* dp_ep_tokens right after each of the last DP_LOAD_RING load messages,
     * and when they arrived (monotonic ms); msg_n messages in all. */
    uint64_t msg_ms[DP_LOAD_RING];
    uint64_t msg_tokens[DP_LOAD_RING];
    uint64_t msg_n;
    dp_outlier outlier; /* passive ejection (dp_outlier) */
    uint16_t pfx_ns;    /* dp_prefix: namespace of its model (valid when pfx_slot != 0) */
    uint16_t pfx_slot;  /* dp_prefix: slot + 1 in that namespace; 0 = none */
    bool live;          /* listed in the current snapshot */
    uint32_t snaps;     /* snapshots (dp_snap) whose states array holds it */
    struct dp_ep *next; /* hash chain */
} dp_ep;

dp_load *dp_load_new(void);
/* Frees every state. NULL ok. */
void dp_load_free(dp_load *l);

/* Finds or creates the state of each endpoint of <pm> and returns a new
 * array parallel to pm->endpoints (the caller owns the array, not the
 * states). States not in <pm> and with nothing in flight are freed. */
dp_ep **dp_load_apply_snapshot(dp_load *l, const pm_snapshot *pm);

/* Takes the fleet-wide numbers of <msg>, received at <now_ms> (monotonic).
 * <states> is the current snapshot's array (from dp_load_apply_snapshot) for
 * <pm>, whose ids <msg> uses. */
void dp_load_apply_fleet(dp_load *l, const pm_load *msg, const pm_snapshot *pm, dp_ep **states,
                         uint64_t worker_id, uint64_t now_ms);

/* Builds this worker's report for the endpoints of <pm> and resets the
 * "since the previous report" counters. Caller frees with pm_report_free. */
pm_report *dp_load_report(dp_load *l, const pm_snapshot *pm, dp_ep **states, uint64_t worker_id,
                          uint64_t seq);

/* The in-flight count routing decisions use (see the file comment). */
static inline uint32_t
dp_ep_load(const dp_ep *ep)
{
    uint32_t others =
        ep->fleet_inflight > ep->own_in_fleet ? ep->fleet_inflight - ep->own_in_fleet : 0;
    return others + ep->inflight;
}

/* The in-flight token estimate routing decisions use, built like dp_ep_load. */
static inline uint64_t
dp_ep_tokens(const dp_ep *ep)
{
    uint64_t others =
        ep->fleet_tokens > ep->own_tokens_in_fleet ? ep->fleet_tokens - ep->own_tokens_in_fleet : 0;
    return others + ep->inflight_tokens;
}

/* The engine's KV cache usage now, estimated (see the file comment) as if
 * its capacity were <capacity> tokens:
 *   kv_usage + (dp_ep_tokens - kv_base_tokens) / capacity, at least 0;
 * kv_usage as scraped when <capacity> is not > 0; < 0 when kv_usage is. */
static inline double
dp_ep_kv_estimate_as(const dp_ep *ep, double capacity)
{
    double est;

    if (ep->kv_usage < 0 || !(capacity > 0))
        return ep->kv_usage;
    est = ep->kv_usage + ((double)dp_ep_tokens(ep) - (double)ep->kv_base_tokens) / capacity;
    return est > 0 ? est : 0;
}

/* dp_ep_kv_estimate_as with the engine's own capacity. */
static inline double
dp_ep_kv_estimate(const dp_ep *ep)
{
    return dp_ep_kv_estimate_as(ep, ep->kv_capacity);
}

/* Sum of this worker's in-flight requests over every endpoint. */
uint32_t dp_load_total_inflight(const dp_load *l);

#endif
