/* gw_mirror_cfg: Llumnix's traffic mirror file (seed 004, docs/traffic.md):
 * {"Enable","Target","Ratio","Timeout","Authorization","EnableLog"}. Shared
 * by the controller (which reads the file and publishes its text in the
 * snapshot) and the worker (its own file, or the snapshot's copy). Pure. */
#ifndef GW_MIRROR_CFG_H
#define GW_MIRROR_CFG_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/gw_cfg.h"
#include "gw/gw_err.h"

typedef struct gw_mirror_cfg {
    bool enable;
    char *target;        /* http(s) base URL without a trailing '/'; NULL when disabled */
    double ratio;        /* percent, 0..100 */
    double timeout_ms;   /* 0: the worker's --upstream-timeout */
    char *authorization; /* replaces the client's Authorization; NULL = keep it */
    bool enable_log;
} gw_mirror_cfg;

/* Parses the mirror file's JSON. Keys match case-insensitively, and the
 * snake_case spellings (enable_log) are accepted too; unknown keys, wrong
 * types, a Ratio outside 0..100, a negative Timeout or an enabled config
 * without an http(s) Target are refused with <why> naming the key. */
gw_err gw_mirror_cfg_parse(const char *json, size_t len, gw_mirror_cfg *out, char *why,
                           size_t why_len);
void gw_mirror_cfg_fini(gw_mirror_cfg *c);

/* The mirror file is small: 64 KiB at most. */
#define GW_MIRROR_FILE_MAX (64u << 10)

typedef enum gw_mirror_file {
    GW_MIRROR_FILE_READ,       /* *text holds the file (caller frees) */
    GW_MIRROR_FILE_MISSING,    /* no such file: no mirror */
    GW_MIRROR_FILE_UNREADABLE, /* exists but cannot be read or is too large */
} gw_mirror_file;

/* Reads the mirror file at <path> (a small local file: a blocking read, once
 * per reload interval, is fine on a loop). */
gw_mirror_file gw_mirror_file_read(const char *path, char **text);

/* The file's two flags, the same in the worker and the controller; <T> has
 * char *mirror_path, uint64_t mirror_reload_ms. */
#define GW_MIRROR_CFG_OPTS(T)                                                                      \
    GW_CFG_STR("mirror-config-path", "LLMGW_MIRROR_CONFIG_PATH", T, mirror_path,                   \
               "/mnt/mirror.json",                                                                 \
               "Traffic mirror JSON file (Enable, Target, Ratio, Timeout, Authorization, "         \
               "EnableLog), re-read while running; missing = no mirror; empty = never read"),      \
        GW_CFG_MS("mirror-reload-interval", "LLMGW_MIRROR_RELOAD_INTERVAL", T, mirror_reload_ms,   \
                  10000, 100, 3600000, "How often the mirror file is checked for changes")

#endif
