/* dp_mirror: the mirror file and the fire-and-forget copies (see
 * dp_mirror.h). */
#include "dp_mirror.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "gw/gw_file.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_traffic.h"

#define DP_MIRROR_FILE_MAX (64u << 10)

/* ---- the config file ---------------------------------------------------- */

/* Go's encoding/json matches struct fields case-insensitively; "enable_log"
 * is accepted as well (llumnix.md §7.9). */
static bool
key_is(const char *key, const char *go_name, const char *snake)
{
    return strcasecmp(key, go_name) == 0 || (snake != NULL && strcasecmp(key, snake) == 0);
}

gw_err
dp_mirror_cfg_parse(const char *json, size_t len, dp_mirror_cfg *out, char *why, size_t n)
{
    json_error_t jerr;
    json_t *root, *v;
    const char *key;
    gw_err rc = GW_OK;

    memset(out, 0, sizeof(*out));
    why[0] = '\0';
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return gw_refuse(why, n, "not JSON (line %d column %d: %.100s)", jerr.line, jerr.column,
                         jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return gw_refuse(why, n, "must be a JSON object");
    }
    json_object_foreach(root, key, v)
    {
        if (key_is(key, "Enable", NULL)) {
            if (!json_is_boolean(v))
                rc = gw_refuse(why, n, "Enable: must be true or false");
            else
                out->enable = json_is_true(v);
        } else if (key_is(key, "Target", NULL)) {
            if (!json_is_string(v))
                rc = gw_refuse(why, n, "Target: must be a string");
            else if (json_string_length(v) > 2048)
                rc = gw_refuse(why, n, "Target: longer than 2048 bytes");
            else if (json_string_length(v) > 0) {
                free(out->target);
                out->target = gw_xstrdup(json_string_value(v));
            }
        } else if (key_is(key, "Ratio", NULL)) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100)
                rc = gw_refuse(why, n, "Ratio: must be a number from 0 to 100 (percent)");
            else
                out->ratio = json_number_value(v);
        } else if (key_is(key, "Timeout", NULL)) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 86400000)
                rc = gw_refuse(why, n, "Timeout: must be milliseconds from 0 to 86400000");
            else
                out->timeout_ms = json_number_value(v);
        } else if (key_is(key, "Authorization", NULL)) {
            if (!json_is_string(v) || strpbrk(json_string_value(v), "\r\n") != NULL)
                rc = gw_refuse(why, n, "Authorization: must be a string without line breaks");
            else if (json_string_length(v) > 0) {
                free(out->authorization);
                out->authorization = gw_xstrdup(json_string_value(v));
            }
        } else if (key_is(key, "EnableLog", "enable_log")) {
            if (!json_is_boolean(v))
                rc = gw_refuse(why, n, "EnableLog: must be true or false");
            else
                out->enable_log = json_is_true(v);
        } else {
            rc = gw_refuse(why, n,
                           "%.64s: unknown key (Enable, Target, Ratio, Timeout, Authorization, "
                           "EnableLog)",
                           key);
        }
        if (rc != GW_OK)
            break;
    }
    json_decref(root);
    if (rc == GW_OK && out->target != NULL) {
        const char *host = strncmp(out->target, "http://", 7) == 0    ? out->target + 7
                           : strncmp(out->target, "https://", 8) == 0 ? out->target + 8
                                                                      : NULL;
        if (host == NULL || *host == '\0' || *host == '/' || strpbrk(out->target, " \t\r\n"))
            rc = gw_refuse(why, n, "Target: \"%.128s\" is not an http:// or https:// URL",
                           out->target);
        for (size_t l = strlen(out->target); l > 0 && out->target[l - 1] == '/'; l--)
            out->target[l - 1] = '\0';
    }
    if (rc == GW_OK && out->enable && out->target == NULL)
        rc = gw_refuse(why, n, "Target: required when Enable is true");
    if (rc != GW_OK)
        dp_mirror_cfg_fini(out);
    return rc;
}

void
dp_mirror_cfg_fini(dp_mirror_cfg *c)
{
    free(c->target);
    if (c->authorization != NULL)
        explicit_bzero(c->authorization, strlen(c->authorization));
    free(c->authorization);
    memset(c, 0, sizeof(*c));
}

/* ---- the running mirror ------------------------------------------------- */

typedef struct mirror_call mirror_call;

struct dp_mirror {
    gw_loop *loop;
    gw_curlm *curlm; /* its own: copies never take the engines' connections */
    dp_mirror_opts opts;
    char *path;
    dp_mirror_cfg cfg;
    char *last_text; /* the file as last read; NULL: missing */
    bool missing_seen;
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

static void
apply(dp_mirror *m, const char *text)
{
    dp_mirror_cfg nc;
    char why[256];

    if (dp_mirror_cfg_parse(text, strlen(text), &nc, why, sizeof(why)) != GW_OK) {
        count(m->opts.reloads, "invalid");
        gw_log(GW_LOG_WARN, "DP-MIRROR-CONFIG",
               "file=%s msg=\"invalid; the last good config stays\" why=\"%s\"", m->path, why);
        return;
    }
    dp_mirror_cfg_fini(&m->cfg);
    m->cfg = nc;
    count(m->opts.reloads, "applied");
    gw_log(GW_LOG_NOTICE, "DP-MIRROR-CONFIG", "file=%s enable=%d target=%s ratio=%g timeout_ms=%g",
           m->path, m->cfg.enable, m->cfg.target ? m->cfg.target : "-", m->cfg.ratio,
           m->cfg.timeout_ms);
}

void
dp_mirror_reload(dp_mirror *m)
{
    struct stat st;
    char *text = NULL;

    /* A missing file means no mirror (as Llumnix); checked with stat first
     * so an absent file costs no log line every interval. The read is a
     * small local file once per interval, so it runs on the loop. */
    if (stat(m->path, &st) != 0 && errno == ENOENT) {
        if (!m->missing_seen) {
            m->missing_seen = true;
            count(m->opts.reloads, "missing");
            if (m->cfg.enable)
                gw_log(GW_LOG_NOTICE, "DP-MIRROR-CONFIG", "file=%s msg=\"gone; mirror off\"",
                       m->path);
            dp_mirror_cfg_fini(&m->cfg);
            GW_FREE(m->last_text);
        }
        return;
    }
    m->missing_seen = false;
    if (gw_read_file_text(m->path, DP_MIRROR_FILE_MAX, &text) != GW_OK) {
        count(m->opts.reloads, "invalid");
        return;
    }
    if (m->last_text != NULL && strcmp(m->last_text, text) == 0) {
        free(text);
        return; /* unchanged */
    }
    free(m->last_text);
    m->last_text = text;
    apply(m, text);
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
    dp_mirror_cfg_fini(&m->cfg);
    free(m->last_text);
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
