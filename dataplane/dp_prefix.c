/* dp_prefix: block hashing, the bounded block -> endpoint-bitset table with
 * CLOCK eviction, endpoint slots per namespace, and the sync delta codec
 * (see dp_prefix.h).
 *
 * Table invariants:
 * - count <= capacity < cap (slots), so a probe always meets an empty slot
 *   and lookups terminate; the load factor stays <= 0.8.
 * - An entry's home slot is fastrange(hash, cap); entries sit on the probe
 *   path from their home; deletion shifts later entries of the cluster back
 *   (no tombstones, so probe lengths do not degrade with churn).
 * - An entry has at least one bit set, except transiently inside a call.
 * - <hand> is shared by eviction (CLOCK: clears reference bits, evicts the
 *   first entry without one) and by the sweep (one step per inserted block,
 *   masking out dead slots). <rev> counts the hand's wraps; a slot that died
 *   at rev r carries no bit anywhere once rev >= r + 2.
 *
 * xxHash is compiled in (XXH_INLINE_ALL), so the per-block hash call is
 * inlined; the function is the library's XXH64. */
#include "dp_prefix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define PFX_PUBLISHED 0x1u
/* CLOCK gives second chances for at most this many hand steps per eviction,
 * then evicts the next entry whatever its reference bit. */
#define EVICT_SCAN 64
#define NS_NONE    UINT16_MAX
#define SLOT_NONE  UINT32_MAX

typedef struct pfx_entry {
    uint64_t hash; /* 0 = empty slot; a block hash of 0 is stored as 1 */
    uint16_t ns;
    uint8_t ref;   /* CLOCK reference bit */
    uint8_t flags; /* PFX_PUBLISHED: no local bit awaits publication */
    uint32_t unused;
    uint64_t bits[]; /* <words> words: endpoint slots holding the block */
} pfx_entry;

typedef struct pfx_ns {
    char *name;                         /* the base model */
    uint32_t n_slots;                   /* slot numbers handed out so far (high-water) */
    uint32_t cap_slots;                 /* allocated entries of owner / dead_rev */
    dp_ep **owner;                      /* NULL = free (borrowed: see dp_prefix_apply_snapshot) */
    uint64_t *dead_rev;                 /* hand revolution at which the slot died */
    uint64_t dead[DP_PREFIX_MAX_WORDS]; /* slots freed and maybe still set somewhere */
    uint64_t seen[DP_PREFIX_MAX_WORDS]; /* apply_snapshot scratch */
    uint32_t n_dead;
} pfx_ns;

struct dp_prefix {
    dp_prefix_cfg cfg;
    unsigned char *tab; /* <cap> entries of <stride> bytes; NULL until the first insert */
    size_t stride;
    uint32_t words;
    uint64_t cap;
    uint64_t count;
    uint64_t hand;
    uint64_t rev;
    uint64_t evictions, purged, inserts;
    pfx_ns *ns;
    uint32_t n_ns, cap_ns;
    uint64_t *pub;                       /* hashes to publish (max_blocks) */
    uint32_t mlen[DP_PREFIX_MAX_SLOTS];  /* match scratch, per slot */
    uint64_t alive[DP_PREFIX_MAX_WORDS]; /* match scratch */
    dp_prefix_sink_fn sink;
    void *sink_arg;
    bool sink_up;
    bool warned_slots;
};

/* ---- hashing -------------------------------------------------------------- */

uint64_t
dp_prefix_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t
dp_prefix_parent0(uint64_t seed, const char *adapter)
{
    if (adapter == NULL || adapter[0] == '\0')
        return seed;
    return XXH64(adapter, strlen(adapter), seed);
}

uint32_t
dp_prefix_hash(uint64_t seed, uint64_t parent, uint32_t bs, const void *text, size_t len,
               uint64_t *out, uint32_t max)
{
    const unsigned char *t = text;
    unsigned char buf[8 + 504];
    uint32_t n = 0;

    if (bs == 0)
        return 0;
    for (size_t off = 0; n < max && len - off >= bs; off += bs) {
        if (bs <= sizeof(buf) - 8) {
            /* One contiguous input: the one-shot XXH64 is faster than the
             * streaming state for small blocks. */
            put_le64(buf, parent);
            memcpy(buf + 8, t + off, bs);
            parent = XXH64(buf, 8 + (size_t)bs, seed);
        } else {
            XXH64_state_t st;
            put_le64(buf, parent);
            XXH64_reset(&st, seed);
            XXH64_update(&st, buf, 8);
            XXH64_update(&st, t + off, bs);
            parent = XXH64_digest(&st);
        }
        out[n++] = parent;
    }
    return n;
}

/* ---- table primitives ------------------------------------------------------ */

static inline uint64_t
key_of(uint64_t h)
{
    return h != 0 ? h : 1;
}

static inline pfx_entry *
at(const dp_prefix *p, uint64_t i)
{
    return (pfx_entry *)(p->tab + i * p->stride);
}

static inline uint64_t
home(const dp_prefix *p, uint64_t key)
{
    /* fastrange: XXH64 output is uniform, so the high half of the product
     * maps it onto [0, cap) without a power-of-two size. */
    return (uint64_t)(((unsigned __int128)key * p->cap) >> 64);
}

static inline void
advance(dp_prefix *p)
{
    if (++p->hand == p->cap) {
        p->hand = 0;
        p->rev++;
    }
}

static int64_t
find(const dp_prefix *p, uint16_t ns, uint64_t key)
{
    uint64_t i = home(p, key);

    for (;;) {
        const pfx_entry *e = at(p, i);
        if (e->hash == 0)
            return -1;
        if (e->hash == key && e->ns == ns)
            return (int64_t)i;
        if (++i == p->cap)
            i = 0;
    }
}

static inline uint64_t
dist(const dp_prefix *p, uint64_t a, uint64_t b)
{
    return b >= a ? b - a : b + p->cap - a;
}

/* Deletes entry <i>: later entries of its cluster whose probe path covers
 * the hole move back into it. */
static void
delete_at(dp_prefix *p, uint64_t i)
{
    uint64_t j = i;

    for (;;) {
        pfx_entry *e;
        if (++j == p->cap)
            j = 0;
        e = at(p, j);
        if (e->hash == 0)
            break;
        if (dist(p, home(p, e->hash), j) >= dist(p, i, j)) {
            memcpy(at(p, i), e, p->stride);
            i = j;
        }
    }
    memset(at(p, i), 0, p->stride);
    p->count--;
}

/* Masks out the dead slots of the entry's namespace; false if no bit is
 * left. */
static bool
clean_bits(const dp_prefix *p, pfx_entry *e)
{
    const pfx_ns *ns = &p->ns[e->ns];
    uint64_t any = 0;

    if (ns->n_dead == 0)
        return true;
    for (uint32_t w = 0; w < p->words; w++) {
        e->bits[w] &= ~ns->dead[w];
        any |= e->bits[w];
    }
    return any != 0;
}

/* One step of the sweep that clears dead slots (see the file comment). */
static void
sweep_step(dp_prefix *p)
{
    pfx_entry *e = at(p, p->hand);

    if (e->hash != 0 && !clean_bits(p, e)) {
        delete_at(p, p->hand); /* the hand stays: a shifted entry may be there now */
        p->purged++;
        return;
    }
    advance(p);
}

/* Makes room for one entry: CLOCK with a bounded number of second chances. */
static void
evict_one(dp_prefix *p)
{
    for (uint32_t steps = 0;; steps++) {
        pfx_entry *e = at(p, p->hand);
        if (e->hash == 0) {
            advance(p);
            continue;
        }
        if (!clean_bits(p, e)) {
            delete_at(p, p->hand);
            p->purged++;
            return;
        }
        if (e->ref == 0 || steps >= EVICT_SCAN) {
            delete_at(p, p->hand);
            p->evictions++;
            return;
        }
        e->ref = 0;
        advance(p);
    }
}

static void
ensure_table(dp_prefix *p)
{
    if (p->tab != NULL)
        return;
    p->stride = sizeof(pfx_entry) + (size_t)p->words * sizeof(uint64_t);
    p->tab = gw_xcalloc(p->cap, p->stride);
}

/* Finds or adds (ns, key); sets *created. The entry's bits are cleaned. */
static pfx_entry *
touch(dp_prefix *p, uint16_t ns, uint64_t key, bool *created)
{
    int64_t i = find(p, ns, key);
    uint64_t j;
    pfx_entry *e;

    if (i >= 0) {
        e = at(p, (uint64_t)i);
        clean_bits(p, e);
        *created = false;
        return e;
    }
    if (p->count >= p->cfg.capacity)
        evict_one(p);
    for (j = home(p, key); at(p, j)->hash != 0;)
        if (++j == p->cap)
            j = 0;
    e = at(p, j);
    e->hash = key;
    e->ns = ns;
    p->count++;
    *created = true;
    return e;
}

/* Re-lays the table out with <words> bitset words per entry (positions
 * unchanged). */
static void
set_words(dp_prefix *p, uint32_t words)
{
    size_t stride = sizeof(pfx_entry) + (size_t)words * sizeof(uint64_t);
    unsigned char *tab;

    if (p->tab != NULL) {
        tab = gw_xcalloc(p->cap, stride);
        for (uint64_t i = 0; i < p->cap; i++)
            memcpy(tab + i * stride, at(p, i), p->stride); /* the new words stay 0 */
        free(p->tab);
        p->tab = tab;
        p->stride = stride;
    }
    p->words = words;
}

/* Cleans every entry now and counts two revolutions: every dead slot is
 * reusable afterwards. Only when a model's slots run out (rare). */
static void
full_sweep(dp_prefix *p)
{
    for (uint64_t i = 0; p->tab != NULL && i < p->cap; i++) {
        while (at(p, i)->hash != 0 && !clean_bits(p, at(p, i))) {
            delete_at(p, i);
            p->purged++;
        }
    }
    p->rev += 2;
}

/* ---- lifecycle --------------------------------------------------------------- */

dp_prefix *
dp_prefix_new(const dp_prefix_cfg *cfg)
{
    dp_prefix *p = gw_xcalloc(1, sizeof(*p));

    p->cfg = *cfg;
    if (p->cfg.block_size == 0)
        p->cfg.block_size = 1;
    if (p->cfg.capacity < 64)
        p->cfg.capacity = 64;
    if (p->cfg.max_blocks == 0)
        p->cfg.max_blocks = 1;
    /* Load factor <= 0.8, and always at least one empty slot. */
    p->cap = (uint64_t)p->cfg.capacity + p->cfg.capacity / 4 + 1;
    p->words = 1;
    p->pub = gw_xcalloc(p->cfg.max_blocks, sizeof(*p->pub));
    return p;
}

void
dp_prefix_free(dp_prefix *p)
{
    if (p == NULL)
        return;
    for (uint32_t i = 0; i < p->n_ns; i++) {
        free(p->ns[i].name);
        free(p->ns[i].owner);
        free(p->ns[i].dead_rev);
    }
    free(p->ns);
    free(p->tab);
    free(p->pub);
    free(p);
}

const dp_prefix_cfg *
dp_prefix_config(const dp_prefix *p)
{
    return &p->cfg;
}

void
dp_prefix_stats_get(const dp_prefix *p, dp_prefix_stats *out)
{
    uint64_t mem = sizeof(*p) + (uint64_t)p->cfg.max_blocks * sizeof(*p->pub);

    if (p->tab != NULL)
        mem += p->cap * p->stride;
    mem += (uint64_t)p->cap_ns * sizeof(pfx_ns);
    for (uint32_t i = 0; i < p->n_ns; i++)
        mem += strlen(p->ns[i].name) + 1 +
               (uint64_t)p->ns[i].cap_slots * (sizeof(dp_ep *) + sizeof(uint64_t));
    *out = (dp_prefix_stats){.blocks = p->count,
                             .capacity = p->cfg.capacity,
                             .evictions = p->evictions,
                             .purged = p->purged,
                             .inserts = p->inserts,
                             .memory_bytes = mem,
                             .namespaces = p->n_ns,
                             .words = p->words};
}

/* ---- namespaces and slots ------------------------------------------------------ */

static uint32_t
ns_find(const dp_prefix *p, const char *name, size_t len)
{
    for (uint32_t i = 0; i < p->n_ns; i++) {
        if (strncmp(p->ns[i].name, name, len) == 0 && p->ns[i].name[len] == '\0')
            return i;
    }
    return NS_NONE;
}

static uint32_t
ns_get(dp_prefix *p, const char *name)
{
    uint32_t i = ns_find(p, name, strlen(name));
    pfx_ns *ns;

    if (i != NS_NONE)
        return i;
    if (p->n_ns >= NS_NONE)
        return NS_NONE;
    if (p->n_ns == p->cap_ns) {
        p->cap_ns = p->cap_ns ? p->cap_ns * 2 : 8;
        p->ns = gw_xrealloc(p->ns, p->cap_ns * sizeof(*p->ns));
    }
    ns = &p->ns[p->n_ns];
    memset(ns, 0, sizeof(*ns));
    ns->name = gw_xstrdup(name);
    return p->n_ns++;
}

static bool
slot_is_clean(const dp_prefix *p, const pfx_ns *ns, uint32_t s)
{
    return p->tab == NULL || p->rev >= ns->dead_rev[s] + 2;
}

static uint32_t
slot_alloc(dp_prefix *p, uint32_t nsi)
{
    pfx_ns *ns = &p->ns[nsi];

    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t s = 0; s < ns->n_slots; s++) {
            uint64_t bit = 1ull << (s % 64);
            if (ns->owner[s] != NULL)
                continue;
            if (!(ns->dead[s / 64] & bit))
                return s;
            if (slot_is_clean(p, ns, s)) {
                ns->dead[s / 64] &= ~bit;
                ns->n_dead--;
                return s;
            }
        }
        if (ns->n_slots < DP_PREFIX_MAX_SLOTS) {
            uint32_t s = ns->n_slots++;
            if (s >= ns->cap_slots) {
                ns->cap_slots = ns->cap_slots ? ns->cap_slots * 2 : 16;
                ns->owner = gw_xrealloc(ns->owner, ns->cap_slots * sizeof(*ns->owner));
                ns->dead_rev = gw_xrealloc(ns->dead_rev, ns->cap_slots * sizeof(*ns->dead_rev));
            }
            ns->owner[s] = NULL;
            ns->dead_rev[s] = 0;
            if (s / 64 + 1 > p->words)
                set_words(p, s / 64 + 1);
            return s;
        }
        /* Every slot is taken or still quarantined: clean the table now. */
        if (ns->n_dead == 0)
            break;
        full_sweep(p);
    }
    return SLOT_NONE;
}

void
dp_prefix_apply_snapshot(dp_prefix *p, const pm_snapshot *pm, dp_ep *const *states)
{
    for (uint32_t i = 0; i < p->n_ns; i++)
        memset(p->ns[i].seen, 0, sizeof(p->ns[i].seen));
    for (uint32_t e = 0; e < pm->n_endpoints; e++) {
        dp_ep *st = states[e];
        uint32_t nsi = ns_get(p, pm->endpoints[e].model), s;
        pfx_ns *ns;

        if (nsi == NS_NONE) {
            st->pfx_slot = 0;
            continue;
        }
        ns = &p->ns[nsi];
        s = st->pfx_slot ? st->pfx_slot - 1u : SLOT_NONE;
        if (s == SLOT_NONE || st->pfx_ns != nsi || s >= ns->n_slots || ns->owner[s] != st) {
            s = slot_alloc(p, nsi);
            ns = &p->ns[nsi];
            if (s == SLOT_NONE) {
                st->pfx_slot = 0;
                if (!p->warned_slots)
                    gw_log(GW_LOG_WARN, "DP-PFX-SLOTS",
                           "model=%s max=%d msg=\"more endpoints than the prefix index tracks; "
                           "the others are never matched\"",
                           ns->name, DP_PREFIX_MAX_SLOTS);
                p->warned_slots = true;
                continue;
            }
            ns->owner[s] = st;
            st->pfx_ns = (uint16_t)nsi;
            st->pfx_slot = (uint16_t)(s + 1);
        }
        ns->seen[s / 64] |= 1ull << (s % 64);
    }
    /* Endpoints that left: their states are still alive here (the previous
     * snapshot holds them), so the owner pointers can be cleared. */
    for (uint32_t i = 0; i < p->n_ns; i++) {
        pfx_ns *ns = &p->ns[i];
        for (uint32_t s = 0; s < ns->n_slots; s++) {
            uint64_t bit = 1ull << (s % 64);
            if (ns->owner[s] == NULL || (ns->seen[s / 64] & bit))
                continue;
            ns->owner[s]->pfx_slot = 0;
            ns->owner[s] = NULL;
            if (p->tab == NULL)
                continue; /* no entry can hold its bit */
            ns->dead[s / 64] |= bit;
            ns->dead_rev[s] = p->rev;
            ns->n_dead++;
        }
    }
}

/* ---- match and insert -------------------------------------------------------- */

void
dp_prefix_match(dp_prefix *p, const uint64_t *hashes, uint32_t n, dp_ep *const *states,
                const uint32_t *cands, uint32_t n_cands, uint32_t *out)
{
    uint32_t nsi = NS_NONE, i, W = p->words;
    uint64_t any = 0;

    for (uint32_t c = 0; c < n_cands; c++)
        out[c] = 0;
    if (p->tab == NULL || n == 0)
        return;
    memset(p->alive, 0, W * sizeof(uint64_t));
    for (uint32_t c = 0; c < n_cands; c++) {
        const dp_ep *st = states[cands[c]];
        uint32_t s = st->pfx_slot - 1u;
        if (st->pfx_slot == 0)
            continue;
        if (nsi == NS_NONE)
            nsi = st->pfx_ns;
        else if (st->pfx_ns != nsi)
            continue; /* all candidates serve one model */
        p->alive[s / 64] |= 1ull << (s % 64);
        any = 1;
    }
    if (!any)
        return;
    /* Walk the blocks in order: a candidate leaves the alive set at the
     * first block it does not hold, with that block's index as its match. */
    for (i = 0; i < n; i++) {
        int64_t idx = find(p, (uint16_t)nsi, key_of(hashes[i]));
        const pfx_entry *e;
        if (idx < 0)
            break;
        e = at(p, (uint64_t)idx);
        any = 0;
        for (uint32_t w = 0; w < W; w++) {
            uint64_t next = p->alive[w] & e->bits[w], gone = p->alive[w] & ~next;
            for (; gone != 0; gone &= gone - 1)
                p->mlen[w * 64 + (uint32_t)__builtin_ctzll(gone)] = i;
            p->alive[w] = next;
            any |= next;
        }
        if (!any)
            break;
    }
    for (uint32_t w = 0; w < W; w++) {
        for (uint64_t left = p->alive[w]; left != 0; left &= left - 1)
            p->mlen[w * 64 + (uint32_t)__builtin_ctzll(left)] = i;
    }
    for (uint32_t c = 0; c < n_cands; c++) {
        const dp_ep *st = states[cands[c]];
        if (st->pfx_slot != 0 && st->pfx_ns == nsi)
            out[c] = p->mlen[st->pfx_slot - 1u];
    }
}

static void
set_bit(pfx_entry *e, uint32_t s, bool *newly)
{
    uint64_t bit = 1ull << (s % 64);

    *newly = !(e->bits[s / 64] & bit);
    e->bits[s / 64] |= bit;
}

void
dp_prefix_insert(dp_prefix *p, const dp_ep *ep, const uint64_t *hashes, uint32_t n)
{
    uint32_t s = ep->pfx_slot - 1u, n_pub = 0;

    if (ep->pfx_slot == 0 || n == 0)
        return;
    if (n > p->cfg.max_blocks)
        n = p->cfg.max_blocks;
    ensure_table(p);
    for (uint32_t i = 0; i < n; i++) {
        bool created, newly;
        pfx_entry *e = touch(p, ep->pfx_ns, key_of(hashes[i]), &created);
        bool aged = !created && e->ref == 0;

        set_bit(e, s, &newly);
        e->ref = 1;
        if (p->sink != NULL) {
            if (created || newly || aged || !(e->flags & PFX_PUBLISHED)) {
                if (p->sink_up) {
                    p->pub[n_pub++] = hashes[i];
                    e->flags |= PFX_PUBLISHED;
                } else {
                    e->flags &= (uint8_t)~PFX_PUBLISHED;
                }
            }
        }
        p->inserts++;
        sweep_step(p); /* may move entries: <e> is not used after this */
    }
    if (n_pub > 0)
        p->sink(p->sink_arg, ep->key, p->pub, n_pub);
}

void
dp_prefix_set_sink(dp_prefix *p, dp_prefix_sink_fn fn, void *arg)
{
    p->sink = fn;
    p->sink_arg = arg;
}

void
dp_prefix_set_sink_up(dp_prefix *p, bool up)
{
    p->sink_up = up;
}

uint32_t
dp_prefix_apply_remote(dp_prefix *p, const char *key, size_t klen, const uint8_t *hashes_le,
                       uint32_t n)
{
    const char *bar = NULL;
    uint32_t nsi, s = SLOT_NONE;
    const pfx_ns *ns;

    for (size_t i = klen; i > 0; i--) {
        if (key[i - 1] == '|') {
            bar = key + i - 1;
            break;
        }
    }
    if (bar == NULL || bar == key || n == 0)
        return 0;
    nsi = ns_find(p, key, (size_t)(bar - key));
    if (nsi == NS_NONE)
        return 0;
    ns = &p->ns[nsi];
    for (uint32_t i = 0; i < ns->n_slots; i++) {
        const dp_ep *o = ns->owner[i];
        if (o != NULL && strncmp(o->key, key, klen) == 0 && o->key[klen] == '\0') {
            s = i;
            break;
        }
    }
    if (s == SLOT_NONE)
        return 0;
    if (n > p->cfg.max_blocks)
        n = p->cfg.max_blocks;
    ensure_table(p);
    for (uint32_t i = 0; i < n; i++) {
        bool created, newly;
        pfx_entry *e = touch(p, (uint16_t)nsi, key_of(dp_prefix_le64(hashes_le + 8 * i)), &created);
        set_bit(e, s, &newly);
        e->ref = 1;
        if (created)
            e->flags = PFX_PUBLISHED; /* its origin published it */
        p->inserts++;
        sweep_step(p);
    }
    return n;
}

/* ---- delta codec ------------------------------------------------------------- */

static void
put_le16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

gw_err
dp_prefix_delta_append(gw_buf *b, const char *key, const uint64_t *hashes, uint32_t n)
{
    size_t klen = strlen(key), need;
    const char *bar = strrchr(key, '|');
    uint8_t hdr[3], chunk[8 * 64];

    if (klen == 0 || klen > DP_PREFIX_DELTA_MAX_KEY || bar == NULL || bar == key || n == 0 ||
        n > DP_PREFIX_DELTA_MAX_HASHES)
        return GW_EINVAL;
    need = (b->len == 0 ? 1 : 0) + 2 + klen + 2 + 8 * (size_t)n;
    if (b->len + need > b->max)
        return GW_EFULL;
    /* Fits: every append below succeeds (the cap was checked above). */
    if (b->len == 0) {
        hdr[0] = DP_PREFIX_DELTA_VERSION;
        if (gw_buf_append(b, hdr, 1) != GW_OK)
            return GW_EFULL;
    }
    put_le16(hdr, (uint32_t)klen);
    if (gw_buf_append(b, hdr, 2) != GW_OK || gw_buf_append(b, key, klen) != GW_OK)
        return GW_EFULL;
    put_le16(hdr, n);
    if (gw_buf_append(b, hdr, 2) != GW_OK)
        return GW_EFULL;
    for (uint32_t i = 0; i < n;) {
        uint32_t k = 0;
        for (; k < 64 && i < n; k++, i++)
            put_le64(chunk + 8 * k, hashes[i]);
        if (gw_buf_append(b, chunk, 8 * (size_t)k) != GW_OK)
            return GW_EFULL;
    }
    return GW_OK;
}

gw_err
dp_prefix_delta_decode(const void *data, size_t len, dp_prefix_delta_fn fn, void *arg)
{
    const uint8_t *d = data;

    if (len < 1)
        return GW_EPROTO;
    if (d[0] != DP_PREFIX_DELTA_VERSION)
        return GW_EVERSION;
    /* Pass 0 validates everything; pass 1 hands the records out. */
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 1;
        uint32_t records = 0;
        while (off < len) {
            size_t klen, n;
            const char *key, *bar;
            if (len - off < 2)
                return GW_EPROTO;
            klen = (size_t)d[off] | (size_t)d[off + 1] << 8;
            off += 2;
            if (klen == 0 || klen > DP_PREFIX_DELTA_MAX_KEY || len - off < klen)
                return GW_EPROTO;
            key = (const char *)d + off;
            off += klen;
            bar = NULL;
            for (size_t i = klen; i > 0 && bar == NULL; i--)
                bar = key[i - 1] == '|' ? key + i - 1 : NULL;
            if (bar == NULL || bar == key || memchr(key, '\0', klen) != NULL)
                return GW_EPROTO;
            if (len - off < 2)
                return GW_EPROTO;
            n = (size_t)d[off] | (size_t)d[off + 1] << 8;
            off += 2;
            if (n == 0 || n > DP_PREFIX_DELTA_MAX_HASHES || (len - off) / 8 < n)
                return GW_EPROTO;
            if (pass == 1)
                fn(arg, key, klen, d + off, (uint32_t)n);
            off += 8 * n;
            records++;
        }
        if (records == 0)
            return GW_EPROTO;
        if (fn == NULL)
            break;
    }
    return GW_OK;
}
