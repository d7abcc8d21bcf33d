/* gw_redis: one Redis connection on gw_loop, through the hiredis 0.14 async
 * API (DESIGN §2). It resolves the host without blocking the loop
 * (getaddrinfo_a), connects, authenticates (AUTH [<username>] <password>, or a PING when
 * there is none), reconnects with exponential backoff when the connection
 * fails or drops, and runs commands with a callback and a deadline.
 *
 * hiredis 0.14 has no async timeouts (no redisAsyncSetTimeout), so they are
 * gw_timers here: the connect deadline covers resolve + TCP connect + the
 * AUTH/PING answer, and every command has its own deadline. Redis answers a
 * connection's commands in order and one command cannot be cancelled, so a
 * command that misses its deadline means the connection is unusable: it is
 * closed (every pending command completes, the late one with GW_ETIMEDOUT,
 * the others with GW_ECLOSED) and a reconnect is scheduled. A blocking
 * command (XREAD BLOCK, BLPOP) therefore needs a deadline longer than its
 * block time, and usually a connection of its own.
 *
 * hiredis return codes, reply types and ac->err are translated here, once:
 *   GW_OK        a reply that is not an error reply
 *   GW_EPROTO    an error reply (-ERR ...): reply->str holds the message
 *   GW_ECLOSED   no reply: the connection was lost, closed by
 *                gw_redis_free, or is not up (the command was not sent)
 *   GW_ETIMEDOUT no reply within the command's deadline
 * and the original error text is logged (rate-limited), never a password.
 *
 * Lifetimes. A reply (struct redisReply from <hiredis/hiredis.h>) belongs to
 * hiredis and dies when the callback returns: copy what you keep. The
 * callback contract is the project's (STYLE §4): when gw_redis_command
 * returns an error the callback never runs; when it returns GW_OK the
 * callback runs exactly once, also when the connection is lost and when
 * gw_redis_free runs (GW_ECLOSED).
 *
 * The process must ignore SIGPIPE (hiredis writes with write(2): a peer that
 * closed would otherwise kill it); llmgw's binaries do.
 *
 * Threads: loop thread only. gw_redis_free must not be called from inside
 * one of this connection's callbacks (reply or state): hiredis is still on
 * the stack there. Defer it (a zero-delay gw_timer) instead. */
#ifndef GW_REDIS_H
#define GW_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "gw/gw_loop.h"

struct redisReply; /* <hiredis/hiredis.h> */
typedef struct gw_redis gw_redis;

/* <up> true: the connection became usable (connected and authenticated).
 * <up> false: a connection attempt failed or a usable connection was lost;
 * called once per failed attempt, so it repeats (with backoff) while Redis
 * stays unreachable. Not called from gw_redis_free. */
typedef void (*gw_redis_state_fn)(gw_redis *r, bool up, void *arg);

/* A command's completion (see the file comment for <rc>). <reply> is NULL
 * unless rc is GW_OK or GW_EPROTO, and is valid only during the call. */
typedef void (*gw_redis_reply_fn)(gw_redis *r, gw_err rc, const struct redisReply *reply,
                                  void *arg);

typedef struct gw_redis_opts {
    const char *name;            /* log tag, e.g. "prefix-sync-read"; copied */
    const char *host;            /* host name or address; copied */
    uint16_t port;               /* e.g. 6379 */
    const char *password;        /* NULL or "" = no AUTH; copied, never logged */
    const char *username;        /* ACL user: AUTH <username> <password>; NULL or "" = none */
    uint64_t connect_timeout_ms; /* resolve + connect + AUTH; 0 = 2000 */
    uint64_t backoff_min_ms;     /* first reconnect delay; 0 = 100 */
    uint64_t backoff_max_ms;     /* reconnect delay cap (doubling); 0 = 5000 */
    gw_redis_state_fn on_state;  /* may be NULL */
    void *state_arg;
} gw_redis_opts;

/* Creates the connection and starts connecting (asynchronously: the result
 * arrives through opts->on_state). GW_EINVAL: no host or port. */
GW_MUST_CHECK gw_err gw_redis_new(gw_loop *loop, const gw_redis_opts *opts, gw_redis **out);

/* Closes the connection: every pending command completes with GW_ECLOSED
 * before this returns; on_state is not called. NULL ok. See the thread
 * rule in the file comment. */
void gw_redis_free(gw_redis *r);

/* True while connected and authenticated. */
bool gw_redis_is_up(const gw_redis *r);

/* Sends the command <argv>/<argvlen> (<argc> binary-safe arguments, copied
 * before this returns) with a deadline of <timeout_ms> (> 0). GW_ECLOSED:
 * the connection is not up (the callback will not run). */
GW_MUST_CHECK gw_err gw_redis_command(gw_redis *r, int argc, const char **argv,
                                      const size_t *argvlen, uint64_t timeout_ms,
                                      gw_redis_reply_fn cb, void *arg);

/* Commands sent and not yet completed. */
uint32_t gw_redis_pending(const gw_redis *r);

#endif
