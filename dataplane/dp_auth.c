/* dp_auth: see dp_auth.h. */
#include "dp_auth.h"

#include <string.h>
#include <strings.h>

void
dp_auth_cfg_init(dp_auth_cfg *cfg, bool require_key, const char *gateway_key,
                 bool allow_unknown_users)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->require_key = require_key;
    cfg->allow_unknown_users = allow_unknown_users;
    if (gateway_key != NULL && gateway_key[0] != '\0') {
        cfg->has_gateway_key = true;
        gw_sha256_hex(gateway_key, strlen(gateway_key), cfg->gateway_key_hex);
    }
}

/* The token of "Bearer <token>" (scheme case-insensitive, RFC 7235), with
 * surrounding blanks trimmed; NULL if the header is not a bearer token. */
static const char *
bearer_token(const char *h, size_t *len)
{
    const char *end;

    if (h == NULL)
        return NULL;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return NULL;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    end = h + strlen(h);
    while (end > h && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == h)
        return NULL;
    *len = (size_t)(end - h);
    return h;
}

static void
bad_key(dp_error *err)
{
    dp_error_set(err, 401, NULL, NULL, "invalid_api_key",
                 "Incorrect API key provided. Send it as Authorization: Bearer <key>.");
    err->param = "api_key";
}

bool
dp_auth_check(const dp_auth_cfg *cfg, const dp_users *users, const char *authorization,
              const char *user_header, dp_auth_out *out, dp_error *err)
{
    size_t len = 0;
    const char *tok = bearer_token(authorization, &len);
    bool key_ok = false;

    memset(out, 0, sizeof(*out));
    if (tok != NULL) {
        char hex[GW_SHA256_HEX_LEN + 1];
        gw_sha256_hex(tok, len, hex);
        out->user = dp_users_by_key(users, hex);
        if (out->user != NULL) {
            out->name = out->user->name;
            out->by_key = true;
            return true;
        }
        key_ok = cfg->has_gateway_key && gw_equal_ct(hex, cfg->gateway_key_hex, GW_SHA256_HEX_LEN);
    }
    if ((cfg->require_key || cfg->has_gateway_key) && !key_ok) {
        bad_key(err);
        return false;
    }
    if (user_header == NULL || user_header[0] == '\0')
        return true;
    out->name = user_header;
    if (dp_users_count(users) == 0)
        return true;
    out->user = dp_users_by_name(users, user_header, strlen(user_header));
    if (out->user == NULL && !cfg->allow_unknown_users) {
        dp_error_set(err, 403, "x-error-user", "true", "user_not_found",
                     "unknown user; ask the gateway operator to add it");
        return false;
    }
    return true;
}
