/* ut_redis: a real redis-server for tests, forked on a free 127.0.0.1 port
 * (no persistence, quiet), stopped and restarted on the same port. Tests
 * skip themselves when redis-server is not installed (ut_redis_available).
 * Also: run a gw_loop until a condition holds. */
#ifndef UT_REDIS_H
#define UT_REDIS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "gw/gw_loop.h"

typedef struct ut_redis {
    pid_t pid; /* 0 when not running */
    uint16_t port;
    char password[64]; /* empty: no requirepass */
} ut_redis;

/* True if a redis-server executable is on PATH. */
bool ut_redis_available(void);
/* Starts redis-server (on <r->port> if set, else a free port) and waits
 * until it accepts connections (5 s at most). */
bool ut_redis_start(ut_redis *r);
/* SIGTERM and wait. No-op when not running. */
void ut_redis_stop(ut_redis *r);

/* Runs <loop> until <cond>(<arg>) is true (checked every 5 ms) or
 * <timeout_ms> passed; returns the last value of <cond>. */
bool ut_loop_until(gw_loop *loop, bool (*cond)(void *arg), void *arg, uint64_t timeout_ms);
/* Runs <loop> for <ms>. */
void ut_loop_for(gw_loop *loop, uint64_t ms);

#endif
