/* ctl_kobj: Kubernetes object readers (see ctl_kobj.h). Everything that
 * comes from the API server is treated as outside input: types are checked
 * before use and sizes against the wire limits, so a strange object is
 * refused with a message rather than put in a snapshot the encoder would
 * reject. */
#include "ctl_kobj.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"
#include "gw/gw_mem.h"

const char *
ctl_kobj_str(const json_t *obj, ...)
{
    va_list ap;
    const char *k;
    const json_t *cur = obj;

    va_start(ap, obj);
    while ((k = va_arg(ap, const char *)) != NULL)
        cur = json_object_get(cur, k);
    va_end(ap);
    return json_string_value(cur);
}

const char *
ctl_kobj_ns(const json_t *obj)
{
    return ctl_kobj_str(obj, "metadata", "namespace", NULL);
}

const char *
ctl_kobj_name(const json_t *obj)
{
    return ctl_kobj_str(obj, "metadata", "name", NULL);
}

const char *
ctl_kobj_label(const json_t *obj, const char *key)
{
    return ctl_kobj_str(obj, "metadata", "labels", key, NULL);
}

void
ctl_kpod_fini(ctl_kpod *p)
{
    free(p->ns);
    free(p->name);
    free(p->uid);
    free(p->rv);
    free(p->model);
    free(p->ip);
    free(p->engine);
    free(p->roleset);
    free(p->role);
    free(p->config);
    free(p->service);
    for (uint32_t i = 0; i < p->n_labels; i++)
        free(p->labels[i]);
    free(p->labels);
    memset(p, 0, sizeof(*p));
}

/* Copies an optional string, refusing over-long ones. */
static bool
take_str(const char *s, const char *field, char **out, char **why)
{
    if (s == NULL)
        return true;
    if (strlen(s) > PM_MAX_STR) {
        *why = ctl_strf("%s: longer than %u bytes", field, PM_MAX_STR);
        return false;
    }
    *out = gw_xstrdup(s);
    return true;
}

static bool
parse_port(const char *s, const char *field, uint16_t *out, char **why)
{
    unsigned v = 0;
    size_t n = s != NULL ? strlen(s) : 0;

    if (s == NULL)
        return true;
    for (size_t i = 0; i < n && v <= 65535; i++) {
        if (s[i] < '0' || s[i] > '9') {
            v = 0;
            break;
        }
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (n == 0 || n > 5 || v < 1 || v > 65535) {
        *why = ctl_strf("label %s: \"%.32s\" is not a port number in 1..65535", field, s);
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

/* status.conditions[type=<type>].status == "True". */
static bool
condition_true(const json_t *pod, const char *type)
{
    const json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions");
    size_t i;
    const json_t *c;

    json_array_foreach(conds, i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t != NULL && strcmp(t, type) == 0) {
            const char *st = json_string_value(json_object_get(c, "status"));
            return st != NULL && strcmp(st, "True") == 0;
        }
    }
    return false;
}

static int
cmp_label(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

gw_err
ctl_kpod_parse(const json_t *pod, ctl_kpod *out, char **why)
{
    const json_t *md = json_object_get(pod, "metadata");
    const json_t *labels = json_object_get(md, "labels");
    const json_t *ann = json_object_get(md, "annotations");
    ctl_kpod p = {0};
    const char *key;
    json_t *v;

    if (!json_is_object(pod) || !json_is_object(md)) {
        *why = gw_xstrdup("not an object with metadata");
        return GW_EINVAL;
    }
    if (ctl_kobj_name(pod) == NULL || ctl_kobj_ns(pod) == NULL || ctl_kobj_name(pod)[0] == '\0' ||
        ctl_kobj_ns(pod)[0] == '\0') {
        *why = gw_xstrdup("metadata.name and metadata.namespace are required");
        return GW_EINVAL;
    }
    if ((labels != NULL && !json_is_object(labels)) || (ann != NULL && !json_is_object(ann))) {
        *why = gw_xstrdup("metadata.labels and metadata.annotations must be objects");
        return GW_EINVAL;
    }
    json_object_foreach((json_t *)labels, key, v)
    {
        if (!json_is_string(v)) {
            *why = ctl_strf("metadata.labels[%.64s]: not a string", key);
            return GW_EINVAL;
        }
    }
    if (!take_str(ctl_kobj_ns(pod), "metadata.namespace", &p.ns, why) ||
        !take_str(ctl_kobj_name(pod), "metadata.name", &p.name, why) ||
        !take_str(ctl_kobj_str(md, "uid", NULL), "metadata.uid", &p.uid, why) ||
        !take_str(ctl_kobj_str(md, "resourceVersion", NULL), "metadata.resourceVersion", &p.rv,
                  why))
        goto fail;
    const char *model = json_string_value(json_object_get(labels, CTL_KOBJ_LABEL_MODEL));
    if (model == NULL || model[0] == '\0')
        model = json_string_value(json_object_get(ann, CTL_KOBJ_LABEL_MODEL));
    if (model != NULL && model[0] != '\0' &&
        !take_str(model, "label " CTL_KOBJ_LABEL_MODEL, &p.model, why))
        goto fail;
    p.port = CTL_KOBJ_DEFAULT_PORT;
    if (!parse_port(json_string_value(json_object_get(labels, CTL_KOBJ_LABEL_PORT)),
                    CTL_KOBJ_LABEL_PORT, &p.port, why))
        goto fail;
    p.metric_port = p.port;
    if (!parse_port(json_string_value(json_object_get(labels, CTL_KOBJ_LABEL_MPORT)),
                    CTL_KOBJ_LABEL_MPORT, &p.metric_port, why))
        goto fail;
    const char *engine = json_string_value(json_object_get(labels, CTL_KOBJ_LABEL_ENGINE));
    if (!take_str(engine != NULL && engine[0] != '\0' ? engine : CTL_KOBJ_DEFAULT_ENGINE,
                  "label " CTL_KOBJ_LABEL_ENGINE, &p.engine, why))
        goto fail;
    const char *rs = json_string_value(json_object_get(labels, CTL_KOBJ_LABEL_ROLESET));
    const char *role = json_string_value(json_object_get(labels, CTL_KOBJ_LABEL_ROLE));
    if ((rs != NULL && rs[0] != '\0' && !take_str(rs, "label roleset-name", &p.roleset, why)) ||
        (role != NULL && role[0] != '\0' && !take_str(role, "label role-name", &p.role, why)))
        goto fail;
    const char *ip = ctl_kobj_str(pod, "status", "podIP", NULL);
    if (ip != NULL && ip[0] != '\0') {
        if (!ctl_host_is_valid(ip, strlen(ip))) {
            *why = gw_xstrdup("status.podIP is not an address");
            goto fail;
        }
        p.ip = gw_xstrdup(ip);
    }
    p.ready = condition_true(pod, "Ready");
    p.terminating = json_object_get(md, "deletionTimestamp") != NULL &&
                    !json_is_null(json_object_get(md, "deletionTimestamp"));
    const char *nt = json_string_value(json_object_get(labels, "ray.io/node-type"));
    const char *pgi = json_string_value(
        json_object_get(labels, "stormservice.orchestration.aibrix.ai/pod-group-index"));
    p.skipped = (nt != NULL && strcmp(nt, "worker") == 0) ||
                (pgi != NULL && pgi[0] != '\0' && strcmp(pgi, "0") != 0);
    const char *svc = json_string_value(json_object_get(labels, CTL_KOBJ_SERVICE_NAME));
    if (svc == NULL || svc[0] == '\0')
        svc = json_string_value(json_object_get(ann, CTL_KOBJ_SERVICE_NAME));
    if (svc != NULL && svc[0] != '\0' && !take_str(svc, CTL_KOBJ_SERVICE_NAME, &p.service, why))
        goto fail;
    const char *cfg = json_string_value(json_object_get(ann, CTL_KOBJ_ANN_CONFIG));
    if (cfg != NULL && cfg[0] != '\0')
        p.config = gw_xstrdup(cfg); /* the profile parser checks its size */
    if (labels != NULL && json_object_size(labels) > 0) {
        size_t n = json_object_size(labels);
        p.labels = gw_xcalloc(n, sizeof(*p.labels));
        json_object_foreach((json_t *)labels, key, v)
        {
            const char *val = json_string_value(v);
            if (p.n_labels >= PM_MAX_LABELS || strlen(key) + strlen(val) + 1 > PM_MAX_STR ||
                key[0] == '\0')
                continue;
            p.labels[p.n_labels++] = ctl_strf("%s=%s", key, val);
        }
        qsort(p.labels, p.n_labels, sizeof(*p.labels), cmp_label);
    }
    *out = p;
    return GW_OK;
fail:
    ctl_kpod_fini(&p);
    return GW_EINVAL;
}

bool
ctl_kpod_is_endpoint(const ctl_kpod *p)
{
    return p->model != NULL && p->ip != NULL && !p->skipped;
}

void
ctl_kpod_endpoint(const ctl_kpod *p, pm_endpoint *ep)
{
    ep->model = gw_xstrdup(p->model);
    ep->pod = gw_xstrdup(p->name);
    ep->ns = gw_xstrdup(p->ns);
    ep->ip = gw_xstrdup(p->ip);
    ep->port = p->port;
    ep->metric_port = p->metric_port;
    ep->engine = gw_xstrdup(p->engine);
    ep->roleset = p->roleset != NULL ? gw_xstrdup(p->roleset) : NULL;
    ep->role = p->role != NULL ? gw_xstrdup(p->role) : NULL;
    ep->ready = p->ready && !p->terminating;
    ep->draining = p->terminating;
    if (p->n_labels > 0) {
        ep->labels = gw_xcalloc(p->n_labels, sizeof(*ep->labels));
        for (uint32_t i = 0; i < p->n_labels; i++)
            ep->labels[i] = gw_xstrdup(p->labels[i]);
        ep->n_labels = p->n_labels;
    }
}

bool
ctl_kobj_selects(const json_t *selector, char *const *labels, uint32_t n_labels)
{
    const char *key;
    json_t *v;

    if (!json_is_object(selector) || json_object_size(selector) == 0)
        return false;
    json_object_foreach((json_t *)selector, key, v)
    {
        const char *val = json_string_value(v);
        size_t kl = strlen(key);
        bool found = false;
        if (val == NULL)
            return false;
        for (uint32_t i = 0; i < n_labels && !found; i++)
            found = strncmp(labels[i], key, kl) == 0 && labels[i][kl] == '=' &&
                    strcmp(labels[i] + kl + 1, val) == 0;
        if (!found)
            return false;
    }
    return true;
}
