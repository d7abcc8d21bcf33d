/* dp_proxy: one proxied request from body to release (see dp_proxy.h).
 *
 * States, in order: reading the body -> admission (suspended while Redis
 * answers) -> waiting for the upstream's headers (connection suspended) -> relaying (a callback
 * response reads from <relay>; suspended while it is empty) -> completed (MHD's notification). An
 * error before the upstream's headers is answered as a whole JSON response; after them it can only
 * end the stream (SSE error event) or cut the connection.
 *
 * Invariant: <ep> is non-NULL exactly while a reservation is held, and only
 * req_release() clears it, so the release happens once. */
#include "dp_proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_access.h"
#include "dp_body_usage.h"
#include "dp_cbreaker.h"
#include "dp_error.h"
#include "dp_metrics.h"
#include "dp_mirror.h"
#include "dp_pd_body.h"
#include "dp_quota.h"
#include "dp_retry_queue.h"
#include "dp_route.h"
#include "dp_sse_strip.h"
#include "dp_usage.h"

#define DP_MAX_TRIES             8
#define DP_EASY_POOL             256
#define DP_CLIENT_WATCH_DELAY_MS 10 /* see on_client_hangup */

/* What a curl handle's CURLOPT_PRIVATE points at: the first member of each
 * says which (dp_proxy_on_curl_done dispatches on it). */
typedef enum dp_xfer_kind {
    DP_XFER_REQ = 1, /* a dp_req: its engine request, or its prefill */
    DP_XFER_ABORT,   /* a pd_abort_call: releasing a prefill's KV */
} dp_xfer_kind;

struct dp_req {
    dp_xfer_kind kind; /* DP_XFER_REQ; first */
    dp_ctx *ctx;
    struct MHD_Connection *conn;
    dp_req *prev, *next; /* ctx->reqs */
    dp_api api;
    const char *path; /* static string */
    uint64_t start_us;
    char id[64];
    gw_buf body;
    bool too_large;
    dp_reqinfo info;
    bool parsed;
    dp_snap *snap; /* ref held while routed */
    dp_route route;
    bool routed;
    bool started;             /* start() ran */
    dp_auth_out who;          /* the charged user (dp_auth) */
    dp_quota_ticket *qticket; /* admission waiting for Redis */
    dp_quota_grant grant;     /* admission decision and held increments */
    char retry_after[24];     /* for a 429 */
    bool strip_usage;         /* the engine was asked for usage: hide its event */
    dp_sse_strip strip;
    bool reached; /* some engine got the request (connected): no refund */
    /* pd: the prefill endpoint and its call (see "prefill/decode" below) */
    int64_t pre_idx; /* chosen prefill endpoint; -1 = none */
    dp_ep *pre_ep;   /* its reservation, held until the prefill ends */
    CURL *pre_easy;  /* the prefill call in flight */
    struct curl_slist *pre_hdrs;
    gw_buf pre_body, pre_resp;
    uint64_t pre_start_us, pre_deadline_us;
    uint32_t pre_tried[DP_MAX_TRIES];
    uint32_t n_pre_tried;
    uint32_t pd_redos;        /* prefills redone after a failed decode (pd_redo_possible) */
    bool prefilled;           /* a prefill call was sent: its KV may be held */
    gw_buf client_body;       /* the client's body while <body> is the decode's */
    uint64_t decode_start_us; /* pd: when the decode request started */
    uint64_t resolve_us;      /* time dp_route_resolve took (added to the first pick's) */
    dp_ep *ep;                /* reservation held; see file comment */
    int64_t ep_idx;
    uint64_t tokens;
    uint32_t tried[DP_MAX_TRIES];
    uint32_t n_tried;
    bool retry_held; /* holds a --max-parallel-retries slot (dp_cbreaker) */
    /* upstream */
    CURL *easy;
    struct curl_slist *up_hdrs;
    bool in_multi;
    gw_timer *timer; /* first-byte, then idle */
    unsigned status;
    struct curl_slist *resp_hdrs;
    bool headers_done;
    bool sse;
    int64_t content_length;
    /* A plain body that fits <relay> is answered whole, with the headers
     * (one send, no suspend/resume round per chunk). */
    bool hold_body;
    bool upstream_done;
    bool upstream_failed;
    bool paused;
    gw_buf relay;
    dp_usage usage;
    uint64_t headers_us;
    /* client side */
    bool suspended;
    gw_io *client_watch;   /* the client socket, watched for hang-up (see on_client_hangup) */
    gw_timer *watch_timer; /* adds client_watch once the first suspension lasts */
    bool client_hup;       /* the watch saw a hang-up */
    char tail[2];          /* last two bytes relayed (SSE event boundary check) */
    bool responded;
    bool aborted;
    bool has_err;
    dp_error err;
    unsigned final_status;
    /* traffic splitting (dp_traffic, "traffic splitting" below) */
    int32_t tr_primary;  /* the --route-config entry picked first; -1 = none */
    int32_t tr_entry;    /* the external entry of the attempt; -1 = the local pool */
    uint32_t tr_cursor;  /* position in the fallback chain */
    uint32_t tr_q_tries; /* 429 retries of tr_entry */
    unsigned divert;     /* an upstream error status not relayed: another attempt follows */
    bool tr_queue_full;  /* the 429 queue refused it */
    dp_rq_item rq;       /* in the 429 retry queue */
};

/* ---- small helpers ------------------------------------------------------ */

static void
make_request_id(dp_ctx *ctx, char *out, size_t n)
{
    uint32_t a = dp_rand(&ctx->rng, UINT32_MAX), b = dp_rand(&ctx->rng, UINT32_MAX);
    uint32_t c = dp_rand(&ctx->rng, UINT32_MAX), d = dp_rand(&ctx->rng, UINT32_MAX);

    /* RFC 4122 version 4 layout. */
    snprintf(out, n, "%08x-%04x-4%03x-%04x-%04x%08x", a, b >> 16, b & 0xfff,
             (c >> 16 & 0x3fff) | 0x8000, c & 0xffff, d);
}

static bool
is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding",
        "te",         "trailer",    "upgrade",          "content-length",
        "host",       "expect"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        if (strlen(hop[i]) == len && strncasecmp(name, hop[i], len) == 0)
            return true;
    }
    return false;
}

static void resume(dp_req *req);
static void upstream_cleanup(dp_req *req);
static void req_release(dp_req *req);

typedef struct pd_abort_call pd_abort_call;
static void pd_abort_done(pd_abort_call *a, CURLcode result);
static void pd_abort(dp_req *req);
static void on_prefill_done(dp_req *req, CURLcode result);
static bool pd_decode_start(dp_req *req, const char *resp, size_t resp_len);
static bool pd_start(dp_req *req);
static bool pd_redo_possible(dp_req *req);
static bool pd_repick(dp_req *req);
static void pd_restore_client_body(dp_req *req);
typedef enum dp_next { DP_NEXT_NONE, DP_NEXT_STARTED, DP_NEXT_FAILED } dp_next;
static dp_next try_next(dp_req *req, unsigned status, bool retryable);
static bool should_divert(dp_req *req);
static void tr_on_headers(dp_req *req);
static void tr_headers(dp_req *req, struct MHD_Response *resp);

static void
cancel_admission(dp_req *req)
{
    if (req->qticket != NULL) {
        dp_quota_cancel(req->qticket);
        req->qticket = NULL;
    }
}

/* MHD does not watch suspended connections, so a client that leaves while we
 * wait for the engine would only be noticed at the next write. Watch its
 * socket for a hang-up ourselves: cancel the upstream, release the slot, and
 * let MHD close the connection. The watch is edge-triggered and lives from
 * the first suspension to the request's end, not per suspension: a stream
 * suspends once per chunk, and adding and removing the watch each time was
 * two of its seven syscalls per chunk. A hang-up seen while MHD has the
 * connection (resumed) is acted on at the next suspension, from the loop
 * (on_timer). Most plain requests are answered within a few milliseconds,
 * so the watch is only added once the first suspension has lasted
 * DP_CLIENT_WATCH_DELAY_MS: a client that leaves is noticed that much later
 * at most, and a quick request costs no epoll_ctl for it. */
static void
client_gone(dp_req *req)
{
    gw_log(GW_LOG_INFO, "DP-CLIENT-GONE", "req=%s phase=%s", req->id,
           req->headers_done ? "streaming" : "waiting");
    req->aborted = true;
    cancel_admission(req);
    upstream_cleanup(req);
    req_release(req);
    resume(req);
}

static void
on_client_hangup(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    dp_req *req = arg;
    (void)loop;
    (void)fd;
    (void)events;

    req->client_hup = true;
    if (req->suspended && !req->aborted)
        client_gone(req);
}

static void
on_watch_timer(gw_loop *loop, void *arg)
{
    dp_req *req = arg;
    const union MHD_ConnectionInfo *ci;
    (void)loop;

    if (req->client_watch != NULL || req->aborted)
        return;
    ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL && gw_io_new(req->ctx->loop, ci->connect_fd, EPOLLRDHUP | EPOLLET,
                                on_client_hangup, req, &req->client_watch) != GW_OK)
        req->client_watch = NULL;
}

static void
suspend(dp_req *req)
{
    if (req->suspended)
        return;
    MHD_suspend_connection(req->conn);
    req->suspended = true;
    if (req->client_hup && !req->aborted && req->timer != NULL) {
        gw_timer_start(req->timer, 0); /* seen while resumed: on_timer acts */
        return;
    }
    if (req->watch_timer == NULL) {
        req->watch_timer = gw_timer_new(req->ctx->loop, on_watch_timer, req);
        gw_timer_start(req->watch_timer, DP_CLIENT_WATCH_DELAY_MS);
    }
}

static void
resume(dp_req *req)
{
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        gw_httpd_kick(req->ctx->httpd);
    }
}

static void
req_release(dp_req *req)
{
    if (req->ep != NULL) {
        dp_route_release(req->ep, req->tokens);
        req->ep = NULL;
    }
    if (req->pre_ep != NULL) {
        dp_route_release(req->pre_ep, req->tokens);
        req->pre_ep = NULL;
    }
}

/* Returns <easy> to the pool. Keep reset handles: curl_easy_init allocates
 * and zeroes tens of KiB of buffers, which showed in profiles at high
 * request rates. */
static void
easy_put(dp_ctx *ctx, CURL *easy)
{
    if (ctx->n_easy_pool < DP_EASY_POOL) {
        curl_easy_reset(easy);
        if (ctx->easy_pool == NULL)
            ctx->easy_pool = gw_xcalloc(DP_EASY_POOL, sizeof(*ctx->easy_pool));
        ctx->easy_pool[ctx->n_easy_pool++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

/* Whether <easy> connected to its engine: from then on the engine may be
 * working on the request, so its quota is not refunded. */
static bool
connected(CURL *easy)
{
    curl_off_t t = 0;

    return curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK && t > 0;
}

static void
prefill_cleanup(dp_req *req)
{
    dp_ctx *ctx = req->ctx;

    if (req->pre_easy == NULL)
        return;
    gw_curlm_remove(ctx->curlm, req->pre_easy); /* no-op if it already completed */
    easy_put(ctx, req->pre_easy);
    req->pre_easy = NULL;
    ctx->pd_outstanding--;
    curl_slist_free_all(req->pre_hdrs);
    req->pre_hdrs = NULL;
}

static void
upstream_cleanup(dp_req *req)
{
    prefill_cleanup(req);
    if (req->in_multi) {
        gw_curlm_remove(req->ctx->curlm, req->easy);
        req->in_multi = false;
    }
    if (req->timer != NULL)
        gw_timer_stop(req->timer);
    if (req->easy != NULL) {
        req->reached |= connected(req->easy);
        easy_put(req->ctx, req->easy);
        req->easy = NULL;
    }
    curl_slist_free_all(req->up_hdrs);
    req->up_hdrs = NULL;
    dp_rq_cancel(&req->rq); /* waiting for a 429 retry, or holding a retry slot */
}

/* Fails the request before any byte reached the client: answered as JSON. */
static void
fail_before_headers(dp_req *req)
{
    req->has_err = true;
    resume(req);
}

/* ---- responses ---------------------------------------------------------- */

static void
add_common_headers(dp_req *req, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "request-id", req->id);
    MHD_add_response_header(resp, "x-went-into-req-headers", "true");
    if (req->ctx->draining)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
}

static void
add_route_headers(dp_req *req, struct MHD_Response *resp)
{
    const pm_endpoint *ep;
    const char *addr;

    if (!req->routed || req->ep_idx < 0)
        return;
    ep = &dp_snap_pm(req->snap)->endpoints[req->ep_idx];
    addr = dp_snap_addr(req->snap, (uint32_t)req->ep_idx);
    MHD_add_response_header(resp, "routing-strategy", req->route.plan.label);
    MHD_add_response_header(resp, "target-pod", ep->pod ? ep->pod : addr);
    MHD_add_response_header(resp, "target-pod-ip", addr);
    if (req->pre_idx >= 0) {
        const pm_endpoint *pre = &dp_snap_pm(req->snap)->endpoints[req->pre_idx];
        const char *paddr = dp_snap_addr(req->snap, (uint32_t)req->pre_idx);
        MHD_add_response_header(resp, "prefill-target-pod", pre->pod ? pre->pod : paddr);
        MHD_add_response_header(resp, "prefill-target-pod-ip", paddr);
    }
    if (req->route.profile_auto)
        MHD_add_response_header(resp, "x-aibrix-config-profile", req->route.profile->name);
    if (req->route.affinity) {
        /* The id of the endpoint that served this request, whichever way
         * it was chosen, so the client's next request can stick to it. */
        char sid[(PM_MAX_STR + 16) / 3 * 4 + 8];
        dp_session_id_encode(addr, sid, sizeof(sid));
        MHD_add_response_header(resp, "x-session-id", sid);
    }
}

/* Go-style duration ("1500ms"), as OpenAI's x-ratelimit-reset-* use. */
static void
add_reset(struct MHD_Response *resp, const char *name, uint64_t ms)
{
    char v[32];

    snprintf(v, sizeof(v), "%" PRIu64 "ms", ms);
    MHD_add_response_header(resp, name, v);
}

static void
add_int(struct MHD_Response *resp, const char *name, int64_t n)
{
    char v[24];

    snprintf(v, sizeof(v), "%" PRId64, n);
    MHD_add_response_header(resp, name, v);
}

/* The user's window after this request: x-update-* (seed 003) on success,
 * and OpenAI's x-ratelimit-* for each limit the user has. */
static void
add_quota_headers(dp_req *req, struct MHD_Response *resp)
{
    const dp_quota_grant *g = &req->grant;

    if (!g->counted_user)
        return;
    if (g->verdict == DP_QUOTA_OK) {
        add_int(resp, "x-update-rpm", g->rpm_count);
        add_int(resp, "x-update-tpm", g->tpm_count);
    }
    if (g->rpm_limit > 0) {
        add_int(resp, "x-ratelimit-limit-requests", g->rpm_limit);
        add_int(resp, "x-ratelimit-remaining-requests",
                g->rpm_count < g->rpm_limit ? g->rpm_limit - g->rpm_count : 0);
        add_reset(resp, "x-ratelimit-reset-requests", g->user_reset_ms);
    }
    if (g->tpm_limit > 0) {
        add_int(resp, "x-ratelimit-limit-tokens", g->tpm_limit);
        add_int(resp, "x-ratelimit-remaining-tokens",
                g->tpm_count < g->tpm_limit ? g->tpm_limit - g->tpm_count : 0);
        add_reset(resp, "x-ratelimit-reset-tokens", g->user_reset_ms);
    }
}

static enum MHD_Result
respond_error(dp_req *req)
{
    gw_buf body;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    gw_buf_init(&body, 4096);
    if (dp_error_body(&req->err, &body) != GW_OK)
        gw_buf_reset(&body);
    resp = MHD_create_response_from_buffer(body.len, body.data ? body.data : "",
                                           MHD_RESPMEM_MUST_COPY);
    gw_buf_fini(&body);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    add_common_headers(req, resp);
    if (req->err.header != NULL)
        MHD_add_response_header(resp, req->err.header,
                                req->err.header_value ? req->err.header_value : "true");
    if (req->err.retry_after != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, req->err.retry_after);
    add_quota_headers(req, resp);
    req->final_status = req->err.status;
    req->responded = true;
    ret = MHD_queue_response(req->conn, req->err.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* MHD content reader: hands over what the upstream sent so far; with nothing
 * to give, suspends the connection (returning 0 without suspending would make
 * MHD spin). */
static ssize_t
relay_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    dp_req *req = cls;
    size_t n;
    (void)pos;

    if (req->relay.len > 0) {
        n = req->relay.len < max ? req->relay.len : max;
        memcpy(buf, req->relay.data, n);
        gw_buf_consume(&req->relay, n);
        if (req->paused && req->relay.len < req->relay.max / 2 && req->in_multi) {
            req->paused = false;
            gw_curlm_unpause(req->ctx->curlm, req->easy);
        }
        return (ssize_t)n;
    }
    if (req->aborted)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (req->upstream_done) {
        /* A plain body cut short must not look complete to the client. */
        return req->upstream_failed && !req->sse ? MHD_CONTENT_READER_END_WITH_ERROR
                                                 : MHD_CONTENT_READER_END_OF_STREAM;
    }
    suspend(req);
    return 0;
}

static enum MHD_Result
respond_relay(dp_req *req)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    uint64_t size = MHD_SIZE_UNKNOWN;

    /* A known length lets plain JSON go out with Content-Length, as the
     * engine sent it; streams are chunked. */
    if (req->content_length >= 0 && !req->sse)
        size = (uint64_t)req->content_length;
    if (req->hold_body && req->relay.len == size) {
        char *whole = gw_buf_steal(&req->relay);
        resp = MHD_create_response_from_buffer(size, whole != NULL ? whole : "",
                                               whole != NULL ? MHD_RESPMEM_MUST_FREE
                                                             : MHD_RESPMEM_PERSISTENT);
    } else {
        /* The block is MHD's copy buffer: no larger than the body needs. */
        size_t block = size < 16 * 1024 ? (size_t)size + 1 : 16 * 1024;
        resp = MHD_create_response_from_callback(size, block, relay_reader, req, NULL);
    }
    if (resp == NULL)
        return MHD_NO;
    for (struct curl_slist *h = req->resp_hdrs; h != NULL; h = h->next) {
        char *colon = strchr(h->data, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        MHD_add_response_header(resp, h->data, v);
        *colon = ':';
    }
    add_common_headers(req, resp);
    add_route_headers(req, resp);
    tr_headers(req, resp);
    add_quota_headers(req, resp);
    if (req->status >= 400)
        MHD_add_response_header(resp, "x-error-response-unknown", "true");
    req->final_status = req->status;
    req->responded = true;
    ret = MHD_queue_response(req->conn, req->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ---- upstream ----------------------------------------------------------- */

static size_t
on_header(char *buf, size_t size, size_t nitems, void *arg)
{
    dp_req *req = arg;
    size_t n = size * nitems, len = n;
    char *colon;

    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (after a 1xx): forget earlier headers. */
        const char *sp = memchr(buf, ' ', len);
        req->status = sp ? (unsigned)strtoul(sp + 1, NULL, 10) : 502;
        curl_slist_free_all(req->resp_hdrs);
        req->resp_hdrs = NULL;
        req->content_length = -1;
        req->sse = false;
        return n;
    }
    if (len == 0) {
        if (req->status >= 200 && !req->headers_done) {
            if ((req->status == 429 || req->status >= 500) && should_divert(req)) {
                req->divert = req->status; /* not relayed: try_next takes it */
                return 0;                  /* aborts the transfer */
            }
            tr_on_headers(req);
            req->headers_done = true;
            req->headers_us = gw_now_us();
            if (req->ep != NULL)
                dp_outlier_success(&req->ep->outlier);
            dp_usage_init(&req->usage, req->sse);
            gw_timer_start(req->timer, req->ctx->cfg.idle_timeout_ms);
            req->hold_body = !req->sse && req->content_length >= 0 &&
                             (uint64_t)req->content_length <= req->relay.max;
            if (!req->hold_body || req->content_length == 0)
                resume(req);
        }
        return n;
    }
    colon = memchr(buf, ':', len);
    if (colon == NULL || is_hop_by_hop(buf, (size_t)(colon - buf))) {
        if (colon != NULL && (size_t)(colon - buf) == 14 &&
            strncasecmp(buf, "content-length", 14) == 0)
            req->content_length = strtoll(colon + 1, NULL, 10);
        return n;
    }
    if ((size_t)(colon - buf) == 12 && strncasecmp(buf, "content-type", 12) == 0) {
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        req->sse = strncasecmp(v, "text/event-stream", 17) == 0;
    }
    char *line = gw_xstrndup(buf, len);
    struct curl_slist *nl = curl_slist_append(req->resp_hdrs, line);
    free(line);
    if (nl == NULL)
        return 0; /* aborts the transfer */
    req->resp_hdrs = nl;
    return n;
}

static size_t
on_write(char *p, size_t size, size_t nmemb, void *arg)
{
    dp_req *req = arg;
    size_t n = size * nmemb;

    if (req->aborted)
        return 0;
    if (req->relay.len > 0 && req->relay.len + n > req->relay.max) {
        /* Backpressure: the client reads slower than the engine writes.
         * curl keeps these bytes and offers them again after unpause. */
        req->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (n > req->relay.max - req->relay.len)
        req->relay.max = req->relay.len + n; /* one write larger than the cap: take it */
    if (req->strip_usage && req->sse) {
        /* The filter may release an event it held from earlier writes
         * (at most DP_SSE_STRIP_MAX_EVENT bytes): let it past the cap. */
        size_t cap = req->relay.max;
        gw_err rc;
        req->relay.max = req->relay.len + n + DP_SSE_STRIP_MAX_EVENT;
        rc = dp_sse_strip_feed(&req->strip, p, n, &req->relay);
        req->relay.max = cap;
        if (rc != GW_OK)
            return 0;
    } else if (gw_buf_append(&req->relay, p, n) != GW_OK) {
        return 0;
    }
    if (n >= 2)
        memcpy(req->tail, p + n - 2, 2);
    else if (n == 1) {
        req->tail[0] = req->tail[1];
        req->tail[1] = p[0];
    }
    dp_usage_feed(&req->usage, p, n);
    gw_timer_start(req->timer, req->ctx->cfg.idle_timeout_ms);
    if (!req->hold_body || req->relay.len >= (uint64_t)req->content_length)
        resume(req);
    return n;
}

static void on_upstream_failure(dp_req *req, const char *reason, bool retryable);

/* After the headers went out the status cannot change: an SSE stream ends
 * with an error event (a clean end for the client's parser), a plain body is
 * cut so the client sees it incomplete. */
static void
end_stream_with_error(dp_req *req, const char *what, const char *reason)
{
    dp_error e;

    upstream_cleanup(req);
    req->upstream_done = true;
    req->upstream_failed = true;
    if (req->sse) {
        /* The engine may have died inside an event: close it first so the
         * error event is a line of its own. */
        bool at_boundary = req->tail[0] == '\n' && req->tail[1] == '\n';
        dp_error_set(&e, 502, NULL, NULL, "upstream_error", "%s (%s)", what, reason);
        req->relay.max = req->relay.len + 4096; /* room for the event past the cap */
        if ((!at_boundary && gw_buf_append_str(&req->relay, "\n\n") != GW_OK) ||
            dp_error_sse_event(&e, &req->relay) != GW_OK)
            gw_log(GW_LOG_WARN, "DP-UP-SSE-ERR", "req=%s msg=\"no room for error event\"", req->id);
    }
    resume(req);
}

static void
on_timer(gw_loop *loop, void *arg)
{
    dp_req *req = arg;
    (void)loop;

    if (req->client_hup && req->suspended && !req->aborted) {
        client_gone(req);
        return;
    }
    if (req->in_multi) {
        gw_curlm_remove(req->ctx->curlm, req->easy);
        req->in_multi = false;
    }
    on_upstream_failure(req, req->headers_done ? "idle_timeout" : "first_byte_timeout", false);
}

static void
append_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[8192];
    struct curl_slist *nl;

    snprintf(line, sizeof(line), "%s: %s", name, value);
    nl = curl_slist_append(*list, line);
    if (nl != NULL)
        *list = nl;
}

static enum MHD_Result
copy_client_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct curl_slist **list = cls;
    (void)kind;

    /* Client headers reach the engine unchanged (Authorization included,
     * which vLLM's --api-key checks), except hop-by-hop ones. */
    if (!is_hop_by_hop(key, strlen(key)))
        append_header(list, key, value ? value : "");
    return MHD_YES;
}

/* The headers of a request to an engine: the client's, plus the request id
 * (the same on a prefill and its decode), no Expect, and a JSON type. */
static struct curl_slist *
engine_headers(dp_req *req)
{
    struct curl_slist *list = NULL;

    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, copy_client_header, &list);
    if (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id") == NULL)
        append_header(&list, "X-Request-Id", req->id);
    append_header(&list, "Expect", ""); /* no 100-continue round trip */
    /* Without it curl would send application/x-www-form-urlencoded for a
     * POST body, which vLLM refuses; the body is JSON whatever the client said. */
    if (MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Content-Type") == NULL)
        append_header(&list, "Content-Type", "application/json");
    return list;
}

static CURL *
easy_get(dp_ctx *ctx)
{
    return ctx->n_easy_pool > 0 ? ctx->easy_pool[--ctx->n_easy_pool] : curl_easy_init();
}

/* "http://ip:port<path>" of endpoint <i> of the request's snapshot. */
static void
endpoint_url(const dp_req *req, int64_t i, const char *path, char *url, size_t n)
{
    const pm_endpoint *ep = &dp_snap_pm(req->snap)->endpoints[i];

    snprintf(url, n, strchr(ep->ip, ':') ? "http://[%s]:%u%s" : "http://%s:%u%s", ep->ip, ep->port,
             path);
}

/* The options every request of <req> to an engine shares: a JSON POST of
 * <body> with <hdrs>, bytes to <wr>, the whole exchange within
 * <timeout_ms>. */
static void
easy_post(dp_req *req, CURL *easy, const char *url, const gw_buf *body, struct curl_slist *hdrs,
          curl_write_callback wr, long timeout_ms)
{
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, wr);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)req->ctx->cfg.connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
}

/* The route config a request follows: the worker's own --route-config,
 * else the one its snapshot carries (the controller's). The request holds
 * its snapshot, so a new generation never changes the config (and the entry
 * indexes in tr_entry/tr_primary) under it. */
static const gw_route_cfg *
req_traffic(const dp_req *req)
{
    const gw_route_cfg *t = dp_snap_traffic(req->snap);

    return req->ctx->traffic.policy == GW_ROUTE_OFF && t != NULL ? t : &req->ctx->traffic;
}

static bool
upstream_start(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    char url[PM_MAX_STR + 64];

    req->easy = easy_get(ctx);
    if (req->easy == NULL)
        return false;
    req->up_hdrs = engine_headers(req);
    if (req->tr_entry >= 0) {
        /* An external endpoint of --route-config: its URL, its key. */
        const gw_route_ep *e = &req_traffic(req)->eps[req->tr_entry];
        dp_traffic_url(e, req->path, url, sizeof(url));
        if (e->api_key != NULL) {
            char auth[4096];
            snprintf(auth, sizeof(auth), "Bearer %s", e->api_key);
            req->up_hdrs = dp_traffic_set_authorization(req->up_hdrs, auth);
            explicit_bzero(auth, sizeof(auth));
        }
    } else {
        endpoint_url(req, req->ep_idx, req->path, url, sizeof(url));
    }
    req->status = 0;
    req->content_length = -1;
    /* The body goes as is, to an external entry too (its `model` is reserved). */
    easy_post(req, req->easy, url, &req->body, req->up_hdrs, on_write,
              (long)ctx->cfg.upstream_timeout_ms);
    curl_easy_setopt(req->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(req->easy, CURLOPT_HEADERDATA, req);
    if (gw_curlm_add(ctx->curlm, req->easy) != GW_OK) {
        curl_slist_free_all(req->up_hdrs);
        req->up_hdrs = NULL;
        easy_put(ctx, req->easy);
        req->easy = NULL;
        return false;
    }
    req->in_multi = true;
    gw_timer_start(req->timer, ctx->cfg.first_byte_timeout_ms);
    return true;
}

/* Picks (excluding endpoints already tried), reserves and starts. */
static bool
route_and_start(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    uint64_t t0 = gw_now_us();
    /* A disaggregated request's decode (and its retries) stays in the
     * prefill's roleset. */
    int64_t idx = req->pre_idx >= 0
                      ? dp_route_pick_pd_decode(ctx, req->snap, &req->route, req->tried,
                                                req->n_tried, req->tokens, &req->err)
                      : dp_route_pick(ctx, req->snap, &req->route, req->tried, req->n_tried,
                                      req->tokens, &req->err);

    dp_metrics_routing_time(ctx->metrics, req->route.model->name,
                            (double)(gw_now_us() - t0 + req->resolve_us) / 1e6);
    req->resolve_us = 0; /* a retry's pick is timed alone */
    if (idx < 0) {
        if (req->n_tried > 0) {
            dp_error_set(&req->err, 503, "x-error-routing", "true", "service_unavailable",
                         "no endpoint of model %.128s could be reached", req->info.model);
        }
        return false;
    }
    req->ep_idx = idx;
    req->ep = dp_snap_state(req->snap, (uint32_t)idx);
    req->tried[req->n_tried++] = (uint32_t)idx;
    gw_counter_inc(
        gw_metric_child(ctx->metrics->routing, req->route.model->name, req->route.plan.label));
    if (req->route.fallback != NULL)
        gw_counter_inc(
            gw_metric_child(ctx->metrics->fallbacks, req->route.plan.label, req->route.fallback));
    if (req->route.pfx_bucket != NULL) {
        const char *model = req->route.model->name;
        gw_counter_inc(gw_metric_child(ctx->metrics->pfx_decisions, model, req->route.pfx_bucket));
        if (req->route.pfx_outcome != NULL)
            gw_counter_inc(
                gw_metric_child(ctx->metrics->pfx_selections, model, req->route.pfx_outcome));
        if (req->route.pfx_imbalance)
            gw_counter_inc(gw_metric_child(ctx->metrics->pfx_imbalance, model));
    }
    if (!upstream_start(req)) {
        dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                     "cannot start the upstream request");
        return false;
    }
    return true;
}

/* Passive ejection (dp_outlier): only failures that say the engine cannot
 * take requests count; a reset or an empty reply may be one bad request. */
static void
note_gateway_failure(dp_req *req, const char *reason)
{
    dp_outlier_cfg oc = dp_outlier_cfg_of(&req->ctx->cfg);

    if (strcmp(reason, "connect") != 0 && strcmp(reason, "connect_timeout") != 0 &&
        strcmp(reason, "first_byte_timeout") != 0)
        return;
    if (dp_outlier_failure(&req->ep->outlier, &oc, gw_now_us())) {
        gw_counter_inc(gw_metric_child0(req->ctx->metrics->ejections));
        gw_log(GW_LOG_WARN, "DP-EJECT", "ep=%s failures=%u ejections=%u for_ms=%llu", req->ep->key,
               req->ep->outlier.streak, req->ep->outlier.ejections,
               (unsigned long long)((req->ep->outlier.ejected_until - gw_now_us()) / 1000));
    }
}

static void
on_upstream_failure(dp_req *req, const char *reason, bool retryable)
{
    dp_ctx *ctx = req->ctx;

    gw_counter_inc(gw_metric_child(ctx->metrics->upstream_errors, reason));
    if (req->ep != NULL && !req->headers_done) {
        req->ep->errors++; /* after the headers, account() counts it */
        note_gateway_failure(req, reason);
    }
    gw_log_ratelimited(GW_LOG_WARN, 10, "DP-UP-FAIL", "req=%s model=%s ep=%s reason=%s", req->id,
                       req->info.model, req->ep ? req->ep->key : "-", reason);
    if (!req->headers_done) {
        bool is_timeout = strstr(reason, "timeout") != NULL;
        unsigned status = req->divert;
        req->divert = 0;
        upstream_cleanup(req);
        req_release(req);
        switch (try_next(req, status, retryable)) {
        case DP_NEXT_STARTED:
            return;
        case DP_NEXT_FAILED:
            fail_before_headers(req);
            return;
        case DP_NEXT_NONE:
            break;
        }
        if (status == 429) {
            if (req->tr_queue_full)
                dp_error_set(&req->err, 429, "x-error-retry-queue-full", "true",
                             "rate_limit_exceeded",
                             "the model endpoint is rate limited and the retry queue is full");
            else
                dp_error_set(&req->err, 429, "x-error-routing", "true", "rate_limit_exceeded",
                             "the model endpoint is rate limited");
            snprintf(req->retry_after, sizeof(req->retry_after), "%" PRId64,
                     (ctx->cfg.rq_init_delay_ms + 999) / 1000);
            req->err.retry_after = req->retry_after;
        } else if (status >= 500)
            dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                         "the model endpoint answered %u and no other endpoint could take the "
                         "request",
                         status);
        else if (is_timeout)
            dp_error_set(&req->err, 504, "x-error-routing", "true", "upstream_timeout",
                         "the model endpoint did not answer in time");
        else
            dp_error_set(&req->err, retryable ? 503 : 502, "x-error-routing", "true",
                         retryable ? "service_unavailable" : "upstream_error",
                         "the model endpoint could not be reached (%s)", reason);
        fail_before_headers(req);
        return;
    }
    end_stream_with_error(req, "the model endpoint failed mid-stream", reason);
}

static const char *
failure_reason(CURL *easy, CURLcode rc, bool *retryable)
{
    long connect_ok = 0;

    *retryable = false;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        *retryable = true;
        return "connect";
    case CURLE_OPERATION_TIMEDOUT:
        /* A connect timeout leaves no connection: safe to try elsewhere. */
        curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_ok);
        *retryable = connect_ok == 0;
        return *retryable ? "connect_timeout" : "total_timeout";
    case CURLE_GOT_NOTHING:
        return "empty_reply";
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return "reset";
    case CURLE_PARTIAL_FILE:
        return "truncated";
    case CURLE_WRITE_ERROR:
        return "write";
    default:
        return "other";
    }
}

void
dp_proxy_on_curl_done(CURL *easy, CURLcode result, void *arg)
{
    dp_req *req = NULL;
    bool retryable = false;
    const char *reason;
    (void)arg;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&req);
    if (req->kind == DP_XFER_ABORT) {
        pd_abort_done((pd_abort_call *)(void *)req, result);
        return;
    }
    if (easy == req->pre_easy) {
        on_prefill_done(req, result);
        return;
    }
    req->in_multi = false;
    gw_timer_stop(req->timer);
    if (result == CURLE_OK && req->headers_done) {
        req->upstream_done = true;
        dp_usage_finish(&req->usage);
        if (req->strip_usage && req->sse) {
            size_t cap = req->relay.max;
            req->relay.max = req->relay.len + DP_SSE_STRIP_MAX_EVENT;
            if (dp_sse_strip_finish(&req->strip, &req->relay) != GW_OK)
                req->upstream_failed = true;
            req->relay.max = cap;
        }
        resume(req);
        return;
    }
    reason = failure_reason(easy, result, &retryable);
    if (req->divert != 0) {
        reason = req->divert == 429 ? "status_429" : "status_5xx";
        retryable = true;
    }
    on_upstream_failure(req, reason, retryable);
}

/* ---- traffic splitting ---------------------------------------------------
 *
 * With --route-policy (docs/traffic.md), start() asks dp_traffic which entry
 * takes a request: the local pool goes on as any request (resolve,
 * admission, pick); an external entry is proxied at once to its base_url,
 * without admission (the quotas are the local pool's). Before the first byte
 * reached the client a failure moves on (try_next): another local endpoint
 * (--retries for connect failures, --retry-max-count for those and 5xx),
 * the 429 retry queue for an external endpoint's 429, then the next fallback
 * entry in config order. An error status is held back only when one of
 * those will follow (should_divert); otherwise it reaches the client as the
 * endpoint sent it. */

static void
tr_count(gw_metric_fam *fam, const char *label)
{
    gw_counter_inc(gw_metric_child(fam, label));
}

static bool
local_retry_allowed(const dp_req *req, unsigned status, bool retryable)
{
    const dp_cfg *c = &req->ctx->cfg;
    int64_t budget = c->retries > c->retry_max_count ? c->retries : c->retry_max_count;

    if (status >= 500)
        budget = c->retry_max_count;
    return retryable && req->tr_entry < 0 && (int64_t)req->n_tried <= budget &&
           req->n_tried < DP_MAX_TRIES;
}

static bool
queue_allowed(const dp_req *req)
{
    const dp_cfg *c = &req->ctx->cfg;

    return req->ctx->rq != NULL && req->tr_entry >= 0 &&
           (c->rq_max_count < 0 || (int64_t)req->tr_q_tries < c->rq_max_count);
}

static bool
has_fallback(const dp_req *req)
{
    const gw_route_cfg *t = req_traffic(req);

    return t->policy != GW_ROUTE_OFF && dp_traffic_has_fallback(t, req->tr_primary, req->tr_cursor);
}

/* At the headers of a 429 or 5xx answer: will another attempt follow? */
static bool
should_divert(dp_req *req)
{
    if (req->ctx->draining || req->aborted)
        return false;
    /* The local pool's own 429 goes to the client (as in Llumnix). */
    if (req->status == 429)
        return req->tr_entry >= 0 && (queue_allowed(req) || has_fallback(req));
    /* A 5xx is held back only when a retry has somewhere to go: another
     * ready endpoint not tried yet, or a fallback entry. Otherwise the
     * engine's own answer is relayed (docs/traffic.md). */
    return pd_redo_possible(req) ||
           (local_retry_allowed(req, req->status, true) &&
            dp_route_has_untried(req->ctx, req->snap, &req->route, req->pre_idx >= 0, req->tried,
                                 req->n_tried)) ||
           has_fallback(req);
}

/* Proxies the request to external entry <i> of --route-config. */
static bool
tr_start_external(dp_req *req, int32_t i)
{
    dp_ctx *ctx = req->ctx;

    pd_abort(req); /* a pd request's decode will never take the prefill's KV */
    pd_restore_client_body(req);
    req_release(req);
    req->tr_entry = i;
    req->tr_q_tries = 0;
    req->ep_idx = -1;
    if (req->timer == NULL)
        req->timer = gw_timer_new(ctx->loop, on_timer, req);
    if (!upstream_start(req)) {
        dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                     "cannot start the upstream request");
        return false;
    }
    return true;
}

/* The backoff before the next 429 retry: init * 2^tries, or the held-back
 * answer's Retry-After (delta-seconds; an HTTP date is ignored) when longer,
 * both capped at --fallback-retry-max-delay-ms. */
static uint64_t
queue_delay_ms(const dp_req *req)
{
    const dp_cfg *c = &req->ctx->cfg;
    dp_rq_cfg rc = {.init_ms = (uint64_t)c->rq_init_delay_ms,
                    .max_ms = (uint64_t)c->rq_max_delay_ms};
    uint64_t delay = dp_rq_delay_ms(&rc, req->tr_q_tries);

    for (const struct curl_slist *h = req->resp_hdrs; h != NULL; h = h->next) {
        if (strncasecmp(h->data, "retry-after:", 12) == 0) {
            char *end;
            unsigned long long s = strtoull(h->data + 12, &end, 10);
            if (end != h->data + 12 && s < 86400 && s * 1000 > delay)
                delay = s * 1000;
            break;
        }
    }
    return delay < rc.max_ms ? delay : rc.max_ms;
}

/* A queued 429 retry's turn: the same external endpoint again. */
static void
tr_queue_fire(dp_rq_item *it, void *arg)
{
    dp_req *req = arg;
    (void)it;

    req->tr_q_tries++;
    tr_count(req->ctx->metrics->retry_queue, "fired");
    if (!upstream_start(req)) {
        dp_rq_cancel(&req->rq);
        dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                     "cannot start the upstream request");
        fail_before_headers(req);
    }
}

/* After a failure before any byte reached the client (<status>: the held
 * back 429/5xx, 0 for a transport failure): the next attempt, if any.
 * DP_NEXT_FAILED leaves the error in req->err. */
static dp_next
try_next(dp_req *req, unsigned status, bool retryable)
{
    dp_ctx *ctx = req->ctx;
    int32_t i;

    if (ctx->draining || req->aborted)
        return DP_NEXT_NONE;
    if (status >= 500 && pd_redo_possible(req) &&
        dp_cbreaker_retry_admit(&ctx->retries_inflight, ctx->cfg.max_parallel_retries,
                                &req->retry_held)) {
        req->pd_redos++;
        gw_counter_inc(gw_metric_child0(ctx->metrics->pd_redos));
        gw_log_ratelimited(GW_LOG_WARN, 10, "DP-PD-REDO", "req=%s prefill=%s decode_status=%u",
                           req->id, dp_snap_addr(req->snap, (uint32_t)req->pre_idx), status);
        if (pd_repick(req))
            return DP_NEXT_STARTED;
        if (!has_fallback(req))
            return DP_NEXT_FAILED;
    } else if (local_retry_allowed(req, status, retryable) &&
               dp_cbreaker_retry_admit(&ctx->retries_inflight, ctx->cfg.max_parallel_retries,
                                       &req->retry_held)) {
        gw_counter_inc(gw_metric_child0(ctx->metrics->retries));
        if (route_and_start(req))
            return DP_NEXT_STARTED;
        if (!has_fallback(req))
            return DP_NEXT_FAILED;
    } else if (status == 429 && queue_allowed(req)) {
        if (dp_rq_push(ctx->rq, &req->rq, queue_delay_ms(req), tr_queue_fire, req)) {
            tr_count(ctx->metrics->retry_queue, "queued");
            return DP_NEXT_STARTED;
        }
        req->tr_queue_full = true;
        tr_count(ctx->metrics->retry_queue, "overflow");
        gw_log_ratelimited(GW_LOG_WARN, 10, "DP-RETRY-QUEUE-FULL", "req=%s waiting=%u", req->id,
                           dp_rq_waiting(ctx->rq));
    } else if (status == 429 && ctx->rq != NULL && req->tr_entry >= 0) {
        tr_count(ctx->metrics->retry_queue, "exhausted");
    }
    if (req_traffic(req)->policy == GW_ROUTE_OFF)
        return DP_NEXT_NONE;
    i = dp_traffic_next_fallback(req_traffic(req), req->tr_primary, &req->tr_cursor);
    if (i < 0)
        return DP_NEXT_NONE;
    tr_count(ctx->metrics->traffic_fallbacks, req_traffic(req)->eps[i].label);
    gw_log_ratelimited(GW_LOG_INFO, 20, "DP-TRAFFIC-FALLBACK", "req=%s entry=%s status=%u", req->id,
                       req_traffic(req)->eps[i].label, status);
    return tr_start_external(req, i) ? DP_NEXT_STARTED : DP_NEXT_FAILED;
}

/* The answer's headers will be relayed: a 429 retry is over. */
static void
tr_on_headers(dp_req *req)
{
    if (req->rq.state == DP_RQ_RUNNING && req->status < 400)
        tr_count(req->ctx->metrics->retry_queue, "success");
    dp_rq_cancel(&req->rq);
}

static void
tr_headers(dp_req *req, struct MHD_Response *resp)
{
    const gw_route_cfg *t = req_traffic(req);

    if (t->policy != GW_ROUTE_OFF)
        MHD_add_response_header(resp, "x-llmgw-route",
                                req->tr_entry >= 0 ? t->eps[req->tr_entry].label : "local");
}

/* start(): which --route-config entry takes the request. true: the local
 * pool (go on); false: started elsewhere, or failed (has_err). */
static bool
tr_route(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    int32_t i = dp_traffic_pick(req_traffic(req), req->info.model, dp_rand(&ctx->rng, UINT32_MAX));

    req->tr_primary = i;
    tr_count(ctx->metrics->traffic_routes, i >= 0 ? req_traffic(req)->eps[i].label : "none");
    if (i >= 0 && req_traffic(req)->eps[i].local)
        return true;
    if (i >= 0) {
        if (!tr_start_external(req, i))
            req->has_err = true;
        return false;
    }
    /* No pattern matched: the fallback chain, else the local pool decides
     * (404 for a model it does not serve). */
    switch (try_next(req, 0, false)) {
    case DP_NEXT_STARTED:
        return false;
    case DP_NEXT_FAILED:
        req->has_err = true;
        return false;
    case DP_NEXT_NONE:
        break;
    }
    return true;
}

/* start(): a fire-and-forget copy to the mirror target (dp_mirror). */
static void
tr_mirror(dp_req *req)
{
    dp_ctx *ctx = req->ctx;

    if (dp_mirror_enabled(ctx->mirror) &&
        dp_mirror_wants(ctx->mirror, dp_rand(&ctx->rng, UINT32_MAX)))
        dp_mirror_send(ctx->mirror, req->path, req->id, req->body.data, req->body.len,
                       engine_headers(req));
}

/* ---- admission ---------------------------------------------------------- */

/* A TPM-limited user streaming without usage would leave the gateway blind
 * to what it spent: ask the engine for the usage event and hide it from
 * the client (dp_sse_strip), who gets the stream it asked for. */
static void
request_usage(dp_req *req)
{
    gw_buf nb;
    bool changed = false;

    if (req->who.user == NULL || req->who.user->tpm <= 0 || !req->info.stream ||
        req->info.include_usage || req->api == DP_API_EMBEDDINGS)
        return;
    gw_buf_init(&nb, req->body.max + 4096);
    if (dp_body_request_usage(req->body.data, req->body.len, &nb, &changed) == GW_OK && changed) {
        gw_buf_fini(&req->body);
        req->body = nb;
        req->strip_usage = true;
        return;
    }
    if (!changed) /* unchanged means it failed: TPM keeps the reservation */
        gw_log_ratelimited(GW_LOG_WARN, 10, "DP-USAGE-REQUEST",
                           "req=%s msg=\"cannot ask the engine for usage; TPM settles on the "
                           "estimate\"",
                           req->id);
    gw_buf_fini(&nb);
}

/* Turns a refusal in req->grant into the client's 429. */
static bool
admission_passed(dp_req *req)
{
    const dp_quota_grant *g = &req->grant;
    const pm_profile *pf = req->route.profile;
    const char *limit;
    uint64_t reset_ms;

    switch (g->verdict) {
    case DP_QUOTA_OK:
        return true;
    case DP_QUOTA_RPS:
        /* Seed 002's answer, byte for byte. */
        dp_error_set(&req->err, 429, "x-error-model-rps-exceeded", "true", "rate_limit_exceeded",
                     "model: %.128s has exceeded RPS: %" PRId64, req->info.model,
                     pf ? pf->requests_per_second : 0);
        req->err.seed_shape = true;
        reset_ms = g->rps_reset_ms;
        break;
    case DP_QUOTA_RPM:
        dp_error_set(&req->err, 429, "x-error-rpm-exceeded", "true", "rate_limit_exceeded",
                     "user %.128s has exceeded its requests per minute: %" PRId64, req->who.name,
                     req->who.user->rpm);
        reset_ms = g->user_reset_ms;
        break;
    default:
        dp_error_set(&req->err, 429, "x-error-tpm-exceeded", "true", "rate_limit_exceeded",
                     "user %.128s has exceeded its tokens per minute: %" PRId64, req->who.name,
                     req->who.user->tpm);
        reset_ms = g->user_reset_ms;
        break;
    }
    limit = g->verdict == DP_QUOTA_RPS ? "model_rps" : g->verdict == DP_QUOTA_RPM ? "rpm" : "tpm";
    gw_counter_inc(gw_metric_child(req->ctx->metrics->quota_rejected, limit));
    gw_log_ratelimited(GW_LOG_INFO, 20, "DP-QUOTA-REJECT", "req=%s limit=%s local=%d", req->id,
                       limit, g->local ? 1 : 0);
    snprintf(req->retry_after, sizeof(req->retry_after), "%" PRIu64,
             reset_ms > 0 ? (reset_ms + 999) / 1000 : 1);
    req->err.retry_after = req->retry_after;
    return false;
}

static void
admitted(dp_req *req)
{
    if (!admission_passed(req)) {
        req->has_err = true;
        return;
    }
    if (req->route.pd ? pd_start(req) : route_and_start(req))
        return;
    /* No local endpoint could take it: the fallback chain may. */
    if (try_next(req, 0, false) != DP_NEXT_STARTED)
        req->has_err = true;
}

static void
on_admitted(dp_quota_grant *g, void *arg)
{
    dp_req *req = arg;

    req->qticket = NULL;
    req->grant = *g;
    admitted(req);
    if (req->has_err)
        fail_before_headers(req);
}

/* Counts the request against its user's and its profile's limits: at once
 * from local windows, or later, when Redis answers (suspended meanwhile). */
static void
admit(dp_req *req)
{
    const pm_user *u = req->who.user;
    const pm_profile *pf = req->route.profile;
    dp_quota_ask ask = {
        .user = u ? u->name : NULL,
        .rpm = u ? u->rpm : 0,
        .tpm = u ? u->tpm : 0,
        /* Without max_tokens the completion is unknown: reserve what
         * least-latency expects, so a burst cannot pass on prompts alone. */
        .tokens = (int64_t)req->tokens + (req->info.max_tokens < 0 ? DP_DEFAULT_OUTPUT_TOKENS : 0),
        /* The limit is the base model's config, so its adapters share it. */
        .model = req->route.model->model->name,
        .profile = pf ? pf->name : NULL,
        .rps = pf ? pf->requests_per_second : 0,
    };

    req->qticket = dp_quota_admit(req->ctx->quota, &ask, &req->grant, on_admitted, req);
    if (req->qticket == NULL)
        admitted(req);
}

/* At completion: a request that reached no engine (no endpoint, every
 * connect failed) is refunded whole; one an engine got but did not answer
 * (timeout, reset, the client left first) keeps its request and its
 * reservation, so hanging up early is no way around a limit; one the
 * engine refused (4xx/5xx) costs its request but no tokens; otherwise TPM
 * settles to the engine's usage (the reservation stands when the usage is
 * unknown, e.g. a client that left mid-stream). */
static void
settle_quota(dp_req *req)
{
    dp_quota *q = req->ctx->quota;

    cancel_admission(req);
    if (!req->headers_done && !req->reached)
        dp_quota_rollback(q, &req->grant);
    else if (!req->headers_done)
        dp_quota_settle(q, &req->grant, -1);
    else if (req->status >= 400)
        dp_quota_settle(q, &req->grant, 0);
    else if (req->usage.found)
        dp_quota_settle(q, &req->grant, req->usage.prompt_tokens + req->usage.completion_tokens);
    else
        dp_quota_settle(q, &req->grant, -1);
}

/* ---- prefill/decode ------------------------------------------------------
 *
 * A request whose plan is pd is split (dp_pd_body.h has the shapes): the
 * worker itself sends the prefill, asynchronously on the loop (other
 * requests go on), reads its whole answer, builds the decode body and then
 * proxies the decode like any request. The prefill's reservation is held
 * while it runs. A failed or timed-out prefill is retried on another
 * prefill endpoint until --prefill-request-timeout has passed; then the
 * client gets 503 x-error-routing and the log key pd-prefill-request-error.
 * A decode that fails (or a client that leaves) after a prefill was sent
 * releases the prefill's KV with POST /abort_request {"rid": <request id>}
 * (SGLang's API; vLLM frees unpulled KV on its own timeout and answers 404,
 * which is harmless). */

struct pd_abort_call {
    dp_xfer_kind kind; /* DP_XFER_ABORT; first */
    dp_ctx *ctx;
    CURL *easy;
    struct curl_slist *hdrs;
};

static dp_pd_proto
pd_proto(const dp_ctx *ctx)
{
    dp_pd_proto p = DP_PD_AIBRIX;
    (void)dp_pd_proto_parse(ctx->cfg.pd_protocol, &p); /* validated at start */
    return p;
}

static void
pd_abort_done(pd_abort_call *a, CURLcode result)
{
    if (result != CURLE_OK)
        gw_counter_inc(gw_metric_child(a->ctx->metrics->pd_aborts, "failed"));
    easy_put(a->ctx, a->easy);
    curl_slist_free_all(a->hdrs);
    free(a);
}

/* Asks the prefill endpoint to free this request's KV (fire and forget). */
static void
pd_abort(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    pd_abort_call *a;
    char url[PM_MAX_STR + 64], body[128];
    const char *auth;

    if (!req->prefilled || req->pre_idx < 0)
        return;
    req->prefilled = false;
    a = gw_xcalloc(1, sizeof(*a));
    a->kind = DP_XFER_ABORT;
    a->ctx = ctx;
    a->easy = easy_get(ctx);
    if (a->easy == NULL) {
        free(a);
        return;
    }
    endpoint_url(req, req->pre_idx, "/abort_request", url, sizeof(url));
    snprintf(body, sizeof(body), "{\"rid\":\"%s\"}", req->id); /* ids are printable, no '"' */
    append_header(&a->hdrs, "Content-Type", "application/json");
    append_header(&a->hdrs, "Expect", "");
    auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth != NULL) /* an engine behind --api-key checks it here too */
        append_header(&a->hdrs, "Authorization", auth);
    curl_easy_setopt(a->easy, CURLOPT_URL, url);
    curl_easy_setopt(a->easy, CURLOPT_COPYPOSTFIELDS, body);
    curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, a->hdrs);
    curl_easy_setopt(a->easy, CURLOPT_PRIVATE, a);
    curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, gw_curl_discard);
    if (gw_curlm_add(ctx->curlm, a->easy) != GW_OK) {
        pd_abort_done(a, CURLE_FAILED_INIT);
        return;
    }
    gw_counter_inc(gw_metric_child(ctx->metrics->pd_aborts, "sent"));
    gw_log(GW_LOG_INFO, "DP-PD-ABORT", "req=%s prefill=%s", req->id,
           dp_snap_addr(req->snap, (uint32_t)req->pre_idx));
}

static size_t
on_prefill_write(char *p, size_t size, size_t nmemb, void *arg)
{
    dp_req *req = arg;
    size_t n = size * nmemb;

    /* Keep what fits (a non-streaming answer is small); a streamed
     * prefill's events beyond the cap only need reading. */
    if (req->pre_resp.len + n <= req->pre_resp.max && gw_buf_append(&req->pre_resp, p, n) != GW_OK)
        return 0;
    return n;
}

static bool
prefill_start(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    char url[PM_MAX_STR + 64];
    uint64_t now = gw_now_us();

    gw_buf_reset(&req->pre_body);
    gw_buf_reset(&req->pre_resp);
    if (dp_pd_prefill_body(pd_proto(ctx), req->body.data, req->body.len, &req->pre_body) != GW_OK) {
        dp_error_set(&req->err, 400, "x-error-request-body-processing", "true",
                     "invalid_request_body", "the request cannot be split for prefill");
        return false;
    }
    req->pre_easy = easy_get(ctx);
    if (req->pre_easy == NULL)
        goto fail;
    ctx->pd_outstanding++;
    endpoint_url(req, req->pre_idx, req->path, url, sizeof(url));
    req->pre_hdrs = engine_headers(req);
    easy_post(req, req->pre_easy, url, &req->pre_body, req->pre_hdrs, on_prefill_write,
              (long)((req->pre_deadline_us > now ? req->pre_deadline_us - now : 1000) / 1000 + 1));
    if (gw_curlm_add(ctx->curlm, req->pre_easy) != GW_OK) {
        prefill_cleanup(req);
        goto fail;
    }
    req->pre_start_us = now;
    req->prefilled = true;
    return true;
fail:
    dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                 "cannot start the prefill request");
    return false;
}

/* The decode body goes; the client's comes back (for a new split, or for an
 * external entry, which gets the request as the client sent it). */
static void
pd_restore_client_body(dp_req *req)
{
    if (req->client_body.data == NULL)
        return;
    gw_buf_fini(&req->body);
    req->body = req->client_body;
    gw_buf_init(&req->client_body, 0);
}

/* A decode answered an error status before any byte reached the client.
 * Its KV source may be gone (a prefill pod that died after its prefill
 * finished: the decode's pull fails, vLLM and the mock answer 500), so the
 * prefill is redone on an endpoint not tried yet, within the prefill budget
 * (--prefill-request-timeout): once, or up to --retry-max-count times when
 * that is higher, each holding a --max-parallel-retries slot (try_next).
 * Llumnix redoes both phases only within --retry-max-count (default 0);
 * AIBrix fails the request. Needs a complete roleset left without the
 * prefills already tried. */
static bool
pd_redo_possible(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    int64_t budget = ctx->cfg.retry_max_count > 1 ? ctx->cfg.retry_max_count : 1;

    return req->pre_idx >= 0 && req->tr_entry < 0 && req->status >= 500 && !ctx->draining &&
           !req->aborted && (int64_t)req->pd_redos < budget && req->n_pre_tried < DP_MAX_TRIES &&
           gw_now_us() < req->pre_deadline_us &&
           dp_route_has_untried_pd(ctx, req->snap, &req->route, req->pre_tried, req->n_pre_tried);
}

/* Releases the pair (the prefill's KV too) and chooses a new one, excluding
 * the prefills tried; the decode is chosen again with it. */
static bool
pd_repick(dp_req *req)
{
    pd_abort(req);
    req_release(req);
    req->n_tried = 0;
    req->ep_idx = -1;
    req->decode_start_us = 0; /* no decode of the new pair has started */
    return pd_start(req);
}

/* Chooses the pair (or, staged, the prefill) and starts the first phase.
 * Without a complete roleset the request goes whole to a combined
 * endpoint, if the model has one. */
static bool
pd_start(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    bool staged = ctx->cfg.pd_staged;
    int64_t decode;
    dp_error combined_err;

    if (req->pre_deadline_us == 0)
        req->pre_deadline_us = gw_now_us() + (uint64_t)ctx->cfg.pd_prefill_timeout_s * 1000000u;
    pd_restore_client_body(req); /* a redo splits the client's request again */
    if (!dp_route_pick_pd(ctx, req->snap, &req->route, staged, req->pre_tried, req->n_pre_tried,
                          req->tokens, &decode, &req->err)) {
        if (req->n_pre_tried > 0)
            return false;
        combined_err = req->err;
        if (route_and_start(req))
            return true;
        if (req->n_tried == 0)
            req->err = combined_err; /* no combined endpoint either: say why pd failed */
        return false;
    }
    req->pre_idx = req->route.pd_prefill;
    req->pre_ep = dp_snap_state(req->snap, (uint32_t)req->pre_idx);
    gw_counter_inc(gw_metric_child(ctx->metrics->pd_selected, "prefill",
                                   dp_snap_addr(req->snap, (uint32_t)req->pre_idx)));
    req->pre_tried[req->n_pre_tried++] = (uint32_t)req->pre_idx;
    gw_counter_inc(gw_metric_child(ctx->metrics->pd_decisions, req->route.pd_how));
    if (decode >= 0) {
        req->ep_idx = decode;
        req->ep = dp_snap_state(req->snap, (uint32_t)decode);
        req->tried[req->n_tried++] = (uint32_t)decode;
    }
    if (dp_pd_has_prefill_call(pd_proto(ctx), staged))
        return prefill_start(req);
    /* vllm-kvt batched: the decode's connector pulls from the prefill. */
    return pd_decode_start(req, NULL, 0);
}

/* Builds the decode body (from the prefill's answer) and starts the decode
 * on the endpoint chosen up front, or, staged, on one chosen now. */
static bool
pd_decode_start(dp_req *req, const char *resp, size_t resp_len)
{
    dp_ctx *ctx = req->ctx;
    const pm_endpoint *pre = &dp_snap_pm(req->snap)->endpoints[req->pre_idx];
    gw_buf nb;
    const char *why = "";

    /* Always from the client's body, never from an earlier decode body. */
    const gw_buf *src = req->client_body.data != NULL ? &req->client_body : &req->body;

    gw_buf_init(&nb, src->max + 65536);
    if (dp_pd_decode_body(pd_proto(ctx), ctx->cfg.pd_staged, src->data, src->len, resp, resp_len,
                          pre->ip, pre->port, &nb, &why) != GW_OK) {
        gw_buf_fini(&nb);
        gw_log_ratelimited(GW_LOG_WARN, 10, "DP-PD-DECODE-BODY", "req=%s prefill=%s msg=\"%s\"",
                           req->id, dp_snap_addr(req->snap, (uint32_t)req->pre_idx), why);
        dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                     "the prefill's answer cannot start a decode: %s", why);
        return false;
    }
    if (req->client_body.data == NULL)
        req->client_body = req->body;
    else
        gw_buf_fini(&req->body);
    req->body = nb;
    req->decode_start_us = gw_now_us();
    if (req->ep != NULL) {
        gw_counter_inc(
            gw_metric_child(ctx->metrics->routing, req->route.model->name, req->route.plan.label));
        if (upstream_start(req))
            return true;
        dp_error_set(&req->err, 502, "x-error-routing", "true", "upstream_error",
                     "cannot start the decode request");
        return false;
    }
    return route_and_start(req);
}

static void
on_prefill_done(dp_req *req, CURLcode result)
{
    dp_ctx *ctx = req->ctx;
    long status = 0;
    const char *reason = NULL;
    double secs = (double)(gw_now_us() - req->pre_start_us) / 1e6;

    curl_easy_getinfo(req->pre_easy, CURLINFO_RESPONSE_CODE, &status);
    req->reached |= connected(req->pre_easy);
    prefill_cleanup(req);
    /* The prefill is over either way: its slot goes back now. */
    dp_route_release(req->pre_ep, req->tokens);
    req->pre_ep = NULL;
    gw_histogram_observe(gw_metric_child0(ctx->metrics->pd_prefill_time), secs);
    if (result == CURLE_OPERATION_TIMEDOUT)
        reason = "timeout";
    else if (result != CURLE_OK)
        reason = "connect";
    else if (status < 200 || status > 299)
        reason = "status";
    if (reason == NULL) {
        gw_counter_inc(gw_metric_child(ctx->metrics->pd_prefills, "success"));
        if (pd_decode_start(req, req->pre_resp.data, req->pre_resp.len))
            return;
        pd_abort(req);
        fail_before_headers(req);
        return;
    }
    dp_metrics_prefill_failed(ctx->metrics, reason);
    gw_log_ratelimited(GW_LOG_WARN, 10, "pd-prefill-request-error",
                       "req=%s prefill=%s reason=%s status=%ld", req->id,
                       dp_snap_addr(req->snap, (uint32_t)req->pre_idx), reason, status);
    /* Another prefill endpoint, while time allows. */
    if (!ctx->draining && !req->aborted && gw_now_us() < req->pre_deadline_us &&
        req->n_pre_tried < DP_MAX_TRIES) {
        gw_counter_inc(gw_metric_child0(ctx->metrics->retries));
        if (pd_repick(req))
            return;
    } else {
        pd_abort(req);
        req_release(req);
    }
    dp_error_set(&req->err, 503, "x-error-routing", "true", "service_unavailable",
                 "the prefill failed (%s) and no other prefill endpoint answered in time", reason);
    fail_before_headers(req);
}

/* ---- request start ------------------------------------------------------ */

/* Who it is comes before what it asks for: a bad key is 401 whatever the
 * model, decided from the headers before the body is read. Takes the
 * request's snapshot ref (its users decide). Header values stay valid until
 * the request completes. */
static bool
authenticate(dp_req *req)
{
    dp_ctx *ctx = req->ctx;

    req->snap = dp_snap_ref(ctx->snap);
    return dp_auth_check(
        &ctx->auth, dp_snap_users(req->snap),
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "user"), &req->who, &req->err);
}

static void
start(dp_req *req)
{
    dp_ctx *ctx = req->ctx;
    dp_parse_status st;
    dp_route_in in;
    uint64_t t0;
    const char *ct;

    if (req->too_large) {
        dp_error_set(&req->err, 413, "x-error-request-body-processing", "true", "request_too_large",
                     "request body exceeds the limit of %" PRId64 " bytes",
                     ctx->cfg.max_body_bytes);
        req->has_err = true;
        return;
    }
    ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!dp_parse_json_content_type(ct)) {
        dp_error_set(&req->err, 400, "x-error-request-body-processing", "true",
                     "invalid_request_body", "Content-Type must be application/json, not '%.64s'",
                     ct);
        req->has_err = true;
        return;
    }
    /* The routing text lands in the worker's scratch, used by the
     * resolve below in this same call. */
    st = dp_parse_request_text(req->api, req->body.data, req->body.len, &req->info, &ctx->pfx_text);
    if (st != DP_PARSE_OK) {
        if (st == DP_PARSE_NO_MODEL)
            dp_error_set(&req->err, 400, "x-error-no-model-in-request", "true", "model_not_found",
                         "%s", req->info.why);
        else
            dp_error_set(&req->err, 400, "x-error-request-body-processing", "true",
                         "invalid_request_body", "%s", req->info.why);
        req->has_err = true;
        return;
    }
    req->parsed = true;
    if (req->snap == NULL && ctx->snap == NULL) {
        dp_error_set(&req->err, 503, "x-error-routing", "true", "service_unavailable",
                     "the gateway has no routing table yet");
        req->has_err = true;
        return;
    }
    /* Usually done when the headers arrived; not if the first snapshot
     * came while the body was read. */
    if (req->snap == NULL && !authenticate(req)) {
        req->has_err = true;
        return;
    }
    tr_mirror(req);
    if (req_traffic(req)->policy != GW_ROUTE_OFF && !tr_route(req))
        return;
    in = (dp_route_in){
        .model = req->info.model,
        .strategy = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "routing-strategy"),
        .profile = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "config-profile"),
        .filter = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "external-filter"),
        .user = req->who.name,
        .session_id = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "x-session-id"),
        .session_key =
            MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "x-aibrix-session-key"),
        .max_tokens = req->info.max_tokens,
        .prompt_bytes = req->info.prompt_bytes,
        .text = ctx->pfx_text.data,
        .text_len = ctx->pfx_text.len,
    };
    t0 = gw_now_us();
    if (!dp_route_resolve(ctx, req->snap, &in, &req->route, &req->err)) {
        if (try_next(req, 0, false) != DP_NEXT_STARTED) /* the fallback chain may take it */
            req->has_err = true;
        return;
    }
    req->resolve_us = gw_now_us() - t0;
    req->routed = true;
    /* In-flight token estimate: ~4 bytes of text per token, plus the output
     * budget. Good enough for load balancing; quotas settle on real usage. */
    req->tokens = dp_route_prompt_tokens(req->info.prompt_bytes) +
                  (uint64_t)(req->info.max_tokens > 0 ? req->info.max_tokens : 0);
    if (req->tokens > (1u << 24))
        req->tokens = 1u << 24; /* an absurd max_tokens must not skew the fleet view */
    req->timer = gw_timer_new(ctx->loop, on_timer, req);
    request_usage(req);
    admit(req);
}

static dp_req *
req_new(dp_ctx *ctx, struct MHD_Connection *conn, dp_api api, const char *path)
{
    dp_req *req = gw_xcalloc(1, sizeof(*req));

    req->kind = DP_XFER_REQ;
    req->ctx = ctx;
    req->conn = conn;
    req->pre_idx = -1;
    req->tr_primary = req->tr_entry = -1;
    gw_buf_init(&req->pre_body, (size_t)ctx->cfg.max_body_bytes + 65536);
    gw_buf_init(&req->pre_resp, 1u << 20);
    req->api = api;
    req->path = path;
    req->start_us = gw_now_us();
    req->ep_idx = -1;
    req->content_length = -1;
    gw_buf_init(&req->body, (size_t)ctx->cfg.max_body_bytes);
    gw_buf_init(&req->relay, (size_t)ctx->cfg.max_relay_bytes);
    dp_usage_init(&req->usage, false);
    dp_sse_strip_init(&req->strip);
    {
        /* A client's own X-Request-Id (sane: short, printable) becomes the
         * request id end to end, so its logs and ours line up. */
        const char *cid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        size_t n = cid ? strlen(cid) : 0;
        bool sane = n > 0 && n < sizeof(req->id);
        for (size_t i = 0; sane && i < n; i++)
            sane = cid[i] > 0x20 && cid[i] < 0x7f && cid[i] != '"';
        if (sane)
            memcpy(req->id, cid, n + 1);
        else
            make_request_id(ctx, req->id, sizeof(req->id));
    }
    req->next = ctx->reqs;
    if (ctx->reqs != NULL)
        ctx->reqs->prev = req;
    ctx->reqs = req;
    ctx->n_reqs++;
    return req;
}

enum MHD_Result
dp_proxy_handle(dp_ctx *ctx, struct MHD_Connection *conn, dp_api api, const char *path,
                const char *upload, size_t *upload_size, void **con_cls)
{
    dp_req *req = *con_cls;

    if (req == NULL) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        req = req_new(ctx, conn, api, path);
        *con_cls = req;
        if (cl != NULL && strtoull(cl, NULL, 10) > (unsigned long long)ctx->cfg.max_body_bytes) {
            /* Answer before reading the body (this also skips a client's
             * Expect: 100-continue); MHD then closes the connection. */
            req->too_large = true;
            req->started = true;
            start(req);
            return respond_error(req);
        }
        if (ctx->snap != NULL && !authenticate(req)) {
            /* Refused before its body is read (MHD then closes). */
            req->started = true;
            req->has_err = true;
            return respond_error(req);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!req->too_large && gw_buf_append(&req->body, upload, *upload_size) != GW_OK) {
            req->too_large = true;
            gw_buf_fini(&req->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->responded)
        return MHD_YES;
    if (req->aborted && !req->headers_done) {
        dp_error_set(&req->err, 503, "x-error-routing", "true", "service_unavailable",
                     "the gateway is shutting down");
        req->has_err = true;
    }
    if (req->has_err)
        return respond_error(req);
    if (req->headers_done)
        return respond_relay(req);
    if (!req->started) {
        req->started = true;
        start(req);
        if (req->has_err)
            return respond_error(req);
    }
    suspend(req);
    return MHD_YES;
}

/* ---- completion --------------------------------------------------------- */

static void
access_log(dp_req *req, unsigned status, uint64_t now)
{
    dp_ctx *ctx = req->ctx;
    char line[DP_ACCESS_LINE_MAX];
    const pm_endpoint *ep = NULL;
    dp_access_rec r;
    size_t n;
    unsigned dropped;

    if (ctx->access_fd < 0)
        return;
    if (req->routed && req->ep_idx >= 0)
        ep = &dp_snap_pm(req->snap)->endpoints[req->ep_idx];
    r = (dp_access_rec){
        .wall_ms = gw_wall_ms(),
        .id = req->id,
        .path = req->path,
        .model = req->parsed ? req->info.model : NULL,
        .strategy = req->routed ? req->route.plan.label : NULL,
        .profile = req->routed && req->route.profile ? req->route.profile->name : NULL,
        .pod = ep != NULL ? ep->pod : NULL,
        .ep = ep != NULL ? dp_snap_addr(req->snap, (uint32_t)req->ep_idx) : NULL,
        .status = status,
        .dur_ms = (double)(now - req->start_us) / 1000.0,
        .ttfb_ms = req->headers_done ? (double)(req->headers_us - req->start_us) / 1000.0 : -1,
        .prompt_tokens = req->usage.found ? req->usage.prompt_tokens : -1,
        .completion_tokens = req->usage.found ? req->usage.completion_tokens : -1,
        .tries = req->n_tried,
        .fallback = req->routed ? req->route.fallback : NULL,
    };
    n = dp_access_format(&r, line, sizeof(line));
    dropped = dp_access_append(ctx->access_fd, &ctx->access_pending, line, n);
    if (dropped > 0)
        gw_counter_add(gw_metric_child0(ctx->metrics->access_dropped), dropped);
}

static void
account(dp_req *req, bool client_gone)
{
    dp_metrics *m = req->ctx->metrics;
    /* An external entry of --route-config serves the client's model as
     * given (bounded by the family's child cap); the local pool's requests
     * carry the snapshot's name. */
    const char *model = req->routed ? req->route.model->name
                        : req->parsed && req->tr_entry >= 0 && req->info.model ? req->info.model
                                                                               : "";
    char code[8];
    uint64_t now = gw_now_us();

    snprintf(code, sizeof(code), "%u", client_gone ? 499u : req->final_status);
    gw_counter_inc(gw_metric_child(m->requests, model, code));
    dp_metrics_request_done(m, model, code, req->has_err ? req->err.header : NULL);
    gw_histogram_observe(gw_metric_child(m->duration, model), (double)(now - req->start_us) / 1e6);
    if (client_gone && !req->upstream_done)
        gw_counter_inc(gw_metric_child0(m->cancelled));
    if (req->has_err && req->err.header != NULL)
        gw_counter_inc(gw_metric_child(m->rejected, req->err.code ? req->err.code : "error"));
    if (req->headers_done) {
        gw_histogram_observe(gw_metric_child(m->ttft, model),
                             (double)(req->headers_us - req->start_us) / 1e6);
    }
    if (req->decode_start_us != 0 && req->ep_idx >= 0) {
        gw_histogram_observe(gw_metric_child0(m->pd_decode_time),
                             (double)(now - req->decode_start_us) / 1e6);
        gw_counter_inc(gw_metric_child(m->pd_selected, "decode",
                                       dp_snap_addr(req->snap, (uint32_t)req->ep_idx)));
    }
    if (req->usage.found) {
        gw_counter_add(gw_metric_child(m->tokens, model, "prompt"),
                       (double)req->usage.prompt_tokens);
        gw_counter_add(gw_metric_child(m->tokens, model, "completion"),
                       (double)req->usage.completion_tokens);
    }
    if (req->ep != NULL) {
        dp_ep *ep = req->ep;
        ep->completed++;
        if (req->final_status >= 500 || req->upstream_failed)
            ep->errors++;
        if (req->usage.found) {
            ep->prompt_tokens += (uint64_t)req->usage.prompt_tokens;
            ep->completion_tokens += (uint64_t)req->usage.completion_tokens;
        }
        ep->latency_ms_sum += (now - req->start_us) / 1000;
        if (req->headers_done)
            ep->ttft_ms_sum += (req->headers_us - req->start_us) / 1000;
    }
    /* vtc: settle the user's estimate on the engine's usage; a request no
     * engine answered used nothing and is refunded. */
    if (req->routed && req->usage.found)
        dp_route_settle(req->ctx, &req->route, req->usage.prompt_tokens,
                        req->usage.completion_tokens);
    else if (req->routed && !req->headers_done)
        dp_route_settle(req->ctx, &req->route, 0, 0);
    access_log(req, client_gone ? 499u : req->final_status, now);
}

void
dp_proxy_completed(dp_ctx *ctx, void *con_cls, enum MHD_RequestTerminationCode toe)
{
    dp_req *req = con_cls;
    bool client_gone = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;

    if (client_gone && !req->upstream_done && req->in_multi)
        gw_log(GW_LOG_INFO, "DP-CLIENT-GONE", "req=%s toe=%d", req->id, (int)toe);
    upstream_cleanup(req);
    account(req, client_gone);
    dp_cbreaker_retry_release(&ctx->retries_inflight, &req->retry_held);
    settle_quota(req);
    /* The decode never took the prefill's KV: release it. */
    if (!req->headers_done || req->final_status >= 400)
        pd_abort(req);
    req_release(req);
    gw_io_free(req->client_watch);
    gw_timer_free(req->watch_timer);
    gw_timer_free(req->timer);
    curl_slist_free_all(req->resp_hdrs);
    dp_usage_fini(&req->usage);
    dp_sse_strip_fini(&req->strip);
    gw_buf_fini(&req->pre_body);
    gw_buf_fini(&req->pre_resp);
    gw_buf_fini(&req->relay);
    gw_buf_fini(&req->body);
    gw_buf_fini(&req->client_body);
    dp_reqinfo_fini(&req->info);
    dp_snap_unref(req->snap);
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        ctx->reqs = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    ctx->n_reqs--;
    free(req);
}

void
dp_proxy_pool_free(dp_ctx *ctx)
{
    while (ctx->n_easy_pool > 0)
        curl_easy_cleanup(ctx->easy_pool[--ctx->n_easy_pool]);
    GW_FREE(ctx->easy_pool);
}

void
dp_proxy_abort_all(dp_ctx *ctx)
{
    for (dp_req *req = ctx->reqs; req != NULL; req = req->next) {
        if (req->aborted || req->upstream_done)
            continue; /* complete responses still flush */
        if (req->headers_done && req->sse) {
            end_stream_with_error(req, "the gateway is shutting down", "drain_timeout");
            continue;
        }
        req->aborted = true;
        cancel_admission(req);
        upstream_cleanup(req);
        req_release(req);
        resume(req);
    }
}
