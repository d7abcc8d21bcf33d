/* ctl_kobj: reading Kubernetes objects (JSON from the API server) into the
 * controller's terms. Above all the model pod: which model it serves, where,
 * with what engine and PD role, and whether it may get requests
 * (aibrix.md §6.1):
 *   model     label model.aibrix.ai/name, else the annotation of that name
 *             (names with '/' are not valid label values);
 *   port      label model.aibrix.ai/port, default 8000;
 *   metrics   label model.aibrix.ai/metric-port, default the port;
 *   engine    label model.aibrix.ai/engine, default "vllm";
 *   PD        labels roleset-name and role-name;
 *   service   label or annotation model.aibrix.ai/service-name (the Service
 *             managed HTTPRoutes point at; default derived from the model);
 *   routable  status.podIP set, condition Ready=True, no deletionTimestamp;
 *   draining  deletionTimestamp set: no new requests, in-flight ones finish;
 *   skipped   not an HTTP endpoint at all: Ray worker pods
 *             (ray.io/node-type=worker) and StormService pods with
 *             pod-group-index > 0.
 * The model.aibrix.ai/config annotation is returned as text; parsing it is
 * the caller's (once per change, ctl_profile).
 *
 * Pure: no I/O, no globals; safe from any thread on distinct objects. The
 * pod parser is fuzzed (tests/fuzz/fuzz_ctl_kobj.c). */
#ifndef CTL_KOBJ_H
#define CTL_KOBJ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

#define CTL_KOBJ_LABEL_MODEL    "model.aibrix.ai/name"
#define CTL_KOBJ_LABEL_PORT     "model.aibrix.ai/port"
#define CTL_KOBJ_LABEL_MPORT    "model.aibrix.ai/metric-port"
#define CTL_KOBJ_LABEL_ENGINE   "model.aibrix.ai/engine"
#define CTL_KOBJ_ANN_CONFIG     "model.aibrix.ai/config"
#define CTL_KOBJ_SERVICE_NAME   "model.aibrix.ai/service-name"
#define CTL_KOBJ_LABEL_ROLESET  "roleset-name"
#define CTL_KOBJ_LABEL_ROLE     "role-name"
#define CTL_KOBJ_DEFAULT_PORT   8000
#define CTL_KOBJ_DEFAULT_ENGINE "vllm"

/* A model pod. Strings are owned; NULL when absent. */
typedef struct ctl_kpod {
    char *ns;
    char *name;
    char *uid;
    char *rv;    /* metadata.resourceVersion */
    char *model; /* NULL: not a model pod (ignored) */
    char *ip;    /* status.podIP */
    uint16_t port;
    uint16_t metric_port;
    char *engine;
    char *roleset;
    char *role;
    bool ready;       /* Ready=True */
    bool terminating; /* deletionTimestamp set */
    bool skipped;     /* not an HTTP endpoint (Ray worker, pod group index > 0) */
    char *config;     /* the model.aibrix.ai/config annotation text */
    char *service;    /* model.aibrix.ai/service-name label or annotation; NULL = none */
    uint32_t n_labels;
    char **labels; /* "key=value", sorted by key, at most PM_MAX_LABELS */
} ctl_kpod;

/* Reads <pod> (a Pod object) into zeroed <out>. GW_EINVAL with a heap *why
 * (naming the field) when the object is not a usable pod: no
 * metadata.name/namespace, a label that is not a string, a bad port label,
 * strings over PM_MAX_STR. A pod without the model label or annotation is
 * fine (out->model NULL). <out> is filled only on GW_OK. */
GW_MUST_CHECK gw_err ctl_kpod_parse(const json_t *pod, ctl_kpod *out, char **why);

/* Frees what <p> owns and zeroes it. */
void ctl_kpod_fini(ctl_kpod *p);

/* True when <p> belongs in the routing table: a model pod with an IP that is
 * not skipped (it may still be not ready or draining). */
bool ctl_kpod_is_endpoint(const ctl_kpod *p);

/* Fills zeroed <ep> from <p> (which must satisfy ctl_kpod_is_endpoint):
 * ready = Ready and not terminating; draining = terminating. */
void ctl_kpod_endpoint(const ctl_kpod *p, pm_endpoint *ep);

/* ---- JSON helpers for objects ---- */

/* The string at <obj>.<k1>[.<k2>[.<k3>]] (NULL-terminated key list), or NULL. */
const char *ctl_kobj_str(const json_t *obj, ...);

/* metadata.namespace / metadata.name / metadata.labels[key]. */
const char *ctl_kobj_ns(const json_t *obj);
const char *ctl_kobj_name(const json_t *obj);
const char *ctl_kobj_label(const json_t *obj, const char *key);

/* True when every key=value of <selector> (a JSON object of strings, e.g. a
 * Service's spec.selector) is among the "key=value" <labels>. An empty or
 * missing selector selects nothing (as a Service without a selector). */
bool ctl_kobj_selects(const json_t *selector, char *const *labels, uint32_t n_labels);

#endif
