/* ctl_etcd_json: etcd v3 JSON gateway bodies (see ctl_etcd_json.h). */
#include "ctl_etcd_json.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"
#include "gw/gw_mem.h"

char *
ctl_etcd_b64(const void *p, size_t n)
{
    char *out = gw_xmalloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

gw_err
ctl_etcd_unb64(const char *s, char **out, size_t *n)
{
    size_t len = strlen(s), pad = 0;
    char *buf;
    int got;

    /* EVP_DecodeBlock wants whole 4-byte groups and counts padding as
     * zero bytes, so the padding is checked and subtracted here. */
    if (len % 4 != 0 || len > CTL_ETCD_MAX_BODY)
        return GW_EINVAL;
    if (len > 0 && s[len - 1] == '=')
        pad++;
    if (len > 1 && s[len - 2] == '=')
        pad++;
    buf = gw_xmalloc(len / 4 * 3 + 1);
    got = len > 0 ? EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)s, (int)len) : 0;
    if (got < 0 || (size_t)got < pad) {
        free(buf);
        return GW_EINVAL;
    }
    buf[(size_t)got - pad] = '\0';
    *out = buf;
    *n = (size_t)got - pad;
    return GW_OK;
}

static json_t *
b64_json(const char *s, size_t n)
{
    char *b = ctl_etcd_b64(s, n);
    json_t *j = json_string(b);

    free(b);
    return j;
}

static char *
dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT), *out;

    json_decref(o);
    out = gw_xstrdup(s != NULL ? s : "{}");
    free(s);
    return out;
}

/* The range end selecting every key with <prefix>: the prefix with its last
 * byte incremented (etcd's clientv3.GetPrefixRangeEnd); bytes that are 0xff
 * are dropped first. An empty result means "to the end", written "\0". */
static json_t *
prefix_end(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = gw_xstrdup(prefix);
    json_t *j;

    while (n > 0 && (unsigned char)end[n - 1] == 0xff)
        n--;
    if (n == 0) {
        free(end);
        return b64_json("", 1);
    }
    end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
    j = b64_json(end, n);
    free(end);
    return j;
}

char *
ctl_etcd_range_body(const char *prefix)
{
    json_t *o = json_object();

    json_object_set_new(o, "key", b64_json(prefix, strlen(prefix)));
    json_object_set_new(o, "range_end", prefix_end(prefix));
    return dump(o);
}

char *
ctl_etcd_watch_body(const char *prefix, int64_t start_revision)
{
    json_t *o = json_object(), *c = json_object();
    char rev[32];

    json_object_set_new(c, "key", b64_json(prefix, strlen(prefix)));
    json_object_set_new(c, "range_end", prefix_end(prefix));
    if (start_revision > 0) {
        snprintf(rev, sizeof(rev), "%lld", (long long)start_revision);
        json_object_set_new(c, "start_revision", json_string(rev));
    }
    json_object_set_new(o, "create_request", c);
    return dump(o);
}

char *
ctl_etcd_put_body(const char *key, const char *value, int64_t lease)
{
    json_t *o = json_object();
    char id[32];

    json_object_set_new(o, "key", b64_json(key, strlen(key)));
    json_object_set_new(o, "value", b64_json(value, strlen(value)));
    if (lease != 0) {
        snprintf(id, sizeof(id), "%lld", (long long)lease);
        json_object_set_new(o, "lease", json_string(id));
    }
    return dump(o);
}

char *
ctl_etcd_key_body(const char *key)
{
    json_t *o = json_object();

    json_object_set_new(o, "key", b64_json(key, strlen(key)));
    return dump(o);
}

char *
ctl_etcd_auth_body(const char *name, const char *password)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "password", json_string(password));
    return dump(o);
}

/* A proto3 int64: a decimal string or a JSON integer. */
static bool
int_value(json_t *v, int64_t *out)
{
    const char *s = json_string_value(v);
    char *end;
    long long n;

    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (s == NULL || s[0] == '\0')
        return false;
    errno = 0;
    n = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (int64_t)n;
    return true;
}

void
ctl_etcd_msg_fini(ctl_etcd_msg *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_kvs; i++) {
        free(m->kvs[i].key);
        free(m->kvs[i].value);
    }
    free(m->kvs);
    free(m->error);
    *m = (ctl_etcd_msg){0};
}

/* Appends the kv object <kv> to <m>; <is_delete> drops the value. */
static bool
add_kv(ctl_etcd_msg *m, json_t *kv, bool is_delete, char **why)
{
    const char *k64 = json_string_value(json_object_get(kv, "key"));
    const char *v64 = json_string_value(json_object_get(kv, "value"));
    ctl_etcd_kv out = {.is_delete = is_delete};
    size_t klen = 0;

    if (k64 == NULL || ctl_etcd_unb64(k64, &out.key, &klen) != GW_OK || klen == 0 ||
        strlen(out.key) != klen) {
        free(out.key);
        *why = gw_xstrdup("a kv has no usable base64 \"key\"");
        return false;
    }
    if (!is_delete) {
        /* An empty value is omitted by proto3 JSON. */
        if (ctl_etcd_unb64(v64 != NULL ? v64 : "", &out.value, &out.value_len) != GW_OK) {
            free(out.key);
            *why = gw_xstrdup("a kv has a \"value\" that is not base64");
            return false;
        }
    }
    m->kvs = gw_xrealloc(m->kvs, (m->n_kvs + 1) * sizeof(*m->kvs));
    m->kvs[m->n_kvs++] = out;
    return true;
}

static json_t *
load(const char *buf, size_t len, char **why)
{
    json_error_t jerr;
    json_t *root;

    if (len > CTL_ETCD_MAX_BODY) {
        *why = gw_xstrdup("answer too large");
        return NULL;
    }
    root = json_loadb(buf, len, 0, &jerr);
    if (!json_is_object(root)) {
        *why = root == NULL ? ctl_strf("not JSON: %s", jerr.text)
                            : gw_xstrdup("answer is not a JSON object");
        json_decref(root);
        return NULL;
    }
    return root;
}

/* {"error": "..."} or {"error": {"message": "..."}} (grpc-gateway v1/v2). */
static bool
take_error(json_t *root, ctl_etcd_msg *m)
{
    json_t *e = json_object_get(root, "error");
    const char *msg;

    if (e == NULL)
        return false;
    msg =
        json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "message"));
    m->error = gw_xstrdup(msg != NULL ? msg : "unknown error");
    return true;
}

/* The kvs of a range answer. */
static bool
fill_range(json_t *root, ctl_etcd_msg *m, char **why)
{
    json_t *kvs, *kv;
    size_t i;

    if (!int_value(json_object_get(json_object_get(root, "header"), "revision"), &m->revision)) {
        *why = gw_xstrdup("range answer has no header.revision");
        return false;
    }
    kvs = json_object_get(root, "kvs");
    if (kvs != NULL && !json_is_array(kvs)) {
        *why = gw_xstrdup("\"kvs\" is not an array");
        return false;
    }
    json_array_foreach(kvs, i, kv)
    {
        if (!add_kv(m, kv, false, why))
            return false;
    }
    return true;
}

/* The "result" of one watch stream message. */
static bool
fill_watch(json_t *root, ctl_etcd_msg *m, char **why)
{
    json_t *res = json_object_get(root, "result"), *evs, *ev;
    size_t i;

    if (!json_is_object(res)) {
        *why = gw_xstrdup("watch message has no \"result\" object");
        return false;
    }
    (void)int_value(json_object_get(json_object_get(res, "header"), "revision"), &m->revision);
    (void)int_value(json_object_get(res, "compact_revision"), &m->compact_revision);
    m->created = json_is_true(json_object_get(res, "created"));
    m->canceled = json_is_true(json_object_get(res, "canceled"));
    evs = json_object_get(res, "events");
    if (evs != NULL && !json_is_array(evs)) {
        *why = gw_xstrdup("\"events\" is not an array");
        return false;
    }
    json_array_foreach(evs, i, ev)
    {
        /* proto3 JSON omits the default enum value: no type = PUT. */
        const char *type = json_string_value(json_object_get(ev, "type"));
        bool del = type != NULL && strcmp(type, "DELETE") == 0;
        if (type != NULL && !del && strcmp(type, "PUT") != 0) {
            *why = gw_xstrdup("event type is neither PUT nor DELETE");
            return false;
        }
        if (!add_kv(m, json_object_get(ev, "kv"), del, why))
            return false;
    }
    return true;
}

/* Loads <buf>, takes an error answer as such, else lets <fill> read it. */
static gw_err
parse_msg(const char *buf, size_t len, bool (*fill)(json_t *, ctl_etcd_msg *, char **),
          ctl_etcd_msg *out, char **why)
{
    ctl_etcd_msg m = {0};
    json_t *root = load(buf, len, why);

    if (root == NULL)
        return GW_EINVAL;
    if (!take_error(root, &m) && !fill(root, &m, why)) {
        json_decref(root);
        ctl_etcd_msg_fini(&m);
        return GW_EINVAL;
    }
    json_decref(root);
    *out = m;
    return GW_OK;
}

gw_err
ctl_etcd_parse_range(const char *buf, size_t len, ctl_etcd_msg *out, char **why)
{
    return parse_msg(buf, len, fill_range, out, why);
}

gw_err
ctl_etcd_parse_watch(const char *buf, size_t len, ctl_etcd_msg *out, char **why)
{
    return parse_msg(buf, len, fill_watch, out, why);
}

gw_err
ctl_etcd_get_int(const char *buf, size_t len, const char *name, int64_t *out)
{
    char *why = NULL;
    json_t *root = load(buf, len, &why), *v;
    gw_err rc = GW_ENOENT;

    free(why);
    if (root == NULL)
        return GW_EINVAL;
    v = json_object_get(root, name);
    if (v == NULL)
        v = json_object_get(json_object_get(root, "result"), name);
    if (v != NULL && int_value(v, out))
        rc = GW_OK;
    json_decref(root);
    return rc;
}

char *
ctl_etcd_get_str(const char *buf, size_t len, const char *name)
{
    char *why = NULL, *s = NULL;
    json_t *root = load(buf, len, &why);
    const char *v;

    free(why);
    v = json_string_value(json_object_get(root, name));
    if (v != NULL)
        s = gw_xstrdup(v);
    json_decref(root);
    return s;
}

void
ctl_etcd_endpoints_free(char **urls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}

gw_err
ctl_etcd_parse_endpoints(const char *list, char ***urls, size_t *n, char **why)
{
    char **v = NULL;
    size_t cnt = 0;
    const char *p = list != NULL ? list : "";

    for (;;) {
        const char *end = strchr(p, ','), *b = p, *e = end != NULL ? end : p + strlen(p);
        const char *scheme = "http";
        char *host = NULL, *hwhy = NULL;
        uint16_t port = 0;

        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '/'))
            e--;
        if ((size_t)(e - b) > 7 && strncmp(b, "http://", 7) == 0) {
            b += 7;
        } else if ((size_t)(e - b) > 8 && strncmp(b, "https://", 8) == 0) {
            b += 8;
            scheme = "https";
        }
        if (b == e || ctl_parse_hostport(b, (size_t)(e - b), &host, &port, &hwhy) != GW_OK) {
            *why = ctl_strf("--discovery-etcd-endpoints: entry %zu \"%.*s\": %s", cnt + 1,
                            (int)((e - b) > 200 ? 200 : (e - b)), b, hwhy != NULL ? hwhy : "empty");
            free(hwhy);
            ctl_etcd_endpoints_free(v, cnt);
            return GW_EINVAL;
        }
        v = gw_xrealloc(v, (cnt + 1) * sizeof(*v));
        v[cnt++] = strchr(host, ':') != NULL
                       ? ctl_strf("%s://[%s]:%u", scheme, host, port ? port : 2379u)
                       : ctl_strf("%s://%s:%u", scheme, host, port ? port : 2379u);
        free(host);
        if (end == NULL)
            break;
        p = end + 1;
    }
    *urls = v;
    *n = cnt;
    return GW_OK;
}
