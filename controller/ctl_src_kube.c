/* ctl_src_kube: the Kubernetes discovery source (see ctl_src_kube.h).
 *
 * State: the parsed pods (sorted by "ns/name", binary search), each with the
 * annotation text it was last parsed from and the outcome, and per model the
 * last good config. A rebuild walks the pods in key order, so "the first pod
 * with a good annotation" is deterministic across controllers and restarts.
 *
 * The watch handlers only update this state and arm a zero-delay timer; the
 * timer builds the set once, whatever the number of events in between (a
 * LIST of a thousand pods makes one set, not a thousand). */
#include "ctl_src_kube.h"

#include <stdlib.h>
#include <string.h>

#include "ctl_kwatch.h"
#include "ctl_profile.h"
#include "ctl_set.h"
#include "ctl_src_file.h"
#include "ctl_util.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

typedef enum cfg_state {
    CFG_NONE = 0, /* no annotation */
    CFG_GOOD,
    CFG_BAD,
} cfg_state;

typedef struct pod_state {
    char *key; /* "ns/name" */
    ctl_kpod pod;
    char *cfg_text; /* the annotation text last parsed; NULL = none */
    cfg_state cfg;
    pm_model cfg_model; /* config fields when CFG_GOOD (name NULL) */
} pod_state;

typedef struct model_state {
    char *name;
    bool has_good;
    pm_model last_good; /* config fields (name NULL) */
    bool kept_logged;
} model_state;

/* One ConfigMap or Secret being followed. */
typedef struct doc_src {
    const char *kind; /* "configmap" or "secret" */
    char *name;
    char *key;
    bool secret;
    ctl_kwatch *watch;
    char *text;        /* the document last parsed (secret: only kept to detect changes) */
    pm_snapshot *good; /* last good parse; NULL = none yet */
} doc_src;

struct ctl_src_kube {
    gw_loop *loop;
    ctl_kube *kube;
    ctl_store *store;
    ctl_metrics *metrics;
    ctl_kevent *events;
    ctl_kwatch **pod_watches;
    size_t n_pod_watches;
    doc_src cm, sec;
    pod_state **pods; /* sorted by key */
    size_t n_pods, cap_pods;
    model_state *models; /* sorted by name */
    size_t n_models;
    gw_timer *rebuild;
    bool synced_logged;
    void (*on_change)(void *);
    void *on_change_arg;
};

/* ---- pods ---- */

static size_t
pod_pos(const ctl_src_kube *s, const char *key)
{
    size_t lo = 0, hi = s->n_pods;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->pods[mid]->key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void
pod_free(pod_state *p)
{
    if (p == NULL)
        return;
    free(p->key);
    ctl_kpod_fini(&p->pod);
    free(p->cfg_text);
    ctl_profile_clear(&p->cfg_model);
    free(p);
}

static bool
all_synced(const ctl_src_kube *s)
{
    for (size_t i = 0; i < s->n_pod_watches; i++) {
        if (!ctl_kwatch_synced(s->pod_watches[i]))
            return false;
    }
    return (s->cm.watch == NULL || ctl_kwatch_synced(s->cm.watch)) &&
           (s->sec.watch == NULL || ctl_kwatch_synced(s->sec.watch));
}

static void
changed(ctl_src_kube *s)
{
    if (!gw_timer_is_active(s->rebuild))
        gw_timer_start(s->rebuild, 0);
}

/* Parses the pod's annotation if its text changed since the last parse. */
static void
update_config(ctl_src_kube *s, pod_state *ps, const json_t *obj)
{
    const char *text = ps->pod.config;
    char *why = NULL;
    char qk[256], qm[256], qw[1024];

    if ((text == NULL && ps->cfg_text == NULL) ||
        (text != NULL && ps->cfg_text != NULL && strcmp(text, ps->cfg_text) == 0))
        return; /* parsed once per change */
    free(ps->cfg_text);
    ps->cfg_text = ctl_dup_opt(text);
    ctl_profile_clear(&ps->cfg_model);
    if (text == NULL) {
        ps->cfg = CFG_NONE;
        return;
    }
    if (ctl_profile_parse(text, strlen(text), &ps->cfg_model, &why) == GW_OK) {
        ps->cfg = CFG_GOOD;
        gw_log(GW_LOG_INFO, "CTL-KUBE-CONFIG", "pod=%s model=%s profiles=%u",
               gw_log_q(qk, sizeof(qk), ps->key), gw_log_q(qm, sizeof(qm), ps->pod.model),
               ps->cfg_model.n_profiles);
        return;
    }
    ps->cfg = CFG_BAD;
    gw_log(GW_LOG_ERR, "CTL-KUBE-CONFIG-INVALID", "pod=%s model=%s msg=%s",
           gw_log_q(qk, sizeof(qk), ps->key), gw_log_q(qm, sizeof(qm), ps->pod.model),
           gw_log_q(qw, sizeof(qw), why));
    ctl_metrics_config_error(s->metrics, "kubernetes-annotation");
    char *msg = ctl_strf("annotation %s is invalid (the model keeps its last good config): %s",
                         CTL_KOBJ_ANN_CONFIG, why);
    ctl_kevent_emit(s->events, obj, "Warning", "InvalidModelConfig", msg);
    free(msg);
    free(why);
}

static void
on_pod_upsert(void *arg, const json_t *obj, const json_t *old)
{
    ctl_src_kube *s = arg;
    ctl_kpod kp = {0};
    char *why = NULL, *key;
    char q[256], qw[512];
    size_t at;
    pod_state *ps;
    (void)old;

    key = ctl_strf("%s/%s", ctl_kobj_ns(obj) ? ctl_kobj_ns(obj) : "",
                   ctl_kobj_name(obj) ? ctl_kobj_name(obj) : "");
    at = pod_pos(s, key);
    ps = at < s->n_pods && strcmp(s->pods[at]->key, key) == 0 ? s->pods[at] : NULL;
    if (ctl_kpod_parse(obj, &kp, &why) != GW_OK) {
        gw_log_ratelimited(GW_LOG_WARN, 5, "CTL-KUBE-POD-INVALID", "pod=%s msg=%s",
                           gw_log_q(q, sizeof(q), key), gw_log_q(qw, sizeof(qw), why));
        free(why);
        /* An unusable pod is no endpoint: forget what we knew. */
        if (ps != NULL) {
            memmove(&s->pods[at], &s->pods[at + 1], (s->n_pods - at - 1) * sizeof(*s->pods));
            s->n_pods--;
            pod_free(ps);
            changed(s);
        }
        free(key);
        return;
    }
    if (kp.model == NULL) {
        /* Lost its model label (or never had one with an empty selector). */
        ctl_kpod_fini(&kp);
        if (ps != NULL) {
            memmove(&s->pods[at], &s->pods[at + 1], (s->n_pods - at - 1) * sizeof(*s->pods));
            s->n_pods--;
            pod_free(ps);
            changed(s);
        }
        free(key);
        return;
    }
    if (ps == NULL) {
        if (s->n_pods == s->cap_pods) {
            s->cap_pods = s->cap_pods ? s->cap_pods * 2 : 64;
            s->pods = gw_xrealloc(s->pods, s->cap_pods * sizeof(*s->pods));
        }
        ps = gw_xcalloc(1, sizeof(*ps));
        ps->key = key;
        key = NULL;
        memmove(&s->pods[at + 1], &s->pods[at], (s->n_pods - at) * sizeof(*s->pods));
        s->pods[at] = ps;
        s->n_pods++;
    }
    free(key);
    ctl_kpod_fini(&ps->pod);
    ps->pod = kp;
    update_config(s, ps, obj);
    gw_log(GW_LOG_DEBUG, "CTL-KUBE-POD", "pod=%s model=%s ip=%s ready=%d terminating=%d",
           gw_log_q(q, sizeof(q), ps->key), ps->pod.model, ps->pod.ip ? ps->pod.ip : "-",
           (int)ps->pod.ready, (int)ps->pod.terminating);
    changed(s);
}

static void
on_pod_delete(void *arg, const json_t *obj)
{
    ctl_src_kube *s = arg;
    char *key = ctl_strf("%s/%s", ctl_kobj_ns(obj) ? ctl_kobj_ns(obj) : "",
                         ctl_kobj_name(obj) ? ctl_kobj_name(obj) : "");
    size_t at = pod_pos(s, key);

    if (at < s->n_pods && strcmp(s->pods[at]->key, key) == 0) {
        pod_state *ps = s->pods[at];
        memmove(&s->pods[at], &s->pods[at + 1], (s->n_pods - at - 1) * sizeof(*s->pods));
        s->n_pods--;
        pod_free(ps);
        changed(s);
    }
    free(key);
}

static void
on_synced(void *arg)
{
    changed(arg);
}

/* ---- ConfigMap and Secret ---- */

/* Logs a refused document. For a Secret only "where: field" of each problem
 * is kept, never the message, which may quote a value. */
static void
log_doc_problems(const doc_src *d, const char *why)
{
    const char *p = why;
    char q[600];

    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char *line = gw_xstrndup(p, n);
        if (d->secret) {
            /* "<label>:line:col: field: message" -> keep up to the field. */
            char *c = line;
            for (int colons = 0; c != NULL && colons < 4; colons++)
                c = strchr(c + (colons ? 1 : 0), ':');
            if (c != NULL)
                *c = '\0';
        }
        gw_log(GW_LOG_ERR, "CTL-KUBE-DOC-INVALID", "kind=%s msg=%s", d->kind,
               gw_log_q(q, sizeof(q), line));
        free(line);
        p = nl != NULL ? nl + 1 : NULL;
    }
}

static void
doc_keep(ctl_src_kube *s, doc_src *d, const char *what)
{
    gw_log(GW_LOG_WARN, "CTL-KUBE-DOC-KEPT",
           "kind=%s name=%s msg=\"%s; keeping the last good "
           "version\"",
           d->kind, d->name, what);
    (void)s;
}

static void
on_doc_upsert(void *arg, const json_t *obj, doc_src *d, ctl_src_kube *s)
{
    const json_t *data = json_object_get(obj, "data");
    const char *raw = json_string_value(json_object_get(data, d->key));
    char *text = NULL, *why = NULL, *label;
    size_t len = 0;
    pm_snapshot *set = NULL;
    gw_err rc;
    char *msg;
    (void)arg;

    if (raw == NULL) {
        ctl_metrics_config_error(s->metrics,
                                 d->secret ? "kubernetes-secret" : "kubernetes-configmap");
        msg = ctl_strf("data key %s is missing", d->key);
        doc_keep(s, d, msg);
        ctl_kevent_emit(s->events, obj, "Warning", "InvalidConfig", msg);
        free(msg);
        return;
    }
    if (d->secret) {
        if (!ctl_kube_b64decode(raw, strlen(raw), &text, &len)) {
            ctl_metrics_config_error(s->metrics, "kubernetes-secret");
            doc_keep(s, d, "data is not base64");
            return;
        }
    } else {
        text = gw_xstrdup(raw);
        len = strlen(text);
    }
    if (d->text != NULL && strcmp(d->text, text) == 0) {
        free(text); /* same document: nothing to parse */
        return;
    }
    free(d->text);
    d->text = text;
    label = ctl_strf("%s %s/%s[%s]", d->kind, ctl_kobj_ns(obj), d->name, d->key);
    rc = ctl_src_file_parse(text, len, label, &set, &why);
    free(label);
    if (rc != GW_OK) {
        log_doc_problems(d, why);
        ctl_metrics_config_error(s->metrics,
                                 d->secret ? "kubernetes-secret" : "kubernetes-configmap");
        doc_keep(s, d, "invalid document");
        if (d->secret) {
            ctl_kevent_emit(s->events, obj, "Warning", "InvalidConfig",
                            "the document is invalid; see the controller log for where");
        } else {
            msg = ctl_strf("the document is invalid (the last good version stays): %s", why);
            ctl_kevent_emit(s->events, obj, "Warning", "InvalidConfig", msg);
            free(msg);
        }
        free(why);
        return;
    }
    if (!d->secret && set->n_models > 0)
        gw_log(GW_LOG_WARN, "CTL-KUBE-DOC-IGNORED",
               "kind=configmap name=%s msg=\"models: is ignored here; models come from pods\"",
               d->name);
    gw_log(GW_LOG_NOTICE, "CTL-KUBE-DOC-LOAD", "kind=%s name=%s", d->kind, d->name);
    pm_snapshot_free(d->good);
    d->good = set;
    changed(s);
}

static void
on_cm_upsert(void *arg, const json_t *obj, const json_t *old)
{
    ctl_src_kube *s = arg;
    (void)old;
    on_doc_upsert(arg, obj, &s->cm, s);
}

static void
on_sec_upsert(void *arg, const json_t *obj, const json_t *old)
{
    ctl_src_kube *s = arg;
    (void)old;
    on_doc_upsert(arg, obj, &s->sec, s);
}

static void
on_cm_delete(void *arg, const json_t *obj)
{
    ctl_src_kube *s = arg;
    (void)obj;
    ctl_metrics_config_error(s->metrics, "kubernetes-configmap");
    doc_keep(s, &s->cm, "the ConfigMap was deleted");
    GW_FREE(s->cm.text);
}

static void
on_sec_delete(void *arg, const json_t *obj)
{
    ctl_src_kube *s = arg;
    (void)obj;
    ctl_metrics_config_error(s->metrics, "kubernetes-secret");
    doc_keep(s, &s->sec, "the Secret was deleted");
    GW_FREE(s->sec.text);
}

/* ---- the set ---- */

static model_state *
model_find(ctl_src_kube *s, const char *name)
{
    size_t lo = 0, hi = s->n_models;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->models[mid].name, name);
        if (c == 0)
            return &s->models[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int
cmp_model_state(const void *a, const void *b)
{
    return strcmp(((const model_state *)a)->name, ((const model_state *)b)->name);
}

static int
cmp_model(const void *a, const void *b)
{
    return strcmp(((const pm_model *)a)->name, ((const pm_model *)b)->name);
}

/* Copies the config fields of <src> into model <dst> (named already). */
static void
copy_config(pm_model *dst, const pm_model *src)
{
    pm_model tmp = {0};

    ctl_model_copy(&tmp, src);
    free(tmp.name);
    tmp.name = dst->name;
    *dst = tmp;
}

static void
rebuild(ctl_src_kube *s)
{
    pm_snapshot *set = ctl_set_new();
    model_state *ms_new = NULL;
    size_t n_ms = 0;
    char q[256];

    /* Models: one per distinct model name, config from the first pod with a
     * good annotation. */
    for (size_t i = 0; i < s->n_pods; i++) {
        const pod_state *ps = s->pods[i];
        pm_model *m = NULL;

        for (uint32_t j = 0; j < set->n_models; j++) {
            if (strcmp(set->models[j].name, ps->pod.model) == 0)
                m = &set->models[j];
        }
        if (m == NULL) {
            if (set->n_models >= PM_MAX_MODELS)
                continue;
            m = ctl_set_add_model(set);
            m->name = gw_xstrdup(ps->pod.model);
            ms_new = gw_xrealloc(ms_new, (n_ms + 1) * sizeof(*ms_new));
            ms_new[n_ms++] = (model_state){.name = gw_xstrdup(ps->pod.model)};
        }
        if (ps->cfg == CFG_GOOD && m->n_profiles == 0)
            copy_config(m, &ps->cfg_model);
        if (ctl_kpod_is_endpoint(&ps->pod) && set->n_endpoints < PM_MAX_ENDPOINTS)
            ctl_kpod_endpoint(&ps->pod, ctl_set_add_endpoint(set));
    }
    /* Last good configs: a model without a good annotation but with a bad
     * one keeps the previous config. */
    for (size_t j = 0; j < set->n_models; j++) {
        pm_model *m = &set->models[j];
        model_state *old = model_find(s, m->name), *now = NULL;
        bool any_bad = false;

        for (size_t k = 0; k < n_ms; k++) {
            if (strcmp(ms_new[k].name, m->name) == 0)
                now = &ms_new[k];
        }
        for (size_t i = 0; i < s->n_pods; i++)
            any_bad |= s->pods[i]->cfg == CFG_BAD && strcmp(s->pods[i]->pod.model, m->name) == 0;
        if (m->n_profiles > 0) {
            now->has_good = true;
            ctl_model_copy(&now->last_good, m);
            GW_FREE(now->last_good.name);
        } else if (any_bad && old != NULL && old->has_good) {
            copy_config(m, &old->last_good);
            now->has_good = true;
            ctl_model_copy(&now->last_good, &old->last_good);
            now->kept_logged = old->kept_logged;
            if (!now->kept_logged)
                gw_log(GW_LOG_WARN, "CTL-KUBE-CONFIG-KEPT",
                       "model=%s msg=\"no pod has a valid config annotation; keeping the last "
                       "good config\"",
                       gw_log_q(q, sizeof(q), m->name));
            now->kept_logged = true;
        }
    }
    for (size_t i = 0; i < s->n_models; i++) {
        free(s->models[i].name);
        ctl_model_fini(&s->models[i].last_good);
    }
    free(s->models);
    if (n_ms > 1)
        qsort(ms_new, n_ms, sizeof(*ms_new), cmp_model_state);
    s->models = ms_new;
    s->n_models = n_ms;
    if (set->n_models > 1)
        qsort(set->models, set->n_models, sizeof(*set->models), cmp_model);
    if (s->cm.good != NULL && s->cm.good->settings.routing_strategy != NULL)
        set->settings.routing_strategy = gw_xstrdup(s->cm.good->settings.routing_strategy);
    /* Users and API key digests come from the Secret only: keys are secrets,
     * whatever a ConfigMap might say. */
    for (uint32_t i = 0; s->sec.good != NULL && i < s->sec.good->n_users; i++)
        ctl_user_copy(ctl_set_add_user(set), &s->sec.good->users[i]);
    gw_log(GW_LOG_INFO, "CTL-KUBE-SET", "models=%u endpoints=%u", set->n_models, set->n_endpoints);
    ctl_store_replace(s->store, CTL_SRC_KUBERNETES, set);
    if (s->on_change != NULL)
        s->on_change(s->on_change_arg);
}

static void
on_rebuild(gw_loop *loop, void *arg)
{
    ctl_src_kube *s = arg;
    (void)loop;

    if (!all_synced(s))
        return; /* the last first-LIST re-arms us */
    if (!s->synced_logged) {
        gw_log(GW_LOG_NOTICE, "CTL-KUBE-SYNCED", "pods=%zu", s->n_pods);
        s->synced_logged = true;
    }
    rebuild(s);
}

/* ---- lifecycle ---- */

static gw_err
start_doc(ctl_src_kube *s, doc_src *d, const char *kind, bool secret, const char *ns,
          const char *name, const char *key, const ctl_kwatch_opts *base,
          const ctl_kwatch_handlers *h)
{
    ctl_kwatch_opts o = *base;
    char *path, *fsel;
    gw_err rc;

    d->kind = kind;
    d->secret = secret;
    d->name = gw_xstrdup(name);
    d->key = gw_xstrdup(key);
    path = ctl_strf("/api/v1/namespaces/%s/%s", ns, secret ? "secrets" : "configmaps");
    fsel = ctl_strf("metadata.name=%s", name);
    o.resource = secret ? "secrets" : "configmaps";
    o.path = path;
    o.label_selector = NULL;
    o.field_selector = fsel;
    rc = ctl_kwatch_start(s->loop, s->kube, s->metrics, &o, h, s, &d->watch);
    free(path);
    free(fsel);
    return rc;
}

gw_err
ctl_src_kube_start(gw_loop *loop, ctl_kube *kube, ctl_store *store, ctl_metrics *metrics,
                   ctl_kevent *events, const ctl_src_kube_opts *o, ctl_src_kube **out)
{
    ctl_src_kube *s = gw_xcalloc(1, sizeof(*s));
    static const ctl_kwatch_handlers pod_h = {on_pod_upsert, on_pod_delete, on_synced};
    static const ctl_kwatch_handlers cm_h = {on_cm_upsert, on_cm_delete, on_synced};
    static const ctl_kwatch_handlers sec_h = {on_sec_upsert, on_sec_delete, on_synced};
    ctl_kwatch_opts base = {
        .resource = "pods",
        .label_selector = o->pod_selector,
        .watch_timeout_ms = o->watch_timeout_ms,
        .backoff_initial_ms = o->backoff_initial_ms,
        .backoff_max_ms = o->backoff_max_ms,
    };
    gw_err rc = GW_OK;

    s->loop = loop;
    s->kube = kube;
    s->store = store;
    s->metrics = metrics;
    s->events = events;
    s->rebuild = gw_timer_new(loop, on_rebuild, s);
    if (o->namespaces == NULL || o->namespaces[0] == '\0') {
        s->pod_watches = gw_xcalloc(1, sizeof(*s->pod_watches));
        base.path = "/api/v1/pods";
        rc = ctl_kwatch_start(loop, kube, metrics, &base, &pod_h, s, &s->pod_watches[0]);
        if (rc == GW_OK)
            s->n_pod_watches = 1;
    } else {
        char *list = gw_xstrdup(o->namespaces), *save = NULL;
        for (char *ns = strtok_r(list, ",", &save); ns != NULL && rc == GW_OK;
             ns = strtok_r(NULL, ",", &save)) {
            while (*ns == ' ')
                ns++;
            if (*ns == '\0')
                continue;
            char *path = ctl_strf("/api/v1/namespaces/%s/pods", ns);
            s->pod_watches =
                gw_xrealloc(s->pod_watches, (s->n_pod_watches + 1) * sizeof(*s->pod_watches));
            base.path = path;
            rc = ctl_kwatch_start(loop, kube, metrics, &base, &pod_h, s,
                                  &s->pod_watches[s->n_pod_watches]);
            if (rc == GW_OK)
                s->n_pod_watches++;
            free(path);
        }
        free(list);
    }
    if (rc == GW_OK && o->configmap != NULL && o->configmap[0] != '\0')
        rc = start_doc(s, &s->cm, "configmap", false, o->config_ns, o->configmap, o->configmap_key,
                       &base, &cm_h);
    if (rc == GW_OK && o->secret != NULL && o->secret[0] != '\0')
        rc = start_doc(s, &s->sec, "secret", true, o->config_ns, o->secret, o->secret_key, &base,
                       &sec_h);
    if (rc != GW_OK) {
        ctl_src_kube_free(s);
        return rc;
    }
    gw_log(GW_LOG_NOTICE, "CTL-KUBE-SOURCE", "namespaces=%s selector=%s configmap=%s secret=%s",
           o->namespaces != NULL && o->namespaces[0] ? o->namespaces : "(all)",
           o->pod_selector != NULL && o->pod_selector[0] ? o->pod_selector : "(none)",
           s->cm.name != NULL ? s->cm.name : "-", s->sec.name != NULL ? s->sec.name : "-");
    *out = s;
    return GW_OK;
}

static void
doc_fini(doc_src *d)
{
    ctl_kwatch_free(d->watch);
    free(d->name);
    free(d->key);
    free(d->text);
    pm_snapshot_free(d->good);
}

void
ctl_src_kube_free(ctl_src_kube *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_pod_watches; i++)
        ctl_kwatch_free(s->pod_watches[i]);
    free(s->pod_watches);
    doc_fini(&s->cm);
    doc_fini(&s->sec);
    gw_timer_free(s->rebuild);
    for (size_t i = 0; i < s->n_pods; i++)
        pod_free(s->pods[i]);
    free(s->pods);
    for (size_t i = 0; i < s->n_models; i++) {
        free(s->models[i].name);
        ctl_model_fini(&s->models[i].last_good);
    }
    free(s->models);
    free(s);
}

bool
ctl_src_kube_synced(const ctl_src_kube *s)
{
    return all_synced(s);
}

void
ctl_src_kube_foreach_pod(const ctl_src_kube *s, ctl_src_kube_pod_fn fn, void *arg)
{
    for (size_t i = 0; i < s->n_pods; i++)
        fn(&s->pods[i]->pod, arg);
}

void
ctl_src_kube_on_change(ctl_src_kube *s, void (*fn)(void *arg), void *arg)
{
    s->on_change = fn;
    s->on_change_arg = arg;
}
