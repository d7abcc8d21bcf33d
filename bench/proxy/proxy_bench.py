#!/usr/bin/env python3
"""bench/proxy: gateway overhead, every configuration side by side in one run.

Backends
  nginx-be   nginx answering a fixed OpenAI chat completion to any POST (it
             reads and discards the request body), so the proxy in front of it
             is the bottleneck;
  mock       llmgw-mock-engine, one port answering at once (--itl-ms 0) and
             one streaming STREAM_TOKENS tokens STREAM_ITL_MS apart.
Configurations (all running for the whole run, measured in turns)
  direct     straight to the backend;
  nginx      nginx 1 worker as a plain reverse proxy (upstream keep-alive,
             request buffering in memory, proxy_buffering off for streams);
  llmgw-1    llmgw with one worker (controller on file discovery);
  llmgw-2    llmgw with two SO_REUSEPORT workers sharing that controller;
  portkey    @portkey-ai/gateway from npm, routed by x-portkey-* headers.
Workloads
  small      non-streaming chat, small body, to nginx-be (wrk);
  large      non-streaming chat with a LARGE_KB KB prompt, to nginx-be (wrk);
  mock       non-streaming chat to the mock engine (wrk; the original bench);
  stream     streaming chat to the mock engine (sse_load.py: chunks/s and
             inter-chunk gaps).
Per cell: req/s, p50/p99 latency, errors, ratios to direct and to nginx, CPU
seconds per 1,000 requests per process (utime+stime deltas from /proc) and
peak RSS (VmHWM, reset per cell). Output: report.md, cells.json and gnuplot
PNGs in RESULTS_DIR. Not a test: nothing here gates CI on a number.
"""
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import benchlib as bl  # noqa: E402

E = os.environ
SMOKE = E.get("SMOKE", "0") == "1"
DURATION = float(E.get("DURATION", "1" if SMOKE else "6"))
CONCURRENCY = [int(x) for x in E.get("CONCURRENCY", "4" if SMOKE else "1 32 256").split()]
WORKLOADS = E.get("WORKLOADS", "small large mock stream").split()
CONFIGS = E.get("CONFIGS", "direct nginx llmgw-1 llmgw-2 portkey").split()
LARGE_KB = int(E.get("LARGE_KB", "200"))
STREAM_ITL_MS = int(E.get("STREAM_ITL_MS", "10"))
STREAM_TOKENS = int(E.get("STREAM_TOKENS", "32"))
WARMUP = float(E.get("WARMUP", "0" if SMOKE else "2"))
BUILD = E.get("BUILD_DIR", os.path.join(bl.ROOT, "build"))
PORTKEY_VERSION = E.get("PORTKEY_VERSION", "1.15.2")
CACHE = os.path.join(bl.ROOT, "bench", ".cache")
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = E.get("RESULTS_DIR") or os.path.join(
    bl.ROOT, "bench", "results", time.strftime("proxy-%Y%m%d-%H%M%S", time.gmtime()))
TMP = E["BENCH_TMP"]

FIXED_COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "mock-model",
    "choices": [{"index": 0, "message": {"role": "assistant",
                                         "content": " ".join(f"tok{i}" for i in range(16))},
                 "logprobs": None, "finish_reason": "length"}],
    "usage": {"prompt_tokens": 8, "completion_tokens": 16, "total_tokens": 24}}, separators=(",", ":"))
MODELS_JSON = '{"object":"list","data":[{"id":"bench-fixed","object":"model","owned_by":"nginx"}]}'

NGINX_COMMON = """daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 8m;
    client_body_buffer_size 1m;
{body}
}}
"""


def nginx_conf(d, body):
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(NGINX_COMMON.format(dir=d, body=body))
    return path


def backend_conf(port):
    # `return` answers without a content handler reading the body; nginx then
    # reads and discards it (ngx_http_discard_request_body), so a 200 KB
    # prompt is really received and keep-alive stays usable.
    esc = FIXED_COMPLETION.replace("'", "\\'")
    return f"""    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{ default_type application/json; return 200 '{esc}'; }}
        location = /v1/models {{ default_type application/json; return 200 '{MODELS_JSON}'; }}
        location = /metrics {{ default_type text/plain; return 200 ''; }}
        location = /health {{ return 200 ''; }}
        location / {{ return 404; }}
    }}"""


def proxy_conf(routes):
    out = []
    for i, (listen, target, buffering) in enumerate(routes):
        out.append(f"""    upstream up{i} {{ server 127.0.0.1:{target}; keepalive 512; keepalive_requests 10000000; }}
    server {{
        listen 127.0.0.1:{listen} backlog=4096;
        location / {{
            proxy_pass http://up{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering {buffering};
        }}
    }}""")
    return "\n".join(out)


def body_for(workload):
    msg = "Say this is a test!"
    b = {"model": "mock-model", "messages": [{"role": "user", "content": msg}], "max_tokens": 16}
    if workload in ("small", "large"):
        b["model"] = "bench-fixed"
    if workload == "large":
        words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
                 "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()
        text, i, target = [], 0, LARGE_KB * 1024
        n = 0
        while n < target:
            w = words[(i * 7 + i // 24) % len(words)]
            text.append(w)
            n += len(w) + 1
            i += 1
        b["messages"] = [{"role": "system", "content": "You answer questions about the document."},
                         {"role": "user", "content": " ".join(text)[:target]}]
    if workload == "stream":
        b["model"] = "mock-stream"
        b["stream"] = True
        b["max_tokens"] = STREAM_TOKENS
    return json.dumps(b, separators=(",", ":"))


def ensure_portkey():
    """npm-installs the pinned Portkey into bench/.cache/portkey once."""
    d = os.path.join(CACHE, "portkey")
    entry = os.path.join(d, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
    stamp = os.path.join(d, "installed-version")
    if os.path.exists(entry) and os.path.exists(stamp) and open(stamp).read().strip() == PORTKEY_VERSION:
        return entry
    if not shutil.which("node") or not shutil.which("npm"):
        return None
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "package.json"), "w") as f:
        f.write('{"name":"llmgw-bench-portkey","version":"0.0.0","private":true}\n')
    bl.log(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {d}")
    p = subprocess.run(["npm", "install", f"@portkey-ai/gateway@{PORTKEY_VERSION}", "--no-audit", "--no-fund",
                        "--loglevel=error"], cwd=d, capture_output=True, text=True)
    if p.returncode != 0 or not os.path.exists(entry):
        bl.log("npm install failed: " + p.stderr[-400:])
        return None
    with open(stamp, "w") as f:
        f.write(PORTKEY_VERSION + "\n")
    return entry


class Setup:
    def __init__(self):
        self.procs = bl.Procs()
        self.ports = {}
        self.gw_pids = {}   # config -> {name: pid}
        self.be_pids = {}   # backend -> {name: pid}
        self.notes = []

    def nginx(self, name, body):
        d = os.path.join(TMP, name)
        os.makedirs(d, exist_ok=True)
        conf = nginx_conf(d, body)
        p = self.procs.start(name, ["nginx", "-p", d, "-c", conf], os.path.join(d, "stdout.log"))
        return p

    def start(self):
        P = self.ports
        for k in ("be", "mock_a", "mock_b", "ngx_be", "ngx_a", "ngx_b", "gw1", "gw2", "pub", "rep", "pull",
                  "ctl_http", "portkey"):
            P[k] = bl.free_port()
        mb = self.nginx("nginx-backend", backend_conf(P["be"]))
        mock = self.procs.start("mock", [
            os.path.join(BUILD, "e2e/mock/llmgw-mock-engine"), "--port", str(P["mock_a"]), "--port",
            str(P["mock_b"]), "--model", "mock-model", "--model", "mock-stream", "--ttft-ms", "0", "--itl-ms",
            "0", "--output-tokens", "16", "--record-max", "0", "--log-level", "warn"],
            os.path.join(TMP, "mock.log"))
        mp = self.nginx("nginx-proxy", proxy_conf([(P["ngx_be"], P["be"], "on"), (P["ngx_a"], P["mock_a"], "on"),
                                                   (P["ngx_b"], P["mock_b"], "off")]))
        cfg = os.path.join(TMP, "gw.yaml")
        with open(cfg, "w") as f:
            f.write("models:\n")
            for name, port in (("bench-fixed", P["be"]), ("mock-model", P["mock_a"]), ("mock-stream", P["mock_b"])):
                f.write(f"  - name: {name}\n    endpoints: [\"127.0.0.1:{port}\"]\n")
        ctl = self.procs.start("controller", [
            os.path.join(BUILD, "controller/llmgw-controller"), "--config", cfg, "--http-host", "127.0.0.1",
            "--http-port", str(P["ctl_http"]), "--pub-listen", f"tcp://127.0.0.1:{P['pub']}",
            "--rep-listen", f"tcp://127.0.0.1:{P['rep']}", "--pull-listen", f"tcp://127.0.0.1:{P['pull']}",
            "--log-level", "warn"], os.path.join(TMP, "controller.log"))

        def worker(port, i):
            return self.procs.start(f"worker-{port}-{i}", [
                os.path.join(BUILD, "dataplane/llmgw-worker"), "--host", "127.0.0.1", "--port", str(port),
                "--controller-pub", f"tcp://127.0.0.1:{P['pub']}", "--controller-rep",
                f"tcp://127.0.0.1:{P['rep']}", "--controller-pull", f"tcp://127.0.0.1:{P['pull']}",
                "--access-log", "off", "--log-level", "warn"], os.path.join(TMP, f"worker-{port}-{i}.log"))
        w1 = worker(P["gw1"], 0)
        w2 = [worker(P["gw2"], 0), worker(P["gw2"], 1)]

        bl.wait_http(f"http://127.0.0.1:{P['be']}/health", procs=self.procs)
        bl.wait_http(f"http://127.0.0.1:{P['mock_a']}/health", procs=self.procs)
        bl.wait_http(f"http://127.0.0.1:{P['mock_b']}/health", procs=self.procs)
        bl.http_post(f"http://127.0.0.1:{P['mock_b']}/_mock/fault",
                     json.dumps({"ttft_ms": 0, "itl_ms": STREAM_ITL_MS}).encode())
        bl.wait_http(f"http://127.0.0.1:{P['gw1']}/readyz", procs=self.procs)
        bl.wait_http(f"http://127.0.0.1:{P['gw2']}/readyz", procs=self.procs)
        # Both SO_REUSEPORT workers must be ready, not just the one that answered.
        time.sleep(0.5)
        for pid_holder in (mb, mp):
            time.sleep(0.2)
            if not bl.children(pid_holder.pid):
                raise RuntimeError("nginx has no worker process")
        be_kids = bl.children(mb.pid)
        px_kids = bl.children(mp.pid)
        self.be_pids = {
            "nginx-be": {"nginx-be master": mb.pid, **{f"nginx-be worker{i}": k for i, k in enumerate(be_kids)}},
            "mock": {"mock-engine": mock.pid}}
        self.gw_pids = {
            "direct": {},
            "nginx": {"nginx master": mp.pid, **{f"nginx worker{i}": k for i, k in enumerate(px_kids)}},
            "llmgw-1": {"llmgw worker": w1.pid, "llmgw controller": ctl.pid},
            "llmgw-2": {"llmgw worker0": w2[0].pid, "llmgw worker1": w2[1].pid, "llmgw controller": ctl.pid},
        }
        if "portkey" in CONFIGS:
            entry = ensure_portkey()
            if entry is None:
                self.notes.append("portkey skipped: node/npm missing or npm install failed")
            else:
                pk = self.procs.start("portkey", [
                    "node", "--import", os.path.join(HERE, "portkey-preload.mjs"), entry,
                    f"--port={P['portkey']}", "--headless"], os.path.join(TMP, "portkey.log"),
                    cwd=os.path.dirname(entry))
                deadline = time.time() + 30
                while True:
                    try:
                        st, _ = bl.http_post(
                            f"http://127.0.0.1:{P['portkey']}/v1/chat/completions", body_for("small").encode(),
                            headers=self.headers("portkey", "small") | {"Content-Type": "application/json"})
                        if st == 200:
                            break
                    except Exception:
                        pass
                    if time.time() > deadline or pk.poll() is not None:
                        raise RuntimeError("portkey did not come up (see portkey.log)")
                    time.sleep(0.2)
                self.gw_pids["portkey"] = {"portkey node": pk.pid}

    def configs(self):
        return [c for c in CONFIGS if c in self.gw_pids]

    def url(self, config, workload):
        P = self.ports
        be = {"small": "be", "large": "be", "mock": "mock_a", "stream": "mock_b"}[workload]
        port = {"direct": P[be], "nginx": P["ngx_" + be.replace("mock_", "")], "llmgw-1": P["gw1"],
                "llmgw-2": P["gw2"], "portkey": P["portkey"]}[config]
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    def headers(self, config, workload):
        if config != "portkey":
            return {"Content-Type": "application/json"}
        be = {"small": "be", "large": "be", "mock": "mock_a", "stream": "mock_b"}[workload]
        return {"Content-Type": "application/json", "x-portkey-provider": "openai",
                "x-portkey-custom-host": f"http://127.0.0.1:{self.ports[be]}/v1",
                "Authorization": "Bearer sk-bench"}

    def backend(self, workload):
        return "nginx-be" if workload in ("small", "large") else "mock"


def run_wrk(setup, config, workload, conc, duration):
    script = os.path.join(TMP, f"{config}-{workload}.lua")
    if not os.path.exists(script):
        bl.wrk_script(script, body_for(workload), setup.headers(config, workload))
    threads = 1 if conc < 2 else 2
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{conc}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "--latency",
                        "-s", script, setup.url(config, workload)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed (rc {p.returncode}): {(p.stderr + p.stdout).strip()[-300:]}")
    r = bl.parse_wrk(p.stdout)
    r["errors"] = r["non2xx"] + r["sock_errors"]
    return r


def run_sse(setup, config, conc, duration):
    bf = os.path.join(TMP, "stream-body.json")
    if not os.path.exists(bf):
        with open(bf, "w") as f:
            f.write(body_for("stream"))
    argv = [sys.executable, os.path.join(HERE, "sse_load.py"), "--url", setup.url(config, "stream"),
            "--body-file", bf, "--concurrency", str(conc), "--duration", str(duration)]
    for k, v in setup.headers(config, "stream").items():
        if k != "Content-Type":
            argv += ["--header", f"{k}: {v}"]
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"sse_load failed: {p.stderr.strip()[-300:]}")
    r = json.loads(p.stdout)
    r["errors"] = r["non2xx"] + r["errors"]
    r["p50_ms"], r["p99_ms"] = r["lat_p50_ms"], r["lat_p99_ms"]
    return r


def measure(setup, config, workload, conc, duration):
    gw = setup.gw_pids[config]
    be = setup.be_pids[setup.backend(workload)]
    meter = bl.ProcMeter({**gw, **be})
    meter.begin()
    r = run_sse(setup, config, conc, duration) if workload == "stream" else \
        run_wrk(setup, config, workload, conc, duration)
    pr = meter.end()
    k = max(r["requests"], 1) / 1000.0
    r["procs"] = {n: {"cpu_s_per_1k": (v["cpu_s"] / k if v["cpu_s"] is not None else None),
                      "cpu_s": v["cpu_s"], "peak_rss_mb": (v["peak_rss_kb"] or 0) / 1024.0}
                  for n, v in pr.items()}
    r["gw_cpu_per_1k"] = sum(r["procs"][n]["cpu_s_per_1k"] or 0 for n in gw) if gw else None
    r["be_cpu_per_1k"] = sum(r["procs"][n]["cpu_s_per_1k"] or 0 for n in be)
    r["gw_rss_mb"] = sum(r["procs"][n]["peak_rss_mb"] for n in gw) if gw else None
    r["gw_procs"], r["be_procs"] = list(gw), list(be)
    r.update(config=config, workload=workload, concurrency=conc)
    return r


WL_TITLE = {
    "small": "Non-streaming, small body, nginx fixed-completion backend",
    "large": f"Non-streaming, {LARGE_KB} KB prompt, nginx fixed-completion backend",
    "mock": "Non-streaming, small body, mock engine backend (--ttft-ms 0 --itl-ms 0, 16 tokens)",
    "stream": f"Streaming, mock engine backend ({STREAM_TOKENS} tokens, {STREAM_ITL_MS} ms apart)",
}
CFG_TITLE = {"direct": "direct", "nginx": "nginx proxy (1 worker)", "llmgw-1": "llmgw, 1 worker",
             "llmgw-2": "llmgw, 2 workers", "portkey": "portkey"}


def report(setup, cells, started, elapsed):
    by = {(c["workload"], c["concurrency"], c["config"]): c for c in cells}
    lines = [f"# llmgw proxy overhead ({started}, {os.cpu_count()} cores, {DURATION:g} s per cell)", ""]
    lines += [
        "Every configuration runs for the whole run and is measured in turns, cell by cell, on the same",
        "machine: the load generator, the backend and the proxy share its cores, so read the ratios, not",
        "the absolute numbers. Ratios: ÷ direct and ÷ nginx are this row's value over the direct and",
        "nginx-proxy rows of the same workload and concurrency (req/s: higher is better; latency: lower).",
        "CPU s/1k = CPU seconds (user+sys, /proc/<pid>/stat) per 1,000 requests, summed over the proxy's",
        "processes (per process below); RSS = peak resident set (VmHWM, reset per cell through "
        "/proc/<pid>/clear_refs), summed. Streaming: chunks = SSE events the client received; ITL = gap "
        "between consecutive chunks of one stream; 'chunks in bursts' = share of gaps under 0.5 ms "
        "(chunks that reached the client together rather than one by one).",
        f"Tools: {bl.tool_version(['wrk', '-v'])}; {bl.tool_version(['nginx', '-v'])}; node "
        f"{bl.tool_version(['node', '--version'])}, @portkey-ai/gateway {PORTKEY_VERSION} (with "
        "bench/proxy/portkey-preload.mjs); llmgw workers with --access-log off. "
        f"llmgw {bl.llmgw_rev()}. Load average at start: {setup.loadavg0}. Run time: {elapsed:.0f} s.", ""]
    for n in setup.notes:
        lines.append(f"Note: {n}")
    for wl in WORKLOADS:
        lines += ["", f"## {WL_TITLE[wl]}", ""]
        if wl == "stream":
            hdr = ["c", "configuration", "streams/s", "chunks/s", "chunks/s ÷ direct", "chunks/s ÷ nginx",
                   "first chunk p50 ms", "ITL p50 ms", "ITL p99 ms", "added ITL p99 ms", "chunks in bursts",
                   "latency p99 ÷ direct", "errors", "proxy CPU s/1k", "engine CPU s/1k", "proxy RSS MB"]
        else:
            hdr = ["c", "configuration", "req/s", "p50 ms", "p99 ms", "errors", "req/s ÷ direct",
                   "req/s ÷ nginx", "p50 ÷ direct", "p50 ÷ nginx", "p99 ÷ direct", "p99 ÷ nginx",
                   "added p50 µs", "proxy CPU s/1k", "backend CPU s/1k", "proxy RSS MB"]
        rows = []
        for c in CONCURRENCY:
            d = by.get((wl, c, "direct"))
            n = by.get((wl, c, "nginx"))
            for cfg in setup.configs():
                r = by.get((wl, c, cfg))
                if r is None:
                    continue
                g = lambda x, k: x.get(k) if x else None  # noqa: E731
                if wl == "stream":
                    rows.append([c, CFG_TITLE[cfg], bl.fmt(r["rps"]), bl.fmt(r["chunks_per_s"]),
                                 bl.fmt(bl.ratio(r["chunks_per_s"], g(d, "chunks_per_s"))),
                                 bl.fmt(bl.ratio(r["chunks_per_s"], g(n, "chunks_per_s"))),
                                 bl.fmt(r["ttfc_p50_ms"]), bl.fmt(r["itl_p50_ms"]), bl.fmt(r["itl_p99_ms"]),
                                 bl.fmt(None if d is None or r["itl_p99_ms"] is None or d["itl_p99_ms"] is None
                                        else r["itl_p99_ms"] - d["itl_p99_ms"]),
                                 "–" if r.get("itl_burst_frac") is None else f"{100 * r['itl_burst_frac']:.0f}%",
                                 bl.fmt(bl.ratio(r["lat_p99_ms"], g(d, "lat_p99_ms"))), r["errors"],
                                 bl.fmt(r["gw_cpu_per_1k"], 3), bl.fmt(r["be_cpu_per_1k"], 3),
                                 bl.fmt(r["gw_rss_mb"])])
                else:
                    rows.append([c, CFG_TITLE[cfg], bl.fmt(r["rps"]), bl.fmt(r["p50_ms"], 3), bl.fmt(r["p99_ms"], 3),
                                 r["errors"], bl.fmt(bl.ratio(r["rps"], g(d, "rps"))),
                                 bl.fmt(bl.ratio(r["rps"], g(n, "rps"))),
                                 bl.fmt(bl.ratio(r["p50_ms"], g(d, "p50_ms"))),
                                 bl.fmt(bl.ratio(r["p50_ms"], g(n, "p50_ms"))),
                                 bl.fmt(bl.ratio(r["p99_ms"], g(d, "p99_ms"))),
                                 bl.fmt(bl.ratio(r["p99_ms"], g(n, "p99_ms"))),
                                 bl.fmt(None if d is None or r["p50_ms"] is None or d["p50_ms"] is None
                                        else (r["p50_ms"] - d["p50_ms"]) * 1000),
                                 bl.fmt(r["gw_cpu_per_1k"], 3), bl.fmt(r["be_cpu_per_1k"], 3),
                                 bl.fmt(r["gw_rss_mb"])])
        lines.append(bl.md_table(hdr, rows))
    lines += ["", "## CPU seconds per 1,000 requests and peak RSS, per process", "",
              "One line per cell and process (the backend's processes included). The llmgw controller is shared "
              "by both llmgw configurations and appears under each.", ""]
    rows = []
    for r in cells:
        for n, v in r["procs"].items():
            rows.append([r["workload"], r["concurrency"], r["config"], n, bl.fmt(v["cpu_s_per_1k"], 3),
                         bl.fmt(v["peak_rss_mb"])])
    lines.append(bl.md_table(["workload", "c", "configuration", "process", "CPU s/1k req", "peak RSS MB"], rows))
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in PLOTS if os.path.exists(os.path.join(RESULTS, p))), ""]
    return "\n".join(lines) + "\n"


PLOTS = ["throughput.png", "latency.png", "cpu.png", "stream.png"]


def plots(setup, cells):
    by = {(c["workload"], c["concurrency"], c["config"]): c for c in cells}
    cfgs = setup.configs()

    def dat(name, wl, key):
        """Writes one row per concurrency, one column per configuration that
        has a value for <key> (gnuplot refuses an all-NaN histogram column)."""
        have = [cfg for cfg in cfgs if any((by.get((wl, c, cfg)) or {}).get(key) for c in CONCURRENCY)]
        with open(os.path.join(RESULTS, name), "w") as f:
            f.write("# c " + " ".join(have) + "\n")
            for c in CONCURRENCY:
                vals = []
                for cfg in have:
                    r = by.get((wl, c, cfg))
                    v = r.get(key) if r else None
                    vals.append("NaN" if v is None or v <= 0 else f"{v:.6g}")
                f.write(f"c={c} " + " ".join(vals) + "\n")
        return name, have

    def panel(dat_have, title, ylabel, log=True):
        datafile, have = dat_have
        if not have:
            return ""
        cols = " , ".join(f"'{datafile}' using {i + 2}:xtic(1) title '{cfg}'" for i, cfg in enumerate(have))
        return (f"set title '{title}'\nset ylabel '{ylabel}'\n" + ("set logscale y\n" if log else "unset logscale y\n")
                + f"plot {cols}\n")

    head = ("set terminal pngcairo size 1400,900 font ',10'\nset style data histograms\n"
            "set style histogram clustered gap 1\nset style fill solid 0.85 border -1\nset key top left\n"
            "set grid ytics\nset yrange [*:*]\n")
    nonstream = [w for w in WORKLOADS if w != "stream"]
    scripts = []
    for out, key, ylabel, title in (("throughput.png", "rps", "requests/s (log)", "req/s"),
                                    ("latency.png", "p99_ms", "p99 latency ms (log)", "p99 latency"),
                                    ("cpu.png", "gw_cpu_per_1k", "proxy CPU s per 1k req (log)", "proxy CPU")):
        ws = nonstream + (["stream"] if "stream" in WORKLOADS else [])
        if not ws:
            continue
        s = head + f"set output '{out}'\nset multiplot layout 2,2 title 'llmgw bench/proxy: {title}'\n"
        for wl in ws:
            k = key
            if wl == "stream" and key == "rps":
                k = "chunks_per_s"
            s += panel(dat(f"{out[:-4]}-{wl}.dat", wl, k), f"{wl}" + (" (chunks/s)" if k == "chunks_per_s" else ""),
                       ylabel if k != "chunks_per_s" else "chunks/s (log)")
        s += "unset multiplot\n"
        scripts.append(s)
    if "stream" in WORKLOADS:
        s = head + "set output 'stream.png'\nset multiplot layout 1,2 title 'llmgw bench/proxy: streaming'\n"
        s += panel(dat("stream-itl50.dat", "stream", "itl_p50_ms"), "inter-chunk gap p50", "ms", log=False)
        s += panel(dat("stream-itl99.dat", "stream", "itl_p99_ms"), "inter-chunk gap p99", "ms (log)")
        s += "unset multiplot\n"
        scripts.append(s)
    for s in scripts:
        bl.gnuplot(s, RESULTS)


def main():
    global BUILD
    os.makedirs(RESULTS, exist_ok=True)
    BUILD = bl.private_binaries(BUILD, TMP)
    setup = Setup()
    setup.loadavg0 = bl.loadavg()
    started = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    t_start = time.monotonic()
    setup.start()
    cfgs = setup.configs()
    bl.log(f"up: configurations {' '.join(cfgs)}; workloads {' '.join(WORKLOADS)}; c {CONCURRENCY}; "
           f"{DURATION:g} s per cell")
    if WARMUP > 0:
        for wl in WORKLOADS:
            for cfg in cfgs:
                measure(setup, cfg, wl, 4, WARMUP if cfg == "portkey" else min(WARMUP, 1))
    cells = []
    for wl in WORKLOADS:
        for c in CONCURRENCY:
            for cfg in cfgs:
                r = measure(setup, cfg, wl, c, DURATION)
                cells.append(r)
                bl.log(f"{wl:6} c={c:<3} {cfg:8} req/s={bl.fmt(r['rps'])} p50={bl.fmt(r['p50_ms'], 3)} "
                       f"p99={bl.fmt(r['p99_ms'], 3)} errors={r['errors']}"
                       + (f" chunks/s={bl.fmt(r['chunks_per_s'])} itl_p99={bl.fmt(r['itl_p99_ms'])}"
                          if wl == "stream" else ""))
                dead = setup.procs.check_alive()
                if dead:
                    raise RuntimeError(f"process exited during the run: {dead}")
    elapsed = time.monotonic() - t_start
    bl.write_json(os.path.join(RESULTS, "cells.json"), cells)
    plots(setup, cells)
    md = report(setup, cells, started, elapsed)
    with open(os.path.join(RESULTS, "report.md"), "w") as f:
        f.write(md)
    print(md)
    bl.log(f"written: {RESULTS}/report.md ({elapsed:.0f} s)")
    # The harness check bench/smoke relies on: every cell has requests and no errors.
    bad = [f"{r['workload']}/c={r['concurrency']}/{r['config']}" for r in cells
           if r["requests"] == 0 or r["errors"] > 0]
    if bad:
        bl.log("cells with errors or no requests: " + ", ".join(bad))
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
