/* Unit tests for ctl_kwatch's pure parts: the backoff schedule, cache keys
 * and the re-list diff that must deliver each change of a gap exactly once.
 * The protocol itself (LIST, WATCH, 410, bookmarks) runs against the API
 * double in e2e/cases/kube_watch_410.sh. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_kwatch.h"
#include "ut_leak.h"

TestSuite(ctl_kwatch, .fini = ut_leak_check, .timeout = 10);

Test(ctl_kwatch, backoff_doubles_up_to_the_cap_with_jitter_in_half_to_one)
{
    cr_assert_eq(ctl_kwatch_backoff(0, 100, 30000, 0.0), 50);
    cr_assert_eq(ctl_kwatch_backoff(0, 100, 30000, 0.999999), 99);
    cr_assert_eq(ctl_kwatch_backoff(1, 100, 30000, 0.0), 100);
    cr_assert_eq(ctl_kwatch_backoff(3, 100, 30000, 0.0), 400);
    cr_assert_eq(ctl_kwatch_backoff(20, 100, 30000, 0.0), 15000, "capped at max");
    cr_assert_eq(ctl_kwatch_backoff(63, 100, 30000, 0.5), 22500, "no overflow for huge attempts");
    cr_assert_eq(ctl_kwatch_backoff(2, 100, 30000, 7.0), 200, "an out-of-range random is 0");
}

Test(ctl_kwatch, the_key_is_namespace_slash_name)
{
    json_t *a = json_pack("{s:{s:s,s:s}}", "metadata", "name", "p", "namespace", "ns");
    json_t *b = json_pack("{s:{s:s}}", "metadata", "name", "node-1");
    json_t *c = json_pack("{s:{}}", "metadata");
    char *k;

    k = ctl_kwatch_key(a);
    cr_assert_str_eq(k, "ns/p");
    free(k);
    k = ctl_kwatch_key(b);
    cr_assert_str_eq(k, "/node-1", "cluster-scoped objects have an empty namespace");
    free(k);
    cr_assert_null(ctl_kwatch_key(c));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

typedef struct rec {
    char log[512];
} rec;

static void
on_up(void *arg, const json_t *obj, const json_t *old)
{
    rec *r = arg;
    char *k = ctl_kwatch_key(obj);
    strcat(r->log, old != NULL ? "U:" : "A:");
    strcat(r->log, k);
    strcat(r->log, " ");
    free(k);
}

static void
on_del(void *arg, const json_t *obj)
{
    rec *r = arg;
    char *k = ctl_kwatch_key(obj);
    strcat(r->log, "D:");
    strcat(r->log, k);
    strcat(r->log, " ");
    free(k);
}

static json_t *
obj(const char *name, const char *rv)
{
    return json_pack("{s:{s:s,s:s,s:s}}", "metadata", "name", name, "namespace", "n",
                     "resourceVersion", rv);
}

Test(ctl_kwatch, a_relist_turns_the_difference_into_one_call_per_change)
{
    ctl_kwatch_handlers h = {.on_upsert = on_up, .on_delete = on_del};
    json_t *cache = json_object();
    json_t *first = json_pack("[o,o,o]", obj("a", "1"), obj("b", "2"), obj("c", "3"));
    json_t *second = json_pack("[o,o,o]", obj("b", "2"), obj("c", "7"), obj("d", "8"));
    rec r = {0};

    cr_assert_eq(ctl_kwatch_resync(cache, first, &h, &r), 3);
    cr_assert_str_eq(r.log, "A:n/a A:n/b A:n/c ");
    memset(&r, 0, sizeof(r));
    cr_assert_eq(ctl_kwatch_resync(cache, second, &h, &r), 3);
    /* a deleted, c changed, d added; b unchanged gives no call. Deletions
     * come first. */
    cr_assert_str_eq(r.log, "D:n/a U:n/c A:n/d ");
    cr_assert_eq(json_object_size(cache), 3);
    memset(&r, 0, sizeof(r));
    cr_assert_eq(ctl_kwatch_resync(cache, second, &h, &r), 0, "the same list again: no call");
    cr_assert_str_eq(r.log, "");
    json_decref(first);
    json_decref(second);
    json_decref(cache);
}
