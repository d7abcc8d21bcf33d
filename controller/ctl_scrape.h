/* ctl_scrape: the engine-side signals of the load vector and LoRA adapter
 * discovery (DESIGN §3, issue 4). The controller polls every ready
 * endpoint's engine itself, on its own loop, through gw_curlm:
 *
 *   GET http://ip:metric_port/metrics  every --scrape-interval (0 = off)
 *   GET http://ip:port/v1/models       every --adapter-refresh-interval (0 = off)
 *
 * with at most --scrape-concurrency transfers at once (due endpoints are
 * served round-robin, so a fleet larger than one interval's worth of
 * transfers is still covered evenly), HTTP/1.1 keep-alive (connections stay
 * in the curl multi's cache between scrapes), --scrape-timeout per transfer
 * and bodies capped at --scrape-max-bytes. An endpoint is scraped once per
 * engine address (ip, port) even when several models list it.
 *
 * The module has two layers. The pure one turns one /metrics page into
 * numbers (ctl_scrape_state, ctl_scrape_apply_page, ctl_scrape_state_signals)
 * and one /v1/models answer into adapter names (ctl_scrape_parse_models); it
 * does no I/O and takes time as an argument, so unit tests drive it with
 * crafted pages. The I/O layer (ctl_scrape_start) owns the transfers, the
 * per-address state and the log lines, feeds the store's adapter overlay and
 * answers ctl_load's signal queries (ctl_scrape_signals).
 *
 * Metric names by the endpoint's engine (pm_endpoint.engine; "sglang" reads
 * the SGLang names, anything else the vLLM ones, which vLLM-compatible
 * servers export):
 *
 *   field         vllm                                     sglang
 *   running       vllm:num_requests_running                sglang:num_running_reqs
 *   waiting       vllm:num_requests_waiting                sglang:num_queue_reqs
 *   kv_usage      vllm:kv_cache_usage_perc, else           sglang:token_usage
 *                 vllm:gpu_cache_usage_perc
 *   gpu_usage     vllm:gpu_cache_usage_perc, else          sglang:token_usage
 *                 vllm:kv_cache_usage_perc
 *   tokens_per_s  vllm:prompt_tokens_total +               sglang:prompt_tokens_total +
 *                 vllm:generation_tokens_total             sglang:generation_tokens_total
 *   ttft_ms       vllm:time_to_first_token_seconds         sglang:time_to_first_token_seconds
 *   tpot_ms       vllm:time_per_output_token_seconds, else sglang:time_per_output_token_seconds,
 *                 vllm:inter_token_latency_seconds         else sglang:inter_token_latency_seconds
 *   kv_capacity   vllm:cache_config_info labels            sglang:max_total_num_tokens
 *                 num_gpu_blocks x block_size (tokens)
 *   adapters      vllm:lora_requests_info labels           (none)
 *
 * Aggregation over series (one per model_name, engine index, ...): counts,
 * counters and histogram sums/counts are summed; usage fractions and the
 * capacity take the largest series (they are engine-wide and repeated per
 * model name; a label that is not a positive number, such as vLLM's "None"
 * before profiling, gives no capacity). Samples
 * that are NaN, infinite or negative are ignored.
 *
 * Derivation: gauges are the last good page's values. tokens_per_s is the
 * counters' increase between a baseline page and the first page at least
 * CTL_SCRAPE_RATE_WINDOW_MS later, over the time between them. ttft_ms and
 * tpot_ms are (delta sum / delta count) of the histogram between two
 * consecutive pages, only when delta count > 0, folded into an EWMA
 * (CTL_LOAD_EWMA_ALPHA; the first sample is taken as is); without new
 * observations the previous value stays. A counter or histogram that went
 * down (engine restart) restarts its baseline and keeps the derived value.
 * A series missing from a page makes its field unknown (-1), never 0.
 * Staleness: metrics_age_ms = now - last good scrape; numbers older than
 * --metrics-stale-after are answered as unknown, so workers never route on
 * them; the age itself is always answered once a scrape succeeded.
 *
 * LoRA adapters of an address = the /v1/models entries with a non-null
 * "parent" (vLLM lists each loaded adapter so, the base models with
 * "parent": null) plus the names in the running_lora_adapters and
 * waiting_lora_adapters labels (comma lists) of the vllm:lora_requests_info
 * series with the largest value (vLLM sets it to the update time, and
 * prometheus_client keeps older label sets around). The union, minus the
 * endpoint's own model name, goes to ctl_store_set_adapters, which marks the
 * store dirty when it changed, so the next snapshot (gen + 1) carries it.
 * A failed or malformed answer keeps the previous set; an endpoint that
 * stops being ready loses its discovered adapters.
 *
 * Threads: loop thread only. */
#ifndef CTL_SCRAPE_H
#define CTL_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_compile.h"
#include "ctl_load.h"
#include "ctl_metrics.h"
#include "ctl_store.h"
#include "gw/gw_err.h"
#include "gw/gw_loop.h"
#include "pm/pm_msgs.h"

/* Shortest time between the two pages a token rate is computed from. */
#define CTL_SCRAPE_RATE_WINDOW_MS 1000
/* Idle keep-alive connections kept in the curl multi's cache. */
#define CTL_SCRAPE_MAX_IDLE 1024

/* ---- pure layer: one engine's numbers ---------------------------------- */

/* Cumulative histogram totals from one page, and the derived mean. */
typedef struct ctl_scrape_hist {
    bool have_base;  /* base_* hold the previous page's totals */
    int src;         /* which series the base came from (tpot has two) */
    double base_sum; /* seconds */
    double base_count;
    double mean_ms; /* EWMA of per-interval means; < 0 = unknown */
} ctl_scrape_hist;

/* What the controller knows about one engine. Plain data; init and fini
 * bracket it. */
typedef struct ctl_scrape_state {
    bool sglang;  /* read SGLang names, else vLLM's */
    bool ever_ok; /* at least one good page */
    uint64_t last_ok_ms;
    double running, waiting, kv_usage, gpu_usage; /* last good page; < 0 = absent */
    double kv_capacity;                           /* tokens, last good page; < 0 = absent */
    double tokens_per_s;                          /* < 0 = unknown */
    bool have_tok_base;
    double tok_base;
    uint64_t tok_base_ms;
    ctl_scrape_hist ttft, tpot;
    /* vllm:lora_requests_info of the last good page: sorted, unique, owned. */
    char **lora;
    size_t n_lora;
    bool lora_changed; /* set by apply_page when <lora> changed; the caller clears it */
} ctl_scrape_state;

/* Starts <st> for an engine named <engine> (NULL = vllm). */
void ctl_scrape_state_init(ctl_scrape_state *st, const char *engine);
/* Frees what <st> owns; it can be init'ed again. */
void ctl_scrape_state_fini(ctl_scrape_state *st);

/* Applies one /metrics page (<len> bytes at <text>, no NUL needed) fetched
 * at <now_ms> (monotonic). GW_OK: the page had at least one sample; gauges,
 * rates, histogram means, the LoRA set and last_ok_ms are updated.
 * GW_EPROTO: not a metrics page (no sample at all); <st> is unchanged. The
 * number of malformed lines skipped goes to *malformed when not NULL. */
GW_MUST_CHECK gw_err ctl_scrape_apply_page(ctl_scrape_state *st, const char *text, size_t len,
                                           uint64_t now_ms, size_t *malformed);

/* The load signals of <st> at <now_ms>: unknown (-1) everywhere before the
 * first good page; afterwards age_ms = now - last good page, and every
 * number is -1 when that age is over <stale_after_ms>. */
void ctl_scrape_state_signals(const ctl_scrape_state *st, uint64_t now_ms, uint64_t stale_after_ms,
                              ctl_signals *out);

/* Parses a /v1/models answer (<len> bytes of JSON at <body>) into the ids of
 * its entries whose "parent" is a string (LoRA adapters, as vLLM lists
 * them). Entries without a usable id (not a string, empty, longer than
 * PM_MAX_STR - 1 bytes or holding a NUL) are skipped; at most
 * PM_MAX_ADAPTERS names are returned. On GW_OK *names is a heap array of
 * heap strings (NULL when *n is 0) the caller frees with
 * ctl_scrape_names_free. GW_EPROTO (outputs untouched): not JSON, not an
 * object, or no "data" array. */
GW_MUST_CHECK gw_err ctl_scrape_parse_models(const char *body, size_t len, char ***names,
                                             size_t *n);

/* Frees an array from ctl_scrape_parse_models. NULL ok. */
void ctl_scrape_names_free(char **names, size_t n);

/* ---- I/O layer ---------------------------------------------------------- */

typedef struct ctl_scrape ctl_scrape;

typedef struct ctl_scrape_opts {
    uint64_t interval_ms;        /* --scrape-interval; 0 = no /metrics scrapes */
    uint64_t timeout_ms;         /* --scrape-timeout, per transfer */
    unsigned concurrency;        /* --scrape-concurrency, >= 1 */
    uint64_t stale_after_ms;     /* --metrics-stale-after */
    uint64_t adapter_refresh_ms; /* --adapter-refresh-interval; 0 = no discovery */
    size_t max_body;             /* --scrape-max-bytes */
    const char *engine_api_key;  /* --engine-api-key for /v1/models; NULL/"" = none; copied */
} ctl_scrape_opts;

/* Starts scraping on <loop>. <compile> (which endpoints exist), <store>
 * (the adapter overlay) and <metrics> are borrowed and must outlive the
 * scraper. The first round starts at once. GW_ENOMEM when curl cannot be
 * initialised (logged). Register ctl_scrape_signals with ctl_load to feed
 * the load vector. */
GW_MUST_CHECK gw_err ctl_scrape_start(gw_loop *loop, const ctl_scrape_opts *o, ctl_compile *compile,
                                      ctl_store *store, ctl_metrics *metrics, ctl_scrape **out);

/* The ctl_load_signals_fn of the scraper (<arg> is the ctl_scrape): the
 * signals of the engine at <ep>'s (ip, port), unknown when it is not
 * scraped (not ready, or not yet seen). */
void ctl_scrape_signals(void *arg, const pm_endpoint *ep, uint64_t now_ms, ctl_signals *out);

/* Cancels every transfer and frees the scraper. The store's overlay is left
 * as it is. NULL ok. */
void ctl_scrape_free(ctl_scrape *s);

#endif
