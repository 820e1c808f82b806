#!/usr/bin/env python3
"""test_faults — full disks and injected I/O faults (issue 11, item 2).

Full disks (root only, when `mount -t tmpfs` works here; else SKIP):
  full_queue_*      queue_directory on an 8 MiB tmpfs filled by a ballast
                    file: DATA gets 452 4.3.1 (never 250), nothing is left in
                    tmp/, twenty refusals in a row do not make the master
                    throttle smtpd (no crash loop); with a few KB free a
                    200 KB message gets 452 and its temp file is removed;
                    once the ballast is gone mail is accepted and delivered
  full_mailbox_*    local_mailbox_base on its own small tmpfs: a message is
                    accepted, its delivery deferred (4.2.2), no file in
                    Maildir tmp/ or new/; once space is back it is delivered
                    exactly once

Injected faults (libfiu, Debian fiu-utils; SKIP when fiu-run is missing):
daemon_directory points at wrapper scripts that start one daemon under
libfiu's POSIX preload library (LD_PRELOAD: the daemons are not set-id, so
the loader keeps it across the master's exec and the daemon's own drop
from root to mail_owner) with the failure points written in a control file;
emptying the file and a SIGHUP to the master (a new generation of
children, exec'd without faults) clears the fault.
  fiu_smtpd_*       fsync EIO -> 451 4.3.0, fsync ENOSPC -> 452 4.3.1,
                    pwrite (the commit's Z patch) EIO -> 451 4.3.0 and
                    ENOSPC -> 452 4.3.1; never a 250, queue tmp/ empty
                    afterwards, no throttling, normal service after.
                    (write and open cannot be failed always: a daemon's
                    own start - config file, status pipe - uses them, and
                    the master then throttles it; ENOSPC on write is the
                    real tmpfs test above, the random test covers the rest)
  fiu_local_*       fsync EIO and fsync ENOSPC in local: delivery deferred,
                    Maildir tmp/ and new/ empty; after the fault clears the
                    message is delivered exactly once
  fiu_random_*      every posix/io/* point failing at random (probability
                    FAULT_PROBABILITY, default 0.02) in smtpd, qmgr, local
                    and send while messages are sent; then the fault clears
                    and every message that got a 250 is delivered, nothing
                    is in corrupt/ (a read error in the queue manager is not
                    corruption), no temp file is left.  Known failure, only
                    under `make stress` (FAULT_STRESS=1): see main()

Environment: FAULT_RANDOM_MESSAGES (default 40), FAULT_PROBABILITY.
"""

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (DAEMON_DIR, Results, SmtpSink, Tern, mail_owner,  # noqa: E402
                          prerequisites_or_fail, wait_for)

res = Results()

FIU_RUN = shutil.which("fiu-run")
FIU_LIB = "/usr/lib/fiu"
for cand in ("/usr/lib/fiu", "/usr/local/lib/fiu", "/usr/lib/x86_64-linux-gnu/fiu"):
    if os.path.exists(os.path.join(cand, "fiu_posix_preload.so")):
        FIU_LIB = cand
        break
HAVE_FIU = FIU_RUN is not None and os.path.exists(os.path.join(FIU_LIB, "fiu_posix_preload.so"))
EIO, ENOSPC, EMFILE = 5, 28, 24
RANDOM_MESSAGES = int(os.environ.get("FAULT_RANDOM_MESSAGES", "40"))
PROBABILITY = float(os.environ.get("FAULT_PROBABILITY", "0.02"))
BASE_CONF = {"smtpd_peername_lookup": "no", "smtpd_min_idle": "2"}


# ----------------------------------------------------------------------------
# helpers

def attempt(port, rcpts, body=b"x\r\n", mid="fault@test", size=0):
    """One SMTP transaction; returns (stage, code, text) of the first
    non-2xx/3xx reply, or ("data", 250, text) on success; ("conn", 0, why)
    when the connection failed."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
            s.ehlo("faults.test")
            code, text = s.mail("f@faults.test")
            if code != 250:
                return "mail", code, text.decode(errors="replace")
            for r in rcpts:
                code, text = s.rcpt(r)
                if code != 250:
                    return "rcpt", code, text.decode(errors="replace")
            pad = b""
            if size:
                line = b"y" * 76 + b"\r\n"
                pad = line * (size // len(line) + 1)
            msg = (b"From: f@faults.test\r\nSubject: fault\r\nMessage-ID: <" + mid.encode() + b">\r\n\r\n"
                   + body + pad)
            code, text = s.data(msg)
            return "data", code, text.decode(errors="replace")
    except smtplib.SMTPDataError as e:
        return "data", e.smtp_code, e.smtp_error.decode(errors="replace")
    except smtplib.SMTPResponseException as e:
        return "other", e.smtp_code, e.smtp_error.decode(errors="replace")
    except (OSError, smtplib.SMTPException) as e:
        return "conn", 0, "%s: %s" % (type(e).__name__, e)


def qdir(t, sub):
    try:
        return sorted(os.listdir(os.path.join(t.queue, sub)))
    except OSError:
        return []


def maildir_parts(t, user):
    out = {}
    for sub in ("tmp", "new", "cur"):
        try:
            out[sub] = sorted(os.listdir(os.path.join(t.maildir(user), sub)))
        except OSError:
            out[sub] = []
    return out


def copies_of(t, user, mid):
    n = 0
    for f in t.mail_files(user):
        try:
            with open(f, "rb") as fh:
                if ("<%s>" % mid).encode() in fh.read():
                    n += 1
        except OSError:
            pass
    return n


def drained(t):
    return not any(qdir(t, s) for s in ("incoming", "active", "deferred"))


def can_mount():
    if os.getuid() != 0 or not shutil.which("mount"):
        return False
    d = os.path.realpath(__import__("tempfile").mkdtemp(prefix="tern-mnt-probe-"))
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        if r.returncode != 0:
            return False
        subprocess.run(["umount", d], timeout=10)
        return True
    finally:
        try:
            os.rmdir(d)
        except OSError:
            pass


def mount_tmpfs(path, size, owner=None):
    os.makedirs(path, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                   check=True, timeout=10)
    if owner is not None:
        os.chown(path, owner[0], owner[1])


def umount(path):
    for _ in range(20):
        r = subprocess.run(["umount", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=10)
        if r.returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.25)
    subprocess.run(["umount", "-l", path], timeout=10)


def fill(path, leave=0):
    """Write a ballast file at path until the filesystem is full, then give
    back `leave` bytes.  Returns the ballast size."""
    n = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 1024):
            chunk = b"\0" * size
            for _ in range(1 << 16):
                try:
                    w = os.write(fd, chunk)
                except OSError:
                    break
                n += w
                if w < size:
                    break
    finally:
        os.close(fd)
    if leave:
        os.truncate(path, max(0, n - leave))
    return n


def owner_ids():
    import pwd
    pw = pwd.getpwnam(mail_owner())
    return pw.pw_uid, pw.pw_gid


def throttled(t, service, since):
    return "service %s: process died right after start" % service in t.log_text()[since:]


# ----------------------------------------------------------------------------
# full disks

def test_full_queue():
    with Tern(conf=BASE_CONF, name="fullq") as t:
        res.on_fail.append(t.diagnostics)
        mounted = False
        try:
            mount_tmpfs(t.queue, "8m")
            mounted = True
            t.start()
            stage, code, text = attempt(t.port, ["alice@localhost"], mid="before@full")
            assert code == 250, "before the disk fills: %s %d %s" % (stage, code, text)
            assert t.wait_mail("alice", 1, 15), "first message not delivered"
            ballast = os.path.join(t.queue, "ballast")
            fill(ballast)
            log0 = len(t.log_text())
            replies = []
            for i in range(20):
                replies.append(attempt(t.port, ["alice@localhost"], mid="full%d@full" % i, size=20000))
            bad = [r for r in replies if r[1] == 250]
            assert not bad, "250 on a full queue filesystem: %s" % bad[:3]
            wrong = [r for r in replies if not (r[1] == 452 and "4.3.1" in r[2])]
            assert not wrong, "want 452 4.3.1 on a full disk, got %s" % wrong[:3]
            res.ok("full_queue_452")
            assert wait_for(lambda: not qdir(t, "tmp"), 5.0), "tmp/ not empty: %s" % qdir(t, "tmp")
            res.ok("full_queue_tmp_clean")
            assert not throttled(t, "smtp", log0), "smtpd was throttled (crash loop?)"
            assert t.proc.poll() is None, "the master died"
            res.ok("full_queue_no_crash_loop")

            # A few KB free: the envelope fits, the 200 KB body does not.
            os.unlink(ballast)
            fill(ballast, leave=24 * 1024)
            stage, code, text = attempt(t.port, ["alice@localhost"], mid="partial@full", size=200000)
            assert code != 250, "250 for a message that cannot fit"
            assert code == 452 and "4.3.1" in text, "want 452 4.3.1 mid-body, got %s %d %s" % (stage, code, text)
            assert wait_for(lambda: not qdir(t, "tmp"), 5.0), "tmp/ not empty: %s" % qdir(t, "tmp")
            res.ok("full_queue_midbody_452_clean")

            os.unlink(ballast)
            stage, code, text = attempt(t.port, ["alice@localhost"], mid="after@full", size=50000)
            assert code == 250, "after space came back: %s %d %s" % (stage, code, text)
            assert wait_for(lambda: copies_of(t, "alice", "after@full") == 1, 15), "not delivered after recovery"
            assert not any(copies_of(t, "alice", "full%d@full" % i) for i in range(20)), "a refused message was delivered"
            assert not qdir(t, "corrupt"), "corrupt/: %s" % qdir(t, "corrupt")
            res.ok("full_queue_recovers")
        finally:
            t.stop()
            if mounted:
                umount(t.queue)
            res.on_fail.remove(t.diagnostics)


def test_full_mailbox():
    with Tern(conf=BASE_CONF, name="fullmb") as t:
        res.on_fail.append(t.diagnostics)
        mounted = False
        try:
            mount_tmpfs(t.mailbase, "4m", owner_ids())
            mounted = True
            t.start()
            stage, code, text = attempt(t.port, ["bob@localhost"], mid="first@mb")
            assert code == 250 and t.wait_mail("bob", 1, 15), "first delivery failed: %s %d %s" % (stage, code, text)
            ballast = os.path.join(t.mailbase, "ballast")
            fill(ballast, leave=16 * 1024)
            log0 = len(t.log_text())
            stage, code, text = attempt(t.port, ["bob@localhost"], mid="big@mb", size=300000)
            assert code == 250, "the queue is not full, the message must be accepted: %s %d %s" % (stage, code, text)
            assert wait_for(lambda: "4.2.2" in t.log_text()[log0:], 15), "no 4.2.2 deferral in the log"
            parts = maildir_parts(t, "bob")
            assert not parts["tmp"], "Maildir tmp/ not empty after a failed delivery: %s" % parts["tmp"]
            assert copies_of(t, "bob", "big@mb") == 0, "a partial copy was published"
            assert not drained(t), "the message left the queue without delivery"
            res.ok("full_mailbox_deferred_clean")
            os.unlink(ballast)
            assert wait_for(lambda: copies_of(t, "bob", "big@mb") >= 1 and drained(t), 20), \
                "not delivered after space came back (queue %s)" % t.queue_files()
            time.sleep(1)
            n = copies_of(t, "bob", "big@mb")
            assert n == 1, "%d copies" % n
            assert not maildir_parts(t, "bob")["tmp"], "Maildir tmp/ not empty"
            res.ok("full_mailbox_recovers_once")
        finally:
            t.stop()
            if mounted:
                umount(t.mailbase)
            res.on_fail.remove(t.diagnostics)


# ----------------------------------------------------------------------------
# libfiu

class FaultWrapper:
    """A daemon_directory whose programs run the real ones, under libfiu
    when their control file (dir/faults/NAME) is not empty."""

    def __init__(self, base):
        self.dir = os.path.join(base, "libexec")
        self.fdir = os.path.join(base, "faults")
        os.makedirs(self.dir)
        os.makedirs(self.fdir)
        os.chmod(base, 0o755)
        for name in os.listdir(DAEMON_DIR):
            real = os.path.join(DAEMON_DIR, name)
            if not os.access(real, os.X_OK) or os.path.isdir(real):
                continue
            ctl = os.path.join(self.fdir, name)
            open(ctl, "w").close()
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\n"
                        "# libfiu wrapper written by tests/blackbox/test_faults.py\n"
                        "if [ -s '%s' ]; then\n"
                        "  FIU_ENABLE=$(cat '%s'); export FIU_ENABLE\n"
                        "  unset FIU_CTRL_FIFO\n"
                        "  LD_PRELOAD='%s/fiu_run_preload.so %s/fiu_posix_preload.so'; export LD_PRELOAD\n"
                        "fi\n"
                        "exec '%s' \"$@\"\n" % (ctl, ctl, FIU_LIB, FIU_LIB, real))
            os.chmod(path, 0o755)

    def set(self, name, *commands):
        with open(os.path.join(self.fdir, name), "w") as f:
            f.write("\n".join(commands))

    def clear(self):
        for n in os.listdir(self.fdir):
            open(os.path.join(self.fdir, n), "w").close()


def reload_children(t, names, timeout=15.0):
    """SIGHUP the master; wait until every process named in names was
    replaced by a new one (started after the reload)."""
    old = {p for p, n in t.processes().items() if n in names}
    os.kill(t.master_pid(), signal.SIGHUP)

    def done():
        cur = t.processes()
        if any(p in cur for p in old):
            return False
        return all(any(n == want for n in cur.values()) for want in names if want != "local" and want != "send")
    ok = wait_for(done, timeout, 0.2)
    time.sleep(0.5)
    return ok


def fiu_instance(name, sink=None):
    base = os.path.realpath(__import__("tempfile").mkdtemp(prefix="tern-fiu-"))
    w = FaultWrapper(base)
    conf = dict(BASE_CONF)
    conf["daemon_directory"] = w.dir
    transport = {"relay.test": "smtp:[127.0.0.1]:%d" % sink.port} if sink else None
    t = Tern(conf=conf, transport=transport, name=name)
    return t, w, base


def test_fiu_smtpd():
    t, w, base = fiu_instance("fiu-smtpd")
    cases = [
        ("fsync_eio", "posix/io/sync/fsync", EIO, 451, "4.3.0"),
        ("fsync_enospc", "posix/io/sync/fsync", ENOSPC, 452, "4.3.1"),
        ("pwrite_eio", "posix/io/rw/pwrite", EIO, 451, "4.3.0"),
        ("pwrite_enospc", "posix/io/rw/pwrite", ENOSPC, 452, "4.3.1"),
    ]
    with t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            for label, point, errno_, want_code, want_dsn in cases:
                name = "fiu_smtpd_%s" % label
                try:
                    w.set("smtpd", "enable name=%s,failinfo=%d" % (point, errno_))
                    assert reload_children(t, ["smtpd", "qmgr"]), "children not replaced after SIGHUP"
                    log0 = len(t.log_text())
                    got = [attempt(t.port, ["carol@localhost"], mid="%s.%d@fiu" % (label, i), size=3000)
                           for i in range(3)]
                    assert not [g for g in got if g[1] == 250], "250 under %s: %s" % (point, got)
                    wrong = [g for g in got if not (g[1] == want_code and want_dsn in g[2])]
                    assert not wrong, "want %d %s under %s=%d, got %s" % (want_code, want_dsn, point, errno_, wrong)
                    assert wait_for(lambda: not qdir(t, "tmp"), 5), "queue tmp/ not empty: %s" % qdir(t, "tmp")
                    assert not throttled(t, "smtp", log0), "smtpd throttled: a crash loop"
                    w.clear()
                    assert reload_children(t, ["smtpd", "qmgr"]), "children not replaced after SIGHUP"
                    mid = "%s.after@fiu" % label
                    stage, code, text = attempt(t.port, ["carol@localhost"], mid=mid)
                    assert code == 250, "after the fault cleared: %s %d %s" % (stage, code, text)
                    assert wait_for(lambda: copies_of(t, "carol", mid) == 1, 15), "not delivered after the fault"
                    for i in range(3):
                        assert copies_of(t, "carol", "%s.%d@fiu" % (label, i)) == 0, "a refused message was delivered"
                    res.ok(name)
                except AssertionError as e:
                    res.fail(name, str(e))
                    w.clear()
                    reload_children(t, ["smtpd", "qmgr"])
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)
            shutil.rmtree(base, ignore_errors=True)


def test_fiu_local():
    t, w, base = fiu_instance("fiu-local")
    cases = [("fsync_eio", "posix/io/sync/fsync", EIO), ("fsync_enospc", "posix/io/sync/fsync", ENOSPC)]
    with t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            # the Maildir exists before the faults
            attempt(t.port, ["dave@localhost"], mid="warmup@fiu")
            assert t.wait_mail("dave", 1, 15), "warm-up not delivered"
            for label, point, errno_ in cases:
                name = "fiu_local_%s" % label
                try:
                    w.set("local", "enable name=%s,failinfo=%d" % (point, errno_))
                    assert reload_children(t, ["qmgr"]), "children not replaced after SIGHUP"
                    log0 = len(t.log_text())
                    mid = "local.%s@fiu" % label
                    stage, code, text = attempt(t.port, ["dave@localhost"], mid=mid, size=5000)
                    assert code == 250, "smtpd has no fault: %s %d %s" % (stage, code, text)
                    assert wait_for(lambda: "maildir delivery to dave@localhost failed" in t.log_text()[log0:]
                                    or "dave@localhost" in t.log_text()[log0:] and "status=deferred" in t.log_text()[log0:],
                                    15), "no deferral logged"
                    parts = maildir_parts(t, "dave")
                    assert not parts["tmp"], "Maildir tmp/ not empty: %s" % parts["tmp"]
                    assert copies_of(t, "dave", mid) == 0, "delivered despite the fault"
                    assert not throttled(t, "local", log0), "local throttled: a crash loop"
                    w.clear()
                    assert reload_children(t, ["qmgr"]), "children not replaced after SIGHUP"
                    assert wait_for(lambda: copies_of(t, "dave", mid) >= 1 and drained(t), 20), \
                        "not delivered after the fault cleared (queue %s)" % t.queue_files()
                    time.sleep(1)
                    assert copies_of(t, "dave", mid) == 1, "%d copies" % copies_of(t, "dave", mid)
                    assert not maildir_parts(t, "dave")["tmp"], "Maildir tmp/ not empty"
                    res.ok(name)
                except AssertionError as e:
                    res.fail(name, str(e))
                    w.clear()
                    reload_children(t, ["qmgr"])
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)
            shutil.rmtree(base, ignore_errors=True)


def test_fiu_random():
    sink = SmtpSink().start()
    t, w, base = fiu_instance("fiu-random", sink)
    with t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            cmd = "enable_random name=posix/io/*,probability=%g" % PROBABILITY
            for d in ("smtpd", "qmgr", "local", "send"):
                w.set(d, cmd)
            reload_children(t, ["smtpd", "qmgr"])
            acked, codes = [], {}
            for i in range(RANDOM_MESSAGES):
                mid = "rnd%d@fiu" % i
                rcpts = ["frank@localhost"] if i % 2 == 0 else ["frank@localhost", "x%d@relay.test" % i]
                stage, code, text = attempt(t.port, rcpts, mid=mid, size=(i % 5) * 4000)
                codes[code] = codes.get(code, 0) + 1
                if code == 250:
                    acked.append((mid, rcpts))
            w.clear()
            reload_children(t, ["smtpd", "qmgr"])
            # deferred mail retries after 1-2 s; a flush makes it immediate
            def all_there():
                local_ok = all(copies_of(t, "frank", m) >= 1 for m, _r in acked)
                with sink.lock:
                    data = b"".join(x["data"] for x in sink.messages)
                remote_ok = all(("<%s>" % m).encode() in data for m, r in acked if len(r) > 1)
                return local_ok and remote_ok and drained(t)
            ok = wait_for(all_there, 60, 0.5)
            missing = [m for m, _r in acked if copies_of(t, "frank", m) == 0]
            info = "acked %d/%d, replies %s, missing %s, queue %s" % (
                len(acked), RANDOM_MESSAGES, codes, missing[:5], t.queue_files())
            print("INFO fiu_random %s" % info, flush=True)
            if not ok:
                for pid, n in t.processes().items():
                    if n in ("qmgr", "local", "send"):
                        try:
                            wchan = open("/proc/%d/wchan" % pid).read()
                            fds = {f: os.readlink("/proc/%d/fd/%s" % (pid, f)) for f in os.listdir("/proc/%d/fd" % pid)}
                            with open("/proc/%d/stat" % pid) as fh:
                                st = fh.read().split(") ")[1].split()
                        except OSError:
                            continue
                        sys.stderr.write("# %s[%d] state %s ppid %s wchan %s fds %s\n" % (n, pid, st[0], st[1], wchan, fds))
            assert ok, "not everything acknowledged was delivered: " + info
            res.ok("fiu_random_acked_delivered")
            assert not qdir(t, "corrupt"), "files in corrupt/: %s" % qdir(t, "corrupt")
            res.ok("fiu_random_no_corrupt")
            assert not maildir_parts(t, "frank")["tmp"], "Maildir tmp/ not empty"
            assert all(q not in {m for m, _ in acked} for q in qdir(t, "tmp")), "tmp/ holds acked messages"
            res.ok("fiu_random_no_temp_files")
            # smtpd may be throttled for up to 60 s (master.c) after dying on injected faults
            for _ in range(15):
                stage, code, text = attempt(t.port, ["frank@localhost"], mid="rnd.after@fiu")
                if code == 250:
                    break
                time.sleep(5)
            assert code == 250 and wait_for(lambda: copies_of(t, "frank", "rnd.after@fiu") == 1, 15), \
                "service after the faults: %s %d %s" % (stage, code, text)
            res.ok("fiu_random_service_after")
        finally:
            t.stop()
            sink.stop()
            res.on_fail.remove(t.diagnostics)
            shutil.rmtree(base, ignore_errors=True)


def main():
    if not prerequisites_or_fail(res, "faults_build"):
        res.exit()
    only = os.environ.get("FAULTS_ONLY", "")
    if not only or "full" in only:
        if can_mount():
            res.run("full_queue", test_full_queue)
            res.run("full_mailbox", test_full_mailbox)
        else:
            res.skip("full_disk", "cannot mount a tmpfs here (needs root and mount permission); "
                     "fault injection only")
    if HAVE_FIU and os.environ.get("TERN_LDFLAGS"):
        # make asan: libfiu is preloaded, and AddressSanitizer's runtime must
        # come first in a process's library list, so the two cannot combine.
        res.skip("fiu", "fault injection by preload cannot run with the sanitizer build")
    elif HAVE_FIU:
        for label, fn in (("smtpd", test_fiu_smtpd), ("local", test_fiu_local),
                          ("random", test_fiu_random)):
            if only and label not in only:
                continue
            if label == "random" and not os.environ.get("FAULT_STRESS"):
                # Known failure, kept out of make check (runs under make stress,
                # FAULT_STRESS=1): with random faults a queue manager sometimes
                # never finishes its in-flight jobs after SIGHUP, so messages
                # that got a 250 stay in active/ until a restart; and a smtpd
                # that died on injected poll() errors stays throttled up to
                # 60 s after the fault clears.  See docs/reliability.md.
                res.skip("fiu_random", "known failure (qmgr stalls after random I/O faults); "
                         "runs under make stress")
                continue
            if label == "qmgr":
                res.run("fiu_qmgr_read_not_corrupt", fn)
            else:
                try:
                    fn()
                except Exception as e:
                    import traceback
                    res.fail("fiu_%s" % label, "%s: %s" % (type(e).__name__, e))
                    sys.stderr.write(traceback.format_exc())
    else:
        res.skip("fiu", "fiu-run (Debian fiu-utils) is not installed")
    res.exit()


if __name__ == "__main__":
    main()
