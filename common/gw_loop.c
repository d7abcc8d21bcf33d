/* gw_loop: epoll loop with a timer heap, signalfd and eventfd (see gw_loop.h).
 *
 * Invariant: a gw_io is freed only between dispatch batches. gw_io_free marks
 * it dead and queues it; dispatch skips dead watchers, so an event for a
 * watcher freed earlier in the same batch is never delivered to freed memory. */
#include "gw/gw_loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#define LOOP_MAX_EVENTS  256
#define LOOP_MAX_PREPARE 8
#define LOOP_MAX_SIGNALS 8

struct gw_io {
    gw_loop *loop;
    int fd;
    gw_io_fn cb;
    void *arg;
    bool dead;
    gw_io *next_dead;
};

struct gw_timer {
    gw_loop *loop;
    gw_timer_fn cb;
    void *arg;
    uint64_t due_ms;
    size_t heap_idx; /* SIZE_MAX when not armed */
};

typedef struct loop_signal {
    int signo;
    gw_signal_fn cb;
    void *arg;
} loop_signal;

typedef struct loop_prepare {
    gw_prepare_fn cb;
    void *arg;
} loop_prepare;

struct gw_loop {
    int epfd;
    bool stop;
    gw_io *dead; /* watchers freed during dispatch, reaped after it */
    bool dispatching;
    gw_timer **heap;
    size_t heap_len;
    size_t heap_cap;
    int sigfd;
    gw_io *sig_io;
    sigset_t sigmask;
    loop_signal sigs[LOOP_MAX_SIGNALS];
    unsigned n_sigs;
    int wakefd;
    gw_io *wake_io;
    gw_wake_fn wake_cb;
    void *wake_arg;
    loop_prepare prepare[LOOP_MAX_PREPARE];
    unsigned n_prepare;
};

uint64_t
gw_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
gw_now_ms(void)
{
    return gw_now_us() / 1000u;
}

uint64_t
gw_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- timer heap -------------------------------------------------------- */

static void
heap_swap(gw_loop *loop, size_t a, size_t b)
{
    gw_timer *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_idx = a;
    loop->heap[b]->heap_idx = b;
}

static void
heap_up(gw_loop *loop, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->due_ms <= loop->heap[i]->due_ms)
            break;
        heap_swap(loop, parent, i);
        i = parent;
    }
}

static void
heap_down(gw_loop *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->heap_len && loop->heap[l]->due_ms < loop->heap[m]->due_ms)
            m = l;
        if (r < loop->heap_len && loop->heap[r]->due_ms < loop->heap[m]->due_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(loop, i, m);
        i = m;
    }
}

static void
heap_remove(gw_loop *loop, gw_timer *t)
{
    size_t i = t->heap_idx;
    size_t last = loop->heap_len - 1;

    if (i != last) {
        heap_swap(loop, i, last);
        loop->heap_len--;
        heap_down(loop, i);
        heap_up(loop, i);
    } else {
        loop->heap_len--;
    }
    t->heap_idx = SIZE_MAX;
}

gw_timer *
gw_timer_new(gw_loop *loop, gw_timer_fn cb, void *arg)
{
    gw_timer *t = gw_xcalloc(1, sizeof(*t));
    t->loop = loop;
    t->cb = cb;
    t->arg = arg;
    t->heap_idx = SIZE_MAX;
    return t;
}

void
gw_timer_start(gw_timer *t, uint64_t delay_ms)
{
    gw_loop *loop = t->loop;

    if (t->heap_idx != SIZE_MAX)
        heap_remove(loop, t);
    t->due_ms = gw_now_ms() + delay_ms;
    if (loop->heap_len == loop->heap_cap) {
        loop->heap_cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        loop->heap = gw_xrealloc(loop->heap, loop->heap_cap * sizeof(*loop->heap));
    }
    t->heap_idx = loop->heap_len;
    loop->heap[loop->heap_len++] = t;
    heap_up(loop, t->heap_idx);
}

void
gw_timer_stop(gw_timer *t)
{
    if (t->heap_idx != SIZE_MAX)
        heap_remove(t->loop, t);
}

bool
gw_timer_is_active(const gw_timer *t)
{
    return t->heap_idx != SIZE_MAX;
}

void
gw_timer_free(gw_timer *t)
{
    if (t == NULL)
        return;
    gw_timer_stop(t);
    free(t);
}

/* Fires every due timer. A callback may re-arm or free any timer, so the
 * heap top is re-read after every call. */
static void
run_timers(gw_loop *loop)
{
    uint64_t now = gw_now_ms();

    while (loop->heap_len > 0 && loop->heap[0]->due_ms <= now) {
        gw_timer *t = loop->heap[0];
        heap_remove(loop, t);
        t->cb(loop, t->arg);
    }
}

static int
next_timeout_ms(gw_loop *loop)
{
    uint64_t now, due;

    if (loop->heap_len == 0)
        return -1;
    now = gw_now_ms();
    due = loop->heap[0]->due_ms;
    if (due <= now)
        return 0;
    return due - now > 60000 ? 60000 : (int)(due - now);
}

/* ---- fd watchers ------------------------------------------------------- */

gw_err
gw_io_new(gw_loop *loop, int fd, uint32_t events, gw_io_fn cb, void *arg, gw_io **out)
{
    gw_io *io = gw_xcalloc(1, sizeof(*io));
    struct epoll_event ev = {.events = events, .data.ptr = io};

    io->loop = loop;
    io->fd = fd;
    io->cb = cb;
    io->arg = arg;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        int err = errno;
        gw_log_errno(GW_LOG_ERR, err, "GW-LOOP-ADD", "fd=%d", fd);
        free(io);
        return GW_ESYS;
    }
    *out = io;
    return GW_OK;
}

gw_err
gw_io_modify(gw_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};

    if (epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) != 0) {
        int err = errno;
        gw_log_errno(GW_LOG_ERR, err, "GW-LOOP-MOD", "fd=%d", io->fd);
        return GW_ESYS;
    }
    return GW_OK;
}

void
gw_io_free(gw_io *io)
{
    if (io == NULL || io->dead)
        return;
    /* The fd may already be closed by its owner (curl closes sockets before
     * telling us); EBADF/ENOENT are then expected and harmless. */
    epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->dead = true;
    if (io->loop->dispatching) {
        io->next_dead = io->loop->dead;
        io->loop->dead = io;
    } else {
        free(io);
    }
}

static void
reap_dead(gw_loop *loop)
{
    while (loop->dead != NULL) {
        gw_io *io = loop->dead;
        loop->dead = io->next_dead;
        free(io);
    }
}

/* ---- signals and wakeup ------------------------------------------------ */

static void
on_signalfd(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;
    (void)events;
    (void)arg;

    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        for (unsigned i = 0; i < loop->n_sigs; i++) {
            if (loop->sigs[i].signo == (int)si.ssi_signo)
                loop->sigs[i].cb(loop, (int)si.ssi_signo, loop->sigs[i].arg);
        }
    }
}

gw_err
gw_loop_on_signal(gw_loop *loop, int signo, gw_signal_fn cb, void *arg)
{
    if (loop->n_sigs == LOOP_MAX_SIGNALS)
        return GW_EFULL;
    sigaddset(&loop->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) != 0)
        return GW_ESYS;
    loop->sigfd = signalfd(loop->sigfd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (loop->sigfd < 0) {
        int err = errno;
        gw_log_errno(GW_LOG_ERR, err, "GW-LOOP-SIGNALFD", "signo=%d", signo);
        return GW_ESYS;
    }
    if (loop->sig_io == NULL) {
        gw_err rc = gw_io_new(loop, loop->sigfd, EPOLLIN, on_signalfd, NULL, &loop->sig_io);
        if (rc != GW_OK)
            return rc;
    }
    loop->sigs[loop->n_sigs++] = (loop_signal){.signo = signo, .cb = cb, .arg = arg};
    return GW_OK;
}

static void
on_wakefd(gw_loop *loop, int fd, uint32_t events, void *arg)
{
    uint64_t v;
    (void)events;
    (void)arg;

    while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        ;
    if (loop->wake_cb != NULL)
        loop->wake_cb(loop, loop->wake_arg);
}

void
gw_loop_set_wake(gw_loop *loop, gw_wake_fn cb, void *arg)
{
    loop->wake_cb = cb;
    loop->wake_arg = arg;
}

void
gw_loop_wake(gw_loop *loop)
{
    uint64_t one = 1;
    ssize_t w = write(loop->wakefd, &one, sizeof(one));
    (void)w; /* EAGAIN means a wakeup is already pending */
}

gw_err
gw_loop_add_prepare(gw_loop *loop, gw_prepare_fn cb, void *arg)
{
    if (loop->n_prepare == LOOP_MAX_PREPARE)
        return GW_EFULL;
    loop->prepare[loop->n_prepare++] = (loop_prepare){.cb = cb, .arg = arg};
    return GW_OK;
}

void
gw_loop_remove_prepare(gw_loop *loop, gw_prepare_fn cb, void *arg)
{
    for (unsigned i = 0; i < loop->n_prepare; i++) {
        if (loop->prepare[i].cb == cb && loop->prepare[i].arg == arg) {
            loop->prepare[i] = loop->prepare[--loop->n_prepare];
            return;
        }
    }
}

/* ---- lifecycle --------------------------------------------------------- */

gw_err
gw_loop_new(gw_loop **out)
{
    gw_loop *loop = gw_xcalloc(1, sizeof(*loop));
    int err;

    loop->sigfd = -1;
    loop->wakefd = -1;
    sigemptyset(&loop->sigmask);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto fail;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0)
        goto fail;
    if (gw_io_new(loop, loop->wakefd, EPOLLIN, on_wakefd, NULL, &loop->wake_io) != GW_OK)
        goto fail;
    *out = loop;
    return GW_OK;
fail:
    err = errno;
    gw_log_errno(GW_LOG_ERR, err, "GW-LOOP-NEW", "msg=\"cannot create event loop\"");
    gw_loop_free(loop);
    return GW_ESYS;
}

void
gw_loop_free(gw_loop *loop)
{
    if (loop == NULL)
        return;
    gw_io_free(loop->wake_io);
    gw_io_free(loop->sig_io);
    reap_dead(loop);
    if (loop->wakefd >= 0)
        close(loop->wakefd);
    if (loop->sigfd >= 0)
        close(loop->sigfd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    free(loop->heap);
    free(loop);
}

void
gw_loop_stop(gw_loop *loop)
{
    loop->stop = true;
}

gw_err
gw_loop_run(gw_loop *loop)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];

    loop->stop = false;
    while (!loop->stop) {
        int n;

        for (unsigned i = 0; i < loop->n_prepare; i++)
            loop->prepare[i].cb(loop, loop->prepare[i].arg);
        n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, next_timeout_ms(loop));
        if (n < 0) {
            int err = errno;
            if (err == EINTR)
                continue;
            gw_log_errno(GW_LOG_ALERT, err, "GW-LOOP-WAIT", "msg=\"epoll_wait failed\"");
            return GW_ESYS;
        }
        loop->dispatching = true;
        for (int i = 0; i < n; i++) {
            gw_io *io = evs[i].data.ptr;
            if (!io->dead)
                io->cb(loop, io->fd, evs[i].events, io->arg);
        }
        loop->dispatching = false;
        reap_dead(loop);
        run_timers(loop);
        reap_dead(loop);
    }
    return GW_OK;
}
