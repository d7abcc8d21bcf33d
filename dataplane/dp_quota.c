/* dp_quota: see dp_quota.h.
 *
 * Redis keys (readable on purpose, for operators with redis-cli):
 *   <prefix>:u:<user>:rpm:<unix minute>   requests admitted in that minute
 *   <prefix>:u:<user>:tpm:<unix minute>   tokens (reserved, then settled)
 *   <prefix>:m:<model>|<profile>:rps:<unix second>
 * The script builds the window suffix from Redis's TIME, so it names keys
 * that KEYS does not list: fine on a standalone Redis or Sentinel (what the
 * seeds deploy), not on Redis Cluster.
 *
 * Local windows: a fixed open-addressing table of (key hash, window, count)
 * slots; a slot whose window has passed is free. */
#include "dp_quota.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_digest.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_redis.h"

#define LOCAL_SLOTS 8192u /* power of two */
#define LOCAL_PROBE 32u
#define USER_TTL_S  "120" /* a minute window plus time to settle in it */
#define RPS_TTL_S   "5"

/* KEYS[1]: user key prefix or ""; KEYS[2]: model/profile prefix or "".
 * ARGV: rpm limit, tpm limit, tokens to reserve, rps limit (0 = none).
 * Returns {verdict, rpm, tpm, rps, minute, second, ms into the minute,
 * ms into the second}. */
static const char admit_lua[] = "local t = redis.call('TIME')\n"
                                "local s = tonumber(t[1])\n"
                                "local ms = s * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
                                "local minute = math.floor(s / 60)\n"
                                "local rl, tl = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
                                "local est, sl = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
                                "local r, tk, sc = 0, 0, 0\n"
                                "local rk, tkk, sk\n"
                                "if KEYS[1] ~= '' then\n"
                                "  rk = KEYS[1] .. ':rpm:' .. minute\n"
                                "  tkk = KEYS[1] .. ':tpm:' .. minute\n"
                                "  r = tonumber(redis.call('GET', rk) or 0)\n"
                                "  tk = tonumber(redis.call('GET', tkk) or 0)\n"
                                "end\n"
                                "if KEYS[2] ~= '' then\n"
                                "  sk = KEYS[2] .. ':rps:' .. s\n"
                                "  sc = tonumber(redis.call('GET', sk) or 0)\n"
                                "end\n"
                                "local v = 0\n"
                                "if sl > 0 and sc >= sl then v = 3\n"
                                "elseif rl > 0 and r >= rl then v = 1\n"
                                "elseif tl > 0 and tk > 0 and tk + est > tl then v = 2 end\n"
                                "if v == 0 then\n"
                                "  if rk then\n"
                                "    r = redis.call('INCR', rk)\n"
                                "    redis.call('EXPIRE', rk, " USER_TTL_S ")\n"
                                "    tk = redis.call('INCRBY', tkk, est)\n"
                                "    redis.call('EXPIRE', tkk, " USER_TTL_S ")\n"
                                "  end\n"
                                "  if sk then\n"
                                "    sc = redis.call('INCR', sk)\n"
                                "    redis.call('EXPIRE', sk, " RPS_TTL_S ")\n"
                                "  end\n"
                                "end\n"
                                "return {v, r, tk, sc, minute, s, ms % 60000, ms % 1000}\n";

/* KEYS: counters; ARGV: a delta per key. Adjusts only keys that still
 * exist (an expired window stays gone) and never below zero. */
static const char adjust_lua[] = "for i = 1, #KEYS do\n"
                                 "  local d = tonumber(ARGV[i])\n"
                                 "  if d ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then\n"
                                 "    local v = redis.call('INCRBY', KEYS[i], d)\n"
                                 "    if v < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end\n"
                                 "  end\n"
                                 "end\n"
                                 "return 0\n";

typedef struct script {
    const char *text;
    char sha[GW_SHA1_HEX_LEN + 1];
} script;

typedef struct local_slot {
    uint64_t hash;   /* of the key with its window; 0 = empty */
    uint64_t end_ms; /* window end (wall clock) */
    int64_t count;
} local_slot;

struct dp_quota_ticket {
    dp_quota *q;
    dp_quota_ticket *prev, *next; /* q->pending */
    dp_quota_ask ask;             /* strings owned */
    char *user_prefix, *rps_prefix;
    dp_quota_done_fn cb;
    void *arg;
    bool cancelled;
    bool retried; /* EVAL after NOSCRIPT */
};

struct dp_quota {
    gw_loop *loop;
    char *host, *password, *prefix;
    uint16_t port;
    uint64_t timeout_ms;
    gw_redis *redis;
    bool down_seen; /* a connection attempt failed or a connection dropped */
    bool was_degraded;
    uint32_t workers;
    script admit, adjust;
    local_slot *local;
    dp_quota_ticket *pending;
    bool closing;
    dp_quota_stats stats;
};

/* ---- helpers ------------------------------------------------------------ */

/* 0 marks a free local slot. */
static uint64_t
hash_str(const char *s)
{
    uint64_t h = gw_fnv1a64(s, strlen(s));
    return h ? h : 1;
}

static char *
user_prefix(const dp_quota *q, const dp_quota_ask *ask)
{
    char *p;

    if (ask->user == NULL || (ask->rpm <= 0 && ask->tpm <= 0))
        return NULL;
    if (asprintf(&p, "%s:u:%s", q->prefix, ask->user) < 0)
        abort();
    return p;
}

static char *
rps_prefix(const dp_quota *q, const dp_quota_ask *ask)
{
    char *p;

    if (ask->rps <= 0 || ask->model == NULL)
        return NULL;
    if (asprintf(&p, "%s:m:%s|%s", q->prefix, ask->model, ask->profile ? ask->profile : "default") <
        0)
        abort();
    return p;
}

static char *
window_key(const char *prefix, const char *kind, uint64_t window)
{
    char *k;

    if (asprintf(&k, "%s:%s:%" PRIu64, prefix, kind, window) < 0)
        abort();
    return k;
}

static void
log_state(dp_quota *q)
{
    bool d = dp_quota_degraded(q);

    if (d == q->was_degraded)
        return;
    q->was_degraded = d;
    if (d)
        gw_log(GW_LOG_WARN, "DP-QUOTA-DEGRADED",
               "redis=%s:%u workers=%u msg=\"Redis unusable: limits use local windows, each "
               "limit split across the live workers\"",
               q->host, q->port, q->workers);
    else
        gw_log(GW_LOG_NOTICE, "DP-QUOTA-REDIS", "redis=%s:%u msg=\"limits are fleet-wide again\"",
               q->host, q->port);
}

static void on_adjust(gw_redis *r, gw_err rc, const struct redisReply *reply, void *arg);

/* Loads <sc> so that EVALSHA finds it (Redis forgets scripts on restart,
 * and a restart is a reconnect for us). */
static void
load_script(dp_quota *q, const script *sc)
{
    const char *argv[] = {"SCRIPT", "LOAD", sc->text};
    size_t lens[] = {6, 4, strlen(sc->text)};

    if (gw_redis_command(q->redis, 3, argv, lens, q->timeout_ms, on_adjust, q) != GW_OK)
        q->stats.redis_errors++;
}

static void
on_redis_state(gw_redis *r, bool up, void *arg)
{
    dp_quota *q = arg;
    (void)r;

    q->down_seen = !up;
    if (up) {
        load_script(q, &q->admit);
        load_script(q, &q->adjust);
    }
    log_state(q);
}

dp_quota *
dp_quota_new(gw_loop *loop, const dp_quota_cfg *cfg)
{
    dp_quota *q = gw_xcalloc(1, sizeof(*q));

    q->loop = loop;
    q->host = gw_xstrdup(cfg->redis_host ? cfg->redis_host : "");
    q->password = gw_xstrdup(cfg->redis_password ? cfg->redis_password : "");
    q->prefix = gw_xstrdup(cfg->key_prefix ? cfg->key_prefix : "llmgw:rl");
    q->port = cfg->redis_port;
    q->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 200;
    q->workers = 1;
    q->admit.text = admit_lua;
    gw_sha1_hex(admit_lua, strlen(admit_lua), q->admit.sha);
    q->adjust.text = adjust_lua;
    gw_sha1_hex(adjust_lua, strlen(adjust_lua), q->adjust.sha);
    q->local = gw_xcalloc(LOCAL_SLOTS, sizeof(*q->local));
    return q;
}

void
dp_quota_need(dp_quota *q)
{
    gw_redis_opts o;

    if (q->redis != NULL || q->host[0] == '\0')
        return;
    o = (gw_redis_opts){.name = "quota",
                        .host = q->host,
                        .port = q->port,
                        .password = q->password,
                        .connect_timeout_ms = 2000,
                        .on_state = on_redis_state,
                        .state_arg = q};
    if (gw_redis_new(q->loop, &o, &q->redis) != GW_OK) {
        q->redis = NULL;
        return;
    }
    gw_log(GW_LOG_NOTICE, "DP-QUOTA-START", "redis=%s:%u", q->host, q->port);
}

void
dp_quota_free(dp_quota *q)
{
    if (q == NULL)
        return;
    q->closing = true;
    gw_redis_free(q->redis); /* pending commands complete here, uncalled back */
    while (q->pending != NULL) {
        dp_quota_ticket *t = q->pending;
        q->pending = t->next;
        free(t);
    }
    free(q->local);
    free(q->host);
    if (q->password != NULL)
        memset(q->password, 0, strlen(q->password));
    free(q->password);
    free(q->prefix);
    free(q);
}

void
dp_quota_set_workers(dp_quota *q, uint32_t n)
{
    q->workers = n ? n : 1;
}

/* Not while the first connection is being made: that is no outage. */
bool
dp_quota_degraded(const dp_quota *q)
{
    return q->redis != NULL && !gw_redis_is_up(q->redis) && q->down_seen;
}

bool
dp_quota_redis_up(const dp_quota *q)
{
    return q->redis != NULL && gw_redis_is_up(q->redis);
}

const dp_quota_stats *
dp_quota_get_stats(const dp_quota *q)
{
    return &q->stats;
}

void
dp_quota_grant_fini(dp_quota_grant *g)
{
    GW_FREE(g->rpm_key);
    GW_FREE(g->tpm_key);
    GW_FREE(g->rps_key);
}

/* ---- local windows -------------------------------------------------------- */

/* The slot counting <key>, created empty if needed; NULL when the table has
 * no room near it (the caller admits uncounted). */
static local_slot *
local_find(dp_quota *q, const char *key, uint64_t end_ms, uint64_t now_ms)
{
    uint64_t h = hash_str(key);
    local_slot *free_slot = NULL;

    for (uint32_t i = 0; i < LOCAL_PROBE; i++) {
        local_slot *s = &q->local[(h + i) & (LOCAL_SLOTS - 1)];
        if (s->hash == h && s->end_ms == end_ms)
            return s;
        if (free_slot == NULL && (s->hash == 0 || s->end_ms <= now_ms))
            free_slot = s;
    }
    if (free_slot != NULL)
        *free_slot = (local_slot){.hash = h, .end_ms = end_ms};
    return free_slot;
}

static int64_t
share(const dp_quota *q, int64_t limit)
{
    if (limit <= 0)
        return 0;
    return (limit + (int64_t)q->workers - 1) / (int64_t)q->workers;
}

static void
local_decide(dp_quota *q, const dp_quota_ask *ask, const char *uprefix, const char *sprefix,
             dp_quota_grant *g)
{
    uint64_t now = gw_wall_ms(), minute = now / 60000, sec = now / 1000;
    local_slot *r = NULL, *t = NULL, *s = NULL;
    char *rk = NULL, *tk = NULL, *sk = NULL;

    memset(g, 0, sizeof(*g));
    g->local = true;
    q->stats.local_decisions++;
    g->rpm_limit = share(q, ask->rpm);
    g->tpm_limit = share(q, ask->tpm);
    g->rps_limit = share(q, ask->rps);
    g->user_reset_ms = (minute + 1) * 60000 - now;
    g->rps_reset_ms = (sec + 1) * 1000 - now;
    if (uprefix != NULL) {
        rk = window_key(uprefix, "rpm", minute);
        tk = window_key(uprefix, "tpm", minute);
        r = local_find(q, rk, (minute + 1) * 60000, now);
        t = local_find(q, tk, (minute + 1) * 60000, now);
        g->counted_user = r != NULL && t != NULL;
    }
    if (sprefix != NULL) {
        sk = window_key(sprefix, "rps", sec);
        s = local_find(q, sk, (sec + 1) * 1000, now);
        g->counted_rps = s != NULL;
    }
    if ((uprefix != NULL && !g->counted_user) || (sprefix != NULL && !g->counted_rps))
        q->stats.local_full++;
    if (g->counted_rps && s->count >= g->rps_limit)
        g->verdict = DP_QUOTA_RPS;
    else if (g->counted_user && g->rpm_limit > 0 && r->count >= g->rpm_limit)
        g->verdict = DP_QUOTA_RPM;
    else if (g->counted_user && g->tpm_limit > 0 && t->count > 0 &&
             t->count + ask->tokens > g->tpm_limit)
        g->verdict = DP_QUOTA_TPM;
    if (g->verdict == DP_QUOTA_OK) {
        if (g->counted_user) {
            r->count++;
            t->count += ask->tokens;
            g->rpm_key = rk;
            g->tpm_key = tk;
            rk = tk = NULL;
            g->reserved = ask->tokens;
        }
        if (g->counted_rps) {
            s->count++;
            g->rps_key = sk;
            sk = NULL;
        }
    }
    g->rpm_count = r ? r->count : 0;
    g->tpm_count = t ? t->count : 0;
    g->rps_count = s ? s->count : 0;
    free(rk);
    free(tk);
    free(sk);
}

/* Adds <delta> to local counter <key> if its window is still alive. */
static void
local_adjust(dp_quota *q, const char *key, int64_t delta)
{
    uint64_t h = hash_str(key), now = gw_wall_ms();

    for (uint32_t i = 0; i < LOCAL_PROBE; i++) {
        local_slot *s = &q->local[(h + i) & (LOCAL_SLOTS - 1)];
        if (s->hash == h && s->end_ms > now) {
            s->count = s->count + delta < 0 ? 0 : s->count + delta;
            return;
        }
    }
}

/* ---- Redis ---------------------------------------------------------------- */

static void ticket_free(dp_quota_ticket *t);
static gw_err send_admit(dp_quota_ticket *t, bool eval);

/* Sends adjust deltas for up to three keys; fire and forget (a lost
 * adjustment costs accuracy in one window, never availability). */
static void
redis_adjust(dp_quota *q, char *const *keys, const int64_t *deltas, int n)
{
    const char *argv[3 + 2 * 3];
    size_t lens[3 + 2 * 3];
    char nums[3][24], nkeys[12];
    int argc = 0, k = 0;

    for (int i = 0; i < n; i++) {
        if (keys[i] != NULL && deltas[i] != 0)
            k++;
    }
    if (k == 0 || q->redis == NULL || !gw_redis_is_up(q->redis))
        return;
    snprintf(nkeys, sizeof(nkeys), "%d", k);
    argv[argc++] = "EVALSHA";
    argv[argc++] = q->adjust.sha;
    argv[argc++] = nkeys;
    for (int i = 0; i < n; i++) {
        if (keys[i] != NULL && deltas[i] != 0)
            argv[argc++] = keys[i];
    }
    for (int i = 0, j = 0; i < n; i++) {
        if (keys[i] != NULL && deltas[i] != 0) {
            snprintf(nums[j], sizeof(nums[j]), "%" PRId64, deltas[i]);
            argv[argc++] = nums[j++];
        }
    }
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (gw_redis_command(q->redis, argc, argv, lens, q->timeout_ms, on_adjust, q) != GW_OK)
        q->stats.redis_errors++;
}

static void
on_adjust(gw_redis *r, gw_err rc, const struct redisReply *reply, void *arg)
{
    dp_quota *q = arg;
    (void)r;

    if (rc == GW_EPROTO && reply != NULL && reply->str != NULL &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && !q->closing) {
        /* Flushed behind our back (SCRIPT FLUSH): load it for next time;
         * this one adjustment is lost. */
        load_script(q, &q->adjust);
        return;
    }
    if (rc != GW_OK)
        q->stats.redis_errors++;
}

static bool
reply_int(const redisReply *r, size_t i, int64_t *out)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return false;
    *out = r->element[i]->integer;
    return true;
}

/* Fills <g> from the admit script's reply; false if it is not one. */
static bool
parse_admit(const dp_quota_ticket *t, const redisReply *r, dp_quota_grant *g)
{
    int64_t v[8];

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 8)
        return false;
    for (size_t i = 0; i < 8; i++) {
        if (!reply_int(r, i, &v[i]))
            return false;
    }
    if (v[0] < DP_QUOTA_OK || v[0] > DP_QUOTA_RPS)
        return false;
    memset(g, 0, sizeof(*g));
    g->verdict = (dp_quota_verdict)v[0];
    g->counted_user = t->user_prefix != NULL;
    g->counted_rps = t->rps_prefix != NULL;
    g->rpm_count = v[1];
    g->tpm_count = v[2];
    g->rps_count = v[3];
    g->rpm_limit = t->ask.rpm;
    g->tpm_limit = t->ask.tpm;
    g->rps_limit = t->ask.rps;
    g->user_reset_ms = (uint64_t)(60000 - v[6]);
    g->rps_reset_ms = (uint64_t)(1000 - v[7]);
    if (g->verdict == DP_QUOTA_OK) {
        if (t->user_prefix != NULL) {
            g->rpm_key = window_key(t->user_prefix, "rpm", (uint64_t)v[4]);
            g->tpm_key = window_key(t->user_prefix, "tpm", (uint64_t)v[4]);
            g->reserved = t->ask.tokens;
        }
        if (t->rps_prefix != NULL)
            g->rps_key = window_key(t->rps_prefix, "rps", (uint64_t)v[5]);
    }
    return true;
}

static void
finish(dp_quota_ticket *t, dp_quota_grant *g)
{
    dp_quota *q = t->q;

    if (t->cancelled) {
        /* Nobody wants it: give back what it took. */
        dp_quota_rollback(q, g);
    } else {
        t->cb(g, t->arg); /* moves the grant */
    }
    ticket_free(t);
}

static void
on_admit(gw_redis *r, gw_err rc, const struct redisReply *reply, void *arg)
{
    dp_quota_ticket *t = arg;
    dp_quota *q = t->q;
    dp_quota_grant g;
    (void)r;

    if (q->closing) {
        ticket_free(t);
        return;
    }
    if (rc == GW_EPROTO && reply != NULL && reply->str != NULL &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && !t->retried) {
        t->retried = true; /* first use on this server: EVAL loads it */
        if (send_admit(t, true) == GW_OK)
            return;
    }
    if (rc == GW_OK && parse_admit(t, reply, &g)) {
        finish(t, &g);
        return;
    }
    q->stats.redis_errors++;
    gw_log_ratelimited(GW_LOG_WARN, 10, "DP-QUOTA-REDIS-ERR",
                       "rc=%s msg=\"admission decided by local windows\"", gw_strerror(rc));
    local_decide(q, &t->ask, t->user_prefix, t->rps_prefix, &g);
    finish(t, &g);
}

static gw_err
send_admit(dp_quota_ticket *t, bool eval)
{
    dp_quota *q = t->q;
    char rl[24], tl[24], est[24], sl[24];
    const char *argv[9];
    size_t lens[9];

    snprintf(rl, sizeof(rl), "%" PRId64, t->user_prefix ? t->ask.rpm : 0);
    snprintf(tl, sizeof(tl), "%" PRId64, t->user_prefix ? t->ask.tpm : 0);
    snprintf(est, sizeof(est), "%" PRId64, t->user_prefix ? t->ask.tokens : 0);
    snprintf(sl, sizeof(sl), "%" PRId64, t->rps_prefix ? t->ask.rps : 0);
    argv[0] = eval ? "EVAL" : "EVALSHA";
    argv[1] = eval ? q->admit.text : q->admit.sha;
    argv[2] = "2";
    argv[3] = t->user_prefix ? t->user_prefix : "";
    argv[4] = t->rps_prefix ? t->rps_prefix : "";
    argv[5] = rl;
    argv[6] = tl;
    argv[7] = est;
    argv[8] = sl;
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    return gw_redis_command(q->redis, 9, argv, lens, q->timeout_ms, on_admit, t);
}

static void
ticket_free(dp_quota_ticket *t)
{
    dp_quota *q = t->q;

    if (t->prev != NULL)
        t->prev->next = t->next;
    else if (q->pending == t)
        q->pending = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    free(t->user_prefix);
    free(t->rps_prefix);
    free((char *)t->ask.user);
    free((char *)t->ask.model);
    free((char *)t->ask.profile);
    free(t);
}

/* ---- admission ------------------------------------------------------------ */

dp_quota_ticket *
dp_quota_admit(dp_quota *q, const dp_quota_ask *ask, dp_quota_grant *g, dp_quota_done_fn cb,
               void *arg)
{
    char *up = user_prefix(q, ask), *sp = rps_prefix(q, ask);
    dp_quota_ticket *t;

    if (up == NULL && sp == NULL) {
        memset(g, 0, sizeof(*g)); /* nothing to count */
        return NULL;
    }
    if (q->redis == NULL || !gw_redis_is_up(q->redis)) {
        log_state(q);
        local_decide(q, ask, up, sp, g);
        free(up);
        free(sp);
        return NULL;
    }
    t = gw_xcalloc(1, sizeof(*t));
    t->q = q;
    t->ask = *ask;
    t->ask.user = ask->user ? gw_xstrdup(ask->user) : NULL;
    t->ask.model = ask->model ? gw_xstrdup(ask->model) : NULL;
    t->ask.profile = ask->profile ? gw_xstrdup(ask->profile) : NULL;
    t->user_prefix = up;
    t->rps_prefix = sp;
    t->cb = cb;
    t->arg = arg;
    t->next = q->pending;
    if (q->pending != NULL)
        q->pending->prev = t;
    q->pending = t;
    if (send_admit(t, false) != GW_OK) {
        q->stats.redis_errors++;
        local_decide(q, &t->ask, up, sp, g);
        ticket_free(t);
        return NULL;
    }
    return t;
}

void
dp_quota_cancel(dp_quota_ticket *t)
{
    t->cancelled = true;
}

void
dp_quota_settle(dp_quota *q, dp_quota_grant *g, int64_t used_tokens)
{
    if (g->tpm_key != NULL && used_tokens >= 0 && used_tokens != g->reserved) {
        int64_t delta = used_tokens - g->reserved;
        if (g->local) {
            local_adjust(q, g->tpm_key, delta);
        } else {
            char *keys[] = {g->tpm_key};
            redis_adjust(q, keys, &delta, 1);
        }
    }
    dp_quota_grant_fini(g);
}

void
dp_quota_rollback(dp_quota *q, dp_quota_grant *g)
{
    char *keys[] = {g->rpm_key, g->tpm_key, g->rps_key};
    int64_t deltas[] = {-1, -g->reserved, -1};

    if (g->local) {
        for (int i = 0; i < 3; i++) {
            if (keys[i] != NULL && deltas[i] != 0)
                local_adjust(q, keys[i], deltas[i]);
        }
    } else {
        redis_adjust(q, keys, deltas, 3);
    }
    dp_quota_grant_fini(g);
}
