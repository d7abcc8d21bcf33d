/* me_metrics: the Prometheus series one mock engine exports on /metrics,
 * under vLLM's metric names with a model_name label (one series per served
 * model). Counters and histograms live here; the gauges (running, waiting,
 * KV-cache usage) are owned by the engine and passed in at render time.
 * Not thread-safe: the engine calls everything under its own mutex. */
#ifndef ME_METRICS_H
#define ME_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "gw/gw_buf.h"
#include "gw/gw_err.h"

typedef struct me_metrics me_metrics;

/* How a generation request ended, for vllm:request_success_total's
 * finished_reason label. */
typedef enum me_finish {
    ME_FINISH_STOP,
    ME_FINISH_LENGTH,
    ME_FINISH_ABORT,
} me_finish;

me_metrics *me_metrics_new(size_t nmodels);
void me_metrics_free(me_metrics *m);
/* Zeroes every counter and histogram. */
void me_metrics_reset(me_metrics *m);

void me_metrics_prompt_tokens(me_metrics *m, size_t model, unsigned n);
void me_metrics_generation_tokens(me_metrics *m, size_t model, unsigned n);
void me_metrics_finished(me_metrics *m, size_t model, me_finish why);
/* vLLM's prefix-cache counters, in tokens: <queried> prompt tokens looked
 * up, <hit> of them found cached. */
void me_metrics_prefix_cache(me_metrics *m, size_t model, unsigned queried, unsigned hit);
void me_metrics_preemption(me_metrics *m, size_t model);
/* Histogram observations, in seconds. <count> repeats one observation. */
void me_metrics_ttft(me_metrics *m, size_t model, double s);
void me_metrics_tpot(me_metrics *m, size_t model, double s, unsigned count);
void me_metrics_e2e(me_metrics *m, size_t model, double s);

/* One label set of vllm:lora_requests_info and the time it was last set. */
typedef struct me_lora_series {
    const char *running; /* comma list of adapter names */
    const char *waiting;
    double ts; /* Unix time in seconds: the gauge's value, as vLLM sets it */
} me_lora_series;

/* The engine's gauges at render time; arrays have one entry per model. */
typedef struct me_gauges {
    const unsigned *running;
    const unsigned *waiting;
    double kv_usage; /* 0..1, engine-wide */
    /* vllm:cache_config_info labels. */
    unsigned block_size;
    unsigned num_gpu_blocks;
    bool prefix_caching;
    /* vllm:lora_requests_info, rendered when <lora_on>: every label set
     * seen so far (prometheus_client keeps old ones), newest value = now. */
    bool lora_on;
    unsigned max_lora;
    const me_lora_series *lora;
    size_t nlora;
} me_gauges;

/* Appends the Prometheus text exposition (0.0.4) of everything to <out>.
 * <models> names the model_name label values. GW_EFULL if <out>'s cap is hit. */
GW_MUST_CHECK gw_err me_metrics_render(const me_metrics *m, const char *const *models,
                                       const me_gauges *g, gw_buf *out);

#endif
