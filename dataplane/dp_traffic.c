/* dp_traffic: route-config parsing and matching (see dp_traffic.h). */
#include "dp_traffic.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw/gw_mem.h"

#define DP_TRAFFIC_MAX_ENTRIES 64
/* Bytes of base_url, api_key, model at most: they fit the request's buffers. */
#define DP_TRAFFIC_MAX_FIELD 2048

/* "http://host..." or "https://host...", host non-empty, no whitespace. */
static bool
valid_url(const char *s)
{
    const char *host;

    if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else
        return false;
    if (*host == '\0' || *host == '/' || *host == ':')
        return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false;
    return true;
}

static const char *const known_fields[] = {"base_url", "api_key", "model",
                                           "fallback", "weight",  "prefix"};

static gw_err
parse_entry(dp_traffic_policy policy, json_t *o, uint32_t i, dp_traffic_ep *e, char *why, size_t n)
{
    const char *key;
    json_t *v;

    if (!json_is_object(o))
        return gw_refuse(why, n, "--route-config[%u]: must be an object", i);
    json_object_foreach(o, key, v)
    {
        bool known = false;
        for (size_t k = 0; k < sizeof(known_fields) / sizeof(known_fields[0]); k++)
            known |= strcmp(key, known_fields[k]) == 0;
        if (!known)
            return gw_refuse(why, n,
                             "--route-config[%u].%.64s: unknown field (base_url, api_key, model, "
                             "fallback, weight, prefix)",
                             i, key);
    }
    v = json_object_get(o, "base_url");
    if (!json_is_string(v) || json_string_length(v) == 0)
        return gw_refuse(why, n,
                         "--route-config[%u].base_url: required, \"local\" or an http(s) URL", i);
    if (strcmp(json_string_value(v), "local") == 0) {
        e->local = true;
        snprintf(e->label, sizeof(e->label), "local");
    } else {
        if (json_string_length(v) > DP_TRAFFIC_MAX_FIELD)
            return gw_refuse(why, n, "--route-config[%u].base_url: longer than %d bytes", i,
                             DP_TRAFFIC_MAX_FIELD);
        if (!valid_url(json_string_value(v)))
            return gw_refuse(why, n,
                             "--route-config[%u].base_url: \"%.128s\" is neither \"local\" nor an "
                             "http:// or https:// URL",
                             i, json_string_value(v));
        e->base_url = gw_xstrdup(json_string_value(v));
        for (size_t l = strlen(e->base_url); l > 0 && e->base_url[l - 1] == '/'; l--)
            e->base_url[l - 1] = '\0';
        snprintf(e->label, sizeof(e->label), "external-%u", i);
    }
    v = json_object_get(o, "api_key");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v))
            return gw_refuse(why, n, "--route-config[%u].api_key: must be a string", i);
        if (json_string_length(v) > 0 && e->local)
            return gw_refuse(why, n,
                             "--route-config[%u].api_key: only an external base_url takes one (the "
                             "local pool gets the client's Authorization)",
                             i);
        if (strpbrk(json_string_value(v), "\r\n") != NULL)
            return gw_refuse(why, n, "--route-config[%u].api_key: must not hold a line break", i);
        if (json_string_length(v) > DP_TRAFFIC_MAX_FIELD)
            return gw_refuse(why, n, "--route-config[%u].api_key: longer than %d bytes", i,
                             DP_TRAFFIC_MAX_FIELD);
        if (json_string_length(v) > 0)
            e->api_key = gw_xstrdup(json_string_value(v));
    }
    v = json_object_get(o, "model");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v))
            return gw_refuse(why, n, "--route-config[%u].model: must be a string", i);
        if (json_string_length(v) > DP_TRAFFIC_MAX_FIELD)
            return gw_refuse(why, n, "--route-config[%u].model: longer than %d bytes", i,
                             DP_TRAFFIC_MAX_FIELD);
        if (json_string_length(v) > 0 && e->local)
            return gw_refuse(why, n,
                             "--route-config[%u].model: only an external base_url takes one (the "
                             "local pool serves the client's model)",
                             i);
        if (json_string_length(v) > 0)
            e->model = gw_xstrdup(json_string_value(v));
    }
    v = json_object_get(o, "fallback");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_boolean(v))
            return gw_refuse(why, n, "--route-config[%u].fallback: must be true or false", i);
        e->fallback = json_is_true(v);
        if (e->fallback && e->local)
            return gw_refuse(why, n,
                             "--route-config[%u].fallback: the local pool cannot be a fallback "
                             "(only external base_urls are)",
                             i);
    }
    v = json_object_get(o, "weight");
    if (v != NULL && !json_is_null(v)) {
        if (policy != DP_TRAFFIC_WEIGHT)
            return gw_refuse(why, n, "--route-config[%u].weight: only with --route-policy weight",
                             i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000000)
            return gw_refuse(
                why, n, "--route-config[%u].weight: must be an integer from 0 to 1000000000", i);
        e->weight = json_integer_value(v);
    }
    v = json_object_get(o, "prefix");
    if (v != NULL && !json_is_null(v)) {
        const char *p, *star;
        if (policy != DP_TRAFFIC_PREFIX)
            return gw_refuse(why, n, "--route-config[%u].prefix: only with --route-policy prefix",
                             i);
        if (!json_is_string(v) || json_string_length(v) == 0)
            return gw_refuse(why, n, "--route-config[%u].prefix: must be a non-empty string", i);
        p = json_string_value(v);
        star = strchr(p, '*');
        if (star != NULL && star[1] != '\0')
            return gw_refuse(
                why, n, "--route-config[%u].prefix: \"%.128s\": '*' is allowed only at the end", i,
                p);
        e->prefix = gw_xstrdup(p);
        e->wildcard = star != NULL;
        e->stem_len = strlen(p) - (e->wildcard ? 1 : 0);
    } else if (policy == DP_TRAFFIC_PREFIX && !e->fallback) {
        return gw_refuse(why, n,
                         "--route-config[%u].prefix: required with --route-policy prefix (a "
                         "fallback-only entry may omit it)",
                         i);
    }
    return GW_OK;
}

gw_err
dp_traffic_parse(const char *policy, const char *json, dp_traffic *out, char *why, size_t n)
{
    json_error_t jerr;
    json_t *root;
    gw_err rc = GW_OK;
    size_t count;

    memset(out, 0, sizeof(*out));
    why[0] = '\0';
    policy = policy ? policy : "";
    json = json ? json : "";
    if (policy[0] == '\0' && json[0] == '\0')
        return GW_OK;
    if (strcmp(policy, "weight") == 0)
        out->policy = DP_TRAFFIC_WEIGHT;
    else if (strcmp(policy, "prefix") == 0)
        out->policy = DP_TRAFFIC_PREFIX;
    else if (policy[0] == '\0')
        return gw_refuse(why, n, "--route-policy: required with --route-config (weight or prefix)");
    else
        return gw_refuse(why, n, "--route-policy: '%.64s' is not weight or prefix", policy);
    if (json[0] == '\0') {
        out->policy = DP_TRAFFIC_OFF;
        return gw_refuse(why, n, "--route-config: required with --route-policy %s", policy);
    }
    root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        out->policy = DP_TRAFFIC_OFF;
        return gw_refuse(why, n, "--route-config: not JSON (line %d column %d: %.100s)", jerr.line,
                         jerr.column, jerr.text);
    }
    count = json_is_array(root) ? json_array_size(root) : 0;
    if (!json_is_array(root) || count == 0 || count > DP_TRAFFIC_MAX_ENTRIES) {
        rc = gw_refuse(why, n, "--route-config: must be a JSON array of 1 to %d entries",
                       DP_TRAFFIC_MAX_ENTRIES);
        goto out;
    }
    out->eps = gw_xcalloc(count, sizeof(*out->eps));
    out->n = (uint32_t)count;
    for (uint32_t i = 0; i < out->n && rc == GW_OK; i++) {
        rc = parse_entry(out->policy, json_array_get(root, i), i, &out->eps[i], why, n);
        out->total_weight += out->eps[i].weight;
    }
    if (rc != GW_OK)
        goto out;
    if (out->policy == DP_TRAFFIC_WEIGHT && out->total_weight <= 0) {
        rc =
            gw_refuse(why, n, "--route-config: the weights sum to 0 (no entry would take traffic)");
        goto out;
    }
    /* A repeated pattern would never win: almost surely a mistake. */
    for (uint32_t i = 0; i < out->n && rc == GW_OK; i++)
        for (uint32_t j = 0; j < i && rc == GW_OK; j++)
            if (out->eps[i].prefix && out->eps[j].prefix &&
                strcmp(out->eps[i].prefix, out->eps[j].prefix) == 0)
                rc = gw_refuse(why, n,
                               "--route-config[%u].prefix: \"%.128s\" repeats entry %u's pattern",
                               i, out->eps[i].prefix, j);
out:
    json_decref(root);
    if (rc != GW_OK)
        dp_traffic_fini(out);
    return rc;
}

void
dp_traffic_fini(dp_traffic *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        dp_traffic_ep *e = &t->eps[i];
        free(e->base_url);
        if (e->api_key != NULL)
            explicit_bzero(e->api_key, strlen(e->api_key));
        free(e->api_key);
        free(e->model);
        free(e->prefix);
    }
    free(t->eps);
    memset(t, 0, sizeof(*t));
}

int32_t
dp_traffic_pick(const dp_traffic *t, const char *model, uint32_t rnd)
{
    int32_t best = -1;
    size_t best_len = 0;

    if (t->policy == DP_TRAFFIC_WEIGHT) {
        /* Cumulative weights over [0, total): weight 0 is never picked. */
        int64_t r = (int64_t)(rnd % (uint64_t)t->total_weight);
        for (uint32_t i = 0; i < t->n; i++) {
            if (r < t->eps[i].weight)
                return (int32_t)i;
            r -= t->eps[i].weight;
        }
        return -1;
    }
    if (t->policy != DP_TRAFFIC_PREFIX || model == NULL)
        return -1;
    /* An exact pattern wins outright; else the longest matching stem, the
     * earlier entry on a tie. Case-sensitive, as model names are. */
    for (uint32_t i = 0; i < t->n; i++) {
        const dp_traffic_ep *e = &t->eps[i];
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
dp_traffic_next_fallback(const dp_traffic *t, int32_t primary, uint32_t *cursor)
{
    while (*cursor < t->n) {
        uint32_t i = (*cursor)++;
        if (t->eps[i].fallback && (int32_t)i != primary)
            return (int32_t)i;
    }
    return -1;
}

bool
dp_traffic_has_fallback(const dp_traffic *t, int32_t primary, uint32_t cursor)
{
    return dp_traffic_next_fallback(t, primary, &cursor) >= 0;
}

void
dp_traffic_url(const dp_traffic_ep *e, const char *path, char *out, size_t n)
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

static int
dump_to_buf(const char *p, size_t n, void *arg)
{
    return gw_buf_append(arg, p, n) == GW_OK ? 0 : -1;
}

gw_err
dp_traffic_rewrite_model(const char *body, size_t len, const char *model, gw_buf *out)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    gw_err rc = GW_OK;

    gw_buf_reset(out);
    if (!json_is_object(root)) {
        json_decref(root);
        return GW_EINVAL;
    }
    if (json_object_set_new(root, "model", json_string(model)) != 0 ||
        json_dump_callback(root, dump_to_buf, out, JSON_COMPACT) != 0)
        rc = GW_EFULL;
    json_decref(root);
    return rc;
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
