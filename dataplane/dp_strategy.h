/* dp_strategy: the registry of routing strategies and the plans built from
 * them. A strategy is selected by name (the `routing-strategy` header, a
 * profile's routingStrategy, ROUTING_ALGORITHM, the gateway default); a plan
 * is what such a string compiles to: one strategy, or a weighted composition
 * `name[:weight],...` (dp_strat_weighted.c). docs/routing.md defines every
 * strategy; the comment at the top of each dp_strat_<name>.c is the same
 * definition next to its code.
 *
 * A strategy only chooses: the caller (dp_route) reserves the chosen
 * endpoint's in-flight slot in the same loop turn, before anything else can
 * run, so concurrent requests always see each other's reservations (the
 * aibrix #2422 race cannot happen). Strategies are pure functions of the
 * endpoints' dp_ep fields and the request's dp_pick_req: no I/O, no
 * allocation, O(candidates) (prefix-cache also reads the prefix index:
 * O(blocks + candidates)). Loop thread only.
 *
 * Three kinds:
 * - scorers (most): write one raw score per candidate, NAN where the
 *   candidate lacks the input; the best finite score wins (lowest, or
 *   highest for higher_better), ties uniformly at random. Candidates without
 *   the input rank after every candidate with it. When no candidate has it,
 *   the plan falls back to least-request and reports why (never a silent
 *   random). Scorers compose.
 * - choosers (random, power-of-two): pick a position directly; they cannot
 *   be part of a composition.
 * - both (prefix-cache): alone, its chooser runs (an algorithm with its own
 *   guards and least-request step); in a composition, its scorer. */
#ifndef DP_STRATEGY_H
#define DP_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_snap.h"

/* Expected output tokens of a request without max_tokens (least-latency). */
#define DP_DEFAULT_OUTPUT_TOKENS 256
/* Longest x-aibrix-session-key honoured; longer keys count as absent. */
#define DP_SESSION_KEY_MAX 256
/* A composition has at most this many members. */
#define DP_PLAN_MAX 16
/* Longest strategy string accepted (header or config), and the plan label. */
#define DP_PLAN_STR_MAX 512
#define DP_WEIGHT_MAX   1000000u

/* Fallback reasons (llmgw_worker_routing_fallbacks_total{reason}). */
#define DP_WHY_NO_METRICS "no_metrics" /* no candidate has the strategy's engine signal */
#define DP_WHY_NO_USER    "no_user"    /* vtc-basic without a `user` header */
#define DP_WHY_NO_SESSION "no_session" /* session-affinity: no usable session id or key */
#define DP_WHY_NO_PREFIX  "no_prefix"  /* prefix-cache in a list: prompt shorter than a block */

/* prefix-cache outcomes alone (llmgw_worker_prefix_cache_selections_total). */
#define DP_PFX_PREFIX_MATCH "prefix_match"           /* the best match within the load cap */
#define DP_PFX_FALLBACK     "least_request_fallback" /* no candidate matched */
#define DP_PFX_SKIPPED      "prefix_match_skipped"   /* matches existed, all too loaded */

typedef struct dp_prefix dp_prefix; /* dp_prefix.h */

/* What prefix-cache reads and reports for one pick (dp_route fills it when
 * the plan uses prefix-cache; NULL otherwise). */
typedef struct dp_pfx_pick {
    dp_prefix *index;          /* NULL: no index, nothing matches */
    const uint64_t *hashes;    /* the request's block hashes (borrowed) */
    uint32_t n_blocks;         /* 0: shorter than one block */
    uint32_t imbalance_abs;    /* AIBRIX_PREFIX_CACHE_POD_RUNNING_REQUEST_IMBALANCE_ABS_COUNT */
    double stddev_factor;      /* AIBRIX_PREFIX_CACHE_STANDARD_DEVIATION_FACTOR */
    uint32_t min_match_blocks; /* AIBRIX_PREFIX_CACHE_MIN_MATCH_BLOCKS */
    uint32_t *match;           /* out: matched blocks per candidate (n_cands entries) */
    bool matched;              /* out: match[] is filled */
    const char *outcome;       /* out, alone: a DP_PFX_* outcome */
    bool imbalance;            /* out: the load-imbalance guard decided (alone or in a list) */
} dp_pfx_pick;

/* What strategies may read about the request. Strings are borrowed (the
 * request's headers) and may be NULL. */
typedef struct dp_pick_req {
    int64_t max_tokens;      /* max_tokens / max_completion_tokens; -1 = absent */
    uint64_t prompt_tokens;  /* estimate, see dp_route_prompt_tokens */
    const char *session_id;  /* x-session-id, as the client sent it */
    const char *session_key; /* x-aibrix-session-key, NULL if absent or too long */
    bool has_user;           /* a `user` header was sent */
    double user_tokens;      /* vtc: this user's tokens in the window, before this request */
    double mean_user_tokens; /* vtc: mean window tokens over this worker's active users */
} dp_pick_req;

typedef struct dp_pick {
    const dp_snap *snap;
    dp_ep *const *states;  /* dp_snap_states(snap), read directly on the hot path */
    const uint32_t *cands; /* endpoint indexes (into the snapshot), snapshot order */
    uint32_t n_cands;      /* >= 1 */
    uint64_t *rng;         /* xorshift state, advanced by dp_rand */
    const dp_pick_req *req;
    dp_pfx_pick *pfx; /* prefix-cache's inputs and outputs; NULL unless the plan uses it */
    /* Weighted lists: when imbalance_guard is set and max L - min L over the
     * candidates exceeds imbalance_abs, only the least loaded take part
     * (dp_strat_weighted.c). Off when zero-initialised. */
    bool imbalance_guard;
    uint32_t imbalance_abs;
} dp_pick;

/* The state of candidate <i> (a position in pick->cands). */
static inline const dp_ep *
dp_pick_ep(const dp_pick *pick, uint32_t i)
{
    return pick->states[pick->cands[i]];
}

/* Writes a raw score for each candidate into <scores> (n_cands entries):
 * finite = scored, NAN = the candidate lacks the input. Returns how many are
 * scored; when 0, sets *why to a DP_WHY_* reason. */
typedef uint32_t (*dp_score_fn)(const dp_pick *pick, double *scores, const char **why);
/* Returns a position in pick->cands. */
typedef uint32_t (*dp_choose_fn)(const dp_pick *pick);

typedef struct dp_strategy {
    const char *name;
    dp_choose_fn choose; /* choosers (and prefix-cache alone) */
    dp_score_fn score;   /* scorers (and prefix-cache in a list); NULL: cannot compose */
    bool higher_better;  /* scorers: polarity of the raw score */
} dp_strategy;

/* The strategy called <name> (exact, case-sensitive), or NULL. Names of later
 * issues (the slo family, ...) are not registered and give NULL. */
const dp_strategy *dp_strategy_find(const char *name);
/* The strategy called <name>/<len> (not NUL-terminated), or NULL. */
const dp_strategy *dp_strategy_findn(const char *name, size_t len);

/* A compiled strategy string. Single strategies have n = 1, weight 1. */
typedef struct dp_plan {
    uint32_t n;
    const dp_strategy *s[DP_PLAN_MAX];
    uint32_t w[DP_PLAN_MAX];     /* 1..DP_WEIGHT_MAX (zero-weight members are dropped) */
    char label[DP_PLAN_STR_MAX]; /* canonical form: "least-request" or "a:2,b:1" */
} dp_plan;

/* Compiles <str>: a registered name, or `name[:weight],...` with weights
 * 0..1000000 (decimal digits, default 1; 0 drops the member), at most
 * DP_PLAN_MAX members, ASCII blanks allowed around items, each name at most
 * once; choosers (random, power-of-two) only alone; at least one member with
 * a weight > 0. A list that keeps one member is that strategy alone. On false
 * <why> (size <why_n>) says what is wrong and <out> is undefined. */
bool dp_plan_parse(const char *str, dp_plan *out, char *why, size_t why_n);

/* Makes <out> the plan of <s> alone. */
void dp_plan_single(const dp_strategy *s, dp_plan *out);

/* True if <plan> has a member named <name>. */
bool dp_plan_has(const dp_plan *plan, const char *name);

/* Runs <plan> over <pick> and returns the chosen position in pick->cands.
 * <scratch> holds at least 2 * n_cands doubles. *fallback is NULL, or the
 * DP_WHY_* reason for which least-request decided instead. */
uint32_t dp_plan_pick(const dp_plan *plan, const dp_pick *pick, double *scratch,
                      const char **fallback);

/* A small cache of compiled strategy strings (header values and
 * ROUTING_ALGORITHM), so a list is parsed once per distinct string, not per
 * request. Fixed size; an entry may be replaced by a newer string. */
typedef struct dp_plan_cache dp_plan_cache;

dp_plan_cache *dp_plan_cache_new(void);
/* NULL ok. */
void dp_plan_cache_free(dp_plan_cache *c);
/* As dp_plan_parse, through <c> for lists; a plain name skips the cache.
 * Invalid strings are not cached. */
bool dp_plan_get(dp_plan_cache *c, const char *str, dp_plan *out, char *why, size_t why_n);

/* Uniform integer in [0, n) from the xorshift64* generator at <state>. */
uint32_t dp_rand(uint64_t *state, uint32_t n);

/* The best finite score in <scores> (lowest, or highest if <higher_better>),
 * ties uniformly at random; at least one score must be finite. */
uint32_t dp_best_score(const dp_pick *pick, const double *scores, bool higher_better);

/* The strategies (one file each). */
uint32_t dp_strat_random(const dp_pick *pick);
uint32_t dp_strat_power_of_two(const dp_pick *pick);
uint32_t dp_strat_least_request(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_throughput(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_least_latency(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_least_kv_cache(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_least_gpu_cache(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_least_busy_time(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_vtc_basic(const dp_pick *pick, double *scores, const char **why);
uint32_t dp_strat_session_affinity(const dp_pick *pick, double *scores, const char **why);
/* prefix-cache (dp_strat_prefix_cache.c): the chooser runs alone, the
 * scorer in a composition; both read and fill pick->pfx. */
uint32_t dp_strat_prefix_cache_choose(const dp_pick *pick);
uint32_t dp_strat_prefix_cache(const dp_pick *pick, double *scores, const char **why);
/* pd over combined endpoints (dp_pd.h picks the pairs): least-request. */
uint32_t dp_strat_pd_combined(const dp_pick *pick);
/* Weighted composition of a plan with n >= 2 (see dp_strat_weighted.c).
 * Returns a position, or UINT32_MAX (with *why) when no member scored any
 * candidate. <scratch> as for dp_plan_pick. */
uint32_t dp_strat_weighted(const dp_plan *plan, const dp_pick *pick, double *scratch,
                           const char **why);

/* session-affinity helpers. The session id is the standard base64 (with
 * padding) of the endpoint's "ip:port" ("[v6]:port" for IPv6), as AIBrix
 * issues it. dp_session_id_encode writes it NUL-terminated into <out> of
 * size <n> (>= 4 * ceil(len / 3) + 1, else it writes an empty string).
 * dp_session_id_decode decodes <id> into <out> of size <n>, NUL-terminated;
 * false if <id> is not valid base64 or does not fit. */
void dp_session_id_encode(const char *addr, char *out, size_t n);
bool dp_session_id_decode(const char *id, char *out, size_t n);

#endif
