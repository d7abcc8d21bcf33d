/* gw_httpd: MHD in external-epoll mode on a gw_loop (see gw_httpd.h). We
 * create the listen socket ourselves so SO_REUSEPORT and the backlog are
 * explicit, then hand it to MHD with MHD_OPTION_LISTEN_SOCKET. */
#include "gw/gw_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct gw_httpd {
    gw_loop *loop;
    struct MHD_Daemon *daemon;
    gw_io *io;
    gw_timer *timer;
    int listen_fd; /* -1 once handed back by quiesce and closed */
    bool kicked;   /* a resumed connection or a freed slot awaits MHD_run */
    uint16_t port;
    /* MHD 0.9.75 hands the PEM text to GnuTLS, which parses (copies) it
     * while the daemon starts, but MHD keeps the pointers in the daemon and
     * its documentation promises nothing: ours stay alive until after
     * MHD_stop_daemon. The key's copy is wiped before it is freed. */
    char *tls_cert;
    char *tls_key;
    bool starting;        /* MHD_start_daemon is running: keep its first error */
    char start_msg[256];  /* MHD's first message during start, "" if none */
    unsigned conn_limit;  /* connections served at once */
    unsigned conn_refuse; /* more accepted only to be refused (gw_httpd_opts) */
    unsigned served;      /* open connections within conn_limit */
};

/* A connection's socket context (MHD_OPTION_NOTIFY_CONNECTION): whether it
 * counts toward conn_limit or arrived over it, to be refused. */
static char served_marker, refuse_marker;

/* MHD's own diagnostics (a client that vanished mid-response, a malformed
 * request line) are per-connection noise: log them at info, in logfmt.
 * While the daemon starts, the first one is also kept: it says why a start
 * failed (a bad certificate, say), and gw_httpd_start logs it as an error. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
mhd_logger(void *cls, const char *fmt, va_list ap)
{
    gw_httpd *h = cls;
    char msg[256], q[300];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (h != NULL && h->starting && h->start_msg[0] == '\0')
        gw_strlcpy(h->start_msg, msg, sizeof(h->start_msg));
    gw_log(GW_LOG_INFO, "GW-HTTPD-MHD", "msg=%s", gw_log_q(q, sizeof(q), msg));
}

/* Number of open client connections (MHD's count). */
static unsigned
open_connections(const gw_httpd *h)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info != NULL ? info->num_connections : 0;
}

/* At the connection limit MHD takes the listen socket out of its epoll set;
 * when a connection closes it only clears its at-limit flag, and puts the
 * socket back at the start of the next MHD_run. With nothing else pending
 * (no connection left, no timeout) no event would ever cause that run, and
 * the worker would stop accepting for good (seen in e2e faults_clients).
 * So when a run closed connections, one more run follows at once. */
static void
httpd_run(gw_httpd *h)
{
    unsigned before = open_connections(h);

    h->kicked = false;
    MHD_run(h->daemon);
    if (open_connections(h) < before)
        h->kicked = true;
}

static void
on_epoll_readable(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    httpd_run(arg);
}

static void
on_timer(gw_loop *loop, void *arg)
{
    (void)loop;
    httpd_run(arg);
}

/* Before each wait: MHD may have work that needs no fd event (a connection
 * whose data is already buffered, or a timeout); MHD_get_timeout says when. */
static void
on_prepare(gw_loop *loop, void *arg)
{
    gw_httpd *h = arg;
    MHD_UNSIGNED_LONG_LONG ms = 0;
    (void)loop;

    if (h->daemon == NULL)
        return;
    /* MHD_get_timeout does not know about connections resumed since the
     * last MHD_run; a kick must survive this refresh. */
    if (h->kicked)
        gw_timer_start(h->timer, 0);
    else if (MHD_get_timeout(h->daemon, &ms) == MHD_YES)
        gw_timer_start(h->timer, ms);
    else
        gw_timer_stop(h->timer);
}

static int
listen_socket(const char *host, uint16_t port, bool reuseport)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    int fd = -1, one = 1, rc, err;

    snprintf(portstr, sizeof(portstr), "%u", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        gw_log(GW_LOG_ERR, "GW-HTTPD-ADDR", "host=%s msg=\"%s\"", host ? host : "*",
               gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
        goto fail;
    if (listen(fd, 4096) != 0)
        goto fail;
    freeaddrinfo(res);
    return fd;
fail:
    err = errno;
    gw_log_errno(GW_LOG_ERR, err, "GW-HTTPD-LISTEN", "host=%s port=%u", host ? host : "*", port);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

static uint16_t
bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Checks what can be checked of the TLS material before MHD sees it, so the
 * common mistakes get a precise message. GnuTLS checks the rest at start. */
static gw_err
check_tls(const gw_httpd_opts *o)
{
    const char *cert = o->tls_cert_pem, *key = o->tls_key_pem, *why = NULL;

    if (cert == NULL && key == NULL)
        return GW_OK;
    if (cert == NULL || key == NULL)
        why = cert == NULL ? "a TLS key without a certificate" : "a TLS certificate without a key";
    else if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        why = "this libmicrohttpd was built without TLS support";
    else if (strstr(cert, "-----BEGIN CERTIFICATE-----") == NULL)
        why = "the TLS certificate is not PEM (no BEGIN CERTIFICATE line)";
    else if (strstr(key, "-----BEGIN ") == NULL || strstr(key, "PRIVATE KEY-----") == NULL)
        why = "the TLS key is not a PEM private key (no BEGIN ... PRIVATE KEY line)";
    else if (strstr(key, "ENCRYPTED") != NULL)
        why = "the TLS key is encrypted; an unencrypted key is needed";
    if (why == NULL)
        return GW_OK;
    gw_log(GW_LOG_ERR, "GW-HTTPD-TLS", "msg=\"%s\"", why);
    return GW_EINVAL;
}

/* MHD refused to start with TLS: was it the certificate and key? Starts and
 * stops a bare daemon with the same mode and no TLS; if that works, the TLS
 * material is what MHD refused. */
static bool
tls_is_the_cause(const gw_httpd_opts *o)
{
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_NO_LISTEN_SOCKET, 0,
                         NULL, NULL, o->handler, o->handler_arg, MHD_OPTION_END);

    if (d == NULL)
        return false;
    MHD_stop_daemon(d);
    return true;
}

/* MHD 0.9.75 closes the listen socket it was given when the start fails
 * after adopting it (a refused certificate, for one), but not on every
 * failure path. Closing the number again could close an fd another thread
 * just opened: close it only if it is still the same socket (<st>, from
 * fstat before the start). */
static void
close_if_still_ours(int fd, const struct stat *st)
{
    struct stat now;

    if (st->st_ino != 0 && fstat(fd, &now) == 0 && now.st_ino == st->st_ino &&
        now.st_dev == st->st_dev)
        close(fd);
}

static void
free_tls(gw_httpd *h)
{
    if (h->tls_key != NULL) {
        explicit_bzero(h->tls_key, strlen(h->tls_key));
        GW_FREE(h->tls_key);
    }
    GW_FREE(h->tls_cert);
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
    gw_httpd *h = cls;
    (void)conn;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if (h->conn_refuse > 0 && h->served >= h->conn_limit) {
            *socket_context = &refuse_marker;
            return;
        }
        h->served++;
        *socket_context = &served_marker;
    } else if (*socket_context == &served_marker) {
        h->served--;
    }
}

gw_err
gw_httpd_start(gw_loop *loop, const gw_httpd_opts *o, gw_httpd **out)
{
    gw_httpd *h;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
    struct stat lst;
    char q[300];
    gw_err rc;

    rc = check_tls(o);
    if (rc != GW_OK)
        return rc;
    h = gw_xcalloc(1, sizeof(*h));
    h->loop = loop;
    if (o->tls_cert_pem != NULL) {
        h->tls_cert = gw_xstrdup(o->tls_cert_pem);
        h->tls_key = gw_xstrdup(o->tls_key_pem);
        flags |= MHD_USE_TLS;
        /* MHD_OPTION_ARRAY: the HTTPS options may only be given with MHD_USE_TLS. */
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    h->listen_fd = listen_socket(o->host ? o->host : "0.0.0.0", o->port, o->reuseport);
    if (h->listen_fd < 0) {
        free_tls(h);
        free(h);
        return GW_ESYS;
    }
    h->port = bound_port(h->listen_fd);
    if (fstat(h->listen_fd, &lst) != 0)
        memset(&lst, 0, sizeof(lst));
    h->conn_limit = o->conn_limit ? o->conn_limit : 8192;
    h->conn_refuse = o->conn_refuse;
    h->starting = true;
    /* The logger goes first: MHD routes messages about the options that
     * precede it to stderr. */
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, o->handler, o->handler_arg, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, h,
        MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_NOTIFY_COMPLETED, o->completed,
        o->completed_arg, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_CONNECTION_LIMIT, h->conn_limit + h->conn_refuse, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int)o->conn_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(o->conn_memory ? o->conn_memory : 32 * 1024), MHD_OPTION_ARRAY, tls,
        MHD_OPTION_END);
    h->starting = false;
    if (h->daemon == NULL) {
        if (h->tls_cert != NULL && tls_is_the_cause(o)) {
            gw_log(GW_LOG_ERR, "GW-HTTPD-TLS",
                   "port=%u msg=\"TLS certificate or key refused (unreadable, or the key does "
                   "not match the certificate)\" mhd=%s",
                   h->port, gw_log_q(q, sizeof(q), h->start_msg));
            rc = GW_EINVAL;
        } else {
            gw_log(GW_LOG_ERR, "GW-HTTPD-START", "port=%u msg=\"MHD_start_daemon failed\" mhd=%s",
                   h->port, gw_log_q(q, sizeof(q), h->start_msg));
            rc = GW_ESYS;
        }
        close_if_still_ours(h->listen_fd, &lst);
        free_tls(h);
        free(h);
        return rc;
    }
    info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        gw_httpd_free(h);
        return GW_ESYS;
    }
    rc = gw_io_new(loop, info->epoll_fd, EPOLLIN, on_epoll_readable, h, &h->io);
    if (rc != GW_OK) {
        gw_httpd_free(h);
        return rc;
    }
    h->timer = gw_timer_new(loop, on_timer, h);
    rc = gw_loop_add_prepare(loop, on_prepare, h);
    if (rc != GW_OK) {
        gw_httpd_free(h);
        return rc;
    }
    *out = h;
    return GW_OK;
}

void
gw_httpd_kick(gw_httpd *h)
{
    h->kicked = true;
    gw_timer_start(h->timer, 0);
}

uint16_t
gw_httpd_port(const gw_httpd *h)
{
    return h->port;
}

void
gw_httpd_quiesce(gw_httpd *h)
{
    MHD_socket fd;

    if (h->listen_fd < 0)
        return;
    /* Connections already in this socket's accept queue would be reset by
     * the close: take them in first (SO_REUSEPORT gives each socket its own
     * queue, so the other workers cannot). */
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c = accept4(h->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            break;
        /* MHD owns (and on failure closes) the socket from here. */
        MHD_add_connection(h->daemon, c, (struct sockaddr *)&ss, len);
        gw_httpd_kick(h);
    }
    fd = MHD_quiesce_daemon(h->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    h->listen_fd = -1;
}

unsigned
gw_httpd_connections(const gw_httpd *h)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

bool
gw_httpd_conn_refused(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL && info->socket_context == &refuse_marker;
}

void
gw_httpd_free(gw_httpd *h)
{
    if (h == NULL)
        return;
    gw_io_free(h->io);
    gw_timer_free(h->timer);
    h->timer = NULL;
    if (h->daemon != NULL) {
        /* MHD closes a listen socket it still owns; after quiesce we closed it. */
        MHD_stop_daemon(h->daemon);
        h->daemon = NULL;
    }
    gw_loop_remove_prepare(h->loop, on_prepare, h);
    free_tls(h);
    free(h);
}

enum MHD_Result
gw_httpd_respond(struct MHD_Connection *conn, unsigned status, const char *content_type,
                 const char *body, size_t len, const char *const *headers)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    if (content_type != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}
