/* dp_mirror: the mirror file and the fire-and-forget copies (see
 * dp_mirror.h). */
#include "dp_mirror.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_traffic.h"

/* ---- the running mirror ------------------------------------------------- */

typedef struct mirror_call mirror_call;

struct dp_mirror {
    gw_loop *loop;
    gw_curlm *curlm; /* its own: copies never take the engines' connections */
    dp_mirror_opts opts;
    char *path;        /* "": no file of its own */
    gw_mirror_cfg cfg; /* in effect: the file's while it exists, else the snapshot's */
    char *last_text;   /* the file as last read; NULL: missing */
    bool missing_seen;
    char *snap_text;   /* the controller's config from the snapshot; NULL: none */
    bool snap_ignored; /* the "file wins" line was logged */
    gw_timer *timer;
    mirror_call *calls; /* running copies */
    uint32_t inflight;
};

struct mirror_call {
    dp_mirror *m;
    mirror_call *prev, *next;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body;
    char id[64];
    bool log;
};

static void
count(gw_metric_fam *fam, const char *result)
{
    if (fam != NULL)
        gw_counter_inc(gw_metric_child(fam, result));
}

static void
call_free(mirror_call *c)
{
    dp_mirror *m = c->m;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        m->calls = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    m->inflight--;
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    free(c->body);
    free(c);
}

static void
on_call_done(CURL *easy, CURLcode result, void *arg)
{
    mirror_call *c = NULL;
    long status = 0;
    (void)arg;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&c);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (result == CURLE_OK && status > 0 && status < 500) {
        count(c->m->opts.requests, "completed");
    } else {
        count(c->m->opts.requests, "failed");
        gw_log_ratelimited(GW_LOG_WARN, 10, "DP-MIRROR-FAIL", "req=%s status=%ld curl=%d", c->id,
                           status, (int)result);
    }
    if (c->log)
        gw_log(GW_LOG_NOTICE, "DP-MIRROR", "req=%s status=%ld curl=%d", c->id, status, (int)result);
    call_free(c);
}

/* Applies config <text> from <src> ("file=<path>" or "source=snapshot"); an
 * invalid one keeps the last good config. */
static void
apply(dp_mirror *m, const char *text, const char *src_key, const char *src)
{
    gw_mirror_cfg nc;
    char why[256];

    if (gw_mirror_cfg_parse(text, strlen(text), &nc, why, sizeof(why)) != GW_OK) {
        count(m->opts.reloads, "invalid");
        gw_log(GW_LOG_WARN, "DP-MIRROR-CONFIG",
               "%s=%s msg=\"invalid; the last good config stays\" why=\"%s\"", src_key, src, why);
        return;
    }
    gw_mirror_cfg_fini(&m->cfg);
    m->cfg = nc;
    count(m->opts.reloads, "applied");
    gw_log(GW_LOG_NOTICE, "DP-MIRROR-CONFIG", "%s=%s enable=%d target=%s ratio=%g timeout_ms=%g",
           src_key, src, m->cfg.enable, m->cfg.target ? m->cfg.target : "-", m->cfg.ratio,
           m->cfg.timeout_ms);
}

/* No file of its own (any more): the controller's config, else off. */
static void
apply_snapshot_or_off(dp_mirror *m)
{
    if (m->snap_text != NULL) {
        apply(m, m->snap_text, "source", "snapshot");
        return;
    }
    if (m->cfg.enable)
        gw_log(GW_LOG_NOTICE, "DP-MIRROR-CONFIG", "file=%s msg=\"no mirror config; mirror off\"",
               m->path[0] ? m->path : "-");
    gw_mirror_cfg_fini(&m->cfg);
}

void
dp_mirror_reload(dp_mirror *m)
{
    char *text = NULL;

    if (m->path[0] == '\0')
        return;
    switch (gw_mirror_file_read(m->path, &text)) {
    case GW_MIRROR_FILE_MISSING:
        /* A missing file means no mirror of the worker's own (as Llumnix):
         * the controller's applies, if any. */
        if (!m->missing_seen) {
            m->missing_seen = true;
            count(m->opts.reloads, "missing");
            GW_FREE(m->last_text);
            apply_snapshot_or_off(m);
        }
        return;
    case GW_MIRROR_FILE_UNREADABLE:
        m->missing_seen = false;
        count(m->opts.reloads, "invalid");
        return;
    case GW_MIRROR_FILE_READ:
        break;
    }
    m->missing_seen = false;
    if (m->last_text != NULL && strcmp(m->last_text, text) == 0) {
        free(text);
        return; /* unchanged */
    }
    free(m->last_text);
    m->last_text = text;
    apply(m, text, "file", m->path);
}

void
dp_mirror_set_snapshot(dp_mirror *m, const char *text)
{
    if ((text == NULL && m->snap_text == NULL) ||
        (text != NULL && m->snap_text != NULL && strcmp(text, m->snap_text) == 0))
        return; /* unchanged: most snapshots only move endpoints */
    free(m->snap_text);
    m->snap_text = text != NULL ? gw_xstrdup(text) : NULL;
    if (m->last_text != NULL) {
        /* The worker's own file wins while it exists (docs/traffic.md). */
        if (!m->snap_ignored && m->snap_text != NULL)
            gw_log(GW_LOG_NOTICE, "DP-MIRROR-CONFIG",
                   "file=%s msg=\"the worker's own mirror file wins; the controller's mirror "
                   "config is ignored while it exists\"",
                   m->path);
        m->snap_ignored = m->snap_ignored || m->snap_text != NULL;
        return;
    }
    apply_snapshot_or_off(m);
}

static void
on_reload_tick(gw_loop *loop, void *arg)
{
    dp_mirror *m = arg;
    (void)loop;

    dp_mirror_reload(m);
    gw_timer_start(m->timer, m->opts.reload_interval_ms);
}

gw_err
dp_mirror_new(gw_loop *loop, const dp_mirror_opts *opts, dp_mirror **out)
{
    dp_mirror *m = gw_xcalloc(1, sizeof(*m));
    gw_err rc;

    m->loop = loop;
    m->opts = *opts;
    m->path = gw_xstrdup(opts->path);
    m->opts.path = m->path;
    rc = gw_curlm_new(loop, on_call_done, m, 0, 256, &m->curlm);
    if (rc != GW_OK) {
        free(m->path);
        free(m);
        return rc;
    }
    m->timer = gw_timer_new(loop, on_reload_tick, m);
    dp_mirror_reload(m);
    gw_timer_start(m->timer, m->opts.reload_interval_ms);
    *out = m;
    return GW_OK;
}

void
dp_mirror_free(dp_mirror *m)
{
    if (m == NULL)
        return;
    while (m->calls != NULL) {
        gw_curlm_remove(m->curlm, m->calls->easy);
        call_free(m->calls);
    }
    gw_curlm_free(m->curlm);
    gw_timer_free(m->timer);
    gw_mirror_cfg_fini(&m->cfg);
    free(m->last_text);
    free(m->snap_text);
    free(m->path);
    free(m);
}

bool
dp_mirror_enabled(const dp_mirror *m)
{
    return m != NULL && m->cfg.enable && m->cfg.target != NULL;
}

uint32_t
dp_mirror_inflight(const dp_mirror *m)
{
    return m ? m->inflight : 0;
}

bool
dp_mirror_wants(const dp_mirror *m, uint32_t rnd)
{
    if (!dp_mirror_enabled(m) || m->cfg.ratio <= 0)
        return false;
    return (double)rnd / 4294967296.0 * 100.0 < m->cfg.ratio;
}

void
dp_mirror_send(dp_mirror *m, const char *path, const char *id, const char *body, size_t len,
               struct curl_slist *hdrs)
{
    char url[4096];
    mirror_call *c;
    uint64_t timeout;

    if (!dp_mirror_enabled(m)) {
        curl_slist_free_all(hdrs);
        return;
    }
    if (m->inflight >= m->opts.max_inflight) {
        count(m->opts.requests, "dropped");
        gw_log_ratelimited(GW_LOG_WARN, 10, "DP-MIRROR-DROP", "req=%s inflight=%u", id,
                           m->inflight);
        curl_slist_free_all(hdrs);
        return;
    }
    c = gw_xcalloc(1, sizeof(*c));
    c->m = m;
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        count(m->opts.requests, "dropped");
        curl_slist_free_all(hdrs);
        free(c);
        return;
    }
    c->hdrs =
        m->cfg.authorization ? dp_traffic_set_authorization(hdrs, m->cfg.authorization) : hdrs;
    c->body = gw_xmalloc(len + 1);
    if (len > 0)
        memcpy(c->body, body, len);
    c->body[len] = '\0';
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->log = m->cfg.enable_log;
    snprintf(url, sizeof(url), "%s%s", m->cfg.target, path);
    timeout = m->cfg.timeout_ms > 0 ? (uint64_t)m->cfg.timeout_ms : m->opts.default_timeout_ms;
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, gw_curl_discard);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)m->opts.connect_timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout);
    c->next = m->calls;
    if (m->calls != NULL)
        m->calls->prev = c;
    m->calls = c;
    m->inflight++;
    if (gw_curlm_add(m->curlm, c->easy) != GW_OK) {
        count(m->opts.requests, "failed");
        call_free(c);
        return;
    }
    count(m->opts.requests, "sent");
    if (c->log)
        gw_log(GW_LOG_NOTICE, "DP-MIRROR-SEND", "req=%s path=%s bytes=%zu", c->id, path, len);
}
