/* me_pd: the prefill/decode disaggregation roles of the mock engine
 * (--pd-role; README.md "Prefill/decode roles" is the contract the gateway
 * is written against). Three parts, none of which touches MHD:
 *
 *  - protocol checks (pure): what a prefill request and a decode request
 *    must carry in "kv_transfer_params", and which of the three decode
 *    protocols (vllm-mooncake / AIBrix, vllm-kvt staged, vllm-kvt batched) a
 *    decode request speaks;
 *  - the KV store of a prefill port: simulated KV entries registered under a
 *    request id when a prefill's first token exists, consumed by exactly one
 *    pull, freed by an abort, or expired after a TTL. Not thread-safe: the
 *    engine calls it under its own mutex, passing the time in, so it never
 *    reads a clock itself;
 *  - the decode's fetch: one blocking HTTP exchange (libcurl easy) with the
 *    prefill named by the parameters, bounded by a timeout. It runs in the
 *    decode request's own connection thread (MHD thread per connection) and
 *    holds no lock. curl_global_init must have run before any thread. */
#ifndef ME_PD_H
#define ME_PD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gw/gw_err.h"

/* Longest request id, engine id and host the PD code accepts (bytes). */
#define ME_PD_ID_MAX   256
#define ME_PD_HOST_MAX 255

typedef enum me_pd_role {
    ME_PD_BOTH,    /* plain engine: kv_transfer_params ignored */
    ME_PD_PREFILL, /* max_tokens 1 + do_remote_decode; holds KV for decodes */
    ME_PD_DECODE,  /* fetches the KV named by kv_transfer_params, then decodes */
} me_pd_role;

/* How a decode request asks for its KV (README "Decode role"). */
typedef enum me_pd_proto {
    ME_PD_PULL_BLOCKS, /* (a) remote_engine_id + remote_block_ids + host/port: vllm-mooncake, AIBrix
                        */
    ME_PD_PULL_STAGED, /* (b) do_remote_prefill + host/port, no blocks: vllm-kvt staged */
    ME_PD_COMPUTE,     /* (c) host/port only: vllm-kvt batched, the prefill computes on demand */
} me_pd_proto;

/* A decode request's KV source, from me_pd_check_decode. */
typedef struct me_pd_decode {
    me_pd_proto proto;
    char host[ME_PD_HOST_MAX + 1];
    unsigned port;
    char engine_id[ME_PD_ID_MAX + 1];  /* (a) only, else "" */
    char request_id[ME_PD_ID_MAX + 1]; /* the id the prefill's KV is held under */
    json_int_t *block_ids;             /* owned; (a) only, else NULL */
    size_t nblocks;
} me_pd_decode;

/* "blocks", "staged" or "compute", for logs. */
const char *me_pd_proto_name(me_pd_proto proto);

/* Parses a --pd-role value; false when it is none of prefill|decode|both. */
bool me_pd_parse_role(const char *s, me_pd_role *out);
const char *me_pd_role_name(me_pd_role role);

/* Number of simulated KV blocks of a <prompt_tokens>-token prompt:
 * ceil(prompt_tokens / block_size), at least 1. Block k has id k. */
size_t me_pd_nblocks(unsigned prompt_tokens, unsigned block_size);

/* The request id a PD request goes by: the X-Request-Id header <xrid>
 * (verbatim, may be NULL) if non-empty, else the body's string
 * "request_id". GW_OK fills <out> (size ME_PD_ID_MAX + 1); GW_ENOENT when
 * neither is there; GW_EINVAL (with <msg>) when the one found is too long,
 * or "request_id" is not a string. */
GW_MUST_CHECK gw_err me_pd_request_id(const json_t *body, const char *xrid, char *out, char *msg,
                                      size_t msgn);

/* Checks a prefill request (chat or completions) whose effective output
 * limit, as vLLM reads it (chat: max_completion_tokens, else max_tokens;
 * completions: max_tokens), is <max_tokens> (0 = not given): it must be 1
 * and kv_transfer_params.do_remote_decode must be true. Returns 0, or 400
 * with <msg> naming the problem. */
unsigned me_pd_check_prefill(const json_t *body, long long max_tokens, char *msg, size_t msgn);

/* Checks a decode request and decides its protocol (README "Decode role").
 * <xrid> is the X-Request-Id header or NULL. Returns 0 and fills <out>
 * (release with me_pd_decode_fini), or 400 with <msg> naming the problem
 * (<out> then needs no release). */
unsigned me_pd_check_decode(const json_t *body, const char *xrid, me_pd_decode *out, char *msg,
                            size_t msgn);
void me_pd_decode_fini(me_pd_decode *d);

/* The NixlConnector-style "kv_transfer_params" a non-streaming prefill
 * response carries: do_remote_prefill true, do_remote_decode false,
 * remote_engine_id, remote_block_ids, remote_host, remote_port,
 * remote_request_id. New reference. */
json_t *me_pd_params_json(const char *engine_id, const char *host, unsigned port,
                          const char *request_id, unsigned prompt_tokens, unsigned block_size);

/* The body of a successful pull or compute: {"engine_id","block_ids",
 * "prompt_tokens"}. New reference. */
json_t *me_pd_kv_json(const char *engine_id, unsigned prompt_tokens, unsigned block_size);

/* ---- the KV store of one prefill port ---------------------------------- */

typedef struct me_pd_store me_pd_store;

/* An entry as handed out by a take. */
typedef struct me_pd_kv {
    const char *engine_id; /* borrowed from the store's owner */
    unsigned prompt_tokens;
} me_pd_kv;

/* Entries expire <ttl_ns> after they are put; <engine_id> is borrowed and
 * recorded in every entry (it must outlive the store). */
me_pd_store *me_pd_store_new(const char *engine_id, uint64_t ttl_ns);
/* NULL is a no-op. */
void me_pd_store_free(me_pd_store *st);

/* Drops the entries whose TTL ran out at <now_ns>; returns how many. Every
 * other store call sweeps too and adds to the same count, which
 * me_pd_store_expired returns. */
size_t me_pd_store_expire(me_pd_store *st, uint64_t now_ns);
/* Entries expired so far (see me_pd_store_expire), and entries held now. */
uint64_t me_pd_store_expired(const me_pd_store *st);
size_t me_pd_store_held(const me_pd_store *st);

/* Registers KV for a <prompt_tokens>-token prompt under <id> at <now_ns>.
 * An entry already held under <id> is replaced (returns true then). */
bool me_pd_store_put(me_pd_store *st, const char *id, unsigned prompt_tokens, uint64_t now_ns);

/* The decode's pull: consumes the entry held under <id>. With <engine_id>
 * (may be NULL) it must equal the entry's, else GW_EPROTO and the entry
 * stays. GW_ENOENT when nothing is held under <id> (never put, pulled,
 * aborted or expired). On GW_OK *out describes the consumed entry. */
GW_MUST_CHECK gw_err me_pd_store_take(me_pd_store *st, const char *id, const char *engine_id,
                                      uint64_t now_ns, me_pd_kv *out);

/* Frees the entry held under <id> (an abort); GW_ENOENT when none is. */
GW_MUST_CHECK gw_err me_pd_store_drop(me_pd_store *st, const char *id, uint64_t now_ns);

/* Frees every entry and zeroes the expired count (POST /_mock/reset). */
void me_pd_store_clear(me_pd_store *st);

/* ---- the decode's fetch ------------------------------------------------ */

/* The decodes' HTTP client of one engine: a pool of at most <max_idle> idle
 * libcurl easy handles whose keep-alive connections later fetches reuse.
 * Thread-safe. me_pd_client_free closes them; no fetch may be running. */
typedef struct me_pd_client me_pd_client;

me_pd_client *me_pd_client_new(size_t max_idle);
/* NULL is a no-op. */
void me_pd_client_free(me_pd_client *c);

/* Polled during the fetch; returning true aborts it (client gone, shutdown). */
typedef bool (*me_pd_cancel_fn)(void *arg);

/* Fetches, with a handle of <c>, the KV <d> names from its prefill: GET /_mock/kv/<id>?engine_id=
 * for (a), GET /_mock/kv/<id> for (b), POST /_mock/kv/compute with
 * {"request_id","prompt_tokens":<prompt_tokens>} for (c). The exchange is
 * bounded by <timeout_ms>; <cancel> (may be NULL) is polled about once per
 * second and more often while bytes move. Checks the answer: status 200, a
 * JSON object with a string engine_id, an integer array block_ids and an
 * integer prompt_tokens; for (a) block_ids equal to d->block_ids, for (c)
 * prompt_tokens equal to <prompt_tokens>.
 * GW_OK on success. Otherwise <msg> says why: GW_ECLOSED (<cancel> said
 * so), GW_EIO (connect error, timeout), GW_EPROTO (non-200 answer, bad body,
 * block or prompt mismatch). */
GW_MUST_CHECK gw_err me_pd_fetch(me_pd_client *c, const me_pd_decode *d, unsigned prompt_tokens,
                                 unsigned timeout_ms, me_pd_cancel_fn cancel, void *cancel_arg,
                                 char *msg, size_t msgn);

#endif
