#!/usr/bin/env python3
"""test_local_delivery — the local agent with real Unix users (issue 5; needs root).

Creates users ternt_<pid>_{a,b,c} (homes in the instance's temp dir, removed
at the end even on failure) and checks, through the real daemons:
  aliases_*    fan-out to two users and a remote address (re-queued to the
               sink), owner-list becomes the envelope sender, :include:,
               postmaster, an alias cycle bounces 5.4.6, newaliases errors
  extension_*  a+ext@ reaches a's Maildir; EXTENSION reaches a command
  maildir_worker_reused_as_user  three Maildir deliveries to one user: owned
               by the user, at least two written by one kept worker process
               (the P<pid> of the file names), which runs as the user
  maildir_nothing_in_tmp  after those deliveries Maildir tmp/ is empty and
               every file in new/ has one link
  maildir_symlinked_new_written_as_user  Maildir/new a symlink to a root
               directory: nothing written there, deferred until restored
  passwd_home_change_seen  the passwd entry gets a new home: a few seconds later
               (the agent's passwd cache) mail goes to the new home
  maildir_tmpfile_fallback  (third instance) the agent's link through
               /proc/self/fd fails (LD_PRELOAD shim, ENOENT): each message is
               written again through tmp/ and delivered exactly once
  forward_*    .forward with \\user and a pipe run as the user (uid/gid checked
               inside the command); ignored when a symlink, group writable,
               owned by another user, or in a group or world writable home
  pipe_*       alias commands run as default_privs (uid/gid from inside), exit
               0 sent, 75 deferred, 67 bounced 5.1.1 with the output, time-out;
               killed by a signal deferred; the time limit kills a background
               child too; a command closing its input unread with 1 MiB to
               come is delivered; 4 MB of output bounded in the DSN text; no
               variable of the agent's environment and no fd past 2 reaches it
  file_*       /file target appended in mbox format
  metachar_*   "|touch x", "$(touch x)", "${run{...}}" recipients get 550 5.1.1
               at RCPT; in a real user's extension they reach the mailbox and
               a .forward command's $EXTENSION as text, never evaluated
  virtual_*    virtual mailbox domain: delivery as the static uid, unknown
               address rejected at RCPT
  loop_*       Delivered-To: for the recipient bounces 5.4.6
  mbox_*       (second instance, home_mailbox empty) mbox in the spool,
               concurrent deliveries never interleave, >From quoting,
               mailbox_size_limit bounces and leaves the mbox as it was; a
               stale dotlock is removed; a held one (or an fcntl lock)
               defers 4.2.0; a mailbox that is a symlink to /etc/passwd, a
               hard link to a symlink or to another file bounces 5.2.0 and
               nothing is written through it; root's forward file never
               runs (root's mail deferred 4.7.0)
"""

import ctypes
import errno
import fcntl
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (BUILD, DAEMON_DIR, TERNCTL, Results, SmtpSink, Tern,  # noqa: E402
                          prerequisites_or_fail, wait_for)

res = Results()
PREFIX = "ternt_%d_" % (os.getpid() % 100000)
ENV_MARKER = "TERN_TEST_INHERITED_MARKER"
PIPE_ENV = {"HOME", "USER", "LOGNAME", "SHELL", "PATH", "SENDER", "RECIPIENT", "LOCAL", "EXTENSION", "DOMAIN",
            "ORIGINAL_RECIPIENT", "PWD"}  # PWD: the shell's own
USERS = []


def add_user(base, tag):
    name = PREFIX + tag
    home = os.path.join(base, "home", name)
    os.makedirs(os.path.dirname(home), exist_ok=True)
    os.chmod(os.path.dirname(home), 0o755)
    subprocess.run(["useradd", "-M", "-d", home, "-s", "/bin/sh", "-U", name], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    USERS.append(name)
    pw = pwd.getpwnam(name)
    os.makedirs(home)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    os.chmod(home, 0o755)
    return pw


def remove_users():
    for u in USERS:
        subprocess.run(["userdel", u], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        subprocess.run(["groupdel", u], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def set_home(name, home):
    """usermod -d, which refuses while the user has processes (the agent's
    Maildir worker runs as the user): rewrite the passwd entry under the
    passwd lock the way usermod does (new file, rename)."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.lckpwdf() == 0, "cannot lock the passwd file"
    try:
        with open("/etc/passwd") as f:
            lines = f.read().splitlines(True)
        out = []
        for line in lines:
            fields = line.rstrip("\n").split(":")
            if len(fields) == 7 and fields[0] == name:
                fields[5] = home
                line = ":".join(fields) + "\n"
            out.append(line)
        st = os.stat("/etc/passwd")
        tmp = "/etc/passwd.tern-test"
        with open(tmp, "w") as f:
            f.write("".join(out))
        os.chmod(tmp, st.st_mode & 0o7777)
        os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, "/etc/passwd")
    finally:
        libc.ulckpwdf()


def send(port, rcpt, body="hello\n", sender="sender@remote.test", headers=""):
    msg = ("From: %s\r\nTo: %s\r\nSubject: t\r\n%s\r\n%s" % (sender, rcpt, headers, body)).encode()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail(sender, [rcpt], msg)


def maildir_files(home):
    d = os.path.join(home, "Maildir", "new")
    try:
        return sorted(os.path.join(d, f) for f in os.listdir(d))
    except OSError:
        return []


def read(path):
    with open(path, "rb") as f:
        return f.read().decode(errors="replace")


def wait_log(t, pattern, timeout=15.0):
    rx = re.compile(pattern)
    ok = wait_for(lambda: rx.search(t.log_text()) is not None, timeout)
    assert ok, "no log line matching %r" % pattern


def write(path, text, mode=0o644, owner=None):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if owner:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def newaliases(t):
    r = subprocess.run([TERNCTL, "-c", t.conf_path, "newaliases"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace")


def main_instance(sink):
    nobody = pwd.getpwnam("nobody")
    t = Tern(transport={"remote.test": "smtp:[127.0.0.1]:%d" % sink.port}, name="local",
             conf={"local_mailbox_base": "", "command_time_limit": "3s"})
    res.on_fail.append(t.diagnostics)
    a, b, c = add_user(t.dir, "a"), add_user(t.dir, "b"), add_user(t.dir, "c")
    out = os.path.join(t.dir, "out")
    os.makedirs(out)
    os.chmod(out, 0o1777)
    vbase = os.path.join(t.dir, "vmail")
    os.makedirs(vbase)
    os.chown(vbase, 5000, 5000)
    with open(os.path.join(t.dir, "vmaps"), "w") as f:
        f.write("v1@virt.test v1/Maildir/\n")
    subprocess.run([TERNCTL, "makemap", os.path.join(t.dir, "vmaps")], check=True, timeout=30)
    inc = os.path.join(t.dir, "inc.list")
    write(inc, "# members\n%s\n%s\n" % (b.pw_name, c.pw_name))
    aliases = os.path.join(t.dir, "aliases")
    write(aliases, """# test aliases
postmaster: %(a)s
list: %(a)s, %(b)s,
  remote1@remote.test
owner-list: %(a)s
cyc1: cyc2
cyc2: cyc1
inc: :include:%(inc)s
prog: "|id -u > %(out)s/prog.id; id -g >> %(out)s/prog.id; cat > %(out)s/prog.msg"
tempfail: "|exit 75"
nouser: "|echo no such luser here; exit 67"
slow: "|sleep 30"
tofile: %(out)s/archive
killed: "|kill -9 $$"
pgroup: "|test -e %(out)s/pgroup.stop && exit 0; sleep 60 & echo $! >> %(out)s/pgroup.pid; sleep 60"
noread: "|exec 0<&-; sleep 1"
chatty: "|head -c 4000000 /dev/zero | tr -c x e >&2; exit 1"
envdump: "|env > %(out)s/env.txt; ls -l /proc/self/fd > %(out)s/fds.txt"
""" % {"a": a.pw_name, "b": b.pw_name, "inc": inc, "out": out})
    t.conf.update({"alias_maps": aliases, "virtual_mailbox_domains": "virt.test",
                   "virtual_mailbox_maps": os.path.join(t.dir, "vmaps"),
                   "virtual_mailbox_base": vbase, "virtual_uid_maps": "static:5000",
                   "virtual_gid_maps": "static:5000"})
    t.write_conf()
    return t, a, b, c, out, nobody, vbase


def test_main():
    sink = SmtpSink().start()
    t = None
    try:
        t, a, b, c, out, nobody, vbase = main_instance(sink)
        rc, text = newaliases(t)
        res.check("aliases_newaliases", rc == 0 and "aliases" in text, text)
        # What the agent inherits must not reach a command (pipe_clean_env).
        os.environ[ENV_MARKER] = "inherited"
        os.environ["LD_LIBRARY_PATH"] = "/nonexistent-tern-test"
        try:
            t.start()
        finally:
            del os.environ[ENV_MARKER], os.environ["LD_LIBRARY_PATH"]
        port = t.port

        def fanout():
            send(port, "list@localhost", body="to the list\n")
            assert wait_for(lambda: maildir_files(a.pw_dir) and maildir_files(b.pw_dir), 30), "no list mail"
            assert sink.wait(1, 15), "remote member got nothing"
            m = sink.messages[0]
            assert m["rcpts"] == ["remote1@remote.test"], m["rcpts"]
            assert m["sender"] == "owner-list@localhost", "sender %r" % m["sender"]
            assert b"Delivered-To: list@localhost" in m["data"], "no Delivered-To in forwarded copy"
            ma = read(maildir_files(a.pw_dir)[0])
            assert "Return-Path: <owner-list@localhost>" in ma, ma[:200]
            st = os.stat(maildir_files(b.pw_dir)[0])
            assert st.st_uid == b.pw_uid, "b's mail not owned by b"
        res.run("aliases_fanout_owner_remote", fanout)

        def include():
            nb, nc = len(maildir_files(b.pw_dir)), len(maildir_files(c.pw_dir))
            send(port, "inc@localhost")
            assert wait_for(lambda: len(maildir_files(b.pw_dir)) > nb and len(maildir_files(c.pw_dir)) > nc,
                            15), "include members got nothing"
        res.run("aliases_include", include)

        def postmaster():
            n = len(maildir_files(a.pw_dir))
            send(port, "postmaster@localhost")
            assert wait_for(lambda: len(maildir_files(a.pw_dir)) > n, 15)
        res.run("aliases_postmaster", postmaster)

        def cycle():
            send(port, "cyc1@localhost")
            wait_log(t, r"to=<cyc1@localhost>.*dsn=5\.4\.6, status=bounced \(mail forwarding loop: alias cycle")
        res.run("aliases_cycle_bounces", cycle)

        def extension():
            n = len(maildir_files(a.pw_dir))
            send(port, "%s+lists@localhost" % a.pw_name, body="ext\n")
            assert wait_for(lambda: len(maildir_files(a.pw_dir)) > n, 15)
            want = "Delivered-To: %s+lists@localhost" % a.pw_name
            assert wait_for(lambda: any(want in read(f) for f in maildir_files(a.pw_dir)), 15), "no " + want
        res.run("extension_delivery", extension)

        def maildir_worker():
            # Maildir deliveries to one owner go through one worker process
            # kept for that uid (local/local_worker.c): the file names carry
            # the writer's pid (P...) and its own counter (Q...).
            before = set(maildir_files(c.pw_dir))
            for i in range(3):
                send(port, "%s@localhost" % c.pw_name, body="worker %d\n" % i)
            assert wait_for(lambda: len(set(maildir_files(c.pw_dir)) - before) >= 3, 15), "not delivered"
            new = sorted(set(maildir_files(c.pw_dir)) - before)
            for f in new:
                st = os.stat(f)
                assert (st.st_uid, st.st_gid) == (c.pw_uid, c.pw_gid), "%s owned by %d:%d" % (f, st.st_uid, st.st_gid)
                assert ("worker" in read(f)), f
            pq = [re.search(r"\.M\d+P(\d+)Q(\d+)\.", os.path.basename(f)) for f in new]
            assert all(pq), [os.path.basename(f) for f in new]
            pids = [int(m.group(1)) for m in pq]
            shared = max(pids.count(p) for p in pids)
            assert shared >= 2, "every delivery had its own process: %s" % [os.path.basename(f) for f in new]
            w = max(set(pids), key=pids.count)
            try:
                with open("/proc/%d/status" % w) as fh:
                    uids = [l.split()[1:3] for l in fh if l.startswith(("Uid:", "Gid:"))]
                assert uids == [[str(c.pw_uid)] * 2, [str(c.pw_gid)] * 2], "worker %d runs as %s" % (w, uids)
            except FileNotFoundError:
                pass  # already gone after its idle time: the file owners above say enough
        res.run("maildir_worker_reused_as_user", maildir_worker)

        def nothing_in_tmp():
            # The file is written unnamed in tmp/ (O_TMPFILE) or through
            # tmp/; either way tmp/ holds nothing once delivery is done.
            for u in (a, c):
                tmpd = os.path.join(u.pw_dir, "Maildir", "tmp")
                assert os.path.isdir(tmpd) and not os.listdir(tmpd), "%s: %s" % (tmpd, os.listdir(tmpd))
                for f in maildir_files(u.pw_dir):
                    assert os.stat(f).st_nlink == 1, f
        res.run("maildir_nothing_in_tmp", nothing_in_tmp)

        def home_change_seen():
            # The agent keeps passwd entries for a few seconds
            # (local/local_pwcache.c): a moved home is used soon after.
            send(port, "%s@localhost" % b.pw_name, body="before the move\n")
            assert wait_for(lambda: any("before the move" in read(f) for f in maildir_files(b.pw_dir)), 15)
            newhome = b.pw_dir + ".moved"
            os.makedirs(newhome)
            os.chown(newhome, b.pw_uid, b.pw_gid)
            set_home(b.pw_name, newhome)
            try:
                time.sleep(3.5)  # LOCAL_PW_TTL_MS and a margin
                send(port, "%s@localhost" % b.pw_name, body="after the move\n")
                assert wait_for(lambda: any("after the move" in read(f) for f in maildir_files(newhome)), 15), \
                    "not delivered to the new home %s" % newhome
                assert not any("after the move" in read(f) for f in maildir_files(b.pw_dir)), "old home used"
            finally:
                set_home(b.pw_name, b.pw_dir)
            time.sleep(3.5)  # the tests below expect the old home again
        res.run("passwd_home_change_seen", home_change_seen)

        def pipe_ok():
            send(port, "prog@localhost", body="piped body\n")
            f = os.path.join(out, "prog.msg")
            assert wait_for(lambda: os.path.exists(f) and "piped body" in read(f), 15), "command did not run"
            ids = read(os.path.join(out, "prog.id")).split()
            assert ids == [str(nobody.pw_uid), str(nobody.pw_gid)], "ran as %s" % ids
            wait_log(t, r"to=<prog@localhost>.*status=sent \(delivered to command: id -u")
        res.run("pipe_exit0_as_default_privs", pipe_ok)

        def pipe_75():
            send(port, "tempfail@localhost")
            wait_log(t, r"to=<tempfail@localhost>.*dsn=4\.3\.0, status=deferred \(command exit 75 failed|"
                        r"to=<tempfail@localhost>.*status=deferred \(command exit 75")
        res.run("pipe_exit75_deferred", pipe_75)

        def pipe_67():
            send(port, "nouser@localhost")
            wait_log(t, r"to=<nouser@localhost>.*dsn=5\.1\.1, status=bounced \(.*exit 67: no such luser here")
        res.run("pipe_exit67_bounced", pipe_67)

        def pipe_timeout():
            send(port, "slow@localhost")
            wait_log(t, r"to=<slow@localhost>.*status=deferred \(command time limit exceeded", 20)
        res.run("pipe_timeout_deferred", pipe_timeout)

        def pipe_signal():
            send(port, "killed@localhost")
            wait_log(t, r"to=<killed@localhost>.*dsn=4\.3\.0, status=deferred \(command .* killed by signal 9")
        res.run("pipe_killed_by_signal_deferred", pipe_signal)

        def pipe_process_group():
            # The command leaves a background sleep holding its output
            # open; the time limit must kill it too, not just the shell.
            send(port, "pgroup@localhost")
            wait_log(t, r"to=<pgroup@localhost>.*status=deferred \(command time limit exceeded", 20)
            write(os.path.join(out, "pgroup.stop"), "")  # the retries exit at once
            pid = int(read(os.path.join(out, "pgroup.pid")).split()[0])

            def gone():
                try:
                    with open("/proc/%d/stat" % pid) as fh:
                        return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
                except FileNotFoundError:
                    return True
            assert wait_for(gone, 5), "background process %d of the command survived the time limit" % pid
            wait_log(t, r"to=<pgroup@localhost>.*status=sent \(delivered to command", 20)
        res.run("pipe_timeout_kills_process_group", pipe_process_group)

        def pipe_noread():
            # 1 MiB cannot fit in a pipe: the command closes its input
            # unread and lives on, so the writes end with EPIPE; its exit 0
            # still counts as delivered.
            send(port, "noread@localhost", body=("z" * 511 + "\n") * 2048)
            wait_log(t, r"to=<noread@localhost>.*status=sent \(delivered to command: exec 0<&-; sleep 1", 20)
        res.run("pipe_command_ignores_1mib_input_delivered", pipe_noread)

        def pipe_chatty():
            # 4 MB on stderr is drained (no hang) and only its start is kept.
            send(port, "chatty@localhost")
            wait_log(t, r"to=<chatty@localhost>.*dsn=5\.3\.0, status=bounced \(command .* exit 1: eeee", 20)
            line = [l for l in t.log_text().splitlines() if "to=<chatty@localhost>" in l and "bounced" in l][0]
            assert 0 < line.count("e" * 100) and len(line) < 2000, "DSN text %d bytes long" % len(line)
        res.run("pipe_megabytes_of_output_truncated", pipe_chatty)

        def pipe_env_fds():
            send(port, "envdump@localhost")
            fds = os.path.join(out, "fds.txt")
            assert wait_for(lambda: os.path.exists(fds) and "-> " in read(fds), 15), "command did not run"
            wait_log(t, r"to=<envdump@localhost>.*status=sent")
            env = dict(l.split("=", 1) for l in read(os.path.join(out, "env.txt")).splitlines() if "=" in l)
            assert ENV_MARKER not in env and "LD_LIBRARY_PATH" not in env, "inherited: %s" % sorted(env)
            assert set(env) <= PIPE_ENV, "unexpected variables %s" % sorted(set(env) - PIPE_ENV)
            assert env["RECIPIENT"] == "envdump@localhost", env
            # ls's own directory descriptor aside, only 0-2 may be open.
            open_fds = sorted(int(m.group(1)) for m in re.finditer(r" (\d+) -> (\S+)", read(fds))
                              if not m.group(2).startswith("/proc/"))
            assert open_fds == [0, 1, 2], "descriptors: %s" % read(fds)
        res.run("pipe_clean_env_and_fds", pipe_env_fds)

        def file_target():
            send(port, "tofile@localhost", body="From the file test\n")
            f = os.path.join(out, "archive")
            assert wait_for(lambda: os.path.exists(f) and "file test" in read(f), 15)
            text = read(f)
            assert text.startswith("From sender@remote.test "), text[:80]
            assert "\n>From the file test\n" in text, text
            wait_log(t, r"to=<tofile@localhost>.*status=sent \(delivered to file: ")
        res.run("file_delivery_mbox_format", file_target)

        def forward_pipe():
            uidf = os.path.join(c.pw_dir, "fwd.id")
            write(os.path.join(c.pw_dir, ".forward"),
                  "\\%s, \"|id -u > %s; id -g >> %s; echo $EXTENSION >> %s\"\n" % (c.pw_name, uidf, uidf, uidf),
                  owner=c)
            n = len(maildir_files(c.pw_dir))
            send(port, "%s+ext1@localhost" % c.pw_name)
            assert wait_for(lambda: os.path.exists(uidf) and len(read(uidf).split()) == 3, 15), "no pipe output"
            assert read(uidf).split() == [str(c.pw_uid), str(c.pw_gid), "ext1"], read(uidf)
            assert wait_for(lambda: len(maildir_files(c.pw_dir)) > n, 15), "\\user copy missing"
        res.run("forward_pipe_as_user_and_backslash", forward_pipe)

        def forward_refused(kind):
            fwd = os.path.join(c.pw_dir, ".forward")
            target = os.path.join(c.pw_dir, "refused.%s" % kind)
            if os.path.lexists(fwd):
                os.unlink(fwd)
            text = "\"|touch %s\"\n" % target
            if kind.startswith("home"):
                write(fwd, text, owner=c)
                os.chmod(c.pw_dir, 0o775 if kind == "homegroupwritable" else 0o757)
            elif kind == "symlink":
                real = os.path.join(c.pw_dir, "real.forward")
                write(real, text, owner=c)
                os.symlink(real, fwd)
                os.lchown(fwd, c.pw_uid, c.pw_gid)
            elif kind == "groupwritable":
                write(fwd, text, mode=0o664, owner=c)
            else:
                write(fwd, text, owner=b)
            why = "its directory is group or world writable" if kind.startswith("home") else ""
            ignored = re.compile(r"ignored %s \(%s" % (re.escape(fwd), re.escape(why)))
            seen = len(ignored.findall(t.log_text()))
            try:
                n = len(maildir_files(c.pw_dir))
                send(port, "%s@localhost" % c.pw_name)
                assert wait_for(lambda: len(maildir_files(c.pw_dir)) > n, 15), "mail not in the mailbox"
                assert not os.path.exists(target), ".forward was used"
                assert wait_for(lambda: len(ignored.findall(t.log_text())) > seen, 5), "no log line"
            finally:
                os.chmod(c.pw_dir, 0o755)
                os.unlink(fwd)
        for kind in ("symlink", "groupwritable", "otherowner", "homegroupwritable", "homeworldwritable"):
            res.run("forward_refused_%s" % kind, forward_refused, kind)

        def maildir_symlinked_new():
            # A user may point Maildir/new anywhere (as Postfix allows): the
            # write is made as the user, so a directory the user cannot
            # write gets nothing and the delivery is deferred.
            new = os.path.join(a.pw_dir, "Maildir", "new")
            rootdir = os.path.join(t.dir, "rootonly")
            os.makedirs(rootdir)
            os.chmod(rootdir, 0o755)
            os.rename(new, new + ".real")
            os.symlink(rootdir, new)
            os.lchown(new, a.pw_uid, a.pw_gid)
            try:
                send(port, "%s@localhost" % a.pw_name, body="through a symlinked new\n")
                wait_log(t, r"to=<%s@localhost>.*dsn=4\.3\.0, status=deferred \(maildir delivery failed: .*"
                         r"Permission denied" % a.pw_name)
                assert not os.listdir(rootdir), "written as root: %s" % os.listdir(rootdir)
            finally:
                os.unlink(new)
                os.rename(new + ".real", new)
            assert wait_for(lambda: any("through a symlinked new" in read(f) for f in maildir_files(a.pw_dir)), 15), \
                "not delivered once new/ was back"
        res.run("maildir_symlinked_new_written_as_user", maildir_symlinked_new)

        def metachars_unknown():
            # Shell and expansion syntax in a recipient is data: an unknown
            # local user is refused at RCPT and nothing is run, then or later.
            made = [os.path.join(out, "meta%d" % i) for i in range(3)]
            rcpts = ['"|touch %s"@localhost' % made[0], '"$(touch %s)"@localhost' % made[1],
                     '"${run{/bin/touch %s}}"@localhost' % made[2]]
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo("client.test")
                s.mail("x@remote.test")
                for r in rcpts:
                    code, text = s.rcpt(r)
                    assert code == 550 and b"5.1.1" in text, "%s: %d %r" % (r, code, text)
            assert not any(os.path.exists(f) for f in made), "a metacharacter recipient ran a command"
        res.run("metachar_recipients_unknown_550", metachars_unknown)

        def metachars_extension():
            # The same syntax in the extension of a real user reaches the
            # mailbox and a .forward command as plain text, never evaluated.
            # (Relative names: the command runs in c's home, and the local
            # part must stay within 64 octets; unquoted, so no space or ';'.)
            made = [os.path.join(c.pw_dir, "m%d" % i) for i in range(3)]
            got = os.path.join(out, "metaext.txt")
            fwd = os.path.join(c.pw_dir, ".forward")
            write(fwd, "\\%s, \"|printf %%s $EXTENSION > %s\"\n" % (c.pw_name, got), owner=c)
            try:
                for ext in ("|touch${IFS}m0", "`touch${IFS}m1`", "${run{/bin/touch${IFS}m2}}"):
                    n = len(maildir_files(c.pw_dir))
                    send(port, "%s+%s@localhost" % (c.pw_name, ext))
                    assert wait_for(lambda: os.path.exists(got) and read(got) == ext, 15), \
                        "EXTENSION %r" % (read(got) if os.path.exists(got) else None)
                    assert wait_for(lambda: len(maildir_files(c.pw_dir)) > n, 15), "no mailbox copy"
                time.sleep(0.5)
                assert not any(os.path.exists(f) for f in made), "the extension was evaluated"
            finally:
                os.unlink(fwd)
        res.run("metachar_extension_inert", metachars_extension)

        def quoted_extension():
            # A quoted local part is split unquoted, as Postfix does:
            # "c+x;touch m3" is user c with the extension "x;touch m3",
            # which needs the quotes (space, ';') and stays inert text.
            made = os.path.join(c.pw_dir, "m3")
            got = os.path.join(out, "quotedext.txt")
            fwd = os.path.join(c.pw_dir, ".forward")
            write(fwd, "\\%s, \"|printf %%s $EXTENSION > %s\"\n" % (c.pw_name, got), owner=c)
            try:
                n = len(maildir_files(c.pw_dir))
                send(port, '"%s+x;touch m3"@localhost' % c.pw_name)
                # the command's own unquoted $EXTENSION is split at the space
                assert wait_for(lambda: os.path.exists(got) and read(got) == "x;touchm3", 15), \
                    "EXTENSION %r" % (read(got) if os.path.exists(got) else None)
                assert wait_for(lambda: len(maildir_files(c.pw_dir)) > n, 15), "no mailbox copy"
                time.sleep(0.5)
                assert not os.path.exists(made), "the extension was evaluated"
            finally:
                os.unlink(fwd)
        res.run("quoted_local_part_extension_split", quoted_extension)

        def virtual():
            send(port, "v1@virt.test")
            d = os.path.join(vbase, "v1", "Maildir", "new")
            assert wait_for(lambda: os.path.isdir(d) and os.listdir(d), 15), "no virtual mail"
            assert os.stat(os.path.join(d, os.listdir(d)[0])).st_uid == 5000
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo("client.test")
                s.mail("x@remote.test")
                code, _ = s.rcpt("nobody-here@virt.test")
                assert code == 550, "unknown virtual address got %d" % code
        res.run("virtual_mailbox", virtual)

        def loop():
            send(port, "%s@localhost" % b.pw_name, headers="Delivered-To: %s@localhost\r\n" % b.pw_name)
            wait_log(t, r"to=<%s@localhost>.*dsn=5\.4\.6, status=bounced \(mail forwarding loop" % b.pw_name)
        res.run("loop_delivered_to", loop)

        def bad_aliases():
            write(os.path.join(t.dir, "aliases"), "ok: a\nbroken line\n")
            rc2, text2 = newaliases(t)
            assert rc2 == 1 and "aliases:2:" in text2, text2
        res.run("aliases_newaliases_error_file_line", bad_aliases)
    finally:
        if t:
            t.cleanup()
        sink.stop()


def test_mbox():
    t = Tern(name="mbox", conf={"local_mailbox_base": "", "home_mailbox": "", "mailbox_size_limit": "40000"})
    res.on_fail.append(t.diagnostics)
    try:
        spool = os.path.join(t.dir, "spool")
        os.makedirs(spool)
        os.chmod(spool, 0o1777)
        t.conf["mail_spool_directory"] = spool
        t.conf["alias_maps"] = ""
        # Root's own home gets a forward file only under this unique name.
        t.conf["forward_path"] = ".tern-test-forward-%d" % os.getpid()
        t.write_conf()
        u = add_user(t.dir, "m")
        t.start()
        mbox = os.path.join(spool, u.pw_name)
        N = 8

        def concurrent():
            ths = [threading.Thread(target=send, args=(t.port, "%s@localhost" % u.pw_name),
                                    kwargs={"body": ("line %d\n" % i) * 300 + "From me %d\n" % i})
                   for i in range(N)]
            for th in ths:
                th.start()
            for th in ths:
                th.join(30)
            assert wait_for(lambda: os.path.exists(mbox) and read(mbox).count("\nFrom sender") + 1 >= N, 20), \
                "not all messages arrived"
            text = read(mbox)
            msgs = re.split(r"(?m)^From sender@remote\.test ", text)[1:]
            assert len(msgs) == N, "%d messages" % len(msgs)
            for m in msgs:
                nums = set(re.findall(r"line (\d+)", m))
                assert len(nums) == 1, "interleaved message"
                i = nums.pop()
                assert m.count("line %s\n" % i) == 300, "message %s incomplete" % i
                assert "\n>From me %s\n" % i in m, "no >From quoting"
            assert os.stat(mbox).st_uid == u.pw_uid
        res.run("mbox_concurrent_no_interleave_from_quoting", concurrent)

        def size_limit():
            before = os.path.getsize(mbox)
            send(t.port, "%s@localhost" % u.pw_name, body="x" * 100 + "\n" + ("y" * 70 + "\n") * 600)
            wait_log(t, r"dsn=5\.2\.2, status=bounced")
            assert os.path.getsize(mbox) == before, "mbox changed: %d -> %d" % (before, os.path.getsize(mbox))
        res.run("mbox_size_limit_truncates", size_limit)

        # The lock tests: 4 tries (1 s) instead of 40, and a stale limit
        # under the default, so the lock below is stale only by the key.
        t.stop()
        t.conf["deliver_lock_attempts"] = "4"
        t.conf["stale_lock_time"] = "60s"
        t.write_conf()
        t.start()

        def stale_lock():
            # A dotlock older than stale_lock_time is a dead writer's:
            # removed, and the delivery goes ahead.
            lock = mbox + ".lock"
            write(lock, "", mode=0o600, owner=u)
            old = time.time() - 100
            os.utime(lock, (old, old))
            before = os.path.getsize(mbox)
            send(t.port, "%s@localhost" % u.pw_name, body="after a stale lock\n")
            assert wait_for(lambda: "after a stale lock" in read(mbox), 15), "not delivered"
            assert os.path.getsize(mbox) > before, "mbox not grown"
            # The delivery's own dotlock goes only after its write is flushed.
            assert wait_for(lambda: not os.path.lexists(lock), 10), "stale lock left"
            wait_log(t, r"removing stale lock %s" % re.escape(lock))
        res.run("mbox_stale_dotlock_removed", stale_lock)

        def lock_timeout():
            # A fresh dotlock held past the lock retries (about 1 s):
            # deferred 4.2.0, the mbox untouched; delivered once released.
            lock = mbox + ".lock"
            write(lock, "", mode=0o600, owner=u)
            before = os.path.getsize(mbox)
            try:
                send(t.port, "%s@localhost" % u.pw_name, body="behind a held lock\n")
                wait_log(t, r"to=<%s@localhost>.*dsn=4\.2\.0, status=deferred \(mailbox .* is locked" % u.pw_name,
                         30)
                assert os.path.getsize(mbox) == before, "mbox written while locked"
                assert os.path.exists(lock), "a fresh lock was removed"
            finally:
                if os.path.lexists(lock):
                    os.unlink(lock)
            assert wait_for(lambda: "behind a held lock" in read(mbox), 30), "not delivered after the unlock"
        res.run("mbox_dotlock_held_deferred", lock_timeout)

        def fcntl_held():
            # No dotlock, but another process holds an fcntl lock on the
            # mbox: the same 4.2.0 deferral, the dotlock taken back.
            before = os.path.getsize(mbox)
            locked = re.compile(r"to=<%s@localhost>.*dsn=4\.2\.0, status=deferred \(mailbox .* is locked"
                                % u.pw_name)
            seen = len(locked.findall(t.log_text()))  # the dotlock test's
            with open(mbox, "ab") as f:
                fcntl.lockf(f, fcntl.LOCK_EX)
                try:
                    send(t.port, "%s@localhost" % u.pw_name, body="behind an fcntl lock\n")
                    assert wait_for(lambda: len(locked.findall(t.log_text())) > seen, 30), "not deferred"
                    assert os.path.getsize(mbox) == before, "mbox written while locked"
                    assert not os.path.lexists(mbox + ".lock"), "dotlock left behind"
                finally:
                    fcntl.lockf(f, fcntl.LOCK_UN)
            assert wait_for(lambda: "behind an fcntl lock" in read(mbox), 30), "not delivered after the unlock"
        res.run("mbox_fcntl_lock_held_deferred", fcntl_held)

        def unsafe(kind):
            # The user (who may write the spool) points the mailbox at a
            # file it must not change: nothing is written through it.
            v = add_user(t.dir, {"passwd": "p", "hardlinked_symlink": "hs", "hardlinked_file": "hf"}[kind])
            box = os.path.join(spool, v.pw_name)
            victim = os.path.join(t.dir, "victim.%s" % kind)
            if kind == "passwd":
                os.symlink("/etc/passwd", box)
                victim = "/etc/passwd"
            elif kind == "hardlinked_symlink":
                write(victim, "victim\n", owner=v)
                os.symlink(victim, victim + ".sym")
                os.lchown(victim + ".sym", v.pw_uid, v.pw_gid)
                os.link(victim + ".sym", box, follow_symlinks=False)
            else:
                write(victim, "victim\n", mode=0o600, owner=v)
                os.link(victim, box)
            if kind != "passwd":
                os.lchown(box, v.pw_uid, v.pw_gid)
            with open(victim, "rb") as f:
                want = f.read()
            send(t.port, "%s@localhost" % v.pw_name, body="through the link\n")
            wait_log(t, r"to=<%s@localhost>.*dsn=5\.2\.0, status=bounced \(refusing to deliver to %s: "
                     % (v.pw_name, re.escape(box)))
            with open(victim, "rb") as f:
                assert f.read() == want, "%s was written" % victim
        for kind in ("passwd", "hardlinked_symlink", "hardlinked_file"):
            res.run("mbox_unsafe_%s_bounced" % kind, unsafe, kind)

        def root_forward():
            # Root's forward file is never read (a command in it would run
            # as root) and root's own mailbox is refused: deferred 4.7.0.
            fwd = os.path.join(pwd.getpwuid(0).pw_dir, t.conf["forward_path"])
            ran = os.path.join(t.dir, "root.ran")
            write(fwd, "\"|touch %s\"\n" % ran, mode=0o600)
            try:
                send(t.port, "root@localhost")
                wait_log(t, r"to=<root@localhost>.*dsn=4\.7\.0, status=deferred")
                time.sleep(0.5)
                assert not os.path.exists(ran), "root's forward file ran a command"
            finally:
                os.unlink(fwd)
        res.run("root_forward_never_runs", root_forward)
    finally:
        t.cleanup()


def test_tmpfile_fallback():
    """The agent runs under the rename/link shim (tests/faults/renamefail.c)
    failing its link through /proc/self/fd into new/ with ENOENT, as when
    /proc is not mounted: the message is written again through tmp/ and
    delivered exactly once, tmp/ left empty."""
    shim = os.path.join(BUILD, "tests", "faults", "librenamefail.so")
    if os.environ.get("TERN_LDFLAGS"):
        res.skip("maildir_tmpfile_fallback",
                 "the link shim is preloaded, and AddressSanitizer's runtime must come first")
        return
    if not os.path.exists(shim):
        res.skip("maildir_tmpfile_fallback", "%s missing (make unit builds it)" % shim)
        return
    t = Tern(name="fallback", conf={"local_mailbox_base": ""})
    res.on_fail.append(t.diagnostics)
    try:
        wrap = os.path.join(t.dir, "libexec")
        os.makedirs(wrap)
        os.chmod(t.dir, 0o755)
        for name in os.listdir(DAEMON_DIR):
            real = os.path.join(DAEMON_DIR, name)
            if os.path.isdir(real) or not os.access(real, os.X_OK):
                continue
            env = ""
            if name == "local":
                env = ("TERN_FAIL_RENAME=%d; TERN_FAIL_RENAME_MATCH=/Maildir/new/; TERN_FAIL_RENAME_OPS=linkat\n"
                       "export TERN_FAIL_RENAME TERN_FAIL_RENAME_MATCH TERN_FAIL_RENAME_OPS\n"
                       "LD_PRELOAD='%s'; export LD_PRELOAD\n" % (errno.ENOENT, shim))
            with open(os.path.join(wrap, name), "w") as f:
                f.write("#!/bin/sh\n%sexec '%s' \"$@\"\n" % (env, real))
            os.chmod(os.path.join(wrap, name), 0o755)
        t.conf["daemon_directory"] = wrap
        t.conf["alias_maps"] = ""
        t.write_conf()
        u = add_user(t.dir, "f")
        t.start()

        def fallback():
            for i in range(2):
                send(t.port, "%s@localhost" % u.pw_name, body="fallback %d\n" % i)
            assert wait_for(lambda: len(maildir_files(u.pw_dir)) >= 2, 15), "not delivered"
            time.sleep(0.5)
            files = maildir_files(u.pw_dir)
            assert len(files) == 2, "%d copies" % len(files)
            assert sorted(read(f).count("fallback") for f in files) == [1, 1]
            for f in files:
                st = os.stat(f)
                assert (st.st_uid, st.st_nlink) == (u.pw_uid, 1), "%s: uid %d, %d links" % (f, st.st_uid, st.st_nlink)
            tmpd = os.path.join(u.pw_dir, "Maildir", "tmp")
            assert not os.listdir(tmpd), "tmp/ not empty: %s" % os.listdir(tmpd)
            log = t.log_text()
            assert re.search(r"renamefail: linkat \S*/Maildir/new/", log), "the shim failed no link"
            assert "writing it through tmp/" in log, "no fallback logged"
        res.run("maildir_tmpfile_fallback", fallback)
    finally:
        t.cleanup()


if os.getuid() != 0:
    res.skip("local_delivery", "needs root to create users and run the privileged local agent")
    print("PASS local_delivery_skipped_not_root")
    sys.exit(0)
if not prerequisites_or_fail(res, "local_delivery"):
    res.exit()
try:
    test_main()
    test_mbox()
    test_tmpfile_fallback()
finally:
    remove_users()
res.exit()
