/* ctl_publish: the controller's side of the wire contract (DESIGN §4) on
 * three nng sockets driven by the loop:
 *   PUB  (--pub-listen)  topic 'S' + the encoded snapshot on every new
 *                        generation; topic 'L' + a pm_load every
 *                        --load-interval once a snapshot exists;
 *   REP  (--rep-listen)  answers every PM_KIND_SNAPSHOT_REQ with the full
 *                        current snapshot, or, before the first compile, with
 *                        an empty snapshot of generation 0 (workers ignore
 *                        gen 0: it means "nothing yet", never a fleet);
 *   PULL (--pull-listen) worker reports, decoded and fed to ctl_load.
 * Messages whose first byte is not a msgpack map are retried without their
 * first byte, so peers that prefix a topic byte on REQ/PUSH are understood.
 * Malformed messages are counted and logged (rate-limited), never fatal.
 *
 * The snapshot is encoded once per generation and the bytes reused for every
 * REP answer. <compile>, <load> and <metrics> are borrowed and must outlive
 * the publisher. Loop thread only. */
#ifndef CTL_PUBLISH_H
#define CTL_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_compile.h"
#include "ctl_load.h"
#include "ctl_metrics.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"
#include "pm/pm_msgs.h"

typedef struct ctl_publish ctl_publish;

typedef struct ctl_publish_opts {
    const char *pub_url; /* borrowed for the call */
    const char *rep_url;
    const char *pull_url;
    uint64_t load_interval_ms;
} ctl_publish_opts;

/* Opens and binds the three sockets and starts the load timer. GW_EIO
 * (logged with the URL) when a socket cannot listen. */
GW_MUST_CHECK gw_err ctl_publish_start(gw_loop *loop, const ctl_publish_opts *o,
                                       ctl_compile *compile, ctl_load *load, ctl_metrics *metrics,
                                       ctl_publish **out);

/* Publishes the compiler's current snapshot (call after a compile that
 * changed it): encodes it, sends 'S' on PUB and keeps the bytes for REP. */
void ctl_publish_snapshot(ctl_publish *p);

/* Standby (leader election lost): snapshots are still encoded but nothing is
 * sent on PUB and REP requests get no answer. Leaving standby publishes the
 * current snapshot at once. Starts active. */
void ctl_publish_set_standby(ctl_publish *p, bool standby);

/* Builds and publishes one load message now (the timer does this every
 * interval); also expires silent workers. */
void ctl_publish_load_tick(ctl_publish *p);

/* The last load message published (owned by <p>), or NULL. */
const pm_load *ctl_publish_last_load(const ctl_publish *p);

/* Closes the sockets, stops the timer and frees <p>. NULL ok. */
void ctl_publish_free(ctl_publish *p);

#endif
