/* dp_prefix_sync: the prefix index's Redis Stream (see dp_prefix_sync.h).
 *
 * Two gw_redis connections: <wr> sends XADDs (at most MAX_XADD_INFLIGHT
 * pipelined; a batch that finds the pipe full is dropped and counted), <rd>
 * runs one XREAD at a time. Entry ids are "<ms>-<seq>"; the reader keeps the
 * last one it applied (or skipped) in <last_id>. */
#include "dp_prefix_sync.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "gw/gw_buf.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_redis.h"

#define MAX_XADD_INFLIGHT 16
#define READ_COUNT        64
#define READ_COUNT_STR    "64"
#define RETRY_MS          1000

struct dp_prefix_sync {
    gw_loop *loop;
    dp_prefix *pfx;
    dp_prefix_sync_cfg cfg; /* strings owned */
    dp_prefix_sync_metrics m;
    gw_redis *wr;
    gw_redis *rd;
    bool wr_up, rd_up, connected;
    gw_buf batch;
    uint32_t batch_blocks;
    gw_timer *flush_timer;
    uint64_t last_flush_ms;
    uint32_t xadd_inflight;
    char wid[17];
    char maxlen[24];
    char block[24];
    char last_id[48];
    bool have_last; /* a read succeeded: <last_id> is where this worker stands */
    bool reading;
    bool catching_up;
    gw_timer *read_retry;
    bool closing;
};

/* ---- stream ids ----------------------------------------------------------- */

/* Parses "<ms>-<seq>"; false if malformed. */
static bool
parse_id(const char *s, size_t len, uint64_t *ms, uint64_t *seq)
{
    uint64_t a = 0, b = 0;
    size_t i = 0;

    if (len == 0 || len >= 48)
        return false;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        a = a * 10 + (uint64_t)(s[i] - '0');
    if (i == 0 || i == len || s[i] != '-')
        return false;
    for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
        b = b * 10 + (uint64_t)(s[i] - '0');
    if (i != len)
        return false;
    *ms = a;
    *seq = b;
    return true;
}

static void
count_error(dp_prefix_sync *s)
{
    gw_counter_inc(s->m.errors);
}

/* ---- connection state ------------------------------------------------------ */

static void read_next(dp_prefix_sync *s);

static void
update_connected(dp_prefix_sync *s)
{
    bool now = s->wr_up && s->rd_up;

    dp_prefix_set_sink_up(s->pfx, s->wr_up);
    if (now == s->connected)
        return;
    s->connected = now;
    if (now)
        gw_log(GW_LOG_NOTICE, "DP-PFX-SYNC-UP", "stream=%s last_id=%s", s->cfg.stream,
               s->have_last ? s->last_id : "-");
    else
        gw_log(GW_LOG_WARN, "DP-PFX-SYNC-DOWN",
               "stream=%s msg=\"Redis unreachable: prefix sync paused, routing on this worker's "
               "own index until it is back\"",
               s->cfg.stream);
}

static void
on_wr_state(gw_redis *r, bool up, void *arg)
{
    dp_prefix_sync *s = arg;
    (void)r;

    if (!up)
        count_error(s);
    s->wr_up = up;
    update_connected(s);
}

/* ---- out: batching and XADD -------------------------------------------------- */

static void
on_xadd(gw_redis *r, gw_err rc, const redisReply *reply, void *arg)
{
    dp_prefix_sync *s = arg;
    (void)r;

    s->xadd_inflight--;
    if (s->closing || rc == GW_OK)
        return;
    count_error(s);
    if (rc == GW_EPROTO)
        gw_log_ratelimited(GW_LOG_WARN, 1, "DP-PFX-SYNC-XADD", "stream=%s msg=\"%.200s\"",
                           s->cfg.stream, reply && reply->str ? reply->str : "error reply");
}

static void
flush(dp_prefix_sync *s)
{
    const char *argv[10];
    size_t lens[10];
    gw_err rc;

    if (s->batch.len == 0)
        return;
    if (!s->wr_up || s->xadd_inflight >= MAX_XADD_INFLIGHT) {
        /* Redis is gone or too slow: these blocks reach other workers when
         * they are used again (dp_prefix republishes what it could not). */
        count_error(s);
        gw_log_ratelimited(GW_LOG_INFO, 1, "DP-PFX-SYNC-DROP", "blocks=%u inflight=%u",
                           s->batch_blocks, s->xadd_inflight);
        goto out;
    }
    argv[0] = "XADD";
    argv[1] = s->cfg.stream;
    argv[2] = "MAXLEN";
    argv[3] = "~";
    argv[4] = s->maxlen;
    argv[5] = "*";
    argv[6] = "w";
    argv[7] = s->wid;
    argv[8] = "d";
    argv[9] = s->batch.data;
    for (int i = 0; i < 9; i++)
        lens[i] = strlen(argv[i]);
    lens[9] = s->batch.len;
    rc = gw_redis_command(s->wr, 10, argv, lens, s->cfg.timeout_ms, on_xadd, s);
    if (rc != GW_OK) {
        count_error(s);
        goto out;
    }
    s->xadd_inflight++;
    gw_counter_add(s->m.sent, s->batch_blocks);
out:
    gw_buf_reset(&s->batch);
    s->batch_blocks = 0;
    s->last_flush_ms = gw_now_ms();
}

static void
on_flush_timer(gw_loop *loop, void *arg)
{
    (void)loop;
    flush(arg);
}

static void
add_record(dp_prefix_sync *s, const char *key, const uint64_t *h, uint32_t n)
{
    gw_err rc = dp_prefix_delta_append(&s->batch, key, h, n);

    if (rc == GW_EFULL && s->batch.len > 0) {
        flush(s);
        rc = dp_prefix_delta_append(&s->batch, key, h, n);
    }
    if (rc != GW_OK) {
        count_error(s); /* an endpoint key too long for the format: never sent */
        return;
    }
    s->batch_blocks += n;
    if (!gw_timer_is_active(s->flush_timer)) {
        /* Leading edge: after a quiet interval the batch goes out on the
         * next loop turn (with whatever else this turn inserts), so an
         * isolated insert reaches the other workers in about one round trip;
         * under steady traffic entries go out every interval. */
        uint64_t since = gw_now_ms() - s->last_flush_ms;
        gw_timer_start(s->flush_timer,
                       since >= s->cfg.interval_ms ? 0 : s->cfg.interval_ms - since);
    }
}

/* dp_prefix's sink: a local insert's blocks to publish. */
static void
on_insert(void *arg, const char *key, const uint64_t *h, uint32_t n)
{
    dp_prefix_sync *s = arg;
    size_t klen = strlen(key);
    uint32_t per;

    /* Records larger than one entry are split into entries that fit. */
    per = s->cfg.batch_max > 5 + klen + 8 ? (uint32_t)((s->cfg.batch_max - 5 - klen) / 8) : 1;
    per = per < DP_PREFIX_DELTA_MAX_HASHES ? per : DP_PREFIX_DELTA_MAX_HASHES;
    for (uint32_t off = 0; off < n; off += per)
        add_record(s, key, h + off, n - off < per ? n - off : per);
}

/* ---- in: XREAD and apply ------------------------------------------------------ */

static void
on_read_retry(gw_loop *loop, void *arg)
{
    (void)loop;
    read_next(arg);
}

static void
retry_later(dp_prefix_sync *s)
{
    count_error(s);
    gw_timer_start(s->read_retry, RETRY_MS);
}

typedef struct apply_ctx {
    dp_prefix_sync *s;
    uint64_t blocks;
} apply_ctx;

static void
on_record(void *arg, const char *key, size_t klen, const uint8_t *hashes_le, uint32_t n)
{
    apply_ctx *a = arg;
    a->blocks += dp_prefix_apply_remote(a->s->pfx, key, klen, hashes_le, n);
}

/* One entry: [id, [field, value, ...]]. Returns false if malformed. */
static bool
apply_entry(dp_prefix_sync *s, const redisReply *e)
{
    const redisReply *id, *f, *w = NULL, *d = NULL;
    uint64_t ms, seq;
    apply_ctx a = {.s = s};

    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
        return false;
    id = e->element[0];
    f = e->element[1];
    if (id->type != REDIS_REPLY_STRING || !parse_id(id->str, id->len, &ms, &seq))
        return false;
    memcpy(s->last_id, id->str, id->len);
    s->last_id[id->len] = '\0';
    if (f->type != REDIS_REPLY_ARRAY || f->elements % 2 != 0)
        return false;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1)
            continue;
        if (k->str[0] == 'w')
            w = v;
        else if (k->str[0] == 'd')
            d = v;
    }
    if (w == NULL || d == NULL)
        return false;
    if (w->len == 16 && memcmp(w->str, s->wid, 16) == 0)
        return true; /* ours: applied when it happened */
    if (dp_prefix_delta_decode(d->str, d->len, on_record, &a) != GW_OK)
        return false;
    gw_counter_add(s->m.received, (double)a.blocks);
    return true;
}

static void
on_read(gw_redis *r, gw_err rc, const redisReply *reply, void *arg)
{
    dp_prefix_sync *s = arg;
    size_t n = 0;
    uint32_t bad = 0;
    (void)r;

    s->reading = false;
    if (s->closing)
        return;
    if (rc == GW_ECLOSED || rc == GW_ETIMEDOUT)
        return; /* the connection is going: on_rd_state(up) starts over */
    if (rc != GW_OK) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "DP-PFX-SYNC-XREAD", "stream=%s msg=\"%.200s\"",
                           s->cfg.stream, reply && reply->str ? reply->str : "error reply");
        retry_later(s);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        /* [[stream, [entry, ...]]] */
        const redisReply *st = reply->elements == 1 ? reply->element[0] : NULL;
        const redisReply *entries =
            st && st->type == REDIS_REPLY_ARRAY && st->elements == 2 ? st->element[1] : NULL;
        if (entries == NULL || entries->type != REDIS_REPLY_ARRAY) {
            retry_later(s);
            return;
        }
        n = entries->elements;
        for (size_t i = 0; i < n; i++) {
            if (!apply_entry(s, entries->element[i]))
                bad++;
        }
    } else if (reply->type != REDIS_REPLY_NIL) {
        retry_later(s);
        return;
    }
    s->have_last = true;
    if (bad > 0) {
        gw_counter_add(s->m.errors, bad);
        gw_log_ratelimited(GW_LOG_WARN, 1, "DP-PFX-SYNC-BAD",
                           "stream=%s entries=%u msg=\"malformed entries skipped\"", s->cfg.stream,
                           bad);
    }
    /* A full page means more may be waiting: keep reading without blocking. */
    if (s->catching_up && n < READ_COUNT) {
        s->catching_up = false;
        gw_log(GW_LOG_INFO, "DP-PFX-SYNC-CAUGHT-UP", "stream=%s last_id=%s", s->cfg.stream,
               s->last_id);
    } else if (!s->catching_up && n == READ_COUNT) {
        s->catching_up = true;
    }
    read_next(s);
}

static void
read_next(dp_prefix_sync *s)
{
    const char *argv[8];
    size_t lens[8];
    int argc = 0;
    uint64_t timeout = s->cfg.timeout_ms;

    if (s->closing || !s->rd_up || s->reading)
        return;
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = READ_COUNT_STR;
    if (!s->catching_up) {
        argv[argc++] = "BLOCK";
        argv[argc++] = s->block;
        timeout += s->cfg.block_ms;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = s->cfg.stream;
    argv[argc++] = s->last_id;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    if (gw_redis_command(s->rd, argc, argv, lens, timeout, on_read, s) == GW_OK)
        s->reading = true;
}

/* After a reconnect: keep <last_id> if the stream still goes beyond it, else
 * (the stream was recreated: its newest id is older than ours) start over. */
static void
on_tail(gw_redis *r, gw_err rc, const redisReply *reply, void *arg)
{
    dp_prefix_sync *s = arg;
    uint64_t a_ms, a_seq, b_ms, b_seq;
    (void)r;

    s->reading = false;
    if (s->closing || rc == GW_ECLOSED || rc == GW_ETIMEDOUT)
        return;
    if (rc != GW_OK || reply->type != REDIS_REPLY_ARRAY) {
        retry_later(s);
        return;
    }
    if (reply->elements == 0) {
        snprintf(s->last_id, sizeof(s->last_id), "0-0");
    } else {
        const redisReply *e = reply->element[0];
        const redisReply *id =
            e->type == REDIS_REPLY_ARRAY && e->elements >= 1 ? e->element[0] : NULL;
        if (id == NULL || id->type != REDIS_REPLY_STRING ||
            !parse_id(id->str, id->len, &a_ms, &a_seq) ||
            !parse_id(s->last_id, strlen(s->last_id), &b_ms, &b_seq)) {
            retry_later(s);
            return;
        }
        if (a_ms < b_ms || (a_ms == b_ms && a_seq < b_seq)) {
            gw_log(GW_LOG_NOTICE, "DP-PFX-SYNC-RESET",
                   "stream=%s last_id=%s newest=%.*s msg=\"stream recreated; reading it from the "
                   "start\"",
                   s->cfg.stream, s->last_id, (int)id->len, id->str);
            snprintf(s->last_id, sizeof(s->last_id), "0-0");
        }
    }
    s->catching_up = true;
    read_next(s);
}

static void
on_rd_state(gw_redis *r, bool up, void *arg)
{
    dp_prefix_sync *s = arg;
    const char *argv[6] = {"XREVRANGE", s->cfg.stream, "+", "-", "COUNT", "1"};
    size_t lens[6];

    s->rd_up = up;
    s->reading = false;
    update_connected(s);
    if (!up) {
        count_error(s);
        return;
    }
    gw_timer_stop(s->read_retry);
    if (!s->have_last) {
        s->catching_up = true;
        read_next(s);
        return;
    }
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    if (gw_redis_command(r, 6, argv, lens, s->cfg.timeout_ms, on_tail, s) == GW_OK)
        s->reading = true;
}

/* ---- lifecycle ---------------------------------------------------------------- */

gw_err
dp_prefix_sync_new(gw_loop *loop, dp_prefix *pfx, const dp_prefix_sync_cfg *cfg,
                   const dp_prefix_sync_metrics *m, dp_prefix_sync **out)
{
    dp_prefix_sync *s = gw_xcalloc(1, sizeof(*s));
    gw_redis_opts o = {.host = cfg->host,
                       .port = cfg->port,
                       .password = cfg->password,
                       .connect_timeout_ms = cfg->timeout_ms};
    gw_err rc;

    s->loop = loop;
    s->pfx = pfx;
    s->cfg = *cfg;
    s->cfg.host = gw_xstrdup(cfg->host ? cfg->host : "");
    s->cfg.password = NULL; /* gw_redis keeps its copy */
    s->cfg.stream = gw_xstrdup(cfg->stream);
    if (s->cfg.batch_max < 64)
        s->cfg.batch_max = 64;
    if (s->cfg.interval_ms == 0)
        s->cfg.interval_ms = 1;
    if (m != NULL)
        s->m = *m;
    snprintf(s->wid, sizeof(s->wid), "%016" PRIx64, cfg->worker_id);
    snprintf(s->maxlen, sizeof(s->maxlen), "%" PRId64, cfg->maxlen > 0 ? cfg->maxlen : 1);
    snprintf(s->block, sizeof(s->block), "%" PRIu64, cfg->block_ms ? cfg->block_ms : 1000);
    snprintf(s->last_id, sizeof(s->last_id), "0-0");
    gw_buf_init(&s->batch, s->cfg.batch_max);
    s->flush_timer = gw_timer_new(loop, on_flush_timer, s);
    s->read_retry = gw_timer_new(loop, on_read_retry, s);
    dp_prefix_set_sink(pfx, on_insert, s);
    dp_prefix_set_sink_up(pfx, false);
    o.name = "prefix-sync-write";
    o.on_state = on_wr_state;
    o.state_arg = s;
    rc = gw_redis_new(loop, &o, &s->wr);
    if (rc == GW_OK) {
        o.name = "prefix-sync-read";
        o.on_state = on_rd_state;
        rc = gw_redis_new(loop, &o, &s->rd);
    }
    if (rc != GW_OK) {
        dp_prefix_sync_free(s);
        return rc;
    }
    *out = s;
    return GW_OK;
}

void
dp_prefix_sync_free(dp_prefix_sync *s)
{
    if (s == NULL)
        return;
    s->closing = true;
    dp_prefix_set_sink(s->pfx, NULL, NULL);
    dp_prefix_set_sink_up(s->pfx, false);
    gw_timer_free(s->flush_timer);
    gw_timer_free(s->read_retry);
    gw_redis_free(s->wr);
    gw_redis_free(s->rd);
    gw_buf_fini(&s->batch);
    free((char *)s->cfg.host);
    free((char *)s->cfg.stream);
    free(s);
}

bool
dp_prefix_sync_connected(const dp_prefix_sync *s)
{
    return s != NULL && s->connected;
}

bool
dp_prefix_sync_caught_up(const dp_prefix_sync *s)
{
    return s != NULL && s->rd_up && !s->catching_up && s->have_last;
}
