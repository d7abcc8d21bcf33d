/* gw_bus: nng sockets driven by the loop (see gw_bus.h). nng error codes are
 * translated here, once, and logged with nng_strerror. */
#include "gw/gw_bus.h"

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct gw_bus {
    gw_loop *loop;
    nng_socket sock;
    bool sock_open;
    gw_bus_kind kind;
    gw_io *io;
    gw_bus_recv_fn cb;
    void *arg;
};

static const char *const kind_names[] = {"pub", "sub", "req", "rep", "push", "pull"};

static void
on_readable(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    gw_bus *bus = arg;
    (void)loop;
    (void)fd;
    (void)events;

    /* Drain: the recv fd stays readable while messages are queued, but
     * receiving everything now keeps latency low under bursts. */
    for (;;) {
        nng_msg *msg = NULL;
        int nrv = nng_recvmsg(bus->sock, &msg, NNG_FLAG_NONBLOCK);
        /* ESTATE: a REQ socket with no request outstanding (its recv fd
         * can stay signalled after the reply was taken). */
        if (nrv == NNG_EAGAIN || nrv == NNG_ESTATE)
            return;
        if (nrv != 0) {
            gw_log_ratelimited(GW_LOG_WARN, 1, "GW-BUS-RECV", "kind=%s msg=\"%s\"",
                               kind_names[bus->kind], nng_strerror(nrv));
            return;
        }
        if (bus->cb != NULL)
            bus->cb(bus, nng_msg_body(msg), nng_msg_len(msg), bus->arg);
        nng_msg_free(msg);
    }
}

static int
open_kind(gw_bus_kind kind, nng_socket *s)
{
    switch (kind) {
    case GW_BUS_PUB:
        return nng_pub0_open(s);
    case GW_BUS_SUB:
        return nng_sub0_open(s);
    case GW_BUS_REQ:
        return nng_req0_open(s);
    case GW_BUS_REP:
        return nng_rep0_open(s);
    case GW_BUS_PUSH:
        return nng_push0_open(s);
    case GW_BUS_PULL:
        return nng_pull0_open(s);
    }
    return NNG_EINVAL;
}

static gw_err
bus_open(gw_loop *loop, gw_bus_kind kind, const char *url, bool listen, gw_bus_recv_fn cb,
         void *arg, gw_bus **out)
{
    gw_bus *bus = gw_xcalloc(1, sizeof(*bus));
    int nrv, fd;

    bus->loop = loop;
    bus->kind = kind;
    bus->cb = cb;
    bus->arg = arg;
    nrv = open_kind(kind, &bus->sock);
    if (nrv != 0) {
        gw_log(GW_LOG_ERR, "GW-BUS-OPEN", "kind=%s msg=\"%s\"", kind_names[kind],
               nng_strerror(nrv));
        goto fail;
    }
    bus->sock_open = true;
    if (kind == GW_BUS_SUB) {
        nrv = nng_socket_set(bus->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
        if (nrv != 0)
            goto fail_log;
    }
    /* Reconnect quickly after a controller restart (static stability). */
    nng_socket_set_ms(bus->sock, NNG_OPT_RECONNMINT, 50);
    nng_socket_set_ms(bus->sock, NNG_OPT_RECONNMAXT, 1000);
    if (listen)
        nrv = nng_listen(bus->sock, url, NULL, 0);
    else
        nrv = nng_dial(bus->sock, url, NULL, NNG_FLAG_NONBLOCK);
    if (nrv != 0)
        goto fail_log;
    if (kind != GW_BUS_PUB && kind != GW_BUS_PUSH) {
        nrv = nng_socket_get_int(bus->sock, NNG_OPT_RECVFD, &fd);
        if (nrv != 0)
            goto fail_log;
        if (gw_io_new(loop, fd, EPOLLIN, on_readable, bus, &bus->io) != GW_OK)
            goto fail;
    }
    *out = bus;
    return GW_OK;
fail_log:
    gw_log(GW_LOG_ERR, "GW-BUS-OPEN", "kind=%s url=%s msg=\"%s\"", kind_names[kind], url,
           nng_strerror(nrv));
fail:
    gw_bus_free(bus);
    return GW_EIO;
}

gw_err
gw_bus_listen(gw_loop *loop, gw_bus_kind kind, const char *url, gw_bus_recv_fn cb, void *arg,
              gw_bus **out)
{
    return bus_open(loop, kind, url, true, cb, arg, out);
}

gw_err
gw_bus_dial(gw_loop *loop, gw_bus_kind kind, const char *url, gw_bus_recv_fn cb, void *arg,
            gw_bus **out)
{
    return bus_open(loop, kind, url, false, cb, arg, out);
}

gw_err
gw_bus_send(gw_bus *bus, char topic, const void *data, size_t len)
{
    nng_msg *msg = NULL;
    int nrv;

    nrv = nng_msg_alloc(&msg, 0);
    if (nrv != 0)
        return GW_ENOMEM;
    if ((topic != 0 && nng_msg_append(msg, &topic, 1) != 0) ||
        nng_msg_append(msg, data, len) != 0) {
        nng_msg_free(msg);
        return GW_ENOMEM;
    }
    nrv = nng_sendmsg(bus->sock, msg, NNG_FLAG_NONBLOCK);
    if (nrv == 0)
        return GW_OK; /* the socket owns msg now */
    nng_msg_free(msg);
    if (nrv == NNG_EAGAIN)
        return GW_EAGAIN;
    gw_log_ratelimited(GW_LOG_WARN, 1, "GW-BUS-SEND", "kind=%s msg=\"%s\"", kind_names[bus->kind],
                       nng_strerror(nrv));
    return GW_EIO;
}

void
gw_bus_set_resend_ms(gw_bus *bus, unsigned ms)
{
    nng_socket_set_ms(bus->sock, NNG_OPT_REQ_RESENDTIME, (nng_duration)ms);
}

void
gw_bus_set_recv_max(gw_bus *bus, size_t bytes)
{
    nng_socket_set_size(bus->sock, NNG_OPT_RECVMAXSZ, bytes);
}

void
gw_bus_free(gw_bus *bus)
{
    if (bus == NULL)
        return;
    gw_io_free(bus->io);
    if (bus->sock_open)
        nng_close(bus->sock);
    free(bus);
}
