/* ctl_compile: merges source sets into a numbered snapshot (see
 * ctl_compile.h). Compiling is cheap (linear in endpoints plus two sorts),
 * so every debounced change rebuilds the whole snapshot from scratch rather
 * than patching the previous one; the content comparison then decides
 * whether it is worth a generation. Building from scratch is what makes the
 * snapshot immutable: nothing is shared with the previous one, so workers
 * and the REP cache can hold on to an old one freely. */
#include "ctl_compile.h"

#include <stdlib.h>
#include <string.h>

#include "ctl_set.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct ctl_compile {
    uint64_t gen; /* of <cur>, or the seed before the first compile */
    uint64_t epoch;
    pm_snapshot *cur;   /* owned; NULL before the first compile */
    pm_traffic traffic; /* copied into every snapshot */
    pm_mirror mirror;
};

static char *
dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? gw_xstrdup(s) : NULL;
}

/* The route config holds api keys: wiped before it is freed. */
static void
free_secret(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    free(s);
}

void
ctl_compile_set_traffic(ctl_compile *c, const char *policy, const char *json)
{
    free(c->traffic.policy);
    free_secret(c->traffic.config_json);
    c->traffic.policy = dup_or_null(policy);
    c->traffic.config_json = dup_or_null(json);
    if (c->traffic.policy == NULL || c->traffic.config_json == NULL) {
        GW_FREE(c->traffic.policy);
        free_secret(c->traffic.config_json);
        c->traffic.config_json = NULL;
    }
}

void
ctl_compile_set_mirror(ctl_compile *c, const char *text)
{
    free(c->mirror.config_json);
    c->mirror.config_json = text != NULL ? gw_xstrdup(text) : NULL;
}

ctl_compile *
ctl_compile_new(uint64_t gen_seed, uint64_t epoch)
{
    ctl_compile *c = gw_xcalloc(1, sizeof(*c));

    c->gen = gen_seed;
    c->epoch = epoch;
    return c;
}

void
ctl_compile_free(ctl_compile *c)
{
    if (c == NULL)
        return;
    pm_snapshot_free(c->cur);
    ctl_compile_set_traffic(c, NULL, NULL);
    ctl_compile_set_mirror(c, NULL);
    free(c);
}

const pm_snapshot *
ctl_compile_current(const ctl_compile *c)
{
    return c->cur;
}

uint64_t
ctl_compile_gen(const ctl_compile *c)
{
    return c->cur != NULL ? c->gen : 0;
}

uint64_t
ctl_compile_epoch(const ctl_compile *c)
{
    return c->epoch;
}

/* A model reference with the priority of the source it came from, so a
 * stable sort by name puts the winning definition first. */
typedef struct model_ref {
    const pm_model *m;
    int src;
} model_ref;

static int
cmp_model_ref(const void *a, const void *b)
{
    const model_ref *x = a, *y = b;
    int c = strcmp(x->m->name, y->m->name);

    if (c != 0)
        return c;
    return (x->src > y->src) - (x->src < y->src);
}

static int
cmp_model(const void *a, const void *b)
{
    return strcmp(((const pm_model *)a)->name, ((const pm_model *)b)->name);
}

static int
cmp_endpoint_id(const void *a, const void *b)
{
    uint32_t x = ((const pm_endpoint *)a)->id, y = ((const pm_endpoint *)b)->id;

    return (x > y) - (x < y);
}

static bool
has_model(const pm_snapshot *s, const char *name)
{
    /* Models are sorted by name once all are in; binary search. */
    size_t lo = 0, hi = s->n_models;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->models[mid].name, name);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Appends the store's discovered adapters for <ep>'s address (sorted)
 * after the ones its source declared, skipping names already there and the
 * endpoint's own model, up to PM_MAX_ADAPTERS. */
static void
add_discovered(pm_endpoint *ep, const ctl_store *st)
{
    size_t n = 0;
    const char *const *names = ctl_store_adapters(st, ep->ip, ep->port, &n);
    uint32_t have = ep->n_adapters;

    if (n == 0)
        return;
    ep->adapters = gw_xrealloc(ep->adapters, (have + n) * sizeof(*ep->adapters));
    for (size_t i = 0; i < n && ep->n_adapters < PM_MAX_ADAPTERS; i++) {
        bool dup = strcmp(names[i], ep->model) == 0;
        for (uint32_t j = 0; j < have && !dup; j++)
            dup = strcmp(ep->adapters[j], names[i]) == 0;
        if (!dup)
            ep->adapters[ep->n_adapters++] = gw_xstrdup(names[i]);
    }
}

static int
cmp_user(const void *a, const void *b)
{
    return strcmp(((const pm_user *)a)->name, ((const pm_user *)b)->name);
}

/* Whether key digest <h> belongs to one of the first <n> users of <s>. */
static bool
key_taken(const pm_snapshot *s, uint32_t n, const char *h)
{
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t k = 0; k < s->users[i].n_keys; k++) {
            if (strcmp(s->users[i].key_hashes[k], h) == 0)
                return true;
        }
    }
    return false;
}

/* Users are the union of every source's, by name; the earlier source kind
 * wins a name (as for models). A key digest listed for two users would make
 * the key's owner ambiguous: it stays with the first and is dropped from
 * the other, with a log line (quadratic in keys, which number in the
 * hundreds at most and change rarely). */
static void
add_users(pm_snapshot *s, const ctl_store *st)
{
    for (int k = 0; k < CTL_SRC_COUNT; k++) {
        const pm_snapshot *set = ctl_store_set(st, (ctl_src_kind)k);
        for (uint32_t i = 0; set != NULL && i < set->n_users; i++) {
            bool dup = false;
            for (uint32_t j = 0; j < s->n_users && !dup; j++)
                dup = strcmp(s->users[j].name, set->users[i].name) == 0;
            if (!dup && s->n_users < PM_MAX_USERS)
                ctl_user_copy(ctl_set_add_user(s), &set->users[i]);
        }
    }
    if (s->n_users > 1)
        qsort(s->users, s->n_users, sizeof(*s->users), cmp_user);
    for (uint32_t i = 1; i < s->n_users; i++) {
        pm_user *u = &s->users[i];
        uint32_t kept = 0;
        for (uint32_t k = 0; k < u->n_keys; k++) {
            if (key_taken(s, i, u->key_hashes[k])) {
                gw_log_ratelimited(GW_LOG_ERR, 60, "CTL-USER-KEY-SHARED",
                                   "user=%s msg=\"an API key is also another user's; dropped "
                                   "from this user\"",
                                   u->name);
                free(u->key_hashes[k]);
                continue;
            }
            u->key_hashes[kept++] = u->key_hashes[k];
        }
        u->n_keys = kept;
    }
}

gw_err
ctl_compile_run(ctl_compile *c, ctl_store *st, uint64_t wall_ms, bool *changed)
{
    pm_snapshot *s = ctl_set_new();
    model_ref *refs;
    size_t n_refs = 0, total_models = 0, total_eps = 0;
    uint32_t n_base;

    for (int k = 0; k < CTL_SRC_COUNT; k++) {
        const pm_snapshot *set = ctl_store_set(st, (ctl_src_kind)k);
        if (set != NULL) {
            total_models += set->n_models;
            total_eps += set->n_endpoints;
        }
    }
    if (total_eps > PM_MAX_ENDPOINTS) {
        gw_log(GW_LOG_ERR, "CTL-COMPILE-LIMIT", "endpoints=%zu max=%u", total_eps,
               PM_MAX_ENDPOINTS);
        pm_snapshot_free(s);
        return GW_EFULL;
    }

    /* Models: union by name, first source wins. */
    refs = gw_xcalloc(total_models ? total_models : 1, sizeof(*refs));
    for (int k = 0; k < CTL_SRC_COUNT; k++) {
        const pm_snapshot *set = ctl_store_set(st, (ctl_src_kind)k);
        for (uint32_t i = 0; set != NULL && i < set->n_models; i++)
            refs[n_refs++] = (model_ref){.m = &set->models[i], .src = k};
    }
    qsort(refs, n_refs, sizeof(*refs), cmp_model_ref);
    for (size_t i = 0; i < n_refs; i++) {
        if (i > 0 && strcmp(refs[i].m->name, refs[i - 1].m->name) == 0)
            continue;
        ctl_model_copy(ctl_set_add_model(s), refs[i].m);
    }
    free(refs);

    /* Endpoints: union by (model, ip, port), first source wins; ids from the
     * store. Models only endpoints mention are added bare, then re-sorted. */
    n_base = s->n_models;
    ctl_store_ids_begin(st);
    for (int k = 0; k < CTL_SRC_COUNT; k++) {
        const pm_snapshot *set = ctl_store_set(st, (ctl_src_kind)k);
        for (uint32_t i = 0; set != NULL && i < set->n_endpoints; i++) {
            const pm_endpoint *src = &set->endpoints[i];
            bool dup = false;
            uint32_t id = ctl_store_id(st, src->model, src->ip, src->port, &dup);
            if (dup)
                continue;
            pm_endpoint *ep = ctl_set_add_endpoint(s);
            ctl_endpoint_copy(ep, src);
            ep->id = id;
            add_discovered(ep, st);
            if (!has_model(s, src->model)) {
                bool extra = false;
                for (uint32_t j = n_base; j < s->n_models && !extra; j++)
                    extra = strcmp(s->models[j].name, src->model) == 0;
                if (!extra)
                    ctl_set_add_model(s)->name = gw_xstrdup(src->model);
            }
        }
    }
    ctl_store_ids_end(st);
    if (s->n_models != n_base)
        qsort(s->models, s->n_models, sizeof(*s->models), cmp_model);
    if (s->n_models > PM_MAX_MODELS) {
        gw_log(GW_LOG_ERR, "CTL-COMPILE-LIMIT", "models=%u max=%u", s->n_models, PM_MAX_MODELS);
        pm_snapshot_free(s);
        return GW_EFULL;
    }
    if (s->n_endpoints > 1)
        qsort(s->endpoints, s->n_endpoints, sizeof(*s->endpoints), cmp_endpoint_id);

    for (int k = 0; k < CTL_SRC_COUNT; k++) {
        const pm_snapshot *set = ctl_store_set(st, (ctl_src_kind)k);
        if (set != NULL && set->settings.routing_strategy != NULL) {
            s->settings.routing_strategy = gw_xstrdup(set->settings.routing_strategy);
            break;
        }
    }

    add_users(s, st);
    s->traffic.policy = dup_or_null(c->traffic.policy);
    s->traffic.config_json = dup_or_null(c->traffic.config_json);
    s->mirror.config_json = c->mirror.config_json ? gw_xstrdup(c->mirror.config_json) : NULL;

    if (c->cur != NULL && ctl_snapshot_same_content(c->cur, s)) {
        pm_snapshot_free(s);
        *changed = false;
        return GW_OK;
    }
    s->env.v = PM_SCHEMA_MAJOR;
    s->env.kind = PM_KIND_SNAPSHOT;
    s->env.gen = ++c->gen;
    s->env.epoch = c->epoch;
    s->env.sent_ms = wall_ms;
    pm_snapshot_free(c->cur);
    c->cur = s;
    *changed = true;
    return GW_OK;
}
