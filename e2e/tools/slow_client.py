#!/usr/bin/env python3
"""slow_client: hostile or broken HTTP clients on raw sockets, for e2e cases.

  stall-headers  send the request line and one header, then nothing
  trickle-headers send a header block one byte every --interval seconds
  stall-body     send complete headers announcing a body, half the body, then nothing
  trickle-body   send complete headers, then the body one byte every --interval s
  hold           open --count connections and keep them open, idle, for
                 --max-seconds or until --stop-file exists
  burst          open --count connections at once, send a request on each and
                 report what came back within --max-seconds in all (status
                 lines, closes, resets, timeouts)

Every mode but burst runs --count connections in parallel for at most
--max-seconds and prints one JSON object: for each connection what the server
did (closed/reset/answered with a status, or still open at the end) and after
how many seconds. Loopback only; the standard library only.
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

BODY = b'{"model":"mock-model","messages":[{"role":"user","content":"slow"}]}'


def head(body_len):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % body_len)


def server_gone(s):
    """Non-blocking check: 'closed', 'reset', 'status NNN', or None (still open)."""
    s.setblocking(False)
    try:
        data = s.recv(4096)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return "reset"
    finally:
        s.setblocking(True)
    if not data:
        return "closed"
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    return "status " + line.split(" ")[1] if line.startswith("HTTP/") else "data"


def slow_one(a, mode, out, idx):
    t0 = time.monotonic()
    s = socket.create_connection((a.host, a.port), timeout=5)
    if mode == "stall-headers":
        payload, sent = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n", None
        s.sendall(payload)
    elif mode == "stall-body":
        s.sendall(head(len(BODY)) + BODY[: len(BODY) // 2])
    elif mode == "trickle-body":
        s.sendall(head(len(BODY)))
    stream = {"trickle-headers": head(len(BODY)) + BODY, "trickle-body": BODY}.get(mode, b"")
    pos = 0
    res = None
    while time.monotonic() - t0 < a.max_seconds:
        res = server_gone(s)
        if res is not None:
            break
        if stream and pos < len(stream):
            try:
                s.sendall(stream[pos:pos + 1])
            except OSError:
                res = "reset"
                break
            pos += 1
        time.sleep(a.interval)
    out[idx] = {"result": res or "open", "after_s": round(time.monotonic() - t0, 2),
                "bytes_trickled": pos}
    s.close()


def burst(a):
    socks, results = [], {}
    for _ in range(a.count):
        try:
            socks.append(socket.create_connection((a.host, a.port), timeout=5))
        except OSError as e:
            results["connect_" + type(e).__name__] = results.get("connect_" + type(e).__name__, 0) + 1
    req = head(len(BODY)) + BODY
    for s in socks:
        try:
            s.sendall(req)
        except OSError:
            pass
    deadline = time.monotonic() + a.max_seconds
    for s in socks:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = s.recv(4096)
            line = data.split(b"\r\n", 1)[0].decode("latin-1")
            r = ("status " + line.split(" ")[1]) if line.startswith("HTTP/") else ("closed" if not data else "data")
            # An error answer is told apart by its x-error-* header.
            for h in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
                if h.lower().startswith(b"x-error-"):
                    r += " " + h.split(b":", 1)[0].lower().decode("latin-1")
        except ConnectionResetError:
            r = "reset"
        except socket.timeout:
            r = "timeout"
        except OSError as e:
            r = type(e).__name__
        results[r] = results.get(r, 0) + 1
        s.close()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["stall-headers", "trickle-headers", "stall-body",
                                     "trickle-body", "hold", "burst"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--ready-file", default="", help="hold: touch this once all are open")
    ap.add_argument("--stop-file", default="", help="hold: let go (all at once) once this exists")
    a = ap.parse_args()
    if a.mode == "burst":
        json.dump(burst(a), sys.stdout)
    elif a.mode == "hold":
        socks = [socket.create_connection((a.host, a.port), timeout=5) for _ in range(a.count)]
        if a.ready_file:
            open(a.ready_file, "w").close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < a.max_seconds and not (a.stop_file and os.path.exists(a.stop_file)):
            time.sleep(0.02)
        gone = [server_gone(s) for s in socks]
        json.dump({"open": sum(g is None for g in gone), "gone": sum(g is not None for g in gone),
                   "seconds": round(time.monotonic() - t0, 2)}, sys.stdout)
    else:
        out = [None] * a.count
        th = [threading.Thread(target=slow_one, args=(a, a.mode, out, i)) for i in range(a.count)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
