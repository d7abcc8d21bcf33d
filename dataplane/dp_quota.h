/* dp_quota: admission against per-user RPM/TPM and the model-level
 * requestsPerSecond (seeds 002 and 003; DESIGN §5 and §6), exact across
 * every worker of the fleet.
 *
 * Windows. Fixed windows on Redis's clock (TIME inside the script, so the
 * workers' clocks do not matter): RPM and TPM count per UTC minute, model
 * RPS per second. A window starts empty at its boundary; Retry-After is the
 * time left in the window that refused.
 *
 * One atomic Lua script (EVALSHA, loaded with EVAL on NOSCRIPT) checks
 * every applicable limit and increments all of them only if all pass, so
 * there is no check-then-increment race and a refused request consumes no
 * quota (AIBrix leaves a refused RPS increment in place). Checks, in order:
 *   model RPS: count < requestsPerSecond of the resolved profile; counted
 *     per (model, profile), so each traffic class has its own cap;
 *   RPM: count < rpm;
 *   TPM: the window is empty, or used + this request's reservation <= tpm
 *     (a request larger than the whole limit still passes alone in an empty
 *     window, so it is not refused forever).
 * TPM reserves an estimate at admission (prompt bytes / 4 + max_tokens) and
 * settles to the engine's reported usage at completion, in the window it
 * was admitted in. A request that fails before any engine served it (no
 * endpoint, every connect failed) is rolled back whole: RPM, TPM and RPS.
 *
 * Redis down or not configured: each worker keeps local windows on its own
 * clock with every limit split across the live workers the controller
 * reports (ceil(limit / workers)), so a fleet admits at most about the limit
 * and requests keep flowing. A command that fails or misses its deadline is
 * decided locally too. degraded() says so (metric and log line on change).
 *
 * Loop thread only. */
#ifndef DP_QUOTA_H
#define DP_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "gw/gw_loop.h"

typedef struct dp_quota dp_quota;
typedef struct dp_quota_ticket dp_quota_ticket;

typedef struct dp_quota_cfg {
    const char *redis_host; /* NULL or "" = local windows only */
    uint16_t redis_port;
    const char *redis_password;
    uint64_t timeout_ms;    /* per command; a late answer means local */
    const char *key_prefix; /* e.g. "llmgw:rl" */
} dp_quota_cfg;

typedef struct dp_quota_ask {
    const char *user; /* charged user; NULL = no per-user limits */
    int64_t rpm, tpm; /* 0 = unlimited */
    int64_t tokens;   /* TPM reservation (>= 0) */
    const char *model;
    const char *profile; /* NULL = "default" */
    int64_t rps;         /* the profile's requestsPerSecond; 0 = none */
} dp_quota_ask;

typedef enum dp_quota_verdict {
    DP_QUOTA_OK = 0,
    DP_QUOTA_RPM = 1,
    DP_QUOTA_TPM = 2,
    DP_QUOTA_RPS = 3,
} dp_quota_verdict;

/* The decision and what to settle or roll back later. Owned by the
 * request; dp_quota_settle/_rollback/_grant_fini release it. */
typedef struct dp_quota_grant {
    dp_quota_verdict verdict;
    bool local;        /* decided by local windows */
    bool counted_user; /* rpm_count/tpm_count are meaningful */
    bool counted_rps;
    int64_t rpm_count, tpm_count, rps_count; /* window counts after this request (or as refused) */
    int64_t rpm_limit, tpm_limit, rps_limit; /* as applied (local: this worker's share) */
    uint64_t user_reset_ms, rps_reset_ms;    /* time left in the window */
    /* Increments held (verdict OK): the counters' keys with their windows. */
    char *rpm_key, *tpm_key, *rps_key;
    int64_t reserved;
} dp_quota_grant;

typedef void (*dp_quota_done_fn)(dp_quota_grant *g, void *arg);

/* Creates the limiter; connects to Redis only after dp_quota_need. */
dp_quota *dp_quota_new(gw_loop *loop, const dp_quota_cfg *cfg);
/* Pending admissions get no callback; their late answers are rolled back
 * by Redis's expiry (the connection is closed). NULL ok. */
void dp_quota_free(dp_quota *q);

/* A snapshot sets limits: connect to Redis now, if configured. */
void dp_quota_need(dp_quota *q);

/* Live workers in the fleet (from the controller's load messages); the
 * local windows split every limit by this. 0 is taken as 1. */
void dp_quota_set_workers(dp_quota *q, uint32_t n);

/* Whether Redis is configured but not usable now (local windows in use);
 * not while the first connection is being made. */
bool dp_quota_degraded(const dp_quota *q);
/* Whether admissions go to Redis now. */
bool dp_quota_redis_up(const dp_quota *q);

/* Decides <ask>. Returns NULL when decided at once (local windows, or
 * nothing to count): <g> is filled. Otherwise returns a ticket and later
 * calls <cb> with the grant (which the callback moves into its own
 * storage by struct copy; <g> is not used). Strings in <ask> are copied. */
dp_quota_ticket *dp_quota_admit(dp_quota *q, const dp_quota_ask *ask, dp_quota_grant *g,
                                dp_quota_done_fn cb, void *arg);

/* The request behind <t> is gone: its callback never runs, and if the
 * answer grants, the increments are rolled back when it arrives. */
void dp_quota_cancel(dp_quota_ticket *t);

/* Completion: replaces the TPM reservation with <used_tokens> (prompt +
 * completion; < 0 = unknown, keep the reservation), then releases <g>. */
void dp_quota_settle(dp_quota *q, dp_quota_grant *g, int64_t used_tokens);

/* Undoes every increment of <g> (no engine served the request) and
 * releases it. */
void dp_quota_rollback(dp_quota *q, dp_quota_grant *g);

/* Releases <g> without touching counters. */
void dp_quota_grant_fini(dp_quota_grant *g);

/* Counters for metrics. */
typedef struct dp_quota_stats {
    uint64_t redis_errors; /* commands that failed or timed out */
    uint64_t local_decisions;
    uint64_t local_full; /* local table full: admitted uncounted */
} dp_quota_stats;
const dp_quota_stats *dp_quota_get_stats(const dp_quota *q);

#endif
