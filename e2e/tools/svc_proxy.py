#!/usr/bin/env python3
"""svc_proxy: a Kubernetes Service stand-in for e2e tests (stdlib only).

A Service sends new connections only to ready endpoints (kube-proxy follows
the EndpointSlice, which follows each pod's readiness probe) and leaves
established connections alone. This proxy does the same for loopback
processes: each backend has a readiness URL polled every --interval seconds;
each --map LISTEN=PORT,PORT,... forwards a new connection on LISTEN to the
matching port of the first ready backend (backend i owns the i-th port), or
closes it at once when none is ready.

    svc_proxy.py --ready http://127.0.0.1:8091/readyz --ready http://127.0.0.1:8092/readyz \
        --map 7701=17701,27701 --map 7702=17702,27702
"""

import argparse
import select
import signal
import socket
import sys
import threading
import time
import urllib.request

READY = []  # per backend: bool
LOCK = threading.Lock()


def poll(urls, interval):
    while True:
        states = []
        for u in urls:
            try:
                with urllib.request.urlopen(u, timeout=interval) as r:
                    states.append(r.status == 200)
            except Exception:
                states.append(False)
        with LOCK:
            if states != READY:
                sys.stderr.write("svc_proxy: ready=%s\n" % states)
                sys.stderr.flush()
            READY[:] = states
        time.sleep(interval)


def pump(a, b):
    try:
        while True:
            r, _, _ = select.select([a, b], [], [], 1.0)
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                (b if s is a else a).sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass


def serve(listen, ports):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen))
    srv.listen(128)
    while True:
        c, _ = srv.accept()
        with LOCK:
            idx = next((i for i, r in enumerate(READY) if r), None)
        if idx is None:
            c.close()  # no ready endpoint: the connection is refused
            continue
        try:
            up = socket.create_connection(("127.0.0.1", ports[idx]), timeout=2)
        except OSError:
            c.close()
            continue
        up.settimeout(None)
        threading.Thread(target=pump, args=(c, up), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ready", action="append", required=True, help="backend readiness URL")
    p.add_argument("--map", action="append", required=True, help="LISTEN=PORT,PORT,...")
    p.add_argument("--interval", type=float, default=0.1)
    a = p.parse_args()
    READY.extend([False] * len(a.ready))
    threading.Thread(target=poll, args=(a.ready, a.interval), daemon=True).start()
    for m in a.map:
        listen, ports = m.split("=")
        ports = [int(x) for x in ports.split(",")]
        if len(ports) != len(a.ready):
            p.error("--map %s: one port per backend" % m)
        threading.Thread(target=serve, args=(int(listen), ports), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
