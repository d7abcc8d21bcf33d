/* ctl_src_endpoints: the `endpoints` discovery source (DESIGN §3, Llumnix's
 * --llm-backend-endpoints): a static comma-separated list of "host:port"
 * entries that all serve one model (--llm-backend-model). Every endpoint is
 * ready and never changes; the pod name is "host:port", the engine "vllm".
 * An entry without a port gets port 80, as Llumnix's static discovery does.
 * IPv6 literals are written in brackets ("[::1]:8000"). Whitespace around
 * entries is ignored.
 *
 * Refused with GW_EINVAL and a message naming the entry (1-based position
 * and text): an empty list, an empty entry ("a,,b" or a trailing comma), a bad
 * host or port, the same host:port twice, more than PM_MAX_ENDPOINTS entries,
 * and an empty or over-long model name. Pure; safe from any thread. */
#ifndef CTL_SRC_ENDPOINTS_H
#define CTL_SRC_ENDPOINTS_H

#include "ctl_store.h"
#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

/* Port used for entries given without one (Llumnix's default). */
#define CTL_SRC_ENDPOINTS_DEFAULT_PORT 80

/* Parses <list> into a source set with one model <model> (no config
 * profiles) and its endpoints in list order. On GW_OK *out is a new set the
 * caller owns; on GW_EINVAL *why is a heap message and *out is untouched. */
GW_MUST_CHECK gw_err ctl_src_endpoints_parse(const char *list, const char *model, pm_snapshot **out,
                                             char **why);

/* Parses <list> and hands the set to <store> (borrowed) under
 * CTL_SRC_ENDPOINTS. Errors as ctl_src_endpoints_parse. Loop thread only. */
GW_MUST_CHECK gw_err ctl_src_endpoints_start(ctl_store *store, const char *list, const char *model,
                                             char **why);

#endif
