/* ctl_leader: Lease-based leader election (see ctl_leader.h). One attempt
 * (a GET, then at most one create or update) runs at a time; the timer
 * starts the next one a retry period after the previous attempt began. */
#include "ctl_leader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ctl_kobj.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct ctl_leader {
    gw_loop *loop;
    ctl_kube *kube;
    ctl_metrics *metrics;
    char *ns, *name, *identity;
    uint64_t lease_ms, renew_deadline_ms, retry_ms;
    ctl_leader_fn cb;
    void *cb_arg;
    gw_timer *timer;
    ctl_kube_req *req;
    bool leading;
    bool stopped;
    uint64_t last_renew_ms; /* monotonic, last successful renew/acquire */
    char *observed;         /* holder + renewTime of the record last seen */
    uint64_t observed_ms;   /* when that record was first seen */
    char *holder_logged;    /* the holder last logged, so standbys log changes only */
    void (*release_done)(void *);
    void *release_arg;
};

/* ---- pure ---- */

ctl_leader_action
ctl_leader_decide(const json_t *lease, const char *identity, uint64_t observed_ms, uint64_t now_ms,
                  uint64_t default_duration_ms)
{
    const json_t *spec = json_object_get(lease, "spec");
    const char *holder = json_string_value(json_object_get(spec, "holderIdentity"));
    json_int_t secs = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
    uint64_t dur = secs > 0 ? (uint64_t)secs * 1000 : default_duration_ms;

    if (holder != NULL && strcmp(holder, identity) == 0)
        return CTL_LEADER_RENEW;
    if (holder == NULL || holder[0] == '\0')
        return CTL_LEADER_TAKE; /* released */
    return now_ms >= observed_ms + dur ? CTL_LEADER_TAKE : CTL_LEADER_WAIT;
}

/* ---- runtime ---- */

static void
micro_time(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    char base[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%s.%06ldZ", base, (long)(ts.tv_nsec / 1000) % 1000000);
}

static void
set_leading(ctl_leader *l, bool on)
{
    if (l->leading == on)
        return;
    l->leading = on;
    ctl_metrics_leader(l->metrics, on);
    gw_log(GW_LOG_NOTICE, on ? "CTL-LEADER-START" : "CTL-LEADER-STOP", "lease=%s/%s identity=%s",
           l->ns, l->name, l->identity);
    l->cb(l->cb_arg, on);
}

static void
next_attempt(ctl_leader *l)
{
    uint32_t r = 0;

    if (l->stopped)
        return;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)gw_now_us();
    /* client-go's JitterFactor 1.2: retry within [1, 1.2) periods. */
    gw_timer_start(l->timer,
                   l->retry_ms + (uint64_t)((double)l->retry_ms * 0.2 * (r / 4294967296.0)));
}

/* A renew or acquisition did not happen: a leader past its renew deadline
 * steps down. */
static void
attempt_failed(ctl_leader *l, const char *why, long status)
{
    if (l->leading) {
        uint64_t since = gw_now_ms() - l->last_renew_ms;
        gw_log(GW_LOG_WARN, "CTL-LEADER-RENEW-FAIL", "lease=%s/%s why=%s status=%ld since_ms=%llu",
               l->ns, l->name, why, status, (unsigned long long)since);
        if (since >= l->renew_deadline_ms)
            set_leading(l, false);
    } else {
        gw_log_ratelimited(GW_LOG_INFO, 1, "CTL-LEADER-TRY-FAIL", "lease=%s/%s why=%s status=%ld",
                           l->ns, l->name, why, status);
    }
    next_attempt(l);
}

static void
on_written(const ctl_kube_resp *r, void *arg)
{
    ctl_leader *l = arg;

    l->req = NULL;
    if (r->err == GW_OK && (r->status == 200 || r->status == 201)) {
        ctl_metrics_kube_write(l->metrics, "lease", "ok");
        l->last_renew_ms = gw_now_ms();
        set_leading(l, true);
        next_attempt(l);
        return;
    }
    ctl_metrics_kube_write(l->metrics, "lease", r->status == 409 ? "conflict" : "error");
    attempt_failed(l, r->status == 409 ? "conflict" : gw_strerror(r->err), r->status);
}

static json_t *
new_lease(const ctl_leader *l, const char *now)
{
    return json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s,s:I,s:s,s:s,s:i}}", "apiVersion",
                     "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name", l->name,
                     "namespace", l->ns, "spec", "holderIdentity", l->identity,
                     "leaseDurationSeconds", (json_int_t)((l->lease_ms + 999) / 1000),
                     "acquireTime", now, "renewTime", now, "leaseTransitions", 0);
}

static void
on_read(const ctl_kube_resp *r, void *arg)
{
    ctl_leader *l = arg;
    char now[40], *path, *rec;
    const json_t *spec;
    const char *holder, *renew;
    json_t *body;
    gw_err rc;

    l->req = NULL;
    if (l->stopped)
        return;
    micro_time(now, sizeof(now));
    if (r->err == GW_OK && r->status == 404) {
        body = new_lease(l, now);
        path = ctl_strf("/apis/coordination.k8s.io/v1/namespaces/%s/leases", l->ns);
        rc = ctl_kube_request(l->kube, "POST", path, NULL, body, on_written, l, &l->req);
        free(path);
        json_decref(body);
        if (rc != GW_OK)
            attempt_failed(l, "request", 0);
        return;
    }
    if (r->err != GW_OK || r->status != 200 || !json_is_object(r->body)) {
        attempt_failed(l, r->err != GW_OK ? gw_strerror(r->err) : "read", r->status);
        return;
    }
    spec = json_object_get(r->body, "spec");
    holder = json_string_value(json_object_get(spec, "holderIdentity"));
    renew = json_string_value(json_object_get(spec, "renewTime"));
    rec = ctl_strf("%s|%s", holder != NULL ? holder : "", renew != NULL ? renew : "");
    if (l->observed == NULL || strcmp(rec, l->observed) != 0) {
        free(l->observed);
        l->observed = rec;
        l->observed_ms = gw_now_ms();
    } else {
        free(rec);
    }
    if (holder != NULL && holder[0] != '\0' && strcmp(holder, l->identity) != 0 &&
        (l->holder_logged == NULL || strcmp(l->holder_logged, holder) != 0)) {
        gw_log(GW_LOG_NOTICE, "CTL-LEADER-HOLDER", "lease=%s/%s holder=%s", l->ns, l->name, holder);
        free(l->holder_logged);
        l->holder_logged = gw_xstrdup(holder);
    }
    switch (ctl_leader_decide(r->body, l->identity, l->observed_ms, gw_now_ms(), l->lease_ms)) {
    case CTL_LEADER_WAIT:
        if (l->leading) /* someone else holds it: we lost it */
            set_leading(l, false);
        next_attempt(l);
        return;
    case CTL_LEADER_RENEW:
    case CTL_LEADER_TAKE:
        break;
    }
    body = json_deep_copy(r->body);
    {
        json_t *s = json_object_get(body, "spec");
        bool take = holder == NULL || strcmp(holder, l->identity) != 0;
        if (!json_is_object(s)) {
            s = json_object();
            json_object_set_new(body, "spec", s);
        }
        if (take) {
            json_int_t tr = json_integer_value(json_object_get(s, "leaseTransitions"));
            json_object_set_new(s, "holderIdentity", json_string(l->identity));
            json_object_set_new(s, "acquireTime", json_string(now));
            json_object_set_new(s, "leaseTransitions", json_integer(tr + 1));
        }
        json_object_set_new(s, "renewTime", json_string(now));
        json_object_set_new(s, "leaseDurationSeconds",
                            json_integer((json_int_t)((l->lease_ms + 999) / 1000)));
    }
    path = ctl_strf("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
    rc = ctl_kube_request(l->kube, "PUT", path, NULL, body, on_written, l, &l->req);
    free(path);
    json_decref(body);
    if (rc != GW_OK)
        attempt_failed(l, "request", 0);
}

static void
on_timer(gw_loop *loop, void *arg)
{
    ctl_leader *l = arg;
    char *path;
    (void)loop;

    if (l->stopped || l->req != NULL)
        return;
    /* A leader whose renewals have been failing steps down on time even
     * when the API server does not answer at all. */
    if (l->leading && gw_now_ms() - l->last_renew_ms >= l->renew_deadline_ms) {
        gw_log(GW_LOG_WARN, "CTL-LEADER-RENEW-FAIL", "lease=%s/%s why=deadline", l->ns, l->name);
        set_leading(l, false);
    }
    path = ctl_strf("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
    if (ctl_kube_request(l->kube, "GET", path, NULL, NULL, on_read, l, &l->req) != GW_OK)
        attempt_failed(l, "request", 0);
    free(path);
}

gw_err
ctl_leader_start(gw_loop *loop, ctl_kube *kube, ctl_metrics *metrics, const ctl_leader_opts *o,
                 ctl_leader_fn cb, void *arg, ctl_leader **out)
{
    ctl_leader *l = gw_xcalloc(1, sizeof(*l));

    l->loop = loop;
    l->kube = kube;
    l->metrics = metrics;
    l->ns = gw_xstrdup(o->ns);
    l->name = gw_xstrdup(o->name);
    l->identity = gw_xstrdup(o->identity);
    l->lease_ms = o->lease_duration_ms;
    l->renew_deadline_ms = o->renew_deadline_ms;
    l->retry_ms = o->retry_period_ms;
    l->cb = cb;
    l->cb_arg = arg;
    l->timer = gw_timer_new(loop, on_timer, l);
    gw_timer_start(l->timer, 0);
    gw_log(GW_LOG_NOTICE, "CTL-LEADER-CAMPAIGN",
           "lease=%s/%s identity=%s duration_ms=%llu renew_deadline_ms=%llu retry_ms=%llu", l->ns,
           l->name, l->identity, (unsigned long long)l->lease_ms,
           (unsigned long long)l->renew_deadline_ms, (unsigned long long)l->retry_ms);
    *out = l;
    return GW_OK;
}

bool
ctl_leader_is_leader(const ctl_leader *l)
{
    return l != NULL && l->leading;
}

static void
on_released(const ctl_kube_resp *r, void *arg)
{
    ctl_leader *l = arg;

    l->req = NULL;
    if (r->err == GW_OK && r->status == 200)
        gw_log(GW_LOG_NOTICE, "CTL-LEADER-RELEASED", "lease=%s/%s", l->ns, l->name);
    else
        gw_log(GW_LOG_WARN, "CTL-LEADER-RELEASE-FAIL", "lease=%s/%s err=%s status=%ld", l->ns,
               l->name, gw_strerror(r->err), r->status);
    if (l->release_done != NULL)
        l->release_done(l->release_arg);
}

/* Release step 2: the fresh Lease, handed over only if it is still ours. */
static void
on_release_read(const ctl_kube_resp *r, void *arg)
{
    ctl_leader *l = arg;
    const char *holder;
    char now[40], *path;
    json_t *body, *s;

    l->req = NULL;
    holder = ctl_kobj_str(r->body, "spec", "holderIdentity", NULL);
    if (r->err != GW_OK || r->status != 200 || holder == NULL || strcmp(holder, l->identity) != 0) {
        if (l->release_done != NULL)
            l->release_done(l->release_arg);
        return;
    }
    micro_time(now, sizeof(now));
    body = json_deep_copy(r->body);
    s = json_object_get(body, "spec");
    json_object_set_new(s, "holderIdentity", json_string(""));
    json_object_set_new(s, "leaseDurationSeconds", json_integer(1));
    json_object_set_new(s, "renewTime", json_string(now));
    path = ctl_strf("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
    if (ctl_kube_request(l->kube, "PUT", path, NULL, body, on_released, l, &l->req) != GW_OK &&
        l->release_done != NULL)
        l->release_done(l->release_arg);
    free(path);
    json_decref(body);
}

void
ctl_leader_release(ctl_leader *l, void (*done)(void *arg), void *arg)
{
    bool was = l->leading;
    char *path;

    l->stopped = true;
    gw_timer_stop(l->timer);
    ctl_kube_cancel(l->req);
    l->req = NULL;
    l->release_done = done;
    l->release_arg = arg;
    if (!was) {
        done(arg);
        return;
    }
    /* Stop acting as the leader before handing the Lease over. */
    set_leading(l, false);
    path = ctl_strf("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s", l->ns, l->name);
    if (ctl_kube_request(l->kube, "GET", path, NULL, NULL, on_release_read, l, &l->req) != GW_OK)
        done(arg);
    free(path);
}

void
ctl_leader_free(ctl_leader *l)
{
    if (l == NULL)
        return;
    ctl_kube_cancel(l->req);
    gw_timer_free(l->timer);
    free(l->ns);
    free(l->name);
    free(l->identity);
    free(l->observed);
    free(l->holder_logged);
    free(l);
}
