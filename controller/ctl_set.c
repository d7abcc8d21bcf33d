/* ctl_set: building, copying and comparing hand-made pm_snapshot structs
 * (see ctl_set.h). The equality functions are what lets a compile that
 * yields the same content keep its generation: they compare every field the
 * wire carries, except the envelope. */
#include "ctl_set.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

char *
ctl_dup_opt(const char *s)
{
    return s != NULL ? gw_xstrdup(s) : NULL;
}

pm_snapshot *
ctl_set_new(void)
{
    return gw_xcalloc(1, sizeof(pm_snapshot));
}

/* Grows <*arr> (element size <sz>) so that index <n> fits, doubling at powers
 * of two; the capacity is implied by <n>. */
static void
grow(void **arr, uint32_t n, size_t sz)
{
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n < 4 ? 4 : (size_t)n * 2;
        *arr = gw_xrealloc(*arr, cap * sz);
    }
}

pm_model *
ctl_set_add_model(pm_snapshot *s)
{
    void *arr = s->models;

    grow(&arr, s->n_models, sizeof(pm_model));
    s->models = arr;
    memset(&s->models[s->n_models], 0, sizeof(pm_model));
    return &s->models[s->n_models++];
}

pm_endpoint *
ctl_set_add_endpoint(pm_snapshot *s)
{
    void *arr = s->endpoints;

    grow(&arr, s->n_endpoints, sizeof(pm_endpoint));
    s->endpoints = arr;
    memset(&s->endpoints[s->n_endpoints], 0, sizeof(pm_endpoint));
    return &s->endpoints[s->n_endpoints++];
}

pm_user *
ctl_set_add_user(pm_snapshot *s)
{
    void *arr = s->users;

    grow(&arr, s->n_users, sizeof(pm_user));
    s->users = arr;
    memset(&s->users[s->n_users], 0, sizeof(pm_user));
    return &s->users[s->n_users++];
}

void
ctl_user_fini(pm_user *u)
{
    free(u->name);
    for (uint32_t i = 0; i < u->n_keys; i++)
        free(u->key_hashes[i]);
    free(u->key_hashes);
    memset(u, 0, sizeof(*u));
}

void
ctl_user_copy(pm_user *dst, const pm_user *src)
{
    *dst = *src; /* scalars; every pointer is replaced below */
    dst->name = ctl_dup_opt(src->name);
    dst->key_hashes = src->n_keys ? gw_xcalloc(src->n_keys, sizeof(char *)) : NULL;
    for (uint32_t i = 0; i < src->n_keys; i++)
        dst->key_hashes[i] = ctl_dup_opt(src->key_hashes[i]);
}

void
ctl_model_fini(pm_model *m)
{
    free(m->name);
    free(m->locked_strategy);
    free(m->default_profile);
    for (uint32_t i = 0; i < m->n_profiles; i++) {
        free(m->profiles[i].name);
        free(m->profiles[i].routing_strategy);
        free(m->profiles[i].routing_config_json);
    }
    free(m->profiles);
    memset(m, 0, sizeof(*m));
}

void
ctl_endpoint_fini(pm_endpoint *ep)
{
    free(ep->model);
    free(ep->pod);
    free(ep->ns);
    free(ep->ip);
    free(ep->engine);
    free(ep->roleset);
    free(ep->role);
    for (uint32_t i = 0; i < ep->n_adapters; i++)
        free(ep->adapters[i]);
    free(ep->adapters);
    for (uint32_t i = 0; i < ep->n_labels; i++)
        free(ep->labels[i]);
    free(ep->labels);
    memset(ep, 0, sizeof(*ep));
}

void
ctl_model_copy(pm_model *dst, const pm_model *src)
{
    dst->name = ctl_dup_opt(src->name);
    dst->locked_strategy = ctl_dup_opt(src->locked_strategy);
    dst->default_profile = ctl_dup_opt(src->default_profile);
    dst->n_profiles = src->n_profiles;
    dst->profiles = src->n_profiles ? gw_xcalloc(src->n_profiles, sizeof(pm_profile)) : NULL;
    for (uint32_t i = 0; i < src->n_profiles; i++) {
        dst->profiles[i].name = ctl_dup_opt(src->profiles[i].name);
        dst->profiles[i].routing_strategy = ctl_dup_opt(src->profiles[i].routing_strategy);
        dst->profiles[i].requests_per_second = src->profiles[i].requests_per_second;
        dst->profiles[i].routing_config_json = ctl_dup_opt(src->profiles[i].routing_config_json);
    }
}

void
ctl_endpoint_copy(pm_endpoint *dst, const pm_endpoint *src)
{
    *dst = *src; /* scalars; every pointer is replaced below */
    dst->model = ctl_dup_opt(src->model);
    dst->pod = ctl_dup_opt(src->pod);
    dst->ns = ctl_dup_opt(src->ns);
    dst->ip = ctl_dup_opt(src->ip);
    dst->engine = ctl_dup_opt(src->engine);
    dst->roleset = ctl_dup_opt(src->roleset);
    dst->role = ctl_dup_opt(src->role);
    dst->adapters = src->n_adapters ? gw_xcalloc(src->n_adapters, sizeof(char *)) : NULL;
    for (uint32_t i = 0; i < src->n_adapters; i++)
        dst->adapters[i] = ctl_dup_opt(src->adapters[i]);
    dst->labels = src->n_labels ? gw_xcalloc(src->n_labels, sizeof(char *)) : NULL;
    for (uint32_t i = 0; i < src->n_labels; i++)
        dst->labels[i] = ctl_dup_opt(src->labels[i]);
}

static bool
str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

bool
ctl_model_equal(const pm_model *a, const pm_model *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->locked_strategy, b->locked_strategy) ||
        !str_eq(a->default_profile, b->default_profile) || a->n_profiles != b->n_profiles)
        return false;
    for (uint32_t i = 0; i < a->n_profiles; i++) {
        const pm_profile *x = &a->profiles[i], *y = &b->profiles[i];
        if (!str_eq(x->name, y->name) || !str_eq(x->routing_strategy, y->routing_strategy) ||
            x->requests_per_second != y->requests_per_second ||
            !str_eq(x->routing_config_json, y->routing_config_json))
            return false;
    }
    return true;
}

bool
ctl_endpoint_equal(const pm_endpoint *a, const pm_endpoint *b)
{
    if (a->id != b->id || a->port != b->port || a->metric_port != b->metric_port ||
        a->ready != b->ready || a->draining != b->draining || a->n_adapters != b->n_adapters ||
        a->n_labels != b->n_labels || !str_eq(a->model, b->model) || !str_eq(a->pod, b->pod) ||
        !str_eq(a->ns, b->ns) || !str_eq(a->ip, b->ip) || !str_eq(a->engine, b->engine) ||
        !str_eq(a->roleset, b->roleset) || !str_eq(a->role, b->role))
        return false;
    for (uint32_t i = 0; i < a->n_adapters; i++) {
        if (!str_eq(a->adapters[i], b->adapters[i]))
            return false;
    }
    for (uint32_t i = 0; i < a->n_labels; i++) {
        if (!str_eq(a->labels[i], b->labels[i]))
            return false;
    }
    return true;
}

bool
ctl_user_equal(const pm_user *a, const pm_user *b)
{
    if (!str_eq(a->name, b->name) || a->rpm != b->rpm || a->tpm != b->tpm || a->n_keys != b->n_keys)
        return false;
    for (uint32_t i = 0; i < a->n_keys; i++) {
        if (!str_eq(a->key_hashes[i], b->key_hashes[i]))
            return false;
    }
    return true;
}

bool
ctl_snapshot_same_content(const pm_snapshot *a, const pm_snapshot *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if (a->n_models != b->n_models || a->n_endpoints != b->n_endpoints ||
        a->n_users != b->n_users ||
        !str_eq(a->settings.routing_strategy, b->settings.routing_strategy) ||
        !str_eq(a->traffic.policy, b->traffic.policy) ||
        !str_eq(a->traffic.config_json, b->traffic.config_json) ||
        !str_eq(a->mirror.config_json, b->mirror.config_json))
        return false;
    for (uint32_t i = 0; i < a->n_users; i++) {
        if (!ctl_user_equal(&a->users[i], &b->users[i]))
            return false;
    }
    for (uint32_t i = 0; i < a->n_models; i++) {
        if (!ctl_model_equal(&a->models[i], &b->models[i]))
            return false;
    }
    for (uint32_t i = 0; i < a->n_endpoints; i++) {
        if (!ctl_endpoint_equal(&a->endpoints[i], &b->endpoints[i]))
            return false;
    }
    return true;
}
