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
 * which is fresh locally and consistent fleet-wide. Loop thread only. */
#ifndef DP_LOAD_H
#define DP_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

#define DP_LOAD_RING 16

typedef struct dp_load dp_load;

/* Visible because the hot path reads and bumps these fields directly. */
typedef struct dp_ep {
    char *key;                /* "model|address:port", owned */
    uint32_t inflight;        /* this worker's requests in flight now */
    uint64_t inflight_tokens; /* this worker's token estimate in flight now */
    uint32_t fleet_inflight;  /* fleet-wide value from the last load message */
    uint32_t own_in_fleet;    /* this worker's share inside fleet_inflight */
    double latency_ms;        /* fleet EWMA from the controller; < 0 unknown */
    double ttft_ms;           /* fleet EWMA from the controller; < 0 unknown */
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

/* Takes the fleet-wide numbers of <msg>. <states> is the current snapshot's
 * array (from dp_load_apply_snapshot) for <pm>, whose ids <msg> uses. */
void dp_load_apply_fleet(dp_load *l, const pm_load *msg, const pm_snapshot *pm, dp_ep **states,
                         uint64_t worker_id);

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

/* Sum of this worker's in-flight requests over every endpoint. */
uint32_t dp_load_total_inflight(const dp_load *l);

#endif
