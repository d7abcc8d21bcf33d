/* ctl_kube: the controller's Kubernetes API client (DESIGN §3), the only
 * libcurl user for Kubernetes. Two layers:
 *
 * Configuration (pure apart from reading files): where the API server is and
 * how to authenticate, from
 *   - in-cluster: KUBERNETES_SERVICE_HOST/PORT and the service-account
 *     directory (token, ca.crt, namespace);
 *   - a kubeconfig (KUBECONFIG semantics: a ':'-separated list, the first
 *     file to define a name wins; the current context or --kube-context):
 *     server, certificate-authority[-data], insecure-skip-tls-verify, token,
 *     tokenFile, client-certificate[-data] and client-key[-data]. Relative
 *     paths resolve against the kubeconfig's directory. exec and
 *     auth-provider plugins, username/password and proxy-url are refused
 *     with a message naming them.
 *
 * Requests (loop thread only): one-shot requests and streaming watches on
 * the controller's loop through gw_curlm, never blocking. Every request reads
 * the bearer token afresh when it comes from a file whose stat signature
 * changed (kubelet rotates projected service-account tokens) or after a 401,
 * so a rotated token is picked up without a restart. Like client-go, the
 * bearer token is sent only over https: over plain http it is withheld and a
 * warning is logged once. Tokens and key material are never logged.
 *
 * Async contract (STYLE §4): when a function taking a callback returns an
 * error, the callback never runs; on GW_OK it runs exactly once, unless the
 * request is cancelled first (ctl_kube_cancel) or the client is freed. */
#ifndef CTL_KUBE_H
#define CTL_KUBE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_metrics.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

/* Largest one-shot answer read (a LIST page of 500 large pods fits). */
#define CTL_KUBE_MAX_BODY (64u << 20)
/* Largest watch event line (etcd's object limit is 1.5 MiB). */
#define CTL_KUBE_MAX_LINE (16u << 20)

/* Where the API server is and how to reach it. Every string is owned. */
typedef struct ctl_kube_conf {
    char *server;     /* "https://host:port", no trailing '/' */
    char *ca_file;    /* PEM bundle to verify the server; NULL = CA data or system store */
    char *ca_data;    /* PEM bytes (certificate-authority-data, decoded) */
    size_t ca_len;    /* bytes in ca_data */
    bool insecure;    /* insecure-skip-tls-verify */
    char *token;      /* static bearer token; NULL = none */
    char *token_file; /* bearer token re-read when the file changes; NULL = none */
    char *cert_file;  /* client certificate and key, as files ... */
    char *key_file;
    char *cert_data; /* ... or PEM bytes */
    size_t cert_len;
    char *key_data;
    size_t key_len;
    char *ns;     /* default namespace of the context / pod; never NULL once loaded */
    char *origin; /* "in-cluster" or "kubeconfig <path> context <name>" (for logs) */
} ctl_kube_conf;

/* Loads the in-cluster configuration: the server from KUBERNETES_SERVICE_HOST
 * and KUBERNETES_SERVICE_PORT (IPv6 hosts bracketed), token_file, ca_file and
 * the namespace from <sa_dir> (the service-account mount). GW_ENOENT with *why
 * when the environment is not set, GW_EINVAL/GW_EIO when a file is missing or
 * unreadable. <out> must be zeroed; it is filled only on GW_OK. */
GW_MUST_CHECK gw_err ctl_kube_conf_in_cluster(const char *sa_dir, ctl_kube_conf *out, char **why);

/* Parses the kubeconfig files in <paths> (':'-separated; missing files are
 * skipped as kubectl does) and resolves context <context> (NULL or "" = the
 * current context). GW_EINVAL with *why naming the file and field on any
 * problem, GW_ENOENT when no file exists. <out> must be zeroed. */
GW_MUST_CHECK gw_err ctl_kube_conf_kubeconfig(const char *paths, const char *context,
                                              ctl_kube_conf *out, char **why);

/* The controller's rule: <kubeconfig> if set; else in-cluster when
 * KUBERNETES_SERVICE_HOST is set; else $HOME/.kube/config. */
GW_MUST_CHECK gw_err ctl_kube_conf_load(const char *kubeconfig, const char *context,
                                        const char *sa_dir, ctl_kube_conf *out, char **why);

/* True when KUBERNETES_SERVICE_HOST is set (running in a pod). */
bool ctl_kube_in_cluster(void);

/* Frees what <c> owns and zeroes it. */
void ctl_kube_conf_fini(ctl_kube_conf *c);

/* ---- requests ---- */

typedef struct ctl_kube ctl_kube;
typedef struct ctl_kube_req ctl_kube_req;

/* How a request ended. <err> is GW_OK when an HTTP answer arrived (any
 * status), GW_ETIMEDOUT (--kube-request-timeout or the watch guard), GW_EIO
 * (connect, TLS or transfer failure), GW_EFULL (answer over its cap) or
 * GW_EPROTO (a 2xx answer that is not JSON). <body> is the parsed JSON (NULL
 * for a stream or when not JSON), borrowed for the callback. <reason> and
 * <message> come from a Status body (NULL otherwise). */
typedef struct ctl_kube_resp {
    gw_err err;
    long status;
    const json_t *body;
    const char *reason;
    const char *message;
} ctl_kube_resp;

typedef void (*ctl_kube_done_fn)(const ctl_kube_resp *r, void *arg);
/* One watch event line, parsed (borrowed for the call). The stream stops
 * after the callback if it calls ctl_kube_cancel on its own request. */
typedef void (*ctl_kube_line_fn)(const json_t *event, void *arg);

typedef struct ctl_kube_opts {
    uint64_t request_timeout_ms; /* one-shot requests */
    const char *user_agent;      /* borrowed for the call; copied */
} ctl_kube_opts;

/* A client for <conf> (copied) on <loop>. <metrics> is borrowed (NULL ok).
 * GW_EINVAL when the server URL is not http(s). */
GW_MUST_CHECK gw_err ctl_kube_new(gw_loop *loop, const ctl_kube_conf *conf, const ctl_kube_opts *o,
                                  ctl_metrics *metrics, ctl_kube **out);

/* Cancels every request still running (their callbacks do not run) and
 * frees <k>. NULL ok. */
void ctl_kube_free(ctl_kube *k);

/* The default namespace of the configuration. */
const char *ctl_kube_namespace(const ctl_kube *k);

/* Starts <method> <path> (path and query, already escaped, starting with
 * '/'). <body> (borrowed; serialised now) is sent as <content_type> when
 * not NULL. <cb> runs once with the answer. *out (if <out> is not NULL)
 * identifies the request for ctl_kube_cancel until <cb> runs. */
GW_MUST_CHECK gw_err ctl_kube_request(ctl_kube *k, const char *method, const char *path,
                                      const char *content_type, const json_t *body,
                                      ctl_kube_done_fn cb, void *arg, ctl_kube_req **out);

/* Starts a streaming GET of <path> (a watch): each complete line of a 200
 * answer goes to <on_line> as it arrives; a non-200 answer is read whole and
 * reported through <on_end> like a one-shot request. <on_end> runs once when
 * the stream ends for any reason (clean end: err GW_OK, status 200).
 * <guard_ms> is a client-side deadline (0 = none) in case the server never
 * ends it. */
GW_MUST_CHECK gw_err ctl_kube_stream(ctl_kube *k, const char *path, uint64_t guard_ms,
                                     ctl_kube_line_fn on_line, ctl_kube_done_fn on_end, void *arg,
                                     ctl_kube_req **out);

/* Stops a request; its callbacks do not run (any more). Safe from inside its
 * own line callback. NULL ok. */
void ctl_kube_cancel(ctl_kube_req *r);

/* <s> percent-encoded for a query value (RFC 3986 unreserved characters
 * kept), as a heap string. */
char *ctl_kube_escape(const char *s);

/* Decodes <len> bytes of standard base64 (the encoding of Secret data and
 * kubeconfig *-data fields; padding optional, no whitespace) into a heap
 * buffer, NUL-terminated (not counted in *out_len). False, outputs untouched,
 * on a character outside the alphabet or a bad length. Pure. */
bool ctl_kube_b64decode(const char *s, size_t len, char **out, size_t *out_len);

#endif
