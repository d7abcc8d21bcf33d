/* ctl_kwatch: one LIST+WATCH of a Kubernetes collection, kept as a local
 * cache (client-go's reflector + store), on ctl_kube.
 *
 * Protocol (API concepts, "Efficient detection of changes"):
 *   1. LIST the collection in pages (limit + continue) with the selectors;
 *      the list's metadata.resourceVersion is the starting point.
 *   2. WATCH from it with allowWatchBookmarks=true and a server-side
 *      timeoutSeconds of --kube-watch-timeout × [1, 2) (jittered, so many
 *      controllers do not reconnect in step); each event moves the last
 *      resourceVersion, bookmarks included.
 *   3. A watch that ends cleanly (server timeout, close) is re-opened at once
 *      from the last resourceVersion; nothing is lost because the server
 *      replays every event after it.
 *   4. 410 Gone/Expired (an ERROR event with code 410, or an HTTP 410) means
 *      the last resourceVersion was compacted away: re-LIST, and turn the
 *      difference between the cache and the fresh list into events, so a
 *      handler sees every object that appeared, changed or vanished in the
 *      gap exactly once and nothing twice.
 *   5. Any other failure (connect, 5xx, 429, a bad answer) retries after an
 *      exponential backoff with jitter (--kube-backoff-initial doubling up
 *      to --kube-backoff-max); the backoff resets after a successful LIST or
 *      a watch that delivered an event.
 * Events whose resourceVersion equals the cached object's are dropped, so a
 * re-watch that overlaps never delivers a duplicate.
 *
 * Handlers run on the loop; <obj> and <old> are borrowed for the call. A
 * handler must not free its own ctl_kwatch. Loop thread only. */
#ifndef CTL_KWATCH_H
#define CTL_KWATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl_kube.h"
#include "ctl_metrics.h"
#include "gw/gw_err.h"

typedef struct ctl_kwatch ctl_kwatch;

typedef struct ctl_kwatch_handlers {
    /* An object appeared (<old> NULL) or changed. */
    void (*on_upsert)(void *arg, const json_t *obj, const json_t *old);
    /* An object is gone (<obj> is its last known state). */
    void (*on_delete)(void *arg, const json_t *obj);
    /* A LIST completed and its differences were delivered (first sync and
     * every re-list). May be NULL. */
    void (*on_synced)(void *arg);
} ctl_kwatch_handlers;

typedef struct ctl_kwatch_opts {
    const char *resource;       /* short name for logs and metrics ("pods") */
    const char *path;           /* collection path, e.g. "/api/v1/namespaces/ns/pods" */
    const char *label_selector; /* NULL = none */
    const char *field_selector; /* NULL = none */
    uint64_t watch_timeout_ms;  /* base of the server-side timeoutSeconds */
    uint64_t backoff_initial_ms;
    uint64_t backoff_max_ms;
    uint32_t page_size; /* LIST limit; 0 = 500 */
} ctl_kwatch_opts;

/* Starts listing at once. <kube>, <metrics> are borrowed and must outlive
 * the watch; the strings in <o> are copied. */
GW_MUST_CHECK gw_err ctl_kwatch_start(gw_loop *loop, ctl_kube *kube, ctl_metrics *metrics,
                                      const ctl_kwatch_opts *o, const ctl_kwatch_handlers *h,
                                      void *arg, ctl_kwatch **out);

/* Cancels the request in flight and frees the cache. No handler runs. NULL ok. */
void ctl_kwatch_free(ctl_kwatch *w);

/* True once the first LIST has been delivered. */
bool ctl_kwatch_synced(const ctl_kwatch *w);

/* The cached object <ns>/<name> (<ns> NULL or "" for cluster-scoped), or
 * NULL. Borrowed until the next event. */
const json_t *ctl_kwatch_get(const ctl_kwatch *w, const char *ns, const char *name);

/* The cache: a JSON object mapping "ns/name" to objects (iterate with
 * json_object_foreach; do not modify). */
const json_t *ctl_kwatch_items(const ctl_kwatch *w);

/* The last resourceVersion seen ("" before the first LIST). */
const char *ctl_kwatch_rv(const ctl_kwatch *w);

/* ---- pure parts, exposed for tests ---- */

/* The delay before retry number <attempt> (0-based): initial·2^attempt
 * capped at <max_ms>, times a jitter factor in [0.5, 1] taken from <rnd> in
 * [0, 1). */
uint64_t ctl_kwatch_backoff(uint32_t attempt, uint64_t initial_ms, uint64_t max_ms, double rnd);

/* The cache key "ns/name" of <obj> (heap), or NULL without metadata.name. */
char *ctl_kwatch_key(const json_t *obj);

/* Replaces the contents of cache <cache> (a JSON object of key -> object)
 * with the objects in array <items>, calling <h> for each difference:
 * on_upsert for new objects and for objects whose resourceVersion changed,
 * on_delete for cached objects missing from <items>. Returns the number of
 * handler calls. */
unsigned ctl_kwatch_resync(json_t *cache, const json_t *items, const ctl_kwatch_handlers *h,
                           void *arg);

#endif
