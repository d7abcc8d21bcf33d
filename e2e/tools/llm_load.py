#!/usr/bin/env python3
"""llm_load: a small, dependency-free client for e2e cases and benchmarks.

It drives an OpenAI-compatible endpoint (the llmgw worker) with two
workloads and prints one JSON object with the figures:

  multiturn     N conversations of T turns; each turn resends the whole
                conversation so far plus a new user message (what chat
                clients do), alternating turns across the given worker URLs.
                Reports how often a turn lands on the same engine
                (target-pod) as the previous turn of its conversation.
  shared-prefix G groups, each with a long system prompt shared by Q
                questions (peers.md section 4.2 "b2b", scaled down), sent
                streaming with C concurrent clients in a shuffled order.
                Reports time to first token (first content chunk) mean/p50/
                p99 and failures.

  steady        C concurrent clients send requests back to back (a --stream-
                fraction of them streaming) until --stop-file appears or
                --max-seconds pass, spread over the given URLs; each request
                on a fresh connection and never retried, so every failure
                is counted: a status other than 200, a connection error or
                timeout, or a stream that does not end with [DONE] (an error
                event). Reports sent/ok/failed, failures by reason, and with
                --failures-log one JSON line per failure (time, reason).

Only the standard library: http.client over keep-alive connections, one
thread per concurrent client. Bounded in requests and time; it never talks
to anything but the URLs it is given (loopback in tests).
"""
import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu").split()


def text(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words))


class Client:
    """One keep-alive connection to one base URL."""

    def __init__(self, base, timeout):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def post(self, path, body, headers, stream):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers)
        data = json.dumps(body).encode()
        for attempt in (0, 1):  # one reconnect if the server closed an idle connection
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                t0 = time.monotonic()
                self.conn.request("POST", path, data, hdrs)
                resp = self.conn.getresponse()
                ttft = None
                if stream and resp.status == 200:
                    while True:
                        line = resp.readline()
                        if not line:
                            break
                        if ttft is None and line.startswith(b"data:") and b'"content":"' in line \
                                and b'"content":""' not in line:
                            ttft = time.monotonic() - t0
                    resp.read()
                else:
                    resp.read()
                return resp.status, resp.getheader("target-pod"), ttft, time.monotonic() - t0
            except (http.client.HTTPException, OSError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    return 0, None, None, 0.0
        return 0, None, None, 0.0


def multiturn(a):
    rng = random.Random(a.seed)
    urls = a.urls.split(",")
    clients = [Client(u, a.timeout) for u in urls]
    same = total = failures = 0
    for c in range(a.conversations):
        msgs = [{"role": "system", "content": f"conversation {c}: " + text(rng, a.system_words)}]
        prev = None
        for t in range(a.turns):
            msgs.append({"role": "user", "content": text(rng, a.turn_words)})
            body = {"model": a.model, "messages": msgs, "max_tokens": a.max_tokens}
            status, pod, _, _ = clients[t % len(clients)].post(
                "/v1/chat/completions", body, {"routing-strategy": a.strategy}, False)
            if status != 200:
                failures += 1
                continue
            if prev is not None:
                total += 1
                same += pod == prev
            prev = pod
            msgs.append({"role": "assistant", "content": text(rng, a.max_tokens)})
    return {"turn_pairs": total, "same_engine": same,
            "same_engine_fraction": same / total if total else 0.0, "failures": failures}


def shared_prefix(a):
    rng = random.Random(a.seed)
    systems = [f"group {g}: " + text(rng, a.system_words) for g in range(a.groups)]
    jobs = [(g, text(rng, a.turn_words)) for g in range(a.groups) for _ in range(a.questions)]
    rng.shuffle(jobs)
    lock = threading.Lock()
    ttfts, failures = [], [0]
    pods = {}
    deadline = time.monotonic() + a.max_seconds

    def worker():
        cl = Client(a.urls.split(",")[0], a.timeout)
        while time.monotonic() < deadline:
            with lock:
                if not jobs:
                    return
                g, q = jobs.pop()
            body = {"model": a.model, "stream": True, "max_tokens": a.max_tokens,
                    "messages": [{"role": "system", "content": systems[g]},
                                 {"role": "user", "content": q}]}
            status, pod, ttft, _ = cl.post("/v1/chat/completions", body,
                                           {"routing-strategy": a.strategy}, True)
            with lock:
                if status != 200 or ttft is None:
                    failures[0] += 1
                else:
                    ttfts.append(ttft * 1000.0)
                    pods[pod] = pods.get(pod, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ttfts.sort()
    p = lambda q: ttfts[min(len(ttfts) - 1, int(q * len(ttfts)))] if ttfts else 0.0
    return {"requests": len(ttfts) + failures[0], "failures": failures[0],
            "ttft_mean_ms": statistics.fmean(ttfts) if ttfts else 0.0,
            "ttft_p50_ms": p(0.50), "ttft_p99_ms": p(0.99), "per_engine": pods}


def one_request(base, body, stream, timeout, headers):
    """One request on its own connection: None if it succeeded, else why not."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.request("POST", "/v1/chat/completions", json.dumps(body).encode(),
                     dict({"Content-Type": "application/json"}, **headers))
        resp = conn.getresponse()
        if resp.status != 200:
            resp.read()
            return f"status_{resp.status}"
        if not stream:
            data = json.loads(resp.read())
            return None if data.get("choices") else "no_choices"
        last = b""
        while True:
            line = resp.readline()
            if not line:
                break
            if line.startswith(b"data:"):
                last = line.strip()
        return None if last == b"data: [DONE]" else "stream_error_event"
    except (http.client.HTTPException, OSError, ValueError) as e:
        return "conn_" + type(e).__name__
    finally:
        conn.close()


def steady(a):
    urls = a.urls.split(",")
    lock = threading.Lock()
    st = {"sent": 0, "ok": 0, "failed": 0, "streams": 0, "reasons": {}}
    flog = open(a.failures_log, "a") if a.failures_log else None
    headers = dict(h.split(":", 1) for h in a.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    t_start = time.monotonic()
    deadline = t_start + a.max_seconds

    def worker(i):
        rng = random.Random(a.seed * 1000 + i)
        n = 0
        while time.monotonic() < deadline and not (a.stop_file and os.path.exists(a.stop_file)):
            stream = rng.random() < a.stream_fraction
            body = {"model": a.model, "max_tokens": a.max_tokens, "stream": stream,
                    "messages": [{"role": "user", "content": text(rng, a.turn_words)}]}
            why = one_request(urls[(i + n) % len(urls)], body, stream, a.timeout, headers)
            n += 1
            with lock:
                st["sent"] += 1
                st["streams"] += stream
                if why is None:
                    st["ok"] += 1
                else:
                    st["failed"] += 1
                    st["reasons"][why] = st["reasons"].get(why, 0) + 1
                    if flog:
                        flog.write(json.dumps({"t": round(time.time(), 3), "reason": why,
                                               "stream": stream}) + "\n")
                        flog.flush()
            if a.pause_ms:
                time.sleep(a.pause_ms / 1000.0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if flog:
        flog.close()
    st["seconds"] = round(time.monotonic() - t_start, 2)
    return st


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["multiturn", "shared-prefix", "steady"])
    ap.add_argument("--urls", required=True, help="worker base URLs, comma separated")
    ap.add_argument("--model", default="mock-model")
    ap.add_argument("--strategy", default="prefix-cache")
    ap.add_argument("--conversations", type=int, default=20)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--system-words", type=int, default=300)
    ap.add_argument("--turn-words", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stream-fraction", type=float, default=0.5, help="steady")
    ap.add_argument("--stop-file", default="", help="steady: stop once this file exists")
    ap.add_argument("--pause-ms", type=float, default=0.0, help="steady: pause between requests")
    ap.add_argument("--failures-log", default="", help="steady: append failures here (JSONL)")
    ap.add_argument("--header", action="append", default=[], help="steady: 'Name: value', repeatable")
    a = ap.parse_args()
    out = {"multiturn": multiturn, "shared-prefix": shared_prefix, "steady": steady}[a.mode](a)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
