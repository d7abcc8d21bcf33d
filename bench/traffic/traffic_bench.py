#!/usr/bin/env python3
"""bench/traffic: what traffic splitting and the mirror add to a request
(docs/traffic.md), measured side by side in one run.

One mock engine (the local pool and, by URL, the external endpoint), one mock
mirror target, one controller, and one single-process worker per
configuration:

  none          no route policy, no mirror (the baseline)
  weight-local  --route-policy weight, one local entry: the decision only
  prefix-64     --route-policy prefix, 64 patterns, the local one matching
                last: the longest-match scan at its widest
  external      --route-policy weight, one external entry: the same engine
                reached by base_url (no strategy, no admission)
  mirror        no policy; the mirror file at Ratio 100: every request also
                copied to the mirror target

wrk with keep-alive at each concurrency in CONCURRENCY; configurations take
turns for ROUNDS rounds (machine noise hits them alike); each figure is the
median over rounds, with its ratio to `none` in the same run. Output: a
markdown table in bench/results/traffic-<date>.md. Not a test: nothing gates
CI on a number.
"""
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import benchlib as bl  # noqa: E402

DURATION = int(os.environ.get("DURATION", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CONCURRENCY = [int(c) for c in os.environ.get("CONCURRENCY", "1 32").split()]
TMP = os.environ["BENCH_TMP"]
BUILD = os.path.join(bl.ROOT, "build")


def main():
    procs = bl.Procs()
    bins = bl.private_binaries(BUILD, TMP)
    mock, mirror = bl.free_port(), bl.free_port()
    p1, p2, p3, ch = (bl.free_port() for _ in range(4))
    for port in (mock, mirror):
        procs.start(f"mock-{port}", [f"{bins}/e2e/mock/llmgw-mock-engine", "--port", str(port),
                                     "--ttft-ms", "0", "--itl-ms", "0", "--output-tokens", "16",
                                     "--record-max", "0", "--log-level", "warn"],
                    f"{TMP}/mock-{port}.log")
    with open(f"{TMP}/gw.yaml", "w") as f:
        f.write(f"models:\n  - name: mock-model\n    endpoints: [\"127.0.0.1:{mock}\"]\n")
    procs.start("ctl", [f"{bins}/controller/llmgw-controller", "--config", f"{TMP}/gw.yaml",
                        "--http-host", "127.0.0.1", "--http-port", str(ch),
                        "--pub-listen", f"tcp://127.0.0.1:{p1}", "--rep-listen",
                        f"tcp://127.0.0.1:{p2}", "--pull-listen", f"tcp://127.0.0.1:{p3}",
                        "--log-level", "warn"], f"{TMP}/ctl.log")
    with open(f"{TMP}/mirror.json", "w") as f:
        json.dump({"Enable": True, "Target": f"http://127.0.0.1:{mirror}", "Ratio": 100,
                   "Timeout": 5000}, f)
    prefixes = [{"prefix": f"other-{i}-*", "base_url": f"http://127.0.0.1:{mock}"}
                for i in range(63)] + [{"prefix": "mock-*", "base_url": "local"}]
    configs = {
        "none": [],
        "weight-local": ["--route-policy", "weight", "--route-config",
                         json.dumps([{"base_url": "local", "weight": 1}])],
        "prefix-64": ["--route-policy", "prefix", "--route-config", json.dumps(prefixes)],
        "external": ["--route-policy", "weight", "--route-config",
                     json.dumps([{"base_url": f"http://127.0.0.1:{mock}", "weight": 1}])],
        "mirror": ["--mirror-config-path", f"{TMP}/mirror.json"],
    }
    ports = {}
    for name, extra in configs.items():
        ports[name] = bl.free_port()
        argv = [f"{bins}/dataplane/llmgw-worker", "--host", "127.0.0.1", "--port",
                str(ports[name]), "--controller-pub", f"tcp://127.0.0.1:{p1}",
                "--controller-rep", f"tcp://127.0.0.1:{p2}", "--controller-pull",
                f"tcp://127.0.0.1:{p3}", "--access-log", "off", "--log-level", "warn",
                "--mirror-config-path", ""] + extra
        procs.start(name, argv, f"{TMP}/worker-{name}.log")
    for port in (mock, mirror):
        bl.wait_http(f"http://127.0.0.1:{port}/health", procs=procs)
    for name, port in ports.items():
        bl.wait_http(f"http://127.0.0.1:{port}/readyz", procs=procs)
    body = json.dumps({"model": "mock-model", "max_tokens": 16,
                       "messages": [{"role": "user", "content": "Say this is a test!"}]})
    bl.wrk_script(f"{TMP}/req.lua", body, {"Content-Type": "application/json"})
    res = {(n, c): [] for n in configs for c in CONCURRENCY}
    for r in range(ROUNDS):
        for c in CONCURRENCY:
            for name, port in ports.items():
                out = subprocess.run(["wrk", "--latency", "-t", "1" if c < 2 else "2", "-c", str(c),
                                      "-d", f"{DURATION}s", "-s", f"{TMP}/req.lua",
                                      f"http://127.0.0.1:{port}/v1/chat/completions"],
                                     capture_output=True, text=True, timeout=DURATION + 60).stdout
                res[(name, c)].append(bl.parse_wrk(out))
                bl.log(f"round {r + 1} c={c} {name}: {res[(name, c)][-1]['rps']} rps")
    rows = []
    for c in CONCURRENCY:
        base = {k: statistics.median(x[k] or 0 for x in res[("none", c)])
                for k in ("rps", "p50_ms", "p99_ms")}
        for name in configs:
            m = {k: statistics.median(x[k] or 0 for x in res[(name, c)])
                 for k in ("rps", "p50_ms", "p99_ms")}
            errs = sum(x["non2xx"] + x["sock_errors"] for x in res[(name, c)])
            rows.append([c, name, bl.fmt(m["rps"]), bl.fmt(bl.ratio(m["rps"], base["rps"])),
                         bl.fmt(m["p50_ms"]), bl.fmt(m["p99_ms"]),
                         bl.fmt(m["p50_ms"] - base["p50_ms"], 3), errs])
    mirrored = json.loads(bl.http_get(f"http://127.0.0.1:{mirror}/_mock/stats")[1])["received"]
    report = [
        f"# Traffic splitting and mirror overhead ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"llmgw {bl.llmgw_rev()}; {bl.tool_version(['wrk', '--version'])}; load average "
        f"{bl.loadavg()} at the end; {ROUNDS} rounds x {DURATION} s per configuration and "
        f"concurrency, medians; ratio = rps / rps of `none` at the same concurrency.",
        "",
        bl.md_table(["conc", "config", "rps", "ratio", "p50 ms", "p99 ms", "p50 added ms",
                     "errors"], rows),
        "",
        f"The mirror target received {mirrored} copies.",
    ]
    os.makedirs(os.path.join(bl.ROOT, "bench", "results"), exist_ok=True)
    path = os.path.join(bl.ROOT, "bench", "results",
                        f"traffic-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.md")
    with open(path, "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(report))
    print(f"\nwritten: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
