/* ctl_load: fleet-wide load from worker reports (see ctl_load.h).
 *
 * In-flight numbers are levels, not deltas: each report carries the worker's
 * current in-flight per endpoint, so the fleet value is a plain sum over the
 * latest report of each live worker, and a lost report costs nothing but
 * freshness. Latency, TTFT and token counts are deltas "since the previous
 * report" and feed running statistics instead. Workers and endpoint stats
 * live in arrays sorted by id (binary search; new endpoint ids are
 * increasing, so inserts are nearly always appends). */
#include "ctl_load.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

typedef struct wk_ep {
    uint32_t id;
    uint32_t inflight;
    uint64_t inflight_tokens;
} wk_ep;

typedef struct worker {
    uint64_t id;
    uint64_t seq;
    uint64_t last_ms;
    uint32_t n_eps;
    wk_ep *eps; /* owned, sorted by id */
} worker;

typedef struct ep_stat {
    uint32_t id;
    double latency_ms; /* EWMA; < 0 = no sample yet */
    double ttft_ms;
    double tps; /* < 0 until the first window closes */
    uint64_t win_start_ms;
    uint64_t win_tokens;
} ep_stat;

struct ctl_load {
    uint64_t expiry_ms;
    ctl_load_signals_fn signals; /* NULL = no engine signals */
    void *signals_arg;
    worker *workers; /* sorted by id */
    size_t n_workers, cap_workers;
    ep_stat *stats; /* sorted by id */
    size_t n_stats, cap_stats;
};

ctl_load *
ctl_load_new(uint64_t expiry_ms)
{
    ctl_load *l = gw_xcalloc(1, sizeof(*l));

    l->expiry_ms = expiry_ms;
    return l;
}

void
ctl_load_free(ctl_load *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_workers; i++)
        free(l->workers[i].eps);
    free(l->workers);
    free(l->stats);
    free(l);
}

void
ctl_load_set_signals(ctl_load *l, ctl_load_signals_fn fn, void *arg)
{
    l->signals = fn;
    l->signals_arg = fn != NULL ? arg : NULL;
}

unsigned
ctl_load_workers(const ctl_load *l)
{
    return (unsigned)l->n_workers;
}

/* Lower bound of <id> in the worker array. */
static size_t
worker_pos(const ctl_load *l, uint64_t id)
{
    size_t lo = 0, hi = l->n_workers;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->workers[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static size_t
stat_pos(const ctl_load *l, uint32_t id)
{
    size_t lo = 0, hi = l->n_stats;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->stats[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static ep_stat *
stat_get(ctl_load *l, uint32_t id, uint64_t now_ms)
{
    size_t at = stat_pos(l, id);

    if (at < l->n_stats && l->stats[at].id == id)
        return &l->stats[at];
    if (l->n_stats == l->cap_stats) {
        l->cap_stats = l->cap_stats == 0 ? 64 : l->cap_stats * 2;
        l->stats = gw_xrealloc(l->stats, l->cap_stats * sizeof(*l->stats));
    }
    memmove(&l->stats[at + 1], &l->stats[at], (l->n_stats - at) * sizeof(*l->stats));
    l->n_stats++;
    l->stats[at] =
        (ep_stat){.id = id, .latency_ms = -1, .ttft_ms = -1, .tps = -1, .win_start_ms = now_ms};
    return &l->stats[at];
}

static void
ewma(double *avg, double sample)
{
    if (*avg < 0)
        *avg = sample;
    else
        *avg = CTL_LOAD_EWMA_ALPHA * sample + (1 - CTL_LOAD_EWMA_ALPHA) * *avg;
}

static int
cmp_wk_ep(const void *a, const void *b)
{
    uint32_t x = ((const wk_ep *)a)->id, y = ((const wk_ep *)b)->id;

    return (x > y) - (x < y);
}

gw_err
ctl_load_report(ctl_load *l, const pm_report *r, uint64_t now_ms)
{
    size_t at = worker_pos(l, r->worker_id);
    worker *w;

    if (at < l->n_workers && l->workers[at].id == r->worker_id) {
        w = &l->workers[at];
        if (r->seq <= w->seq)
            return GW_EAGAIN;
    } else {
        if (l->n_workers >= PM_MAX_WORKERS)
            return GW_EFULL;
        if (l->n_workers == l->cap_workers) {
            l->cap_workers = l->cap_workers == 0 ? 16 : l->cap_workers * 2;
            l->workers = gw_xrealloc(l->workers, l->cap_workers * sizeof(*l->workers));
        }
        memmove(&l->workers[at + 1], &l->workers[at], (l->n_workers - at) * sizeof(*l->workers));
        l->n_workers++;
        w = &l->workers[at];
        *w = (worker){.id = r->worker_id};
    }
    w->seq = r->seq;
    w->last_ms = now_ms;
    free(w->eps);
    w->eps = r->n_eps ? gw_xcalloc(r->n_eps, sizeof(*w->eps)) : NULL;
    w->n_eps = r->n_eps;
    for (uint32_t i = 0; i < r->n_eps; i++) {
        const pm_ep_report *e = &r->eps[i];
        ep_stat *st = stat_get(l, e->id, now_ms);

        w->eps[i] =
            (wk_ep){.id = e->id, .inflight = e->inflight, .inflight_tokens = e->inflight_tokens};
        if (e->completed > 0) {
            ewma(&st->latency_ms, (double)e->latency_ms_sum / e->completed);
            if (e->ttft_ms_sum > 0)
                ewma(&st->ttft_ms, (double)e->ttft_ms_sum / e->completed);
        }
        st->win_tokens += e->prompt_tokens + e->completion_tokens;
    }
    if (w->n_eps > 1)
        qsort(w->eps, w->n_eps, sizeof(*w->eps), cmp_wk_ep);
    return GW_OK;
}

unsigned
ctl_load_expire(ctl_load *l, uint64_t now_ms)
{
    size_t kept = 0;

    for (size_t i = 0; i < l->n_workers; i++) {
        worker *w = &l->workers[i];
        if (now_ms > w->last_ms && now_ms - w->last_ms > l->expiry_ms)
            free(w->eps);
        else
            l->workers[kept++] = *w;
    }
    unsigned dropped = (unsigned)(l->n_workers - kept);
    l->n_workers = kept;
    return dropped;
}

/* Snapshot endpoint position by id, for summing worker entries. */
typedef struct id_idx {
    uint32_t id;
    uint32_t idx;
} id_idx;

static int
cmp_id_idx(const void *a, const void *b)
{
    uint32_t x = ((const id_idx *)a)->id, y = ((const id_idx *)b)->id;

    return (x > y) - (x < y);
}

static const id_idx *
find_idx(const id_idx *v, size_t n, uint32_t id)
{
    id_idx key = {.id = id};

    return bsearch(&key, v, n, sizeof(*v), cmp_id_idx);
}

static uint32_t
sat_add32(uint32_t a, uint32_t b)
{
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

static uint64_t
sat_add64(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A finite, non-negative value, or -1: the wire refuses NaN and infinity,
 * and a provider bug must not make the load message unencodable. */
static double
known_or_unknown(double v)
{
    return isfinite(v) && v >= 0 ? v : -1;
}

/* Engine signals over report-derived values (see ctl_load.h for the rules). */
static void
merge_signals(pm_ep_load *e, const ctl_signals *sig)
{
    double ttft = known_or_unknown(sig->ttft_ms);
    double tps = known_or_unknown(sig->tokens_per_s);

    e->running = known_or_unknown(sig->running);
    e->waiting = known_or_unknown(sig->waiting);
    e->kv_usage = known_or_unknown(sig->kv_usage);
    e->gpu_usage = known_or_unknown(sig->gpu_usage);
    e->tpot_ms = known_or_unknown(sig->tpot_ms);
    e->metrics_age_ms = known_or_unknown(sig->age_ms);
    e->kv_capacity = known_or_unknown(sig->kv_capacity);
    if (ttft >= 0)
        e->ttft_ms = ttft;
    if (tps >= 0)
        e->tokens_per_s = tps;
}

void
ctl_load_build(ctl_load *l, const pm_snapshot *snap, uint64_t now_ms, uint64_t wall_ms,
               pm_load **out)
{
    pm_load *ld = gw_xcalloc(1, sizeof(*ld));
    uint32_t n = snap != NULL ? snap->n_endpoints : 0;
    id_idx *ix = gw_xcalloc(n ? n : 1, sizeof(*ix));
    size_t kept = 0;

    /* Close throughput windows first, so the numbers below are current. */
    for (size_t i = 0; i < l->n_stats; i++) {
        ep_stat *st = &l->stats[i];
        if (now_ms >= st->win_start_ms + CTL_LOAD_TPS_WINDOW_MS) {
            st->tps = (double)st->win_tokens * 1000.0 / (double)(now_ms - st->win_start_ms);
            st->win_start_ms = now_ms;
            st->win_tokens = 0;
        }
    }

    ld->env.v = PM_SCHEMA_MAJOR;
    ld->env.kind = PM_KIND_LOAD;
    ld->env.gen = snap != NULL ? snap->env.gen : 0;
    ld->env.epoch = snap != NULL ? snap->env.epoch : 0;
    ld->env.sent_ms = wall_ms;
    ld->n_eps = n;
    ld->eps = n ? gw_xcalloc(n, sizeof(*ld->eps)) : NULL;
    for (uint32_t i = 0; i < n; i++) {
        pm_ep_load *e = &ld->eps[i];
        uint32_t id = snap->endpoints[i].id;
        size_t at = stat_pos(l, id);

        ctl_signals sig = CTL_SIGNALS_UNKNOWN;

        ix[i] = (id_idx){.id = id, .idx = i};
        *e = (pm_ep_load){.id = id,
                          .running = -1,
                          .waiting = -1,
                          .kv_usage = -1,
                          .latency_ms = -1,
                          .ttft_ms = -1,
                          .tokens_per_s = -1,
                          .gpu_usage = -1,
                          .tpot_ms = -1,
                          .metrics_age_ms = -1,
                          .kv_capacity = -1};
        if (at < l->n_stats && l->stats[at].id == id) {
            e->latency_ms = l->stats[at].latency_ms;
            e->ttft_ms = l->stats[at].ttft_ms;
            e->tokens_per_s = l->stats[at].tps;
        }
        if (l->signals != NULL)
            l->signals(l->signals_arg, &snap->endpoints[i], now_ms, &sig);
        merge_signals(e, &sig);
    }
    qsort(ix, n, sizeof(*ix), cmp_id_idx);
    for (size_t w = 0; w < l->n_workers; w++) {
        for (uint32_t j = 0; j < l->workers[w].n_eps; j++) {
            const wk_ep *we = &l->workers[w].eps[j];
            const id_idx *hit = find_idx(ix, n, we->id);
            if (hit == NULL)
                continue;
            pm_ep_load *e = &ld->eps[hit->idx];
            e->inflight = sat_add32(e->inflight, we->inflight);
            e->inflight_tokens = sat_add64(e->inflight_tokens, we->inflight_tokens);
        }
    }
    ld->n_workers = (uint32_t)l->n_workers;
    ld->workers = l->n_workers ? gw_xcalloc(l->n_workers, sizeof(*ld->workers)) : NULL;
    for (size_t w = 0; w < l->n_workers; w++)
        ld->workers[w] = (pm_worker_seq){.worker_id = l->workers[w].id, .seq = l->workers[w].seq};

    /* Forget stats of endpoints that left the snapshot. */
    if (snap != NULL) {
        for (size_t i = 0; i < l->n_stats; i++) {
            if (find_idx(ix, n, l->stats[i].id) != NULL)
                l->stats[kept++] = l->stats[i];
        }
        l->n_stats = kept;
    }
    free(ix);
    *out = ld;
}
