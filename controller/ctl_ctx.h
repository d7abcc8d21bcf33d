/* ctl_ctx: the controller process context (STYLE §2: one context struct per
 * binary, made in main and passed down; no mutable globals). It owns the
 * loop and every module instance and wires sources -> store -> compile ->
 * publish (DESIGN §3): a store change arms the debounce timer, the timer
 * compiles, and a new generation is published, logged (CTL-SNAP-PUBLISH)
 * and reflected in the metrics. The scraper (ctl_scrape) reads the ready
 * endpoints of the current snapshot, feeds engine signals to ctl_load and
 * discovered LoRA adapters to the store's overlay.
 *
 * The struct is visible so modules wired by it (ctl_http) can reach their
 * siblings; fields are written only by ctl_ctx.c. Loop thread only. */
#ifndef CTL_CTX_H
#define CTL_CTX_H

#include "ctl_cfg.h"
#include "ctl_compile.h"
#include "ctl_httproute.h"
#include "ctl_kevent.h"
#include "ctl_kube.h"
#include "ctl_leader.h"
#include "ctl_load.h"
#include "ctl_metrics.h"
#include "ctl_mirror.h"
#include "ctl_publish.h"
#include "ctl_scrape.h"
#include "ctl_src_etcd.h"
#include "ctl_src_file.h"
#include "ctl_src_kube.h"
#include "ctl_src_redis.h"
#include "ctl_store.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"

typedef struct ctl_http ctl_http;

typedef struct ctl_ctx {
    const ctl_cfg *cfg; /* borrowed from main */
    ctl_discovery discovery;
    gw_loop *loop;
    ctl_metrics *metrics;
    ctl_store *store;
    ctl_compile *compile;
    ctl_load *load;
    ctl_publish *publish;
    ctl_http *http;
    ctl_scrape *scrape;       /* engine signals and LoRA adapter discovery */
    ctl_src_file *src_file;   /* NULL unless discovery is file */
    ctl_src_redis *src_redis; /* NULL unless discovery is redis */
    ctl_src_etcd *src_etcd;   /* NULL unless discovery is etcd */
    gw_timer *debounce;
    ctl_mirror *mirror; /* the mirror file, into every snapshot */
    /* kubernetes discovery (all NULL otherwise) */
    ctl_kube *kube;         /* the API client */
    ctl_kevent *kevents;    /* Events on pods/ConfigMaps (leader only) */
    ctl_src_kube *src_kube; /* pods, ConfigMap, Secret */
    ctl_httproute *routes;  /* managed HTTPRoutes and their status */
    ctl_leader *leader;     /* NULL without --leader-elect */
    gw_timer *stop_timer;   /* shutdown deadline while the Lease is released */
    char *identity;         /* this process in Events and the Lease */
    char *config_ns;        /* ConfigMap/Secret/Lease namespace */
    /* Leader election lost (or not decided yet): the process compiles but
     * neither writes to Kubernetes nor publishes, and /readyz says 503.
     * Always false without --leader-elect. */
    bool standby;
} ctl_ctx;

/* Builds everything from <cfg> (validated; borrowed for the context's life):
 * binds the nng sockets and the HTTP port, starts the discovery source and
 * installs SIGTERM/SIGINT (stop) and SIGHUP (re-read the config file). On
 * error everything built so far is torn down (ctl_ctx_fini is still safe)
 * and the cause has been logged. <ctx> must be zeroed. */
GW_MUST_CHECK gw_err ctl_ctx_init(ctl_ctx *ctx, const ctl_cfg *cfg);

/* Runs the loop until SIGTERM/SIGINT. */
GW_MUST_CHECK gw_err ctl_ctx_run(ctl_ctx *ctx);

/* Compiles now if the store is dirty and publishes a new generation (what
 * the debounce timer does). */
void ctl_ctx_compile(ctl_ctx *ctx);

/* Frees everything in reverse order; idempotent. */
void ctl_ctx_fini(ctl_ctx *ctx);

#endif
