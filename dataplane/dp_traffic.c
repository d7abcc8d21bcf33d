/* dp_traffic: route-config matching (see dp_traffic.h). */
#include "dp_traffic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

int32_t
dp_traffic_pick(const gw_route_cfg *t, const char *model, uint32_t rnd)
{
    int32_t best = -1;
    size_t best_len = 0;

    if (t->policy == GW_ROUTE_WEIGHT) {
        /* Cumulative weights over [0, total): weight 0 is never picked. */
        int64_t r = (int64_t)(rnd % (uint64_t)t->total_weight);
        for (uint32_t i = 0; i < t->n; i++) {
            if (r < t->eps[i].weight)
                return (int32_t)i;
            r -= t->eps[i].weight;
        }
        return -1;
    }
    if (t->policy != GW_ROUTE_PREFIX || model == NULL)
        return -1;
    /* An exact pattern wins outright; else the longest matching stem, the
     * earlier entry on a tie. Case-sensitive, as model names are. */
    for (uint32_t i = 0; i < t->n; i++) {
        const gw_route_ep *e = &t->eps[i];
        if (e->prefix == NULL)
            continue;
        if (!e->wildcard) {
            if (strcmp(model, e->prefix) == 0)
                return (int32_t)i;
            continue;
        }
        if (strncmp(model, e->prefix, e->stem_len) == 0 && (best < 0 || e->stem_len > best_len)) {
            best = (int32_t)i;
            best_len = e->stem_len;
        }
    }
    return best;
}

int32_t
dp_traffic_next_fallback(const gw_route_cfg *t, int32_t primary, uint32_t *cursor)
{
    while (*cursor < t->n) {
        uint32_t i = (*cursor)++;
        if (t->eps[i].fallback && (int32_t)i != primary)
            return (int32_t)i;
    }
    return -1;
}

bool
dp_traffic_has_fallback(const gw_route_cfg *t, int32_t primary, uint32_t cursor)
{
    return dp_traffic_next_fallback(t, primary, &cursor) >= 0;
}

void
dp_traffic_url(const gw_route_ep *e, const char *path, char *out, size_t n)
{
    size_t bl = strlen(e->base_url);
    const char *base_end = e->base_url + bl;
    const char *v = base_end;

    /* Does the base end in "/v<digits>"? */
    while (v > e->base_url && v[-1] >= '0' && v[-1] <= '9')
        v--;
    if (v < base_end && v - e->base_url >= 2 && v[-1] == 'v' && v[-2] == '/' && path[0] == '/' &&
        path[1] == 'v') {
        const char *p = path + 2;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p > path + 2 && (*p == '/' || *p == '\0'))
            path = p;
    }
    snprintf(out, n, "%s%s", e->base_url, path);
}

struct curl_slist *
dp_traffic_set_authorization(struct curl_slist *hdrs, const char *value)
{
    struct curl_slist *out = NULL, *nl;
    char line[8192];

    for (struct curl_slist *h = hdrs; h != NULL; h = h->next) {
        if (strncasecmp(h->data, "authorization:", 14) == 0)
            continue;
        nl = curl_slist_append(out, h->data);
        if (nl != NULL)
            out = nl;
    }
    snprintf(line, sizeof(line), "Authorization: %s", value);
    nl = curl_slist_append(out, line);
    if (nl != NULL)
        out = nl;
    explicit_bzero(line, sizeof(line));
    curl_slist_free_all(hdrs);
    return out;
}

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

dp_traffic_ref *
dp_traffic_from_snapshot(dp_traffic_ref *prev, const pm_traffic *t, gw_metric_fam *invalid)
{
    dp_traffic_ref *r;
    char why[300];

    if (t->policy == NULL)
        return NULL;
    if (prev != NULL && same_str(prev->policy, t->policy) && same_str(prev->json, t->config_json)) {
        prev->refs++;
        return prev;
    }
    r = gw_xcalloc(1, sizeof(*r));
    if (gw_route_cfg_parse(t->policy, t->config_json, &r->cfg, why, sizeof(why)) != GW_OK) {
        /* <why> names the field, never the api_key value. */
        if (invalid != NULL)
            gw_counter_inc(gw_metric_child0(invalid));
        gw_log(GW_LOG_WARN, "DP-TRAFFIC-SNAPSHOT",
               "msg=\"the snapshot's route config does not parse; the last good one stays\" "
               "why=\"%s\"",
               why);
        free(r);
        if (prev != NULL)
            prev->refs++;
        return prev;
    }
    r->refs = 1;
    r->policy = gw_xstrdup(t->policy);
    r->json = gw_xstrdup(t->config_json);
    gw_log(GW_LOG_NOTICE, "DP-TRAFFIC", "source=snapshot policy=%s entries=%u", r->policy,
           r->cfg.n);
    return r;
}

void
dp_traffic_unref(dp_traffic_ref *r)
{
    if (r == NULL || --r->refs > 0)
        return;
    gw_route_cfg_fini(&r->cfg);
    free(r->policy);
    explicit_bzero(r->json, strlen(r->json));
    free(r->json);
    free(r);
}
