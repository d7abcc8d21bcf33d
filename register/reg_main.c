/* reg_main: llmgw-register, the sidecar that registers one engine in the
 * redis or etcd discovery store (docs/discovery.md) and keeps it fresh.
 *
 * Every refresh period (a third of the TTL unless set) it checks the
 * engine's health path and, when healthy, writes the record with a new
 * timestamp: Redis SET ... PX <status-ttl>, etcd keepalive + put under a
 * lease. A store that lost its data gets the record back on the next
 * refresh (etcd: a new lease). A failed refresh is retried after a second
 * rather than a whole period. On SIGTERM/SIGINT it says goodbye and exits 0:
 * etcd revokes the lease (the key goes at once); Redis writes the record
 * with "draining": true and a short TTL, so controllers stop sending new
 * requests at their next refresh instead of keeping a vanished instance
 * until its TTL (see ctl_disc_table). Exit 1 on bad options. */
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_disc_rec.h"
#include "ctl_util.h"
#include "gw/gw_cfg.h"
#include "gw/gw_log.h"
#include "gw/gw_loop.h"
#include "gw/gw_mem.h"
#include "reg_cfg.h"
#include "reg_etcd.h"
#include "reg_redis.h"

#ifndef GW_VERSION
#define GW_VERSION "0.1.0-dev"
#endif

/* Retry delay after a failed refresh. */
#define RETRY_MS 1000

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* GET (not HEAD: vLLM's /health, like the mock, answers HEAD with 405). */
static bool
engine_healthy(const reg_cfg *cfg)
{
    CURL *c;
    char *url;
    long status = 0;
    CURLcode rc;

    if (cfg->health_path[0] == '\0')
        return true;
    c = curl_easy_init();
    if (c == NULL)
        return false;
    url = strchr(cfg->ip, ':') != NULL
              ? ctl_strf("http://[%s]:%u%s", cfg->ip, cfg->port, cfg->health_path)
              : ctl_strf("http://%s:%u%s", cfg->ip, cfg->port, cfg->health_path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->health_timeout_ms);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    free(url);
    return status == 200;
}

/* Sleeps up to <ms>; returns the signal that ended it, or 0. */
static int
wait_signal(const sigset_t *set, uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);

    return sig > 0 ? sig : 0;
}

int
main(int argc, char **argv)
{
    reg_cfg cfg = {0};
    gw_cfg_prog prog = {
        .name = "llmgw-register",
        .version = GW_VERSION,
        .summary = "registers one inference engine in llmgw's redis or etcd discovery store and "
                   "keeps the registration fresh until SIGTERM",
        .validate = reg_cfg_validate,
    };
    bool etcd, healthy_before = true, ok_before = false;
    reg_redis *redis = NULL;
    reg_etcd *et = NULL;
    ctl_disc_rec rec = {0};
    sigset_t set;
    char *key = NULL;
    int sig = 0;
    uint64_t ttl, period;

    gw_log_set_proc("reg");
    switch (gw_cfg_parse(reg_cfg_opts, &cfg, &prog, argc, argv)) {
    case GW_CFG_RUN:
        break;
    case GW_CFG_EXIT_OK:
        return 0;
    case GW_CFG_EXIT_ERR:
        return 1;
    }
    (void)gw_log_parse_level(cfg.log_level, &gw_log_level); /* validated */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL); /* delivered through sigtimedwait */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    etcd = strcmp(cfg.discovery, "etcd") == 0;
    ttl = reg_cfg_ttl_ms(&cfg);
    period = reg_cfg_period_ms(&cfg);
    reg_cfg_record(&cfg, gw_wall_ms(), &rec);
    key = ctl_strf("%s%s", etcd ? CTL_DISC_ETCD_PREFIX : CTL_DISC_REDIS_PREFIX, rec.id);
    if (etcd)
        et = reg_etcd_new(&cfg);
    else
        redis = reg_redis_new(&cfg);
    gw_log(GW_LOG_NOTICE, "REG-START",
           "store=%s key=%s model=%s addr=%s:%u ttl_ms=%llu period_ms=%llu", cfg.discovery, key,
           rec.model, rec.ip, (unsigned)rec.port, (unsigned long long)ttl,
           (unsigned long long)period);

    while (sig == 0) {
        bool healthy = engine_healthy(&cfg), ok = false;
        char *val;

        if (healthy != healthy_before)
            gw_log(healthy ? GW_LOG_NOTICE : GW_LOG_WARN, "REG-HEALTH", "healthy=%d msg=\"%s\"",
                   (int)healthy,
                   healthy ? "engine healthy again" : "engine unhealthy: not refreshing");
        healthy_before = healthy;
        if (healthy) {
            rec.timestamp_ms = (int64_t)gw_wall_ms();
            val = ctl_disc_rec_encode(&rec);
            ok = (etcd ? reg_etcd_refresh(et, key, val) : reg_redis_set(redis, key, val, ttl)) ==
                 GW_OK;
            free(val);
            if (ok != ok_before)
                gw_log(ok ? GW_LOG_NOTICE : GW_LOG_WARN, "REG-REFRESH", "ok=%d key=%s", (int)ok,
                       key);
            ok_before = ok;
        }
        sig = wait_signal(&set, ok || !healthy ? period : (period < RETRY_MS ? period : RETRY_MS));
    }

    /* Goodbye (see the file comment). */
    if (etcd) {
        if (reg_etcd_deregister(et, key) != GW_OK)
            gw_log(GW_LOG_WARN, "REG-DEREGISTER", "msg=\"etcd did not take the revoke\"");
    } else {
        uint64_t bye = cfg.redis_refresh_ms * 5 < 5000 ? 5000 : cfg.redis_refresh_ms * 5;
        char *val;
        rec.draining = true;
        rec.timestamp_ms = (int64_t)gw_wall_ms();
        val = ctl_disc_rec_encode(&rec);
        if (reg_redis_set(redis, key, val, bye < ttl ? bye : ttl) != GW_OK)
            gw_log(GW_LOG_WARN, "REG-DEREGISTER", "msg=\"redis did not take the goodbye\"");
        free(val);
    }
    gw_log(GW_LOG_NOTICE, "REG-EXIT", "signal=%s key=%s", sig == SIGTERM ? "TERM" : "INT", key);
    reg_etcd_free(et);
    reg_redis_free(redis);
    ctl_disc_rec_fini(&rec);
    free(key);
    curl_global_cleanup();
    gw_cfg_free(reg_cfg_opts, &cfg);
    return 0;
}
