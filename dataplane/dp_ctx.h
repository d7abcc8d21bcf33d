/* dp_ctx: the worker's process state, one per process, made in main and
 * passed down (STYLE §2). The config is read-only after start; routing state
 * comes only from snapshots. Loop thread only. */
#ifndef DP_CTX_H
#define DP_CTX_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_curlm.h"
#include "gw/gw_httpd.h"
#include "gw/gw_loop.h"
#include "gw/gw_metrics.h"

#include "dp_auth.h"
#include "dp_load.h"
#include "dp_snap.h"
#include "dp_traffic.h"

typedef struct dp_cfg {
    char *host;
    uint16_t port;
    uint16_t admin_port;   /* /metrics, /healthz, /readyz of this process alone; 0 = off */
    char *controller_pub;  /* nng SUB dials this (snapshots, load) */
    char *controller_rep;  /* nng REQ dials this (full snapshot on request) */
    char *controller_pull; /* nng PUSH dials this (reports) */
    char *routing_algorithm;
    int64_t max_body_bytes;
    int64_t max_relay_bytes;
    uint64_t connect_timeout_ms;
    uint64_t first_byte_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t upstream_timeout_ms;
    uint64_t client_timeout_ms;
    uint64_t drain_timeout_ms;
    uint64_t report_interval_ms;
    int64_t retries;
    int64_t eject_after;    /* dp_outlier: consecutive failures; 0 = off */
    uint64_t eject_time_ms; /* first ejection */
    uint64_t eject_max_ms;  /* longest ejection */
    int64_t conn_limit;
    int64_t max_host_conns;
    int64_t max_parallel_requests; /* per endpoint (dp_cbreaker) */
    int64_t max_pending_requests;  /* per endpoint, beyond max_host_conns (dp_cbreaker) */
    int64_t max_parallel_retries;  /* requests on a retry at once (dp_cbreaker) */
    char *log_level;
    char *access_log; /* "-" stdout, "off", or a file path */
    /* prefix-cache (dp_prefix, dp_strat_prefix_cache.c) */
    char *pfx_tokenizer;       /* only "character" */
    int64_t pfx_block_size;    /* bytes */
    int64_t pfx_block_number;  /* index capacity in blocks */
    int64_t pfx_hash_seed;     /* fixed, shared by every worker */
    int64_t pfx_max_prefix;    /* routing text bytes hashed at most */
    int64_t pfx_imbalance_abs; /* load-imbalance guard */
    double pfx_stddev_factor;  /* mean + k * sd load cap */
    int64_t pfx_min_match;     /* blocks */
    bool statesync;            /* AIBRIX_STATESYNC_ENABLED */
    char *redis_host;
    uint16_t redis_port;
    char *redis_password;
    char *pfx_sync_stream;   /* Redis stream key */
    int64_t pfx_sync_maxlen; /* XADD MAXLEN ~ */
    uint64_t pfx_sync_interval_ms;
    uint64_t redis_timeout_ms;
    /* access and quotas (dp_auth, dp_quota) */
    bool require_api_key;
    char *gateway_key; /* AIBRIX_AUTH_BEARER_TOKEN; secret */
    bool allow_unknown_users;
    uint64_t quota_timeout_ms;
    char *quota_prefix;
    /* prefill/decode disaggregation (dp_pd, dp_pd_body) */
    char *pd_protocol; /* --pd-disagg-protocol */
    bool pd_staged;    /* --separate-pd-scheduling */
    int64_t pd_prefill_timeout_s;
    int64_t pd_prefill_spread;
    int64_t pd_decode_spread;
    /* TLS termination (both or neither) */
    char *tls_cert_file;
    char *tls_key_file;
    /* traffic splitting, 429 retry queue, mirror (dp_traffic, dp_retry_queue,
     * dp_mirror; docs/traffic.md) */
    char *route_policy;      /* --route-policy */
    char *route_config;      /* --route-config (JSON; holds api keys: secret) */
    int64_t retry_max_count; /* --retry-max-count */
    bool rq_enabled;         /* --fallback-retry-queue-enabled */
    int64_t rq_size;
    int64_t rq_workers;
    int64_t rq_max_count; /* -1: until the client leaves */
    int64_t rq_init_delay_ms;
    int64_t rq_max_delay_ms;
    char *mirror_path; /* --mirror-config-path; "" = no file of its own */
    uint64_t mirror_reload_ms;
    int64_t mirror_max_inflight;
} dp_cfg;

/* The passive-ejection settings of <c> (dp_outlier). */
static inline dp_outlier_cfg
dp_outlier_cfg_of(const dp_cfg *c)
{
    return (dp_outlier_cfg){.after = (uint32_t)c->eject_after,
                            .base_us = c->eject_time_ms * 1000,
                            .max_us = c->eject_max_ms * 1000};
}

typedef struct dp_sync dp_sync;
typedef struct dp_prefix dp_prefix;
typedef struct dp_prefix_sync dp_prefix_sync;
typedef struct dp_metrics dp_metrics;
typedef struct dp_req dp_req;
typedef struct dp_plan_cache dp_plan_cache;
typedef struct dp_vtc dp_vtc;
typedef struct dp_quota dp_quota;
typedef struct dp_rq dp_rq;
typedef struct dp_mirror dp_mirror;

typedef struct dp_ctx {
    dp_cfg cfg;
    gw_loop *loop;
    gw_httpd *httpd;
    gw_httpd *admin_httpd; /* --admin-port; NULL when off */
    gw_curlm *curlm;
    dp_sync *sync;
    dp_snap *snap;       /* current snapshot; NULL until the first arrives */
    dp_ep **snap_states; /* borrowed from snap */
    dp_load *load;
    dp_metrics *metrics;
    uint64_t rng;
    uint64_t worker_id;
    bool draining;
    uint64_t drain_deadline_ms;
    gw_timer *drain_timer;
    dp_req *reqs; /* every live proxied request (for drain) */
    uint32_t n_reqs;
    void **easy_pool; /* idle curl easy handles, reset, ready for reuse */
    uint32_t n_easy_pool;
    /* Routing (dp_route; freed by dp_route_fini). The scratch arrays only
     * grow, to the largest model's endpoint count, and are reused by every
     * request: nothing is allocated per pick. */
    uint32_t *scratch; /* candidate list */
    double *scores;    /* 2 * scratch_cap strategy scores */
    uint32_t scratch_cap;
    uint32_t ep_cap;           /* per-endpoint in-flight cap (dp_cbreaker); 0 = none */
    uint32_t retries_inflight; /* requests holding a retry slot (dp_cbreaker) */
    dp_plan_cache *plans;      /* compiled strategy strings (headers, ROUTING_ALGORITHM) */
    dp_vtc *vtc;               /* per-user token windows (vtc-basic); NULL until a `user` */
    /* prefix-cache: the index (NULL: none, nothing matches), its sync over
     * Redis (NULL unless AIBRIX_STATESYNC_ENABLED), and reused scratch: the
     * routing text of the request being parsed, its block hashes (valid
     * while pfx_stamp equals the route's stamp), the matches per candidate. */
    dp_prefix *prefix;
    dp_prefix_sync *psync;
    gw_buf pfx_text;
    uint64_t *pfx_hashes;
    uint32_t pfx_hash_cap;
    uint64_t pfx_stamp;
    uint32_t *pfx_match; /* scratch_cap entries */
    int32_t *pd_groups;  /* scratch_cap entries: dp_pd's roleset per candidate */
    dp_auth_cfg auth;
    dp_quota *quota;         /* RPM/TPM/RPS admission */
    uint32_t pd_outstanding; /* prefill calls in flight */
    int access_fd;           /* access log stream; -1 = off */
    gw_buf access_pending;   /* access log lines not yet written (dp_access) */
    gw_route_cfg traffic;    /* --route-policy/--route-config; GW_ROUTE_OFF when unset */
    dp_rq *rq;               /* the 429 retry queue; NULL unless enabled */
    dp_mirror *mirror;       /* always (the snapshot may carry a mirror config) */
} dp_ctx;

/* Installs <snap> as the current snapshot (takes the caller's ref). */
void dp_ctx_set_snapshot(dp_ctx *ctx, dp_snap *snap);

#endif
