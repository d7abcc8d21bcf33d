/* ctl_src_redis: Redis discovery (see ctl_src_redis.h). One refresh is a
 * chain of async commands on one gw_redis connection: SCAN pages until the
 * cursor is back at 0, then MGET in batches. Only one refresh runs at a
 * time; the timer is re-armed when it ends. */
#include "ctl_src_redis.h"

#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_disc_rec.h"
#include "ctl_disc_table.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_redis.h"

#define SCAN_COUNT "512"
#define MGET_BATCH 256
/* Keys read per refresh at most: bounds memory when something else fills
 * the key space with our prefix. */
#define MAX_KEYS 65536
/* Delay of an immediate retry (--discovery-redis-retry-times). */
#define RETRY_DELAY_MS 100

struct ctl_src_redis {
    gw_loop *loop;
    ctl_store *store;
    ctl_metrics *metrics;
    gw_redis *redis;
    ctl_disc_table *table;
    gw_timer *timer;
    uint64_t timeout_ms, refresh_ms;
    unsigned retry_times;
    unsigned failures; /* consecutive failed refreshes */
    bool down;         /* announced as down (stale list served) */
    bool busy;         /* a refresh is running */
    bool changed;      /* the running refresh changed the table */
    bool closing;      /* in ctl_src_redis_free: callbacks do nothing */
    char *cursor;      /* SCAN cursor of the running refresh */
    char **keys;       /* keys listed by the running refresh */
    size_t n_keys, cap_keys, next_get;
};

static void refresh_fail(ctl_src_redis *s, const char *what, gw_err rc);
static void mget_next(ctl_src_redis *s);

static void
keys_clear(ctl_src_redis *s)
{
    for (size_t i = 0; i < s->n_keys; i++)
        free(s->keys[i]);
    s->n_keys = 0;
    s->next_get = 0;
    GW_FREE(s->cursor);
}

static void
publish_metrics(ctl_src_redis *s)
{
    ctl_metrics_discovery(s->metrics, "redis", !s->down, ctl_disc_table_count(s->table),
                          ctl_disc_table_retained(s->table));
}

static void
refresh_done(ctl_src_redis *s)
{
    uint64_t now = gw_wall_ms();
    bool changed;

    if (s->down) {
        gw_log(GW_LOG_NOTICE, "CTL-DISCOVERY-RECOVERED", "source=redis instances=%zu",
               ctl_disc_table_count(s->table));
        ctl_disc_table_grace(s->table, now);
    }
    s->down = false;
    s->failures = 0;
    s->busy = false;
    /* Kept across failed refreshes: a put that changed the table in one
     * is published by the next good one. */
    changed = s->changed;
    s->changed = false;
    changed |= ctl_disc_table_end(s->table, now);
    changed |= ctl_disc_table_expire(s->table, now);
    keys_clear(s);
    if (changed)
        ctl_store_replace(s->store, CTL_SRC_REDIS, ctl_disc_table_set(s->table));
    publish_metrics(s);
    gw_timer_start(s->timer, s->refresh_ms);
}

static void
refresh_fail(ctl_src_redis *s, const char *what, gw_err rc)
{
    s->busy = false;
    keys_clear(s);
    ctl_metrics_discovery_error(s->metrics, "redis");
    s->failures++;
    if (s->failures <= s->retry_times) {
        gw_timer_start(s->timer, RETRY_DELAY_MS);
        return;
    }
    if (!s->down) {
        s->down = true;
        gw_log(GW_LOG_WARN, "CTL-DISCOVERY-STALE",
               "source=redis op=%s err=%s instances=%zu msg=\"store unreachable; serving the "
               "last known instance list\"",
               what, gw_strerror(rc), ctl_disc_table_count(s->table));
    }
    publish_metrics(s);
    gw_timer_start(s->timer, s->refresh_ms);
}

static void
on_mget(gw_redis *r, gw_err rc, const redisReply *reply, void *arg)
{
    ctl_src_redis *s = arg;
    uint64_t now = gw_wall_ms();
    size_t first;
    (void)r;

    if (s->closing)
        return;
    if (rc != GW_OK || reply->type != REDIS_REPLY_ARRAY) {
        refresh_fail(s, "mget", rc != GW_OK ? rc : GW_EPROTO);
        return;
    }
    first = s->next_get - reply->elements;
    for (size_t i = 0; i < reply->elements && first + i < s->n_keys; i++) {
        const redisReply *v = reply->element[i];
        /* nil: the key expired between SCAN and MGET. */
        if (v->type == REDIS_REPLY_STRING)
            s->changed |= ctl_disc_table_put(s->table, s->keys[first + i], v->str, v->len, now);
    }
    mget_next(s);
}

static void
mget_next(ctl_src_redis *s)
{
    const char *argv[MGET_BATCH + 1];
    size_t lens[MGET_BATCH + 1];
    size_t n = 0;
    gw_err rc;

    if (s->next_get >= s->n_keys) {
        refresh_done(s);
        return;
    }
    argv[0] = "MGET";
    lens[0] = 4;
    while (n < MGET_BATCH && s->next_get < s->n_keys) {
        argv[n + 1] = s->keys[s->next_get];
        lens[n + 1] = strlen(s->keys[s->next_get]);
        n++;
        s->next_get++;
    }
    rc = gw_redis_command(s->redis, (int)n + 1, argv, lens, s->timeout_ms, on_mget, s);
    if (rc != GW_OK)
        refresh_fail(s, "mget", rc);
}

static void scan_next(ctl_src_redis *s);

static void
on_scan(gw_redis *r, gw_err rc, const redisReply *reply, void *arg)
{
    ctl_src_redis *s = arg;
    const redisReply *cur, *keys;
    (void)r;

    if (s->closing)
        return;
    if (rc != GW_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        refresh_fail(s, "scan", rc != GW_OK ? rc : GW_EPROTO);
        return;
    }
    cur = reply->element[0];
    keys = reply->element[1];
    for (size_t i = 0; i < keys->elements && s->n_keys < MAX_KEYS; i++) {
        const redisReply *k = keys->element[i];
        /* SCAN may return a key twice; the table takes the second put as a
         * refresh, so duplicates cost a read, nothing more. */
        if (k->type != REDIS_REPLY_STRING || strlen(k->str) != k->len)
            continue;
        if (s->n_keys == s->cap_keys) {
            s->cap_keys = s->cap_keys ? s->cap_keys * 2 : 64;
            s->keys = gw_xrealloc(s->keys, s->cap_keys * sizeof(*s->keys));
        }
        s->keys[s->n_keys++] = gw_xstrndup(k->str, k->len);
    }
    free(s->cursor);
    s->cursor = gw_xstrndup(cur->str, cur->len);
    if (strcmp(s->cursor, "0") == 0 || s->n_keys >= MAX_KEYS) {
        if (s->n_keys >= MAX_KEYS)
            gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-DISCOVERY-TOO-MANY",
                               "source=redis max=%u msg=\"more keys than read per refresh\"",
                               (unsigned)MAX_KEYS);
        mget_next(s);
        return;
    }
    scan_next(s);
}

static void
scan_next(ctl_src_redis *s)
{
    const char *argv[6] = {"SCAN",  s->cursor, "MATCH", CTL_DISC_REDIS_PREFIX "*",
                           "COUNT", SCAN_COUNT};
    size_t lens[6];
    gw_err rc;

    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    rc = gw_redis_command(s->redis, 6, argv, lens, s->timeout_ms, on_scan, s);
    if (rc != GW_OK)
        refresh_fail(s, "scan", rc);
}

/* Connected: refresh now rather than at the next tick (start-up, and
 * recovery after an outage). */
static void
on_state(gw_redis *r, bool up, void *arg)
{
    ctl_src_redis *s = arg;
    (void)r;

    if (up && !s->busy && !s->closing)
        gw_timer_start(s->timer, 0);
}

static void
on_timer(gw_loop *loop, void *arg)
{
    ctl_src_redis *s = arg;
    (void)loop;

    if (s->busy)
        return;
    s->busy = true;
    keys_clear(s);
    s->cursor = gw_xstrdup("0");
    ctl_disc_table_begin(s->table);
    scan_next(s);
}

gw_err
ctl_src_redis_start(gw_loop *loop, ctl_store *store, ctl_metrics *metrics,
                    const ctl_src_redis_opts *o, ctl_src_redis **out)
{
    ctl_src_redis *s;
    gw_redis_opts ro = {
        .name = "discovery",
        .host = o->host,
        .port = o->port,
        .username = o->username,
        .password = o->password,
        .connect_timeout_ms = o->timeout_ms,
        .backoff_min_ms = 100,
        /* Reconnect at least as often as we refresh. */
        .backoff_max_ms = o->refresh_ms > 100 ? o->refresh_ms : 100,
        .on_state = on_state,
    };
    gw_err rc;

    if (o->host == NULL || o->host[0] == '\0')
        return GW_EINVAL;
    s = gw_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->store = store;
    s->metrics = metrics;
    s->timeout_ms = o->timeout_ms;
    s->refresh_ms = o->refresh_ms;
    s->retry_times = o->retry_times;
    s->table = ctl_disc_table_new("redis", CTL_DISC_REDIS_PREFIX, o->ttl_ms, true);
    s->timer = gw_timer_new(loop, on_timer, s);
    ro.state_arg = s;
    rc = gw_redis_new(loop, &ro, &s->redis);
    if (rc != GW_OK) {
        ctl_src_redis_free(s);
        return rc;
    }
    publish_metrics(s);
    /* The first refresh runs when the connection is up (on_state), or
     * fails here once the connect deadline has passed. */
    gw_timer_start(s->timer, s->timeout_ms);
    *out = s;
    return GW_OK;
}

void
ctl_src_redis_free(ctl_src_redis *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    gw_redis_free(s->redis);
    gw_timer_free(s->timer);
    keys_clear(s);
    free(s->keys);
    ctl_disc_table_free(s->table);
    free(s);
}
