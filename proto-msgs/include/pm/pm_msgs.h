/* pm_msgs: the controller <-> worker wire contract (DESIGN §4), as C structs
 * and a msgpack codec. schema.md beside this library is the normative
 * description; this header is its C mirror.
 *
 * Every message is a msgpack map with an envelope {v, kind, gen, epoch,
 * sent_ms} followed by the kind's own keys. Decoders skip unknown keys (a new
 * key is a minor addition), reject an unknown major <v> with GW_EVERSION, and
 * check every count and string length against the PM_MAX_* limits before
 * allocating (GW_EPROTO). All strings in decoded structs are heap copies owned
 * by the struct; free the whole message with its _free function. Optional
 * strings are NULL when absent. */
#ifndef PM_MSGS_H
#define PM_MSGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

#define PM_SCHEMA_MAJOR 1

/* Decoder limits: a message over any of these is refused with GW_EPROTO. */
#define PM_MAX_MSG_BYTES   (64u << 20)
#define PM_MAX_STR         4096u
#define PM_MAX_JSON        65536u /* routing_config_json */
#define PM_MAX_MODELS      4096u
#define PM_MAX_ENDPOINTS   65536u
#define PM_MAX_PROFILES    64u
#define PM_MAX_ADAPTERS    256u
#define PM_MAX_LABELS      64u
#define PM_MAX_WORKERS     4096u
#define PM_MAX_USERS       65536u
#define PM_MAX_USER_KEYS   16u
#define PM_KEY_HASH_LEN    64u         /* SHA-256, lower-case hex */
#define PM_MAX_ROUTE_JSON  (1u << 20)  /* traffic.config_json: 64 entries of 3 x 2 KiB fit */
#define PM_MAX_MIRROR_JSON (64u << 10) /* mirror.config_json: the mirror file's own cap */

typedef enum pm_kind {
    PM_KIND_SNAPSHOT = 1,     /* controller PUB topic "S", and REP answer */
    PM_KIND_LOAD = 2,         /* controller PUB topic "L" */
    PM_KIND_REPORT = 3,       /* worker PUSH -> controller PULL */
    PM_KIND_SNAPSHOT_REQ = 4, /* worker REQ -> controller REP: "send me the full snapshot" */
} pm_kind;

typedef struct pm_envelope {
    uint32_t v; /* schema major, PM_SCHEMA_MAJOR */
    pm_kind kind;
    uint64_t gen;     /* snapshot generation this message refers to */
    uint64_t epoch;   /* controller incarnation (changes on restart) */
    uint64_t sent_ms; /* sender wall clock, ms since the Unix epoch */
} pm_envelope;

/* ---- snapshot ---------------------------------------------------------- */

/* One config profile of the model.aibrix.ai/config schema (aibrix.md §5). */
typedef struct pm_profile {
    char *name;
    char *routing_strategy;      /* strategy name or weighted list; NULL = unset */
    int64_t requests_per_second; /* 0 = unlimited */
    char *routing_config_json;   /* the raw routingConfig JSON object text; NULL = none */
} pm_profile;

typedef struct pm_model {
    char *name;
    char *locked_strategy; /* lockedRoutingStrategy; NULL = none */
    char *default_profile; /* defaultProfile; NULL = "default" */
    uint32_t n_profiles;
    pm_profile *profiles;
} pm_model;

typedef struct pm_endpoint {
    uint32_t id;          /* stable small integer within an epoch; never reused while alive */
    char *model;          /* the model it serves (model.aibrix.ai/name) */
    char *pod;            /* pod name (or host:port for static endpoints) */
    char *ns;             /* namespace; NULL outside Kubernetes */
    char *ip;             /* address to connect to (IPv4/IPv6 literal or host name) */
    uint16_t port;        /* serving port (model.aibrix.ai/port, default 8000) */
    uint16_t metric_port; /* model.aibrix.ai/metric-port; 0 = same as port */
    char *engine;         /* model.aibrix.ai/engine, default "vllm" */
    char *roleset;        /* roleset-name label; NULL = none */
    char *role;           /* role-name label; NULL = combined */
    uint32_t n_adapters;
    char **adapters; /* LoRA adapters loaded on this endpoint */
    uint32_t n_labels;
    char **labels; /* pod labels as "key=value" (external-filter selects on them) */
    bool ready;    /* routable: has an IP, Ready=True, not terminating */
    bool draining; /* terminating: no new requests, in-flight ones finish */
} pm_endpoint;

typedef struct pm_settings {
    char *routing_strategy; /* fleet default strategy from the gateway config; NULL = unset */
} pm_settings;

/* Traffic splitting (seed 004, docs/traffic.md): the controller's
 * --route-policy / --route-config, validated there; each worker parses the
 * text with the same gw_route_cfg parser. Both NULL = none. config_json holds
 * the external endpoints' api keys: the bus is cluster-internal (like the
 * users' key digests); never logged, redacted in dumps. */
typedef struct pm_traffic {
    char *policy;      /* "weight" or "prefix"; NULL = no traffic splitting */
    char *config_json; /* the --route-config JSON array text; NULL with policy */
} pm_traffic;

/* The traffic mirror (seed 004): the controller's mirror file as last read
 * and validated (gw_mirror_cfg). NULL = no mirror file (mirror off). */
typedef struct pm_mirror {
    char *config_json;
} pm_mirror;

/* A gateway user (seed 003 "Rate Limiting"): who a request is charged to. */
typedef struct pm_user {
    char *name;  /* the `user` header value, and the key's owner */
    int64_t rpm; /* requests per minute; 0 = unlimited */
    int64_t tpm; /* tokens per minute; 0 = unlimited */
    uint32_t n_keys;
    char **key_hashes; /* API keys as SHA-256 lower-case hex; never the keys */
} pm_user;

typedef struct pm_snapshot {
    pm_envelope env; /* kind = PM_KIND_SNAPSHOT */
    uint32_t n_models;
    pm_model *models;
    uint32_t n_endpoints;
    pm_endpoint *endpoints;
    pm_settings settings;
    uint32_t n_users;
    pm_user *users;
    pm_traffic traffic; /* schema 1.x addition: absent from older controllers = none */
    pm_mirror mirror;   /* schema 1.x addition: absent = none */
} pm_snapshot;

/* ---- load (controller -> workers, ~10-20 Hz) --------------------------- */

typedef struct pm_ep_load {
    uint32_t id;
    uint32_t inflight;        /* fleet-wide in-flight requests (sum of worker reports) */
    uint64_t inflight_tokens; /* fleet-wide in-flight token estimate */
    double running;           /* engine num_requests_running; < 0 = unknown */
    double waiting;           /* engine num_requests_waiting; < 0 = unknown */
    double kv_usage;          /* engine KV cache usage 0..1; < 0 = unknown */
    double latency_ms;        /* EWMA end-to-end latency; < 0 = unknown */
    double ttft_ms;           /* EWMA time to first token; < 0 = unknown */
    double tokens_per_s;      /* recent token throughput; < 0 = unknown */
    double gpu_usage;         /* engine GPU KV cache usage 0..1 (legacy name); < 0 = unknown */
    double tpot_ms;           /* engine time per output token; < 0 = unknown */
    double metrics_age_ms;    /* time since the last good scrape; < 0 = never scraped */
    double kv_capacity;       /* engine KV cache capacity in tokens; < 0 = unknown */
} pm_ep_load;

/* Which report of each worker the fleet-wide numbers include, so a worker can
 * subtract its own share at that time (DESIGN §4). */
typedef struct pm_worker_seq {
    uint64_t worker_id;
    uint64_t seq;
} pm_worker_seq;

typedef struct pm_load {
    pm_envelope env; /* kind = PM_KIND_LOAD; gen = current snapshot gen */
    uint32_t n_eps;
    pm_ep_load *eps;
    uint32_t n_workers;
    pm_worker_seq *workers;
} pm_load;

/* ---- report (worker -> controller, ~10-20 Hz) -------------------------- */

typedef struct pm_ep_report {
    uint32_t id;
    uint32_t inflight;          /* this worker's in-flight requests now */
    uint64_t inflight_tokens;   /* this worker's in-flight token estimate now */
    uint32_t completed;         /* since the previous report */
    uint32_t errors;            /* since the previous report */
    uint64_t prompt_tokens;     /* since the previous report */
    uint64_t completion_tokens; /* since the previous report */
    uint64_t latency_ms_sum;    /* over <completed>, since the previous report */
    uint64_t ttft_ms_sum;       /* over <completed>, since the previous report */
} pm_ep_report;

typedef struct pm_report {
    pm_envelope env;    /* kind = PM_KIND_REPORT; gen = the worker's snapshot gen */
    uint64_t worker_id; /* random per worker process */
    uint64_t seq;       /* increments by one per report */
    uint32_t n_eps;
    pm_ep_report *eps;
} pm_report;

/* ---- codec ------------------------------------------------------------- */

/* Reads only the envelope of the message in <p>/<n>. GW_EPROTO if it is not a
 * msgpack map with a valid envelope, GW_EVERSION on an unknown major. */
GW_MUST_CHECK gw_err pm_peek_envelope(const void *p, size_t n, pm_envelope *out);

/* Encoders append the message to <out> (its cap applies: GW_EFULL). The
 * envelope's v and kind are written by the encoder whatever the struct says.
 * GW_EINVAL when the struct breaks a rule the decoder enforces (a NULL or
 * empty required string, a count or length over PM_MAX_*, port 0, a negative
 * requests_per_second, a non-finite double, a duplicate id or model name), so
 * whatever encodes also decodes. On any error <out> is cut back to its length
 * on entry. NULL optional strings are left out of the message. */
GW_MUST_CHECK gw_err pm_snapshot_encode(const pm_snapshot *s, gw_buf *out);
GW_MUST_CHECK gw_err pm_load_encode(const pm_load *l, gw_buf *out);
GW_MUST_CHECK gw_err pm_report_encode(const pm_report *r, gw_buf *out);
GW_MUST_CHECK gw_err pm_snapshot_req_encode(const pm_envelope *env, gw_buf *out);

/* Decoders: on GW_OK *out is a new heap message the caller frees with the
 * matching _free; on error *out is untouched and nothing leaks. GW_EPROTO for
 * malformed input or a wrong kind, GW_EVERSION for an unknown major (checked
 * before everything but the msgpack framing), GW_ENOMEM only if msgpack-c's
 * own allocator fails. Absent optional keys get the defaults of schema.md
 * (engine "vllm", unknown load values -1, everything else 0/false/NULL). The
 * snapshot-request message has no body: pm_peek_envelope is its decoder. */
GW_MUST_CHECK gw_err pm_snapshot_decode(const void *p, size_t n, pm_snapshot **out);
GW_MUST_CHECK gw_err pm_load_decode(const void *p, size_t n, pm_load **out);
GW_MUST_CHECK gw_err pm_report_decode(const void *p, size_t n, pm_report **out);

/* Free a message and everything it owns; NULL is a no-op. These also free
 * structs the controller built by hand with heap strings and arrays. */
void pm_snapshot_free(pm_snapshot *s);
void pm_load_free(pm_load *l);
void pm_report_free(pm_report *r);

/* Looks up a model by name; NULL if absent. Linear; callers index it. */
const pm_model *pm_snapshot_find_model(const pm_snapshot *s, const char *name);

#endif
