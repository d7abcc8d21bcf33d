#!/usr/bin/env python3
"""bench/routing: routing quality on the mock engine's KV-cache simulation.

N simulated engines (one llmgw-mock-engine process, one port each, --kv-sim,
--time-scale F) behind one llmgw worker. Every strategy runs in the same run,
each on a fresh worker and freshly emptied engine caches, against the same
seeded workloads:

  b2b        G groups, each a long system prompt shared by its questions
             (peers.md 4.2 "b2b", scaled down): each request draws a group and
             one of its Q questions uniformly;
  multiturn  chat sessions: a pool of C conversations with a short shared app
             prompt; each arrival is the next turn of an idle conversation and
             resends the whole history (user turns + the engine's answers);
             a conversation ends after T turns and a new one takes its place;
  unique     no sharing at all (control): every prompt starts with a unique
             token, same length as b2b.

Load: open-loop Poisson arrivals, ramped through RATES (simulated requests per
second) in steps; engine caches carry over from step to step. A step passes when
the achieved throughput is at least 90% of the offered rate, no request failed,
and TTFT p90 is at most KNEE_K x T_cold, where T_cold is the unloaded TTFT of a
cold mean-length prompt (computed from the mock's step model). The knee is the
last passing step before the first failing one; a strategy's ramp stops at its
first failing step at or above the reference rate (random's knee), so every
strategy is measured at the reference rate.

Figures per workload and strategy, each also as a ratio to random: TTFT
p50/p90/p99 at the reference rate, throughput at the knee, the engine-reported
prefix-cache hit rate (hit tokens / queried tokens, /_mock/stats), and load
spread across engines (max/mean of requests per engine; 1 = even). All
latencies are in simulated milliseconds (wall / F). Output: report.md,
steps.json and gnuplot PNGs in RESULTS_DIR.
"""
import asyncio
import json
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import benchlib as bl  # noqa: E402

E = os.environ
SMOKE = E.get("SMOKE", "0") == "1"
ENGINES = int(E.get("ENGINES", "4"))
TIME_SCALE = float(E.get("TIME_SCALE", "0.25"))
KV_BLOCKS = int(E.get("KV_BLOCKS", "2560"))
WORKLOADS = E.get("WORKLOADS", "b2b multiturn unique").split()
GROUPS = int(E.get("GROUPS", "32"))
QUESTIONS = int(E.get("QUESTIONS", "5"))
SYSTEM_WORDS = int(E.get("SYSTEM_WORDS", "3000"))
QUESTION_WORDS = int(E.get("QUESTION_WORDS", "600"))
OUTPUT_TOKENS = int(E.get("OUTPUT_TOKENS", "32"))
CONVERSATIONS = int(E.get("CONVERSATIONS", "48"))
TURNS = int(E.get("TURNS", "6"))
APP_WORDS = int(E.get("APP_WORDS", "200"))
TURN_WORDS = int(E.get("TURN_WORDS", "300"))
RATES = [float(x) for x in E.get("RATES", "4" if SMOKE else "2 4 8 12 16 24 32 40 48 64 80 96").split()]
STEP_SECONDS = float(E.get("STEP_SECONDS", "1" if SMOKE else "5"))
MIN_STEP_REQUESTS = int(E.get("MIN_STEP_REQUESTS", "10" if SMOKE else "60"))
KNEE_K = float(E.get("KNEE_K", "3"))
SEED = int(E.get("SEED", "7"))
DEFAULT_STRATEGIES = ("random least-request prefix-cache prefix-mm" if SMOKE else
                      "random least-request least-kv-cache prefix-cache prefix+load prefix-mm")
STRATEGIES = E.get("STRATEGIES", DEFAULT_STRATEGIES).split()
BUILD = E.get("BUILD_DIR", os.path.join(bl.ROOT, "build"))
RESULTS = E.get("RESULTS_DIR") or os.path.join(
    bl.ROOT, "bench", "results", time.strftime("routing-%Y%m%d-%H%M%S", time.gmtime()))
TMP = E["BENCH_TMP"]
# Mock step model (its defaults; see e2e/mock/README.md "KV-cache simulator").
DECODE_STEP_MS, PREFILL_US, DECODE_US = 8.0, 63.0, 350.0

# Named variants: label -> (routing-strategy header, extra worker flags, what).
VARIANTS = {
    "random": ("random", [], "uniform"),
    "least-request": ("least-request", [], "fewest gateway in-flight requests"),
    "prefix-cache": ("prefix-cache", [], "AIBrix prefix-cache with its Helm defaults (guard 16, mean+2sd)"),
    "least-kv-cache": ("least-kv-cache", [], "lowest engine KV usage, estimated: scraped + tokens sent since / KV capacity"),
    "prefix+load": ("prefix-cache:2,least-request:1", [],
                    "weighted: prefix match share x2 + least in-flight x1, load-imbalance guard 16"),
    "prefix+load-tight": ("prefix-cache:2,least-request:1", ["--prefix-cache-imbalance-abs-count", "4"],
                          "weighted prefix x2 + least-request x1, load-imbalance guard 4"),
    "prefix+kv": ("least-kv-cache:1,prefix-cache:2", [], "weighted: prefix match share x2 + least KV x1"),
    "prefix-tight": ("prefix-cache", ["--prefix-cache-imbalance-abs-count", "4",
                                      "--prefix-cache-stddev-factor", "1"],
                     "prefix-cache with a tighter load guard (abs 4, mean+1sd)"),
    "prefix-mm": ("prefix-cache", ["--prefix-cache-min-match-blocks", "16"],
                  "prefix-cache, a match needs 16 blocks (2 KB)"),
    "prefix+load-mm": ("prefix-cache:2,least-request:1", ["--prefix-cache-min-match-blocks", "16"],
                       "weighted prefix x2 + least-request x1, a match needs 16 blocks (2 KB)"),
    "prefix-tight-mm": ("prefix-cache", ["--prefix-cache-min-match-blocks", "16",
                                         "--prefix-cache-imbalance-abs-count", "8",
                                         "--prefix-cache-stddev-factor", "1"],
                        "prefix-cache, 16-block matches, guard abs 8, mean+1sd"),
}

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar "
         "papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu amber basil cedar dune "
         "ember fjord grove heath iris jade kelp lotus maple nectar onyx pearl quartz reed sage thyme umber "
         "vale willow yarrow zinnia").split()


def words(rng, n):
    return " ".join(rng.choices(WORDS, k=n))


# ---- workloads ------------------------------------------------------------


class B2B:
    """peers.md 4.2 b2b scaled down: G groups x Q questions, uniform draws."""

    def __init__(self, seed):
        rng = random.Random(seed)
        self.systems = [f"tenant {g} instructions: " + words(rng, SYSTEM_WORDS) for g in range(GROUPS)]
        self.questions = [[words(rng, QUESTION_WORDS) for _ in range(QUESTIONS)] for _ in range(GROUPS)]
        self.rng = random.Random(seed + 1)

    def prompt_tokens(self):
        return SYSTEM_WORDS + 3 + QUESTION_WORDS + 1 + 2

    def next(self):
        g = self.rng.randrange(GROUPS)
        q = self.questions[g][self.rng.randrange(QUESTIONS)]
        return [{"role": "system", "content": self.systems[g]}, {"role": "user", "content": q}], None

    def done(self, handle, answer):
        pass


class MultiTurn:
    """C conversations of T turns; each turn resends the history."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.app = "You are the support assistant of a shop. " + words(random.Random(seed + 5), APP_WORDS)
        self.convs = [self.new_conv(i) for i in range(CONVERSATIONS)]
        self.next_id = CONVERSATIONS

    def new_conv(self, cid):
        return {"id": cid, "msgs": [{"role": "system", "content": self.app}], "turn": 0, "busy": False}

    def prompt_tokens(self):
        # mean over turns 1..T of the prompt length (answers are OUTPUT_TOKENS words)
        per_turn = TURN_WORDS + 1 + OUTPUT_TOKENS + 1
        return APP_WORDS + 9 + 1 + TURN_WORDS + 1 + per_turn * (TURNS - 1) / 2

    def next(self):
        idle = [c for c in self.convs if not c["busy"]]
        if idle:
            c = self.rng.choice(idle)
        else:  # every conversation waits on an answer: a new user shows up
            c = self.new_conv(self.next_id)
            self.next_id += 1
            self.convs.append(c)
        c["busy"] = True
        c["msgs"].append({"role": "user", "content": f"(turn {c['turn']}) " + words(self.rng, TURN_WORDS)})
        return list(c["msgs"]), c

    def done(self, c, answer):
        c["busy"] = False
        c["turn"] += 1
        c["msgs"].append({"role": "assistant", "content": answer or ""})
        if c["turn"] >= TURNS:
            i = self.convs.index(c)
            self.convs[i] = self.new_conv(self.next_id)
            self.next_id += 1


class Unique:
    """No sharing: every prompt starts with a unique token."""

    def __init__(self, seed):
        rng = random.Random(seed)
        self.pool = rng.choices(WORDS, k=(SYSTEM_WORDS + QUESTION_WORDS) * 4)
        self.rng = random.Random(seed + 1)
        self.n = 0

    def prompt_tokens(self):
        return SYSTEM_WORDS + QUESTION_WORDS + 3

    def next(self):
        self.n += 1
        L = SYSTEM_WORDS + QUESTION_WORDS
        off = self.rng.randrange(len(self.pool) - L)
        return [{"role": "user", "content": f"request-{self.n}-{self.rng.getrandbits(32)} "
                 + " ".join(self.pool[off:off + L])}], None

    def done(self, handle, answer):
        pass


WORKLOAD_CLS = {"b2b": B2B, "multiturn": MultiTurn, "unique": Unique}


def t_cold_ms(prompt_tokens):
    """Unloaded TTFT of a cold prompt in the mock's step model (chunks of 8192)."""
    t, left = 0.0, prompt_tokens
    while left > 0:
        chunk = min(left, 8192)
        t += DECODE_STEP_MS + PREFILL_US * chunk / 1000 + DECODE_US / 1000
        left -= chunk
    return t


# ---- client ---------------------------------------------------------------


class Conn:
    def __init__(self, r, w):
        self.r, self.w = r, w


class Client:
    """Open-loop HTTP/1.1 client: a pool of keep-alive connections."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.idle = []

    async def get(self):
        if self.idle:
            return self.idle.pop()
        r, w = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        return Conn(r, w)

    async def request(self, body, headers):
        """Streams one chat completion. Returns (status, ttft_s, end_s,
        target_pod, answer_text) with times relative to the send."""
        c = await self.get()
        data = json.dumps(body, separators=(",", ":")).encode()
        hdr = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        ok = False
        try:
            t0 = time.monotonic()
            c.w.write(hdr + data)
            head = await c.r.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            h = {}
            for ln in lines[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    h[k.strip().lower()] = v.strip()
            ttft = None
            parts = []
            body = bytearray()
            if "chunked" in h.get("transfer-encoding", ""):
                while True:
                    szl = await c.r.readuntil(b"\r\n")
                    n = int(szl.split(b";")[0], 16)
                    if n == 0:
                        await c.r.readuntil(b"\r\n")
                        break
                    chunk = await c.r.readexactly(n + 2)
                    body += chunk[:-2]
                    if ttft is None and b'"content":"' in chunk and b'"content":""' not in chunk:
                        ttft = time.monotonic() - t0
            else:
                n = int(h.get("content-length", "0"))
                body += await c.r.readexactly(n)
            end = time.monotonic() - t0
            if status == 200:
                for ln in bytes(body).split(b"\n"):
                    if ln.startswith(b"data: {"):
                        try:
                            d = json.loads(ln[6:])
                            parts.append(d["choices"][0]["delta"].get("content") or "")
                        except (ValueError, KeyError, IndexError):
                            pass
            ok = h.get("connection", "").lower() != "close"
            return status, ttft, end, h.get("target-pod"), "".join(parts)
        finally:
            if ok:
                self.idle.append(c)
            else:
                c.w.close()

    def close(self):
        for c in self.idle:
            c.w.close()
        self.idle = []


# ---- setup ----------------------------------------------------------------


class Rig:
    def __init__(self):
        self.procs = bl.Procs()
        self.eports = [bl.free_port() for _ in range(ENGINES)]
        self.worker = None
        self.P = {k: bl.free_port() for k in ("pub", "rep", "pull", "ctl")}

    def start(self):
        argv = [os.path.join(BUILD, "e2e/mock/llmgw-mock-engine")]
        for p in self.eports:
            argv += ["--port", str(p)]
        argv += ["--model", "mock-model", "--kv-sim", "--time-scale", str(TIME_SCALE), "--kv-blocks",
                 str(KV_BLOCKS), "--max-model-len", "8192", "--max-output-tokens", str(max(OUTPUT_TOKENS, 16)),
                 "--record-max", "0", "--log-level", "warn"]
        self.procs.start("mock", argv, os.path.join(TMP, "mock.log"))
        cfg = os.path.join(TMP, "gw.yaml")
        with open(cfg, "w") as f:
            f.write("models:\n  - name: mock-model\n    endpoints:\n")
            for i, p in enumerate(self.eports):
                f.write(f"      - 127.0.0.1:{p}\n")
        # Scrape and publish load at 50 ms wall (200 ms simulated at F = 0.25),
        # about what a production controller does in real time.
        iv = f"{max(10, int(200 * TIME_SCALE))}ms"
        self.procs.start("controller", [
            os.path.join(BUILD, "controller/llmgw-controller"), "--config", cfg, "--http-host", "127.0.0.1",
            "--http-port", str(self.P["ctl"]), "--pub-listen", f"tcp://127.0.0.1:{self.P['pub']}",
            "--rep-listen", f"tcp://127.0.0.1:{self.P['rep']}", "--pull-listen",
            f"tcp://127.0.0.1:{self.P['pull']}", "--scrape-interval", iv, "--load-interval", iv,
            "--log-level", "warn"], os.path.join(TMP, "controller.log"))
        for p in self.eports:
            bl.wait_http(f"http://127.0.0.1:{p}/health", procs=self.procs)

    def start_worker(self, flags):
        if self.worker is not None:
            self.procs.stop(self.worker)
        self.gw = bl.free_port()
        iv = f"{max(10, int(200 * TIME_SCALE))}ms"
        self.worker = self.procs.start("worker", [
            os.path.join(BUILD, "dataplane/llmgw-worker"), "--host", "127.0.0.1", "--port", str(self.gw),
            "--controller-pub", f"tcp://127.0.0.1:{self.P['pub']}", "--controller-rep",
            f"tcp://127.0.0.1:{self.P['rep']}", "--controller-pull", f"tcp://127.0.0.1:{self.P['pull']}",
            "--report-interval", iv, "--access-log", "off", "--log-level", "warn"] + flags,
            os.path.join(TMP, "worker.log"))
        bl.wait_http(f"http://127.0.0.1:{self.gw}/readyz", procs=self.procs)
        # ready means a snapshot; wait for the first load vector with engine metrics too
        time.sleep(0.3)

    def reset_engines(self):
        for p in self.eports:
            bl.http_post(f"http://127.0.0.1:{p}/_mock/reset", b"{}")

    def stats(self):
        out = []
        for p in self.eports:
            _, b = bl.http_get(f"http://127.0.0.1:{p}/_mock/stats")
            out.append(json.loads(b))
        return out


# ---- one step -------------------------------------------------------------


async def run_step(rig, wl, header, rate_sim, rng):
    rate_wall = rate_sim / TIME_SCALE
    n = max(MIN_STEP_REQUESTS, int(round(rate_wall * STEP_SECONDS)))
    client = Client("127.0.0.1", rig.gw)
    results = []
    tasks = []

    async def one(msgs, handle, t_sched):
        body = {"model": "mock-model", "stream": True, "max_tokens": OUTPUT_TOKENS, "messages": msgs}
        st, ttft, end, pod, answer = 0, None, None, None, ""
        try:
            st, ttft, end, pod, answer = await client.request(body, {"routing-strategy": header})
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError, asyncio.LimitOverrunError):
            pass
        finally:  # also when cancelled at the drain deadline: the conversation must not stay busy
            wl.done(handle, answer)
        results.append({"status": st, "ttft": ttft, "end": end, "pod": pod,
                        "done_at": time.monotonic(), "sched": t_sched})

    s0 = rig.stats()
    t_start = time.monotonic()
    t_next = t_start
    lag = 0.0
    for _ in range(n):
        now = time.monotonic()
        if t_next > now:
            await asyncio.sleep(t_next - now)
        else:
            lag = max(lag, now - t_next)
        msgs, handle = wl.next()
        tasks.append(asyncio.create_task(one(msgs, handle, t_next)))
        t_next += rng.expovariate(rate_wall)
    t_last_arrival = time.monotonic()
    drain = max(5.0, 2 * STEP_SECONDS)
    done, pending = await asyncio.wait(tasks, timeout=drain)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    client.close()
    t_end = max([r["done_at"] for r in results if r["status"] == 200] or [time.monotonic()])
    s1 = rig.stats()
    okr = [r for r in results if r["status"] == 200 and r["ttft"] is not None]
    failures = n - len(okr)
    ttft = sorted(r["ttft"] * 1000 / TIME_SCALE for r in okr)
    per_engine = [s1[i]["received"] - s0[i]["received"] for i in range(ENGINES)]
    hit = sum(s1[i]["prefix_hit_tokens"] - s0[i]["prefix_hit_tokens"] for i in range(ENGINES))
    qry = sum(s1[i]["prefix_query_tokens"] - s0[i]["prefix_query_tokens"] for i in range(ENGINES))
    mean_e = statistics.fmean(per_engine) if per_engine else 0
    span_sim = (t_end - t_start) / TIME_SCALE
    return {
        "rate": rate_sim, "requests": n, "failures": failures,
        "offered_sim": n / ((t_last_arrival - t_start) / TIME_SCALE) if t_last_arrival > t_start else rate_sim,
        "throughput_sim": len(okr) / span_sim if span_sim > 0 else 0,
        "ttft_p50": bl.pct(ttft, .5), "ttft_p90": bl.pct(ttft, .9), "ttft_p99": bl.pct(ttft, .99),
        "ttft_mean": statistics.fmean(ttft) if ttft else None,
        "hit_rate": hit / qry if qry else 0.0, "per_engine": per_engine,
        "spread": (max(per_engine) / mean_e) if mean_e else None,
        "preemptions": sum(s1[i]["preemptions"] - s0[i]["preemptions"] for i in range(ENGINES)),
        "wall_s": time.monotonic() - t_start, "client_lag_s": lag,
        # Sending fell behind the Poisson schedule by more than a quarter of
        # the step: the client (not the strategy) limited the offered load.
        "client_bound": lag > 0.25 * max(STEP_SECONDS, n / rate_wall),
    }


def passes(step, slo_ms):
    return (step["failures"] == 0 and step["ttft_p90"] is not None and step["ttft_p90"] <= slo_ms
            and step["throughput_sim"] >= 0.9 * step["offered_sim"] and not step["client_bound"])


def run_strategy(rig, wl_name, label, ref_rate):
    header, flags, _ = VARIANTS.get(label, (label, [], "routing-strategy header as given"))
    rig.start_worker(flags)
    rig.reset_engines()
    wl = WORKLOAD_CLS[wl_name](SEED)
    slo = KNEE_K * t_cold_ms(wl.prompt_tokens())
    rng = random.Random(SEED + 99)
    steps = []
    for rate in RATES:
        st = asyncio.run(run_step(rig, wl, header, rate, rng))
        st["pass"] = passes(st, slo)
        steps.append(st)
        bl.log(f"{wl_name:9} {label:14} rate={rate:g} offered={st['offered_sim']:.1f} thr={st['throughput_sim']:.1f} "
               f"ttft p50/p90/p99={bl.fmt(st['ttft_p50'])}/{bl.fmt(st['ttft_p90'])}/{bl.fmt(st['ttft_p99'])} ms "
               f"hit={st['hit_rate']:.2f} spread={bl.fmt(st['spread'])} fail={st['failures']} "
               f"{'ok' if st['pass'] else 'OVER'} ({st['wall_s']:.1f} s)")
        dead = rig.procs.check_alive()
        if dead:
            raise RuntimeError(f"process exited: {dead}")
        if st["client_bound"]:
            bl.log(f"client fell {st['client_lag_s']:.2f} s behind the schedule: ramp ends")
            break
        if not st["pass"] and (ref_rate is None or rate >= ref_rate):
            break
    knee = None
    for st in steps:
        if not st["pass"]:
            break
        knee = st
    # A knee at the last step of the ladder is a lower bound.
    open_ended = knee is not None and knee is steps[-1] and (knee["rate"] == RATES[-1])
    return {"label": label, "header": header, "flags": flags, "steps": steps, "knee": knee, "slo_ms": slo,
            "knee_open": open_ended}


# ---- report ---------------------------------------------------------------


def step_at(res, rate):
    for st in res["steps"]:
        if st["rate"] == rate:
            return st
    return None


def report(all_res, started, elapsed, loadavg0):
    L = [f"# llmgw routing quality ({started}, {os.cpu_count()} cores)", ""]
    L += [f"{ENGINES} simulated engines (llmgw-mock-engine --kv-sim, {KV_BLOCKS} KV blocks x 16 tokens = "
          f"{KV_BLOCKS * 16:,} tokens each, time scale {TIME_SCALE:g}: {1 / TIME_SCALE:g}x faster than real "
          "time, the mock's default step model) behind one llmgw worker; a fresh worker and emptied engine "
          "caches per strategy. Open-loop Poisson arrivals ramped through the offered rates "
          f"{' '.join(f'{r:g}' for r in RATES)} req/s (simulated time), {STEP_SECONDS:g} s wall per step "
          f"(at least {MIN_STEP_REQUESTS} requests), streaming, {OUTPUT_TOKENS} output tokens.", "",
          "Workloads (seed %d):" % SEED,
          f"- **b2b**: {GROUPS} groups x {QUESTIONS} questions, {SYSTEM_WORDS}-token system prompt, "
          f"{QUESTION_WORDS}-token question (peers.md 4.2 b2b: 150 x 5, 6,000 + 1,200 tokens, scaled down). "
          f"Shared prefixes: {GROUPS * SYSTEM_WORDS:,} tokens, {GROUPS * SYSTEM_WORDS / (KV_BLOCKS * 16):.1f}x "
          "one engine's cache.",
          f"- **multiturn**: {CONVERSATIONS} conversations at a time, {TURNS} turns each, {APP_WORDS}-token shared "
          f"app prompt, {TURN_WORDS}-token user turns, the engine's answers appended; each turn resends the "
          "history.",
          f"- **unique**: no sharing (control), {SYSTEM_WORDS + QUESTION_WORDS}-token prompts each starting "
          "with a unique token.", "",
          f"Knee: the highest offered rate whose step had no failure, achieved throughput >= 90% of offered, and "
          f"TTFT p90 <= {KNEE_K:g} x T_cold (T_cold = unloaded TTFT of a cold mean-length prompt from the "
          "mock's step model). Reference rate: random's knee (its first step if it never passed); TTFT, hit "
          "rate and load spread are compared there, at the same offered load. Hit rate is engine-reported "
          "(prefix-cache hit tokens / queried tokens). Load spread = max/mean requests per engine (1.00 = "
          "even). TTFT in simulated ms (client wall clock / time scale, so gateway and client overhead are "
          f"scaled up by {1 / TIME_SCALE:g}x too). Ratios are to random, same workload, same run.", ""]
    L.append(f"Strategies: " + "; ".join(
        f"`{r}` = `{VARIANTS.get(r, (r, [], ''))[0]}`" + (f" {' '.join(VARIANTS[r][1])}" if r in VARIANTS and VARIANTS[r][1] else "")
        + (f" ({VARIANTS[r][2]})" if r in VARIANTS else "") for r in STRATEGIES) + ".")
    L += ["", f"llmgw {bl.llmgw_rev()}. Load average at start: {loadavg0}. Run time: {elapsed:.0f} s.", ""]
    for wl, res in all_res.items():
        rnd = res.get("random") or next(iter(res.values()))
        ref = rnd["knee"]["rate"] if rnd["knee"] else rnd["steps"][0]["rate"]
        slo = rnd["slo_ms"]
        L += [f"## {wl}", "", f"Reference rate {ref:g} req/s; TTFT SLO for the knee {slo:.0f} ms "
              f"(T_cold {slo / KNEE_K:.0f} ms).", ""]
        hdr = ["strategy", "knee req/s", "throughput at knee", "÷ random", "TTFT p50 ms", "÷ random",
               "TTFT p90 ms", "÷ random", "TTFT p99 ms", "÷ random", "hit rate", "÷ random",
               "load spread", "÷ random", "requests per engine"]
        rows = []
        r_ref = step_at(rnd, ref)
        r_knee = rnd["knee"]
        for label, r in res.items():
            s = step_at(r, ref)
            k = r["knee"]
            g = lambda d, key: d.get(key) if d else None  # noqa: E731
            rows.append([f"`{label}`", ("≥ " if r.get("knee_open") else "") + bl.fmt(g(k, "rate")),
                         bl.fmt(g(k, "throughput_sim")),
                         bl.fmt(bl.ratio(g(k, "throughput_sim"), g(r_knee, "throughput_sim"))),
                         bl.fmt(g(s, "ttft_p50")), bl.fmt(bl.ratio(g(s, "ttft_p50"), g(r_ref, "ttft_p50"))),
                         bl.fmt(g(s, "ttft_p90")), bl.fmt(bl.ratio(g(s, "ttft_p90"), g(r_ref, "ttft_p90"))),
                         bl.fmt(g(s, "ttft_p99")), bl.fmt(bl.ratio(g(s, "ttft_p99"), g(r_ref, "ttft_p99"))),
                         bl.fmt(g(s, "hit_rate"), 3), bl.fmt(bl.ratio(g(s, "hit_rate"), g(r_ref, "hit_rate"))),
                         bl.fmt(g(s, "spread")), bl.fmt(bl.ratio(g(s, "spread"), g(r_ref, "spread"))),
                         "/".join(str(x) for x in g(s, "per_engine")) if s else "–"])
        L.append(bl.md_table(hdr, rows))
    L += ["", "## Every step", "",
          "Offered rate, achieved throughput (req/s simulated), TTFT percentiles (simulated ms), hit rate, "
          "load spread, failures, preemptions; ✓ = within the knee criteria.", ""]
    rows = []
    for wl, res in all_res.items():
        for label, r in res.items():
            for st in r["steps"]:
                rows.append([wl, f"`{label}`", bl.fmt(st["rate"]), bl.fmt(st["throughput_sim"]),
                             bl.fmt(st["ttft_p50"]), bl.fmt(st["ttft_p90"]), bl.fmt(st["ttft_p99"]),
                             bl.fmt(st["hit_rate"], 3), bl.fmt(st["spread"]), st["failures"], st["preemptions"],
                             "✓" if st["pass"] else "✗"])
    L.append(bl.md_table(["workload", "strategy", "offered", "throughput", "TTFT p50", "TTFT p90", "TTFT p99",
                          "hit rate", "spread", "failures", "preempt", "knee"], rows))
    L += ["", "Plots: " + ", ".join(f"`{p}`" for p in sorted(os.listdir(RESULTS)) if p.endswith(".png")), ""]
    return "\n".join(L) + "\n"


def plots(all_res):
    for wl, res in all_res.items():
        names = list(res)
        for label, r in res.items():
            with open(os.path.join(RESULTS, f"{wl}-{label.replace('/', '_')}.dat"), "w") as f:
                f.write("# offered throughput ttft_p50 ttft_p90 ttft_p99 hit_rate spread\n")
                for st in r["steps"]:
                    f.write(f"{st['rate']} {st['throughput_sim']:.4g} {st['ttft_p50'] or 'NaN'} "
                            f"{st['ttft_p90'] or 'NaN'} {st['ttft_p99'] or 'NaN'} {st['hit_rate']:.4g} "
                            f"{st['spread'] or 'NaN'}\n")

        def pl(col):
            return ", ".join(f"'{wl}-{n.replace('/', '_')}.dat' using 1:{col} with linespoints lw 2 title '{n}'"
                             for n in names)
        slo = next(iter(res.values()))["slo_ms"]
        s = (f"set terminal pngcairo size 1400,900 font ',10'\nset output 'routing-{wl}.png'\n"
             f"set multiplot layout 2,2 title 'llmgw bench/routing: {wl} ({ENGINES} engines)'\n"
             "set grid\nset key top left\nset xlabel 'offered req/s (simulated)'\n"
             f"set title 'TTFT p90 (SLO {slo:.0f} ms dashed)'\nset ylabel 'ms (simulated, log)'\nset logscale y\n"
             f"plot {pl(4)}, {slo} with lines dt 2 lc rgb 'gray' title 'SLO'\n"
             "set title 'achieved throughput'\nset ylabel 'req/s (simulated)'\nunset logscale y\n"
             f"plot {pl(2)}, x with lines dt 2 lc rgb 'gray' title 'offered'\n"
             "set title 'engine prefix-cache hit rate'\nset ylabel 'hit tokens / queried tokens'\nset yrange [0:1]\n"
             f"plot {pl(6)}\n"
             "set title 'load spread (max/mean requests per engine)'\nset ylabel 'max/mean'\n"
             f"set yrange [0.95:{ENGINES + 0.2}]\n"
             f"plot {pl(7)}\nunset multiplot\n")
        bl.gnuplot(s, RESULTS)


def main():
    global BUILD
    os.makedirs(RESULTS, exist_ok=True)
    BUILD = bl.private_binaries(BUILD, TMP)
    loadavg0 = bl.loadavg()
    started = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    t0 = time.monotonic()
    rig = Rig()
    rig.start()
    order = ["random"] + [s for s in STRATEGIES if s != "random"] if "random" in STRATEGIES else STRATEGIES
    all_res = {}
    for wl in WORKLOADS:
        all_res[wl] = {}
        ref = None
        for label in order:
            r = run_strategy(rig, wl, label, ref)
            all_res[wl][label] = r
            if label == "random":
                ref = r["knee"]["rate"] if r["knee"] else r["steps"][0]["rate"]
    elapsed = time.monotonic() - t0
    bl.write_json(os.path.join(RESULTS, "steps.json"), all_res)
    plots(all_res)
    md = report(all_res, started, elapsed, loadavg0)
    with open(os.path.join(RESULTS, "report.md"), "w") as f:
        f.write(md)
    print(md)
    bl.log(f"written: {RESULTS}/report.md ({elapsed:.0f} s)")
    # The harness check bench/smoke relies on: every strategy ran steps that
    # completed requests, and the engines reported prefix-cache queries.
    bad = [f"{wl}/{lb}" for wl, res in all_res.items() for lb, r in res.items()
           if not r["steps"] or all(st["throughput_sim"] == 0 for st in r["steps"])]
    if bad:
        bl.log("strategies without completed requests: " + ", ".join(bad))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
