/* ctl_httproute: managed HTTPRoutes and HTTPRoute status (see
 * ctl_httproute.h).
 *
 * A reconcile pass compares what should be (from the pods, the Services and
 * the routes' own specs) with the watch caches and starts one write per
 * object that differs. At most one write per object is in flight: an object
 * with a pending write is skipped until the write ends, and the write's own
 * watch event (or its failure) triggers the next pass. So the caches are the
 * only source of truth and nothing is written twice for one change. */
#include "ctl_httproute.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_kobj.h"
#include "ctl_kwatch.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define GW_GROUP    "gateway.networking.k8s.io"
#define ROUTES_API  "/apis/gateway.networking.k8s.io/v1"
#define ANN_MODEL   "llmgw.io/model"
#define LBL_MANAGED "app.kubernetes.io/managed-by"
#define DEBOUNCE_MS 20
#define RETRY_MS    1000

/* The OpenAI-compatible paths a model route matches (aibrix.md §6.3). */
static const char *const route_paths[] = {
    "/v1/completions",        "/v1/chat/completions",
    "/v1/responses",          "/v1/messages",
    "/v1/embeddings",         "/v1/rerank",
    "/v1/classify",           "/generate",
    "/generatevideo",         "/v1/audio/transcriptions",
    "/v1/audio/translations",
};

/* ======================================================================
 * Pure parts
 * ====================================================================== */

static bool
is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* DNS-1123 subdomain (<= 253) or, with <label>, a DNS-1123 label (<= 63). */
static bool
is_dns1123(const char *s, bool label)
{
    size_t n = strlen(s);
    char prev = '.';

    if (n == 0 || n > (label ? 63u : 253u))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.' && !label) {
            if (!is_alnum_lower(prev))
                return false;
        } else if (c == '-') {
            if (prev == '.')
                return false;
        } else if (!is_alnum_lower(c)) {
            return false;
        }
        if (c == '-' && (i + 1 == n || s[i + 1] == '.'))
            return false;
        prev = c;
    }
    return is_alnum_lower(s[n - 1]);
}

/* <model> lowercased, other characters as '-', runs collapsed, trimmed, at
 * most <max> characters, plus "-<12 hex of sha256(model)>". */
static char *
hashed_base(const char *model, size_t max)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *base = gw_xmalloc(max + 1);
    size_t n = 0;
    char *out;

    for (const char *p = model; *p != '\0' && n < max; p++) {
        char c = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
        if (!is_alnum_lower(c))
            c = '-';
        if (c == '-' && (n == 0 || base[n - 1] == '-'))
            continue;
        base[n++] = c;
    }
    while (n > 0 && base[n - 1] == '-')
        n--;
    base[n] = '\0';
    EVP_Digest(model, strlen(model), md, &mdlen, EVP_sha256(), NULL);
    out = ctl_strf("%s%s%02x%02x%02x%02x%02x%02x", base, n > 0 ? "-" : "", md[0], md[1], md[2],
                   md[3], md[4], md[5]);
    free(base);
    return out;
}

char *
ctl_httproute_name(const char *model)
{
    char *plain = ctl_strf("%s-router", model);
    char *h;

    if (is_dns1123(plain, false))
        return plain;
    free(plain);
    h = hashed_base(model, 40);
    plain = ctl_strf("%s-router", h);
    free(h);
    return plain;
}

char *
ctl_httproute_service_name(const char *model)
{
    if (is_dns1123(model, true))
        return gw_xstrdup(model);
    return hashed_base(model, 40);
}

/* A Gateway API Duration: whole seconds as "<n>s", else "<n>ms". */
static char *
duration(uint64_t ms)
{
    if (ms % 1000 == 0 || ms > 99999)
        return ctl_strf("%llus", (unsigned long long)((ms + 999) / 1000));
    return ctl_strf("%llums", (unsigned long long)ms);
}

json_t *
ctl_httproute_build(const char *model, const char *ns, const char *service, uint16_t port,
                    const char *gw_name, const char *gw_ns, uint64_t timeout_ms)
{
    char *name = ctl_httproute_name(model);
    char *tmo = duration(timeout_ms);
    json_t *matches = json_array();
    json_t *route;

    for (size_t i = 0; i < GW_ARRAY_LEN(route_paths); i++)
        json_array_append_new(matches, json_pack("{s:{s:s,s:s},s:[{s:s,s:s,s:s}]}", "path", "type",
                                                 "PathPrefix", "value", route_paths[i], "headers",
                                                 "type", "Exact", "name", "model", "value", model));
    route = json_pack(
        "{s:s,s:s,s:{s:s,s:s,s:{s:s},s:{s:s}},s:{s:[{s:s,s:s,s:s,s:s}],s:[{s:o,s:[{s:s,s:s,s:s,"
        "s:i,s:i}],s:{s:s}}]}}",
        "apiVersion", GW_GROUP "/v1", "kind", "HTTPRoute", "metadata", "name", name, "namespace",
        ns, "labels", LBL_MANAGED, CTL_HTTPROUTE_MANAGED_BY, "annotations", ANN_MODEL, model,
        "spec", "parentRefs", "group", GW_GROUP, "kind", "Gateway", "name", gw_name, "namespace",
        gw_ns, "rules", "matches", matches, "backendRefs", "group", "", "kind", "Service", "name",
        service, "port", (int)port, "weight", 1, "timeouts", "request", tmo);
    free(name);
    free(tmo);
    return route;
}

bool
ctl_httproute_subset(const json_t *want, const json_t *have)
{
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        if (!json_is_object(have))
            return false;
        json_object_foreach((json_t *)want, k, v)
        {
            if (!ctl_httproute_subset(v, json_object_get(have, k)))
                return false;
        }
        return true;
    }
    if (json_is_array(want)) {
        size_t i;
        json_t *v;
        if (!json_is_array(have) || json_array_size(have) != json_array_size(want))
            return false;
        json_array_foreach(want, i, v)
        {
            if (!ctl_httproute_subset(v, json_array_get(have, i)))
                return false;
        }
        return true;
    }
    return json_equal((json_t *)want, (json_t *)have);
}

/* A parentRef names our Gateway (Gateway API defaults: group
 * gateway.networking.k8s.io, kind Gateway, namespace the route's). */
static bool
ref_is_us(const json_t *ref, const char *route_ns, const ctl_httproute_env *env)
{
    const char *group = json_string_value(json_object_get(ref, "group"));
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *ns = json_string_value(json_object_get(ref, "namespace"));

    if (group != NULL && strcmp(group, GW_GROUP) != 0)
        return false;
    if (kind != NULL && strcmp(kind, "Gateway") != 0)
        return false;
    if (ns == NULL)
        ns = route_ns;
    return name != NULL && ns != NULL && strcmp(name, env->gateway_name) == 0 &&
           strcmp(ns, env->gateway_ns) == 0;
}

bool
ctl_httproute_targets_us(const json_t *route, const ctl_httproute_env *env)
{
    const json_t *refs = json_object_get(json_object_get(route, "spec"), "parentRefs");
    size_t i;
    json_t *ref;

    json_array_foreach(refs, i, ref)
    {
        if (ref_is_us(ref, ctl_kobj_ns(route), env))
            return true;
    }
    return false;
}

/* One condition, keeping <old>'s lastTransitionTime when the status is the
 * same. */
static json_t *
condition(const char *type, bool ok, const char *reason, const char *message, json_int_t gen,
          const json_t *old_conds, const char *now)
{
    const char *status = ok ? "True" : "False";
    const char *ltt = now;
    size_t i;
    json_t *c;

    json_array_foreach(old_conds, i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        const char *s = json_string_value(json_object_get(c, "status"));
        const char *l = json_string_value(json_object_get(c, "lastTransitionTime"));
        if (t != NULL && strcmp(t, type) == 0 && s != NULL && strcmp(s, status) == 0 && l != NULL)
            ltt = l;
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "type", type, "status", status, "reason", reason,
                     "message", message, "observedGeneration", gen, "lastTransitionTime", ltt);
}

/* ResolvedRefs of <route>: every backendRef of every rule. */
static bool
resolve_refs(const json_t *route, const ctl_httproute_env *env, const char **reason, char **msg)
{
    const json_t *rules = json_object_get(json_object_get(route, "spec"), "rules");
    size_t i, j;
    json_t *rule, *ref;

    json_array_foreach(rules, i,
                       rule){json_array_foreach(json_object_get(rule, "backendRefs"), j, ref){
        const char *group = json_string_value(json_object_get(ref, "group"));
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *ns = json_string_value(json_object_get(ref, "namespace"));

    if ((group != NULL && group[0] != '\0') || (kind != NULL && strcmp(kind, "Service"))) {
        *reason = "InvalidKind";
        *msg =
            ctl_strf("backendRef %s/%s is not a core Service", kind ? kind : "", name ? name : "");
        return false;
    }
    if (name == NULL) {
        *reason = "BackendNotFound";
        *msg = gw_xstrdup("backendRef without a name");
        return false;
    }
    if (env->resolve(env->resolve_arg, ns != NULL ? ns : ctl_kobj_ns(route), name, reason, msg) !=
        0)
        return false;
}
}
*reason = "ResolvedRefs";
*msg = gw_xstrdup("all backend references resolve to ready endpoints");
return true;
}

/* Whether two parents entries agree in everything but lastTransitionTime. */
static bool
same_entry(const json_t *a, const json_t *b)
{
    const json_t *ca = json_object_get(a, "conditions"), *cb = json_object_get(b, "conditions");
    size_t i;
    json_t *c;

    if (!json_equal(json_object_get(a, "parentRef"), json_object_get(b, "parentRef")) ||
        !json_equal(json_object_get(a, "controllerName"), json_object_get(b, "controllerName")) ||
        json_array_size(ca) != json_array_size(cb))
        return false;
    json_array_foreach(ca, i, c)
    {
        const json_t *d = json_array_get(cb, i);
        static const char *const keys[] = {"type", "status", "reason", "message",
                                           "observedGeneration"};
        for (size_t k = 0; k < GW_ARRAY_LEN(keys); k++) {
            if (!json_equal(json_object_get(c, keys[k]), json_object_get(d, keys[k])))
                return false;
        }
    }
    return true;
}

json_t *
ctl_httproute_status(const json_t *route, const ctl_httproute_env *env)
{
    const json_t *status = json_object_get(route, "status");
    const json_t *parents = json_object_get(status, "parents");
    const json_t *refs = json_object_get(json_object_get(route, "spec"), "parentRefs");
    json_int_t gen =
        json_integer_value(json_object_get(json_object_get(route, "metadata"), "generation"));
    json_t *out_parents = json_array();
    bool changed = false;
    size_t i;
    json_t *p, *ref;
    size_t ours_before = 0, ours_after = 0;

    /* Other controllers' entries stay as they are. */
    json_array_foreach(parents, i, p)
    {
        const char *cn = json_string_value(json_object_get(p, "controllerName"));
        if (cn != NULL && strcmp(cn, env->controller_name) == 0)
            ours_before++;
        else
            json_array_append(out_parents, p);
    }
    /* Ours: one per parentRef naming our Gateway. */
    json_array_foreach(refs, i, ref)
    {
        const json_t *old = NULL, *q;
        size_t j;
        const char *reason;
        char *msg = NULL;
        bool ok;
        json_t *entry, *conds;

        if (!ref_is_us(ref, ctl_kobj_ns(route), env))
            continue;
        json_array_foreach(parents, j, q)
        {
            const char *cn = json_string_value(json_object_get(q, "controllerName"));
            if (cn != NULL && strcmp(cn, env->controller_name) == 0 &&
                json_equal(json_object_get(q, "parentRef"), (json_t *)ref))
                old = q;
        }
        ok = resolve_refs(route, env, &reason, &msg);
        conds = json_array();
        json_array_append_new(conds, condition("Accepted", true, "Accepted",
                                               "the route is attached to the llmgw gateway", gen,
                                               json_object_get(old, "conditions"), env->now));
        json_array_append_new(conds, condition("ResolvedRefs", ok, reason, msg, gen,
                                               json_object_get(old, "conditions"), env->now));
        free(msg);
        entry = json_pack("{s:O,s:s,s:o}", "parentRef", ref, "controllerName", env->controller_name,
                          "conditions", conds);
        if (old == NULL || !same_entry(old, entry))
            changed = true;
        json_array_append_new(out_parents, entry);
        ours_after++;
    }
    if (!changed && ours_before == ours_after) {
        json_decref(out_parents);
        return NULL;
    }
    {
        json_t *st = json_is_object(status) ? json_deep_copy(status) : json_object();
        json_object_set_new(st, "parents", out_parents);
        return st;
    }
}

/* ======================================================================
 * Runtime
 * ====================================================================== */

typedef enum op_kind {
    OP_CREATE,
    OP_UPDATE,
    OP_DELETE,
    OP_STATUS,
} op_kind;

static const char *const op_names[] = {"create", "update", "delete", "status"};

typedef struct op op;
struct op {
    ctl_httproute *r;
    op_kind kind;
    char *ns, *name;
    json_t *desired; /* CREATE/UPDATE: the managed route */
    unsigned conflicts;
    ctl_kube_req *req;
    op *next;
};

/* What the pods say one model's route should be. */
typedef struct want_route {
    char *model;
    char *ns;
    char *service;
    uint16_t port;
} want_route;

struct ctl_httproute {
    gw_loop *loop;
    ctl_kube *kube;
    ctl_metrics *metrics;
    ctl_src_kube *src;
    bool manage;
    char *gateway_name, *gateway_ns, *controller_name;
    uint64_t timeout_ms;
    ctl_kwatch **routes, **services;
    size_t n_watches;
    bool leading;
    gw_timer *timer;
    op *ops;
    json_t *warned; /* route keys not ours that we would manage: warned once */
};

static void schedule(ctl_httproute *r, uint64_t ms);

static void
op_free(op *o)
{
    free(o->ns);
    free(o->name);
    json_decref(o->desired);
    free(o);
}

static void
op_unlink(op *o)
{
    op **pp = &o->r->ops;

    while (*pp != NULL && *pp != o)
        pp = &(*pp)->next;
    if (*pp == o)
        *pp = o->next;
}

static bool
op_pending(const ctl_httproute *r, const char *ns, const char *name)
{
    for (const op *o = r->ops; o != NULL; o = o->next) {
        if (strcmp(o->ns, ns) == 0 && strcmp(o->name, name) == 0)
            return true;
    }
    return false;
}

static char *
item_path(const char *ns, const char *name, const char *sub)
{
    return ctl_strf(ROUTES_API "/namespaces/%s/httproutes/%s%s", ns, name, sub);
}

static const json_t *
cached_route(const ctl_httproute *r, const char *ns, const char *name)
{
    for (size_t i = 0; i < r->n_watches; i++) {
        const json_t *o = ctl_kwatch_get(r->routes[i], ns, name);
        if (o != NULL)
            return o;
    }
    return NULL;
}

static const json_t *
cached_service(const ctl_httproute *r, const char *ns, const char *name)
{
    for (size_t i = 0; i < r->n_watches; i++) {
        const json_t *o = ctl_kwatch_get(r->services[i], ns, name);
        if (o != NULL)
            return o;
    }
    return NULL;
}

static bool
is_managed(const json_t *route)
{
    const char *v = ctl_kobj_label(route, LBL_MANAGED);

    return v != NULL && strcmp(v, CTL_HTTPROUTE_MANAGED_BY) == 0;
}

/* ---- backend resolution against the Services and the pods ---- */

typedef struct ready_scan {
    const char *ns;
    const json_t *selector;
    bool found;
} ready_scan;

static void
scan_pod(const ctl_kpod *p, void *arg)
{
    ready_scan *s = arg;

    if (!s->found && p->ip != NULL && p->ready && !p->terminating && strcmp(p->ns, s->ns) == 0 &&
        ctl_kobj_selects(s->selector, p->labels, p->n_labels))
        s->found = true;
}

static int
resolve_backend(void *arg, const char *ns, const char *service, const char **reason, char **message)
{
    ctl_httproute *r = arg;
    const json_t *svc = cached_service(r, ns, service);
    ready_scan s = {.ns = ns};

    if (svc == NULL) {
        *reason = "BackendNotFound";
        *message = ctl_strf("Service %s/%s not found", ns, service);
        return 1;
    }
    s.selector = json_object_get(json_object_get(svc, "spec"), "selector");
    ctl_src_kube_foreach_pod(r->src, scan_pod, &s);
    if (!s.found) {
        *reason = "BackendNotFound";
        *message = ctl_strf("Service %s/%s has no ready endpoints", ns, service);
        return 1;
    }
    return 0;
}

static void
now_rfc3339(char *buf, size_t n)
{
    time_t t = (time_t)(gw_wall_ms() / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- writes ---- */

static void op_send(op *o, const json_t *current);

static void
op_done(op *o, const char *result)
{
    ctl_httproute *r = o->r;

    ctl_metrics_kube_write(r->metrics, o->kind == OP_STATUS ? "httproute_status" : "httproute",
                           result);
    op_unlink(o);
    op_free(o);
    /* The write's own watch event normally triggers the next pass; a failed
     * write must be retried without one. */
    schedule(r, strcmp(result, "ok") == 0 ? DEBOUNCE_MS : RETRY_MS);
}

static void
on_fresh(const ctl_kube_resp *resp, void *arg)
{
    op *o = arg;
    char q[256];

    o->req = NULL;
    if (resp->err == GW_OK && resp->status == 404 && o->kind != OP_CREATE) {
        op_done(o, "ok"); /* gone meanwhile: nothing to write */
        return;
    }
    if (resp->err != GW_OK || resp->status != 200 || !json_is_object(resp->body)) {
        gw_log(GW_LOG_WARN, "CTL-ROUTE-READ", "route=%s/%s err=%s status=%ld msg=%s", o->ns,
               o->name, gw_strerror(resp->err), resp->status,
               gw_log_q(q, sizeof(q), resp->message ? resp->message : ""));
        op_done(o, "error");
        return;
    }
    if (o->kind == OP_CREATE) {
        /* It exists after all: ours to update, or someone else's. */
        if (!is_managed(resp->body)) {
            gw_log(GW_LOG_WARN, "CTL-ROUTE-NOT-OURS",
                   "route=%s/%s msg=\"exists without the label %s=%s; left alone\"", o->ns, o->name,
                   LBL_MANAGED, CTL_HTTPROUTE_MANAGED_BY);
            op_done(o, "conflict");
            return;
        }
        o->kind = OP_UPDATE;
    }
    op_send(o, resp->body);
}

static void
on_written(const ctl_kube_resp *resp, void *arg)
{
    op *o = arg;
    ctl_httproute *r = o->r;
    char q[256];

    o->req = NULL;
    if (resp->err == GW_OK && resp->status >= 200 && resp->status < 300) {
        gw_log(GW_LOG_NOTICE, o->kind == OP_STATUS ? "CTL-ROUTE-STATUS" : "CTL-ROUTE-WRITE",
               "op=%s route=%s/%s conflicts=%u", op_names[o->kind], o->ns, o->name, o->conflicts);
        op_done(o, "ok");
        return;
    }
    if (resp->err == GW_OK && o->kind == OP_DELETE && resp->status == 404) {
        op_done(o, "ok");
        return;
    }
    if (resp->err == GW_OK && resp->status == 409) {
        /* A concurrent writer won: read the object afresh and recompute. */
        ctl_metrics_kube_write(r->metrics, o->kind == OP_STATUS ? "httproute_status" : "httproute",
                               "conflict");
        o->conflicts++;
        gw_log(GW_LOG_INFO, "CTL-ROUTE-CONFLICT", "op=%s route=%s/%s attempt=%u reason=%s",
               op_names[o->kind], o->ns, o->name, o->conflicts,
               resp->reason != NULL ? resp->reason : "-");
        if (o->conflicts > CTL_HTTPROUTE_CONFLICT_RETRIES) {
            op_done(o, "error");
            return;
        }
        char *path = item_path(o->ns, o->name, "");
        gw_err rc = ctl_kube_request(r->kube, "GET", path, NULL, NULL, on_fresh, o, &o->req);
        free(path);
        if (rc != GW_OK)
            op_done(o, "error");
        return;
    }
    gw_log(GW_LOG_WARN, "CTL-ROUTE-WRITE-FAIL", "op=%s route=%s/%s err=%s status=%ld msg=%s",
           op_names[o->kind], o->ns, o->name, gw_strerror(resp->err), resp->status,
           gw_log_q(q, sizeof(q), resp->message ? resp->message : ""));
    op_done(o, "error");
}

/* Sends <o> against <current> (the object as last read; NULL for a create). */
static void
op_send(op *o, const json_t *current)
{
    ctl_httproute *r = o->r;
    char now[32];
    char *path;
    json_t *body = NULL;
    const char *method;
    gw_err rc;

    switch (o->kind) {
    case OP_CREATE:
        path = ctl_strf(ROUTES_API "/namespaces/%s/httproutes", o->ns);
        method = "POST";
        body = json_incref(o->desired);
        break;
    case OP_UPDATE: {
        json_t *md;
        body = json_deep_copy(current);
        json_object_set(body, "spec", json_object_get(o->desired, "spec"));
        md = json_object_get(body, "metadata");
        if (!json_is_object(json_object_get(md, "labels")))
            json_object_set_new(md, "labels", json_object());
        if (!json_is_object(json_object_get(md, "annotations")))
            json_object_set_new(md, "annotations", json_object());
        json_object_update(json_object_get(md, "labels"),
                           json_object_get(json_object_get(o->desired, "metadata"), "labels"));
        json_object_update(json_object_get(md, "annotations"),
                           json_object_get(json_object_get(o->desired, "metadata"), "annotations"));
        json_object_del(body, "status"); /* the main resource ignores it anyway */
        path = item_path(o->ns, o->name, "");
        method = "PUT";
        break;
    }
    case OP_DELETE:
        path = item_path(o->ns, o->name, "");
        method = "DELETE";
        break;
    case OP_STATUS:
    default: {
        ctl_httproute_env env = {.gateway_name = r->gateway_name,
                                 .gateway_ns = r->gateway_ns,
                                 .controller_name = r->controller_name,
                                 .resolve = resolve_backend,
                                 .resolve_arg = r,
                                 .now = now};
        json_t *st;
        now_rfc3339(now, sizeof(now));
        st = ctl_httproute_status(current, &env);
        if (st == NULL) {
            op_done(o, "ok"); /* the fresh object is already right */
            return;
        }
        body = json_deep_copy(current);
        json_object_set_new(body, "status", st);
        path = item_path(o->ns, o->name, "/status");
        method = "PUT";
        break;
    }
    }
    rc = ctl_kube_request(r->kube, method, path, NULL, body, on_written, o, &o->req);
    free(path);
    json_decref(body);
    if (rc != GW_OK)
        op_done(o, "error");
}

static void
op_start(ctl_httproute *r, op_kind kind, const char *ns, const char *name, json_t *desired,
         const json_t *current)
{
    op *o = gw_xcalloc(1, sizeof(*o));

    o->r = r;
    o->kind = kind;
    o->ns = gw_xstrdup(ns);
    o->name = gw_xstrdup(name);
    o->desired = desired;
    o->next = r->ops;
    r->ops = o;
    op_send(o, current);
}

/* ---- reconcile ---- */

typedef struct want_set {
    want_route *w;
    size_t n;
} want_set;

static void
collect_want(const ctl_kpod *p, void *arg)
{
    want_set *ws = arg;

    for (size_t i = 0; i < ws->n; i++) {
        if (strcmp(ws->w[i].model, p->model) == 0)
            return; /* the first pod (ns/name order) decides */
    }
    ws->w = gw_xrealloc(ws->w, (ws->n + 1) * sizeof(*ws->w));
    ws->w[ws->n++] = (want_route){
        .model = gw_xstrdup(p->model),
        .ns = gw_xstrdup(p->ns),
        .service =
            p->service != NULL ? gw_xstrdup(p->service) : ctl_httproute_service_name(p->model),
        .port = p->port,
    };
}

static void
reconcile_managed(ctl_httproute *r)
{
    want_set ws = {0};

    ctl_src_kube_foreach_pod(r->src, collect_want, &ws);
    for (size_t i = 0; i < ws.n; i++) {
        char *name = ctl_httproute_name(ws.w[i].model);
        const json_t *cur = cached_route(r, ws.w[i].ns, name);
        json_t *want;

        if (op_pending(r, ws.w[i].ns, name)) {
            free(name);
            continue;
        }
        want = ctl_httproute_build(ws.w[i].model, ws.w[i].ns, ws.w[i].service, ws.w[i].port,
                                   r->gateway_name, r->gateway_ns, r->timeout_ms);
        if (cur == NULL) {
            op_start(r, OP_CREATE, ws.w[i].ns, name, want, NULL);
        } else if (!is_managed(cur)) {
            char *key = ctl_strf("%s/%s", ws.w[i].ns, name);
            if (json_object_get(r->warned, key) == NULL) {
                gw_log(GW_LOG_WARN, "CTL-ROUTE-NOT-OURS",
                       "route=%s msg=\"exists without the label %s=%s; left alone\"", key,
                       LBL_MANAGED, CTL_HTTPROUTE_MANAGED_BY);
                json_object_set_new(r->warned, key, json_true());
            }
            free(key);
            json_decref(want);
        } else if (!ctl_httproute_subset(json_object_get(want, "spec"),
                                         json_object_get(cur, "spec")) ||
                   !ctl_httproute_subset(
                       json_object_get(json_object_get(want, "metadata"), "annotations"),
                       json_object_get(json_object_get(cur, "metadata"), "annotations"))) {
            op_start(r, OP_UPDATE, ws.w[i].ns, name, want, cur);
        } else {
            json_decref(want);
        }
        free(name);
    }
    /* Managed routes no model wants any more. */
    for (size_t k = 0; k < r->n_watches; k++) {
        const char *key;
        json_t *route;
        json_object_foreach((json_t *)ctl_kwatch_items(r->routes[k]), key, route)
        {
            const char *ns = ctl_kobj_ns(route), *name = ctl_kobj_name(route);
            bool wanted = false;
            if (!is_managed(route) || ns == NULL || name == NULL || op_pending(r, ns, name))
                continue;
            for (size_t i = 0; i < ws.n && !wanted; i++) {
                char *n = ctl_httproute_name(ws.w[i].model);
                wanted = strcmp(n, name) == 0 && strcmp(ws.w[i].ns, ns) == 0;
                free(n);
            }
            if (!wanted)
                op_start(r, OP_DELETE, ns, name, NULL, route);
        }
    }
    for (size_t i = 0; i < ws.n; i++) {
        free(ws.w[i].model);
        free(ws.w[i].ns);
        free(ws.w[i].service);
    }
    free(ws.w);
}

static void
reconcile_status(ctl_httproute *r)
{
    char now[32];
    ctl_httproute_env env = {.gateway_name = r->gateway_name,
                             .gateway_ns = r->gateway_ns,
                             .controller_name = r->controller_name,
                             .resolve = resolve_backend,
                             .resolve_arg = r,
                             .now = now};

    now_rfc3339(now, sizeof(now));
    for (size_t k = 0; k < r->n_watches; k++) {
        const char *key;
        json_t *route;
        json_object_foreach((json_t *)ctl_kwatch_items(r->routes[k]), key, route)
        {
            const char *ns = ctl_kobj_ns(route), *name = ctl_kobj_name(route);
            json_t *st;
            if (ns == NULL || name == NULL || op_pending(r, ns, name))
                continue;
            st = ctl_httproute_status(route, &env);
            if (st == NULL)
                continue;
            json_decref(st); /* op_send recomputes against what it sends */
            op_start(r, OP_STATUS, ns, name, NULL, route);
        }
    }
}

static bool
synced(const ctl_httproute *r)
{
    for (size_t i = 0; i < r->n_watches; i++) {
        if (!ctl_kwatch_synced(r->routes[i]) || !ctl_kwatch_synced(r->services[i]))
            return false;
    }
    return ctl_src_kube_synced(r->src);
}

static void
on_timer(gw_loop *loop, void *arg)
{
    ctl_httproute *r = arg;
    (void)loop;

    if (!r->leading || !synced(r))
        return; /* leadership or the last first LIST re-arms us */
    if (r->manage)
        reconcile_managed(r);
    reconcile_status(r);
}

static void
schedule(ctl_httproute *r, uint64_t ms)
{
    if (!gw_timer_is_active(r->timer))
        gw_timer_start(r->timer, ms);
}

static void
on_any(void *arg)
{
    schedule(arg, DEBOUNCE_MS);
}

static void
on_upsert(void *arg, const json_t *obj, const json_t *old)
{
    (void)obj;
    (void)old;
    on_any(arg);
}

static void
on_delete(void *arg, const json_t *obj)
{
    (void)obj;
    on_any(arg);
}

gw_err
ctl_httproute_start(gw_loop *loop, ctl_kube *kube, ctl_metrics *metrics, ctl_src_kube *src,
                    const ctl_httproute_opts *o, ctl_httproute **out)
{
    static const ctl_kwatch_handlers h = {on_upsert, on_delete, on_any};
    ctl_httproute *r = gw_xcalloc(1, sizeof(*r));
    ctl_kwatch_opts wo = {
        .watch_timeout_ms = o->watch_timeout_ms,
        .backoff_initial_ms = o->backoff_initial_ms,
        .backoff_max_ms = o->backoff_max_ms,
    };
    char **nss = NULL;
    size_t n_ns = 0;
    gw_err rc = GW_OK;

    r->loop = loop;
    r->kube = kube;
    r->metrics = metrics;
    r->src = src;
    r->manage = o->manage;
    r->gateway_name = gw_xstrdup(o->gateway_name);
    r->gateway_ns = gw_xstrdup(o->gateway_ns);
    r->controller_name = gw_xstrdup(o->controller_name);
    r->timeout_ms = o->request_timeout_ms;
    r->warned = json_object();
    r->timer = gw_timer_new(loop, on_timer, r);
    /* One route watch and one Service watch per namespace; "" = all. */
    if (o->namespaces != NULL && o->namespaces[0] != '\0') {
        char *list = gw_xstrdup(o->namespaces), *save = NULL;
        for (char *ns = strtok_r(list, ",", &save); ns != NULL; ns = strtok_r(NULL, ",", &save)) {
            while (*ns == ' ')
                ns++;
            if (*ns == '\0')
                continue;
            nss = gw_xrealloc(nss, (n_ns + 1) * sizeof(*nss));
            nss[n_ns++] = gw_xstrdup(ns);
        }
        free(list);
    }
    if (n_ns == 0) {
        nss = gw_xcalloc(1, sizeof(*nss));
        nss[n_ns++] = gw_xstrdup("");
    }
    r->routes = gw_xcalloc(n_ns, sizeof(*r->routes));
    r->services = gw_xcalloc(n_ns, sizeof(*r->services));
    for (size_t i = 0; i < n_ns && rc == GW_OK; i++) {
        char *rp = nss[i][0] ? ctl_strf(ROUTES_API "/namespaces/%s/httproutes", nss[i])
                             : gw_xstrdup(ROUTES_API "/httproutes");
        char *sp = nss[i][0] ? ctl_strf("/api/v1/namespaces/%s/services", nss[i])
                             : gw_xstrdup("/api/v1/services");
        r->n_watches++;
        wo.resource = "httproutes";
        wo.path = rp;
        rc = ctl_kwatch_start(loop, kube, metrics, &wo, &h, r, &r->routes[i]);
        if (rc == GW_OK) {
            wo.resource = "services";
            wo.path = sp;
            rc = ctl_kwatch_start(loop, kube, metrics, &wo, &h, r, &r->services[i]);
        }
        free(rp);
        free(sp);
    }
    for (size_t i = 0; i < n_ns; i++)
        free(nss[i]);
    free(nss);
    if (rc != GW_OK) {
        ctl_httproute_free(r);
        return rc;
    }
    ctl_src_kube_on_change(src, on_any, r);
    gw_log(GW_LOG_NOTICE, "CTL-ROUTE-START", "manage=%d gateway=%s/%s controller=%s",
           (int)r->manage, r->gateway_ns, r->gateway_name, r->controller_name);
    *out = r;
    return GW_OK;
}

void
ctl_httproute_set_leading(ctl_httproute *r, bool leading)
{
    if (r == NULL)
        return;
    r->leading = leading;
    if (leading)
        schedule(r, 0);
}

void
ctl_httproute_free(ctl_httproute *r)
{
    if (r == NULL)
        return;
    if (r->src != NULL)
        ctl_src_kube_on_change(r->src, NULL, NULL);
    while (r->ops != NULL) {
        op *o = r->ops;
        r->ops = o->next;
        ctl_kube_cancel(o->req);
        op_free(o);
    }
    for (size_t i = 0; i < r->n_watches; i++) {
        ctl_kwatch_free(r->routes[i]);
        ctl_kwatch_free(r->services[i]);
    }
    free(r->routes);
    free(r->services);
    gw_timer_free(r->timer);
    json_decref(r->warned);
    free(r->gateway_name);
    free(r->gateway_ns);
    free(r->controller_name);
    free(r);
}
