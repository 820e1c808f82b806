#!/usr/bin/env python3
"""test_storm — a kill -9 storm under load (issue 11, item 1).

Many concurrent SMTP sessions inject messages, each with a unique
Message-ID, to local recipients (virtual mailboxes under
local_mailbox_base) and to relay recipients that a transport table sends to
the harness's recording SmtpSink, while a bounded loop kill -9s random tern
processes: smtpd children, the queue manager, local, send, pickup and the
master itself (the instance is then restarted through the harness).  Then
the queue drains and the test checks:

  storm_acked_delivered   every message that got a 250 reached every one of
                          its recipients at least once (Maildir / sink)
  storm_duplicates        duplicates are counted and reported; they must stay
                          below STORM_MAX_DUP_RATIO (default 0.2) of the
                          acknowledged messages (at-least-once, duplicates
                          only in the crash windows)
  storm_no_corrupt        nothing in queue corrupt/
  storm_queue_drained     incoming/ active/ deferred/ are empty at the end
  storm_queue_tmp         queue tmp/ holds only files of messages that never
                          got a 250 (the queue manager removes old ones)
  storm_maildir_tmp       every Maildir tmp/ is empty: a killed local leaves
                          no half-written delivery behind
  storm_maildir_whole     every delivered Maildir file parses with Python's
                          email package, carries its Message-ID exactly once,
                          and its body is complete (a line count and a
                          checksum in the message itself are verified)
  storm_sink_whole        the same for every message at the sink
  storm_service_after     after the storm one more message is delivered
                          normally, and SIGTERM stops every process
  storm_no_orphans        after a kill -9 of the master every daemon of the
                          instance exits within 10 s (PR_SET_PDEATHSIG; the
                          restarted master must never share the queue with
                          an old queue manager)
  storm_figures           a PASS line carrying the figures (acked, delivered,
                          duplicated, kills per process type)

Environment:
  STORM_MESSAGES   messages to inject (default 300; `make stress` uses thousands)
  STORM_SESSIONS   concurrent SMTP sessions (default 8)
  STORM_SEED       random seed (default: time based; printed on failure)
  STORM_PACE       spread the injection over this many seconds at least
                   (default max(25, messages/60)): the killer needs time
  STORM_TIME       injection time limit in seconds (default pace + 30 + messages/20)
  STORM_KNOWN_FAIL a comma list of check names to report as SKIP "known
                   failure" instead of FAIL (nothing by default)
"""

import email
import email.policy
import hashlib
import os
import random
import re
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (Results, SmtpSink, Tern, log, prerequisites_or_fail,  # noqa: E402
                          proc_table, prog_name, wait_for)

res = Results()

MESSAGES = int(os.environ.get("STORM_MESSAGES", "300"))
SESSIONS = int(os.environ.get("STORM_SESSIONS", "8"))
SEED = int(os.environ.get("STORM_SEED", str(int(time.time() * 1000) % 1000000)))
PACE = float(os.environ.get("STORM_PACE", str(max(25.0, MESSAGES / 60.0))))
INJECT_TIME = float(os.environ.get("STORM_TIME", str(PACE + 30 + MESSAGES / 20)))
MAX_DUP_RATIO = float(os.environ.get("STORM_MAX_DUP_RATIO", "0.2"))
KNOWN_FAIL = set(x for x in os.environ.get("STORM_KNOWN_FAIL", "").split(",") if x)
LOCAL_USERS = ["st%d" % i for i in range(6)]
RELAY_DOMAIN = "relay.test"
# The master throttles a service whose process dies within 10 s of its
# start (master.c QUICK_EXIT_SECONDS): the storm kills only older processes,
# so restarts are immediate and the run stays short.
MIN_AGE = 10.5
PENDING = ("incoming", "active", "deferred")

try:
    CLK_TCK = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError):
    CLK_TCK = 100


def check(name, cond, reason):
    if not cond and name in KNOWN_FAIL:
        res.skip(name, "known failure: " + reason)
        return False
    return res.check(name, cond, reason)


def proc_age(pid):
    """Seconds since pid started (None when gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2:].split()
    return up - int(rest[19]) / CLK_TCK


# ----------------------------------------------------------------------------
# messages: the body carries its own length and checksum, so a half-written
# copy is recognised.

def make_message(mid, rcpts, rnd):
    nlines = rnd.randint(1, 60)
    body = "".join("%s line %d %s\n" % (mid, i, "x" * rnd.randint(0, 70)) for i in range(nlines))
    if rnd.random() < 0.05:
        body += "." * 3 + "\n.leading dot\n"  # dot-stuffing on both sides
    digest = hashlib.sha256(body.encode()).hexdigest()
    hdr = ("From: storm@client.test\nTo: %s\nSubject: storm %s\nMessage-ID: <%s@storm.test>\n"
           "X-Storm-Lines: %d\nX-Storm-Sum: %s\n\n" % (", ".join(rcpts), mid, mid, body.count("\n"), digest))
    return (hdr + body).replace("\n", "\r\n").encode()


def verify_copy(raw):
    """(mid or None, problem or None) for one delivered copy (bytes)."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception as e:  # the email package is lenient; anything raised is a defect
        return None, "does not parse: %s" % e
    mids = msg.get_all("Message-ID") or []
    if len(mids) != 1:
        return None, "%d Message-ID headers" % len(mids)
    m = re.match(r"<(.+)@storm\.test>$", mids[0].strip())
    if not m:
        return None, "foreign Message-ID %r" % mids[0]
    mid = m.group(1)
    body = msg.get_payload(decode=False)
    if not isinstance(body, str):
        return mid, "unexpected multipart"
    body = body.replace("\r\n", "\n")
    want = msg["X-Storm-Sum"]
    if hashlib.sha256(body.encode()).hexdigest() != (want or "").strip():
        return mid, "body checksum mismatch (%d bytes, %d lines, want %s lines)" % (
            len(body), body.count("\n"), msg["X-Storm-Lines"])
    return mid, None


# ----------------------------------------------------------------------------

class Storm:
    def __init__(self, t, sink):
        self.t = t
        self.sink = sink
        self.lock = threading.Lock()
        self.attempts = {}       # mid -> {"rcpts": [...], "acked": bool, "qid": str|None}
        self.counter = 0
        self.stop_inject = threading.Event()
        self.kills = {}          # name -> count
        self.restarts = 0
        self.refused = 0
        self.errors = {}         # reply/exception kind -> count
        self.master_down = threading.Event()
        self.orphans = []        # processes that survived their master's death
        self.t0 = time.monotonic()

    # -- clients
    def next_mid(self):
        with self.lock:
            if self.counter >= MESSAGES:
                return None
            self.counter += 1
            n = self.counter
        # Pacing: message n is not sent before n * PACE / MESSAGES seconds.
        delay = self.t0 + n * PACE / MESSAGES - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return "m%05d.%d" % (n, SEED)

    def note(self, kind):
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def client(self, idx):
        rnd = random.Random(SEED * 1000 + idx)
        deadline = time.monotonic() + INJECT_TIME
        while not self.stop_inject.is_set() and time.monotonic() < deadline:
            try:
                s = smtplib.SMTP("127.0.0.1", self.t.port, timeout=20)
            except (OSError, smtplib.SMTPException):
                self.note("connect refused/failed")
                time.sleep(0.2)
                continue
            try:
                s.ehlo("client%d.test" % idx)
                for _ in range(rnd.randint(1, 4)):
                    mid = self.next_mid()
                    if mid is None:
                        self.stop_inject.set()
                        break
                    kind = rnd.random()
                    rcpts = []
                    if kind < 0.7:
                        rcpts.append("%s@localhost" % rnd.choice(LOCAL_USERS))
                    if kind > 0.45:
                        rcpts.append("r%d@%s" % (rnd.randint(0, 9), RELAY_DOMAIN))
                    rec = {"rcpts": rcpts, "acked": False, "qid": None}
                    with self.lock:
                        self.attempts[mid] = rec
                    code, text = s.mail("storm@client.test")
                    if code != 250:
                        self.note("MAIL %d" % code)
                        break
                    ok = True
                    for r in rcpts:
                        code, text = s.rcpt(r)
                        if code != 250:
                            self.note("RCPT %d" % code)
                            ok = False
                            break
                    if not ok:
                        s.rset()
                        continue
                    code, text = s.data(make_message(mid, rcpts, rnd))
                    if code == 250:
                        m = re.search(rb"queued as ([0-9A-Za-z]+)", text)
                        with self.lock:
                            rec["acked"] = True
                            rec["qid"] = m.group(1).decode() if m else None
                    else:
                        self.note("DATA %d" % code)
                try:
                    s.quit()
                except (OSError, smtplib.SMTPException):
                    pass
            except (OSError, smtplib.SMTPException, EOFError) as e:
                self.note(type(e).__name__)
            finally:
                try:
                    s.close()
                except OSError:
                    pass

    # -- killer
    def victims(self):
        mpid = self.t.master_pid()
        out = []
        for pid, name in self.t.processes().items():
            if name not in ("smtpd", "qmgr", "local", "send", "pickup", "tern-master"):
                continue
            if name == "tern-master" and pid != mpid:
                continue  # a forked child that has not exec'd yet
            age = proc_age(pid)
            if age is None or age < MIN_AGE:
                continue
            out.append((pid, name))
        return out

    def restart_after_master_kill(self, old_pids):
        """The master died: its children die with it (PR_SET_PDEATHSIG).
        Wait for that (bounded), record survivors, then start again."""
        t = self.t
        try:
            t.proc.wait(10)
        except Exception:
            pass

        def gone():
            live = {p for p, _a, _b, _c in proc_table()}
            return not (live & old_pids)
        if not wait_for(gone, 10.0):
            table = {p: (pp, argv) for p, pp, _g, argv in proc_table()}
            left = set(table) & old_pids
            self.orphans += ["%s[%d] ppid %d" % (" ".join(table[p][1])[:80], p, table[p][0])
                             for p in sorted(left)]
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            wait_for(gone, 5.0)
        t.proc = None
        if t.logf:
            t.logf.close()
            t.logf = None
        t.start(timeout=30)
        self.restarts += 1

    def killer(self, rnd):
        deadline = time.monotonic() + INJECT_TIME + 5
        for _ in range(100000):
            if self.stop_inject.is_set() or time.monotonic() > deadline:
                return
            time.sleep(rnd.uniform(0.15, 0.6))
            cands = self.victims()
            if not cands:
                continue
            # The master less often than its children: a restart costs seconds.
            weights = [0.25 if n == "tern-master" else (2.0 if n in ("qmgr", "local", "send") else 1.0)
                       for _p, n in cands]
            pid, name = rnd.choices(cands, weights)[0]
            old = {p for p, n in self.t.processes().items() if p != pid} if name == "tern-master" else None
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
            with self.lock:
                self.kills[name] = self.kills.get(name, 0) + 1
            if name == "tern-master":
                self.master_down.set()
                try:
                    self.restart_after_master_kill(old)
                finally:
                    self.master_down.clear()


# ----------------------------------------------------------------------------
# observation

def maildir_copies(t):
    """{mid: {user: count}}, [(path, problem)], Maildir tmp/ files."""
    copies, bad, tmpfiles = {}, [], []
    try:
        users = os.listdir(t.mailbase)
    except OSError:
        users = []
    for u in users:
        md = os.path.join(t.mailbase, u, "Maildir")
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    with open(p, "rb") as f:
                        raw = f.read()
                except OSError as e:
                    bad.append((p, str(e)))
                    continue
                mid, problem = verify_copy(raw)
                if problem:
                    bad.append((p, problem))
                if mid:
                    copies.setdefault(mid, {}).setdefault("%s@localhost" % u, 0)
                    copies[mid]["%s@localhost" % u] += 1
        try:
            tmpfiles += [os.path.join(md, "tmp", n) for n in os.listdir(os.path.join(md, "tmp"))]
        except OSError:
            pass
    return copies, bad, tmpfiles


def sink_copies(sink):
    copies, bad = {}, []
    with sink.lock:
        msgs = list(sink.messages)
    for i, m in enumerate(msgs):
        mid, problem = verify_copy(m["data"])
        if problem:
            bad.append(("sink#%d" % i, problem))
        if mid:
            for r in m["rcpts"]:
                copies.setdefault(mid, {}).setdefault(r, 0)
                copies[mid][r] += 1
    return copies, bad


def queue_ids_in(t, sub):
    d = os.path.join(t.queue, sub)
    out = {}
    try:
        names = os.listdir(d)
    except OSError:
        return out
    for n in names:
        p = os.path.join(d, n)
        qid = None
        try:
            with open(p, "rb") as f:
                head = f.read(4096)
            m = re.search(rb"(?m)^Q ([0-9A-Za-z]+)$", head)
            qid = m.group(1).decode() if m else None
        except OSError:
            pass
        out[n] = qid or n
    return out


def merged(a, b):
    out = {}
    for src in (a, b):
        for mid, per in src.items():
            for r, c in per.items():
                out.setdefault(mid, {})[r] = out.get(mid, {}).get(r, 0) + c
    return out


# ----------------------------------------------------------------------------

def main():
    if not prerequisites_or_fail(res, "storm_build"):
        res.exit()
    log("storm: seed %d, %d messages, %d sessions, injection limit %.0f s"
        % (SEED, MESSAGES, SESSIONS, INJECT_TIME))
    sink = SmtpSink().start()
    conf = {
        "smtpd_min_idle": "4",
        "default_process_limit": str(max(20, SESSIONS * 2)),
        "smtpd_peername_lookup": "no",
        "queue_run_delay": "1s",
        "minimal_backoff": "1s",
        "maximal_backoff": "2s",
    }
    try:
        t = Tern(transport={RELAY_DOMAIN: "smtp:[127.0.0.1]:%d" % sink.port}, conf=conf, name="storm")
    except Exception as e:
        sink.stop()
        res.fail("storm_setup", "%s: %s" % (type(e).__name__, e))
        res.exit()
    res.on_fail.append(t.diagnostics)
    storm = Storm(t, sink)
    started = time.monotonic()
    try:
        t.start()
        storm.t0 = time.monotonic()
        threads = [threading.Thread(target=storm.client, args=(i,), daemon=True) for i in range(SESSIONS)]
        kt = threading.Thread(target=storm.killer, args=(random.Random(SEED),), daemon=True)
        for th in threads:
            th.start()
        kt.start()
        for th in threads:
            th.join(INJECT_TIME + 60)
        storm.stop_inject.set()
        kt.join(60)
        inject_secs = time.monotonic() - started
        if t.proc is None or t.proc.poll() is not None:
            # the killer died mid-restart: bring it back for the drain
            t.proc = None
            t.start(timeout=30)

        with storm.lock:
            acked = {m: r for m, r in storm.attempts.items() if r["acked"]}
            attempts = dict(storm.attempts)

        def delivered_all():
            mc, _b, _t = maildir_copies(t)
            sc, _b2 = sink_copies(sink)
            got = merged(mc, sc)
            missing = [m for m, r in acked.items() if any(got.get(m, {}).get(x, 0) == 0 for x in r["rcpts"])]
            pend = {k: v for k, v in t.queue_files().items() if k in PENDING}
            return (not missing and not pend), missing, pend
        drain_limit = 60 + MESSAGES / 20
        ok = wait_for(lambda: delivered_all()[0], drain_limit, 0.5)
        drain_secs = time.monotonic() - started - inject_secs
        time.sleep(1.5)  # let anything in flight land before counting duplicates
        _ok, missing, pend = delivered_all()

        mc, mbad, mtmp = maildir_copies(t)
        sc, sbad = sink_copies(sink)
        got = merged(mc, sc)

        # every 250 delivered at least once
        check("storm_acked_delivered", not missing,
              "%d of %d acknowledged messages missing after %.0f s of drain, e.g. %s (queue: %s)"
              % (len(missing), len(acked), drain_secs,
                 ["%s->%s" % (m, acked[m]["rcpts"]) for m in missing[:5]], pend))

        # duplicates
        dups = 0
        dup_examples = []
        for mid, per in got.items():
            for r, c in per.items():
                if c > 1:
                    dups += c - 1
                    if len(dup_examples) < 5:
                        dup_examples.append("%s->%s x%d" % (mid, r, c))
        unacked_delivered = sum(1 for m in got if m in attempts and not attempts[m]["acked"])
        foreign = [m for m in got if m not in attempts]
        ncopies_expected = sum(len(r["rcpts"]) for r in acked.values())
        check("storm_duplicates", dups <= MAX_DUP_RATIO * max(1, ncopies_expected) and not foreign,
              "%d duplicate deliveries for %d acknowledged recipient copies (limit ratio %.2f), e.g. %s;"
              " unknown Message-IDs: %s" % (dups, ncopies_expected, MAX_DUP_RATIO, dup_examples, foreign[:5]))

        qc = queue_ids_in(t, "corrupt")
        check("storm_no_corrupt", not qc, "files in corrupt/: %s" % sorted(qc)[:10])
        pend = {k: v for k, v in t.queue_files().items() if k in PENDING}
        check("storm_queue_drained", ok and not pend, "still queued after %.0f s: %s" % (drain_secs, pend))

        acked_qids = {r["qid"] for r in acked.values() if r["qid"]}
        qtmp = queue_ids_in(t, "tmp")
        bad_tmp = sorted(n for n, q in qtmp.items() if q in acked_qids or n in acked_qids)
        check("storm_queue_tmp", not bad_tmp,
              "queue tmp/ holds files of acknowledged messages: %s" % bad_tmp[:10])
        check("storm_maildir_tmp", not mtmp,
              "%d files left in Maildir tmp/ directories: %s" % (len(mtmp), mtmp[:5]))
        check("storm_maildir_whole", not mbad, "%d broken Maildir files: %s" % (len(mbad), mbad[:5]))
        check("storm_sink_whole", not sbad, "%d broken messages at the sink: %s" % (len(sbad), sbad[:5]))

        # service after the storm: one more message goes through, then a clean stop
        def after():
            before = len(t.mail_files("after"))
            with smtplib.SMTP("127.0.0.1", t.port, timeout=20) as s:
                s.sendmail("storm@client.test", ["after@localhost"],
                           b"Subject: after\r\nMessage-ID: <after@x.test>\r\n\r\nstill alive\r\n")
            assert t.wait_mail("after", before + 1, 20), "no delivery after the storm"
            killed = t.stop()
            assert not killed, "processes had to be killed at SIGTERM: %s" % killed
        res.run("storm_service_after", after)
        check("storm_no_orphans", not storm.orphans,
              "processes outlived their kill -9'd master by 10 s: %s" % storm.orphans)

        kills = sum(storm.kills.values())
        figures = ("messages=%d acked=%d unacked=%d acked_rcpt_copies=%d delivered_copies=%d duplicates=%d"
                   " unacked_but_delivered=%d kills=%d (%s) master_restarts=%d maildir_tmp=%d"
                   " client_errors=%s inject=%.0fs drain=%.0fs seed=%d"
                   % (len(attempts), len(acked), len(attempts) - len(acked), ncopies_expected,
                      sum(sum(p.values()) for p in got.values()), dups, unacked_delivered, kills,
                      ",".join("%s=%d" % kv for kv in sorted(storm.kills.items())), storm.restarts,
                      len(mtmp), dict(sorted(storm.errors.items())), inject_secs, drain_secs, SEED))
        log("storm figures: " + figures)
        check("storm_figures", len(acked) > 0 and kills > 0,
              "no meaningful storm: %s" % figures)
        print("INFO storm %s" % figures, flush=True)
    except Exception as e:
        import traceback
        res.fail("storm_run", "%s: %s" % (type(e).__name__, e))
        sys.stderr.write(traceback.format_exc())
    finally:
        storm.stop_inject.set()
        t.cleanup()
        sink.stop()
        res.on_fail.remove(t.diagnostics)
    res.exit()


if __name__ == "__main__":
    main()
