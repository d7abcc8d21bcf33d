/* dp_route: from a parsed request to a reserved endpoint (DESIGN §5):
 * resolve the model (or LoRA adapter) and its config profile (by name, or
 * `auto` by the request's size), derive the strategy plan (locked >
 * `routing-strategy` header > profile > ROUTING_ALGORITHM > the snapshot's
 * gateway default > random), parse the `external-filter` selector, list
 * the routable candidates, pick, and reserve the endpoint's in-flight slot
 * in the same step. Everything the snapshot holds was compiled when it
 * arrived (dp_snap); nothing here parses JSON or allocates per request
 * (the candidate and score scratch arrays in dp_ctx only grow).
 * Loop thread only. */
#ifndef DP_ROUTE_H
#define DP_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "dp_ctx.h"
#include "dp_error.h"
#include "dp_selector.h"
#include "dp_strategy.h"

/* What the request says (strings borrowed: the body's model and the
 * request's headers, which must outlive the dp_route; any may be NULL). */
typedef struct dp_route_in {
    const char *model;
    const char *strategy;    /* `routing-strategy` */
    const char *profile;     /* `config-profile` */
    const char *filter;      /* `external-filter` */
    const char *user;        /* `user` */
    const char *session_id;  /* `x-session-id` */
    const char *session_key; /* `x-aibrix-session-key` */
    int64_t max_tokens;      /* -1 = absent */
    size_t prompt_bytes;
    const char *text; /* routing text (dp_parse), borrowed for dp_route_resolve; may be NULL */
    size_t text_len;
} dp_route_in;

typedef struct dp_route {
    const dp_model *model;     /* borrowed from the request's snapshot ref */
    const pm_profile *profile; /* resolved profile; NULL if the model has none */
    bool profile_auto;         /* resolved by `config-profile: auto` (echoed to the client) */
    dp_plan plan;              /* the strategy; plan.label names it */
    bool affinity;             /* the plan uses session-affinity: answer x-session-id */
    dp_selector filter;        /* external-filter; n = 0 when absent */
    dp_pick_req preq;          /* what strategies read about the request */
    const char *fallback;      /* after dp_route_pick: why least-request decided, or NULL */
    uint64_t vtc_user;         /* hash of the `user` header; 0 = none */
    int64_t vtc_charged;       /* tokens charged to that user when routed */
    /* prefix-cache: the request's block hashes sit in ctx->pfx_hashes while
     * ctx->pfx_stamp == pfx_stamp (a later request reuses the scratch; a
     * retry then picks without prefix information). */
    bool pfx_plan;  /* the plan uses prefix-cache */
    uint32_t pfx_n; /* block hashes of this request */
    uint64_t pfx_stamp;
    const char *pfx_bucket;  /* after a pick: match_percent_bucket of the chosen endpoint */
    const char *pfx_outcome; /* after a pick: DP_PFX_* when prefix-cache decided alone */
    bool pfx_imbalance;      /* after a pick: its load-imbalance guard decided */
    /* pd (dp_pd): the plan disaggregates; after dp_route_pick_pd the
     * reserved prefill endpoint (-1: none) and how it was chosen. */
    bool pd;
    int64_t pd_prefill;
    const char *pd_how;
} dp_route;

/* Resolves <in> against <snap> into <out>. On false <err> holds the client
 * answer: 404 unknown model, 400 `x-error-invalid-routing-strategy` for a
 * bad `routing-strategy` header, 400 `x-error-invalid-external-filter` for
 * a malformed selector. Charges the `user`'s vtc window (dp_vtc) with this
 * request's estimate. Bad strategies in operator config are skipped (logged
 * when the snapshot arrives, or rate-limited for ROUTING_ALGORITHM). When
 * the plan uses prefix-cache, hashes in->text once (ctx->pfx_hashes). */
bool dp_route_resolve(dp_ctx *ctx, const dp_snap *snap, const dp_route_in *in, dp_route *out,
                      dp_error *err);

/* Picks an endpoint for <route> among the ready, non-draining endpoints that
 * match its filter and are not in <exclude> (<n_exclude> endpoint indexes),
 * and reserves it: its in-flight count is raised by one and <tokens> before
 * this returns. Sets route->fallback (logged, rate-limited). With
 * prefix-cache in the plan, inserts the request's blocks for the chosen
 * endpoint (dp_prefix_insert) and sets route->pfx_*. Returns the endpoint
 * index, or -1 with <err> = 503 `x-error-no-model-backends` when nothing is
 * routable. Prefill and decode endpoints are never candidates here: they
 * serve only through pd. O(candidates), plus O(blocks) with prefix-cache. */
int64_t dp_route_pick(dp_ctx *ctx, const dp_snap *snap, dp_route *route, const uint32_t *exclude,
                      uint32_t n_exclude, uint64_t tokens, dp_error *err);

/* pd: picks and reserves a prefill endpoint and, unless <staged>, a decode
 * endpoint of the same roleset (*decode; -1 when staged) among the model's
 * ready prefill/decode endpoints not in <exclude> (dp_pd.h). Sets
 * route->pd_prefill and pd_how, and inserts the prompt's blocks for the
 * prefill in the prefix index. False with <err> = 503
 * `x-error-no-model-backends` when no roleset is complete; the caller may
 * then fall back to combined endpoints (dp_route_pick). */
bool dp_route_pick_pd(dp_ctx *ctx, const dp_snap *snap, dp_route *route, bool staged,
                      const uint32_t *exclude, uint32_t n_exclude, uint64_t tokens, int64_t *decode,
                      dp_error *err);

/* pd, staged (or a decode retry): picks and reserves a decode endpoint in
 * the roleset of route->pd_prefill, not in <exclude>. -1 with <err> = 503
 * `x-error-routing` when none is left. */
int64_t dp_route_pick_pd_decode(dp_ctx *ctx, const dp_snap *snap, dp_route *route,
                                const uint32_t *exclude, uint32_t n_exclude, uint64_t tokens,
                                dp_error *err);

/* Whether a retry has an endpoint left: a ready endpoint not in <exclude>
 * that dp_route_pick (or, with <pd_decode>, dp_route_pick_pd_decode) could
 * take. Reserves nothing. */
bool dp_route_has_untried(dp_ctx *ctx, const dp_snap *snap, const dp_route *route, bool pd_decode,
                          const uint32_t *exclude, uint32_t n_exclude);

/* pd: whether a complete roleset (a ready prefill and a ready decode) is
 * left among the endpoints not in <exclude>. Reserves nothing. */
bool dp_route_has_untried_pd(dp_ctx *ctx, const dp_snap *snap, const dp_route *route,
                             const uint32_t *exclude, uint32_t n_exclude);

/* Releases a reservation made by dp_route_pick. */
void dp_route_release(dp_ep *ep, uint64_t tokens);

/* Settles the vtc charge of <route> with the engine's usage (prompt +
 * 2 * completion tokens) when the request completes (0, 0 refunds it).
 * No-op without a `user` or with a negative count. */
void dp_route_settle(dp_ctx *ctx, const dp_route *route, int64_t prompt_tokens,
                     int64_t completion_tokens);

/* Prompt tokens estimated from <prompt_bytes> of message text: bytes / 4,
 * rounded up (about right for English with BPE tokenizers; no tokenizer
 * runs in the gateway). Used by `auto` profiles, least-latency and vtc. */
uint64_t dp_route_prompt_tokens(size_t prompt_bytes);

/* The match_percent_bucket label ("0", "1-25", "26-50", "51-75", "76-100")
 * of <matched> blocks out of <total>. */
const char *dp_route_pfx_bucket(uint32_t matched, uint32_t total);

/* Frees what routing keeps in <ctx> (scratch arrays, plan cache, vtc,
 * prefix-cache scratch; not ctx->prefix). */
void dp_route_fini(dp_ctx *ctx);

#endif
