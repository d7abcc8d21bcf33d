/* me_cfg: the mock engine's process configuration, parsed once from the
 * command line by a single option table (STYLE §7: defaults live only in the
 * table, --help is generated from it). Read-only after me_cfg_parse returns;
 * every engine thread may read it without locking.
 *
 * me_knobs is the part of the behaviour that /_mock/fault can change at run
 * time, per port. The copy in me_cfg holds the startup values, which are also
 * what `POST /_mock/fault {}` resets a port to. */
#ifndef ME_CFG_H
#define ME_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gw/gw_err.h"
#include "me_pd.h"

typedef struct me_knobs {
    double error_rate;         /* 0..1: fraction of generation requests answered 500 */
    bool hang;                 /* accept, never answer until the client goes away */
    unsigned close_mid_stream; /* 0 = off; else cut a stream after this many SSE events */
    unsigned slow_ms;          /* extra delay before the response headers */
    unsigned ttft_ms;          /* time to first token */
    unsigned itl_ms;           /* inter-token latency */
    /* The first fail_count generation requests since the knobs were set are
     * answered fail_status (e.g. 429 a set number of times); 0 = off. */
    unsigned fail_count;
    unsigned fail_status;
    /* Forced gauge values for /metrics (routing tests); < 0 means "not forced". */
    int force_running;
    int force_waiting;
    double force_kv_usage;
    /* Forced histogram/counter feeds for /metrics (scrape tests); < 0 = off.
     * Each /metrics render first records one TTFT / TPOT observation of
     * this many ms, and the token counters grow at force_tokens_per_s. */
    double force_ttft_ms;
    double force_tpot_ms;
    double force_tokens_per_s;
} me_knobs;

/* Longest LoRA adapter name the mock accepts. */
#define ME_LORA_NAME_MAX 255

typedef struct me_cfg {
    char *host;      /* owned; listen address */
    uint16_t *ports; /* owned; one engine per entry, 0 = kernel-chosen */
    size_t nports;
    char **models; /* owned; served model names, [0] is the default */
    size_t nmodels;
    char **api_keys; /* owned; empty = no auth */
    size_t napi_keys;
    char **loras; /* owned; --lora NAME or NAME=PATH, loaded at start on every port */
    size_t nloras;
    unsigned max_loras;     /* vLLM's --max-loras: the max_lora label of vllm:lora_requests_info */
    bool enable_lora;       /* export vllm:lora_requests_info even without adapters */
    unsigned output_tokens; /* tokens generated when the request gives no max_tokens */
    unsigned max_output_tokens; /* cap applied to max_tokens */
    unsigned max_model_len;     /* context window checked like vLLM (prompt + max_tokens) */
    unsigned max_running;       /* concurrent generations; excess requests wait */
    unsigned embedding_dim;
    unsigned record_max;     /* requests kept by /_mock/requests; 0 disables */
    unsigned max_body_bytes; /* request bodies above this get 413 */
    unsigned max_connections;
    bool record_secrets; /* keep Authorization etc. verbatim in /_mock/requests */
    bool error_nested;   /* vLLM >= 0.10.1 {"error":{...}} instead of the flat shape */
    char *error_format;  /* owned; "flat" or "nested", source of error_nested */
    char *port_file;     /* owned, may be NULL: bound ports written here */
    char *log_level;     /* owned */
    bool help;           /* --help was given: print usage and exit 0 */
    /* KV-cache simulator (me_sim; README "KV-cache simulator"). Off: the
     * fixed ttft/itl timing above. */
    bool kv_sim;
    unsigned kv_block_size;      /* tokens per KV block */
    unsigned kv_blocks;          /* KV capacity in blocks, per port */
    unsigned max_batched_tokens; /* token budget of one step (chunked prefill) */
    double decode_step_ms;       /* fixed cost of every step */
    double prefill_us_per_token; /* cost of each prompt token computed in a step */
    double decode_us_per_seq;    /* cost of each sequence served in a step */
    double time_scale;           /* wall seconds per simulated second */
    /* Prefill/decode roles (me_pd; README "Prefill/decode roles"). */
    char *pd_role_name;      /* owned; --pd-role, source of pd_role */
    me_pd_role pd_role;      /* both = plain engine, kv_transfer_params ignored */
    char *engine_id;         /* owned, may be NULL: then each port is "mock-<port>" */
    unsigned kv_transfer_ms; /* decode: simulated time of one KV pull */
    unsigned kv_ttl_ms;      /* prefill: KV no decode pulled is freed after this */
    me_knobs knobs;          /* startup values of the run-time knobs */
} me_cfg;

/* Fills <cfg> (zeroed by the caller) from argv: defaults first, then flags,
 * then validation. On error returns GW_EINVAL and writes a message naming the
 * option into <why> (size <whyn>); <cfg> must still be released with
 * me_cfg_fini either way. */
GW_MUST_CHECK gw_err me_cfg_parse(me_cfg *cfg, int argc, char **argv, char *why, size_t whyn);

/* Releases everything me_cfg_parse allocated; safe on a half-filled <cfg>. */
void me_cfg_fini(me_cfg *cfg);

/* Prints the option list generated from the table. */
void me_cfg_usage(FILE *f, const char *argv0);

#endif
