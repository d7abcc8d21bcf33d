/* dp_traffic: the request-time side of traffic splitting (seed 004,
 * docs/traffic.md) over a parsed gw_route_cfg: which entry takes a request
 * first, which entries come after it when it fails (the fallback chain, in
 * config order), the external URL, the Authorization
 * swap; and the route config a worker follows (its own flags, else the
 * snapshot's). Pure but for dp_traffic_shared's refcount. */
#ifndef DP_TRAFFIC_H
#define DP_TRAFFIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"
#include "gw/gw_metrics.h"
#include "gw/gw_route_cfg.h"
#include "pm/pm_msgs.h"

/* The entry that takes a request for <model> first; <rnd> is a uniform
 * random 32-bit value (weight policy). -1: no entry matches (prefix policy),
 * the request goes straight to the fallback chain. */
int32_t dp_traffic_pick(const gw_route_cfg *t, const char *model, uint32_t rnd);

/* The next fallback entry after position *<cursor> (start at 0), skipping
 * <primary>; advances *<cursor>. -1 when the chain is exhausted. */
int32_t dp_traffic_next_fallback(const gw_route_cfg *t, int32_t primary, uint32_t *cursor);

/* Whether dp_traffic_next_fallback would return an entry (no side effect). */
bool dp_traffic_has_fallback(const gw_route_cfg *t, int32_t primary, uint32_t cursor);

/* <e>'s base_url joined with the request <path>: a base ending in "/v<n>"
 * drops the path's own leading "/v<n>" (Llumnix's rule), so
 * "https://api.x/v1" + "/v1/chat/completions" is
 * "https://api.x/v1/chat/completions". */
void dp_traffic_url(const gw_route_ep *e, const char *path, char *out, size_t n);

/* <hdrs> (freed) without its Authorization lines, plus
 * "Authorization: <value>"; the new list. */
struct curl_slist *dp_traffic_set_authorization(struct curl_slist *hdrs, const char *value);

/* A snapshot's route config, parsed once and shared by the generations that
 * carry the same text (refcounted: each dp_snap holds one ref, so a request
 * follows the config of the snapshot it holds, whatever arrives meanwhile).
 * Loop thread only. */
typedef struct dp_traffic_ref {
    int refs;
    char *policy, *json; /* the snapshot's text, to spot a change */
    gw_route_cfg cfg;
} dp_traffic_ref;

/* The route config for a new snapshot carrying <t>, given the previous
 * generation's <prev> (NULL ok): <prev> again (one more ref) when the text is
 * unchanged, or when it does not parse (the controller validated it, so this
 * "cannot happen": logged DP-TRAFFIC-SNAPSHOT without the text, counted in
 * <invalid>, the last good one stays); a new one when it parses; NULL when
 * <t> carries none. */
dp_traffic_ref *dp_traffic_from_snapshot(dp_traffic_ref *prev, const pm_traffic *t,
                                         gw_metric_fam *invalid);
void dp_traffic_unref(dp_traffic_ref *r);

#endif
