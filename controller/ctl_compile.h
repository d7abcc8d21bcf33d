/* ctl_compile: turns the store's source sets into an immutable pm_snapshot
 * (DESIGN §3) and numbers it.
 *
 * Merge rules: models are unioned across sources by name (the first source
 * in ctl_src_kind order that lists a model defines its config) and sorted by
 * name; endpoints are unioned by (model, ip, port) (first source wins), get
 * their stable id from the store's id map, and are sorted by id; each
 * endpoint's adapters are its source's, then the store's discovered ones for
 * its (ip, port) (sorted; duplicates and the model's own name left out,
 * capped at PM_MAX_ADAPTERS); the gateway
 * settings come from the first source that sets them. An endpoint whose
 * model no source lists gets a bare model entry (no profiles).
 *
 * Generations: the compiler starts at <gen_seed> (main passes gw_wall_ms()
 * at start, so generations keep increasing across controller restarts) and
 * adds one per new snapshot. A compile whose content (everything but the
 * envelope) equals the current snapshot's publishes nothing and keeps the
 * generation. <epoch> is random per process and stamped into every envelope.
 * Generation 0 never names a real snapshot: it marks "none yet".
 *
 * Ownership: the compiler owns the current snapshot; ctl_compile_current's
 * pointer stays valid until the next ctl_compile_run that reports a change,
 * or ctl_compile_free. Loop thread only. */
#ifndef CTL_COMPILE_H
#define CTL_COMPILE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_store.h"
#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

typedef struct ctl_compile ctl_compile;

ctl_compile *ctl_compile_new(uint64_t gen_seed, uint64_t epoch);
/* Frees the compiler and its current snapshot. NULL is a no-op. */
void ctl_compile_free(ctl_compile *c);

/* Compiles the store's sets. *changed is true when a new snapshot (gen + 1,
 * sent_ms = <wall_ms>) replaced the current one, false when the content was
 * identical. GW_EFULL (logged, nothing changes) when the merged sets exceed
 * PM_MAX_MODELS or PM_MAX_ENDPOINTS. */
GW_MUST_CHECK gw_err ctl_compile_run(ctl_compile *c, ctl_store *st, uint64_t wall_ms,
                                     bool *changed);

/* What every snapshot carries besides the store's sets (docs/traffic.md):
 * the route config (<policy> and <json> both NULL or "" = none) and the mirror
 * file's text (NULL = none); copied. Takes effect at the next
 * ctl_compile_run, which publishes a new generation when they changed. */
void ctl_compile_set_traffic(ctl_compile *c, const char *policy, const char *json);
void ctl_compile_set_mirror(ctl_compile *c, const char *text);

/* The current snapshot, or NULL before the first compile. */
const pm_snapshot *ctl_compile_current(const ctl_compile *c);

/* The current generation (0 before the first compile) and the epoch. */
uint64_t ctl_compile_gen(const ctl_compile *c);
uint64_t ctl_compile_epoch(const ctl_compile *c);

#endif
