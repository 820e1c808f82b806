#!/usr/bin/env python3
"""test_nproc — fork() failing with EAGAIN (RLIMIT_NPROC) in the master
(issue 11, item 5; hostile inputs G 35).

RLIMIT_NPROC is not enforced for root, and it counts every process of the
real uid, so the instance runs under a uid of its own: as root the test
creates the user `ternnproc` (removed at the end), starts the master with
`setpriv --reuid --regid --clear-groups` as that user (a master started by a
normal user runs every process as that user, mail_owner = it), and lowers the
master's soft RLIMIT_NPROC (prlimit on the running process) to the number of
processes the uid has, so the master's next fork() fails with EAGAIN.

  nproc_fork_fails_logged  clients occupy every smtpd so the master wants to
                           grow the pool: fork fails, and the log says so
                           ("fork: Resource temporarily unavailable"), at most
                           ~2 lines a second (the master retries after 1 s)
  nproc_no_spin            over 6 s of failing forks the master uses < 0.3 s
                           of CPU and stays up
  nproc_serves             with the limit still in place, a client is served
                           (220, 250 after DATA) by a child the master already
                           has, once one of the occupying clients leaves
  nproc_recovers           the limit raised again: the master forks within
                           15 s (the pool grows, the occupying clients get
                           their banner), every message is delivered, and the
                           instance stops cleanly

SKIP when not root (RLIMIT_NPROC would count the test's own processes) or
when setpriv/useradd are missing.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, Tern, log, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()
USER = "ternnproc"
HZ = os.sysconf("SC_CLK_TCK")


def uid_processes(uid):
    """pids whose real uid is uid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            out.append(int(d))
                        break
        except (OSError, ValueError):
            continue
    return out


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / HZ
    except (OSError, IndexError, ValueError):
        return None


def soft_nproc(pid):
    """The soft RLIMIT_NPROC of pid as prlimit(1) spells it ("unlimited" or N)."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max processes"):
                return line.split()[2]
    return None


def set_soft_nproc(pid, soft):
    """Set the soft RLIMIT_NPROC of pid (hard unchanged, so it can go back
    up).  prlimit(2) on another uid's process needs CAP_SYS_RESOURCE, which a
    container's root may lack: prlimit(1) runs as the target's uid/gid (the
    kernel allows a process with the same real, effective and saved ids)."""
    st = os.stat("/proc/%d" % pid)
    r = subprocess.run(["prlimit", "--pid", str(pid), "--nproc=%s:" % soft], user=st.st_uid,
                       group=st.st_gid, extra_groups=[], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    if r.returncode != 0:
        raise RuntimeError("prlimit --pid %d --nproc=%s: %s" % (pid, soft, r.stdout.decode(errors="replace")))


def send(c, rcpt, tag):
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<nproc@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send("Subject: %s\r\n\r\n%s\r\n.\r\n" % (tag, tag))
    return c.reply()[0]


def smtpd_pids(t):
    return [p for p, n in t.processes().items() if n == "smtpd"]


def fork_failures(t, since):
    return [l for l in t.log_text()[since:].splitlines() if "fork:" in l and "temporarily unavailable" in l]


def test_nproc(pw):
    os.environ["TERN_TEST_MAIL_OWNER"] = USER
    t = Tern(name="nproc", conf={"smtpd_timeout": "120s"})
    res.on_fail.append(t.diagnostics)
    # The master runs as USER: it creates the queue under the instance's directory.
    os.chown(t.dir, pw.pw_uid, pw.pw_gid)
    for root, dirs, files in os.walk(t.dir):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    t.wrapper = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid, "--clear-groups", "--"]
    hogs = []
    mp = None
    try:
        t.start()
        mp = t.master_pid()
        c = RawSmtp(t.port, timeout=30)
        assert c.reply()[0] == 220
        assert send(c, "first@localhost", "first") == 250
        c.cmd("QUIT")
        c.close()
        assert t.wait_mail("first", 1, 20), "the first message was not delivered"
        wait_for(lambda: len(smtpd_pids(t)) >= 2, 10)
        time.sleep(1)
        before = uid_processes(pw.pw_uid)
        soft0 = soft_nproc(mp)
        set_soft_nproc(mp, len(before))
        log("nproc: %d processes of uid %d, master %d: RLIMIT_NPROC %s -> %d"
            % (len(before), pw.pw_uid, mp, soft0, len(before)))
        mark = len(t.log_text())
        # Occupy every smtpd (and a few more in the listen queue): the master
        # wants more children and cannot fork.
        busy = len(smtpd_pids(t))
        for _ in range(busy + 3):
            s = socket.create_connection(("127.0.0.1", t.port), timeout=30)
            hogs.append(s)
        wait_for(lambda: fork_failures(t, mark), 10)
        cpu0 = cpu_seconds(mp)
        time.sleep(6)
        cpu = (cpu_seconds(mp) or 0) - (cpu0 or 0)
        fails = fork_failures(t, mark)
        alive = os.path.exists("/proc/%d" % mp)
        log("nproc: %d fork failures logged; master CPU %.2fs in 6 s; smtpd %d" % (len(fails), cpu,
                                                                                   len(smtpd_pids(t))))
        res.check("nproc_fork_fails_logged", 1 <= len(fails) <= 2 * 10 + 4,
                  "%d 'fork: Resource temporarily unavailable' lines in ~10 s" % len(fails))
        res.check("nproc_no_spin", alive and cpu < 0.3, "master alive %s, CPU %.2fs in 6 s" % (alive, cpu))
        # One occupying client leaves: its smtpd serves the next connection in
        # the queue (another occupier), whose own end frees it for a new client.
        for s in hogs[:busy]:
            s.close()
        hogs = hogs[busy:]
        banner = None
        code = None
        c = None
        try:
            c = RawSmtp(t.port, timeout=30)
            for s in hogs:  # the queued occupiers got a smtpd: let them go
                s.close()
            hogs = []
            banner = c.reply()[0]
            code = send(c, "during@localhost", "during")
            c.cmd("QUIT")
        except (OSError, EOFError, AssertionError) as e:
            log("nproc: client during the limit: %s" % e)
        finally:
            if c:
                c.close()
        res.check("nproc_serves", banner == 220 and code == 250,
                  "client while fork fails: banner %s, end of DATA %s" % (banner, code))
        # Raise the limit: the master forks again.
        set_soft_nproc(mp, soft0)
        mark2 = len(t.log_text())
        n0 = len(smtpd_pids(t))
        for _ in range(n0 + 2):
            hogs.append(socket.create_connection(("127.0.0.1", t.port), timeout=30))
        grew = wait_for(lambda: len(smtpd_pids(t)) >= n0 + 2, 15, 0.2)
        got = []
        for s in hogs:
            s.settimeout(15)
            try:
                got.append(s.recv(64)[:3])
            except OSError:
                got.append(b"")
        delivered = t.wait_mail("during", 1, 30)
        late = fork_failures(t, mark2)
        left = t.stop()
        res.check("nproc_recovers", grew and all(g == b"220" for g in got) and delivered and not left,
                  "pool grew %s (%d smtpd), banners %s, delivered %s, fork failures after raising %d, "
                  "leftovers %s" % (bool(grew), len(smtpd_pids(t)), got, delivered, len(late), left))
    finally:
        for s in hogs:
            s.close()
        t.stop()
        t.cleanup()
        os.environ.pop("TERN_TEST_MAIL_OWNER", None)


def main():
    if not prerequisites_or_fail(res, "nproc"):
        res.exit()
    if os.getuid() != 0:
        res.skip("nproc", "needs root: RLIMIT_NPROC counts every process of the uid, so the instance "
                 "must run under a uid of its own")
        sys.exit(0)
    if not shutil.which("setpriv") or not shutil.which("useradd"):
        res.skip("nproc", "setpriv or useradd missing (util-linux, passwd)")
        sys.exit(0)
    created = False
    try:
        try:
            pw = pwd.getpwnam(USER)
        except KeyError:
            subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "-U", USER],
                           check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            created = True
            pw = pwd.getpwnam(USER)
        if uid_processes(pw.pw_uid):
            res.skip("nproc", "user %s already has processes (another run?)" % USER)
            sys.exit(0)
        test_nproc(pw)
    except Exception as e:  # noqa: BLE001 — reported, never hidden
        import traceback
        res.fail("nproc", "%s: %s" % (type(e).__name__, e))
        sys.stderr.write(traceback.format_exc())
    finally:
        if created:
            subprocess.run(["userdel", USER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    res.exit()


if __name__ == "__main__":
    main()
