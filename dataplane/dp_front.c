/* dp_front: request dispatch (see dp_front.h). Requests that are not proxied
 * get a static marker as their MHD context so the completion callback can
 * tell them apart from proxied ones. */
#include "dp_front.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"

#include "dp_error.h"
#include "dp_metrics.h"
#include "dp_proxy.h"

/* Context markers of requests that are not proxied: the gateway's own, and
 * those on a connection over --conn-limit. */
static char local_marker, over_limit_marker;

typedef struct api_route {
    const char *path;
    dp_api api;
} api_route;

static const api_route api_routes[] = {
    {"/v1/chat/completions", DP_API_CHAT},
    {"/v1/completions", DP_API_COMPLETIONS},
    {"/v1/embeddings", DP_API_EMBEDDINGS},
};

/* Queues <e> as a JSON error answer, with its x-error-* header, Retry-After
 * when set, and "Connection: close" when <close>. */
static enum MHD_Result
respond_error(struct MHD_Connection *conn, const dp_error *e, bool close)
{
    const char *hdrs[9] = {"x-went-into-req-headers", "true"};
    size_t n = 2;
    gw_buf body;
    enum MHD_Result ret;

    if (e->header != NULL) {
        hdrs[n++] = e->header;
        hdrs[n++] = e->header_value ? e->header_value : "true";
    }
    if (e->retry_after != NULL) {
        hdrs[n++] = MHD_HTTP_HEADER_RETRY_AFTER;
        hdrs[n++] = e->retry_after;
    }
    if (close) {
        hdrs[n++] = MHD_HTTP_HEADER_CONNECTION;
        hdrs[n++] = "close";
    }
    hdrs[n] = NULL;
    gw_buf_init(&body, 4096);
    if (dp_error_body(e, &body) != GW_OK)
        gw_buf_reset(&body);
    ret = gw_httpd_respond(conn, e->status, "application/json", body.data ? body.data : "",
                           body.len, hdrs);
    gw_buf_fini(&body);
    return ret;
}

static enum MHD_Result
respond_json_error(struct MHD_Connection *conn, unsigned status, const char *header,
                   const char *code, const char *message)
{
    dp_error e;

    dp_error_set(&e, status, header, "true", code, "%s", message);
    return respond_error(conn, &e, false);
}

/* A connection over --conn-limit: 503 and close, so the client retries now
 * (here or elsewhere) instead of waiting in the listen backlog. Envoy, in
 * front of AIBrix, closes such connections without an answer. */
static enum MHD_Result
respond_conn_limit(dp_ctx *ctx, struct MHD_Connection *conn)
{
    dp_error e;

    dp_error_set(&e, 503, "x-error-conn-limit", "true", "service_unavailable",
                 "this gateway worker is at its connection limit (%lld); retry",
                 (long long)ctx->cfg.conn_limit);
    e.retry_after = "1";
    gw_counter_inc(gw_metric_child0(ctx->metrics->conn_refused));
    return respond_error(conn, &e, true);
}

/* GET /v1/models: every model of the snapshot, with LoRA adapters listed
 * as models whose "parent" is their base model (vLLM's shape). */
static enum MHD_Result
respond_models(dp_ctx *ctx, struct MHD_Connection *conn)
{
    json_t *data = json_array(), *root;
    char *text;
    enum MHD_Result ret;

    if (ctx->snap != NULL) {
        const pm_snapshot *pm = dp_snap_pm(ctx->snap);
        for (uint32_t i = 0; i < pm->n_models; i++) {
            json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s, s:s, s:n}", "id",
                                                  pm->models[i].name, "object", "model", "created",
                                                  0, "owned_by", "llmgw", "root",
                                                  pm->models[i].name, "parent"));
        }
        for (uint32_t e = 0; e < pm->n_endpoints; e++) {
            const pm_endpoint *ep = &pm->endpoints[e];
            for (uint32_t a = 0; a < ep->n_adapters; a++) {
                bool seen = false;
                size_t k;
                json_t *it;
                json_array_foreach(data, k, it)
                {
                    seen = seen || strcmp(json_string_value(json_object_get(it, "id")),
                                          ep->adapters[a]) == 0;
                }
                if (!seen)
                    json_array_append_new(data, json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "id",
                                                          ep->adapters[a], "object", "model",
                                                          "created", 0, "owned_by", "llmgw", "root",
                                                          ep->adapters[a], "parent", ep->model));
            }
        }
    }
    root = json_pack("{s:s, s:o}", "object", "list", "data", data);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    ret = gw_httpd_respond(conn, 200, "application/json", text, strlen(text), NULL);
    free(text);
    return ret;
}

static enum MHD_Result
respond_metrics(dp_ctx *ctx, struct MHD_Connection *conn)
{
    gw_buf out;
    enum MHD_Result ret;

    gw_buf_init(&out, 64u << 20);
    if (gw_metrics_render(ctx->metrics->reg, &out) != GW_OK) {
        gw_buf_fini(&out);
        return respond_json_error(conn, 500, NULL, "internal_error", "metrics too large");
    }
    ret = gw_httpd_respond(conn, 200, GW_METRICS_CONTENT_TYPE, out.data ? out.data : "", out.len,
                           NULL);
    gw_buf_fini(&out);
    return ret;
}

enum MHD_Result
dp_front_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    dp_ctx *ctx = cls;
    (void)version;

    /* Over the limit: any request, once its (ignored) body has ended. */
    if (*con_cls == NULL && gw_httpd_conn_refused(conn)) {
        *con_cls = &over_limit_marker;
        return MHD_YES;
    }
    if (*con_cls == &over_limit_marker) {
        if (*upload_size > 0) {
            *upload_size = 0;
            return MHD_YES;
        }
        return respond_conn_limit(ctx, conn);
    }
    if (*con_cls != NULL && *con_cls != &local_marker) {
        const api_route *r = NULL;
        for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
            if (strcmp(url, api_routes[i].path) == 0)
                r = &api_routes[i];
        }
        return dp_proxy_handle(ctx, conn, r->api, r->path, upload, upload_size, con_cls);
    }
    for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
        if (strcmp(url, api_routes[i].path) != 0)
            continue;
        if (strcmp(method, "POST") != 0) {
            *con_cls = &local_marker;
            return respond_json_error(conn, 405, NULL, "method_not_allowed",
                                      "use POST for this path");
        }
        return dp_proxy_handle(ctx, conn, api_routes[i].api, api_routes[i].path, upload,
                               upload_size, con_cls);
    }
    /* The gateway's own endpoints: wait for the (ignored) body to end. */
    if (*con_cls == NULL) {
        *con_cls = &local_marker;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/healthz") == 0)
        return gw_httpd_respond(conn, 200, "text/plain", "ok\n", 3, NULL);
    if (strcmp(url, "/readyz") == 0) {
        if (ctx->snap != NULL && !ctx->draining)
            return gw_httpd_respond(conn, 200, "text/plain", "ready\n", 6, NULL);
        return gw_httpd_respond(conn, 503, "text/plain",
                                ctx->draining ? "draining\n" : "no snapshot\n",
                                ctx->draining ? 9 : 12, NULL);
    }
    if (strcmp(url, "/metrics") == 0)
        return respond_metrics(ctx, conn);
    if (strcmp(url, "/v1/models") == 0 && strcmp(method, "GET") == 0)
        return respond_models(ctx, conn);
    return respond_json_error(conn, 404, NULL, "not_found", "unknown path");
}

enum MHD_Result
dp_front_admin_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                       const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    if (strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0)
        return dp_front_handler(cls, conn, url, method, version, upload, upload_size, con_cls);
    *con_cls = &local_marker;
    return respond_json_error(conn, 404, NULL, "not_found",
                              "the admin port serves /metrics, /healthz and /readyz only");
}

void
dp_front_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                   enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    if (*con_cls != NULL && *con_cls != &local_marker && *con_cls != &over_limit_marker)
        dp_proxy_completed(cls, *con_cls, toe);
    *con_cls = NULL;
}
