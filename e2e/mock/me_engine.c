/* me_engine: HTTP front of one mock engine (see me_engine.h).
 *
 * Request life: the first access-handler call allocates an me_req, later
 * calls collect the body (capped at max_body_bytes), and the last call
 * dispatches. A generation request takes a slot (at most max_running at once,
 * the others count as waiting), sleeps out its timing model and answers; a
 * streaming one answers 200 at once and produces its SSE events from the
 * content-reader callback, sleeping between tokens. MHD's request-completed
 * callback is the single place where a request is accounted (completed,
 * cancelled or aborted), its slot released and its me_req freed, so every
 * path - success, error, client gone, close_mid_stream, shutdown - goes
 * through it exactly once.
 *
 * Sleeping in MHD's connection thread hides a client disconnect from MHD, so
 * every wait polls the socket for POLLRDHUP itself (wait_client). A client
 * that half-closes after sending its request therefore counts as gone.
 *
 * With --kv-sim the slot and the fixed ttft/itl sleeps are replaced by the
 * simulator (me_sim): the request's prompt is hashed, submitted as a
 * sequence, and each token is waited for (sim_wait); the sequence is
 * released in the request-completed callback like a slot.
 *
 * With --pd-role prefill|decode (me_pd) chat and completions requests are
 * checked for the PD shape before the faults apply. A prefill registers its
 * simulated KV in the engine's store once its (only) token exists, and
 * serves the decodes' pulls (/_mock/kv/...) and /abort_request. A decode
 * fetches the KV from the prefill with a blocking HTTP exchange in its own
 * connection thread, without the engine's mutex and before it takes a slot
 * (vLLM keeps such requests out of the running batch while their KV
 * arrives), then generates without recomputing the prompt. */
#include "me_engine.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "gw/gw_buf.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "me_gen.h"
#include "me_metrics.h"
#include "me_pd.h"
#include "me_reqlog.h"
#include "me_sim.h"

#define WAIT_FOREVER    UINT64_MAX
#define WAIT_SLICE_NS   50000000ULL /* shutdown is noticed within this */
#define STREAM_BLOCK    16384
#define STREAM_OUT_MAX  (1u << 20)
#define METRICS_OUT_MAX (8u << 20)
#define REQ_ID_MAX      128        /* longest X-Request-Id reused as the response id */
#define SIM_ALL         UINT32_MAX /* sim_wait: until the sequence finished */
#define KNOB_MS_MAX     3600000
#define KNOB_RATE_MAX   1e9  /* force_tokens_per_s */
#define LORA_MAX        1024 /* adapters loaded at once per port */
#define LORA_HIST_MAX   16   /* vllm:lora_requests_info label sets kept */
#define KV_PREFIX       "/_mock/kv/"
#define KV_FETCH_MS     10000 /* a decode's whole KV fetch, so nothing hangs */
#define KV_IDLE_MAX     64    /* idle keep-alive fetch handles kept per decode port */

#define CT_JSON  "application/json"
#define CT_SSE   "text/event-stream; charset=utf-8"
#define CT_PROM  "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT  "text/plain; charset=utf-8"
#define BODY_401 "{\"error\":\"Unauthorized\"}"
#define BODY_404 "{\"detail\":\"Not Found\"}"
#define BODY_405 "{\"detail\":\"Method Not Allowed\"}"

typedef enum route {
    RT_CHAT,
    RT_COMPLETIONS,
    RT_EMBEDDINGS,
    RT_MODELS,
    RT_HEALTH,
    RT_METRICS,
    RT_MOCK_REQUESTS,
    RT_MOCK_STATS,
    RT_MOCK_FAULT,
    RT_MOCK_RESET,
    RT_LOAD_LORA,
    RT_UNLOAD_LORA,
    RT_RESET_PREFIX,
    RT_KV_PULL,    /* GET /_mock/kv/<id>: a decode pulls a prefill's KV */
    RT_KV_COMPUTE, /* POST /_mock/kv/compute: vllm-kvt batched */
    RT_ABORT,      /* POST /abort_request: the gateway frees a prefill's KV */
    RT_NOT_FOUND,
    RT_BAD_METHOD,
} route;

static const struct {
    const char *path;
    const char *method;
    route rt;
} routes[] = {
    {"/v1/chat/completions", "POST", RT_CHAT},
    {"/v1/completions", "POST", RT_COMPLETIONS},
    {"/v1/embeddings", "POST", RT_EMBEDDINGS},
    {"/v1/models", "GET", RT_MODELS},
    {"/health", "GET", RT_HEALTH},
    {"/metrics", "GET", RT_METRICS},
    {"/_mock/requests", "GET", RT_MOCK_REQUESTS},
    {"/_mock/requests", "DELETE", RT_MOCK_REQUESTS},
    {"/_mock/stats", "GET", RT_MOCK_STATS},
    {"/_mock/fault", "GET", RT_MOCK_FAULT},
    {"/_mock/fault", "POST", RT_MOCK_FAULT},
    {"/_mock/reset", "POST", RT_MOCK_RESET},
    {"/v1/load_lora_adapter", "POST", RT_LOAD_LORA},
    {"/v1/unload_lora_adapter", "POST", RT_UNLOAD_LORA},
    {"/reset_prefix_cache", "POST", RT_RESET_PREFIX},
    {"/_mock/kv/compute", "POST", RT_KV_COMPUTE},
    {"/abort_request", "POST", RT_ABORT},
};

/* Counters behind /_mock/stats. received/in_flight/completed/cancelled/
 * aborted cover the "tracked" requests: everything except /_mock/..., /health,
 * /metrics and GET /v1/models, which have their own counters (the gateway's
 * controller polls the last two, and tests must not see that traffic in the
 * request log). */
typedef struct me_stats {
    uint64_t received;
    uint64_t in_flight;
    uint64_t completed; /* a full response went out, whatever its status */
    uint64_t cancelled; /* the client went away first */
    uint64_t aborted;   /* the mock cut it (close_mid_stream) */
    uint64_t health_checks;
    uint64_t metrics_scrapes;
    uint64_t model_listings; /* GET /v1/models: discovery traffic, like /metrics */
    /* Prefill/decode roles (kv_expired and kv_held come from the store). */
    uint64_t kv_registered;  /* prefill: KV entries put (a prefill's first token) */
    uint64_t kv_pulled;      /* prefill: entries a decode pulled */
    uint64_t kv_computed;    /* prefill: /_mock/kv/compute answered */
    uint64_t kv_aborted;     /* prefill: entries /abort_request freed */
    uint64_t kv_pull_failed; /* decode: fetches that failed (500s) */
    uint64_t pd_rejected;    /* both roles: requests refused for their PD shape (400s) */
} me_stats;

/* One loaded LoRA adapter. */
typedef struct me_lora {
    char *name; /* owned */
    char *path; /* owned */
    long created;
} me_lora;

/* One label set vllm:lora_requests_info has shown, and when it was last set. */
typedef struct lora_hist {
    char *running; /* owned */
    char *waiting; /* owned */
    double ts;
} lora_hist;

struct me_engine {
    const me_cfg *cfg; /* borrowed */
    struct MHD_Daemon *mhd;
    uint16_t port;
    char port_str[8];
    long started; /* Unix time: "created" of /v1/models */
    uint64_t id_salt;
    atomic_bool stopping;
    atomic_uint_fast64_t id_seq;

    pthread_mutex_t mu;     /* guards everything below */
    pthread_cond_t slot_cv; /* a slot was freed, or shutdown */
    me_knobs knobs;
    uint64_t fault_seq; /* generation requests since the knobs were set */
    me_stats stats;
    unsigned running;
    unsigned waiting;
    unsigned *model_running; /* owned, per model */
    unsigned *model_waiting; /* owned, per model */
    me_metrics *met;         /* owned */
    me_reqlog *log;          /* owned; NULL when recording is off */
    me_sim *sim;             /* owned; NULL without --kv-sim */
    me_lora *loras;          /* owned; loaded adapters in load order */
    size_t nloras;
    lora_hist hist[LORA_HIST_MAX];
    size_t nhist;
    double token_carry;     /* force_tokens_per_s: fraction of a token not yet counted */
    uint64_t token_last_ns; /* force_tokens_per_s: when tokens were last added */
    me_pd_store *kv;        /* owned; --pd-role prefill only, else NULL */
    me_pd_client *http;     /* owned; --pd-role decode only: fetches KV, thread-safe */
    /* Immutable after start: this port's engine id, and the host its
     * kv_transfer_params advertise (the listen host, loopback for a
     * wildcard). */
    char engine_id[ME_PD_ID_MAX + 1];
    char kv_host[ME_PD_HOST_MAX + 1];
};

typedef struct me_req {
    me_engine *eng; /* borrowed */
    route rt;
    bool tracked;   /* counted in stats and recorded */
    bool too_large; /* the body went over max_body_bytes */
    gw_buf body;
    int fd;            /* client socket, owned by MHD */
    uint64_t t0_ns;    /* arrival, monotonic */
    uint64_t ts_ms;    /* arrival, wall clock */
    me_knobs knobs;    /* snapshot taken when a generation request starts */
    bool fail_counted; /* its injected failure is one of fail_count's */
    me_plan plan;
    bool holds_slot;
    uint64_t *hashes; /* owned until submitted: the prompt's block hashes */
    size_t nhashes;
    me_seq *seq;        /* --kv-sim: the simulator's sequence (eng->mu) */
    bool gen_done;      /* the whole output was produced */
    bool server_cut;    /* close_mid_stream fired */
    uint64_t t_last_ns; /* when the last token was produced */
    me_stream st;       /* streaming only, valid when st.prefix != NULL */
    unsigned ev;        /* next SSE event index */
    unsigned events_sent;
    gw_buf out; /* SSE bytes not yet handed to MHD */
    size_t out_off;
    char id[REQ_ID_MAX + 16];
    /* Prefill/decode roles. */
    bool pd_prefill;              /* a checked prefill: registers KV at its first token */
    bool kv_put;                  /* ... and has done so */
    char kv_id[ME_PD_ID_MAX + 1]; /* prefill: the id its KV is held under */
    bool pd_decode;               /* a checked decode: fetches <dec> first */
    me_pd_decode dec;             /* decode: where its KV comes from */
} me_req;

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

static double
secs_since(uint64_t t_ns)
{
    return (double)(mono_ns() - t_ns) / 1e9;
}

/* Sleeps <ms> milliseconds (WAIT_FOREVER: until something ends it) while
 * watching the client socket. Returns false when the client closed or reset
 * the connection or the engine is shutting down, true when the time is up. */
static bool
wait_client(me_req *req, uint64_t ms)
{
    uint64_t deadline = ms == WAIT_FOREVER ? UINT64_MAX : mono_ns() + ms * 1000000ULL;

    if (atomic_load(&req->eng->stopping))
        return false;
    if (ms == 0)
        return true;
    for (;;) {
        uint64_t now = mono_ns();
        uint64_t left;
        struct timespec ts;
        struct pollfd p = {.fd = req->fd, .events = POLLRDHUP};
        int n;

        if (now >= deadline)
            return true;
        left = deadline - now < WAIT_SLICE_NS ? deadline - now : WAIT_SLICE_NS;
        ts.tv_sec = 0;
        ts.tv_nsec = (long)left;
        /* POLLIN is not asked for: a pipelined next request must not wake us. */
        n = ppoll(&p, 1, &ts, NULL);
        if (n > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0)
            return false;
        if (atomic_load(&req->eng->stopping))
            return false;
    }
}

static bool
client_gone(me_req *req)
{
    struct pollfd p = {.fd = req->fd, .events = POLLRDHUP};

    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

/* ---- LoRA adapters (all under eng->mu) ---------------------------------- */

/* The loaded adapter named <name>, or NULL. */
static me_lora *
lora_find(me_engine *eng, const char *name)
{
    for (size_t i = 0; i < eng->nloras; i++) {
        if (strcmp(eng->loras[i].name, name) == 0)
            return &eng->loras[i];
    }
    return NULL;
}

/* Loads an adapter: the first <name_len> bytes of <name>, at <path>. */
static void
lora_add(me_engine *eng, const char *name, size_t name_len, const char *path)
{
    me_lora *l;

    eng->loras = gw_xrealloc(eng->loras, (eng->nloras + 1) * sizeof(*eng->loras));
    l = &eng->loras[eng->nloras++];
    l->name = gw_xstrndup(name, name_len);
    l->path = gw_xstrdup(path);
    l->created = (long)time(NULL);
}

/* Unloads every adapter and forgets the lora_requests_info label sets. */
static void
lora_clear(me_engine *eng)
{
    for (size_t i = 0; i < eng->nloras; i++) {
        free(eng->loras[i].name);
        free(eng->loras[i].path);
    }
    GW_FREE(eng->loras);
    eng->nloras = 0;
    for (size_t i = 0; i < eng->nhist; i++) {
        free(eng->hist[i].running);
        free(eng->hist[i].waiting);
    }
    eng->nhist = 0;
}

/* The command line's adapters: "NAME" or "NAME=PATH" (vLLM --lora-modules). */
static void
lora_load_startup(me_engine *eng)
{
    for (size_t i = 0; i < eng->cfg->nloras; i++) {
        const char *spec = eng->cfg->loras[i];
        size_t n = strcspn(spec, "=");
        char path[ME_LORA_NAME_MAX + 32];

        if (spec[n] == '=') {
            lora_add(eng, spec, n, spec + n + 1);
        } else {
            snprintf(path, sizeof(path), "/mock/loras/%s", spec);
            lora_add(eng, spec, n, path);
        }
    }
}

/* me_lora_fn for me_gen_plan: is <name> loaded on this port right now? */
static bool
is_lora(void *arg, const char *name)
{
    me_engine *eng = arg;
    bool found;

    pthread_mutex_lock(&eng->mu);
    found = lora_find(eng, name) != NULL;
    pthread_mutex_unlock(&eng->mu);
    return found;
}

/* Sets the vllm:lora_requests_info label set of now (the loaded adapters
 * run; the mock queues nothing per adapter) to <now_s>, as vLLM does every
 * engine step; older label sets keep their older times, as
 * prometheus_client keeps them. The oldest set goes when LORA_HIST_MAX are
 * kept. */
static void
lora_hist_touch(me_engine *eng, double now_s)
{
    gw_buf run;
    lora_hist *h = NULL;

    gw_buf_init(&run, (size_t)(ME_LORA_NAME_MAX + 1) * LORA_MAX);
    for (size_t i = 0; i < eng->nloras; i++) {
        if (gw_buf_printf(&run, "%s%s", i ? "," : "", eng->loras[i].name) != GW_OK)
            break;
    }
    for (size_t i = 0; i < eng->nhist && h == NULL; i++) {
        if (strcmp(eng->hist[i].running, run.data != NULL ? run.data : "") == 0)
            h = &eng->hist[i];
    }
    if (h == NULL) {
        if (eng->nhist == LORA_HIST_MAX) {
            size_t oldest = 0;
            for (size_t i = 1; i < eng->nhist; i++) {
                if (eng->hist[i].ts < eng->hist[oldest].ts)
                    oldest = i;
            }
            free(eng->hist[oldest].running);
            free(eng->hist[oldest].waiting);
            eng->hist[oldest] = eng->hist[--eng->nhist];
        }
        h = &eng->hist[eng->nhist++];
        h->running = gw_xstrdup(run.data != NULL ? run.data : "");
        h->waiting = gw_xstrdup("");
    }
    h->ts = now_s;
    gw_buf_fini(&run);
}

/* ---- slots: the max_running batch and its waiting queue ---------------- */

static bool
slot_acquire(me_req *req)
{
    me_engine *eng = req->eng;
    size_t m = req->plan.model;
    bool queued = false;
    bool ok = true;
    struct timespec ts;

    pthread_mutex_lock(&eng->mu);
    while (eng->running >= eng->cfg->max_running) {
        if (!queued) {
            eng->waiting++;
            eng->model_waiting[m]++;
            queued = true;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)WAIT_SLICE_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&eng->slot_cv, &eng->mu, &ts);
        if (atomic_load(&eng->stopping) || client_gone(req)) {
            ok = false;
            break;
        }
    }
    if (queued) {
        eng->waiting--;
        eng->model_waiting[m]--;
    }
    if (ok) {
        eng->running++;
        eng->model_running[m]++;
        req->holds_slot = true;
    }
    pthread_mutex_unlock(&eng->mu);
    return ok;
}

/* The first token exists: prefill is done (vLLM counts prompt tokens and
 * observes TTFT here). */
static void
first_token(me_req *req)
{
    me_engine *eng = req->eng;
    size_t m = req->plan.model;

    req->t_last_ns = mono_ns();
    pthread_mutex_lock(&eng->mu);
    me_metrics_prompt_tokens(eng->met, m, req->plan.prompt_tokens);
    if (req->plan.api != ME_API_EMBEDDINGS) {
        me_metrics_ttft(eng->met, m, (double)(req->t_last_ns - req->t0_ns) / 1e9);
        me_metrics_generation_tokens(eng->met, m, 1);
    }
    pthread_mutex_unlock(&eng->mu);
}

/* <n> more tokens were produced since the last one. */
static void
more_tokens(me_req *req, unsigned n)
{
    me_engine *eng = req->eng;
    uint64_t now = mono_ns();

    pthread_mutex_lock(&eng->mu);
    me_metrics_generation_tokens(eng->met, req->plan.model, n);
    me_metrics_tpot(eng->met, req->plan.model, (double)(now - req->t_last_ns) / 1e9 / n, n);
    pthread_mutex_unlock(&eng->mu);
    req->t_last_ns = now;
}

/* ---- the KV-cache simulator (--kv-sim) ---------------------------------- */

/* Hands the request's prompt to the simulator. False when it could never fit
 * in the KV cache (only a batch of embeddings inputs can be that long). A PD
 * decode's prompt KV was transferred, so it is not computed again. */
static bool
sim_submit(me_req *req)
{
    me_engine *eng = req->eng;
    unsigned out = req->plan.api == ME_API_EMBEDDINGS ? 0 : req->plan.completion_tokens;
    unsigned remote = req->pd_decode ? req->plan.prompt_tokens : 0;

    pthread_mutex_lock(&eng->mu);
    req->seq = me_sim_submit(eng->sim, req->plan.model, req->plan.prompt_tokens, out, remote,
                             req->hashes, req->nhashes);
    pthread_mutex_unlock(&eng->mu);
    req->hashes = NULL; /* the simulator took it either way */
    req->nhashes = 0;
    return req->seq != NULL;
}

/* Waits until the simulator has generated <ntok> tokens of the request
 * (SIM_ALL: until it finished). False when the client went away or the
 * engine is stopping. The socket is polled once per WAIT_SLICE_NS, not at
 * every step, to keep syscalls off the mutex at high step rates. */
static bool
sim_wait(me_req *req, unsigned ntok)
{
    me_engine *eng = req->eng;
    uint64_t next_check = mono_ns() + WAIT_SLICE_NS;
    bool ok = true;

    pthread_mutex_lock(&eng->mu);
    while (!me_seq_finished(req->seq) && me_seq_produced(req->seq) < ntok) {
        me_sim_wait(eng->sim, req->seq, ntok, WAIT_SLICE_NS);
        if (atomic_load(&eng->stopping)) {
            ok = false;
            break;
        }
        if (mono_ns() >= next_check) {
            if (client_gone(req)) {
                ok = false;
                break;
            }
            next_check = mono_ns() + WAIT_SLICE_NS;
        }
    }
    pthread_mutex_unlock(&eng->mu);
    return ok;
}

/* ---- prefill/decode roles ---------------------------------------------- */

/* A prefill's first token exists, so its KV is complete: registers it under
 * req->kv_id for one decode to pull. Once per request; no-op otherwise. */
static void
pd_register(me_req *req)
{
    me_engine *eng = req->eng;
    bool replaced;

    if (!req->pd_prefill || req->kv_put)
        return;
    req->kv_put = true;
    pthread_mutex_lock(&eng->mu);
    replaced = me_pd_store_put(eng->kv, req->kv_id, req->plan.prompt_tokens, mono_ns());
    eng->stats.kv_registered++;
    pthread_mutex_unlock(&eng->mu);
    gw_log(GW_LOG_DEBUG, "ME-PD-KV", "port=%u op=register prompt_tokens=%u replaced=%d", eng->port,
           req->plan.prompt_tokens, replaced);
}

/* me_pd_cancel_fn of a decode's fetch. */
static bool
fetch_cancelled(void *arg)
{
    me_req *req = arg;

    return atomic_load(&req->eng->stopping) || client_gone(req);
}

/* A decode fetches its KV from the prefill, then spends --kv-transfer-ms
 * moving it. False with <msg> set when the fetch failed (a 500, counted in
 * kv_pull_failed), or with msg[0] == '\0' when the client left or the
 * engine stops (no answer; the request counts as cancelled). */
static bool
pd_fetch(me_req *req, char *msg, size_t msgn)
{
    me_engine *eng = req->eng;
    char why[2048]; /* two escaped ids and the prefill's reason fit */
    char q[ME_PD_HOST_MAX + 8];
    gw_err rc;

    msg[0] = '\0';
    rc = me_pd_fetch(eng->http, &req->dec, req->plan.prompt_tokens, KV_FETCH_MS, fetch_cancelled,
                     req, why, sizeof(why));
    if (rc == GW_ECLOSED)
        return false; /* the client left or the engine stops: nobody to answer */
    if (rc != GW_OK) {
        pthread_mutex_lock(&eng->mu);
        eng->stats.kv_pull_failed++;
        pthread_mutex_unlock(&eng->mu);
        /* Not <why>: it quotes the request id, a header value. */
        gw_log(GW_LOG_INFO, "ME-PD-FETCH-FAIL", "port=%u proto=%s peer=%s:%u err=%s", eng->port,
               me_pd_proto_name(req->dec.proto), gw_log_q(q, sizeof(q), req->dec.host),
               req->dec.port, gw_strerror(rc));
        snprintf(msg, msgn, "mock engine: KV transfer failed: %s", why);
        return false;
    }
    return wait_client(req, eng->cfg->kv_transfer_ms);
}

/* ---- replies ----------------------------------------------------------- */

/* Debug trace of one dispatched request; never the body or the headers. */
static void
log_dispatch(const me_req *req, const char *method, const char *url, bool answered)
{
    char q[256];
    char qm[32];

    gw_log(GW_LOG_DEBUG, "ME-HTTP-REQ", "port=%u method=%s path=%s answered=%d", req->eng->port,
           gw_log_q(qm, sizeof(qm), method), gw_log_q(q, sizeof(q), url), answered);
}

/* Queues <body> (malloc'd and owned by the reply, or NULL for an empty one). */
static enum MHD_Result
reply(me_req *req, struct MHD_Connection *conn, unsigned status, const char *ctype, char *body)
{
    struct MHD_Response *rsp;
    enum MHD_Result ret;

    if (body != NULL && body[0] != '\0') {
        rsp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    } else {
        free(body);
        rsp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        ctype = NULL;
    }
    if (rsp == NULL)
        return MHD_NO;
    if (ctype != NULL)
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(rsp, "x-mock-port", req->eng->port_str);
    if (status == 429)
        MHD_add_response_header(rsp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    ret = MHD_queue_response(conn, status, rsp);
    MHD_destroy_response(rsp);
    return ret;
}

static enum MHD_Result
reply_const(me_req *req, struct MHD_Connection *conn, unsigned status, const char *body)
{
    return reply(req, conn, status, CT_JSON, gw_xstrdup(body));
}

static enum MHD_Result
reply_error(me_req *req, struct MHD_Connection *conn, unsigned status, const char *msg)
{
    return reply(req, conn, status, CT_JSON, me_gen_error(req->eng->cfg, status, msg));
}

static enum MHD_Result
reply_json(me_req *req, struct MHD_Connection *conn, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    return s != NULL ? reply(req, conn, status, CT_JSON, s) : MHD_NO;
}

/* ---- request recording and auth ---------------------------------------- */

static bool
is_secret_header(const char *lname)
{
    static const char *const secret[] = {"authorization", "proxy-authorization", "x-api-key",
                                         "api-key", "cookie"};

    for (size_t i = 0; i < GW_ARRAY_LEN(secret); i++) {
        if (strcmp(lname, secret[i]) == 0)
            return true;
    }
    return false;
}

typedef struct hdr_ctx {
    json_t *obj;
    bool keep_secrets;
} hdr_ctx;

static enum MHD_Result
on_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    hdr_ctx *h = cls;
    char name[256];
    const char *v = value != NULL ? value : "";
    const json_t *prev;
    size_t i;

    (void)kind;
    for (i = 0; key[i] != '\0' && i + 1 < sizeof(name); i++)
        name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] + ('a' - 'A') : key[i]);
    name[i] = '\0';
    if (!h->keep_secrets && is_secret_header(name))
        v = "<redacted>";
    prev = json_object_get(h->obj, name);
    if (prev != NULL) {
        /* Repeated header: join like a list-valued field (RFC 9110 §5.3). */
        char *joined;
        size_t n = strlen(json_string_value(prev)) + strlen(v) + 3;

        joined = gw_xmalloc(n);
        snprintf(joined, n, "%s, %s", json_string_value(prev), v);
        json_object_set_new(h->obj, name, json_string(joined));
        free(joined);
    } else {
        json_object_set_new(h->obj, name, json_string(v));
    }
    return MHD_YES;
}

static void
record(me_req *req, struct MHD_Connection *conn, const char *url, const char *method)
{
    me_engine *eng = req->eng;
    hdr_ctx h = {NULL, eng->cfg->record_secrets};
    me_reqrec rec;

    if (eng->log == NULL)
        return;
    /* Values that are not UTF-8 are dropped: jansson refuses them. */
    h.obj = json_object();
    MHD_get_connection_values(conn, MHD_HEADER_KIND, on_header, &h);
    rec.method = gw_xstrdup(method);
    rec.path = gw_xstrdup(url);
    rec.headers = h.obj;
    rec.body = NULL;
    rec.body_len = 0;
    if (req->body.len > 0 && !req->too_large) {
        /* A copy: the handler still parses req->body after this. */
        rec.body = gw_xmalloc(req->body.len + 1);
        memcpy(rec.body, req->body.data, req->body.len + 1);
        rec.body_len = req->body.len;
    }
    rec.ts_ms = req->ts_ms;
    pthread_mutex_lock(&eng->mu);
    me_reqlog_add(eng->log, &rec);
    pthread_mutex_unlock(&eng->mu);
}

/* vLLM's middleware: every /v1 path needs "Authorization: Bearer <key>"
 * when --api-key is set (OPTIONS is let through for CORS preflight). */
static bool
authorized(const me_cfg *cfg, struct MHD_Connection *conn)
{
    const char *auth;

    if (cfg->napi_keys == 0)
        return true;
    auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    for (size_t i = 0; i < cfg->napi_keys; i++) {
        if (strcmp(auth + 7, cfg->api_keys[i]) == 0)
            return true;
    }
    return false;
}

/* ---- generation -------------------------------------------------------- */

static uint64_t
mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* vLLM builds the response id from X-Request-Id when the client sends one
 * ("chatcmpl-<x-request-id>"), else from a random UUID. Only a safe charset
 * is reused so the id never needs escaping. */
static void
make_id(me_req *req, struct MHD_Connection *conn)
{
    static const char *const prefix[] = {
        [ME_API_CHAT] = "chatcmpl-", [ME_API_COMPLETIONS] = "cmpl-", [ME_API_EMBEDDINGS] = "embd-"};
    const char *xid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    size_t o = (size_t)snprintf(req->id, sizeof(req->id), "%s", prefix[req->plan.api]);
    size_t start = o;

    for (; xid != NULL && *xid != '\0' && o - start < REQ_ID_MAX; xid++) {
        char c = *xid;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == ':')
            req->id[o++] = c;
    }
    req->id[o] = '\0';
    if (o == start) {
        uint64_t seq = atomic_fetch_add(&req->eng->id_seq, 1);

        snprintf(req->id + o, sizeof(req->id) - o, "%016llx%016llx",
                 (unsigned long long)mix64(req->eng->id_salt ^ seq),
                 (unsigned long long)mix64(req->eng->id_salt + seq * 0x9e3779b97f4a7c15ULL));
    }
}

/* Copies the engine's knobs into <req> and decides the error_rate fault.
 * The decision is deterministic: request k (counted since the knobs were
 * last set) fails when floor((k+1)*rate) > floor(k*rate), so rate 0.5 fails
 * every second request and rate 1 all of them. */
static unsigned
take_knobs(me_req *req)
{
    me_engine *eng = req->eng;
    uint64_t k;

    pthread_mutex_lock(&eng->mu);
    req->knobs = eng->knobs;
    k = eng->fault_seq++;
    pthread_mutex_unlock(&eng->mu);
    req->fail_counted = k < req->knobs.fail_count;
    if (req->fail_counted)
        return req->knobs.fail_status != 0 ? req->knobs.fail_status : 429;
    return floor((double)(k + 1) * req->knobs.error_rate) > floor((double)k * req->knobs.error_rate)
               ? 500
               : 0;
}

/* The answer of an injected failure: fail_count's status (a 429 carries
 * Retry-After: 1, as rate-limiting servers send), else error_rate's 500. */
static enum MHD_Result
reply_fault(me_req *req, struct MHD_Connection *conn, unsigned status)
{
    if (!req->fail_counted)
        return reply_error(req, conn, 500, "mock engine: injected failure (error_rate)");
    if (status == 429)
        return reply_error(req, conn, 429, "mock engine: injected rate limit (fail_count)");
    return reply_error(req, conn, status, "mock engine: injected failure (fail_count)");
}

/* Produces the next SSE event into req->out, after the delay the timing
 * model puts before it. Returns false to end the response with an error:
 * client gone, engine stopping, or the close_mid_stream cut. An empty
 * req->out on true means the stream is complete. */
static bool
stream_next(me_req *req)
{
    unsigned cut = req->knobs.close_mid_stream;
    me_ev ev;
    unsigned tok;

    if (req->ev == 0 && req->seq == NULL && !slot_acquire(req))
        return false;
    if (me_stream_event(&req->st, req->ev, &req->out, &ev, &tok) != GW_OK)
        return false;
    if (ev == ME_EV_END)
        return true;
    if (cut > 0 && req->events_sent >= cut) {
        req->server_cut = true;
        gw_log(GW_LOG_INFO, "ME-STREAM-CUT", "port=%u events=%u", req->eng->port, req->events_sent);
        return false;
    }
    req->ev++;
    switch (ev) {
    case ME_EV_ROLE:
        /* vLLM sends the role chunk when the first token exists. */
        if (req->seq != NULL ? !sim_wait(req, 1) : !wait_client(req, req->knobs.ttft_ms))
            return false;
        break;
    case ME_EV_TOKEN:
        if (req->seq != NULL) {
            /* The simulator records the token metrics itself. */
            if (!sim_wait(req, tok + 1))
                return false;
            if (tok == 0)
                pd_register(req);
        } else if (tok == 0) {
            if (req->plan.api != ME_API_CHAT && !wait_client(req, req->knobs.ttft_ms))
                return false;
            first_token(req);
            pd_register(req);
        } else {
            if (!wait_client(req, req->knobs.itl_ms))
                return false;
            more_tokens(req, 1);
        }
        break;
    case ME_EV_DONE:
        req->gen_done = true;
        break;
    case ME_EV_USAGE:
    case ME_EV_END:
        break;
    }
    req->events_sent++;
    return true;
}

static ssize_t
on_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    me_req *req = cls;
    size_t n;

    (void)pos;
    if (req->out_off >= req->out.len) {
        gw_buf_reset(&req->out);
        req->out_off = 0;
        if (!stream_next(req))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (req->out.len == 0)
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
    n = req->out.len - req->out_off;
    if (n > max)
        n = max;
    memcpy(buf, req->out.data + req->out_off, n);
    req->out_off += n;
    return (ssize_t)n;
}

/* The non-streaming chat.completion / text_completion body; a prefill's
 * carries the kv_transfer_params its decode needs (NixlConnector's shape).
 * Streams carry none: a staged vllm-kvt decode goes by the request id. */
static enum MHD_Result
reply_generated(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;
    json_t *params = NULL;
    char *out;

    if (req->pd_prefill)
        params = me_pd_params_json(eng->engine_id, eng->kv_host, eng->port, req->kv_id,
                                   req->plan.prompt_tokens, eng->cfg->kv_block_size);
    out = me_gen_response(eng->cfg, &req->plan, req->id, (long)time(NULL), params);
    json_decref(params);
    return reply(req, conn, MHD_HTTP_OK, CT_JSON, out);
}

static enum MHD_Result
start_stream(me_req *req, struct MHD_Connection *conn)
{
    struct MHD_Response *rsp;
    enum MHD_Result ret;

    me_stream_init(&req->st, req->eng->cfg, &req->plan, req->id, (long)time(NULL));
    gw_buf_init(&req->out, STREAM_OUT_MAX);
    /* The me_req owns all stream state and is freed in on_completed, so the
     * response needs no free callback. */
    rsp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, on_stream_read, req,
                                            NULL);
    if (rsp == NULL)
        return MHD_NO;
    MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, CT_SSE);
    MHD_add_response_header(rsp, "x-mock-port", req->eng->port_str);
    ret = MHD_queue_response(conn, MHD_HTTP_OK, rsp);
    MHD_destroy_response(rsp);
    return ret;
}

/* The PD shape of a chat or completions request on a prefill or decode
 * port (README "Prefill/decode roles"). Returns 0, or the 400 to answer
 * with <msg>; counts the refusal. */
static unsigned
pd_check(me_req *req, struct MHD_Connection *conn, const json_t *body, char *msg, size_t msgn)
{
    me_engine *eng = req->eng;
    const char *xrid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    unsigned status = 0;
    char q[600];

    if (eng->cfg->pd_role == ME_PD_PREFILL) {
        status = me_pd_check_prefill(body, req->plan.max_tokens, msg, msgn);
        if (status == 0) {
            gw_err rc = me_pd_request_id(body, xrid, req->kv_id, msg, msgn);

            /* No id at all: the KV goes by the response id. */
            if (rc == GW_ENOENT)
                gw_strlcpy(req->kv_id, req->id, sizeof(req->kv_id));
            else if (rc != GW_OK)
                status = 400;
        }
        req->pd_prefill = status == 0;
    } else {
        status = me_pd_check_decode(body, xrid, &req->dec, msg, msgn);
        if (status == 0 && req->dec.request_id[0] == '\0')
            gw_strlcpy(req->dec.request_id, req->id, sizeof(req->dec.request_id));
        req->pd_decode = status == 0;
    }
    if (status != 0) {
        pthread_mutex_lock(&eng->mu);
        eng->stats.pd_rejected++;
        pthread_mutex_unlock(&eng->mu);
        gw_log(GW_LOG_INFO, "ME-PD-REJECT", "port=%u role=%s msg=%s", eng->port,
               me_pd_role_name(eng->cfg->pd_role), gw_log_q(q, sizeof(q), msg));
    }
    return status;
}

static enum MHD_Result
serve_generate(me_req *req, struct MHD_Connection *conn, me_api api)
{
    const me_cfg *cfg = req->eng->cfg;
    json_error_t jerr;
    json_t *body;
    char msg[2200]; /* room for a failed KV transfer's whole story */
    unsigned status;
    unsigned fail;
    char *out;

    body = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, &jerr);
    if (body == NULL || !json_is_object(body)) {
        /* No excerpt of the body in the message: it may hold a prompt. */
        if (body == NULL)
            snprintf(msg, sizeof(msg), "JSON decode error at position %d", jerr.position);
        else
            snprintf(msg, sizeof(msg), "Input should be a valid dictionary");
        json_decref(body);
        return reply_error(req, conn, 400, msg);
    }
    status = me_gen_plan(cfg, api, body, is_lora, req->eng, &req->plan, msg, sizeof(msg));
    if (status != 0) {
        json_decref(body);
        return reply_error(req, conn, status, msg);
    }
    make_id(req, conn);
    if (cfg->pd_role != ME_PD_BOTH && api != ME_API_EMBEDDINGS) {
        status = pd_check(req, conn, body, msg, sizeof(msg));
        if (status != 0) {
            json_decref(body);
            return reply_error(req, conn, status, msg);
        }
    }

    /* Faults, in order: hang, slow, error_rate. */
    fail = take_knobs(req);
    if (req->knobs.hang) {
        json_decref(body);
        wait_client(req, WAIT_FOREVER);
        return MHD_NO;
    }
    if (!wait_client(req, req->knobs.slow_ms)) {
        json_decref(body);
        return MHD_NO;
    }
    if (fail != 0) {
        json_decref(body);
        return reply_fault(req, conn, fail);
    }
    if (req->pd_decode) {
        if (!pd_fetch(req, msg, sizeof(msg))) {
            json_decref(body);
            return msg[0] != '\0' ? reply_error(req, conn, 500, msg) : MHD_NO;
        }
        /* The prompt is not recomputed: the first token takes one decode
         * step (with --kv-sim, sim_submit marks the prompt transferred). */
        req->knobs.ttft_ms = req->knobs.itl_ms;
    }
    if (req->eng->sim != NULL) {
        req->nhashes = me_gen_block_hashes(&req->plan, body, cfg->kv_block_size, &req->hashes);
        if (!sim_submit(req)) {
            json_decref(body);
            return reply_error(req, conn, 400,
                               "mock engine: the input is larger than the whole KV cache");
        }
    }

    if (api == ME_API_EMBEDDINGS) {
        if (req->seq != NULL) {
            if (!sim_wait(req, SIM_ALL)) {
                json_decref(body);
                return MHD_NO;
            }
        } else if (!slot_acquire(req) || !wait_client(req, req->knobs.ttft_ms)) {
            json_decref(body);
            return MHD_NO;
        } else {
            first_token(req);
        }
        out = me_gen_embeddings(cfg, &req->plan, body, req->id, (long)time(NULL));
        json_decref(body);
        req->gen_done = true;
        return reply(req, conn, MHD_HTTP_OK, CT_JSON, out);
    }
    json_decref(body);
    if (req->plan.stream)
        return start_stream(req, conn);

    /* Non-streaming: answer when the last token exists, i.e. after
     * ttft + (N-1) * itl (or the simulated steps), like the end of the
     * equivalent stream. */
    if (req->seq != NULL) {
        if (!sim_wait(req, SIM_ALL))
            return MHD_NO;
        pd_register(req);
        req->gen_done = true;
        return reply_generated(req, conn);
    }
    if (!slot_acquire(req) || !wait_client(req, req->knobs.ttft_ms))
        return MHD_NO;
    first_token(req);
    pd_register(req);
    if (req->plan.completion_tokens > 1) {
        uint64_t rest = (uint64_t)(req->plan.completion_tokens - 1) * req->knobs.itl_ms;

        if (!wait_client(req, rest))
            return MHD_NO;
        more_tokens(req, req->plan.completion_tokens - 1);
    }
    req->gen_done = true;
    return reply_generated(req, conn);
}

/* ---- admin API (/_mock/...) and the other endpoints -------------------- */

static json_t *
knobs_json(const me_knobs *k)
{
    return json_pack(
        "{s:f, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "error_rate",
        k->error_rate, "hang", k->hang, "close_mid_stream", (json_int_t)k->close_mid_stream,
        "slow_ms", (json_int_t)k->slow_ms, "ttft_ms", (json_int_t)k->ttft_ms, "itl_ms",
        (json_int_t)k->itl_ms, "fail_count", (json_int_t)k->fail_count, "fail_status",
        (json_int_t)k->fail_status, "force_running",
        k->force_running >= 0 ? json_integer(k->force_running) : json_null(), "force_waiting",
        k->force_waiting >= 0 ? json_integer(k->force_waiting) : json_null(),
        "force_kv_cache_usage", k->force_kv_usage >= 0 ? json_real(k->force_kv_usage) : json_null(),
        "force_ttft_ms", k->force_ttft_ms >= 0 ? json_real(k->force_ttft_ms) : json_null(),
        "force_tpot_ms", k->force_tpot_ms >= 0 ? json_real(k->force_tpot_ms) : json_null(),
        "force_tokens_per_s",
        k->force_tokens_per_s >= 0 ? json_real(k->force_tokens_per_s) : json_null());
}

static bool
knob_uint(const json_t *v, unsigned *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > KNOB_MS_MAX)
        return false;
    *out = (unsigned)json_integer_value(v);
    return true;
}

/* Every POST /_mock/fault replaces the whole knob set: fields it names take
 * the given value, the others go back to the command-line values, so {}
 * resets the port. Unknown fields are an error (catches typos in tests). */
static bool
parse_knobs(const me_cfg *cfg, const json_t *j, me_knobs *k, char *msg, size_t msgn)
{
    const char *key;
    json_t *v;
    unsigned u = 0;

    *k = cfg->knobs;
    k->fail_status = 429;
    json_object_foreach((json_t *)j, key, v)
    {
        bool ok = true;

        if (strcmp(key, "error_rate") == 0) {
            ok = json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1;
            k->error_rate = ok ? json_number_value(v) : 0;
        } else if (strcmp(key, "hang") == 0) {
            ok = json_is_boolean(v);
            k->hang = json_is_true(v);
        } else if (strcmp(key, "close_mid_stream") == 0) {
            ok = knob_uint(v, &k->close_mid_stream);
        } else if (strcmp(key, "slow_ms") == 0) {
            ok = knob_uint(v, &k->slow_ms);
        } else if (strcmp(key, "ttft_ms") == 0) {
            ok = knob_uint(v, &k->ttft_ms);
        } else if (strcmp(key, "itl_ms") == 0) {
            ok = knob_uint(v, &k->itl_ms);
        } else if (strcmp(key, "fail_count") == 0) {
            ok = knob_uint(v, &k->fail_count);
        } else if (strcmp(key, "fail_status") == 0) {
            ok = knob_uint(v, &k->fail_status) && k->fail_status >= 400 && k->fail_status <= 599;
        } else if (strcmp(key, "force_running") == 0 || strcmp(key, "force_waiting") == 0) {
            int *dst = key[6] == 'r' ? &k->force_running : &k->force_waiting;

            ok = json_is_null(v) || knob_uint(v, &u);
            *dst = json_is_null(v) || !ok ? -1 : (int)u;
        } else if (strcmp(key, "force_kv_cache_usage") == 0) {
            ok = json_is_null(v) ||
                 (json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1);
            k->force_kv_usage = json_is_null(v) || !ok ? -1 : json_number_value(v);
        } else if (strcmp(key, "force_ttft_ms") == 0 || strcmp(key, "force_tpot_ms") == 0 ||
                   strcmp(key, "force_tokens_per_s") == 0) {
            double *dst = strcmp(key, "force_ttft_ms") == 0   ? &k->force_ttft_ms
                          : strcmp(key, "force_tpot_ms") == 0 ? &k->force_tpot_ms
                                                              : &k->force_tokens_per_s;
            double max = dst == &k->force_tokens_per_s ? KNOB_RATE_MAX : KNOB_MS_MAX;

            ok = json_is_null(v) ||
                 (json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= max);
            *dst = json_is_null(v) || !ok ? -1 : json_number_value(v);
        } else {
            snprintf(msg, msgn, "unknown field '%.64s'", key);
            return false;
        }
        if (!ok) {
            snprintf(msg, msgn, "bad value for '%s'", key);
            return false;
        }
    }
    return true;
}

static enum MHD_Result
serve_fault(me_req *req, struct MHD_Connection *conn, const char *method)
{
    me_engine *eng = req->eng;
    me_knobs k;
    json_t *j;
    json_error_t jerr;
    char msg[160];

    if (strcmp(method, "POST") == 0) {
        j = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, &jerr);
        if (!json_is_object(j) || !parse_knobs(eng->cfg, j, &k, msg, sizeof(msg))) {
            if (!json_is_object(j))
                snprintf(msg, sizeof(msg), "body must be a JSON object");
            json_decref(j);
            return reply_json(req, conn, 400, json_pack("{s:s}", "detail", msg));
        }
        json_decref(j);
        pthread_mutex_lock(&eng->mu);
        eng->knobs = k;
        eng->fault_seq = 0;
        eng->token_carry = 0;
        eng->token_last_ns = mono_ns();
        pthread_mutex_unlock(&eng->mu);
        gw_log(GW_LOG_INFO, "ME-FAULT-SET",
               "port=%u error_rate=%g hang=%d close_mid_stream=%u slow_ms=%u ttft_ms=%u itl_ms=%u",
               eng->port, k.error_rate, k.hang, k.close_mid_stream, k.slow_ms, k.ttft_ms, k.itl_ms);
    } else {
        pthread_mutex_lock(&eng->mu);
        k = eng->knobs;
        pthread_mutex_unlock(&eng->mu);
    }
    return reply_json(req, conn, MHD_HTTP_OK, knobs_json(&k));
}

static enum MHD_Result
serve_requests(me_req *req, struct MHD_Connection *conn, const char *method)
{
    me_engine *eng = req->eng;
    char *s = NULL;
    size_t n = 0;

    pthread_mutex_lock(&eng->mu);
    if (strcmp(method, "DELETE") == 0) {
        if (eng->log != NULL)
            n = me_reqlog_clear(eng->log);
    } else if (eng->log != NULL) {
        s = me_reqlog_dump(eng->log);
    }
    pthread_mutex_unlock(&eng->mu);
    if (strcmp(method, "DELETE") == 0)
        return reply_json(req, conn, MHD_HTTP_OK, json_pack("{s:I}", "cleared", (json_int_t)n));
    return reply(req, conn, MHD_HTTP_OK, CT_JSON, s != NULL ? s : gw_xstrdup("[]"));
}

static enum MHD_Result
serve_stats(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;
    me_stats s;
    me_sim_stats k = {.blocks_total = eng->cfg->kv_blocks};
    unsigned running;
    unsigned waiting;
    uint64_t kv_expired = 0;
    size_t kv_held = 0;
    json_t *j;

    pthread_mutex_lock(&eng->mu);
    if (eng->kv != NULL) {
        me_pd_store_expire(eng->kv, mono_ns());
        kv_expired = me_pd_store_expired(eng->kv);
        kv_held = me_pd_store_held(eng->kv);
    }
    s = eng->stats;
    running = eng->running;
    waiting = eng->waiting;
    if (eng->sim != NULL) {
        me_sim_get_stats(eng->sim, &k);
        running = k.running;
        waiting = k.waiting;
    }
    pthread_mutex_unlock(&eng->mu);
    j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "received",
                  (json_int_t)s.received, "in_flight", (json_int_t)s.in_flight, "completed",
                  (json_int_t)s.completed, "cancelled", (json_int_t)s.cancelled, "aborted",
                  (json_int_t)s.aborted, "running", (json_int_t)running, "waiting",
                  (json_int_t)waiting, "health_checks", (json_int_t)s.health_checks,
                  "metrics_scrapes", (json_int_t)s.metrics_scrapes, "model_listings",
                  (json_int_t)s.model_listings);
    /* The KV-cache simulator's view; zeros without --kv-sim. */
    json_object_update_new(
        j, json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "kv_sim", eng->sim != NULL,
                     "prefix_hit_tokens", (json_int_t)k.hit_tokens, "prefix_query_tokens",
                     (json_int_t)k.query_tokens, "kv_blocks_used", (json_int_t)k.blocks_used,
                     "kv_blocks_total", (json_int_t)k.blocks_total, "evictions",
                     (json_int_t)k.evictions, "preemptions", (json_int_t)k.preemptions, "steps",
                     (json_int_t)k.steps));
    /* Prefill/decode roles; zeros on a plain (both) engine. */
    json_object_update_new(
        j,
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "pd_role",
                  me_pd_role_name(eng->cfg->pd_role), "engine_id", eng->engine_id, "kv_registered",
                  (json_int_t)s.kv_registered, "kv_pulled", (json_int_t)s.kv_pulled, "kv_computed",
                  (json_int_t)s.kv_computed, "kv_aborted", (json_int_t)s.kv_aborted, "kv_expired",
                  (json_int_t)kv_expired, "kv_held", (json_int_t)kv_held, "kv_pull_failed",
                  (json_int_t)s.kv_pull_failed, "pd_rejected", (json_int_t)s.pd_rejected));
    return reply_json(req, conn, MHD_HTTP_OK, j);
}

static enum MHD_Result
serve_reset(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;

    pthread_mutex_lock(&eng->mu);
    if (eng->log != NULL)
        me_reqlog_clear(eng->log);
    me_metrics_reset(eng->met);
    if (eng->sim != NULL)
        me_sim_reset_cache(eng->sim, true);
    if (eng->kv != NULL)
        me_pd_store_clear(eng->kv);
    eng->stats = (me_stats){.in_flight = eng->stats.in_flight};
    eng->knobs = eng->cfg->knobs;
    eng->fault_seq = 0;
    lora_clear(eng);
    lora_load_startup(eng);
    pthread_mutex_unlock(&eng->mu);
    return reply_json(req, conn, MHD_HTTP_OK, json_pack("{s:b}", "reset", 1));
}

/* ---- the prefill's KV endpoints ----------------------------------------- */

static enum MHD_Result
reply_detail(me_req *req, struct MHD_Connection *conn, unsigned status, const char *msg)
{
    return reply_json(req, conn, status, json_pack("{s:s}", "detail", msg));
}

/* GET /_mock/kv/<id>[?engine_id=E]: a decode's pull. 200 consumes the
 * entry; 404 when nothing is held under <id>; 409 when E is not this
 * engine (the entry stays). */
static enum MHD_Result
serve_kv_pull(me_req *req, struct MHD_Connection *conn, const char *url)
{
    me_engine *eng = req->eng;
    const char *id = url + strlen(KV_PREFIX);
    const char *want = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "engine_id");
    char msg[2 * ME_PD_ID_MAX + 128];
    me_pd_kv kv;
    gw_err rc;

    pthread_mutex_lock(&eng->mu);
    rc = me_pd_store_take(eng->kv, id, want, mono_ns(), &kv);
    if (rc == GW_OK)
        eng->stats.kv_pulled++;
    pthread_mutex_unlock(&eng->mu);
    if (rc == GW_ENOENT) {
        snprintf(msg, sizeof(msg),
                 "no KV held for request '%.256s' (never prefilled here, already pulled, "
                 "aborted or expired)",
                 id);
        return reply_detail(req, conn, MHD_HTTP_NOT_FOUND, msg);
    }
    if (rc != GW_OK) {
        snprintf(msg, sizeof(msg), "engine_id '%.256s' is not this prefill's ('%s')", want,
                 eng->engine_id);
        return reply_detail(req, conn, MHD_HTTP_CONFLICT, msg);
    }
    gw_log(GW_LOG_DEBUG, "ME-PD-KV", "port=%u op=pull prompt_tokens=%u", eng->port,
           kv.prompt_tokens);
    return reply_json(req, conn, MHD_HTTP_OK,
                      me_pd_kv_json(kv.engine_id, kv.prompt_tokens, eng->cfg->kv_block_size));
}

/* POST /_mock/kv/compute {"request_id","prompt_tokens"}: vllm-kvt batched,
 * where the gateway sends the prefill nothing and the decode's connector
 * asks it to compute. Runs like a 1-token generation of that many prompt
 * tokens (faults, slot or simulator, metrics), then answers like a pull of
 * an entry made and consumed at once. */
static enum MHD_Result
serve_kv_compute(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;
    json_t *j = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, NULL);
    const json_t *rid = json_object_get(j, "request_id");
    const json_t *pt = json_object_get(j, "prompt_tokens");
    json_int_t n = json_integer_value(pt);
    bool ok;
    unsigned fail;

    ok = json_is_string(rid) && json_string_length(rid) > 0 &&
         json_string_length(rid) <= ME_PD_ID_MAX && json_is_integer(pt) && n >= 1 &&
         n <= eng->cfg->max_model_len;
    json_decref(j);
    if (!ok)
        return reply_detail(req, conn, 400,
                            "the body must be {\"request_id\": a non-empty string, "
                            "\"prompt_tokens\": an integer in 1..max-model-len}");
    req->plan = (me_plan){.api = ME_API_COMPLETIONS,
                          .prompt_tokens = (unsigned)n,
                          .completion_tokens = 1,
                          .length = true,
                          .max_tokens = 1};
    fail = take_knobs(req);
    if (req->knobs.hang) {
        wait_client(req, WAIT_FOREVER);
        return MHD_NO;
    }
    if (!wait_client(req, req->knobs.slow_ms))
        return MHD_NO;
    if (fail != 0)
        return reply_fault(req, conn, fail);
    if (eng->sim != NULL) {
        /* No prompt text, so no block hashes: nothing of it is cached. */
        if (!sim_submit(req))
            return reply_detail(req, conn, 400, "prompt larger than the whole KV cache");
        if (!sim_wait(req, SIM_ALL))
            return MHD_NO;
    } else {
        if (!slot_acquire(req) || !wait_client(req, req->knobs.ttft_ms))
            return MHD_NO;
        first_token(req);
    }
    req->gen_done = true;
    pthread_mutex_lock(&eng->mu);
    eng->stats.kv_computed++;
    pthread_mutex_unlock(&eng->mu);
    return reply_json(
        req, conn, MHD_HTTP_OK,
        me_pd_kv_json(eng->engine_id, req->plan.prompt_tokens, eng->cfg->kv_block_size));
}

/* POST /abort_request {"rid": id} (SGLang's name): frees the KV a prefill
 * holds under <id>, as a gateway does when the decode failed. */
static enum MHD_Result
serve_abort(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;
    json_t *j = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, NULL);
    const json_t *rid = json_object_get(j, "rid");
    char msg[ME_PD_ID_MAX + 64];
    gw_err rc;

    if (!json_is_string(rid) || json_string_length(rid) == 0) {
        json_decref(j);
        return reply_json(
            req, conn, 400,
            json_pack("{s:b, s:s}", "success", 0, "message", "'rid' must be a non-empty string"));
    }
    pthread_mutex_lock(&eng->mu);
    rc = me_pd_store_drop(eng->kv, json_string_value(rid), mono_ns());
    if (rc == GW_OK)
        eng->stats.kv_aborted++;
    pthread_mutex_unlock(&eng->mu);
    snprintf(msg, sizeof(msg), "no KV held for rid '%.256s'", json_string_value(rid));
    json_decref(j);
    if (rc != GW_OK)
        return reply_json(req, conn, MHD_HTTP_NOT_FOUND,
                          json_pack("{s:b, s:s}", "success", 0, "message", msg));
    return reply_json(req, conn, MHD_HTTP_OK, json_pack("{s:b}", "success", 1));
}

/* The force_ttft_ms / force_tpot_ms / force_tokens_per_s knobs, applied
 * right before a render (eng->mu held): one observation each, and the
 * generation counter grown by the rate over the time since the last render,
 * so a scraper's deltas see exactly the forced values. */
static void
feed_forced(me_engine *eng)
{
    const me_knobs *k = &eng->knobs;
    uint64_t now = mono_ns();

    if (k->force_ttft_ms >= 0)
        me_metrics_ttft(eng->met, 0, k->force_ttft_ms / 1000.0);
    if (k->force_tpot_ms >= 0)
        me_metrics_tpot(eng->met, 0, k->force_tpot_ms / 1000.0, 1);
    if (k->force_tokens_per_s >= 0) {
        double whole;

        eng->token_carry += k->force_tokens_per_s * (double)(now - eng->token_last_ns) / 1e9;
        whole = floor(eng->token_carry);
        eng->token_carry -= whole;
        if (whole > 0)
            me_metrics_generation_tokens(eng->met, 0, (unsigned)fmin(whole, 4e9));
    }
    eng->token_last_ns = now;
}

static enum MHD_Result
serve_metrics(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;
    const me_cfg *cfg = eng->cfg;
    size_t nm = cfg->nmodels;
    unsigned *running = gw_xcalloc(nm, sizeof(*running));
    unsigned *waiting = gw_xcalloc(nm, sizeof(*waiting));
    me_gauges g = {.running = running,
                   .waiting = waiting,
                   .block_size = cfg->kv_block_size,
                   .num_gpu_blocks = cfg->kv_blocks,
                   .prefix_caching = eng->sim != NULL,
                   .max_lora = cfg->max_loras};
    me_sim_stats k = {0};
    me_lora_series *lora = NULL;
    gw_buf out;
    gw_err rc;

    gw_buf_init(&out, METRICS_OUT_MAX);
    pthread_mutex_lock(&eng->mu);
    eng->stats.metrics_scrapes++;
    feed_forced(eng);
    if (cfg->enable_lora || eng->nloras > 0 || eng->nhist > 0) {
        lora_hist_touch(eng, (double)wall_ms() / 1000.0);
        lora = gw_xcalloc(eng->nhist, sizeof(*lora));
        for (size_t i = 0; i < eng->nhist; i++)
            lora[i] = (me_lora_series){eng->hist[i].running, eng->hist[i].waiting, eng->hist[i].ts};
        g.lora_on = true;
        g.lora = lora;
        g.nlora = eng->nhist;
    }
    if (eng->sim != NULL)
        me_sim_get_stats(eng->sim, &k);
    for (size_t i = 0; i < nm; i++) {
        unsigned r = eng->model_running[i];
        unsigned w = eng->model_waiting[i];

        if (eng->sim != NULL)
            me_sim_model_counts(eng->sim, i, &r, &w);
        running[i] = eng->knobs.force_running >= 0 ? (unsigned)eng->knobs.force_running : r;
        waiting[i] = eng->knobs.force_waiting >= 0 ? (unsigned)eng->knobs.force_waiting : w;
    }
    /* With --kv-sim: blocks referenced by running sequences over capacity,
     * as vLLM computes it. Without: the KV cache "fills" with the running
     * batch. A forced value wins either way. */
    if (eng->knobs.force_kv_usage >= 0)
        g.kv_usage = eng->knobs.force_kv_usage;
    else if (eng->sim != NULL)
        g.kv_usage = (double)k.blocks_used / (double)k.blocks_total;
    else
        g.kv_usage = (double)eng->running / (double)cfg->max_running;
    rc = me_metrics_render(eng->met, (const char *const *)cfg->models, &g, &out);
    pthread_mutex_unlock(&eng->mu);
    free(lora);
    free(running);
    free(waiting);
    if (rc != GW_OK) {
        gw_log(GW_LOG_ERR, "ME-METRICS-RENDER", "port=%u err=%s", eng->port, gw_strerror(rc));
        gw_buf_fini(&out);
        return reply_error(req, conn, 500, "metrics too large");
    }
    return reply(req, conn, MHD_HTTP_OK, CT_PROM, gw_buf_steal(&out));
}

/* GET /v1/models: base models, then this port's adapters (vLLM's cards). */
static enum MHD_Result
serve_models(me_req *req, struct MHD_Connection *conn)
{
    me_engine *eng = req->eng;
    me_lora_card *cards;
    size_t n;
    char *body;

    pthread_mutex_lock(&eng->mu);
    eng->stats.model_listings++;
    n = eng->nloras;
    cards = gw_xcalloc(n ? n : 1, sizeof(*cards));
    for (size_t i = 0; i < n; i++)
        cards[i] = (me_lora_card){eng->loras[i].name, eng->loras[i].path, eng->loras[i].created};
    body = me_gen_models(eng->cfg, eng->started, cards, n);
    pthread_mutex_unlock(&eng->mu);
    free(cards);
    return reply(req, conn, MHD_HTTP_OK, CT_JSON, body);
}

/* vLLM's /v1/load_lora_adapter {"lora_name","lora_path"[,"load_inplace"]}
 * and /v1/unload_lora_adapter {"lora_name"}: plain-text success messages,
 * error bodies and statuses as vLLM answers them. */
static enum MHD_Result
serve_lora(me_req *req, struct MHD_Connection *conn, bool load)
{
    me_engine *eng = req->eng;
    json_t *j = json_loadb(req->body.data != NULL ? req->body.data : "", req->body.len, 0, NULL);
    const char *name = json_string_value(json_object_get(j, "lora_name"));
    const char *path = json_string_value(json_object_get(j, "lora_path"));
    bool inplace = json_is_true(json_object_get(j, "load_inplace"));
    char msg[ME_LORA_NAME_MAX + 200];
    unsigned status = 200;
    size_t left;
    me_lora *l;

    if (!json_is_object(j)) {
        json_decref(j);
        return reply_error(req, conn, 400, "Input should be a valid dictionary");
    }
    if (load && (name == NULL || name[0] == '\0' || path == NULL || path[0] == '\0')) {
        json_decref(j);
        return reply_error(req, conn, 400, "Both 'lora_name' and 'lora_path' must be provided.");
    }
    if (!load && (name == NULL || name[0] == '\0')) {
        json_decref(j);
        return reply_error(req, conn, 400,
                           "'lora_name' needs to be provided to unload a LoRA adapter.");
    }
    if (strlen(name) > ME_LORA_NAME_MAX) {
        json_decref(j);
        return reply_error(req, conn, 400, "'lora_name' is too long");
    }
    pthread_mutex_lock(&eng->mu);
    l = lora_find(eng, name);
    if (load) {
        bool base = false;
        for (size_t i = 0; i < eng->cfg->nmodels; i++)
            base = base || strcmp(eng->cfg->models[i], name) == 0;
        if (base) {
            status = 400;
            snprintf(msg, sizeof(msg),
                     "The lora adapter name '%s' conflicts with a served base model.", name);
        } else if (l != NULL && !inplace) {
            status = 400;
            snprintf(msg, sizeof(msg), "The lora adapter '%s' has already been loaded.", name);
        } else if (l != NULL) {
            free(l->path);
            l->path = gw_xstrdup(path);
        } else if (eng->nloras >= LORA_MAX) {
            status = 400;
            snprintf(msg, sizeof(msg), "mock engine: at most %d adapters", LORA_MAX);
        } else {
            lora_add(eng, name, strlen(name), path);
        }
        if (status == 200)
            snprintf(msg, sizeof(msg), "Success: LoRA adapter '%s' added successfully.", name);
    } else if (l == NULL) {
        status = 404;
        snprintf(msg, sizeof(msg), "The lora adapter '%s' cannot be found.", name);
    } else {
        size_t at = (size_t)(l - eng->loras);
        free(l->name);
        free(l->path);
        memmove(l, l + 1, (eng->nloras - at - 1) * sizeof(*l));
        eng->nloras--;
        snprintf(msg, sizeof(msg), "Success: LoRA adapter '%s' removed successfully.", name);
    }
    left = eng->nloras;
    pthread_mutex_unlock(&eng->mu);
    if (status == 200)
        gw_log(GW_LOG_INFO, "ME-LORA", "port=%u op=%s adapters=%zu", eng->port,
               load ? "load" : "unload", left);
    json_decref(j);
    if (status != 200)
        return reply_error(req, conn, status, msg);
    return reply(req, conn, MHD_HTTP_OK, CT_TEXT, gw_xstrdup(msg));
}

static enum MHD_Result
dispatch(me_req *req, struct MHD_Connection *conn, const char *url, const char *method)
{
    me_engine *eng = req->eng;

    if (req->tracked)
        record(req, conn, url, method);
    if (strncmp(url, "/v1", 3) == 0 && (url[3] == '/' || url[3] == '\0') &&
        strcmp(method, "OPTIONS") != 0 && !authorized(eng->cfg, conn))
        return reply_const(req, conn, MHD_HTTP_UNAUTHORIZED, BODY_401);
    if (req->too_large)
        return reply_error(req, conn, 413, "request body too large");

    switch (req->rt) {
    case RT_CHAT:
        return serve_generate(req, conn, ME_API_CHAT);
    case RT_COMPLETIONS:
        return serve_generate(req, conn, ME_API_COMPLETIONS);
    case RT_EMBEDDINGS:
        return serve_generate(req, conn, ME_API_EMBEDDINGS);
    case RT_MODELS:
        return serve_models(req, conn);
    case RT_LOAD_LORA:
        return serve_lora(req, conn, true);
    case RT_UNLOAD_LORA:
        return serve_lora(req, conn, false);
    case RT_HEALTH:
        pthread_mutex_lock(&eng->mu);
        eng->stats.health_checks++;
        pthread_mutex_unlock(&eng->mu);
        return reply(req, conn, MHD_HTTP_OK, NULL, NULL);
    case RT_METRICS:
        return serve_metrics(req, conn);
    case RT_MOCK_REQUESTS:
        return serve_requests(req, conn, method);
    case RT_MOCK_STATS:
        return serve_stats(req, conn);
    case RT_MOCK_FAULT:
        return serve_fault(req, conn, method);
    case RT_MOCK_RESET:
        return serve_reset(req, conn);
    case RT_RESET_PREFIX:
        /* vLLM's dev-mode endpoint: empty 200. Without --kv-sim there is
         * no cache to reset. */
        pthread_mutex_lock(&eng->mu);
        if (eng->sim != NULL)
            me_sim_reset_cache(eng->sim, false);
        pthread_mutex_unlock(&eng->mu);
        return reply(req, conn, MHD_HTTP_OK, NULL, NULL);
    case RT_KV_PULL:
    case RT_KV_COMPUTE:
    case RT_ABORT:
        /* Only a prefill holds KV; elsewhere these paths do not exist. */
        if (eng->cfg->pd_role != ME_PD_PREFILL)
            break;
        if (req->rt == RT_KV_PULL)
            return serve_kv_pull(req, conn, url);
        return req->rt == RT_ABORT ? serve_abort(req, conn) : serve_kv_compute(req, conn);
    case RT_BAD_METHOD:
        return reply_const(req, conn, MHD_HTTP_METHOD_NOT_ALLOWED, BODY_405);
    case RT_NOT_FOUND:
        break;
    }
    return reply_const(req, conn, MHD_HTTP_NOT_FOUND, BODY_404);
}

/* ---- MHD callbacks ----------------------------------------------------- */

static route
find_route(const char *url, const char *method)
{
    bool path_known = false;

    for (size_t i = 0; i < GW_ARRAY_LEN(routes); i++) {
        if (strcmp(url, routes[i].path) != 0)
            continue;
        if (strcmp(method, routes[i].method) == 0)
            return routes[i].rt;
        path_known = true;
    }
    /* /_mock/kv/<id>: the id is the rest of the (unescaped) path. */
    if (!path_known && strncmp(url, KV_PREFIX, strlen(KV_PREFIX)) == 0 &&
        url[strlen(KV_PREFIX)] != '\0')
        return strcmp(method, "GET") == 0 ? RT_KV_PULL : RT_BAD_METHOD;
    return path_known ? RT_BAD_METHOD : RT_NOT_FOUND;
}

static me_req *
req_new(me_engine *eng, struct MHD_Connection *conn, const char *url, const char *method)
{
    me_req *req = gw_xcalloc(1, sizeof(*req));
    const union MHD_ConnectionInfo *ci;

    req->eng = eng;
    req->rt = find_route(url, method);
    req->tracked = strncmp(url, "/_mock/", 7) != 0 && strcmp(url, "/health") != 0 &&
                   strcmp(url, "/metrics") != 0 && req->rt != RT_MODELS &&
                   req->rt != RT_RESET_PREFIX;
    req->t0_ns = mono_ns();
    req->ts_ms = wall_ms();
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    req->fd = ci != NULL ? ci->connect_fd : -1;
    gw_buf_init(&req->body, eng->cfg->max_body_bytes);
    gw_buf_init(&req->out, 0); /* sized by start_stream */
    if (req->tracked) {
        pthread_mutex_lock(&eng->mu);
        eng->stats.received++;
        eng->stats.in_flight++;
        pthread_mutex_unlock(&eng->mu);
    }
    return req;
}

static void
req_free(me_req *req)
{
    gw_buf_fini(&req->body);
    gw_buf_fini(&req->out);
    me_stream_fini(&req->st);
    me_pd_decode_fini(&req->dec);
    free(req->hashes);
    free(req);
}

static enum MHD_Result
on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    me_engine *eng = cls;
    me_req *req = *con_cls;
    enum MHD_Result ret;

    (void)version;
    if (req == NULL) {
        *con_cls = req_new(eng, conn, url, method);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!req->too_large && gw_buf_append(&req->body, upload_data, *upload_data_size) != GW_OK) {
            req->too_large = true;
            gw_buf_fini(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    ret = dispatch(req, conn, url, method);
    if (gw_log_enabled(GW_LOG_DEBUG))
        log_dispatch(req, method, url, ret == MHD_YES);
    return ret;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    me_engine *eng = cls;
    me_req *req = *con_cls;
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;

    (void)conn;
    if (req == NULL)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&eng->mu);
    if (req->seq != NULL) {
        size_t m = req->plan.model;

        /* Latency in simulated time, like the simulator's other metrics. */
        if (ok && req->gen_done) {
            me_metrics_e2e(eng->met, m, me_seq_latency_s(req->seq));
            me_metrics_finished(eng->met, m, req->plan.length ? ME_FINISH_LENGTH : ME_FINISH_STOP);
        } else {
            me_metrics_finished(eng->met, m, ME_FINISH_ABORT);
        }
        me_sim_release(eng->sim, req->seq);
        req->seq = NULL;
    }
    if (req->holds_slot) {
        size_t m = req->plan.model;

        eng->running--;
        eng->model_running[m]--;
        pthread_cond_signal(&eng->slot_cv);
        if (ok && req->gen_done) {
            me_metrics_e2e(eng->met, m, secs_since(req->t0_ns));
            me_metrics_finished(eng->met, m, req->plan.length ? ME_FINISH_LENGTH : ME_FINISH_STOP);
        } else {
            me_metrics_finished(eng->met, m, ME_FINISH_ABORT);
        }
    }
    if (req->tracked) {
        eng->stats.in_flight--;
        if (ok)
            eng->stats.completed++;
        else if (req->server_cut)
            eng->stats.aborted++;
        else
            eng->stats.cancelled++;
    }
    pthread_mutex_unlock(&eng->mu);
    if (!ok && req->tracked)
        gw_log(GW_LOG_INFO, "ME-REQ-END", "port=%u toe=%d cut=%d", eng->port, (int)toe,
               req->server_cut);
    req_free(req);
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    const union MHD_ConnectionInfo *ci;
    int one = 1;

    (void)cls;
    (void)socket_context;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    /* Small SSE chunks and small JSON replies must leave at once. */
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci != NULL)
        (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* MHD's diagnostics, mostly about connections we closed on purpose. The
 * format attribute tells the compiler <fmt> is a printf format from MHD. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    char q[600];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    gw_log(GW_LOG_INFO, "ME-MHD", "msg=%s", gw_log_q(q, sizeof(q), line));
}

/* ---- lifecycle --------------------------------------------------------- */

/* Binds and listens on <host>:<port> ourselves rather than letting MHD do
 * it, so the bound port (port 0 = kernel-chosen) is known before MHD starts
 * any thread that reads it. Returns the socket, or -1 (logged). */
static int
listen_on(const char *host, uint16_t port, uint16_t *bound, bool *v6)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char pstr[8];
    char q[128];
    int one = 1;
    int fd = -1;
    int err;
    int rc;

    snprintf(pstr, sizeof(pstr), "%u", port);
    rc = getaddrinfo(host, pstr, &hints, &ai);
    if (rc != 0) {
        gw_log(GW_LOG_ERR, "ME-LISTEN-ADDR", "host=%s err=%s", gw_log_q(q, sizeof(q), host),
               gw_log_q(q, sizeof(q), gai_strerror(rc)));
        return -1;
    }
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        err = errno;
        gw_log_errno(GW_LOG_ERR, err, "ME-LISTEN-SOCKET", "port=%u", port);
        goto fail;
    }
    /* SO_REUSEADDR only: SO_REUSEPORT would let two mocks share a port. */
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        err = errno;
        gw_log_errno(GW_LOG_ERR, err, "ME-LISTEN-BIND", "host=%s port=%u",
                     gw_log_q(q, sizeof(q), host), port);
        goto fail;
    }
    *v6 = ss.ss_family == AF_INET6;
    *bound = ntohs(*v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                       : ((struct sockaddr_in *)&ss)->sin_port);
    freeaddrinfo(ai);
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

/* The PD identity of a freshly bound engine: its engine id, the host its
 * kv_transfer_params advertise, and (prefill role) its KV store. A wildcard
 * listen address is advertised as loopback, which a decode can dial. */
static void
pd_setup(me_engine *eng)
{
    const me_cfg *cfg = eng->cfg;
    const char *host = cfg->host;

    if (cfg->engine_id != NULL)
        gw_strlcpy(eng->engine_id, cfg->engine_id, sizeof(eng->engine_id));
    else
        snprintf(eng->engine_id, sizeof(eng->engine_id), "mock-%u", eng->port);
    if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    gw_strlcpy(eng->kv_host, host, sizeof(eng->kv_host));
    if (cfg->pd_role == ME_PD_PREFILL)
        eng->kv = me_pd_store_new(eng->engine_id, (uint64_t)cfg->kv_ttl_ms * 1000000ULL);
    if (cfg->pd_role == ME_PD_DECODE)
        eng->http = me_pd_client_new(KV_IDLE_MAX);
}

gw_err
me_engine_start(const me_cfg *cfg, uint16_t port, me_engine **out)
{
    me_engine *eng = gw_xcalloc(1, sizeof(*eng));
    pthread_condattr_t ca;
    unsigned flags;
    bool v6 = false;
    char qid[ME_PD_ID_MAX + 8];
    int fd;

    eng->cfg = cfg;
    eng->started = (long)time(NULL);
    atomic_init(&eng->stopping, false);
    atomic_init(&eng->id_seq, 0);
    pthread_mutex_init(&eng->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&eng->slot_cv, &ca);
    pthread_condattr_destroy(&ca);
    eng->knobs = cfg->knobs;
    eng->model_running = gw_xcalloc(cfg->nmodels, sizeof(*eng->model_running));
    eng->model_waiting = gw_xcalloc(cfg->nmodels, sizeof(*eng->model_waiting));
    eng->met = me_metrics_new(cfg->nmodels);
    if (cfg->record_max > 0)
        eng->log = me_reqlog_new(cfg->record_max);
    eng->token_last_ns = mono_ns();
    lora_load_startup(eng);
    if (cfg->kv_sim) {
        eng->sim = me_sim_new(cfg, cfg->nmodels, &eng->mu, eng->met);
        if (me_sim_start(eng->sim) != GW_OK)
            goto fail;
    }

    fd = listen_on(cfg->host, port, &eng->port, &v6);
    if (fd < 0)
        goto fail;
    snprintf(eng->port_str, sizeof(eng->port_str), "%u", eng->port);
    pd_setup(eng);
    eng->id_salt = mix64(((uint64_t)eng->port << 48) ^ wall_ms() ^ (uint64_t)(uintptr_t)eng);

    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* The logger must be the first option, or MHD reports the ones before it
     * on stderr by itself. A started daemon owns <fd> and closes it in
     * MHD_stop_daemon; if the start fails the socket is still ours. */
    eng->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, eng, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, eng,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, eng,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, eng, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024), MHD_OPTION_END);
    if (eng->mhd == NULL) {
        close(fd);
        gw_log(GW_LOG_ERR, "ME-LISTEN-FAIL", "port=%u msg=\"cannot start daemon\"", eng->port);
        goto fail;
    }
    gw_log(GW_LOG_NOTICE, "ME-LISTEN", "port=%u models=%zu pd_role=%s engine_id=%s", eng->port,
           cfg->nmodels, me_pd_role_name(cfg->pd_role), gw_log_q(qid, sizeof(qid), eng->engine_id));
    *out = eng;
    return GW_OK;
fail:
    me_engine_free(eng);
    return GW_EIO;
}

uint16_t
me_engine_port(const me_engine *eng)
{
    return eng->port;
}

void
me_engine_shutdown(me_engine *eng)
{
    atomic_store(&eng->stopping, true);
    pthread_mutex_lock(&eng->mu);
    pthread_cond_broadcast(&eng->slot_cv);
    pthread_mutex_unlock(&eng->mu);
}

void
me_engine_free(me_engine *eng)
{
    if (eng == NULL)
        return;
    me_engine_shutdown(eng);
    if (eng->mhd != NULL)
        MHD_stop_daemon(eng->mhd); /* joins every connection thread */
    /* After the daemon: every request has released its sequence. */
    me_sim_free(eng->sim);
    me_pd_store_free(eng->kv);
    me_pd_client_free(eng->http); /* after the daemon: no fetch runs */
    me_reqlog_free(eng->log);
    me_metrics_free(eng->met);
    lora_clear(eng);
    free(eng->model_running);
    free(eng->model_waiting);
    pthread_cond_destroy(&eng->slot_cv);
    pthread_mutex_destroy(&eng->mu);
    free(eng);
}
