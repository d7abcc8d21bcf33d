/* dp_fixture: builds small pm_snapshots by hand for dataplane unit tests.
 * Mutate the pm_snapshot before handing it to dp_snap_new: a dp_snap
 * compiles strategies, hints and adapters when it is made. */
#ifndef DP_FIXTURE_H
#define DP_FIXTURE_H

#include "pm/pm_msgs.h"

/* A snapshot with one model <model> served by <n> endpoints 10.0.0.<i+1>:8000
 * with ids 100+i, pods pod-<i>, all ready. Caller frees with
 * pm_snapshot_free. */
pm_snapshot *fx_snapshot(const char *model, unsigned n);

/* Adds a profile to model 0 (<strategy> and <routing_config_json> may be
 * NULL). Returns it. */
pm_profile *fx_add_profile(pm_snapshot *s, const char *name, const char *strategy);
pm_profile *fx_add_profile_rc(pm_snapshot *s, const char *name, const char *strategy,
                              const char *routing_config_json);

/* Adds a model (no endpoints) and returns it. */
pm_model *fx_add_model(pm_snapshot *s, const char *name);

/* Adds one endpoint of <model> at <ip>:8000 (id 100 + index), ready. */
pm_endpoint *fx_add_endpoint(pm_snapshot *s, const char *model, const char *ip);

/* Appends "key=value" (or any string) to endpoint <i>'s labels. */
void fx_add_label(pm_snapshot *s, unsigned i, const char *label);

/* Appends a LoRA adapter to endpoint <i>. */
void fx_add_adapter(pm_snapshot *s, unsigned i, const char *adapter);

#endif
