/* reg_cfg: llmgw-register's option table and record (see reg_cfg.h). */
#include "reg_cfg.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_disc_opts.h"
#include "ctl_etcd_json.h"
#include "ctl_set.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

const gw_cfg_opt reg_cfg_opts[] = {
    GW_CFG_STR("llm-backend-discovery", "LLMGW_BACKEND_DISCOVERY", reg_cfg, discovery, "redis",
               "Store to register in: redis|etcd"),
    GW_CFG_STR("id", "LLMGW_REGISTER_ID", reg_cfg, id, "",
               "Instance id (the key's last part); empty = $POD_NAME, else <hostname>-<port>"),
    GW_CFG_STR_F("model", "LLMGW_REGISTER_MODEL", reg_cfg, model, "", GW_CFG_F_REQUIRED,
                 "Model the engine serves"),
    GW_CFG_STR("ip", "LLMGW_REGISTER_IP", reg_cfg, ip, "127.0.0.1",
               "Address the gateway connects to (a pod sets it from status.podIP)"),
    GW_CFG_U16("port", "LLMGW_REGISTER_PORT", reg_cfg, port, 8000, 1, 65535, "Engine serving port"),
    GW_CFG_U16("metric-port", "LLMGW_REGISTER_METRIC_PORT", reg_cfg, metric_port, 0, 0, 65535,
               "Engine /metrics port; 0 = --port"),
    GW_CFG_STR("role", "LLMGW_REGISTER_ROLE", reg_cfg, role, "both",
               "prefill|decode|both (prefill/decode disaggregation)"),
    GW_CFG_STR("engine", "LLMGW_REGISTER_ENGINE", reg_cfg, engine, "vllm",
               "Engine kind (vllm, sglang, ...): selects metric names"),
    GW_CFG_STR("roleset", "LLMGW_REGISTER_ROLESET", reg_cfg, roleset, "",
               "Roleset pairing prefill and decode instances; empty = none"),
    GW_CFG_MS("refresh-interval", "LLMGW_REGISTER_REFRESH_INTERVAL", reg_cfg, refresh_ms, 0, 0,
              3600000, "How often the registration is refreshed; 0 = a third of the TTL"),
    GW_CFG_STR("health-path", "LLMGW_REGISTER_HEALTH_PATH", reg_cfg, health_path, "/health",
               "Engine path checked (HTTP 200) before every refresh; an unhealthy engine is "
               "not refreshed and ages out. Empty = no check"),
    GW_CFG_MS("health-timeout", "LLMGW_REGISTER_HEALTH_TIMEOUT", reg_cfg, health_timeout_ms, 3000,
              10, 600000, "Limit of one health check"),
    GW_CFG_STR("log-level", "LLMGW_LOG_LEVEL", reg_cfg, log_level, "notice",
               "alert|err|warn|notice|info|debug"),
    CTL_DISC_STORE_OPTS(reg_cfg),
    GW_CFG_END,
};

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

void
reg_cfg_validate(const void *p, gw_cfg_errs *errs)
{
    const reg_cfg *cfg = p;
    gw_lvl lvl;
    char **urls = NULL, *why = NULL;
    size_t n = 0;

    if (!gw_log_parse_level(cfg->log_level, &lvl))
        gw_cfg_errorf(errs, "--log-level must be alert, err, warn, notice, info or debug");
    if (strcmp(cfg->discovery, "redis") != 0 && strcmp(cfg->discovery, "etcd") != 0)
        gw_cfg_errorf(errs, "--llm-backend-discovery must be redis or etcd");
    if (strcmp(cfg->role, "prefill") != 0 && strcmp(cfg->role, "decode") != 0 &&
        strcmp(cfg->role, "both") != 0)
        gw_cfg_errorf(errs, "--role must be prefill, decode or both");
    if (!is_set(cfg->ip) || !ctl_host_is_valid(cfg->ip, strlen(cfg->ip)))
        gw_cfg_errorf(errs, "--ip must be an address or host name");
    if (is_set(cfg->model) && strlen(cfg->model) > PM_MAX_STR)
        gw_cfg_errorf(errs, "--model is longer than %u bytes", PM_MAX_STR);
    if (!is_set(cfg->engine))
        gw_cfg_errorf(errs, "--engine must not be empty");
    if (is_set(cfg->health_path) && cfg->health_path[0] != '/')
        gw_cfg_errorf(errs, "--health-path must start with /");
    if (strcmp(cfg->discovery, "etcd") == 0) {
        if (ctl_etcd_parse_endpoints(cfg->etcd_endpoints, &urls, &n, &why) != GW_OK) {
            gw_cfg_errorf(errs, "%s", why);
            free(why);
        }
        ctl_etcd_endpoints_free(urls, n);
    }
}

uint64_t
reg_cfg_ttl_ms(const reg_cfg *cfg)
{
    return strcmp(cfg->discovery, "etcd") == 0 ? (uint64_t)cfg->etcd_lease_ttl_s * 1000
                                               : cfg->redis_status_ttl_ms;
}

uint64_t
reg_cfg_period_ms(const reg_cfg *cfg)
{
    uint64_t p = cfg->refresh_ms != 0 ? cfg->refresh_ms : reg_cfg_ttl_ms(cfg) / 3;

    return p < 100 ? 100 : p;
}

void
reg_cfg_record(const reg_cfg *cfg, uint64_t now_ms, ctl_disc_rec *rec)
{
    const char *pod = getenv("POD_NAME");
    char host[256] = "engine";

    if (is_set(cfg->id)) {
        rec->id = gw_xstrdup(cfg->id);
    } else if (is_set(pod)) {
        rec->id = gw_xstrdup(pod);
    } else {
        if (gethostname(host, sizeof(host) - 1) != 0)
            gw_strlcpy(host, "engine", sizeof(host));
        rec->id = ctl_strf("%s-%u", host, (unsigned)cfg->port);
    }
    rec->model = gw_xstrdup(cfg->model);
    rec->ip = gw_xstrdup(cfg->ip);
    rec->port = cfg->port;
    rec->metric_port = cfg->metric_port;
    rec->role = strcmp(cfg->role, "both") == 0 ? NULL : gw_xstrdup(cfg->role);
    rec->engine = gw_xstrdup(cfg->engine);
    rec->roleset = is_set(cfg->roleset) ? gw_xstrdup(cfg->roleset) : NULL;
    rec->timestamp_ms = (int64_t)now_ms;
}
