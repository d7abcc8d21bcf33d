/* dp_fixture: see dp_fixture.h. */
#include "dp_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

pm_endpoint *
fx_add_endpoint(pm_snapshot *s, const char *model, const char *ip)
{
    unsigned i = s->n_endpoints;
    pm_endpoint *e;
    char pod[32];

    s->endpoints = gw_xrealloc(s->endpoints, (i + 1) * sizeof(pm_endpoint));
    e = &s->endpoints[i];
    memset(e, 0, sizeof(*e));
    snprintf(pod, sizeof(pod), "pod-%u", i);
    e->id = 100 + i;
    e->model = gw_xstrdup(model);
    e->pod = gw_xstrdup(pod);
    e->ip = gw_xstrdup(ip);
    e->port = 8000;
    e->engine = gw_xstrdup("vllm");
    e->ready = true;
    s->n_endpoints++;
    return e;
}

pm_snapshot *
fx_snapshot(const char *model, unsigned n)
{
    pm_snapshot *s = gw_xcalloc(1, sizeof(*s));

    s->env.v = PM_SCHEMA_MAJOR;
    s->env.kind = PM_KIND_SNAPSHOT;
    s->env.gen = 7;
    s->env.epoch = 42;
    fx_add_model(s, model);
    for (unsigned i = 0; i < n; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.0.0.%u", i + 1);
        fx_add_endpoint(s, model, ip);
    }
    return s;
}

pm_model *
fx_add_model(pm_snapshot *s, const char *name)
{
    pm_model *m;

    s->models = gw_xrealloc(s->models, (s->n_models + 1) * sizeof(pm_model));
    m = &s->models[s->n_models++];
    memset(m, 0, sizeof(*m));
    m->name = gw_xstrdup(name);
    return m;
}

pm_profile *
fx_add_profile_rc(pm_snapshot *s, const char *name, const char *strategy,
                  const char *routing_config_json)
{
    pm_model *m = &s->models[0];
    pm_profile *p;

    m->profiles = gw_xrealloc(m->profiles, (m->n_profiles + 1) * sizeof(pm_profile));
    p = &m->profiles[m->n_profiles++];
    memset(p, 0, sizeof(*p));
    p->name = gw_xstrdup(name);
    p->routing_strategy = strategy ? gw_xstrdup(strategy) : NULL;
    p->routing_config_json = routing_config_json ? gw_xstrdup(routing_config_json) : NULL;
    return p;
}

pm_profile *
fx_add_profile(pm_snapshot *s, const char *name, const char *strategy)
{
    return fx_add_profile_rc(s, name, strategy, NULL);
}

void
fx_add_label(pm_snapshot *s, unsigned i, const char *label)
{
    pm_endpoint *e = &s->endpoints[i];

    e->labels = gw_xrealloc(e->labels, (e->n_labels + 1) * sizeof(char *));
    e->labels[e->n_labels++] = gw_xstrdup(label);
}

void
fx_add_adapter(pm_snapshot *s, unsigned i, const char *adapter)
{
    pm_endpoint *e = &s->endpoints[i];

    e->adapters = gw_xrealloc(e->adapters, (e->n_adapters + 1) * sizeof(char *));
    e->adapters[e->n_adapters++] = gw_xstrdup(adapter);
}
