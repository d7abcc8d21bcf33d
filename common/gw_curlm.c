/* gw_curlm: curl multi socket API on gw_loop (see gw_curlm.h). curl tells us
 * which sockets to watch (socket callback) and when to call it back (timer
 * callback); we translate both to gw_io/gw_timer and feed readiness back with
 * curl_multi_socket_action, then collect finished transfers. */
#include "gw/gw_curlm.h"

#include <stdlib.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

struct gw_curlm {
    gw_loop *loop;
    CURLM *multi;
    gw_timer *timer;
    gw_curlm_done_fn done;
    void *done_arg;
    int running;
};

/* Per-socket state curl stores with curl_multi_assign. */
typedef struct curlm_sock {
    gw_io *io;
    uint32_t events;
} curlm_sock;

static void
check_done(gw_curlm *m)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(m->multi, easy);
        m->done(easy, rc, m->done_arg);
    }
}

static void
on_socket_ready(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    gw_curlm *m = arg;
    int flags = 0;
    (void)loop;

    if (events & (EPOLLIN | EPOLLHUP))
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & EPOLLERR)
        flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(m->multi, fd, flags, &m->running);
    check_done(m);
}

static void
on_timeout(gw_loop *loop, void *arg)
{
    gw_curlm *m = arg;
    (void)loop;

    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &m->running);
    check_done(m);
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    gw_curlm *m = userp;
    curlm_sock *cs = socketp;
    uint32_t events = 0;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (cs != NULL) {
            gw_io_free(cs->io);
            free(cs);
            curl_multi_assign(m->multi, s, NULL);
        }
        return 0;
    }
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= EPOLLOUT;
    if (cs == NULL) {
        cs = gw_xcalloc(1, sizeof(*cs));
        if (gw_io_new(m->loop, s, events, on_socket_ready, m, &cs->io) != GW_OK) {
            free(cs);
            return -1;
        }
        cs->events = events;
        curl_multi_assign(m->multi, s, cs);
    } else if (cs->events != events) {
        if (gw_io_modify(cs->io, events) != GW_OK)
            return -1;
        cs->events = events;
    }
    return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    gw_curlm *m = userp;
    (void)multi;

    if (timeout_ms < 0)
        gw_timer_stop(m->timer);
    else
        gw_timer_start(m->timer, (uint64_t)timeout_ms);
    return 0;
}

gw_err
gw_curlm_new(gw_loop *loop, gw_curlm_done_fn done, void *arg, long max_host_conns, long max_idle,
             gw_curlm **out)
{
    gw_curlm *m = gw_xcalloc(1, sizeof(*m));

    m->loop = loop;
    m->done = done;
    m->done_arg = arg;
    m->multi = curl_multi_init();
    if (m->multi == NULL) {
        free(m);
        return GW_ENOMEM;
    }
    m->timer = gw_timer_new(loop, on_timeout, m);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    if (max_host_conns > 0)
        curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_conns);
    if (max_idle > 0)
        curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, max_idle);
    *out = m;
    return GW_OK;
}

gw_err
gw_curlm_add(gw_curlm *m, CURL *easy)
{
    CURLMcode rc = curl_multi_add_handle(m->multi, easy);
    if (rc != CURLM_OK) {
        gw_log(GW_LOG_ERR, "GW-CURLM-ADD", "msg=\"%s\"", curl_multi_strerror(rc));
        return GW_EIO;
    }
    return GW_OK;
}

void
gw_curlm_remove(gw_curlm *m, CURL *easy)
{
    curl_multi_remove_handle(m->multi, easy);
}

void
gw_curlm_unpause(gw_curlm *m, CURL *easy)
{
    (void)m;
    /* curl_easy_pause re-arms the transfer through the timer callback. */
    curl_easy_pause(easy, CURLPAUSE_CONT);
}

void
gw_curlm_free(gw_curlm *m)
{
    if (m == NULL)
        return;
    /* Cleanup closes cached connections, calling socket_cb with REMOVE. */
    curl_multi_cleanup(m->multi);
    gw_timer_free(m->timer);
    free(m);
}

size_t
gw_curl_discard(char *p, size_t size, size_t nmemb, void *arg)
{
    (void)p;
    (void)arg;
    return size * nmemb;
}
