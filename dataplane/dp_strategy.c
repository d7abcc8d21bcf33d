/* dp_strategy: the name -> strategy registry, plan compilation, running a
 * plan with its least-request fallback, and the plan cache (see
 * dp_strategy.h). A new strategy adds one line to <strategies>, one file and
 * a section in docs/routing.md. */
#include "dp_strategy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_digest.h"
#include "gw/gw_mem.h"

static const dp_strategy strategies[] = {
    {"random", dp_strat_random, NULL, false},
    {"least-request", NULL, dp_strat_least_request, false},
    {"power-of-two", dp_strat_power_of_two, NULL, false},
    {"throughput", NULL, dp_strat_throughput, false},
    {"least-latency", NULL, dp_strat_least_latency, false},
    {"least-kv-cache", NULL, dp_strat_least_kv_cache, false},
    {"least-gpu-cache", NULL, dp_strat_least_gpu_cache, false},
    {"least-busy-time", NULL, dp_strat_least_busy_time, false},
    {"vtc-basic", NULL, dp_strat_vtc_basic, false},
    {"session-affinity", NULL, dp_strat_session_affinity, true},
    {"prefix-cache", dp_strat_prefix_cache_choose, dp_strat_prefix_cache, true},
    /* pd chooses pairs (dp_route_pick_pd); over combined endpoints, when no
     * roleset is complete, least-request decides. */
    {"pd", dp_strat_pd_combined, NULL, false},
};

const dp_strategy *
dp_strategy_findn(const char *name, size_t len)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(strategies); i++) {
        if (strlen(strategies[i].name) == len && memcmp(strategies[i].name, name, len) == 0)
            return &strategies[i];
    }
    return NULL;
}

const dp_strategy *
dp_strategy_find(const char *name)
{
    return dp_strategy_findn(name, strlen(name));
}

uint32_t
dp_rand(uint64_t *state, uint32_t n)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    /* Multiply-shift maps the 64-bit output onto [0, n) without modulo bias
     * worth measuring at our n. */
    return (uint32_t)(((x * 2685821657736338717ull) >> 32) * (uint64_t)n >> 32);
}

uint32_t
dp_best_score(const dp_pick *pick, const double *scores, bool higher_better)
{
    uint32_t best = 0, ties = 0;
    double bv = 0;

    /* Reservoir sampling over the ties: each of k equal best scores wins
     * with probability 1/k, so equal endpoints share a burst instead of the
     * first one taking it all. */
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double v = scores[i];
        if (!isfinite(v))
            continue;
        if (higher_better)
            v = -v;
        if (ties == 0 || v < bv) {
            bv = v;
            best = i;
            ties = 1;
        } else if (v == bv && dp_rand(pick->rng, ++ties) == 0) {
            best = i;
        }
    }
    return best;
}

/* ---- plans -------------------------------------------------------------- */

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool fail(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool
fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return false;
}

bool
dp_plan_parse(const char *str, dp_plan *out, char *why, size_t why_n)
{
    const dp_strategy *seen[DP_PLAN_MAX];
    uint32_t n_seen = 0;
    size_t len = strlen(str), off = 0;
    const char *p = str, *end = str + len;

    out->n = 0;
    if (len >= DP_PLAN_STR_MAX)
        return fail(why, why_n, "strategy string longer than %d bytes", DP_PLAN_STR_MAX - 1);
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *a = p, *b = comma ? comma : end, *colon, *ne;
        const dp_strategy *s;
        uint64_t w = 1;

        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (a == b)
            return fail(why, why_n, "empty item in strategy list");
        colon = memchr(a, ':', (size_t)(b - a));
        ne = colon ? colon : b;
        while (ne > a && is_blank(ne[-1]))
            ne--;
        if (colon != NULL) {
            const char *d = colon + 1;
            while (d < b && is_blank(*d))
                d++;
            if (d == b || b - d > 7)
                return fail(why, why_n, "bad weight for '%.*s' (an integer 0..1000000)",
                            (int)(ne - a), a);
            w = 0;
            for (; d < b; d++) {
                if (*d < '0' || *d > '9')
                    return fail(why, why_n, "bad weight for '%.*s' (an integer 0..1000000)",
                                (int)(ne - a), a);
                w = w * 10 + (uint64_t)(*d - '0');
            }
            if (w > DP_WEIGHT_MAX)
                return fail(why, why_n, "bad weight for '%.*s' (an integer 0..1000000)",
                            (int)(ne - a), a);
        }
        s = dp_strategy_findn(a, (size_t)(ne - a));
        if (s == NULL)
            return fail(why, why_n, "unknown strategy '%.*s'", (int)(ne - a), a);
        if (n_seen == DP_PLAN_MAX)
            return fail(why, why_n, "more than %d strategies in a list", DP_PLAN_MAX);
        for (uint32_t i = 0; i < n_seen; i++) {
            if (seen[i] == s)
                return fail(why, why_n, "strategy '%.*s' listed twice", (int)(ne - a), a);
        }
        seen[n_seen++] = s;
        if (w > 0) {
            out->s[out->n] = s;
            out->w[out->n] = (uint32_t)w;
            out->n++;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (out->n == 0)
        return fail(why, why_n, "every strategy in the list has weight 0");
    if (out->n == 1) {
        out->w[0] = 1;
        gw_strlcpy(out->label, out->s[0]->name, sizeof(out->label));
        return true;
    }
    for (uint32_t i = 0; i < out->n; i++) {
        int k;
        if (out->s[i]->score == NULL)
            return fail(why, why_n, "'%s' cannot be part of a weighted list", out->s[i]->name);
        /* Fits: the input was shorter than the label buffer and the
         * canonical form only adds ":<weight>" to what it drops. Checked
         * anyway. */
        k = snprintf(out->label + off, sizeof(out->label) - off, "%s%s:%u", i ? "," : "",
                     out->s[i]->name, out->w[i]);
        if (k < 0 || (size_t)k >= sizeof(out->label) - off)
            return fail(why, why_n, "strategy string too long");
        off += (size_t)k;
    }
    return true;
}

bool
dp_plan_has(const dp_plan *plan, const char *name)
{
    for (uint32_t i = 0; i < plan->n; i++) {
        if (strcmp(plan->s[i]->name, name) == 0)
            return true;
    }
    return false;
}

uint32_t
dp_plan_pick(const dp_plan *plan, const dp_pick *pick, double *scratch, const char **fallback)
{
    const char *why = DP_WHY_NO_METRICS, *unused = NULL;

    *fallback = NULL;
    if (plan->n == 1) {
        const dp_strategy *s = plan->s[0];
        if (s->choose != NULL)
            return s->choose(pick);
        if (s->score(pick, scratch, &why) > 0)
            return dp_best_score(pick, scratch, s->higher_better);
    } else {
        uint32_t pos = dp_strat_weighted(plan, pick, scratch, &why);
        if (pos != UINT32_MAX)
            return pos;
    }
    /* No candidate has what the plan needs: least-request decides (it
     * always has an input), and the caller counts and logs it. */
    *fallback = why;
    dp_strat_least_request(pick, scratch, &unused);
    return dp_best_score(pick, scratch, false);
}

/* ---- plan cache --------------------------------------------------------- */

#define CACHE_SLOTS 64u /* power of two */
#define CACHE_WAYS  4u

typedef struct cache_entry {
    uint64_t hash;
    size_t len; /* 0 = empty */
    char key[DP_PLAN_STR_MAX];
    dp_plan plan;
} cache_entry;

struct dp_plan_cache {
    cache_entry e[CACHE_SLOTS];
    uint32_t victim;
};

dp_plan_cache *
dp_plan_cache_new(void)
{
    return gw_xcalloc(1, sizeof(dp_plan_cache));
}

void
dp_plan_cache_free(dp_plan_cache *c)
{
    free(c);
}

void
dp_plan_single(const dp_strategy *s, dp_plan *out)
{
    out->n = 1;
    out->s[0] = s;
    out->w[0] = 1;
    gw_strlcpy(out->label, s->name, sizeof(out->label));
}

bool
dp_plan_get(dp_plan_cache *c, const char *str, dp_plan *out, char *why, size_t why_n)
{
    const dp_strategy *s = dp_strategy_find(str);
    size_t len = strlen(str);
    uint64_t h;
    uint32_t base;

    if (s != NULL) {
        dp_plan_single(s, out);
        return true;
    }
    h = gw_fnv1a64(str, len);
    if (c == NULL || len == 0 || len >= DP_PLAN_STR_MAX)
        return dp_plan_parse(str, out, why, why_n);
    /* Set-associative: CACHE_WAYS consecutive slots per hash. */
    base = (uint32_t)h & (CACHE_SLOTS - 1) & ~(CACHE_WAYS - 1);
    for (uint32_t i = 0; i < CACHE_WAYS; i++) {
        const cache_entry *e = &c->e[base + i];
        if (e->len == len && e->hash == h && memcmp(e->key, str, len) == 0) {
            *out = e->plan;
            return true;
        }
    }
    if (!dp_plan_parse(str, out, why, why_n))
        return false;
    cache_entry *e = &c->e[base + (c->victim++ % CACHE_WAYS)];
    e->hash = h;
    e->len = len;
    memcpy(e->key, str, len);
    e->plan = *out;
    return true;
}
