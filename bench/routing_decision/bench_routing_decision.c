/* bench_routing_decision: how long one routing decision takes, per
 * strategy, at 10 and 200 endpoints. A decision is what the worker's
 * llmgw_worker_routing_latency_seconds histogram observes for a request's
 * first pick: dp_route_resolve (model, profile, plan, filter, vtc) plus
 * dp_route_pick (candidates, strategy, reservation); the reservation is
 * released after each decision so the load stays as built.
 *
 * The snapshot is built in memory (no controller, no network) with varied
 * load: every engine signal set on most endpoints, a few unknown, in-flight
 * counts 0..31. Each strategy runs WARMUP untimed then ITERS timed
 * decisions, each timed alone with CLOCK_MONOTONIC (the clock read, about
 * 20 ns, is included); prints p50/p99 in microseconds and the ratio to
 * `random` measured in the same run. Not a test: it gates nothing.
 *
 * prefix-cache runs on realistic prompts: 1000 conversations of 4 turns
 * each (2-8 KB of routing text, turn k+1 extending turn k), opening with
 * one of 20 shared system prompts of 1-2 KB; the worker's defaults (128-byte
 * blocks, 200000-block index, 64 KiB cap); the index warmed by one pass
 * over every prompt. A decision then includes hashing the prompt (in
 * resolve), the match and the insert (in pick). A second table times the
 * three alone on the same prompts.
 *
 * Usage: bench_routing_decision [ITERS]   (default 200000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_prefix.h"
#include "dp_route.h"

#define WARMUP  20000
#define CONVS   1000
#define TURNS   4
#define SYSTEMS 20

typedef struct bench_case {
    const char *label;    /* printed */
    const char *strategy; /* routing-strategy header */
    const char *user;
    const char *session_key;
    const char *filter;
    bool prompts; /* routing text from the prompt pool */
} bench_case;

static const bench_case cases[] = {
    {"random", "random", NULL, NULL, NULL, false},
    {"least-request", "least-request", NULL, NULL, NULL, false},
    {"power-of-two", "power-of-two", NULL, NULL, NULL, false},
    {"throughput", "throughput", NULL, NULL, NULL, false},
    {"least-latency", "least-latency", NULL, NULL, NULL, false},
    {"least-kv-cache", "least-kv-cache", NULL, NULL, NULL, false},
    {"least-gpu-cache", "least-gpu-cache", NULL, NULL, NULL, false},
    {"least-busy-time", "least-busy-time", NULL, NULL, NULL, false},
    {"vtc-basic (user)", "vtc-basic", "user-17", NULL, NULL, false},
    {"session-affinity (key)", "session-affinity", NULL, "conversation-0123456789", NULL, false},
    {"least-kv-cache:2,least-latency:1,least-request:1",
     "least-kv-cache:2,least-latency:1,least-request:1", NULL, NULL, NULL, false},
    {"least-request + external-filter", "least-request", NULL, NULL, "zone in (a,b),!canary",
     false},
    {"prefix-cache (2-8 KB prompts)", "prefix-cache", NULL, NULL, NULL, true},
};

/* The prompt pool: CONVS conversations of TURNS turns. */
static char *pool[CONVS * TURNS];
static size_t pool_len[CONVS * TURNS];

static const char *const words[] = {"the",     "cache",  "engine", "request", "token",  "model",
                                    "gateway", "prefix", "block",  "latency", "answer", "please",
                                    "explain", "why",    "how",    "data",    "system", "user",
                                    "routing", "kernel", "memory", "tensor",  "batch",  "queue"};

static void
add_words(gw_buf *b, uint64_t *rng, size_t bytes)
{
    size_t end = b->len + bytes;

    while (b->len < end) {
        const char *w = words[dp_rand(rng, GW_ARRAY_LEN(words))];
        if (gw_buf_append_str(b, w) != GW_OK || gw_buf_append(b, " ", 1) != GW_OK)
            return;
    }
}

static void
build_pool(void)
{
    uint64_t rng = 7;
    gw_buf sys[SYSTEMS];

    for (int s = 0; s < SYSTEMS; s++) {
        gw_buf_init(&sys[s], 4096);
        if (gw_buf_append_str(&sys[s], "system\n") != GW_OK)
            abort();
        add_words(&sys[s], &rng, 1024 + dp_rand(&rng, 1024));
    }
    for (int c = 0; c < CONVS; c++) {
        gw_buf b;
        size_t target = 2048 + dp_rand(&rng, 1024);
        gw_buf_init(&b, 16384);
        if (gw_buf_append(&b, sys[c % SYSTEMS].data, sys[c % SYSTEMS].len) != GW_OK)
            abort();
        for (int t = 0; t < TURNS; t++) {
            if (gw_buf_append_str(&b, t ? "\nassistant\n" : "\nuser\n") != GW_OK)
                abort();
            if (b.len < target)
                add_words(&b, &rng, target - b.len);
            pool[c * TURNS + t] = gw_xstrndup(b.data, b.len);
            pool_len[c * TURNS + t] = b.len;
            target = b.len + 1024 + dp_rand(&rng, 1024); /* the next turn: 2-8 KB overall */
            if (target > 8192)
                target = 8192;
        }
        gw_buf_fini(&b);
    }
    for (int s = 0; s < SYSTEMS; s++)
        gw_buf_fini(&sys[s]);
}

static dp_prefix *
new_prefix(void)
{
    dp_prefix_cfg c = {.block_size = 128, .seed = 0, .capacity = 200000, .max_blocks = 512};
    return dp_prefix_new(&c);
}

static void
prefix_defaults(dp_ctx *ctx)
{
    ctx->cfg.pfx_imbalance_abs = 16;
    ctx->cfg.pfx_stddev_factor = 2;
    ctx->cfg.pfx_min_match = 1;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static pm_snapshot *
build_pm(unsigned n)
{
    pm_snapshot *s = gw_xcalloc(1, sizeof(*s));
    static const char *const zones[] = {"zone=a", "zone=b", "zone=c"};

    s->env.v = PM_SCHEMA_MAJOR;
    s->env.kind = PM_KIND_SNAPSHOT;
    s->env.gen = 1;
    s->n_models = 1;
    s->models = gw_xcalloc(1, sizeof(pm_model));
    s->models[0].name = gw_xstrdup("llama");
    s->n_endpoints = n;
    s->endpoints = gw_xcalloc(n, sizeof(pm_endpoint));
    for (unsigned i = 0; i < n; i++) {
        pm_endpoint *e = &s->endpoints[i];
        e->id = i;
        e->model = gw_xstrdup("llama");
        char buf[64];
        snprintf(buf, sizeof(buf), "llama-%u-7f9c", i);
        e->pod = gw_xstrdup(buf);
        snprintf(buf, sizeof(buf), "10.0.%u.%u", i / 250, i % 250 + 1);
        e->ip = gw_xstrdup(buf);
        e->port = 8000;
        e->engine = gw_xstrdup("vllm");
        e->ready = true;
        e->n_labels = i % 10 == 0 ? 3 : 2;
        e->labels = gw_xcalloc(e->n_labels, sizeof(char *));
        e->labels[0] = gw_xstrdup("model.aibrix.ai/name=llama");
        e->labels[1] = gw_xstrdup(zones[i % 3]);
        if (e->n_labels == 3)
            e->labels[2] = gw_xstrdup("canary=true");
    }
    return s;
}

/* Varied load; about 1 in 16 endpoints has no engine signals yet. */
static void
set_load(dp_snap *snap, unsigned n, uint64_t *rng)
{
    for (unsigned i = 0; i < n; i++) {
        dp_ep *ep = dp_snap_state(snap, i);
        bool known = dp_rand(rng, 16) != 0;
        ep->fleet_inflight = dp_rand(rng, 32);
        ep->fleet_tokens = (uint64_t)ep->fleet_inflight * (200 + dp_rand(rng, 2000));
        ep->running = known ? (double)ep->fleet_inflight : -1;
        ep->waiting = known ? (double)dp_rand(rng, 4) : -1;
        ep->kv_usage = known ? dp_rand(rng, 1000) / 1000.0 : -1;
        ep->gpu_usage = known ? dp_rand(rng, 1000) / 1000.0 : -1;
        ep->latency_ms = known ? 500.0 + dp_rand(rng, 3000) : -1;
        ep->ttft_ms = known ? 20.0 + dp_rand(rng, 300) : -1;
        ep->tpot_ms = known ? 5.0 + dp_rand(rng, 40) : -1;
        ep->tokens_per_s = known ? (double)dp_rand(rng, 5000) : -1;
        ep->metrics_age_ms = known ? (double)dp_rand(rng, 250) : -1;
    }
}

static void
percentiles(uint64_t *t, long n, double *p50, double *p99)
{
    qsort(t, (size_t)n, sizeof(*t), cmp_u64);
    *p50 = t[n / 2] / 1000.0;
    *p99 = t[n * 99 / 100] / 1000.0;
}

/* Hash, match and insert alone, on the pool's prompts, <n> endpoints. */
static void
breakdown(unsigned n, long iters, uint64_t *t)
{
    dp_load *load = dp_load_new();
    pm_snapshot *pm = build_pm(n);
    dp_ep **states = dp_load_apply_snapshot(load, pm);
    dp_snap *snap;
    dp_prefix *p = new_prefix();
    uint64_t h[512], rng = 99, blocks = 0;
    uint32_t *cands = gw_xcalloc(n, sizeof(*cands)), *m = gw_xcalloc(n, sizeof(*m));
    double r[3][2];
    dp_prefix_stats st;

    dp_prefix_apply_snapshot(p, pm, states);
    snap = dp_snap_new(pm, states);
    for (unsigned i = 0; i < n; i++)
        cands[i] = i;
    for (int i = 0; i < CONVS * TURNS; i++) {
        uint32_t k = dp_prefix_hash(0, 0, 128, pool[i], pool_len[i], h, 512);
        dp_prefix_insert(p, dp_snap_state(snap, dp_rand(&rng, n)), h, k);
    }
    for (int what = 0; what < 3; what++) {
        for (long i = 0; i < iters; i++) {
            uint32_t c = dp_rand(&rng, CONVS * TURNS), k;
            uint64_t t0;
            if (what == 0) {
                t0 = now_ns();
                k = dp_prefix_hash(0, 0, 128, pool[c], pool_len[c], h, 512);
                t[i] = now_ns() - t0;
                blocks += k;
                continue;
            }
            k = dp_prefix_hash(0, 0, 128, pool[c], pool_len[c], h, 512);
            t0 = now_ns();
            if (what == 1)
                dp_prefix_match(p, h, k, dp_snap_states(snap), cands, n, m);
            else
                dp_prefix_insert(p, dp_snap_state(snap, c % n), h, k);
            t[i] = now_ns() - t0;
        }
        percentiles(t, iters, &r[what][0], &r[what][1]);
    }
    dp_prefix_stats_get(p, &st);
    printf("| %u | %.1f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %llu | %.1f |\n", n,
           (double)blocks / iters, r[0][0], r[0][1], r[1][0], r[1][1], r[2][0], r[2][1],
           (unsigned long long)st.blocks, (double)st.memory_bytes / st.capacity);
    dp_prefix_free(p);
    dp_snap_unref(snap);
    dp_load_free(load);
    free(cands);
    free(m);
}

int
main(int argc, char **argv)
{
    static const unsigned sizes[] = {10, 200};
    size_t n_cases = sizeof(cases) / sizeof(cases[0]);
    long iters = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    double p50[2][16], p99[2][16];
    uint64_t *t = NULL;

    if (iters < 100 || iters > 100000000) {
        fprintf(stderr, "usage: %s [ITERS >= 100]\n", argv[0]);
        return 2;
    }
    gw_log_level = GW_LOG_WARN; /* fallback lines are info */
    t = gw_xmalloc((size_t)iters * sizeof(*t));
    build_pool();
    for (unsigned z = 0; z < 2; z++) {
        unsigned n = sizes[z];
        dp_ctx ctx = {.rng = 0x243F6A8885A308D3ull, .cfg.routing_algorithm = ""};
        dp_load *load = dp_load_new();
        pm_snapshot *pm = build_pm(n);
        dp_ep **states = dp_load_apply_snapshot(load, pm);
        dp_snap *snap;
        uint64_t rng = 42;

        ctx.prefix = new_prefix();
        prefix_defaults(&ctx);
        dp_prefix_apply_snapshot(ctx.prefix, pm, states);
        snap = dp_snap_new(pm, states);
        set_load(snap, n, &rng);
        for (size_t c = 0; c < n_cases; c++) {
            dp_route_in in = {.model = "llama",
                              .strategy = cases[c].strategy,
                              .filter = cases[c].filter,
                              .user = cases[c].user,
                              .session_key = cases[c].session_key,
                              .max_tokens = 256,
                              .prompt_bytes = 2000};
            long warmup = cases[c].prompts ? CONVS * TURNS : WARMUP;
            for (long i = -warmup; i < iters; i++) {
                dp_route r;
                dp_error e;
                int64_t idx;
                uint64_t t0;

                if (cases[c].prompts) {
                    /* Warm-up: every prompt once, in order; then at random. */
                    uint32_t k = i < 0 ? (uint32_t)(i + warmup) : dp_rand(&rng, CONVS * TURNS);
                    in.text = pool[k];
                    in.text_len = pool_len[k];
                    in.prompt_bytes = pool_len[k];
                }
                t0 = now_ns();

                if (!dp_route_resolve(&ctx, snap, &in, &r, &e)) {
                    fprintf(stderr, "%s: resolve failed: %s\n", cases[c].label, e.message);
                    return 1;
                }
                idx = dp_route_pick(&ctx, snap, &r, NULL, 0, 564, &e);
                if (i >= 0)
                    t[i] = now_ns() - t0;
                if (idx < 0) {
                    fprintf(stderr, "%s: pick failed: %s\n", cases[c].label, e.message);
                    return 1;
                }
                dp_route_release(dp_snap_state(snap, (uint32_t)idx), 564);
            }
            percentiles(t, iters, &p50[z][c], &p99[z][c]);
        }
        dp_snap_unref(snap);
        dp_load_free(load);
        dp_route_fini(&ctx);
        dp_prefix_free(ctx.prefix);
    }
    printf("Routing decision latency (dp_route_resolve + dp_route_pick), %ld decisions per "
           "cell, microseconds\n\n",
           iters);
    printf("| strategy | p50 µs (10 eps) | p99 µs (10 eps) | p50 µs (200 eps) | p99 µs (200 eps) "
           "| p50 vs random (200) |\n|---|---|---|---|---|---|\n");
    for (size_t c = 0; c < n_cases; c++)
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.1f |\n", cases[c].label, p50[0][c], p99[0][c],
               p50[1][c], p99[1][c], p50[1][c] / p50[1][0]);
    printf("\nprefix-cache parts alone (same prompts, index warmed with every prompt on a random "
           "endpoint), p50 / p99 microseconds\n\n");
    printf("| endpoints | blocks per prompt | hash | match | insert | index blocks | index bytes "
           "per block |\n|---|---|---|---|---|---|---|\n");
    breakdown(10, iters, t);
    breakdown(200, iters, t);
    for (int i = 0; i < CONVS * TURNS; i++)
        free(pool[i]);
    free(t);
    return 0;
}
