#!/usr/bin/env python3
"""soak: a long mixed load with engine churn; RSS and open fds of every
process sampled each second must stay flat after warm-up, and every failed
request must be explained by an injected fault.

Processes: redis-server (prefix-cache sync), the controller (file
discovery), two workers sharing one port (SO_REUSEPORT, prefix-cache
routing with AIBRIX_STATESYNC_ENABLED), three mock engines (one process
each). Load: e2e/tools/llm_load.py steady, CONCURRENCY clients, half of the
requests streaming, each on a fresh connection, never retried. Churn: every
CHURN_S seconds one engine (round robin) is SIGKILLed, stays down DOWN_S
seconds (the workers eject it after consecutive connect failures), and is
restarted on the same port.

A failure is explained when it happened within EXPLAIN_S seconds after a
kill; the bound on failures is the engines' in-flight requests sampled just
before each kill, plus one per kill for a request arriving between the
sample and the kill. Growth is judged on the long-lived processes
(controller, workers, redis): the mean of the last 30 samples against the
mean of the first 30 after warm-up, RSS beyond RSS_TOL_PCT percent and
RSS_TOL_KB, or fds beyond FD_TOL, fails the run, as does any unexplained
failure. Engines are restarted by design, so their figures are reported, not
judged. Output: a markdown report (stdout and bench/results/soak-<date>.md)
and the samples as JSON. Exit 1 on a failed judgement, 2 when a process
died unexpectedly.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import benchlib as bl  # noqa: E402

ENV = os.environ.get
DURATION = float(ENV("DURATION", "600"))
WARMUP = float(ENV("WARMUP", str(max(20.0, min(120.0, DURATION * 0.15)))))
CHURN_S = float(ENV("CHURN_S", "30"))
DOWN_S = float(ENV("DOWN_S", "5"))
EXPLAIN_S = float(ENV("EXPLAIN_S", "3"))
CONCURRENCY = int(ENV("CONCURRENCY", "8"))
RSS_TOL_PCT = float(ENV("RSS_TOL_PCT", "10"))
RSS_TOL_KB = int(ENV("RSS_TOL_KB", "4096"))
FD_TOL = int(ENV("FD_TOL", "4"))
BUILD = os.path.abspath(ENV("BUILD_DIR", os.path.join(bl.ROOT, "build")))
TMP = ENV("BENCH_TMP") or "/tmp"
OUT = ENV("RESULTS_DIR", os.path.join(bl.ROOT, "bench", "results"))


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def slope_per_min(ts, ys):
    """Least-squares slope of ys over ts (seconds), per minute."""
    pts = [(t, y) for t, y in zip(ts, ys) if y is not None]
    if len(pts) < 2:
        return None
    mt = sum(t for t, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((t - mt) ** 2 for t, _ in pts)
    return 60.0 * sum((t - mt) * (y - my) for t, y in pts) / den if den else None


def main():
    procs = bl.Procs()
    rev = bl.llmgw_rev()  # now: the binaries are copied now, the report is written at the end
    binroot = bl.private_binaries(BUILD, TMP)
    ctl_bin = os.path.join(binroot, "controller/llmgw-controller")
    dp_bin = os.path.join(binroot, "dataplane/llmgw-worker")
    mock_bin = os.path.join(binroot, "e2e/mock/llmgw-mock-engine")
    logs = os.path.join(TMP, "logs")
    os.makedirs(logs, exist_ok=True)
    port = bl.free_port

    rport = port()
    redis = procs.start("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--loglevel", "warning"],
                        os.path.join(logs, "redis.log"))
    mports = [port() for _ in range(3)]
    mock_argv = lambda p: [mock_bin, "--port", str(p), "--ttft-ms", "10", "--itl-ms", "10",
                           "--record-max", "0", "--log-level", "warn"]
    mocks = {p: procs.start(f"mock-{p}", mock_argv(p), os.path.join(logs, f"mock-{p}.log"))
             for p in mports}
    cfg = os.path.join(TMP, "gw.yaml")
    with open(cfg, "w") as f:
        f.write("models:\n  - name: mock-model\n    endpoints: [%s]\n"
                % ", ".join(f'"127.0.0.1:{p}"' for p in mports))
    pub, rep, pull, chttp = port(), port(), port(), port()
    ctl = procs.start("controller", [ctl_bin, "--config", cfg, "--http-host", "127.0.0.1",
                                     "--http-port", str(chttp),
                                     "--pub-listen", f"tcp://127.0.0.1:{pub}",
                                     "--rep-listen", f"tcp://127.0.0.1:{rep}",
                                     "--pull-listen", f"tcp://127.0.0.1:{pull}",
                                     "--log-level", "warn"], os.path.join(logs, "controller.log"))
    gw = port()
    wenv = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_PORT=str(rport),
                AIBRIX_STATESYNC_ENABLED="true", ROUTING_ALGORITHM="prefix-cache")
    workers = []
    for i in range(2):
        workers.append(procs.start(f"worker-{i}", [
            dp_bin, "--host", "127.0.0.1", "--port", str(gw),
            "--controller-pub", f"tcp://127.0.0.1:{pub}", "--controller-rep", f"tcp://127.0.0.1:{rep}",
            "--controller-pull", f"tcp://127.0.0.1:{pull}", "--access-log", "off",
            "--log-level", "warn", "--first-byte-timeout", "5s", "--idle-timeout", "5s",
            "--eject-after", "3", "--eject-time", "1s", "--eject-max-time", "4s"],
            os.path.join(logs, f"worker-{i}.log"), env=wenv))
    for p in mports:
        bl.wait_http(f"http://127.0.0.1:{p}/health", procs=procs)
    bl.wait_http(f"http://127.0.0.1:{chttp}/healthz", procs=procs)
    bl.wait_http(f"http://127.0.0.1:{gw}/readyz", procs=procs)
    time.sleep(1)

    fixed = {"controller": ctl.pid, "worker-0": workers[0].pid, "worker-1": workers[1].pid,
             "redis": redis.pid}
    samples = []  # (t, {name: (rss_kb, fds)})
    stop = threading.Event()
    t0 = time.monotonic()
    wall0 = time.time()

    def sampler():
        while not stop.is_set():
            row = {n: (status_kb(p, "VmRSS"), nfds(p)) for n, p in fixed.items()}
            for i, p in enumerate(mports):
                pid = mocks[p].pid
                row[f"engine-{i}"] = (status_kb(pid, "VmRSS"), nfds(pid))
            samples.append((time.monotonic() - t0, row))
            stop.wait(1.0)

    flog = os.path.join(TMP, "failures.jsonl")
    load = subprocess.Popen([sys.executable, os.path.join(bl.ROOT, "e2e/tools/llm_load.py"), "steady",
                             "--urls", f"http://127.0.0.1:{gw}", "--concurrency", str(CONCURRENCY),
                             "--max-tokens", "16", "--stream-fraction", "0.5", "--turn-words", "60",
                             "--timeout", "30", "--max-seconds", str(DURATION),
                             "--failures-log", flog], stdout=subprocess.PIPE, text=True)
    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    kills = []  # (wall time, port, in flight just before)
    victim = 0
    next_kill = t0 + CHURN_S
    died = []
    while load.poll() is None:
        now = time.monotonic()
        if now >= next_kill and now - t0 < DURATION - CHURN_S / 2:
            p = mports[victim % len(mports)]
            victim += 1
            try:
                inflight = json.loads(bl.http_get(f"http://127.0.0.1:{p}/_mock/stats")[1])["in_flight"]
            except Exception:
                inflight = 0
            procs.procs = [(n, q) for n, q in procs.procs if q is not mocks[p]]
            kills.append((time.time(), p, inflight))
            mocks[p].send_signal(signal.SIGKILL)
            mocks[p].wait()
            bl.log(f"killed engine :{p} with {inflight} in flight")
            time.sleep(DOWN_S)
            mocks[p] = procs.start(f"mock-{p}", mock_argv(p), os.path.join(logs, f"mock-{p}.log"))
            next_kill = time.monotonic() + CHURN_S - DOWN_S
        dead = [(n, rc) for n, rc in procs.check_alive()]
        if dead:
            died = dead
            break
        time.sleep(0.2)
    if died:
        load.kill()
    out, _ = load.communicate()
    stop.set()
    th.join()
    if died:
        bl.log(f"process died: {died}")
        return 2
    res = json.loads(out)
    failures = []
    if os.path.exists(flog):
        with open(flog) as f:
            failures = [json.loads(line) for line in f if line.strip()]
    # The client stamps a failure when it sees it; 0.5 s of slack before the
    # kill's stamp covers the two clocks' reading order.
    explained = [x for x in failures if any(-0.5 <= x["t"] - k[0] <= EXPLAIN_S for k in kills)]
    unexplained = len(failures) - len(explained)
    bound = sum(k[2] + 1 for k in kills)

    # Memory and fds after warm-up.
    after = [(t, r) for t, r in samples if t >= WARMUP]
    names = list(samples[0][1].keys()) if samples else []
    rows, bad = [], []
    for n in names:
        def series(i):
            return [r[n][i] for _, r in after]
        ts = [t for t, _ in after]
        rss, fds = series(0), series(1)
        first = [r[n] for t, r in samples[:3]]
        w_rss, e_rss = mean(rss[:30]), mean(rss[-30:])
        w_fd, e_fd = mean(fds[:30]), mean(fds[-30:])
        judged = not n.startswith("engine-")
        verdict = "reported"
        if judged and None not in (w_rss, e_rss, w_fd, e_fd):
            grow = e_rss - w_rss
            ok = not (grow > RSS_TOL_KB and grow > w_rss * RSS_TOL_PCT / 100) and e_fd - w_fd <= FD_TOL
            verdict = "flat" if ok else "GROWS"
            if not ok:
                bad.append(n)
        rows.append([n, bl.fmt(mean([x[0] for x in first]) and mean([x[0] for x in first]) / 1024),
                     bl.fmt(w_rss and w_rss / 1024), bl.fmt(e_rss and e_rss / 1024),
                     bl.fmt((slope_per_min(ts, rss) or 0) / 1024, 3),
                     bl.fmt(mean([x[1] for x in first])), bl.fmt(w_fd), bl.fmt(e_fd),
                     bl.fmt(slope_per_min(ts, fds) or 0, 3), verdict])
    rep = [f"# Soak: {DURATION:.0f} s, {CONCURRENCY} clients, engine churn every {CHURN_S:.0f} s",
           "",
           f"llmgw {rev}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(wall0))}, "
           f"load average at the end {bl.loadavg()}. Warm-up {WARMUP:.0f} s; 'after warm-up' and "
           "'end' are means of 30 one-second samples. Engines restart on every kill, so their "
           "figures are per incarnation and not judged.",
           "",
           bl.md_table(["process", "RSS start MB", "RSS after warm-up MB", "RSS end MB",
                        "RSS slope MB/min", "fds start", "fds after warm-up", "fds end",
                        "fds slope /min", "verdict"], rows),
           "",
           bl.md_table(["requests sent", "streaming", "failed", "engine kills",
                        "in flight at the kills (+1 per kill)", f"failed within {EXPLAIN_S:.0f} s "
                        "of a kill", "unexplained failures"],
                       [[res["sent"], res["streams"], res["failed"], len(kills), bound,
                         len(explained), unexplained]]),
           "",
           "Failure reasons: " + (", ".join(f"{k} {v}" for k, v in sorted(res["reasons"].items()))
                                   or "none")]
    verdict_ok = not bad and unexplained == 0 and res["failed"] <= bound and res["sent"] > 0
    rep += ["", "Verdict: " + ("PASS" if verdict_ok else
                               f"FAIL (growing: {bad or 'none'}, unexplained failures "
                               f"{unexplained}, failed {res['failed']} vs bound {bound})")]
    text = "\n".join(rep) + "\n"
    print(text)
    os.makedirs(OUT, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(wall0))
    with open(os.path.join(OUT, f"soak-{stamp}.md"), "w") as f:
        f.write(text)
    bl.write_json(os.path.join(TMP, "samples.json"),
                  {"samples": samples, "kills": kills, "load": res})
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
