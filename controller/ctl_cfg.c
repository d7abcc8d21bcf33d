/* ctl_cfg: the controller's option table and its validation (see
 * ctl_cfg.h). Defaults live only here (STYLE §7). Environment names carry
 * LLMGW_CTL_ when the worker may have an option of the same name, so one
 * shell can run both. */
#include "ctl_cfg.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_disc_opts.h"
#include "ctl_etcd_json.h"
#include "ctl_kube.h"
#include "ctl_src_endpoints.h"
#include "ctl_src_file.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mirror_cfg.h"
#include "gw/gw_mem.h"
#include "gw/gw_route_cfg.h"
#include "pm/pm_msgs.h"

const gw_cfg_opt ctl_cfg_opts[] = {
    GW_CFG_STR("config", "LLMGW_CONFIG", ctl_cfg, config, NULL,
               "YAML file of the file discovery source (models, endpoints, profiles); "
               "re-read when it changes"),
    GW_CFG_STR("llm-backend-discovery", "LLMGW_BACKEND_DISCOVERY", ctl_cfg, discovery, "",
               "Discovery source: file|endpoints|kubernetes|redis|etcd; empty = auto: "
               "file with --config, else endpoints with --llm-backend-endpoints, else "
               "kubernetes with --kubeconfig or in a pod, else redis"),
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
    /* kubernetes source */
    GW_CFG_STR("kubeconfig", "KUBECONFIG", ctl_cfg, kubeconfig, "",
               "kubeconfig file(s), ':'-separated (kubectl's rules); empty = in-cluster "
               "service account, else ~/.kube/config"),
    GW_CFG_STR("kube-context", "LLMGW_KUBE_CONTEXT", ctl_cfg, kube_context, "",
               "kubeconfig context to use; empty = current-context"),
    GW_CFG_STR("kube-service-account-dir", "LLMGW_KUBE_SERVICE_ACCOUNT_DIR", ctl_cfg, kube_sa_dir,
               "/var/run/secrets/kubernetes.io/serviceaccount",
               "In-cluster: directory with token (re-read when it rotates), ca.crt, namespace"),
    GW_CFG_STR("kube-namespaces", "LLMGW_KUBE_NAMESPACES", ctl_cfg, kube_namespaces, "",
               "Namespaces whose model pods and HTTPRoutes are watched, comma-separated; empty "
               "= all namespaces"),
    GW_CFG_STR("kube-pod-selector", "LLMGW_KUBE_POD_SELECTOR", ctl_cfg, kube_pod_selector,
               "model.aibrix.ai/name",
               "Label selector of model pods (empty = every pod; pods naming their model only "
               "in the model.aibrix.ai/name annotation need that)"),
    GW_CFG_STR("kube-config-namespace", "LLMGW_KUBE_CONFIG_NAMESPACE", ctl_cfg, kube_config_ns, "",
               "Namespace of the gateway ConfigMap, the users Secret and the leader Lease; "
               "empty = the controller's own (service account or kubeconfig context)"),
    GW_CFG_STR("kube-configmap", "LLMGW_KUBE_CONFIGMAP", ctl_cfg, kube_configmap, "",
               "ConfigMap holding the gateway settings (the --config YAML schema; only "
               "`gateway:` is used); empty = none"),
    GW_CFG_STR("kube-configmap-key", "LLMGW_KUBE_CONFIGMAP_KEY", ctl_cfg, kube_configmap_key,
               "config.yaml", "Data key of --kube-configmap holding the YAML document"),
    GW_CFG_STR("kube-secret", "LLMGW_KUBE_SECRET", ctl_cfg, kube_secret, "",
               "Secret holding users and API keys (the --config YAML schema); empty = none"),
    GW_CFG_STR("kube-secret-key", "LLMGW_KUBE_SECRET_KEY", ctl_cfg, kube_secret_key, "config.yaml",
               "Data key of --kube-secret holding the YAML document"),
    GW_CFG_MS("kube-request-timeout", "LLMGW_KUBE_REQUEST_TIMEOUT", ctl_cfg,
              kube_request_timeout_ms, 30000, 100, 600000,
              "Whole-request limit of Kubernetes API calls other than watches"),
    GW_CFG_MS("kube-watch-timeout", "LLMGW_KUBE_WATCH_TIMEOUT", ctl_cfg, kube_watch_timeout_ms,
              300000, 1000, 3600000,
              "Server-side watch timeout, jittered to [1, 2) times this; the watch then "
              "resumes from its last resourceVersion"),
    GW_CFG_MS("kube-backoff-initial", "LLMGW_KUBE_BACKOFF_INITIAL", ctl_cfg,
              kube_backoff_initial_ms, 200, 10, 60000,
              "First retry delay after a failed LIST or watch; doubles per failure, with "
              "jitter"),
    GW_CFG_MS("kube-backoff-max", "LLMGW_KUBE_BACKOFF_MAX", ctl_cfg, kube_backoff_max_ms, 30000, 10,
              600000, "Largest retry delay after failed LISTs or watches"),
    /* Kubernetes writers */
    GW_CFG_BOOL("manage-httproutes", "LLMGW_MANAGE_HTTPROUTES", ctl_cfg, manage_httproutes, false,
                "Create and keep one HTTPRoute per model (<model>-router) attached to "
                "--gateway-name, and delete it when the model's last pod is gone"),
    GW_CFG_BOOL("httproute-status", "LLMGW_HTTPROUTE_STATUS", ctl_cfg, httproute_status, true,
                "Write status.parents (Accepted, ResolvedRefs) on every HTTPRoute attached to "
                "--gateway-name (needs the Gateway API CRDs)"),
    GW_CFG_STR("gateway-name", "LLMGW_GATEWAY_NAME", ctl_cfg, gateway_name, "llmgw",
               "Gateway that managed HTTPRoutes attach to, and whose routes get status"),
    GW_CFG_STR("gateway-namespace", "LLMGW_GATEWAY_NAMESPACE", ctl_cfg, gateway_namespace, "",
               "Namespace of --gateway-name; empty = --kube-config-namespace"),
    GW_CFG_STR("gateway-controller-name", "LLMGW_GATEWAY_CONTROLLER_NAME", ctl_cfg,
               gateway_controller_name, "llmgw.io/gateway-controller",
               "controllerName written in HTTPRoute status.parents (domain/path)"),
    GW_CFG_MS("httproute-request-timeout", "LLMGW_HTTPROUTE_REQUEST_TIMEOUT", ctl_cfg,
              httproute_timeout_ms, 120000, 1000, 86400000,
              "timeouts.request of managed HTTPRoutes"),
    /* leader election */
    GW_CFG_BOOL("leader-elect", "LLMGW_LEADER_ELECT", ctl_cfg, leader_elect, false,
                "Elect a leader through a coordination.k8s.io Lease; only the leader writes to "
                "Kubernetes and serves workers, a standby reports not ready"),
    GW_CFG_STR("leader-elect-lease-name", "LLMGW_LEADER_ELECT_LEASE_NAME", ctl_cfg,
               leader_elect_lease, "llmgw-controller",
               "Name of the Lease (in --kube-config-namespace)"),
    GW_CFG_STR("leader-elect-identity", "LLMGW_LEADER_ELECT_IDENTITY", ctl_cfg,
               leader_elect_identity, "",
               "holderIdentity; empty = $POD_NAME or the host name, plus a random suffix"),
    GW_CFG_MS("leader-elect-lease-duration", "LLMGW_LEADER_ELECT_LEASE_DURATION", ctl_cfg,
              lease_duration_ms, 15000, 1000, 3600000,
              "How long a standby waits after the last renewal it saw before taking over"),
    GW_CFG_MS("leader-elect-renew-deadline", "LLMGW_LEADER_ELECT_RENEW_DEADLINE", ctl_cfg,
              renew_deadline_ms, 10000, 500, 3600000,
              "A leader that could not renew for this long steps down"),
    GW_CFG_MS("leader-elect-retry-period", "LLMGW_LEADER_ELECT_RETRY_PERIOD", ctl_cfg,
              retry_period_ms, 2000, 100, 600000,
              "How often the Lease is renewed or an acquisition tried"),
    /* redis and etcd discovery (seed 004), shared with llmgw-register */
    CTL_DISC_STORE_OPTS(ctl_cfg),
    GW_CFG_INT("discovery-etcd-refresh-interval-sec", "LLMGW_DISCOVERY_ETCD_REFRESH_INTERVAL_SEC",
               ctl_cfg, etcd_refresh_s, 3600, 1, 86400,
               "Periodic full re-read (range) in seconds, the safety net under the watch"),
    /* traffic splitting and the mirror, published to every worker in the
     * snapshot (docs/traffic.md; the worker's flags, seed 004) */
    GW_ROUTE_CFG_OPTS(ctl_cfg),
    GW_MIRROR_CFG_OPTS(ctl_cfg),
    GW_CFG_END,
};

const char *
ctl_discovery_name(ctl_discovery d)
{
    switch (d) {
    case CTL_DISC_FILE:
        return "file";
    case CTL_DISC_ENDPOINTS:
        return "endpoints";
    case CTL_DISC_KUBERNETES:
        return "kubernetes";
    case CTL_DISC_REDIS:
        return "redis";
    case CTL_DISC_ETCD:
        return "etcd";
    }
    return "unknown";
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
        else if (is_set(cfg->kubeconfig) || ctl_kube_in_cluster())
            d = "kubernetes";
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
    if (strcmp(d, "kubernetes") == 0) {
        *out = CTL_DISC_KUBERNETES;
        return GW_OK;
    }
    if (strcmp(d, "redis") == 0) {
        *out = CTL_DISC_REDIS;
        return GW_OK;
    }
    if (strcmp(d, "etcd") == 0) {
        *out = CTL_DISC_ETCD;
        return GW_OK;
    }
    *why = gw_xstrdup("--llm-backend-discovery must be file, endpoints, redis, etcd or kubernetes");
    return GW_EINVAL;
}

/* A Gateway API controllerName: "<domain>/<path>". */
static bool
is_controller_name(const char *s)
{
    const char *slash = s != NULL ? strchr(s, '/') : NULL;

    if (slash == NULL || slash == s || slash[1] == '\0' || strlen(s) > 253)
        return false;
    for (const char *p = s; p < slash; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    }
    return true;
}

/* The kubernetes source's options: the API configuration must load (so
 * --check-config catches a broken kubeconfig), and leader election timing
 * must leave room for renewals. */
static void
validate_kube(const ctl_cfg *cfg, gw_cfg_errs *errs)
{
    ctl_kube_conf kc = {0};
    char *why = NULL;

    if (ctl_kube_conf_load(cfg->kubeconfig, cfg->kube_context, cfg->kube_sa_dir, &kc, &why) !=
        GW_OK) {
        gw_cfg_errorf(errs, "kubernetes: %s", why);
        free(why);
    }
    ctl_kube_conf_fini(&kc);
    if (cfg->kube_backoff_max_ms < cfg->kube_backoff_initial_ms)
        gw_cfg_errorf(errs, "--kube-backoff-max must be at least --kube-backoff-initial");
    if ((is_set(cfg->kube_configmap) && !is_set(cfg->kube_configmap_key)) ||
        (is_set(cfg->kube_secret) && !is_set(cfg->kube_secret_key)))
        gw_cfg_errorf(errs, "--kube-configmap-key and --kube-secret-key must not be empty");
    if (cfg->manage_httproutes && !is_set(cfg->gateway_name))
        gw_cfg_errorf(errs, "--manage-httproutes needs --gateway-name");
    if (!is_controller_name(cfg->gateway_controller_name))
        gw_cfg_errorf(errs, "--gateway-controller-name must look like example.com/path");
    if (cfg->leader_elect) {
        if (cfg->renew_deadline_ms >= cfg->lease_duration_ms)
            gw_cfg_errorf(errs, "--leader-elect-renew-deadline must be shorter than "
                                "--leader-elect-lease-duration");
        if (cfg->retry_period_ms >= cfg->renew_deadline_ms)
            gw_cfg_errorf(errs, "--leader-elect-retry-period must be shorter than "
                                "--leader-elect-renew-deadline");
        if (!is_set(cfg->leader_elect_lease))
            gw_cfg_errorf(errs, "--leader-elect-lease-name must not be empty");
    }
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
    {
        gw_route_cfg t;
        char twhy[300];
        if (gw_route_cfg_parse(cfg->route_policy, cfg->route_config, &t, twhy, sizeof(twhy)) !=
            GW_OK)
            gw_cfg_errorf(errs, "%s", twhy);
        else if (strlen(cfg->route_config) > PM_MAX_ROUTE_JSON)
            gw_cfg_errorf(errs, "--route-config: longer than %u bytes", PM_MAX_ROUTE_JSON);
        gw_route_cfg_fini(&t);
    }
    if (ctl_cfg_discovery(cfg, &disc, &why) != GW_OK) {
        gw_cfg_errorf(errs, "%s", why);
        free(why);
        return;
    }
    if (disc != CTL_DISC_KUBERNETES && (cfg->manage_httproutes || cfg->leader_elect))
        gw_cfg_errorf(errs, "--manage-httproutes and --leader-elect need the kubernetes "
                            "discovery source");
    if (disc == CTL_DISC_KUBERNETES) {
        validate_kube(cfg, errs);
        return;
    }
    if (disc == CTL_DISC_REDIS) {
        if (!is_set(cfg->redis_host))
            gw_cfg_errorf(errs, "--discovery-redis-host must not be empty");
        return;
    }
    if (disc == CTL_DISC_ETCD) {
        char **urls = NULL;
        size_t n = 0;
        if (ctl_etcd_parse_endpoints(cfg->etcd_endpoints, &urls, &n, &why) != GW_OK) {
            gw_cfg_errorf(errs, "%s", why);
            free(why);
        }
        ctl_etcd_endpoints_free(urls, n);
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
