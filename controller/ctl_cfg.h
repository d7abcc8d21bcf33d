/* ctl_cfg: the controller's process options (STYLE §7): the gw_cfg table,
 * the struct it fills, and the cross-field validation, including which
 * discovery source runs. controller/README.md documents every option;
 * `llmgw-controller --help` prints the same table.
 *
 * Discovery (--llm-backend-discovery): "" = auto, meaning `file` when
 * --config is set, else `endpoints` when --llm-backend-endpoints is set, else
 * `kubernetes` when --kubeconfig (or KUBECONFIG) is set or the process runs in
 * a pod (KUBERNETES_SERVICE_HOST), else `redis` (Llumnix's documented
 * default). `redis` and `etcd` read instance registrations (ctl_src_redis,
 * ctl_src_etcd, docs/discovery.md). --manage-httproutes and --leader-elect
 * need `kubernetes`.
 *
 * Validation also loads the --config file or parses the endpoint list, so
 * `--check-config` checks the discovery input too. The struct is filled once
 * in main and read-only afterwards. */
#ifndef CTL_CFG_H
#define CTL_CFG_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_cfg.h"
#include "gw/gw_err.h"

#ifndef GW_VERSION
#define GW_VERSION "0.1.0-dev"
#endif

typedef struct ctl_cfg {
    char *config;        /* --config: YAML of the file source; NULL = none */
    char *discovery;     /* --llm-backend-discovery: "" = auto */
    char *endpoints;     /* --llm-backend-endpoints */
    char *backend_model; /* --llm-backend-model */
    char *pub_listen;
    char *rep_listen;
    char *pull_listen;
    char *http_host;
    uint16_t http_port;
    uint64_t load_interval_ms;
    uint64_t file_poll_ms;
    uint64_t debounce_ms;
    uint64_t worker_expiry_ms;
    uint64_t scrape_interval_ms; /* 0 = engine /metrics scraping off */
    uint64_t scrape_timeout_ms;  /* per /metrics or /v1/models transfer */
    int64_t scrape_concurrency;  /* transfers in flight at once */
    int64_t scrape_max_bytes;    /* body cap of one transfer */
    uint64_t metrics_stale_ms;   /* older engine numbers are published as unknown */
    uint64_t adapter_refresh_ms; /* 0 = LoRA adapter discovery off */
    char *engine_api_key;        /* secret: Bearer token for engines' /v1/models */
    char *log_level;
    /* kubernetes source (ctl_kube, ctl_src_kube) */
    char *kubeconfig;        /* --kubeconfig (KUBECONFIG); NULL/"" = in-cluster or ~/.kube */
    char *kube_context;      /* "" = current-context */
    char *kube_sa_dir;       /* service-account mount (in-cluster) */
    char *kube_namespaces;   /* "" = all namespaces */
    char *kube_pod_selector; /* label selector of model pods */
    char *kube_config_ns;    /* ConfigMap/Secret/Lease namespace; "" = the controller's */
    char *kube_configmap;    /* "" = none */
    char *kube_configmap_key;
    char *kube_secret; /* "" = none */
    char *kube_secret_key;
    uint64_t kube_request_timeout_ms;
    uint64_t kube_watch_timeout_ms;
    uint64_t kube_backoff_initial_ms;
    uint64_t kube_backoff_max_ms;
    /* Kubernetes writers (ctl_httproute) */
    bool manage_httproutes;
    bool httproute_status; /* status on routes attached to our Gateway */
    char *gateway_name;
    char *gateway_namespace;
    char *gateway_controller_name;
    uint64_t httproute_timeout_ms;
    /* leader election (ctl_leader) */
    bool leader_elect;
    char *leader_elect_lease;
    char *leader_elect_identity; /* "" = $POD_NAME or hostname, plus a random suffix */
    uint64_t lease_duration_ms;
    uint64_t renew_deadline_ms;
    uint64_t retry_period_ms;
    /* redis discovery (ctl_src_redis), seed 004's flags */
    char *redis_host;
    uint16_t redis_port;
    char *redis_username;
    char *redis_password; /* secret */
    double redis_socket_timeout_s;
    int64_t redis_retry_times;
    uint64_t redis_status_ttl_ms;
    uint64_t redis_refresh_ms;
    /* etcd discovery (ctl_src_etcd) */
    char *etcd_endpoints;
    char *etcd_username;
    char *etcd_password; /* secret */
    double etcd_dial_timeout_s;
    int64_t etcd_lease_ttl_s;
    int64_t etcd_refresh_s;
    /* traffic splitting and mirror, into the snapshot (docs/traffic.md) */
    char *route_policy; /* --route-policy: "" = none */
    char *route_config; /* secret: --route-config JSON (api keys) */
    char *mirror_path;  /* --mirror-config-path: "" = never read */
    uint64_t mirror_reload_ms;
} ctl_cfg;

typedef enum ctl_discovery {
    CTL_DISC_FILE = 1,
    CTL_DISC_ENDPOINTS,
    CTL_DISC_KUBERNETES,
    CTL_DISC_REDIS,
    CTL_DISC_ETCD,
} ctl_discovery;

/* The option table (read-only). */
extern const gw_cfg_opt ctl_cfg_opts[];

/* The gw_cfg validate callback: log level, discovery mode and its input. */
void ctl_cfg_validate(const void *cfg, gw_cfg_errs *errs);

/* Resolves the discovery mode of <cfg>. GW_EINVAL with a heap *why naming
 * the fix when the mode is unknown, not available yet, or lacks its input. */
GW_MUST_CHECK gw_err ctl_cfg_discovery(const ctl_cfg *cfg, ctl_discovery *out, char **why);

/* Static name of <d> ("file", "endpoints", "kubernetes", "redis", "etcd"). */
const char *ctl_discovery_name(ctl_discovery d);

#endif
