#!/usr/bin/env python3
"""test_clock — wall-clock jumps (issue 11, item 5; hostile inputs C 19).

Every tern process runs under libfaketime (Debian `faketime`): the master is
started through `env LD_PRELOAD=libfaketime.so.1 ...` and its children inherit
the environment.  FAKETIME_TIMESTAMP_FILE + FAKETIME_NO_CACHE=1 let the test
move the clock of the running instance by rewriting one file;
FAKETIME_DONT_FAKE_MONOTONIC=1 keeps CLOCK_MONOTONIC/BOOTTIME real and
NO_FAKE_STAT=1 leaves file times alone, as a real step of the system clock
(NTP, `date -s`) does.  The instance has maximal_queue_lifetime = 5d.

  back_*     three messages deferred by a sink that answers RCPT with 451;
             the clock jumps back one day; the sink starts to accept: every
             message is delivered (once) within 60 s — not a day later (a
             retry time stored before the jump lies a day ahead: the queue
             manager treats one beyond maximal_backoff as due, and its own
             timers run on CLOCK_MONOTONIC); the jump is logged.
  forward_*  three more messages deferred; the clock jumps ten days forward:
             for 8 s (several retry passes) no recipient expires (no 4.4.7,
             no bounce to the sender, the messages stay queued), the jump is
             logged and journalled in queue/private/clock; an SMTP session
             opened before the jump still completes a transaction and a new
             one works; after a restart of the whole instance (the journal is
             what survives) still nothing expires; then the sink accepts and
             every message is delivered once.

SKIP when libfaketime is not installed (Debian: apt-get install faketime).
"""

import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, SmtpSink, Tern, log, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()
N = 3


def faketime_lib():
    for pat in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                "/usr/local/lib/faketime/libfaketime.so.1"):
        hits = sorted(glob.glob(pat))
        if hits:
            return hits[0]
    return None


def set_offset(path, offset):
    """Move the instance's clock: libfaketime re-reads the file at every call."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(offset + "\n")
    os.rename(tmp, path)


def send(port, sender, rcpt, tag):
    c = RawSmtp(port, timeout=30)
    try:
        assert c.reply()[0] == 220, "no banner"
        assert c.cmd("EHLO client.test")[0] == 250
        assert c.cmd("MAIL FROM:<%s>" % sender)[0] == 250
        assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send("Subject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\nbody %s\r\n.\r\n" % (tag, tag, tag))
        code, lines = c.reply()
        c.cmd("QUIT")
        return code
    finally:
        c.close()


def transaction(c, sender, rcpt, tag):
    """MAIL..DATA on an open session; the code of the end of DATA."""
    for cmd in ("MAIL FROM:<%s>" % sender, "RCPT TO:<%s>" % rcpt):
        code, lines = c.cmd(cmd)
        if code != 250:
            return "%s -> %s" % (cmd, lines)
    if c.cmd("DATA")[0] != 354:
        return "DATA refused"
    c.send("Subject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\nbody\r\n.\r\n" % (tag, tag))
    return c.reply()[0]


def delivered(sink, tag):
    mid = ("<%s@client.test>" % tag).encode()
    return sum(1 for m in list(sink.messages) if mid in m["data"])


def deferred_files(t):
    return t.queue_files().get("deferred", [])


def attempts_logged(t, since, count):
    """True once the log (after offset since) shows count deferrals."""
    return t.log_text()[since:].count(": deferred, attempt") >= count


def test_clock(lib):
    sink = SmtpSink().start()
    tags_back = ["back%d" % i for i in range(N)]
    tags_fwd = ["fwd%d" % i for i in range(N)]
    t = Tern(name="clock", transport={"remote.test": "smtp:[127.0.0.1]:%d" % sink.port},
             conf={"maximal_queue_lifetime": "5d", "bounce_queue_lifetime": "5d",
                   "minimal_backoff": "1s", "maximal_backoff": "2s", "smtpd_timeout": "300s"})
    ctl = os.path.join(t.dir, "faketime.rc")
    set_offset(ctl, "+0")
    t.wrapper = ["env", "LD_PRELOAD=" + lib, "FAKETIME_TIMESTAMP_FILE=" + ctl, "FAKETIME_NO_CACHE=1",
                 "FAKETIME_DONT_FAKE_MONOTONIC=1", "NO_FAKE_STAT=1"]
    res.on_fail.append(t.diagnostics)
    sender = "owner@localhost"
    try:
        t.start()
        # -- a day back
        for tag in tags_back:
            sink.rcpt_replies["%s@remote.test" % tag] = "451 4.3.0 not now"
        codes = [send(t.port, sender, "%s@remote.test" % tag, tag) for tag in tags_back]
        assert codes == [250] * N, "messages not accepted: %s" % codes
        assert wait_for(lambda: attempts_logged(t, 0, 2 * N), 30), "messages were not deferred twice each"
        mark = len(t.log_text())
        set_offset(ctl, "-1d")
        wait_for(lambda: "clock jumped back" in t.log_text()[mark:], 10)
        time.sleep(3)  # retries stored before the jump now lie a day ahead
        sink.rcpt_replies.clear()
        started = time.monotonic()
        ok = wait_for(lambda: all(delivered(sink, tag) >= 1 for tag in tags_back), 60)
        took = time.monotonic() - started
        log("clock back: delivered %s after %.1fs" % ([delivered(sink, tag) for tag in tags_back], took))
        res.check("back_delivered", ok, "after a jump of a day back, delivered %s within 60 s"
                  % [delivered(sink, tag) for tag in tags_back])
        res.check("back_logged", "clock jumped back" in t.log_text()[mark:], "no 'clock jumped back' warning")
        wait_for(lambda: not t.queue_files().get("deferred") and not t.queue_files().get("active"), 10)
        res.check("back_once", all(delivered(sink, tag) == 1 for tag in tags_back),
                  "copies: %s" % [delivered(sink, tag) for tag in tags_back])

        # -- ten days forward
        for tag in tags_fwd:
            sink.rcpt_replies["%s@remote.test" % tag] = "451 4.3.0 not now"
        codes = [send(t.port, sender, "%s@remote.test" % tag, tag) for tag in tags_fwd]
        assert codes == [250] * N, "messages not accepted: %s" % codes
        mark = len(t.log_text())
        assert wait_for(lambda: attempts_logged(t, mark, 2 * N), 30), "messages were not deferred twice each"
        early = RawSmtp(t.port, timeout=30)
        assert early.reply()[0] == 220 and early.cmd("EHLO early.test")[0] == 250
        mark = len(t.log_text())
        set_offset(ctl, "+9d")
        wait_for(lambda: "clock jumped forward" in t.log_text()[mark:], 10)
        # several retry passes (maximal_backoff 2s) at the new time
        wait_for(lambda: attempts_logged(t, mark, 3 * N), 20)
        time.sleep(2)
        after = t.log_text()[mark:]
        queued = len(deferred_files(t)) + len(t.queue_files().get("active", []))
        res.check("forward_logged", "clock jumped forward" in after, "no 'clock jumped forward' warning")
        res.check("forward_not_expired", "4.4.7" not in after and "expired" not in after and queued == N
                  and not t.mail_files("owner"),
                  "after +10 days: %d of %d still queued, expired in log: %s, bounces to the sender: %d"
                  % (queued, N, "4.4.7" in after, len(t.mail_files("owner"))))
        journal = os.path.join(t.queue, "private", "clock")
        try:
            with open(journal) as f:
                jtext = f.read()
        except OSError as e:
            jtext = str(e)
        res.check("forward_journal", jtext.startswith("J ") and int(jtext.split()[1]) >= 9 * 86400 - 120,
                  "queue/private/clock: %r" % jtext[:200])
        code = transaction(early, sender, "after@localhost", "early")
        early.cmd("QUIT")
        early.close()
        code2 = send(t.port, sender, "after@localhost", "late")
        res.check("forward_smtpd", code == 250 and code2 == 250,
                  "session opened before the jump: %s; new session: %s" % (code, code2))

        # -- restart: the journal keeps the correction
        left = t.stop()
        mark = len(t.log_text())
        t.start()
        wait_for(lambda: attempts_logged(t, mark, 2 * N), 20)
        after = t.log_text()[mark:]
        queued = len(deferred_files(t)) + len(t.queue_files().get("active", []))
        res.check("forward_restart_not_expired", not left and "4.4.7" not in after and queued == N
                  and not t.mail_files("owner"),
                  "after a restart: %d of %d queued, expired in log: %s, leftovers %s"
                  % (queued, N, "4.4.7" in after, left))
        sink.rcpt_replies.clear()
        ok = wait_for(lambda: all(delivered(sink, tag) >= 1 for tag in tags_fwd), 60)
        wait_for(lambda: not t.queue_files().get("deferred") and not t.queue_files().get("active"), 10)
        res.check("forward_delivered", ok and all(delivered(sink, tag) == 1 for tag in tags_fwd)
                  and not t.mail_files("owner") and t.wait_mail("after", 2, 20),
                  "copies at the sink %s, bounces %d, local copies %d"
                  % ([delivered(sink, tag) for tag in tags_fwd], len(t.mail_files("owner")),
                     len(t.mail_files("after"))))
    finally:
        t.stop()
        t.cleanup()
        sink.stop()


def main():
    if not prerequisites_or_fail(res, "clock"):
        res.exit()
    if os.environ.get("TERN_LDFLAGS"):
        # make asan: libfaketime is preloaded, and AddressSanitizer's runtime
        # must come first in a process's library list, so the two cannot combine.
        res.skip("clock", "clock jumps by preload cannot run with the sanitizer build")
        sys.exit(0)
    lib = faketime_lib()
    if not lib:
        res.skip("clock", "libfaketime not installed (Debian package faketime)")
        sys.exit(0)
    try:
        test_clock(lib)
    except Exception as e:  # noqa: BLE001 — reported, never hidden
        import traceback
        res.fail("clock", "%s: %s" % (type(e).__name__, e))
        sys.stderr.write(traceback.format_exc())
    res.exit()


if __name__ == "__main__":
    main()
