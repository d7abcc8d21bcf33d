/* gw_curlm: a libcurl multi handle on a gw_loop through the socket API
 * (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION / curl_multi_socket_action),
 * so upstream transfers never block the loop (DESIGN §2). Connections to the
 * same host are reused (HTTP/1.1 keep-alive) across easy handles.
 *
 * curl rules recorded here (STYLE §5): an easy handle leaves the multi before
 * curl_easy_cleanup; CURLOPT_PRIVATE is the caller's (it carries the request)
 * and gw_curlm never touches it. Loop thread only. */
#ifndef GW_CURLM_H
#define GW_CURLM_H

#include <curl/curl.h>

#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct gw_curlm gw_curlm;

/* Called once per transfer that finished by itself (success or failure),
 * after the handle was removed from the multi; <easy> is the caller's again. */
typedef void (*gw_curlm_done_fn)(CURL *easy, CURLcode result, void *arg);

/* <max_host_conns>: cap on connections per host (0 = unlimited);
 * <max_idle>: connection cache size. */
GW_MUST_CHECK gw_err gw_curlm_new(gw_loop *loop, gw_curlm_done_fn done, void *arg,
                                  long max_host_conns, long max_idle, gw_curlm **out);
/* Starts <easy>. On GW_OK <done> runs exactly once later, unless the caller
 * takes the handle back with gw_curlm_remove first. */
GW_MUST_CHECK gw_err gw_curlm_add(gw_curlm *m, CURL *easy);
/* Cancels a running transfer; <done> is not called for it. */
void gw_curlm_remove(gw_curlm *m, CURL *easy);
/* Resumes a transfer paused by a write callback returning CURL_WRITEFUNC_PAUSE. */
void gw_curlm_unpause(gw_curlm *m, CURL *easy);
/* A CURLOPT_WRITEFUNCTION that drops what it is given (fire-and-forget
 * calls whose answer only matters by its status). */
size_t gw_curl_discard(char *p, size_t size, size_t nmemb, void *arg);

/* Frees the multi. Every easy handle must have been removed. NULL ok. */
void gw_curlm_free(gw_curlm *m);

#endif
