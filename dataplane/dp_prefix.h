/* dp_prefix: the worker's prefix index (DESIGN §6): which endpoints probably
 * hold the KV cache of which prompt prefix. One per worker process, shared by
 * every model; each base model is a namespace of its own.
 *
 * Blocks. The prompt's routing text (dp_parse: role + "\n" + content + "\n"
 * per chat message, or the completion prompt) is cut into blocks of
 * block_size BYTES (AIBrix's `character` tokenizer: one token = one byte);
 * an incomplete trailing block is not hashed. Block i's hash is chained:
 *     h(i) = XXH64(le64(h(i-1)) || bytes of block i, seed),  h(-1) = parent0
 * with parent0 = seed for a base model and XXH64(adapter name, seed) for a
 * LoRA adapter (its KV cache is not the base model's). A hit on h(i)
 * therefore implies the whole prefix up to block i matched. The seed is
 * fixed (AIBRIX_PREFIX_CACHE_HASH_SEED, default 0) so that every worker and
 * gateway replica computes the same hashes; AIBrix picks a random seed per
 * process unless state sync is on. A request is hashed once; the hashes
 * serve the match and the insert.
 *
 * Table. An open-addressing (linear probing, backward-shift deletion) table
 * of (namespace, block hash) -> endpoint bitset, sized once for
 * <capacity> blocks at a load factor of at most 0.8 and allocated on the
 * first insert. Endpoints are small per-namespace slot numbers kept in
 * dp_ep (pfx_ns, pfx_slot), so a match reads one bitset per block and no
 * strings. The bitset width grows with the largest model (64 endpoints per
 * word, at most DP_PREFIX_MAX_SLOTS per model; an endpoint beyond that is
 * never matched). When the table holds <capacity> blocks, inserting evicts
 * one with CLOCK: a hand walks the table, clears reference bits and takes
 * the first entry without one, giving up on second chances after a fixed
 * number of steps: constant time, no scans, no timers.
 *
 * Endpoints leaving. dp_prefix_apply_snapshot frees the slot of an endpoint
 * that left the snapshot. Its bits are ignored at once (a match only looks
 * at the candidates' slots) and cleared lazily: every insert moves the same
 * hand one step, masking out dead slots as it passes (an entry left with no
 * endpoint is deleted). A dead slot is handed to a new endpoint only after
 * the hand has gone round twice, when no entry can still carry its bit.
 *
 * Sync. With a sink set (dp_prefix_sync), a local insert hands the sink the
 * hashes other workers may not know: those newly set for the endpoint, those
 * whose entry holds unpublished local bits (inserted while the sink was
 * down), and those the hand had aged since their last use, which keeps the
 * indexes of workers under the same memory pressure converging.
 *
 * Memory: capacity * 1.25 * (16 + 8 * words) bytes for the table (30 bytes
 * per block up to 64 endpoints per model), plus 16 bytes per endpoint slot
 * and namespace bookkeeping. Loop thread only. */
#ifndef DP_PREFIX_H
#define DP_PREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"
#include "pm/pm_msgs.h"

#include "dp_load.h"

/* Bitset words per block at most: endpoints per model = 64 * this. */
#define DP_PREFIX_MAX_WORDS 16
#define DP_PREFIX_MAX_SLOTS (64 * DP_PREFIX_MAX_WORDS)

typedef struct dp_prefix dp_prefix;

typedef struct dp_prefix_cfg {
    uint32_t block_size; /* bytes per block, >= 1 */
    uint64_t seed;       /* hash seed */
    uint32_t capacity;   /* blocks held at most, >= 64 */
    uint32_t max_blocks; /* blocks hashed per request at most, >= 1 */
} dp_prefix_cfg;

typedef struct dp_prefix_stats {
    uint64_t blocks;       /* entries in the table */
    uint64_t capacity;     /* blocks held at most */
    uint64_t evictions;    /* entries evicted by CLOCK to make room */
    uint64_t purged;       /* entries deleted because every endpoint of theirs left */
    uint64_t inserts;      /* blocks inserted (local and remote) */
    uint64_t memory_bytes; /* table + namespaces + scratch */
    uint32_t namespaces;
    uint32_t words; /* bitset words per block */
} dp_prefix_stats;

dp_prefix *dp_prefix_new(const dp_prefix_cfg *cfg);
/* NULL ok. */
void dp_prefix_free(dp_prefix *p);
const dp_prefix_cfg *dp_prefix_config(const dp_prefix *p);
void dp_prefix_stats_get(const dp_prefix *p, dp_prefix_stats *out);

/* ---- hashing (pure) ---- */

/* The first parent for requests of a base model (<adapter> NULL) or of the
 * LoRA adapter <adapter>. */
uint64_t dp_prefix_parent0(uint64_t seed, const char *adapter);

/* Hashes the full blocks of <text>/<len> into <out> (at most <max>
 * hashes); returns how many. */
uint32_t dp_prefix_hash(uint64_t seed, uint64_t parent0, uint32_t block_size, const void *text,
                        size_t len, uint64_t *out, uint32_t max);

/* ---- endpoints ---- */

/* Gives every endpoint of <pm> a slot in its model's namespace (kept when it
 * already has one) and frees the slots of endpoints no longer listed.
 * <states> is parallel to pm->endpoints (dp_load_apply_snapshot). Call it
 * for every snapshot the worker applies, before the previous snapshot is
 * released (a state that left is still alive then). O(endpoints + slots). */
void dp_prefix_apply_snapshot(dp_prefix *p, const pm_snapshot *pm, dp_ep *const *states);

/* ---- match and insert (the request path) ---- */

/* For each candidate c (states[cands[c]], n_cands of them, all endpoints of
 * one model), writes to out[c] the number of leading blocks of <hashes>
 * (<n>) that the index holds for that endpoint: the longest prefix of
 * consecutive blocks. O(blocks matched * words + candidates). */
void dp_prefix_match(dp_prefix *p, const uint64_t *hashes, uint32_t n, dp_ep *const *states,
                     const uint32_t *cands, uint32_t n_cands, uint32_t *out);

/* Records that endpoint <ep> now holds the blocks <hashes>/<n> (its model's
 * namespace), evicting if full, and hands the sink what other workers should
 * learn (file comment). No-op for an endpoint without a slot. */
void dp_prefix_insert(dp_prefix *p, const dp_ep *ep, const uint64_t *hashes, uint32_t n);

/* ---- sync ---- */

/* Receives a local insert's blocks to publish: the endpoint's identity
 * ("model|ip:port", dp_ep.key) and hashes (borrowed for the call). */
typedef void (*dp_prefix_sink_fn)(void *arg, const char *ep_key, const uint64_t *hashes,
                                  uint32_t n);
/* Sets (or with NULL removes) the sink. While <up> is false, inserts mark
 * their entries unpublished instead of emitting. */
void dp_prefix_set_sink(dp_prefix *p, dp_prefix_sink_fn fn, void *arg);
void dp_prefix_set_sink_up(dp_prefix *p, bool up);

/* Applies another worker's delta: endpoint identity <key>/<klen>
 * ("model|ip:port") and <n> hashes as 8-byte little-endian values at
 * <hashes_le>. Returns the blocks applied: 0 when this worker does not know
 * the endpoint (not in its snapshot, or its model has no namespace). */
uint32_t dp_prefix_apply_remote(dp_prefix *p, const char *key, size_t klen,
                                const uint8_t *hashes_le, uint32_t n);

/* Delta wire format (a Redis stream entry's `d` field), version 1:
 *   u8 version (1), then records until the end:
 *   u16le key length (1..DP_PREFIX_DELTA_MAX_KEY), key bytes ("model|ip:port",
 *   containing '|' after a non-empty model), u16le hash count
 *   (1..DP_PREFIX_DELTA_MAX_HASHES), count * u64le hashes. */
#define DP_PREFIX_DELTA_VERSION    1
#define DP_PREFIX_DELTA_MAX_KEY    1024
#define DP_PREFIX_DELTA_MAX_HASHES 4096

/* Appends one record to <b> (the version byte first when <b> is empty).
 * GW_EINVAL: bad key or count; GW_EFULL: it does not fit b->max (<b> is
 * unchanged). */
GW_MUST_CHECK gw_err dp_prefix_delta_append(gw_buf *b, const char *key, const uint64_t *hashes,
                                            uint32_t n);

/* One decoded record; <key> is not NUL-terminated; pointers into the blob. */
typedef void (*dp_prefix_delta_fn)(void *arg, const char *key, size_t klen,
                                   const uint8_t *hashes_le, uint32_t n);

/* Validates the whole blob <data>/<len> (outside bytes), then calls <fn> for
 * each record in order. GW_EVERSION: another version; GW_EPROTO: malformed
 * (then <fn> is never called). */
GW_MUST_CHECK gw_err dp_prefix_delta_decode(const void *data, size_t len, dp_prefix_delta_fn fn,
                                            void *arg);

/* The 8-byte little-endian value at <p>. */
uint64_t dp_prefix_le64(const uint8_t *p);

#endif
