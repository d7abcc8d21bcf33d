/* reg_redis: blocking Redis writes for llmgw-register (see reg_redis.h). */
#include "reg_redis.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct reg_redis {
    const reg_cfg *cfg;
    redisContext *c;
};

reg_redis *
reg_redis_new(const reg_cfg *cfg)
{
    reg_redis *r = gw_xcalloc(1, sizeof(*r));

    r->cfg = cfg;
    return r;
}

static void
drop(reg_redis *r)
{
    if (r->c != NULL)
        redisFree(r->c);
    r->c = NULL;
}

void
reg_redis_free(reg_redis *r)
{
    if (r == NULL)
        return;
    drop(r);
    free(r);
}

/* Runs one command; returns the reply (caller frees) or NULL after
 * dropping the connection. An error reply is logged and freed (NULL). */
static redisReply *
command(reg_redis *r, int argc, const char **argv, const size_t *lens)
{
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    char q[256];

    if (rep == NULL) {
        gw_log(GW_LOG_WARN, "REG-REDIS-IO", "cmd=%s msg=%s", argv[0],
               gw_log_q(q, sizeof(q), r->c->errstr));
        drop(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        gw_log(GW_LOG_WARN, "REG-REDIS-ERROR", "cmd=%s msg=%s", argv[0],
               gw_log_q(q, sizeof(q), rep->str));
        freeReplyObject(rep);
        drop(r);
        return NULL;
    }
    return rep;
}

static bool
connect_auth(reg_redis *r)
{
    const reg_cfg *cfg = r->cfg;
    long us = (long)(cfg->redis_socket_timeout_s * 1e6);
    struct timeval tv = {.tv_sec = us / 1000000, .tv_usec = us % 1000000};
    char q[256];

    if (r->c != NULL)
        return true;
    r->c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
    if (r->c == NULL || r->c->err) {
        gw_log(GW_LOG_WARN, "REG-REDIS-CONNECT", "host=%s port=%u msg=%s", cfg->redis_host,
               (unsigned)cfg->redis_port,
               gw_log_q(q, sizeof(q), r->c != NULL ? r->c->errstr : "out of memory"));
        drop(r);
        return false;
    }
    redisSetTimeout(r->c, tv);
    if (cfg->redis_password != NULL && cfg->redis_password[0] != '\0') {
        const char *argv[3] = {"AUTH", cfg->redis_username, cfg->redis_password};
        size_t lens[3] = {4, strlen(cfg->redis_username), strlen(cfg->redis_password)};
        int argc = 3;
        redisReply *rep;
        if (cfg->redis_username[0] == '\0') {
            argv[1] = cfg->redis_password;
            lens[1] = lens[2];
            argc = 2;
        }
        rep = command(r, argc, argv, lens);
        if (rep == NULL)
            return false;
        freeReplyObject(rep);
    }
    return true;
}

gw_err
reg_redis_set(reg_redis *r, const char *key, const char *value, uint64_t ttl_ms)
{
    char px[32];

    snprintf(px, sizeof(px), "%llu", (unsigned long long)ttl_ms);
    for (int64_t i = 0; i <= r->cfg->redis_retry_times; i++) {
        const char *argv[5] = {"SET", key, value, "PX", px};
        size_t lens[5] = {3, strlen(key), strlen(value), 2, strlen(px)};
        redisReply *rep;

        if (!connect_auth(r))
            continue;
        rep = command(r, 5, argv, lens);
        if (rep != NULL) {
            freeReplyObject(rep);
            return GW_OK;
        }
    }
    return GW_EIO;
}
