/* ctl_metrics: the controller's metric families on a gw_metrics registry
 * (see ctl_metrics.h). Every family is registered up front and every fixed
 * label value is created at zero, so a scrape shows the whole set from the
 * first second (a counter that appears only after its first event breaks
 * rate() and alerting on absent series). */
#include "ctl_metrics.h"

#include <stdlib.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_metrics.h"

struct ctl_metrics {
    gw_metrics *reg;
    gw_metric_fam *config_errors;
    gw_metric *gen, *published, *models, *ep_ready, *ep_draining, *ep_not_ready;
    gw_metric *reports, *reports_bad, *workers;
};

/* Registers a family; registration only fails on a programming error (a
 * bad or duplicate name), so that is fatal. */
static gw_metric_fam *
reg(ctl_metrics *m, gw_metric_type type, const char *name, const char *help,
    const char *const *labels)
{
    gw_metric_fam *f = NULL;
    gw_err rc;

    if (type == GW_METRIC_COUNTER)
        rc = gw_metrics_counter(m->reg, name, help, labels, &f);
    else
        rc = gw_metrics_gauge(m->reg, name, help, labels, &f);
    if (rc != GW_OK) {
        gw_log(GW_LOG_ALERT, "CTL-METRICS-REGISTER", "name=%s err=%s", name, gw_strerror(rc));
        abort();
    }
    return f;
}

#define COUNTER GW_METRIC_COUNTER
#define GAUGE   GW_METRIC_GAUGE

ctl_metrics *
ctl_metrics_new(const char *version)
{
    static const char *const state_l[] = {"state", NULL};
    static const char *const source_l[] = {"source", NULL};
    static const char *const version_l[] = {"version", NULL};
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
    f = reg(m, COUNTER, "llmgw_controller_reports_received_total", "Worker load reports applied",
            NULL);
    m->reports = gw_metric_child0(f);
    f = reg(m, COUNTER, "llmgw_controller_reports_rejected_total",
            "Worker load reports that could not be decoded", NULL);
    m->reports_bad = gw_metric_child0(f);
    f = reg(m, GAUGE, "llmgw_controller_workers",
            "Workers that sent a report within --worker-expiry", NULL);
    m->workers = gw_metric_child0(f);
    f = reg(m, GAUGE, "llmgw_controller_build_info", "Build information (always 1)", version_l);
    gw_gauge_set(gw_metric_child(f, version), 1);
    return m;
}

void
ctl_metrics_free(ctl_metrics *m)
{
    if (m == NULL)
        return;
    gw_metrics_free(m->reg);
    free(m);
}

void
ctl_metrics_config_error(ctl_metrics *m, const char *source)
{
    if (m != NULL)
        gw_counter_inc(gw_metric_child(m->config_errors, source));
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

gw_err
ctl_metrics_render(ctl_metrics *m, gw_buf *out)
{
    if (m == NULL)
        return GW_OK;
    return gw_metrics_render(m->reg, out);
}
