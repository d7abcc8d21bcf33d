/* llmgw-worker: the data plane. Parses options, starts the HTTP front, the
 * curl multi and the controller link on one event loop, and drains on
 * SIGTERM: stop accepting, let in-flight requests finish up to
 * --drain-timeout, end the rest, exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "gw/gw_cfg.h"
#include "gw/gw_file.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_access.h"
#include "dp_cbreaker.h"
#include "dp_ctx.h"
#include "dp_front.h"
#include "dp_metrics.h"
#include "dp_mirror.h"
#include "dp_pd_body.h"
#include "dp_prefix.h"
#include "dp_prefix_sync.h"
#include "dp_proxy.h"
#include "dp_quota.h"
#include "dp_retry_queue.h"
#include "dp_route.h"
#include "dp_strategy.h"
#include "dp_sync.h"

#ifndef LLMGW_VERSION
#define LLMGW_VERSION "0.1.0"
#endif

/* Connections accepted past --conn-limit only to be refused with 503
 * (dp_front); a refusal takes one round trip, so a few suffice for bursts.
 * Past them, new connections wait in the listen backlog. A literal, for
 * the help text below. */
#define DP_CONN_REFUSE 64
#define DP_STR_(x)     #x
#define DP_STR(x)      DP_STR_(x)

static const gw_cfg_opt dp_opts[] = {
    GW_CFG_STR("host", "LLMGW_HOST", dp_cfg, host, "0.0.0.0", "Address to listen on for clients"),
    GW_CFG_U16("port", "LLMGW_PORT", dp_cfg, port, 8080, 1, 65535,
               "TCP port for client traffic (shared by every worker process via SO_REUSEPORT)"),
    GW_CFG_U16("admin-port", "LLMGW_ADMIN_PORT", dp_cfg, admin_port, 0, 0, 65535,
               "Port of this process's own /metrics, /healthz and /readyz (not shared: with "
               "several workers on one client port, scrape each here); 0 = off"),
    GW_CFG_STR("controller-pub", "LLMGW_CONTROLLER_PUB", dp_cfg, controller_pub,
               "tcp://127.0.0.1:7701", "Controller's PUB URL (snapshots and load)"),
    GW_CFG_STR("controller-rep", "LLMGW_CONTROLLER_REP", dp_cfg, controller_rep,
               "tcp://127.0.0.1:7702", "Controller's REP URL (full snapshot on request)"),
    GW_CFG_STR("controller-pull", "LLMGW_CONTROLLER_PULL", dp_cfg, controller_pull,
               "tcp://127.0.0.1:7703", "Controller's PULL URL (this worker's load reports)"),
    GW_CFG_STR("routing-algorithm", "ROUTING_ALGORITHM", dp_cfg, routing_algorithm, "",
               "Default strategy (a name or a weighted list name[:weight],...) when neither "
               "the routing-strategy header nor the model's profile sets one (empty: the "
               "gateway config's default, else random)"),
    GW_CFG_STR("access-log", "LLMGW_ACCESS_LOG", dp_cfg, access_log, "-",
               "Access log, one logfmt line per proxied request: '-' stdout, 'off', or a file "
               "path (opened with O_APPEND)"),
    GW_CFG_INT("max-body-bytes", "LLMGW_MAX_BODY_BYTES", dp_cfg, max_body_bytes, 4 << 20, 1024,
               (int64_t)1 << 30, "Largest request body accepted; larger ones get 413"),
    GW_CFG_INT("max-relay-bytes", "LLMGW_MAX_RELAY_BYTES", dp_cfg, max_relay_bytes, 1 << 20,
               64 << 10, (int64_t)1 << 30,
               "Response bytes buffered per request before the upstream is paused"),
    GW_CFG_MS("connect-timeout", "LLMGW_CONNECT_TIMEOUT", dp_cfg, connect_timeout_ms, 3000, 10,
              600000, "Upstream TCP connect timeout"),
    GW_CFG_MS("first-byte-timeout", "LLMGW_FIRST_BYTE_TIMEOUT", dp_cfg, first_byte_timeout_ms,
              120000, 10, 86400000, "Time allowed until the engine's response headers"),
    GW_CFG_MS("idle-timeout", "LLMGW_IDLE_TIMEOUT", dp_cfg, idle_timeout_ms, 120000, 10, 86400000,
              "Time allowed between two chunks of a response"),
    GW_CFG_MS("upstream-timeout", "LLMGW_UPSTREAM_TIMEOUT", dp_cfg, upstream_timeout_ms, 1800000,
              100, 86400000, "Whole-exchange limit for one upstream request"),
    GW_CFG_MS("client-timeout", "LLMGW_CLIENT_TIMEOUT", dp_cfg, client_timeout_ms, 120000, 1000,
              86400000, "Idle client connections are closed after this"),
    GW_CFG_MS("drain-timeout", "LLMGW_DRAIN_TIMEOUT", dp_cfg, drain_timeout_ms, 30000, 0, 3600000,
              "On SIGTERM, how long in-flight requests may take to finish"),
    GW_CFG_MS("report-interval", "LLMGW_REPORT_INTERVAL", dp_cfg, report_interval_ms, 100, 10,
              60000, "Period of load reports to the controller"),
    GW_CFG_INT("retries", "LLMGW_RETRIES", dp_cfg, retries, 2, 0, 7,
               "Extra endpoints tried when connecting fails (never after a response began)"),
    GW_CFG_INT("eject-after", "LLMGW_EJECT_AFTER", dp_cfg, eject_after, 5, 0, 1000,
               "Consecutive connect failures or first-byte timeouts that take an endpoint out "
               "of this worker's routing (0 = never)"),
    GW_CFG_MS("eject-time", "LLMGW_EJECT_TIME", dp_cfg, eject_time_ms, 10000, 10, 3600000,
              "First ejection's length; the n-th in a row lasts n times this"),
    GW_CFG_MS("eject-max-time", "LLMGW_EJECT_MAX_TIME", dp_cfg, eject_max_ms, 120000, 10, 86400000,
              "Longest ejection"),
    GW_CFG_INT("conn-limit", "LLMGW_CONN_LIMIT", dp_cfg, conn_limit, 10000, 1, 1000000,
               "Client connections served at once; up to " DP_STR(
                   DP_CONN_REFUSE) " more are answered 503 "
                                   "x-error-conn-limit and closed"),
    GW_CFG_INT("max-host-conns", "LLMGW_MAX_HOST_CONNS", dp_cfg, max_host_conns, 0, 0, 1000000,
               "Maximum connections per engine endpoint (0 = unlimited)"),
    GW_CFG_INT("max-parallel-requests", "LLMGW_MAX_PARALLEL_REQUESTS", dp_cfg,
               max_parallel_requests, 0, 0, 1000000,
               "Requests this process sends one engine endpoint at once; at the cap the router "
               "prefers another endpoint, and 503 x-error-upstream-overflow when all are at it "
               "(0 = unlimited)"),
    GW_CFG_INT("max-pending-requests", "LLMGW_MAX_PENDING_REQUESTS", dp_cfg, max_pending_requests,
               0, 0, 1000000,
               "Requests that may wait for one of an endpoint's --max-host-conns connections; "
               "beyond that it counts as at its cap (0 = unlimited)"),
    GW_CFG_INT("max-parallel-retries", "LLMGW_MAX_PARALLEL_RETRIES", dp_cfg, max_parallel_retries,
               0, 0, 1000000,
               "Requests of this process on a retry at once; beyond it a failed attempt is not "
               "retried (0 = unlimited)"),
    GW_CFG_STR("log-level", "LLMGW_LOG_LEVEL", dp_cfg, log_level, "notice",
               "alert, err, warn, notice, info or debug"),
    /* prefix-cache (docs/routing.md): AIBrix's env names and Helm defaults. */
    GW_CFG_STR("prefix-cache-tokenizer-type", "AIBRIX_PREFIX_CACHE_TOKENIZER_TYPE", dp_cfg,
               pfx_tokenizer, "character",
               "prefix-cache tokenizer: only 'character' (one token = one byte of the routing "
               "text)"),
    GW_CFG_INT("prefix-cache-block-size", "AIBRIX_PREFIX_CACHE_BLOCK_SIZE", dp_cfg, pfx_block_size,
               128, 1, 65536, "prefix-cache block size, in BYTES of routing text"),
    GW_CFG_INT("prefix-cache-block-number", "AIBRIX_PREFIX_CACHE_BLOCK_NUMBER", dp_cfg,
               pfx_block_number, 200000, 1024, 100000000,
               "Blocks the prefix index holds at most, all models together (about 30 bytes "
               "each while a model has at most 64 endpoints); CLOCK eviction beyond"),
    GW_CFG_INT("prefix-cache-hash-seed", "AIBRIX_PREFIX_CACHE_HASH_SEED", dp_cfg, pfx_hash_seed, 0,
               0, INT64_MAX,
               "Seed of the chained XXH64 block hashes; every worker and replica must use the "
               "same (AIBrix: random per process unless state sync is on)"),
    GW_CFG_INT("prefix-cache-max-prefix-bytes", "AIBRIX_PREFIX_CACHE_MAX_PREFIX_BYTES", dp_cfg,
               pfx_max_prefix, 65536, 1, 16 << 20,
               "Routing text hashed per request at most (llmgw's); the rest of a longer prompt "
               "is not hashed"),
    GW_CFG_INT(
        "prefix-cache-imbalance-abs-count",
        "AIBRIX_PREFIX_CACHE_POD_RUNNING_REQUEST_IMBALANCE_ABS_COUNT", dp_cfg, pfx_imbalance_abs,
        16, 0, 1000000,
        "prefix-cache, alone or in a weighted list: when in-flight requests differ by more than "
        "this across the candidates, only the least loaded are considered"),
    GW_CFG_DBL("prefix-cache-stddev-factor", "AIBRIX_PREFIX_CACHE_STANDARD_DEVIATION_FACTOR",
               dp_cfg, pfx_stddev_factor, 2.0, 0.0, 1000.0,
               "prefix-cache: a matching endpoint is taken only if its in-flight requests are "
               "at most mean + this * standard deviation"),
    GW_CFG_INT("prefix-cache-min-match-blocks", "AIBRIX_PREFIX_CACHE_MIN_MATCH_BLOCKS", dp_cfg,
               pfx_min_match, 1, 1, 1000000,
               "prefix-cache: blocks an endpoint must hold to count as a match (llmgw's; 1 = "
               "AIBrix)"),
    GW_CFG_BOOL("statesync-enabled", "AIBRIX_STATESYNC_ENABLED", dp_cfg, statesync, false,
                "Share the prefix index with every other worker through a Redis Stream"),
    GW_CFG_STR("redis-host", "REDIS_HOST", dp_cfg, redis_host, "localhost",
               "Redis host (name or address): fleet-wide rate-limit counters and state sync "
               "(empty: no Redis; limits use per-worker local windows)"),
    GW_CFG_U16("redis-port", "REDIS_PORT", dp_cfg, redis_port, 6379, 1, 65535, "Redis port"),
    GW_CFG_SECRET("redis-password", "REDIS_PASSWORD", dp_cfg, redis_password,
                  "Redis password (AUTH); empty: none"),
    GW_CFG_MS("redis-timeout", "LLMGW_REDIS_TIMEOUT", dp_cfg, redis_timeout_ms, 2000, 50, 600000,
              "Redis connect and command deadline (a missed one reconnects)"),
    GW_CFG_STR("prefix-sync-stream", "LLMGW_PREFIX_SYNC_STREAM", dp_cfg, pfx_sync_stream,
               "aibrix:prefix-sync", "Redis Stream key of the prefix index deltas"),
    GW_CFG_INT("prefix-sync-maxlen", "LLMGW_PREFIX_SYNC_MAXLEN", dp_cfg, pfx_sync_maxlen, 10000,
               100, 10000000,
               "Entries the stream keeps (XADD MAXLEN ~; each at most 16 KiB): what a starting "
               "worker can catch up on"),
    GW_CFG_MS("prefix-sync-interval", "LLMGW_PREFIX_SYNC_INTERVAL", dp_cfg, pfx_sync_interval_ms,
              10, 1, 10000, "Local inserts are batched this long into one stream entry"),
    /* access and quotas (docs/quotas.md) */
    GW_CFG_BOOL("require-api-key", "LLMGW_REQUIRE_API_KEY", dp_cfg, require_api_key, false,
                "Every request needs Authorization: Bearer <key> with a user's API key (or the "
                "gateway key); otherwise 401 invalid_api_key"),
    GW_CFG_SECRET("auth-bearer-token", "AIBRIX_AUTH_BEARER_TOKEN", dp_cfg, gateway_key,
                  "Gateway-wide API key (AIBrix's): when set, requests must carry it or a "
                  "user's key"),
    GW_CFG_BOOL("allow-unknown-users", "LLMGW_ALLOW_UNKNOWN_USERS", dp_cfg, allow_unknown_users,
                false,
                "When users are defined, let a `user` header that names none of them through "
                "without limits (default: 403 x-error-user)"),
    GW_CFG_MS("quota-redis-timeout", "LLMGW_QUOTA_REDIS_TIMEOUT", dp_cfg, quota_timeout_ms, 500, 10,
              60000,
              "Deadline of one rate-limit command; a miss decides that request with local "
              "windows and reconnects"),
    GW_CFG_STR("quota-key-prefix", "LLMGW_QUOTA_KEY_PREFIX", dp_cfg, quota_prefix, "llmgw:rl",
               "Prefix of the rate-limit counters' Redis keys"),
    /* prefill/decode disaggregation (docs/routing.md, pd) */
    GW_CFG_STR("pd-disagg-protocol", "LLMGW_PD_DISAGG_PROTOCOL", dp_cfg, pd_protocol, "",
               "pd forwarding: vllm-kvt, vllm-mooncake, or empty for AIBrix's vLLM default "
               "(non-streaming prefill, its kv_transfer_params copied into the decode)"),
    GW_CFG_BOOL("separate-pd-scheduling", "LLMGW_SEPARATE_PD_SCHEDULING", dp_cfg, pd_staged, false,
                "pd staged: choose the decode endpoint after the prefill finished (default: "
                "both at once, batched)"),
    GW_CFG_INT("prefill-request-timeout", "AIBRIX_PREFILL_REQUEST_TIMEOUT", dp_cfg,
               pd_prefill_timeout_s, 30, 1, 3600,
               "pd: seconds a prefill may take, retries on other prefill endpoints included"),
    GW_CFG_INT("prefill-load-imbalance-min-spread", "AIBRIX_PREFILL_LOAD_IMBALANCE_MIN_SPREAD",
               dp_cfg, pd_prefill_spread, 16, 0, 1000000,
               "pd: prefill in-flight spread above which the least loaded prefill wins"),
    GW_CFG_INT("decode-load-imbalance-min-spread", "AIBRIX_DECODE_LOAD_IMBALANCE_MIN_SPREAD",
               dp_cfg, pd_decode_spread, 16, 0, 1000000,
               "pd: decode in-flight spread from which the least loaded decode wins"),
    GW_CFG_STR("tls-cert-file", "LLMGW_TLS_CERT_FILE", dp_cfg, tls_cert_file, "",
               "PEM certificate (chain) file: serve HTTPS (with --tls-key-file)"),
    GW_CFG_STR("tls-key-file", "LLMGW_TLS_KEY_FILE", dp_cfg, tls_key_file, "",
               "PEM private key file of --tls-cert-file (unencrypted)"),
    /* traffic splitting, 429 retry queue, mirror (docs/traffic.md; Llumnix's
     * flags and defaults, seed 004) */
    GW_ROUTE_CFG_OPTS(dp_cfg),
    GW_CFG_INT("retry-max-count", "LLMGW_RETRY_MAX_COUNT", dp_cfg, retry_max_count, 0, 0, 7,
               "Extra local endpoints tried after a 5xx or a connect failure before the first "
               "byte (always a different endpoint), before the fallback chain"),
    GW_CFG_BOOL("fallback-retry-queue-enabled", "LLMGW_FALLBACK_RETRY_QUEUE_ENABLED", dp_cfg,
                rq_enabled, false,
                "Retry an external endpoint's 429 after a backoff in a bounded queue"),
    GW_CFG_INT("fallback-retry-queue-size", "LLMGW_FALLBACK_RETRY_QUEUE_SIZE", dp_cfg, rq_size, 100,
               1, 1000000,
               "Requests waiting in the 429 queue at most; beyond, the next fallback or 429 at "
               "once"),
    GW_CFG_INT("fallback-retry-worker-size", "LLMGW_FALLBACK_RETRY_WORKER_SIZE", dp_cfg, rq_workers,
               10, 1, 100000, "429 retries running at once at most"),
    GW_CFG_INT("fallback-retry-max-count", "LLMGW_FALLBACK_RETRY_MAX_COUNT", dp_cfg, rq_max_count,
               3, -1, 1000000,
               "429 retries per request and endpoint (0: none; -1: until the client leaves)"),
    GW_CFG_INT("fallback-retry-init-delay-ms", "LLMGW_FALLBACK_RETRY_INIT_DELAY_MS", dp_cfg,
               rq_init_delay_ms, 500, 1, 3600000, "First 429 backoff, doubled on each retry"),
    GW_CFG_INT("fallback-retry-max-delay-ms", "LLMGW_FALLBACK_RETRY_MAX_DELAY_MS", dp_cfg,
               rq_max_delay_ms, 5000, 1, 3600000, "Cap of the 429 backoff"),
    GW_MIRROR_CFG_OPTS(dp_cfg),
    GW_CFG_INT("mirror-max-inflight", "LLMGW_MIRROR_MAX_INFLIGHT", dp_cfg, mirror_max_inflight, 64,
               1, 100000, "Mirror copies running at once at most; beyond, copies are dropped"),
    GW_CFG_END,
};

static void
validate(const void *p, gw_cfg_errs *errs)
{
    const dp_cfg *cfg = p;
    dp_pd_proto proto;
    gw_lvl lvl;
    dp_plan plan;
    char why[200];

    if (!gw_log_parse_level(cfg->log_level, &lvl))
        gw_cfg_errorf(errs, "--log-level: unknown level '%s'", cfg->log_level);
    if (cfg->routing_algorithm[0] != '\0' &&
        !dp_plan_parse(cfg->routing_algorithm, &plan, why, sizeof(why)))
        gw_cfg_errorf(errs, "ROUTING_ALGORITHM / --routing-algorithm: %s", why);
    if (cfg->access_log[0] == '\0')
        gw_cfg_errorf(errs, "--access-log: '-' (stdout), 'off' or a file path");
    if (strcmp(cfg->pfx_tokenizer, "character") != 0)
        gw_cfg_errorf(errs,
                      "AIBRIX_PREFIX_CACHE_TOKENIZER_TYPE / --prefix-cache-tokenizer-type: '%s' "
                      "is not supported (only 'character')",
                      cfg->pfx_tokenizer);
    if (cfg->pfx_max_prefix < cfg->pfx_block_size)
        gw_cfg_errorf(errs, "AIBRIX_PREFIX_CACHE_MAX_PREFIX_BYTES must be at least "
                            "AIBRIX_PREFIX_CACHE_BLOCK_SIZE");
    if (cfg->statesync && cfg->redis_host[0] == '\0')
        gw_cfg_errorf(errs, "AIBRIX_STATESYNC_ENABLED needs REDIS_HOST");
    if (!dp_pd_proto_parse(cfg->pd_protocol, &proto))
        gw_cfg_errorf(errs, "--pd-disagg-protocol: '%s' is not vllm-kvt, vllm-mooncake or empty",
                      cfg->pd_protocol);
    if ((cfg->tls_cert_file[0] == '\0') != (cfg->tls_key_file[0] == '\0'))
        gw_cfg_errorf(errs, "--tls-cert-file and --tls-key-file go together");
    if (cfg->quota_prefix[0] == '\0')
        gw_cfg_errorf(errs, "--quota-key-prefix must not be empty");
    if (cfg->statesync && cfg->pfx_sync_stream[0] == '\0')
        gw_cfg_errorf(errs, "--prefix-sync-stream must not be empty");
    {
        gw_route_cfg t;
        char twhy[300];
        if (gw_route_cfg_parse(cfg->route_policy, cfg->route_config, &t, twhy, sizeof(twhy)) !=
            GW_OK)
            gw_cfg_errorf(errs, "%s", twhy);
        gw_route_cfg_fini(&t);
    }
    if (cfg->rq_init_delay_ms > cfg->rq_max_delay_ms)
        gw_cfg_errorf(errs, "--fallback-retry-init-delay-ms must not exceed "
                            "--fallback-retry-max-delay-ms");
}

/* Route config (validated above), the 429 queue and the mirror. */
static gw_err
start_traffic(dp_ctx *ctx)
{
    const dp_cfg *c = &ctx->cfg;
    char why[300];

    if (gw_route_cfg_parse(c->route_policy, c->route_config, &ctx->traffic, why, sizeof(why)) !=
        GW_OK)
        return GW_EINVAL;
    if (ctx->traffic.policy != GW_ROUTE_OFF)
        gw_log(GW_LOG_NOTICE, "DP-TRAFFIC", "policy=%s entries=%u", c->route_policy,
               ctx->traffic.n);
    if (c->rq_enabled && c->rq_max_count != 0) {
        dp_rq_cfg rc = {.size = (uint32_t)c->rq_size,
                        .workers = (uint32_t)c->rq_workers,
                        .init_ms = (uint64_t)c->rq_init_delay_ms,
                        .max_ms = (uint64_t)c->rq_max_delay_ms};
        ctx->rq = dp_rq_new(ctx->loop, &rc);
    }
    /* Always: without a file of its own the worker applies the controller's
     * mirror config from the snapshot. */
    {
        dp_mirror_opts mo = {.path = c->mirror_path,
                             .reload_interval_ms = c->mirror_reload_ms,
                             .max_inflight = (uint32_t)c->mirror_max_inflight,
                             .connect_timeout_ms = c->connect_timeout_ms,
                             .default_timeout_ms = c->upstream_timeout_ms,
                             .requests = ctx->metrics->mirror_requests,
                             .reloads = ctx->metrics->mirror_reloads};
        return dp_mirror_new(ctx->loop, &mo, &ctx->mirror);
    }
    return GW_OK;
}

/* The prefix index (always: its table is allocated on the first insert) and
 * its Redis sync when AIBRIX_STATESYNC_ENABLED. */
static gw_err
start_prefix(dp_ctx *ctx)
{
    const dp_cfg *c = &ctx->cfg;
    dp_prefix_cfg pc = {.block_size = (uint32_t)c->pfx_block_size,
                        .seed = (uint64_t)c->pfx_hash_seed,
                        .capacity = (uint32_t)c->pfx_block_number,
                        .max_blocks = (uint32_t)(c->pfx_max_prefix / c->pfx_block_size)};
    dp_prefix_sync_cfg sc = {.host = c->redis_host,
                             .port = c->redis_port,
                             .password = c->redis_password,
                             .stream = c->pfx_sync_stream,
                             .maxlen = c->pfx_sync_maxlen,
                             .interval_ms = c->pfx_sync_interval_ms,
                             .timeout_ms = c->redis_timeout_ms,
                             .block_ms = 1000,
                             .worker_id = ctx->worker_id,
                             .batch_max = 16 << 10};
    dp_prefix_sync_metrics sm = {.errors = gw_metric_child0(ctx->metrics->pfx_sync_errors),
                                 .sent = gw_metric_child(ctx->metrics->pfx_sync_blocks, "sent"),
                                 .received =
                                     gw_metric_child(ctx->metrics->pfx_sync_blocks, "received")};

    gw_buf_init(&ctx->pfx_text, (size_t)c->pfx_max_prefix);
    ctx->prefix = dp_prefix_new(&pc);
    if (!c->statesync)
        return GW_OK;
    gw_log(GW_LOG_NOTICE, "DP-PFX-SYNC-START", "redis=%s:%u stream=%s maxlen=%lld", c->redis_host,
           c->redis_port, c->pfx_sync_stream, (long long)c->pfx_sync_maxlen);
    return dp_prefix_sync_new(ctx->loop, ctx->prefix, &sc, &sm, &ctx->psync);
}

void
dp_ctx_set_snapshot(dp_ctx *ctx, dp_snap *snap)
{
    dp_snap_unref(ctx->snap);
    ctx->snap = snap;
    ctx->snap_states = NULL;
    if (snap != NULL) {
        ctx->snap_states = dp_snap_states(snap); /* borrowed; dp_snap owns it */
        if (dp_snap_has_limits(snap) && ctx->quota != NULL)
            dp_quota_need(ctx->quota);
    }
}

static void
on_drain_tick(gw_loop *loop, void *arg)
{
    dp_ctx *ctx = arg;

    if (ctx->n_reqs == 0) {
        gw_loop_stop(loop);
        return;
    }
    if (gw_now_ms() >= ctx->drain_deadline_ms) {
        gw_log(GW_LOG_WARN, "DP-DRAIN-DEADLINE", "aborted=%u", ctx->n_reqs);
        dp_proxy_abort_all(ctx);
        /* Give MHD a moment to flush the endings, then stop regardless. */
        ctx->drain_deadline_ms = UINT64_MAX;
        gw_timer_start(ctx->drain_timer, 200);
        return;
    }
    if (ctx->drain_deadline_ms == UINT64_MAX) {
        gw_loop_stop(loop);
        return;
    }
    gw_timer_start(ctx->drain_timer, 20);
}

static void
on_signal(gw_loop *loop, int signo, void *arg)
{
    dp_ctx *ctx = arg;

    if (ctx->draining) {
        if (signo == SIGINT) /* a second Ctrl-C: stop now */
            gw_loop_stop(loop);
        return;
    }
    gw_log(GW_LOG_NOTICE, "DP-DRAIN", "signal=%d inflight=%u timeout_ms=%llu", signo, ctx->n_reqs,
           (unsigned long long)ctx->cfg.drain_timeout_ms);
    ctx->draining = true;
    gw_httpd_quiesce(ctx->httpd);
    ctx->drain_deadline_ms = gw_now_ms() + ctx->cfg.drain_timeout_ms;
    gw_timer_start(ctx->drain_timer, 0);
}

/* Once per loop iteration: the access-log lines of every request that ended
 * in it go out in a few writes (see dp_access.h). */
static void
flush_access_log(gw_loop *loop, void *arg)
{
    dp_ctx *ctx = arg;
    unsigned dropped;
    (void)loop;

    if (ctx->access_pending.len == 0)
        return;
    dropped = dp_access_flush(ctx->access_fd, &ctx->access_pending);
    if (dropped > 0)
        gw_counter_add(gw_metric_child0(ctx->metrics->access_dropped), dropped);
}

/* Reads the TLS certificate and key named by the options into <cert> and
 * <key> (both NULL without TLS). A Secret mounted as files is read the same
 * way; the files are read once, at start. */
static gw_err
read_tls(const dp_cfg *c, char **cert, char **key)
{
    *cert = *key = NULL;
    if (c->tls_cert_file[0] == '\0')
        return GW_OK;
    if (gw_read_file_text(c->tls_cert_file, 1 << 20, cert) != GW_OK) {
        gw_log(GW_LOG_ERR, "DP-TLS-FILE", "file=%s msg=\"cannot read the certificate\"",
               c->tls_cert_file);
        return GW_EIO;
    }
    if (gw_read_file_text(c->tls_key_file, 1 << 20, key) != GW_OK) {
        gw_log(GW_LOG_ERR, "DP-TLS-FILE", "file=%s msg=\"cannot read the key\"", c->tls_key_file);
        GW_FREE(*cert);
        return GW_EIO;
    }
    return GW_OK;
}

static void
wipe_free(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

/* Every request has ended when teardown starts, so nothing is lost by
 * cutting it short; a pod must not hang in Terminating. A teardown stall
 * was seen once in e2e (inside a library close, not reproduced by hand):
 * this bounds it and says so (async-signal-safe: write and _exit only). */
static void
on_teardown_alarm(int signo)
{
    static const char msg[] = "lvl=warn id=DP-TEARDOWN-SLOW msg=\"teardown took over 5 s; "
                              "exiting without finishing it\"\n";
    (void)signo;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(0);
    _exit(0);
}

/* The --admin-port listener (dp_front_admin_handler), on --host, plain
 * HTTP. */
static gw_err
start_admin(dp_ctx *ctx)
{
    gw_httpd_opts o = {.host = ctx->cfg.host,
                       .port = ctx->cfg.admin_port,
                       .conn_limit = 64,
                       .conn_timeout_s = 10,
                       .handler = dp_front_admin_handler,
                       .handler_arg = ctx,
                       .completed = dp_front_completed,
                       .completed_arg = ctx};

    if (gw_httpd_start(ctx->loop, &o, &ctx->admin_httpd) != GW_OK) {
        gw_log(GW_LOG_ERR, "DP-ADMIN-LISTEN", "port=%u msg=\"cannot listen\"", ctx->cfg.admin_port);
        return GW_ESYS;
    }
    return GW_OK;
}

static uint64_t
random_u64(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = gw_wall_ms() ^ ((uint64_t)getpid() << 32);
    return v | 1;
}

int
main(int argc, char **argv)
{
    dp_ctx ctx = {0};
    gw_cfg_prog prog = {.name = "llmgw-worker",
                        .version = LLMGW_VERSION,
                        .summary = "llmgw data plane: OpenAI API, routing, proxying",
                        .validate = validate};
    gw_httpd_opts hopts;
    char *tls_cert = NULL, *tls_key = NULL;
    gw_err rc_start;
    char tag[32];
    int rc = 1;

    switch (gw_cfg_parse(dp_opts, &ctx.cfg, &prog, argc, argv)) {
    case GW_CFG_RUN:
        break;
    case GW_CFG_EXIT_OK:
        gw_cfg_free(dp_opts, &ctx.cfg);
        return 0;
    case GW_CFG_EXIT_ERR:
        gw_cfg_free(dp_opts, &ctx.cfg);
        return 1;
    }
    gw_log_parse_level(ctx.cfg.log_level, &gw_log_level);
    snprintf(tag, sizeof(tag), "dp.%d", (int)getpid());
    gw_log_set_proc(tag);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ctx.rng = random_u64();
    ctx.worker_id = random_u64();
    ctx.load = dp_load_new();
    ctx.access_fd = -1;
    if (dp_access_open(ctx.cfg.access_log, &ctx.access_fd) != GW_OK)
        goto out;
    if (gw_loop_new(&ctx.loop) != GW_OK)
        goto out;
    gw_buf_init(&ctx.access_pending, 64u << 10);
    if (gw_loop_add_prepare(ctx.loop, flush_access_log, &ctx) != GW_OK)
        goto out;
    /* Before any library starts a thread: a thread that does not block
     * SIGTERM would take it and die of the default action. */
    if (gw_loop_on_signal(ctx.loop, SIGTERM, on_signal, &ctx) != GW_OK ||
        gw_loop_on_signal(ctx.loop, SIGINT, on_signal, &ctx) != GW_OK)
        goto out;
    dp_auth_cfg_init(&ctx.auth, ctx.cfg.require_api_key, ctx.cfg.gateway_key,
                     ctx.cfg.allow_unknown_users);
    {
        dp_quota_cfg qc = {.redis_host = ctx.cfg.redis_host,
                           .redis_port = ctx.cfg.redis_port,
                           .redis_password = ctx.cfg.redis_password,
                           .timeout_ms = ctx.cfg.quota_timeout_ms,
                           .key_prefix = ctx.cfg.quota_prefix};
        ctx.quota = dp_quota_new(ctx.loop, &qc);
    }
    ctx.ep_cap = dp_cbreaker_cap(ctx.cfg.max_parallel_requests, ctx.cfg.max_host_conns,
                                 ctx.cfg.max_pending_requests);
    ctx.metrics = dp_metrics_new(&ctx);
    if (start_prefix(&ctx) != GW_OK)
        goto out;
    if (start_traffic(&ctx) != GW_OK)
        goto out;
    if (gw_curlm_new(ctx.loop, dp_proxy_on_curl_done, &ctx, ctx.cfg.max_host_conns, 4096,
                     &ctx.curlm) != GW_OK)
        goto out;
    if (read_tls(&ctx.cfg, &tls_cert, &tls_key) != GW_OK)
        goto out;
    hopts = (gw_httpd_opts){.host = ctx.cfg.host,
                            .port = ctx.cfg.port,
                            .reuseport = true,
                            .conn_limit = (unsigned)ctx.cfg.conn_limit,
                            .conn_refuse = DP_CONN_REFUSE,
                            .conn_timeout_s = (unsigned)(ctx.cfg.client_timeout_ms / 1000),
                            .handler = dp_front_handler,
                            .handler_arg = &ctx,
                            .completed = dp_front_completed,
                            .completed_arg = &ctx,
                            .tls_cert_pem = tls_cert,
                            .tls_key_pem = tls_key};
    rc_start = gw_httpd_start(ctx.loop, &hopts, &ctx.httpd);
    wipe_free(tls_key); /* the daemon holds its own copy */
    tls_key = NULL;
    if (rc_start != GW_OK)
        goto out;
    if (ctx.cfg.admin_port != 0 && start_admin(&ctx) != GW_OK)
        goto out;
    if (dp_sync_start(&ctx, &ctx.sync) != GW_OK)
        goto out;
    ctx.drain_timer = gw_timer_new(ctx.loop, on_drain_tick, &ctx);
    gw_log(GW_LOG_NOTICE, "DP-START", "port=%u tls=%d controller=%s worker_id=%016llx",
           gw_httpd_port(ctx.httpd), tls_cert != NULL, ctx.cfg.controller_pub,
           (unsigned long long)ctx.worker_id);
    if (gw_loop_run(ctx.loop) == GW_OK)
        rc = 0;
    gw_log(GW_LOG_NOTICE, "DP-STOP", "inflight=%u", ctx.n_reqs);
out:
    signal(SIGALRM, on_teardown_alarm);
    alarm(5);
    /* Order matters: the daemon's completion callbacks use curl and the
     * snapshot, so MHD goes first. */
    if (ctx.reqs != NULL)
        dp_proxy_abort_all(&ctx);
    gw_httpd_free(ctx.httpd);
    gw_httpd_free(ctx.admin_httpd);
    dp_mirror_free(ctx.mirror);
    dp_rq_free(ctx.rq);
    gw_route_cfg_fini(&ctx.traffic);
    dp_sync_free(ctx.sync);
    dp_prefix_sync_free(ctx.psync);
    dp_quota_free(ctx.quota);
    gw_timer_free(ctx.drain_timer);
    dp_proxy_pool_free(&ctx);
    gw_curlm_free(ctx.curlm);
    dp_ctx_set_snapshot(&ctx, NULL);
    if (ctx.metrics != NULL)
        flush_access_log(ctx.loop, &ctx); /* the last lines, from the teardown above */
    gw_buf_fini(&ctx.access_pending);
    dp_metrics_free(ctx.metrics);
    gw_loop_free(ctx.loop);
    dp_load_free(ctx.load);
    dp_route_fini(&ctx);
    dp_prefix_free(ctx.prefix);
    if (ctx.access_fd > STDERR_FILENO)
        close(ctx.access_fd);
    free(tls_cert);
    wipe_free(tls_key);
    gw_cfg_free(dp_opts, &ctx.cfg);
    curl_global_cleanup();
    return rc;
}
