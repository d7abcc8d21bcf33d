/* ctl_profile: parses the model.aibrix.ai/config document into pm_model
 * fields (see ctl_profile.h). AIBrix re-parses this JSON on every request; we
 * parse it once per source change and ship the result in the snapshot, so
 * every check a worker would otherwise need (types, sizes, non-empty
 * profiles) happens here, and a config that fails any of them never reaches
 * a worker. Errors stop at the first problem: the message names its JSON
 * path, which is enough to find it in a document this small. */
#include "ctl_profile.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"
#include "gw/gw_mem.h"

/* A JSON path segment for profile <name>: ".name" when it is a plain
 * identifier, else ["name"] (truncated; it is only for messages). */
static char *
path_seg(const char *name)
{
    bool simple = name[0] != '\0';

    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            simple = false;
    }
    if (simple && strlen(name) <= 64)
        return ctl_strf(".%s", name);
    return ctl_strf("[\"%.64s\"]", name);
}

/* Reads optional string <key> of <obj>. Absent, null and "" give NULL. */
static gw_err
opt_str(const json_t *obj, const char *key, const char *path, char **out, char **why)
{
    const json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return GW_OK;
    if (!json_is_string(v)) {
        *why = ctl_strf("%s.%s: must be a string", path, key);
        return GW_EINVAL;
    }
    if (json_string_length(v) > PM_MAX_STR) {
        *why = ctl_strf("%s.%s: longer than %u bytes", path, key, PM_MAX_STR);
        return GW_EINVAL;
    }
    if (json_string_length(v) > 0)
        *out = gw_xstrdup(json_string_value(v));
    return GW_OK;
}

static void
profile_fini(pm_profile *p)
{
    GW_FREE(p->name);
    GW_FREE(p->routing_strategy);
    GW_FREE(p->routing_config_json);
}

static gw_err
parse_profile(const char *name, const json_t *v, pm_profile *p, char **why)
{
    char *path, *seg = path_seg(name);
    const json_t *rps, *rc;
    gw_err rc_err;

    path = ctl_strf("$.profiles%s", seg);
    free(seg);
    if (!json_is_object(v)) {
        *why = ctl_strf("%s: must be an object", path);
        rc_err = GW_EINVAL;
        goto out;
    }
    p->name = gw_xstrdup(name);
    rc_err = opt_str(v, "routingStrategy", path, &p->routing_strategy, why);
    if (rc_err != GW_OK)
        goto out;
    rps = json_object_get(v, "requestsPerSecond");
    if (rps != NULL && !json_is_null(rps)) {
        if (!json_is_integer(rps) || json_integer_value(rps) < 0) {
            *why = ctl_strf("%s.requestsPerSecond: must be a non-negative integer", path);
            rc_err = GW_EINVAL;
            goto out;
        }
        p->requests_per_second = (int64_t)json_integer_value(rps);
    }
    rc = json_object_get(v, "routingConfig");
    if (rc != NULL && !json_is_null(rc)) {
        if (!json_is_object(rc)) {
            *why = ctl_strf("%s.routingConfig: must be an object", path);
            rc_err = GW_EINVAL;
            goto out;
        }
        p->routing_config_json = json_dumps(rc, JSON_COMPACT);
        if (p->routing_config_json == NULL) {
            *why = ctl_strf("%s.routingConfig: cannot be serialised", path);
            rc_err = GW_EINVAL;
            goto out;
        }
        if (strlen(p->routing_config_json) > PM_MAX_JSON) {
            *why = ctl_strf("%s.routingConfig: larger than %u bytes", path, PM_MAX_JSON);
            rc_err = GW_EINVAL;
            goto out;
        }
    }
    rc_err = GW_OK;
out:
    free(path);
    return rc_err;
}

static int
cmp_profile(const void *a, const void *b)
{
    return strcmp(((const pm_profile *)a)->name, ((const pm_profile *)b)->name);
}

gw_err
ctl_profile_from_json(const json_t *root, pm_model *out, char **why)
{
    pm_model m = {0};
    const json_t *profiles;
    const char *key;
    json_t *val;
    gw_err rc;
    size_t n;

    if (!json_is_object(root)) {
        *why = gw_xstrdup("$: must be a JSON object");
        return GW_EINVAL;
    }
    rc = opt_str(root, "lockedRoutingStrategy", "$", &m.locked_strategy, why);
    if (rc == GW_OK)
        rc = opt_str(root, "defaultProfile", "$", &m.default_profile, why);
    if (rc != GW_OK)
        goto fail;
    profiles = json_object_get(root, "profiles");
    if (profiles == NULL || json_is_null(profiles)) {
        *why = gw_xstrdup("$.profiles: required (a non-empty object)");
        goto fail;
    }
    if (!json_is_object(profiles)) {
        *why = gw_xstrdup("$.profiles: must be an object");
        goto fail;
    }
    n = json_object_size(profiles);
    if (n == 0) {
        *why = gw_xstrdup("$.profiles: must not be empty");
        goto fail;
    }
    if (n > PM_MAX_PROFILES) {
        *why = ctl_strf("$.profiles: more than %u profiles", PM_MAX_PROFILES);
        goto fail;
    }
    m.profiles = gw_xcalloc(n, sizeof(*m.profiles));
    /* The const cast is jansson's: its iteration macros take json_t *. */
    json_object_foreach((json_t *)profiles, key, val)
    {
        if (key[0] == '\0') {
            *why = gw_xstrdup("$.profiles: profile names must not be empty");
            goto fail;
        }
        if (strlen(key) > PM_MAX_STR) {
            *why = ctl_strf("$.profiles: a profile name is longer than %u bytes", PM_MAX_STR);
            goto fail;
        }
        /* Count first, so a failure inside frees the partial profile too. */
        m.n_profiles++;
        if (parse_profile(key, val, &m.profiles[m.n_profiles - 1], why) != GW_OK)
            goto fail;
    }
    qsort(m.profiles, m.n_profiles, sizeof(*m.profiles), cmp_profile);
    out->locked_strategy = m.locked_strategy;
    out->default_profile = m.default_profile;
    out->n_profiles = m.n_profiles;
    out->profiles = m.profiles;
    return GW_OK;
fail:
    ctl_profile_clear(&m);
    return GW_EINVAL;
}

gw_err
ctl_profile_parse(const char *text, size_t len, pm_model *out, char **why)
{
    json_error_t jerr;
    json_t *root;
    gw_err rc;

    /* No JSON_REJECT_DUPLICATES: Go's encoding/json keeps the last duplicate
     * key, and so does jansson without the flag. */
    root = json_loadb(text, len, 0, &jerr);
    if (root == NULL) {
        *why = ctl_strf("invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return GW_EINVAL;
    }
    rc = ctl_profile_from_json(root, out, why);
    json_decref(root);
    return rc;
}

void
ctl_profile_clear(pm_model *m)
{
    GW_FREE(m->locked_strategy);
    GW_FREE(m->default_profile);
    for (uint32_t i = 0; i < m->n_profiles; i++)
        profile_fini(&m->profiles[i]);
    GW_FREE(m->profiles);
    m->n_profiles = 0;
}
