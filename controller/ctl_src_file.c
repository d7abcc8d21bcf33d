/* ctl_src_file: the YAML file discovery source (see ctl_src_file.h for the
 * behaviour and controller/README.md for the schema).
 *
 * Parsing has two layers: ctl_yaml turns bytes into a node tree with line
 * numbers (and refuses aliases, duplicate keys, deep nesting), then the
 * schema walk below turns the tree into a source set, collecting every
 * problem with its position and field path instead of stopping at the first,
 * so an operator fixes a file in one round. Nothing from a file with any
 * problem reaches the store: the walk builds the whole set privately and
 * frees it on error, which is what keeps the last good version in force.
 *
 * The runtime layer is a poll timer comparing stat(2) signatures. Polling
 * (not inotify) because ConfigMap volumes swap a symlink two levels up from
 * the file, which inotify on the file itself does not report, and a 250 ms
 * stat is negligible. */
#include "ctl_src_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_profile.h"
#include "ctl_set.h"
#include "ctl_util.h"
#include "ctl_yaml.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_digest.h"

/* AIBrix's default serving port (model.aibrix.ai/port) and engine. */
#define DEFAULT_PORT   8000
#define DEFAULT_ENGINE "vllm"

typedef struct fparse {
    const char *path;
    ctl_errs errs;
    pm_snapshot *set; /* being built; freed whole if errs is not empty */
} fparse;

static void err_at(fparse *fp, const ctl_ynode *n, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "path:line:col: field: message" for node <n>. */
static void
err_at(fparse *fp, const ctl_ynode *n, const char *field, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = ctl_vstrf(fmt, ap);
    va_end(ap);
    ctl_errs_add(&fp->errs, "%s:%u:%u: %s: %s", fp->path, n->line, n->col, field, msg);
    free(msg);
}

/* Reports keys of mapping <map> not in the NULL-terminated <allowed>. */
static void
check_keys(fparse *fp, const ctl_ynode *map, const char *field, const char *const *allowed,
           const char *expected)
{
    for (size_t i = 0; i < map->n; i++) {
        const ctl_ynode *k = map->items[2 * i];
        bool known = false;
        for (size_t j = 0; allowed[j] != NULL; j++) {
            if (strlen(allowed[j]) == k->len && memcmp(allowed[j], k->str, k->len) == 0)
                known = true;
        }
        if (!known)
            err_at(fp, k, field, "unknown key \"%.64s\" (expected %s)", k->str, expected);
    }
}

/* Reads a required string scalar. <allow_empty> = false refuses "". */
static bool
get_str(fparse *fp, const ctl_ynode *n, const char *field, bool allow_empty, char **out)
{
    if (n->kind != CTL_Y_SCALAR || ctl_yaml_is_null(n)) {
        err_at(fp, n, field, "must be a string, not %s", ctl_yaml_kind_name(n));
        return false;
    }
    if (strlen(n->str) != n->len) {
        err_at(fp, n, field, "must not contain NUL bytes");
        return false;
    }
    if (n->len > PM_MAX_STR) {
        err_at(fp, n, field, "longer than %u bytes", PM_MAX_STR);
        return false;
    }
    if (!allow_empty && n->len == 0) {
        err_at(fp, n, field, "must not be empty");
        return false;
    }
    *out = gw_xstrdup(n->str);
    return true;
}

/* Reads an optional string: absent or null leaves *out NULL. */
static bool
opt_str(fparse *fp, const ctl_ynode *map, const char *key, const char *field, char **out)
{
    const ctl_ynode *n = ctl_yaml_get(map, key);
    char *full;
    bool ok;

    *out = NULL;
    if (n == NULL || ctl_yaml_is_null(n))
        return true;
    full = ctl_strf("%s.%s", field, key);
    ok = get_str(fp, n, full, false, out);
    free(full);
    return ok;
}

/* Reads an optional port (1..65535); absent or null leaves *out alone. */
static bool
opt_port(fparse *fp, const ctl_ynode *map, const char *key, const char *field, uint16_t *out)
{
    const ctl_ynode *n = ctl_yaml_get(map, key);
    int64_t v;

    if (n == NULL || ctl_yaml_is_null(n))
        return true;
    if (!ctl_yaml_int(n, &v) || v < 1 || v > 65535) {
        char *full = ctl_strf("%s.%s", field, key);
        err_at(fp, n, full, "must be a port number in 1..65535");
        free(full);
        return false;
    }
    *out = (uint16_t)v;
    return true;
}

static bool
opt_bool(fparse *fp, const ctl_ynode *map, const char *key, const char *field, bool *out)
{
    const ctl_ynode *n = ctl_yaml_get(map, key);

    if (n == NULL || ctl_yaml_is_null(n))
        return true;
    if (!ctl_yaml_bool(n, out)) {
        char *full = ctl_strf("%s.%s", field, key);
        err_at(fp, n, full, "must be true or false");
        free(full);
        return false;
    }
    return true;
}

/* ---- config given as a YAML mapping: convert to JSON ---- */

static bool
is_yaml_core_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
        *out = false;
        return true;
    }
    return false;
}

/* YAML 1.2 core float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool
is_yaml_core_float(const char *s)
{
    size_t digits = 0;

    if (*s == '+' || *s == '-')
        s++;
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        size_t ed = 0;
        s++;
        if (*s == '+' || *s == '-')
            s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            ed++;
        }
        if (ed == 0)
            return false;
    }
    return *s == '\0';
}

/* Converts a YAML subtree to JSON, resolving plain scalars with the YAML 1.2
 * core schema (null, bool, int, float, else string; quoted = string). NULL
 * (error recorded) on NUL bytes, invalid UTF-8 or non-finite numbers. The
 * tree depth is bounded by CTL_YAML_MAX_DEPTH, so recursion is safe. */
static json_t *
yaml_to_json(fparse *fp, const ctl_ynode *n, const char *field)
{
    json_t *j;
    int64_t iv;
    bool bv;

    switch (n->kind) {
    case CTL_Y_SCALAR:
        if (strlen(n->str) != n->len) {
            err_at(fp, n, field, "must not contain NUL bytes");
            return NULL;
        }
        if (n->plain) {
            if (ctl_yaml_is_null(n))
                return json_null();
            if (is_yaml_core_bool(n->str, &bv))
                return json_boolean(bv);
            if (ctl_yaml_int(n, &iv))
                return json_integer((json_int_t)iv);
            if (is_yaml_core_float(n->str)) {
                j = json_real(strtod(n->str, NULL));
                if (j == NULL)
                    err_at(fp, n, field, "number out of range");
                return j;
            }
        }
        j = json_stringn(n->str, n->len);
        if (j == NULL)
            err_at(fp, n, field, "is not valid UTF-8");
        return j;
    case CTL_Y_SEQ:
        j = json_array();
        for (size_t i = 0; i < n->n; i++) {
            json_t *v = yaml_to_json(fp, n->items[i], field);
            if (v == NULL) {
                json_decref(j);
                return NULL;
            }
            json_array_append_new(j, v);
        }
        return j;
    case CTL_Y_MAP:
        j = json_object();
        for (size_t i = 0; i < n->n; i++) {
            const ctl_ynode *k = n->items[2 * i];
            json_t *v;
            if (strlen(k->str) != k->len) {
                err_at(fp, k, field, "keys must not contain NUL bytes");
                json_decref(j);
                return NULL;
            }
            v = yaml_to_json(fp, n->items[2 * i + 1], field);
            if (v == NULL || json_object_set_new(j, k->str, v) != 0) {
                if (v != NULL)
                    err_at(fp, k, field, "key is not valid UTF-8");
                json_decref(j);
                return NULL;
            }
        }
        return j;
    }
    return NULL;
}

static void
parse_config(fparse *fp, const ctl_ynode *n, const char *field, pm_model *m)
{
    char *why = NULL;
    gw_err rc;

    if (ctl_yaml_is_null(n))
        return;
    if (n->kind == CTL_Y_SCALAR) {
        rc = ctl_profile_parse(n->str, n->len, m, &why);
    } else if (n->kind == CTL_Y_MAP) {
        json_t *j = yaml_to_json(fp, n, field);
        if (j == NULL)
            return;
        rc = ctl_profile_from_json(j, m, &why);
        json_decref(j);
    } else {
        err_at(fp, n, field, "must be a JSON string or a mapping, not %s", ctl_yaml_kind_name(n));
        return;
    }
    if (rc != GW_OK) {
        err_at(fp, n, field, "%s", why);
        free(why);
    }
}

/* ---- endpoints ---- */

/* Where each endpoint of the model being parsed came from, for the
 * duplicate check (which sorts, so it needs the position alongside). */
typedef struct ep_pos {
    const pm_endpoint *ep;
    const ctl_ynode *node;
    size_t idx;
} ep_pos;

static int
cmp_ep_pos(const void *a, const void *b)
{
    const ep_pos *x = a, *y = b;
    int c = strcmp(x->ep->ip, y->ep->ip);

    if (c != 0)
        return c;
    if (x->ep->port != y->ep->port)
        return x->ep->port < y->ep->port ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static const char *const ep_keys[] = {"address",   "port",  "metricPort", "name",
                                      "namespace", "ready", "draining",   "adapters",
                                      "roleset",   "role",  "labels",     NULL};

/* Pod labels as a mapping of string to scalar, stored as "key=value" (what
 * the external-filter header selects on). */
static bool
parse_labels(fparse *fp, const ctl_ynode *a, const char *field, pm_endpoint *ep)
{
    char *f = ctl_strf("%s.labels", field);
    bool ok = true;

    if (a->kind != CTL_Y_MAP) {
        err_at(fp, a, f, "must be a mapping of label names to values");
        ok = false;
    } else if (a->n > PM_MAX_LABELS) {
        err_at(fp, a, f, "more than %u labels", PM_MAX_LABELS);
        ok = false;
    } else {
        ep->labels = gw_xcalloc(a->n ? a->n : 1, sizeof(*ep->labels));
        for (size_t i = 0; i < a->n && ok; i++) {
            const ctl_ynode *k = a->items[2 * i], *v = a->items[2 * i + 1];
            if (k->kind != CTL_Y_SCALAR || v->kind != CTL_Y_SCALAR || k->len == 0 ||
                memchr(k->str, '=', k->len) != NULL || k->len + v->len + 1 > PM_MAX_STR) {
                err_at(fp, k, f, "labels need a non-empty name without '=' and a scalar value");
                ok = false;
                break;
            }
            ep->labels[ep->n_labels++] = ctl_strf("%s=%s", k->str, v->str);
        }
    }
    free(f);
    return ok;
}

/* Parses endpoint node <n> of model <m> into a new set entry. Returns false
 * (errors recorded, nothing added) on any problem. */
static bool
parse_endpoint(fparse *fp, const ctl_ynode *n, const char *field, const pm_model *m,
               const char *engine, uint16_t def_port)
{
    char *host = NULL, *why = NULL;
    uint16_t port = 0, metric_port = 0;
    pm_endpoint ep = {.ready = true};
    const ctl_ynode *a;
    bool ok = true;

    if (n->kind == CTL_Y_SCALAR && !ctl_yaml_is_null(n)) {
        if (ctl_parse_hostport(n->str, n->len, &host, &port, &why) != GW_OK) {
            err_at(fp, n, field, "%s in \"%.128s\"", why, n->str);
            free(why);
            return false;
        }
    } else if (n->kind == CTL_Y_MAP) {
        check_keys(fp, n, field, ep_keys,
                   "address, port, metricPort, name, namespace, ready, draining, adapters, "
                   "roleset, role, labels");
        a = ctl_yaml_get(n, "address");
        if (a == NULL || ctl_yaml_is_null(a)) {
            err_at(fp, n, field, "address is required");
            return false;
        }
        char *afield = ctl_strf("%s.address", field);
        if (get_str(fp, a, afield, false, &host) && !ctl_host_is_valid(host, strlen(host))) {
            err_at(fp, a, afield, "invalid host \"%.128s\"", host);
            GW_FREE(host);
        }
        free(afield);
        ok = host != NULL;
        ok &= opt_port(fp, n, "port", field, &port);
        ok &= opt_port(fp, n, "metricPort", field, &metric_port);
        ok &= opt_str(fp, n, "name", field, &ep.pod);
        ok &= opt_str(fp, n, "namespace", field, &ep.ns);
        ok &= opt_bool(fp, n, "ready", field, &ep.ready);
        ok &= opt_bool(fp, n, "draining", field, &ep.draining);
        ok &= opt_str(fp, n, "roleset", field, &ep.roleset);
        ok &= opt_str(fp, n, "role", field, &ep.role);
        a = ctl_yaml_get(n, "labels");
        if (a != NULL && !ctl_yaml_is_null(a))
            ok &= parse_labels(fp, a, field, &ep);
        a = ctl_yaml_get(n, "adapters");
        if (a != NULL && !ctl_yaml_is_null(a)) {
            char *f = ctl_strf("%s.adapters", field);
            if (a->kind != CTL_Y_SEQ) {
                err_at(fp, a, f, "must be a list of strings");
                ok = false;
            } else if (a->n > PM_MAX_ADAPTERS) {
                err_at(fp, a, f, "more than %u adapters", PM_MAX_ADAPTERS);
                ok = false;
            } else {
                ep.adapters = gw_xcalloc(a->n ? a->n : 1, sizeof(*ep.adapters));
                for (size_t i = 0; i < a->n; i++) {
                    char *fi = ctl_strf("%s[%zu]", f, i);
                    if (get_str(fp, a->items[i], fi, false, &ep.adapters[ep.n_adapters]))
                        ep.n_adapters++;
                    else
                        ok = false;
                    free(fi);
                }
            }
            free(f);
        }
    } else {
        err_at(fp, n, field, "must be \"host:port\" or a mapping, not %s", ctl_yaml_kind_name(n));
        return false;
    }
    if (ok && fp->set->n_endpoints >= PM_MAX_ENDPOINTS) {
        err_at(fp, n, field, "more than %u endpoints in the file", PM_MAX_ENDPOINTS);
        ok = false;
    }
    if (!ok) {
        free(host);
        ctl_endpoint_fini(&ep);
        return false;
    }
    if (port == 0)
        port = def_port;
    ep.model = gw_xstrdup(m->name);
    ep.ip = host;
    ep.port = port;
    ep.metric_port = metric_port != 0 ? metric_port : port;
    ep.engine = gw_xstrdup(engine);
    if (ep.pod == NULL)
        ep.pod = ctl_hostport_str(host, port);
    *ctl_set_add_endpoint(fp->set) = ep;
    return true;
}

/* Reports endpoints of one model (set entries [first, end)) that repeat an
 * (address, port) pair; <pos> holds their nodes in the same order. */
static void
check_duplicate_endpoints(fparse *fp, uint32_t first, ep_pos *pos, size_t n, const char *mfield)
{
    if (n < 2)
        return;
    for (size_t i = 0; i < n; i++)
        pos[i].ep = &fp->set->endpoints[first + i];
    qsort(pos, n, sizeof(*pos), cmp_ep_pos);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(pos[i].ep->ip, pos[i - 1].ep->ip) != 0 || pos[i].ep->port != pos[i - 1].ep->port)
            continue;
        char *f = ctl_strf("%s.endpoints[%zu]", mfield, pos[i].idx);
        err_at(fp, pos[i].node, f, "duplicate endpoint %s:%u (also endpoints[%zu])", pos[i].ep->ip,
               (unsigned)pos[i].ep->port, pos[i - 1].idx);
        free(f);
    }
}

static const char *const model_keys[] = {"name", "engine", "port", "config", "endpoints", NULL};

static void
parse_model(fparse *fp, const ctl_ynode *n, size_t idx)
{
    char *field = ctl_strf("models[%zu]", idx);
    const ctl_ynode *v;
    pm_model m = {0};
    char *engine = NULL;
    uint16_t def_port = DEFAULT_PORT;
    bool ok = true;

    if (n->kind != CTL_Y_MAP) {
        err_at(fp, n, field, "must be a mapping, not %s", ctl_yaml_kind_name(n));
        goto out;
    }
    check_keys(fp, n, field, model_keys, "name, engine, port, config, endpoints");
    v = ctl_yaml_get(n, "name");
    if (v == NULL || ctl_yaml_is_null(v)) {
        err_at(fp, n, field, "name is required");
        ok = false;
    } else {
        char *nf = ctl_strf("%s.name", field);
        ok = get_str(fp, v, nf, false, &m.name);
        if (ok) {
            for (uint32_t i = 0; i < fp->set->n_models; i++) {
                if (strcmp(fp->set->models[i].name, m.name) == 0) {
                    err_at(fp, v, nf, "duplicate model \"%.128s\" (also models[%u])", m.name, i);
                    ok = false;
                }
            }
        }
        free(nf);
    }
    ok &= opt_str(fp, n, "engine", field, &engine);
    ok &= opt_port(fp, n, "port", field, &def_port);
    v = ctl_yaml_get(n, "config");
    if (v != NULL) {
        char *cf = ctl_strf("%s.config", field);
        unsigned before = fp->errs.n;
        parse_config(fp, v, cf, &m);
        ok &= fp->errs.n == before;
        free(cf);
    }
    /* Without a name the endpoints cannot be attributed; otherwise parse them
     * even after an error, so one round reports every problem. Any error
     * discards the whole set, so nothing partial escapes. */
    if (m.name == NULL)
        goto out;
    if (ok && fp->set->n_models >= PM_MAX_MODELS) {
        err_at(fp, n, field, "more than %u models in the file", PM_MAX_MODELS);
        goto out;
    }
    v = ctl_yaml_get(n, "endpoints");
    if (v != NULL && !ctl_yaml_is_null(v)) {
        if (v->kind != CTL_Y_SEQ) {
            char *ef = ctl_strf("%s.endpoints", field);
            err_at(fp, v, ef, "must be a list, not %s", ctl_yaml_kind_name(v));
            free(ef);
        } else {
            uint32_t first = fp->set->n_endpoints;
            ep_pos *pos = gw_xcalloc(v->n ? v->n : 1, sizeof(*pos));
            size_t added = 0;
            for (size_t i = 0; i < v->n; i++) {
                char *ef = ctl_strf("%s.endpoints[%zu]", field, i);
                if (parse_endpoint(fp, v->items[i], ef, &m, engine ? engine : DEFAULT_ENGINE,
                                   def_port)) {
                    pos[added].node = v->items[i];
                    pos[added].idx = i;
                    added++;
                }
                free(ef);
            }
            check_duplicate_endpoints(fp, first, pos, added, field);
            free(pos);
        }
    }
    *ctl_set_add_model(fp->set) = m;
    memset(&m, 0, sizeof(m));
out:
    ctl_model_fini(&m);
    free(engine);
    free(field);
}

static const char *const user_keys[] = {"name", "rpm", "tpm", "apiKeys", NULL};

/* Reads an optional non-negative integer limit; absent or null leaves *out. */
static void
opt_limit(fparse *fp, const ctl_ynode *map, const char *key, const char *field, int64_t *out)
{
    const ctl_ynode *n = ctl_yaml_get(map, key);
    int64_t v;

    if (n == NULL || ctl_yaml_is_null(n))
        return;
    if (!ctl_yaml_int(n, &v) || v < 0) {
        char *full = ctl_strf("%s.%s", field, key);
        err_at(fp, n, full, "must be a whole number >= 0 (0 = unlimited)");
        free(full);
        return;
    }
    *out = v;
}

/* A user name is what clients send in the `user` header and part of the
 * Redis counter keys: printable ASCII without spaces. */
static bool
user_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 256)
        return false;
    for (; *s != '\0'; s++) {
        if (*s <= 0x20 || *s >= 0x7f)
            return false;
    }
    return true;
}

/* An API key as written: "sha256:<64 hex digits>" (the digest, which is
 * what a file or Secret should hold) or the key itself, hashed here so that
 * only digests leave the controller. */
static bool
parse_api_key(fparse *fp, const ctl_ynode *n, const char *field, char **out)
{
    char hex[GW_SHA256_HEX_LEN + 1];

    if (n->kind != CTL_Y_SCALAR || ctl_yaml_is_null(n) || n->len == 0 || strlen(n->str) != n->len) {
        err_at(fp, n, field, "must be a non-empty string");
        return false;
    }
    if (n->len > 7 && strncmp(n->str, "sha256:", 7) == 0) {
        const char *d = n->str + 7;
        if (n->len - 7 != GW_SHA256_HEX_LEN || strspn(d, "0123456789abcdefABCDEF") != n->len - 7) {
            err_at(fp, n, field, "a sha256: digest must be 64 hex digits");
            return false;
        }
        for (size_t i = 0; i < GW_SHA256_HEX_LEN; i++)
            hex[i] = (char)(d[i] >= 'A' && d[i] <= 'F' ? d[i] - 'A' + 'a' : d[i]);
        hex[GW_SHA256_HEX_LEN] = '\0';
    } else {
        gw_sha256_hex(n->str, n->len, hex);
    }
    *out = gw_xstrdup(hex);
    return true;
}

static void
parse_user(fparse *fp, const ctl_ynode *n, size_t idx)
{
    char *field = ctl_strf("users[%zu]", idx), *sub;
    const ctl_ynode *v;
    pm_user u = {0};

    if (n->kind != CTL_Y_MAP) {
        err_at(fp, n, field, "must be a mapping, not %s", ctl_yaml_kind_name(n));
        goto out;
    }
    check_keys(fp, n, field, user_keys, "name, rpm, tpm, apiKeys");
    v = ctl_yaml_get(n, "name");
    sub = ctl_strf("%s.name", field);
    if (v == NULL || ctl_yaml_is_null(v)) {
        err_at(fp, n, field, "name is required");
    } else if (get_str(fp, v, sub, false, &u.name)) {
        if (!user_name_ok(u.name))
            err_at(fp, v, sub, "must be 1..256 printable ASCII characters without spaces");
        for (uint32_t i = 0; i < fp->set->n_users; i++) {
            if (strcmp(fp->set->users[i].name, u.name) == 0)
                err_at(fp, v, sub, "duplicate user \"%.128s\" (also users[%u])", u.name, i);
        }
    }
    free(sub);
    opt_limit(fp, n, "rpm", field, &u.rpm);
    opt_limit(fp, n, "tpm", field, &u.tpm);
    v = ctl_yaml_get(n, "apiKeys");
    if (v != NULL && !ctl_yaml_is_null(v)) {
        sub = ctl_strf("%s.apiKeys", field);
        if (v->kind != CTL_Y_SEQ) {
            err_at(fp, v, sub, "must be a list, not %s", ctl_yaml_kind_name(v));
        } else if (v->n > PM_MAX_USER_KEYS) {
            err_at(fp, v, sub, "at most %u keys per user", PM_MAX_USER_KEYS);
        } else {
            u.key_hashes = v->n ? gw_xcalloc(v->n, sizeof(char *)) : NULL;
            for (size_t i = 0; i < v->n; i++) {
                char *kf = ctl_strf("%s[%zu]", sub, i);
                if (parse_api_key(fp, v->items[i], kf, &u.key_hashes[u.n_keys]))
                    u.n_keys++;
                free(kf);
            }
        }
        free(sub);
    }
    if (u.name != NULL) {
        *ctl_set_add_user(fp->set) = u;
        memset(&u, 0, sizeof(u));
    }
out:
    ctl_user_fini(&u);
    free(field);
}

static const char *const root_keys[] = {"gateway", "models", "users", NULL};
static const char *const gateway_keys[] = {"routingStrategy", NULL};

static void
parse_root(fparse *fp, const ctl_ynode *root)
{
    const ctl_ynode *v;

    if (root->kind != CTL_Y_MAP) {
        err_at(fp, root, "(top level)", "must be a mapping with `models:`, not %s",
               ctl_yaml_kind_name(root));
        return;
    }
    check_keys(fp, root, "(top level)", root_keys, "gateway, models, users");
    v = ctl_yaml_get(root, "gateway");
    if (v != NULL && !ctl_yaml_is_null(v)) {
        if (v->kind != CTL_Y_MAP) {
            err_at(fp, v, "gateway", "must be a mapping, not %s", ctl_yaml_kind_name(v));
        } else {
            check_keys(fp, v, "gateway", gateway_keys, "routingStrategy");
            opt_str(fp, v, "routingStrategy", "gateway", &fp->set->settings.routing_strategy);
        }
    }
    v = ctl_yaml_get(root, "users");
    if (v != NULL && !ctl_yaml_is_null(v)) {
        if (v->kind != CTL_Y_SEQ) {
            err_at(fp, v, "users", "must be a list, not %s", ctl_yaml_kind_name(v));
        } else {
            for (size_t i = 0; i < v->n; i++)
                parse_user(fp, v->items[i], i);
        }
    }
    v = ctl_yaml_get(root, "models");
    if (v == NULL || ctl_yaml_is_null(v))
        return;
    if (v->kind != CTL_Y_SEQ) {
        err_at(fp, v, "models", "must be a list, not %s", ctl_yaml_kind_name(v));
        return;
    }
    for (size_t i = 0; i < v->n; i++)
        parse_model(fp, v->items[i], i);
}

gw_err
ctl_src_file_parse(const char *text, size_t len, const char *path, pm_snapshot **out, char **why)
{
    fparse fp = {.path = path};
    ctl_ynode *root = NULL;
    char *ywhy = NULL;

    if (ctl_yaml_parse(text, len, &root, &ywhy) != GW_OK) {
        *why = ctl_strf("%s:%s", path, ywhy);
        free(ywhy);
        return GW_EINVAL;
    }
    if (root == NULL || ctl_yaml_is_null(root)) {
        /* Usually a file caught mid-write; refusing it keeps the fleet. */
        *why = ctl_strf("%s: the file is empty (write `models: []` for an empty fleet)", path);
        ctl_yaml_free(root);
        return GW_EINVAL;
    }
    fp.set = ctl_set_new();
    parse_root(&fp, root);
    ctl_yaml_free(root);
    if (fp.errs.n > 0) {
        pm_snapshot_free(fp.set);
        *why = ctl_errs_take(&fp.errs);
        return GW_EINVAL;
    }
    *out = fp.set;
    return GW_OK;
}

/* ---- reading the file ---- */

/* Reads at most CTL_SRC_FILE_MAX_BYTES of <path> into a heap buffer. */
static gw_err
read_file(const char *path, char **data, size_t *len, char **why)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf;
    int fd, err;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        *why = ctl_strf("%s: cannot open: %s", path, strerror(err));
        return GW_EIO;
    }
    buf = gw_xmalloc(cap);
    for (;;) {
        ssize_t r;
        if (n == cap) {
            if (cap > CTL_SRC_FILE_MAX_BYTES) {
                *why = ctl_strf("%s: larger than %u bytes", path, CTL_SRC_FILE_MAX_BYTES);
                goto fail;
            }
            cap *= 2;
            buf = gw_xrealloc(buf, cap);
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0) {
            err = errno;
            if (err == EINTR)
                continue;
            *why = ctl_strf("%s: cannot read: %s", path, strerror(err));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n > CTL_SRC_FILE_MAX_BYTES) {
        *why = ctl_strf("%s: larger than %u bytes", path, CTL_SRC_FILE_MAX_BYTES);
        free(buf);
        return GW_EIO;
    }
    *data = buf;
    *len = n;
    return GW_OK;
fail:
    close(fd);
    free(buf);
    return GW_EIO;
}

gw_err
ctl_src_file_load(const char *path, pm_snapshot **out, char **why)
{
    char *data = NULL;
    size_t len = 0;
    gw_err rc;

    rc = read_file(path, &data, &len, why);
    if (rc != GW_OK)
        return rc;
    rc = ctl_src_file_parse(data, len, path, out, why);
    free(data);
    return rc;
}

/* ---- the polling source ---- */

typedef struct file_sig {
    bool valid;
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns, ctime_ns;
} file_sig;

struct ctl_src_file {
    gw_loop *loop;        /* borrowed */
    ctl_store *store;     /* borrowed */
    ctl_metrics *metrics; /* borrowed */
    char *path;
    uint64_t poll_ms;
    gw_timer *timer;
    file_sig sig; /* of the last version we tried to load */
    bool missing_logged;
};

static file_sig
stat_sig(const char *path, int *err)
{
    struct stat st;
    file_sig s = {0};

    if (stat(path, &st) != 0) {
        *err = errno;
        return s;
    }
    s.valid = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    s.ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
    return s;
}

static bool
sig_equal(const file_sig *a, const file_sig *b)
{
    return a->valid == b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

/* Logs each line of a multi-line problem report under one message id. */
static void
log_problems(gw_lvl lvl, const char *id, const char *why)
{
    char q[1024];
    const char *p = why;

    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char *line = gw_xstrndup(p, n);
        gw_log(lvl, id, "msg=%s", gw_log_q(q, sizeof(q), line));
        free(line);
        p = nl != NULL ? nl + 1 : NULL;
    }
}

/* Loads the file and hands a good set to the store. */
static gw_err
reload(ctl_src_file *f, bool at_start)
{
    pm_snapshot *set = NULL;
    char *why = NULL;
    char q[512];
    gw_err rc;

    rc = ctl_src_file_load(f->path, &set, &why);
    if (rc != GW_OK) {
        log_problems(GW_LOG_ERR, "CTL-FILE-INVALID", why);
        if (!at_start)
            gw_log(GW_LOG_WARN, "CTL-FILE-KEPT", "path=%s msg=\"keeping the last good config\"",
                   gw_log_q(q, sizeof(q), f->path));
        ctl_metrics_config_error(f->metrics, "file");
        free(why);
        return rc;
    }
    gw_log(GW_LOG_NOTICE, "CTL-FILE-LOAD", "path=%s models=%u endpoints=%u",
           gw_log_q(q, sizeof(q), f->path), set->n_models, set->n_endpoints);
    ctl_store_replace(f->store, CTL_SRC_FILE, set);
    return GW_OK;
}

void
ctl_src_file_poll(ctl_src_file *f)
{
    int err = 0;
    file_sig s = stat_sig(f->path, &err);
    char q[512];

    if (!s.valid) {
        if (!f->missing_logged) {
            gw_log_errno(GW_LOG_WARN, err, "CTL-FILE-MISSING",
                         "path=%s msg=\"cannot stat the config file; keeping the last good "
                         "config\"",
                         gw_log_q(q, sizeof(q), f->path));
            ctl_metrics_config_error(f->metrics, "file");
            f->missing_logged = true;
        }
        f->sig = s;
        return;
    }
    f->missing_logged = false;
    if (sig_equal(&s, &f->sig))
        return;
    /* Remember the signature even when the load fails, so a bad file is
     * reported once, not every poll; the next edit changes it again. */
    f->sig = s;
    (void)reload(f, false);
}

void
ctl_src_file_reload(ctl_src_file *f)
{
    int err = 0;

    f->sig = stat_sig(f->path, &err);
    (void)reload(f, false);
}

static void
on_poll(gw_loop *loop, void *arg)
{
    ctl_src_file *f = arg;
    (void)loop;

    ctl_src_file_poll(f);
    gw_timer_start(f->timer, f->poll_ms);
}

gw_err
ctl_src_file_start(gw_loop *loop, ctl_store *store, ctl_metrics *metrics, const char *path,
                   uint64_t poll_ms, ctl_src_file **out)
{
    ctl_src_file *f = gw_xcalloc(1, sizeof(*f));
    int err = 0;
    gw_err rc;

    f->loop = loop;
    f->store = store;
    f->metrics = metrics;
    f->path = gw_xstrdup(path);
    f->poll_ms = poll_ms;
    f->sig = stat_sig(path, &err);
    rc = reload(f, true);
    if (rc != GW_OK) {
        ctl_src_file_free(f);
        return rc;
    }
    f->timer = gw_timer_new(loop, on_poll, f);
    gw_timer_start(f->timer, poll_ms);
    *out = f;
    return GW_OK;
}

void
ctl_src_file_free(ctl_src_file *f)
{
    if (f == NULL)
        return;
    gw_timer_free(f->timer);
    free(f->path);
    free(f);
}
