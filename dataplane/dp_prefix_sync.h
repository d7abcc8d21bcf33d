/* dp_prefix_sync: keeps the prefix indexes of every worker (and gateway
 * replica) in agreement through one Redis Stream (AIBRIX_STATESYNC_ENABLED),
 * so that the turns of one conversation land on one engine whichever worker
 * receives them (DESIGN §6).
 *
 * Out: dp_prefix hands over each local insert's new blocks (its sink); they
 * are batched into one stream entry per <interval_ms> at most (an entry
 * also closes at <batch_max> bytes). After a quiet interval the first
 * insert goes out on the next loop turn, so a lone insert is not delayed;
 * under steady traffic an insert waits <interval_ms> at most. The entry:
 *     XADD <stream> MAXLEN ~ <maxlen> * w <worker id, 16 hex> d <delta>
 * (dp_prefix.h: the delta format; endpoints by identity "model|ip:port",
 * because controller ids differ across controllers).
 * In: a second connection reads every entry after the last one seen,
 *     XREAD COUNT 64 [BLOCK <block_ms>] STREAMS <stream> <last id>
 * skips this worker's own entries and applies the others. A blocking read
 * needs its own connection: on a shared one it would hold the XADDs back.
 * A starting worker reads the stream from its beginning (what MAXLEN kept)
 * without BLOCK until it has caught up, then blocks.
 *
 * Redis down: inserts stay local (dp_prefix marks them unpublished and
 * publishes them on their next use), routing goes on with what this worker
 * knows, llmgw_worker_prefix_sync_connected drops to 0, the errors counter
 * rises and DP-PFX-SYNC-DOWN is logged. When both connections are back,
 * reading resumes after the last id seen if the stream still holds it (so
 * what others wrote meanwhile is caught up), or from the beginning of the
 * stream when it was recreated (its last id is older than ours: a Redis
 * restart without persistence). The whole keyspace is never scanned.
 *
 * Loop thread only. */
#ifndef DP_PREFIX_SYNC_H
#define DP_PREFIX_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "gw/gw_loop.h"
#include "gw/gw_metrics.h"

#include "dp_prefix.h"

typedef struct dp_prefix_sync dp_prefix_sync;

typedef struct dp_prefix_sync_cfg {
    const char *host; /* REDIS_HOST; copied */
    uint16_t port;    /* REDIS_PORT */
    const char *password;
    const char *stream; /* the stream's key; copied */
    int64_t maxlen;     /* XADD MAXLEN ~ */
    uint64_t interval_ms;
    uint64_t timeout_ms; /* connect, and each command (a blocking read: + block_ms) */
    uint64_t block_ms;   /* XREAD BLOCK */
    uint64_t worker_id;  /* this process's id: its own entries are skipped */
    size_t batch_max;    /* bytes of delta per entry */
} dp_prefix_sync_cfg;

/* Counters bumped as things happen (NULL children are ignored). */
typedef struct dp_prefix_sync_metrics {
    gw_metric *errors;   /* failed attempts, lost connections, failed commands, bad entries */
    gw_metric *sent;     /* blocks published */
    gw_metric *received; /* blocks applied from other workers */
} dp_prefix_sync_metrics;

/* Starts both connections and sets itself as <pfx>'s sink. <pfx> must
 * outlive it. <m> is copied (may be NULL). */
GW_MUST_CHECK gw_err dp_prefix_sync_new(gw_loop *loop, dp_prefix *pfx,
                                        const dp_prefix_sync_cfg *cfg,
                                        const dp_prefix_sync_metrics *m, dp_prefix_sync **out);
/* Drops what is not sent yet, closes both connections, removes the sink.
 * NULL ok. */
void dp_prefix_sync_free(dp_prefix_sync *s);

/* True while both connections are up. */
bool dp_prefix_sync_connected(const dp_prefix_sync *s);
/* True once the reader has caught up with the stream since it last
 * connected. */
bool dp_prefix_sync_caught_up(const dp_prefix_sync *s);

#endif
