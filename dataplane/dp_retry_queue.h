/* dp_retry_queue: the 429 retry queue of the fallback chain (Llumnix's
 * --fallback-retry-queue-*, docs/traffic.md). A request an external
 * endpoint answered 429 waits here through an exponential backoff
 * (init, 2 init, 4 init, ... capped at max) and is then retried; at most
 * <workers> retries run at once (the others wait, ready, in FIFO order) and
 * at most <size> requests wait (backoff or ready) at a time: a push beyond is
 * refused at once, never blocks. Unlike Llumnix's goroutine per worker
 * sleeping through each backoff, waiting costs one timer on the loop.
 * Loop thread only. */
#ifndef DP_RETRY_QUEUE_H
#define DP_RETRY_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_loop.h"

typedef struct dp_rq dp_rq;
typedef struct dp_rq_item dp_rq_item;

/* Called when <it>'s turn has come: it now holds a worker slot until
 * dp_rq_cancel. */
typedef void (*dp_rq_fire_fn)(dp_rq_item *it, void *arg);

typedef enum dp_rq_state {
    DP_RQ_IDLE = 0,
    DP_RQ_WAITING, /* in its backoff */
    DP_RQ_READY,   /* backoff over, no free worker yet */
    DP_RQ_RUNNING, /* holds a worker slot */
} dp_rq_state;

/* Embedded in its owner (a request); zero-initialised is idle. */
struct dp_rq_item {
    dp_rq *q;
    dp_rq_state state;
    gw_timer *timer;
    dp_rq_item *prev, *next; /* the ready FIFO */
    dp_rq_fire_fn fire;
    void *arg;
};

typedef struct dp_rq_cfg {
    uint32_t size;    /* waiting (backoff + ready) requests at most */
    uint32_t workers; /* retries running at once at most */
    uint64_t init_ms; /* first backoff */
    uint64_t max_ms;  /* backoff cap */
} dp_rq_cfg;

typedef struct dp_rq_stats {
    uint64_t pushed;    /* accepted into the queue */
    uint64_t overflows; /* refused: the queue was full */
    uint64_t fired;     /* retries started */
} dp_rq_stats;

dp_rq *dp_rq_new(gw_loop *loop, const dp_rq_cfg *cfg);
/* Every item must have been cancelled. NULL ok. */
void dp_rq_free(dp_rq *q);

/* The backoff before retry number <attempt> (0-based): min(init * 2^attempt, max). */
uint64_t dp_rq_delay_ms(const dp_rq_cfg *cfg, uint32_t attempt);

/* Queues idle <it> to fire after <delay_ms>. false (and <it> stays idle)
 * when <size> requests already wait. */
bool dp_rq_push(dp_rq *q, dp_rq_item *it, uint64_t delay_ms, dp_rq_fire_fn fire, void *arg);

/* Takes <it> out whatever its state (frees its worker slot, which may fire
 * the next ready item); idle is a no-op. Safe from inside its own fire. */
void dp_rq_cancel(dp_rq_item *it);

uint32_t dp_rq_waiting(const dp_rq *q); /* WAITING + READY */
uint32_t dp_rq_running(const dp_rq *q);
const dp_rq_stats *dp_rq_get_stats(const dp_rq *q);

#endif
