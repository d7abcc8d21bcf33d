/* Unit tests for ctl_disc_table: which registrations stay routable, when. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_disc_table.h"
#include "ut_leak.h"

TestSuite(ctl_disc_table, .fini = ut_leak_check, .timeout = 10);

#define TTL 10000
#define T0  1000000

static bool
put(ctl_disc_table *t, const char *id, unsigned port, uint64_t ts, bool draining, uint64_t now)
{
    char key[64], val[256];

    snprintf(key, sizeof(key), "p/%s", id);
    snprintf(val, sizeof(val),
             "{\"model\":\"m\",\"ip\":\"10.0.0.1\",\"port\":%u,\"draining\":%s,"
             "\"timestamp_ms\":%llu}",
             port, draining ? "true" : "false", (unsigned long long)ts);
    return ctl_disc_table_put(t, key, val, strlen(val), now);
}

static uint32_t
n_endpoints(const ctl_disc_table *t)
{
    pm_snapshot *s = ctl_disc_table_set(t);
    uint32_t n = s->n_endpoints;

    pm_snapshot_free(s);
    return n;
}

Test(ctl_disc_table, put_adds_and_a_mere_refresh_is_no_change)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);
    pm_snapshot *s;

    cr_assert(put(t, "a", 1, T0, false, T0));
    cr_assert_not(put(t, "a", 1, T0 + 500, false, T0 + 500), "timestamp only");
    cr_assert(put(t, "a", 2, T0 + 600, false, T0 + 600), "port changed");
    cr_assert(put(t, "b", 3, T0, false, T0));
    s = ctl_disc_table_set(t);
    cr_assert_eq(s->n_models, 1);
    cr_assert_str_eq(s->models[0].name, "m");
    cr_assert_eq(s->n_endpoints, 2);
    cr_assert_str_eq(s->endpoints[0].pod, "a", "key order, id from the key");
    cr_assert_eq(s->endpoints[0].port, 2);
    pm_snapshot_free(s);
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, bad_records_are_skipped_and_keep_the_old_entry)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    cr_assert(put(t, "a", 1, T0, false, T0));
    cr_assert_not(ctl_disc_table_put(t, "p/a", "garbage", 7, T0));
    cr_assert_not(ctl_disc_table_put(t, "p/b", "{}", 2, T0));
    cr_assert_eq(ctl_disc_table_count(t), 1);
    cr_assert_eq(n_endpoints(t), 1);
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, a_record_older_than_the_ttl_is_ignored_with_age_check)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    cr_assert_not(put(t, "old", 1, T0 - TTL - 1, false, T0));
    cr_assert_eq(ctl_disc_table_count(t), 0);
    ctl_disc_table_free(t);
    t = ctl_disc_table_new("test", "p/", TTL, false);
    cr_assert(put(t, "old", 1, T0 - TTL - 1, false, T0), "etcd: the lease decides");
    cr_assert_not(ctl_disc_table_expire(t, T0 + 10 * TTL), "present etcd keys never age out");
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, a_vanished_entry_is_retained_until_its_ttl)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    put(t, "a", 1, T0, false, T0);
    put(t, "b", 2, T0, false, T0);
    ctl_disc_table_begin(t);
    put(t, "b", 2, T0 + 1000, false, T0 + 1000);
    cr_assert_not(ctl_disc_table_end(t, T0 + 1000), "a is retained, not removed");
    cr_assert_eq(ctl_disc_table_retained(t), 1);
    cr_assert_eq(n_endpoints(t), 2, "still routable: the store may have lost its data");
    cr_assert_not(ctl_disc_table_expire(t, T0 + TTL - 1));
    cr_assert(ctl_disc_table_expire(t, T0 + TTL));
    cr_assert_eq(n_endpoints(t), 1);
    cr_assert_eq(ctl_disc_table_retained(t), 0);
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, a_retained_entry_that_comes_back_is_present_again)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, false);

    put(t, "a", 1, T0, false, T0);
    ctl_disc_table_begin(t);
    ctl_disc_table_end(t, T0 + 100);
    cr_assert_eq(ctl_disc_table_retained(t), 1);
    cr_assert(put(t, "a", 1, T0 + 200, false, T0 + 200), "present again is a change");
    cr_assert_eq(ctl_disc_table_retained(t), 0);
    cr_assert_not(ctl_disc_table_expire(t, T0 + 100 * TTL));
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, explicit_delete_and_vanished_draining_go_at_once)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, false);

    put(t, "a", 1, T0, false, T0);
    put(t, "b", 2, T0, true, T0);
    cr_assert(ctl_disc_table_delete(t, "p/a"));
    cr_assert_not(ctl_disc_table_delete(t, "p/a"));
    ctl_disc_table_begin(t);
    cr_assert(ctl_disc_table_end(t, T0 + 1), "draining b vanished: said goodbye");
    cr_assert_eq(ctl_disc_table_count(t), 0);
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, present_entries_age_out_with_age_check)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    put(t, "a", 1, T0, false, T0);
    cr_assert_not(ctl_disc_table_expire(t, T0 + TTL - 1));
    cr_assert(ctl_disc_table_expire(t, T0 + TTL));
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, a_future_timestamp_is_clamped_to_now)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    put(t, "a", 1, T0 + 1000 * TTL, false, T0);
    cr_assert(ctl_disc_table_expire(t, T0 + TTL), "a fast clock does not buy a longer life");
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, grace_gives_one_more_ttl_after_an_outage)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    put(t, "a", 1, T0, false, T0);
    ctl_disc_table_grace(t, T0 + 5 * TTL);
    ctl_disc_table_begin(t);
    cr_assert_not(ctl_disc_table_end(t, T0 + 5 * TTL), "store came back empty: retained");
    cr_assert_not(ctl_disc_table_expire(t, T0 + 6 * TTL - 1));
    cr_assert(ctl_disc_table_expire(t, T0 + 6 * TTL));
    ctl_disc_table_free(t);
}

Test(ctl_disc_table, the_same_address_twice_makes_one_endpoint)
{
    ctl_disc_table *t = ctl_disc_table_new("test", "p/", TTL, true);

    put(t, "a", 1, T0, false, T0);
    put(t, "b", 1, T0, false, T0);
    cr_assert_eq(ctl_disc_table_count(t), 2);
    cr_assert_eq(n_endpoints(t), 1);
    ctl_disc_table_free(t);
}
