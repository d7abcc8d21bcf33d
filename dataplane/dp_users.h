/* dp_users: a snapshot's users (pm_user) indexed once when the snapshot
 * arrives, by name (the `user` header) and by API key digest, so the request
 * path does two hash lookups and no scans. Immutable after dp_users_new;
 * owned by its dp_snap. Loop thread only. */
#ifndef DP_USERS_H
#define DP_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pm/pm_msgs.h"

typedef struct dp_users dp_users;

/* Indexes <pm>'s users (borrowed: <pm> must outlive the index). */
dp_users *dp_users_new(const pm_snapshot *pm);
void dp_users_free(dp_users *u);

/* Number of users defined (0: no user management; see dp_auth). */
uint32_t dp_users_count(const dp_users *u);

/* The user named <name> (<len> bytes), or NULL. */
const pm_user *dp_users_by_name(const dp_users *u, const char *name, size_t len);

/* The user owning the key whose SHA-256 is <hex> (64 lower-case hex digits),
 * or NULL. The final comparison is constant-time. */
const pm_user *dp_users_by_key(const dp_users *u, const char *hex);

/* Whether any user or any of <pm>'s profiles sets a limit (rpm, tpm or
 * requestsPerSecond): only then does the worker need its limiter. */
bool dp_users_any_limit(const pm_snapshot *pm);

#endif
