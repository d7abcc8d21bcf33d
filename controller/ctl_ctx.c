/* ctl_ctx: builds, runs and tears down the controller (see ctl_ctx.h). The
 * order matters twice: the sockets and the HTTP port are bound before any
 * source runs, so a port clash fails start before anything is published;
 * and teardown runs in reverse, so no timer or socket callback can fire
 * into a freed module. */
#include "ctl_ctx.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ctl_http.h"
#include "ctl_src_endpoints.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

/* A random 64-bit epoch per process (never 0, which means "unknown"). */
static uint64_t
new_epoch(void)
{
    uint64_t e = 0;

    if (getrandom(&e, sizeof(e), GRND_NONBLOCK) != (ssize_t)sizeof(e))
        e = gw_wall_ms() ^ ((uint64_t)getpid() << 32) ^ gw_now_us();
    return e != 0 ? e : 1;
}

void
ctl_ctx_compile(ctl_ctx *ctx)
{
    const pm_snapshot *snap;
    bool changed = false;

    if (!ctl_store_take_dirty(ctx->store))
        return;
    if (ctl_compile_run(ctx->compile, ctx->store, gw_wall_ms(), &changed) != GW_OK)
        return; /* logged; the current snapshot stays */
    if (!changed) {
        gw_log(GW_LOG_INFO, "CTL-SNAP-SAME", "gen=%llu msg=\"content unchanged\"",
               (unsigned long long)ctl_compile_gen(ctx->compile));
        return;
    }
    snap = ctl_compile_current(ctx->compile);
    ctl_publish_snapshot(ctx->publish);
    ctl_metrics_snapshot(ctx->metrics, snap);
    gw_log(GW_LOG_NOTICE, "CTL-SNAP-PUBLISH", "gen=%llu models=%u endpoints=%u",
           (unsigned long long)snap->env.gen, snap->n_models, snap->n_endpoints);
}

static void
on_debounce(gw_loop *loop, void *arg)
{
    (void)loop;
    ctl_ctx_compile(arg);
}

/* The mirror file changed: a new generation carries it. */
static void
on_mirror_change(const char *text, void *arg)
{
    ctl_ctx *ctx = arg;

    ctl_compile_set_mirror(ctx->compile, text);
    ctl_store_touch(ctx->store);
}

/* A source changed: compile after the debounce delay. The timer is not
 * re-armed while pending, so a burst of changes costs one compile. */
static void
on_store_change(ctl_store *st, void *arg)
{
    ctl_ctx *ctx = arg;
    (void)st;

    if (!gw_timer_is_active(ctx->debounce))
        gw_timer_start(ctx->debounce, ctx->cfg->debounce_ms);
}

static void
stop_now(void *arg)
{
    ctl_ctx *ctx = arg;

    gw_loop_stop(ctx->loop);
}

static void
on_stop_deadline(gw_loop *loop, void *arg)
{
    (void)loop;
    gw_log(GW_LOG_WARN, "CTL-STOP-DEADLINE", "msg=\"the Lease release did not finish\"");
    stop_now(arg);
}

/* SIGTERM/SIGINT: a leader first hands its Lease over (so a standby takes
 * over at once, not a lease duration later), within one second. */
static void
on_stop_signal(gw_loop *loop, int signo, void *arg)
{
    ctl_ctx *ctx = arg;
    (void)loop;

    gw_log(GW_LOG_NOTICE, "CTL-STOP", "signal=%s", signo == SIGTERM ? "TERM" : "INT");
    if (ctx->leader == NULL || ctx->stop_timer != NULL) {
        stop_now(ctx);
        return;
    }
    ctx->stop_timer = gw_timer_new(ctx->loop, on_stop_deadline, ctx);
    gw_timer_start(ctx->stop_timer, 1000);
    ctl_leader_release(ctx->leader, stop_now, ctx);
}

/* Leadership changed: only the leader writes to Kubernetes and serves
 * workers (DESIGN §3). */
static void
on_leader(void *arg, bool leading)
{
    ctl_ctx *ctx = arg;

    ctx->standby = !leading;
    ctl_publish_set_standby(ctx->publish, !leading);
    ctl_kevent_enable(ctx->kevents, leading);
    ctl_httproute_set_leading(ctx->routes, leading);
}

static void
on_hup(gw_loop *loop, int signo, void *arg)
{
    ctl_ctx *ctx = arg;
    (void)loop;
    (void)signo;

    if (ctx->src_file != NULL) {
        gw_log(GW_LOG_NOTICE, "CTL-RELOAD", "msg=\"SIGHUP: re-reading the config file\"");
        ctl_src_file_reload(ctx->src_file);
    }
}

/* This process's name in Events and the Lease: the flag, else $POD_NAME or
 * the host name with a random suffix (two processes on one host differ). */
static char *
make_identity(const ctl_cfg *cfg)
{
    const char *pod = getenv("POD_NAME");
    char host[256] = "llmgw-controller";
    uint32_t r = 0;

    if (cfg->leader_elect_identity != NULL && cfg->leader_elect_identity[0] != '\0')
        return gw_xstrdup(cfg->leader_elect_identity);
    if (pod != NULL && pod[0] != '\0')
        gw_strlcpy(host, pod, sizeof(host));
    else if (gethostname(host, sizeof(host) - 1) != 0)
        gw_strlcpy(host, "llmgw-controller", sizeof(host));
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)gw_now_us();
    return ctl_strf("%s_%08x", host, (unsigned)r);
}

/* The kubernetes source: the API client, the Event recorder and the
 * watches. */
static gw_err
start_kube(ctl_ctx *ctx)
{
    const ctl_cfg *cfg = ctx->cfg;
    ctl_kube_conf kc = {0};
    ctl_kube_opts ko = {.request_timeout_ms = cfg->kube_request_timeout_ms};
    char *why = NULL, *ua;
    char q[512];
    gw_err rc;

    rc = ctl_kube_conf_load(cfg->kubeconfig, cfg->kube_context, cfg->kube_sa_dir, &kc, &why);
    if (rc != GW_OK) {
        gw_log(GW_LOG_ERR, "CTL-KUBE-CONFIG", "msg=%s", gw_log_q(q, sizeof(q), why));
        free(why);
        return rc;
    }
    /* The identity in the User-Agent tells replicas apart in audit logs. */
    ctx->identity = make_identity(cfg);
    ua = ctl_strf("llmgw-controller/%s (%s)", GW_VERSION, ctx->identity);
    ko.user_agent = ua;
    rc = ctl_kube_new(ctx->loop, &kc, &ko, ctx->metrics, &ctx->kube);
    free(ua);
    gw_log(GW_LOG_NOTICE, "CTL-KUBE-CONFIG", "server=%s origin=%s namespace=%s", kc.server,
           gw_log_q(q, sizeof(q), kc.origin), kc.ns);
    ctl_kube_conf_fini(&kc);
    if (rc != GW_OK)
        return rc;
    ctx->config_ns = gw_xstrdup(cfg->kube_config_ns != NULL && cfg->kube_config_ns[0] != '\0'
                                    ? cfg->kube_config_ns
                                    : ctl_kube_namespace(ctx->kube));
    ctx->kevents = ctl_kevent_new(ctx->kube, ctx->metrics, ctx->identity);
    ctl_kevent_enable(ctx->kevents, !ctx->standby);
    ctl_src_kube_opts so = {
        .namespaces = cfg->kube_namespaces,
        .pod_selector = cfg->kube_pod_selector,
        .config_ns = ctx->config_ns,
        .configmap = cfg->kube_configmap,
        .configmap_key = cfg->kube_configmap_key,
        .secret = cfg->kube_secret,
        .secret_key = cfg->kube_secret_key,
        .watch_timeout_ms = cfg->kube_watch_timeout_ms,
        .backoff_initial_ms = cfg->kube_backoff_initial_ms,
        .backoff_max_ms = cfg->kube_backoff_max_ms,
    };
    rc = ctl_src_kube_start(ctx->loop, ctx->kube, ctx->store, ctx->metrics, ctx->kevents, &so,
                            &ctx->src_kube);
    if (rc != GW_OK)
        return rc;
    if (cfg->manage_httproutes || cfg->httproute_status) {
        ctl_httproute_opts ro = {
            .manage = cfg->manage_httproutes,
            .namespaces = cfg->kube_namespaces,
            .gateway_name = cfg->gateway_name,
            .gateway_ns = cfg->gateway_namespace != NULL && cfg->gateway_namespace[0] != '\0'
                              ? cfg->gateway_namespace
                              : ctx->config_ns,
            .controller_name = cfg->gateway_controller_name,
            .request_timeout_ms = cfg->httproute_timeout_ms,
            .watch_timeout_ms = cfg->kube_watch_timeout_ms,
            .backoff_initial_ms = cfg->kube_backoff_initial_ms,
            .backoff_max_ms = cfg->kube_backoff_max_ms,
        };
        rc = ctl_httproute_start(ctx->loop, ctx->kube, ctx->metrics, ctx->src_kube, &ro,
                                 &ctx->routes);
        if (rc != GW_OK)
            return rc;
        ctl_httproute_set_leading(ctx->routes, !ctx->standby);
    }
    if (cfg->leader_elect) {
        ctl_leader_opts lo = {
            .ns = ctx->config_ns,
            .name = cfg->leader_elect_lease,
            .identity = ctx->identity,
            .lease_duration_ms = cfg->lease_duration_ms,
            .renew_deadline_ms = cfg->renew_deadline_ms,
            .retry_period_ms = cfg->retry_period_ms,
        };
        ctl_publish_set_standby(ctx->publish, true);
        rc =
            ctl_leader_start(ctx->loop, ctx->kube, ctx->metrics, &lo, on_leader, ctx, &ctx->leader);
    }
    return rc;
}

/* The redis or etcd source (docs/discovery.md). */
static gw_err
start_store_source(ctl_ctx *ctx)
{
    const ctl_cfg *cfg = ctx->cfg;
    char q[512];
    char *why = NULL;
    gw_err rc;

    if (ctx->discovery == CTL_DISC_REDIS) {
        ctl_src_redis_opts ro = {
            .host = cfg->redis_host,
            .port = cfg->redis_port,
            .username = cfg->redis_username,
            .password = cfg->redis_password,
            .timeout_ms = (uint64_t)(cfg->redis_socket_timeout_s * 1000.0),
            .retry_times = (unsigned)cfg->redis_retry_times,
            .ttl_ms = cfg->redis_status_ttl_ms,
            .refresh_ms = cfg->redis_refresh_ms,
        };
        rc = ctl_src_redis_start(ctx->loop, ctx->store, ctx->metrics, &ro, &ctx->src_redis);
        if (rc != GW_OK)
            gw_log(GW_LOG_ERR, "CTL-REDIS-START", "err=%s", gw_strerror(rc));
        return rc;
    }
    ctl_src_etcd_opts eo = {
        .endpoints = cfg->etcd_endpoints,
        .username = cfg->etcd_username,
        .password = cfg->etcd_password,
        .dial_timeout_ms = (uint64_t)(cfg->etcd_dial_timeout_s * 1000.0),
        .lease_ttl_ms = (uint64_t)cfg->etcd_lease_ttl_s * 1000,
        .refresh_ms = (uint64_t)cfg->etcd_refresh_s * 1000,
    };
    rc = ctl_src_etcd_start(ctx->loop, ctx->store, ctx->metrics, &eo, &ctx->src_etcd, &why);
    if (rc != GW_OK) {
        gw_log(GW_LOG_ERR, "CTL-ETCD-START", "msg=%s", gw_log_q(q, sizeof(q), why));
        free(why);
    }
    return rc;
}

gw_err
ctl_ctx_init(ctl_ctx *ctx, const ctl_cfg *cfg)
{
    ctl_publish_opts po = {
        .pub_url = cfg->pub_listen,
        .rep_url = cfg->rep_listen,
        .pull_url = cfg->pull_listen,
        .load_interval_ms = cfg->load_interval_ms,
    };
    ctl_scrape_opts so = {
        .interval_ms = cfg->scrape_interval_ms,
        .timeout_ms = cfg->scrape_timeout_ms,
        .concurrency = (unsigned)cfg->scrape_concurrency,
        .stale_after_ms = cfg->metrics_stale_ms,
        .adapter_refresh_ms = cfg->adapter_refresh_ms,
        .max_body = (size_t)cfg->scrape_max_bytes,
        .engine_api_key = cfg->engine_api_key,
    };
    char q[512];
    char *why = NULL;
    gw_err rc;

    ctx->cfg = cfg;
    ctx->standby = cfg->leader_elect;
    rc = ctl_cfg_discovery(cfg, &ctx->discovery, &why);
    if (rc != GW_OK) {
        gw_log(GW_LOG_ERR, "CTL-START-DISCOVERY", "msg=%s", gw_log_q(q, sizeof(q), why));
        free(why);
        return rc;
    }
    rc = gw_loop_new(&ctx->loop);
    if (rc != GW_OK)
        goto fail;
    ctx->metrics = ctl_metrics_new(GW_VERSION);
    ctx->store = ctl_store_new();
    ctx->compile = ctl_compile_new(gw_wall_ms(), new_epoch());
    ctx->load = ctl_load_new(cfg->worker_expiry_ms);
    ctx->debounce = gw_timer_new(ctx->loop, on_debounce, ctx);
    ctl_store_on_change(ctx->store, on_store_change, ctx);
    ctl_compile_set_traffic(ctx->compile, cfg->route_policy, cfg->route_config);
    ctx->mirror = ctl_mirror_new(ctx->loop, cfg->mirror_path, cfg->mirror_reload_ms, ctx->metrics,
                                 on_mirror_change, ctx);
    ctl_compile_set_mirror(ctx->compile, ctl_mirror_text(ctx->mirror));
    if (cfg->route_policy[0] != '\0')
        gw_log(GW_LOG_NOTICE, "CTL-TRAFFIC", "policy=%s msg=\"route config published to workers\"",
               cfg->route_policy);

    rc = gw_loop_on_signal(ctx->loop, SIGTERM, on_stop_signal, ctx);
    if (rc == GW_OK)
        rc = gw_loop_on_signal(ctx->loop, SIGINT, on_stop_signal, ctx);
    if (rc == GW_OK)
        rc = gw_loop_on_signal(ctx->loop, SIGHUP, on_hup, ctx);
    if (rc != GW_OK)
        goto fail;
    rc = ctl_publish_start(ctx->loop, &po, ctx->compile, ctx->load, ctx->metrics, &ctx->publish);
    if (rc != GW_OK)
        goto fail;
    rc = ctl_http_start(ctx, cfg->http_host, cfg->http_port, &ctx->http);
    if (rc != GW_OK)
        goto fail;
    rc = ctl_scrape_start(ctx->loop, &so, ctx->compile, ctx->store, ctx->metrics, &ctx->scrape);
    if (rc != GW_OK)
        goto fail;
    ctl_load_set_signals(ctx->load, ctl_scrape_signals, ctx->scrape);

    if (ctx->discovery == CTL_DISC_FILE) {
        if (cfg->endpoints != NULL && cfg->endpoints[0] != '\0')
            gw_log(GW_LOG_WARN, "CTL-START-IGNORED",
                   "msg=\"--llm-backend-endpoints is ignored with the file source\"");
        rc = ctl_src_file_start(ctx->loop, ctx->store, ctx->metrics, cfg->config, cfg->file_poll_ms,
                                &ctx->src_file);
    } else if (ctx->discovery == CTL_DISC_KUBERNETES) {
        rc = start_kube(ctx);
    } else if (ctx->discovery == CTL_DISC_REDIS || ctx->discovery == CTL_DISC_ETCD) {
        rc = start_store_source(ctx);
    } else {
        if (cfg->config != NULL && cfg->config[0] != '\0')
            gw_log(GW_LOG_WARN, "CTL-START-IGNORED",
                   "msg=\"--config is ignored with the endpoints source\"");
        rc = ctl_src_endpoints_start(ctx->store, cfg->endpoints, cfg->backend_model, &why);
        if (rc != GW_OK) {
            gw_log(GW_LOG_ERR, "CTL-ENDPOINTS-INVALID", "msg=%s", gw_log_q(q, sizeof(q), why));
            ctl_metrics_config_error(ctx->metrics, "endpoints");
            free(why);
        }
    }
    if (rc != GW_OK)
        goto fail;

    gw_log(GW_LOG_NOTICE, "CTL-START",
           "version=%s discovery=%s pub=%s rep=%s pull=%s http=%s:%u epoch=%016llx", GW_VERSION,
           ctl_discovery_name(ctx->discovery), cfg->pub_listen, cfg->rep_listen, cfg->pull_listen,
           cfg->http_host, (unsigned)ctl_http_port(ctx->http),
           (unsigned long long)ctl_compile_epoch(ctx->compile));
    return GW_OK;
fail:
    ctl_ctx_fini(ctx);
    return rc != GW_OK ? rc : GW_EIO;
}

gw_err
ctl_ctx_run(ctl_ctx *ctx)
{
    return gw_loop_run(ctx->loop);
}

void
ctl_ctx_fini(ctl_ctx *ctx)
{
    ctl_src_file_free(ctx->src_file);
    ctx->src_file = NULL;
    ctl_src_redis_free(ctx->src_redis);
    ctx->src_redis = NULL;
    ctl_src_etcd_free(ctx->src_etcd);
    ctx->src_etcd = NULL;
    ctl_leader_free(ctx->leader);
    ctx->leader = NULL;
    gw_timer_free(ctx->stop_timer);
    ctx->stop_timer = NULL;
    ctl_httproute_free(ctx->routes);
    ctx->routes = NULL;
    ctl_src_kube_free(ctx->src_kube);
    ctx->src_kube = NULL;
    ctl_kevent_free(ctx->kevents);
    ctx->kevents = NULL;
    /* Last of the Kubernetes parts: cancels whatever request is in flight. */
    ctl_kube_free(ctx->kube);
    ctx->kube = NULL;
    GW_FREE(ctx->identity);
    GW_FREE(ctx->config_ns);
    ctl_http_free(ctx->http);
    ctx->http = NULL;
    ctl_publish_free(ctx->publish);
    ctx->publish = NULL;
    /* No load tick can run any more: unhook and free the scraper. */
    if (ctx->load != NULL)
        ctl_load_set_signals(ctx->load, NULL, NULL);
    ctl_scrape_free(ctx->scrape);
    ctx->scrape = NULL;
    gw_timer_free(ctx->debounce);
    ctx->debounce = NULL;
    ctl_load_free(ctx->load);
    ctx->load = NULL;
    ctl_compile_free(ctx->compile);
    ctx->compile = NULL;
    ctl_mirror_free(ctx->mirror);
    ctx->mirror = NULL;
    ctl_store_free(ctx->store);
    ctx->store = NULL;
    ctl_metrics_free(ctx->metrics);
    ctx->metrics = NULL;
    gw_loop_free(ctx->loop);
    ctx->loop = NULL;
}
