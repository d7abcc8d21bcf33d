/* ctl_cfg: the controller's option table and its validation (see
 * ctl_cfg.h). Defaults live only here (STYLE §7). Environment names carry
 * LLMGW_CTL_ when the worker may have an option of the same name, so one
 * shell can run both. */
#include "ctl_cfg.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_src_endpoints.h"
#include "ctl_src_file.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "pm/pm_msgs.h"

const gw_cfg_opt ctl_cfg_opts[] = {
    GW_CFG_STR("config", "LLMGW_CONFIG", ctl_cfg, config, NULL,
               "YAML file of the file discovery source (models, endpoints, profiles); "
               "re-read when it changes"),
    GW_CFG_STR("llm-backend-discovery", "LLMGW_BACKEND_DISCOVERY", ctl_cfg, discovery, "",
               "Discovery source: file|endpoints (redis|etcd|kubernetes later); empty = auto: "
               "file with --config, else endpoints with --llm-backend-endpoints, else redis"),
    GW_CFG_STR("llm-backend-endpoints", "LLMGW_BACKEND_ENDPOINTS", ctl_cfg, endpoints, "",
               "Static endpoints \"host:port,host:port\" (port defaults to 80) serving "
               "--llm-backend-model"),
    GW_CFG_STR("llm-backend-model", "LLMGW_BACKEND_MODEL", ctl_cfg, backend_model, "default",
               "Model name the static --llm-backend-endpoints serve"),
    GW_CFG_STR("pub-listen", "LLMGW_CTL_PUB_LISTEN", ctl_cfg, pub_listen, "tcp://0.0.0.0:7701",
               "nng PUB URL: snapshots (topic S) and load (topic L) to workers"),
    GW_CFG_STR("rep-listen", "LLMGW_CTL_REP_LISTEN", ctl_cfg, rep_listen, "tcp://0.0.0.0:7702",
               "nng REP URL: answers workers' full-snapshot requests"),
    GW_CFG_STR("pull-listen", "LLMGW_CTL_PULL_LISTEN", ctl_cfg, pull_listen, "tcp://0.0.0.0:7703",
               "nng PULL URL: load reports from workers"),
    GW_CFG_STR("http-host", "LLMGW_CTL_HTTP_HOST", ctl_cfg, http_host, "0.0.0.0",
               "Address of the admin HTTP server (/metrics, /healthz, /readyz, /debug/snapshot)"),
    GW_CFG_U16("http-port", "LLMGW_CTL_HTTP_PORT", ctl_cfg, http_port, 8091, 0, 65535,
               "Port of the admin HTTP server (0 = any free port)"),
    GW_CFG_MS("load-interval", "LLMGW_CTL_LOAD_INTERVAL", ctl_cfg, load_interval_ms, 100, 10, 60000,
              "How often the fleet load vector is published"),
    GW_CFG_MS("file-poll-interval", "LLMGW_CTL_FILE_POLL_INTERVAL", ctl_cfg, file_poll_ms, 250, 10,
              3600000, "How often the --config file is checked for changes"),
    GW_CFG_MS("debounce", "LLMGW_CTL_DEBOUNCE", ctl_cfg, debounce_ms, 5, 0, 10000,
              "Delay between a source change and the compile, so bursts make one snapshot"),
    GW_CFG_MS("worker-expiry", "LLMGW_CTL_WORKER_EXPIRY", ctl_cfg, worker_expiry_ms, 3000, 100,
              3600000, "Workers silent this long are dropped from the load vector"),
    GW_CFG_MS("scrape-interval", "LLMGW_CTL_SCRAPE_INTERVAL", ctl_cfg, scrape_interval_ms, 200, 0,
              60000, "How often every ready endpoint's engine /metrics is scraped (0 = never)"),
    GW_CFG_MS("scrape-timeout", "LLMGW_CTL_SCRAPE_TIMEOUT", ctl_cfg, scrape_timeout_ms, 1000, 10,
              60000, "Whole-transfer limit of one /metrics scrape or /v1/models fetch"),
    GW_CFG_INT("scrape-concurrency", "LLMGW_CTL_SCRAPE_CONCURRENCY", ctl_cfg, scrape_concurrency,
               16, 1, 1024, "Engine transfers (/metrics and /v1/models) in flight at once"),
    GW_CFG_INT("scrape-max-bytes", "LLMGW_CTL_SCRAPE_MAX_BYTES", ctl_cfg, scrape_max_bytes, 4194304,
               4096, 268435456,
               "Largest engine answer read; a bigger /metrics page counts as a parse failure"),
    GW_CFG_MS("metrics-stale-after", "LLMGW_CTL_METRICS_STALE_AFTER", ctl_cfg, metrics_stale_ms,
              2000, 10, 3600000,
              "Engine numbers older than this are published as unknown, so workers never route "
              "on them"),
    GW_CFG_MS("adapter-refresh-interval", "LLMGW_CTL_ADAPTER_REFRESH_INTERVAL", ctl_cfg,
              adapter_refresh_ms, 5000, 0, 3600000,
              "How often every ready endpoint's /v1/models is read for LoRA adapters (0 = never)"),
    GW_CFG_SECRET("engine-api-key", "LLMGW_ENGINE_API_KEY", ctl_cfg, engine_api_key,
                  "Bearer token sent with /v1/models to engines started with --api-key"),
    GW_CFG_STR("log-level", "LLMGW_LOG_LEVEL", ctl_cfg, log_level, "notice",
               "alert|err|warn|notice|info|debug"),
    GW_CFG_END,
};

const char *
ctl_discovery_name(ctl_discovery d)
{
    return d == CTL_DISC_FILE ? "file" : d == CTL_DISC_ENDPOINTS ? "endpoints" : "unknown";
}

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

gw_err
ctl_cfg_discovery(const ctl_cfg *cfg, ctl_discovery *out, char **why)
{
    const char *d = cfg->discovery;

    if (!is_set(d)) {
        if (is_set(cfg->config))
            d = "file";
        else if (is_set(cfg->endpoints))
            d = "endpoints";
        else
            d = "redis";
    }
    if (strcmp(d, "file") == 0) {
        if (!is_set(cfg->config)) {
            *why = gw_xstrdup("--llm-backend-discovery=file needs --config PATH");
            return GW_EINVAL;
        }
        *out = CTL_DISC_FILE;
        return GW_OK;
    }
    if (strcmp(d, "endpoints") == 0) {
        if (!is_set(cfg->endpoints)) {
            *why = gw_xstrdup("--llm-backend-discovery=endpoints needs --llm-backend-endpoints "
                              "host:port,...");
            return GW_EINVAL;
        }
        *out = CTL_DISC_ENDPOINTS;
        return GW_OK;
    }
    if (strcmp(d, "redis") == 0 || strcmp(d, "etcd") == 0 || strcmp(d, "kubernetes") == 0) {
        *why = ctl_strf("discovery backend %s is not available yet; use --config or "
                        "--llm-backend-endpoints",
                        d);
        return GW_EINVAL;
    }
    *why = gw_xstrdup("--llm-backend-discovery must be file, endpoints, redis, etcd or kubernetes");
    return GW_EINVAL;
}

void
ctl_cfg_validate(const void *p, gw_cfg_errs *errs)
{
    const ctl_cfg *cfg = p;
    ctl_discovery disc;
    gw_lvl lvl;
    char *why = NULL;

    if (!gw_log_parse_level(cfg->log_level, &lvl))
        gw_cfg_errorf(errs, "--log-level must be alert, err, warn, notice, info or debug");
    if (!is_set(cfg->pub_listen) || !is_set(cfg->rep_listen) || !is_set(cfg->pull_listen))
        gw_cfg_errorf(errs, "--pub-listen, --rep-listen and --pull-listen must be set");
    else if (strcmp(cfg->pub_listen, cfg->rep_listen) == 0 ||
             strcmp(cfg->pub_listen, cfg->pull_listen) == 0 ||
             strcmp(cfg->rep_listen, cfg->pull_listen) == 0)
        gw_cfg_errorf(errs, "--pub-listen, --rep-listen and --pull-listen must differ");
    if (ctl_cfg_discovery(cfg, &disc, &why) != GW_OK) {
        gw_cfg_errorf(errs, "%s", why);
        free(why);
        return;
    }
    /* Check the discovery input now, so --check-config covers it and a bad
     * file refuses start with its messages on the error stream. */
    pm_snapshot *set = NULL;
    gw_err rc = disc == CTL_DISC_FILE
                    ? ctl_src_file_load(cfg->config, &set, &why)
                    : ctl_src_endpoints_parse(cfg->endpoints, cfg->backend_model, &set, &why);
    if (rc != GW_OK) {
        const char *line = why;
        while (line != NULL && *line != '\0') {
            const char *nl = strchr(line, '\n');
            int n = nl != NULL ? (int)(nl - line) : (int)strlen(line);
            gw_cfg_errorf(errs, "%.*s", n, line);
            line = nl != NULL ? nl + 1 : NULL;
        }
        free(why);
    }
    pm_snapshot_free(set);
}
