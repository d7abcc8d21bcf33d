/* me_metrics: counters and histograms of one engine, rendered like vLLM's
 * prometheus_client output: HELP and TYPE per family, counters named with
 * their _total suffix and no _created samples (vLLM disables them), histogram
 * buckets cumulative with le as the last label, values printed as floats. The
 * bucket bounds are the ones vLLM uses for the same metrics. */
#include "me_metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_mem.h"

static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                     0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                     20.0,  40.0,  80.0, 160., 640., 2560.};
static const double tpot_bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                     0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double e2e_bounds[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                    5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

typedef struct hist {
    const double *bounds;
    size_t nbounds;
    uint64_t *counts; /* per bucket, not cumulative; [nbounds] is +Inf */
    uint64_t count;
    double sum;
} hist;

typedef struct model_series {
    double prompt_tokens;
    double generation_tokens;
    double prefix_queries; /* tokens */
    double prefix_hits;    /* tokens */
    double preemptions;
    uint64_t finished[3]; /* by me_finish */
    hist ttft;
    hist tpot;
    hist e2e;
} model_series;

struct me_metrics {
    size_t nmodels;
    model_series *per_model; /* owned, nmodels entries */
};

static void
hist_init(hist *h, const double *bounds, size_t n)
{
    h->bounds = bounds;
    h->nbounds = n;
    h->counts = gw_xcalloc(n + 1, sizeof(*h->counts));
    h->count = 0;
    h->sum = 0;
}

static void
hist_observe(hist *h, double v, unsigned times)
{
    size_t i = 0;

    while (i < h->nbounds && v > h->bounds[i])
        i++;
    h->counts[i] += times;
    h->count += times;
    h->sum += v * times;
}

static void
hist_reset(hist *h)
{
    memset(h->counts, 0, (h->nbounds + 1) * sizeof(*h->counts));
    h->count = 0;
    h->sum = 0;
}

me_metrics *
me_metrics_new(size_t nmodels)
{
    me_metrics *m = gw_xcalloc(1, sizeof(*m));

    m->nmodels = nmodels;
    m->per_model = gw_xcalloc(nmodels, sizeof(*m->per_model));
    for (size_t i = 0; i < nmodels; i++) {
        model_series *s = &m->per_model[i];

        hist_init(&s->ttft, ttft_bounds, GW_ARRAY_LEN(ttft_bounds));
        hist_init(&s->tpot, tpot_bounds, GW_ARRAY_LEN(tpot_bounds));
        hist_init(&s->e2e, e2e_bounds, GW_ARRAY_LEN(e2e_bounds));
    }
    return m;
}

void
me_metrics_free(me_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nmodels; i++) {
        free(m->per_model[i].ttft.counts);
        free(m->per_model[i].tpot.counts);
        free(m->per_model[i].e2e.counts);
    }
    free(m->per_model);
    free(m);
}

void
me_metrics_reset(me_metrics *m)
{
    for (size_t i = 0; i < m->nmodels; i++) {
        model_series *s = &m->per_model[i];

        s->prompt_tokens = 0;
        s->generation_tokens = 0;
        s->prefix_queries = 0;
        s->prefix_hits = 0;
        s->preemptions = 0;
        memset(s->finished, 0, sizeof(s->finished));
        hist_reset(&s->ttft);
        hist_reset(&s->tpot);
        hist_reset(&s->e2e);
    }
}

void
me_metrics_prompt_tokens(me_metrics *m, size_t model, unsigned n)
{
    m->per_model[model].prompt_tokens += n;
}

void
me_metrics_generation_tokens(me_metrics *m, size_t model, unsigned n)
{
    m->per_model[model].generation_tokens += n;
}

void
me_metrics_finished(me_metrics *m, size_t model, me_finish why)
{
    m->per_model[model].finished[why]++;
}

void
me_metrics_prefix_cache(me_metrics *m, size_t model, unsigned queried, unsigned hit)
{
    m->per_model[model].prefix_queries += queried;
    m->per_model[model].prefix_hits += hit;
}

void
me_metrics_preemption(me_metrics *m, size_t model)
{
    m->per_model[model].preemptions++;
}

void
me_metrics_ttft(me_metrics *m, size_t model, double s)
{
    hist_observe(&m->per_model[model].ttft, s, 1);
}

void
me_metrics_tpot(me_metrics *m, size_t model, double s, unsigned count)
{
    if (count > 0)
        hist_observe(&m->per_model[model].tpot, s, count);
}

void
me_metrics_e2e(me_metrics *m, size_t model, double s)
{
    hist_observe(&m->per_model[model].e2e, s, 1);
}

/* Python's float repr for the values we print: integral values keep a ".0". */
static const char *
fmt_num(char *buf, size_t n, double v)
{
    if (isinf(v))
        snprintf(buf, n, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.1f", v);
    else
        snprintf(buf, n, "%.15g", v);
    return buf;
}

/* Label values escape backslash, double quote and newline (exposition format). */
static const char *
esc_label(char *buf, size_t n, const char *s)
{
    size_t o = 0;

    for (; *s != '\0' && o + 3 < n; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

static gw_err
family(gw_buf *out, const char *name, const char *type, const char *help)
{
    return gw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct render_ctx {
    const me_metrics *m;
    const char *const *models;
    const me_gauges *g;
    gw_buf *out;
    char (*labels)[300]; /* escaped model names, one per model */
} render_ctx;

/* One gauge or counter family; <get> picks the value for model <i>. */
static gw_err
scalar(const render_ctx *c, const char *name, const char *type, const char *help,
       double (*get)(const render_ctx *c, size_t i))
{
    char num[40];
    gw_err rc = family(c->out, name, type, help);

    for (size_t i = 0; i < c->m->nmodels && rc == GW_OK; i++)
        rc = gw_buf_printf(c->out, "%s{model_name=\"%s\"} %s\n", name, c->labels[i],
                           fmt_num(num, sizeof(num), get(c, i)));
    return rc;
}

static double
get_running(const render_ctx *c, size_t i)
{
    return c->g->running[i];
}

static double
get_waiting(const render_ctx *c, size_t i)
{
    return c->g->waiting[i];
}

static double
get_kv(const render_ctx *c, size_t i)
{
    (void)i;
    return c->g->kv_usage;
}

static double
get_prompt(const render_ctx *c, size_t i)
{
    return c->m->per_model[i].prompt_tokens;
}

static double
get_generation(const render_ctx *c, size_t i)
{
    return c->m->per_model[i].generation_tokens;
}

static double
get_prefix_queries(const render_ctx *c, size_t i)
{
    return c->m->per_model[i].prefix_queries;
}

static double
get_prefix_hits(const render_ctx *c, size_t i)
{
    return c->m->per_model[i].prefix_hits;
}

static double
get_preemptions(const render_ctx *c, size_t i)
{
    return c->m->per_model[i].preemptions;
}

/* vllm:cache_config_info: vLLM's CacheConfig as labels (sorted, as
 * prometheus_client prints them), value 1, no model_name label. The fields
 * the mock has no notion of carry vLLM's defaults. */
static gw_err
cache_config(const render_ctx *c)
{
    gw_err rc = family(c->out, "vllm:cache_config_info", "gauge",
                       "Information of the LLMEngine CacheConfig");

    if (rc == GW_OK)
        rc = gw_buf_printf(c->out,
                           "vllm:cache_config_info{block_size=\"%u\",cache_dtype=\"auto\","
                           "calculate_kv_scales=\"False\",cpu_offload_gb=\"0\","
                           "enable_prefix_caching=\"%s\",gpu_memory_utilization=\"0.9\","
                           "is_attention_free=\"False\",num_cpu_blocks=\"None\","
                           "num_gpu_blocks=\"%u\",num_gpu_blocks_override=\"None\","
                           "sliding_window=\"None\",swap_space_bytes=\"4294967296\"} 1.0\n",
                           c->g->block_size, c->g->prefix_caching ? "True" : "False",
                           c->g->num_gpu_blocks);
    return rc;
}

static gw_err
histogram(const render_ctx *c, const char *name, const char *help, size_t off)
{
    char num[40];
    char le[40];
    gw_err rc = family(c->out, name, "histogram", help);

    for (size_t i = 0; i < c->m->nmodels && rc == GW_OK; i++) {
        const hist *h = (const hist *)(const void *)((const char *)&c->m->per_model[i] + off);
        uint64_t cum = 0;

        for (size_t b = 0; b <= h->nbounds && rc == GW_OK; b++) {
            cum += h->counts[b];
            fmt_num(le, sizeof(le), b < h->nbounds ? h->bounds[b] : INFINITY);
            rc = gw_buf_printf(c->out, "%s_bucket{model_name=\"%s\",le=\"%s\"} %s\n", name,
                               c->labels[i], le, fmt_num(num, sizeof(num), (double)cum));
        }
        if (rc == GW_OK)
            rc = gw_buf_printf(c->out, "%s_count{model_name=\"%s\"} %s\n", name, c->labels[i],
                               fmt_num(num, sizeof(num), (double)h->count));
        if (rc == GW_OK)
            rc = gw_buf_printf(c->out, "%s_sum{model_name=\"%s\"} %s\n", name, c->labels[i],
                               fmt_num(num, sizeof(num), h->sum));
    }
    return rc;
}

gw_err
me_metrics_render(const me_metrics *m, const char *const *models, const me_gauges *g, gw_buf *out)
{
    static const char *const reasons[] = {"stop", "length", "abort"};
    render_ctx c = {m, models, g, out, gw_xcalloc(m->nmodels, 300)};
    char num[40];
    gw_err rc;

    for (size_t i = 0; i < m->nmodels; i++)
        esc_label(c.labels[i], sizeof(c.labels[i]), models[i]);

    rc = scalar(&c, "vllm:num_requests_running", "gauge",
                "Number of requests in model execution batches.", get_running);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:num_requests_waiting", "gauge",
                    "Number of requests waiting to be processed.", get_waiting);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:kv_cache_usage_perc", "gauge",
                    "KV-cache usage. 1 means 100 percent usage.", get_kv);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:gpu_cache_usage_perc", "gauge",
                    "GPU KV-cache usage. 1 means 100 percent usage (deprecated name).", get_kv);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:prefix_cache_queries_total", "counter",
                    "Prefix cache queries, in terms of number of queried tokens.",
                    get_prefix_queries);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:prefix_cache_hits_total", "counter",
                    "Prefix cache hits, in terms of number of cached tokens.", get_prefix_hits);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:num_preemptions_total", "counter",
                    "Cumulative number of preemption from the engine.", get_preemptions);
    if (rc == GW_OK)
        rc = cache_config(&c);
    if (rc == GW_OK && g->lora_on)
        rc = family(out, "vllm:lora_requests_info", "gauge", "Running stats on lora requests.");
    for (size_t i = 0; g->lora_on && i < g->nlora && rc == GW_OK; i++) {
        size_t rn = 2 * strlen(g->lora[i].running) + 4, wn = 2 * strlen(g->lora[i].waiting) + 4;
        char *run = gw_xmalloc(rn), *wait = gw_xmalloc(wn);

        /* Label order as vLLM's output shows it; the value is a Unix time,
         * printed with enough digits to tell updates apart. */
        rc = gw_buf_printf(out,
                           "vllm:lora_requests_info{max_lora=\"%u\",running_lora_adapters=\"%s\","
                           "waiting_lora_adapters=\"%s\"} %.17g\n",
                           g->max_lora, esc_label(run, rn, g->lora[i].running),
                           esc_label(wait, wn, g->lora[i].waiting), g->lora[i].ts);
        free(run);
        free(wait);
    }
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:prompt_tokens_total", "counter",
                    "Number of prefill tokens processed.", get_prompt);
    if (rc == GW_OK)
        rc = scalar(&c, "vllm:generation_tokens_total", "counter",
                    "Number of generation tokens processed.", get_generation);
    if (rc == GW_OK)
        rc = family(out, "vllm:request_success_total", "counter",
                    "Count of successfully processed requests.");
    for (size_t i = 0; i < m->nmodels && rc == GW_OK; i++) {
        for (size_t r = 0; r < GW_ARRAY_LEN(reasons) && rc == GW_OK; r++)
            rc = gw_buf_printf(
                out, "vllm:request_success_total{model_name=\"%s\",finished_reason=\"%s\"} %s\n",
                c.labels[i], reasons[r],
                fmt_num(num, sizeof(num), (double)m->per_model[i].finished[r]));
    }
    if (rc == GW_OK)
        rc =
            histogram(&c, "vllm:time_to_first_token_seconds",
                      "Histogram of time to first token in seconds.", offsetof(model_series, ttft));
    if (rc == GW_OK)
        rc = histogram(&c, "vllm:time_per_output_token_seconds",
                       "Histogram of time per output token in seconds.",
                       offsetof(model_series, tpot));
    if (rc == GW_OK)
        rc = histogram(&c, "vllm:e2e_request_latency_seconds",
                       "Histogram of end to end request latency in seconds.",
                       offsetof(model_series, e2e));
    free(c.labels);
    return rc;
}
