/* ctl_disc_rec: the registration record (see ctl_disc_rec.h). jansson does
 * the JSON both ways; the checks here are the ones a snapshot needs, so a
 * record that parses always makes a routable endpoint. */
#include "ctl_disc_rec.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_set.h"
#include "ctl_util.h"
#include "gw/gw_mem.h"

static bool
take_str(json_t *obj, const char *name, bool required, char **dst, char **why)
{
    json_t *v = json_object_get(obj, name);
    const char *s;

    if (v == NULL || json_is_null(v)) {
        if (required)
            *why = ctl_strf("field \"%s\" is missing", name);
        return !required;
    }
    s = json_string_value(v);
    if (s == NULL || s[0] == '\0' || json_string_length(v) > PM_MAX_STR ||
        strlen(s) != json_string_length(v)) {
        *why = ctl_strf("field \"%s\" must be a string of 1..%u bytes", name, PM_MAX_STR);
        return false;
    }
    *dst = gw_xstrdup(s);
    return true;
}

static bool
take_port(json_t *obj, const char *name, bool required, uint16_t *dst, char **why)
{
    json_t *v = json_object_get(obj, name);
    json_int_t n;

    if (v == NULL || json_is_null(v)) {
        if (required)
            *why = ctl_strf("field \"%s\" is missing", name);
        return !required;
    }
    n = json_is_integer(v) ? json_integer_value(v) : -1;
    if (n < (required ? 1 : 0) || n > 65535) {
        *why = ctl_strf("field \"%s\" must be an integer port", name);
        return false;
    }
    *dst = (uint16_t)n;
    return true;
}

gw_err
ctl_disc_rec_parse(const char *buf, size_t len, const char *key_id, ctl_disc_rec *out, char **why)
{
    ctl_disc_rec r = {0};
    json_error_t jerr;
    json_t *root, *v;

    if (len > CTL_DISC_REC_MAX_BYTES) {
        *why = ctl_strf("record is over %u bytes", CTL_DISC_REC_MAX_BYTES);
        return GW_EINVAL;
    }
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        *why = root == NULL ? ctl_strf("not JSON: %s", jerr.text)
                            : gw_xstrdup("record is not a JSON object");
        json_decref(root);
        return GW_EINVAL;
    }
    if (!take_str(root, "model", true, &r.model, why) || !take_str(root, "ip", true, &r.ip, why) ||
        !take_port(root, "port", true, &r.port, why) ||
        !take_port(root, "metric_port", false, &r.metric_port, why) ||
        !take_str(root, "id", false, &r.id, why) || !take_str(root, "role", false, &r.role, why) ||
        !take_str(root, "engine", false, &r.engine, why) ||
        !take_str(root, "roleset", false, &r.roleset, why))
        goto fail;
    if (!ctl_host_is_valid(r.ip, strlen(r.ip))) {
        *why = gw_xstrdup("field \"ip\" is not an address or host name");
        goto fail;
    }
    if (r.role != NULL && strcmp(r.role, "both") == 0) {
        GW_FREE(r.role); /* combined: the snapshot's "no role" */
    } else if (r.role != NULL && strcmp(r.role, "prefill") != 0 && strcmp(r.role, "decode") != 0) {
        *why = gw_xstrdup("field \"role\" must be prefill, decode or both");
        goto fail;
    }
    v = json_object_get(root, "timestamp_ms");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        *why = gw_xstrdup("field \"timestamp_ms\" must be a non-negative integer");
        goto fail;
    }
    r.timestamp_ms = (int64_t)json_integer_value(v);
    v = json_object_get(root, "draining");
    if (v != NULL && !json_is_boolean(v)) {
        *why = gw_xstrdup("field \"draining\" must be true or false");
        goto fail;
    }
    r.draining = json_is_true(v);
    if (r.engine == NULL)
        r.engine = gw_xstrdup("vllm");
    if (r.id == NULL) {
        if (key_id == NULL || key_id[0] == '\0' || strlen(key_id) > PM_MAX_STR) {
            *why = gw_xstrdup("record has no \"id\" and its key names none");
            goto fail;
        }
        r.id = gw_xstrdup(key_id);
    }
    json_decref(root);
    *out = r;
    return GW_OK;
fail:
    json_decref(root);
    ctl_disc_rec_fini(&r);
    return GW_EINVAL;
}

char *
ctl_disc_rec_encode(const ctl_disc_rec *rec)
{
    json_t *o = json_object();
    char *s, *out;

    if (rec->id != NULL)
        json_object_set_new(o, "id", json_string(rec->id));
    json_object_set_new(o, "model", json_string(rec->model));
    json_object_set_new(o, "ip", json_string(rec->ip));
    json_object_set_new(o, "port", json_integer(rec->port));
    if (rec->metric_port != 0)
        json_object_set_new(o, "metric_port", json_integer(rec->metric_port));
    json_object_set_new(o, "role", json_string(rec->role != NULL ? rec->role : "both"));
    json_object_set_new(o, "engine", json_string(rec->engine != NULL ? rec->engine : "vllm"));
    if (rec->roleset != NULL)
        json_object_set_new(o, "roleset", json_string(rec->roleset));
    json_object_set_new(o, "draining", json_boolean(rec->draining));
    json_object_set_new(o, "timestamp_ms", json_integer(rec->timestamp_ms));
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    /* json_dumps fails only without memory: copy into gw_mem's contract
     * (abort with a log line), and give the caller a plain heap string. */
    out = gw_xstrdup(s != NULL ? s : "");
    free(s);
    return out;
}

void
ctl_disc_rec_copy(ctl_disc_rec *dst, const ctl_disc_rec *src)
{
    *dst = *src;
    dst->id = ctl_dup_opt(src->id);
    dst->model = ctl_dup_opt(src->model);
    dst->ip = ctl_dup_opt(src->ip);
    dst->role = ctl_dup_opt(src->role);
    dst->engine = ctl_dup_opt(src->engine);
    dst->roleset = ctl_dup_opt(src->roleset);
}

void
ctl_disc_rec_fini(ctl_disc_rec *rec)
{
    if (rec == NULL)
        return;
    free(rec->id);
    free(rec->model);
    free(rec->ip);
    free(rec->role);
    free(rec->engine);
    free(rec->roleset);
    *rec = (ctl_disc_rec){0};
}

static bool
str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool
ctl_disc_rec_same(const ctl_disc_rec *a, const ctl_disc_rec *b)
{
    return str_eq(a->id, b->id) && str_eq(a->model, b->model) && str_eq(a->ip, b->ip) &&
           a->port == b->port && a->metric_port == b->metric_port && str_eq(a->role, b->role) &&
           str_eq(a->engine, b->engine) && str_eq(a->roleset, b->roleset) &&
           a->draining == b->draining;
}

void
ctl_disc_rec_endpoint(const ctl_disc_rec *rec, pm_endpoint *ep)
{
    ep->model = gw_xstrdup(rec->model);
    ep->pod = gw_xstrdup(rec->id);
    ep->ip = gw_xstrdup(rec->ip);
    ep->port = rec->port;
    ep->metric_port = rec->metric_port != 0 ? rec->metric_port : rec->port;
    ep->engine = gw_xstrdup(rec->engine);
    ep->roleset = ctl_dup_opt(rec->roleset);
    ep->role = ctl_dup_opt(rec->role);
    ep->ready = !rec->draining;
    ep->draining = rec->draining;
}
