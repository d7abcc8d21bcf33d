/* ctl_metrics: the controller's metric families on a gw_metrics registry
 * (see ctl_metrics.h). Every family is registered up front and every fixed
 * label value is created at zero, so a scrape shows the whole set from the
 * first second (a counter that appears only after its first event breaks
 * rate() and alerting on absent series). */
#include "ctl_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_metrics.h"

struct ctl_metrics {
    gw_metrics *reg;
    gw_metric_fam *config_errors;
    gw_metric *gen, *published, *models, *ep_ready, *ep_draining, *ep_not_ready;
    gw_metric *reports, *reports_bad, *workers;
    gw_metric *scrapes[CTL_FETCH_COUNT];
    gw_metric *refreshes[CTL_FETCH_COUNT];
    gw_metric *scrape_seconds, *stale;
    gw_metric_fam *ep_age;
    gw_metric_fam *kube_requests, *kube_lists, *kube_watch_ends, *kube_writes;
    gw_metric *leader, *leader_transitions;
    gw_metric_fam *disc_up, *disc_errors, *disc_instances, *disc_retained;
    /* readiness churn: each endpoint's ready flag in the last snapshot,
     * sorted by key ("namespace/pod|model") */
    gw_metric_fam *readiness;
    struct ready_seen *seen;
    uint32_t n_seen;
};

struct ready_seen {
    char *key;
    bool ready;
};

static const char *const fetch_names[CTL_FETCH_COUNT] = {"ok", "http_error", "timeout", "connect",
                                                         "parse"};

const char *
ctl_fetch_result_name(ctl_fetch_result r)
{
    return r < CTL_FETCH_COUNT ? fetch_names[r] : "unknown";
}

/* Registers a family; registration only fails on a programming error (a
 * bad or duplicate name), so that is fatal. */
static gw_metric_fam *
reg(ctl_metrics *m, gw_metric_type type, const char *name, const char *help,
    const char *const *labels)
{
    gw_metric_fam *f = NULL;
    gw_err rc;

    /* Scrape durations: a loopback engine answers in about a millisecond,
     * one under load in tens; the top bounds sit around --scrape-timeout. */
    static const double seconds_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};

    if (type == GW_METRIC_COUNTER)
        rc = gw_metrics_counter(m->reg, name, help, labels, &f);
    else if (type == GW_METRIC_HISTOGRAM)
        rc = gw_metrics_histogram(m->reg, name, help, labels, seconds_b, GW_ARRAY_LEN(seconds_b),
                                  &f);
    else
        rc = gw_metrics_gauge(m->reg, name, help, labels, &f);
    if (rc != GW_OK) {
        gw_log(GW_LOG_ALERT, "CTL-METRICS-REGISTER", "name=%s err=%s", name, gw_strerror(rc));
        abort();
    }
    return f;
}

#define COUNTER   GW_METRIC_COUNTER
#define GAUGE     GW_METRIC_GAUGE
#define HISTOGRAM GW_METRIC_HISTOGRAM

ctl_metrics *
ctl_metrics_new(const char *version)
{
    static const char *const state_l[] = {"state", NULL};
    static const char *const source_l[] = {"source", NULL};
    static const char *const version_l[] = {"version", NULL};
    static const char *const result_l[] = {"result", NULL};
    static const char *const endpoint_l[] = {"endpoint", NULL};
    static const char *const verb_code_l[] = {"verb", "code", NULL};
    static const char *const resource_l[] = {"resource", NULL};
    static const char *const resource_reason_l[] = {"resource", "reason", NULL};
    static const char *const kind_result_l[] = {"kind", "result", NULL};
    static const char *const model_to_l[] = {"model", "to", NULL};
    ctl_metrics *m = gw_xcalloc(1, sizeof(*m));
    gw_metric_fam *f;

    m->reg = gw_metrics_new();
    f = reg(m, GAUGE, "llmgw_controller_snapshot_generation",
            "Generation of the current routing snapshot (0 before the first)", NULL);
    m->gen = gw_metric_child0(f);
    f = reg(m, COUNTER, "llmgw_controller_snapshots_published_total",
            "Snapshots published (new generations)", NULL);
    m->published = gw_metric_child0(f);
    f = reg(m, GAUGE, "llmgw_controller_models", "Models in the current snapshot", NULL);
    m->models = gw_metric_child0(f);
    f = reg(m, GAUGE, "llmgw_controller_endpoints",
            "Endpoints in the current snapshot by state (draining wins over ready)", state_l);
    m->ep_ready = gw_metric_child(f, "ready");
    m->ep_draining = gw_metric_child(f, "draining");
    m->ep_not_ready = gw_metric_child(f, "not_ready");
    m->config_errors = reg(m, COUNTER, "llmgw_controller_config_errors_total",
                           "Source inputs refused (the last good version stays)", source_l);
    gw_metric_child(m->config_errors, "file");
    gw_metric_child(m->config_errors, "endpoints");
    gw_metric_child(m->config_errors, "kubernetes-annotation");
    gw_metric_child(m->config_errors, "kubernetes-configmap");
    gw_metric_child(m->config_errors, "kubernetes-secret");
    gw_metric_child(m->config_errors, "mirror");
    /* Discovery stores (redis, etcd): children appear when the source starts. */
    m->disc_up = reg(m, GAUGE, "llmgw_controller_discovery_store_up",
                     "1 while the discovery store answers, 0 while the last known instance "
                     "list is served stale",
                     source_l);
    m->disc_errors = reg(m, COUNTER, "llmgw_controller_discovery_store_errors_total",
                         "Failed discovery store operations (refresh, watch, auth)", source_l);
    m->disc_instances =
        reg(m, GAUGE, "llmgw_controller_discovery_instances",
            "Registered instances known to the source (present and retained)", source_l);
    m->disc_retained = reg(m, GAUGE, "llmgw_controller_discovery_instances_retained",
                           "Instances gone from the store but kept until their registration "
                           "expires (store data loss)",
                           source_l);
    f = reg(m, COUNTER, "llmgw_controller_reports_received_total", "Worker load reports applied",
            NULL);
    m->reports = gw_metric_child0(f);
    f = reg(m, COUNTER, "llmgw_controller_reports_rejected_total",
            "Worker load reports that could not be decoded", NULL);
    m->reports_bad = gw_metric_child0(f);
    f = reg(m, GAUGE, "llmgw_controller_workers",
            "Workers that sent a report within --worker-expiry", NULL);
    m->workers = gw_metric_child0(f);
    f = reg(m, COUNTER, "llmgw_controller_scrapes_total",
            "Engine /metrics scrapes by outcome (ok, http_error, timeout, connect, parse)",
            result_l);
    for (int r = 0; r < CTL_FETCH_COUNT; r++)
        m->scrapes[r] = gw_metric_child(f, fetch_names[r]);
    f = reg(m, HISTOGRAM, "llmgw_controller_scrape_duration_seconds",
            "Time from starting an engine /metrics scrape to its end, whatever the outcome", NULL);
    m->scrape_seconds = gw_metric_child0(f);
    m->ep_age = reg(m, GAUGE, "llmgw_controller_endpoint_metrics_age_seconds",
                    "Seconds since the endpoint's last good /metrics scrape", endpoint_l);
    gw_metric_fam_set_max_children(m->ep_age, PM_MAX_ENDPOINTS);
    f = reg(m, GAUGE, "llmgw_controller_stale_endpoints",
            "Scraped endpoints whose engine numbers are unknown or older than "
            "--metrics-stale-after (published as unknown)",
            NULL);
    m->stale = gw_metric_child0(f);
    f = reg(m, COUNTER, "llmgw_controller_adapter_refreshes_total",
            "Engine /v1/models fetches (LoRA adapter discovery) by outcome", result_l);
    for (int r = 0; r < CTL_FETCH_COUNT; r++)
        m->refreshes[r] = gw_metric_child(f, fetch_names[r]);
    m->kube_requests = reg(m, COUNTER, "llmgw_controller_kube_requests_total",
                           "Kubernetes API requests by verb and HTTP status (\"error\": no "
                           "answer: connect, TLS, timeout)",
                           verb_code_l);
    m->kube_lists =
        reg(m, COUNTER, "llmgw_controller_kube_lists_total",
            "Completed Kubernetes LISTs (first sync and re-lists after 410)", resource_l);
    m->kube_watch_ends = reg(m, COUNTER, "llmgw_controller_kube_watch_ends_total",
                             "Kubernetes watches that ended, by reason (timeout: a clean end, "
                             "expired: 410, error)",
                             resource_reason_l);
    m->kube_writes = reg(m, COUNTER, "llmgw_controller_kube_writes_total",
                         "Kubernetes writes by kind (httproute, httproute_status, event, lease) "
                         "and result (ok, conflict, error)",
                         kind_result_l);
    f = reg(m, GAUGE, "llmgw_controller_leader",
            "1 while this controller leads (writes to Kubernetes and serves workers)", NULL);
    m->leader = gw_metric_child0(f);
    f = reg(m, COUNTER, "llmgw_controller_leader_transitions_total",
            "Times this controller became or stopped being the leader", NULL);
    m->leader_transitions = gw_metric_child0(f);
    m->readiness = reg(m, COUNTER, "llmgw_controller_endpoint_readiness_transitions_total",
                       "Endpoints that flipped between ready and not ready (pod readiness "
                       "churn: OOM, failing probes), by model and new state (ready, not_ready); "
                       "pods appearing or terminating are not counted",
                       model_to_l);
    gw_metric_fam_set_max_children(m->readiness, 2000);
    f = reg(m, GAUGE, "llmgw_controller_build_info", "Build information (always 1)", version_l);
    gw_gauge_set(gw_metric_child(f, version), 1);
    return m;
}

static void
free_seen(struct ready_seen *seen, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(seen[i].key);
    free(seen);
}

void
ctl_metrics_free(ctl_metrics *m)
{
    if (m == NULL)
        return;
    free_seen(m->seen, m->n_seen);
    gw_metrics_free(m->reg);
    free(m);
}

void
ctl_metrics_config_error(ctl_metrics *m, const char *source)
{
    if (m != NULL)
        gw_counter_inc(gw_metric_child(m->config_errors, source));
}

/* "namespace/pod|model": an endpoint's identity across snapshots. */
static char *
endpoint_key(const pm_endpoint *ep)
{
    const char *ns = ep->ns ? ep->ns : "";
    size_t n = strlen(ns) + strlen(ep->pod) + strlen(ep->model) + 3;
    char *key = gw_xmalloc(n);

    snprintf(key, n, "%s/%s|%s", ns, ep->pod, ep->model);
    return key;
}

static int
cmp_seen(const void *a, const void *b)
{
    return strcmp(((const struct ready_seen *)a)->key, ((const struct ready_seen *)b)->key);
}

/* Counts the endpoints whose ready flag changed since the previous snapshot
 * (a terminating endpoint is leaving, not churning), then keeps this
 * snapshot's flags. O(n log n) per publish. */
static void
count_readiness_churn(ctl_metrics *m, const pm_snapshot *snap)
{
    struct ready_seen *now = gw_xcalloc(snap->n_endpoints + 1u, sizeof(*now));

    for (uint32_t i = 0; i < snap->n_endpoints; i++) {
        const pm_endpoint *ep = &snap->endpoints[i];
        now[i].key = endpoint_key(ep);
        now[i].ready = ep->ready;
    }
    qsort(now, snap->n_endpoints, sizeof(*now), cmp_seen);
    for (uint32_t i = 0; i < snap->n_endpoints; i++) {
        const pm_endpoint *ep = &snap->endpoints[i];
        struct ready_seen want = {.key = NULL}, *was;
        char *key;

        if (ep->draining || m->n_seen == 0)
            continue;
        key = endpoint_key(ep);
        want.key = key;
        was = bsearch(&want, m->seen, m->n_seen, sizeof(*m->seen), cmp_seen);
        if (was != NULL && was->ready != ep->ready)
            gw_counter_inc(
                gw_metric_child(m->readiness, ep->model, ep->ready ? "ready" : "not_ready"));
        free(key);
    }
    free_seen(m->seen, m->n_seen);
    m->seen = now;
    m->n_seen = snap->n_endpoints;
}

void
ctl_metrics_snapshot(ctl_metrics *m, const pm_snapshot *snap)
{
    unsigned ready = 0, draining = 0, not_ready = 0;

    if (m == NULL || snap == NULL)
        return;
    for (uint32_t i = 0; i < snap->n_endpoints; i++) {
        const pm_endpoint *ep = &snap->endpoints[i];
        if (ep->draining)
            draining++;
        else if (ep->ready)
            ready++;
        else
            not_ready++;
    }
    gw_gauge_set(m->gen, (double)snap->env.gen);
    gw_counter_inc(m->published);
    gw_gauge_set(m->models, snap->n_models);
    gw_gauge_set(m->ep_ready, ready);
    gw_gauge_set(m->ep_draining, draining);
    gw_gauge_set(m->ep_not_ready, not_ready);
    count_readiness_churn(m, snap);
}

void
ctl_metrics_report(ctl_metrics *m)
{
    if (m != NULL)
        gw_counter_inc(m->reports);
}

void
ctl_metrics_report_bad(ctl_metrics *m)
{
    if (m != NULL)
        gw_counter_inc(m->reports_bad);
}

void
ctl_metrics_workers(ctl_metrics *m, unsigned n)
{
    if (m != NULL)
        gw_gauge_set(m->workers, n);
}

void
ctl_metrics_scrape(ctl_metrics *m, ctl_fetch_result r, double seconds)
{
    if (m == NULL || r >= CTL_FETCH_COUNT)
        return;
    gw_counter_inc(m->scrapes[r]);
    gw_histogram_observe(m->scrape_seconds, seconds);
}

void
ctl_metrics_adapter_refresh(ctl_metrics *m, ctl_fetch_result r)
{
    if (m != NULL && r < CTL_FETCH_COUNT)
        gw_counter_inc(m->refreshes[r]);
}

void
ctl_metrics_endpoint_age(ctl_metrics *m, const char *pod, double seconds)
{
    if (m != NULL)
        gw_gauge_set(gw_metric_child(m->ep_age, pod), seconds);
}

void
ctl_metrics_endpoint_gone(ctl_metrics *m, const char *pod)
{
    if (m != NULL)
        (void)gw_metric_remove_child(m->ep_age, pod);
}

void
ctl_metrics_stale_endpoints(ctl_metrics *m, unsigned n)
{
    if (m != NULL)
        gw_gauge_set(m->stale, n);
}

void
ctl_metrics_kube_request(ctl_metrics *m, const char *verb, long status)
{
    char code[24];

    if (m == NULL)
        return;
    if (status > 0)
        snprintf(code, sizeof(code), "%ld", status);
    else
        snprintf(code, sizeof(code), "error");
    gw_counter_inc(gw_metric_child(m->kube_requests, verb, code));
}

void
ctl_metrics_kube_list(ctl_metrics *m, const char *resource)
{
    if (m != NULL)
        gw_counter_inc(gw_metric_child(m->kube_lists, resource));
}

void
ctl_metrics_kube_watch_end(ctl_metrics *m, const char *resource, const char *reason)
{
    if (m != NULL)
        gw_counter_inc(gw_metric_child(m->kube_watch_ends, resource, reason));
}

void
ctl_metrics_kube_write(ctl_metrics *m, const char *kind, const char *result)
{
    if (m != NULL)
        gw_counter_inc(gw_metric_child(m->kube_writes, kind, result));
}

void
ctl_metrics_leader(ctl_metrics *m, bool leading)
{
    if (m == NULL)
        return;
    gw_gauge_set(m->leader, leading ? 1 : 0);
    gw_counter_inc(m->leader_transitions);
}

gw_err
ctl_metrics_render(ctl_metrics *m, gw_buf *out)
{
    if (m == NULL)
        return GW_OK;
    return gw_metrics_render(m->reg, out);
}

void
ctl_metrics_discovery(ctl_metrics *m, const char *source, bool up, size_t instances,
                      size_t retained)
{
    if (m == NULL)
        return;
    gw_gauge_set(gw_metric_child(m->disc_up, source), up ? 1 : 0);
    gw_gauge_set(gw_metric_child(m->disc_instances, source), (double)instances);
    gw_gauge_set(gw_metric_child(m->disc_retained, source), (double)retained);
    gw_counter_add(gw_metric_child(m->disc_errors, source), 0);
}

void
ctl_metrics_discovery_error(ctl_metrics *m, const char *source)
{
    if (m == NULL)
        return;
    gw_counter_inc(gw_metric_child(m->disc_errors, source));
}
