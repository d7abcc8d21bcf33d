/* me_kv: the paged KV-cache block pool of one simulated engine, modelled on
 * vLLM's prefix caching (v1 BlockPool): a fixed number of blocks, each either
 * referenced by running sequences (ref > 0) or free. A free block may still
 * hold a *cached* block hash; it stays findable by that hash until the block
 * is reused for something else (eviction). Free blocks sit in one LRU queue:
 * allocation takes the least recently freed block, so cached blocks are
 * evicted oldest first, and blocks referenced by running sequences are never
 * evicted.
 *
 * Lookups go through an open-addressing table (hash -> block), so matching,
 * allocating, caching and releasing cost O(1) per block; nothing scans the
 * pool except me_kv_drop_cached.
 *
 * Not thread-safe: the engine calls everything under its own mutex. */
#ifndef ME_KV_H
#define ME_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct me_kv me_kv;

/* A pool of <nblocks> blocks (>= 1), all free and uncached. */
me_kv *me_kv_new(uint32_t nblocks);
/* NULL is a no-op. */
void me_kv_free(me_kv *kv);

uint32_t me_kv_total(const me_kv *kv);
/* Blocks with ref 0 (free, cached or not): what can still be allocated. */
uint32_t me_kv_free_count(const me_kv *kv);
/* Cached blocks reused for new content since creation or the last reset. */
uint64_t me_kv_evictions(const me_kv *kv);

/* Longest run of leading <hashes> (at most <n>) that are cached. *idle gets
 * how many of those blocks have ref 0 (they leave the free queue when
 * acquired). Changes nothing. */
size_t me_kv_match(const me_kv *kv, const uint64_t *hashes, size_t n, uint32_t *idle);

/* Takes a reference on the cached blocks of the first <n> <hashes>, which
 * me_kv_match must just have reported as cached, and writes their ids to
 * <out>. */
void me_kv_acquire(me_kv *kv, const uint64_t *hashes, size_t n, uint32_t *out);

/* Allocates one block with ref 1 and no hash, evicting the least recently
 * freed block's hash if it had one. Returns false when every block is
 * referenced. */
bool me_kv_alloc(me_kv *kv, uint32_t *out);

/* Publishes <hash> for referenced block <id>, whose content is now computed,
 * so later lookups find it. A hash that is already cached (the same prefix
 * computed twice) is left alone and <id> stays unhashed, as in vLLM. */
void me_kv_cache(me_kv *kv, uint32_t id, uint64_t hash);

/* Drops one reference on each of <ids>, last one first, so that when these
 * blocks become free the later blocks of a sequence are evicted before its
 * earlier ones (vLLM frees in reverse order for the same reason). */
void me_kv_release(me_kv *kv, const uint32_t *ids, size_t n);

/* Forgets the hash of every free block (vLLM's /reset_prefix_cache);
 * referenced blocks keep theirs. Also zeroes the eviction counter when
 * <counters> is set. */
void me_kv_drop_cached(me_kv *kv, bool counters);

#endif
