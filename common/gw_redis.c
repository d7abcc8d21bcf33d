/* gw_redis: hiredis 0.14 async on gw_loop (see gw_redis.h).
 *
 * States: IDLE (waiting for the reconnect timer) -> RESOLVING (a host name;
 * getaddrinfo_a runs in glibc's helper thread and is polled from a timer,
 * so the loop never blocks on DNS) -> CONNECTING (redisAsyncConnect, then
 * AUTH or PING queued at once) -> READY (the handshake answered) -> back to
 * IDLE when anything fails.
 *
 * hiredis 0.14 rules this code relies on (async.c of that release):
 * - The context frees itself on a connect failure (after calling the
 *   connect callback with REDIS_ERR; no disconnect callback then) and on an
 *   I/O error or EOF (disconnect callback with REDIS_ERR). When it frees, it
 *   first calls every pending reply callback with a NULL reply, then the
 *   adapter's cleanup hook, then the disconnect callback if it had
 *   connected. After redisAsyncHandleRead/Write returns, the context may be
 *   gone: on_io compares r->ac before touching it again.
 * - redisAsyncFree is unsafe from the connect callback (the context is still
 *   used after it returns) and is deferred by hiredis inside reply
 *   callbacks. We never call it from a hiredis callback: a failed handshake
 *   arms the connect timer with 0 ms and the timer closes the connection.
 * - While a context is disconnecting or freeing, redisAsyncCommand fails;
 *   a command issued from a NULL-reply callback gets GW_ECLOSED.
 * - Commands may be queued before the connection completes; queueing the
 *   handshake is what registers write interest, which makes the connect
 *   callback fire at all in 0.14. */
#include "gw/gw_redis.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define DNS_POLL_MS 5

typedef enum conn_state {
    ST_IDLE,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_READY,
    ST_CLOSING, /* a NULL reply arrived: hiredis is tearing the context down */
} conn_state;

typedef struct redis_cmd {
    gw_redis *r;
    struct redis_cmd *prev, *next;
    uint64_t deadline_ms;
    gw_redis_reply_fn cb; /* NULL: the AUTH/PING handshake */
    void *arg;
    bool timed_out;
} redis_cmd;

/* A getaddrinfo_a request: the helper thread writes into it until
 * gai_error() stops answering EAI_INPROGRESS, so it lives on the heap and is
 * freed only then. */
typedef struct dns_req {
    struct gaicb cb;
    struct addrinfo hints;
    char *name;
} dns_req;

struct gw_redis {
    gw_loop *loop;
    char *name;
    char *host;
    char *password;
    char *username;
    uint16_t port;
    uint64_t connect_timeout_ms;
    uint64_t backoff_min_ms, backoff_max_ms, backoff_ms;
    gw_redis_state_fn on_state;
    void *state_arg;
    conn_state st;
    redisAsyncContext *ac;
    gw_io *io;
    uint32_t io_events;
    gw_timer *conn_timer;  /* connect deadline; 0 ms = close now */
    gw_timer *retry_timer; /* reconnect after backoff */
    gw_timer *cmd_timer;   /* earliest command deadline */
    gw_timer *dns_timer;   /* polls <dns> */
    dns_req *dns;          /* in flight, or NULL */
    redis_cmd *head, *tail;
    uint32_t n_pending;
    int in_cb;
    bool freeing;
    char why[160]; /* why the current attempt failed (for the log) */
};

static void start_connect(gw_redis *r);

/* ---- state changes ------------------------------------------------------ */

static void
notify(gw_redis *r, bool up)
{
    if (r->freeing || r->on_state == NULL)
        return;
    r->in_cb++;
    r->on_state(r, up, r->state_arg);
    r->in_cb--;
}

/* The context is gone (freed by hiredis or by us): forget it and schedule a
 * reconnect. */
static void
conn_gone(gw_redis *r)
{
    bool was_up = r->st == ST_READY || r->st == ST_CLOSING;

    r->ac = NULL;
    r->st = ST_IDLE;
    gw_timer_stop(r->conn_timer);
    gw_timer_stop(r->cmd_timer);
    if (r->freeing)
        return;
    if (was_up)
        gw_log(GW_LOG_WARN, "GW-REDIS-DOWN", "name=%s addr=%s:%u msg=\"%s\"", r->name, r->host,
               r->port, r->why[0] ? r->why : "connection lost");
    else
        gw_log_ratelimited(GW_LOG_WARN, 1, "GW-REDIS-CONNECT", "name=%s addr=%s:%u msg=\"%s\"",
                           r->name, r->host, r->port, r->why[0] ? r->why : "connect failed");
    gw_timer_start(r->retry_timer, r->backoff_ms);
    r->backoff_ms = r->backoff_ms * 2 < r->backoff_max_ms ? r->backoff_ms * 2 : r->backoff_max_ms;
    notify(r, false);
}

/* Closes the current context from outside any hiredis callback. Pending
 * commands complete (GW_ETIMEDOUT if marked, else GW_ECLOSED). */
static void
conn_close(gw_redis *r)
{
    redisAsyncContext *ac = r->ac;

    if (ac == NULL)
        return;
    if (r->st == ST_READY)
        r->st = ST_CLOSING;
    redisAsyncFree(ac);
    /* A context that never connected gets no disconnect callback. */
    if (r->ac == ac)
        conn_gone(r);
}

static void
set_why_ac(gw_redis *r, const redisAsyncContext *ac)
{
    const char *kind;

    switch (ac->err) {
    case REDIS_ERR_IO:
        kind = "io";
        break;
    case REDIS_ERR_EOF:
        kind = "eof";
        break;
    case REDIS_ERR_PROTOCOL:
        kind = "protocol";
        break;
    case REDIS_ERR_OOM:
        kind = "oom";
        break;
    default:
        kind = "other";
        break;
    }
    snprintf(r->why, sizeof(r->why), "%s: %.120s", kind, ac->errstr ? ac->errstr : "");
    for (char *p = r->why; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = ' ';
    }
}

/* ---- hiredis event hooks ------------------------------------------------- */

static void
on_io(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    gw_redis *r = arg;
    redisAsyncContext *ac = r->ac;
    uint32_t want = r->io_events;
    bool err = (events & (EPOLLERR | EPOLLHUP)) != 0;
    (void)loop;
    (void)fd;

    if (ac == NULL)
        return;
    if ((events & EPOLLIN) || (err && (want & EPOLLIN)) || (err && !(want & EPOLLOUT)))
        redisAsyncHandleRead(ac);
    if (r->ac != ac)
        return; /* freed inside */
    if ((events & EPOLLOUT) || (err && (want & EPOLLOUT)))
        redisAsyncHandleWrite(ac);
}

static void
ev_update(gw_redis *r, uint32_t add, uint32_t del)
{
    uint32_t ev = (r->io_events | add) & ~del;
    gw_err rc = GW_OK;

    if (r->ac == NULL || (ev == r->io_events && r->io != NULL))
        return;
    r->io_events = ev;
    if (r->io == NULL)
        rc = gw_io_new(r->loop, r->ac->c.fd, ev, on_io, r, &r->io);
    else
        rc = gw_io_modify(r->io, ev);
    if (rc != GW_OK) {
        /* The fd cannot be watched: give up on this connection (from the
         * connect timer, outside hiredis). */
        snprintf(r->why, sizeof(r->why), "cannot watch the socket");
        gw_timer_start(r->conn_timer, 0);
    }
}

static void
ev_add_read(void *p)
{
    ev_update(p, EPOLLIN, 0);
}

static void
ev_del_read(void *p)
{
    ev_update(p, 0, EPOLLIN);
}

static void
ev_add_write(void *p)
{
    ev_update(p, EPOLLOUT, 0);
}

static void
ev_del_write(void *p)
{
    ev_update(p, 0, EPOLLOUT);
}

static void
ev_cleanup(void *p)
{
    gw_redis *r = p;

    gw_io_free(r->io); /* before hiredis closes the fd */
    r->io = NULL;
    r->io_events = 0;
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    gw_redis *r = ac->data;

    if (status == REDIS_OK || r->ac != ac)
        return; /* READY comes with the handshake's answer */
    set_why_ac(r, ac);
    /* hiredis frees the context after this returns. */
    conn_gone(r);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    gw_redis *r = ac->data;

    if (r->ac != ac)
        return;
    if (status != REDIS_OK && r->why[0] == '\0')
        set_why_ac(r, ac);
    conn_gone(r);
}

/* ---- commands ----------------------------------------------------------- */

static void
unlink_cmd(gw_redis *r, redis_cmd *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        r->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        r->tail = c->prev;
    c->prev = c->next = NULL;
    r->n_pending--;
}

static void
arm_cmd_timer(gw_redis *r)
{
    uint64_t now = gw_now_ms(), due = UINT64_MAX;

    for (redis_cmd *c = r->head; c != NULL; c = c->next)
        due = c->deadline_ms < due ? c->deadline_ms : due;
    if (due == UINT64_MAX)
        gw_timer_stop(r->cmd_timer);
    else
        gw_timer_start(r->cmd_timer, due > now ? due - now : 0);
}

static void
handshake_done(gw_redis *r, gw_err rc, const redisReply *reply)
{
    if (rc == GW_OK && r->st == ST_CONNECTING) {
        r->st = ST_READY;
        r->why[0] = '\0';
        r->backoff_ms = r->backoff_min_ms;
        gw_timer_stop(r->conn_timer);
        /* Notices a peer that vanished without a FIN on an idle connection. */
        redisEnableKeepAlive(&r->ac->c);
        gw_log(GW_LOG_NOTICE, "GW-REDIS-UP", "name=%s addr=%s:%u", r->name, r->host, r->port);
        notify(r, true);
        return;
    }
    if (rc == GW_EPROTO && reply != NULL && r->st == ST_CONNECTING) {
        /* Wrong password, or AUTH without a password configured: the
         * server's words, never ours (they do not contain the password). */
        snprintf(r->why, sizeof(r->why), "handshake refused: %.100s",
                 reply->str ? reply->str : "error");
        gw_timer_start(r->conn_timer, 0);
    }
    /* GW_ECLOSED / GW_ETIMEDOUT: the context is already going away. */
}

static void
on_reply(redisAsyncContext *ac, void *reply_p, void *privdata)
{
    redis_cmd *c = privdata;
    gw_redis *r = c->r;
    const redisReply *reply = reply_p;
    gw_err rc;
    (void)ac;

    unlink_cmd(r, c);
    if (reply == NULL) {
        rc = c->timed_out ? GW_ETIMEDOUT : GW_ECLOSED;
        if (r->st == ST_READY)
            r->st = ST_CLOSING;
    } else {
        rc = reply->type == REDIS_REPLY_ERROR ? GW_EPROTO : GW_OK;
    }
    if (c->cb == NULL) {
        handshake_done(r, rc, reply);
    } else {
        r->in_cb++;
        c->cb(r, rc, reply, c->arg);
        r->in_cb--;
    }
    free(c);
}

static gw_err
send_cmd(gw_redis *r, int argc, const char **argv, const size_t *argvlen, uint64_t timeout_ms,
         gw_redis_reply_fn cb, void *arg)
{
    redis_cmd *c = gw_xcalloc(1, sizeof(*c));

    c->r = r;
    c->cb = cb;
    c->arg = arg;
    c->deadline_ms = gw_now_ms() + timeout_ms;
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        free(c);
        return GW_ECLOSED;
    }
    c->prev = r->tail;
    if (r->tail != NULL)
        r->tail->next = c;
    else
        r->head = c;
    r->tail = c;
    r->n_pending++;
    if (!gw_timer_is_active(r->cmd_timer) || c == r->head)
        arm_cmd_timer(r);
    return GW_OK;
}

gw_err
gw_redis_command(gw_redis *r, int argc, const char **argv, const size_t *argvlen,
                 uint64_t timeout_ms, gw_redis_reply_fn cb, void *arg)
{
    if (r == NULL || r->st != ST_READY || r->ac == NULL || cb == NULL || argc <= 0)
        return GW_ECLOSED;
    return send_cmd(r, argc, argv, argvlen, timeout_ms ? timeout_ms : 1, cb, arg);
}

/* ---- timers --------------------------------------------------------------- */

static void
on_cmd_timer(gw_loop *loop, void *arg)
{
    gw_redis *r = arg;
    uint64_t now = gw_now_ms();
    uint32_t late = 0;
    (void)loop;

    for (redis_cmd *c = r->head; c != NULL; c = c->next) {
        if (c->deadline_ms <= now) {
            c->timed_out = true;
            late++;
        }
    }
    if (late == 0) {
        arm_cmd_timer(r);
        return;
    }
    snprintf(r->why, sizeof(r->why), "%u command(s) timed out", late);
    conn_close(r);
}

static void
on_conn_timer(gw_loop *loop, void *arg)
{
    gw_redis *r = arg;
    (void)loop;

    if (r->st == ST_READY)
        return;
    if (r->why[0] == '\0')
        snprintf(r->why, sizeof(r->why), "connect timed out");
    if (r->st == ST_RESOLVING) {
        /* The lookup keeps running; its answer is dropped (dns_poll). */
        gai_cancel(&r->dns->cb);
        r->st = ST_CONNECTING; /* so conn_gone counts a failed attempt */
        conn_gone(r);
        return;
    }
    if (r->ac != NULL)
        conn_close(r);
}

static void
on_retry_timer(gw_loop *loop, void *arg)
{
    (void)loop;
    start_connect(arg);
}

/* ---- connecting ------------------------------------------------------------ */

static void
connect_addr(gw_redis *r, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, r->port);
    const char *argv[3] = {"AUTH", r->password};
    size_t lens[3] = {4, r->password ? strlen(r->password) : 0};
    int argc = r->password ? 2 : 1;

    if (ac == NULL || ac->err) {
        if (ac != NULL) {
            set_why_ac(r, ac);
            redisAsyncFree(ac);
        } else {
            snprintf(r->why, sizeof(r->why), "out of memory");
        }
        r->st = ST_CONNECTING;
        conn_gone(r);
        return;
    }
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    r->st = ST_CONNECTING;
    if (r->password == NULL) {
        argv[0] = "PING";
        lens[0] = 4;
    } else if (r->username != NULL) {
        /* Redis 6 ACL form: AUTH <username> <password>. */
        argv[1] = r->username;
        lens[1] = strlen(r->username);
        argv[2] = r->password;
        lens[2] = strlen(r->password);
        argc = 3;
    }
    if (send_cmd(r, argc, argv, lens, r->connect_timeout_ms, NULL, NULL) != GW_OK) {
        snprintf(r->why, sizeof(r->why), "cannot queue the handshake");
        gw_timer_start(r->conn_timer, 0);
    }
}

static void
dns_free(dns_req *d)
{
    if (d == NULL)
        return;
    if (d->cb.ar_result != NULL)
        freeaddrinfo(d->cb.ar_result);
    free(d->name);
    free(d);
}

static void
on_dns_timer(gw_loop *loop, void *arg)
{
    gw_redis *r = arg;
    dns_req *d = r->dns;
    char ip[INET6_ADDRSTRLEN] = "";
    int rc;
    (void)loop;

    rc = gai_error(&d->cb);
    if (rc == EAI_INPROGRESS) {
        gw_timer_start(r->dns_timer, DNS_POLL_MS);
        return;
    }
    if (rc == 0 && d->cb.ar_result != NULL) {
        const struct addrinfo *ai = d->cb.ar_result;
        const void *a = ai->ai_family == AF_INET6
                            ? (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                            : (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
        inet_ntop(ai->ai_family, a, ip, sizeof(ip));
    }
    r->dns = NULL;
    dns_free(d);
    if (r->st != ST_RESOLVING)
        return; /* timed out meanwhile; a later attempt resolves again */
    if (ip[0] == '\0') {
        snprintf(r->why, sizeof(r->why), "cannot resolve %.64s: %s", r->host,
                 rc == 0 ? "no address" : gai_strerror(rc));
        r->st = ST_CONNECTING;
        conn_gone(r);
        return;
    }
    connect_addr(r, ip);
}

static void
start_connect(gw_redis *r)
{
    unsigned char buf[sizeof(struct in6_addr)];
    struct gaicb *list[1];

    r->why[0] = '\0';
    gw_timer_start(r->conn_timer, r->connect_timeout_ms);
    if (inet_pton(AF_INET, r->host, buf) == 1 || inet_pton(AF_INET6, r->host, buf) == 1) {
        connect_addr(r, r->host);
        return;
    }
    r->st = ST_RESOLVING;
    if (r->dns != NULL)
        return; /* an earlier lookup is still running: its answer serves */
    r->dns = gw_xcalloc(1, sizeof(*r->dns));
    r->dns->name = gw_xstrdup(r->host);
    r->dns->hints.ai_family = AF_UNSPEC;
    r->dns->hints.ai_socktype = SOCK_STREAM;
    r->dns->cb.ar_name = r->dns->name;
    r->dns->cb.ar_request = &r->dns->hints;
    list[0] = &r->dns->cb;
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, NULL) != 0) {
        dns_free(r->dns);
        r->dns = NULL;
        snprintf(r->why, sizeof(r->why), "cannot start resolving %.64s", r->host);
        r->st = ST_CONNECTING;
        conn_gone(r);
        return;
    }
    gw_timer_start(r->dns_timer, DNS_POLL_MS);
}

/* ---- lifecycle ------------------------------------------------------------- */

gw_err
gw_redis_new(gw_loop *loop, const gw_redis_opts *o, gw_redis **out)
{
    gw_redis *r;

    if (o->host == NULL || o->host[0] == '\0' || o->port == 0)
        return GW_EINVAL;
    r = gw_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->name = gw_xstrdup(o->name ? o->name : "redis");
    r->host = gw_xstrdup(o->host);
    r->password = o->password && o->password[0] ? gw_xstrdup(o->password) : NULL;
    r->username = o->username && o->username[0] ? gw_xstrdup(o->username) : NULL;
    r->port = o->port;
    r->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 2000;
    r->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : 100;
    r->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 5000;
    if (r->backoff_max_ms < r->backoff_min_ms)
        r->backoff_max_ms = r->backoff_min_ms;
    r->backoff_ms = r->backoff_min_ms;
    r->on_state = o->on_state;
    r->state_arg = o->state_arg;
    r->conn_timer = gw_timer_new(loop, on_conn_timer, r);
    r->retry_timer = gw_timer_new(loop, on_retry_timer, r);
    r->cmd_timer = gw_timer_new(loop, on_cmd_timer, r);
    r->dns_timer = gw_timer_new(loop, on_dns_timer, r);
    start_connect(r);
    *out = r;
    return GW_OK;
}

void
gw_redis_free(gw_redis *r)
{
    if (r == NULL)
        return;
    if (r->in_cb > 0) {
        gw_log(GW_LOG_ALERT, "GW-REDIS-FREE-IN-CB",
               "name=%s msg=\"gw_redis_free called from its own callback\"", r->name);
        abort();
    }
    r->freeing = true;
    conn_close(r);
    if (r->dns != NULL) {
        /* glibc's helper thread writes into <dns> until it is done. */
        const struct gaicb *list[1] = {&r->dns->cb};
        struct timespec ts = {.tv_sec = 2};
        if (gai_cancel(&r->dns->cb) != EAI_CANCELED)
            gai_suspend(list, 1, &ts);
        if (gai_error(&r->dns->cb) != EAI_INPROGRESS)
            dns_free(r->dns);
        /* else: still resolving after 2 s; leaking one small block beats a
         * use-after-free by the resolver thread. */
    }
    gw_timer_free(r->conn_timer);
    gw_timer_free(r->retry_timer);
    gw_timer_free(r->cmd_timer);
    gw_timer_free(r->dns_timer);
    free(r->name);
    free(r->host);
    if (r->password != NULL) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }
    free(r->username);
    free(r);
}

bool
gw_redis_is_up(const gw_redis *r)
{
    return r != NULL && r->st == ST_READY;
}

uint32_t
gw_redis_pending(const gw_redis *r)
{
    return r != NULL ? r->n_pending : 0;
}
