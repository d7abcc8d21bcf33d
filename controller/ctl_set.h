/* ctl_set: helpers for building, copying and comparing the pm_snapshot
 * structs the controller makes by hand: source sets (see ctl_store.h) and
 * compiled snapshots. Everything is heap-allocated with gw_mem, so the
 * result is freed with pm_snapshot_free like a decoded message.
 *
 * Arrays grown with ctl_set_add_* keep no capacity field: they grow when
 * their count is zero or a power of two, so only append to arrays built by
 * these functions. Pure; safe from any thread on distinct objects. */
#ifndef CTL_SET_H
#define CTL_SET_H

#include <stdbool.h>

#include "pm/pm_msgs.h"

/* A new empty set (all counts zero, envelope zero). */
pm_snapshot *ctl_set_new(void);

/* Append a zeroed model / endpoint to <s> and return it (valid until the
 * next append). */
pm_model *ctl_set_add_model(pm_snapshot *s);
pm_endpoint *ctl_set_add_endpoint(pm_snapshot *s);
pm_user *ctl_set_add_user(pm_snapshot *s);

/* Free everything a model / endpoint owns and zero it. */
void ctl_model_fini(pm_model *m);
void ctl_endpoint_fini(pm_endpoint *ep);
void ctl_user_fini(pm_user *u);

/* Deep copies into zeroed <dst>. */
void ctl_model_copy(pm_model *dst, const pm_model *src);
void ctl_endpoint_copy(pm_endpoint *dst, const pm_endpoint *src);
void ctl_user_copy(pm_user *dst, const pm_user *src);

/* Deep equality of every field (for endpoints including the id). */
bool ctl_model_equal(const pm_model *a, const pm_model *b);
bool ctl_endpoint_equal(const pm_endpoint *a, const pm_endpoint *b);
bool ctl_user_equal(const pm_user *a, const pm_user *b);

/* True when <a> and <b> hold the same models, endpoints, users (in order)
 * and settings; the envelopes are ignored. NULLs compare equal only to NULL. */
bool ctl_snapshot_same_content(const pm_snapshot *a, const pm_snapshot *b);

/* strdup that passes NULL through. */
char *ctl_dup_opt(const char *s);

#endif
