#!/usr/bin/env python3
"""Memory of a running tern: RSS of every process at idle and with N open
SMTP sessions (default 50), read from /proc/PID/status (VmRSS).

    python3 bench/rss.py [SESSIONS]

Prints one line per process kind (count, RSS each min/max, total) for each
phase, then the total.  Loopback only; the instance is stopped at the end.
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "blackbox"))
import tern_harness as h  # noqa: E402


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def report(phase, t):
    kinds = {}
    for pid, name in t.processes().items():
        kinds.setdefault(name, []).append(rss_kb(pid))
    total = 0
    for name in sorted(kinds):
        v = kinds[name]
        total += sum(v)
        print("%-6s %-12s n=%-3d rss_kb min=%-6d max=%-6d sum=%d" % (phase, name, len(v), min(v), max(v), sum(v)))
    print("%-6s %-12s total_rss_kb=%d" % (phase, "ALL", total))


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    t = h.Tern(name="rss", conf={"default_process_limit": str(max(100, n + 10))})
    socks = []
    try:
        t.start()
        time.sleep(1.0)
        report("idle", t)
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"EHLO bench.test\r\n")
            while True:
                line = f.readline()
                if len(line) < 4 or line[3:4] != b"-":
                    break
            socks.append((s, f))
        time.sleep(1.0)
        report("busy%d" % n, t)
    finally:
        for s, _ in socks:
            s.close()
        t.cleanup()


if __name__ == "__main__":
    main()
