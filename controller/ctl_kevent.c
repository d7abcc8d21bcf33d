/* ctl_kevent: Events for objects the controller reads (see ctl_kevent.h). */
#include "ctl_kevent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_kobj.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_loop.h"
#include "gw/gw_mem.h"

#define MAX_MESSAGE  1024
#define MAX_INFLIGHT 64

struct ctl_kevent {
    ctl_kube *kube;
    ctl_metrics *metrics;
    char *instance;
    bool enabled;
    unsigned inflight;
};

ctl_kevent *
ctl_kevent_new(ctl_kube *kube, ctl_metrics *metrics, const char *instance)
{
    ctl_kevent *ev = gw_xcalloc(1, sizeof(*ev));

    ev->kube = kube;
    ev->metrics = metrics;
    ev->instance = gw_xstrdup(instance != NULL ? instance : "llmgw-controller");
    return ev;
}

void
ctl_kevent_free(ctl_kevent *ev)
{
    if (ev == NULL)
        return;
    /* Requests in flight belong to the client, which is freed after us
     * (ctl_ctx order) and cancels them; their callbacks then never run. */
    free(ev->instance);
    free(ev);
}

void
ctl_kevent_enable(ctl_kevent *ev, bool on)
{
    if (ev != NULL)
        ev->enabled = on;
}

static void
rfc3339(char *buf, size_t n, uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *
ctl_kevent_build(const json_t *obj, const char *type, const char *reason, const char *message,
                 const char *instance, uint64_t now_ms)
{
    const char *name = ctl_kobj_name(obj), *ns = ctl_kobj_ns(obj);
    char ts[32], *evname;
    char msg[MAX_MESSAGE + 1];
    json_t *ev;

    rfc3339(ts, sizeof(ts), now_ms);
    gw_strlcpy(msg, message != NULL ? message : "", sizeof(msg));
    evname = ctl_strf("%s.%llx", name != NULL ? name : "unknown",
                      (unsigned long long)now_ms * 1000000ull);
    ev = json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s*,s:s*,s:s*,s:s*,s:s*,s:s*},s:s,s:s,s:s,"
                   "s:{s:s},s:s,s:s,s:i,s:s,s:s}",
                   "apiVersion", "v1", "kind", "Event", "metadata", "name", evname, "namespace",
                   ns != NULL ? ns : "default", "involvedObject", "apiVersion",
                   json_string_value(json_object_get(obj, "apiVersion")), "kind",
                   json_string_value(json_object_get(obj, "kind")), "namespace", ns, "name", name,
                   "uid", ctl_kobj_str(obj, "metadata", "uid", NULL), "resourceVersion",
                   ctl_kobj_str(obj, "metadata", "resourceVersion", NULL), "type", type, "reason",
                   reason, "message", msg, "source", "component", "llmgw-controller",
                   "firstTimestamp", ts, "lastTimestamp", ts, "count", 1, "reportingComponent",
                   "llmgw-controller", "reportingInstance", instance);
    free(evname);
    return ev;
}

static void
on_written(const ctl_kube_resp *r, void *arg)
{
    ctl_kevent *ev = arg;
    char q[256];

    ev->inflight--;
    if (r->err == GW_OK && r->status == 201) {
        ctl_metrics_kube_write(ev->metrics, "event", "ok");
        return;
    }
    ctl_metrics_kube_write(ev->metrics, "event", "error");
    gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-EVENT-FAIL", "err=%s status=%ld msg=%s",
                       gw_strerror(r->err), r->status,
                       gw_log_q(q, sizeof(q), r->message != NULL ? r->message : ""));
}

void
ctl_kevent_emit(ctl_kevent *ev, const json_t *obj, const char *type, const char *reason,
                const char *message)
{
    const char *ns = ctl_kobj_ns(obj), *name = ctl_kobj_name(obj);
    char q[256];
    json_t *e;
    char *path;

    if (ev == NULL || name == NULL)
        return;
    if (!ev->enabled) {
        gw_log(GW_LOG_INFO, "CTL-KUBE-EVENT-SKIP",
               "object=%s/%s reason=%s msg=\"not the leader: event not written\"",
               ns != NULL ? ns : "", name, reason);
        return;
    }
    if (ev->inflight >= MAX_INFLIGHT) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-EVENT-DROP", "object=%s",
                           gw_log_q(q, sizeof(q), name));
        return;
    }
    e = ctl_kevent_build(obj, type, reason, message, ev->instance, gw_wall_ms());
    if (e == NULL) {
        /* Every field is a string we checked or made: a broken invariant. */
        gw_log(GW_LOG_ALERT, "CTL-KUBE-EVENT-BUILD", "object=%s", gw_log_q(q, sizeof(q), name));
        return;
    }
    path = ctl_strf("/api/v1/namespaces/%s/events", ns != NULL ? ns : "default");
    if (ctl_kube_request(ev->kube, "POST", path, NULL, e, on_written, ev, NULL) == GW_OK)
        ev->inflight++;
    else
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-EVENT-FAIL", "object=%s msg=\"not sent\"",
                           gw_log_q(q, sizeof(q), name));
    free(path);
    json_decref(e);
}
