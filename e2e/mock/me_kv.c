/* me_kv: block pool, LRU free queue and hash index (see me_kv.h).
 *
 * Layout: per block a hash (valid when <cached>), a reference count and the
 * prev/next links of the free queue; block ids are array indices and the
 * queue's sentinel is id <n>. Invariants:
 *   - a block is in the free queue iff its ref is 0;
 *   - a block is in the index iff <cached>, and the index maps its hash to it;
 *   - uncached free blocks sit at the head of the queue (used first), cached
 *     ones are appended at the tail, so the head is always the best victim.
 * The index is linear probing with backward-shift deletion (no tombstones),
 * sized to a power of two of at least twice the block count, so it never
 * fills and probes stay short. */
#include "me_kv.h"

#include <stdlib.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define SLOT_EMPTY UINT32_MAX

typedef struct kv_block {
    uint64_t hash;
    uint32_t ref;
    uint32_t prev; /* free queue links, valid while ref == 0 */
    uint32_t next;
    bool cached;
} kv_block;

struct me_kv {
    uint32_t n;
    uint32_t nfree;
    uint64_t evictions;
    kv_block *blocks; /* owned, n + 1 entries: [n] is the queue sentinel */
    uint32_t *slots;  /* owned, index: block id or SLOT_EMPTY */
    size_t mask;      /* slots - 1 */
};

/* A broken invariant is a bug in the simulator: say so and stop. */
#define KV_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            gw_log(GW_LOG_ALERT, "ME-KV-INVARIANT", "check=\"%s\" line=%d", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static size_t
slot_of(const me_kv *kv, uint64_t hash)
{
    /* Block hashes are already well mixed; the top bits spread best. */
    return (size_t)(hash ^ (hash >> 29)) & kv->mask;
}

/* Slot holding <hash>, or the empty slot where it would go. */
static size_t
index_find(const me_kv *kv, uint64_t hash)
{
    size_t i = slot_of(kv, hash);

    while (kv->slots[i] != SLOT_EMPTY && kv->blocks[kv->slots[i]].hash != hash)
        i = (i + 1) & kv->mask;
    return i;
}

static void
index_remove(me_kv *kv, uint64_t hash)
{
    size_t i = index_find(kv, hash);
    size_t j = i;

    KV_CHECK(kv->slots[i] != SLOT_EMPTY);
    kv->slots[i] = SLOT_EMPTY;
    /* Backward shift: move later members of the probe run into the hole
     * unless their home slot lies cyclically in (i, j]. */
    for (;;) {
        size_t home;

        j = (j + 1) & kv->mask;
        if (kv->slots[j] == SLOT_EMPTY)
            return;
        home = slot_of(kv, kv->blocks[kv->slots[j]].hash);
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
            continue;
        kv->slots[i] = kv->slots[j];
        kv->slots[j] = SLOT_EMPTY;
        i = j;
    }
}

static void
queue_unlink(me_kv *kv, uint32_t id)
{
    kv_block *b = &kv->blocks[id];

    kv->blocks[b->prev].next = b->next;
    kv->blocks[b->next].prev = b->prev;
    kv->nfree--;
}

/* Links <id> right after <at> (the sentinel for the head). */
static void
queue_insert_after(me_kv *kv, uint32_t at, uint32_t id)
{
    kv_block *b = &kv->blocks[id];

    b->prev = at;
    b->next = kv->blocks[at].next;
    kv->blocks[b->next].prev = id;
    kv->blocks[at].next = id;
    kv->nfree++;
}

me_kv *
me_kv_new(uint32_t nblocks)
{
    me_kv *kv = gw_xcalloc(1, sizeof(*kv));
    size_t nslots = 4;

    while (nslots < (size_t)nblocks * 2)
        nslots *= 2;
    kv->n = nblocks;
    kv->blocks = gw_xcalloc((size_t)nblocks + 1, sizeof(*kv->blocks));
    kv->slots = gw_xmalloc(nslots * sizeof(*kv->slots));
    kv->mask = nslots - 1;
    for (size_t i = 0; i < nslots; i++)
        kv->slots[i] = SLOT_EMPTY;
    kv->blocks[nblocks].prev = kv->blocks[nblocks].next = nblocks;
    for (uint32_t i = 0; i < nblocks; i++)
        queue_insert_after(kv, kv->blocks[nblocks].prev, i);
    return kv;
}

void
me_kv_free(me_kv *kv)
{
    if (kv == NULL)
        return;
    free(kv->blocks);
    free(kv->slots);
    free(kv);
}

uint32_t
me_kv_total(const me_kv *kv)
{
    return kv->n;
}

uint32_t
me_kv_free_count(const me_kv *kv)
{
    return kv->nfree;
}

uint64_t
me_kv_evictions(const me_kv *kv)
{
    return kv->evictions;
}

size_t
me_kv_match(const me_kv *kv, const uint64_t *hashes, size_t n, uint32_t *idle)
{
    size_t k;

    *idle = 0;
    for (k = 0; k < n; k++) {
        uint32_t id = kv->slots[index_find(kv, hashes[k])];

        if (id == SLOT_EMPTY)
            break;
        if (kv->blocks[id].ref == 0)
            (*idle)++;
    }
    return k;
}

void
me_kv_acquire(me_kv *kv, const uint64_t *hashes, size_t n, uint32_t *out)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t id = kv->slots[index_find(kv, hashes[k])];

        KV_CHECK(id != SLOT_EMPTY);
        if (kv->blocks[id].ref++ == 0)
            queue_unlink(kv, id);
        out[k] = id;
    }
}

bool
me_kv_alloc(me_kv *kv, uint32_t *out)
{
    uint32_t id = kv->blocks[kv->n].next;
    kv_block *b;

    if (id == kv->n)
        return false;
    b = &kv->blocks[id];
    queue_unlink(kv, id);
    if (b->cached) {
        index_remove(kv, b->hash);
        b->cached = false;
        kv->evictions++;
    }
    b->ref = 1;
    *out = id;
    return true;
}

void
me_kv_cache(me_kv *kv, uint32_t id, uint64_t hash)
{
    kv_block *b = &kv->blocks[id];
    size_t i;

    KV_CHECK(b->ref > 0);
    if (b->cached)
        return;
    i = index_find(kv, hash);
    if (kv->slots[i] != SLOT_EMPTY)
        return;
    b->hash = hash;
    b->cached = true;
    kv->slots[i] = id;
}

void
me_kv_release(me_kv *kv, const uint32_t *ids, size_t n)
{
    while (n-- > 0) {
        uint32_t id = ids[n];
        kv_block *b = &kv->blocks[id];

        KV_CHECK(b->ref > 0);
        if (--b->ref > 0)
            continue;
        /* Cached: most recently used end. Uncached: reuse first. */
        queue_insert_after(kv, b->cached ? kv->blocks[kv->n].prev : kv->n, id);
    }
}

void
me_kv_drop_cached(me_kv *kv, bool counters)
{
    for (uint32_t id = 0; id < kv->n; id++) {
        kv_block *b = &kv->blocks[id];

        if (b->ref > 0 || !b->cached)
            continue;
        index_remove(kv, b->hash);
        b->cached = false;
        /* Keep the queue's "uncached first" order. */
        queue_unlink(kv, id);
        queue_insert_after(kv, kv->n, id);
    }
    if (counters)
        kv->evictions = 0;
}
