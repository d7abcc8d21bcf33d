/* dp_fixture: builds small pm_snapshots by hand for dataplane unit tests. */
#ifndef DP_FIXTURE_H
#define DP_FIXTURE_H

#include "pm/pm_msgs.h"

/* A snapshot with one model <model> served by <n> endpoints 10.0.0.<i+1>:8000
 * with ids 100+i, all ready. Caller frees with pm_snapshot_free. */
pm_snapshot *fx_snapshot(const char *model, unsigned n);

/* Adds a profile to model 0. */
void fx_add_profile(pm_snapshot *s, const char *name, const char *strategy);

#endif
