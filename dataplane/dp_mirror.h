/* dp_mirror: Llumnix's traffic mirror (seed 004, docs/traffic.md). A JSON
 * file ({"Enable","Target","Ratio","Timeout","Authorization","EnableLog"};
 * default /mnt/mirror.json) is re-read every --mirror-reload-interval and
 * applied without restart; a bad file keeps the last good config. Without a
 * file of its own (path "" or the file missing) the worker applies the
 * controller's config from the snapshot (dp_mirror_set_snapshot). A share
 * of the parsed requests (Ratio percent) is copied, fire and forget, to
 * Target + the request path on its own curl multi: the copy owns its body
 * and headers, has its own deadline (Timeout, else the upstream timeout),
 * never waits for or changes the client's response, and outlives it. At
 * most <max_inflight> copies run at once; beyond, copies are dropped and
 * counted. Logs carry metadata only (id, path, status), never bodies.
 * Loop thread only. */
#ifndef DP_MIRROR_H
#define DP_MIRROR_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_curlm.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"
#include "gw/gw_mirror_cfg.h"
#include "gw/gw_metrics.h"

typedef struct dp_mirror dp_mirror;

typedef struct dp_mirror_opts {
    const char *path;            /* the JSON file; "" = none of its own */
    uint64_t reload_interval_ms; /* how often it is checked */
    uint32_t max_inflight;       /* copies running at once at most */
    uint64_t connect_timeout_ms;
    uint64_t default_timeout_ms; /* when Timeout is 0 */
    /* llmgw_worker_mirror_requests_total{result}: sent, completed, failed, dropped */
    gw_metric_fam *requests;
    /* llmgw_worker_mirror_config_reloads_total{result}: applied, invalid, missing */
    gw_metric_fam *reloads;
} dp_mirror_opts;

/* Reads the file once now, then every reload interval. */
GW_MUST_CHECK gw_err dp_mirror_new(gw_loop *loop, const dp_mirror_opts *opts, dp_mirror **out);
/* Cancels the copies still running. NULL ok. */
void dp_mirror_free(dp_mirror *m);

/* Re-reads the file now (the timer does this every interval). An empty
 * path: nothing to read. */
void dp_mirror_reload(dp_mirror *m);

/* The controller's mirror config from a snapshot (its JSON text; NULL: the
 * snapshot carries none). It applies while the worker has no mirror file of
 * its own (path empty or the file missing); an invalid one keeps the last
 * good config (logged, counted as reloads{invalid}). Unchanged text is a
 * no-op. */
void dp_mirror_set_snapshot(dp_mirror *m, const char *text);

/* Whether a request should be copied: enabled and <rnd> (uniform in
 * [0, 2^32)) falls within Ratio percent. */
bool dp_mirror_wants(const dp_mirror *m, uint32_t rnd);

/* Starts a copy of a request: POST <body> to Target + <path> with <hdrs>
 * (taken; Authorization replaced when the config sets one). Never blocks;
 * a copy over the in-flight cap is dropped (counted). */
void dp_mirror_send(dp_mirror *m, const char *path, const char *id, const char *body, size_t len,
                    struct curl_slist *hdrs);

bool dp_mirror_enabled(const dp_mirror *m);
uint32_t dp_mirror_inflight(const dp_mirror *m);

#endif
