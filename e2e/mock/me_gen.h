/* me_gen: the OpenAI/vLLM protocol of the mock engine, without any I/O.
 * It validates request bodies the way `vllm serve` does, counts prompt tokens
 * with the mock's deterministic tokenizer, and renders every response body:
 * errors, /v1/models, non-streaming completions, embeddings and the SSE
 * events of a stream. Timing, faults and HTTP live in me_engine.
 *
 * Tokenizer (the contract e2e tests rely on, see README.md): a "word" is a
 * maximal run of non-whitespace bytes. A text prompt costs 1 + words tokens
 * (the 1 is the BOS token); a chat request costs 1 + words(content) per
 * message, counting the "text" of array content parts; a token-id array costs
 * its length. Generated token i is the text "tok<i>", preceded by a space for
 * i > 0, so the full output of N tokens is "tok0 tok1 ... tok<N-1>".
 *
 * All functions are pure and thread-safe; returned strings are malloc'd and
 * owned by the caller. */
#ifndef ME_GEN_H
#define ME_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"
#include "me_cfg.h"

typedef enum me_api {
    ME_API_CHAT,        /* POST /v1/chat/completions */
    ME_API_COMPLETIONS, /* POST /v1/completions */
    ME_API_EMBEDDINGS,  /* POST /v1/embeddings */
} me_api;

/* What one validated generation request will produce. */
typedef struct me_plan {
    me_api api;
    size_t model;               /* index into cfg->models */
    bool stream;                /* "stream": true (chat and completions only) */
    bool include_usage;         /* stream_options.include_usage */
    bool length;                /* finish_reason "length" (max_tokens reached), else "stop" */
    bool base64;                /* embeddings: encoding_format "base64" */
    unsigned prompt_tokens;     /* by the tokenizer rule above */
    unsigned completion_tokens; /* N; 0 for embeddings */
    long long max_tokens;       /* the output limit as requested (before the cap); 0 = unset */
    /* The LoRA adapter the request named ("" = a base model). The mock
     * serves it like its base model: model index 0, whose model_name label
     * its metrics carry (vLLM labels by the first served name). */
    char lora[ME_LORA_NAME_MAX + 1];
} me_plan;

/* Answers whether <name> is a LoRA adapter loaded right now. */
typedef bool (*me_lora_fn)(void *arg, const char *name);

/* One loaded LoRA adapter, for /v1/models. */
typedef struct me_lora_card {
    const char *name;
    const char *path; /* "root" of the card */
    long created;     /* Unix time it was loaded */
} me_lora_card;

/* Validates <body> (a JSON object) for <api> like vLLM: structural checks
 * first (400), then the model (404; absent or null means cfg->models[0]; a
 * name <is_lora>(<lora_arg>, name) accepts is a LoRA adapter of the first
 * model; <is_lora> may be NULL), then the context window (400). Returns 0
 * and fills <plan> when the request is valid; otherwise returns the HTTP
 * status and writes the error message into <msg> (size <msgn>), leaving
 * <plan> unspecified. */
unsigned me_gen_plan(const me_cfg *cfg, me_api api, const json_t *body, me_lora_fn is_lora,
                     void *lora_arg, me_plan *plan, char *msg, size_t msgn);

/* The KV-cache identity of a prompt, for the simulator (README "Token ids
 * and block hashes"): tokenizes the prompt of <body> (chat messages or the
 * prompt / input, which me_gen_plan accepted into <plan>) into 32-bit token
 * ids - one per token counted in plan->prompt_tokens - and returns the
 * chained 64-bit hashes of its full <block_size>-token blocks in *out
 * (malloc'd, caller frees; NULL when there is no full block). Returns the
 * number of hashes, plan->prompt_tokens / block_size. Pure. */
size_t me_gen_block_hashes(const me_plan *plan, const json_t *body, unsigned block_size,
                           uint64_t **out);

/* The "model" a response names: the adapter for LoRA requests, as vLLM does. */
const char *me_gen_model_name(const me_cfg *cfg, const me_plan *plan);

/* vLLM error body for <status> (flat or nested per cfg->error_nested), with
 * the type vLLM uses for that status (BadRequestError, NotFoundError, ...). */
char *me_gen_error(const me_cfg *cfg, unsigned status, const char *msg);

/* GET /v1/models body; <created> is the process start time. After the base
 * models come the <n> loaded LoRA adapters, shaped as vLLM lists them:
 * "root" = the adapter's path, "parent" = the first base model,
 * "max_model_len": null. */
char *me_gen_models(const me_cfg *cfg, long created, const me_lora_card *loras, size_t n);

/* Non-streaming chat.completion or text_completion body for <plan>. With
 * <kv_params> (borrowed, may be NULL) the body also carries it as the
 * top-level "kv_transfer_params" after "usage", as vLLM's prefill with a
 * KV connector answers. */
char *me_gen_response(const me_cfg *cfg, const me_plan *plan, const char *id, long created,
                      json_t *kv_params);

/* /v1/embeddings body: one deterministic, L2-normalised vector of
 * cfg->embedding_dim floats per input (same input, same vector). <body> is the
 * request that me_gen_plan accepted. */
char *me_gen_embeddings(const me_cfg *cfg, const me_plan *plan, const json_t *body, const char *id,
                        long created);

/* Writes the text of generated token <i> into <buf> (size <n>); returns its length. */
size_t me_gen_token(unsigned i, char *buf, size_t n);

/* One event of an SSE stream, in order. */
typedef enum me_ev {
    ME_EV_ROLE,  /* chat only: delta.role, sent together with the first token */
    ME_EV_TOKEN, /* one generated token; the last one carries finish_reason */
    ME_EV_USAGE, /* "choices":[] with usage, when include_usage is set */
    ME_EV_DONE,  /* data: [DONE] */
    ME_EV_END,   /* nothing left: end of the response body */
} me_ev;

typedef struct me_stream {
    const me_plan *plan; /* borrowed; must outlive the stream */
    char *prefix;        /* owned: {"id":..,"object":..,"created":..,"model":..,"choices": */
} me_stream;

void me_stream_init(me_stream *st, const me_cfg *cfg, const me_plan *plan, const char *id,
                    long created);
void me_stream_fini(me_stream *st);

/* Appends SSE event number <k> (0-based) of the stream to <out> and stores
 * its kind in *ev (and the token index in *tok for ME_EV_TOKEN). ME_EV_END
 * appends nothing. GW_EFULL if <out> is capped too small. */
GW_MUST_CHECK gw_err me_stream_event(const me_stream *st, unsigned k, gw_buf *out, me_ev *ev,
                                     unsigned *tok);

#endif
