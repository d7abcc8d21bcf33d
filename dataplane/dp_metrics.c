/* dp_metrics: worker metric families (see dp_metrics.h). Names carry the
 * llmgw_worker_ prefix; label sets are small and bounded (models come from
 * the snapshot, codes and reasons from fixed lists). */
#include "dp_metrics.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_mirror.h"
#include "dp_prefix.h"
#include "dp_prefix_sync.h"
#include "dp_retry_queue.h"

static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    30,   60,  120,  300};
static const double routing_buckets[] = {0.000005, 0.00001, 0.000025, 0.00005, 0.0001,
                                         0.00025,  0.0005,  0.001,    0.0025,  0.01};

static double
gauge_inflight(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->n_reqs;
}

static double
gauge_reserved(void *arg)
{
    dp_ctx *ctx = arg;
    return dp_load_total_inflight(ctx->load);
}

static double
gauge_snapshot_gen(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->snap ? (double)dp_snap_gen(ctx->snap) : 0;
}

static double
gauge_connections(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->httpd ? gw_httpd_connections(ctx->httpd) : 0;
}

static double
gauge_rq_waiting(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->rq ? dp_rq_waiting(ctx->rq) : 0;
}

static double
gauge_rq_running(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->rq ? dp_rq_running(ctx->rq) : 0;
}

static double
gauge_mirror_enabled(void *arg)
{
    dp_ctx *ctx = arg;
    return dp_mirror_enabled(ctx->mirror) ? 1 : 0;
}

static double
gauge_mirror_inflight(void *arg)
{
    dp_ctx *ctx = arg;
    return dp_mirror_inflight(ctx->mirror);
}

static double
gauge_draining(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->draining ? 1 : 0;
}

static double
gauge_pfx_blocks(void *arg)
{
    dp_ctx *ctx = arg;
    dp_prefix_stats st = {0};

    if (ctx->prefix != NULL)
        dp_prefix_stats_get(ctx->prefix, &st);
    return (double)st.blocks;
}

static double
gauge_pfx_capacity(void *arg)
{
    dp_ctx *ctx = arg;
    dp_prefix_stats st = {0};

    if (ctx->prefix != NULL)
        dp_prefix_stats_get(ctx->prefix, &st);
    return (double)st.capacity;
}

static double
gauge_pfx_memory(void *arg)
{
    dp_ctx *ctx = arg;
    dp_prefix_stats st = {0};

    if (ctx->prefix != NULL)
        dp_prefix_stats_get(ctx->prefix, &st);
    return (double)st.memory_bytes;
}

static double
gauge_pfx_sync_connected(void *arg)
{
    dp_ctx *ctx = arg;
    return dp_prefix_sync_connected(ctx->psync) ? 1 : 0;
}

/* At each scrape: the index's eviction count into its counter. */
static void
collect_prefix(gw_metrics *reg, void *arg)
{
    dp_ctx *ctx = arg;
    dp_prefix_stats st;
    (void)reg;

    if (ctx->prefix == NULL || ctx->metrics == NULL)
        return;
    dp_prefix_stats_get(ctx->prefix, &st);
    if (st.evictions > ctx->metrics->pfx_evictions_seen) {
        gw_counter_add(gw_metric_child0(ctx->metrics->pfx_evictions),
                       (double)(st.evictions - ctx->metrics->pfx_evictions_seen));
        ctx->metrics->pfx_evictions_seen = st.evictions;
    }
}

static double
gauge_pd_outstanding(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->pd_outstanding;
}

static const double pd_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

static double
gauge_quota_degraded(void *arg)
{
    dp_ctx *ctx = arg;
    return ctx->quota != NULL && dp_quota_degraded(ctx->quota) ? 1 : 0;
}

/* At each scrape: the limiter's counts into their counters. */
static void
collect_quota(gw_metrics *reg, void *arg)
{
    dp_ctx *ctx = arg;
    const dp_quota_stats *st;
    dp_quota_stats *seen;
    (void)reg;

    if (ctx->quota == NULL || ctx->metrics == NULL)
        return;
    st = dp_quota_get_stats(ctx->quota);
    seen = &ctx->metrics->quota_seen;
    gw_counter_add(gw_metric_child0(ctx->metrics->quota_redis_errs),
                   (double)(st->redis_errors - seen->redis_errors));
    gw_counter_add(gw_metric_child0(ctx->metrics->quota_local),
                   (double)(st->local_decisions - seen->local_decisions));
    *seen = *st;
}

dp_metrics *
dp_metrics_new(dp_ctx *ctx)
{
    dp_metrics *m = gw_xcalloc(1, sizeof(*m));
    gw_metric_fam *unused;
    gw_err rc = GW_OK;
    size_t nlb = sizeof(latency_buckets) / sizeof(latency_buckets[0]);

    m->reg = gw_metrics_new();
    /* Registration can only fail on a programming error (bad name): assert. */
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_requests_total",
                             "Client requests answered, by model and HTTP status code",
                             (const char *const[]){"model", "code", NULL}, &m->requests);
    rc |= gw_metrics_histogram(m->reg, "llmgw_worker_request_duration_seconds",
                               "Time from request arrival to the last response byte",
                               (const char *const[]){"model", NULL}, latency_buckets, nlb,
                               &m->duration);
    rc |=
        gw_metrics_histogram(m->reg, "llmgw_worker_time_to_first_byte_seconds",
                             "Time from request arrival to the upstream's response headers",
                             (const char *const[]){"model", NULL}, latency_buckets, nlb, &m->ttft);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_routing_decisions_total",
                             "Endpoints picked, by model and strategy",
                             (const char *const[]){"model", "strategy", NULL}, &m->routing);
    rc |= gw_metrics_histogram(
        m->reg, "llmgw_worker_routing_latency_seconds",
        "Time spent resolving the model and picking an endpoint", NULL, routing_buckets,
        sizeof(routing_buckets) / sizeof(routing_buckets[0]), &m->routing_time);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_routing_fallbacks_total",
                             "Picks where the strategy had no input for any candidate and "
                             "least-request decided, by strategy and reason (no_metrics, no_user, "
                             "no_session)",
                             (const char *const[]){"strategy", "reason", NULL}, &m->fallbacks);
    rc |=
        gw_metrics_counter(m->reg, "llmgw_worker_access_log_dropped_total",
                           "Access log lines that could not be written", NULL, &m->access_dropped);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_upstream_errors_total",
                             "Upstream failures, by reason (connect, timeout, reset, ...)",
                             (const char *const[]){"reason", NULL}, &m->upstream_errors);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_upstream_retries_total",
                             "Requests re-sent to another endpoint before any byte reached the "
                             "client",
                             NULL, &m->retries);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_endpoint_ejections_total",
                             "Endpoints taken out of routing after consecutive failures "
                             "(dp_outlier)",
                             NULL, &m->ejections);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_rejected_requests_total",
                             "Requests answered by the gateway with an error, by reason",
                             (const char *const[]){"reason", NULL}, &m->rejected);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_tokens_total",
                             "Tokens read from upstream usage, by model and kind (prompt, "
                             "completion)",
                             (const char *const[]){"model", "kind", NULL}, &m->tokens);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_snapshots_applied_total",
                             "Routing snapshots applied", NULL, &m->snapshots);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_client_cancelled_total",
                             "Requests whose client went away before the response ended", NULL,
                             &m->cancelled);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_client_connections_refused_total",
                             "Client connections over --conn-limit, answered 503 "
                             "x-error-conn-limit and closed",
                             NULL, &m->conn_refused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_inflight_requests",
                              "Proxied requests in flight in this worker", gauge_inflight, ctx,
                              &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_endpoint_reservations",
                              "In-flight slots this worker holds on engine endpoints (every "
                              "request releases its slot exactly once)",
                              gauge_reserved, ctx, &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_snapshot_generation",
                              "Generation of the routing snapshot in force (0 = none yet)",
                              gauge_snapshot_gen, ctx, &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_client_connections", "Open client connections",
                              gauge_connections, ctx, &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_draining",
                              "1 while the worker drains after SIGTERM", gauge_draining, ctx,
                              &unused);
    rc |= gw_metrics_counter(m->reg, "aibrix_prefix_cache_routing_decisions_total",
                             "prefix-cache picks, by model and the chosen endpoint's matched "
                             "share of the prompt's blocks (0, 1-25, 26-50, 51-75, 76-100 %)",
                             (const char *const[]){"model", "match_percent_bucket", NULL},
                             &m->pfx_decisions);
    rc |= gw_metrics_counter(m->reg, "aibrix_prefix_cache_load_imbalance_total",
                             "prefix-cache picks (alone or in a weighted list) decided by the "
                             "load-imbalance guard, by model",
                             (const char *const[]){"model", NULL}, &m->pfx_imbalance);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_prefix_cache_selections_total",
                             "prefix-cache (alone) picks by outcome: prefix_match, "
                             "least_request_fallback (no match), prefix_match_skipped (matches "
                             "too loaded)",
                             (const char *const[]){"model", "outcome", NULL}, &m->pfx_selections);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_prefix_cache_blocks",
                              "Blocks held by the prefix index", gauge_pfx_blocks, ctx, &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_prefix_cache_capacity_blocks",
                              "Blocks the prefix index holds at most "
                              "(AIBRIX_PREFIX_CACHE_BLOCK_NUMBER)",
                              gauge_pfx_capacity, ctx, &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_prefix_cache_memory_bytes",
                              "Memory allocated by the prefix index (its table appears on the "
                              "first insert)",
                              gauge_pfx_memory, ctx, &unused);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_prefix_cache_evictions_total",
                             "Blocks evicted from the full prefix index (CLOCK)", NULL,
                             &m->pfx_evictions);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_prefix_sync_connected",
                              "1 while the prefix index sync reaches Redis (0 when down or "
                              "AIBRIX_STATESYNC_ENABLED is off)",
                              gauge_pfx_sync_connected, ctx, &unused);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_prefix_sync_errors_total",
                             "Prefix sync failures: Redis connection attempts failed or lost, "
                             "commands failed, batches dropped, malformed entries",
                             NULL, &m->pfx_sync_errors);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_prefix_sync_blocks_total",
                             "Prefix index blocks published to (sent) and applied from "
                             "(received) the Redis Stream",
                             (const char *const[]){"direction", NULL}, &m->pfx_sync_blocks);
    gw_metrics_add_collector(m->reg, collect_prefix, ctx);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_ratelimit_rejections_total",
                             "Requests refused with 429 by a limit: rpm, tpm (per user) or "
                             "model_rps (a profile's requestsPerSecond)",
                             (const char *const[]){"limit", NULL}, &m->quota_rejected);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_ratelimit_degraded",
                              "1 while Redis is configured but unusable: limits use this "
                              "worker's local windows (each limit split across live workers)",
                              gauge_quota_degraded, ctx, &unused);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_ratelimit_redis_errors_total",
                             "Rate-limit Redis commands that failed or missed their deadline", NULL,
                             &m->quota_redis_errs);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_ratelimit_local_decisions_total",
                             "Admissions decided by local windows (Redis absent or down)", NULL,
                             &m->quota_local);
    gw_metrics_add_collector(m->reg, collect_quota, ctx);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_pd_prefill_requests_total",
                             "pd prefill calls by result: success, connect, timeout, status "
                             "(an engine error status)",
                             (const char *const[]){"result", NULL}, &m->pd_prefills);
    rc |= gw_metrics_histogram(m->reg, "llmgw_worker_pd_prefill_duration_seconds",
                               "pd prefill call duration (gateway-measured)", NULL, pd_buckets,
                               GW_ARRAY_LEN(pd_buckets), &m->pd_prefill_time);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_pd_outstanding_prefills",
                              "pd prefill calls in flight in this worker", gauge_pd_outstanding,
                              ctx, &unused);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_pd_decisions_total",
                             "pd pair choices by the step that decided: prefill_imbalance, "
                             "decode_imbalance, score",
                             (const char *const[]){"how", NULL}, &m->pd_decisions);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_pd_kv_aborts_total",
                             "Prefill KV releases (POST /abort_request) sent after a failed "
                             "decode, and those that failed",
                             (const char *const[]){"result", NULL}, &m->pd_aborts);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_pd_redone_total",
                             "pd requests whose prefill was redone on another endpoint after "
                             "their decode failed before answering (its KV may be gone)",
                             NULL, &m->pd_redos);
    rc |= gw_metrics_histogram(m->reg, "llmgw_worker_pd_decode_duration_seconds",
                               "pd decode duration, from the decode request to its end", NULL,
                               pd_buckets, GW_ARRAY_LEN(pd_buckets), &m->pd_decode_time);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_pd_selected_total",
                             "pd endpoints chosen, by role (prefill, decode) and address",
                             (const char *const[]){"role", "endpoint", NULL}, &m->pd_selected);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_traffic_routes_total",
                             "Requests by the --route-config entry that took them first (local, "
                             "external-<index>, or none: no prefix matched)",
                             (const char *const[]){"entry", NULL}, &m->traffic_routes);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_traffic_fallbacks_total",
                             "Fallback attempts, by the --route-config entry tried",
                             (const char *const[]){"entry", NULL}, &m->traffic_fallbacks);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_traffic_snapshot_invalid_total",
                             "Snapshot route configs that did not parse (the last good one stays)",
                             NULL, &m->traffic_snapshot_invalid);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_retry_queue_events_total",
                             "429 retry queue: queued, overflow (full), fired (retry sent), "
                             "success, exhausted",
                             (const char *const[]){"event", NULL}, &m->retry_queue);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_retry_queue_waiting",
                              "Requests waiting in the 429 retry queue", gauge_rq_waiting, ctx,
                              &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_retry_queue_running",
                              "429 retries running (at most --fallback-retry-worker-size)",
                              gauge_rq_running, ctx, &unused);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_mirror_requests_total",
                             "Mirror copies: sent, completed (any status below 500), failed "
                             "(error, timeout or 5xx), dropped (over --mirror-max-inflight)",
                             (const char *const[]){"result", NULL}, &m->mirror_requests);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_mirror_config_reloads_total",
                             "Mirror file reads that changed something: applied, invalid (the "
                             "last good config stays), missing (mirror off)",
                             (const char *const[]){"result", NULL}, &m->mirror_reloads);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_mirror_enabled",
                              "1 while the mirror config is enabled", gauge_mirror_enabled, ctx,
                              &unused);
    rc |= gw_metrics_gauge_fn(m->reg, "llmgw_worker_mirror_inflight", "Mirror copies running",
                              gauge_mirror_inflight, ctx, &unused);
    rc |= gw_metrics_counter(m->reg, "aibrix_gateway_requests_total",
                             "Client requests answered, by model and HTTP status code (seed 002's "
                             "name; the same count as llmgw_worker_requests_total)",
                             (const char *const[]){"model", "code", NULL}, &m->gw_requests);
    rc |= gw_metrics_histogram(m->reg, "aibrix_gateway_routing_latency_seconds",
                               "Time spent resolving the model and picking an endpoint, by model",
                               (const char *const[]){"model", NULL}, routing_buckets,
                               GW_ARRAY_LEN(routing_buckets), &m->gw_routing_time);
    rc |= gw_metrics_counter(m->reg, "aibrix_gateway_model_rps_rejections_total",
                             "Requests refused with 429 x-error-model-rps-exceeded (a profile's "
                             "requestsPerSecond), by model",
                             (const char *const[]){"model", NULL}, &m->gw_rps_rejections);
    rc |= gw_metrics_counter(m->reg, "aibrix_gateway_pd_prefill_errors_total",
                             "pd prefill calls that failed (log pd-prefill-request-error), by "
                             "reason: timeout, connect, status",
                             (const char *const[]){"reason", NULL}, &m->gw_prefill_errors);
    rc |= gw_metrics_counter(m->reg, "llmgw_worker_upstream_overflows_total",
                             "Requests refused with 503 x-error-upstream-overflow: every endpoint "
                             "of the model was at --max-parallel-requests / "
                             "--max-pending-requests",
                             (const char *const[]){"model", NULL}, &m->overflows);
    if (rc == GW_OK) {
        /* Fixed series present from the start (rate() and absent()). */
        gw_metric_child(m->gw_prefill_errors, "timeout");
        gw_metric_child(m->gw_prefill_errors, "connect");
        gw_metric_child(m->gw_prefill_errors, "status");
        gw_metric_fam_set_max_children(m->gw_requests, 10000);
        gw_metric_fam_set_max_children(m->gw_routing_time, 1000);
        gw_metric_fam_set_max_children(m->gw_rps_rejections, 1000);
        gw_metric_fam_set_max_children(m->overflows, 1000);
        gw_metric_fam_set_max_children(m->pfx_decisions, 1000);
        gw_metric_fam_set_max_children(m->pfx_imbalance, 1000);
        gw_metric_fam_set_max_children(m->pfx_selections, 1000);
        /* The strategy label can be a weighted list from a client header:
         * bound the series it can create. */
        gw_metric_fam_set_max_children(m->routing, 1000);
        gw_metric_fam_set_max_children(m->fallbacks, 1000);
        gw_metric_fam_set_max_children(m->pd_selected, 2000);
    }
    if (rc != GW_OK) {
        gw_log(GW_LOG_ALERT, "DP-METRICS-REGISTER", "msg=\"metric registration failed\"");
        abort();
    }
    return m;
}

void
dp_metrics_request_done(dp_metrics *m, const char *model, const char *code, const char *err_header)
{
    gw_counter_inc(gw_metric_child(m->gw_requests, model, code));
    if (err_header == NULL)
        return;
    if (strcmp(err_header, "x-error-model-rps-exceeded") == 0)
        gw_counter_inc(gw_metric_child(m->gw_rps_rejections, model));
    else if (strcmp(err_header, "x-error-upstream-overflow") == 0)
        gw_counter_inc(gw_metric_child(m->overflows, model));
}

void
dp_metrics_routing_time(dp_metrics *m, const char *model, double seconds)
{
    gw_histogram_observe(gw_metric_child0(m->routing_time), seconds);
    gw_histogram_observe(gw_metric_child(m->gw_routing_time, model), seconds);
}

void
dp_metrics_prefill_failed(dp_metrics *m, const char *reason)
{
    gw_counter_inc(gw_metric_child(m->pd_prefills, reason));
    gw_counter_inc(gw_metric_child(m->gw_prefill_errors, reason));
}

void
dp_metrics_free(dp_metrics *m)
{
    if (m == NULL)
        return;
    gw_metrics_free(m->reg);
    free(m);
}
