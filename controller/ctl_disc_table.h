/* ctl_disc_table: the instance table behind the redis and etcd discovery
 * sources: store key -> registration record, with the rules that decide
 * when an instance stops being routable (docs/discovery.md "Failure
 * behaviour"). The sources feed it what they read and hand
 * ctl_disc_table_set() to the store when it changed.
 *
 * Every entry has a deadline on the controller's wall clock:
 * min(timestamp_ms, now) + ttl, pushed later by each refresh (clamping the
 * timestamp to "now" keeps a registrar with a fast clock from living for
 * ever). An entry is "present" while the store lists it and "retained"
 * when it vanished without an explicit delete:
 * - an explicit delete (etcd DELETE event) removes it at once;
 * - a vanished entry is kept until its deadline, so a store that lost its
 *   data (etcd restart with empty data dirs, a Redis restart or FLUSHALL)
 *   does not empty the routing table before the registrars re-register;
 *   a vanished draining entry goes at once (its engine said goodbye);
 * - with <age_check> (Redis, where a record written without a TTL would
 *   stay for ever) a present entry past its deadline is dropped too; etcd
 *   keys live exactly as long as their lease, so etcd runs without it;
 * - ctl_disc_table_grace() after a store outage gives every entry at least
 *   one more ttl, so the outage itself never expires anything.
 * A record that fails to parse is skipped with a rate-limited log line;
 * the entry it replaces (if any) stays as it was. Loop thread only. */
#ifndef CTL_DISC_TABLE_H
#define CTL_DISC_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pm/pm_msgs.h"

typedef struct ctl_disc_table ctl_disc_table;

/* <source> ("redis", "etcd") tags log lines; <prefix> is stripped from keys
 * to name the instance when a record has no id. Both copied. */
ctl_disc_table *ctl_disc_table_new(const char *source, const char *prefix, uint64_t ttl_ms,
                                   bool age_check);
void ctl_disc_table_free(ctl_disc_table *t);

/* A full listing: begin, put every key read, end. Entries not put in
 * between become retained (or go, see above). */
void ctl_disc_table_begin(ctl_disc_table *t);
/* Returns whether the table changed. */
bool ctl_disc_table_end(ctl_disc_table *t, uint64_t now_ms);

/* <key> (NUL-terminated) now holds the <len> bytes at <val>. Returns
 * whether the routable state changed (not for a mere timestamp refresh). */
bool ctl_disc_table_put(ctl_disc_table *t, const char *key, const char *val, size_t len,
                        uint64_t now_ms);

/* <key> was deleted in the store. Returns whether an entry went. */
bool ctl_disc_table_delete(ctl_disc_table *t, const char *key);

/* Drops what is past its deadline (see above). Returns whether anything went. */
bool ctl_disc_table_expire(ctl_disc_table *t, uint64_t now_ms);

/* Every deadline becomes at least now + ttl. */
void ctl_disc_table_grace(ctl_disc_table *t, uint64_t now_ms);

/* A new source set (caller owns): one model per distinct model name and one
 * endpoint per entry, in key order; a second entry with the same (model,
 * ip, port) is skipped. */
pm_snapshot *ctl_disc_table_set(const ctl_disc_table *t);

/* Entries (present + retained) / retained only. */
size_t ctl_disc_table_count(const ctl_disc_table *t);
size_t ctl_disc_table_retained(const ctl_disc_table *t);

#endif
