/* ctl_httproute: the controller's Kubernetes writers for Gateway API
 * HTTPRoutes (DESIGN §3, aibrix.md §6.3), leader only.
 *
 * Managed routes (--manage-httproutes): one HTTPRoute per model with at least
 * one pod, in the namespace of its first pod, named by ctl_httproute_name,
 * labelled app.kubernetes.io/managed-by=llmgw-controller and annotated
 * llmgw.io/model=<model>. One rule: a PathPrefix match for each OpenAI path,
 * each also requiring the header `model: <model>` (Exact); a backendRef to
 * the model's Service (model.aibrix.ai/service-name, else the DNS-safe model
 * name) on the model's port; timeouts.request from
 * --httproute-request-timeout; parentRef the Gateway --gateway-name in
 * --gateway-namespace. A route that drifts (edited spec or labels) is put
 * back; it is deleted when the model's last pod is gone. A route of that name
 * not labelled as ours is never touched (logged once).
 *
 * Status: every HTTPRoute whose spec.parentRefs names our Gateway gets, in
 * status.parents, one entry for that parentRef with controllerName
 * --gateway-controller-name and two conditions, each with reason, message,
 * observedGeneration (the route's metadata.generation) and
 * lastTransitionTime (kept while the condition's status does not change):
 *   Accepted      True, reason Accepted;
 *   ResolvedRefs  True (ResolvedRefs) when every backendRef is a Service
 *                 that exists and selects at least one ready, not
 *                 terminating model pod; else False with BackendNotFound
 *                 (missing Service, or no ready endpoint: the message says
 *                 which) or InvalidKind (not a core Service).
 * Entries of other controllers are kept; our entry is removed from routes
 * that no longer reference the Gateway. Status is written with PUT on the
 * status subresource carrying the resourceVersion we read, so a concurrent
 * writer makes it fail with 409 instead of being overwritten; every write
 * that meets a 409 re-reads the object and recomputes (up to
 * CTL_HTTPROUTE_CONFLICT_RETRIES times, then on the next reconcile).
 *
 * Reconciling runs after any change of routes, Services or pods (debounced),
 * only while leading and once every watch has synced. Loop thread only. */
#ifndef CTL_HTTPROUTE_H
#define CTL_HTTPROUTE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl_kube.h"
#include "ctl_metrics.h"
#include "ctl_src_kube.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

#define CTL_HTTPROUTE_CONFLICT_RETRIES 5
#define CTL_HTTPROUTE_MANAGED_BY       "llmgw-controller"

typedef struct ctl_httproute ctl_httproute;

typedef struct ctl_httproute_opts {
    bool manage;                 /* create/update/delete one route per model */
    const char *namespaces;      /* watched namespaces (comma), NULL/"" = all */
    const char *gateway_name;    /* our Gateway */
    const char *gateway_ns;      /* its namespace */
    const char *controller_name; /* status.parents[].controllerName */
    uint64_t request_timeout_ms; /* timeouts.request of managed routes */
    uint64_t watch_timeout_ms;
    uint64_t backoff_initial_ms;
    uint64_t backoff_max_ms;
} ctl_httproute_opts;

/* Starts the HTTPRoute and Service watches. <src> gives the pods (borrowed);
 * the writer registers itself as its change callback. Writes start when
 * ctl_httproute_set_leading(true) is called. Strings are copied. */
GW_MUST_CHECK gw_err ctl_httproute_start(gw_loop *loop, ctl_kube *kube, ctl_metrics *metrics,
                                         ctl_src_kube *src, const ctl_httproute_opts *o,
                                         ctl_httproute **out);

/* Enables or disables writes (leadership). Enabling reconciles at once. */
void ctl_httproute_set_leading(ctl_httproute *r, bool leading);

/* Stops the watches, drops writes in flight. NULL ok. */
void ctl_httproute_free(ctl_httproute *r);

/* ---- pure parts, exposed for tests ---- */

/* The route name of <model>: "<model>-router" when that is a DNS-1123
 * subdomain (lowercase alphanumerics, '-', '.', at most 253), else the model
 * lowercased with every other character turned into '-' (runs collapsed,
 * trimmed, at most 40 characters), then "-" + the first 12 hex digits of
 * SHA-256(model) + "-router" (AIBrix's rule). Heap string. */
char *ctl_httproute_name(const char *model);

/* The default Service name of <model>: <model> when it is a DNS-1123 label,
 * else the sanitised base + "-" + 12 hex of SHA-256 (at most 63). */
char *ctl_httproute_service_name(const char *model);

/* The managed route for <model> (a full HTTPRoute object). */
json_t *ctl_httproute_build(const char *model, const char *ns, const char *service, uint16_t port,
                            const char *gw_name, const char *gw_ns, uint64_t timeout_ms);

/* True when every key of <want> is in <have> with an equal value (objects
 * recursively, arrays element by element with equal lengths), so fields a
 * server defaults in do not count as drift. */
bool ctl_httproute_subset(const json_t *want, const json_t *have);

/* How a backendRef resolves: 0 = resolved, else a reason and a message
 * (heap). */
typedef int (*ctl_httproute_resolve_fn)(void *arg, const char *ns, const char *service,
                                        const char **reason, char **message);

typedef struct ctl_httproute_env {
    const char *gateway_name;
    const char *gateway_ns;
    const char *controller_name;
    ctl_httproute_resolve_fn resolve;
    void *resolve_arg;
    const char *now; /* RFC 3339 time for new lastTransitionTime values */
} ctl_httproute_env;

/* True when <route> has a parentRef naming our Gateway. */
bool ctl_httproute_targets_us(const json_t *route, const ctl_httproute_env *env);

/* The status <route> should have: a new status object (heap) when it differs
 * from the current one in anything but lastTransitionTime, NULL when it is
 * already right. */
json_t *ctl_httproute_status(const json_t *route, const ctl_httproute_env *env);

#endif
