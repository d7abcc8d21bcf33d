/* ctl_src_etcd: the `etcd` discovery source (seed 004, Llumnix's etcd
 * resolver) through etcd's v3 JSON gateway with libcurl on the loop.
 *
 * A cycle is: authenticate when --discovery-etcd-username is set
 * (/v3/auth/authenticate; the token goes in the Authorization header and is
 * renewed when etcd refuses it), a full read of the prefix
 * `llumnix/discovery/` (/v3/kv/range), then a watch from the next revision
 * (/v3/watch, a chunked stream of newline-separated JSON messages) that
 * applies PUT/DELETE events as they come. A new cycle starts every
 * --discovery-etcd-refresh-interval-sec (the safety net for a missed event)
 * and whenever the watch ends.
 *
 * Members (--discovery-etcd-endpoints, comma list) are used one at a time; a
 * failed connect (within --discovery-etcd-dial-timeout), request (twice
 * that) or watch moves to the next member after a short backoff. When every
 * member failed in a row the store counts as down (CTL-DISCOVERY-STALE once,
 * llmgw_controller_discovery_store_up{source="etcd"} 0) and the last known
 * instance list stays; the first good range logs CTL-DISCOVERY-RECOVERED.
 * Unlike Llumnix, a dead first member does not stop the start.
 *
 * Removal: a DELETE event (lease expired or revoked) removes the instance at
 * once; an instance that is merely missing from a range (the cluster lost its
 * data) is retained until its registration's TTL, --discovery-etcd-lease-ttl,
 * has passed, so registrars have time to re-register (ctl_disc_table).
 * Loop thread only. */
#ifndef CTL_SRC_ETCD_H
#define CTL_SRC_ETCD_H

#include <stdint.h>

#include "ctl_metrics.h"
#include "ctl_store.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct ctl_src_etcd_opts {
    const char *endpoints; /* all borrowed for the call */
    const char *username;  /* "" = no auth */
    const char *password;
    uint64_t dial_timeout_ms;
    uint64_t lease_ttl_ms;
    uint64_t refresh_ms;
} ctl_src_etcd_opts;

typedef struct ctl_src_etcd ctl_src_etcd;

/* Starts the first cycle. The store and metrics are borrowed for the
 * source's life. GW_EINVAL with a heap *why for a bad endpoint list. */
GW_MUST_CHECK gw_err ctl_src_etcd_start(gw_loop *loop, ctl_store *store, ctl_metrics *metrics,
                                        const ctl_src_etcd_opts *opts, ctl_src_etcd **out,
                                        char **why);

/* Cancels every transfer and frees. NULL ok. */
void ctl_src_etcd_free(ctl_src_etcd *s);

#endif
