/* gw_route_cfg: Llumnix's traffic-split route config (seed 004,
 * docs/traffic.md): the --route-policy / --route-config pair, validated
 * whole (a bad entry is refused with the field named, never found at request
 * time). Shared by the controller, which validates it at start-up and
 * publishes it in the snapshot, and the worker, which parses its own flags
 * or the snapshot's copy. Pure: no I/O; immutable after parsing. */
#ifndef GW_ROUTE_CFG_H
#define GW_ROUTE_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_cfg.h"
#include "gw/gw_err.h"

typedef enum gw_route_policy {
    GW_ROUTE_OFF = 0, /* no --route-policy: everything goes to the local pool */
    GW_ROUTE_WEIGHT,
    GW_ROUTE_PREFIX,
} gw_route_policy;

typedef struct gw_route_ep {
    bool local;      /* base_url "local": the controller-discovered pool */
    char *base_url;  /* external: http(s) URL without a trailing '/'; NULL when local */
    char *api_key;   /* external: sent as Authorization: Bearer; NULL = the client's header */
    char *model;     /* reserved (seed 004): carried, never applied to the request */
    bool fallback;   /* member of the fallback chain */
    int64_t weight;  /* weight policy */
    char *prefix;    /* prefix policy: the pattern as written */
    size_t stem_len; /* its length without the trailing '*' */
    bool wildcard;   /* the pattern ends with '*' */
    char label[24];  /* metric label: "local" or "external-<index>" */
} gw_route_ep;

typedef struct gw_route_cfg {
    gw_route_policy policy;
    gw_route_ep *eps;
    uint32_t n;
    int64_t total_weight;
} gw_route_cfg;

/* Parses and validates <policy> and <json> into <out> (zeroed first). Empty
 * policy and empty config: GW_ROUTE_OFF. On error returns GW_EINVAL with
 * <why> naming the flag or the field, e.g.
 * "--route-config[2].weight: must be an integer >= 0"; <out> is left empty. */
gw_err gw_route_cfg_parse(const char *policy, const char *json, gw_route_cfg *out, char *why,
                          size_t why_len);
void gw_route_cfg_fini(gw_route_cfg *t);

/* The two flags, the same in the worker and the controller (Llumnix's names);
 * <T> has char *route_policy, *route_config. */
#define GW_ROUTE_CFG_OPTS(T)                                                                       \
    GW_CFG_STR("route-policy", "LLMGW_ROUTE_POLICY", T, route_policy, "",                          \
               "Traffic splitting: weight or prefix (empty: every request goes to the local "      \
               "pool)"),                                                                           \
        GW_CFG_STR_F("route-config", "LLMGW_ROUTE_CONFIG", T, route_config, "", GW_CFG_F_SECRET,   \
                     "Traffic splitting: JSON array of {base_url (\"local\" or a URL), api_key, "  \
                     "model, fallback, weight, prefix}; refused at start-up when invalid")

#endif
