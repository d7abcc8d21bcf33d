/* me_sim: the KV-cache simulator of one mock engine (--kv-sim): a paged KV
 * cache with prefix caching (me_kv) driven by a continuous-batching
 * scheduler, so time to first token depends on the uncached part of the
 * prompt and on queueing, and the engine's prefix-cache metrics mean what
 * vLLM's do. README.md ("KV-cache simulator") is the contract.
 *
 * One scheduler thread per engine runs steps. Each step serves every running
 * sequence: a prefill chunk (bounded by the step's token budget) or one
 * decode token, and lasts
 *     decode_step_ms + prefill_us_per_token * prefill_tokens / 1000
 *                    + decode_us_per_seq * scheduled_sequences / 1000
 * simulated milliseconds, which take time_scale times as long in wall time.
 * Connection threads submit sequences and wait for their tokens.
 *
 * Locking: the simulator shares the engine's mutex <mu> (borrowed). Every
 * function below except me_sim_new, me_sim_start, me_sim_stop and
 * me_sim_free must be called with <mu> held; the scheduler thread takes it
 * for everything except its sleeps. Metrics are recorded into the engine's
 * me_metrics (borrowed, also guarded by <mu>) in simulated seconds. */
#ifndef ME_SIM_H
#define ME_SIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "me_cfg.h"
#include "me_metrics.h"

typedef struct me_sim me_sim;
typedef struct me_seq me_seq;

/* A snapshot for /_mock/stats and /metrics. */
typedef struct me_sim_stats {
    unsigned running; /* all models */
    unsigned waiting;
    uint32_t blocks_used; /* referenced by running sequences */
    uint32_t blocks_total;
    uint64_t hit_tokens;   /* prefix-cache hits, tokens (vLLM's counter) */
    uint64_t query_tokens; /* prefix-cache queries, tokens */
    uint64_t evictions;    /* cached blocks reused for other content */
    uint64_t preemptions;
    uint64_t steps;
} me_sim_stats;

/* A simulator for <cfg> (kv_* and step-model fields; borrowed, must outlive
 * it) over <nmodels> served models, sharing <mu> and <met> with the engine. */
me_sim *me_sim_new(const me_cfg *cfg, size_t nmodels, pthread_mutex_t *mu, me_metrics *met);

/* Starts the scheduler thread; GW_ESYS if it cannot be created (logged). */
GW_MUST_CHECK gw_err me_sim_start(me_sim *sim);

/* Stops and joins the scheduler thread (without <mu> held). Sequences that
 * are still queued or running stay as they are; waiters see no more
 * progress and must notice the shutdown themselves. */
void me_sim_stop(me_sim *sim);

/* Frees the simulator; every sequence must have been released. NULL is a
 * no-op. */
void me_sim_free(me_sim *sim);

/* Queues a sequence for <model> with <prompt_tokens> prompt tokens whose full
 * blocks hash to <hashes> (<nhashes> = prompt_tokens / block_size entries,
 * chained as me_gen_block_hashes makes them; fewer, even none, only means
 * the blocks past them are never cached), that generates <out_tokens>
 * tokens (0: prefill only, as for embeddings). The KV of the first
 * <remote_tokens> prompt tokens (a PD decode: 0 otherwise) arrives by
 * transfer and is not computed, except the last prompt token, which always
 * is. Takes ownership of <hashes> (malloc'd, may be NULL when nhashes is 0).
 * Returns NULL (and frees <hashes>) when the prompt and output could never
 * fit in the whole cache; me_cfg_parse makes that impossible for requests
 * within --max-model-len. */
me_seq *me_sim_submit(me_sim *sim, size_t model, unsigned prompt_tokens, unsigned out_tokens,
                      unsigned remote_tokens, uint64_t *hashes, size_t nhashes);

/* Sleeps on <seq> (releasing <mu>) until it has generated <ntok> tokens or
 * finished, or <timeout_ns> pass, whichever comes first; may return early.
 * One waiter per sequence. */
void me_sim_wait(me_sim *sim, me_seq *seq, unsigned ntok, uint64_t timeout_ns);

/* Tokens generated so far. */
unsigned me_seq_produced(const me_seq *seq);
/* Every token was generated (for prefill-only sequences: the prefill is done). */
bool me_seq_finished(const me_seq *seq);
/* Simulated seconds from submission to the last token (valid once finished). */
double me_seq_latency_s(const me_seq *seq);

/* Removes <seq> whatever its state (queued, running or finished), returns
 * its blocks to the pool and frees it. */
void me_sim_release(me_sim *sim, me_seq *seq);

/* Running and waiting sequences of <model>. */
void me_sim_model_counts(const me_sim *sim, size_t model, unsigned *running, unsigned *waiting);

void me_sim_get_stats(const me_sim *sim, me_sim_stats *out);

/* Forgets every cached block that no running sequence references (vLLM's
 * /reset_prefix_cache). With <counters>, also zeroes the stats counters
 * (hits, queries, evictions, preemptions, steps). */
void me_sim_reset_cache(me_sim *sim, bool counters);

#endif
