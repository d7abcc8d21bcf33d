/* dp_snap: the worker's view of one routing snapshot: the decoded pm_snapshot
 * plus everything derived from it once, when it arrives, so the request path
 * never scans or parses:
 * - name -> routable model: every model, and every LoRA adapter listed in an
 *   endpoint's `adapters` (its base model's config, and only the endpoints
 *   that serve the adapter);
 * - every strategy string (locked, per profile, the gateway default)
 *   compiled to a dp_plan; an invalid one is logged here, once, and counts as
 *   unset;
 * - each profile's routingConfig auto-selection hints (promptTokensGte/Lt,
 *   maxTokensGte/Lt), and the hinted profiles in name order;
 * - each endpoint's "ip:port" text;
 * - the users, by name and by API key digest (dp_users).
 * Immutable after dp_snap_new and refcounted: the holder keeps one ref,
 * every request in flight keeps one, and the old generation dies with its
 * last request (an nginx cycle). Loop thread only (the refcount is not
 * atomic). */
#ifndef DP_SNAP_H
#define DP_SNAP_H

#include <stdbool.h>
#include <stdint.h>

#include "pm/pm_msgs.h"

typedef struct dp_snap dp_snap;

#include "dp_load.h"
#include "dp_traffic.h"
#include "dp_users.h"

typedef struct dp_plan dp_plan; /* dp_strategy.h */

/* A hint bound that is absent. */
#define DP_HINT_NONE (-1)

/* A config profile, compiled. */
typedef struct dp_prof {
    const pm_profile *p; /* borrowed from the snapshot */
    const dp_plan *plan; /* routingStrategy compiled; NULL if unset or invalid */
    uint32_t n_hints;    /* auto-selection hints present (0..4) */
    int64_t prompt_gte, prompt_lt, max_gte, max_lt; /* DP_HINT_NONE = absent */
} dp_prof;

typedef struct dp_model {
    const char *name;      /* what requests call it: the model's or the adapter's name */
    const pm_model *model; /* config (the base model's, for an adapter); borrowed */
    bool adapter;          /* a LoRA adapter of model->name */
    uint32_t n_eps;
    uint32_t *eps;         /* indexes into pm->endpoints of every endpoint serving it */
    const dp_prof *profs;  /* parallel to model->profiles */
    const dp_plan *locked; /* lockedRoutingStrategy compiled; NULL if unset or invalid */
    uint32_t n_auto;
    const uint32_t *auto_order; /* profiles with >= 1 hint, by name (strcmp order) */
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
/* The model or LoRA adapter named <name> (NUL-terminated), or NULL. A base
 * model's name wins over an adapter of the same name. O(1) expected. */
const dp_model *dp_snap_model(const dp_snap *s, const char *name);
/* The states array, parallel to pm->endpoints (borrowed). */
dp_ep **dp_snap_states(const dp_snap *s);
/* Runtime state of endpoint index <i> (see dp_load.h). */
dp_ep *dp_snap_state(const dp_snap *s, uint32_t i);
/* "ip:port" (IPv6: "[ip]:port") of endpoint index <i>. */
const char *dp_snap_addr(const dp_snap *s, uint32_t i);
/* The snapshot's users index. */
const dp_users *dp_snap_users(const dp_snap *s);
/* Whether any user or profile sets a quota (dp_users_any_limit). */
bool dp_snap_has_limits(const dp_snap *s);
/* The gateway's default strategy (settings.routing_strategy) compiled; NULL
 * if unset or invalid. */
const dp_plan *dp_snap_default_plan(const dp_snap *s);

/* The snapshot's route config (docs/traffic.md); NULL = none. */
const gw_route_cfg *dp_snap_traffic(const dp_snap *s);
dp_traffic_ref *dp_snap_traffic_ref(const dp_snap *s);
/* Gives <s> its route config (<r>'s ref is taken), right after dp_snap_new,
 * before the snapshot is installed or shared. */
void dp_snap_set_traffic(dp_snap *s, dp_traffic_ref *r);

#endif
