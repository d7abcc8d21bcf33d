/* ctl_disc_table: key -> record with deadlines (see ctl_disc_table.h). The
 * entries live in one array sorted by key: sets come out in key order (a
 * stable snapshot whatever order SCAN returned), and a lookup is a binary
 * search. Fleets are thousands of engines at most. */
#include "ctl_disc_table.h"

#include <stdlib.h>
#include <string.h>

#include "ctl_disc_rec.h"
#include "ctl_set.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

typedef struct entry {
    char *key;
    ctl_disc_rec rec;
    uint64_t deadline_ms;
    bool present; /* listed by the store (else retained) */
    bool seen;    /* put since ctl_disc_table_begin */
} entry;

struct ctl_disc_table {
    char *source;
    char *prefix;
    uint64_t ttl_ms;
    bool age_check;
    entry *v;
    size_t n, cap;
};

ctl_disc_table *
ctl_disc_table_new(const char *source, const char *prefix, uint64_t ttl_ms, bool age_check)
{
    ctl_disc_table *t = gw_xcalloc(1, sizeof(*t));

    t->source = gw_xstrdup(source);
    t->prefix = gw_xstrdup(prefix);
    t->ttl_ms = ttl_ms;
    t->age_check = age_check;
    return t;
}

static void
entry_fini(entry *e)
{
    free(e->key);
    ctl_disc_rec_fini(&e->rec);
}

void
ctl_disc_table_free(ctl_disc_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        entry_fini(&t->v[i]);
    free(t->v);
    free(t->source);
    free(t->prefix);
    free(t);
}

/* Index of <key>, or where it would go (*found false). */
static size_t
find(const ctl_disc_table *t, const char *key, bool *found)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void
remove_at(ctl_disc_table *t, size_t i)
{
    gw_log(GW_LOG_NOTICE, "CTL-DISCOVERY-REMOVE", "source=%s key=%s present=%d", t->source,
           t->v[i].key, (int)t->v[i].present);
    entry_fini(&t->v[i]);
    memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
    t->n--;
}

void
ctl_disc_table_begin(ctl_disc_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        t->v[i].seen = false;
}

bool
ctl_disc_table_end(ctl_disc_table *t, uint64_t now_ms)
{
    bool changed = false;

    for (size_t i = t->n; i-- > 0;) {
        entry *e = &t->v[i];
        if (e->seen)
            continue;
        if (e->rec.draining || e->deadline_ms <= now_ms) {
            remove_at(t, i);
            changed = true;
        } else if (e->present) {
            e->present = false;
            gw_log(GW_LOG_NOTICE, "CTL-DISCOVERY-RETAIN",
                   "source=%s key=%s for_ms=%llu msg=\"gone from the store; kept until its "
                   "registration expires\"",
                   t->source, e->key, (unsigned long long)(e->deadline_ms - now_ms));
        }
    }
    return changed;
}

bool
ctl_disc_table_put(ctl_disc_table *t, const char *key, const char *val, size_t len, uint64_t now_ms)
{
    size_t plen = strlen(t->prefix);
    const char *id = strncmp(key, t->prefix, plen) == 0 ? key + plen : key;
    ctl_disc_rec rec;
    char *why = NULL;
    char q[256], qk[256];
    uint64_t ts, deadline;
    bool found, changed;
    size_t i;
    entry *e;

    if (ctl_disc_rec_parse(val, len, id, &rec, &why) != GW_OK) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-DISCOVERY-BAD-RECORD", "source=%s key=%s msg=%s",
                           t->source, gw_log_q(qk, sizeof(qk), key), gw_log_q(q, sizeof(q), why));
        free(why);
        return false;
    }
    ts = (uint64_t)rec.timestamp_ms < now_ms ? (uint64_t)rec.timestamp_ms : now_ms;
    deadline = ts + t->ttl_ms;
    i = find(t, key, &found);
    if (t->age_check && deadline <= now_ms) {
        /* Expired: as if the key were not there (ctl_disc_table_end or
         * _expire decide what happens to an entry it replaces). */
        ctl_disc_rec_fini(&rec);
        return false;
    }
    if (!found) {
        if (t->n == t->cap) {
            t->cap = t->cap != 0 ? t->cap * 2 : 16;
            t->v = gw_xrealloc(t->v, t->cap * sizeof(*t->v));
        }
        memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
        t->n++;
        t->v[i] = (entry){.key = gw_xstrdup(key), .rec = rec, .deadline_ms = deadline};
        gw_log(GW_LOG_NOTICE, "CTL-DISCOVERY-ADD", "source=%s key=%s model=%s addr=%s:%u",
               t->source, key, rec.model, rec.ip, (unsigned)rec.port);
        changed = true;
    } else {
        e = &t->v[i];
        changed = !ctl_disc_rec_same(&e->rec, &rec);
        ctl_disc_rec_fini(&e->rec);
        e->rec = rec;
        if (deadline > e->deadline_ms || changed)
            e->deadline_ms = deadline;
        changed |= !e->present;
    }
    t->v[i].present = true;
    t->v[i].seen = true;
    return changed;
}

bool
ctl_disc_table_delete(ctl_disc_table *t, const char *key)
{
    bool found;
    size_t i = find(t, key, &found);

    if (found)
        remove_at(t, i);
    return found;
}

bool
ctl_disc_table_expire(ctl_disc_table *t, uint64_t now_ms)
{
    bool changed = false;

    for (size_t i = t->n; i-- > 0;) {
        entry *e = &t->v[i];
        if ((!e->present || t->age_check) && e->deadline_ms <= now_ms) {
            remove_at(t, i);
            changed = true;
        }
    }
    return changed;
}

void
ctl_disc_table_grace(ctl_disc_table *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->v[i].deadline_ms < now_ms + t->ttl_ms)
            t->v[i].deadline_ms = now_ms + t->ttl_ms;
    }
}

pm_snapshot *
ctl_disc_table_set(const ctl_disc_table *t)
{
    pm_snapshot *set = ctl_set_new();

    for (size_t i = 0; i < t->n; i++) {
        const ctl_disc_rec *r = &t->v[i].rec;
        bool known = false, dup = false;

        for (uint32_t j = 0; j < set->n_models && !known; j++)
            known = strcmp(set->models[j].name, r->model) == 0;
        for (uint32_t j = 0; j < set->n_endpoints && !dup; j++) {
            const pm_endpoint *ep = &set->endpoints[j];
            dup = ep->port == r->port && strcmp(ep->ip, r->ip) == 0 &&
                  strcmp(ep->model, r->model) == 0;
        }
        if (dup || set->n_endpoints >= PM_MAX_ENDPOINTS ||
            (!known && set->n_models >= PM_MAX_MODELS))
            continue;
        if (!known)
            ctl_set_add_model(set)->name = gw_xstrdup(r->model);
        ctl_disc_rec_endpoint(r, ctl_set_add_endpoint(set));
    }
    return set;
}

size_t
ctl_disc_table_count(const ctl_disc_table *t)
{
    return t->n;
}

size_t
ctl_disc_table_retained(const ctl_disc_table *t)
{
    size_t n = 0;

    for (size_t i = 0; i < t->n; i++)
        n += !t->v[i].present;
    return n;
}
