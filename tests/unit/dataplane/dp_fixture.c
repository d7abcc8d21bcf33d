/* dp_fixture: see dp_fixture.h. */
#include "dp_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

pm_snapshot *
fx_snapshot(const char *model, unsigned n)
{
    pm_snapshot *s = gw_xcalloc(1, sizeof(*s));

    s->env.v = PM_SCHEMA_MAJOR;
    s->env.kind = PM_KIND_SNAPSHOT;
    s->env.gen = 7;
    s->env.epoch = 42;
    s->n_models = 1;
    s->models = gw_xcalloc(1, sizeof(pm_model));
    s->models[0].name = gw_xstrdup(model);
    s->n_endpoints = n;
    s->endpoints = gw_xcalloc(n ? n : 1, sizeof(pm_endpoint));
    for (unsigned i = 0; i < n; i++) {
        char ip[32], pod[32];
        snprintf(ip, sizeof(ip), "10.0.0.%u", i + 1);
        snprintf(pod, sizeof(pod), "pod-%u", i);
        s->endpoints[i].id = 100 + i;
        s->endpoints[i].model = gw_xstrdup(model);
        s->endpoints[i].pod = gw_xstrdup(pod);
        s->endpoints[i].ip = gw_xstrdup(ip);
        s->endpoints[i].port = 8000;
        s->endpoints[i].engine = gw_xstrdup("vllm");
        s->endpoints[i].ready = true;
    }
    return s;
}

void
fx_add_profile(pm_snapshot *s, const char *name, const char *strategy)
{
    pm_model *m = &s->models[0];

    m->profiles = gw_xrealloc(m->profiles, (m->n_profiles + 1) * sizeof(pm_profile));
    memset(&m->profiles[m->n_profiles], 0, sizeof(pm_profile));
    m->profiles[m->n_profiles].name = gw_xstrdup(name);
    m->profiles[m->n_profiles].routing_strategy = strategy ? gw_xstrdup(strategy) : NULL;
    m->n_profiles++;
}
