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

#include "dp_load.h"
#include "dp_snap.h"

typedef struct dp_cfg {
    char *host;
    uint16_t port;
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
    int64_t conn_limit;
    int64_t max_host_conns;
    char *log_level;
    char *access_log; /* "-" stdout, "off", or a file path */
} dp_cfg;

typedef struct dp_sync dp_sync;
typedef struct dp_metrics dp_metrics;
typedef struct dp_req dp_req;
typedef struct dp_plan_cache dp_plan_cache;
typedef struct dp_vtc dp_vtc;

typedef struct dp_ctx {
    dp_cfg cfg;
    gw_loop *loop;
    gw_httpd *httpd;
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
    dp_plan_cache *plans;  /* compiled strategy strings (headers, ROUTING_ALGORITHM) */
    dp_vtc *vtc;           /* per-user token windows (vtc-basic); NULL until a `user` */
    int access_fd;         /* access log stream; -1 = off */
    gw_buf access_pending; /* access log lines not yet written (dp_access) */
} dp_ctx;

/* Installs <snap> as the current snapshot (takes the caller's ref). */
void dp_ctx_set_snapshot(dp_ctx *ctx, dp_snap *snap);

#endif
