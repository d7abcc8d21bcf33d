/* dp_vtc: per-user sliding token windows (see dp_vtc.h).
 *
 * Each entry keeps the epoch (now / DP_VTC_BUCKET_MS) of its newest bucket
 * and DP_VTC_BUCKETS counters indexed by epoch % DP_VTC_BUCKETS; counters of
 * epochs that fell out of the window are zeroed when the entry is next
 * charged, and skipped when it is read. The table is open addressing with
 * linear probing over at most PROBE slots; an entry whose window is empty
 * is reusable, but keeps its place so probe sequences stay intact. */
#include "dp_vtc.h"

#include <stdbool.h>
#include <stdlib.h>

#include <string.h>

#include "gw/gw_digest.h"
#include "gw/gw_mem.h"

#define PROBE 32u

typedef struct vtc_user {
    uint64_t hash; /* 0 = never used */
    uint64_t epoch;
    uint32_t tok[DP_VTC_BUCKETS];
} vtc_user;

struct dp_vtc {
    vtc_user users[DP_VTC_USERS];
    uint64_t stats_epoch; /* when <total> and <active> were last recomputed; 0 = never */
    double total;         /* sum of every user's window */
    uint32_t active;      /* users with a non-empty window */
};

dp_vtc *
dp_vtc_new(void)
{
    return gw_xcalloc(1, sizeof(dp_vtc));
}

void
dp_vtc_free(dp_vtc *v)
{
    free(v);
}

uint64_t
dp_vtc_user(const char *user)
{
    uint64_t h = gw_fnv1a64(user, strlen(user));
    return h ? h : 1; /* 0 marks a free slot */
}

static double
window(const vtc_user *u, uint64_t epoch)
{
    double sum = 0;

    if (u->hash == 0 || u->epoch + DP_VTC_BUCKETS <= epoch)
        return 0;
    /* Buckets u->epoch - 5 .. u->epoch hold data; keep those > epoch - 6. */
    for (uint64_t e = u->epoch; e + DP_VTC_BUCKETS > epoch && e + DP_VTC_BUCKETS > u->epoch; e--) {
        sum += u->tok[e % DP_VTC_BUCKETS];
        if (e == 0)
            break;
    }
    return sum;
}

/* Recomputes the totals when a new bucket started (their drift from
 * expired buckets is corrected here). */
static void
refresh(dp_vtc *v, uint64_t epoch)
{
    if (v->stats_epoch == epoch + 1)
        return;
    v->total = 0;
    v->active = 0;
    for (uint32_t i = 0; i < DP_VTC_USERS; i++) {
        double w = window(&v->users[i], epoch);
        if (w > 0) {
            v->total += w;
            v->active++;
        }
    }
    v->stats_epoch = epoch + 1;
}

static vtc_user *
find(dp_vtc *v, uint64_t user, uint64_t epoch, bool create)
{
    vtc_user *reuse = NULL;
    uint32_t h = (uint32_t)(user ^ user >> 32);

    for (uint32_t k = 0; k < PROBE; k++) {
        vtc_user *u = &v->users[(h + k) % DP_VTC_USERS];
        if (u->hash == user)
            return u;
        if (reuse == NULL && (u->hash == 0 || window(u, epoch) == 0))
            reuse = u;
    }
    if (!create || reuse == NULL)
        return NULL;
    reuse->hash = user;
    reuse->epoch = epoch;
    for (uint32_t b = 0; b < DP_VTC_BUCKETS; b++)
        reuse->tok[b] = 0;
    return reuse;
}

void
dp_vtc_lookup(dp_vtc *v, uint64_t user, uint64_t now_ms, double *tokens, double *mean)
{
    uint64_t epoch = now_ms / DP_VTC_BUCKET_MS;
    const vtc_user *u = find(v, user, epoch, false);

    refresh(v, epoch);
    *tokens = u != NULL ? window(u, epoch) : 0;
    *mean = v->active > 0 ? v->total / v->active : 0;
}

void
dp_vtc_charge(dp_vtc *v, uint64_t user, int64_t delta, uint64_t now_ms)
{
    uint64_t epoch = now_ms / DP_VTC_BUCKET_MS;
    vtc_user *u;
    double before, after;
    uint32_t *slot;

    refresh(v, epoch);
    u = find(v, user, epoch, delta > 0);
    if (u == NULL)
        return;
    before = window(u, epoch);
    /* Advance the entry to <epoch>, zeroing buckets that left the window. */
    if (u->epoch + DP_VTC_BUCKETS <= epoch) {
        for (uint32_t b = 0; b < DP_VTC_BUCKETS; b++)
            u->tok[b] = 0;
    } else {
        for (uint64_t e = u->epoch + 1; e <= epoch; e++)
            u->tok[e % DP_VTC_BUCKETS] = 0;
    }
    if (epoch > u->epoch)
        u->epoch = epoch;
    slot = &u->tok[epoch % DP_VTC_BUCKETS];
    if (delta >= 0)
        *slot =
            (uint64_t)*slot + (uint64_t)delta > UINT32_MAX ? UINT32_MAX : *slot + (uint32_t)delta;
    else
        *slot = (uint64_t)-delta >= *slot ? 0 : *slot - (uint32_t)-delta;
    after = window(u, epoch);
    v->total += after - before;
    if (before == 0 && after > 0)
        v->active++;
    else if (before > 0 && after == 0 && v->active > 0)
        v->active--;
}
