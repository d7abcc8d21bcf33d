/* me_gen: request validation and response bodies of the mock engine (see
 * me_gen.h for the tokenizer contract). Response shapes follow vLLM's
 * pydantic models: compact JSON, keys in vLLM's order, "logprobs": null and
 * "stop_reason": null where vLLM prints them. Stream chunks are assembled from
 * a per-request prefix so a token costs one small append, not a JSON tree. */
#include "me_gen.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

/* OpenAI caps an embeddings batch at 2048 inputs; so do we. */
#define GEN_MAX_EMBED_INPUTS 2048

static const char *
status_type(unsigned status)
{
    switch (status) {
    case 400:
    case 413:
        return "BadRequestError";
    case 401:
        return "AuthenticationError";
    case 404:
        return "NotFoundError";
    case 429:
        return "RateLimitError";
    case 503:
        return "ServiceUnavailableError";
    default:
        return status >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

/* Serialises and releases <j>. */
static char *
dump_prec(json_t *j, size_t flags)
{
    char *s = json_dumps(j, JSON_COMPACT | flags);

    json_decref(j);
    if (s == NULL)
        s = gw_xstrdup("{}"); /* only on OOM inside jansson */
    return s;
}

static char *
dump(json_t *j)
{
    return dump_prec(j, 0);
}

char *
me_gen_error(const me_cfg *cfg, unsigned status, const char *msg)
{
    json_t *info = json_pack("{s:s, s:s, s:n, s:I}", "message", msg, "type", status_type(status),
                             "param", "code", (json_int_t)status);

    if (cfg->error_nested)
        return dump(json_pack("{s:o}", "error", info));
    /* vLLM < 0.10.1: the same fields flat, under "object": "error". */
    json_t *flat = json_pack("{s:s}", "object", "error");
    json_object_update(flat, info);
    json_decref(info);
    return dump(flat);
}

static bool
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static unsigned
count_words(const char *s)
{
    unsigned n = 0;
    bool in = false;

    for (; *s != '\0'; s++) {
        bool sp = is_space((unsigned char)*s);

        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

/* Chat content: a string, or an array of parts whose "text" members count. */
static bool
content_words(const json_t *content, unsigned *out)
{
    size_t i;
    json_t *part;

    *out = 0;
    if (content == NULL || json_is_null(content))
        return true;
    if (json_is_string(content)) {
        *out = count_words(json_string_value(content));
        return true;
    }
    if (!json_is_array(content))
        return false;
    json_array_foreach(content, i, part)
    {
        const json_t *text = json_object_get(part, "text");

        if (!json_is_object(part))
            return false;
        if (json_is_string(text))
            *out += count_words(json_string_value(text));
    }
    return true;
}

static unsigned
chat_prompt_tokens(const json_t *messages, char *msg, size_t msgn)
{
    unsigned total = 0;
    size_t i;
    json_t *m;

    json_array_foreach(messages, i, m)
    {
        unsigned w;

        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role"))) {
            snprintf(msg, msgn, "messages[%zu]: each message needs a string 'role'", i);
            return 0;
        }
        if (!content_words(json_object_get(m, "content"), &w)) {
            snprintf(msg, msgn, "messages[%zu].content: expected a string or an array of parts", i);
            return 0;
        }
        total += 1 + w;
    }
    return total;
}

/* A prompt or embeddings input: a string, an array of strings, an array of
 * token ids or an array of token-id arrays. Returns the number of separate
 * inputs (0 on a shape error, message in <msg>) and adds their tokens to
 * *tokens. */
static size_t
input_tokens(const json_t *in, const char *field, unsigned *tokens, char *msg, size_t msgn)
{
    size_t i;
    size_t n = 0;
    json_t *e;
    int kind = -1; /* 0: strings, 1: ints, 2: int arrays */

    *tokens = 0;
    if (json_is_string(in)) {
        *tokens = 1 + count_words(json_string_value(in));
        return 1;
    }
    if (!json_is_array(in) || json_array_size(in) == 0) {
        snprintf(msg, msgn, "'%s' must be a string or a non-empty array", field);
        return 0;
    }
    json_array_foreach(in, i, e)
    {
        int k = json_is_string(e) ? 0 : json_is_integer(e) ? 1 : json_is_array(e) ? 2 : -2;

        if (k == -2 || (kind != -1 && k != kind)) {
            snprintf(msg, msgn,
                     "'%s' must be a string, an array of strings, an array of token ids or an "
                     "array of token-id arrays",
                     field);
            return 0;
        }
        kind = k;
        if (k == 0) {
            *tokens += 1 + count_words(json_string_value(e));
            n++;
        } else if (k == 1) {
            *tokens += 1;
        } else {
            size_t j;
            json_t *t;

            json_array_foreach(e, j, t)
            {
                if (!json_is_integer(t)) {
                    snprintf(msg, msgn, "'%s'[%zu] must hold token ids", field, i);
                    return 0;
                }
            }
            *tokens += (unsigned)json_array_size(e);
            n++;
        }
    }
    return kind == 1 ? 1 : n;
}

static size_t
find_model(const me_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nmodels; i++) {
        if (strcmp(cfg->models[i], name) == 0)
            return i;
    }
    return SIZE_MAX;
}

/* Reads max_completion_tokens (chat, preferred as in vLLM) or max_tokens.
 * Returns false on a bad value; *given is false when neither is set. */
static bool
read_max_tokens(const json_t *body, me_api api, bool *given, json_int_t *val, char *msg,
                size_t msgn)
{
    const char *name = "max_completion_tokens";
    const json_t *v = api == ME_API_CHAT ? json_object_get(body, name) : NULL;

    if (v == NULL || json_is_null(v)) {
        name = "max_tokens";
        v = json_object_get(body, name);
    }
    *given = v != NULL && !json_is_null(v);
    if (!*given)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        snprintf(msg, msgn, "%s must be at least 1", name);
        return false;
    }
    *val = json_integer_value(v);
    return true;
}

static unsigned
plan_stream(const json_t *body, me_plan *plan, char *msg, size_t msgn)
{
    const json_t *stream = json_object_get(body, "stream");
    const json_t *opts = json_object_get(body, "stream_options");
    const json_t *usage;

    if (stream != NULL && !json_is_null(stream) && !json_is_boolean(stream)) {
        snprintf(msg, msgn, "'stream' must be a boolean");
        return 400;
    }
    plan->stream = json_is_true(stream);
    if (opts == NULL || json_is_null(opts))
        return 0;
    if (!json_is_object(opts)) {
        snprintf(msg, msgn, "'stream_options' must be an object");
        return 400;
    }
    if (!plan->stream) {
        snprintf(msg, msgn, "Stream options can only be defined when `stream=True`.");
        return 400;
    }
    usage = json_object_get(opts, "include_usage");
    if (usage != NULL && !json_is_null(usage) && !json_is_boolean(usage)) {
        snprintf(msg, msgn, "'stream_options.include_usage' must be a boolean");
        return 400;
    }
    plan->include_usage = json_is_true(usage);
    return 0;
}

const char *
me_gen_model_name(const me_cfg *cfg, const me_plan *plan)
{
    return plan->lora[0] != '\0' ? plan->lora : cfg->models[plan->model];
}

unsigned
me_gen_plan(const me_cfg *cfg, me_api api, const json_t *body, me_lora_fn is_lora, void *lora_arg,
            me_plan *plan, char *msg, size_t msgn)
{
    const json_t *model = json_object_get(body, "model");
    bool given = false;
    json_int_t max_tokens = 0;
    unsigned status;
    size_t ninputs = 1;

    memset(plan, 0, sizeof(*plan));
    plan->api = api;

    /* 1. Structure (pydantic validation in vLLM). */
    if (model != NULL && !json_is_null(model) && !json_is_string(model)) {
        snprintf(msg, msgn, "'model' must be a string");
        return 400;
    }
    if (api == ME_API_CHAT) {
        const json_t *messages = json_object_get(body, "messages");

        if (!json_is_array(messages) || json_array_size(messages) == 0) {
            snprintf(msg, msgn, "'messages' must be a non-empty array");
            return 400;
        }
        plan->prompt_tokens = chat_prompt_tokens(messages, msg, msgn);
        if (plan->prompt_tokens == 0)
            return 400;
    } else {
        const char *field = api == ME_API_EMBEDDINGS ? "input" : "prompt";
        const json_t *in = json_object_get(body, field);

        if (in == NULL || json_is_null(in)) {
            snprintf(msg, msgn,
                     api == ME_API_EMBEDDINGS ? "'input' is required"
                                              : "Either prompt or prompt_embeds must "
                                                "be provided and non-empty.");
            return 400;
        }
        ninputs = input_tokens(in, field, &plan->prompt_tokens, msg, msgn);
        if (ninputs == 0)
            return 400;
        if (api == ME_API_EMBEDDINGS && ninputs > GEN_MAX_EMBED_INPUTS) {
            snprintf(msg, msgn, "'input' holds %zu items; at most %d are allowed", ninputs,
                     GEN_MAX_EMBED_INPUTS);
            return 400;
        }
    }
    if (api == ME_API_EMBEDDINGS) {
        const json_t *fmt = json_object_get(body, "encoding_format");

        if (fmt != NULL && !json_is_null(fmt)) {
            const char *f = json_string_value(fmt);

            if (f == NULL || (strcmp(f, "float") != 0 && strcmp(f, "base64") != 0)) {
                snprintf(msg, msgn, "'encoding_format' must be 'float' or 'base64'");
                return 400;
            }
            plan->base64 = strcmp(f, "base64") == 0;
        }
    } else {
        status = plan_stream(body, plan, msg, msgn);
        if (status != 0)
            return status;
        if (!read_max_tokens(body, api, &given, &max_tokens, msg, msgn))
            return 400;
    }

    /* 2. The model (vLLM's _check_model: absent means the default model). */
    if (json_is_string(model)) {
        const char *name = json_string_value(model);

        plan->model = find_model(cfg, name);
        if (plan->model == SIZE_MAX && is_lora != NULL && strlen(name) <= ME_LORA_NAME_MAX &&
            is_lora(lora_arg, name)) {
            plan->model = 0;
            snprintf(plan->lora, sizeof(plan->lora), "%s", name);
        }
        if (plan->model == SIZE_MAX) {
            snprintf(msg, msgn, "The model `%.200s` does not exist.", json_string_value(model));
            return 404;
        }
    }

    /* 3. The context window, with vLLM's wording. */
    if (api == ME_API_EMBEDDINGS) {
        if (ninputs == 1 && plan->prompt_tokens > cfg->max_model_len) {
            snprintf(msg, msgn,
                     "This model's maximum context length is %u tokens. However, you requested "
                     "%u tokens in the input for embedding generation. Please reduce the length "
                     "of the input.",
                     cfg->max_model_len, plan->prompt_tokens);
            return 400;
        }
        return 0;
    }
    if (plan->prompt_tokens >= cfg->max_model_len ||
        (given && (uint64_t)plan->prompt_tokens + (uint64_t)max_tokens > cfg->max_model_len)) {
        const char *where = api == ME_API_CHAT ? "messages" : "prompt";

        if (given)
            snprintf(msg, msgn,
                     "This model's maximum context length is %u tokens. However, you requested "
                     "%llu tokens (%u in the %s, %lld in the completion). Please reduce the "
                     "length of the %s or completion.",
                     cfg->max_model_len,
                     (unsigned long long)plan->prompt_tokens + (unsigned long long)max_tokens,
                     plan->prompt_tokens, where, (long long)max_tokens, where);
        else
            snprintf(msg, msgn,
                     "This model's maximum context length is %u tokens. However, you requested "
                     "%u tokens in the %s, Please reduce the length of the %s.",
                     cfg->max_model_len, plan->prompt_tokens, where, where);
        return 400;
    }
    if (given) {
        plan->max_tokens = (long long)max_tokens;
        plan->completion_tokens = max_tokens < (json_int_t)cfg->max_output_tokens
                                      ? (unsigned)max_tokens
                                      : cfg->max_output_tokens;
        plan->length = true;
    } else {
        /* vLLM's default max_tokens is what is left of the context window. */
        unsigned room = cfg->max_model_len - plan->prompt_tokens;

        plan->completion_tokens = cfg->output_tokens < room ? cfg->output_tokens : room;
        plan->length = cfg->output_tokens >= room;
    }
    return 0;
}

/* vLLM's ModelPermission object; <seed> and <i> make a stable id. */
static json_t *
permission(long seed, size_t i, long created)
{
    char permid[48];

    snprintf(permid, sizeof(permid), "modelperm-%08lx%04zx", (unsigned long)seed, i);
    return json_pack("{s:s, s:s, s:I, s:b, s:b, s:b, s:b, s:b, s:b, s:s, s:n, s:b}", "id", permid,
                     "object", "model_permission", "created", (json_int_t)created,
                     "allow_create_engine", 0, "allow_sampling", 1, "allow_logprobs", 1,
                     "allow_search_indices", 0, "allow_view", 1, "allow_fine_tuning", 0,
                     "organization", "*", "group", "is_blocking", 0);
}

char *
me_gen_models(const me_cfg *cfg, long created, const me_lora_card *loras, size_t n)
{
    json_t *data = json_array();

    /* A stable permission id per model and process, so repeated listings
     * compare equal. */
    for (size_t i = 0; i < cfg->nmodels; i++) {
        const char *m = cfg->models[i];

        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:s, s:n, s:I, s:[o]}", "id", m,
                                              "object", "model", "created", (json_int_t)created,
                                              "owned_by", "vllm", "root", m, "parent",
                                              "max_model_len", (json_int_t)cfg->max_model_len,
                                              "permission", permission(created, i, created)));
    }
    /* vLLM's LoRA cards: root is the adapter path, parent the base model,
     * and max_model_len is left unset (null). */
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            data,
            json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:n, s:[o]}", "id", loras[i].name, "object",
                      "model", "created", (json_int_t)loras[i].created, "owned_by", "vllm", "root",
                      loras[i].path, "parent", cfg->models[0], "max_model_len", "permission",
                      permission(loras[i].created, cfg->nmodels + i, loras[i].created)));
    return dump(json_pack("{s:s, s:o}", "object", "list", "data", data));
}

size_t
me_gen_token(unsigned i, char *buf, size_t n)
{
    int rc = snprintf(buf, n, "%stok%u", i > 0 ? " " : "", i);

    return rc < 0 ? 0 : (size_t)rc < n ? (size_t)rc : n - 1;
}

static json_t *
usage_json(const me_plan *plan)
{
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)plan->prompt_tokens,
                     "total_tokens",
                     (json_int_t)plan->prompt_tokens + (json_int_t)plan->completion_tokens,
                     "completion_tokens", (json_int_t)plan->completion_tokens);
}

char *
me_gen_response(const me_cfg *cfg, const me_plan *plan, const char *id, long created,
                json_t *kv_params)
{
    gw_buf text;
    char tok[24];
    const char *fr = plan->length ? "length" : "stop";
    json_t *choice;
    json_t *text_j;
    json_t *body;

    /* Each token is at most " tok4294967295" (14 bytes). */
    gw_buf_init(&text, (size_t)plan->completion_tokens * 16 + 16);
    for (unsigned i = 0; i < plan->completion_tokens; i++) {
        size_t n = me_gen_token(i, tok, sizeof(tok));

        if (gw_buf_append(&text, tok, n) != GW_OK)
            break; /* cannot happen: the cap covers N tokens */
    }
    text_j = json_stringn(text.data != NULL ? text.data : "", text.len);
    gw_buf_fini(&text);

    if (plan->api == ME_API_CHAT)
        choice = json_pack("{s:i, s:{s:s, s:o, s:[]}, s:n, s:s, s:n}", "index", 0, "message",
                           "role", "assistant", "content", text_j, "tool_calls", "logprobs",
                           "finish_reason", fr, "stop_reason");
    else
        choice = json_pack("{s:i, s:o, s:n, s:s, s:n, s:n}", "index", 0, "text", text_j, "logprobs",
                           "finish_reason", fr, "stop_reason", "prompt_logprobs");
    body = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", id, "object",
                     plan->api == ME_API_CHAT ? "chat.completion" : "text_completion", "created",
                     (json_int_t)created, "model", me_gen_model_name(cfg, plan), "choices", choice,
                     "usage", usage_json(plan));
    if (kv_params != NULL)
        json_object_set(body, "kv_transfer_params", kv_params);
    return dump(body);
}

static uint64_t
fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t
splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds the vector of one input from its text or token ids. */
static uint64_t
input_seed(const json_t *in)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i;
    json_t *t;

    if (json_is_string(in))
        return fnv1a64(h, json_string_value(in), json_string_length(in));
    if (json_is_integer(in)) {
        json_int_t v = json_integer_value(in);
        return fnv1a64(h, &v, sizeof(v));
    }
    json_array_foreach(in, i, t)
    {
        json_int_t v = json_integer_value(t);
        h = fnv1a64(h, &v, sizeof(v));
    }
    return h;
}

static void
make_vector(uint64_t seed, float *v, unsigned dim)
{
    double norm = 0;

    for (unsigned d = 0; d < dim; d++) {
        /* Uniform in [-1, 1) from the top 53 bits. */
        v[d] = (float)((double)(splitmix64(&seed) >> 11) * 0x1.0p-52 - 1.0);
        norm += (double)v[d] * v[d];
    }
    norm = sqrt(norm);
    for (unsigned d = 0; d < dim && norm > 0; d++)
        v[d] = (float)(v[d] / norm);
}

static json_t *
base64_floats(const float *v, unsigned dim)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = (size_t)dim * 4;
    const unsigned char *b = (const unsigned char *)v; /* little-endian float32, as vLLM */
    char *out = gw_xmalloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;
    json_t *j;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)b[i] << 16;

        if (i + 1 < n)
            w |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n)
            w |= b[i + 2];
        out[o++] = tab[(w >> 18) & 63];
        out[o++] = tab[(w >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[w & 63] : '=';
    }
    out[o] = '\0';
    j = json_string(out);
    free(out);
    return j;
}

char *
me_gen_embeddings(const me_cfg *cfg, const me_plan *plan, const json_t *body, const char *id,
                  long created)
{
    const json_t *in = json_object_get(body, "input");
    json_t *data = json_array();
    float *v = gw_xcalloc(cfg->embedding_dim, sizeof(*v));
    size_t n = 1;
    bool single;

    /* A string or one token-id array is one input; otherwise one per element. */
    single = json_is_string(in) || json_is_integer(json_array_get(in, 0));
    if (!single)
        n = json_array_size(in);
    for (size_t i = 0; i < n; i++) {
        json_t *vec;

        make_vector(input_seed(single ? in : json_array_get(in, i)), v, cfg->embedding_dim);
        if (plan->base64) {
            vec = base64_floats(v, cfg->embedding_dim);
        } else {
            vec = json_array();
            for (unsigned d = 0; d < cfg->embedding_dim; d++)
                json_array_append_new(vec, json_real(v[d]));
        }
        json_array_append_new(data, json_pack("{s:I, s:s, s:o}", "index", (json_int_t)i, "object",
                                              "embedding", "embedding", vec));
    }
    free(v);
    /* 9 significant digits round-trip a float32, as the base64 form does. */
    return dump_prec(json_pack("{s:s, s:s, s:I, s:s, s:o, s:{s:I, s:I, s:i}}", "id", id, "object",
                               "list", "created", (json_int_t)created, "model",
                               me_gen_model_name(cfg, plan), "data", data, "usage", "prompt_tokens",
                               (json_int_t)plan->prompt_tokens, "total_tokens",
                               (json_int_t)plan->prompt_tokens, "completion_tokens", 0),
                     JSON_REAL_PRECISION(9));
}

/* ---- token ids and block hashes (the KV-cache simulator's view) ----- */

#define TOK_BOS      1u
#define FNV32_OFFSET 0x811c9dc5u
#define FNV32_PRIME  0x01000193u
#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME  0x100000001b3ULL

/* Turns a token stream into chained block hashes without keeping the ids:
 * block k's hash folds its ids into hash k-1 (the root for k = 0). */
typedef struct tok_sink {
    unsigned bs;
    unsigned fill;   /* ids in the current block */
    unsigned count;  /* ids so far */
    uint64_t parent; /* hash of the previous full block, or the root */
    uint64_t acc;    /* the current block's hash so far */
    uint64_t *out;   /* cap entries */
    size_t n;
    size_t cap;
} tok_sink;

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t
fmix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t
fnv1a32(uint32_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= FNV32_PRIME;
    }
    return h;
}

static void
sink_id(tok_sink *s, uint32_t id)
{
    if (s->fill == 0)
        s->acc = s->parent;
    s->acc = (s->acc ^ id) * FNV64_PRIME;
    s->count++;
    if (++s->fill < s->bs)
        return;
    s->fill = 0;
    s->parent = fmix64(s->acc);
    if (s->n < s->cap)
        s->out[s->n++] = s->parent;
}

/* One id per word, as count_words counts them: FNV-1a-32 of its bytes. */
static void
sink_words(tok_sink *s, const char *text)
{
    const char *p = text;

    while (*p != '\0') {
        const char *w;

        while (*p != '\0' && is_space((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        w = p;
        while (*p != '\0' && !is_space((unsigned char)*p))
            p++;
        sink_id(s, fnv1a32(FNV32_OFFSET, w, (size_t)(p - w)));
    }
}

/* A prompt or embeddings input, in the shapes input_tokens accepts. */
static void
sink_input(tok_sink *s, const json_t *in)
{
    size_t i;
    size_t j;
    json_t *e;
    json_t *t;

    if (json_is_string(in)) {
        sink_id(s, TOK_BOS);
        sink_words(s, json_string_value(in));
        return;
    }
    json_array_foreach(in, i, e)
    {
        if (json_is_string(e)) {
            sink_id(s, TOK_BOS);
            sink_words(s, json_string_value(e));
        } else if (json_is_integer(e)) {
            sink_id(s, (uint32_t)json_integer_value(e));
        } else {
            json_array_foreach(e, j, t) sink_id(s, (uint32_t)json_integer_value(t));
        }
    }
}

/* The chat template: per message, a role id (FNV-1a-32 of "<|" role "|>")
 * and then the content's words; array content contributes the words of each
 * part's "text". */
static void
sink_chat(tok_sink *s, const json_t *messages)
{
    size_t i;
    size_t j;
    json_t *m;
    json_t *part;

    json_array_foreach(messages, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        uint32_t h = fnv1a32(FNV32_OFFSET, "<|", 2);

        h = fnv1a32(h, role, strlen(role));
        sink_id(s, fnv1a32(h, "|>", 2));
        if (json_is_string(content)) {
            sink_words(s, json_string_value(content));
        } else if (json_is_array(content)) {
            json_array_foreach(content, j, part)
            {
                const json_t *text = json_object_get(part, "text");

                if (json_is_string(text))
                    sink_words(s, json_string_value(text));
            }
        }
    }
}

size_t
me_gen_block_hashes(const me_plan *plan, const json_t *body, unsigned block_size, uint64_t **out)
{
    tok_sink s = {.bs = block_size};

    /* The root depends on the LoRA adapter, as vLLM's block hashes carry
     * the adapter in their extra keys: adapters never share blocks. */
    s.parent = fmix64(fnv1a64(FNV64_OFFSET, plan->lora, strlen(plan->lora)));
    s.cap = plan->prompt_tokens / block_size;
    s.out = s.cap > 0 ? gw_xcalloc(s.cap, sizeof(*s.out)) : NULL;
    if (plan->api == ME_API_CHAT)
        sink_chat(&s, json_object_get(body, "messages"));
    else
        sink_input(&s, json_object_get(body, plan->api == ME_API_EMBEDDINGS ? "input" : "prompt"));
    if (s.count != plan->prompt_tokens || s.n != s.cap) {
        /* The two walks over the prompt disagree: a bug, not bad input. */
        gw_log(GW_LOG_ALERT, "ME-GEN-TOKENS", "ids=%u prompt_tokens=%u blocks=%zu/%zu", s.count,
               plan->prompt_tokens, s.n, s.cap);
        abort();
    }
    *out = s.out;
    return s.n;
}

void
me_stream_init(me_stream *st, const me_cfg *cfg, const me_plan *plan, const char *id, long created)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object",
                          plan->api == ME_API_CHAT ? "chat.completion.chunk" : "text_completion",
                          "created", (json_int_t)created, "model", me_gen_model_name(cfg, plan));
    char *s = dump(j);
    size_t n = strlen(s);

    /* Reopen the object: drop the closing brace, add ,"choices": */
    st->plan = plan;
    st->prefix = gw_xmalloc(n + sizeof(",\"choices\":"));
    memcpy(st->prefix, s, n - 1);
    memcpy(st->prefix + n - 1, ",\"choices\":", sizeof(",\"choices\":"));
    free(s);
}

void
me_stream_fini(me_stream *st)
{
    GW_FREE(st->prefix);
}

gw_err
me_stream_event(const me_stream *st, unsigned k, gw_buf *out, me_ev *ev, unsigned *tok)
{
    const me_plan *plan = st->plan;
    bool chat = plan->api == ME_API_CHAT;
    unsigned first_tok_ev = chat ? 1 : 0;
    unsigned ntok = plan->completion_tokens;
    char t[24];

    *tok = 0;
    if (chat && k == 0) {
        *ev = ME_EV_ROLE;
        return gw_buf_printf(out,
                             "data: %s[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                             "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
                             st->prefix);
    }
    if (k < first_tok_ev + ntok) {
        unsigned i = k - first_tok_ev;
        bool last = i + 1 == ntok;
        const char *fr = !last ? "null" : plan->length ? "\"length\"" : "\"stop\"";

        *ev = ME_EV_TOKEN;
        *tok = i;
        me_gen_token(i, t, sizeof(t));
        if (chat)
            return gw_buf_printf(out,
                                 "data: %s[{\"index\":0,\"delta\":{\"content\":\"%s\"},"
                                 "\"logprobs\":null,\"finish_reason\":%s%s}]}\n\n",
                                 st->prefix, t, fr, last ? ",\"stop_reason\":null" : "");
        return gw_buf_printf(out,
                             "data: %s[{\"index\":0,\"text\":\"%s\",\"logprobs\":null,"
                             "\"finish_reason\":%s,\"stop_reason\":null}]}\n\n",
                             st->prefix, t, fr);
    }
    k -= first_tok_ev + ntok;
    if (plan->include_usage) {
        if (k == 0) {
            *ev = ME_EV_USAGE;
            return gw_buf_printf(out,
                                 "data: %s[],\"usage\":{\"prompt_tokens\":%u,\"total_tokens\":%llu,"
                                 "\"completion_tokens\":%u}}\n\n",
                                 st->prefix, plan->prompt_tokens,
                                 (unsigned long long)plan->prompt_tokens + ntok, ntok);
        }
        k--;
    }
    if (k == 0) {
        *ev = ME_EV_DONE;
        return gw_buf_append_str(out, "data: [DONE]\n\n");
    }
    *ev = ME_EV_END;
    return GW_OK;
}
