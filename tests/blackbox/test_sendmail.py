#!/usr/bin/env python3
"""sendmail, postdrop and pickup as root (issue 8): -t with Cc/Bcc/groups/
folded headers, the lone-dot rule and -i, every documented flag once, the
ignored flags, -bs through python smtplib, -bp/-bi/-q, submission while the
master is stopped, forged and truncated maildrop files moved to corrupt/, -t with 10,000
recipients and over the cap, postdrop dying while sendmail writes to it,
the reader of -bs output going away (EPIPE), postdrop with fds
1 and 2 closed (its maildrop file is not fd 0-2, the message is intact).
The unprivileged-user tests (mail -s, git send-email, permissions) are in
test_sendmail_users.py.  Runs as any user: without root, every tern process
and postdrop run as that user (development mode)."""

import os
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import Tern, Results, BUILD, parse_message, prerequisites_or_fail, wait_for  # noqa: E402

SENDMAIL = os.path.join(BUILD, "sbin", "tern-sendmail")


def sm(t, args, data=b"", timeout=20):
    return subprocess.run([SENDMAIL, "-C", t.conf_path] + args, input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def newest(t, user):
    files = t.mail_files(user)
    return parse_message(files[-1]) if files else (b"", None)


def test_extract(t):
    msg = (b"To: alice@localhost,\n\tBob Smith <bob@localhost>\n"
           b"Cc: (the team) team: carol@localhost, \"Dave D\" <dave@localhost>;,\n"
           b" =?utf-8?q?J=C3=B6rg?= <joerg@localhost>\n"
           b"Bcc: eve@localhost\nSubject: extract\n\nbody line\n")
    r = sm(t, ["-t", "frank@localhost"], msg)
    assert r.returncode == 0, "exit %d: %s" % (r.returncode, r.stderr)
    for u in ("alice", "bob", "carol", "dave", "joerg", "eve", "frank"):
        assert t.wait_mail(u, 1, 10), "%s got nothing" % u
    for u in ("alice", "eve"):
        raw, m = newest(t, u)
        assert b"\nBcc:" not in raw and b"eve@localhost" not in raw.split(b"\n\n")[0].replace(
            b"Delivered-To: eve@localhost", b""), "Bcc visible to %s" % u
        assert b"=?utf-8?q?J=C3=B6rg?=" in raw, "encoded word altered"
        assert m["From"] and m["Date"] and m["Message-ID"], "missing From/Date/Message-ID"


def test_dot_rule(t):
    r = sm(t, ["dot1@localhost"], b"Subject: d1\n\nbefore\n.\nafter\n")
    assert r.returncode == 0, r.stderr
    r = sm(t, ["-i", "dot2@localhost"], b"Subject: d2\n\nbefore\n.\nafter")
    assert r.returncode == 0, r.stderr
    r = sm(t, ["-oi", "dot3@localhost"], b"Subject: d3\r\n\r\n.\r\nx")
    assert r.returncode == 0, r.stderr
    for u in ("dot1", "dot2", "dot3"):
        assert t.wait_mail(u, 1, 10), u
    raw1, _ = newest(t, "dot1")
    raw2, _ = newest(t, "dot2")
    raw3, _ = newest(t, "dot3")
    assert b"before" in raw1 and b"after" not in raw1, "lone dot did not end the input"
    assert raw2.endswith(b"before\n.\nafter\n"), "-i: dot not kept or final newline missing: %r" % raw2[-40:]
    assert b"\r" not in raw3 and raw3.endswith(b"\n.\nx\n"), "CRLF not converted: %r" % raw3[-20:]


def test_sender_flags(t):
    r = sm(t, ["-f", "boss@example.org", "-F", 'A "Q" (x) \\ B', "fl1@localhost"], b"Subject: f\n\nx\n")
    assert r.returncode == 0, r.stderr
    r = sm(t, ["-r", "", "fl2@localhost"], b"Subject: f\n\nx\n")
    assert r.returncode == 0, r.stderr
    r = sm(t, ["-f", "-oQ/tmp", "fl3@localhost"], b"Subject: f\n\nx\n")
    assert r.returncode == 0, r.stderr
    for u in ("fl1", "fl2", "fl3"):
        assert t.wait_mail(u, 1, 10), u
    raw, m = newest(t, "fl1")
    assert m["Return-Path"] == "<boss@example.org>", m["Return-Path"]
    assert '"A \\"Q\\" (x) \\\\ B"' in m["From"], m["From"]
    _raw, m = newest(t, "fl2")
    assert m["Return-Path"] == "<>", m["Return-Path"]
    _raw, m = newest(t, "fl3")
    assert m["Return-Path"] == "<-oQ/tmp@tern.test>", "inert -oQ sender: %s" % m["Return-Path"]
    assert not os.path.exists("/tmp/tern-sendmail-X-log"), "-X opened a file"
    for bad in ("a\nX-Inj: y@x", "x" * 10240 + "@x", "<a@b"):
        r = sm(t, ["-f", bad, "fl4@localhost"], b"x\n")
        assert r.returncode == 64, "-f %r: exit %d" % (bad[:20], r.returncode)


def test_dsn_flags(t):
    r = sm(t, ["-N", "success,delay,failure", "-R", "hdrs", "-V", "env-1", "-B", "8BITMIME", "-v",
               "dsn1@localhost"], "Subject: dsn\n\n\u00e9t\u00e9\n".encode())
    assert r.returncode == 0, r.stderr
    r = sm(t, ["-N", "never", "-R", "full", "-B", "7bit", "dsn2@localhost"], b"Subject: dsn\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert t.wait_mail("dsn1", 1, 10) and t.wait_mail("dsn2", 1, 10)
    for args in (["-N", "sometimes"], ["-R", "most"], ["-B", "9bit"], ["-V", "a b"], ["-Z"], ["-bz"]):
        r = sm(t, args + ["x@localhost"], b"x\n")
        assert r.returncode == 64 and r.stderr, "%s: exit %d" % (args, r.returncode)


def test_ignored_flags(t):
    xlog = os.path.join(t.dir, "x.log")
    r = sm(t, ["-oem", "-odb", "-odi", "-oQ/tmp", "-om", "-L", "label", "-X", xlog, "-G", "-U", "-h", "5",
               "-n", "-m", "-A", "c", "-bm", "--", "ign@localhost"], b"Subject: ign\n\nx\n")
    assert r.returncode == 0, r.stderr
    assert t.wait_mail("ign", 1, 10)
    assert not os.path.exists(xlog), "-X created a log file"
    r = sm(t, [], b"x\n")
    assert r.returncode == 64, "no recipients: exit %d" % r.returncode
    r = sm(t, ["-t"], b"Subject: none\n\nx\n")
    assert r.returncode == 64, "-t without recipients: exit %d" % r.returncode


def test_bs(t):
    a, b = socket.socketpair()
    p = subprocess.Popen([SENDMAIL, "-C", t.conf_path, "-bs"], stdin=b, stdout=b, stderr=subprocess.PIPE)
    b.close()
    try:
        s = smtplib.SMTP()
        s.sock = a
        code, _ = s.getreply()
        assert code == 220, code
        s.ehlo("client")
        refused = s.sendmail("bs@example.org", ["bs1@localhost", "bs2@localhost"],
                             b"Subject: bs\r\n\r\n.leading dot\r\nline\r\n")
        assert refused == {}, refused
        code, _ = s.docmd("RCPT TO:<x@localhost>")
        assert code == 503, "RCPT without MAIL: %d" % code
        s.quit()
    finally:
        a.close()
        p.wait(10)
    assert p.returncode == 0, p.returncode
    assert t.wait_mail("bs1", 1, 10) and t.wait_mail("bs2", 1, 10)
    raw, m = newest(t, "bs1")
    assert m["Return-Path"] == "<bs@example.org>" and b"\n.leading dot\nline\n" in raw, raw[-60:]


def test_bp_bi_q(t):
    r = sm(t, ["-bp"])
    assert r.returncode == 0, "mailq: exit %d %s" % (r.returncode, r.stderr)
    r = sm(t, ["-bi"])
    assert r.returncode == 0, "newaliases: exit %d %s" % (r.returncode, r.stderr)
    assert os.path.exists(os.path.join(t.dir, "aliases.cdb")), "no aliases.cdb"
    r = sm(t, ["-q"])
    assert r.returncode == 0, "-q: %d %s" % (r.returncode, r.stderr)
    assert wait_for(lambda: "flush requested" in t.log_text(), 5), "pickup did not pass the flush on"


def test_stopped(t):
    t.stop()
    r = sm(t, ["-q"])
    assert r.returncode == 69, "-q with tern stopped: exit %d" % r.returncode
    r = sm(t, ["stopped@localhost"], b"Subject: while stopped\n\nx\n")
    assert r.returncode == 0, r.stderr
    drop = os.path.join(t.queue, "maildrop")
    assert len(os.listdir(drop)) == 1, os.listdir(drop)
    t.start()
    assert t.wait_mail("stopped", 1, 10), "not delivered after start"
    assert wait_for(lambda: not os.listdir(drop), 5), "maildrop not emptied"


def forge(t, name, data, mode=0o444):
    p = os.path.join(t.queue, "maildrop", name)
    with open(p + ".w", "wb") as f:
        f.write(data)
    os.chmod(p + ".w", mode)
    os.rename(p + ".w", p)


def test_corrupt(t):
    uid = os.getuid()
    good = b"TERNDROP 1\nU %d\nT 1\nF 0\nN \nS \nR 0 cor@localhost\nL 6\nhello\n" % uid
    names = {
        "truncated": ("AAAAAAAAAAAAAAAAAAA1", good[:-3]),
        "forged uid": ("AAAAAAAAAAAAAAAAAAA2", good.replace(b"U %d" % uid, b"U %d" % (uid + 1))),
        "bad version": ("AAAAAAAAAAAAAAAAAAA3", good.replace(b"TERNDROP 1", b"TERNDROP 2")),
        "extra bytes": ("AAAAAAAAAAAAAAAAAAA4", good + b"more"),
        "bad name": ("../x", None),
    }
    t.stop()
    for what, (name, data) in names.items():
        if data is not None:
            forge(t, name, data)
    forge(t, "not-a-queue-id", good)
    os.symlink("/etc/passwd", os.path.join(t.queue, "maildrop", "AAAAAAAAAAAAAAAAAAA5"))
    forge(t, "AAAAAAAAAAAAAAAAAAA6", good)  # the one good file
    t.start()
    corrupt = os.path.join(t.queue, "corrupt")
    want = {"AAAAAAAAAAAAAAAAAAA1", "AAAAAAAAAAAAAAAAAAA2", "AAAAAAAAAAAAAAAAAAA3", "AAAAAAAAAAAAAAAAAAA4",
            "AAAAAAAAAAAAAAAAAAA5", "not-a-queue-id"}
    assert wait_for(lambda: want <= set(os.listdir(corrupt)), 10), "corrupt/ holds %s" % os.listdir(corrupt)
    assert t.wait_mail("cor", 1, 10), "the good file was not delivered"
    assert "moved to corrupt/" in t.log_text()
    assert not os.listdir(os.path.join(t.queue, "maildrop")), os.listdir(os.path.join(t.queue, "maildrop"))


def test_postdrop_hostile(t):
    """hostile-inputs C.20: fds 0-2 closed, hostile environment, tiny
    RLIMIT_FSIZE, SIGHUP mid-write: an error status and nothing left in
    maildrop/ (not even a temp file)."""
    import resource
    import signal
    postdrop = os.path.join(BUILD, "libexec", "tern", "postdrop")
    drop = os.path.join(t.queue, "maildrop")
    t.stop()
    stream = b"TERNDROP 1\nF 0\nN \nS \nR 0 h@localhost\nL 100000\n" + b"x" * 100000
    # fds 0-2 closed: stdin reads as /dev/null (empty) -> malformed input.
    r = subprocess.run(["sh", "-c", 'exec "$0" -c "$1" <&- >&- 2>&-', postdrop, t.conf_path], timeout=10)
    assert r.returncode == 65, "closed fds: exit %d" % r.returncode
    # Hostile environment: TERN_CONFIG and LD_* mean nothing to postdrop.
    env = {"TERN_CONFIG": "/nonexistent", "LD_PRELOAD": "/nonexistent.so", "TZ": "../../etc/passwd"}
    r = subprocess.run([postdrop, "-c", t.conf_path], input=stream, env=env, stderr=subprocess.PIPE, timeout=10)
    assert r.returncode == 0, "hostile env: exit %d %s" % (r.returncode, r.stderr)
    assert len(os.listdir(drop)) == 1
    for n in os.listdir(drop):
        os.unlink(os.path.join(drop, n))

    def tiny():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
    r = subprocess.run([postdrop, "-c", t.conf_path], input=stream, preexec_fn=tiny, stderr=subprocess.PIPE,
                       timeout=10)
    assert r.returncode == 75 and not os.listdir(drop), "RLIMIT_FSIZE: exit %d, left %s" % (r.returncode,
                                                                                           os.listdir(drop))
    p = subprocess.Popen([postdrop, "-c", t.conf_path], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(stream[:50000])
    p.stdin.flush()
    assert wait_for(lambda: os.listdir(drop), 5), "no temp file while writing"
    p.send_signal(signal.SIGHUP)
    p.wait(10)
    p.stdin.close()
    assert p.returncode == 75 and not os.listdir(drop), "SIGHUP: exit %d, left %s" % (p.returncode,
                                                                                     os.listdir(drop))
    # Oversized message: refused before anything is written.
    big = b"TERNDROP 1\nF 0\nN \nS \nR 0 h@localhost\nL 99999999999\n"
    r = subprocess.run([postdrop, "-c", t.conf_path], input=big, stderr=subprocess.PIPE, timeout=10)
    assert r.returncode == 65 and not os.listdir(drop), "oversized: exit %d" % r.returncode
    t.start()


def drop_records(t):
    """{name: [R record addresses]} of the files in maildrop/."""
    out = {}
    drop = os.path.join(t.queue, "maildrop")
    for n in os.listdir(drop):
        with open(os.path.join(drop, n), "rb") as f:
            head = f.read().split(b"\nL ", 1)[0]
        out[n] = [line.split(b" ", 2)[2].decode() for line in head.split(b"\n") if line.startswith(b"R ")]
    return out


def clear_maildrop(t):
    drop = os.path.join(t.queue, "maildrop")
    for n in os.listdir(drop):
        os.unlink(os.path.join(drop, n))


def test_t_10k(t):
    """hostile-inputs F.33: -t with 10,000 recipients on folded To: and Cc:
    lines: every one in the maildrop file, once; one more than the documented
    cap (100,000, sendmail(1)) is refused with a message naming it, nothing
    queued.  tern is stopped meanwhile, so the file stays in maildrop/."""
    t.stop()
    try:
        def field(name, addrs):
            return ("%s: " % name + ",\n\t".join(", ".join(addrs[i:i + 5]) for i in range(0, len(addrs), 5))
                    + "\n").encode()
        addrs = ["r%05d@example.org" % i for i in range(10000)]
        msg = field("To", addrs[:6000]) + field("Cc", addrs[6000:]) + b"Subject: 10k\n\nbody\n"
        r = sm(t, ["-t"], msg, timeout=60)
        assert r.returncode == 0, "10,000 recipients: exit %d %s" % (r.returncode, r.stderr)
        files = drop_records(t)
        assert len(files) == 1, files.keys()
        got = list(files.values())[0]
        assert sorted(got) == addrs, "maildrop holds %d recipients (%d distinct), want the 10,000" \
            % (len(got), len(set(got)))
        clear_maildrop(t)
        many = ["r%06d@example.org" % i for i in range(100001)]
        r = sm(t, ["-t"], field("To", many) + b"Subject: over\n\nbody\n", timeout=120)
        assert r.returncode == 65, "100,001 recipients: exit %d" % r.returncode
        assert r.stderr == b"sendmail: too many recipients (at most 100000 per message)\n", \
            "stderr: %r" % r.stderr[:300]
        assert not os.listdir(os.path.join(t.queue, "maildrop")), "something queued"
    finally:
        clear_maildrop(t)
        t.start()


def fake_postdrop_conf(t, script):
    """A copy of the instance's config whose daemon_directory holds only a
    postdrop that is the given shell script."""
    d = os.path.join(t.dir, "fakepd")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "postdrop"), "w") as f:
        f.write("#!/bin/sh\n" + script + "\n")
    os.chmod(os.path.join(d, "postdrop"), 0o755)
    conf = os.path.join(t.dir, "fakepd.conf")
    with open(t.conf_path) as src, open(conf, "w") as f:
        f.write("".join(line for line in src if not line.startswith("daemon_directory")))
        f.write("daemon_directory = %s\n" % d)
    return conf


def test_postdrop_dies(t):
    """hostile-inputs F.33 (EPIPE): postdrop goes away while sendmail still
    writes a 2 MB message into it: exiting 0 after 100 bytes, killed by
    SIGKILL, or the real postdrop failing mid-file (RLIMIT_FSIZE): sendmail
    exits 75 with a message, and maildrop/ holds nothing."""
    postdrop = os.path.join(BUILD, "libexec", "tern", "postdrop")
    drop = os.path.join(t.queue, "maildrop")
    msg = b"Subject: big\n\n" + b"y" * 80 + b"\n" + (b"z" * 99 + b"\n") * 20000
    cases = [("exits 0 early", "head -c 100 >/dev/null; exit 0", b"write to postdrop"),
             ("killed", "head -c 100 >/dev/null; kill -9 $$", b"killed by signal 9"),
             ("file size limit", "ulimit -f 8; exec '%s' \"$@\"" % postdrop, b"postdrop: write maildrop file")]
    t.stop()
    try:
        for what, script, err in cases:
            r = subprocess.run([SENDMAIL, "-C", fake_postdrop_conf(t, script), "pd@localhost"], input=msg,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            assert r.returncode == 75, "%s: exit %d %r" % (what, r.returncode, r.stderr)
            assert err in r.stderr, "%s: stderr %r" % (what, r.stderr)
            assert not os.listdir(drop), "%s: maildrop/ holds %s" % (what, os.listdir(drop))
    finally:
        clear_maildrop(t)
        t.start()


def test_bs_reader_gone(t):
    """hostile-inputs F.33 (EPIPE): the reader of sendmail -bs output goes
    away, before the banner (stdout a pipe closed at the other end) or after
    RCPT (the client shuts its socket for reading, then sends DATA and the
    message): sendmail stops at the failed reply, exits 74 with a message,
    and queues nothing."""
    drop = os.path.join(t.queue, "maildrop")
    txn = b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<gone@localhost>\r\n"
    rest = b"DATA\r\nSubject: gone\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    t.stop()
    try:
        rd, wr = os.pipe()
        os.close(rd)
        try:
            r = subprocess.run([SENDMAIL, "-C", t.conf_path, "-bs"], input=txn + rest, stdout=wr,
                               stderr=subprocess.PIPE, timeout=20)
        finally:
            os.close(wr)
        assert r.returncode == 74, "stdout closed: exit %d %r" % (r.returncode, r.stderr)
        assert b"write to standard output" in r.stderr, r.stderr
        assert not os.listdir(drop), "stdout closed: maildrop/ holds %s" % os.listdir(drop)

        a, b = socket.socketpair()
        p = subprocess.Popen([SENDMAIL, "-C", t.conf_path, "-bs"], stdin=b, stdout=b, stderr=subprocess.PIPE)
        b.close()
        try:
            f = a.makefile("rb")
            assert f.readline().startswith(b"220"), "no banner"
            a.sendall(txn)
            for _ in range(3):
                line = f.readline()
                assert line.startswith(b"250"), line
            a.shutdown(socket.SHUT_RD)
            a.sendall(rest)
            p.wait(20)
            err = p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(5)
            p.stderr.close()
            a.close()
        assert p.returncode == 74, "reader gone after RCPT: exit %d %r" % (p.returncode, err)
        assert not os.listdir(drop), "reader gone after RCPT: maildrop/ holds %s" % os.listdir(drop)
    finally:
        clear_maildrop(t)
        t.start()


def test_postdrop_stdout_stderr_closed(t):
    """hostile-inputs C.20: postdrop started with fds 1 and 2 closed and a
    message on a stdin pipe.  While it writes, its maildrop file must not
    be fd 0-2 (1 and 2 are /dev/null), or a diagnostic written to "stderr"
    would land in it; the file queued holds exactly the message."""
    postdrop = os.path.join(BUILD, "libexec", "tern", "postdrop")
    drop = os.path.join(t.queue, "maildrop")
    t.stop()
    content = b"Subject: closed fds\n\n" + b"".join(b"line %06d\n" % i for i in range(20000))
    stream = b"TERNDROP 1\nF 0\nN \nS \nR 0 cfd@localhost\nL %d\n" % len(content) + content
    p = subprocess.Popen(["sh", "-c", 'exec "$0" -c "$1" >&- 2>&-', postdrop, t.conf_path], stdin=subprocess.PIPE)
    try:
        p.stdin.write(stream[:len(stream) // 2])
        p.stdin.flush()
        assert wait_for(lambda: os.listdir(drop), 5), "no temp file while writing"
        fds = {}
        for n in os.listdir("/proc/%d/fd" % p.pid):
            try:
                fds[int(n)] = os.readlink("/proc/%d/fd/%s" % (p.pid, n))
            except OSError:
                pass
        in_drop = {k: v for k, v in fds.items() if v.startswith(drop + "/")}
        assert len(in_drop) == 1, "maildrop files open in postdrop: %s" % fds
        assert min(in_drop) > 2, "the maildrop file is fd %d: %s" % (min(in_drop), fds)
        assert fds.get(1) == "/dev/null" and fds.get(2) == "/dev/null", "fds 1 and 2: %s" % fds
        p.stdin.write(stream[len(stream) // 2:])
        p.stdin.close()
        assert p.wait(10) == 0, "exit %d" % p.returncode
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    names = os.listdir(drop)
    assert len(names) == 1 and not names[0].startswith("tmp."), names
    with open(os.path.join(drop, names[0]), "rb") as f:
        data = f.read()
    assert data.endswith(b"\nL %d\n" % len(content) + content), "maildrop file does not end with the message"
    t.start()
    assert t.wait_mail("cfd", 1, 10), "not delivered"
    raw, _m = newest(t, "cfd")
    assert raw.endswith(content[content.index(b"\n\n") + 2:]), "delivered body differs"


def main():
    res = Results()
    if not prerequisites_or_fail(res, "sendmail_build"):
        res.exit()
    with Tern(name="sendmail") as t:
        aliases = os.path.join(t.dir, "aliases")
        with open(aliases, "w") as f:
            f.write("postmaster: root\n")
        t.conf["alias_maps"] = aliases
        t.write_conf()
        res.on_fail.append(t.diagnostics)
        t.start()
        tests = [("sendmail_t_cc_bcc_groups_folded", test_extract),
                 ("sendmail_dot_rule_and_i", test_dot_rule),
                 ("sendmail_f_r_F_and_hostile_senders", test_sender_flags),
                 ("sendmail_N_R_V_B_v_flags", test_dsn_flags),
                 ("sendmail_ignored_flags", test_ignored_flags),
                 ("sendmail_bs_smtplib", test_bs),
                 ("sendmail_t_10k_recipients_and_cap", test_t_10k),
                 ("sendmail_postdrop_dies_mid_write_75", test_postdrop_dies),
                 ("sendmail_bs_reader_gone_74_nothing_queued", test_bs_reader_gone),
                 ("sendmail_bp_bi_q", test_bp_bi_q),
                 ("sendmail_while_stopped", test_stopped),
                 ("maildrop_forged_truncated_to_corrupt", test_corrupt),
                 ("postdrop_closed_fds_env_fsize_sighup", test_postdrop_hostile),
                 ("postdrop_stdout_stderr_closed_file_not_fd_2", test_postdrop_stdout_stderr_closed)]
        for name, fn in tests:
            res.run(name, fn, t)
        left = t.stop()
        res.check("sendmail_clean_stop", not left, "left: %s" % left)
    res.exit()


if __name__ == "__main__":
    main()
