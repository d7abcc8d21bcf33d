/* pm_codec: the msgpack codec of the controller <-> worker wire contract,
 * written by hand from schema.md (there is no generator yet, STYLE §8). Each
 * msgpack map of the schema is described once, as a table of pm_field rows
 * (key, C type, limits, offset into the C struct), and one generic walker
 * decodes, encodes, validates and frees with those tables. Keeping a single
 * description is what guarantees that the encoder never writes a message the
 * decoder refuses, and that the _free functions reach every owned pointer.
 *
 * Decoding makes two passes. scan_msg() walks the raw bytes without
 * allocating and proves that the input is exactly one msgpack object, nested
 * at most PM_MAX_DEPTH deep, whose every container count is backed by enough
 * remaining bytes. Only then does msgpack_unpack_next() build the object
 * tree. The order matters: msgpack-c allocates count * sizeof(msgpack_object)
 * for an array header before it reads a single element, so a 5-byte input
 * claiming 2^31 elements would ask for at least 48 GiB (ASan aborts on it).
 * Once the scan has passed, every object costs at least one input byte, so
 * the tree is a small multiple of the input (24 bytes per object, plus the
 * zone's rounding). The tree is then mapped onto a calloc'd struct:
 * every value type-checked, every count and length checked against PM_MAX_*
 * before allocating, strings copied (they point into the caller's bytes). On
 * any error the partial struct goes through the same free walker and *out is
 * not written.
 *
 * Stateless and thread-safe: the only globals are the const tables. */
#include "pm/pm_msgs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

/* Deepest container nesting accepted anywhere in a message, unknown values
 * included. v1 needs 4 (root, endpoints, endpoint, adapters). msgpack-c's own
 * parser gives up at 32 and reports that as out-of-memory, so we refuse much
 * earlier, with GW_EPROTO. */
#define PM_MAX_DEPTH 16

/* Every message struct starts with its envelope, which lets the generic code
 * reach it without knowing the kind. */
_Static_assert(offsetof(pm_snapshot, env) == 0, "envelope first");
_Static_assert(offsetof(pm_load, env) == 0, "envelope first");
_Static_assert(offsetof(pm_report, env) == 0, "envelope first");

/* ---- schema tables ------------------------------------------------------ */

typedef enum pm_ftype {
    FT_U64,  /* uint64_t */
    FT_U32,  /* uint32_t */
    FT_U16,  /* uint16_t */
    FT_I64,  /* int64_t; the wire carries a non-negative integer */
    FT_BOOL, /* bool */
    FT_DBL,  /* double, finite; integers accepted on decode */
    FT_STR,  /* char *, heap copy; NULL when absent */
    FT_STRS, /* char ** with a uint32_t count; elements non-empty */
    FT_ARR,  /* array of <sub> structs with a uint32_t count */
    FT_MAP,  /* a <sub> struct embedded in the parent */
} pm_ftype;

/* Must be present and not nil; a required string must also be non-empty. */
#define FF_REQ 0x1u

typedef struct pm_schema pm_schema;

typedef struct pm_field {
    const char *key;
    pm_ftype type;
    unsigned flags;
    uint64_t min;         /* integers: smallest value */
    uint64_t max;         /* integers: value; FT_STR: bytes; FT_STRS/FT_ARR: count */
    size_t off;           /* of the value in the struct */
    size_t cnt_off;       /* FT_STRS/FT_ARR: of the uint32_t count */
    const pm_schema *sub; /* FT_ARR/FT_MAP */
    const char *dflt_s;   /* FT_STR: value when absent or nil */
    double dflt_d;        /* FT_DBL: value when absent or nil */
} pm_field;

struct pm_schema {
    size_t size; /* of one struct */
    const pm_field *fields;
    size_t n_fields; /* <= 32: decode_map tracks seen keys in a bitmask */
    /* Rules across fields or elements (unique ids). Run after the fields, on
     * both paths: false makes decoding GW_EPROTO and encoding GW_EINVAL. */
    bool (*valid)(const void *base);
};

#define F_INT(T, m, k, ft, fl, lo, hi)                                                             \
    {                                                                                              \
        .key = (k), .type = (ft), .flags = (fl), .min = (lo), .max = (hi), .off = offsetof(T, m)   \
    }
#define F_U64(T, m, k, fl) F_INT(T, m, k, FT_U64, fl, 0, UINT64_MAX)
#define F_U32(T, m, k, fl) F_INT(T, m, k, FT_U32, fl, 0, UINT32_MAX)
#define F_BOOL(T, m, k)                                                                            \
    {                                                                                              \
        .key = (k), .type = FT_BOOL, .off = offsetof(T, m)                                         \
    }
#define F_DBL(T, m, k, d)                                                                          \
    {                                                                                              \
        .key = (k), .type = FT_DBL, .off = offsetof(T, m), .dflt_d = (d)                           \
    }
#define F_STR(T, m, k, fl, len, d)                                                                 \
    {                                                                                              \
        .key = (k), .type = FT_STR, .flags = (fl), .max = (len), .off = offsetof(T, m),            \
        .dflt_s = (d)                                                                              \
    }
#define F_STRS(T, m, cnt, k, fl, n)                                                                \
    {                                                                                              \
        .key = (k), .type = FT_STRS, .flags = (fl), .max = (n), .off = offsetof(T, m),             \
        .cnt_off = offsetof(T, cnt)                                                                \
    }
#define F_ARR(T, m, cnt, k, fl, n, s)                                                              \
    {                                                                                              \
        .key = (k), .type = FT_ARR, .flags = (fl), .max = (n), .off = offsetof(T, m),              \
        .cnt_off = offsetof(T, cnt), .sub = (s)                                                    \
    }
#define F_MAP(T, m, k, fl, s)                                                                      \
    {                                                                                              \
        .key = (k), .type = FT_MAP, .flags = (fl), .off = offsetof(T, m), .sub = (s)               \
    }
#define SCHEMA(T, f, v)                                                                            \
    {                                                                                              \
        .size = sizeof(T), .fields = (f), .n_fields = GW_ARRAY_LEN(f), .valid = (v)                \
    }

static bool snapshot_valid(const void *base);
static bool load_valid(const void *base);
static bool report_valid(const void *base);

/* The tables below are schema.md §3-§5 in C (the envelope, §2, is
 * decode_envelope()); keep both in step. */

static const pm_field profile_fields[] = {
    F_STR(pm_profile, name, "name", FF_REQ, PM_MAX_STR, NULL),
    F_STR(pm_profile, routing_strategy, "routing_strategy", 0, PM_MAX_STR, NULL),
    F_INT(pm_profile, requests_per_second, "rps", FT_I64, 0, 0, INT64_MAX),
    F_STR(pm_profile, routing_config_json, "routing_config_json", 0, PM_MAX_JSON, NULL),
};
static const pm_schema profile_schema = SCHEMA(pm_profile, profile_fields, NULL);

static const pm_field model_fields[] = {
    F_STR(pm_model, name, "name", FF_REQ, PM_MAX_STR, NULL),
    F_STR(pm_model, locked_strategy, "locked_strategy", 0, PM_MAX_STR, NULL),
    F_STR(pm_model, default_profile, "default_profile", 0, PM_MAX_STR, NULL),
    F_ARR(pm_model, profiles, n_profiles, "profiles", 0, PM_MAX_PROFILES, &profile_schema),
};
static const pm_schema model_schema = SCHEMA(pm_model, model_fields, NULL);

static const pm_field endpoint_fields[] = {
    F_U32(pm_endpoint, id, "id", FF_REQ),
    F_STR(pm_endpoint, model, "model", FF_REQ, PM_MAX_STR, NULL),
    F_STR(pm_endpoint, pod, "pod", FF_REQ, PM_MAX_STR, NULL),
    F_STR(pm_endpoint, ns, "ns", 0, PM_MAX_STR, NULL),
    F_STR(pm_endpoint, ip, "ip", FF_REQ, PM_MAX_STR, NULL),
    F_INT(pm_endpoint, port, "port", FT_U16, FF_REQ, 1, 65535),
    F_INT(pm_endpoint, metric_port, "metric_port", FT_U16, 0, 0, 65535),
    /* Absent means the label default, so consumers never see NULL. */
    F_STR(pm_endpoint, engine, "engine", 0, PM_MAX_STR, "vllm"),
    F_STR(pm_endpoint, roleset, "roleset", 0, PM_MAX_STR, NULL),
    F_STR(pm_endpoint, role, "role", 0, PM_MAX_STR, NULL),
    F_STRS(pm_endpoint, adapters, n_adapters, "adapters", 0, PM_MAX_ADAPTERS),
    F_STRS(pm_endpoint, labels, n_labels, "labels", 0, PM_MAX_LABELS),
    F_BOOL(pm_endpoint, ready, "ready"),
    F_BOOL(pm_endpoint, draining, "draining"),
};
static const pm_schema endpoint_schema = SCHEMA(pm_endpoint, endpoint_fields, NULL);

static const pm_field settings_fields[] = {
    F_STR(pm_settings, routing_strategy, "routing_strategy", 0, PM_MAX_STR, NULL),
};
static const pm_schema settings_schema = SCHEMA(pm_settings, settings_fields, NULL);

static bool user_valid(const void *base);

static const pm_field user_fields[] = {
    F_STR(pm_user, name, "name", FF_REQ, PM_MAX_STR, NULL),
    F_INT(pm_user, rpm, "rpm", FT_I64, 0, 0, INT64_MAX),
    F_INT(pm_user, tpm, "tpm", FT_I64, 0, 0, INT64_MAX),
    F_STRS(pm_user, key_hashes, n_keys, "keys", 0, PM_MAX_USER_KEYS),
};
static const pm_schema user_schema = SCHEMA(pm_user, user_fields, user_valid);

static bool traffic_valid(const void *base);

static const pm_field traffic_fields[] = {
    F_STR(pm_traffic, policy, "policy", 0, PM_MAX_STR, NULL),
    F_STR(pm_traffic, config_json, "config", 0, PM_MAX_ROUTE_JSON, NULL),
};
static const pm_schema traffic_schema = SCHEMA(pm_traffic, traffic_fields, traffic_valid);

static const pm_field mirror_fields[] = {
    F_STR(pm_mirror, config_json, "config", 0, PM_MAX_MIRROR_JSON, NULL),
};
static const pm_schema mirror_schema = SCHEMA(pm_mirror, mirror_fields, NULL);

static const pm_field snapshot_fields[] = {
    F_ARR(pm_snapshot, models, n_models, "models", FF_REQ, PM_MAX_MODELS, &model_schema),
    F_ARR(pm_snapshot, endpoints, n_endpoints, "endpoints", FF_REQ, PM_MAX_ENDPOINTS,
          &endpoint_schema),
    F_MAP(pm_snapshot, settings, "settings", 0, &settings_schema),
    F_ARR(pm_snapshot, users, n_users, "users", 0, PM_MAX_USERS, &user_schema),
    F_MAP(pm_snapshot, traffic, "traffic", 0, &traffic_schema),
    F_MAP(pm_snapshot, mirror, "mirror", 0, &mirror_schema),
};
static const pm_schema snapshot_schema = SCHEMA(pm_snapshot, snapshot_fields, snapshot_valid);

/* Load and report rows repeat for every endpoint 10-20 times a second, so
 * their keys are short (schema.md §4). */
static const pm_field ep_load_fields[] = {
    F_U32(pm_ep_load, id, "id", FF_REQ),
    F_U32(pm_ep_load, inflight, "inf", 0),
    F_U64(pm_ep_load, inflight_tokens, "inf_tok", 0),
    F_DBL(pm_ep_load, running, "run", -1.0),
    F_DBL(pm_ep_load, waiting, "wait", -1.0),
    F_DBL(pm_ep_load, kv_usage, "kv", -1.0),
    F_DBL(pm_ep_load, latency_ms, "lat_ms", -1.0),
    F_DBL(pm_ep_load, ttft_ms, "ttft_ms", -1.0),
    F_DBL(pm_ep_load, tokens_per_s, "tok_s", -1.0),
    F_DBL(pm_ep_load, gpu_usage, "gpu", -1.0),
    F_DBL(pm_ep_load, tpot_ms, "tpot_ms", -1.0),
    F_DBL(pm_ep_load, metrics_age_ms, "m_age_ms", -1.0),
    F_DBL(pm_ep_load, kv_capacity, "kv_cap", -1.0),
};
static const pm_schema ep_load_schema = SCHEMA(pm_ep_load, ep_load_fields, NULL);

static const pm_field worker_seq_fields[] = {
    F_U64(pm_worker_seq, worker_id, "wid", FF_REQ),
    F_U64(pm_worker_seq, seq, "seq", FF_REQ),
};
static const pm_schema worker_seq_schema = SCHEMA(pm_worker_seq, worker_seq_fields, NULL);

static const pm_field load_fields[] = {
    F_ARR(pm_load, eps, n_eps, "eps", FF_REQ, PM_MAX_ENDPOINTS, &ep_load_schema),
    F_ARR(pm_load, workers, n_workers, "workers", 0, PM_MAX_WORKERS, &worker_seq_schema),
};
static const pm_schema load_schema = SCHEMA(pm_load, load_fields, load_valid);

static const pm_field ep_report_fields[] = {
    F_U32(pm_ep_report, id, "id", FF_REQ),
    F_U32(pm_ep_report, inflight, "inf", 0),
    F_U64(pm_ep_report, inflight_tokens, "inf_tok", 0),
    F_U32(pm_ep_report, completed, "done", 0),
    F_U32(pm_ep_report, errors, "err", 0),
    F_U64(pm_ep_report, prompt_tokens, "p_tok", 0),
    F_U64(pm_ep_report, completion_tokens, "c_tok", 0),
    F_U64(pm_ep_report, latency_ms_sum, "lat_ms_sum", 0),
    F_U64(pm_ep_report, ttft_ms_sum, "ttft_ms_sum", 0),
};
static const pm_schema ep_report_schema = SCHEMA(pm_ep_report, ep_report_fields, NULL);

static const pm_field report_fields[] = {
    F_U64(pm_report, worker_id, "wid", FF_REQ),
    F_U64(pm_report, seq, "seq", FF_REQ),
    F_ARR(pm_report, eps, n_eps, "eps", FF_REQ, PM_MAX_ENDPOINTS, &ep_report_schema),
};
static const pm_schema report_schema = SCHEMA(pm_report, report_fields, report_valid);

_Static_assert(GW_ARRAY_LEN(endpoint_fields) <= 32, "seen-key bitmask");
_Static_assert(GW_ARRAY_LEN(ep_load_fields) <= 32, "seen-key bitmask");
_Static_assert(GW_ARRAY_LEN(ep_report_fields) <= 32, "seen-key bitmask");

/* Indexed by pm_kind; the wire carries the name so that a breaking change can
 * be a new kind ("snapshot_v2") that old workers refuse by name. */
static const char *const kind_names[] = {
    [PM_KIND_SNAPSHOT] = "snapshot",
    [PM_KIND_LOAD] = "load",
    [PM_KIND_REPORT] = "report",
    [PM_KIND_SNAPSHOT_REQ] = "snapshot_req",
};

/* ---- cross-field rules -------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorting a copy keeps this O(n log n) for 64k endpoints at 20 Hz; the pairwise
 * loop would be 2^31 comparisons. <width> is 4 or 8 (the id's C type). */
static bool
ids_unique(const void *arr, uint32_t n, size_t stride, size_t off, size_t width)
{
    uint64_t *ids;
    bool ok = true;

    if (n < 2)
        return true;
    ids = gw_xmalloc((size_t)n * sizeof(*ids));
    for (uint32_t i = 0; i < n; i++) {
        const char *e = (const char *)arr + (size_t)i * stride + off;
        ids[i] = width == 4 ? *(const uint32_t *)e : *(const uint64_t *)e;
    }
    qsort(ids, n, sizeof(*ids), cmp_u64);
    for (uint32_t i = 1; i < n && ok; i++)
        ok = ids[i] != ids[i - 1];
    free(ids);
    return ok;
}

/* Whether the string member at <off> of the <n> structs of <arr> is unique. */
static bool
names_unique(const void *arr, uint32_t n, size_t stride, size_t off)
{
    const char **names;
    bool ok = true;

    if (n < 2)
        return true;
    names = gw_xmalloc((size_t)n * sizeof(*names));
    for (uint32_t i = 0; i < n; i++)
        names[i] = *(const char *const *)((const char *)arr + (size_t)i * stride + off);
    qsort(names, n, sizeof(*names), cmp_str);
    for (uint32_t i = 1; i < n && ok; i++)
        ok = strcmp(names[i], names[i - 1]) != 0;
    free(names);
    return ok;
}

static bool
snapshot_valid(const void *base)
{
    const pm_snapshot *s = base;

    return ids_unique(s->endpoints, s->n_endpoints, sizeof(pm_endpoint), offsetof(pm_endpoint, id),
                      sizeof(uint32_t)) &&
           names_unique(s->models, s->n_models, sizeof(pm_model), offsetof(pm_model, name)) &&
           names_unique(s->users, s->n_users, sizeof(pm_user), offsetof(pm_user, name));
}

/* A policy without its config (or the reverse) is half a route config: the
 * controller never sends one, so it is a broken message. */
static bool
traffic_valid(const void *base)
{
    const pm_traffic *t = base;

    return (t->policy == NULL) == (t->config_json == NULL) &&
           (t->policy == NULL || (t->policy[0] != '\0' && t->config_json[0] != '\0'));
}

/* Key hashes are what workers compare against: exactly 64 lower-case hex
 * digits, so a plain key can never be mistaken for one. */
static bool
user_valid(const void *base)
{
    const pm_user *u = base;

    for (uint32_t i = 0; i < u->n_keys; i++) {
        const char *h = u->key_hashes[i];
        if (h == NULL || strlen(h) != PM_KEY_HASH_LEN ||
            strspn(h, "0123456789abcdef") != PM_KEY_HASH_LEN)
            return false;
    }
    return true;
}

static bool
load_valid(const void *base)
{
    const pm_load *l = base;

    return ids_unique(l->eps, l->n_eps, sizeof(pm_ep_load), offsetof(pm_ep_load, id),
                      sizeof(uint32_t)) &&
           ids_unique(l->workers, l->n_workers, sizeof(pm_worker_seq),
                      offsetof(pm_worker_seq, worker_id), sizeof(uint64_t));
}

static bool
report_valid(const void *base)
{
    const pm_report *r = base;

    return ids_unique(r->eps, r->n_eps, sizeof(pm_ep_report), offsetof(pm_ep_report, id),
                      sizeof(uint32_t));
}

/* ---- free --------------------------------------------------------------- */

/* Tolerates half-built and hand-built structs: a count without its array is
 * skipped, NULL strings are fine. */
static void
free_fields(const pm_schema *sc, void *base)
{
    for (size_t i = 0; i < sc->n_fields; i++) {
        const pm_field *f = &sc->fields[i];
        char *p = (char *)base + f->off;
        uint32_t n = 0;

        if (f->type == FT_STRS || f->type == FT_ARR)
            n = *(uint32_t *)((char *)base + f->cnt_off);
        switch (f->type) {
        case FT_STR:
            GW_FREE(*(char **)p);
            break;
        case FT_STRS: {
            char **a = *(char ***)p;
            for (uint32_t j = 0; a != NULL && j < n; j++)
                free(a[j]);
            GW_FREE(*(char ***)p);
            break;
        }
        case FT_ARR: {
            char *a = *(char **)p;
            for (uint32_t j = 0; a != NULL && j < n; j++)
                free_fields(f->sub, a + (size_t)j * f->sub->size);
            GW_FREE(*(char **)p);
            break;
        }
        case FT_MAP:
            free_fields(f->sub, p);
            break;
        default:
            break;
        }
    }
}

/* ---- scan: structural check before msgpack-c allocates ------------------ */

static uint64_t
read_be(const uint8_t *p, unsigned width)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < width; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walks one msgpack object covering exactly <n> bytes, keeping per open
 * container the number of items still to read (a map of k pairs is 2k
 * items). Refuses reserved bytes, lengths past the end, containers whose
 * item count exceeds the bytes left (each item takes at least one), nesting
 * deeper than PM_MAX_DEPTH and trailing bytes. Formats: msgpack spec,
 * "Formats" section. */
static gw_err
scan_msg(const uint8_t *p, size_t n)
{
    uint64_t left[PM_MAX_DEPTH + 1];
    unsigned depth = 0;
    size_t off = 0;

    left[0] = 1;
    for (;;) {
        unsigned lw = 0;    /* width of a big-endian length/count field */
        uint64_t len = 0;   /* payload bytes, or container count */
        uint64_t extra = 0; /* payload bytes besides <len> (ext type byte) */
        unsigned per = 0;   /* items per counted entry: 1 array, 2 map, 0 scalar */
        uint8_t b;

        while (left[depth] == 0) {
            if (depth == 0)
                return off == n ? GW_OK : GW_EPROTO;
            depth--;
        }
        left[depth]--;
        if (off >= n)
            return GW_EPROTO;
        b = p[off++];
        if (b <= 0x7f || b >= 0xe0) {
            /* positive / negative fixint */
        } else if (b <= 0x8f) {
            per = 2;
            len = b & 0x0f;
        } else if (b <= 0x9f) {
            per = 1;
            len = b & 0x0f;
        } else if (b <= 0xbf) {
            len = b & 0x1f;
        } else {
            switch (b) {
            case 0xc0: /* nil */
            case 0xc2: /* false */
            case 0xc3: /* true */
                break;
            case 0xc4: /* bin 8/16/32, str 8/16/32 */
            case 0xd9:
                lw = 1;
                break;
            case 0xc5:
            case 0xda:
                lw = 2;
                break;
            case 0xc6:
            case 0xdb:
                lw = 4;
                break;
            case 0xc7: /* ext 8/16/32: length, then a type byte, then data */
                lw = 1;
                extra = 1;
                break;
            case 0xc8:
                lw = 2;
                extra = 1;
                break;
            case 0xc9:
                lw = 4;
                extra = 1;
                break;
            case 0xcc: /* uint 8..64, int 8..64, float 32/64 */
            case 0xd0:
                extra = 1;
                break;
            case 0xcd:
            case 0xd1:
                extra = 2;
                break;
            case 0xca:
            case 0xce:
            case 0xd2:
                extra = 4;
                break;
            case 0xcb:
            case 0xcf:
            case 0xd3:
                extra = 8;
                break;
            case 0xd4: /* fixext 1..16: type byte + data */
                extra = 2;
                break;
            case 0xd5:
                extra = 3;
                break;
            case 0xd6:
                extra = 5;
                break;
            case 0xd7:
                extra = 9;
                break;
            case 0xd8:
                extra = 17;
                break;
            case 0xdc: /* array 16/32, map 16/32 */
                per = 1;
                lw = 2;
                break;
            case 0xdd:
                per = 1;
                lw = 4;
                break;
            case 0xde:
                per = 2;
                lw = 2;
                break;
            case 0xdf:
                per = 2;
                lw = 4;
                break;
            default: /* 0xc1: never used */
                return GW_EPROTO;
            }
        }
        if (lw > 0) {
            if (n - off < lw)
                return GW_EPROTO;
            len = read_be(p + off, lw);
            off += lw;
        }
        if (per == 0) {
            /* len <= 2^32 and extra <= 17: no overflow */
            if (len + extra > n - off)
                return GW_EPROTO;
            off += (size_t)(len + extra);
        } else if (len > 0) {
            uint64_t items = len * per;
            if (items > n - off || depth == PM_MAX_DEPTH)
                return GW_EPROTO;
            left[++depth] = items;
        }
    }
}

/* Builds the object tree of one scanned message into <u>, which the caller
 * destroys on GW_OK. msgpack-c's strings point into <p>. */
static gw_err
unpack(const void *p, size_t n, msgpack_unpacked *u)
{
    size_t off = 0;
    gw_err rc;

    if (p == NULL || n == 0 || n > PM_MAX_MSG_BYTES)
        return GW_EPROTO;
    rc = scan_msg(p, n);
    if (rc != GW_OK)
        return rc;
    msgpack_unpacked_init(u);
    switch (msgpack_unpack_next(u, p, n, &off)) {
    case MSGPACK_UNPACK_SUCCESS:
        if (off == n)
            return GW_OK;
        rc = GW_EPROTO;
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        /* The scan bounds the tree, so this is a real malloc failure. */
        gw_log(GW_LOG_ERR, "PM-DECODE-NOMEM", "bytes=%zu msg=\"msgpack_unpack_next: no memory\"",
               n);
        rc = GW_ENOMEM;
        break;
    default:
        /* The scan accepts only what msgpack-c parses; kept for safety. */
        rc = GW_EPROTO;
        break;
    }
    msgpack_unpacked_destroy(u);
    return rc;
}

/* ---- decode ------------------------------------------------------------- */

static bool
key_is(const msgpack_object_str *k, const char *name)
{
    size_t len = strlen(name);
    return k->size == len && memcmp(k->ptr, name, len) == 0;
}

/* Envelope first, and <v> before anything else in it: a future major may
 * change every other key, and must still be reported as GW_EVERSION. */
static gw_err
decode_envelope(const msgpack_object *root, pm_envelope *env)
{
    static const char *const keys[] = {"v", "kind", "gen", "epoch", "sent_ms"};
    const msgpack_object *val[GW_ARRAY_LEN(keys)] = {NULL};
    const msgpack_object *kind;

    if (root->type != MSGPACK_OBJECT_MAP)
        return GW_EPROTO;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];

        if (kv->key.type != MSGPACK_OBJECT_STR)
            return GW_EPROTO;
        for (size_t k = 0; k < GW_ARRAY_LEN(keys); k++) {
            if (!key_is(&kv->key.via.str, keys[k]))
                continue;
            if (val[k] != NULL)
                return GW_EPROTO;
            val[k] = &kv->val;
        }
    }
    for (size_t k = 0; k < GW_ARRAY_LEN(keys); k++) {
        if (val[k] == NULL || (k != 1 && val[k]->type != MSGPACK_OBJECT_POSITIVE_INTEGER))
            return GW_EPROTO;
        if (k == 0 && val[0]->via.u64 != PM_SCHEMA_MAJOR)
            return GW_EVERSION;
    }
    kind = val[1];
    if (kind->type != MSGPACK_OBJECT_STR)
        return GW_EPROTO;
    env->kind = 0;
    for (size_t k = 0; k < GW_ARRAY_LEN(kind_names); k++) {
        if (kind_names[k] != NULL && key_is(&kind->via.str, kind_names[k]))
            env->kind = (pm_kind)k;
    }
    if (env->kind == 0)
        return GW_EPROTO;
    env->v = PM_SCHEMA_MAJOR;
    env->gen = val[2]->via.u64;
    env->epoch = val[3]->via.u64;
    env->sent_ms = val[4]->via.u64;
    return GW_OK;
}

/* Strings must not hold NUL: a C consumer would silently cut them, and the
 * re-encoded message would differ from the one received. */
static gw_err
copy_str(const msgpack_object *v, uint64_t max, bool nonempty, char **out)
{
    uint32_t n;
    char *s;

    if (v->type != MSGPACK_OBJECT_STR)
        return GW_EPROTO;
    n = v->via.str.size;
    if (n > max || (nonempty && n == 0))
        return GW_EPROTO;
    if (n > 0 && memchr(v->via.str.ptr, '\0', n) != NULL)
        return GW_EPROTO;
    s = gw_xmalloc((size_t)n + 1);
    if (n > 0)
        memcpy(s, v->via.str.ptr, n);
    s[n] = '\0';
    *out = s;
    return GW_OK;
}

static void
apply_default(const pm_field *f, void *base)
{
    char *p = (char *)base + f->off;

    switch (f->type) {
    case FT_STR:
        if (f->dflt_s != NULL)
            *(char **)p = gw_xstrdup(f->dflt_s);
        break;
    case FT_DBL:
        *(double *)p = f->dflt_d;
        break;
    case FT_MAP:
        for (size_t i = 0; i < f->sub->n_fields; i++)
            apply_default(&f->sub->fields[i], p);
        break;
    default: /* zero, from calloc */
        break;
    }
}

static gw_err decode_map(const pm_schema *sc, const msgpack_object *o, void *base);

/* Arrays are hung on the struct (pointer and count) before their elements
 * are decoded, so an error half-way leaves a struct free_fields() can walk. */
static gw_err
decode_field(const pm_field *f, const msgpack_object *v, void *base)
{
    char *p = (char *)base + f->off;
    uint32_t n;
    gw_err rc;

    if (v->type == MSGPACK_OBJECT_NIL) {
        if (f->flags & FF_REQ)
            return GW_EPROTO;
        apply_default(f, base);
        return GW_OK;
    }
    switch (f->type) {
    case FT_U64:
    case FT_U32:
    case FT_U16:
    case FT_I64: {
        uint64_t x;
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return GW_EPROTO;
        x = v->via.u64;
        if (x < f->min || x > f->max)
            return GW_EPROTO;
        if (f->type == FT_U64)
            *(uint64_t *)p = x;
        else if (f->type == FT_U32)
            *(uint32_t *)p = (uint32_t)x;
        else if (f->type == FT_U16)
            *(uint16_t *)p = (uint16_t)x;
        else
            *(int64_t *)p = (int64_t)x;
        return GW_OK;
    }
    case FT_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return GW_EPROTO;
        *(bool *)p = v->via.boolean;
        return GW_OK;
    case FT_DBL: {
        double d;
        if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            d = v->via.f64;
        else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            d = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            d = (double)v->via.i64;
        else
            return GW_EPROTO;
        /* NaN would poison every score it enters; infinities likewise. */
        if (!isfinite(d))
            return GW_EPROTO;
        *(double *)p = d;
        return GW_OK;
    }
    case FT_STR:
        return copy_str(v, f->max, (f->flags & FF_REQ) != 0, (char **)p);
    case FT_STRS: {
        char **a;
        if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > f->max)
            return GW_EPROTO;
        n = v->via.array.size;
        if (n == 0)
            return GW_OK;
        a = gw_xcalloc(n, sizeof(*a));
        *(char ***)p = a;
        *(uint32_t *)((char *)base + f->cnt_off) = n;
        for (uint32_t i = 0; i < n; i++) {
            rc = copy_str(&v->via.array.ptr[i], PM_MAX_STR, true, &a[i]);
            if (rc != GW_OK)
                return rc;
        }
        return GW_OK;
    }
    case FT_ARR: {
        char *a;
        if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > f->max)
            return GW_EPROTO;
        n = v->via.array.size;
        if (n == 0)
            return GW_OK;
        a = gw_xcalloc(n, f->sub->size);
        *(char **)p = a;
        *(uint32_t *)((char *)base + f->cnt_off) = n;
        for (uint32_t i = 0; i < n; i++) {
            rc = decode_map(f->sub, &v->via.array.ptr[i], a + (size_t)i * f->sub->size);
            if (rc != GW_OK)
                return rc;
        }
        return GW_OK;
    }
    case FT_MAP:
        return decode_map(f->sub, v, p);
    }
    return GW_EPROTO;
}

/* Unknown keys are skipped: that is how a minor addition stays readable by
 * older workers. A known key twice is refused, since which one wins would be
 * up to the decoder. The debug lines name the keys on the way out, giving the
 * path of the offending value (never the value itself). */
static gw_err
decode_map(const pm_schema *sc, const msgpack_object *o, void *base)
{
    uint32_t seen = 0;
    gw_err rc;

    if (o->type != MSGPACK_OBJECT_MAP)
        return GW_EPROTO;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        size_t fi;

        if (kv->key.type != MSGPACK_OBJECT_STR)
            return GW_EPROTO;
        for (fi = 0; fi < sc->n_fields; fi++) {
            if (key_is(&kv->key.via.str, sc->fields[fi].key))
                break;
        }
        if (fi == sc->n_fields)
            continue;
        if (seen & (1u << fi)) {
            gw_log(GW_LOG_DEBUG, "PM-DECODE-DUP", "key=%s msg=\"duplicate key\"",
                   sc->fields[fi].key);
            return GW_EPROTO;
        }
        seen |= 1u << fi;
        rc = decode_field(&sc->fields[fi], &kv->val, base);
        if (rc != GW_OK) {
            gw_log(GW_LOG_DEBUG, "PM-DECODE-FIELD", "key=%s err=%s", sc->fields[fi].key,
                   gw_strerror(rc));
            return rc;
        }
    }
    for (size_t fi = 0; fi < sc->n_fields; fi++) {
        if (seen & (1u << fi))
            continue;
        if (sc->fields[fi].flags & FF_REQ) {
            gw_log(GW_LOG_DEBUG, "PM-DECODE-MISSING", "key=%s msg=\"required key missing\"",
                   sc->fields[fi].key);
            return GW_EPROTO;
        }
        apply_default(&sc->fields[fi], base);
    }
    if (sc->valid != NULL && !sc->valid(base)) {
        gw_log(GW_LOG_DEBUG, "PM-DECODE-DUP-ID", "msg=\"duplicate id or name\"");
        return GW_EPROTO;
    }
    return GW_OK;
}

static gw_err
decode_msg(const void *p, size_t n, pm_kind kind, const pm_schema *sc, void **out)
{
    msgpack_unpacked u;
    pm_envelope env;
    void *msg = NULL;
    gw_err rc;

    rc = unpack(p, n, &u);
    if (rc != GW_OK)
        return rc;
    rc = decode_envelope(&u.data, &env);
    if (rc == GW_OK && env.kind != kind)
        rc = GW_EPROTO;
    if (rc == GW_OK) {
        msg = gw_xcalloc(1, sc->size);
        *(pm_envelope *)msg = env;
        rc = decode_map(sc, &u.data, msg);
    }
    msgpack_unpacked_destroy(&u);
    if (rc != GW_OK) {
        if (msg != NULL) {
            free_fields(sc, msg);
            free(msg);
        }
        return rc;
    }
    *out = msg;
    return GW_OK;
}

/* ---- encode ------------------------------------------------------------- */

/* msgpack's packer cannot stop half-way, so the first append error sticks and
 * later writes are dropped; the encoder looks at it once at the end. */
typedef struct pm_writer {
    gw_buf *buf;
    gw_err err;
} pm_writer;

static int
on_write(void *data, const char *p, size_t n)
{
    pm_writer *w = data;

    if (w->err == GW_OK)
        w->err = gw_buf_append(w->buf, p, n);
    return w->err == GW_OK ? 0 : -1;
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);

    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

/* Optional strings that are NULL are left out; every other field is always
 * written, which keeps the encoding of a struct a single byte string (the
 * golden tests compare bytes). */
static size_t
count_present(const pm_schema *sc, const void *base)
{
    size_t n = 0;

    for (size_t i = 0; i < sc->n_fields; i++) {
        const pm_field *f = &sc->fields[i];
        if (f->type != FT_STR || *(char *const *)((const char *)base + f->off) != NULL)
            n++;
    }
    return n;
}

static gw_err encode_map(msgpack_packer *pk, const pm_schema *sc, const void *base,
                         const pm_envelope *env, pm_kind kind);

/* Refuses whatever the decoder would refuse, so that a message the controller
 * managed to encode is one every worker can read. */
static gw_err
encode_field(msgpack_packer *pk, const pm_field *f, const void *base)
{
    const char *p = (const char *)base + f->off;
    uint32_t n = 0;
    gw_err rc;

    if (f->type == FT_STRS || f->type == FT_ARR) {
        n = *(const uint32_t *)((const char *)base + f->cnt_off);
        if (n > f->max || (n > 0 && *(const void *const *)p == NULL))
            return GW_EINVAL;
    }
    switch (f->type) {
    case FT_U64:
    case FT_U32:
    case FT_U16:
    case FT_I64: {
        uint64_t x;
        if (f->type == FT_U64) {
            x = *(const uint64_t *)p;
        } else if (f->type == FT_U32) {
            x = *(const uint32_t *)p;
        } else if (f->type == FT_U16) {
            x = *(const uint16_t *)p;
        } else {
            int64_t sx = *(const int64_t *)p;
            if (sx < 0)
                return GW_EINVAL;
            x = (uint64_t)sx;
        }
        if (x < f->min || x > f->max)
            return GW_EINVAL;
        pack_str(pk, f->key);
        msgpack_pack_uint64(pk, x);
        return GW_OK;
    }
    case FT_BOOL:
        pack_str(pk, f->key);
        if (*(const bool *)p)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        return GW_OK;
    case FT_DBL:
        if (!isfinite(*(const double *)p))
            return GW_EINVAL;
        pack_str(pk, f->key);
        msgpack_pack_double(pk, *(const double *)p);
        return GW_OK;
    case FT_STR: {
        const char *s = *(const char *const *)p;
        if (s == NULL)
            return (f->flags & FF_REQ) ? GW_EINVAL : GW_OK;
        if (strlen(s) > f->max || ((f->flags & FF_REQ) && s[0] == '\0'))
            return GW_EINVAL;
        pack_str(pk, f->key);
        pack_str(pk, s);
        return GW_OK;
    }
    case FT_STRS: {
        char *const *a = *(char *const *const *)p;
        pack_str(pk, f->key);
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            if (a[i] == NULL || a[i][0] == '\0' || strlen(a[i]) > PM_MAX_STR)
                return GW_EINVAL;
            pack_str(pk, a[i]);
        }
        return GW_OK;
    }
    case FT_ARR: {
        const char *a = *(const char *const *)p;
        pack_str(pk, f->key);
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            rc = encode_map(pk, f->sub, a + (size_t)i * f->sub->size, NULL, 0);
            if (rc != GW_OK)
                return rc;
        }
        return GW_OK;
    }
    case FT_MAP:
        pack_str(pk, f->key);
        return encode_map(pk, f->sub, p, NULL, 0);
    }
    return GW_EINVAL;
}

/* With <env>, the envelope keys come first, so a reader scanning by eye (or a
 * future streaming decoder) meets "v" before the body. <sc> NULL: no body. */
static gw_err
encode_map(msgpack_packer *pk, const pm_schema *sc, const void *base, const pm_envelope *env,
           pm_kind kind)
{
    size_t n = (env != NULL ? 5 : 0) + (sc != NULL ? count_present(sc, base) : 0);
    gw_err rc;

    msgpack_pack_map(pk, n);
    if (env != NULL) {
        pack_str(pk, "v");
        msgpack_pack_uint32(pk, PM_SCHEMA_MAJOR);
        pack_str(pk, "kind");
        pack_str(pk, kind_names[kind]);
        pack_str(pk, "gen");
        msgpack_pack_uint64(pk, env->gen);
        pack_str(pk, "epoch");
        msgpack_pack_uint64(pk, env->epoch);
        pack_str(pk, "sent_ms");
        msgpack_pack_uint64(pk, env->sent_ms);
    }
    if (sc == NULL)
        return GW_OK;
    for (size_t i = 0; i < sc->n_fields; i++) {
        rc = encode_field(pk, &sc->fields[i], base);
        if (rc != GW_OK)
            return rc;
    }
    if (sc->valid != NULL && !sc->valid(base))
        return GW_EINVAL;
    return GW_OK;
}

/* On any error <out> is cut back to its length on entry, so a failed encode
 * never leaves half a message behind for the transport to send. */
static gw_err
encode_msg(const pm_schema *sc, const pm_envelope *env, pm_kind kind, gw_buf *out)
{
    pm_writer w = {.buf = out, .err = GW_OK};
    msgpack_packer pk;
    size_t start;
    gw_err rc;

    if (env == NULL || out == NULL)
        return GW_EINVAL;
    start = out->len;
    msgpack_packer_init(&pk, &w, on_write);
    rc = encode_map(&pk, sc, env, env, kind);
    if (rc == GW_OK)
        rc = w.err;
    if (rc == GW_OK && out->len - start > PM_MAX_MSG_BYTES)
        rc = GW_EFULL;
    if (rc != GW_OK) {
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
    }
    return rc;
}

/* ---- public ------------------------------------------------------------- */

/* msgpack-c has no lazy mode, so peeking still builds the whole tree: a
 * consumer that knows the kind it expects should call that decoder directly
 * (it checks the envelope and the kind too) rather than peek first. */
gw_err
pm_peek_envelope(const void *p, size_t n, pm_envelope *out)
{
    msgpack_unpacked u;
    pm_envelope env;
    gw_err rc;

    rc = unpack(p, n, &u);
    if (rc != GW_OK)
        return rc;
    rc = decode_envelope(&u.data, &env);
    msgpack_unpacked_destroy(&u);
    if (rc == GW_OK)
        *out = env;
    return rc;
}

gw_err
pm_snapshot_encode(const pm_snapshot *s, gw_buf *out)
{
    return encode_msg(&snapshot_schema, s != NULL ? &s->env : NULL, PM_KIND_SNAPSHOT, out);
}

gw_err
pm_load_encode(const pm_load *l, gw_buf *out)
{
    return encode_msg(&load_schema, l != NULL ? &l->env : NULL, PM_KIND_LOAD, out);
}

gw_err
pm_report_encode(const pm_report *r, gw_buf *out)
{
    return encode_msg(&report_schema, r != NULL ? &r->env : NULL, PM_KIND_REPORT, out);
}

gw_err
pm_snapshot_req_encode(const pm_envelope *env, gw_buf *out)
{
    return encode_msg(NULL, env, PM_KIND_SNAPSHOT_REQ, out);
}

gw_err
pm_snapshot_decode(const void *p, size_t n, pm_snapshot **out)
{
    void *msg;
    gw_err rc = decode_msg(p, n, PM_KIND_SNAPSHOT, &snapshot_schema, &msg);

    if (rc == GW_OK)
        *out = msg;
    return rc;
}

gw_err
pm_load_decode(const void *p, size_t n, pm_load **out)
{
    void *msg;
    gw_err rc = decode_msg(p, n, PM_KIND_LOAD, &load_schema, &msg);

    if (rc == GW_OK)
        *out = msg;
    return rc;
}

gw_err
pm_report_decode(const void *p, size_t n, pm_report **out)
{
    void *msg;
    gw_err rc = decode_msg(p, n, PM_KIND_REPORT, &report_schema, &msg);

    if (rc == GW_OK)
        *out = msg;
    return rc;
}

void
pm_snapshot_free(pm_snapshot *s)
{
    if (s == NULL)
        return;
    free_fields(&snapshot_schema, s);
    free(s);
}

void
pm_load_free(pm_load *l)
{
    if (l == NULL)
        return;
    free_fields(&load_schema, l);
    free(l);
}

void
pm_report_free(pm_report *r)
{
    if (r == NULL)
        return;
    free_fields(&report_schema, r);
    free(r);
}

const pm_model *
pm_snapshot_find_model(const pm_snapshot *s, const char *name)
{
    if (s == NULL || name == NULL || s->models == NULL)
        return NULL;
    for (uint32_t i = 0; i < s->n_models; i++) {
        if (s->models[i].name != NULL && strcmp(s->models[i].name, name) == 0)
            return &s->models[i];
    }
    return NULL;
}
