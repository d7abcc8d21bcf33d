/* ctl_http: /healthz, /readyz, /metrics and /debug/snapshot (see
 * ctl_http.h). Every answer is computed and queued in the first access
 * callback: nothing here reads a request body, so MHD discards any that
 * arrives. /debug/snapshot is for people and tests, so it is indented JSON
 * built with jansson and never cached. */
#include "ctl_http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_buf.h"
#include "gw/gw_httpd.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_metrics.h"

struct ctl_http {
    ctl_ctx *ctx; /* borrowed */
    gw_httpd *httpd;
};

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"
/* /metrics and /debug/snapshot bodies; far above what the controller makes. */
#define BODY_MAX (64u << 20)

static json_t *
str_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* -1 marks "unknown" on the wire; JSON says null. */
static json_t *
num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

static json_t *
model_json(const pm_model *m)
{
    json_t *profiles = json_object();

    for (uint32_t i = 0; i < m->n_profiles; i++) {
        const pm_profile *p = &m->profiles[i];
        json_t *rc = json_null();
        if (p->routing_config_json != NULL) {
            json_t *parsed = json_loads(p->routing_config_json, 0, NULL);
            rc = parsed != NULL ? parsed : json_string(p->routing_config_json);
        }
        json_object_set_new(profiles, p->name,
                            json_pack("{s:o, s:I, s:o}", "routingStrategy",
                                      str_or_null(p->routing_strategy), "requestsPerSecond",
                                      (json_int_t)p->requests_per_second, "routingConfig", rc));
    }
    return json_pack("{s:s, s:o, s:o, s:o}", "name", m->name, "lockedRoutingStrategy",
                     str_or_null(m->locked_strategy), "defaultProfile",
                     str_or_null(m->default_profile), "profiles", profiles);
}

static const pm_ep_load *
find_load(const pm_load *ld, uint32_t idx, uint32_t id)
{
    if (ld == NULL)
        return NULL;
    /* Load entries follow the snapshot's endpoint order when gens match. */
    if (idx < ld->n_eps && ld->eps[idx].id == id)
        return &ld->eps[idx];
    for (uint32_t i = 0; i < ld->n_eps; i++) {
        if (ld->eps[i].id == id)
            return &ld->eps[i];
    }
    return NULL;
}

static json_t *
endpoint_json(const pm_endpoint *ep, const pm_ep_load *el)
{
    json_t *adapters = json_array();
    json_t *load = json_null();

    json_t *labels = json_object();

    for (uint32_t i = 0; i < ep->n_adapters; i++)
        json_array_append_new(adapters, json_string(ep->adapters[i]));
    for (uint32_t i = 0; i < ep->n_labels; i++) {
        const char *eq = strchr(ep->labels[i], '=');
        char *k = eq ? gw_xstrndup(ep->labels[i], (size_t)(eq - ep->labels[i])) : NULL;
        if (k != NULL)
            json_object_set_new(labels, k, json_string(eq + 1));
        free(k);
    }
    if (el != NULL)
        load =
            json_pack("{s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "inflight",
                      (json_int_t)el->inflight, "inflightTokens", (json_int_t)el->inflight_tokens,
                      "running", num_or_null(el->running), "waiting", num_or_null(el->waiting),
                      "kvUsage", num_or_null(el->kv_usage), "gpuUsage", num_or_null(el->gpu_usage),
                      "latencyMs", num_or_null(el->latency_ms), "ttftMs", num_or_null(el->ttft_ms),
                      "tpotMs", num_or_null(el->tpot_ms), "tokensPerSecond",
                      num_or_null(el->tokens_per_s), "metricsAgeMs",
                      num_or_null(el->metrics_age_ms), "kvCapacity", num_or_null(el->kv_capacity));
    return json_pack("{s:I, s:s, s:s, s:o, s:s, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:b, s:b, s:o}",
                     "id", (json_int_t)ep->id, "model", ep->model, "pod", ep->pod, "namespace",
                     str_or_null(ep->ns), "ip", ep->ip, "port", (int)ep->port, "metricPort",
                     (int)(ep->metric_port != 0 ? ep->metric_port : ep->port), "engine",
                     str_or_null(ep->engine), "roleset", str_or_null(ep->roleset), "role",
                     str_or_null(ep->role), "adapters", adapters, "labels", labels, "ready",
                     (int)ep->ready, "draining", (int)ep->draining, "load", load);
}

char *
ctl_http_snapshot_json(const pm_snapshot *snap, uint64_t epoch, const pm_load *load,
                       unsigned workers)
{
    json_t *models = json_array(), *eps = json_array(), *root;
    char hex[17];
    char *out;

    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)epoch);
    if (snap != NULL) {
        for (uint32_t i = 0; i < snap->n_models; i++)
            json_array_append_new(models, model_json(&snap->models[i]));
        for (uint32_t i = 0; i < snap->n_endpoints; i++) {
            const pm_endpoint *ep = &snap->endpoints[i];
            json_array_append_new(eps, endpoint_json(ep, find_load(load, i, ep->id)));
        }
    }
    root = json_pack("{s:I, s:s, s:o, s:o, s:{s:o}, s:i, s:o}", "gen",
                     (json_int_t)(snap != NULL ? snap->env.gen : 0), "epoch", hex, "models", models,
                     "endpoints", eps, "settings", "routingStrategy",
                     str_or_null(snap != NULL ? snap->settings.routing_strategy : NULL), "workers",
                     (int)workers, "loadGen",
                     load != NULL ? json_integer((json_int_t)load->env.gen) : json_null());
    /* The route config holds api keys and the mirror file an Authorization:
     * shown as present, never as text. */
    if (snap != NULL && snap->traffic.policy != NULL)
        json_object_set_new(
            root, "traffic",
            json_pack("{s:s, s:s}", "policy", snap->traffic.policy, "config", "<redacted>"));
    else
        json_object_set_new(root, "traffic", json_null());
    json_object_set_new(root, "mirror",
                        snap != NULL && snap->mirror.config_json != NULL
                            ? json_pack("{s:s}", "config", "<redacted>")
                            : json_null());
    out = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (out == NULL)
        return gw_xstrdup("{}");
    return out;
}

static enum MHD_Result
respond_error(struct MHD_Connection *conn, unsigned status, const char *type, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"code\":%u}}\n", msg, type,
                     status);
    return gw_httpd_respond(conn, status, CT_JSON, body, (size_t)n, NULL);
}

static enum MHD_Result
serve_metrics(ctl_http *h, struct MHD_Connection *conn)
{
    gw_buf b;
    enum MHD_Result r;

    gw_buf_init(&b, BODY_MAX);
    if (ctl_metrics_render(h->ctx->metrics, &b) != GW_OK) {
        gw_buf_fini(&b);
        return respond_error(conn, 500, "internal_error", "metrics too large");
    }
    r = gw_httpd_respond(conn, 200, GW_METRICS_CONTENT_TYPE, b.data != NULL ? b.data : "", b.len,
                         NULL);
    gw_buf_fini(&b);
    return r;
}

static enum MHD_Result
serve_snapshot(ctl_http *h, struct MHD_Connection *conn)
{
    ctl_ctx *ctx = h->ctx;
    char *body;
    enum MHD_Result r;

    body =
        ctl_http_snapshot_json(ctl_compile_current(ctx->compile), ctl_compile_epoch(ctx->compile),
                               ctx->publish != NULL ? ctl_publish_last_load(ctx->publish) : NULL,
                               ctl_load_workers(ctx->load));
    r = gw_httpd_respond(conn, 200, CT_JSON, body, strlen(body), NULL);
    free(body);
    return r;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    ctl_http *h = cls;
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    bool known = strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
                 strcmp(url, "/metrics") == 0 || strcmp(url, "/debug/snapshot") == 0;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;

    if (!known)
        return respond_error(conn, 404, "not_found", "no such path");
    if (!get)
        return respond_error(conn, 405, "method_not_allowed", "use GET");
    if (strcmp(url, "/healthz") == 0)
        return gw_httpd_respond(conn, 200, CT_TEXT, "ok\n", 3, NULL);
    if (strcmp(url, "/readyz") == 0) {
        /* A standby is not ready, so the controller Service sends workers
         * to the leader only. */
        if (h->ctx->standby)
            return gw_httpd_respond(conn, 503, CT_TEXT, "standby (not the leader)\n", 25, NULL);
        if (ctl_compile_gen(h->ctx->compile) > 0)
            return gw_httpd_respond(conn, 200, CT_TEXT, "ready\n", 6, NULL);
        return gw_httpd_respond(conn, 503, CT_TEXT, "no snapshot yet\n", 16, NULL);
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(h, conn);
    return serve_snapshot(h, conn);
}

gw_err
ctl_http_start(ctl_ctx *ctx, const char *host, uint16_t port, ctl_http **out)
{
    ctl_http *h = gw_xcalloc(1, sizeof(*h));
    gw_httpd_opts o = {
        .host = host,
        .port = port,
        .conn_limit = 64,
        .conn_timeout_s = 30,
        .handler = on_request,
        .handler_arg = h,
    };
    gw_err rc;

    h->ctx = ctx;
    rc = gw_httpd_start(ctx->loop, &o, &h->httpd);
    if (rc != GW_OK) {
        free(h);
        return rc;
    }
    *out = h;
    return GW_OK;
}

uint16_t
ctl_http_port(const ctl_http *h)
{
    return gw_httpd_port(h->httpd);
}

void
ctl_http_free(ctl_http *h)
{
    if (h == NULL)
        return;
    gw_httpd_free(h->httpd);
    free(h);
}
