/* dp_auth: who a request is (DESIGN §5, after the model and profile are
 * resolved, before admission). A request's user is the owner of its API key
 * (`Authorization: Bearer <key>`), else the user named by its `user` header.
 *
 * - With --require-api-key, or when AIBRIX_AUTH_BEARER_TOKEN is set (the
 *   gateway-wide key of AIBrix), a request must carry a user's key or the
 *   gateway key: otherwise 401 `invalid_api_key` (param "api_key").
 * - Without either, a bearer token that is no user's key is left alone: it
 *   may be the engine's own key (vLLM --api-key); the header always reaches
 *   the engine unchanged.
 * - When users are defined, a `user` header naming none of them is 403
 *   `x-error-user` (AIBrix answers 500), unless unknown users are allowed;
 *   with no users defined the header only identifies the client (vtc-basic)
 *   and no quota applies.
 * - A key's owner wins over a different `user` header (a header cannot
 *   borrow someone else's quota).
 * Keys are hashed (SHA-256) on arrival and compared as digests in constant
 * time; neither keys nor digests are logged. Pure; loop thread only. */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <stdbool.h>

#include "dp_error.h"
#include "dp_users.h"
#include "gw/gw_digest.h"

typedef struct dp_auth_cfg {
    bool require_key;                            /* --require-api-key */
    bool has_gateway_key;                        /* AIBRIX_AUTH_BEARER_TOKEN set */
    char gateway_key_hex[GW_SHA256_HEX_LEN + 1]; /* its digest */
    bool allow_unknown_users;                    /* --allow-unknown-users */
} dp_auth_cfg;

/* Fills <cfg> from the options (<gateway_key> NULL or "" = none). */
void dp_auth_cfg_init(dp_auth_cfg *cfg, bool require_key, const char *gateway_key,
                      bool allow_unknown_users);

typedef struct dp_auth_out {
    const pm_user *user; /* NULL: no user (no quota) */
    const char *name;    /* the user's name, or the `user` header; NULL = none */
    bool by_key;         /* the user was found by API key */
} dp_auth_out;

/* Authenticates a request with the given `Authorization` and `user` header
 * values (NULL = absent) against <users>. On false, <err> holds the 401 or
 * 403 answer. */
bool dp_auth_check(const dp_auth_cfg *cfg, const dp_users *users, const char *authorization,
                   const char *user_header, dp_auth_out *out, dp_error *err);

#endif
