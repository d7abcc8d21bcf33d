/* Unit tests for ctl_kube: base64 and escaping, kubeconfig and in-cluster
 * configuration (temp files), and requests and streams on a loop against an
 * in-process MHD server (loopback only): Status answers, non-JSON answers,
 * connect failures, line splitting across writes, non-200 streams, cancel
 * from inside a line callback, requests started from inside one, and the
 * token withheld over plain http. Token rotation over TLS and the watch
 * protocol run against the API double (e2e/cases/kube_auth.sh,
 * kube_watch_410.sh). */
#include <criterion/criterion.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_kube.h"
#include "gw/gw_httpd.h"
#include "gw/gw_loop.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

static char tmpdir[64];

static void
setup(void)
{
    strcpy(tmpdir, "/tmp/ctl_kube_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    unsetenv("KUBERNETES_SERVICE_HOST");
    unsetenv("KUBERNETES_SERVICE_PORT");
}

static void
teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
    ut_leak_check();
}

TestSuite(ctl_kube, .init = setup, .fini = teardown, .timeout = 20);

static char *
write_file(const char *name, const char *text)
{
    char *path = NULL;
    FILE *f;

    cr_assert(asprintf(&path, "%s/%s", tmpdir, name) > 0);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

Test(ctl_kube, base64_and_escaping)
{
    char *out = NULL;
    size_t n = 0;

    cr_assert(ctl_kube_b64decode("aGVsbG8=", 8, &out, &n));
    cr_assert_eq(n, 5);
    cr_assert_str_eq(out, "hello");
    free(out);
    cr_assert(ctl_kube_b64decode("aGVsbG8", 7, &out, &n), "padding is optional");
    cr_assert_str_eq(out, "hello");
    free(out);
    cr_assert(ctl_kube_b64decode("", 0, &out, &n));
    cr_assert_eq(n, 0);
    free(out);
    out = (char *)0x1;
    cr_assert_not(ctl_kube_b64decode("aGV$bG8=", 8, &out, &n));
    cr_assert_not(ctl_kube_b64decode("a", 1, &out, &n), "one char is never whole");
    cr_assert_not(ctl_kube_b64decode("aG=", 3, &out, &n), "bad padding");
    cr_assert_eq(out, (char *)0x1, "outputs untouched on error");
    out = ctl_kube_escape("a=b,c in (x y)/~");
    cr_assert_str_eq(out, "a%3Db%2Cc%20in%20%28x%20y%29%2F~");
    free(out);
}

#define KC_HEAD                                                                                    \
    "apiVersion: v1\nkind: Config\ncurrent-context: dev\n"                                         \
    "clusters:\n- name: c1\n  cluster: {server: \"https://10.0.0.1:6443/\", "                      \
    "certificate-authority-data: \"Q0E=\"}\n"                                                      \
    "- name: c2\n  cluster: {server: \"http://127.0.0.1:1\", insecure-skip-tls-verify: true}\n"

Test(ctl_kube, kubeconfig_current_and_named_contexts)
{
    char *p = write_file(
        "kc", KC_HEAD "users:\n- name: u1\n  user: {token: tok}\n"
                      "- name: u2\n  user: {tokenFile: sa/token, client-certificate: c.pem, "
                      "client-key: /abs/k.pem}\n"
                      "contexts:\n- name: dev\n  context: {cluster: c1, user: u1, namespace: ns1}\n"
                      "- name: other\n  context: {cluster: c2, user: u2}\n");
    ctl_kube_conf c = {0};
    char *why = NULL, *want;

    cr_assert_eq(ctl_kube_conf_kubeconfig(p, NULL, &c, &why), GW_OK, "%s", why);
    cr_assert_str_eq(c.server, "https://10.0.0.1:6443", "the trailing slash is dropped");
    cr_assert_str_eq(c.token, "tok");
    cr_assert_str_eq(c.ns, "ns1");
    cr_assert_eq(c.ca_len, 2);
    cr_assert_str_eq(c.ca_data, "CA");
    cr_assert_not(c.insecure);
    ctl_kube_conf_fini(&c);
    cr_assert_eq(ctl_kube_conf_kubeconfig(p, "other", &c, &why), GW_OK, "%s", why);
    cr_assert_str_eq(c.server, "http://127.0.0.1:1");
    cr_assert(c.insecure);
    cr_assert_str_eq(c.ns, "default");
    cr_assert(asprintf(&want, "%s/sa/token", tmpdir) > 0);
    cr_assert_str_eq(c.token_file, want, "relative paths resolve against the kubeconfig");
    free(want);
    cr_assert_str_eq(c.key_file, "/abs/k.pem");
    cr_assert(strstr(c.origin, "context other") != NULL);
    ctl_kube_conf_fini(&c);
    free(p);
}

Test(ctl_kube, kubeconfig_lists_merge_first_file_wins_and_missing_files_are_skipped)
{
    char *a = write_file("a", "apiVersion: v1\ncurrent-context: x\n"
                              "clusters:\n- name: c\n  cluster: {server: \"https://first\"}\n"
                              "contexts:\n- name: x\n  context: {cluster: c}\n");
    char *b = write_file("b", "apiVersion: v1\ncurrent-context: y\n"
                              "clusters:\n- name: c\n  cluster: {server: \"https://second\"}\n"
                              "users:\n- name: u\n  user: {token: t}\n"
                              "contexts:\n- name: y\n  context: {cluster: c, user: u}\n");
    char *list = NULL;
    ctl_kube_conf c = {0};
    char *why = NULL;

    cr_assert(asprintf(&list, "%s/missing:%s:%s", tmpdir, a, b) > 0);
    cr_assert_eq(ctl_kube_conf_kubeconfig(list, NULL, &c, &why), GW_OK, "%s", why);
    cr_assert_str_eq(c.server, "https://first");
    cr_assert_null(c.token, "context x has no user");
    ctl_kube_conf_fini(&c);
    cr_assert_eq(ctl_kube_conf_kubeconfig(list, "y", &c, &why), GW_OK, "%s", why);
    cr_assert_str_eq(c.server, "https://first", "cluster c is defined by the first file");
    cr_assert_str_eq(c.token, "t");
    ctl_kube_conf_fini(&c);
    free(list);
    free(a);
    free(b);
}

Test(ctl_kube, kubeconfig_problems_are_named)
{
    struct {
        const char *text, *ctx, *needle;
    } cases[] = {
        {KC_HEAD "contexts:\n- name: dev\n  context: {cluster: c1}\n", "nope",
         "context \"nope\" not found"},
        {KC_HEAD "contexts:\n- name: dev\n  context: {cluster: c9}\n", NULL,
         "cluster \"c9\" not found"},
        {KC_HEAD "contexts:\n- name: dev\n  context: {cluster: c1, user: ghost}\n", NULL,
         "user \"ghost\" not found"},
        {KC_HEAD "users:\n- name: u\n  user: {exec: {command: aws}}\n"
                 "contexts:\n- name: dev\n  context: {cluster: c1, user: u}\n",
         NULL, "exec is not supported"},
        {KC_HEAD "users:\n- name: u\n  user: {client-certificate: c.pem}\n"
                 "contexts:\n- name: dev\n  context: {cluster: c1, user: u}\n",
         NULL, "needs its key"},
        {"clusters:\n- name: c\n  cluster: {server: \"10.0.0.1:6443\"}\n"
         "contexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n",
         NULL, "server must be an http(s) URL"},
        {"clusters:\n- name: c\n  cluster: {server: \"https://x\", certificate-authority-data: "
         "\"!!\"}\ncontexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n",
         NULL, "not valid base64"},
        {"apiVersion: v1\n", NULL, "no current-context"},
        {"a: [", NULL, ""},
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        char *p = write_file("bad", cases[i].text);
        ctl_kube_conf c = {0};
        char *why = NULL;
        cr_assert_eq(ctl_kube_conf_kubeconfig(p, cases[i].ctx, &c, &why), GW_EINVAL, "case %zu", i);
        cr_assert(strstr(why, cases[i].needle) != NULL, "\"%s\" lacks \"%s\"", why,
                  cases[i].needle);
        cr_assert_null(c.server, "out untouched on error");
        free(why);
        free(p);
    }
    {
        ctl_kube_conf c = {0};
        char *why = NULL;
        cr_assert_eq(ctl_kube_conf_kubeconfig("/nonexistent/a:/nonexistent/b", NULL, &c, &why),
                     GW_ENOENT);
        free(why);
    }
}

Test(ctl_kube, in_cluster_configuration)
{
    ctl_kube_conf c = {0};
    char *why = NULL, *f;

    cr_assert_not(ctl_kube_in_cluster());
    cr_assert_eq(ctl_kube_conf_in_cluster(tmpdir, &c, &why), GW_ENOENT);
    free(why);
    setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
    setenv("KUBERNETES_SERVICE_PORT", "443", 1);
    cr_assert(ctl_kube_in_cluster());
    cr_assert_eq(ctl_kube_conf_in_cluster(tmpdir, &c, &why), GW_EIO, "no token file yet");
    cr_assert(strstr(why, "service-account files missing") != NULL, "%s", why);
    free(why);
    free(write_file("token", "abc\n"));
    free(write_file("ca.crt", "PEM"));
    cr_assert_eq(ctl_kube_conf_in_cluster(tmpdir, &c, &why), GW_OK, "%s", why);
    cr_assert_str_eq(c.server, "https://[fd00::1]:443");
    cr_assert_str_eq(c.ns, "default", "no namespace file: default");
    cr_assert(strstr(c.token_file, "/token") != NULL);
    ctl_kube_conf_fini(&c);
    free(write_file("namespace", "models\n"));
    cr_assert_eq(ctl_kube_conf_load(NULL, NULL, tmpdir, &c, &why), GW_OK, "%s", why);
    cr_assert_str_eq(c.ns, "models");
    cr_assert_str_eq(c.origin, "in-cluster");
    ctl_kube_conf_fini(&c);
    setenv("KUBERNETES_SERVICE_PORT", "44x", 1);
    cr_assert_eq(ctl_kube_conf_in_cluster(tmpdir, &c, &why), GW_EINVAL);
    free(why);
    f = write_file("kc", KC_HEAD "contexts:\n- name: dev\n  context: {cluster: c2}\n");
    cr_assert_eq(ctl_kube_conf_load(f, NULL, tmpdir, &c, &why), GW_OK,
                 "an explicit kubeconfig wins over the pod environment");
    cr_assert_str_eq(c.server, "http://127.0.0.1:1");
    ctl_kube_conf_fini(&c);
    free(f);
}

/* ---- requests against an in-process server ---- */

typedef struct stream_src {
    const char *body;
    size_t len, off;
} stream_src;

/* Hands out at most 7 bytes per call, so lines span many curl writes. */
static ssize_t
read_slow(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_src *s = cls;
    size_t n = s->len - s->off;
    (void)pos;

    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n > 7)
        n = 7;
    if (n > max)
        n = max;
    memcpy(buf, s->body + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static const char stream_body[] = "{\"type\":\"ADDED\",\"object\":{\"n\":1}}\n"
                                  "{\"type\":\"MODIFIED\",\"object\":{\"n\":2}}\n"
                                  "{\"type\":\"DELETED\",\"object\":{\"n\":3}}\n";

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
        const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload;
    (void)con_cls;
    *upload_size = 0;
    if (strcmp(url, "/json") == 0)
        return gw_httpd_respond(conn, 200, "application/json", "{\"kind\":\"PodList\"}", 18, NULL);
    if (strcmp(url, "/missing") == 0) {
        const char *b = "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"pods \\\"x\\\" "
                        "not found\",\"code\":404}";
        return gw_httpd_respond(conn, 404, "application/json", b, strlen(b), NULL);
    }
    if (strcmp(url, "/notjson") == 0)
        return gw_httpd_respond(conn, 200, "text/plain", "hello", 5, NULL);
    if (strcmp(url, "/auth") == 0) {
        const char *a = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        char body[256];
        snprintf(body, sizeof(body), "{\"auth\":\"%s\"}", a != NULL ? a : "");
        return gw_httpd_respond(conn, 200, "application/json", body, strlen(body), NULL);
    }
    if (strcmp(url, "/stream") == 0) {
        stream_src *s = calloc(1, sizeof(*s));
        struct MHD_Response *r;
        enum MHD_Result rc;
        s->body = stream_body;
        s->len = strlen(stream_body);
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, read_slow, s, free);
        rc = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/gone") == 0) {
        const char *b = "{\"kind\":\"Status\",\"reason\":\"Expired\",\"code\":410}";
        return gw_httpd_respond(conn, 410, "application/json", b, strlen(b), NULL);
    }
    return gw_httpd_respond(conn, 500, "text/plain", "?", 1, NULL);
}

typedef struct fx {
    gw_loop *loop;
    gw_httpd *httpd;
    ctl_kube *kube;
    gw_timer *guard;
    int done;
    ctl_kube_resp last;
    char *last_body; /* serialised */
    int lines;
    char line_types[64];
    ctl_kube_req *req;
    bool cancel_on_first;
    bool request_inside;
} fx;

static void
on_guard(gw_loop *loop, void *arg)
{
    (void)arg;
    gw_loop_stop(loop);
}

static void
fx_start(fx *f, const char *token, bool refuse)
{
    gw_httpd_opts o = {.host = "127.0.0.1", .handler = handler};
    ctl_kube_conf c = {0};
    ctl_kube_opts ko = {.request_timeout_ms = 5000};
    char srv[64];

    memset(f, 0, sizeof(*f));
    cr_assert_eq(gw_loop_new(&f->loop), GW_OK);
    cr_assert_eq(gw_httpd_start(f->loop, &o, &f->httpd), GW_OK);
    snprintf(srv, sizeof(srv), "http://127.0.0.1:%u", refuse ? 1u : gw_httpd_port(f->httpd));
    c.server = srv;
    c.token = (char *)token;
    c.ns = "default";
    cr_assert_eq(ctl_kube_new(f->loop, &c, &ko, NULL, &f->kube), GW_OK);
    f->guard = gw_timer_new(f->loop, on_guard, f);
    gw_timer_start(f->guard, 5000);
}

static void
fx_run(fx *f)
{
    cr_assert_eq(gw_loop_run(f->loop), GW_OK);
}

static void
fx_stop(fx *f)
{
    ctl_kube_free(f->kube);
    gw_timer_free(f->guard);
    gw_httpd_free(f->httpd);
    gw_loop_free(f->loop);
    free(f->last_body);
}

static void
on_resp(const ctl_kube_resp *r, void *arg)
{
    fx *f = arg;

    f->done++;
    f->last = *r;
    f->last.body = NULL;
    f->last.reason = r->reason != NULL ? strdup(r->reason) : NULL;
    f->last.message = NULL;
    free(f->last_body);
    f->last_body = r->body != NULL ? json_dumps(r->body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    gw_loop_stop(f->loop);
}

Test(ctl_kube, answers_and_their_outcomes)
{
    fx f;

    fx_start(&f, "secret", false);
    cr_assert_eq(ctl_kube_request(f.kube, "GET", "/json", NULL, NULL, on_resp, &f, NULL), GW_OK);
    fx_run(&f);
    cr_assert_eq(f.last.err, GW_OK);
    cr_assert_eq(f.last.status, 200);
    cr_assert_str_eq(f.last_body, "{\"kind\":\"PodList\"}");

    cr_assert_eq(ctl_kube_request(f.kube, "GET", "/missing", NULL, NULL, on_resp, &f, NULL), GW_OK);
    fx_run(&f);
    cr_assert_eq(f.last.err, GW_OK, "an HTTP error is an answer");
    cr_assert_eq(f.last.status, 404);
    cr_assert_str_eq(f.last.reason, "NotFound", "the Status reason is surfaced");
    free((char *)f.last.reason);

    cr_assert_eq(ctl_kube_request(f.kube, "GET", "/notjson", NULL, NULL, on_resp, &f, NULL), GW_OK);
    fx_run(&f);
    cr_assert_eq(f.last.err, GW_EPROTO, "a 2xx that is not JSON is a protocol error");

    cr_assert_eq(ctl_kube_request(f.kube, "GET", "/auth", NULL, NULL, on_resp, &f, NULL), GW_OK);
    fx_run(&f);
    cr_assert_str_eq(f.last_body, "{\"auth\":\"\"}", "no bearer token over plain http");
    cr_assert_eq(f.done, 4);
    fx_stop(&f);
}

Test(ctl_kube, a_refused_connection_is_an_io_error)
{
    fx f;

    fx_start(&f, NULL, true);
    cr_assert_eq(ctl_kube_request(f.kube, "GET", "/json", NULL, NULL, on_resp, &f, NULL), GW_OK);
    fx_run(&f);
    cr_assert_eq(f.done, 1);
    cr_assert_eq(f.last.err, GW_EIO);
    cr_assert_eq(f.last.status, 0);
    fx_stop(&f);
}

static void
on_line(const json_t *ev, void *arg)
{
    fx *f = arg;
    const char *t = json_string_value(json_object_get(ev, "type"));

    f->lines++;
    strncat(f->line_types, t != NULL ? t : "?", sizeof(f->line_types) - strlen(f->line_types) - 2);
    strcat(f->line_types, " ");
    if (f->cancel_on_first) {
        ctl_kube_cancel(f->req);
        gw_loop_stop(f->loop);
    }
    if (f->request_inside && f->lines == 1)
        cr_assert_eq(ctl_kube_request(f->kube, "GET", "/json", NULL, NULL, on_resp, f, NULL), GW_OK,
                     "a request started from a line callback is accepted");
}

static void
on_stream_end(const ctl_kube_resp *r, void *arg)
{
    fx *f = arg;

    f->done += 10;
    f->last = *r;
    f->last.body = NULL;
    f->last.reason = NULL;
    f->last.message = NULL;
    if (f->done >= 11 || !f->request_inside)
        gw_loop_stop(f->loop);
}

Test(ctl_kube, a_stream_delivers_each_line_as_it_completes)
{
    fx f;

    fx_start(&f, NULL, false);
    cr_assert_eq(ctl_kube_stream(f.kube, "/stream", 0, on_line, on_stream_end, &f, &f.req), GW_OK);
    fx_run(&f);
    cr_assert_eq(f.lines, 3);
    cr_assert_str_eq(f.line_types, "ADDED MODIFIED DELETED ");
    cr_assert_eq(f.done, 10, "on_end once, at the clean end");
    cr_assert_eq(f.last.err, GW_OK);
    cr_assert_eq(f.last.status, 200);
    fx_stop(&f);
}

Test(ctl_kube, a_non_200_stream_is_reported_whole)
{
    fx f;

    fx_start(&f, NULL, false);
    cr_assert_eq(ctl_kube_stream(f.kube, "/gone", 0, on_line, on_stream_end, &f, &f.req), GW_OK);
    fx_run(&f);
    cr_assert_eq(f.lines, 0);
    cr_assert_eq(f.last.status, 410);
    fx_stop(&f);
}

Test(ctl_kube, cancel_inside_a_line_callback_stops_the_stream_silently)
{
    fx f;

    fx_start(&f, NULL, false);
    f.cancel_on_first = true;
    cr_assert_eq(ctl_kube_stream(f.kube, "/stream", 0, on_line, on_stream_end, &f, &f.req), GW_OK);
    fx_run(&f);
    gw_timer_start(f.guard, 200); /* let curl finish the aborted transfer */
    fx_run(&f);
    cr_assert_eq(f.lines, 1);
    cr_assert_eq(f.done, 0, "a cancelled request's callback never runs");
    fx_stop(&f);
}

Test(ctl_kube, a_request_started_inside_a_line_callback_is_deferred_and_completes)
{
    fx f;

    fx_start(&f, NULL, false);
    f.request_inside = true;
    cr_assert_eq(ctl_kube_stream(f.kube, "/stream", 0, on_line, on_stream_end, &f, &f.req), GW_OK);
    while (f.done < 11)
        fx_run(&f);
    cr_assert_eq(f.lines, 3);
    cr_assert_eq(f.done, 11, "the stream ended and the inner request completed");
    fx_stop(&f);
}

Test(ctl_kube, freeing_the_client_cancels_without_callbacks)
{
    fx f;

    fx_start(&f, NULL, false);
    cr_assert_eq(ctl_kube_request(f.kube, "GET", "/json", NULL, NULL, on_resp, &f, NULL), GW_OK);
    cr_assert_eq(ctl_kube_stream(f.kube, "/stream", 0, on_line, on_stream_end, &f, NULL), GW_OK);
    fx_stop(&f);
    cr_assert_eq(f.done, 0);
}
