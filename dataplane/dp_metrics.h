/* dp_metrics: the worker's Prometheus families, registered once at start
 * and bumped on the request path through cached handles. Loop thread only. */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include "gw/gw_metrics.h"

#include "dp_ctx.h"
#include "dp_quota.h"

struct dp_metrics {
    gw_metrics *reg;
    gw_metric_fam *requests;        /* llmgw_worker_requests_total{model,code} */
    gw_metric_fam *duration;        /* llmgw_worker_request_duration_seconds{model} */
    gw_metric_fam *ttft;            /* llmgw_worker_time_to_first_byte_seconds{model} */
    gw_metric_fam *routing;         /* llmgw_worker_routing_decisions_total{model,strategy} */
    gw_metric_fam *routing_time;    /* llmgw_worker_routing_latency_seconds */
    gw_metric_fam *fallbacks;       /* llmgw_worker_routing_fallbacks_total{strategy,reason} */
    gw_metric_fam *access_dropped;  /* llmgw_worker_access_log_dropped_total */
    gw_metric_fam *upstream_errors; /* llmgw_worker_upstream_errors_total{reason} */
    gw_metric_fam *retries;         /* llmgw_worker_upstream_retries_total */
    gw_metric_fam *ejections;       /* llmgw_worker_endpoint_ejections_total */
    gw_metric_fam *rejected;        /* llmgw_worker_rejected_requests_total{reason} */
    gw_metric_fam *tokens;          /* llmgw_worker_tokens_total{model,kind} */
    gw_metric_fam *snapshots;       /* llmgw_worker_snapshots_applied_total */
    gw_metric_fam *cancelled;       /* llmgw_worker_client_cancelled_total */
    gw_metric_fam *conn_refused;    /* llmgw_worker_client_connections_refused_total */
    /* prefix-cache */
    gw_metric_fam *
        pfx_decisions; /* aibrix_prefix_cache_routing_decisions_total{model,match_percent_bucket} */
    gw_metric_fam *pfx_imbalance;   /* aibrix_prefix_cache_load_imbalance_total{model} */
    gw_metric_fam *pfx_selections;  /* llmgw_worker_prefix_cache_selections_total{model,outcome} */
    gw_metric_fam *pfx_evictions;   /* llmgw_worker_prefix_cache_evictions_total */
    gw_metric_fam *pfx_sync_errors; /* llmgw_worker_prefix_sync_errors_total */
    gw_metric_fam *pfx_sync_blocks; /* llmgw_worker_prefix_sync_blocks_total{direction} */
    uint64_t pfx_evictions_seen;    /* evictions already added to pfx_evictions */
    /* quotas (dp_quota) */
    gw_metric_fam *quota_rejected;   /* llmgw_worker_ratelimit_rejections_total{limit} */
    gw_metric_fam *quota_redis_errs; /* llmgw_worker_ratelimit_redis_errors_total */
    gw_metric_fam *quota_local;      /* llmgw_worker_ratelimit_local_decisions_total */
    dp_quota_stats quota_seen;       /* stats already added to the two above */
    /* pd */
    gw_metric_fam *pd_prefills;     /* llmgw_worker_pd_prefill_requests_total{result} */
    gw_metric_fam *pd_prefill_time; /* llmgw_worker_pd_prefill_duration_seconds */
    gw_metric_fam *pd_decisions;    /* llmgw_worker_pd_decisions_total{how} */
    gw_metric_fam *pd_aborts;       /* llmgw_worker_pd_kv_aborts_total{result} */
    gw_metric_fam *pd_redos;        /* llmgw_worker_pd_redone_total */
    gw_metric_fam *pd_decode_time;  /* llmgw_worker_pd_decode_duration_seconds */
    gw_metric_fam *pd_selected;     /* llmgw_worker_pd_selected_total{role,endpoint} */
    /* traffic splitting, 429 queue, mirror (docs/traffic.md) */
    gw_metric_fam *traffic_routes;           /* llmgw_worker_traffic_routes_total{entry} */
    gw_metric_fam *traffic_fallbacks;        /* llmgw_worker_traffic_fallbacks_total{entry} */
    gw_metric_fam *retry_queue;              /* llmgw_worker_retry_queue_events_total{event} */
    gw_metric_fam *mirror_requests;          /* llmgw_worker_mirror_requests_total{result} */
    gw_metric_fam *traffic_snapshot_invalid; /* llmgw_worker_traffic_snapshot_invalid_total */
    gw_metric_fam *mirror_reloads;           /* llmgw_worker_mirror_config_reloads_total{result} */
    /* seed 002's observability checklist, by the names it gives */
    gw_metric_fam *gw_requests;       /* aibrix_gateway_requests_total{model,code} */
    gw_metric_fam *gw_routing_time;   /* aibrix_gateway_routing_latency_seconds{model} */
    gw_metric_fam *gw_rps_rejections; /* aibrix_gateway_model_rps_rejections_total{model} */
    gw_metric_fam *gw_prefill_errors; /* aibrix_gateway_pd_prefill_errors_total{reason} */
    gw_metric_fam *overflows;         /* llmgw_worker_upstream_overflows_total{model} */
};

/* Registers every family and the live gauges that read <ctx>. */
dp_metrics *dp_metrics_new(dp_ctx *ctx);
void dp_metrics_free(dp_metrics *m);

/* A request ended with HTTP <code> (its text) for <model> ("" before a
 * model was resolved); <err_header> is the x-error-* header the gateway
 * answered with, or NULL. */
void dp_metrics_request_done(dp_metrics *m, const char *model, const char *code,
                             const char *err_header);
/* Resolving and picking an endpoint for <model> took <seconds>. */
void dp_metrics_routing_time(dp_metrics *m, const char *model, double seconds);
/* A pd prefill call failed with <reason> (connect, timeout, status). */
void dp_metrics_prefill_failed(dp_metrics *m, const char *reason);

#endif
