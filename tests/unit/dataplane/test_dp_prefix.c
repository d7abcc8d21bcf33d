/* Unit tests for dp_prefix: the chained block hash against its definition,
 * longest-consecutive-prefix matching per endpoint, namespaces, the
 * capacity bound and CLOCK, endpoints leaving (ignored at once, slot reused
 * only once clean), bitsets wider than 64 endpoints, what a local insert
 * publishes, remote deltas, and the delta codec on good and bad input. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "dp_fixture.h"
#include "dp_prefix.h"
#include "dp_snap.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static dp_load *load;
static dp_snap *snap;
static dp_prefix *p;

static dp_prefix *
new_prefix(uint32_t capacity)
{
    dp_prefix_cfg c = {.block_size = 4, .seed = 0, .capacity = capacity, .max_blocks = 64};
    return dp_prefix_new(&c);
}

/* Installs <pm> as the snapshot, as dp_sync does. */
static void
apply(pm_snapshot *pm)
{
    dp_ep **states = dp_load_apply_snapshot(load, pm);
    dp_prefix_apply_snapshot(p, pm, states);
    dp_snap_unref(snap);
    snap = dp_snap_new(pm, states);
}

static void
setup(void)
{
    load = dp_load_new();
    snap = NULL;
    p = new_prefix(1024);
    apply(fx_snapshot("m", 4));
}

static void
teardown(void)
{
    dp_prefix_free(p);
    dp_snap_unref(snap);
    dp_load_free(load);
    ut_leak_check();
}
TestSuite(dp_prefix, .init = setup, .fini = teardown, .timeout = 30);

static dp_ep *
ep(uint32_t i)
{
    return dp_snap_state(snap, i);
}

/* Block hashes h[0..n-1] of a text unique to <tag>. */
static void
hashes(const char *tag, uint64_t *h, uint32_t n)
{
    char text[64 * 4 + 1];
    for (uint32_t i = 0; i < n * 4; i++)
        text[i] = tag[i % strlen(tag)] + (char)(i / 4 % 7);
    cr_assert_eq(dp_prefix_hash(0, 0, 4, text, n * 4, h, n), n);
}

/* Matches for the first <n_eps> endpoints. */
static void
match(const uint64_t *h, uint32_t n, uint32_t n_eps, uint32_t *out)
{
    uint32_t cands[256];
    for (uint32_t i = 0; i < n_eps; i++)
        cands[i] = i;
    dp_prefix_match(p, h, n, dp_snap_states(snap), cands, n_eps, out);
}

Test(dp_prefix, block_hash_is_chained_xxh64_of_the_parent_and_the_block)
{
    const char *text = "abcdefghij"; /* two full blocks of 4; "ij" is not hashed */
    uint64_t h[4], want0, want1, seed = 77;
    unsigned char buf[12];

    cr_assert_eq(dp_prefix_hash(seed, seed, 4, text, strlen(text), h, 4), 2);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(seed >> (8 * i));
    memcpy(buf + 8, "abcd", 4);
    want0 = XXH64(buf, 12, seed);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(want0 >> (8 * i));
    memcpy(buf + 8, "efgh", 4);
    want1 = XXH64(buf, 12, seed);
    cr_assert_eq(h[0], want0);
    cr_assert_eq(h[1], want1);
    cr_assert_eq(dp_prefix_hash(seed, seed, 4, text, strlen(text), h, 1), 1, "max is honoured");
    cr_assert_eq(dp_prefix_hash(seed, seed, 4, "abc", 3, h, 4), 0, "no full block");
}

Test(dp_prefix, large_blocks_hash_the_same_way_through_the_streaming_api)
{
    static char text[1300];
    static unsigned char buf[8 + 600];
    uint64_t h[2], parent = 5;

    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('a' + i % 26);
    cr_assert_eq(dp_prefix_hash(9, parent, 600, text, sizeof(text), h, 2), 2);
    for (int b = 0; b < 2; b++) {
        for (int i = 0; i < 8; i++)
            buf[i] = (unsigned char)(parent >> (8 * i));
        memcpy(buf + 8, text + 600 * b, 600);
        parent = XXH64(buf, sizeof(buf), 9);
        cr_assert_eq(h[b], parent, "block %d", b);
    }
}

Test(dp_prefix, an_adapter_chains_from_its_own_first_parent)
{
    cr_assert_eq(dp_prefix_parent0(3, NULL), 3);
    cr_assert_eq(dp_prefix_parent0(3, ""), 3);
    cr_assert_eq(dp_prefix_parent0(3, "sql-lora"), XXH64("sql-lora", 8, 3));
}

Test(dp_prefix, match_is_the_longest_consecutive_prefix_per_endpoint)
{
    uint64_t h[6];
    uint32_t m[4];

    hashes("conv", h, 6);
    dp_prefix_insert(p, ep(0), h, 6);
    dp_prefix_insert(p, ep(1), h, 3);
    dp_prefix_insert(p, ep(2), h, 1);
    dp_prefix_insert(p, ep(2), h + 2, 4); /* blocks 2..5 but not 1: a gap */
    match(h, 6, 4, m);
    cr_assert_eq(m[0], 6);
    cr_assert_eq(m[1], 3);
    cr_assert_eq(m[2], 1, "the walk stops at the first block it does not hold");
    cr_assert_eq(m[3], 0);
    match(h + 1, 5, 4, m);
    cr_assert_eq(m[0], 5);
    cr_assert_eq(m[2], 0, "a prefix starts at block 0 of the request");
}

Test(dp_prefix, a_block_nobody_holds_ends_the_match_for_everybody)
{
    uint64_t h[4], other[4];
    uint32_t m[4];

    hashes("aaaa", h, 4);
    hashes("bbbb", other, 4);
    dp_prefix_insert(p, ep(0), h, 2);
    dp_prefix_insert(p, ep(0), h + 3, 1);
    match(h, 4, 4, m);
    cr_assert_eq(m[0], 2);
    match(other, 4, 4, m);
    cr_assert_eq(m[0], 0);
    match(h, 0, 4, m);
    cr_assert_eq(m[0], 0, "no blocks, no match");
}

Test(dp_prefix, models_are_separate_namespaces)
{
    pm_snapshot *pm = fx_snapshot("m", 2);
    uint64_t h[3];
    uint32_t m[4], cands[2] = {2, 3};

    fx_add_model(pm, "other");
    fx_add_endpoint(pm, "other", "10.0.0.1"); /* same address, another model */
    fx_add_endpoint(pm, "other", "10.0.0.9");
    apply(pm);
    hashes("same", h, 3);
    dp_prefix_insert(p, ep(0), h, 3);
    dp_prefix_match(p, h, 3, dp_snap_states(snap), cands, 2, m);
    cr_assert_eq(m[0], 0, "model 'other' does not see model 'm''s blocks");
    cr_assert_eq(m[1], 0);
    dp_prefix_insert(p, ep(2), h, 2);
    dp_prefix_match(p, h, 3, dp_snap_states(snap), cands, 2, m);
    cr_assert_eq(m[0], 2);
    match(h, 3, 2, m);
    cr_assert_eq(m[0], 3);
}

Test(dp_prefix, the_table_never_holds_more_than_its_capacity)
{
    dp_prefix_stats st;
    uint64_t h[1];
    char text[16];

    for (uint32_t i = 0; i < 5000; i++) {
        snprintf(text, sizeof(text), "%04u", i % 10000);
        cr_assert_eq(dp_prefix_hash(i, i, 4, text, 4, h, 1), 1);
        dp_prefix_insert(p, ep(i % 4), h, 1);
        dp_prefix_stats_get(p, &st);
        cr_assert_leq(st.blocks, 1024);
    }
    dp_prefix_stats_get(p, &st);
    cr_assert_eq(st.blocks, 1024);
    cr_assert_eq(st.evictions, 5000 - 1024);
    cr_assert_eq(st.inserts, 5000);
}

Test(dp_prefix, clock_keeps_a_block_that_is_used_again)
{
    dp_prefix_stats st;
    uint64_t hot[2], h[1];
    uint32_t m[4];
    char text[16];

    dp_prefix_free(p);
    p = new_prefix(64);
    apply(fx_snapshot("m", 4));
    hashes("hot!", hot, 2);
    for (uint32_t i = 0; i < 2000; i++) {
        if (i % 8 == 0)
            dp_prefix_insert(p, ep(0), hot, 2); /* touched once per 8 cold inserts */
        snprintf(text, sizeof(text), "%04u", i);
        cr_assert_eq(dp_prefix_hash(1, 1, 4, text, 4, h, 1), 1);
        dp_prefix_insert(p, ep(1), h, 1);
        match(hot, 2, 4, m);
        cr_assert_eq(m[0], 2, "the hot prefix was evicted at step %u", i);
    }
    dp_prefix_stats_get(p, &st);
    cr_assert_eq(st.blocks, 64);
    cr_assert_gt(st.evictions, 1900);
}

Test(dp_prefix, an_endpoint_that_leaves_is_ignored_at_once_and_its_slot_reused_only_clean)
{
    uint64_t h[4], x[1];
    uint32_t m[5];
    dp_prefix_stats st;
    pm_snapshot *pm;
    char text[16];
    uint16_t old_slot = ep(3)->pfx_slot;

    hashes("gone", h, 4);
    dp_prefix_insert(p, ep(3), h, 4);
    dp_prefix_insert(p, ep(0), h, 1);
    /* 10.0.0.4 leaves */
    apply(fx_snapshot("m", 3));
    match(h, 4, 3, m);
    cr_assert_eq(m[0], 1);
    /* A new endpoint arrives at once: it must not inherit the dead slot's
     * blocks, so it gets another slot. */
    pm = fx_snapshot("m", 3);
    fx_add_endpoint(pm, "m", "10.0.0.50");
    apply(pm);
    cr_assert_neq(ep(3)->pfx_slot, old_slot, "a quarantined slot is not handed out");
    match(h, 4, 4, m);
    cr_assert_eq(m[3], 0, "a new endpoint starts empty");
    /* Enough inserts for the hand to go round twice: the dead bits are gone
     * (the entries only 10.0.0.4 held are purged). */
    for (uint32_t i = 0; i < 2 * 1300; i++) {
        snprintf(text, sizeof(text), "%04u", i % 500);
        cr_assert_eq(dp_prefix_hash(2, 2, 4, text, 4, x, 1), 1);
        dp_prefix_insert(p, ep(1), x, 1);
    }
    dp_prefix_stats_get(p, &st);
    cr_assert_geq(st.purged, 3, "blocks held only by the endpoint that left are purged");
    match(h, 4, 4, m);
    cr_assert_eq(m[0], 1);
    cr_assert_eq(m[3], 0);
    /* Clean now: the next newcomer gets the old slot, and no old bit. */
    pm = fx_snapshot("m", 3);
    fx_add_endpoint(pm, "m", "10.0.0.50");
    fx_add_endpoint(pm, "m", "10.0.0.51");
    apply(pm);
    cr_assert_eq(ep(4)->pfx_slot, old_slot, "a clean slot is reused");
    match(h, 4, 5, m);
    cr_assert_eq(m[4], 0);
}

Test(dp_prefix, a_returning_endpoint_gets_a_fresh_slot)
{
    uint64_t h[2];
    uint32_t m[4];

    hashes("back", h, 2);
    dp_prefix_insert(p, ep(3), h, 2);
    apply(fx_snapshot("m", 3));
    apply(fx_snapshot("m", 4)); /* 10.0.0.4 is back (same identity) */
    cr_assert_neq(ep(3)->pfx_slot, 0);
    match(h, 2, 4, m);
    cr_assert_eq(m[3], 0, "what it held before it left is forgotten");
    dp_prefix_insert(p, ep(3), h, 2);
    match(h, 2, 4, m);
    cr_assert_eq(m[3], 2);
}

Test(dp_prefix, more_than_64_endpoints_widen_the_bitset)
{
    uint64_t h[3];
    uint32_t m[200];
    dp_prefix_stats st;

    hashes("wide", h, 3);
    dp_prefix_insert(p, ep(1), h, 3); /* before the table widens */
    apply(fx_snapshot("m", 200));
    dp_prefix_insert(p, ep(199), h, 2);
    dp_prefix_insert(p, ep(130), h, 3);
    dp_prefix_insert(p, ep(64), h, 1);
    match(h, 3, 200, m);
    cr_assert_eq(m[1], 3, "bits survive the re-layout");
    cr_assert_eq(m[199], 2);
    cr_assert_eq(m[130], 3);
    cr_assert_eq(m[64], 1);
    cr_assert_eq(m[63], 0);
    dp_prefix_stats_get(p, &st);
    cr_assert_eq(st.words, 4);
}

Test(dp_prefix, memory_per_block_is_about_30_bytes_up_to_64_endpoints)
{
    dp_prefix_stats st;
    uint64_t h[1];

    dp_prefix_free(p);
    p = new_prefix(200000);
    hashes("mem1", h, 1);
    dp_prefix_insert(p, ep(0), h, 1);
    dp_prefix_stats_get(p, &st);
    cr_assert_leq((double)st.memory_bytes / st.capacity, 31.0, "%.1f bytes per block",
                  (double)st.memory_bytes / st.capacity);
    cr_assert_geq((double)st.memory_bytes / st.capacity, 30.0);
}

/* ---- sync: what a local insert publishes ----------------------------------- */

static uint32_t sunk;
static char sunk_key[64];

static void
sink(void *arg, const char *key, const uint64_t *h, uint32_t n)
{
    (void)arg;
    (void)h;
    sunk += n;
    snprintf(sunk_key, sizeof(sunk_key), "%s", key);
}

Test(dp_prefix, an_insert_publishes_only_what_others_may_not_know)
{
    uint64_t h[5];

    hashes("pubs", h, 5);
    sunk = 0;
    dp_prefix_set_sink(p, sink, NULL);
    dp_prefix_set_sink_up(p, true);
    dp_prefix_insert(p, ep(0), h, 3);
    cr_assert_eq(sunk, 3);
    cr_assert_str_eq(sunk_key, "m|10.0.0.1:8000");
    dp_prefix_insert(p, ep(0), h, 5);
    cr_assert_eq(sunk, 5, "a later turn publishes its new blocks only");
    dp_prefix_insert(p, ep(1), h, 2);
    cr_assert_eq(sunk, 7, "blocks new for an endpoint are published");
    /* Redis down: nothing is emitted, the entries are marked unpublished */
    dp_prefix_set_sink_up(p, false);
    dp_prefix_insert(p, ep(2), h, 4);
    cr_assert_eq(sunk, 7);
    dp_prefix_set_sink_up(p, true);
    dp_prefix_insert(p, ep(2), h, 4);
    cr_assert_eq(sunk, 11, "what could not be published goes out on the next use");
    dp_prefix_insert(p, ep(2), h, 4);
    cr_assert_eq(sunk, 11);
    dp_prefix_set_sink(p, NULL, NULL);
}

static void
append_le(uint8_t *out, const uint64_t *h, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            out[8 * i + b] = (uint8_t)(h[i] >> (8 * b));
}

Test(dp_prefix, a_remote_delta_is_applied_to_the_endpoint_it_names)
{
    uint64_t h[3];
    uint8_t le[24];
    uint32_t m[4];
    const char *k = "m|10.0.0.2:8000";

    hashes("remo", h, 3);
    append_le(le, h, 3);
    cr_assert_eq(dp_prefix_apply_remote(p, k, strlen(k), le, 3), 3);
    match(h, 3, 4, m);
    cr_assert_eq(m[1], 3);
    cr_assert_eq(m[0], 0);
    cr_assert_eq(dp_prefix_apply_remote(p, "m|10.9.9.9:8000", 15, le, 3), 0, "unknown endpoint");
    cr_assert_eq(dp_prefix_apply_remote(p, "x|10.0.0.2:8000", 15, le, 3), 0, "unknown model");
    cr_assert_eq(dp_prefix_apply_remote(p, "m10.0.0.2:8000", 14, le, 3), 0, "no '|'");
    cr_assert_eq(dp_prefix_apply_remote(p, "|10.0.0.2:8000", 14, le, 3), 0, "empty model");
}

/* ---- delta codec ------------------------------------------------------------- */

typedef struct seen_rec {
    char key[64];
    uint64_t h[8];
    uint32_t n;
} seen_rec;

static seen_rec recs[4];
static uint32_t n_recs;

static void
on_rec(void *arg, const char *key, size_t klen, const uint8_t *le, uint32_t n)
{
    seen_rec *r = &recs[n_recs++];
    (void)arg;
    memcpy(r->key, key, klen);
    r->key[klen] = '\0';
    r->n = n;
    for (uint32_t i = 0; i < n && i < 8; i++)
        r->h[i] = dp_prefix_le64(le + 8 * i);
}

Test(dp_prefix, delta_records_round_trip)
{
    gw_buf b;
    uint64_t a[3] = {1, 0xffffffffffffffffull, 0x0123456789abcdefull}, c[1] = {42};

    gw_buf_init(&b, 4096);
    cr_assert_eq(dp_prefix_delta_append(&b, "m|10.0.0.1:8000", a, 3), GW_OK);
    cr_assert_eq(dp_prefix_delta_append(&b, "a|b|[::1]:80", c, 1), GW_OK);
    cr_assert_eq(b.len, 1 + (2 + 15 + 2 + 24) + (2 + 12 + 2 + 8));
    cr_assert_eq((uint8_t)b.data[0], DP_PREFIX_DELTA_VERSION);
    n_recs = 0;
    cr_assert_eq(dp_prefix_delta_decode(b.data, b.len, on_rec, NULL), GW_OK);
    cr_assert_eq(n_recs, 2);
    cr_assert_str_eq(recs[0].key, "m|10.0.0.1:8000");
    cr_assert_eq(recs[0].n, 3);
    cr_assert_eq(recs[0].h[1], 0xffffffffffffffffull);
    cr_assert_eq(recs[0].h[2], 0x0123456789abcdefull);
    cr_assert_str_eq(recs[1].key, "a|b|[::1]:80");
    cr_assert_eq(recs[1].h[0], 42);
    gw_buf_fini(&b);
}

Test(dp_prefix, delta_append_refuses_what_does_not_fit_or_is_malformed)
{
    gw_buf b;
    uint64_t a[8] = {0};

    gw_buf_init(&b, 40);
    cr_assert_eq(dp_prefix_delta_append(&b, "m|1.2.3.4:1", a, 2), GW_OK);
    cr_assert_eq(dp_prefix_delta_append(&b, "m|1.2.3.4:1", a, 2), GW_EFULL);
    cr_assert_eq(b.len, 1 + 2 + 11 + 2 + 16, "unchanged on EFULL");
    cr_assert_eq(dp_prefix_delta_append(&b, "no-bar", a, 1), GW_EINVAL);
    cr_assert_eq(dp_prefix_delta_append(&b, "|x", a, 1), GW_EINVAL);
    cr_assert_eq(dp_prefix_delta_append(&b, "m|x", a, 0), GW_EINVAL);
    gw_buf_fini(&b);
}

Test(dp_prefix, delta_decode_rejects_malformed_blobs_without_calling_back)
{
    /* version, klen=3 "m|x", n=1, one hash */
    uint8_t good[1 + 2 + 3 + 2 + 8] = {1, 3, 0, 'm', '|', 'x', 1, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t bad[sizeof(good) + 1];

    n_recs = 0;
    cr_assert_eq(dp_prefix_delta_decode(good, sizeof(good), on_rec, NULL), GW_OK);
    cr_assert_eq(n_recs, 1);
    cr_assert_eq(recs[0].h[0], 0x0807060504030201ull);
    n_recs = 0;
    cr_assert_eq(dp_prefix_delta_decode(good, 0, on_rec, NULL), GW_EPROTO, "empty");
    cr_assert_eq(dp_prefix_delta_decode(good, 1, on_rec, NULL), GW_EPROTO, "no record");
    for (size_t cut = 2; cut < sizeof(good); cut++)
        cr_assert_eq(dp_prefix_delta_decode(good, cut, on_rec, NULL), GW_EPROTO, "cut at %zu", cut);
    memcpy(bad, good, sizeof(good));
    bad[0] = 2;
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(good), on_rec, NULL), GW_EVERSION);
    memcpy(bad, good, sizeof(good));
    bad[4] = 'x'; /* "mxx": no '|' */
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(good), on_rec, NULL), GW_EPROTO);
    memcpy(bad, good, sizeof(good));
    bad[3] = '|';
    bad[4] = 'x'; /* "|xx": empty model */
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(good), on_rec, NULL), GW_EPROTO);
    memcpy(bad, good, sizeof(good));
    bad[6] = 0; /* zero hashes */
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(good), on_rec, NULL), GW_EPROTO);
    memcpy(bad, good, sizeof(good));
    bad[sizeof(good)] = 7; /* a trailing byte */
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(bad), on_rec, NULL), GW_EPROTO);
    memcpy(bad, good, sizeof(good));
    bad[1] = 0; /* zero-length key */
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(good), on_rec, NULL), GW_EPROTO);
    memcpy(bad, good, sizeof(good));
    bad[4] = '\0';
    cr_assert_eq(dp_prefix_delta_decode(bad, sizeof(good), on_rec, NULL), GW_EPROTO, "NUL in key");
    cr_assert_eq(n_recs, 0, "nothing is handed out from a malformed blob");
}
