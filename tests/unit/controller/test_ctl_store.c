/* Unit tests for ctl_store: source slots, dirty flag and the endpoint id map. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "ctl_set.h"
#include "ctl_store.h"
#include "ut_leak.h"

TestSuite(ctl_store, .fini = ut_leak_check, .timeout = 10);

static void
count_change(ctl_store *st, void *arg)
{
    (void)st;
    (*(unsigned *)arg)++;
}

Test(ctl_store, replace_marks_dirty_and_notifies)
{
    ctl_store *st = ctl_store_new();
    unsigned n = 0;

    ctl_store_on_change(st, count_change, &n);
    cr_assert(!ctl_store_take_dirty(st));
    cr_assert_null(ctl_store_set(st, CTL_SRC_FILE));
    ctl_store_replace(st, CTL_SRC_FILE, ctl_set_new());
    cr_assert_eq(n, 1);
    cr_assert_not_null(ctl_store_set(st, CTL_SRC_FILE));
    cr_assert(ctl_store_take_dirty(st));
    cr_assert(!ctl_store_take_dirty(st), "take clears the flag");
    ctl_store_replace(st, CTL_SRC_FILE, ctl_set_new()); /* frees the previous set */
    ctl_store_replace(st, CTL_SRC_FILE, NULL);
    cr_assert_null(ctl_store_set(st, CTL_SRC_FILE));
    cr_assert_eq(n, 3);
    cr_assert_str_eq(ctl_src_kind_name(CTL_SRC_ENDPOINTS), "endpoints");
    ctl_store_free(st);
}

Test(ctl_store, ids_are_stable_for_known_endpoints)
{
    ctl_store *st = ctl_store_new();
    uint32_t a, b, c;
    bool dup;

    ctl_store_ids_begin(st);
    a = ctl_store_id(st, "m", "10.0.0.1", 8000, &dup);
    cr_assert(!dup);
    b = ctl_store_id(st, "m", "10.0.0.2", 8000, NULL);
    c = ctl_store_id(st, "other", "10.0.0.1", 8000, NULL);
    cr_assert_eq(ctl_store_id(st, "m", "10.0.0.1", 8000, &dup), a);
    cr_assert(dup, "a second lookup in one pass is a duplicate");
    ctl_store_ids_end(st);
    cr_assert_eq(a, 1, "ids start at 1");
    cr_assert(a != b && b != c && a != c, "the model is part of the key");

    ctl_store_ids_begin(st);
    cr_assert_eq(ctl_store_id(st, "m", "10.0.0.2", 8000, NULL), b);
    cr_assert_eq(ctl_store_id(st, "m", "10.0.0.1", 8000, NULL), a, "order does not matter");
    cr_assert_eq(ctl_store_id(st, "other", "10.0.0.1", 8000, NULL), c);
    ctl_store_ids_end(st);
    cr_assert_eq(ctl_store_id_count(st), 3);
    ctl_store_free(st);
}

Test(ctl_store, removed_ids_are_forgotten_and_never_reused)
{
    ctl_store *st = ctl_store_new();
    uint32_t a, b, again;

    ctl_store_ids_begin(st);
    a = ctl_store_id(st, "m", "h", 1, NULL);
    b = ctl_store_id(st, "m", "h", 2, NULL);
    ctl_store_ids_end(st);

    ctl_store_ids_begin(st);
    cr_assert_eq(ctl_store_id(st, "m", "h", 2, NULL), b);
    ctl_store_ids_end(st);
    cr_assert_eq(ctl_store_id_peek(st, "m", "h", 1), 0, "absent from a pass: forgotten");
    cr_assert_eq(ctl_store_id_peek(st, "m", "h", 2), b);

    ctl_store_ids_begin(st);
    again = ctl_store_id(st, "m", "h", 1, NULL);
    cr_assert_eq(ctl_store_id(st, "m", "h", 2, NULL), b);
    ctl_store_ids_end(st);
    cr_assert(again != a && again > b, "a returning endpoint gets a fresh id");
    ctl_store_free(st);
}

Test(ctl_store, many_ids_survive_table_growth_and_pruning)
{
    ctl_store *st = ctl_store_new();
    char ip[32];
    uint32_t ids[3000];

    ctl_store_ids_begin(st);
    for (int i = 0; i < 3000; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
        ids[i] = ctl_store_id(st, "m", ip, 8000, NULL);
    }
    ctl_store_ids_end(st);
    /* Keep the odd ones. */
    ctl_store_ids_begin(st);
    for (int i = 1; i < 3000; i += 2) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
        cr_assert_eq(ctl_store_id(st, "m", ip, 8000, NULL), ids[i]);
    }
    ctl_store_ids_end(st);
    cr_assert_eq(ctl_store_id_count(st), 1500);
    for (int i = 0; i < 3000; i++) {
        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
        cr_assert_eq(ctl_store_id_peek(st, "m", ip, 8000), i % 2 ? ids[i] : 0);
    }
    ctl_store_free(st);
}

Test(ctl_store, adapter_overlay_is_sorted_unique_and_notifies_on_change_only)
{
    ctl_store *st = ctl_store_new();
    unsigned n = 0;
    size_t k = 9;
    const char *const *got;

    ctl_store_on_change(st, count_change, &n);
    cr_assert_null(ctl_store_adapters(st, "10.0.0.1", 8000, &k));
    cr_assert_eq(k, 0);
    cr_assert(ctl_store_set_adapters(st, "10.0.0.1", 8000, (const char *[]){"b", "a", "b", ""}, 4));
    cr_assert_eq(n, 1);
    cr_assert(ctl_store_take_dirty(st));
    got = ctl_store_adapters(st, "10.0.0.1", 8000, &k);
    cr_assert_eq(k, 2);
    cr_assert_str_eq(got[0], "a");
    cr_assert_str_eq(got[1], "b");
    cr_assert_null(ctl_store_adapters(st, "10.0.0.1", 8001, &k), "another port, another engine");

    /* The same set in another order changes nothing. */
    cr_assert(!ctl_store_set_adapters(st, "10.0.0.1", 8000, (const char *[]){"a", "b"}, 2));
    cr_assert_eq(n, 1);
    cr_assert(!ctl_store_take_dirty(st));
    /* Passing the store's own array back is safe. */
    got = ctl_store_adapters(st, "10.0.0.1", 8000, &k);
    cr_assert(!ctl_store_set_adapters(st, "10.0.0.1", 8000, got, k));
    cr_assert(ctl_store_set_adapters(st, "10.0.0.1", 8000, got, 1));
    got = ctl_store_adapters(st, "10.0.0.1", 8000, &k);
    cr_assert_eq(k, 1);
    cr_assert_str_eq(got[0], "a");

    cr_assert(ctl_store_set_adapters(st, "10.0.0.0", 9, (const char *[]){"z"}, 1));
    cr_assert_eq(ctl_store_adapter_count(st), 2);
    cr_assert(ctl_store_set_adapters(st, "10.0.0.1", 8000, NULL, 0), "clearing is a change");
    cr_assert(!ctl_store_set_adapters(st, "10.0.0.1", 8000, NULL, 0));
    cr_assert_eq(ctl_store_adapter_count(st), 1);
    cr_assert_eq(n, 4);
    ctl_store_free(st); /* frees the remaining overlay */
}

Test(ctl_store, adapter_overlay_is_capped)
{
    ctl_store *st = ctl_store_new();
    const char **names = calloc(PM_MAX_ADAPTERS + 10, sizeof(*names));
    char(*buf)[16] = calloc(PM_MAX_ADAPTERS + 10, 16);
    size_t k = 0;

    for (size_t i = 0; i < PM_MAX_ADAPTERS + 10; i++) {
        snprintf(buf[i], 16, "a%05zu", i);
        names[i] = buf[i];
    }
    cr_assert(ctl_store_set_adapters(st, "h", 1, names, PM_MAX_ADAPTERS + 10));
    cr_assert_not_null(ctl_store_adapters(st, "h", 1, &k));
    cr_assert_eq(k, PM_MAX_ADAPTERS);
    free(names);
    free(buf);
    ctl_store_free(st);
}
