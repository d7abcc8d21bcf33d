/* ctl_disc_opts: the discovery store options of seed 004, shared by the
 * controller's and llmgw-register's option tables so names, environment
 * variables, defaults and bounds cannot drift apart. <st> is the config
 * struct; it must have the fields named below (types as gw_cfg checks). */
#ifndef CTL_DISC_OPTS_H
#define CTL_DISC_OPTS_H

#include "gw/gw_cfg.h"

#define CTL_DISC_STORE_OPTS(st)                                                                    \
    GW_CFG_STR("discovery-redis-host", "LLMGW_DISCOVERY_REDIS_HOST", st, redis_host, "redis",      \
               "Redis host of the discovery store"),                                               \
        GW_CFG_U16("discovery-redis-port", "LLMGW_DISCOVERY_REDIS_PORT", st, redis_port, 6379, 1,  \
                   65535, "Redis port of the discovery store"),                                    \
        GW_CFG_STR("discovery-redis-username", "LLMGW_DISCOVERY_REDIS_USERNAME", st,               \
                   redis_username, "", "Redis ACL user (AUTH user password); empty = none"),       \
        GW_CFG_SECRET("discovery-redis-password", "LLMGW_DISCOVERY_REDIS_PASSWORD", st,            \
                      redis_password, "Redis password; empty = no AUTH"),                          \
        GW_CFG_DBL("discovery-redis-socket-timeout", "LLMGW_DISCOVERY_REDIS_SOCKET_TIMEOUT", st,   \
                   redis_socket_timeout_s, 1.0, 0.01, 600.0,                                       \
                   "Seconds allowed for connecting and for each Redis command"),                   \
        GW_CFG_INT("discovery-redis-retry-times", "LLMGW_DISCOVERY_REDIS_RETRY_TIMES", st,         \
                   redis_retry_times, 1, 0, 100,                                                   \
                   "Immediate retries of a failed Redis refresh or write"),                        \
        GW_CFG_MS("discovery-redis-status-ttl-ms", "LLMGW_DISCOVERY_REDIS_STATUS_TTL_MS", st,      \
                  redis_status_ttl_ms, 60000, 100, 86400000,                                       \
                  "Registration TTL: the registrar's PX, the controller's age limit"),             \
        GW_CFG_MS("discovery-redis-refresh-interval-ms",                                           \
                  "LLMGW_DISCOVERY_REDIS_REFRESH_INTERVAL_MS", st, redis_refresh_ms, 1000, 10,     \
                  3600000, "How often the controller re-reads the instance list (SCAN + MGET)"),   \
        GW_CFG_STR("discovery-etcd-endpoints", "LLMGW_DISCOVERY_ETCD_ENDPOINTS", st,               \
                   etcd_endpoints, "etcd:2379",                                                    \
                   "etcd members host:port (or http://host:port), comma-separated; a failing "     \
                   "member is left for the next"),                                                 \
        GW_CFG_STR("discovery-etcd-username", "LLMGW_DISCOVERY_ETCD_USERNAME", st, etcd_username,  \
                   "", "etcd user (token from /v3/auth/authenticate); empty = no auth"),           \
        GW_CFG_SECRET("discovery-etcd-password", "LLMGW_DISCOVERY_ETCD_PASSWORD", st,              \
                      etcd_password, "etcd password"),                                             \
        GW_CFG_DBL("discovery-etcd-dial-timeout", "LLMGW_DISCOVERY_ETCD_DIAL_TIMEOUT", st,         \
                   etcd_dial_timeout_s, 5.0, 0.01, 600.0,                                          \
                   "Seconds allowed to connect to one etcd member (requests get twice this)"),     \
        GW_CFG_INT("discovery-etcd-lease-ttl", "LLMGW_DISCOVERY_ETCD_LEASE_TTL", st,               \
                   etcd_lease_ttl_s, 60, 1, 86400,                                                 \
                   "Lease TTL in seconds; the controller also keeps an instance that vanished "    \
                   "with the store's data this long")

#endif
