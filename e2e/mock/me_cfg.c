/* me_cfg: the option table of llmgw-mock-engine and its getopt_long parser.
 * The table is the only place defaults live: they are applied by feeding the
 * default string through the same setter a flag uses, so a default can never
 * bypass range checks. Repeatable options (ports, models, API keys, LoRA
 * adapters) collect
 * into arrays, and their default applies only when the flag never appeared.
 * Single-threaded: runs in main before any engine starts. */
#include "me_cfg.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

typedef enum opt_type {
    OPT_U32,   /* unsigned, range-checked */
    OPT_F64,   /* double, range-checked */
    OPT_FLAG,  /* bool set to true, takes no argument */
    OPT_STR,   /* owned string, last one wins */
    OPT_LIST,  /* repeatable string: char ** + count */
    OPT_PORTS, /* repeatable, comma-separated ports: uint16_t * + count */
    OPT_HELP,
} opt_type;

typedef struct opt_def {
    const char *name;
    opt_type type;
    size_t off;      /* field in me_cfg */
    size_t off_n;    /* element count field for OPT_LIST / OPT_PORTS */
    const char *def; /* default, parsed like a flag value; NULL = none */
    double min;
    double max;
    const char *meta; /* argument name in --help */
    const char *help;
} opt_def;

/* getopt_long returns OPT_VAL_BASE + table index for long options, above any
 * character code it uses itself ('?', ':', 'h'). */
#define OPT_VAL_BASE 256

#define CFG_OPT(name, type, field, def, min, max, meta, help)                                      \
    {                                                                                              \
        name, type, offsetof(me_cfg, field), 0, def, min, max, meta, help                          \
    }
#define CFG_LIST(name, type, field, nfield, def, meta, help)                                       \
    {                                                                                              \
        name, type, offsetof(me_cfg, field), offsetof(me_cfg, nfield), def, 0, 0, meta, help       \
    }

static const opt_def cfg_opts[] = {
    CFG_OPT("host", OPT_STR, host, "127.0.0.1", 0, 0, "ADDR", "Listen address (IPv4 or IPv6)"),
    CFG_LIST("port", OPT_PORTS, ports, nports, "8000", "N",
             "Port to serve, repeatable; each port is an independent engine (0 = any free port)"),
    CFG_LIST("ports", OPT_PORTS, ports, nports, NULL, "N,N,...", "Comma-separated ports"),
    CFG_LIST("model", OPT_LIST, models, nmodels, "mock-model", "NAME",
             "Served model name, repeatable; the first is the default model"),
    CFG_LIST("served-model-name", OPT_LIST, models, nmodels, NULL, "NAME", "Alias of --model"),
    CFG_OPT("ttft-ms", OPT_U32, knobs.ttft_ms, "20", 0, 3600000, "MS", "Time to first token"),
    CFG_OPT("itl-ms", OPT_U32, knobs.itl_ms, "5", 0, 3600000, "MS", "Delay between tokens"),
    CFG_OPT("output-tokens", OPT_U32, output_tokens, "16", 1, 1000000, "N",
            "Tokens generated when the request sets no max_tokens (finish_reason stop)"),
    CFG_OPT("max-output-tokens", OPT_U32, max_output_tokens, "4096", 1, 1000000, "N",
            "Cap on max_tokens (finish_reason length)"),
    CFG_OPT("max-model-len", OPT_U32, max_model_len, "8192", 1, 100000000, "N",
            "Context window: prompt + max_tokens above it is a 400"),
    CFG_OPT("max-running", OPT_U32, max_running, "256", 1, 1000000, "N",
            "Concurrent generations per port; more requests wait (vllm:num_requests_waiting)"),
    CFG_OPT("error-rate", OPT_F64, knobs.error_rate, "0", 0, 1, "F",
            "Fraction (0..1) of generation requests answered 500"),
    CFG_OPT("hang", OPT_FLAG, knobs.hang, NULL, 0, 0, NULL,
            "Accept generation requests and never answer until the client goes away"),
    CFG_OPT("close-mid-stream", OPT_U32, knobs.close_mid_stream, "0", 0, 1000000, "N",
            "Cut streaming responses after N SSE events by closing the connection"),
    CFG_OPT("slow-ms", OPT_U32, knobs.slow_ms, "0", 0, 3600000, "MS",
            "Extra delay before the response headers of generation requests"),
    CFG_LIST("lora", OPT_LIST, loras, nloras, NULL, "NAME[=PATH]",
             "A LoRA adapter loaded at start on every port (repeatable; vLLM --lora-modules)"),
    CFG_LIST("lora-modules", OPT_LIST, loras, nloras, NULL, "NAME=PATH", "Alias of --lora"),
    CFG_OPT("max-loras", OPT_U32, max_loras, "1", 1, 1000000, "N",
            "vLLM's --max-loras: the max_lora label of vllm:lora_requests_info"),
    CFG_OPT("enable-lora", OPT_FLAG, enable_lora, NULL, 0, 0, NULL,
            "Export vllm:lora_requests_info even before an adapter is loaded (implied by --lora)"),
    CFG_LIST("api-key", OPT_LIST, api_keys, napi_keys, NULL, "KEY",
             "Require 'Authorization: Bearer KEY' on /v1/* (repeatable)"),
    CFG_OPT("embedding-dim", OPT_U32, embedding_dim, "8", 1, 65536, "N",
            "Length of the vectors /v1/embeddings returns"),
    CFG_OPT("error-format", OPT_STR, error_format, "flat", 0, 0, "flat|nested",
            "Error body shape: flat (vLLM < 0.10.1) or nested {\"error\":{...}} (newer)"),
    CFG_OPT("record-max", OPT_U32, record_max, "1000", 0, 1000000, "N",
            "Requests kept per port for GET /_mock/requests (0 disables recording)"),
    CFG_OPT("record-secrets", OPT_FLAG, record_secrets, NULL, 0, 0, NULL,
            "Record Authorization/API-key/cookie headers verbatim instead of <redacted>"),
    CFG_OPT("max-body-bytes", OPT_U32, max_body_bytes, "33554432", 1, 1073741824, "N",
            "Request bodies above this size get 413"),
    CFG_OPT("max-connections", OPT_U32, max_connections, "4096", 1, 100000, "N",
            "Concurrent connections per port (one thread each)"),
    CFG_OPT("port-file", OPT_STR, port_file, NULL, 0, 0, "PATH",
            "Write the bound ports here, one per line, once all ports listen"),
    CFG_OPT("log-level", OPT_STR, log_level, "notice", 0, 0, "LVL",
            "alert|err|warn|notice|info|debug"),
    CFG_OPT("kv-sim", OPT_FLAG, kv_sim, NULL, 0, 0, NULL,
            "Simulate a paged KV cache with prefix caching and continuous batching; timing "
            "then comes from the step model below instead of --ttft-ms/--itl-ms"),
    CFG_OPT("kv-block-size", OPT_U32, kv_block_size, "16", 1, 4096, "N",
            "Tokens per KV block (vLLM's --block-size)"),
    CFG_OPT("kv-blocks", OPT_U32, kv_blocks, "2048", 1, 16777216, "N",
            "KV-cache capacity per port, in blocks (vLLM's num_gpu_blocks)"),
    CFG_OPT("max-batched-tokens", OPT_U32, max_batched_tokens, "8192", 1, 100000000, "N",
            "Tokens one step may process (chunked prefill budget, vLLM's "
            "--max-num-batched-tokens)"),
    CFG_OPT("decode-step-ms", OPT_F64, decode_step_ms, "8", 0, 60000, "MS",
            "Fixed simulated cost of every step"),
    CFG_OPT("prefill-us-per-token", OPT_F64, prefill_us_per_token, "63", 0, 1000000, "US",
            "Simulated cost of each uncached prompt token computed in a step"),
    CFG_OPT("decode-us-per-seq", OPT_F64, decode_us_per_seq, "350", 0, 1000000, "US",
            "Simulated cost of each sequence served in a step"),
    CFG_OPT("time-scale", OPT_F64, time_scale, "1", 0.0001, 1000, "F",
            "Wall seconds per simulated second (0.1 = ten times faster than real time)"),
    CFG_OPT("pd-role", OPT_STR, pd_role_name, "both", 0, 0, "prefill|decode|both",
            "Prefill/decode disaggregation role; both = a plain engine that ignores "
            "kv_transfer_params"),
    CFG_OPT("kv-transfer-ms", OPT_U32, kv_transfer_ms, "5", 0, 3600000, "MS",
            "Decode role: simulated time of one KV pull from the prefill"),
    CFG_OPT("kv-ttl-ms", OPT_U32, kv_ttl_ms, "30000", 1, 86400000, "MS",
            "Prefill role: KV that no decode pulled is freed after this"),
    CFG_OPT("engine-id", OPT_STR, engine_id, NULL, 0, 0, "ID",
            "Engine id in kv_transfer_params (remote_engine_id); default mock-<port>"),
    CFG_OPT("help", OPT_HELP, help, NULL, 0, 0, NULL, "Print this help and exit"),
};

static gw_err
parse_u32(const opt_def *o, const char *s, unsigned *out, char *why, size_t whyn)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < o->min || v > o->max) {
        snprintf(why, whyn, "--%s: '%s' is not an integer in [%.0f, %.0f]", o->name, s, o->min,
                 o->max);
        return GW_EINVAL;
    }
    *out = (unsigned)v;
    return GW_OK;
}

static gw_err
add_ports(const opt_def *o, me_cfg *cfg, const char *s, char *why, size_t whyn)
{
    static const opt_def port_range = {.name = "port", .min = 0, .max = 65535};
    char *copy = gw_xstrdup(s);
    char *save = NULL;
    gw_err rc = GW_OK;

    for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        unsigned p;

        rc = parse_u32(&port_range, tok, &p, why, whyn);
        if (rc != GW_OK) {
            snprintf(why, whyn, "--%s: '%s' is not a port number", o->name, tok);
            break;
        }
        cfg->ports = gw_xrealloc(cfg->ports, (cfg->nports + 1) * sizeof(*cfg->ports));
        cfg->ports[cfg->nports++] = (uint16_t)p;
    }
    if (rc == GW_OK && cfg->nports == 0) {
        snprintf(why, whyn, "--%s: empty port list", o->name);
        rc = GW_EINVAL;
    }
    free(copy);
    return rc;
}

/* Applies one value of option <o> to <cfg>; used for flags and defaults. */
static gw_err
opt_set(const opt_def *o, me_cfg *cfg, const char *val, char *why, size_t whyn)
{
    char *field = (char *)cfg + o->off;

    switch (o->type) {
    case OPT_U32:
        return parse_u32(o, val, (unsigned *)(void *)field, why, whyn);
    case OPT_F64: {
        char *end;
        double v;

        errno = 0;
        v = strtod(val, &end);
        if (end == val || *end != '\0' || errno != 0 || !isfinite(v) || v < o->min || v > o->max) {
            snprintf(why, whyn, "--%s: '%s' is not a number in [%g, %g]", o->name, val, o->min,
                     o->max);
            return GW_EINVAL;
        }
        *(double *)(void *)field = v;
        return GW_OK;
    }
    case OPT_FLAG:
    case OPT_HELP:
        *(bool *)(void *)field = true;
        return GW_OK;
    case OPT_STR: {
        char **sp = (char **)(void *)field;

        free(*sp);
        *sp = gw_xstrdup(val);
        return GW_OK;
    }
    case OPT_LIST: {
        char ***lp = (char ***)(void *)field;
        size_t *np = (size_t *)(void *)((char *)cfg + o->off_n);

        if (val[0] == '\0') {
            snprintf(why, whyn, "--%s: empty value", o->name);
            return GW_EINVAL;
        }
        *lp = gw_xrealloc(*lp, (*np + 1) * sizeof(**lp));
        (*lp)[(*np)++] = gw_xstrdup(val);
        return GW_OK;
    }
    case OPT_PORTS:
        return add_ports(o, cfg, val, why, whyn);
    }
    return GW_EINVAL;
}

static bool
is_list(const opt_def *o)
{
    return o->type == OPT_LIST || o->type == OPT_PORTS;
}

/* Count field of a list option, to tell whether any flag filled it. */
static size_t
list_len(const opt_def *o, const me_cfg *cfg)
{
    return *(const size_t *)(const void *)((const char *)cfg + o->off_n);
}

static gw_err
cfg_validate(me_cfg *cfg, char *why, size_t whyn)
{
    gw_lvl lvl;

    if (strcmp(cfg->error_format, "flat") == 0) {
        cfg->error_nested = false;
    } else if (strcmp(cfg->error_format, "nested") == 0) {
        cfg->error_nested = true;
    } else {
        snprintf(why, whyn, "--error-format: '%s' is neither flat nor nested", cfg->error_format);
        return GW_EINVAL;
    }
    if (!me_pd_parse_role(cfg->pd_role_name, &cfg->pd_role)) {
        snprintf(why, whyn, "--pd-role: '%s' is none of prefill, decode, both", cfg->pd_role_name);
        return GW_EINVAL;
    }
    if (cfg->engine_id != NULL &&
        (cfg->engine_id[0] == '\0' || strlen(cfg->engine_id) > ME_PD_ID_MAX)) {
        snprintf(why, whyn, "--engine-id: needs 1..%d bytes", ME_PD_ID_MAX);
        return GW_EINVAL;
    }
    if (!gw_log_parse_level(cfg->log_level, &lvl)) {
        snprintf(why, whyn, "--log-level: unknown level '%s'", cfg->log_level);
        return GW_EINVAL;
    }
    gw_log_level = lvl;
    /* Two engines cannot share a port; 0 (kernel-chosen) may repeat. */
    for (size_t i = 0; i < cfg->nports; i++) {
        for (size_t j = i + 1; j < cfg->nports; j++) {
            if (cfg->ports[i] != 0 && cfg->ports[i] == cfg->ports[j]) {
                snprintf(why, whyn, "--port: %u given twice", cfg->ports[i]);
                return GW_EINVAL;
            }
        }
    }
    /* Adapters: a name (before any '='), unique, not a base model name. */
    for (size_t i = 0; i < cfg->nloras; i++) {
        size_t n = strcspn(cfg->loras[i], "=");

        if (n == 0 || n > ME_LORA_NAME_MAX) {
            snprintf(why, whyn, "--lora: '%.64s' needs a name of 1..%d bytes", cfg->loras[i],
                     ME_LORA_NAME_MAX);
            return GW_EINVAL;
        }
        for (size_t m = 0; m < cfg->nmodels; m++) {
            if (strlen(cfg->models[m]) == n && strncmp(cfg->models[m], cfg->loras[i], n) == 0) {
                snprintf(why, whyn, "--lora: '%.*s' is a served model name", (int)n, cfg->loras[i]);
                return GW_EINVAL;
            }
        }
        for (size_t j = 0; j < i; j++) {
            if (strcspn(cfg->loras[j], "=") == n && strncmp(cfg->loras[j], cfg->loras[i], n) == 0) {
                snprintf(why, whyn, "--lora: '%.*s' given twice", (int)n, cfg->loras[i]);
                return GW_EINVAL;
            }
        }
    }
    if (cfg->nloras > 0)
        cfg->enable_lora = true;
    /* As vLLM refuses to start when one max-length sequence cannot fit in
     * the KV cache: the simulator relies on it to never deadlock. */
    if (cfg->kv_sim &&
        (unsigned long long)cfg->kv_blocks * cfg->kv_block_size < cfg->max_model_len) {
        snprintf(why, whyn,
                 "--kv-blocks: %u blocks of %u tokens hold fewer than --max-model-len %u tokens",
                 cfg->kv_blocks, cfg->kv_block_size, cfg->max_model_len);
        return GW_EINVAL;
    }
    cfg->knobs.force_running = -1;
    cfg->knobs.force_waiting = -1;
    cfg->knobs.force_kv_usage = -1;
    cfg->knobs.force_ttft_ms = -1;
    cfg->knobs.force_tpot_ms = -1;
    cfg->knobs.force_tokens_per_s = -1;
    return GW_OK;
}

gw_err
me_cfg_parse(me_cfg *cfg, int argc, char **argv, char *why, size_t whyn)
{
    struct option longopts[GW_ARRAY_LEN(cfg_opts) + 1];
    gw_err rc;
    int c;
    int idx;

    for (size_t i = 0; i < GW_ARRAY_LEN(cfg_opts); i++) {
        const opt_def *o = &cfg_opts[i];

        longopts[i] = (struct option){
            o->name, o->type == OPT_FLAG || o->type == OPT_HELP ? no_argument : required_argument,
            NULL, OPT_VAL_BASE + (int)i};
        if (o->def != NULL && !is_list(o)) {
            rc = opt_set(o, cfg, o->def, why, whyn);
            if (rc != GW_OK)
                return rc;
        }
    }
    longopts[GW_ARRAY_LEN(cfg_opts)] = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    optind = 1;
    for (;;) {
        idx = -1;
        c = getopt_long(argc, argv, ":h", longopts, &idx);
        if (c == -1)
            break;
        if (c == 'h') {
            cfg->help = true;
            continue;
        }
        if (c == '?' || c == ':') {
            snprintf(why, whyn, "%s: %s", c == ':' ? "missing argument" : "unknown option",
                     argv[optind - 1]);
            return GW_EINVAL;
        }
        rc = opt_set(&cfg_opts[c - OPT_VAL_BASE], cfg, optarg != NULL ? optarg : "", why, whyn);
        if (rc != GW_OK)
            return rc;
    }
    if (optind < argc) {
        snprintf(why, whyn, "unexpected argument '%s'", argv[optind]);
        return GW_EINVAL;
    }
    if (cfg->help)
        return GW_OK;
    for (size_t i = 0; i < GW_ARRAY_LEN(cfg_opts); i++) {
        const opt_def *o = &cfg_opts[i];

        if (is_list(o) && o->def != NULL && list_len(o, cfg) == 0) {
            rc = opt_set(o, cfg, o->def, why, whyn);
            if (rc != GW_OK)
                return rc;
        }
    }
    return cfg_validate(cfg, why, whyn);
}

static void
free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
me_cfg_fini(me_cfg *cfg)
{
    GW_FREE(cfg->host);
    GW_FREE(cfg->ports);
    free_list(cfg->models, cfg->nmodels);
    free_list(cfg->api_keys, cfg->napi_keys);
    free_list(cfg->loras, cfg->nloras);
    cfg->models = NULL;
    cfg->api_keys = NULL;
    cfg->loras = NULL;
    cfg->nports = cfg->nmodels = cfg->napi_keys = cfg->nloras = 0;
    GW_FREE(cfg->error_format);
    GW_FREE(cfg->port_file);
    GW_FREE(cfg->log_level);
    GW_FREE(cfg->pd_role_name);
    GW_FREE(cfg->engine_id);
}

void
me_cfg_usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [options]\n"
            "Test and benchmark stand-in for vLLM's OpenAI server (see e2e/mock/README.md).\n\n",
            argv0);
    for (size_t i = 0; i < GW_ARRAY_LEN(cfg_opts); i++) {
        const opt_def *o = &cfg_opts[i];
        char lhs[64];

        snprintf(lhs, sizeof(lhs), "--%s%s%s", o->name, o->meta != NULL ? " " : "",
                 o->meta != NULL ? o->meta : "");
        fprintf(f, "  %-28s %s", lhs, o->help);
        if (o->def != NULL)
            fprintf(f, " [%s]", o->def);
        fputc('\n', f);
    }
}
