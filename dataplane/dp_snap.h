/* dp_snap: the worker's view of one routing snapshot: the decoded pm_snapshot
 * plus indexes built once when it arrives (model name -> model and its
 * endpoints), so the request path never scans. Immutable after dp_snap_new and
 * refcounted: the holder keeps one ref, every request in flight keeps one, and
 * the old generation dies with its last request (an nginx cycle).
 * Loop thread only (the refcount is not atomic). */
#ifndef DP_SNAP_H
#define DP_SNAP_H

#include <stdint.h>

#include "pm/pm_msgs.h"

typedef struct dp_snap dp_snap;

#include "dp_load.h"

typedef struct dp_model {
    const pm_model *model; /* borrowed from the snapshot */
    uint32_t n_eps;
    uint32_t *eps; /* indexes into pm->endpoints of every endpoint serving it */
} dp_model;

/* Takes ownership of <pm> and of <states> (an array parallel to
 * pm->endpoints from dp_load_apply_snapshot; the states themselves belong to
 * the dp_load). Returns with one ref. */
dp_snap *dp_snap_new(pm_snapshot *pm, dp_ep **states);
dp_snap *dp_snap_ref(dp_snap *s);
/* Drops a ref; frees on the last. NULL ok. */
void dp_snap_unref(dp_snap *s);

const pm_snapshot *dp_snap_pm(const dp_snap *s);
uint64_t dp_snap_gen(const dp_snap *s);
/* The model named <name> (NUL-terminated), or NULL. O(1) expected. */
const dp_model *dp_snap_model(const dp_snap *s, const char *name);
/* The states array, parallel to pm->endpoints (borrowed). */
dp_ep **dp_snap_states(const dp_snap *s);
/* Runtime state of endpoint index <i> (see dp_load.h). */
dp_ep *dp_snap_state(const dp_snap *s, uint32_t i);

#endif
