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
 * Usage: bench_routing_decision [ITERS]   (default 200000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

#include "dp_route.h"

#define WARMUP 20000

typedef struct bench_case {
    const char *label;    /* printed */
    const char *strategy; /* routing-strategy header */
    const char *user;
    const char *session_key;
    const char *filter;
} bench_case;

static const bench_case cases[] = {
    {"random", "random", NULL, NULL, NULL},
    {"least-request", "least-request", NULL, NULL, NULL},
    {"power-of-two", "power-of-two", NULL, NULL, NULL},
    {"throughput", "throughput", NULL, NULL, NULL},
    {"least-latency", "least-latency", NULL, NULL, NULL},
    {"least-kv-cache", "least-kv-cache", NULL, NULL, NULL},
    {"least-gpu-cache", "least-gpu-cache", NULL, NULL, NULL},
    {"least-busy-time", "least-busy-time", NULL, NULL, NULL},
    {"vtc-basic (user)", "vtc-basic", "user-17", NULL, NULL},
    {"session-affinity (key)", "session-affinity", NULL, "conversation-0123456789", NULL},
    {"least-kv-cache:2,least-latency:1,least-request:1",
     "least-kv-cache:2,least-latency:1,least-request:1", NULL, NULL, NULL},
    {"least-request + external-filter", "least-request", NULL, NULL, "zone in (a,b),!canary"},
};

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
    for (unsigned z = 0; z < 2; z++) {
        unsigned n = sizes[z];
        dp_ctx ctx = {.rng = 0x243F6A8885A308D3ull, .cfg.routing_algorithm = ""};
        dp_load *load = dp_load_new();
        pm_snapshot *pm = build_pm(n);
        dp_snap *snap = dp_snap_new(pm, dp_load_apply_snapshot(load, pm));
        uint64_t rng = 42;

        set_load(snap, n, &rng);
        for (size_t c = 0; c < n_cases; c++) {
            dp_route_in in = {.model = "llama",
                              .strategy = cases[c].strategy,
                              .filter = cases[c].filter,
                              .user = cases[c].user,
                              .session_key = cases[c].session_key,
                              .max_tokens = 256,
                              .prompt_bytes = 2000};
            for (long i = -WARMUP; i < iters; i++) {
                dp_route r;
                dp_error e;
                int64_t idx;
                uint64_t t0 = now_ns();

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
            qsort(t, (size_t)iters, sizeof(*t), cmp_u64);
            p50[z][c] = t[iters / 2] / 1000.0;
            p99[z][c] = t[iters * 99 / 100] / 1000.0;
        }
        dp_snap_unref(snap);
        dp_load_free(load);
        dp_route_fini(&ctx);
    }
    printf("Routing decision latency (dp_route_resolve + dp_route_pick), %ld decisions per "
           "cell, microseconds\n\n",
           iters);
    printf("| strategy | p50 µs (10 eps) | p99 µs (10 eps) | p50 µs (200 eps) | p99 µs (200 eps) "
           "| p50 vs random (200) |\n|---|---|---|---|---|---|\n");
    for (size_t c = 0; c < n_cases; c++)
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.1f |\n", cases[c].label, p50[0][c], p99[0][c],
               p50[1][c], p99[1][c], p50[1][c] / p50[1][0]);
    free(t);
    return 0;
}
