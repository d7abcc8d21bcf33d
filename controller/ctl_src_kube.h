/* ctl_src_kube: the `kubernetes` discovery source (DESIGN §3). It watches
 *   - model pods (label selector --kube-pod-selector, default
 *     model.aibrix.ai/name) in every namespace or in each of --kube-namespaces;
 *   - optionally one ConfigMap holding the gateway settings and one Secret
 *     holding users and API keys, each under a data key whose value is a YAML
 *     document with the schema of the local --config file (ctl_src_file);
 * and keeps the store's CTL_SRC_KUBERNETES set equal to what they say.
 *
 * Pods become endpoints as ctl_kobj describes (ready, draining, port, engine,
 * PD role, labels). A model's config comes from the model.aibrix.ai/config
 * annotation of its first pod (by namespace/name) whose annotation parses;
 * each pod's annotation is parsed once per change of its text, never per
 * request or per event. A bad annotation is logged (CTL-KUBE-CONFIG-INVALID),
 * counted (config_errors_total{source="kubernetes-annotation"}) and reported
 * as a Warning Event on the pod (reason InvalidModelConfig); when no pod of
 * the model has a good annotation any more but some have a bad one, the model
 * keeps its last good config (CTL-KUBE-CONFIG-KEPT). A model whose pods all
 * dropped the annotation has none.
 *
 * The ConfigMap and Secret are all-or-nothing like the file: a document with
 * any problem is refused (logged, counted under kubernetes-configmap /
 * kubernetes-secret, a Warning Event InvalidConfig on the object) and the last
 * good one stays, also when the object or its key is deleted. From the
 * ConfigMap only `gateway:` is used, from the Secret only the users (Secret
 * contents never reach the log: only positions and field paths do).
 *
 * Nothing reaches the store before every watch has completed its first LIST,
 * so workers never see a half-listed fleet. Changes are coalesced: one
 * rebuild per loop iteration, however many events arrived. Loop thread only. */
#ifndef CTL_SRC_KUBE_H
#define CTL_SRC_KUBE_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_kevent.h"
#include "ctl_kobj.h"
#include "ctl_kube.h"
#include "ctl_metrics.h"
#include "ctl_store.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct ctl_src_kube ctl_src_kube;

typedef struct ctl_src_kube_opts {
    const char *namespaces;    /* comma-separated; NULL or "" = all namespaces */
    const char *pod_selector;  /* label selector of model pods; "" = every pod */
    const char *config_ns;     /* namespace of the ConfigMap and the Secret */
    const char *configmap;     /* NULL or "" = none */
    const char *configmap_key; /* data key holding the YAML */
    const char *secret;        /* NULL or "" = none */
    const char *secret_key;
    uint64_t watch_timeout_ms;
    uint64_t backoff_initial_ms;
    uint64_t backoff_max_ms;
} ctl_src_kube_opts;

/* Starts the watches. Everything passed is borrowed and must outlive the
 * source (<events> may be NULL: no Events); strings in <o> are copied. */
GW_MUST_CHECK gw_err ctl_src_kube_start(gw_loop *loop, ctl_kube *kube, ctl_store *store,
                                        ctl_metrics *metrics, ctl_kevent *events,
                                        const ctl_src_kube_opts *o, ctl_src_kube **out);

/* Stops every watch and frees <s>; the set it gave the store stays. NULL ok. */
void ctl_src_kube_free(ctl_src_kube *s);

/* True once every watch has delivered its first LIST. */
bool ctl_src_kube_synced(const ctl_src_kube *s);

/* Calls <fn> for every model pod known (parsed; borrowed for the call), in
 * namespace/name order. */
typedef void (*ctl_src_kube_pod_fn)(const ctl_kpod *p, void *arg);
void ctl_src_kube_foreach_pod(const ctl_src_kube *s, ctl_src_kube_pod_fn fn, void *arg);

/* Runs <fn> after every rebuild that handed the store a new set (the
 * HTTPRoute writer follows the pods this way). */
void ctl_src_kube_on_change(ctl_src_kube *s, void (*fn)(void *arg), void *arg);

#endif
