/* dp_load: endpoint runtime state keyed by identity (see dp_load.h). A small
 * chained hash table maps keys to states; it is touched only when a snapshot
 * or load message arrives, never per request. */
#include "dp_load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

#define LOAD_BUCKETS 4096u

struct dp_load {
    dp_ep *buckets[LOAD_BUCKETS];
    uint32_t n_states;
};

static uint32_t
key_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h % LOAD_BUCKETS;
}

static void
endpoint_key(const pm_endpoint *ep, char *buf, size_t n)
{
    snprintf(buf, n, "%s|%s:%u", ep->model, ep->ip, ep->port);
}

dp_load *
dp_load_new(void)
{
    return gw_xcalloc(1, sizeof(dp_load));
}

static void
ep_free(dp_ep *ep)
{
    free(ep->key);
    free(ep);
}

void
dp_load_free(dp_load *l)
{
    if (l == NULL)
        return;
    for (uint32_t b = 0; b < LOAD_BUCKETS; b++) {
        while (l->buckets[b] != NULL) {
            dp_ep *ep = l->buckets[b];
            l->buckets[b] = ep->next;
            ep_free(ep);
        }
    }
    free(l);
}

static dp_ep *
find_or_add(dp_load *l, const char *key)
{
    uint32_t b = key_hash(key);

    for (dp_ep *ep = l->buckets[b]; ep != NULL; ep = ep->next) {
        if (strcmp(ep->key, key) == 0)
            return ep;
    }
    dp_ep *ep = gw_xcalloc(1, sizeof(*ep));
    ep->key = gw_xstrdup(key);
    ep->running = -1;
    ep->waiting = -1;
    ep->kv_usage = -1;
    ep->gpu_usage = -1;
    ep->latency_ms = -1;
    ep->ttft_ms = -1;
    ep->tpot_ms = -1;
    ep->tokens_per_s = -1;
    ep->metrics_age_ms = -1;
    ep->kv_capacity = -1;
    ep->kv_scrape_at = -1;
    ep->next = l->buckets[b];
    l->buckets[b] = ep;
    l->n_states++;
    return ep;
}

dp_ep **
dp_load_apply_snapshot(dp_load *l, const pm_snapshot *pm)
{
    dp_ep **states = gw_xcalloc(pm->n_endpoints ? pm->n_endpoints : 1, sizeof(*states));
    char key[PM_MAX_STR * 2 + 16];

    for (uint32_t b = 0; b < LOAD_BUCKETS; b++) {
        for (dp_ep *ep = l->buckets[b]; ep != NULL; ep = ep->next)
            ep->live = false;
    }
    for (uint32_t i = 0; i < pm->n_endpoints; i++) {
        endpoint_key(&pm->endpoints[i], key, sizeof(key));
        states[i] = find_or_add(l, key);
        states[i]->live = true;
    }
    /* Free states that left the fleet once nothing holds them. */
    for (uint32_t b = 0; b < LOAD_BUCKETS; b++) {
        dp_ep **pp = &l->buckets[b];
        while (*pp != NULL) {
            dp_ep *ep = *pp;
            if (!ep->live && ep->inflight == 0 && ep->snaps == 0) {
                *pp = ep->next;
                ep_free(ep);
                l->n_states--;
            } else {
                pp = &ep->next;
            }
        }
    }
    return states;
}

/* Two messages name the same scrape when their scrape times differ by at
 * most this (transit and loop delays shift them; scrapes are further apart). */
#define SAME_SCRAPE_MS 20.0

/* Records <ep>'s tokens after a load message received at <now_ms>, and
 * sets kv_base_tokens to the tokens when its KV usage was scraped. */
static void
note_scrape(dp_ep *ep, uint64_t now_ms)
{
    unsigned slot = (unsigned)(ep->msg_n % DP_LOAD_RING), kept;
    uint64_t at;

    ep->msg_ms[slot] = now_ms;
    ep->msg_tokens[slot] = dp_ep_tokens(ep);
    ep->msg_n++;
    if (ep->metrics_age_ms < 0) {
        ep->kv_base_tokens = ep->msg_tokens[slot];
        ep->kv_scrape_at = -1;
        return;
    }
    at = (double)now_ms > ep->metrics_age_ms ? now_ms - (uint64_t)ep->metrics_age_ms : 0;
    /* The scrape the base was found for: keep it, even once the ring no
     * longer reaches back to it. */
    if (ep->kv_scrape_at >= 0 && fabs((double)at - ep->kv_scrape_at) <= SAME_SCRAPE_MS)
        return;
    ep->kv_scrape_at = (double)at;
    kept = ep->msg_n < DP_LOAD_RING ? (unsigned)ep->msg_n : DP_LOAD_RING;
    /* Newest first: the first sample at or before the scrape, else the
     * oldest kept. */
    for (unsigned k = 0; k < kept; k++) {
        unsigned s = (unsigned)((ep->msg_n - 1 - k) % DP_LOAD_RING);
        ep->kv_base_tokens = ep->msg_tokens[s];
        if (ep->msg_ms[s] <= at)
            break;
    }
}

void
dp_load_apply_fleet(dp_load *l, const pm_load *msg, const pm_snapshot *pm, dp_ep **states,
                    uint64_t worker_id, uint64_t now_ms)
{
    uint64_t my_seq = 0;
    bool included = false;
    (void)l;

    for (uint32_t w = 0; w < msg->n_workers; w++) {
        if (msg->workers[w].worker_id == worker_id) {
            my_seq = msg->workers[w].seq;
            included = true;
        }
    }
    /* Ids are dense small integers but not indexes: match them through the
     * snapshot. Endpoint counts per message are modest, so a linear probe per
     * entry from the same position usually hits at once. */
    for (uint32_t i = 0; i < msg->n_eps; i++) {
        const pm_ep_load *el = &msg->eps[i];
        dp_ep *ep = NULL;
        uint32_t j = i < pm->n_endpoints ? i : 0;

        for (uint32_t k = 0; k < pm->n_endpoints; k++, j = (j + 1) % pm->n_endpoints) {
            if (pm->endpoints[j].id == el->id) {
                ep = states[j];
                break;
            }
        }
        if (ep == NULL)
            continue;
        ep->fleet_inflight = el->inflight;
        ep->fleet_tokens = el->inflight_tokens;
        ep->running = el->running;
        ep->waiting = el->waiting;
        ep->kv_usage = el->kv_usage;
        ep->gpu_usage = el->gpu_usage;
        ep->latency_ms = el->latency_ms;
        ep->ttft_ms = el->ttft_ms;
        ep->tpot_ms = el->tpot_ms;
        ep->tokens_per_s = el->tokens_per_s;
        ep->metrics_age_ms = el->metrics_age_ms;
        ep->kv_capacity = el->kv_capacity;
        ep->own_in_fleet = 0;
        ep->own_tokens_in_fleet = 0;
        if (included) {
            /* Our share is what we said in report <my_seq>; if that report is
             * no longer in the ring, assume it equals what we hold now. */
            ep->own_in_fleet = ep->inflight;
            ep->own_tokens_in_fleet = ep->inflight_tokens;
            for (unsigned r = 0; r < DP_LOAD_RING; r++) {
                if (ep->ring_seq[r] == my_seq) {
                    ep->own_in_fleet = ep->ring_inflight[r];
                    ep->own_tokens_in_fleet = ep->ring_tokens[r];
                    break;
                }
            }
        }
        note_scrape(ep, now_ms);
    }
}

pm_report *
dp_load_report(dp_load *l, const pm_snapshot *pm, dp_ep **states, uint64_t worker_id, uint64_t seq)
{
    pm_report *r = gw_xcalloc(1, sizeof(*r));
    (void)l;

    r->env.v = PM_SCHEMA_MAJOR;
    r->env.kind = PM_KIND_REPORT;
    r->env.gen = pm->env.gen;
    r->env.epoch = pm->env.epoch;
    r->worker_id = worker_id;
    r->seq = seq;
    r->n_eps = pm->n_endpoints;
    r->eps = gw_xcalloc(pm->n_endpoints ? pm->n_endpoints : 1, sizeof(*r->eps));
    for (uint32_t i = 0; i < pm->n_endpoints; i++) {
        dp_ep *ep = states[i];
        pm_ep_report *er = &r->eps[i];
        unsigned slot = (unsigned)(seq % DP_LOAD_RING);

        er->id = pm->endpoints[i].id;
        er->inflight = ep->inflight;
        er->inflight_tokens = ep->inflight_tokens;
        er->completed = ep->completed;
        er->errors = ep->errors;
        er->prompt_tokens = ep->prompt_tokens;
        er->completion_tokens = ep->completion_tokens;
        er->latency_ms_sum = ep->latency_ms_sum;
        er->ttft_ms_sum = ep->ttft_ms_sum;
        ep->ring_seq[slot] = seq;
        ep->ring_inflight[slot] = ep->inflight;
        ep->ring_tokens[slot] = ep->inflight_tokens;
        ep->completed = 0;
        ep->errors = 0;
        ep->prompt_tokens = 0;
        ep->completion_tokens = 0;
        ep->latency_ms_sum = 0;
        ep->ttft_ms_sum = 0;
    }
    return r;
}

uint32_t
dp_load_total_inflight(const dp_load *l)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < LOAD_BUCKETS; b++) {
        for (const dp_ep *ep = l->buckets[b]; ep != NULL; ep = ep->next)
            n += ep->inflight;
    }
    return n;
}
