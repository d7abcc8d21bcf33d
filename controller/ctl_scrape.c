/* ctl_scrape: engine /metrics scraping and LoRA adapter discovery (see
 * ctl_scrape.h).
 *
 * Pure layer: a page is parsed by gw_prom into one accumulator of the
 * fields we read (sums, or the largest series for usage fractions); the
 * accumulator then updates the state in one step, so a page that turns out
 * not to be a metrics page leaves the state untouched.
 *
 * I/O layer: a "target" is one engine address (ip, port), kept in an array
 * sorted by address (binary search from ctl_load's per-endpoint queries).
 * The targets follow the current snapshot's ready endpoints: on every tick
 * whose snapshot generation differs from the last one seen, the array is
 * re-synced (new addresses added, vanished ones cancelled and forgotten).
 * Transfers run in a fixed pool of --scrape-concurrency "slots", each with
 * its own curl easy handle reused from transfer to transfer; connections
 * live in the multi's cache, so consecutive scrapes of one engine reuse a
 * keep-alive connection. Each tick marks targets due; free slots take due
 * targets round-robin from a cursor that survives ticks, and every finished
 * transfer starts the next due one at once. */
#include "ctl_scrape.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_set.h"
#include "ctl_util.h"
#include "gw/gw_buf.h"
#include "gw/gw_curlm.h"
#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_prom.h"

#ifndef GW_VERSION
#define GW_VERSION "0.1.0-dev"
#endif

/* ======================================================================
 * Pure layer
 * ====================================================================== */

/* The fields a page can hold. */
enum {
    F_RUN,
    F_WAIT,
    F_KV,
    F_GPU,
    F_PROMPT,
    F_GEN,
    F_TTFT_SUM,
    F_TTFT_CNT,
    F_TPOT_SUM,
    F_TPOT_CNT,
    F_ITL_SUM,
    F_ITL_CNT,
    F_KV_CAP,
    F_COUNT,
};

/* Sources of the tpot histogram (ctl_scrape_hist.src). */
enum { TPOT_NONE = 0, TPOT_TPOT, TPOT_ITL };

typedef struct name_map {
    const char *name;
    int field;
} name_map;

static const name_map vllm_names[] = {
    {"vllm:num_requests_running", F_RUN},
    {"vllm:num_requests_waiting", F_WAIT},
    {"vllm:kv_cache_usage_perc", F_KV},
    {"vllm:gpu_cache_usage_perc", F_GPU},
    {"vllm:prompt_tokens_total", F_PROMPT},
    {"vllm:generation_tokens_total", F_GEN},
    {"vllm:time_to_first_token_seconds_sum", F_TTFT_SUM},
    {"vllm:time_to_first_token_seconds_count", F_TTFT_CNT},
    {"vllm:time_per_output_token_seconds_sum", F_TPOT_SUM},
    {"vllm:time_per_output_token_seconds_count", F_TPOT_CNT},
    {"vllm:inter_token_latency_seconds_sum", F_ITL_SUM},
    {"vllm:inter_token_latency_seconds_count", F_ITL_CNT},
};

static const name_map sglang_names[] = {
    {"sglang:num_running_reqs", F_RUN},
    {"sglang:num_queue_reqs", F_WAIT},
    {"sglang:token_usage", F_KV},
    {"sglang:prompt_tokens_total", F_PROMPT},
    {"sglang:generation_tokens_total", F_GEN},
    {"sglang:time_to_first_token_seconds_sum", F_TTFT_SUM},
    {"sglang:time_to_first_token_seconds_count", F_TTFT_CNT},
    {"sglang:time_per_output_token_seconds_sum", F_TPOT_SUM},
    {"sglang:time_per_output_token_seconds_count", F_TPOT_CNT},
    {"sglang:inter_token_latency_seconds_sum", F_ITL_SUM},
    {"sglang:inter_token_latency_seconds_count", F_ITL_CNT},
    {"sglang:max_total_num_tokens", F_KV_CAP},
};

#define LORA_INFO    "vllm:lora_requests_info"
#define CACHE_CONFIG "vllm:cache_config_info"

/* One page's worth of fields. */
typedef struct page_acc {
    const name_map *names;
    size_t n_names;
    bool seen[F_COUNT];
    double v[F_COUNT];
    /* The newest vllm:lora_requests_info series so far (largest value). */
    bool lora_seen;
    double lora_ts;
    char *lora_running; /* owned copies of its two label values */
    char *lora_waiting;
} page_acc;

void
ctl_scrape_state_init(ctl_scrape_state *st, const char *engine)
{
    memset(st, 0, sizeof(*st));
    st->sglang = engine != NULL && strcmp(engine, "sglang") == 0;
    st->running = st->waiting = st->kv_usage = st->gpu_usage = st->kv_capacity = -1;
    st->tokens_per_s = -1;
    st->ttft.mean_ms = -1;
    st->tpot.mean_ms = -1;
}

void
ctl_scrape_state_fini(ctl_scrape_state *st)
{
    ctl_scrape_names_free(st->lora, st->n_lora);
    st->lora = NULL;
    st->n_lora = 0;
}

void
ctl_scrape_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The positive number in label <name> of <s>, else 0 (absent, "None", not
 * a number). */
static double
label_number(const gw_prom_sample *s, const char *name)
{
    const char *v = gw_prom_label_value(s, name);
    char *end;
    double d;

    if (v == NULL || *v == '\0')
        return 0;
    d = strtod(v, &end);
    return *end == '\0' && isfinite(d) && d > 0 ? d : 0;
}

/* gw_prom callback: folds one sample into the page accumulator <arg>. The
 * LoRA info gauge is matched by name whatever the engine (only vLLM has it). */
static bool
on_sample(const gw_prom_sample *s, void *arg)
{
    page_acc *a = arg;

    if (strcmp(s->name, LORA_INFO) == 0) {
        /* The series with the largest value is the newest label set; on a
         * tie the later line wins. */
        const char *run = gw_prom_label_value(s, "running_lora_adapters");
        const char *wait = gw_prom_label_value(s, "waiting_lora_adapters");
        if (isnan(s->value) || (a->lora_seen && s->value < a->lora_ts))
            return true;
        free(a->lora_running);
        free(a->lora_waiting);
        a->lora_running = gw_xstrdup(run != NULL ? run : "");
        a->lora_waiting = gw_xstrdup(wait != NULL ? wait : "");
        a->lora_ts = s->value;
        a->lora_seen = true;
        return true;
    }
    if (!isfinite(s->value) || s->value < 0)
        return true;
    if (a->names == vllm_names && strcmp(s->name, CACHE_CONFIG) == 0) {
        /* vLLM's CacheConfig as labels: the capacity is blocks x tokens per
         * block. */
        double cap = label_number(s, "num_gpu_blocks") * label_number(s, "block_size");
        if (isfinite(cap) && cap > 0 && (!a->seen[F_KV_CAP] || cap > a->v[F_KV_CAP])) {
            a->v[F_KV_CAP] = cap;
            a->seen[F_KV_CAP] = true;
        }
        return true;
    }
    for (size_t i = 0; i < a->n_names; i++) {
        int f = a->names[i].field;
        if (strcmp(s->name, a->names[i].name) != 0)
            continue;
        if (f == F_KV || f == F_GPU || f == F_KV_CAP)
            a->v[f] = a->seen[f] && a->v[f] > s->value ? a->v[f] : s->value;
        else
            a->v[f] += s->value;
        a->seen[f] = true;
        break;
    }
    return true;
}

/* qsort comparator over char * elements. */
static int
cmp_str_ptr(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Appends the comma-separated names of <list> (blanks around names
 * trimmed) to names[]/n, up to PM_MAX_ADAPTERS. */
static void
split_names(const char *list, char ***names, size_t *n)
{
    const char *p = list;

    while (*p != '\0' && *n < PM_MAX_ADAPTERS) {
        const char *end = strchr(p, ',');
        const char *b = p, *e = end != NULL ? end : p + strlen(p);

        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b && (size_t)(e - b) < PM_MAX_STR) {
            *names = gw_xrealloc(*names, (*n + 1) * sizeof(**names));
            (*names)[(*n)++] = gw_xstrndup(b, (size_t)(e - b));
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
}

/* Sorts and deduplicates names[]/n in place, freeing the duplicates. */
static void
sort_unique(char **names, size_t *n)
{
    size_t k = 0;

    if (*n == 0)
        return;
    qsort(names, *n, sizeof(*names), cmp_str_ptr);
    for (size_t i = 0; i < *n; i++) {
        if (k > 0 && strcmp(names[i], names[k - 1]) == 0)
            free(names[i]);
        else
            names[k++] = names[i];
    }
    *n = k;
}

/* Whether two sorted name arrays hold the same names. */
static bool
same_names(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        if (strcmp(a[i], b[i]) != 0)
            return false;
    }
    return true;
}

/* Folds <sample> into the running average *avg (< 0 = none yet: take it). */
static void
ewma(double *avg, double sample)
{
    if (*avg < 0)
        *avg = sample;
    else
        *avg = CTL_LOAD_EWMA_ALPHA * sample + (1 - CTL_LOAD_EWMA_ALPHA) * *avg;
}

/* One histogram's new totals from series <src> (<seen> false: the series
 * is missing from the page, so the field becomes unknown). */
static void
hist_update(ctl_scrape_hist *h, int src, bool seen, double sum, double count)
{
    if (!seen) {
        h->have_base = false;
        h->src = TPOT_NONE;
        h->mean_ms = -1;
        return;
    }
    if (!h->have_base || h->src != src || count < h->base_count || sum < h->base_sum) {
        /* First page, another series, or a reset (the engine restarted):
         * only a new baseline; the derived mean, if any, stays the
         * engine's latest word. */
    } else if (count > h->base_count) {
        ewma(&h->mean_ms, (sum - h->base_sum) / (count - h->base_count) * 1000.0);
    }
    h->have_base = true;
    h->src = src;
    h->base_sum = sum;
    h->base_count = count;
}

gw_err
ctl_scrape_apply_page(ctl_scrape_state *st, const char *text, size_t len, uint64_t now_ms,
                      size_t *malformed)
{
    page_acc a;
    gw_prom_stats ps;
    char **lora = NULL;
    size_t n_lora = 0;

    memset(&a, 0, sizeof(a));
    a.names = st->sglang ? sglang_names : vllm_names;
    a.n_names = st->sglang ? GW_ARRAY_LEN(sglang_names) : GW_ARRAY_LEN(vllm_names);
    if (gw_prom_parse(text, len, on_sample, &a, &ps) != GW_OK)
        ps = (gw_prom_stats){0};
    if (malformed != NULL)
        *malformed = ps.malformed;
    if (ps.samples == 0) {
        free(a.lora_running);
        free(a.lora_waiting);
        return GW_EPROTO;
    }

    st->running = a.seen[F_RUN] ? a.v[F_RUN] : -1;
    st->waiting = a.seen[F_WAIT] ? a.v[F_WAIT] : -1;
    st->kv_usage = a.seen[F_KV] ? a.v[F_KV] : a.seen[F_GPU] ? a.v[F_GPU] : -1;
    st->gpu_usage = a.seen[F_GPU] ? a.v[F_GPU] : a.seen[F_KV] ? a.v[F_KV] : -1;
    /* Under one token is no real capacity: it would blow the estimate up. */
    st->kv_capacity = a.seen[F_KV_CAP] && a.v[F_KV_CAP] >= 1 ? a.v[F_KV_CAP] : -1;

    /* Token throughput from the counters, over at least the rate window. */
    if (a.seen[F_PROMPT] && a.seen[F_GEN]) {
        double tok = a.v[F_PROMPT] + a.v[F_GEN];
        if (!st->have_tok_base || tok < st->tok_base) {
            st->have_tok_base = true;
            st->tok_base = tok;
            st->tok_base_ms = now_ms;
        } else if (now_ms >= st->tok_base_ms + CTL_SCRAPE_RATE_WINDOW_MS) {
            st->tokens_per_s = (tok - st->tok_base) * 1000.0 / (double)(now_ms - st->tok_base_ms);
            st->tok_base = tok;
            st->tok_base_ms = now_ms;
        }
    } else {
        st->have_tok_base = false;
        st->tokens_per_s = -1;
    }

    hist_update(&st->ttft, TPOT_TPOT /* one source only */,
                a.seen[F_TTFT_SUM] && a.seen[F_TTFT_CNT], a.v[F_TTFT_SUM], a.v[F_TTFT_CNT]);
    if (a.seen[F_TPOT_SUM] && a.seen[F_TPOT_CNT])
        hist_update(&st->tpot, TPOT_TPOT, true, a.v[F_TPOT_SUM], a.v[F_TPOT_CNT]);
    else if (a.seen[F_ITL_SUM] && a.seen[F_ITL_CNT])
        hist_update(&st->tpot, TPOT_ITL, true, a.v[F_ITL_SUM], a.v[F_ITL_CNT]);
    else
        hist_update(&st->tpot, TPOT_NONE, false, 0, 0);

    if (a.lora_seen) {
        split_names(a.lora_running, &lora, &n_lora);
        split_names(a.lora_waiting, &lora, &n_lora);
        sort_unique(lora, &n_lora);
    }
    if (!same_names(lora, n_lora, st->lora, st->n_lora)) {
        ctl_scrape_names_free(st->lora, st->n_lora);
        st->lora = lora;
        st->n_lora = n_lora;
        st->lora_changed = true;
    } else {
        ctl_scrape_names_free(lora, n_lora);
    }
    free(a.lora_running);
    free(a.lora_waiting);

    st->ever_ok = true;
    st->last_ok_ms = now_ms;
    return GW_OK;
}

void
ctl_scrape_state_signals(const ctl_scrape_state *st, uint64_t now_ms, uint64_t stale_after_ms,
                         ctl_signals *out)
{
    uint64_t age;

    *out = CTL_SIGNALS_UNKNOWN;
    if (!st->ever_ok)
        return;
    age = now_ms > st->last_ok_ms ? now_ms - st->last_ok_ms : 0;
    out->age_ms = (double)age;
    if (age > stale_after_ms)
        return;
    out->running = st->running;
    out->waiting = st->waiting;
    out->kv_usage = st->kv_usage;
    out->gpu_usage = st->gpu_usage;
    out->kv_capacity = st->kv_capacity;
    out->tokens_per_s = st->tokens_per_s;
    out->ttft_ms = st->ttft.mean_ms;
    out->tpot_ms = st->tpot.mean_ms;
}

gw_err
ctl_scrape_parse_models(const char *body, size_t len, char ***names, size_t *n)
{
    /* JSON_ALLOW_NUL: one id with "\u0000" must not void the whole answer;
     * such ids are skipped below. */
    json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, NULL);
    json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;
    char **out = NULL;
    size_t k = 0;
    size_t i;
    json_t *item;

    if (!json_is_array(data)) {
        json_decref(root);
        return GW_EPROTO;
    }
    json_array_foreach(data, i, item)
    {
        json_t *id = json_object_get(item, "id");
        json_t *parent = json_object_get(item, "parent");
        size_t idlen;

        if (k >= PM_MAX_ADAPTERS)
            break;
        if (!json_is_string(parent) || !json_is_string(id))
            continue;
        idlen = json_string_length(id);
        if (idlen == 0 || idlen >= PM_MAX_STR || strlen(json_string_value(id)) != idlen)
            continue;
        out = gw_xrealloc(out, (k + 1) * sizeof(*out));
        out[k++] = gw_xstrndup(json_string_value(id), idlen);
    }
    json_decref(root);
    sort_unique(out, &k);
    *names = out;
    *n = k;
    return GW_OK;
}

/* ======================================================================
 * I/O layer
 * ====================================================================== */

typedef struct slot slot;

/* One engine address and what we know about it. */
typedef struct target {
    char *ip; /* owned */
    uint16_t port;
    uint16_t metric_port; /* resolved: never 0 */
    char *pod;            /* owned: metric label and log field */
    char *model;          /* owned: left out of the adapter set */
    char *engine;         /* owned, may be NULL */
    char *metrics_url;    /* owned */
    char *models_url;     /* owned */
    ctl_scrape_state st;
    bool seen;                      /* sync mark */
    slot *metrics_job, *models_job; /* in flight, or NULL */
    bool metrics_due, models_due;
    uint64_t next_models_ms;
    bool failing, models_failing; /* last outcome was bad (for transition logs) */
    char **model_adapters;        /* last good /v1/models answer, sorted */
    size_t n_model_adapters;
    bool overlay_set; /* the store holds a non-empty overlay for this address */
} target;

/* One transfer in flight (or a free slot when t == NULL). */
struct slot {
    ctl_scrape *s;
    CURL *easy;
    gw_buf body;
    target *t;
    bool models; /* /v1/models, else /metrics */
    bool too_big;
    uint64_t start_us;
};

struct ctl_scrape {
    gw_loop *loop;
    ctl_compile *compile; /* borrowed */
    ctl_store *store;     /* borrowed */
    ctl_metrics *metrics; /* borrowed */
    ctl_scrape_opts o;    /* engine_api_key is NULL here: the key lives in models_hdrs */
    gw_curlm *curlm;
    gw_timer *tick;
    uint64_t tick_ms;
    uint64_t synced_gen;
    bool synced;
    target **targets; /* sorted by (ip, port) */
    size_t n_targets, cap_targets;
    size_t cursor; /* round-robin position in targets */
    slot *slots;
    size_t n_slots;
    size_t *free_slots; /* stack of indexes into slots */
    size_t n_free;
    struct curl_slist *metrics_hdrs, *models_hdrs;
};

/* Lower bound of (ip, port) in s->targets. */
static size_t
target_pos(const ctl_scrape *s, const char *ip, uint16_t port)
{
    size_t lo = 0, hi = s->n_targets;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ctl_addr_cmp(s->targets[mid]->ip, s->targets[mid]->port, ip, port) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The target of (ip, port), or NULL. */
static target *
target_find(const ctl_scrape *s, const char *ip, uint16_t port)
{
    size_t at = target_pos(s, ip, port);

    if (at < s->n_targets && ctl_addr_cmp(s->targets[at]->ip, s->targets[at]->port, ip, port) == 0)
        return s->targets[at];
    return NULL;
}

/* "http://host:port/path", bracketing IPv6 literals. */
static char *
make_url(const char *ip, uint16_t port, const char *path)
{
    bool v6 = strchr(ip, ':') != NULL && ip[0] != '[';

    return ctl_strf("http://%s%s%s:%u%s", v6 ? "[" : "", ip, v6 ? "]" : "", (unsigned)port, path);
}

/* Returns <sl> to the free stack and detaches it from its target. The
 * transfer must already be out of the multi (finished or removed). */
static void
slot_release(ctl_scrape *s, slot *sl)
{
    if (sl->t != NULL) {
        if (sl->models)
            sl->t->models_job = NULL;
        else
            sl->t->metrics_job = NULL;
    }
    sl->t = NULL;
    gw_buf_reset(&sl->body);
    s->free_slots[s->n_free++] = (size_t)(sl - s->slots);
}

/* Cancels <t>'s transfers (no callback runs for them). */
static void
target_cancel(ctl_scrape *s, target *t)
{
    if (t->metrics_job != NULL) {
        gw_curlm_remove(s->curlm, t->metrics_job->easy);
        slot_release(s, t->metrics_job);
    }
    if (t->models_job != NULL) {
        gw_curlm_remove(s->curlm, t->models_job->easy);
        slot_release(s, t->models_job);
    }
}

/* Frees <t> and what it owns; its transfers must be cancelled first. */
static void
target_free(target *t)
{
    if (t == NULL)
        return;
    ctl_scrape_state_fini(&t->st);
    ctl_scrape_names_free(t->model_adapters, t->n_model_adapters);
    free(t->ip);
    free(t->pod);
    free(t->model);
    free(t->engine);
    free(t->metrics_url);
    free(t->models_url);
    free(t);
}

/* (Re)configures <t> from <ep>: a changed engine or metric port starts the
 * engine state over. */
static void
target_configure(ctl_scrape *s, target *t, const pm_endpoint *ep)
{
    uint16_t mport = ep->metric_port != 0 ? ep->metric_port : ep->port;
    bool engine_same =
        (t->engine == NULL && ep->engine == NULL) ||
        (t->engine != NULL && ep->engine != NULL && strcmp(t->engine, ep->engine) == 0);

    if (t->metrics_url == NULL || t->metric_port != mport || !engine_same) {
        if (t->metrics_job != NULL) {
            gw_curlm_remove(s->curlm, t->metrics_job->easy);
            slot_release(s, t->metrics_job);
        }
        free(t->metrics_url);
        free(t->engine);
        ctl_scrape_state_fini(&t->st);
        ctl_scrape_state_init(&t->st, ep->engine);
        t->metric_port = mport;
        t->engine = ctl_dup_opt(ep->engine);
        t->metrics_url = make_url(t->ip, mport, "/metrics");
    }
    if (t->pod == NULL || strcmp(t->pod, ep->pod) != 0) {
        if (t->pod != NULL)
            ctl_metrics_endpoint_gone(s->metrics, t->pod);
        free(t->pod);
        t->pod = gw_xstrdup(ep->pod);
    }
    if (t->model == NULL || strcmp(t->model, ep->model) != 0) {
        free(t->model);
        t->model = gw_xstrdup(ep->model);
    }
}

/* Pushes the union of <t>'s discovered adapters to the store's overlay. */
static void
push_adapters(ctl_scrape *s, target *t)
{
    size_t n = t->n_model_adapters + t->st.n_lora, k = 0;
    const char **names = gw_xcalloc(n ? n : 1, sizeof(*names));
    char list[512];
    size_t o = 0;

    for (size_t i = 0; i < t->n_model_adapters; i++) {
        if (strcmp(t->model_adapters[i], t->model) != 0)
            names[k++] = t->model_adapters[i];
    }
    for (size_t i = 0; i < t->st.n_lora; i++) {
        if (strcmp(t->st.lora[i], t->model) != 0)
            names[k++] = t->st.lora[i];
    }
    if (ctl_store_set_adapters(s->store, t->ip, t->port, names, k)) {
        size_t m = 0;
        const char *const *now = ctl_store_adapters(s->store, t->ip, t->port, &m);
        char qp[256], ql[600];

        list[0] = '\0';
        for (size_t i = 0; i < m && o < sizeof(list); i++)
            o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? "," : "", now[i]);
        gw_log(GW_LOG_NOTICE, "CTL-ADAPTERS", "endpoint=%s adapters=%s n=%zu",
               gw_log_q(qp, sizeof(qp), t->pod), gw_log_q(ql, sizeof(ql), list), m);
    }
    t->overlay_set = k > 0;
    free(names);
}

/* Forgets <t>: cancels its transfers, drops its metric child and its
 * discovered adapters (the endpoint is gone or no longer ready). */
static void
target_remove(ctl_scrape *s, target *t)
{
    target_cancel(s, t);
    ctl_metrics_endpoint_gone(s->metrics, t->pod);
    if (t->overlay_set)
        (void)ctl_store_set_adapters(s->store, t->ip, t->port, NULL, 0);
    target_free(t);
}

/* Makes the targets follow the current snapshot's ready endpoints. */
static void
sync_targets(ctl_scrape *s)
{
    const pm_snapshot *snap = ctl_compile_current(s->compile);
    size_t kept = 0;

    for (size_t i = 0; i < s->n_targets; i++)
        s->targets[i]->seen = false;
    for (uint32_t i = 0; snap != NULL && i < snap->n_endpoints; i++) {
        const pm_endpoint *ep = &snap->endpoints[i];
        size_t at;
        target *t;

        if (!ep->ready)
            continue;
        at = target_pos(s, ep->ip, ep->port);
        if (at < s->n_targets &&
            ctl_addr_cmp(s->targets[at]->ip, s->targets[at]->port, ep->ip, ep->port) == 0) {
            t = s->targets[at];
            if (!t->seen)
                target_configure(s, t, ep); /* the first endpoint of an address rules */
            t->seen = true;
            continue;
        }
        if (s->n_targets == s->cap_targets) {
            s->cap_targets = s->cap_targets == 0 ? 16 : s->cap_targets * 2;
            s->targets = gw_xrealloc(s->targets, s->cap_targets * sizeof(*s->targets));
        }
        t = gw_xcalloc(1, sizeof(*t));
        t->ip = gw_xstrdup(ep->ip);
        t->port = ep->port;
        t->models_url = make_url(ep->ip, ep->port, "/v1/models");
        target_configure(s, t, ep);
        t->seen = true;
        memmove(&s->targets[at + 1], &s->targets[at], (s->n_targets - at) * sizeof(*s->targets));
        s->targets[at] = t;
        s->n_targets++;
    }
    for (size_t i = 0; i < s->n_targets; i++) {
        if (s->targets[i]->seen)
            s->targets[kept++] = s->targets[i];
        else
            target_remove(s, s->targets[i]);
    }
    s->n_targets = kept;
    if (s->cursor >= s->n_targets)
        s->cursor = 0;
    s->synced_gen = ctl_compile_gen(s->compile);
    s->synced = true;
}

/* curl write callback: appends to the slot's body up to the cap. */
static size_t
on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    slot *sl = arg;
    size_t n = size * nmemb;

    if (gw_buf_append(&sl->body, ptr, n) != GW_OK) {
        sl->too_big = true;
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Starts a /metrics (or, with <models>, /v1/models) transfer for <t> in a
 * free slot (the caller checked there is one). GW_EIO when curl refuses the
 * handle; the slot is then free again and <t> stays due. */
static gw_err
launch(ctl_scrape *s, target *t, bool models)
{
    slot *sl = &s->slots[s->free_slots[--s->n_free]];
    CURLcode cc;

    sl->t = t;
    sl->models = models;
    sl->too_big = false;
    sl->start_us = gw_now_us();
    gw_buf_reset(&sl->body);
    cc = curl_easy_setopt(sl->easy, CURLOPT_URL, models ? t->models_url : t->metrics_url);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER,
                              models ? s->models_hdrs : s->metrics_hdrs);
    if (cc != CURLE_OK || gw_curlm_add(s->curlm, sl->easy) != GW_OK) {
        sl->t = NULL;
        s->n_free++;
        return GW_EIO;
    }
    if (models) {
        t->models_job = sl;
        t->models_due = false;
    } else {
        t->metrics_job = sl;
        t->metrics_due = false;
    }
    return GW_OK;
}

/* Starts due transfers while slots are free, round-robin over the targets. */
static void
launch_more(ctl_scrape *s)
{
    size_t scanned = 0;

    /* A target with a due job is looked at again after each launch (it may
     * have a second one); the cursor only moves past targets with nothing
     * left to start, so the next round begins where this one ran out. */
    while (s->n_free > 0 && scanned < s->n_targets) {
        target *t = s->targets[s->cursor];
        int which = -1;

        if (t->metrics_due && t->metrics_job == NULL)
            which = 0;
        else if (t->models_due && t->models_job == NULL)
            which = 1;
        if (which < 0) {
            s->cursor = (s->cursor + 1) % s->n_targets;
            scanned++;
            continue;
        }
        if (launch(s, t, which == 1) != GW_OK) {
            gw_log_ratelimited(GW_LOG_ERR, 1, "CTL-SCRAPE-START-FAIL",
                               "msg=\"cannot start a transfer\"");
            return; /* the target stays due: retried on the next tick */
        }
    }
}

/* Maps a finished transfer to its outcome; *status gets the HTTP status. */
static ctl_fetch_result
classify(slot *sl, CURLcode rc, long *status)
{
    *status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, status);
        return *status == 200 ? CTL_FETCH_OK : CTL_FETCH_HTTP_ERROR;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return CTL_FETCH_TIMEOUT;
    if (rc == CURLE_WRITE_ERROR && sl->too_big)
        return CTL_FETCH_PARSE;
    return CTL_FETCH_CONNECT;
}

/* The rate-limited warning for a target that starts failing. */
static void
log_failure(const target *t, bool models, ctl_fetch_result r, CURLcode rc, long status,
            const slot *sl)
{
    char qp[256], qu[512], qe[256];
    const char *err = r == CTL_FETCH_HTTP_ERROR ? "http status"
                      : r == CTL_FETCH_PARSE
                          ? (sl->too_big ? "body over --scrape-max-bytes" : "not a usable answer")
                          : curl_easy_strerror(rc);

    gw_log_ratelimited(GW_LOG_WARN, 5, models ? "CTL-ADAPTERS-FAIL" : "CTL-SCRAPE-FAIL",
                       "endpoint=%s url=%s result=%s status=%ld err=%s",
                       gw_log_q(qp, sizeof(qp), t->pod),
                       gw_log_q(qu, sizeof(qu), models ? t->models_url : t->metrics_url),
                       ctl_fetch_result_name(r), status, gw_log_q(qe, sizeof(qe), err));
}

/* A /metrics transfer ended: apply the page, count the outcome, log state
 * changes, and push the adapter set if the LoRA info changed. */
static void
finish_metrics(ctl_scrape *s, slot *sl, CURLcode rc)
{
    target *t = sl->t;
    long status;
    ctl_fetch_result r = classify(sl, rc, &status);
    size_t malformed = 0;
    char q[256];

    if (r == CTL_FETCH_OK &&
        ctl_scrape_apply_page(&t->st, sl->body.data != NULL ? sl->body.data : "", sl->body.len,
                              gw_now_ms(), &malformed) != GW_OK)
        r = CTL_FETCH_PARSE;
    ctl_metrics_scrape(s->metrics, r, (double)(gw_now_us() - sl->start_us) / 1e6);
    if (r != CTL_FETCH_OK) {
        if (!t->failing)
            log_failure(t, false, r, rc, status, sl);
        t->failing = true;
        return;
    }
    if (t->failing)
        gw_log(GW_LOG_NOTICE, "CTL-SCRAPE-OK", "endpoint=%s msg=\"scrapes work again\"",
               gw_log_q(q, sizeof(q), t->pod));
    t->failing = false;
    if (malformed > 0)
        gw_log_ratelimited(GW_LOG_INFO, 1, "CTL-SCRAPE-MALFORMED", "endpoint=%s lines=%zu",
                           gw_log_q(q, sizeof(q), t->pod), malformed);
    if (t->st.lora_changed) {
        t->st.lora_changed = false;
        push_adapters(s, t);
    }
}

/* A /v1/models transfer ended: count it and, when the adapter list
 * changed, push the new union to the store. */
static void
finish_models(ctl_scrape *s, slot *sl, CURLcode rc)
{
    target *t = sl->t;
    long status;
    ctl_fetch_result r = classify(sl, rc, &status);
    char **names = NULL;
    size_t n = 0;

    if (r == CTL_FETCH_OK && ctl_scrape_parse_models(sl->body.data != NULL ? sl->body.data : "",
                                                     sl->body.len, &names, &n) != GW_OK)
        r = CTL_FETCH_PARSE;
    ctl_metrics_adapter_refresh(s->metrics, r);
    if (r != CTL_FETCH_OK) {
        /* The previous set stays: a flaky engine must not make adapters
         * blink in and out of the snapshot. */
        if (!t->models_failing)
            log_failure(t, true, r, rc, status, sl);
        t->models_failing = true;
        return;
    }
    t->models_failing = false;
    if (same_names(names, n, t->model_adapters, t->n_model_adapters)) {
        ctl_scrape_names_free(names, n);
        return;
    }
    ctl_scrape_names_free(t->model_adapters, t->n_model_adapters);
    t->model_adapters = names;
    t->n_model_adapters = n;
    push_adapters(s, t);
}

/* gw_curlm completion callback: dispatches by transfer kind, frees the
 * slot and fills it again at once with the next due transfer. */
static void
on_done(CURL *easy, CURLcode rc, void *arg)
{
    ctl_scrape *s = arg;
    char *priv = NULL;
    slot *sl;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    sl = (slot *)(void *)priv;
    if (sl == NULL || sl->t == NULL)
        return; /* cannot happen: cancelled transfers get no callback */
    if (sl->models)
        finish_models(s, sl, rc);
    else
        finish_metrics(s, sl, rc);
    slot_release(s, sl);
    launch_more(s);
}

/* Age gauges and the stale count, from the state at <now>. */
static void
update_gauges(ctl_scrape *s, uint64_t now)
{
    unsigned stale = 0;

    if (s->o.interval_ms == 0)
        return;
    for (size_t i = 0; i < s->n_targets; i++) {
        const target *t = s->targets[i];
        uint64_t age = t->st.ever_ok && now > t->st.last_ok_ms ? now - t->st.last_ok_ms : 0;

        if (!t->st.ever_ok || age > s->o.stale_after_ms)
            stale++;
        if (t->st.ever_ok)
            ctl_metrics_endpoint_age(s->metrics, t->pod, (double)age / 1000.0);
    }
    ctl_metrics_stale_endpoints(s->metrics, stale);
}

/* Every tick: follow the snapshot, mark every idle target due (and due for
 * /v1/models when its refresh time came), start transfers, refresh the age
 * gauges, re-arm. */
static void
on_tick(gw_loop *loop, void *arg)
{
    ctl_scrape *s = arg;
    uint64_t now = gw_now_ms();
    (void)loop;

    if (!s->synced || ctl_compile_gen(s->compile) != s->synced_gen)
        sync_targets(s);
    for (size_t i = 0; i < s->n_targets; i++) {
        target *t = s->targets[i];
        if (s->o.interval_ms > 0 && t->metrics_job == NULL)
            t->metrics_due = true;
        if (s->o.adapter_refresh_ms > 0 && t->models_job == NULL && now >= t->next_models_ms) {
            t->models_due = true;
            t->next_models_ms = now + s->o.adapter_refresh_ms;
        }
    }
    launch_more(s);
    update_gauges(s, now);
    gw_timer_start(s->tick, s->tick_ms);
}

void
ctl_scrape_signals(void *arg, const pm_endpoint *ep, uint64_t now_ms, ctl_signals *out)
{
    const ctl_scrape *s = arg;
    const target *t = s != NULL ? target_find(s, ep->ip, ep->port) : NULL;

    if (t == NULL || s->o.interval_ms == 0) {
        *out = CTL_SIGNALS_UNKNOWN;
        return;
    }
    ctl_scrape_state_signals(&t->st, now_ms, s->o.stale_after_ms, out);
}

gw_err
ctl_scrape_start(gw_loop *loop, const ctl_scrape_opts *o, ctl_compile *compile, ctl_store *store,
                 ctl_metrics *metrics, ctl_scrape **out)
{
    ctl_scrape *s = gw_xcalloc(1, sizeof(*s));
    struct curl_slist *h;
    gw_err rc;

    s->loop = loop;
    s->compile = compile;
    s->store = store;
    s->metrics = metrics;
    s->o = *o;
    s->o.engine_api_key = NULL;
    if (s->o.concurrency == 0)
        s->o.concurrency = 1;
    s->tick_ms = o->interval_ms > 0 ? o->interval_ms : o->adapter_refresh_ms;

    rc = gw_curlm_new(loop, on_done, s, 0, CTL_SCRAPE_MAX_IDLE, &s->curlm);
    if (rc != GW_OK)
        goto fail;
    /* Ask for the classic text format: prometheus_client would answer
     * OpenMetrics to an Accept that allows it. */
    h = curl_slist_append(NULL, "Accept: text/plain; version=0.0.4");
    s->metrics_hdrs = h;
    h = curl_slist_append(NULL, "Accept: application/json");
    if (h != NULL && o->engine_api_key != NULL && o->engine_api_key[0] != '\0') {
        char *auth = ctl_strf("Authorization: Bearer %s", o->engine_api_key);
        struct curl_slist *h2 = curl_slist_append(h, auth);
        free(auth);
        h = h2;
    }
    s->models_hdrs = h;
    if (s->metrics_hdrs == NULL || s->models_hdrs == NULL) {
        rc = GW_ENOMEM;
        goto fail;
    }
    s->n_slots = o->concurrency > 0 ? o->concurrency : 1;
    s->slots = gw_xcalloc(s->n_slots, sizeof(*s->slots));
    s->free_slots = gw_xcalloc(s->n_slots, sizeof(*s->free_slots));
    for (size_t i = 0; i < s->n_slots; i++) {
        slot *sl = &s->slots[i];
        CURL *e = curl_easy_init();

        sl->s = s;
        gw_buf_init(&sl->body, o->max_body);
        if (e == NULL) {
            rc = GW_ENOMEM;
            goto fail;
        }
        sl->easy = e;
        curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, sl);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
        /* Engines compress /metrics when asked; the cap applies to the
         * decoded bytes (the write callback sees those). */
        curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(e, CURLOPT_USERAGENT, "llmgw-controller/" GW_VERSION);
        s->free_slots[s->n_free++] = i;
    }
    if (s->tick_ms > 0) {
        s->tick = gw_timer_new(loop, on_tick, s);
        gw_timer_start(s->tick, 0);
    }
    gw_log(GW_LOG_NOTICE, "CTL-SCRAPE-START",
           "interval_ms=%llu timeout_ms=%llu concurrency=%u stale_after_ms=%llu "
           "adapter_refresh_ms=%llu max_body=%zu",
           (unsigned long long)o->interval_ms, (unsigned long long)o->timeout_ms, o->concurrency,
           (unsigned long long)o->stale_after_ms, (unsigned long long)o->adapter_refresh_ms,
           o->max_body);
    *out = s;
    return GW_OK;
fail:
    gw_log(GW_LOG_ERR, "CTL-SCRAPE-INIT", "err=%s", gw_strerror(rc));
    ctl_scrape_free(s);
    return rc;
}

void
ctl_scrape_free(ctl_scrape *s)
{
    if (s == NULL)
        return;
    gw_timer_free(s->tick);
    for (size_t i = 0; i < s->n_targets; i++) {
        target_cancel(s, s->targets[i]);
        target_free(s->targets[i]);
    }
    free(s->targets);
    for (size_t i = 0; i < s->n_slots; i++) {
        if (s->slots[i].easy != NULL)
            curl_easy_cleanup(s->slots[i].easy);
        gw_buf_fini(&s->slots[i].body);
    }
    gw_curlm_free(s->curlm);
    curl_slist_free_all(s->metrics_hdrs);
    curl_slist_free_all(s->models_hdrs);
    free(s->slots);
    free(s->free_slots);
    free(s);
}
