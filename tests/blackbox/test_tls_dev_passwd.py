#!/usr/bin/env python3
"""test_tls_dev_passwd — `make run`'s certificate and `ternctl passwd` (issue 9).

  dev_mode_offers_starttls   tern-master -D DIR makes DIR/tls/{cert,key}.pem (key 0600) on the
                             first run and STARTTLS works (openssl s_client -starttls smtp)
  dev_cert_kept_on_restart   a second start keeps the same certificate
  passwd_stdin               `ternctl passwd USER` with the password on stdin (not a tty) writes
                             "USER $y$..." (or $6$) and USER.cdb; a second run replaces the line
  passwd_tty_no_echo         on a terminal (pty): prompts twice, the password is never echoed,
                             a mismatch changes nothing
  passwd_bad_input           a 256-byte password, an empty line, a user name with a space: exit 1
"""

import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import TERNCTL, Results, Tern, prerequisites_or_fail  # noqa: E402

res = Results()
if not prerequisites_or_fail(res, "tls_dev_build"):
    res.exit()


def s_client(port):
    r = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:%d" % port],
                       input=b"QUIT\r\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    return r.stdout.decode(errors="replace")


with Tern(dev=True, name="tlsdev") as t:
    res.on_fail.append(t.diagnostics)
    t.start()
    cert, key = os.path.join(t.dir, "tls", "cert.pem"), os.path.join(t.dir, "tls", "key.pem")

    def dev():
        assert os.path.exists(cert) and os.path.exists(key), "no certificate under DIR/tls"
        assert os.stat(key).st_mode & 0o077 == 0, "key mode %o" % os.stat(key).st_mode
        out = s_client(t.port)
        assert "TLSv1.3" in out and "localhost.localdomain" in out, out[-1500:]
    res.run("dev_mode_offers_starttls", dev)
    first = open(cert).read() if os.path.exists(cert) else ""
    t.stop()
    t.start()
    res.check("dev_cert_kept_on_restart", open(cert).read() == first, "certificate replaced")

work = tempfile.mkdtemp(prefix="tern-bb-passwd-")
table = os.path.join(work, "sasl_passwd")
conf = os.path.join(work, "tern.conf")
with open(conf, "w") as f:
    f.write("smtpd_sasl_password_maps = %s\n" % table)


def passwd(user, data):
    return subprocess.run([TERNCTL, "-c", conf, "passwd", user], input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)


def stdin_case():
    r = passwd("alice", b"first pass\n")
    assert r.returncode == 0, r.stdout
    lines = open(table).read().splitlines()
    assert len(lines) == 1 and lines[0].split(" ")[0] == "alice", lines
    h1 = lines[0].split(" ", 1)[1]
    assert h1.startswith("$y$") or h1.startswith("$6$"), h1
    assert "first pass" not in open(table).read()
    assert os.path.exists(table + ".cdb")
    r = passwd("bob", b"bob pass")  # no final newline
    assert r.returncode == 0, r.stdout
    r = passwd("ALICE", b"second pass\n")  # same user (keys are case-insensitive)
    assert r.returncode == 0, r.stdout
    lines = open(table).read().splitlines()
    assert len(lines) == 2, lines
    assert [l for l in lines if l.lower().startswith("alice ")][0].split(" ", 1)[1] != h1
    assert not [n for n in os.listdir(work) if ".tmp" in n], os.listdir(work)
res.run("passwd_stdin", stdin_case)


def tty_run(user, answers):
    """Run ternctl passwd on a pty; returns (exit code, everything it printed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(TERNCTL, [TERNCTL, "-c", conf, "passwd", user])
    out = b""
    pending = list(answers)
    deadline = time.monotonic() + 20
    status = None
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                chunk = b""
            if not chunk:
                break
            out += chunk
            if pending and out.count(b"password: ") > len(answers) - len(pending):
                os.write(fd, pending.pop(0))
    # Bounded: a child still waiting for input after the deadline is killed.
    done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        time.sleep(1)
        done, status = os.waitpid(pid, os.WNOHANG)
    if done == 0:
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def tty_case():
    before = open(table).read()
    rc, out = tty_run("carol", [b"tty secret\n", b"tty secret\n"])
    assert rc == 0, out
    assert b"tty secret" not in out, "echoed: %r" % out
    assert out.count(b"password: ") == 2, out
    after = open(table).read()
    assert "carol " in after and "tty secret" not in after
    rc, out = tty_run("dave", [b"one\n", b"two\n"])
    assert rc == 1 and b"do not match" in out, out
    assert "dave " not in open(table).read()
    assert before != after
res.run("passwd_tty_no_echo", tty_case)


def bad_input():
    assert passwd("erin", b"x" * 256 + b"\n").returncode == 1
    assert passwd("erin", b"\n").returncode == 1
    assert passwd("er in", b"pw\n").returncode == 1
    assert "erin" not in open(table).read()
res.run("passwd_bad_input", bad_input)

if not os.environ.get("TERN_TEST_KEEP"):
    import shutil
    shutil.rmtree(work, ignore_errors=True)
res.exit()
