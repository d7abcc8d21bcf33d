#!/usr/bin/env python3
"""free_port.py REGISTRY: prints a loopback TCP port for a test to listen on.

bind(("127.0.0.1", 0)) is not enough: it hands out ports from the kernel's
ephemeral range, where any process's outgoing connection can take the port
before the test's server binds it, and two calls may return the same port.
So the port is drawn at random from below the ephemeral range, must be
bindable right now, and is never one already written to REGISTRY (a file
shared by the calls of one test run, created if missing).
"""
import random
import socket
import sys

FLOOR = 20000


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick(used):
    """A port not in `used` that binds now; added to `used`."""
    low = FLOOR
    high = ephemeral_low()
    if high - low < 2000:  # an unusual ip_local_port_range
        low, high = 10000, 65535
    for _ in range(1000):
        port = random.randrange(low, high)
        if port not in used and bindable(port):
            used.add(port)
            return port
    raise RuntimeError("no free loopback port")


def main():
    registry = sys.argv[1]
    try:
        with open(registry) as f:
            used = {int(line) for line in f if line.strip()}
    except FileNotFoundError:
        used = set()
    port = pick(used)
    with open(registry, "a") as f:
        f.write(f"{port}\n")
    print(port)


if __name__ == "__main__":
    main()
