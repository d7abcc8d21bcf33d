/* ctl_src_etcd: etcd discovery (see ctl_src_etcd.h). At most two transfers
 * run: <op> (authenticate or range) and <watch>; a cycle cancels both and
 * starts again, so there is never a second watch feeding the table. */
#include "ctl_src_etcd.h"

#include <stdlib.h>
#include <string.h>

#include "ctl_disc_rec.h"
#include "ctl_disc_table.h"
#include "ctl_etcd_json.h"
#include "ctl_util.h"
#include "gw/gw_buf.h"
#include "gw/gw_curlm.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define EXPIRE_TICK_MS 1000

typedef enum xfer_kind { X_AUTH, X_RANGE, X_WATCH } xfer_kind;

typedef struct xfer {
    struct ctl_src_etcd *s;
    xfer_kind kind;
    CURL *easy;
    struct curl_slist *hdrs;
    gw_buf resp;  /* whole body (auth, range) or the unparsed stream tail */
    bool aborted; /* the write callback refused the stream */
} xfer;

struct ctl_src_etcd {
    gw_loop *loop;
    ctl_store *store;
    ctl_metrics *metrics;
    gw_curlm *curlm;
    ctl_disc_table *table;
    char **urls;
    size_t n_urls, cur;
    char *username, *password, *token;
    uint64_t dial_ms, refresh_ms;
    xfer *op, *watch;
    gw_timer *cycle_timer; /* next cycle: retry backoff or periodic refresh */
    gw_timer *expire_timer;
    uint64_t backoff_ms;
    unsigned failures; /* failed steps in a row (across members) */
    bool down;
};

static void cycle_start(ctl_src_etcd *s);

/* "http <status>: <text>" for logs (heap). */
static char *
reason(long status, const char *text)
{
    return ctl_strf("http %ld: %s", status, text != NULL ? text : "");
}

static void
xfer_free(xfer *x)
{
    if (x == NULL)
        return;
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    gw_buf_fini(&x->resp);
    free(x);
}

/* Stops and frees a running transfer. */
static void
cancel(ctl_src_etcd *s, xfer **px)
{
    if (*px == NULL)
        return;
    gw_curlm_remove(s->curlm, (*px)->easy);
    xfer_free(*px);
    *px = NULL;
}

static void
publish_metrics(ctl_src_etcd *s)
{
    ctl_metrics_discovery(s->metrics, "etcd", !s->down, ctl_disc_table_count(s->table),
                          ctl_disc_table_retained(s->table));
}

static void
replace_set(ctl_src_etcd *s)
{
    ctl_store_replace(s->store, CTL_SRC_ETCD, ctl_disc_table_set(s->table));
    publish_metrics(s);
}

/* A step failed on the current member: next member after a backoff. */
static void
fail(ctl_src_etcd *s, const char *what, const char *detail)
{
    char q[256];

    cancel(s, &s->op);
    cancel(s, &s->watch);
    ctl_metrics_discovery_error(s->metrics, "etcd");
    gw_log_ratelimited(GW_LOG_INFO, 2, "CTL-ETCD-FAIL", "member=%s op=%s msg=%s", s->urls[s->cur],
                       what, gw_log_q(q, sizeof(q), detail));
    s->failures++;
    if (s->failures >= s->n_urls && !s->down) {
        s->down = true;
        gw_log(GW_LOG_WARN, "CTL-DISCOVERY-STALE",
               "source=etcd op=%s members=%zu instances=%zu msg=\"no etcd member answers; "
               "serving the last known instance list\"",
               what, s->n_urls, ctl_disc_table_count(s->table));
    }
    s->cur = (s->cur + 1) % s->n_urls;
    publish_metrics(s);
    gw_timer_start(s->cycle_timer, s->backoff_ms);
    s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
    xfer *x = arg;

    if (gw_buf_append(&x->resp, p, size * n) != GW_OK)
        return 0; /* over the cap: the transfer fails */
    return size * n;
}

static void
apply_kvs(ctl_src_etcd *s, const ctl_etcd_msg *m, bool *changed)
{
    uint64_t now = gw_wall_ms();

    for (size_t i = 0; i < m->n_kvs; i++) {
        const ctl_etcd_kv *kv = &m->kvs[i];
        if (kv->is_delete)
            *changed |= ctl_disc_table_delete(s->table, kv->key);
        else
            *changed |= ctl_disc_table_put(s->table, kv->key, kv->value, kv->value_len, now);
    }
}

/* Applies every complete line of the watch stream. Returns false when the
 * watch must end (error, canceled, unparsable). */
static bool
watch_lines(ctl_src_etcd *s, xfer *x)
{
    bool changed = false, ok = true;
    char *nl;

    while (ok && (nl = memchr(x->resp.data, '\n', x->resp.len)) != NULL) {
        size_t len = (size_t)(nl - x->resp.data);
        ctl_etcd_msg m = {0};
        char *why = NULL, q[256];

        if (len > 0 && ctl_etcd_parse_watch(x->resp.data, len, &m, &why) != GW_OK) {
            gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-ETCD-WATCH-BAD", "member=%s msg=%s",
                               s->urls[s->cur], gw_log_q(q, sizeof(q), why));
            free(why);
            ok = false;
        } else if (len > 0) {
            if (m.error != NULL || m.canceled) {
                gw_log(GW_LOG_INFO, "CTL-ETCD-WATCH-END", "member=%s compact_revision=%lld msg=%s",
                       s->urls[s->cur], (long long)m.compact_revision,
                       gw_log_q(q, sizeof(q), m.error != NULL ? m.error : "canceled"));
                ok = false;
            } else {
                apply_kvs(s, &m, &changed);
            }
        }
        ctl_etcd_msg_fini(&m);
        gw_buf_consume(&x->resp, len + 1);
    }
    if (changed)
        replace_set(s);
    return ok;
}

static size_t
on_watch_body(char *p, size_t size, size_t n, void *arg)
{
    xfer *x = arg;

    if (gw_buf_append(&x->resp, p, size * n) != GW_OK || !watch_lines(x->s, x)) {
        x->aborted = true;
        return 0;
    }
    return size * n;
}

static gw_err
send_xfer(ctl_src_etcd *s, xfer_kind kind, const char *path, char *body, xfer **out)
{
    xfer *x = gw_xcalloc(1, sizeof(*x));
    char *url = NULL, *auth = NULL;
    gw_err rc;

    x->s = s;
    x->kind = kind;
    gw_buf_init(&x->resp, CTL_ETCD_MAX_BODY);
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        free(body);
        xfer_free(x);
        return GW_ENOMEM;
    }
    url = ctl_strf("%s%s", s->urls[s->cur], path);
    x->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (s->token != NULL && kind != X_AUTH) {
        auth = ctl_strf("Authorization: %s", s->token);
        x->hdrs = curl_slist_append(x->hdrs, auth);
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    curl_easy_setopt(x->easy, CURLOPT_URL, url);
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)s->dial_ms);
    if (kind == X_WATCH) {
        /* A quiet watch is normal: no total limit, but TCP keepalive so a
         * member that vanished without a FIN is noticed. */
        curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_watch_body);
        curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPIDLE, 5L);
        curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPINTVL, 2L);
    } else {
        curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(2 * s->dial_ms));
    }
    curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
    free(url);
    free(body);
    rc = gw_curlm_add(s->curlm, x->easy);
    if (rc != GW_OK) {
        xfer_free(x);
        return rc;
    }
    *out = x;
    return GW_OK;
}

static void
start_range(ctl_src_etcd *s)
{
    if (send_xfer(s, X_RANGE, "/v3/kv/range", ctl_etcd_range_body(CTL_DISC_ETCD_PREFIX), &s->op) !=
        GW_OK)
        fail(s, "range", "cannot start the transfer");
}

static void
cycle_start(ctl_src_etcd *s)
{
    cancel(s, &s->op);
    cancel(s, &s->watch);
    if (s->username != NULL && s->token == NULL) {
        if (send_xfer(s, X_AUTH, "/v3/auth/authenticate",
                      ctl_etcd_auth_body(s->username, s->password != NULL ? s->password : ""),
                      &s->op) != GW_OK)
            fail(s, "auth", "cannot start the transfer");
        return;
    }
    start_range(s);
}

static void
on_cycle_timer(gw_loop *loop, void *arg)
{
    (void)loop;
    cycle_start(arg);
}

static void
on_expire_timer(gw_loop *loop, void *arg)
{
    ctl_src_etcd *s = arg;
    (void)loop;

    /* While the store is down nothing expires: the last list is served. */
    if (!s->down && ctl_disc_table_expire(s->table, gw_wall_ms()))
        replace_set(s);
    gw_timer_start(s->expire_timer, EXPIRE_TICK_MS);
}

/* An answer that says the token is bad (expired, or auth was re-enabled):
 * forget it, so the next cycle authenticates again. */
static void
check_token_error(ctl_src_etcd *s, long status, const char *err)
{
    if (status == 401 ||
        (err != NULL && (strstr(err, "token") != NULL || strstr(err, "authentication") != NULL))) {
        if (s->token != NULL) {
            memset(s->token, 0, strlen(s->token));
            GW_FREE(s->token);
        }
    }
}

static void
on_range(ctl_src_etcd *s, long status, xfer *x)
{
    ctl_etcd_msg m = {0};
    char *why = NULL;
    uint64_t now = gw_wall_ms();
    bool changed = false;
    int64_t rev;

    if (ctl_etcd_parse_range(x->resp.data != NULL ? x->resp.data : "", x->resp.len, &m, &why) !=
            GW_OK ||
        m.error != NULL || status != 200) {
        char *d = reason(status, m.error != NULL ? m.error : why);
        check_token_error(s, status, m.error);
        ctl_etcd_msg_fini(&m);
        free(why);
        xfer_free(x);
        fail(s, "range", d);
        free(d);
        return;
    }
    xfer_free(x);
    ctl_disc_table_begin(s->table);
    apply_kvs(s, &m, &changed);
    if (s->down) {
        gw_log(GW_LOG_NOTICE, "CTL-DISCOVERY-RECOVERED", "source=etcd member=%s instances=%zu",
               s->urls[s->cur], m.n_kvs);
        ctl_disc_table_grace(s->table, now);
        s->down = false;
    }
    changed |= ctl_disc_table_end(s->table, now);
    changed |= ctl_disc_table_expire(s->table, now);
    rev = m.revision;
    ctl_etcd_msg_fini(&m);
    s->failures = 0;
    s->backoff_ms = BACKOFF_MIN_MS;
    if (changed)
        replace_set(s);
    else
        publish_metrics(s);
    if (send_xfer(s, X_WATCH, "/v3/watch", ctl_etcd_watch_body(CTL_DISC_ETCD_PREFIX, rev + 1),
                  &s->watch) != GW_OK) {
        fail(s, "watch", "cannot start the transfer");
        return;
    }
    gw_timer_start(s->cycle_timer, s->refresh_ms);
}

static void
on_auth(ctl_src_etcd *s, long status, xfer *x)
{
    char *tok = status == 200 ? ctl_etcd_get_str(x->resp.data, x->resp.len, "token") : NULL;

    if (tok == NULL && x->resp.data != NULL && strstr(x->resp.data, "not enabled") != NULL) {
        /* The cluster runs without auth (e.g. it came back without its
         * data): read without a token; the next cycle asks again. */
        xfer_free(x);
        start_range(s);
        return;
    }
    if (tok == NULL) {
        char *d = reason(status, "no token in the answer");
        xfer_free(x);
        fail(s, "auth", d);
        free(d);
        return;
    }
    xfer_free(x);
    s->token = tok;
    start_range(s);
}

static void
on_done(CURL *easy, CURLcode res, void *arg)
{
    ctl_src_etcd *s = arg;
    xfer *x = NULL;
    long status = 0;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (x == s->op)
        s->op = NULL;
    else if (x == s->watch)
        s->watch = NULL;
    if (x->kind == X_WATCH) {
        /* Whatever ended it (member gone, canceled, compacted), read again
         * from the next member: the range catches up on what was missed. */
        char *d = reason(status,
                         x->aborted ? "watch ended by an error message" : curl_easy_strerror(res));
        xfer_free(x);
        fail(s, "watch", d);
        free(d);
        return;
    }
    if (res != CURLE_OK) {
        const char *what = x->kind == X_AUTH ? "auth" : "range";
        xfer_free(x);
        fail(s, what, curl_easy_strerror(res));
        return;
    }
    if (x->kind == X_AUTH)
        on_auth(s, status, x);
    else
        on_range(s, status, x);
}

gw_err
ctl_src_etcd_start(gw_loop *loop, ctl_store *store, ctl_metrics *metrics,
                   const ctl_src_etcd_opts *o, ctl_src_etcd **out, char **why)
{
    ctl_src_etcd *s = gw_xcalloc(1, sizeof(*s));
    gw_err rc;

    rc = ctl_etcd_parse_endpoints(o->endpoints, &s->urls, &s->n_urls, why);
    if (rc != GW_OK) {
        free(s);
        return rc;
    }
    s->loop = loop;
    s->store = store;
    s->metrics = metrics;
    s->dial_ms = o->dial_timeout_ms;
    s->refresh_ms = o->refresh_ms;
    s->backoff_ms = BACKOFF_MIN_MS;
    if (o->username != NULL && o->username[0] != '\0') {
        s->username = gw_xstrdup(o->username);
        s->password = gw_xstrdup(o->password != NULL ? o->password : "");
    }
    s->table = ctl_disc_table_new("etcd", CTL_DISC_ETCD_PREFIX, o->lease_ttl_ms, false);
    s->cycle_timer = gw_timer_new(loop, on_cycle_timer, s);
    s->expire_timer = gw_timer_new(loop, on_expire_timer, s);
    rc = gw_curlm_new(loop, on_done, s, 4, 8, &s->curlm);
    if (rc != GW_OK) {
        *why = gw_xstrdup("cannot create the curl multi handle");
        ctl_src_etcd_free(s);
        return rc;
    }
    publish_metrics(s);
    gw_timer_start(s->expire_timer, EXPIRE_TICK_MS);
    cycle_start(s);
    *out = s;
    return GW_OK;
}

void
ctl_src_etcd_free(ctl_src_etcd *s)
{
    if (s == NULL)
        return;
    if (s->curlm != NULL) {
        cancel(s, &s->op);
        cancel(s, &s->watch);
    }
    gw_curlm_free(s->curlm);
    gw_timer_free(s->cycle_timer);
    gw_timer_free(s->expire_timer);
    ctl_disc_table_free(s->table);
    ctl_etcd_endpoints_free(s->urls, s->n_urls);
    free(s->username);
    if (s->password != NULL) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    if (s->token != NULL) {
        memset(s->token, 0, strlen(s->token));
        free(s->token);
    }
    free(s);
}
