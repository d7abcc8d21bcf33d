/* ctl_profile: the `model.aibrix.ai/config` JSON parser (aibrix.md §5),
 * shared by every source that carries that document (the file source now,
 * the Kubernetes pod annotation later). It fills the config part of a
 * pm_model: lockedRoutingStrategy, defaultProfile and the profiles, each with
 * routingStrategy, requestsPerSecond and routingConfig (kept as compact JSON
 * text in routing_config_json, key order preserved). Unknown keys are
 * ignored, as AIBrix's Go decoder does; JSON null counts as absent.
 *
 * Refused with GW_EINVAL and a message naming the JSON path
 * ("$.profiles.fast.requestsPerSecond: must be a non-negative integer"):
 * text that is not JSON, a top level that is not an object, `profiles`
 * missing, not an object or empty (AIBrix ignores such a config entirely),
 * more than PM_MAX_PROFILES profiles, a profile that is not an object,
 * strategies or names that are not strings or are longer than PM_MAX_STR,
 * requestsPerSecond that is not a non-negative integer, routingConfig that is
 * not an object or is larger than PM_MAX_JSON once compacted.
 *
 * Profiles come out sorted by name, so equal configs give equal structs and
 * AIBrix's "scan profiles in sorted name order" holds on the worker side.
 * Pure: no I/O, no globals; safe from any thread on distinct outputs. */
#ifndef CTL_PROFILE_H
#define CTL_PROFILE_H

#include <jansson.h>
#include <stddef.h>

#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

/* Parses <len> bytes of JSON <text> into the config fields of <out>
 * (locked_strategy, default_profile, n_profiles, profiles), which must be
 * empty on entry (zero/NULL, as after ctl_profile_clear); out->name is not
 * touched. On GW_OK the fields hold heap copies owned by <out>. On GW_EINVAL
 * *why gets a heap message the caller frees and <out> is untouched. */
GW_MUST_CHECK gw_err ctl_profile_parse(const char *text, size_t len, pm_model *out, char **why);

/* As ctl_profile_parse, from an already-decoded JSON value <root> (borrowed),
 * e.g. a YAML mapping converted to JSON. */
GW_MUST_CHECK gw_err ctl_profile_from_json(const json_t *root, pm_model *out, char **why);

/* Frees the config fields of <m> and zeroes them; m->name is kept. */
void ctl_profile_clear(pm_model *m);

#endif
