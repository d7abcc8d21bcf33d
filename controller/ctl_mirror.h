/* ctl_mirror: the controller's copy of the traffic mirror file (seed 004,
 * docs/traffic.md). The file (--mirror-config-path, default
 * /mnt/mirror.json) is re-read every --mirror-reload-interval and validated
 * with the worker's own parser (gw_mirror_cfg); the text in effect goes into
 * the snapshot (pm_mirror), so every worker of every pool mirrors alike.
 * A missing file is "no mirror" (NULL text); a file that does not read or
 * validate keeps the last good text (logged CTL-MIRROR-CONFIG, counted in
 * llmgw_controller_config_errors_total{source="mirror"}). The callback runs
 * only when the text in effect changed. Loop thread only. */
#ifndef CTL_MIRROR_H
#define CTL_MIRROR_H

#include <stdint.h>

#include "ctl_metrics.h"
#include "gw/gw_loop.h"

typedef struct ctl_mirror ctl_mirror;

/* <text>: the new config text in effect (borrowed), NULL = no mirror. */
typedef void (*ctl_mirror_change_fn)(const char *text, void *arg);

/* Reads <path> once now (no callback for this first read: ask
 * ctl_mirror_text), then every <interval_ms>. <path> "" = never read. */
ctl_mirror *ctl_mirror_new(gw_loop *loop, const char *path, uint64_t interval_ms,
                           ctl_metrics *metrics, ctl_mirror_change_fn cb, void *arg);
/* NULL ok. */
void ctl_mirror_free(ctl_mirror *m);
/* Re-reads the file now (the timer does this every interval). */
void ctl_mirror_reload(ctl_mirror *m);
/* The config text in effect; NULL = no mirror. */
const char *ctl_mirror_text(const ctl_mirror *m);

#endif
