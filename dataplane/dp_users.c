/* dp_users: see dp_users.h. Two open-addressing tables (linear probing,
 * power-of-two size, load <= 1/2) of indexes into pm->users; one for
 * names, one for key digests. */
#include "dp_users.h"

#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"
#include "gw/gw_digest.h"

typedef struct key_slot {
    uint32_t user; /* index + 1; 0 = empty */
    uint32_t key;  /* index into that user's key_hashes */
} key_slot;

struct dp_users {
    const pm_snapshot *pm;
    uint32_t *names; /* user index + 1; 0 = empty */
    uint32_t name_mask;
    key_slot *keys;
    uint32_t key_mask;
};

static uint32_t
table_size(uint32_t n)
{
    uint32_t size = 8;
    while (size < 2 * n)
        size <<= 1;
    return size;
}

dp_users *
dp_users_new(const pm_snapshot *pm)
{
    dp_users *u = gw_xcalloc(1, sizeof(*u));
    uint32_t n_keys = 0, size;

    u->pm = pm;
    size = table_size(pm->n_users);
    u->names = gw_xcalloc(size, sizeof(*u->names));
    u->name_mask = size - 1;
    for (uint32_t i = 0; i < pm->n_users; i++) {
        const char *name = pm->users[i].name;
        uint32_t at = (uint32_t)gw_fnv1a64(name, strlen(name)) & u->name_mask;
        while (u->names[at] != 0)
            at = (at + 1) & u->name_mask;
        u->names[at] = i + 1; /* names are unique (the decoder checked) */
        n_keys += pm->users[i].n_keys;
    }
    size = table_size(n_keys);
    u->keys = gw_xcalloc(size, sizeof(*u->keys));
    u->key_mask = size - 1;
    for (uint32_t i = 0; i < pm->n_users; i++) {
        for (uint32_t k = 0; k < pm->users[i].n_keys; k++) {
            const char *h = pm->users[i].key_hashes[k];
            uint32_t at = (uint32_t)gw_fnv1a64(h, GW_SHA256_HEX_LEN) & u->key_mask;
            bool dup = false;
            while (u->keys[at].user != 0 && !dup) {
                const key_slot *ks = &u->keys[at];
                dup = strcmp(pm->users[ks->user - 1].key_hashes[ks->key], h) == 0;
                at = (at + 1) & u->key_mask;
            }
            /* A digest listed twice keeps its first owner (the controller
             * already drops keys shared between users). */
            if (!dup)
                u->keys[at] = (key_slot){.user = i + 1, .key = k};
        }
    }
    return u;
}

void
dp_users_free(dp_users *u)
{
    if (u == NULL)
        return;
    free(u->names);
    free(u->keys);
    free(u);
}

uint32_t
dp_users_count(const dp_users *u)
{
    return u->pm->n_users;
}

const pm_user *
dp_users_by_name(const dp_users *u, const char *name, size_t len)
{
    uint32_t at = (uint32_t)gw_fnv1a64(name, len) & u->name_mask;

    for (; u->names[at] != 0; at = (at + 1) & u->name_mask) {
        const pm_user *user = &u->pm->users[u->names[at] - 1];
        if (strlen(user->name) == len && memcmp(user->name, name, len) == 0)
            return user;
    }
    return NULL;
}

const pm_user *
dp_users_by_key(const dp_users *u, const char *hex)
{
    uint32_t at = (uint32_t)gw_fnv1a64(hex, GW_SHA256_HEX_LEN) & u->key_mask;

    /* The probe sequence depends on the digest, not on the key, so timing
     * tells an attacker nothing about keys they do not already hold. */
    for (; u->keys[at].user != 0; at = (at + 1) & u->key_mask) {
        const key_slot *ks = &u->keys[at];
        const pm_user *user = &u->pm->users[ks->user - 1];
        if (gw_equal_ct(user->key_hashes[ks->key], hex, GW_SHA256_HEX_LEN))
            return user;
    }
    return NULL;
}

bool
dp_users_any_limit(const pm_snapshot *pm)
{
    for (uint32_t i = 0; i < pm->n_users; i++) {
        if (pm->users[i].rpm > 0 || pm->users[i].tpm > 0)
            return true;
    }
    for (uint32_t i = 0; i < pm->n_models; i++) {
        for (uint32_t p = 0; p < pm->models[i].n_profiles; p++) {
            if (pm->models[i].profiles[p].requests_per_second > 0)
                return true;
        }
    }
    return false;
}
