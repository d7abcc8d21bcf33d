/* reg_cfg: llmgw-register's options (docs/discovery.md lists them) and the
 * registration record they describe. The store flags and environment
 * variables are the controller's (seed 004: --discovery-redis-*,
 * --discovery-etcd-*), so one environment can configure both; the record
 * fields have their own LLMGW_REGISTER_* variables for a sidecar. */
#ifndef REG_CFG_H
#define REG_CFG_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_disc_rec.h"
#include "gw/gw_cfg.h"

typedef struct reg_cfg {
    char *discovery; /* redis | etcd */
    /* the record */
    char *id; /* "" = $POD_NAME, else <hostname>-<port> */
    char *model;
    char *ip;
    uint16_t port;
    uint16_t metric_port;
    char *role;
    char *engine;
    char *roleset;
    /* behaviour */
    uint64_t refresh_ms; /* 0 = a third of the TTL */
    char *health_path;   /* "" = no engine health check */
    uint64_t health_timeout_ms;
    char *log_level;
    /* redis */
    char *redis_host;
    uint16_t redis_port;
    char *redis_username;
    char *redis_password;
    double redis_socket_timeout_s;
    int64_t redis_retry_times;
    uint64_t redis_status_ttl_ms;
    uint64_t redis_refresh_ms; /* the controller's; sizes the goodbye record's TTL */

    /* etcd */
    char *etcd_endpoints;
    char *etcd_username;
    char *etcd_password;
    double etcd_dial_timeout_s;
    int64_t etcd_lease_ttl_s;
} reg_cfg;

extern const gw_cfg_opt reg_cfg_opts[];

/* The gw_cfg validate callback. */
void reg_cfg_validate(const void *cfg, gw_cfg_errs *errs);

/* The registration TTL in ms (Redis status TTL or etcd lease TTL). */
uint64_t reg_cfg_ttl_ms(const reg_cfg *cfg);

/* How often the registration is refreshed: --refresh-interval, else a third
 * of the TTL (at least 100 ms). */
uint64_t reg_cfg_period_ms(const reg_cfg *cfg);

/* Fills zeroed <rec> from <cfg> with timestamp <now_ms>; the id is
 * resolved as documented above. Free with ctl_disc_rec_fini. */
void reg_cfg_record(const reg_cfg *cfg, uint64_t now_ms, ctl_disc_rec *rec);

#endif
