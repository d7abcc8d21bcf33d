/* ctl_leader: leader election through a coordination.k8s.io/v1 Lease, with
 * client-go's leaderelection semantics, so one controller replica writes to
 * Kubernetes and serves workers while the others stand by (DESIGN §1, §3).
 *
 * Every --leader-elect-retry-period (jittered up to 1.2x) the Lease is read:
 *   - absent: create it holding it (acquireTime, renewTime = now);
 *   - held by us: renew (renewTime = now) with an update carrying the
 *     resourceVersion read, so two writers can never both succeed;
 *   - held by another: it is valid until leaseDurationSeconds after the
 *     moment *we* last saw its record change (local monotonic time, so clock
 *     skew between nodes does not matter); once that passes, or when the
 *     holder is empty (a released lease), take it over (leaseTransitions+1).
 * A leader that cannot renew for --leader-elect-renew-deadline steps down
 * before its lease can expire in another replica's eyes (renew deadline <
 * lease duration), so there is never a moment with two leaders. On orderly
 * shutdown the leader releases the Lease (empty holder, 1 s duration) so a
 * standby takes over at its next retry rather than after a lease duration.
 * Failover after a crash takes at most lease duration + retry period.
 *
 * Loop thread only. */
#ifndef CTL_LEADER_H
#define CTL_LEADER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl_kube.h"
#include "ctl_metrics.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct ctl_leader ctl_leader;

/* Leadership changed to <leading>. */
typedef void (*ctl_leader_fn)(void *arg, bool leading);

typedef struct ctl_leader_opts {
    const char *ns;       /* Lease namespace */
    const char *name;     /* Lease name */
    const char *identity; /* holderIdentity */
    uint64_t lease_duration_ms;
    uint64_t renew_deadline_ms;
    uint64_t retry_period_ms;
} ctl_leader_opts;

/* Starts campaigning at once. <kube>, <metrics> borrowed; strings copied. */
GW_MUST_CHECK gw_err ctl_leader_start(gw_loop *loop, ctl_kube *kube, ctl_metrics *metrics,
                                      const ctl_leader_opts *o, ctl_leader_fn cb, void *arg,
                                      ctl_leader **out);

bool ctl_leader_is_leader(const ctl_leader *l);

/* Stops campaigning; when leading, steps down (the callback runs with false)
 * and releases the Lease, then calls <done> once (at once when not leading
 * or when the release cannot be sent). */
void ctl_leader_release(ctl_leader *l, void (*done)(void *arg), void *arg);

/* Cancels everything. NULL ok. */
void ctl_leader_free(ctl_leader *l);

/* ---- pure part, exposed for tests ---- */

typedef enum ctl_leader_action {
    CTL_LEADER_WAIT = 0, /* another holder's lease is still valid */
    CTL_LEADER_RENEW,    /* ours: renew it */
    CTL_LEADER_TAKE,     /* expired or released: take it over */
} ctl_leader_action;

/* What to do with <lease> (a Lease object) seen at monotonic <now_ms>, given
 * that its record last changed at <observed_ms>. */
ctl_leader_action ctl_leader_decide(const json_t *lease, const char *identity, uint64_t observed_ms,
                                    uint64_t now_ms, uint64_t default_duration_ms);

#endif
