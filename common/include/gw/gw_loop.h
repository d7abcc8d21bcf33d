/* gw_loop: the single-threaded epoll event loop every llmgw process runs
 * (DESIGN §2, the nginx model). It multiplexes fd watchers, one-shot timers
 * (a binary min-heap on CLOCK_MONOTONIC), signals (signalfd, so handlers run
 * on the loop, never in signal context) and a cross-thread wakeup (eventfd).
 *
 * Thread rules: everything here is loop-thread only except gw_loop_wake().
 * Freeing a watcher or timer from inside any callback is safe, including the
 * watcher's own callback: freed watchers are reaped after the current batch of
 * epoll events has been dispatched. */
#ifndef GW_LOOP_H
#define GW_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "gw/gw_err.h"

typedef struct gw_loop gw_loop;
typedef struct gw_io gw_io;
typedef struct gw_timer gw_timer;

/* <events> is the EPOLL* mask that fired (EPOLLIN, EPOLLOUT, EPOLLERR, ...). */
typedef void (*gw_io_fn)(gw_loop *loop, int fd, uint32_t events, void *arg);
typedef void (*gw_timer_fn)(gw_loop *loop, void *arg);
typedef void (*gw_signal_fn)(gw_loop *loop, int signo, void *arg);
/* Runs on the loop thread after another thread called gw_loop_wake(). */
typedef void (*gw_wake_fn)(gw_loop *loop, void *arg);
/* Runs once per loop iteration, before waiting (e.g. MHD's timeout refresh). */
typedef void (*gw_prepare_fn)(gw_loop *loop, void *arg);

GW_MUST_CHECK gw_err gw_loop_new(gw_loop **out);
/* Closes the loop's own fds. Watchers and timers still registered are the
 * owners' to free first (a leak check flags them). NULL is a no-op. */
void gw_loop_free(gw_loop *loop);

/* Runs until gw_loop_stop(). Returns GW_ESYS if epoll_wait fails for a reason
 * other than EINTR. */
GW_MUST_CHECK gw_err gw_loop_run(gw_loop *loop);
/* Makes gw_loop_run return after the current iteration. */
void gw_loop_stop(gw_loop *loop);

/* Watches <fd> for <events> (EPOLLIN/EPOLLOUT, level-triggered unless EPOLLET
 * is included). The fd stays the caller's: gw_io_free does not close it. */
GW_MUST_CHECK gw_err gw_io_new(gw_loop *loop, int fd, uint32_t events, gw_io_fn cb, void *arg,
                               gw_io **out);
GW_MUST_CHECK gw_err gw_io_modify(gw_io *io, uint32_t events);
/* Stops watching and frees <io> (deferred if called during dispatch). NULL ok. */
void gw_io_free(gw_io *io);

gw_timer *gw_timer_new(gw_loop *loop, gw_timer_fn cb, void *arg);
/* (Re)arms <t> to fire once, <delay_ms> from now. */
void gw_timer_start(gw_timer *t, uint64_t delay_ms);
void gw_timer_stop(gw_timer *t);
bool gw_timer_is_active(const gw_timer *t);
/* Stops and frees <t>. NULL is a no-op. */
void gw_timer_free(gw_timer *t);

/* Delivers <signo> through a signalfd: blocks it and calls <cb> on the loop.
 * One callback per signal. Call it before any thread starts (nng, curl's
 * resolver): threads inherit the mask, and a thread that does not block the
 * signal would receive it with its default action. */
GW_MUST_CHECK gw_err gw_loop_on_signal(gw_loop *loop, int signo, gw_signal_fn cb, void *arg);

/* Sets the function run after a gw_loop_wake() from any thread. */
void gw_loop_set_wake(gw_loop *loop, gw_wake_fn cb, void *arg);
/* Thread-safe and async-signal-safe: writes to the loop's eventfd. */
void gw_loop_wake(gw_loop *loop);

/* Registers a function run before every wait (at most 8). */
GW_MUST_CHECK gw_err gw_loop_add_prepare(gw_loop *loop, gw_prepare_fn cb, void *arg);

/* Unregisters a prepare function added with the same <cb> and <arg>. */
void gw_loop_remove_prepare(gw_loop *loop, gw_prepare_fn cb, void *arg);

/* Monotonic milliseconds/microseconds, and wall-clock ms since the Unix epoch. */
uint64_t gw_now_ms(void);
uint64_t gw_now_us(void);
uint64_t gw_wall_ms(void);

#endif
