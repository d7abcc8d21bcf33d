/* ctl_store: per-source sets and the stable endpoint id map (see
 * ctl_store.h). The id map is an open-addressing hash table (linear probing)
 * over a dense entry array. Keys are only removed in bulk at the end of a
 * compile pass, so instead of tombstones the table is rebuilt from the
 * surviving entries then; lookups stay O(1) and compile is O(endpoints).
 * Loop thread only. */
#include "ctl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"
#include "ctl_util.h"

typedef struct id_entry {
    char *key; /* "model\0ip\0port", owned */
    size_t klen;
    uint64_t hash;
    uint32_t id;
    bool seen;
} id_entry;

/* Discovered adapters of one engine address; names sorted and unique. */
typedef struct overlay {
    char *ip; /* owned */
    uint16_t port;
    char **names; /* owned, each owned */
    size_t n;
} overlay;

struct ctl_store {
    pm_snapshot *sets[CTL_SRC_COUNT];
    overlay *overlays; /* sorted by (ip, port) */
    size_t n_overlays, cap_overlays;
    bool dirty;
    ctl_store_change_fn on_change;
    void *on_change_arg;

    id_entry *entries; /* dense, n_entries used */
    size_t n_entries, cap_entries;
    uint32_t *slots; /* entry index + 1; 0 = empty; n_slots is a power of two */
    size_t n_slots;
    uint32_t next_id;
};

static const char *const kind_names[CTL_SRC_COUNT] = {"kubernetes", "file", "endpoints", "redis",
                                                      "etcd"};

const char *
ctl_src_kind_name(ctl_src_kind kind)
{
    return kind < CTL_SRC_COUNT ? kind_names[kind] : "unknown";
}

/* Frees what one overlay entry owns. */
static void
overlay_fini(overlay *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->names[i]);
    free(o->names);
    free(o->ip);
}

ctl_store *
ctl_store_new(void)
{
    ctl_store *st = gw_xcalloc(1, sizeof(*st));

    st->next_id = 1;
    return st;
}

void
ctl_store_free(ctl_store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < CTL_SRC_COUNT; i++)
        pm_snapshot_free(st->sets[i]);
    for (size_t i = 0; i < st->n_entries; i++)
        free(st->entries[i].key);
    for (size_t i = 0; i < st->n_overlays; i++)
        overlay_fini(&st->overlays[i]);
    free(st->overlays);
    free(st->entries);
    free(st->slots);
    free(st);
}

void
ctl_store_on_change(ctl_store *st, ctl_store_change_fn cb, void *arg)
{
    st->on_change = cb;
    st->on_change_arg = arg;
}

void
ctl_store_replace(ctl_store *st, ctl_src_kind kind, pm_snapshot *set)
{
    if (kind >= CTL_SRC_COUNT) {
        pm_snapshot_free(set);
        return;
    }
    pm_snapshot_free(st->sets[kind]);
    st->sets[kind] = set;
    ctl_store_touch(st);
}

void
ctl_store_touch(ctl_store *st)
{
    st->dirty = true;
    if (st->on_change != NULL)
        st->on_change(st, st->on_change_arg);
}

const pm_snapshot *
ctl_store_set(const ctl_store *st, ctl_src_kind kind)
{
    return kind < CTL_SRC_COUNT ? st->sets[kind] : NULL;
}

bool
ctl_store_take_dirty(ctl_store *st)
{
    bool d = st->dirty;

    st->dirty = false;
    return d;
}

/* ---- discovered adapters ---- */

/* Lower bound of (ip, port) in the overlay array. */
static size_t
overlay_pos(const ctl_store *st, const char *ip, uint16_t port)
{
    size_t lo = 0, hi = st->n_overlays;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ctl_addr_cmp(st->overlays[mid].ip, st->overlays[mid].port, ip, port) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* qsort comparator over const char * elements. */
static int
cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool
ctl_store_set_adapters(ctl_store *st, const char *ip, uint16_t port, const char *const *names,
                       size_t n)
{
    size_t at = overlay_pos(st, ip, port);
    bool exists = at < st->n_overlays &&
                  ctl_addr_cmp(st->overlays[at].ip, st->overlays[at].port, ip, port) == 0;
    const char **sorted = gw_xcalloc(n ? n : 1, sizeof(*sorted));
    size_t m = 0;
    bool same;

    /* Sort and deduplicate a borrowed copy of the pointers first, so the
     * comparison with the current set is a plain walk. */
    for (size_t i = 0; i < n; i++) {
        if (names[i] != NULL && names[i][0] != '\0')
            sorted[m++] = names[i];
    }
    qsort(sorted, m, sizeof(*sorted), cmp_str_ptr);
    if (m > 1) {
        size_t k = 1;
        for (size_t i = 1; i < m; i++) {
            if (strcmp(sorted[i], sorted[k - 1]) != 0)
                sorted[k++] = sorted[i];
        }
        m = k;
    }
    if (m > PM_MAX_ADAPTERS)
        m = PM_MAX_ADAPTERS;

    same = exists ? st->overlays[at].n == m : m == 0;
    for (size_t i = 0; same && i < m; i++)
        same = strcmp(st->overlays[at].names[i], sorted[i]) == 0;
    if (same) {
        free(sorted);
        return false;
    }
    if (m == 0) {
        overlay_fini(&st->overlays[at]);
        memmove(&st->overlays[at], &st->overlays[at + 1],
                (st->n_overlays - at - 1) * sizeof(*st->overlays));
        st->n_overlays--;
    } else {
        overlay *o;
        if (!exists) {
            if (st->n_overlays == st->cap_overlays) {
                st->cap_overlays = st->cap_overlays == 0 ? 16 : st->cap_overlays * 2;
                st->overlays = gw_xrealloc(st->overlays, st->cap_overlays * sizeof(*st->overlays));
            }
            memmove(&st->overlays[at + 1], &st->overlays[at],
                    (st->n_overlays - at) * sizeof(*st->overlays));
            st->n_overlays++;
            st->overlays[at] = (overlay){.ip = gw_xstrdup(ip), .port = port};
        }
        /* Copy before freeing: <names> may point into this very entry. */
        char **copy = gw_xcalloc(m, sizeof(*copy));
        for (size_t i = 0; i < m; i++)
            copy[i] = gw_xstrdup(sorted[i]);
        o = &st->overlays[at];
        for (size_t i = 0; i < o->n; i++)
            free(o->names[i]);
        free(o->names);
        o->names = copy;
        o->n = m;
    }
    free(sorted);
    ctl_store_touch(st);
    return true;
}

const char *const *
ctl_store_adapters(const ctl_store *st, const char *ip, uint16_t port, size_t *n)
{
    size_t at = overlay_pos(st, ip, port);

    if (at < st->n_overlays &&
        ctl_addr_cmp(st->overlays[at].ip, st->overlays[at].port, ip, port) == 0) {
        *n = st->overlays[at].n;
        return (const char *const *)st->overlays[at].names;
    }
    *n = 0;
    return NULL;
}

size_t
ctl_store_adapter_count(const ctl_store *st)
{
    return st->n_overlays;
}

/* ---- id map ---- */

/* FNV-1a, 64-bit: keys are short and not attacker-chosen in bulk. */
static uint64_t
hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Writes the key into a heap buffer; returns it and its length. */
static char *
make_key(const char *model, const char *ip, uint16_t port, size_t *klen)
{
    size_t ml = strlen(model), il = strlen(ip);
    char *k = gw_xmalloc(ml + il + 8);
    int pl;

    memcpy(k, model, ml + 1);
    memcpy(k + ml + 1, ip, il + 1);
    pl = snprintf(k + ml + il + 2, 6, "%u", (unsigned)port);
    *klen = ml + il + 2 + (size_t)pl;
    return k;
}

static void
rebuild_slots(ctl_store *st)
{
    size_t want = 16;

    while (want < st->n_entries * 2)
        want *= 2;
    free(st->slots);
    st->slots = gw_xcalloc(want, sizeof(*st->slots));
    st->n_slots = want;
    for (size_t i = 0; i < st->n_entries; i++) {
        size_t s = st->entries[i].hash & (want - 1);
        while (st->slots[s] != 0)
            s = (s + 1) & (want - 1);
        st->slots[s] = (uint32_t)i + 1;
    }
}

/* Index of the entry for <key>, or -1. */
static long
find(const ctl_store *st, const char *key, size_t klen, uint64_t h)
{
    if (st->n_slots == 0)
        return -1;
    for (size_t s = h & (st->n_slots - 1);; s = (s + 1) & (st->n_slots - 1)) {
        uint32_t slot = st->slots[s];
        if (slot == 0)
            return -1;
        const id_entry *e = &st->entries[slot - 1];
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return (long)slot - 1;
    }
}

void
ctl_store_ids_begin(ctl_store *st)
{
    for (size_t i = 0; i < st->n_entries; i++)
        st->entries[i].seen = false;
}

uint32_t
ctl_store_id(ctl_store *st, const char *model, const char *ip, uint16_t port, bool *dup)
{
    size_t klen;
    char *key = make_key(model, ip, port, &klen);
    uint64_t h = hash_key(key, klen);
    long at = find(st, key, klen, h);
    id_entry *e;

    if (at >= 0) {
        free(key);
        e = &st->entries[at];
        if (dup != NULL)
            *dup = e->seen;
        e->seen = true;
        return e->id;
    }
    if (st->n_entries == st->cap_entries) {
        st->cap_entries = st->cap_entries == 0 ? 64 : st->cap_entries * 2;
        st->entries = gw_xrealloc(st->entries, st->cap_entries * sizeof(*st->entries));
    }
    e = &st->entries[st->n_entries++];
    *e = (id_entry){.key = key, .klen = klen, .hash = h, .id = st->next_id++, .seen = true};
    if (dup != NULL)
        *dup = false;
    /* Keep the load factor at or under one half. */
    if (st->n_entries * 2 > st->n_slots) {
        rebuild_slots(st);
    } else {
        size_t s = h & (st->n_slots - 1);
        while (st->slots[s] != 0)
            s = (s + 1) & (st->n_slots - 1);
        st->slots[s] = (uint32_t)st->n_entries;
    }
    return e->id;
}

void
ctl_store_ids_end(ctl_store *st)
{
    size_t kept = 0;

    for (size_t i = 0; i < st->n_entries; i++) {
        if (st->entries[i].seen)
            st->entries[kept++] = st->entries[i];
        else
            free(st->entries[i].key);
    }
    if (kept != st->n_entries) {
        st->n_entries = kept;
        rebuild_slots(st);
    }
}

uint32_t
ctl_store_id_peek(const ctl_store *st, const char *model, const char *ip, uint16_t port)
{
    size_t klen;
    char *key = make_key(model, ip, port, &klen);
    long at = find(st, key, klen, hash_key(key, klen));
    uint32_t id = at >= 0 ? st->entries[at].id : 0;

    free(key);
    return id;
}

size_t
ctl_store_id_count(const ctl_store *st)
{
    return st->n_entries;
}
