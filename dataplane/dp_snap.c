/* dp_snap: indexed, refcounted snapshot (see dp_snap.h). The model index is an
 * open-addressing hash table sized to a power of two at least twice the model
 * count, so lookups stay O(1) and the table never needs to grow: a snapshot
 * is immutable. */
#include "dp_snap.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

struct dp_snap {
    int refs;
    pm_snapshot *pm;
    dp_model *models; /* parallel to pm->models */
    dp_ep **states;   /* parallel to pm->endpoints */
    uint32_t *slots;  /* model index + 1; 0 = empty */
    uint32_t mask;
};

static uint64_t
hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

dp_snap *
dp_snap_new(pm_snapshot *pm, dp_ep **states)
{
    dp_snap *s = gw_xcalloc(1, sizeof(*s));
    uint32_t size = 8;

    s->refs = 1;
    s->pm = pm;
    s->states = states;
    for (uint32_t e = 0; e < pm->n_endpoints; e++)
        states[e]->snaps++;
    while (size < pm->n_models * 2u)
        size *= 2;
    s->mask = size - 1;
    s->slots = gw_xcalloc(size, sizeof(*s->slots));
    s->models = gw_xcalloc(pm->n_models ? pm->n_models : 1, sizeof(*s->models));
    for (uint32_t i = 0; i < pm->n_models; i++) {
        uint32_t h = (uint32_t)hash_str(pm->models[i].name) & s->mask;
        while (s->slots[h] != 0)
            h = (h + 1) & s->mask;
        s->slots[h] = i + 1;
        s->models[i].model = &pm->models[i];
    }
    /* Two passes over the endpoints: count per model, then fill. */
    for (uint32_t pass = 0; pass < 2; pass++) {
        for (uint32_t e = 0; e < pm->n_endpoints; e++) {
            const dp_model *m = dp_snap_model(s, pm->endpoints[e].model);
            if (m == NULL)
                continue;
            dp_model *mm = &s->models[m - s->models];
            if (pass == 0)
                mm->n_eps++;
            else
                mm->eps[mm->n_eps++] = e;
        }
        if (pass == 0) {
            for (uint32_t i = 0; i < pm->n_models; i++) {
                s->models[i].eps = gw_xcalloc(s->models[i].n_eps ? s->models[i].n_eps : 1,
                                              sizeof(*s->models[i].eps));
                s->models[i].n_eps = 0;
            }
        }
    }
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
    for (uint32_t i = 0; i < s->pm->n_models; i++)
        free(s->models[i].eps);
    free(s->models);
    free(s->slots);
    for (uint32_t e = 0; e < s->pm->n_endpoints; e++)
        s->states[e]->snaps--;
    free(s->states);
    pm_snapshot_free(s->pm);
    free(s);
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
    uint32_t h = (uint32_t)hash_str(name) & s->mask;

    while (s->slots[h] != 0) {
        const dp_model *m = &s->models[s->slots[h] - 1];
        if (strcmp(m->model->name, name) == 0)
            return m;
        h = (h + 1) & s->mask;
    }
    return NULL;
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
