/* gw_bus: nng sockets on a gw_loop (DESIGN §2, §4). The loop watches nng's
 * NNG_OPT_RECVFD and every send and receive is non-blocking, so nng's own
 * threads never call into our code. Dialers reconnect by themselves (nng's
 * redial), so a worker started before its controller simply waits.
 *
 * nng rules recorded here (STYLE §5): a message belongs to the socket after a
 * successful send; nng is not fork-safe (no fork without exec after opening).
 * Loop thread only. */
#ifndef GW_BUS_H
#define GW_BUS_H

#include <stddef.h>

#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct gw_bus gw_bus;

typedef enum gw_bus_kind {
    GW_BUS_PUB,
    GW_BUS_SUB, /* subscribed to everything; the receiver checks the topic byte */
    GW_BUS_REQ,
    GW_BUS_REP,
    GW_BUS_PUSH,
    GW_BUS_PULL,
} gw_bus_kind;

/* Called for each received message. <data> is valid only during the call. */
typedef void (*gw_bus_recv_fn)(gw_bus *bus, const void *data, size_t len, void *arg);

/* Opens a socket of <kind> and listens on <url> (e.g. tcp://0.0.0.0:7701,
 * ipc:///tmp/x). <cb> may be NULL for send-only kinds. GW_EIO if nng refuses
 * (logged with nng's message). */
GW_MUST_CHECK gw_err gw_bus_listen(gw_loop *loop, gw_bus_kind kind, const char *url,
                                   gw_bus_recv_fn cb, void *arg, gw_bus **out);
/* As gw_bus_listen but dials <url>, without waiting for the peer. */
GW_MUST_CHECK gw_err gw_bus_dial(gw_loop *loop, gw_bus_kind kind, const char *url,
                                 gw_bus_recv_fn cb, void *arg, gw_bus **out);

/* Sends <len> bytes, prefixed by <topic> if it is not 0 (PUB topics are one
 * byte: 'S' snapshot, 'L' load). Never blocks: GW_EAGAIN when the socket
 * cannot take it now (no peer, or a REQ awaiting its reply), GW_EIO otherwise. */
GW_MUST_CHECK gw_err gw_bus_send(gw_bus *bus, char topic, const void *data, size_t len);

/* For REQ sockets: how long nng waits for a reply before re-sending the
 * request (NNG_OPT_REQ_RESENDTIME). */
void gw_bus_set_resend_ms(gw_bus *bus, unsigned ms);

/* Largest message this socket accepts (NNG_OPT_RECVMAXSZ). nng's default is
 * 1 MiB and it drops larger messages and the pipe with them, so set it to
 * the protocol's own limit. */
void gw_bus_set_recv_max(gw_bus *bus, size_t bytes);

/* Closes the socket and frees <bus>. NULL ok. */
void gw_bus_free(gw_bus *bus);

#endif
