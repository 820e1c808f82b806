#!/usr/bin/env python3
"""bench/deferred_queue.py — does a large deferred queue slow fresh mail?

Starts tern (the build in build/) with a dead next hop (down.test, nothing
listens) and a healthy one (ok.test, a recording sink), measures the latency
from the end of DATA to the sink's receipt for fresh mail to ok.test with an
empty queue, then again with N (default 10,000) messages for down.test in
deferred/, all due for retry at once (the worst case: every queue run moves
them through active/ while the fresh mail arrives).  The deferred files are
copies of a real queue file written by tern (renamed to fresh queue IDs), so
the setup takes seconds instead of N SMTP sessions.

  python3 bench/deferred_queue.py [N] [SAMPLES]

Prints the latencies (median, max) and the queue manager's CPU time.
Not part of make check.
"""
import os
import signal
import smtplib
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "blackbox"))
from tern_harness import SmtpSink, Tern, free_port, mail_owner, prog_name, proc_table, wait_for  # noqa: E402
import pwd  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
SAMPLES = int(sys.argv[2]) if len(sys.argv) > 2 else 20


def qmgr_pid(t):
    for pid, ppid, _pg, argv in proc_table():
        if ppid == t.master_pid() and prog_name(argv) == "qmgr":
            return pid
    return None


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(port, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.sendmail("bench@client.test", [rcpt], ("Subject: %s\r\n\r\nx\r\n" % subject).encode())


def latencies(t, sink, tag):
    out = []
    for i in range(SAMPLES):
        n = len(sink.messages)
        t0 = time.monotonic()
        send(t.port, "fresh@ok.test", "%s %d" % (tag, i))
        while len(sink.messages) <= n:  # poll finely: latencies are milliseconds
            if time.monotonic() - t0 > 60:
                raise RuntimeError("fresh mail not delivered within 60 s")
            time.sleep(0.002)
        out.append(time.monotonic() - t0)
        time.sleep(0.05)
    return out


def main():
    sink = SmtpSink().start()
    down = free_port()
    t = Tern(transport={"ok.test": "smtp:[127.0.0.1]:%d" % sink.port, "down.test": "smtp:[127.0.0.1]:%d" % down},
             conf={"queue_run_delay": "1s", "minimal_backoff": "1s", "maximal_backoff": "2s"}, name="bench")
    try:
        t.start()
        base = latencies(t, sink, "baseline")
        # One real queue file for down.test, captured while qmgr is stopped.
        q = qmgr_pid(t)
        os.kill(q, signal.SIGSTOP)
        send(t.port, "x@down.test", "deferred template")
        inc = os.path.join(t.queue, "incoming")
        assert wait_for(lambda: os.listdir(inc), 5.0)
        name = os.listdir(inc)[0]
        with open(os.path.join(inc, name), "rb") as f:
            data = f.read()
        os.unlink(os.path.join(inc, name))
        d = os.path.join(t.queue, "deferred")
        t0 = time.monotonic()
        past = time.time() - 10
        pw = pwd.getpwnam(mail_owner()) if os.getuid() == 0 else None
        for i in range(N):
            qid = "%08X%012X" % (0x10000000 + i, i)
            p = os.path.join(d, qid)
            with open(p, "wb") as f:
                f.write(data.replace(name.encode(), qid.encode(), 1))
            if pw:
                os.chown(p, pw.pw_uid, pw.pw_gid)  # the queue manager runs as mail_owner
            os.utime(p, (past, past))
        setup = time.monotonic() - t0
        os.kill(q, signal.SIGCONT)
        time.sleep(2.0)  # let the queue runs start churning
        c0 = cpu_seconds(q)
        log0 = len(t.log_text())
        w0 = time.monotonic()
        loaded = latencies(t, sink, "loaded")
        cpu = cpu_seconds(q) - c0
        wall = time.monotonic() - w0
        retried = t.log_text()[log0:].count(": deferred, attempt")
        suspended = t.log_text()[log0:].count("delivery temporarily suspended")
        print("deferred messages: %d (written in %.1fs), samples: %d" % (N, setup, SAMPLES))
        print("fresh mail latency, empty queue:    median %.3fs  max %.3fs"
              % (statistics.median(base), max(base)))
        print("fresh mail latency, %5d deferred: median %.3fs  max %.3fs"
              % (N, statistics.median(loaded), max(loaded)))
        print("qmgr CPU during the loaded samples: %.2fs of %.1fs wall; %d deferred messages retried"
              " meanwhile (%d without a connection: dead destination)" % (cpu, wall, retried, suspended))
        os.kill(q, signal.SIGSTOP)  # count a still queue
        left = sum(len(os.listdir(os.path.join(t.queue, x))) for x in ("incoming", "active", "deferred"))
        bad = len(os.listdir(os.path.join(t.queue, "corrupt")))
        os.kill(q, signal.SIGCONT)
        print("deferred messages still queued: %d of %d (%d corrupt)" % (left, N, bad))
    finally:
        t.cleanup()
        sink.stop()


if __name__ == "__main__":
    main()
