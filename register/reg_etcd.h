/* reg_etcd: llmgw-register's etcd client over the v3 JSON gateway with
 * blocking libcurl easy calls (a one-task sidecar; see reg_redis.h).
 *
 * The registration is one key with a lease of --discovery-etcd-lease-ttl.
 * Every refresh keeps the lease alive (/v3/lease/keepalive) and puts the
 * record with a fresh timestamp; a lease etcd no longer knows (it expired
 * during an outage, or the cluster restarted without its data) is replaced
 * by a new grant and the record put again, so re-registration after data
 * loss takes one refresh. Each call tries the members in order from the
 * last one that answered; the auth token is fetched again when refused. */
#ifndef REG_ETCD_H
#define REG_ETCD_H

#include "gw/gw_err.h"
#include "reg_cfg.h"

typedef struct reg_etcd reg_etcd;

/* <cfg> is borrowed (validated). NULL only for an unusable endpoint list,
 * which validation already refused. */
reg_etcd *reg_etcd_new(const reg_cfg *cfg);
void reg_etcd_free(reg_etcd *e);

/* Keeps the lease and puts <key> = <value>. GW_EIO when no member took it. */
GW_MUST_CHECK gw_err reg_etcd_refresh(reg_etcd *e, const char *key, const char *value);

/* Revokes the lease (etcd deletes the key, and watchers see a DELETE at
 * once); without a lease deletes the key. */
GW_MUST_CHECK gw_err reg_etcd_deregister(reg_etcd *e, const char *key);

#endif
