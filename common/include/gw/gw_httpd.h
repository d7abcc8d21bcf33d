/* gw_httpd: libmicrohttpd on a gw_loop, in external-epoll mode (DESIGN §2):
 * MHD_USE_EPOLL with no internal thread; MHD's epoll fd is watched by the loop
 * and MHD_run is called when it is readable or when MHD's own timeout is due.
 * MHD_ALLOW_SUSPEND_RESUME is on so a response body can wait for upstream
 * bytes; after MHD_resume_connection the caller must gw_httpd_kick().
 *
 * MHD rules recorded here (STYLE §5): responses are destroyed right after
 * MHD_queue_response; a content-reader callback that returns 0 must have
 * suspended the connection first, or MHD busy-loops.
 *
 * TLS (optional): with a certificate and key the daemon speaks HTTPS only
 * (MHD_USE_TLS, GnuTLS in Debian's libmicrohttpd), on the same external-epoll
 * loop and with the same suspend/resume rules. Bytes GnuTLS has already
 * decrypted raise no epoll event; MHD keeps such connections on its ready
 * list and MHD_get_timeout returns 0 for them, which gw_httpd honours
 * before every loop wait.
 * Loop thread only. */
#ifndef GW_HTTPD_H
#define GW_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct gw_httpd gw_httpd;

typedef struct gw_httpd_opts {
    const char *host;    /* listen address; NULL = 0.0.0.0 */
    uint16_t port;       /* 0 = any free port (read it back with gw_httpd_port) */
    bool reuseport;      /* SO_REUSEPORT: several processes share the port */
    unsigned conn_limit; /* connections served at once; 0 = 8192 */
    /* Past conn_limit, MHD stops accepting and the kernel's listen backlog
     * holds new connections until one closes. With conn_refuse > 0, up to
     * that many more are accepted first, only for the handler to refuse
     * with an answer (gw_httpd_conn_refused) and close; past those, the
     * backlog again. */
    unsigned conn_refuse;
    unsigned conn_timeout_s; /* idle connection timeout; 0 = none */
    size_t conn_memory;      /* per-connection header memory; 0 = MHD default (32 KiB) */
    MHD_AccessHandlerCallback handler;
    void *handler_arg;
    MHD_RequestCompletedCallback completed; /* may be NULL */
    void *completed_arg;
    /* HTTPS: both NULL = plain HTTP. PEM text, NUL-terminated, borrowed for
     * the call only (gw_httpd keeps its own copies, and wipes the key's when
     * freed). The certificate may be a chain (leaf first); the key must not
     * be encrypted. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
} gw_httpd_opts;

/* Binds, listens and registers with <loop>. GW_ESYS if the address is taken
 * or MHD refuses to start. GW_EINVAL if only one of tls_cert_pem and
 * tls_key_pem is set, if either is not PEM, or if the TLS library refuses
 * them (unreadable, or a key that does not match the certificate). Every
 * failure is logged with what was wrong (never the key's bytes). */
GW_MUST_CHECK gw_err gw_httpd_start(gw_loop *loop, const gw_httpd_opts *opts, gw_httpd **out);

uint16_t gw_httpd_port(const gw_httpd *h);

/* Stops accepting new connections (closes the listen socket; others sharing
 * the port via SO_REUSEPORT take over). Existing connections go on. */
void gw_httpd_quiesce(gw_httpd *h);

/* Makes the loop run MHD soon. Call it after MHD_resume_connection: in
 * external-epoll mode MHD 0.9.75 does not signal its epoll fd on resume, so
 * a resumed connection would otherwise wait for the next unrelated event. */
void gw_httpd_kick(gw_httpd *h);

/* True if <conn> arrived while conn_limit connections were open (and
 * conn_refuse > 0): the handler should answer its request with an error
 * and "Connection: close". It stays refused if slots free meanwhile. */
bool gw_httpd_conn_refused(struct MHD_Connection *conn);

/* Number of open client connections (refused ones included). */
unsigned gw_httpd_connections(const gw_httpd *h);

/* Stops the daemon, closing every connection, and frees <h>. NULL ok. */
void gw_httpd_free(gw_httpd *h);

/* Queues a complete response with <body> (copied) and optional extra headers
 * given as NULL-terminated name/value pairs. Returns MHD_queue_response's result. */
enum MHD_Result gw_httpd_respond(struct MHD_Connection *conn, unsigned status,
                                 const char *content_type, const char *body, size_t len,
                                 const char *const *headers);

#endif
