/* gw_route_cfg: the --route-config parser (see gw_route_cfg.h). */
#include "gw/gw_route_cfg.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

#define GW_ROUTE_MAX_ENTRIES 64
/* Bytes of base_url, api_key, model at most: they fit the request's buffers. */
#define GW_ROUTE_MAX_FIELD 2048

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
parse_entry(gw_route_policy policy, json_t *o, uint32_t i, gw_route_ep *e, char *why, size_t n)
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
        if (json_string_length(v) > GW_ROUTE_MAX_FIELD)
            return gw_refuse(why, n, "--route-config[%u].base_url: longer than %d bytes", i,
                             GW_ROUTE_MAX_FIELD);
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
        if (json_string_length(v) > GW_ROUTE_MAX_FIELD)
            return gw_refuse(why, n, "--route-config[%u].api_key: longer than %d bytes", i,
                             GW_ROUTE_MAX_FIELD);
        if (json_string_length(v) > 0)
            e->api_key = gw_xstrdup(json_string_value(v));
    }
    v = json_object_get(o, "model");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v))
            return gw_refuse(why, n, "--route-config[%u].model: must be a string", i);
        if (json_string_length(v) > GW_ROUTE_MAX_FIELD)
            return gw_refuse(why, n, "--route-config[%u].model: longer than %d bytes", i,
                             GW_ROUTE_MAX_FIELD);
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
        if (policy != GW_ROUTE_WEIGHT)
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
        if (policy != GW_ROUTE_PREFIX)
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
    } else if (policy == GW_ROUTE_PREFIX && !e->fallback) {
        return gw_refuse(why, n,
                         "--route-config[%u].prefix: required with --route-policy prefix (a "
                         "fallback-only entry may omit it)",
                         i);
    }
    return GW_OK;
}

gw_err
gw_route_cfg_parse(const char *policy, const char *json, gw_route_cfg *out, char *why, size_t n)
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
        out->policy = GW_ROUTE_WEIGHT;
    else if (strcmp(policy, "prefix") == 0)
        out->policy = GW_ROUTE_PREFIX;
    else if (policy[0] == '\0')
        return gw_refuse(why, n, "--route-policy: required with --route-config (weight or prefix)");
    else
        return gw_refuse(why, n, "--route-policy: '%.64s' is not weight or prefix", policy);
    if (json[0] == '\0') {
        out->policy = GW_ROUTE_OFF;
        return gw_refuse(why, n, "--route-config: required with --route-policy %s", policy);
    }
    root = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        out->policy = GW_ROUTE_OFF;
        return gw_refuse(why, n, "--route-config: not JSON (line %d column %d: %.100s)", jerr.line,
                         jerr.column, jerr.text);
    }
    count = json_is_array(root) ? json_array_size(root) : 0;
    if (!json_is_array(root) || count == 0 || count > GW_ROUTE_MAX_ENTRIES) {
        rc = gw_refuse(why, n, "--route-config: must be a JSON array of 1 to %d entries",
                       GW_ROUTE_MAX_ENTRIES);
        goto out;
    }
    out->eps = gw_xcalloc(count, sizeof(*out->eps));
    out->n = (uint32_t)count;
    for (uint32_t i = 0; i < out->n && rc == GW_OK; i++) {
        rc = parse_entry(out->policy, json_array_get(root, i), i, &out->eps[i], why, n);
        out->total_weight += out->eps[i].weight;
        /* dp_traffic_pick draws a 32-bit number: a larger sum would starve
         * the entries past 2^32. */
        if (rc == GW_OK && out->total_weight > (int64_t)UINT32_MAX)
            rc = gw_refuse(why, n,
                           "--route-config[%u].weight: the weights sum above 4294967295 here", i);
    }
    if (rc != GW_OK)
        goto out;
    if (out->policy == GW_ROUTE_WEIGHT && out->total_weight <= 0) {
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
        gw_route_cfg_fini(out);
    return rc;
}

void
gw_route_cfg_fini(gw_route_cfg *t)
{
    for (uint32_t i = 0; i < t->n; i++) {
        gw_route_ep *e = &t->eps[i];
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
