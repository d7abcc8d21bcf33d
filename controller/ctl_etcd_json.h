/* ctl_etcd_json: the bodies llmgw sends to and reads from etcd's v3 JSON
 * gateway (grpc-gateway: /v3/kv/range, /v3/watch, /v3/kv/put,
 * /v3/lease/..., /v3/auth/authenticate), shared by the etcd discovery source
 * and llmgw-register. Keys and values travel base64-encoded and 64-bit
 * integers as JSON strings (proto3 JSON mapping); both forms of an integer
 * are accepted. base64 is OpenSSL's (EVP_EncodeBlock/EVP_DecodeBlock).
 *
 * Everything here is pure and allocation-only; parsers take outside bytes,
 * bound what they copy and are fuzzed (tests/fuzz/etcd_json). Any thread. */
#ifndef CTL_ETCD_JSON_H
#define CTL_ETCD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_err.h"

/* Largest response body or watch message read. */
#define CTL_ETCD_MAX_BODY (16u << 20)

/* Heap base64 of <n> bytes at <p>. */
char *ctl_etcd_b64(const void *p, size_t n);
/* Decodes <s>; on GW_OK *out is a heap buffer of *n bytes plus a NUL.
 * GW_EINVAL when <s> is not base64. */
GW_MUST_CHECK gw_err ctl_etcd_unb64(const char *s, char **out, size_t *n);

/* JSON bodies (heap strings). <prefix> selects every key starting with it. */
char *ctl_etcd_range_body(const char *prefix);
char *ctl_etcd_watch_body(const char *prefix, int64_t start_revision);
char *ctl_etcd_put_body(const char *key, const char *value, int64_t lease);
char *ctl_etcd_auth_body(const char *name, const char *password);
/* {"key": <key>}: exactly one key (deleterange). */
char *ctl_etcd_key_body(const char *key);

/* One key-value of a range answer or watch event. */
typedef struct ctl_etcd_kv {
    char *key;   /* NUL-terminated (keys with a NUL byte are refused) */
    char *value; /* NUL-terminated copy; NULL for a DELETE */
    size_t value_len;
    bool is_delete;
} ctl_etcd_kv;

/* A range answer or one watch message. */
typedef struct ctl_etcd_msg {
    int64_t revision;         /* header.revision (0 if absent) */
    bool created, canceled;   /* watch only */
    int64_t compact_revision; /* watch canceled because compacted */
    ctl_etcd_kv *kvs;
    size_t n_kvs;
    char *error; /* an {"error": ...} answer: its message (then no kvs) */
} ctl_etcd_msg;

/* Parses a /v3/kv/range answer (kvs -> puts) or one /v3/watch stream
 * message ({"result": {...}}: events). On GW_OK <out> is filled (free with
 * ctl_etcd_msg_fini); GW_EINVAL with a heap *why otherwise. */
GW_MUST_CHECK gw_err ctl_etcd_parse_range(const char *buf, size_t len, ctl_etcd_msg *out,
                                          char **why);
GW_MUST_CHECK gw_err ctl_etcd_parse_watch(const char *buf, size_t len, ctl_etcd_msg *out,
                                          char **why);
void ctl_etcd_msg_fini(ctl_etcd_msg *m);

/* Reads the 64-bit field <name> of the JSON object text at <buf> (also
 * inside "result", for /v3/lease/keepalive). GW_ENOENT when absent,
 * GW_EINVAL when not JSON. For lease ID/TTL, token, etc. */
GW_MUST_CHECK gw_err ctl_etcd_get_int(const char *buf, size_t len, const char *name, int64_t *out);
/* The string field <name> as a heap copy, else NULL. */
char *ctl_etcd_get_str(const char *buf, size_t len, const char *name);

/* Splits --discovery-etcd-endpoints into base URLs ("http://host:port",
 * an entry without a scheme gets http://, one without a port :2379).
 * On GW_OK *urls is a heap array of *n heap strings. */
GW_MUST_CHECK gw_err ctl_etcd_parse_endpoints(const char *list, char ***urls, size_t *n,
                                              char **why);
void ctl_etcd_endpoints_free(char **urls, size_t n);

#endif
