/* dp_pd: see dp_pd.h. Rolesets are found by comparing names: a model has a
 * handful, so a linear search per candidate beats any index. At most
 * MAX_ROLESETS distinct rolesets take part; candidates of further ones are
 * skipped (and logged by the caller's "no eligible roleset" if that
 * leaves none). */
#include "dp_pd.h"

#include <math.h>
#include <string.h>

#define MAX_ROLESETS 128

dp_pd_role
dp_pd_role_of(const pm_endpoint *e)
{
    if (e->role == NULL)
        return DP_PD_COMBINED;
    if (strcmp(e->role, "prefill") == 0)
        return DP_PD_PREFILL;
    if (strcmp(e->role, "decode") == 0)
        return DP_PD_DECODE;
    return DP_PD_COMBINED;
}

static bool
same_roleset(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static const pm_endpoint *
cand_ep(const dp_pick *pick, uint32_t i)
{
    return &dp_snap_pm(pick->snap)->endpoints[pick->cands[i]];
}

typedef struct groups {
    const char *name[MAX_ROLESETS];
    uint32_t n_prefill[MAX_ROLESETS], n_decode[MAX_ROLESETS];
    uint32_t n;
} groups;

/* The roleset index of candidate <i>, adding it; -1 past MAX_ROLESETS. */
static int
group_of(groups *g, const char *rs)
{
    for (uint32_t k = 0; k < g->n; k++) {
        if (same_roleset(g->name[k], rs))
            return (int)k;
    }
    if (g->n == MAX_ROLESETS)
        return -1;
    g->name[g->n] = rs;
    g->n_prefill[g->n] = g->n_decode[g->n] = 0;
    return (int)g->n++;
}

/* Candidate <i>'s role if it takes part (its roleset is eligible), else
 * DP_PD_COMBINED; its roleset in *gi. */
static dp_pd_role
part(const dp_pick *pick, const groups *g, const int32_t *gi, uint32_t i)
{
    dp_pd_role r = dp_pd_role_of(cand_ep(pick, i));

    if (r == DP_PD_COMBINED || gi[i] < 0 || g->n_prefill[gi[i]] == 0 || g->n_decode[gi[i]] == 0)
        return DP_PD_COMBINED;
    return r;
}

/* A decode's load: the gateway's fleet-wide in-flight count, or the engine's
 * own running + waiting when that is higher (requests from elsewhere, or
 * decodes still running after their client left). */
static double
decode_load(const dp_ep *e)
{
    double l = (double)dp_ep_load(e);

    if (e->running >= 0) {
        double eng = e->running + (e->waiting > 0 ? e->waiting : 0);
        if (eng > l)
            l = eng;
    }
    return l;
}

/* Decode score terms need the maxima over the decodes considered. */
typedef struct decode_norm {
    double max_load, max_thru, max_free;
} decode_norm;

static double
free_kv(const dp_ep *e)
{
    double f = e->kv_usage >= 0 ? 100.0 - e->kv_usage * 100.0 : 100.0;
    return f < 0.1 ? 0.1 : f;
}

/* The 1 keeps free KV deciding between idle decodes (AIBrix scores cold
 * pods 1 + pending for the same reason). */
static double
decode_score(const dp_ep *e, const decode_norm *n)
{
    double s = 1.0 + (n->max_load > 0 ? decode_load(e) / n->max_load : 0);

    if (e->tokens_per_s >= 0 && n->max_thru > 0)
        s += 1.0 - e->tokens_per_s / n->max_thru;
    return s / (free_kv(e) / n->max_free);
}

static void
decode_norm_add(decode_norm *n, const dp_ep *e)
{
    double load = decode_load(e);

    if (load > n->max_load)
        n->max_load = load;
    if (e->tokens_per_s > n->max_thru)
        n->max_thru = e->tokens_per_s;
    if (free_kv(e) > n->max_free)
        n->max_free = free_kv(e);
}

/* Uniform choice among ties: the k-th best seen replaces the pick with
 * probability 1/k (reservoir sampling), so one pass suffices. */
typedef struct best {
    double score;
    uint32_t pos, ties;
} best;

static void
best_offer(best *b, const dp_pick *pick, double score, uint32_t pos)
{
    if (b->ties == 0 || score < b->score) {
        *b = (best){.score = score, .pos = pos, .ties = 1};
    } else if (score == b->score && dp_rand(pick->rng, ++b->ties) == 0) {
        b->pos = pos;
    }
}

/* Maxima over every decode that takes part, so scores compare across
 * rolesets. */
static decode_norm
decode_norm_of(const dp_pick *pick, const groups *g, const int32_t *gi)
{
    decode_norm n = {.max_free = 0.1};

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        if (part(pick, g, gi, i) == DP_PD_DECODE)
            decode_norm_add(&n, dp_pick_ep(pick, i));
    }
    return n;
}

static bool
best_decode_in(const dp_pick *pick, const groups *g, const int32_t *gi, int group, uint32_t *out,
               double *score)
{
    decode_norm n = decode_norm_of(pick, g, gi);
    best b = {0};

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        if (gi[i] == group && part(pick, g, gi, i) == DP_PD_DECODE)
            best_offer(&b, pick, decode_score(dp_pick_ep(pick, i), &n), i);
    }
    *out = b.pos;
    *score = b.score;
    return b.ties > 0;
}

static bool
best_prefill_in(const dp_pick *pick, const groups *g, const int32_t *gi, int group, double max_load,
                const uint32_t *match, uint32_t n_blocks, uint32_t *out, double *score)
{
    best b = {0};

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double s, pct = 0;
        if (gi[i] != group || part(pick, g, gi, i) != DP_PD_PREFILL)
            continue;
        if (match != NULL && n_blocks > 0)
            pct = 100.0 * match[i] / n_blocks;
        s = (100.0 - pct) * 0.1 +
            (max_load > 0 ? (double)dp_ep_load(dp_pick_ep(pick, i)) / max_load : 0);
        best_offer(&b, pick, s, i);
    }
    *out = b.pos;
    *score = b.score;
    return b.ties > 0;
}

static double
role_load(const dp_ep *e, dp_pd_role role)
{
    return role == DP_PD_DECODE ? decode_load(e) : (double)dp_ep_load(e);
}

/* The least loaded candidate of <role> among eligible rolesets if loads
 * spread beyond <spread> (strictly more when <strict>). */
static bool
imbalanced(const dp_pick *pick, const groups *g, const int32_t *gi, dp_pd_role role,
           uint32_t spread, bool strict, uint32_t *out)
{
    double lo = INFINITY, hi = -INFINITY;
    best b = {0};

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        double l;
        if (part(pick, g, gi, i) != role)
            continue;
        l = role_load(dp_pick_ep(pick, i), role);
        lo = l < lo ? l : lo;
        hi = l > hi ? l : hi;
    }
    if (hi < lo || (strict ? hi - lo <= spread : hi - lo < spread))
        return false;
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        if (part(pick, g, gi, i) == role)
            best_offer(&b, pick, role_load(dp_pick_ep(pick, i), role), i);
    }
    *out = b.pos;
    return true;
}

/* Groups the candidates by roleset (gi[i] = -1 for a combined endpoint):
 * true when some roleset has both a prefill and a decode. */
static bool
group_rolesets(const dp_pick *pick, groups *g, int32_t *gi)
{
    bool eligible = false;

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        const pm_endpoint *e = cand_ep(pick, i);
        dp_pd_role r = dp_pd_role_of(e);
        gi[i] = r == DP_PD_COMBINED ? -1 : group_of(g, e->roleset);
        if (gi[i] >= 0 && r == DP_PD_PREFILL)
            g->n_prefill[gi[i]]++;
        else if (gi[i] >= 0)
            g->n_decode[gi[i]]++;
    }
    for (uint32_t k = 0; k < g->n; k++)
        eligible |= g->n_prefill[k] > 0 && g->n_decode[k] > 0;
    return eligible;
}

bool
dp_pd_has_roleset(const dp_pick *pick, int32_t *scratch)
{
    groups g = {0};

    return group_rolesets(pick, &g, scratch);
}

bool
dp_pd_choose(const dp_pick *pick, const dp_pd_cfg *cfg, bool with_decode, const uint32_t *match,
             uint32_t n_blocks, int32_t *gi, dp_pd_choice *out)
{
    groups g = {0};
    double unused;
    double max_pload = 0, pscores[MAX_ROLESETS], dscores[MAX_ROLESETS], max_p = 0, max_d = 0;
    uint32_t pbest[MAX_ROLESETS] = {0}, dbest[MAX_ROLESETS] = {0};
    best b = {0};
    uint32_t pos;

    if (!group_rolesets(pick, &g, gi))
        return false;
    *out = (dp_pd_choice){.has_decode = with_decode};
    if (imbalanced(pick, &g, gi, DP_PD_PREFILL, cfg->prefill_spread, true, &pos)) {
        out->prefill = pos;
        out->how = "prefill_imbalance";
        if (with_decode)
            (void)best_decode_in(pick, &g, gi, gi[pos], &out->decode, &unused);
        return true;
    }
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        if (part(pick, &g, gi, i) == DP_PD_PREFILL &&
            (double)dp_ep_load(dp_pick_ep(pick, i)) > max_pload)
            max_pload = (double)dp_ep_load(dp_pick_ep(pick, i));
    }
    if (with_decode && imbalanced(pick, &g, gi, DP_PD_DECODE, cfg->decode_spread, false, &pos)) {
        out->decode = pos;
        out->how = "decode_imbalance";
        (void)best_prefill_in(pick, &g, gi, gi[pos], max_pload, match, n_blocks, &out->prefill,
                              &unused);
        return true;
    }
    for (uint32_t k = 0; k < g.n; k++) {
        pscores[k] = dscores[k] = NAN;
        if (g.n_prefill[k] == 0 || g.n_decode[k] == 0)
            continue;
        (void)best_prefill_in(pick, &g, gi, (int)k, max_pload, match, n_blocks, &pbest[k],
                              &pscores[k]);
        max_p = pscores[k] > max_p ? pscores[k] : max_p;
        if (with_decode) {
            (void)best_decode_in(pick, &g, gi, (int)k, &dbest[k], &dscores[k]);
            max_d = dscores[k] > max_d ? dscores[k] : max_d;
        }
    }
    for (uint32_t k = 0; k < g.n; k++) {
        double s;
        if (isnan(pscores[k]))
            continue;
        s = (max_p > 0 ? pscores[k] / max_p : 0) +
            (with_decode && max_d > 0 ? dscores[k] / max_d : 0);
        best_offer(&b, pick, s, k);
    }
    out->prefill = pbest[b.pos];
    if (with_decode)
        out->decode = dbest[b.pos];
    out->how = "score";
    return true;
}

bool
dp_pd_choose_decode(const dp_pick *pick, const char *roleset, uint32_t *decode)
{
    decode_norm n = {.max_free = 0.1};
    best b = {0};

    for (uint32_t i = 0; i < pick->n_cands; i++) {
        const pm_endpoint *e = cand_ep(pick, i);
        if (dp_pd_role_of(e) == DP_PD_DECODE && same_roleset(e->roleset, roleset))
            decode_norm_add(&n, dp_pick_ep(pick, i));
    }
    for (uint32_t i = 0; i < pick->n_cands; i++) {
        const pm_endpoint *e = cand_ep(pick, i);
        if (dp_pd_role_of(e) == DP_PD_DECODE && same_roleset(e->roleset, roleset))
            best_offer(&b, pick, decode_score(dp_pick_ep(pick, i), &n), i);
    }
    *decode = b.pos;
    return b.ties > 0;
}
