/* ctl_kube: Kubernetes API configuration and requests (see ctl_kube.h).
 *
 * Requests: every request has its own easy handle (requests are rare next to
 * the proxy's traffic, and a fresh handle keeps per-request options from
 * leaking), while connections live in the multi handle's cache, so a watch
 * re-opened after a timeout reuses the keep-alive connection. A request
 * object is linked into the client's list until its completion callback has
 * run, which is what lets ctl_kube_free cancel everything without callbacks.
 *
 * Watches are plain streaming GETs: the write callback cuts the body into
 * lines and hands each parsed line to the caller at once, so an event is
 * applied as soon as its bytes arrive (DESIGN §3: routing follows pods within
 * a second), never after the stream ends. */
#include "ctl_kube.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_set.h"
#include "ctl_util.h"
#include "ctl_yaml.h"
#include "gw/gw_buf.h"
#include "gw/gw_curlm.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define MAX_CONF_FILE  (4u << 20) /* kubeconfig, token, CA bundle */
#define MAX_IDLE_CONNS 8

/* ======================================================================
 * Small helpers
 * ====================================================================== */

bool
ctl_kube_b64decode(const char *s, size_t len, char **out, size_t *out_len)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char *buf;
    size_t n = 0, pad = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    while (pad < 2 && len > 0 && s[len - 1] == '=') {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
        return false;
    buf = gw_xmalloc(len * 3 / 4 + 1);
    for (size_t i = 0; i < len; i++) {
        const char *p = s[i] != '\0' ? strchr(alpha, s[i]) : NULL;
        if (p == NULL) {
            free(buf);
            return false;
        }
        acc = (acc << 6) | (uint32_t)(p - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    buf[n] = '\0';
    *out = (char *)buf;
    *out_len = n;
    return true;
}

char *
ctl_kube_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = gw_xmalloc(n * 3 + 1), *p = o;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return o;
}

/* Reads at most <max> bytes of <path>; NUL-terminated. */
static gw_err
read_file(const char *path, size_t max, char **data, size_t *len, char **why)
{
    size_t cap = 4096, n = 0;
    char *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC), err;

    if (fd < 0) {
        err = errno;
        *why = ctl_strf("%s: cannot open: %s", path, strerror(err));
        return err == ENOENT ? GW_ENOENT : GW_EIO;
    }
    buf = gw_xmalloc(cap + 1);
    for (;;) {
        ssize_t r;
        if (n == cap) {
            if (cap >= max) {
                *why = ctl_strf("%s: larger than %zu bytes", path, max);
                close(fd);
                free(buf);
                return GW_EIO;
            }
            cap *= 2;
            buf = gw_xrealloc(buf, cap + 1);
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0) {
            err = errno;
            if (err == EINTR)
                continue;
            *why = ctl_strf("%s: cannot read: %s", path, strerror(err));
            close(fd);
            free(buf);
            return GW_EIO;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return GW_OK;
}

/* Strips trailing whitespace (token files end with a newline). */
static void
rtrim(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

/* True when <v> is a JSON string equal to <s>. */
static bool
json_str_eq(const json_t *v, const char *s)
{
    const char *x = json_string_value(v);

    return x != NULL && strcmp(x, s) == 0;
}

static bool
is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

bool
ctl_kube_in_cluster(void)
{
    return is_set(getenv("KUBERNETES_SERVICE_HOST"));
}

void
ctl_kube_conf_fini(ctl_kube_conf *c)
{
    free(c->server);
    free(c->ca_file);
    free(c->ca_data);
    free(c->token);
    free(c->token_file);
    free(c->cert_file);
    free(c->key_file);
    free(c->cert_data);
    free(c->key_data);
    free(c->ns);
    free(c->origin);
    memset(c, 0, sizeof(*c));
}

/* Deep copy of a configuration. */
static void
conf_copy(ctl_kube_conf *dst, const ctl_kube_conf *src)
{
    *dst = *src;
    dst->server = ctl_dup_opt(src->server);
    dst->ca_file = ctl_dup_opt(src->ca_file);
    dst->token = ctl_dup_opt(src->token);
    dst->token_file = ctl_dup_opt(src->token_file);
    dst->cert_file = ctl_dup_opt(src->cert_file);
    dst->key_file = ctl_dup_opt(src->key_file);
    dst->ns = ctl_dup_opt(src->ns);
    dst->origin = ctl_dup_opt(src->origin);
    dst->ca_data = NULL;
    dst->cert_data = NULL;
    dst->key_data = NULL;
    if (src->ca_data != NULL) {
        dst->ca_data = gw_xmalloc(src->ca_len + 1);
        memcpy(dst->ca_data, src->ca_data, src->ca_len + 1);
    }
    if (src->cert_data != NULL) {
        dst->cert_data = gw_xmalloc(src->cert_len + 1);
        memcpy(dst->cert_data, src->cert_data, src->cert_len + 1);
    }
    if (src->key_data != NULL) {
        dst->key_data = gw_xmalloc(src->key_len + 1);
        memcpy(dst->key_data, src->key_data, src->key_len + 1);
    }
}

/* ======================================================================
 * In-cluster configuration
 * ====================================================================== */

gw_err
ctl_kube_conf_in_cluster(const char *sa_dir, ctl_kube_conf *out, char **why)
{
    const char *host = getenv("KUBERNETES_SERVICE_HOST");
    const char *port = getenv("KUBERNETES_SERVICE_PORT");
    ctl_kube_conf c = {0};
    struct stat st;
    char *data = NULL;
    size_t len = 0;
    gw_err rc;

    if (!is_set(host) || !is_set(port)) {
        *why = gw_xstrdup("not running in a cluster: KUBERNETES_SERVICE_HOST and "
                          "KUBERNETES_SERVICE_PORT are not set");
        return GW_ENOENT;
    }
    for (const char *p = port; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            *why = ctl_strf("KUBERNETES_SERVICE_PORT is not a port number: \"%.32s\"", port);
            return GW_EINVAL;
        }
    }
    c.server = strchr(host, ':') != NULL ? ctl_strf("https://[%s]:%s", host, port)
                                         : ctl_strf("https://%s:%s", host, port);
    c.token_file = ctl_strf("%s/token", sa_dir);
    c.ca_file = ctl_strf("%s/ca.crt", sa_dir);
    /* The token is re-read per request; it must exist now, though, or every
     * request would go out unauthenticated. */
    if (stat(c.token_file, &st) != 0 || stat(c.ca_file, &st) != 0) {
        int err = errno;
        *why = ctl_strf("service-account files missing in %s (token, ca.crt): %s", sa_dir,
                        strerror(err));
        ctl_kube_conf_fini(&c);
        return GW_EIO;
    }
    char *nsf = ctl_strf("%s/namespace", sa_dir);
    char *ignored = NULL;
    rc = read_file(nsf, 4096, &data, &len, &ignored);
    free(nsf);
    free(ignored);
    if (rc == GW_OK) {
        rtrim(data);
        c.ns = data;
    }
    if (!is_set(c.ns)) {
        free(c.ns);
        c.ns = gw_xstrdup("default");
    }
    c.origin = gw_xstrdup("in-cluster");
    *out = c;
    return GW_OK;
}

/* ======================================================================
 * kubeconfig
 * ====================================================================== */

typedef struct kc_file {
    char *path;
    char *dir; /* for relative paths */
    ctl_ynode *root;
} kc_file;

typedef struct kc {
    kc_file *files;
    size_t n;
} kc;

/* The string value of scalar <key> in mapping <m>, or NULL. */
static const char *
ystr(const ctl_ynode *m, const char *key)
{
    const ctl_ynode *v = ctl_yaml_get(m, key);

    if (v == NULL || v->kind != CTL_Y_SCALAR || ctl_yaml_is_null(v) || v->len == 0)
        return NULL;
    return v->str;
}

/* Finds the entry named <name> in the list <list> ("clusters", ...) of the
 * files, first file first; *inner is its <field> mapping. */
static const ctl_ynode *
kc_find(const kc *k, const char *list, const char *field, const char *name, const kc_file **from)
{
    for (size_t f = 0; f < k->n; f++) {
        const ctl_ynode *l = ctl_yaml_get(k->files[f].root, list);
        if (l == NULL || l->kind != CTL_Y_SEQ)
            continue;
        for (size_t i = 0; i < l->n; i++) {
            const char *nm = ystr(l->items[i], "name");
            if (nm != NULL && strcmp(nm, name) == 0) {
                const ctl_ynode *in = ctl_yaml_get(l->items[i], field);
                if (in == NULL || in->kind != CTL_Y_MAP)
                    return NULL;
                *from = &k->files[f];
                return in;
            }
        }
    }
    return NULL;
}

static char *
kc_path(const kc_file *f, const char *p)
{
    return p[0] == '/' ? gw_xstrdup(p) : ctl_strf("%s/%s", f->dir, p);
}

/* Decodes a *-data field into *out. */
static bool
kc_data(const ctl_ynode *m, const char *key, char **out, size_t *len, const kc_file *f, char **why)
{
    const char *v = ystr(m, key);

    if (v == NULL)
        return true;
    if (!ctl_kube_b64decode(v, strlen(v), out, len)) {
        *why = ctl_strf("%s: %s is not valid base64", f->path, key);
        return false;
    }
    return true;
}

static void
kc_free(kc *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->files[i].path);
        free(k->files[i].dir);
        ctl_yaml_free(k->files[i].root);
    }
    free(k->files);
}

gw_err
ctl_kube_conf_kubeconfig(const char *paths, const char *context, ctl_kube_conf *out, char **why)
{
    kc k = {0};
    ctl_kube_conf c = {0};
    const char *ctx_name = is_set(context) ? context : NULL;
    const ctl_ynode *ctx, *cl, *us;
    const kc_file *ctx_f = NULL, *cl_f = NULL, *us_f = NULL;
    char *list = gw_xstrdup(paths), *save = NULL;
    const char *v;
    gw_err rc = GW_EINVAL;

    for (char *p = strtok_r(list, ":", &save); p != NULL; p = strtok_r(NULL, ":", &save)) {
        char *data = NULL, *ywhy = NULL, *rwhy = NULL;
        size_t len = 0;
        ctl_ynode *root = NULL;
        gw_err r = read_file(p, MAX_CONF_FILE, &data, &len, &rwhy);

        if (r == GW_ENOENT) {
            free(rwhy);
            continue;
        }
        if (r != GW_OK) {
            *why = rwhy;
            rc = r;
            goto out;
        }
        r = ctl_yaml_parse(data, len, &root, &ywhy);
        free(data);
        if (r != GW_OK) {
            *why = ctl_strf("%s:%s", p, ywhy);
            free(ywhy);
            goto out;
        }
        if (root == NULL)
            continue;
        if (root->kind != CTL_Y_MAP) {
            *why = ctl_strf("%s: a kubeconfig must be a mapping", p);
            ctl_yaml_free(root);
            goto out;
        }
        k.files = gw_xrealloc(k.files, (k.n + 1) * sizeof(*k.files));
        char *dcopy = gw_xstrdup(p);
        k.files[k.n] =
            (kc_file){.path = gw_xstrdup(p), .dir = gw_xstrdup(dirname(dcopy)), .root = root};
        free(dcopy);
        k.n++;
        if (ctx_name == NULL)
            ctx_name = ystr(root, "current-context");
    }
    if (k.n == 0) {
        *why = ctl_strf("no kubeconfig file found in \"%s\"", paths);
        rc = GW_ENOENT;
        goto out;
    }
    if (ctx_name == NULL) {
        *why = ctl_strf("%s: no current-context and no --kube-context", k.files[0].path);
        goto out;
    }
    ctx = kc_find(&k, "contexts", "context", ctx_name, &ctx_f);
    if (ctx == NULL) {
        *why = ctl_strf("%s: context \"%s\" not found", k.files[0].path, ctx_name);
        goto out;
    }
    v = ystr(ctx, "cluster");
    cl = v != NULL ? kc_find(&k, "clusters", "cluster", v, &cl_f) : NULL;
    if (cl == NULL) {
        *why = ctl_strf("%s: context \"%s\": cluster \"%s\" not found", ctx_f->path, ctx_name,
                        v != NULL ? v : "");
        goto out;
    }
    v = ystr(cl, "server");
    if (v == NULL || (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)) {
        *why = ctl_strf("%s: cluster of context \"%s\": server must be an http(s) URL", cl_f->path,
                        ctx_name);
        goto out;
    }
    c.server = gw_xstrdup(v);
    while (strlen(c.server) > 0 && c.server[strlen(c.server) - 1] == '/')
        c.server[strlen(c.server) - 1] = '\0';
    for (const char *const *bad = (const char *const[]){"proxy-url", "tls-server-name", NULL};
         *bad != NULL; bad++) {
        if (ctl_yaml_get(cl, *bad) != NULL) {
            *why = ctl_strf("%s: cluster field %s is not supported", cl_f->path, *bad);
            goto out;
        }
    }
    v = ystr(cl, "certificate-authority");
    if (v != NULL)
        c.ca_file = kc_path(cl_f, v);
    if (!kc_data(cl, "certificate-authority-data", &c.ca_data, &c.ca_len, cl_f, why))
        goto out;
    {
        const ctl_ynode *ins = ctl_yaml_get(cl, "insecure-skip-tls-verify");
        if (ins != NULL && !ctl_yaml_is_null(ins) && !ctl_yaml_bool(ins, &c.insecure)) {
            *why = ctl_strf("%s: insecure-skip-tls-verify must be true or false", cl_f->path);
            goto out;
        }
    }
    v = ystr(ctx, "user");
    if (v != NULL) {
        us = kc_find(&k, "users", "user", v, &us_f);
        if (us == NULL) {
            *why = ctl_strf("%s: context \"%s\": user \"%s\" not found", ctx_f->path, ctx_name, v);
            goto out;
        }
        for (const char *const *bad =
                 (const char *const[]){"exec", "auth-provider", "username", "password", NULL};
             *bad != NULL; bad++) {
            if (ctl_yaml_get(us, *bad) != NULL) {
                *why = ctl_strf("%s: user \"%s\": %s is not supported (use a token, tokenFile or "
                                "a client certificate)",
                                us_f->path, v, *bad);
                goto out;
            }
        }
        c.token = ctl_dup_opt(ystr(us, "token"));
        if (ystr(us, "tokenFile") != NULL)
            c.token_file = kc_path(us_f, ystr(us, "tokenFile"));
        if (ystr(us, "client-certificate") != NULL)
            c.cert_file = kc_path(us_f, ystr(us, "client-certificate"));
        if (ystr(us, "client-key") != NULL)
            c.key_file = kc_path(us_f, ystr(us, "client-key"));
        if (!kc_data(us, "client-certificate-data", &c.cert_data, &c.cert_len, us_f, why) ||
            !kc_data(us, "client-key-data", &c.key_data, &c.key_len, us_f, why))
            goto out;
        if ((c.cert_file != NULL || c.cert_data != NULL) !=
            (c.key_file != NULL || c.key_data != NULL)) {
            *why = ctl_strf("%s: user \"%s\": a client certificate needs its key and the other "
                            "way round",
                            us_f->path, v);
            goto out;
        }
    }
    c.ns = gw_xstrdup(ystr(ctx, "namespace") != NULL ? ystr(ctx, "namespace") : "default");
    c.origin = ctl_strf("kubeconfig %s context %s", ctx_f->path, ctx_name);
    *out = c;
    memset(&c, 0, sizeof(c));
    rc = GW_OK;
out:
    ctl_kube_conf_fini(&c);
    kc_free(&k);
    free(list);
    return rc;
}

gw_err
ctl_kube_conf_load(const char *kubeconfig, const char *context, const char *sa_dir,
                   ctl_kube_conf *out, char **why)
{
    const char *home = getenv("HOME");
    gw_err rc;

    if (is_set(kubeconfig))
        return ctl_kube_conf_kubeconfig(kubeconfig, context, out, why);
    if (ctl_kube_in_cluster())
        return ctl_kube_conf_in_cluster(sa_dir, out, why);
    if (is_set(home)) {
        char *p = ctl_strf("%s/.kube/config", home);
        rc = ctl_kube_conf_kubeconfig(p, context, out, why);
        free(p);
        if (rc != GW_ENOENT)
            return rc;
        free(*why);
    }
    *why = gw_xstrdup("no Kubernetes configuration: set --kubeconfig (or KUBECONFIG), run in a "
                      "pod, or create ~/.kube/config");
    return GW_ENOENT;
}

/* ======================================================================
 * Requests
 * ====================================================================== */

struct ctl_kube_req {
    ctl_kube *k;
    CURL *easy;
    struct curl_slist *hdrs;
    char *body_text;
    char verb[8];
    gw_buf body; /* one-shot answer, or a stream's non-200 answer */
    gw_buf line; /* a stream's partial line */
    bool stream;
    bool cancelled;
    bool in_cb;    /* inside on_line: cancel must wait for curl */
    bool too_big;  /* over a cap */
    bool bad_line; /* a stream line that is not JSON */
    bool deferred; /* started from a line callback: added by the defer timer */
    ctl_kube_line_fn on_line;
    ctl_kube_done_fn cb;
    void *arg;
    ctl_kube_req *prev, *next;
};

/* Signature of the token file at the last read. */
typedef struct token_sig {
    bool valid;
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
} token_sig;

struct ctl_kube {
    gw_loop *loop;
    gw_curlm *curlm;
    ctl_metrics *metrics;
    ctl_kube_conf conf;
    bool https;
    char *user_agent;
    uint64_t timeout_ms;
    char *token; /* current bearer token */
    token_sig sig;
    bool token_stale; /* a 401 came back: re-read the file */
    bool warned_plain;
    ctl_kube_req *reqs;
    /* libcurl refuses multi calls from inside its callbacks
     * (CURLM_RECURSIVE_API_CALL): requests started from a line callback
     * wait for this zero-delay timer. */
    unsigned in_write;
    gw_timer *defer;
};

const char *
ctl_kube_namespace(const ctl_kube *k)
{
    return k->conf.ns;
}

/* Re-reads the token file when it changed or after a 401. A failed read keeps
 * the previous token: kubelet replaces the file atomically, so a failure is
 * transient. */
static void
refresh_token(ctl_kube *k)
{
    struct stat st;
    token_sig s = {0};
    char *data = NULL, *why = NULL;
    size_t len = 0;
    char q[256];

    if (k->conf.token_file == NULL)
        return;
    if (stat(k->conf.token_file, &st) == 0) {
        s.valid = true;
        s.dev = st.st_dev;
        s.ino = st.st_ino;
        s.size = st.st_size;
        s.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    }
    if (!k->token_stale && k->token != NULL && s.valid == k->sig.valid && s.dev == k->sig.dev &&
        s.ino == k->sig.ino && s.size == k->sig.size && s.mtime_ns == k->sig.mtime_ns)
        return;
    k->token_stale = false;
    if (read_file(k->conf.token_file, 64 * 1024, &data, &len, &why) != GW_OK) {
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-TOKEN-READ", "msg=%s",
                           gw_log_q(q, sizeof(q), why));
        free(why);
        return;
    }
    rtrim(data);
    if (data[0] == '\0') {
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-TOKEN-EMPTY", "path=%s",
                           gw_log_q(q, sizeof(q), k->conf.token_file));
        free(data);
        return;
    }
    if (k->token != NULL && strcmp(k->token, data) != 0)
        gw_log(GW_LOG_NOTICE, "CTL-KUBE-TOKEN-ROTATED", "path=%s",
               gw_log_q(q, sizeof(q), k->conf.token_file));
    free(k->token);
    k->token = data;
    k->sig = s;
}

static void
req_free(ctl_kube_req *r)
{
    if (r->easy != NULL)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body_text);
    gw_buf_fini(&r->body);
    gw_buf_fini(&r->line);
    free(r);
}

static void
req_unlink(ctl_kube_req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else if (r->k->reqs == r)
        r->k->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Feeds the complete lines in the line buffer to on_line. False to stop the
 * transfer (cancelled, or a line that is not a JSON object). */
static bool
feed_lines(ctl_kube_req *r)
{
    size_t start = 0;

    for (size_t i = 0; i < r->line.len; i++) {
        if (r->line.data[i] != '\n')
            continue;
        if (i > start) {
            json_error_t jerr;
            json_t *ev = json_loadb(r->line.data + start, i - start, 0, &jerr);
            if (ev == NULL || !json_is_object(ev)) {
                json_decref(ev);
                r->bad_line = true;
                return false;
            }
            r->in_cb = true;
            r->k->in_write++;
            r->on_line(ev, r->arg);
            r->k->in_write--;
            r->in_cb = false;
            json_decref(ev);
            if (r->cancelled)
                return false;
        }
        start = i + 1;
    }
    gw_buf_consume(&r->line, start);
    return true;
}

static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    ctl_kube_req *r = arg;
    size_t n = size * nmemb;
    long status = 0;

    if (r->cancelled)
        return 0;
    if (r->stream)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (!r->stream || status != 200) {
        if (gw_buf_append(&r->body, ptr, n) != GW_OK) {
            r->too_big = true;
            return 0;
        }
        return n;
    }
    if (gw_buf_append(&r->line, ptr, n) != GW_OK) {
        r->too_big = true;
        return 0;
    }
    return feed_lines(r) ? n : 0;
}

/* Maps a finished transfer to a response and runs its callback. */
static void
on_done(CURL *easy, CURLcode cc, void *arg)
{
    ctl_kube *k = arg;
    ctl_kube_req *r = NULL;
    ctl_kube_resp resp = {.err = GW_OK};
    json_t *body = NULL;
    char qe[256];

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (r == NULL)
        return;
    req_unlink(r);
    if (r->cancelled) {
        req_free(r);
        return;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
    if (r->too_big)
        resp.err = GW_EFULL;
    else if (r->bad_line)
        resp.err = GW_EPROTO;
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        resp.err = GW_ETIMEDOUT;
    else if (cc != CURLE_OK)
        resp.err = GW_EIO;
    if (cc != CURLE_OK && !r->too_big && !r->bad_line)
        gw_log_ratelimited(GW_LOG_INFO, 5, "CTL-KUBE-TRANSFER", "verb=%s err=%s", r->verb,
                           gw_log_q(qe, sizeof(qe), curl_easy_strerror(cc)));
    if (resp.err == GW_OK && r->body.len > 0) {
        json_error_t jerr;
        body = json_loadb(r->body.data, r->body.len, 0, &jerr);
        if (body == NULL && resp.status >= 200 && resp.status < 300 && !r->stream)
            resp.err = GW_EPROTO;
    }
    if (body != NULL && json_is_object(body) &&
        json_str_eq(json_object_get(body, "kind"), "Status")) {
        resp.reason = json_string_value(json_object_get(body, "reason"));
        resp.message = json_string_value(json_object_get(body, "message"));
    }
    resp.body = body;
    if (resp.status == 401) {
        k->token_stale = true;
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-KUBE-UNAUTHORIZED",
                           "verb=%s msg=\"401 from the API server; the token is re-read before "
                           "the next request\"",
                           r->verb);
    }
    ctl_metrics_kube_request(k->metrics, r->verb, resp.err == GW_OK ? resp.status : 0);
    r->cb(&resp, r->arg);
    json_decref(body);
    req_free(r);
}

/* Adds the requests started from inside a curl callback. One that curl
 * refuses now completes with GW_EIO, as if its transfer had failed. */
static void
on_defer(gw_loop *loop, void *arg)
{
    ctl_kube *k = arg;
    (void)loop;

    for (bool again = true; again;) {
        again = false;
        for (ctl_kube_req *r = k->reqs; r != NULL; r = r->next) {
            if (!r->deferred)
                continue;
            r->deferred = false;
            if (gw_curlm_add(k->curlm, r->easy) != GW_OK) {
                ctl_kube_resp resp = {.err = GW_EIO};
                req_unlink(r);
                r->cb(&resp, r->arg);
                req_free(r);
                again = true; /* the list changed under us */
                break;
            }
        }
    }
}

gw_err
ctl_kube_new(gw_loop *loop, const ctl_kube_conf *conf, const ctl_kube_opts *o, ctl_metrics *metrics,
             ctl_kube **out)
{
    ctl_kube *k;
    gw_err rc;

    if (conf->server == NULL ||
        (strncmp(conf->server, "https://", 8) != 0 && strncmp(conf->server, "http://", 7) != 0))
        return GW_EINVAL;
    k = gw_xcalloc(1, sizeof(*k));
    k->loop = loop;
    k->metrics = metrics;
    conf_copy(&k->conf, conf);
    k->https = strncmp(conf->server, "https://", 8) == 0;
    k->timeout_ms = o->request_timeout_ms;
    k->user_agent = gw_xstrdup(o->user_agent != NULL ? o->user_agent : "llmgw-controller");
    k->token = ctl_dup_opt(conf->token);
    k->defer = gw_timer_new(loop, on_defer, k);
    rc = gw_curlm_new(loop, on_done, k, 0, MAX_IDLE_CONNS, &k->curlm);
    if (rc != GW_OK) {
        ctl_kube_free(k);
        return rc;
    }
    refresh_token(k);
    *out = k;
    return GW_OK;
}

void
ctl_kube_free(ctl_kube *k)
{
    if (k == NULL)
        return;
    while (k->reqs != NULL) {
        ctl_kube_req *r = k->reqs;
        req_unlink(r);
        if (!r->deferred)
            gw_curlm_remove(k->curlm, r->easy);
        req_free(r);
    }
    gw_timer_free(k->defer);
    gw_curlm_free(k->curlm);
    ctl_kube_conf_fini(&k->conf);
    free(k->user_agent);
    free(k->token);
    free(k);
}

/* Builds the request's headers: Accept, Content-Type, Authorization. */
static struct curl_slist *
make_headers(ctl_kube *k, const char *content_type)
{
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");

    if (content_type != NULL) {
        char *ct = ctl_strf("Content-Type: %s", content_type);
        h = curl_slist_append(h, ct);
        free(ct);
    }
    refresh_token(k);
    if (k->token != NULL) {
        if (k->https) {
            size_t n = strlen(k->token) + 32;
            char *auth = gw_xmalloc(n);
            snprintf(auth, n, "Authorization: Bearer %s", k->token);
            h = curl_slist_append(h, auth);
            memset(auth, 0, n); /* the slist keeps its own copy */
            free(auth);
        } else if (!k->warned_plain) {
            gw_log(GW_LOG_WARN, "CTL-KUBE-PLAINTEXT",
                   "server=%s msg=\"the bearer token is not sent over plain http\"",
                   k->conf.server);
            k->warned_plain = true;
        }
    }
    return h;
}

static gw_err
start(ctl_kube *k, const char *method, const char *path, const char *content_type,
      const json_t *body, bool stream, uint64_t timeout_ms, ctl_kube_line_fn on_line,
      ctl_kube_done_fn cb, void *arg, ctl_kube_req **out)
{
    ctl_kube_req *r = gw_xcalloc(1, sizeof(*r));
    char *url;
    CURL *e;

    r->k = k;
    r->stream = stream;
    r->on_line = on_line;
    r->cb = cb;
    r->arg = arg;
    gw_strlcpy(r->verb, method, sizeof(r->verb));
    gw_buf_init(&r->body, CTL_KUBE_MAX_BODY);
    gw_buf_init(&r->line, CTL_KUBE_MAX_LINE);
    e = curl_easy_init();
    if (e == NULL) {
        req_free(r);
        return GW_ENOMEM;
    }
    r->easy = e;
    url = ctl_strf("%s%s", k->conf.server, path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, k->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(k->timeout_ms < 10000 ? k->timeout_ms : 10000));
    if (timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    /* A watch may sit idle for a minute between bookmarks: keepalive probes
     * notice a dead peer that never sends a RST. */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    if (k->conf.ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, k->conf.ca_file);
    if (k->conf.ca_data != NULL) {
        struct curl_blob b = {
            .data = k->conf.ca_data, .len = k->conf.ca_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    if (k->conf.insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (k->conf.cert_file != NULL)
        curl_easy_setopt(e, CURLOPT_SSLCERT, k->conf.cert_file);
    if (k->conf.key_file != NULL)
        curl_easy_setopt(e, CURLOPT_SSLKEY, k->conf.key_file);
    if (k->conf.cert_data != NULL) {
        struct curl_blob b = {
            .data = k->conf.cert_data, .len = k->conf.cert_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (k->conf.key_data != NULL) {
        struct curl_blob b = {
            .data = k->conf.key_data, .len = k->conf.key_len, .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    }
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        r->body_text = json_dumps(body, JSON_COMPACT);
        if (r->body_text == NULL) {
            req_free(r);
            return GW_EINVAL;
        }
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body_text);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body_text));
    } else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    }
    r->hdrs = make_headers(k, body != NULL ? content_type : NULL);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    if (k->in_write > 0) {
        r->deferred = true;
        gw_timer_start(k->defer, 0);
    } else if (gw_curlm_add(k->curlm, e) != GW_OK) {
        req_free(r);
        return GW_EIO;
    }
    r->next = k->reqs;
    if (k->reqs != NULL)
        k->reqs->prev = r;
    k->reqs = r;
    if (out != NULL)
        *out = r;
    return GW_OK;
}

gw_err
ctl_kube_request(ctl_kube *k, const char *method, const char *path, const char *content_type,
                 const json_t *body, ctl_kube_done_fn cb, void *arg, ctl_kube_req **out)
{
    return start(k, method, path, content_type != NULL ? content_type : "application/json", body,
                 false, k->timeout_ms, NULL, cb, arg, out);
}

gw_err
ctl_kube_stream(ctl_kube *k, const char *path, uint64_t guard_ms, ctl_kube_line_fn on_line,
                ctl_kube_done_fn on_end, void *arg, ctl_kube_req **out)
{
    return start(k, "GET", path, NULL, NULL, true, guard_ms, on_line, on_end, arg, out);
}

void
ctl_kube_cancel(ctl_kube_req *r)
{
    if (r == NULL || r->cancelled)
        return;
    r->cancelled = true;
    if (r->in_cb)
        return; /* the write callback stops the transfer; on_done frees it */
    req_unlink(r);
    if (!r->deferred)
        gw_curlm_remove(r->k->curlm, r->easy);
    req_free(r);
}
