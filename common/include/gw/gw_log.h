/* gw_log: one logfmt line per event on stderr.
 *   ts=2026-11-21T17:46:01.123Z lvl=warn proc=dp.1 id=DP-UP-CONNECT msg="connect timeout" k=v
 * Message ids are stable, greppable COMPONENT-AREA-WHAT strings. gw_log() checks
 * the level before evaluating its arguments. Never pass prompts, completions,
 * API keys or Authorization values. Loop thread only, except gw_log_raw which
 * is safe from any thread (one write(2) per line). */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stdbool.h>
#include <stdint.h>

typedef enum gw_lvl {
    GW_LOG_ALERT = 0, /* a bug or broken invariant; e2e fails on any */
    GW_LOG_ERR,
    GW_LOG_WARN,
    GW_LOG_NOTICE, /* lifecycle: start, stop, snapshot applied */
    GW_LOG_INFO,
    GW_LOG_DEBUG,
} gw_lvl;

/* The only mutable globals in headers (STYLE §2): log configuration. */
extern gw_lvl gw_log_level;

/* Sets the process tag printed as proc=<tag> (e.g. "ctl", "dp.2"). Copied. */
void gw_log_set_proc(const char *tag);

/* Parses "alert|err|error|warn|notice|info|debug"; false if unknown. */
bool gw_log_parse_level(const char *s, gw_lvl *out);

#define gw_log_enabled(lvl) ((lvl) <= gw_log_level)

/* <kv_fmt> is a printf format producing either `msg="..."` or `k=v ...` pairs;
 * the caller quotes values that may contain spaces (use gw_log_q for that). */
#define gw_log(lvl, id, ...)                                                                       \
    do {                                                                                           \
        if (gw_log_enabled(lvl))                                                                   \
            gw_log_raw((lvl), (id), __VA_ARGS__);                                                  \
    } while (0)

/* As gw_log, appending err=<errno text> for <errnum> (copy errno right after the call). */
#define gw_log_errno(lvl, errnum, id, ...)                                                         \
    do {                                                                                           \
        if (gw_log_enabled(lvl))                                                                   \
            gw_log_raw_errno((lvl), (errnum), (id), __VA_ARGS__);                                  \
    } while (0)

void gw_log_raw(gw_lvl lvl, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_log_raw_errno(gw_lvl lvl, int errnum, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like gw_log but emits at most <per_sec> lines per second per call site; the
 * suppressed count is reported on the next line that gets through. */
#define gw_log_ratelimited(lvl, per_sec, id, ...)                                                  \
    do {                                                                                           \
        static gw_log_rl rl_;                                                                      \
        if (gw_log_enabled(lvl) && gw_log_rl_allow(&rl_, (per_sec)))                               \
            gw_log_raw((lvl), (id), __VA_ARGS__);                                                  \
    } while (0)

typedef struct gw_log_rl {
    uint64_t window_ms;
    uint32_t count;
    uint32_t suppressed;
} gw_log_rl;
bool gw_log_rl_allow(gw_log_rl *rl, uint32_t per_sec);

/* Writes <s> into <dst> (size <n>) as a logfmt-safe quoted value: "..." with
 * quotes, backslashes and control bytes escaped, truncated to fit. Returns dst. */
const char *gw_log_q(char *dst, unsigned n, const char *s);

#endif
