/* dp_retry_queue: timers for the backoff, a FIFO for the ready ones (see
 * dp_retry_queue.h). */
#include "dp_retry_queue.h"

#include <stdlib.h>

#include "gw/gw_mem.h"

struct dp_rq {
    gw_loop *loop;
    dp_rq_cfg cfg;
    uint32_t waiting, running;
    dp_rq_item *head, *tail; /* ready, oldest first */
    dp_rq_stats stats;
};

dp_rq *
dp_rq_new(gw_loop *loop, const dp_rq_cfg *cfg)
{
    dp_rq *q = gw_xcalloc(1, sizeof(*q));

    q->loop = loop;
    q->cfg = *cfg;
    if (q->cfg.workers == 0)
        q->cfg.workers = 1;
    return q;
}

void
dp_rq_free(dp_rq *q)
{
    free(q);
}

uint64_t
dp_rq_delay_ms(const dp_rq_cfg *cfg, uint32_t attempt)
{
    uint64_t d = cfg->init_ms;

    for (uint32_t i = 0; i < attempt && d < cfg->max_ms; i++)
        d *= 2;
    return d < cfg->max_ms ? d : cfg->max_ms;
}

static void
start_item(dp_rq *q, dp_rq_item *it)
{
    it->state = DP_RQ_RUNNING;
    q->running++;
    q->stats.fired++;
    it->fire(it, it->arg);
}

/* Hands free worker slots to the oldest ready items. */
static void
dispatch(dp_rq *q)
{
    while (q->head != NULL && q->running < q->cfg.workers) {
        dp_rq_item *it = q->head;
        q->head = it->next;
        if (q->head != NULL)
            q->head->prev = NULL;
        else
            q->tail = NULL;
        it->prev = it->next = NULL;
        q->waiting--;
        start_item(q, it);
    }
}

static void
on_backoff_done(gw_loop *loop, void *arg)
{
    dp_rq_item *it = arg;
    dp_rq *q = it->q;
    (void)loop;

    it->state = DP_RQ_READY;
    it->prev = q->tail;
    it->next = NULL;
    if (q->tail != NULL)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    dispatch(q);
}

bool
dp_rq_push(dp_rq *q, dp_rq_item *it, uint64_t delay_ms, dp_rq_fire_fn fire, void *arg)
{
    if (it->state != DP_RQ_IDLE || q->waiting >= q->cfg.size) {
        q->stats.overflows++;
        return false;
    }
    it->q = q;
    it->fire = fire;
    it->arg = arg;
    it->state = DP_RQ_WAITING;
    if (it->timer == NULL)
        it->timer = gw_timer_new(q->loop, on_backoff_done, it);
    q->waiting++;
    q->stats.pushed++;
    gw_timer_start(it->timer, delay_ms);
    return true;
}

void
dp_rq_cancel(dp_rq_item *it)
{
    dp_rq *q = it->q;

    gw_timer_free(it->timer);
    it->timer = NULL;
    switch (it->state) {
    case DP_RQ_IDLE:
        return;
    case DP_RQ_WAITING:
        q->waiting--;
        break;
    case DP_RQ_READY:
        if (it->prev != NULL)
            it->prev->next = it->next;
        else
            q->head = it->next;
        if (it->next != NULL)
            it->next->prev = it->prev;
        else
            q->tail = it->prev;
        it->prev = it->next = NULL;
        q->waiting--;
        break;
    case DP_RQ_RUNNING:
        q->running--;
        break;
    }
    it->state = DP_RQ_IDLE;
    if (q->running < q->cfg.workers)
        dispatch(q);
}

uint32_t
dp_rq_waiting(const dp_rq *q)
{
    return q->waiting;
}

uint32_t
dp_rq_running(const dp_rq *q)
{
    return q->running;
}

const dp_rq_stats *
dp_rq_get_stats(const dp_rq *q)
{
    return &q->stats;
}
