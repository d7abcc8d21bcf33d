/* ctl_kwatch: LIST+WATCH of one collection (see ctl_kwatch.h).
 *
 * The watch is a small state machine driven by request completions and one
 * timer: LISTING (pages of a LIST in flight) -> WATCHING (a stream open) ->
 * back to WATCHING on a clean end, to LISTING on 410, or through the timer
 * (BACKOFF) on an error. Every transition goes through the timer, even with
 * a zero delay, so no request is started from inside another request's curl
 * callback. */
#include "ctl_kwatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

typedef enum wstate {
    W_IDLE = 0,
    W_LISTING,
    W_WATCHING,
} wstate;

/* What the timer does when it fires. */
typedef enum wnext {
    NEXT_LIST = 0,
    NEXT_WATCH,
} wnext;

struct ctl_kwatch {
    gw_loop *loop;
    ctl_kube *kube;       /* borrowed */
    ctl_metrics *metrics; /* borrowed */
    char *resource;
    char *path;
    char *label_sel; /* escaped for the query, or NULL */
    char *field_sel;
    uint64_t watch_timeout_ms;
    uint64_t backoff_initial_ms, backoff_max_ms;
    uint32_t page_size;
    ctl_kwatch_handlers h;
    void *arg;

    wstate state;
    wnext next;
    gw_timer *timer;
    ctl_kube_req *req;
    json_t *cache;   /* "ns/name" -> object */
    json_t *pending; /* items of the LIST being paged in */
    char *cont;      /* continue token of the next page */
    char *rv;        /* last resourceVersion */
    bool synced;
    uint32_t attempt; /* consecutive failures */
    uint64_t watch_start_ms;
    unsigned watch_events; /* lines in the current watch */
    bool expired;          /* the current watch saw a 410 */
};

/* ---- pure parts ---- */

uint64_t
ctl_kwatch_backoff(uint32_t attempt, uint64_t initial_ms, uint64_t max_ms, double rnd)
{
    uint64_t d = initial_ms > 0 ? initial_ms : 1;

    for (uint32_t i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (rnd < 0 || rnd >= 1)
        rnd = 0;
    return (uint64_t)((double)d * (0.5 + 0.5 * rnd));
}

char *
ctl_kwatch_key(const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));

    if (name == NULL || name[0] == '\0')
        return NULL;
    return ctl_strf("%s/%s", ns != NULL ? ns : "", name);
}

static const char *
obj_rv(const json_t *obj)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    return rv != NULL ? rv : "";
}

unsigned
ctl_kwatch_resync(json_t *cache, const json_t *items, const ctl_kwatch_handlers *h, void *arg)
{
    json_t *fresh = json_object();
    const char *key;
    json_t *obj;
    size_t i;
    unsigned calls = 0;

    json_array_foreach(items, i, obj)
    {
        char *k = ctl_kwatch_key(obj);
        if (k != NULL)
            json_object_set(fresh, k, obj);
        free(k);
    }
    /* Deletions first, so a handler that indexes by something other than
     * the key (an endpoint address, say) never sees two holders at once. */
    void *tmp;
    json_object_foreach_safe(cache, tmp, key, obj)
    {
        if (json_object_get(fresh, key) == NULL) {
            json_incref(obj);
            json_object_del(cache, key);
            if (h->on_delete != NULL)
                h->on_delete(arg, obj);
            json_decref(obj);
            calls++;
        }
    }
    json_object_foreach(fresh, key, obj)
    {
        json_t *old = json_object_get(cache, key);
        if (old != NULL && strcmp(obj_rv(old), obj_rv(obj)) == 0)
            continue;
        json_incref(old);
        json_object_set(cache, key, obj);
        if (h->on_upsert != NULL)
            h->on_upsert(arg, obj, old);
        json_decref(old);
        calls++;
    }
    json_decref(fresh);
    return calls;
}

/* ---- the state machine ---- */

static double
rand01(void)
{
    uint32_t r = 0;

    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)gw_now_us();
    return (double)r / 4294967296.0;
}

static void
schedule(ctl_kwatch *w, wnext next, uint64_t delay_ms)
{
    w->state = W_IDLE;
    w->next = next;
    gw_timer_start(w->timer, delay_ms);
}

/* A failure: retry <next> after the backoff. */
static void
fail(ctl_kwatch *w, wnext next, const char *what, const ctl_kube_resp *r)
{
    uint64_t delay =
        ctl_kwatch_backoff(w->attempt, w->backoff_initial_ms, w->backoff_max_ms, rand01());
    char qm[512];

    w->attempt++;
    gw_log_ratelimited(GW_LOG_WARN, 5, "CTL-KUBE-RETRY",
                       "resource=%s op=%s err=%s status=%ld reason=%s msg=%s attempt=%u "
                       "delay_ms=%llu",
                       w->resource, what, gw_strerror(r->err), r->status,
                       r->reason != NULL ? r->reason : "-",
                       gw_log_q(qm, sizeof(qm), r->message != NULL ? r->message : ""), w->attempt,
                       (unsigned long long)delay);
    schedule(w, next, delay);
}

static void start_list(ctl_kwatch *w);
static void start_watch(ctl_kwatch *w);

static void
on_timer(gw_loop *loop, void *arg)
{
    ctl_kwatch *w = arg;
    (void)loop;

    if (w->next == NEXT_WATCH && w->rv != NULL && w->rv[0] != '\0')
        start_watch(w);
    else
        start_list(w);
}

static bool
is_expired(long code, const char *reason)
{
    return code == 410 ||
           (reason != NULL && (strcmp(reason, "Expired") == 0 || strcmp(reason, "Gone") == 0));
}

/* Builds "<path>?<extra>&labelSelector=..&fieldSelector=..". */
static char *
make_path(const ctl_kwatch *w, const char *extra)
{
    return ctl_strf("%s?%s%s%s%s%s", w->path, extra, w->label_sel ? "&labelSelector=" : "",
                    w->label_sel ? w->label_sel : "", w->field_sel ? "&fieldSelector=" : "",
                    w->field_sel ? w->field_sel : "");
}

static void
on_list(const ctl_kube_resp *r, void *arg)
{
    ctl_kwatch *w = arg;
    const json_t *items, *md;
    const char *rv, *cont;
    size_t i;
    json_t *obj;

    w->req = NULL;
    if (r->err != GW_OK || r->status != 200 || !json_is_object(r->body)) {
        /* A continue token that expired mid-list: start over, whole. */
        if (r->err == GW_OK && is_expired(r->status, r->reason) && w->cont != NULL) {
            GW_FREE(w->cont);
            json_object_clear(w->pending);
            schedule(w, NEXT_LIST, 0);
            return;
        }
        GW_FREE(w->cont);
        json_object_clear(w->pending);
        fail(w, NEXT_LIST, "list", r);
        return;
    }
    md = json_object_get(r->body, "metadata");
    items = json_object_get(r->body, "items");
    rv = json_string_value(json_object_get(md, "resourceVersion"));
    cont = json_string_value(json_object_get(md, "continue"));
    if (rv == NULL || (items != NULL && !json_is_array(items))) {
        ctl_kube_resp bad = *r;
        bad.err = GW_EPROTO;
        json_object_clear(w->pending);
        GW_FREE(w->cont);
        fail(w, NEXT_LIST, "list", &bad);
        return;
    }
    json_array_foreach(items, i, obj)
    {
        char *k = ctl_kwatch_key(obj);
        if (k != NULL)
            json_object_set(w->pending, k, obj);
        free(k);
    }
    free(w->cont);
    w->cont = cont != NULL && cont[0] != '\0' ? gw_xstrdup(cont) : NULL;
    if (w->cont != NULL) {
        /* The next page; the resourceVersion of the whole list is the one
         * of its last page, which equals the first's (a consistent list). */
        start_list(w);
        return;
    }
    free(w->rv);
    w->rv = gw_xstrdup(rv);
    {
        json_t *arr = json_array();
        const char *key;
        json_object_foreach(w->pending, key, obj)
        {
            json_array_append(arr, obj);
        }
        json_object_clear(w->pending);
        unsigned n = ctl_kwatch_resync(w->cache, arr, &w->h, w->arg);
        json_decref(arr);
        gw_log(w->synced ? GW_LOG_NOTICE : GW_LOG_INFO,
               w->synced ? "CTL-KUBE-RELIST" : "CTL-KUBE-LIST",
               "resource=%s objects=%zu changes=%u rv=%s", w->resource, json_object_size(w->cache),
               n, w->rv);
    }
    w->attempt = 0;
    w->synced = true;
    ctl_metrics_kube_list(w->metrics, w->resource);
    if (w->h.on_synced != NULL)
        w->h.on_synced(w->arg);
    schedule(w, NEXT_WATCH, 0);
}

static void
start_list(ctl_kwatch *w)
{
    char extra[64];
    char *path, *p2 = NULL;
    gw_err rc;

    snprintf(extra, sizeof(extra), "limit=%u", w->page_size);
    path = make_path(w, extra);
    if (w->cont != NULL) {
        char *c = ctl_kube_escape(w->cont);
        p2 = ctl_strf("%s&continue=%s", path, c);
        free(c);
        free(path);
        path = p2;
    }
    w->state = W_LISTING;
    rc = ctl_kube_request(w->kube, "GET", path, NULL, NULL, on_list, w, &w->req);
    free(path);
    if (rc != GW_OK) {
        ctl_kube_resp r = {.err = rc};
        w->req = NULL;
        fail(w, NEXT_LIST, "list", &r);
    }
}

static void
upsert(ctl_kwatch *w, json_t *obj)
{
    char *key = ctl_kwatch_key(obj);
    json_t *old;

    if (key == NULL)
        return;
    old = json_object_get(w->cache, key);
    if (old != NULL && strcmp(obj_rv(old), obj_rv(obj)) == 0) {
        free(key); /* already seen (an overlapping re-watch) */
        return;
    }
    json_incref(old);
    json_object_set(w->cache, key, obj);
    if (w->h.on_upsert != NULL)
        w->h.on_upsert(w->arg, obj, old);
    json_decref(old);
    free(key);
}

static void
remove_obj(ctl_kwatch *w, json_t *obj)
{
    char *key = ctl_kwatch_key(obj);
    json_t *old;

    if (key == NULL)
        return;
    old = json_object_get(w->cache, key);
    if (old != NULL) {
        json_incref(old);
        json_object_del(w->cache, key);
        if (w->h.on_delete != NULL)
            w->h.on_delete(w->arg, obj);
        json_decref(old);
    }
    free(key);
}

static void
on_event(const json_t *ev, void *arg)
{
    ctl_kwatch *w = arg;
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    const char *rv;

    w->watch_events++;
    if (type == NULL || !json_is_object(obj)) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-EVENT-BAD", "resource=%s", w->resource);
        return;
    }
    if (strcmp(type, "ERROR") == 0) {
        long code = (long)json_integer_value(json_object_get(obj, "code"));
        const char *reason = json_string_value(json_object_get(obj, "reason"));
        char qm[512];
        gw_log(is_expired(code, reason) ? GW_LOG_NOTICE : GW_LOG_WARN,
               is_expired(code, reason) ? "CTL-KUBE-WATCH-EXPIRED" : "CTL-KUBE-WATCH-ERROR",
               "resource=%s code=%ld reason=%s rv=%s msg=%s", w->resource, code,
               reason != NULL ? reason : "-", w->rv,
               gw_log_q(qm, sizeof(qm),
                        json_string_value(json_object_get(obj, "message")) != NULL
                            ? json_string_value(json_object_get(obj, "message"))
                            : ""));
        w->expired = is_expired(code, reason);
        if (!w->expired)
            w->watch_events = 0; /* an error is no progress */
        /* The server ends the stream after an ERROR event; stop reading now
         * and decide the next step from the timer. */
        ctl_kube_cancel(w->req);
        w->req = NULL;
        if (w->expired) {
            ctl_metrics_kube_watch_end(w->metrics, w->resource, "expired");
            GW_FREE(w->rv); /* a re-list, not a re-watch */
            schedule(w, NEXT_LIST, 0);
        } else {
            ctl_kube_resp r = {.err = GW_EPROTO, .status = code, .reason = reason};
            ctl_metrics_kube_watch_end(w->metrics, w->resource, "error");
            fail(w, NEXT_WATCH, "watch", &r);
        }
        return;
    }
    rv = obj_rv(obj);
    if (rv[0] != '\0') {
        free(w->rv);
        w->rv = gw_xstrdup(rv);
    }
    if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0)
        upsert(w, obj);
    else if (strcmp(type, "DELETED") == 0)
        remove_obj(w, obj);
    else if (strcmp(type, "BOOKMARK") != 0)
        gw_log_ratelimited(GW_LOG_INFO, 1, "CTL-KUBE-EVENT-TYPE", "resource=%s type=%s",
                           w->resource, type);
    w->attempt = 0;
}

static void
on_watch_end(const ctl_kube_resp *r, void *arg)
{
    ctl_kwatch *w = arg;
    uint64_t lasted = gw_now_ms() - w->watch_start_ms;

    w->req = NULL;
    if (r->err == GW_OK && is_expired(r->status, r->reason)) {
        gw_log(GW_LOG_NOTICE, "CTL-KUBE-WATCH-EXPIRED", "resource=%s code=%ld rv=%s", w->resource,
               r->status, w->rv);
        ctl_metrics_kube_watch_end(w->metrics, w->resource, "expired");
        GW_FREE(w->rv);
        schedule(w, NEXT_LIST, 0);
        return;
    }
    if (r->err == GW_OK && r->status == 200) {
        ctl_metrics_kube_watch_end(w->metrics, w->resource, "timeout");
        gw_log(GW_LOG_DEBUG, "CTL-KUBE-WATCH-END", "resource=%s lasted_ms=%llu events=%u rv=%s",
               w->resource, (unsigned long long)lasted, w->watch_events, w->rv);
        /* A stream that ends at once with nothing in it is a server in
         * trouble, not a timeout: back off rather than spin. */
        if (lasted >= 1000 || w->watch_events > 0)
            schedule(w, NEXT_WATCH, 0);
        else
            fail(w, NEXT_WATCH, "watch", r);
        return;
    }
    ctl_metrics_kube_watch_end(w->metrics, w->resource, "error");
    fail(w, NEXT_WATCH, "watch", r);
}

static void
start_watch(ctl_kwatch *w)
{
    uint64_t t = w->watch_timeout_ms;
    uint64_t secs = (uint64_t)((double)t * (1.0 + rand01()) / 1000.0);
    char *rv = ctl_kube_escape(w->rv);
    char *extra, *path;
    gw_err rc;

    if (secs < 1)
        secs = 1;
    extra = ctl_strf("watch=true&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%llu",
                     rv, (unsigned long long)secs);
    path = make_path(w, extra);
    free(extra);
    free(rv);
    w->state = W_WATCHING;
    w->watch_start_ms = gw_now_ms();
    w->watch_events = 0;
    w->expired = false;
    /* The client-side guard only catches a server that never ends the
     * stream; the server's own timeout normally fires first. */
    rc = ctl_kube_stream(w->kube, path, secs * 1000 + 30000, on_event, on_watch_end, w, &w->req);
    free(path);
    if (rc != GW_OK) {
        ctl_kube_resp r = {.err = rc};
        w->req = NULL;
        fail(w, NEXT_WATCH, "watch", &r);
    }
}

gw_err
ctl_kwatch_start(gw_loop *loop, ctl_kube *kube, ctl_metrics *metrics, const ctl_kwatch_opts *o,
                 const ctl_kwatch_handlers *h, void *arg, ctl_kwatch **out)
{
    ctl_kwatch *w = gw_xcalloc(1, sizeof(*w));

    w->loop = loop;
    w->kube = kube;
    w->metrics = metrics;
    w->resource = gw_xstrdup(o->resource);
    w->path = gw_xstrdup(o->path);
    if (o->label_selector != NULL && o->label_selector[0] != '\0')
        w->label_sel = ctl_kube_escape(o->label_selector);
    if (o->field_selector != NULL && o->field_selector[0] != '\0')
        w->field_sel = ctl_kube_escape(o->field_selector);
    w->watch_timeout_ms = o->watch_timeout_ms > 0 ? o->watch_timeout_ms : 300000;
    w->backoff_initial_ms = o->backoff_initial_ms > 0 ? o->backoff_initial_ms : 100;
    w->backoff_max_ms =
        o->backoff_max_ms >= w->backoff_initial_ms ? o->backoff_max_ms : w->backoff_initial_ms;
    w->page_size = o->page_size > 0 ? o->page_size : 500;
    w->h = *h;
    w->arg = arg;
    w->cache = json_object();
    w->pending = json_object();
    w->rv = gw_xstrdup("");
    w->timer = gw_timer_new(loop, on_timer, w);
    schedule(w, NEXT_LIST, 0);
    *out = w;
    return GW_OK;
}

void
ctl_kwatch_free(ctl_kwatch *w)
{
    if (w == NULL)
        return;
    ctl_kube_cancel(w->req);
    gw_timer_free(w->timer);
    json_decref(w->cache);
    json_decref(w->pending);
    free(w->cont);
    free(w->rv);
    free(w->resource);
    free(w->path);
    free(w->label_sel);
    free(w->field_sel);
    free(w);
}

bool
ctl_kwatch_synced(const ctl_kwatch *w)
{
    return w->synced;
}

const json_t *
ctl_kwatch_get(const ctl_kwatch *w, const char *ns, const char *name)
{
    char *key = ctl_strf("%s/%s", ns != NULL ? ns : "", name);
    const json_t *o = json_object_get(w->cache, key);

    free(key);
    return o;
}

const json_t *
ctl_kwatch_items(const ctl_kwatch *w)
{
    return w->cache;
}

const char *
ctl_kwatch_rv(const ctl_kwatch *w)
{
    return w->rv != NULL ? w->rv : "";
}
