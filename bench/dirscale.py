#!/usr/bin/env python3
"""bench/dirscale.py — do flat queue directories slow down at 100,000 files?

Measures, in directories holding 1,000 and 100,000 queue-file-sized files on
the file system of DIR (default /var/tmp): a full readdir, and 1,000 of each
per-message operation the queue makes (rename between two directories as
incoming → active → deferred does, create + unlink, stat by name).  The
decision on hashed subdirectories in queue/QUEUE.md rests on these figures.

  python3 bench/dirscale.py [DIR]
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

base = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp"
fs = subprocess.run(["stat", "-f", "-c", "%T", base], stdout=subprocess.PIPE).stdout.decode().strip()


def run(n):
    top = tempfile.mkdtemp(prefix="tern-dirscale-", dir=base)
    a, b = os.path.join(top, "a"), os.path.join(top, "b")
    os.mkdir(a)
    os.mkdir(b)
    data = b"x" * 600
    names = ["%020X" % (i * 7919 + 1) for i in range(n)]
    t0 = time.monotonic()
    for nm in names:
        with open(os.path.join(a, nm), "wb") as f:
            f.write(data)
    fill = time.monotonic() - t0
    t0 = time.monotonic()
    count = sum(1 for _ in os.scandir(a))
    rd = time.monotonic() - t0
    pick = random.sample(names, 1000)
    t0 = time.monotonic()
    for nm in pick:
        os.rename(os.path.join(a, nm), os.path.join(b, nm))
    for nm in pick:
        os.rename(os.path.join(b, nm), os.path.join(a, nm))
    ren = (time.monotonic() - t0) / 2000
    t0 = time.monotonic()
    for nm in pick:
        os.stat(os.path.join(a, nm))
    st = (time.monotonic() - t0) / 1000
    t0 = time.monotonic()
    for i in range(1000):
        p = os.path.join(a, "NEW%017d" % i)
        with open(p, "wb") as f:
            f.write(data)
        os.unlink(p)
    cu = (time.monotonic() - t0) / 1000
    shutil.rmtree(top)
    assert count == n
    return fill, rd, ren, st, cu


print("file system: %s (%s)" % (base, fs))
print("%8s %9s %12s %12s %12s %14s" % ("files", "fill s", "readdir ms", "rename us", "stat us", "create+rm us"))
for n in (1000, 100000):
    fill, rd, ren, st, cu = run(n)
    print("%8d %9.2f %12.1f %12.1f %12.1f %14.1f" % (n, fill, rd * 1e3, ren * 1e6, st * 1e6, cu * 1e6))
