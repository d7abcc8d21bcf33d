/* Unit tests for dp_users and dp_auth: who a request is, from its bearer key
 * or its `user` header, and the 401/403 answers. */
#include <criterion/criterion.h>
#include <string.h>

#include "dp_auth.h"
#include "dp_users.h"
#include "gw/gw_digest.h"
#include "gw/gw_mem.h"
#include "ut_leak.h"

TestSuite(dp_auth, .fini = ut_leak_check, .timeout = 10);

/* Users alice (keys "sk-a1", "sk-a2", rpm 10) and bob (no key, tpm 100). */
static pm_snapshot *
users_snapshot(void)
{
    pm_snapshot *s = gw_xcalloc(1, sizeof(*s));
    char hex[GW_SHA256_HEX_LEN + 1];

    s->n_users = 2;
    s->users = gw_xcalloc(2, sizeof(*s->users));
    s->users[0] = (pm_user){.name = gw_xstrdup("alice"), .rpm = 10, .n_keys = 2};
    s->users[0].key_hashes = gw_xcalloc(2, sizeof(char *));
    gw_sha256_hex("sk-a1", 5, hex);
    s->users[0].key_hashes[0] = gw_xstrdup(hex);
    gw_sha256_hex("sk-a2", 5, hex);
    s->users[0].key_hashes[1] = gw_xstrdup(hex);
    s->users[1] = (pm_user){.name = gw_xstrdup("bob"), .tpm = 100};
    return s;
}

typedef struct fx {
    pm_snapshot *pm;
    dp_users *users;
    dp_auth_cfg cfg;
    dp_auth_out out;
    dp_error err;
} fx;

static void
fx_init(fx *f, bool require, const char *gateway_key, bool allow_unknown)
{
    memset(f, 0, sizeof(*f));
    f->pm = users_snapshot();
    f->users = dp_users_new(f->pm);
    dp_auth_cfg_init(&f->cfg, require, gateway_key, allow_unknown);
}

static void
fx_fini(fx *f)
{
    dp_users_free(f->users);
    pm_snapshot_free(f->pm);
}

static bool
check(fx *f, const char *authorization, const char *user)
{
    memset(&f->err, 0, sizeof(f->err));
    return dp_auth_check(&f->cfg, f->users, authorization, user, &f->out, &f->err);
}

Test(dp_auth, users_are_found_by_name_and_by_key_digest)
{
    fx f;
    char hex[GW_SHA256_HEX_LEN + 1];

    fx_init(&f, false, NULL, false);
    cr_assert_eq(dp_users_count(f.users), 2);
    cr_assert_str_eq(dp_users_by_name(f.users, "bob", 3)->name, "bob");
    cr_assert_null(dp_users_by_name(f.users, "bo", 2));
    cr_assert_null(dp_users_by_name(f.users, "bobby", 5));
    gw_sha256_hex("sk-a2", 5, hex);
    cr_assert_str_eq(dp_users_by_key(f.users, hex)->name, "alice");
    gw_sha256_hex("sk-a3", 5, hex);
    cr_assert_null(dp_users_by_key(f.users, hex));
    fx_fini(&f);
}

Test(dp_auth, a_key_names_its_owner_whatever_the_user_header_says)
{
    fx f;

    fx_init(&f, false, NULL, false);
    cr_assert(check(&f, "Bearer sk-a1", NULL));
    cr_assert_str_eq(f.out.user->name, "alice");
    cr_assert(f.out.by_key);
    cr_assert(check(&f, "bearer   sk-a2  ", "bob"), "scheme is case-insensitive, blanks trimmed");
    cr_assert_str_eq(f.out.name, "alice", "a header cannot borrow another user's quota");
    fx_fini(&f);
}

Test(dp_auth, without_required_keys_a_foreign_token_passes_and_the_header_names_the_user)
{
    fx f;

    fx_init(&f, false, NULL, false);
    /* e.g. the engine's own --api-key: not ours to judge */
    cr_assert(check(&f, "Bearer vllm-engine-key", "bob"));
    cr_assert_str_eq(f.out.user->name, "bob");
    cr_assert_not(f.out.by_key);
    cr_assert(check(&f, NULL, NULL));
    cr_assert_null(f.out.user);
    cr_assert_null(f.out.name);
    fx_fini(&f);
}

Test(dp_auth, required_keys_refuse_missing_wrong_and_malformed_with_401)
{
    fx f;
    const char *bad[] = {
        NULL, "", "Bearer", "Bearer ", "Basic c2stYTE=", "Bearer sk-a1x", "Bearersk-a1", "sk-a1"};

    fx_init(&f, true, NULL, false);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_not(check(&f, bad[i], "alice"), "accepted %s", bad[i] ? bad[i] : "(none)");
        cr_assert_eq(f.err.status, 401);
        cr_assert_str_eq(f.err.code, "invalid_api_key");
        cr_assert_str_eq(f.err.param, "api_key");
        cr_assert_null(strstr(f.err.message, "sk-a1"), "the key is never echoed");
    }
    cr_assert(check(&f, "Bearer sk-a1", NULL));
    fx_fini(&f);
}

Test(dp_auth, the_gateway_key_authenticates_and_then_the_header_names_the_user)
{
    fx f;

    fx_init(&f, false, "gw-secret", false);
    cr_assert_not(check(&f, NULL, "bob"), "AIBRIX_AUTH_BEARER_TOKEN makes a key required");
    cr_assert_eq(f.err.status, 401);
    cr_assert_not(check(&f, "Bearer gw-secreT", "bob"));
    cr_assert(check(&f, "Bearer gw-secret", "bob"));
    cr_assert_str_eq(f.out.user->name, "bob");
    cr_assert(check(&f, "Bearer sk-a1", NULL), "a user's key is as good");
    fx_fini(&f);
}

Test(dp_auth, an_unknown_user_is_403_unless_allowed_or_no_users_exist)
{
    fx f;
    pm_snapshot empty = {0};
    dp_users *none;

    fx_init(&f, false, NULL, false);
    cr_assert_not(check(&f, NULL, "mallory"));
    cr_assert_eq(f.err.status, 403);
    cr_assert_str_eq(f.err.header, "x-error-user");
    cr_assert_null(strstr(f.err.message, "mallory"), "the header is not echoed");
    fx_fini(&f);

    fx_init(&f, false, NULL, true);
    cr_assert(check(&f, NULL, "mallory"));
    cr_assert_null(f.out.user, "allowed, but without a quota");
    cr_assert_str_eq(f.out.name, "mallory");
    none = dp_users_new(&empty);
    cr_assert(dp_auth_check(&f.cfg, none, NULL, "anyone", &f.out, &f.err),
              "no users defined: the header only identifies the client");
    cr_assert_str_eq(f.out.name, "anyone");
    dp_users_free(none);
    fx_fini(&f);
}

Test(dp_auth, any_limit_is_seen_in_users_and_profiles)
{
    pm_snapshot *s = users_snapshot();
    pm_snapshot plain = {0};
    pm_profile prof = {.name = "default", .requests_per_second = 5};
    pm_model m = {.name = "m", .n_profiles = 1, .profiles = &prof};
    pm_snapshot with_rps = {.n_models = 1, .models = &m};

    cr_assert(dp_users_any_limit(s));
    cr_assert_not(dp_users_any_limit(&plain));
    cr_assert(dp_users_any_limit(&with_rps));
    prof.requests_per_second = 0;
    cr_assert_not(dp_users_any_limit(&with_rps));
    pm_snapshot_free(s);
}
