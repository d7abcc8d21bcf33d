/* me_sim: continuous-batching scheduler over the paged KV cache (see
 * me_sim.h; README.md "KV-cache simulator" is the contract).
 *
 * A sequence lives in one of three places: the waiting queue (FCFS, a
 * preempted sequence goes back to its front), the running array (admission
 * order, at most max_running), or nowhere once finished (its connection
 * thread still holds it until me_sim_release). All fields are guarded by the
 * engine's mutex.
 *
 * One step, as vLLM v1's scheduler does it: running sequences first, in
 * order, each gets its next prefill chunk or one decode token out of the
 * token budget (max_batched_tokens); a decode that crosses a block boundary
 * needs a new block, and when none is free the most recently admitted
 * sequence is preempted (its blocks released, recomputed later, as vLLM's
 * recompute preemption). Then waiting sequences are admitted in order while
 * there is budget, a running slot and enough free blocks for the whole
 * uncached part of the prompt; the first one that does not fit blocks the
 * ones behind it (FCFS). A prompt's cached blocks are found by chained hash
 * (me_kv), capped at prompt_tokens - 1 tokens so the last token is always
 * computed (vLLM needs its logits); every full prompt block becomes findable
 * at the end of the step that computed it.
 *
 * Simulated time: sim_ns advances by exactly each step's length, so
 * measured latencies do not depend on how busy the host is. While idle the
 * simulated clock follows the wall clock divided by time_scale, and a
 * sequence submitted during a step arrives at the simulated instant the wall
 * clock corresponds to within that step. */
#include "me_sim.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "me_kv.h"

typedef enum seq_state {
    SEQ_WAITING,
    SEQ_RUNNING,
    SEQ_FINISHED,
} seq_state;

struct me_seq {
    size_t model;
    unsigned prompt;  /* prompt tokens, at least 1 */
    unsigned out;     /* tokens to generate; 0 = prefill only */
    uint64_t *hashes; /* owned: full prompt blocks, chained */
    size_t nhashes;
    uint32_t *blocks; /* owned: block table */
    size_t nblocks;
    size_t npub; /* blocks[0..npub) were offered to the prefix cache */
    seq_state state;
    bool queried;      /* prefix-cache stats recorded (first admission only) */
    unsigned remote;   /* prompt tokens whose KV arrives by transfer (PD decode) */
    unsigned target;   /* tokens whose KV this (re)admission must compute */
    unsigned computed; /* tokens whose KV exists */
    unsigned produced; /* tokens generated */
    unsigned want;     /* the waiter sleeps until produced >= want or the end */
    unsigned sched;    /* tokens scheduled in the current step */
    bool sched_prefill;
    uint64_t arrival_ns; /* simulated */
    uint64_t last_tok_ns;
    uint64_t finish_ns;
    me_seq *prev; /* waiting queue links */
    me_seq *next;
    pthread_cond_t cv; /* progress on this sequence */
};

struct me_sim {
    const me_cfg *cfg; /* borrowed */
    size_t nmodels;
    pthread_mutex_t *mu; /* borrowed: the engine's */
    me_metrics *met;     /* borrowed: the engine's */
    me_kv *kv;           /* owned */
    unsigned bs;         /* tokens per block */
    double scale;        /* wall seconds per simulated second */
    pthread_t thread;
    bool thread_started;
    bool stopping;
    pthread_cond_t cv; /* work arrived, or stop */
    me_seq **running;  /* owned array, max_running entries */
    size_t nrunning;
    me_seq waitq; /* sentinel of the waiting queue */
    size_t nwaiting;
    unsigned *model_running; /* owned, per model */
    unsigned *model_waiting; /* owned, per model */
    /* Clock: sim_ns is the simulated time at wall time wall_ns (monotonic). */
    bool busy; /* a step is being slept */
    uint64_t sim_ns;
    uint64_t wall_ns;
    uint64_t step_ns; /* length of the step being slept */
    uint64_t hit_tokens;
    uint64_t query_tokens;
    uint64_t preemptions;
    uint64_t steps;
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

static struct timespec
abs_mono(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                          .tv_nsec = (long)(ns % 1000000000ULL)};

    return ts;
}

static unsigned
div_up(unsigned long long a, unsigned b)
{
    return (unsigned)((a + b - 1) / b);
}

/* The simulated time now (see the clock note at the top). */
static uint64_t
sim_now(const me_sim *sim)
{
    uint64_t el = (uint64_t)((double)(mono_ns() - sim->wall_ns) / sim->scale);

    if (sim->busy && el > sim->step_ns)
        el = sim->step_ns;
    return sim->sim_ns + el;
}

/* ---- queues and counts ------------------------------------------------- */

static void
wait_push(me_sim *sim, me_seq *s, bool front)
{
    me_seq *at = front ? &sim->waitq : sim->waitq.prev;

    s->prev = at;
    s->next = at->next;
    at->next->prev = s;
    at->next = s;
    s->state = SEQ_WAITING;
    sim->nwaiting++;
    sim->model_waiting[s->model]++;
}

static void
wait_unlink(me_sim *sim, me_seq *s)
{
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->prev = s->next = NULL;
    sim->nwaiting--;
    sim->model_waiting[s->model]--;
}

static void
run_remove_at(me_sim *sim, size_t i)
{
    me_seq *s = sim->running[i];

    memmove(&sim->running[i], &sim->running[i + 1], (sim->nrunning - i - 1) * sizeof(s));
    sim->nrunning--;
    sim->model_running[s->model]--;
}

static void
run_remove(me_sim *sim, me_seq *s)
{
    for (size_t i = 0; i < sim->nrunning; i++) {
        if (sim->running[i] == s) {
            run_remove_at(sim, i);
            return;
        }
    }
}

static void
drop_blocks(me_sim *sim, me_seq *s)
{
    me_kv_release(sim->kv, s->blocks, s->nblocks);
    s->nblocks = 0;
    s->npub = 0;
}

/* ---- scheduling -------------------------------------------------------- */

/* Moves the waiting head <s> into the running batch if the cache can hold
 * its uncached prompt now; false leaves it (and everyone behind it) queued. */
static bool
admit(me_sim *sim, me_seq *s)
{
    size_t max_hit = s->target > 0 ? (s->target - 1) / sim->bs : 0;
    uint32_t idle;
    size_t hit;
    unsigned need;

    if (max_hit > s->nhashes)
        max_hit = s->nhashes;
    hit = me_kv_match(sim->kv, s->hashes, max_hit, &idle);
    need = div_up(s->target, sim->bs) - (unsigned)hit;
    /* Cached blocks nobody references are counted as free; acquiring them
     * takes them out of the free queue. */
    if (need > me_kv_free_count(sim->kv) - idle)
        return false;
    me_kv_acquire(sim->kv, s->hashes, hit, s->blocks);
    s->nblocks = hit;
    s->npub = hit;
    for (unsigned i = 0; i < need; i++) {
        if (!me_kv_alloc(sim->kv, &s->blocks[s->nblocks])) {
            gw_log(GW_LOG_ALERT, "ME-SIM-ALLOC", "need=%u free=%u", need,
                   me_kv_free_count(sim->kv));
            abort();
        }
        s->nblocks++;
    }
    s->computed = (unsigned)hit * sim->bs;
    if (!s->queried) {
        /* vLLM counts a request's prompt tokens as queried and its cached
         * tokens as hits once, when it is first scheduled. */
        s->queried = true;
        sim->query_tokens += s->prompt;
        sim->hit_tokens += s->computed;
        me_metrics_prefix_cache(sim->met, s->model, s->prompt, s->computed);
    }
    /* A PD decode: the prefill's KV was transferred into the fresh blocks.
     * As in vLLM, the last prompt token is still computed here (its logits
     * give the first token), so the first step is a 1-token prefill chunk.
     * Only once: a preempted decode recomputes its prompt locally. */
    if (s->remote > 0) {
        unsigned r = s->remote < s->target ? s->remote : s->target - 1;

        if (r > s->computed)
            s->computed = r;
        s->remote = 0;
    }
    wait_unlink(sim, s);
    sim->running[sim->nrunning++] = s;
    sim->model_running[s->model]++;
    s->state = SEQ_RUNNING;
    return true;
}

/* Recompute preemption of the last running sequence: its blocks go back to
 * the pool (cached ones stay findable, so the recompute mostly hits) and it
 * waits at the front of the queue. */
static void
preempt_last(me_sim *sim)
{
    me_seq *v = sim->running[sim->nrunning - 1];

    run_remove_at(sim, sim->nrunning - 1);
    drop_blocks(sim, v);
    if (v->computed >= v->target)
        v->target = v->computed;
    v->computed = 0;
    v->sched = 0;
    wait_push(sim, v, true);
    sim->preemptions++;
    me_metrics_preemption(sim->met, v->model);
    gw_log(GW_LOG_DEBUG, "ME-SIM-PREEMPT", "produced=%u target=%u", v->produced, v->target);
}

/* Gives running decode sequence <s> room for one more token's KV. Returns
 * false when <s> itself had to be preempted. */
static bool
grow(me_sim *sim, me_seq *s)
{
    if ((size_t)div_up((unsigned long long)s->computed + 1, sim->bs) <= s->nblocks)
        return true;
    while (!me_kv_alloc(sim->kv, &s->blocks[s->nblocks])) {
        bool self = sim->running[sim->nrunning - 1] == s;

        preempt_last(sim);
        if (self)
            return false;
    }
    s->nblocks++;
    return true;
}

/* Chooses the work of the next step. Returns its simulated length in ns, or
 * 0 when there is nothing to do. */
static uint64_t
plan_step(me_sim *sim)
{
    const me_cfg *cfg = sim->cfg;
    unsigned budget = cfg->max_batched_tokens;
    unsigned long long prefill = 0;
    unsigned nsched = 0;
    uint64_t preempted = sim->preemptions;
    double ns;

    for (size_t i = 0; i < sim->nrunning; i++)
        sim->running[i]->sched = 0;
    for (size_t i = 0; i < sim->nrunning && budget > 0; i++) {
        me_seq *s = sim->running[i];

        if (s->computed < s->target) {
            unsigned chunk = s->target - s->computed < budget ? s->target - s->computed : budget;

            s->sched = chunk;
            s->sched_prefill = true;
            prefill += chunk;
        } else {
            if (!grow(sim, s))
                break; /* <s> was the last one */
            s->sched = 1;
            s->sched_prefill = false;
        }
        budget -= s->sched;
        nsched++;
    }
    /* After a preemption nothing is admitted this step (vLLM does the
     * same): the victim would otherwise come straight back. */
    while (sim->preemptions == preempted && sim->nwaiting > 0 && sim->nrunning < cfg->max_running &&
           budget > 0) {
        me_seq *s = sim->waitq.next;
        unsigned chunk;

        if (!admit(sim, s))
            break;
        chunk = s->target - s->computed < budget ? s->target - s->computed : budget;
        s->sched = chunk;
        s->sched_prefill = true;
        prefill += chunk;
        budget -= chunk;
        nsched++;
    }
    if (nsched == 0)
        return 0;
    ns = cfg->decode_step_ms * 1e6 + cfg->prefill_us_per_token * 1e3 * (double)prefill +
         cfg->decode_us_per_seq * 1e3 * nsched;
    /* A zero-cost model still needs a non-zero step to tell steps apart. */
    return ns >= 1 ? (uint64_t)ns : 1;
}

/* <s> sampled a token at simulated time <now> (end of a prefill or a decode
 * step). */
static void
on_token(me_sim *sim, me_seq *s, uint64_t now)
{
    if (s->out == 0) {
        me_metrics_prompt_tokens(sim->met, s->model, s->prompt);
        s->state = SEQ_FINISHED;
        return;
    }
    if (s->produced == 0) {
        /* vLLM counts prompt tokens and observes TTFT when the first token
         * exists. */
        me_metrics_prompt_tokens(sim->met, s->model, s->prompt);
        me_metrics_ttft(sim->met, s->model, (double)(now - s->arrival_ns) / 1e9);
    } else {
        me_metrics_tpot(sim->met, s->model, (double)(now - s->last_tok_ns) / 1e9, 1);
    }
    me_metrics_generation_tokens(sim->met, s->model, 1);
    s->produced++;
    s->last_tok_ns = now;
    if (s->produced >= s->out)
        s->state = SEQ_FINISHED;
}

/* Applies the step that just ended at sim->sim_ns. */
static void
apply_step(me_sim *sim)
{
    uint64_t now = sim->sim_ns;
    size_t i = 0;

    while (i < sim->nrunning) {
        me_seq *s = sim->running[i];

        if (s->sched == 0) {
            i++;
            continue;
        }
        if (s->sched_prefill) {
            size_t full;

            s->computed += s->sched;
            full = s->computed / sim->bs;
            if (full > s->nhashes)
                full = s->nhashes;
            for (; s->npub < full; s->npub++)
                me_kv_cache(sim->kv, s->blocks[s->npub], s->hashes[s->npub]);
            if (s->computed == s->target)
                on_token(sim, s, now);
        } else {
            s->computed++;
            s->target = s->computed;
            on_token(sim, s, now);
        }
        s->sched = 0;
        if (s->produced >= s->want || s->state == SEQ_FINISHED)
            pthread_cond_signal(&s->cv);
        if (s->state == SEQ_FINISHED) {
            s->finish_ns = now;
            run_remove_at(sim, i);
            drop_blocks(sim, s);
        } else {
            i++;
        }
    }
}

/* Sleeps until wall time <deadline> with <mu> released; false on stop. */
static bool
sleep_until(me_sim *sim, uint64_t deadline)
{
    if (mono_ns() >= deadline) {
        /* Let the connection threads in between back-to-back steps. */
        pthread_mutex_unlock(sim->mu);
        sched_yield();
        pthread_mutex_lock(sim->mu);
        return !sim->stopping;
    }
    while (!sim->stopping && mono_ns() < deadline) {
        struct timespec ts = abs_mono(deadline);

        pthread_cond_timedwait(&sim->cv, sim->mu, &ts);
    }
    return !sim->stopping;
}

static void *
sched_main(void *arg)
{
    me_sim *sim = arg;

    pthread_mutex_lock(sim->mu);
    while (!sim->stopping) {
        uint64_t len;

        if (!sim->busy) {
            /* Leaving idle: the first step starts when the newest waiting
             * sequence arrived, not when this thread got to run, so thread
             * wake-up latency (divided by time_scale) never shows up in
             * simulated latencies. */
            if (sim->nwaiting > 0 && sim->waitq.prev->arrival_ns > sim->sim_ns)
                sim->sim_ns = sim->waitq.prev->arrival_ns;
            sim->wall_ns = mono_ns();
        }
        len = plan_step(sim);
        if (len == 0) {
            sim->busy = false;
            pthread_cond_wait(&sim->cv, sim->mu);
            continue;
        }
        sim->busy = true;
        sim->step_ns = len;
        if (!sleep_until(sim, sim->wall_ns + (uint64_t)((double)len * sim->scale)))
            break;
        sim->sim_ns += len;
        sim->wall_ns = mono_ns();
        sim->steps++;
        apply_step(sim);
    }
    pthread_mutex_unlock(sim->mu);
    return NULL;
}

/* ---- API --------------------------------------------------------------- */

me_sim *
me_sim_new(const me_cfg *cfg, size_t nmodels, pthread_mutex_t *mu, me_metrics *met)
{
    me_sim *sim = gw_xcalloc(1, sizeof(*sim));

    sim->cfg = cfg;
    sim->nmodels = nmodels;
    sim->mu = mu;
    sim->met = met;
    sim->kv = me_kv_new(cfg->kv_blocks);
    sim->bs = cfg->kv_block_size;
    sim->scale = cfg->time_scale;
    cond_init_mono(&sim->cv);
    sim->running = gw_xcalloc(cfg->max_running, sizeof(*sim->running));
    sim->waitq.prev = sim->waitq.next = &sim->waitq;
    sim->model_running = gw_xcalloc(nmodels, sizeof(*sim->model_running));
    sim->model_waiting = gw_xcalloc(nmodels, sizeof(*sim->model_waiting));
    sim->wall_ns = mono_ns();
    return sim;
}

gw_err
me_sim_start(me_sim *sim)
{
    int rc = pthread_create(&sim->thread, NULL, sched_main, sim);

    if (rc != 0) {
        gw_log_errno(GW_LOG_ERR, rc, "ME-SIM-THREAD", "msg=\"cannot start the scheduler\"");
        return GW_ESYS;
    }
    sim->thread_started = true;
    return GW_OK;
}

void
me_sim_stop(me_sim *sim)
{
    if (sim == NULL || !sim->thread_started)
        return;
    pthread_mutex_lock(sim->mu);
    sim->stopping = true;
    pthread_cond_broadcast(&sim->cv);
    pthread_mutex_unlock(sim->mu);
    pthread_join(sim->thread, NULL);
    sim->thread_started = false;
}

void
me_sim_free(me_sim *sim)
{
    if (sim == NULL)
        return;
    me_sim_stop(sim);
    if (sim->nrunning != 0 || sim->nwaiting != 0)
        gw_log(GW_LOG_ALERT, "ME-SIM-LEAK", "running=%zu waiting=%zu", sim->nrunning,
               sim->nwaiting);
    me_kv_free(sim->kv);
    pthread_cond_destroy(&sim->cv);
    free(sim->running);
    free(sim->model_running);
    free(sim->model_waiting);
    free(sim);
}

me_seq *
me_sim_submit(me_sim *sim, size_t model, unsigned prompt_tokens, unsigned out_tokens,
              unsigned remote_tokens, uint64_t *hashes, size_t nhashes)
{
    me_seq *s;
    /* An empty prompt still computes one position, as a BOS would. */
    unsigned prompt = prompt_tokens > 0 ? prompt_tokens : 1;
    unsigned long long span = (unsigned long long)prompt + out_tokens;

    if (span > (unsigned long long)me_kv_total(sim->kv) * sim->bs) {
        free(hashes);
        return NULL;
    }
    s = gw_xcalloc(1, sizeof(*s));
    s->model = model;
    s->prompt = prompt;
    s->out = out_tokens;
    s->hashes = hashes;
    s->nhashes = nhashes;
    s->blocks = gw_xcalloc(div_up(span, sim->bs), sizeof(*s->blocks));
    s->target = prompt;
    s->remote = remote_tokens;
    cond_init_mono(&s->cv);
    s->arrival_ns = sim_now(sim);
    wait_push(sim, s, false);
    if (!sim->busy)
        pthread_cond_signal(&sim->cv);
    return s;
}

void
me_sim_wait(me_sim *sim, me_seq *seq, unsigned ntok, uint64_t timeout_ns)
{
    struct timespec ts = abs_mono(mono_ns() + timeout_ns);

    seq->want = ntok;
    pthread_cond_timedwait(&seq->cv, sim->mu, &ts);
}

unsigned
me_seq_produced(const me_seq *seq)
{
    return seq->produced;
}

bool
me_seq_finished(const me_seq *seq)
{
    return seq->state == SEQ_FINISHED;
}

double
me_seq_latency_s(const me_seq *seq)
{
    return (double)(seq->finish_ns - seq->arrival_ns) / 1e9;
}

void
me_sim_release(me_sim *sim, me_seq *seq)
{
    if (seq == NULL)
        return;
    if (seq->state == SEQ_WAITING) {
        wait_unlink(sim, seq);
    } else if (seq->state == SEQ_RUNNING) {
        run_remove(sim, seq);
        drop_blocks(sim, seq);
        /* Freed blocks may let a waiting sequence in. */
        if (!sim->busy)
            pthread_cond_signal(&sim->cv);
    }
    pthread_cond_destroy(&seq->cv);
    free(seq->hashes);
    free(seq->blocks);
    free(seq);
}

void
me_sim_model_counts(const me_sim *sim, size_t model, unsigned *running, unsigned *waiting)
{
    *running = sim->model_running[model];
    *waiting = sim->model_waiting[model];
}

void
me_sim_get_stats(const me_sim *sim, me_sim_stats *out)
{
    *out = (me_sim_stats){
        .running = (unsigned)sim->nrunning,
        .waiting = (unsigned)sim->nwaiting,
        .blocks_used = me_kv_total(sim->kv) - me_kv_free_count(sim->kv),
        .blocks_total = me_kv_total(sim->kv),
        .hit_tokens = sim->hit_tokens,
        .query_tokens = sim->query_tokens,
        .evictions = me_kv_evictions(sim->kv),
        .preemptions = sim->preemptions,
        .steps = sim->steps,
    };
}

void
me_sim_reset_cache(me_sim *sim, bool counters)
{
    me_kv_drop_cached(sim->kv, counters);
    if (counters) {
        sim->hit_tokens = 0;
        sim->query_tokens = 0;
        sim->preemptions = 0;
        sim->steps = 0;
    }
}
