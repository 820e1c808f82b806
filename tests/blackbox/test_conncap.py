#!/usr/bin/env python3
"""test_conncap — the per-client connection cap (issue 11, item 5).

smtpd_client_connection_count_limit counts one client address's sessions
over every prefork smtpd child of a service, through the scoreboard the
master shares with them (common/scoreboard.h).  All clients are 127.0.0.1.

Instance "cap": limit 3, smtpd_client_event_limit_exceptions empty,
default_process_limit 10.
  cap_three_served       3 sessions get 220 and answer NOOP with 250
  cap_fourth_refused     the 4th gets "421 4.7.0 ... too many connections from
                         127.0.0.1" and is closed by the server
  cap_logged             the log has "warning: Connection concurrency limit
                         exceeded: 4 from unknown[127.0.0.1]"
  cap_close_frees        after QUIT on one of the 3, a new client gets 220
                         (retried for at most 10 s: the slot is emptied right
                         after the session), and the next one 421 again
  cap_kill9_frees        kill -9 of the smtpd serving one of the 3: its client
                         sees the connection close, a new client gets 220
                         within 15 s (the master clears the dead child's
                         slot), and the next one 421 again
  reload_*               with 3 sessions open, default_process_limit raised to
                         20 and SIGHUP: the old sessions still work (NOOP 250),
                         a new client is served by a new-generation smtpd and
                         gets 421 (the old generation's sessions still count);
                         after QUIT on an old session a new client gets 220,
                         and with 2 old + 1 new session the next one 421
  cap_clean_stop         SIGTERM afterwards stops every process of the instance
Instance "exempt": limit 3, exceptions left at their default ($mynetworks,
which holds 127.0.0.0/8).
  exceptions_default     10 simultaneous sessions all get 220
Instance "off": limit 0, exceptions empty.
  limit_zero             10 simultaneous sessions all get 220

Every wait is bounded (socket timeouts 10 s, retry loops by count and time).
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, Tern, log, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()
LIMIT = 3
BASE = {"smtpd_peername_lookup": "no", "smtpd_min_idle": "2", "smtpd_timeout": "60s"}


def greet(port):
    """(connection, code, text) of one new client's greeting; a refused
    connection counts as code 0."""
    try:
        c = RawSmtp(port, timeout=10)
    except OSError as e:
        return None, 0, "connect: %s" % e
    try:
        code, lines = c.reply()
    except (OSError, EOFError, ValueError) as e:
        c.close()
        return None, 0, "no greeting: %s" % e
    return c, code, " ".join(lines)


def open_sessions(port, n):
    """n sessions that got 220; raises AssertionError otherwise."""
    out = []
    for i in range(n):
        c, code, text = greet(port)
        if code != 220:
            for o in out:
                o.close()
            if c:
                c.close()
            raise AssertionError("session %d of %d: %s" % (i + 1, n, text))
        out.append(c)
    return out


def expect_refused(port):
    """None when a new client gets 421 4.7.0 and is then closed, else why not."""
    c, code, text = greet(port)
    try:
        if code != 421 or "4.7.0" not in text or "too many connections from 127.0.0.1" not in text:
            return "expected 421 4.7.0 too many connections, got %r" % text
        if not c.closed(5):
            return "connection not closed after the 421"
        return None
    finally:
        if c:
            c.close()


def served_within(port, seconds):
    """A new session that got 220 within seconds (a 421 is retried), or None."""
    deadline = time.monotonic() + seconds
    for _ in range(200):
        c, code, text = greet(port)
        if code == 220:
            return c
        if c:
            c.close()
        if time.monotonic() >= deadline:
            log("last answer while waiting for a free slot: %s" % text)
            return None
        time.sleep(0.2)
    return None


def quit_session(c):
    try:
        c.cmd("QUIT")
    except (OSError, EOFError, ValueError):
        pass
    c.close()


def smtpd_pids(t):
    return set(p for p, n in t.processes().items() if n == "smtpd")


def pid_serving(t, conn):
    """The smtpd holding the server side of conn (from /proc/net/tcp)."""
    want_local = "0100007F:%04X" % t.port
    want_remote = ":%04X" % conn.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) > 9 and p[1] == want_local and p[2].endswith(want_remote) and p[9] != "0":
                inode = p[9]
    if not inode:
        return None
    target = "socket:[%s]" % inode
    for pid in smtpd_pids(t):
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return pid
        except OSError:
            continue
    return None


def all_noop(sessions):
    for c in sessions:
        code, lines = c.cmd("NOOP")
        if code != 250:
            return "NOOP: %s" % lines
    return None


def test_cap():
    t = Tern(name="conncap", conf=dict(BASE, smtpd_client_connection_count_limit=str(LIMIT),
                                       smtpd_client_event_limit_exceptions="",
                                       default_process_limit="10"))
    res.on_fail.append(t.diagnostics)
    sessions = []
    try:
        t.start()
        sessions = open_sessions(t.port, LIMIT)
        res.check("cap_three_served", all_noop(sessions) is None, "the 3 sessions do not answer NOOP")
        why = expect_refused(t.port)
        res.check("cap_fourth_refused", why is None, why)
        pat = re.compile(r"smtpd\[\d+\]: warning: Connection concurrency limit exceeded: 4 from \S+\[127\.0\.0\.1\]")
        res.check("cap_logged", wait_for(lambda: pat.search(t.log_text()), 5.0),
                  "no 'Connection concurrency limit exceeded: 4' warning in the log")

        # A session that ends frees its place.
        quit_session(sessions.pop(0))
        c = served_within(t.port, 10)
        if c:
            sessions.append(c)
        res.check("cap_close_frees", c is not None and expect_refused(t.port) is None,
                  "no 220 within 10 s after a QUIT, or no 421 with 3 sessions again")

        # A session whose smtpd is killed frees its place too (the master
        # clears the dead child's slot when it reaps it).
        victim = sessions.pop(0)
        pid = pid_serving(t, victim)
        if pid is None:
            res.fail("cap_kill9_frees", "could not find the smtpd serving a session")
            victim.close()
        else:
            os.kill(pid, signal.SIGKILL)
            gone = victim.closed(5)
            victim.close()
            c = served_within(t.port, 15)
            if c:
                sessions.append(c)
            refused = expect_refused(t.port) if c else "no new session"
            res.check("cap_kill9_frees", gone and c is not None and refused is None,
                      "killed session closed: %s; new client served: %s; next refused: %s"
                      % (gone, c is not None, refused or "yes"))

        # Reload: the old generation's sessions keep counting.
        old_pids = smtpd_pids(t)
        t.conf["default_process_limit"] = "20"
        t.write_conf()
        reloads = t.log_text().count("reloaded ")
        os.kill(t.master_pid(), signal.SIGHUP)
        if not wait_for(lambda: t.log_text().count("reloaded ") > reloads, 10.0):
            raise AssertionError("the master did not log a reload within 10 s")
        res.check("reload_old_sessions_work", all_noop(sessions) is None, "an old session stopped answering")
        c, code, text = greet(t.port)
        new_pid = pid_serving(t, c) if c else None
        res.check("reload_old_sessions_counted", code == 421 and "4.7.0" in text,
                  "a client after the reload got %r" % text)
        res.check("reload_served_by_new_generation", new_pid is None or new_pid not in old_pids,
                  "the refused client was served by an old smtpd (%s)" % new_pid)
        if c:
            c.close()
        quit_session(sessions.pop(0))
        c = served_within(t.port, 10)
        if c:
            sessions.append(c)
        res.check("reload_old_slot_freed", c is not None, "no 220 within 10 s after an old session ended")
        why = expect_refused(t.port) if c else "no new session"
        res.check("reload_mixed_counted", why is None, why)
    finally:
        for c in sessions:
            quit_session(c)
        left = t.stop()
        res.check("cap_clean_stop", not left, "processes left after SIGTERM: %s" % left)
        t.cleanup()
        res.on_fail.remove(t.diagnostics)


def test_uncapped(name, extra):
    t = Tern(name=name, conf=dict(BASE, **extra))
    res.on_fail.append(t.diagnostics)
    sessions = []
    try:
        t.start()
        got = []
        for _ in range(10):
            c, code, text = greet(t.port)
            got.append(code)
            if c:
                sessions.append(c)
        res.check(name, got == [220] * 10, "greetings: %s" % got)
    finally:
        for c in sessions:
            quit_session(c)
        t.stop()
        t.cleanup()
        res.on_fail.remove(t.diagnostics)


def guard(name, fn, *args):
    """Run one group; an exception (not a failed check) is one FAIL."""
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 — reported, never hidden
        import traceback
        res.fail(name, "%s: %s" % (type(e).__name__, e))
        sys.stderr.write(traceback.format_exc())


def main():
    if not prerequisites_or_fail(res, "conncap_build"):
        res.exit()
    guard("cap", test_cap)
    guard("exceptions_default", test_uncapped, "exceptions_default",
          {"smtpd_client_connection_count_limit": str(LIMIT)})
    guard("limit_zero", test_uncapped, "limit_zero",
          {"smtpd_client_connection_count_limit": "0", "smtpd_client_event_limit_exceptions": ""})
    res.exit()


if __name__ == "__main__":
    main()
