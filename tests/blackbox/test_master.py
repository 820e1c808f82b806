#!/usr/bin/env python3
"""test_master — the supervisor (master/), observed through /proc.

  start_*        one master; >= 2 smtpd (smtpd_min_idle default 2), exactly one
                 qmgr, >= 1 local, >= 1 send, every one a child of the master
  uid_*          as root with an unprivileged mail_owner: smtpd, qmgr and send
                 run as mail_owner, local keeps root (real uid, /proc/PID/status)
  fds_*          an idle smtpd holds 0-2, its listener as fd 3, its status pipe
                 as fd 4 and nothing above; no child holds a descriptor of the
                 master's (another service's socket or pipe, the signal pipe);
                 every child's fd 3 is its own service's socket
  smtpd_kill9_*  kill -9 of one smtpd: reaped (no zombie), pool back to >= 2,
                 mail still accepted (250) and delivered
  qmgr_kill9_*   kill -9 of the queue manager: a new one runs, and mail accepted
                 while it was down is delivered
  prefork_*      N idle client connections: the pool grows to >= N + 2 smtpd
  sigterm_*      SIGTERM: every process of the instance is gone, master exits 0
  throttle_*     a `send` that exits 1 at once: the master logs that it
                 throttles, starts it only a few times in ~4 s, SMTP still works
  config_error_* an unknown key: tern-master -f -c BAD exits non-zero, names BAD:LINE
  crash_loop_*   an smtpd that kills itself (SIGSEGV) on every connection it
                 accepts, hit by 60 connections after its first pool is over
                 10 s old (the master's quick-exit rule looks at a child's
                 age, so those first crashes are not throttled): the
                 replacements are young, the master throttles them, fewer
                 than 30 smtpd are started for the 60 crashing connections,
                 and the master stays up
  sockets_*      the running instance's Unix sockets and their directories, by
                 lstat: every socket in private/ (qmgr, local, send) mode 0600,
                 private/ 0700; public/pickup 0620, public/ 0710, maildrop/
                 1730; as root all owned by mail_owner, private/ in its group,
                 public/ and maildrop/ in setgid_group (here the existing group
                 "mail", so that the two groups differ)
"""

import grp
import os
import pwd
import re
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (AGENTS, DAEMON_DIR, MASTER, RawSmtp, Results, Tern,  # noqa: E402
                          log, mail_owner, parse_message, prerequisites_or_fail, prog_name,
                          proc_table, wait_for)

res = Results()


# ----------------------------------------------------------------------------
# /proc helpers (our own: the harness hides zombies and does not read status).

def proc_status(pid):
    """{Key: value} of /proc/PID/status, {} if the process is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def real_uid(pid):
    st = proc_status(pid)
    return int(st["Uid"].split()[0]) if "Uid" in st else None


def zombies_of(ppid):
    """pids in state Z whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) >= 2 and rest[0] == "Z" and int(rest[1]) == ppid:
            out.append(int(d))
    return out


def children_of(ppid):
    """{pid: name} of the live (non-zombie) children of ppid."""
    out = {}
    for pid, pp, _pgid, argv in proc_table():
        if pp == ppid:
            out[pid] = prog_name(argv) or " ".join(argv)[:60]
    return out


def by_name(procs):
    names = {}
    for pid, name in procs.items():
        names.setdefault(name, []).append(pid)
    return names


def fds(pid):
    """{fd: readlink target} of a process."""
    out = {}
    try:
        names = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for n in names:
        try:
            out[int(n)] = os.readlink("/proc/%d/fd/%s" % (pid, n))
        except OSError:
            pass
    return out


def tcp_listener_inode(port):
    """Inode of the socket listening on 127.0.0.1:port (from /proc/net/tcp)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                p = line.split()
                if len(p) > 9 and p[1] == want and p[3] == "0A":
                    return p[9]
    except OSError:
        pass
    return None


def unix_socket_inodes(path):
    """Inodes of the Unix sockets bound to path (from /proc/net/unix)."""
    out = set()
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                p = line.split()
                if len(p) >= 8 and p[7] == path:
                    out.add(p[6])
    except OSError:
        pass
    return out


def submit(port, sender, rcpts, msg):
    """Send one message; returns (code, text) of the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender)
        assert code == 250, "MAIL FROM got %d %s" % (code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, "RCPT TO:<%s> got %d %s" % (r, code, text)
        code, text = s.data(msg)
        return code, text.decode(errors="replace")


def message(subject, body, to="alice@localhost"):
    return ("From: sender@client.test\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.test>\r\n\r\n%s" % (to, subject, subject.replace(" ", "."), body)).encode()


def subjects(t, user):
    out = []
    for f in t.mail_files(user):
        try:
            _raw, msg = parse_message(f)
            out.append(msg["Subject"])
        except OSError:
            pass
    return out


def wait_subject(t, user, subject, timeout):
    return wait_for(lambda: subject in subjects(t, user), timeout)


def services_up(mpid):
    n = by_name(children_of(mpid))
    return (len(n.get("smtpd", [])) >= 2 and len(n.get("qmgr", [])) == 1
            and n.get("local") and n.get("send"))


# ----------------------------------------------------------------------------

def test_start_processes(t):
    mpid = t.master_pid()
    ok = wait_for(lambda: services_up(mpid), 10.0)
    kids = children_of(mpid)
    n = by_name(kids)
    assert ok, "children of the master: %s" % {k: len(v) for k, v in n.items()}
    masters = [p for p, name in t.processes().items() if name == "tern-master"]
    assert masters == [mpid], "tern-master processes of the instance: %s (expected [%d])" % (masters, mpid)
    assert len(n.get("qmgr", [])) == 1, "qmgr processes: %s" % n.get("qmgr")
    # Every process of the instance other than the master is its child.
    # (A child forked after the snapshot above: ask /proc about each again.)
    strays = {p: name for p, name in t.processes().items()
              if p != mpid and p not in kids and proc_status(p).get("PPid") not in (None, str(mpid))}
    assert not strays, "processes of the instance that are not children of the master: %s" % strays
    unknown = {p: name for p, name in kids.items() if name not in AGENTS}
    # A child caught between the master's fork and its exec still has the
    # master's name: look again once it had the time to exec (or exit).
    if unknown and all(name == "tern-master" for name in unknown.values()):
        wait_for(lambda: all(children_of(mpid).get(p, "gone") != "tern-master" for p in unknown), 3.0)
        now = children_of(mpid)
        unknown = {p: now[p] for p in unknown if p in now and now[p] not in AGENTS}
    assert not unknown, "unexpected children of the master: %s" % unknown


def test_uids(t, name_set, want_uid):
    mpid = t.master_pid()
    wait_for(lambda: services_up(mpid), 10.0)
    n = by_name(children_of(mpid))
    bad = []
    for name in name_set:
        pids = n.get(name, [])
        assert pids, "no %s process" % name
        for p in pids:
            u = real_uid(p)
            if u is not None and u != want_uid:
                bad.append("%s[%d] real uid %d" % (name, p, u))
    assert not bad, "expected real uid %d: %s" % (want_uid, ", ".join(bad))


def test_smtpd_fds(t):
    mpid = t.master_pid()
    lino = tcp_listener_inode(t.port)
    assert lino, "no listener on 127.0.0.1:%d in /proc/net/tcp" % t.port
    master_fds = fds(mpid)
    status_pipes = {v for v in master_fds.values() if v.startswith("pipe:")}

    def problems():
        out = []
        smtpds = by_name(children_of(mpid)).get("smtpd", [])
        if len(smtpds) < 2:
            return ["only %d smtpd" % len(smtpds)]
        for p in smtpds:
            f = fds(p)
            if not f:
                continue  # just exited
            if f.get(3) != "socket:[%s]" % lino:
                out.append("smtpd[%d] fd 3 is %r, not the listener socket:[%s]" % (p, f.get(3), lino))
            if f.get(4) not in status_pipes:
                out.append("smtpd[%d] fd 4 is %r, not a status pipe of the master" % (p, f.get(4)))
            # beyond 0-4 only its own epoll descriptor (common/server.c) may be open
            extra = {k: v for k, v in f.items() if k > 4 and v != "anon_inode:[eventpoll]"}
            if extra:
                out.append("smtpd[%d] has fds above 4: %s" % (p, extra))
        return out
    # A smtpd that is still closing the harness's probe connection may hold
    # it for a moment: allow the pool to settle.
    wait_for(lambda: not problems(), 5.0)
    p = problems()
    assert not p, "; ".join(p)


def test_no_inherited_fds(t):
    """No child holds a socket or pipe of the master other than its own
    listener (fd 3) and status pipe (fd 4)."""
    mpid = t.master_pid()
    master_objs = {v for v in fds(mpid).values() if v.startswith(("socket:", "pipe:"))}
    own = {
        "qmgr": unix_socket_inodes(os.path.join(t.queue, "private", "qmgr")),
        "local": unix_socket_inodes(os.path.join(t.queue, "private", "local")),
        "send": unix_socket_inodes(os.path.join(t.queue, "private", "send")),
        "pickup": unix_socket_inodes(os.path.join(t.queue, "public", "pickup")),
        "smtpd": {tcp_listener_inode(t.port)},
    }
    bad = []
    fd4 = {}  # status pipe -> services whose children hold it as fd 4
    for p, name in children_of(mpid).items():
        f = fds(p)
        if not f:
            continue
        for k in (0, 1, 2):
            if k not in f:
                bad.append("%s[%d] fd %d is closed" % (name, p, k))
        fd3 = f.get(3, "")
        m = re.match(r"socket:\[(\d+)\]$", fd3)
        if not m or (own.get(name) and m.group(1) not in own[name]):
            bad.append("%s[%d] fd 3 is %r, not its service socket %s" % (name, p, fd3, sorted(own.get(name, []))))
        if 4 not in f:
            bad.append("%s[%d] fd 4 is closed" % (name, p))
        elif name not in ("qmgr", "pickup"):  # single-process services: fd 4 is /dev/null
            fd4.setdefault(f[4], set()).add(name)
        for k, v in f.items():
            if k > 4 and v in master_objs:
                bad.append("%s[%d] fd %d is the master's %s" % (name, p, k, v))
    for pipe, names in fd4.items():
        if not pipe.startswith("pipe:") or len(names) != 1:
            bad.append("fd 4 %s is shared by services %s (each service has its own status pipe)"
                       % (pipe, sorted(names)))
    assert not bad, "; ".join(bad)


def test_smtpd_kill9(t):
    mpid = t.master_pid()
    assert wait_for(lambda: services_up(mpid), 10.0), "services not up"
    before = by_name(children_of(mpid))["smtpd"]
    victim = before[0]
    os.kill(victim, signal.SIGKILL)

    def reaped():
        return victim not in children_of(mpid) and not zombies_of(mpid) and \
            not os.path.exists("/proc/%d" % victim)
    assert wait_for(reaped, 5.0), "smtpd[%d] not reaped within 5 s (zombies of the master: %s)" \
        % (victim, zombies_of(mpid))
    res.ok("smtpd_kill9_reaped_no_zombie")

    def pool_back():
        s = [p for p in by_name(children_of(mpid)).get("smtpd", []) if p != victim]
        return len(s) >= 2
    assert wait_for(pool_back, 10.0), "smtpd pool not back to >= 2 within 10 s: %s" \
        % by_name(children_of(mpid)).get("smtpd")
    res.ok("smtpd_kill9_pool_restored")

    before_n = len(t.mail_files("alice"))
    code, text = submit(t.port, "sender@client.test", ["alice@localhost"],
                        message("after smtpd kill", "still here\r\n"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    assert t.wait_mail("alice", before_n + 1, 15), "message not delivered within 15 s after the smtpd kill"
    assert zombies_of(mpid) == [], "zombies of the master: %s" % zombies_of(mpid)


def test_qmgr_kill9(t):
    mpid = t.master_pid()
    assert wait_for(lambda: services_up(mpid), 10.0), "services not up"
    old = by_name(children_of(mpid))["qmgr"][0]
    # Stop it first so the message is accepted while no queue manager works,
    # then kill -9 (a stopped process dies of SIGKILL too).
    os.kill(old, signal.SIGSTOP)
    try:
        code, text = submit(t.port, "sender@client.test", ["alice@localhost"],
                            message("while qmgr down", "queued meanwhile\r\n"))
        assert code == 250, "end of DATA got %d %s (qmgr stopped)" % (code, text)
        assert wait_for(lambda: t.queue_files().get("incoming"), 5.0), \
            "accepted message not in incoming/: %s" % t.queue_files()
    finally:
        os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % old), 5.0), "old qmgr[%d] not reaped" % old

    def new_qmgr():
        q = by_name(children_of(mpid)).get("qmgr", [])
        return q if len(q) == 1 and q[0] != old else None
    q = wait_for(new_qmgr, 15.0)
    assert q, "no new qmgr within 15 s (children: %s)" % by_name(children_of(mpid))
    res.ok("qmgr_kill9_restarted")
    assert wait_subject(t, "alice", "while qmgr down", 20), \
        "message accepted while qmgr was down not delivered within 20 s (queue: %s)" % t.queue_files()


def test_prefork_growth(t, n=5):
    mpid = t.master_pid()
    assert wait_for(lambda: services_up(mpid), 10.0), "services not up"
    conns = []
    try:
        for i in range(n):
            c = RawSmtp(t.port, timeout=15)
            conns.append(c)
            code, lines = c.reply()
            assert code == 220, "connection %d: banner %r" % (i, lines)
        count = lambda: len(by_name(children_of(mpid)).get("smtpd", []))  # noqa: E731
        ok = wait_for(lambda: count() >= n + 2, 10.0)
        assert ok, "with %d busy connections only %d smtpd processes (want >= %d)" % (n, count(), n + 2)
        # And the pool is usable: one more client gets a banner.
        c = RawSmtp(t.port, timeout=15)
        conns.append(c)
        code, lines = c.reply()
        assert code == 220, "extra connection: banner %r" % lines
    finally:
        for c in conns:
            try:
                c.send("QUIT\r\n")
            except OSError:
                pass
            c.close()


def test_sigterm(t):
    mpid = t.master_pid()
    members = set(t.processes())
    assert len(members) >= 6, "instance has only %s" % t.processes()
    os.kill(mpid, signal.SIGTERM)
    try:
        rc = t.proc.wait(15)
    except subprocess.TimeoutExpired:
        rc = None
    left = wait_for(lambda: not t.processes(), 5.0)
    survivors = t.processes()
    # Our proc has been waited for: the harness must not signal its pid again.
    if rc is not None:
        t.proc = None
        if t.logf:
            t.logf.write(b"=== stopped by test_sigterm\n")
            t.logf.close()
            t.logf = None
    assert rc is not None, "master did not exit within 15 s of SIGTERM"
    assert left and not survivors, "processes left after SIGTERM: %s" % survivors
    assert rc == 0, "master exit status %s after SIGTERM" % rc


def submit_group():
    """An existing group other than mail_owner's, for setgid_group (None if
    there is none to use): a socket that fell back to mail_owner's group
    then cannot pass for one in setgid_group."""
    ogid = pwd.getpwnam(mail_owner()).pw_gid
    for name in ("mail", "daemon"):
        try:
            if grp.getgrnam(name).gr_gid != ogid:
                return name
        except KeyError:
            pass
    return None


def test_socket_modes(t):
    """What the master documents for its sockets (master_services.c,
    docs/config.md): private/ only for mail_owner, public/pickup writable by
    setgid_group and nobody else."""
    mpid = t.master_pid()
    assert wait_for(lambda: services_up(mpid), 10.0), "services not up"
    root = os.getuid() == 0
    owner = pwd.getpwnam(mail_owner())
    sgid = grp.getgrnam(t.conf["setgid_group"]).gr_gid if "setgid_group" in t.conf else None
    private = os.path.join(t.queue, "private")
    socks = sorted(n for n in os.listdir(private) if stat.S_ISSOCK(os.lstat(os.path.join(private, n)).st_mode))
    assert {"qmgr", "local", "send"} <= set(socks), "sockets in private/: %s" % socks
    want = [(private, stat.S_IFDIR | 0o700, owner.pw_gid)]
    want += [(os.path.join(private, n), stat.S_IFSOCK | 0o600, owner.pw_gid) for n in socks]
    want += [(os.path.join(t.queue, "public"), stat.S_IFDIR | 0o710, sgid),
             (os.path.join(t.queue, "public", "pickup"), stat.S_IFSOCK | 0o620, sgid),
             (os.path.join(t.queue, "maildrop"), stat.S_IFDIR | 0o1730, sgid)]
    bad = []
    for path, mode, gid in want:
        st = os.lstat(path)
        rel = os.path.relpath(path, t.queue)
        if st.st_mode != mode:
            bad.append("%s mode %o (want %o)" % (rel, st.st_mode, mode))
        if root and st.st_uid != owner.pw_uid:
            bad.append("%s owner uid %d (want mail_owner %d)" % (rel, st.st_uid, owner.pw_uid))
        if root and gid is not None and st.st_gid != gid:
            bad.append("%s group %d (want %d)" % (rel, st.st_gid, gid))
    assert not bad, "; ".join(bad)


# ----------------------------------------------------------------------------

def replace_daemon(t, agent, script):
    """Point t's daemon_directory at a copy of the real one in which agent
    is the shell script given (%(starts)s and %(ddir)s filled in); returns
    (the directory, the file the script appends its pid to, world-writable
    because children drop root)."""
    ddir = os.path.join(t.dir, "libexec")
    os.mkdir(ddir, 0o755)
    for a in AGENTS:
        if a != agent:
            os.symlink(os.path.join(DAEMON_DIR, a), os.path.join(ddir, a))
    starts = os.path.join(t.dir, "%s-starts" % agent)
    with open(starts, "w"):
        pass
    os.chmod(starts, 0o666)
    path = os.path.join(ddir, agent)
    with open(path, "w") as f:
        f.write(script % {"starts": starts, "ddir": ddir})
    os.chmod(path, 0o755)
    t.conf["daemon_directory"] = ddir
    t.write_conf()
    return ddir, starts


def test_throttle():
    with Tern(name="throttle") as t:
        res.on_fail.append(t.diagnostics)
        try:
            _, starts = replace_daemon(t, "send",
                                       "#!/bin/sh\n# a send that dies at once\necho $$ >> '%(starts)s'\nexit 1\n")

            t.start()
            t0 = time.monotonic()
            time.sleep(4.0)
            with open(starts) as f:
                n = len(f.read().split())
            elapsed = time.monotonic() - t0
            log("send started %d times in %.1f s" % (n, elapsed))
            log_text = t.log_text()
            assert n >= 1, "the send script never ran (daemon_directory not used?)"
            res.check("throttle_logged", re.search(r"throttl", log_text, re.I),
                      "master log does not mention throttling after %d send starts" % n)
            res.check("throttle_few_restarts", n < 10,
                      "send started %d times in %.1f s (want < 10)" % (n, elapsed))
            mpid = t.master_pid()
            res.check("throttle_master_alive", t.proc.poll() is None and mpid,
                      "master exited with %s" % t.proc.poll())
            code, text = submit(t.port, "sender@client.test", ["alice@localhost"],
                                message("during throttle", "smtp still works\r\n"))
            assert code == 250, "end of DATA got %d %s" % (code, text)
            assert wait_subject(t, "alice", "during throttle", 15), \
                "local mail not delivered within 15 s while send is throttled"
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)


CRASHER = """import os, select, signal, socket, sys
with open(sys.argv[1], "a") as f:
    f.write("%d\\n" % os.getpid())
lsn = socket.socket(fileno=3)
for _ in range(100000):
    select.select([lsn], [], [], 60)
    try:
        lsn.accept()
    except BlockingIOError:
        continue
    os.kill(os.getpid(), signal.SIGSEGV)
"""


def test_crash_loop():
    with Tern(name="crashloop") as t:
        res.on_fail.append(t.diagnostics)
        try:
            ddir, starts = replace_daemon(t, "smtpd", "#!/bin/sh\n# an smtpd that crashes on every connection\n"
                                          "exec %s '%%(ddir)s/crasher.py' '%%(starts)s'\n" % sys.executable)
            with open(os.path.join(ddir, "crasher.py"), "w") as f:
                f.write(CRASHER)

            def nstarts():
                with open(starts) as f:
                    return len(f.read().split())
            t.start()  # its probe connection already kills one child
            # Let the pool grow old: the crashes below start with children
            # past QUICK_EXIT_SECONDS.
            time.sleep(11.0)
            n0 = nstarts()
            for _ in range(60):
                try:
                    with socket.create_connection(("127.0.0.1", t.port), timeout=2) as c:
                        c.settimeout(0.3)
                        try:
                            c.recv(1)  # EOF or a reset once a child took it and died
                        except OSError:
                            pass
                except OSError:
                    pass
            n = nstarts() - n0
            log("smtpd started %d times for 60 crashing connections (%d before)" % (n, n0))
            res.check("crash_loop_throttled", n < 30, "smtpd started %d times for 60 connections" % n)
            res.check("crash_loop_logged", re.search(r"service smtp.*throttl", t.log_text()),
                      "master log does not mention throttling smtp")
            res.check("crash_loop_master_alive", t.proc.poll() is None, "master exited with %s" % t.proc.poll())
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)


def test_config_error():
    d = tempfile.mkdtemp(prefix="tern-bb-badconf-")
    try:
        bad = os.path.join(d, "BAD.conf")
        with open(bad, "w") as f:
            f.write("# a bad config\n")
            f.write("queue_directory = %s\n" % os.path.join(d, "queue"))
            f.write("no_such_key_anywhere = 1\n")
            f.write("myhostname = tern.test\n")
        p = subprocess.Popen([MASTER, "-f", "-c", bad], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=d, start_new_session=True)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.communicate(timeout=5)
            raise AssertionError("tern-master with a bad config still running after 10 s")
        err = err.decode(errors="replace")
        assert p.returncode != 0, "exit status 0 with an unknown key (stderr %r)" % err
        assert "%s:3" % bad in err, "stderr does not name %s:3: %r" % (bad, err)
        assert "no_such_key_anywhere" in err, "stderr does not name the key: %r" % err
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if not prerequisites_or_fail(res, "master_build"):
        res.exit()
    owner = mail_owner()
    t = Tern(name="master")
    if os.getuid() == 0 and submit_group():
        t.conf["setgid_group"] = submit_group()
        t.write_conf()
    res.on_fail.append(t.diagnostics)
    try:
        if res.run("start", t.start):
            res.run("start_processes", test_start_processes, t)
            if os.getuid() == 0 and pwd.getpwnam(owner).pw_uid != 0:
                ouid = pwd.getpwnam(owner).pw_uid
                res.run("uid_smtpd_qmgr_send_mail_owner", test_uids, t, ("smtpd", "qmgr", "send"), ouid)
                res.run("uid_local_root", test_uids, t, ("local",), 0)
            else:
                res.skip("uid_checks", "not root, or mail_owner is root")
            res.run("fds_idle_smtpd_only_3_4", test_smtpd_fds, t)
            res.run("fds_children_inherit_nothing_else", test_no_inherited_fds, t)
            res.run("sockets_private_0600_public_0620_setgid_group", test_socket_modes, t)
            res.run("smtpd_kill9_mail_still_delivered", test_smtpd_kill9, t)
            res.run("qmgr_kill9_mail_delivered_after", test_qmgr_kill9, t)
            res.run("prefork_growth", test_prefork_growth, t)
            res.run("sigterm_all_gone_exit_0", test_sigterm, t)
    finally:
        t.cleanup()
        res.on_fail.remove(t.diagnostics)
    res.run("throttle_send_exits_at_once", test_throttle)
    res.run("crash_loop_smtpd_throttled", test_crash_loop)
    res.run("config_error_names_file_line", test_config_error)
    res.exit()


if __name__ == "__main__":
    main()
