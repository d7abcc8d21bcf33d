/* ctl_metrics: the controller's Prometheus metrics (controller/README.md
 * lists them). Other modules report events through the small verbs below and
 * never touch the registry, so the metric names live in one file.
 *
 * Every function accepts a NULL <m> and then does nothing, so parsers and
 * unit tests can run without a registry. Loop thread only. */
#ifndef CTL_METRICS_H
#define CTL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

typedef struct ctl_metrics ctl_metrics;

/* <version> (copied) is exported as llmgw_controller_build_info{version}. */
ctl_metrics *ctl_metrics_new(const char *version);
void ctl_metrics_free(ctl_metrics *m);

/* A source refused its input (config_errors_total{source=<source>}). */
void ctl_metrics_config_error(ctl_metrics *m, const char *source);

/* A new snapshot was published: sets the generation, model and endpoint
 * gauges and counts the publish. <snap> is borrowed for the call. */
void ctl_metrics_snapshot(ctl_metrics *m, const pm_snapshot *snap);

/* One worker report was accepted / refused as malformed. */
void ctl_metrics_report(ctl_metrics *m);
void ctl_metrics_report_bad(ctl_metrics *m);

/* Number of live workers (sending reports within --worker-expiry). */
void ctl_metrics_workers(ctl_metrics *m, unsigned n);

/* How one fetch from an engine ended (scrapes_total{result},
 * adapter_refreshes_total{result}). */
typedef enum ctl_fetch_result {
    CTL_FETCH_OK = 0,     /* 200 and a usable body */
    CTL_FETCH_HTTP_ERROR, /* the engine answered with a status other than 200 */
    CTL_FETCH_TIMEOUT,    /* --scrape-timeout passed */
    CTL_FETCH_CONNECT,    /* no connection, or it broke before the answer was complete */
    CTL_FETCH_PARSE,      /* the body was over the cap or not a usable page */
    CTL_FETCH_COUNT,
} ctl_fetch_result;

/* Static label value of <r> ("ok", "http_error", ...). */
const char *ctl_fetch_result_name(ctl_fetch_result r);

/* One /metrics scrape ended with <r> after <seconds>. */
void ctl_metrics_scrape(ctl_metrics *m, ctl_fetch_result r, double seconds);

/* One /v1/models adapter refresh ended with <r>. */
void ctl_metrics_adapter_refresh(ctl_metrics *m, ctl_fetch_result r);

/* Sets endpoint_metrics_age_seconds{endpoint=<pod>} (creating the child). */
void ctl_metrics_endpoint_age(ctl_metrics *m, const char *pod, double seconds);

/* Removes the endpoint_metrics_age_seconds child of <pod> (it left). */
void ctl_metrics_endpoint_gone(ctl_metrics *m, const char *pod);

/* Endpoints whose engine numbers are unknown or stale right now. */
void ctl_metrics_stale_endpoints(ctl_metrics *m, unsigned n);

/* ---- Kubernetes (ctl_kube, ctl_kwatch, the writers, ctl_leader) ---- */

/* One API request ended: HTTP <status>, or 0 when no answer came. */
void ctl_metrics_kube_request(ctl_metrics *m, const char *verb, long status);
/* A LIST of <resource> completed. */
void ctl_metrics_kube_list(ctl_metrics *m, const char *resource);
/* A watch of <resource> ended: <reason> "timeout", "expired" or "error". */
void ctl_metrics_kube_watch_end(ctl_metrics *m, const char *resource, const char *reason);
/* A write of <kind> ended with <result> "ok", "conflict" or "error". */
void ctl_metrics_kube_write(ctl_metrics *m, const char *kind, const char *result);
/* Leadership changed to <leading>. */
void ctl_metrics_leader(ctl_metrics *m, bool leading);

/* ---- discovery stores (ctl_src_redis, ctl_src_etcd) ---- */

/* The state of <source>'s store: answering or not, and how many instances
 * it knows (<retained> of them gone from the store but not expired). */
void ctl_metrics_discovery(ctl_metrics *m, const char *source, bool up, size_t instances,
                           size_t retained);
/* One failed store operation of <source>. */
void ctl_metrics_discovery_error(ctl_metrics *m, const char *source);

/* Appends the Prometheus text exposition to <out>; GW_EFULL past its cap. */
GW_MUST_CHECK gw_err ctl_metrics_render(ctl_metrics *m, gw_buf *out);

#endif
