/* reg_redis: llmgw-register's Redis writer. Blocking hiredis calls with
 * the socket timeout: the registrar is a one-task sidecar with nothing else
 * to serve while a write waits, so an event loop would buy nothing. A
 * failed call drops the connection; the next call reconnects. */
#ifndef REG_REDIS_H
#define REG_REDIS_H

#include <stdint.h>

#include "gw/gw_err.h"
#include "reg_cfg.h"

typedef struct reg_redis reg_redis;

/* <cfg> is borrowed for the writer's life. Connects lazily. */
reg_redis *reg_redis_new(const reg_cfg *cfg);
void reg_redis_free(reg_redis *r);

/* SET <key> <value> PX <ttl_ms>, with --discovery-redis-retry-times retries
 * (reconnecting in between). GW_EIO when every try failed (logged). */
GW_MUST_CHECK gw_err reg_redis_set(reg_redis *r, const char *key, const char *value,
                                   uint64_t ttl_ms);

#endif
