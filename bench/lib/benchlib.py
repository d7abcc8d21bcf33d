"""benchlib: the pieces bench/proxy and bench/routing share.

Standard library only. Processes started here are tracked by pid and stopped
by pid (SIGTERM, then SIGKILL after a grace period) when the harness exits,
whatever the exit path. CPU and memory figures come from /proc: utime+stime
of /proc/<pid>/stat (clock ticks) and VmHWM of /proc/<pid>/status, whose peak
is reset at the start of each measurement by writing 5 to
/proc/<pid>/clear_refs (Linux >= 4.0; without permission the lifetime peak is
reported instead and the report says so).
"""
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "e2e", "tools"))
import free_port as free_port_tool  # noqa: E402


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_USED_PORTS = set()


def free_port():
    """A loopback port below the ephemeral range, unique in this run."""
    return free_port_tool.pick(_USED_PORTS)


class Procs:
    """Processes this harness started; all stopped at exit, by pid."""

    def __init__(self):
        self.procs = []  # (name, Popen)
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        self.stop_all()
        sys.exit(128 + signum)

    def start(self, name, argv, logfile, env=None, cwd=None):
        out = open(logfile, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd)
        out.close()
        self.procs.append((name, p))
        return p

    def check_alive(self):
        dead = [(n, p.returncode) for n, p in self.procs if p.poll() is not None]
        return dead

    def stop(self, p, grace=5.0):
        self.procs = [(n, q) for n, q in self.procs if q is not p]
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, p in reversed(self.procs):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def http_post(url, body=b"", timeout=5.0, headers=None):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait_http(url, timeout=20.0, procs=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st, _ = http_get(url, 1.0)
            if st == 200:
                return
        except Exception:
            pass
        if procs is not None and procs.check_alive():
            raise RuntimeError(f"a process died while waiting for {url}: {procs.check_alive()}")
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {timeout}s: {url}")


def children(pid):
    """Direct children of <pid> (nginx master -> workers)."""
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def cpu_seconds(pid):
    """utime + stime of <pid> (all its threads), in seconds; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def reset_peak_rss(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class ProcMeter:
    """CPU seconds and peak RSS of a set of named pids over one interval."""

    def __init__(self, pids):
        self.pids = dict(pids)  # name -> pid
        self.peak_reset = True

    def begin(self):
        self.cpu0 = {n: cpu_seconds(p) for n, p in self.pids.items()}
        for p in self.pids.values():
            self.peak_reset &= reset_peak_rss(p)

    def end(self):
        res = {}
        for n, p in self.pids.items():
            c1 = cpu_seconds(p)
            c0 = self.cpu0.get(n)
            res[n] = {"cpu_s": (c1 - c0) if (c1 is not None and c0 is not None) else None,
                      "peak_rss_kb": peak_rss_kb(p)}
        return res


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        s = (p.stdout + p.stderr).strip().splitlines()
        return s[0] if s else "?"
    except Exception:
        return "?"


def pct(sorted_vals, q):
    """Nearest-rank percentile of an ascending list (q in 0..1)."""
    if not sorted_vals:
        return None
    i = max(0, min(len(sorted_vals) - 1, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, int):
        return str(v)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.{nd + 2}f}"


def md_table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def gnuplot(script, cwd):
    """Runs a gnuplot script; returns True when it succeeded."""
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no plots")
        return False
    p = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd, capture_output=True)
    if p.returncode != 0:
        log("gnuplot failed: " + p.stderr.strip()[-500:])
        return False
    return True


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


WRK_NUM = re.compile(r"^([\d.]+)(us|ms|s|m)?$")


def wrk_ms(v):
    m = WRK_NUM.match(v)
    if not m:
        return None
    x, u = float(m.group(1)), m.group(2) or "ms"
    return x * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


def parse_wrk(text):
    """Figures from `wrk --latency` output: rps, requests, p50/p90/p99 ms, errors."""
    r = {"rps": None, "requests": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None,
         "non2xx": 0, "sock_errors": 0}
    for line in text.splitlines():
        s = line.split()
        if not s:
            continue
        if s[0] == "Requests/sec:":
            r["rps"] = float(s[1])
        elif len(s) >= 3 and s[1] == "requests" and s[2] == "in":
            r["requests"] = int(s[0])
        elif s[0] in ("50%", "90%", "99%") and len(s) == 2:
            r[f"p{s[0][:-1]}_ms"] = wrk_ms(s[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            r["non2xx"] = int(s[-1])
        elif s[0] == "Socket" and s[1] == "errors:":
            r["sock_errors"] = sum(int(x.rstrip(",")) for x in s[3::2])
    return r


def lua_string(s):
    """A Lua long-bracket literal that cannot be closed by <s>."""
    eq = "="
    while f"]{eq}]" in s:
        eq += "="
    return f"[{eq}[{s}]{eq}]"


def wrk_script(path, body, headers):
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n')
        for k, v in headers.items():
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
        f.write(f"wrk.body = {lua_string(body)}\n")


BINARIES = ("controller/llmgw-controller", "dataplane/llmgw-worker", "e2e/mock/llmgw-mock-engine")


def private_binaries(build_dir, tmp):
    """Copies the llmgw binaries out of the (shared) build dir, so a rebuild
    during the run cannot swap them under us; returns the copy's root."""
    dst = os.path.join(tmp, "bin")
    for b in BINARIES:
        src = os.path.join(build_dir, b)
        if not os.access(src, os.X_OK):
            raise RuntimeError(f"missing binary {src}: run scripts/build build")
        os.makedirs(os.path.dirname(os.path.join(dst, b)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, b))
    return dst


def llmgw_rev():
    """Which llmgw was measured: LLMGW_REV, else git's HEAD (+ dirty count)."""
    if os.environ.get("LLMGW_REV"):
        return os.environ["LLMGW_REV"]
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip().splitlines()
        if not rev:
            return "unknown"
        return rev + (f" + uncommitted changes in {len(dirty)} files" if dirty else "")
    except Exception:
        return "unknown"
