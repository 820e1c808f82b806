#!/usr/bin/env python3
"""Local submission by unprivileged users (issue 8), as root only (SKIP
otherwise).  The test creates a group terns_pNNN (the instance's
setgid_group) and two users terns_aNNN / terns_bNNN, removed at the end
even on failure.

How the users' sendmail finds the instance without trusting the
environment in the setgid helper: sendmail (no privilege) takes the
instance's config from $TERN_CONFIG; the setgid postdrop ignores the
environment and only accepts its compiled-in default, so the test compiles
a postdrop whose default config is the instance's (TERN_SYSCONFDIR=DIR),
installs it setgid terns_pNNN mode 2755 into DIR/libexec with links to the
other daemons, and points daemon_directory there.

Checked: mailutils `mail -s` and `git send-email --sendmail-cmd` deliver
through tern's sendmail; the sender is user@myorigin and the pickup log
line has the user's uid; the maildrop directory and file and the queue
files are unreadable to another user; -f by a user is accepted and logged;
postdrop started in the user's own unreadable directory moves to / and
queues the message."""

import grp
import os
import pwd
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import Tern, Results, BUILD, DAEMON_DIR, REPO, parse_message, prerequisites_or_fail, wait_for  # noqa

SENDMAIL = os.path.join(BUILD, "sbin", "tern-sendmail")
SUFFIX = "%04d" % random.randrange(10000)
GROUP, USER_A, USER_B = "terns_p" + SUFFIX, "terns_a" + SUFFIX, "terns_b" + SUFFIX


def build_postdrop(t, libexec):
    """postdrop with the instance's tern.conf as its compiled-in default."""
    out = os.path.join(libexec, "postdrop")
    cmd = ["cc", "-std=c11", "-D_GNU_SOURCE", "-I" + os.path.join(REPO, "common"),
           '-DTERN_SYSCONFDIR="%s"' % t.dir, "-o", out, os.path.join(REPO, "postdrop", "main.c"),
           os.path.join(BUILD, "libpostdrop.a"), os.path.join(BUILD, "libcommon.a"), "-lcdb", "-lresolv"]
    # The sanitizer build's objects need the sanitizer runtimes (make asan sets
    # this); LeakSanitizer cannot run in a setgid program, so it is turned off
    # in this postdrop through the runtime's documented hook.
    if os.environ.get("TERN_LDFLAGS"):
        off = os.path.join(t.dir, "lsan_off.c")
        with open(off, "w") as f:
            f.write("int __lsan_is_turned_off(void);\nint __lsan_is_turned_off(void) { return 1; }\n")
        cmd += [off] + os.environ["TERN_LDFLAGS"].split()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("cc postdrop: %s" % r.stdout.decode(errors="replace"))
    os.chown(out, 0, grp.getgrnam(GROUP).gr_gid)
    os.chmod(out, 0o2755)


def as_user(user, argv, data=b"", cwd=None, env_extra=None, timeout=30):
    pw = pwd.getpwnam(user)

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    env = {"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "USER": user, "LOGNAME": user}
    env.update(env_extra or {})
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=drop,
                          env=env, cwd=cwd or pw.pw_dir, timeout=timeout)


def setup_accounts():
    subprocess.run(["groupadd", GROUP], check=True, timeout=30)
    for u in (USER_A, USER_B):
        subprocess.run(["useradd", "-m", "-c", "Test User %s" % u, "-s", "/bin/sh", u], check=True, timeout=30)


def remove_accounts():
    for u in (USER_A, USER_B):
        subprocess.run(["userdel", "-r", u], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    subprocess.run(["groupdel", GROUP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def test_plain(t, env):
    r = as_user(USER_A, [SENDMAIL, "plain@localhost"], b"Subject: plain\n\nhi\n", env_extra=env)
    assert r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr)
    assert t.wait_mail("plain", 1, 10), "not delivered"
    _raw, m = parse_message(t.mail_files("plain")[-1])
    uid = pwd.getpwnam(USER_A).pw_uid
    assert m["Return-Path"] == "<%s@tern.test>" % USER_A, m["Return-Path"]
    assert "Test User" in m["From"], m["From"]
    assert wait_for(lambda: ": uid=%d from=<%s@tern.test>" % (uid, USER_A) in t.log_text(), 5), "no uid= log line"
    r = as_user(USER_A, [SENDMAIL, "-f", "other@example.org", "fuser@localhost"], b"x\n", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert t.wait_mail("fuser", 1, 10)
    assert "set the sender with -f" in t.log_text()
    r = as_user(USER_A, [SENDMAIL, "-C", "/etc/passwd", "x@localhost"], b"x\n", env_extra=env)
    assert r.returncode != 0, "a user chose another config for the setgid postdrop"


def test_mailutils(t, env):
    if not shutil.which("mail"):
        raise AssertionError("mailutils' mail not installed (scripts/deps.sh)")
    r = as_user(USER_A, ["mail", "--no-config", "-E", "set sendmail=sendmail://" + SENDMAIL, "-s",
                         "from mailutils", "mu@localhost"], b"mail body\n", env_extra=env)
    assert r.returncode == 0, "mail: %d %s" % (r.returncode, r.stderr)
    assert t.wait_mail("mu", 1, 10), "mail -s not delivered"
    raw, m = parse_message(t.mail_files("mu")[-1])
    assert m["Subject"] == "from mailutils" and b"mail body" in raw, raw


def test_git_send_email(t, env):
    pw = pwd.getpwnam(USER_A)
    repo = os.path.join(pw.pw_dir, "repo")
    genv = dict(env, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@tern.test", GIT_COMMITTER_NAME="A",
                GIT_COMMITTER_EMAIL="a@tern.test")
    for argv in (["git", "init", "-q", repo], ["sh", "-c", "echo hello > %s/f && git -C %s add f" % (repo, repo)],
                 ["git", "-C", repo, "commit", "-q", "-m", "first"],
                 ["git", "-C", repo, "format-patch", "-q", "-1", "-o", os.path.join(pw.pw_dir, "p")]):
        r = as_user(USER_A, argv, env_extra=genv)
        assert r.returncode == 0, "%s: %s" % (argv, r.stderr)
    patch = os.path.join(pw.pw_dir, "p", os.listdir(os.path.join(pw.pw_dir, "p"))[0])
    r = as_user(USER_A, ["git", "send-email", "--sendmail-cmd=" + SENDMAIL, "--to=gse@tern.test",
                         "--from=A <a@tern.test>", "--suppress-cc=all", "--confirm=never", "--no-validate", "--quiet", patch],
                env_extra=genv)
    assert r.returncode == 0, "git send-email: %d %s" % (r.returncode, r.stderr)
    assert t.wait_mail("gse", 1, 10), "git send-email not delivered"
    raw, _m = parse_message(t.mail_files("gse")[-1])
    assert b"first" in raw, raw[:200]


def test_permissions(t, env):
    t.stop()  # the file stays in maildrop/
    r = as_user(USER_A, [SENDMAIL, "secret@localhost"], b"Subject: secret\n\nsecret text\n", env_extra=env)
    assert r.returncode == 0, r.stderr
    drop = os.path.join(t.queue, "maildrop")
    names = os.listdir(drop)
    assert len(names) == 1, names
    st = os.stat(os.path.join(drop, names[0]))
    assert st.st_uid == pwd.getpwnam(USER_A).pw_uid, "file owner is not the submitter"
    probe = ("import os,sys\n"
             "bad=[]\n"
             "for p in sys.argv[1:]:\n"
             "  try:\n"
             "    (os.listdir if os.path.isdir(p) else (lambda q: open(q,'rb').read()))(p); bad.append(p)\n"
             "  except OSError: pass\n"
             "print(' '.join(bad))\n")
    paths = [drop, os.path.join(drop, names[0])] + [os.path.join(t.queue, d) for d in
                                                     ("incoming", "active", "deferred", "corrupt", "tmp")]
    for user in (USER_B, USER_A):
        r = as_user(user, ["/usr/bin/python3", "-c", probe] + paths, env_extra=env)
        assert r.returncode == 0 and not r.stdout.strip(), "%s could read: %s %s" % (user, r.stdout, r.stderr)
    r = as_user(USER_B, ["/usr/bin/python3", "-c", "import os,sys; os.unlink(sys.argv[1])", os.path.join(drop, names[0])],
                env_extra=env)
    assert r.returncode != 0, "another user removed the maildrop file"
    t.start()
    assert t.wait_mail("secret", 1, 10), "not delivered after start"


def test_hostile_cwd(t, env):
    """hostile-inputs C.20: the setgid postdrop started by a user from a
    directory that user owns and made unreadable (mode 0300): postdrop
    leaves it at once (its cwd is / while it writes, seen in /proc) and the
    message is queued and delivered; sendmail from there delivers too."""
    pw = pwd.getpwnam(USER_A)
    cwd = os.path.join(pw.pw_dir, "hostile-cwd")
    os.mkdir(cwd)
    os.chown(cwd, pw.pw_uid, pw.pw_gid)
    os.chmod(cwd, 0o300)
    drop = os.path.join(t.queue, "maildrop")
    content = b"Subject: hostile cwd\n\n" + b"x" * 50000 + b"\n"
    stream = b"TERNDROP 1\nF 0\nN \nS \nR 0 hcwd@localhost\nL %d\n" % len(content) + content

    def drop_privs():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    t.stop()  # the temp file stays visible until postdrop renames it
    p = subprocess.Popen([os.path.join(t.dir, "libexec", "postdrop")], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=cwd, preexec_fn=drop_privs, env={"PATH": "/usr/bin:/bin"})
    try:
        p.stdin.write(stream[:1000])
        p.stdin.flush()
        assert wait_for(lambda: os.listdir(drop), 5), "no temp file while writing"
        where = os.readlink("/proc/%d/cwd" % p.pid)
        assert where == "/", "postdrop's working directory while it writes: %s" % where
        p.stdin.write(stream[1000:])
        p.stdin.close()
        assert p.wait(10) == 0, "postdrop exit %d: %s" % (p.returncode, p.stderr.read())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
        p.stderr.close()
    t.start()
    assert t.wait_mail("hcwd", 1, 10), "postdrop's message not delivered"
    r = as_user(USER_A, [SENDMAIL, "hcwd2@localhost"], b"Subject: hostile cwd 2\n\nhi\n", cwd=cwd, env_extra=env)
    assert r.returncode == 0, "sendmail from an unreadable cwd: exit %d %s" % (r.returncode, r.stderr)
    assert t.wait_mail("hcwd2", 1, 10), "sendmail's message not delivered"


def main():
    res = Results()
    if os.getuid() != 0:
        res.skip("sendmail_users", "needs root (creates users)")
        print("PASS sendmail_users_skipped_not_root")
        sys.exit(0)
    if not prerequisites_or_fail(res, "sendmail_users_build"):
        res.exit()
    try:
        setup_accounts()
        with Tern(name="sendmail-users") as t:
            libexec = os.path.join(t.dir, "libexec")
            os.mkdir(libexec, 0o755)
            for prog in ("smtpd", "qmgr", "local", "send", "pickup"):
                os.symlink(os.path.join(DAEMON_DIR, prog), os.path.join(libexec, prog))
            build_postdrop(t, libexec)
            t.conf.update({"daemon_directory": libexec, "setgid_group": GROUP, "mydestination": "localhost, tern.test"})
            t.write_conf()
            res.on_fail.append(t.diagnostics)
            t.start()
            env = {"TERN_CONFIG": t.conf_path}
            for name, fn in (("sendmail_user_submission_uid_sender", test_plain),
                             ("sendmail_user_mailutils_mail_s", test_mailutils),
                             ("sendmail_user_git_send_email", test_git_send_email),
                             ("sendmail_user_cannot_read_others_mail", test_permissions),
                             ("postdrop_user_unreadable_cwd_leaves_it", test_hostile_cwd)):
                res.run(name, fn, t, env)
            left = t.stop()
            res.check("sendmail_users_clean_stop", not left, "left: %s" % left)
    finally:
        remove_accounts()
    res.exit()


if __name__ == "__main__":
    main()
