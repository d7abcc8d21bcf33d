/* Unit tests for ctl_cfg: the option table, discovery resolution and the
 * validation that makes --check-config cover the discovery input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_cfg.h"
#include "ut_cfg.h"
#include "ut_leak.h"

/* The environment may name a kubeconfig or a cluster (a developer's shell,
 * a CI pod); the discovery tests need neither. */
static void
clean_env(void)
{
    unsetenv("KUBECONFIG");
    unsetenv("KUBERNETES_SERVICE_HOST");
}

TestSuite(ctl_cfg, .init = clean_env, .fini = ut_leak_check, .timeout = 10);

static const gw_cfg_prog prog = {.name = "llmgw-controller", .validate = ctl_cfg_validate};
#define RUN(cfg, text, ...)                                                                        \
    ut_cfg_run(ctl_cfg_opts, (cfg), sizeof(ctl_cfg), prog, (text),                                 \
               (const char *const[]){__VA_ARGS__, NULL})

static char *
example_path(void)
{
    const char *src = getenv("LLMGW_SOURCE_DIR");
    char *p = NULL;

    cr_assert(asprintf(&p, "%s/examples/local.yaml", src != NULL ? src : ".") > 0);
    return p;
}

Test(ctl_cfg, defaults_match_the_documented_ones)
{
    ctl_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-endpoints", "h:1"), GW_CFG_RUN, "%s", text);
    cr_assert_str_eq(cfg.pub_listen, "tcp://0.0.0.0:7701");
    cr_assert_str_eq(cfg.rep_listen, "tcp://0.0.0.0:7702");
    cr_assert_str_eq(cfg.pull_listen, "tcp://0.0.0.0:7703");
    cr_assert_str_eq(cfg.http_host, "0.0.0.0");
    cr_assert_eq(cfg.http_port, 8091);
    cr_assert_eq(cfg.load_interval_ms, 100);
    cr_assert_eq(cfg.file_poll_ms, 250);
    cr_assert_eq(cfg.debounce_ms, 5);
    cr_assert_eq(cfg.worker_expiry_ms, 3000);
    cr_assert_str_eq(cfg.backend_model, "default");
    cr_assert_str_eq(cfg.kube_pod_selector, "model.aibrix.ai/name");
    cr_assert_str_eq(cfg.kube_sa_dir, "/var/run/secrets/kubernetes.io/serviceaccount");
    cr_assert_str_eq(cfg.kube_configmap_key, "config.yaml");
    cr_assert_eq(cfg.kube_watch_timeout_ms, 300000);
    cr_assert_eq(cfg.kube_backoff_initial_ms, 200);
    cr_assert_eq(cfg.kube_backoff_max_ms, 30000);
    cr_assert_not(cfg.manage_httproutes);
    cr_assert(cfg.httproute_status);
    cr_assert_str_eq(cfg.gateway_name, "llmgw");
    cr_assert_str_eq(cfg.gateway_controller_name, "llmgw.io/gateway-controller");
    cr_assert_eq(cfg.httproute_timeout_ms, 120000);
    cr_assert_not(cfg.leader_elect);
    cr_assert_str_eq(cfg.leader_elect_lease, "llmgw-controller");
    cr_assert_eq(cfg.lease_duration_ms, 15000);
    cr_assert_eq(cfg.renew_deadline_ms, 10000);
    cr_assert_eq(cfg.retry_period_ms, 2000);
    cr_assert_str_eq(cfg.log_level, "notice");
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
}

Test(ctl_cfg, discovery_is_auto_resolved)
{
    ctl_cfg cfg = {0};
    ctl_discovery d;
    char *why = NULL;

    cfg.discovery = "";
    cfg.config = "x.yaml";
    cfg.endpoints = "h:1";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_FILE, "--config wins");
    cfg.config = NULL;
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_ENDPOINTS);
    cr_assert_str_eq(ctl_discovery_name(d), "endpoints");
    cfg.endpoints = "";
    cfg.kubeconfig = "/k/config";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_KUBERNETES, "a kubeconfig means kubernetes");
    cr_assert_str_eq(ctl_discovery_name(d), "kubernetes");
    cfg.kubeconfig = "";
    setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1", 1);
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_KUBERNETES, "in a pod, auto means kubernetes");
    unsetenv("KUBERNETES_SERVICE_HOST");
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_REDIS, "auto falls back to redis (Llumnix's default)");
    cr_assert_str_eq(ctl_discovery_name(d), "redis");
}

Test(ctl_cfg, explicit_modes_need_their_input)
{
    ctl_cfg cfg = {0};
    ctl_discovery d;
    char *why = NULL;

    cfg.discovery = "file";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_EINVAL);
    cr_assert(strstr(why, "needs --config") != NULL);
    free(why);
    cfg.discovery = "endpoints";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_EINVAL);
    cr_assert(strstr(why, "needs --llm-backend-endpoints") != NULL);
    free(why);
    cfg.discovery = "redis";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_REDIS);
    cfg.discovery = "etcd";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_ETCD);
    cr_assert_str_eq(ctl_discovery_name(d), "etcd");
    cfg.discovery = "consul";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_EINVAL);
    cr_assert(strstr(why, "must be file, endpoints") != NULL);
    free(why);
    cfg.discovery = "kubernetes";
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_KUBERNETES);
}

Test(ctl_cfg, store_discovery_flags_have_seed_004_defaults)
{
    ctl_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-discovery", "redis"), GW_CFG_RUN, "%s", text);
    cr_assert_str_eq(cfg.redis_host, "redis");
    cr_assert_eq(cfg.redis_port, 6379);
    cr_assert_str_eq(cfg.redis_username, "");
    cr_assert(cfg.redis_password == NULL || cfg.redis_password[0] == '\0');
    cr_assert_float_eq(cfg.redis_socket_timeout_s, 1.0, 1e-9);
    cr_assert_eq(cfg.redis_retry_times, 1);
    cr_assert_eq(cfg.redis_status_ttl_ms, 60000);
    cr_assert_eq(cfg.redis_refresh_ms, 1000);
    cr_assert_str_eq(cfg.etcd_endpoints, "etcd:2379");
    cr_assert_str_eq(cfg.etcd_username, "");
    cr_assert_float_eq(cfg.etcd_dial_timeout_s, 5.0, 1e-9);
    cr_assert_eq(cfg.etcd_lease_ttl_s, 60);
    cr_assert_eq(cfg.etcd_refresh_s, 3600);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
}

Test(ctl_cfg, etcd_endpoint_list_is_checked)
{
    ctl_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-discovery", "etcd", "--discovery-etcd-endpoints",
                     "a:2379,,b:2379"),
                 GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "--discovery-etcd-endpoints: entry 2") != NULL, "%s", text);
    free(text);
    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-discovery", "etcd", "--discovery-etcd-endpoints",
                     "http://a:1,b"),
                 GW_CFG_RUN, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
}

Test(ctl_cfg, kubernetes_checks_the_kubeconfig_and_leader_timing)
{
    ctl_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-discovery", "kubernetes", "--kubeconfig",
                     "/nonexistent/kubeconfig"),
                 GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "kubernetes: no kubeconfig file found") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
    cr_assert_eq(RUN(&cfg, &text, "--config", "x.yaml", "--leader-elect"), GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "need the kubernetes discovery source") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-discovery", "kubernetes", "--leader-elect",
                     "--leader-elect-lease-duration", "5s", "--leader-elect-renew-deadline", "6s",
                     "--gateway-controller-name", "nodomain"),
                 GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "renew-deadline must be shorter") != NULL, "%s", text);
    cr_assert(strstr(text, "--gateway-controller-name must look like") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
}

Test(ctl_cfg, no_discovery_input_means_redis_discovery)
{
    ctl_cfg cfg;
    ctl_discovery d;
    char *text, *why = NULL;

    cr_assert_eq(RUN(&cfg, &text, "--http-port", "1"), GW_CFG_RUN, "%s", text);
    cr_assert_eq(ctl_cfg_discovery(&cfg, &d, &why), GW_OK);
    cr_assert_eq(d, CTL_DISC_REDIS);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
    cr_assert_eq(RUN(&cfg, &text, "--http-port", "1", "--discovery-redis-host", ""),
                 GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "--discovery-redis-host must not be empty") != NULL, "%s", text);
    free(text);
}

Test(ctl_cfg, check_config_validates_the_yaml_file)
{
    ctl_cfg cfg;
    char *text, *path = example_path();
    char bad[] = "/tmp/ctl-cfg-XXXXXX";
    int fd = mkstemp(bad);

    cr_assert_eq(RUN(&cfg, &text, "--config", path, "--check-config"), GW_CFG_EXIT_OK, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);

    cr_assert(fd >= 0);
    cr_assert(write(fd, "models: [{name: a, port: 0}]\n", 29) == 29);
    close(fd);
    cr_assert_eq(RUN(&cfg, &text, "--config", bad, "--check-config"), GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "models[0].port: must be a port number") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
    unlink(bad);
    free(path);
}

Test(ctl_cfg, bad_endpoint_lists_refuse_start)
{
    ctl_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-endpoints", "a:1,b:x"), GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "entry 2 \"b:x\"") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
}

Test(ctl_cfg, log_level_and_listen_urls_are_validated)
{
    ctl_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--llm-backend-endpoints", "h:1", "--log-level", "loud"),
                 GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "--log-level must be") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
    cr_assert_eq(
        RUN(&cfg, &text, "--llm-backend-endpoints", "h:1", "--rep-listen", "tcp://0.0.0.0:7701"),
        GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "must differ") != NULL, "%s", text);
    gw_cfg_free(ctl_cfg_opts, &cfg);
    free(text);
}
