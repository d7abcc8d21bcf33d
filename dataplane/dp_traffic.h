/* dp_traffic: Llumnix's traffic splitting (seed 004, docs/traffic.md): the
 * --route-policy / --route-config pair, validated whole at start-up (a bad
 * entry is refused with the field named, never found at request time), and
 * the per-request choice: which entry takes a request first, and which
 * entries come after it when it fails (the fallback chain, in config order).
 * Pure: no I/O; immutable after dp_traffic_parse. */
#ifndef DP_TRAFFIC_H
#define DP_TRAFFIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

typedef enum dp_traffic_policy {
    DP_TRAFFIC_OFF = 0, /* no --route-policy: everything goes to the local pool */
    DP_TRAFFIC_WEIGHT,
    DP_TRAFFIC_PREFIX,
} dp_traffic_policy;

typedef struct dp_traffic_ep {
    bool local;      /* base_url "local": the controller-discovered pool */
    char *base_url;  /* external: http(s) URL without a trailing '/'; NULL when local */
    char *api_key;   /* external: sent as Authorization: Bearer; NULL = the client's header */
    char *model;     /* external: replaces the request's "model"; NULL = unchanged */
    bool fallback;   /* member of the fallback chain */
    int64_t weight;  /* weight policy */
    char *prefix;    /* prefix policy: the pattern as written */
    size_t stem_len; /* its length without the trailing '*' */
    bool wildcard;   /* the pattern ends with '*' */
    char label[24];  /* metric label: "local" or "external-<index>" */
} dp_traffic_ep;

typedef struct dp_traffic {
    dp_traffic_policy policy;
    dp_traffic_ep *eps;
    uint32_t n;
    int64_t total_weight;
} dp_traffic;

/* Parses and validates <policy> and <json> into <out> (zeroed first). Empty
 * policy and empty config: DP_TRAFFIC_OFF. On error returns GW_EINVAL with
 * <why> naming the flag or the field, e.g.
 * "--route-config[2].weight: must be an integer >= 0"; <out> is left empty. */
gw_err dp_traffic_parse(const char *policy, const char *json, dp_traffic *out, char *why,
                        size_t why_len);
void dp_traffic_fini(dp_traffic *t);

/* The entry that takes a request for <model> first; <rnd> is a uniform
 * random 32-bit value (weight policy). -1: no entry matches (prefix policy),
 * the request goes straight to the fallback chain. */
int32_t dp_traffic_pick(const dp_traffic *t, const char *model, uint32_t rnd);

/* The next fallback entry after position *<cursor> (start at 0), skipping
 * <primary>; advances *<cursor>. -1 when the chain is exhausted. */
int32_t dp_traffic_next_fallback(const dp_traffic *t, int32_t primary, uint32_t *cursor);

/* Whether dp_traffic_next_fallback would return an entry (no side effect). */
bool dp_traffic_has_fallback(const dp_traffic *t, int32_t primary, uint32_t cursor);

/* <e>'s base_url joined with the request <path>: a base ending in "/v<n>"
 * drops the path's own leading "/v<n>" (Llumnix's rule), so
 * "https://api.x/v1" + "/v1/chat/completions" is
 * "https://api.x/v1/chat/completions". */
void dp_traffic_url(const dp_traffic_ep *e, const char *path, char *out, size_t n);

/* Writes <body> (a JSON object) with its "model" set to <model> into <out>
 * (reset first). GW_EINVAL if <body> is not a JSON object, GW_EFULL if the
 * result does not fit <out>. */
gw_err dp_traffic_rewrite_model(const char *body, size_t len, const char *model, gw_buf *out);

/* <hdrs> (freed) without its Authorization lines, plus
 * "Authorization: <value>"; the new list. */
struct curl_slist *dp_traffic_set_authorization(struct curl_slist *hdrs, const char *value);

#endif
