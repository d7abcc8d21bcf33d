/* ctl_src_redis: the `redis` discovery source (seed 004, Llumnix's Redis
 * resolver). Every --discovery-redis-refresh-interval-ms it lists the keys
 * `llumnix:discovery:*` with SCAN (never KEYS, which blocks Redis), reads
 * them with MGET and feeds ctl_disc_table (records of ctl_disc_rec.h, age
 * limit --discovery-redis-status-ttl-ms); a changed table replaces the
 * store's CTL_SRC_REDIS set.
 *
 * Unlike Llumnix, which exits on any Redis error, a failed refresh keeps the
 * last known instance list: after --discovery-redis-retry-times immediate
 * retries the store counts as down (CTL-DISCOVERY-STALE, logged once;
 * llmgw_controller_discovery_store_up{source="redis"} 0), refreshes go on at
 * the normal interval, and the first good one logs CTL-DISCOVERY-RECOVERED
 * and gives every instance one more TTL (ctl_disc_table_grace), so an outage
 * never expires registrations by itself. The controller never deletes keys
 * (Llumnix's consumers DEL expired ones; our registrar writes them with a
 * PX TTL so Redis does). Loop thread only. */
#ifndef CTL_SRC_REDIS_H
#define CTL_SRC_REDIS_H

#include <stdint.h>

#include "ctl_metrics.h"
#include "ctl_store.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct ctl_src_redis_opts {
    const char *host; /* all borrowed for the call */
    uint16_t port;
    const char *username; /* "" = none */
    const char *password; /* "" = no AUTH */
    uint64_t timeout_ms;  /* connect and each command */
    unsigned retry_times; /* immediate retries of a failed refresh */
    uint64_t ttl_ms;      /* record age limit */
    uint64_t refresh_ms;
} ctl_src_redis_opts;

typedef struct ctl_src_redis ctl_src_redis;

/* Starts connecting and refreshing (the first refresh runs at once). The
 * store and metrics are borrowed for the source's life. GW_EINVAL: no host. */
GW_MUST_CHECK gw_err ctl_src_redis_start(gw_loop *loop, ctl_store *store, ctl_metrics *metrics,
                                         const ctl_src_redis_opts *opts, ctl_src_redis **out);

/* Stops and frees (in-flight commands are cancelled). NULL ok. */
void ctl_src_redis_free(ctl_src_redis *s);

#endif
