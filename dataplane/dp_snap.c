/* dp_snap: indexed, refcounted snapshot (see dp_snap.h). The name index is an
 * open-addressing hash table sized to a power of two at least twice the
 * number of names (models plus adapter listings, an upper bound on adapters),
 * so lookups stay O(1) and the table never needs to grow: a snapshot is
 * immutable.
 *
 * Base models come first in <models> (parallel to pm->models), adapters
 * after them. An adapter belongs to the base model of the first endpoint (in
 * snapshot order) that lists it; an endpoint of another base model listing
 * the same name is left out of it, with a warning, because one request must
 * resolve to one model config. An adapter named like a base model is
 * ignored (the base model wins). */
#include "dp_snap.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_digest.h"
#include "gw/gw_mem.h"

#include "dp_strategy.h"

struct dp_snap {
    int refs;
    pm_snapshot *pm;
    dp_traffic_ref *traffic; /* NULL = none; shared across generations */
    dp_model *models;        /* n_models entries: pm->n_models bases, then adapters */
    uint32_t n_models;
    dp_prof *profs;     /* all base models' profiles, back to back */
    uint32_t *auto_ids; /* all base models' auto orders, back to back */
    dp_plan **plans;    /* every compiled plan (owned), to free */
    uint32_t n_plans;
    const dp_plan *default_plan; /* borrowed from <plans> */
    char *addr_blob;
    uint32_t *addr_off; /* parallel to pm->endpoints */
    dp_ep **states;     /* parallel to pm->endpoints */
    uint32_t *slots;    /* model index + 1; 0 = empty */
    uint32_t mask;
    dp_users *users;
    bool has_limits; /* dp_users_any_limit */
};

static uint64_t
hash_str(const char *s)
{
    return gw_fnv1a64(s, strlen(s));
}

static int64_t
find_slot(const dp_snap *s, const char *name)
{
    uint32_t h = (uint32_t)hash_str(name) & s->mask;

    while (s->slots[h] != 0) {
        if (strcmp(s->models[s->slots[h] - 1].name, name) == 0)
            return s->slots[h] - 1;
        h = (h + 1) & s->mask;
    }
    return -1;
}

static void
insert_slot(dp_snap *s, uint32_t idx)
{
    uint32_t h = (uint32_t)hash_str(s->models[idx].name) & s->mask;

    while (s->slots[h] != 0)
        h = (h + 1) & s->mask;
    s->slots[h] = idx + 1;
}

static const dp_plan *
compile_plan(dp_snap *s, const char *str, const char *model, const char *where)
{
    char why[160];
    dp_plan *plan;

    if (str == NULL || str[0] == '\0')
        return NULL;
    plan = gw_xmalloc(sizeof(*plan));
    if (!dp_plan_parse(str, plan, why, sizeof(why))) {
        char q[128];
        /* Operator config: logged once per snapshot and treated as unset,
         * so the next source in precedence order decides (dp_route). */
        gw_log(GW_LOG_WARN, "DP-SNAP-BAD-STRATEGY", "model=%s where=%s strategy=%s msg=\"%s\"",
               model, where, gw_log_q(q, sizeof(q), str), why);
        free(plan);
        return NULL;
    }
    s->plans[s->n_plans++] = plan;
    return plan;
}

static void
hint(const json_t *rc, const char *key, int64_t *out, uint32_t *n, const char *model,
     const char *prof)
{
    const json_t *v = json_object_get(rc, key);

    *out = DP_HINT_NONE;
    if (v == NULL || json_is_null(v))
        return;
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        gw_log(GW_LOG_WARN, "DP-SNAP-BAD-HINT",
               "model=%s profile=%s key=%s msg=\"not a non-negative integer; ignored\"", model,
               prof, key);
        return;
    }
    *out = (int64_t)json_integer_value(v);
    (*n)++;
}

/* Reads a profile's auto-selection hints from its routingConfig, once. */
static void
compile_hints(dp_prof *pf, const char *model)
{
    json_t *rc;

    pf->prompt_gte = pf->prompt_lt = pf->max_gte = pf->max_lt = DP_HINT_NONE;
    pf->n_hints = 0;
    if (pf->p->routing_config_json == NULL)
        return;
    rc = json_loads(pf->p->routing_config_json, 0, NULL);
    if (json_is_object(rc)) {
        hint(rc, "promptTokensGte", &pf->prompt_gte, &pf->n_hints, model, pf->p->name);
        hint(rc, "promptTokensLt", &pf->prompt_lt, &pf->n_hints, model, pf->p->name);
        hint(rc, "maxTokensGte", &pf->max_gte, &pf->n_hints, model, pf->p->name);
        hint(rc, "maxTokensLt", &pf->max_lt, &pf->n_hints, model, pf->p->name);
    }
    json_decref(rc);
}

static void
compile_model(dp_snap *s, dp_model *m, dp_prof *profs, uint32_t *auto_ids)
{
    const pm_model *pm = m->model;

    m->locked = compile_plan(s, pm->locked_strategy, pm->name, "lockedRoutingStrategy");
    m->profs = profs;
    m->auto_order = auto_ids;
    for (uint32_t i = 0; i < pm->n_profiles; i++) {
        dp_prof *pf = &profs[i];
        char where[PM_MAX_STR + 32];

        pf->p = &pm->profiles[i];
        snprintf(where, sizeof(where), "profiles.%s.routingStrategy", pf->p->name);
        pf->plan = compile_plan(s, pf->p->routing_strategy, pm->name, where);
        compile_hints(pf, pm->name);
        if (pf->n_hints == 0)
            continue;
        /* Insertion sort by name: at most PM_MAX_PROFILES entries. */
        uint32_t j = m->n_auto++;
        while (j > 0 && strcmp(pm->profiles[auto_ids[j - 1]].name, pf->p->name) > 0) {
            auto_ids[j] = auto_ids[j - 1];
            j--;
        }
        auto_ids[j] = i;
    }
}

static void
build_addrs(dp_snap *s)
{
    const pm_snapshot *pm = s->pm;
    size_t total = 1, off = 0;

    for (uint32_t e = 0; e < pm->n_endpoints; e++)
        total += strlen(pm->endpoints[e].ip) + 9; /* "[" "]:" 5 digits NUL */
    s->addr_blob = gw_xmalloc(total);
    s->addr_off = gw_xcalloc(pm->n_endpoints ? pm->n_endpoints : 1, sizeof(*s->addr_off));
    for (uint32_t e = 0; e < pm->n_endpoints; e++) {
        const pm_endpoint *ep = &pm->endpoints[e];
        int n = snprintf(s->addr_blob + off, total - off, strchr(ep->ip, ':') ? "[%s]:%u" : "%s:%u",
                         ep->ip, ep->port);
        s->addr_off[e] = (uint32_t)off;
        off += (size_t)n + 1;
    }
}

/* Adds endpoint <e> to model <mi> (pass 0 counts, pass 1 fills); <last>
 * drops an endpoint listing the same adapter twice. */
static void
add_ep(dp_snap *s, uint32_t mi, uint32_t e, uint32_t pass, uint32_t *last)
{
    dp_model *m = &s->models[mi];

    if (last[mi] == e + 1)
        return;
    last[mi] = e + 1;
    if (pass == 1)
        m->eps[m->n_eps] = e;
    m->n_eps++;
}

dp_snap *
dp_snap_new(pm_snapshot *pm, dp_ep **states)
{
    dp_snap *s = gw_xcalloc(1, sizeof(*s));
    uint32_t size = 8, cap = pm->n_models, n_profs = 0, n_plans = 1;
    uint32_t *base_of, *last;

    s->refs = 1;
    s->pm = pm;
    s->states = states;
    for (uint32_t e = 0; e < pm->n_endpoints; e++) {
        states[e]->snaps++;
        cap += pm->endpoints[e].n_adapters;
    }
    for (uint32_t i = 0; i < pm->n_models; i++) {
        n_profs += pm->models[i].n_profiles;
        n_plans += 1 + pm->models[i].n_profiles;
    }
    while (size < cap * 2u)
        size *= 2;
    s->mask = size - 1;
    s->slots = gw_xcalloc(size, sizeof(*s->slots));
    s->models = gw_xcalloc(cap ? cap : 1, sizeof(*s->models));
    s->profs = gw_xcalloc(n_profs ? n_profs : 1, sizeof(*s->profs));
    s->auto_ids = gw_xcalloc(n_profs ? n_profs : 1, sizeof(*s->auto_ids));
    s->plans = gw_xcalloc(n_plans, sizeof(*s->plans));
    base_of = gw_xcalloc(pm->n_endpoints ? pm->n_endpoints : 1, sizeof(*base_of));
    last = gw_xcalloc(cap ? cap : 1, sizeof(*last));
    n_profs = 0;
    for (uint32_t i = 0; i < pm->n_models; i++) {
        s->models[i].name = pm->models[i].name;
        s->models[i].model = &pm->models[i];
        insert_slot(s, i);
        compile_model(s, &s->models[i], s->profs + n_profs, s->auto_ids + n_profs);
        n_profs += pm->models[i].n_profiles;
    }
    s->n_models = pm->n_models;
    s->default_plan =
        compile_plan(s, pm->settings.routing_strategy, "-", "settings.routingStrategy");
    /* Base model of each endpoint (+1; 0 = its model has no config). */
    for (uint32_t e = 0; e < pm->n_endpoints; e++) {
        int64_t mi = find_slot(s, pm->endpoints[e].model);
        base_of[e] = mi >= 0 ? (uint32_t)mi + 1 : 0;
    }
    /* Pass 0 counts endpoints per model and creates the adapters; pass 1
     * fills the endpoint lists. */
    for (uint32_t pass = 0; pass < 2; pass++) {
        memset(last, 0, (cap ? cap : 1) * sizeof(*last));
        for (uint32_t e = 0; e < pm->n_endpoints; e++) {
            const pm_endpoint *ep = &pm->endpoints[e];
            if (base_of[e] == 0)
                continue;
            uint32_t b = base_of[e] - 1;
            add_ep(s, b, e, pass, last);
            for (uint32_t a = 0; a < ep->n_adapters; a++) {
                int64_t mi = find_slot(s, ep->adapters[a]);
                if (mi < 0 && pass == 0) {
                    dp_model *am = &s->models[s->n_models];
                    am->name = ep->adapters[a];
                    am->model = s->models[b].model;
                    am->adapter = true;
                    am->profs = s->models[b].profs;
                    am->locked = s->models[b].locked;
                    am->n_auto = s->models[b].n_auto;
                    am->auto_order = s->models[b].auto_order;
                    mi = s->n_models++;
                    insert_slot(s, (uint32_t)mi);
                }
                if (mi < 0 || !s->models[mi].adapter)
                    continue; /* named like a base model: the base wins */
                if (s->models[mi].model != s->models[b].model) {
                    if (pass == 0)
                        gw_log(GW_LOG_WARN, "DP-SNAP-ADAPTER-CONFLICT",
                               "adapter=%s model=%s first_model=%s pod=%s msg=\"adapter name "
                               "served by two base models; this endpoint is left out\"",
                               ep->adapters[a], ep->model, s->models[mi].model->name, ep->pod);
                    continue;
                }
                add_ep(s, (uint32_t)mi, e, pass, last);
            }
        }
        if (pass == 0) {
            for (uint32_t i = 0; i < s->n_models; i++) {
                s->models[i].eps = gw_xcalloc(s->models[i].n_eps ? s->models[i].n_eps : 1,
                                              sizeof(*s->models[i].eps));
                s->models[i].n_eps = 0;
            }
        }
    }
    free(last);
    free(base_of);
    build_addrs(s);
    s->users = dp_users_new(pm);
    s->has_limits = dp_users_any_limit(pm);
    return s;
}

dp_snap *
dp_snap_ref(dp_snap *s)
{
    s->refs++;
    return s;
}

void
dp_snap_unref(dp_snap *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    dp_traffic_unref(s->traffic);
    for (uint32_t i = 0; i < s->n_models; i++)
        free(s->models[i].eps);
    for (uint32_t i = 0; i < s->n_plans; i++)
        free(s->plans[i]);
    free(s->plans);
    free(s->profs);
    free(s->auto_ids);
    free(s->models);
    free(s->slots);
    free(s->addr_blob);
    free(s->addr_off);
    dp_users_free(s->users);
    for (uint32_t e = 0; e < s->pm->n_endpoints; e++)
        s->states[e]->snaps--;
    free(s->states);
    pm_snapshot_free(s->pm);
    free(s);
}

const dp_users *
dp_snap_users(const dp_snap *s)
{
    return s->users;
}

bool
dp_snap_has_limits(const dp_snap *s)
{
    return s->has_limits;
}

const pm_snapshot *
dp_snap_pm(const dp_snap *s)
{
    return s->pm;
}

uint64_t
dp_snap_gen(const dp_snap *s)
{
    return s->pm->env.gen;
}

const dp_model *
dp_snap_model(const dp_snap *s, const char *name)
{
    int64_t i = find_slot(s, name);
    return i >= 0 ? &s->models[i] : NULL;
}

dp_ep *
dp_snap_state(const dp_snap *s, uint32_t i)
{
    return s->states[i];
}

dp_ep **
dp_snap_states(const dp_snap *s)
{
    return s->states;
}

const char *
dp_snap_addr(const dp_snap *s, uint32_t i)
{
    return s->addr_blob + s->addr_off[i];
}

const dp_plan *
dp_snap_default_plan(const dp_snap *s)
{
    return s->default_plan;
}

const gw_route_cfg *
dp_snap_traffic(const dp_snap *s)
{
    return s != NULL && s->traffic != NULL ? &s->traffic->cfg : NULL;
}

dp_traffic_ref *
dp_snap_traffic_ref(const dp_snap *s)
{
    return s != NULL ? s->traffic : NULL;
}

void
dp_snap_set_traffic(dp_snap *s, dp_traffic_ref *r)
{
    dp_traffic_unref(s->traffic);
    s->traffic = r;
}
