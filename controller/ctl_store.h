/* ctl_store: the controller's object store (DESIGN §3). Each discovery
 * source owns one slot holding its current desired state, a "set": a
 * pm_snapshot whose envelope and endpoint ids are ignored (sources don't
 * assign ids). A source replaces its whole set on every change; the store
 * marks itself dirty and calls the change callback, which arms the
 * compile debounce timer.
 *
 * The store also owns the endpoint id map, (model, ip, port) -> id, used by
 * ctl_compile: ids start at 1 (0 means "none" on the wire), a key keeps its id
 * for as long as it appears in consecutive compiles, a key missing from a
 * compile is forgotten, and ids are never handed out twice in one process
 * (a returning endpoint gets a fresh id, so worker state keyed by the old id
 * cannot leak onto it).
 *
 * Discovered LoRA adapters are an overlay beside the sets, not a source:
 * per engine address (ip, port) the adapters the controller learned from
 * the engine itself (/v1/models, vllm:lora_requests_info; ctl_scrape).
 * ctl_compile adds them to every endpoint at that address, after the
 * adapters its source declared, so no source's data is ever rewritten and a
 * source replacing its set keeps what was discovered.
 *
 * Ownership: the store owns the sets it was given and frees them on
 * replacement and in ctl_store_free, and keeps its own copies of overlay
 * adapter names. Loop thread only. */
#ifndef CTL_STORE_H
#define CTL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pm/pm_msgs.h"

/* Discovery sources, in merge priority order: when two sources list the same
 * model, the earlier kind's definition wins; the same endpoint (model, ip,
 * port) listed twice keeps the earlier kind's fields. */
typedef enum ctl_src_kind {
    CTL_SRC_KUBERNETES = 0,
    CTL_SRC_FILE,
    CTL_SRC_ENDPOINTS,
    CTL_SRC_REDIS,
    CTL_SRC_ETCD,
    CTL_SRC_COUNT,
} ctl_src_kind;

/* Static lower-case name of <kind> ("file", "endpoints", ...). */
const char *ctl_src_kind_name(ctl_src_kind kind);

typedef struct ctl_store ctl_store;

/* Called after every ctl_store_replace (store already updated). */
typedef void (*ctl_store_change_fn)(ctl_store *st, void *arg);

ctl_store *ctl_store_new(void);
/* Frees every set and the id map. NULL is a no-op. */
void ctl_store_free(ctl_store *st);

void ctl_store_on_change(ctl_store *st, ctl_store_change_fn cb, void *arg);

/* Replaces source <kind>'s set with <set>, taking ownership (NULL clears the
 * slot), marks the store dirty and calls the change callback. */
void ctl_store_replace(ctl_store *st, ctl_src_kind kind, pm_snapshot *set);

/* Source <kind>'s current set (borrowed until the next replace), or NULL. */
const pm_snapshot *ctl_store_set(const ctl_store *st, ctl_src_kind kind);

/* Returns whether a replace happened since the last call, and clears it. */
bool ctl_store_take_dirty(ctl_store *st);
/* Marks the store dirty and calls the change callback: something compiled
 * into every snapshot besides the sets changed (the mirror file). */
void ctl_store_touch(ctl_store *st);

/* ---- discovered adapters (overlay, used by ctl_compile) ---- */

/* Sets the discovered adapters of the engine at (<ip>, <port>) to the <n>
 * names in <names> (borrowed; copied). Order and duplicates do not matter:
 * the store keeps them sorted and unique; empty names are ignored; at most
 * PM_MAX_ADAPTERS are kept. n == 0 removes the entry. When the set differs
 * from the previous one the store is marked dirty and the change callback
 * runs (as a source replace would); returns whether it changed. */
bool ctl_store_set_adapters(ctl_store *st, const char *ip, uint16_t port, const char *const *names,
                            size_t n);

/* The discovered adapters of (<ip>, <port>), sorted, or NULL with *n = 0.
 * Borrowed until the next ctl_store_set_adapters for that address. */
const char *const *ctl_store_adapters(const ctl_store *st, const char *ip, uint16_t port,
                                      size_t *n);

/* Number of addresses with discovered adapters. */
size_t ctl_store_adapter_count(const ctl_store *st);

/* ---- endpoint ids (used by ctl_compile) ---- */

/* Starts an id pass: every known key becomes "not seen". */
void ctl_store_ids_begin(ctl_store *st);

/* Returns the id of (model, ip, port), assigning the next fresh id if the
 * key is unknown, and marks it seen. *dup (if not NULL) is set to whether the
 * key was already seen in this pass. */
uint32_t ctl_store_id(ctl_store *st, const char *model, const char *ip, uint16_t port, bool *dup);

/* Ends the pass: forgets every key not seen since ctl_store_ids_begin. */
void ctl_store_ids_end(ctl_store *st);

/* The id of (model, ip, port) without assigning; 0 if unknown. */
uint32_t ctl_store_id_peek(const ctl_store *st, const char *model, const char *ip, uint16_t port);

/* Number of keys in the id map. */
size_t ctl_store_id_count(const ctl_store *st);

#endif
