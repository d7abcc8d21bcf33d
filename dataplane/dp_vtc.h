/* dp_vtc: this worker's per-user token window for vtc-basic (virtual token
 * counters). A sliding window of DP_VTC_BUCKETS buckets of DP_VTC_BUCKET_MS
 * each (60 s): a user's count is the sum of the buckets still in the window.
 * Users are identified by a 64-bit hash of the `user` header (never stored
 * as text, never logged).
 *
 * Bounded: a fixed table of DP_VTC_USERS entries allocated once; a user
 * whose window is empty frees its entry. When the table is full of active
 * users a new user is not tracked (counts as 0, i.e. light) until entries
 * free up. The mean over active users is kept incrementally and recomputed
 * exactly once per bucket (a scan of the table every 10 s at most).
 * Loop thread only; not shared across workers (like AIBrix's). */
#ifndef DP_VTC_H
#define DP_VTC_H

#include <stdint.h>

#define DP_VTC_BUCKET_MS 10000u
#define DP_VTC_BUCKETS   6u
#define DP_VTC_USERS     1024u

typedef struct dp_vtc dp_vtc;

dp_vtc *dp_vtc_new(void);
/* NULL ok. */
void dp_vtc_free(dp_vtc *v);

/* Hash of a `user` header value (FNV-1a 64). */
uint64_t dp_vtc_user(const char *user);

/* <user>'s tokens in the window ending at <now_ms>, and the mean over the
 * users active in it (0 when none). */
void dp_vtc_lookup(dp_vtc *v, uint64_t user, uint64_t now_ms, double *tokens, double *mean);

/* Adds <delta> tokens (may be negative: a settlement of an estimate; a
 * user's bucket never goes below 0) to <user> at <now_ms>. */
void dp_vtc_charge(dp_vtc *v, uint64_t user, int64_t delta, uint64_t now_ms);

#endif
