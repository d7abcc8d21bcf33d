#!/usr/bin/env python3
"""sse_load: closed-loop streaming load with per-chunk timing.

C keep-alive connections each send the same streaming POST again and again
for D seconds (asyncio, standard library only) and time every SSE event as
it arrives: time to the first event, the gaps between consecutive events of
one response (inter-chunk latency), whole-response latency, and events per
second over the run. Events that arrive in one read share its timestamp, so
a relay that batches chunks shows as gaps of 0 followed by a long one, as a
client would see it. Prints one JSON object.

  sse_load.py --url http://127.0.0.1:8080/v1/chat/completions --body-file b.json \
      --header 'x-foo: 1' --concurrency 32 --duration 6
"""
import argparse
import asyncio
import json
import sys
import time
import urllib.parse


def pct(v, q):
    if not v:
        return None
    i = max(0, min(len(v) - 1, int(round(q * len(v) + 0.5)) - 1))
    return v[i]


class Stats:
    def __init__(self):
        self.ok = 0
        self.errors = 0
        self.non2xx = 0
        self.events = 0
        self.ttfc = []
        self.gaps = []
        self.lat = []


async def one_response(reader, st, t0):
    """Reads one response; returns (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    keep = hdrs.get("connection", "").lower() != "close"
    chunked = "chunked" in hdrs.get("transfer-encoding", "").lower()
    clen = int(hdrs["content-length"]) if "content-length" in hdrs else None
    buf = bytearray()
    payload = bytearray()  # decoded body not yet split into events
    times = []
    need = None  # bytes of the current chunk still to read (+2 for CRLF)
    done = False
    received = 0

    def take_events(now):
        nonlocal payload
        while True:
            i = payload.find(b"\n\n")
            if i < 0:
                return
            ev = bytes(payload[:i])
            del payload[:i + 2]
            if ev.startswith(b"data:") and b"[DONE]" not in ev:
                times.append(now)

    while not done:
        data = await reader.read(65536)
        if not data:
            if chunked or clen is not None:
                raise ConnectionError("eof mid-response")
            keep = False
            break
        now = time.monotonic()
        if not chunked:
            payload += data
            received += len(data)
            if clen is not None and received >= clen:
                done = True
            take_events(now)
            continue
        buf += data
        while True:
            if need is None:
                j = buf.find(b"\r\n")
                if j < 0:
                    break
                size = int(bytes(buf[:j]).split(b";")[0], 16)
                del buf[:j + 2]
                if size == 0:
                    # no trailers expected: the final CRLF ends the body
                    while len(buf) < 2:
                        more = await reader.read(65536)
                        if not more:
                            raise ConnectionError("eof in last chunk")
                        buf += more
                    done = True
                    break
                need = size + 2
            if len(buf) < need:
                break
            payload += buf[:need - 2]
            del buf[:need]
            need = None
        take_events(now)
    end = time.monotonic()
    if status == 200:
        st.ok += 1
        st.events += len(times)
        st.lat.append((end - t0) * 1000)
        if times:
            st.ttfc.append((times[0] - t0) * 1000)
            st.gaps += [(b - a) * 1000 for a, b in zip(times, times[1:])]
    else:
        st.non2xx += 1
    return status, keep


async def client(a, req, st, deadline):
    reader = writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(a.host, a.port, limit=1 << 22), a.timeout)
            t0 = time.monotonic()
            writer.write(req)
            _, keep = await asyncio.wait_for(one_response(reader, st, t0), a.timeout)
            if not keep:
                writer.close()
                writer = None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError,
                IndexError):
            st.errors += 1
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def main_async(a):
    u = urllib.parse.urlsplit(a.url)
    a.host, a.port = u.hostname, u.port or 80
    with open(a.body_file, "rb") as f:
        body = f.read()
    hdr = [f"POST {u.path or '/'} HTTP/1.1", f"Host: {u.netloc}", "Content-Type: application/json",
           f"Content-Length: {len(body)}", "Accept: text/event-stream"]
    hdr += a.header
    req = ("\r\n".join(hdr) + "\r\n\r\n").encode() + body
    st = Stats()
    t0 = time.monotonic()
    deadline = t0 + a.duration
    await asyncio.gather(*(client(a, req, st, deadline) for _ in range(a.concurrency)))
    el = time.monotonic() - t0
    st.gaps.sort()
    st.ttfc.sort()
    st.lat.sort()
    return {
        "requests": st.ok, "non2xx": st.non2xx, "errors": st.errors, "seconds": el,
        "rps": st.ok / el, "chunks": st.events, "chunks_per_s": st.events / el,
        "chunks_per_req": st.events / st.ok if st.ok else 0,
        "ttfc_p50_ms": pct(st.ttfc, .5), "ttfc_p99_ms": pct(st.ttfc, .99),
        "itl_p50_ms": pct(st.gaps, .5), "itl_p90_ms": pct(st.gaps, .9), "itl_p99_ms": pct(st.gaps, .99),
        "itl_mean_ms": sum(st.gaps) / len(st.gaps) if st.gaps else None,
        # share of chunks that arrived in the same read as the one before
        # (gap < 0.5 ms): chunks relayed in bursts rather than one by one
        "itl_burst_frac": sum(1 for g in st.gaps if g < 0.5) / len(st.gaps) if st.gaps else None,
        "lat_p50_ms": pct(st.lat, .5), "lat_p99_ms": pct(st.lat, .99),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    json.dump(asyncio.run(main_async(a)), sys.stdout)
    print()


if __name__ == "__main__":
    main()
