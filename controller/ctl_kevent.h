/* ctl_kevent: Kubernetes Events about objects the controller reads (a bad
 * model.aibrix.ai/config annotation on a pod, a bad ConfigMap), so
 * `kubectl describe pod` and `kubectl get events` show the problem where
 * the operator looks. Events are core/v1 Events written with POST, named
 * "<object>.<hex nanoseconds>" as client-go's recorder names them, type
 * Warning or Normal, source.component "llmgw-controller".
 *
 * Only the leader writes (DESIGN §3): while disabled, events are dropped
 * (logged at info). A failed write is logged and counted, never retried:
 * the controller's own log line and metric carry the same fact. Loop thread
 * only. */
#ifndef CTL_KEVENT_H
#define CTL_KEVENT_H

#include <jansson.h>
#include <stdbool.h>

#include "ctl_kube.h"
#include "ctl_metrics.h"

typedef struct ctl_kevent ctl_kevent;

/* <kube> and <metrics> are borrowed; <instance> (copied) is
 * reportingInstance (the controller's identity). Starts disabled. */
ctl_kevent *ctl_kevent_new(ctl_kube *kube, ctl_metrics *metrics, const char *instance);
/* Cancels writes in flight. NULL ok. */
void ctl_kevent_free(ctl_kevent *ev);

void ctl_kevent_enable(ctl_kevent *ev, bool on);

/* Records an event about <obj> (a full object with apiVersion, kind and
 * metadata; borrowed): <type> "Warning" or "Normal", <reason> a CamelCase
 * word, <message> (truncated to 1024 bytes). */
void ctl_kevent_emit(ctl_kevent *ev, const json_t *obj, const char *type, const char *reason,
                     const char *message);

/* Builds the Event object for <obj> at wall time <now_ms> (pure; for tests). */
json_t *ctl_kevent_build(const json_t *obj, const char *type, const char *reason,
                         const char *message, const char *instance, uint64_t now_ms);

#endif
