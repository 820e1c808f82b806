#!/usr/bin/env python3
"""test_queue — the queue manager (queue/), through real mail.

  bounce_*        transport `dead.test error:5.1.1 ...`: a message from
                  alice@localhost to x@dead.test gets 250, and alice receives an
                  RFC 3464 report (From MAILER-DAEMON, multipart/report,
                  Status: 5.1.1, Final-Recipient, the original Subject); the
                  original leaves the queue
  null_sender_*   the same from <>: no bounce to <>; the postmaster gets one
                  double bounce (and a double bounce is never bounced again)
  deferred_*      transport to a port where nothing listens: the message waits
                  in deferred/; a sink started on that port then receives it and
                  the queue empties
  mixed_*         one message to alice@localhost, x@dead.test and a sink
                  recipient: alice gets the message and the bounce, the sink its
                  copy, the queue empties
  crash_*         kill -9 of every process while messages sit in deferred/ and
                  one sits in active/: after a restart everything is delivered
                  exactly once
  corrupt_*       a garbage file named like a queue ID in incoming/ ends in
                  corrupt/, the log says "corrupt queue file", mail still flows
  unsafe_*        valid queue files that are a symbolic link, root's, a second
                  hard link, or a directory, in incoming/, active/ and deferred/
                  at a restart: all end in corrupt/, none is delivered, the
                  files outside the queue are untouched, the queue manager
                  neither exits nor restarts, mail still flows
  tmp_*           a (valid) queue file in tmp/ is never delivered; one older
                  than 6 hours is removed when the queue manager starts
  many_*          MANY (300) messages in active/ at a start, with the queue
                  manager's RLIMIT_NOFILE at MANY_NOFILE (64, a wrapper script)
                  and an active limit of 20: every one is delivered exactly
                  once, the queue manager never exits, nothing in corrupt/;
                  the same with only the soft limit at 64 and an active limit
                  of 100, and not one EMFILE (the queue manager raises its
                  soft limit to what its active limit needs); and with both
                  limits at 64 and an active limit of 100 (loads and scans
                  meet EMFILE, and are retried)
"""

import os
import pwd
import re
import shutil
import signal
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (DAEMON_DIR, Results, SmtpSink, Tern, free_port, mail_owner,  # noqa: E402
                          parse_message, prerequisites_or_fail, prog_name, proc_table, wait_for)

res = Results()

DEAD = "error:5.1.1 no such user here"
PENDING_DIRS = ("tmp", "incoming", "active", "deferred", "maildrop")


# ----------------------------------------------------------------------------
# helpers

def submit(port, sender, rcpts, msg):
    """Send one message; returns (code, text) of the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender)
        assert code == 250, "MAIL FROM:<%s> got %d %s" % (sender, code, text)
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, "RCPT TO:<%s> got %d %s" % (r, code, text)
        code, text = s.data(msg)
        return code, text.decode(errors="replace")


def message(subject, body, to="alice@localhost"):
    return ("From: sender@client.test\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@client.test>\r\n\r\n%s" % (to, subject, subject.replace(" ", "."), body)).encode()


def queued_id(text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", text)
    return m.group(1) if m else None


def pending(t, dirs=PENDING_DIRS):
    return {k: v for k, v in t.queue_files().items() if k in dirs}


def queue_has(t, qid, dirs=PENDING_DIRS):
    return any(qid in names for names in pending(t, dirs).values())


def all_mail_files(t):
    """Every file under the mailbox base (all users, all Maildir parts)."""
    out = set()
    for root, _dirs, files in os.walk(t.mailbase):
        for f in files:
            out.add(os.path.join(root, f))
    return out


def messages_of(t, user):
    """[(path, raw, Message)] of user's Maildir/new."""
    out = []
    for f in t.mail_files(user):
        try:
            raw, msg = parse_message(f)
        except OSError:
            continue
        out.append((f, raw, msg))
    return out


def subjects(t, user):
    return [m["Subject"] for _f, _r, m in messages_of(t, user)]


def find_bounce(t, user, needle):
    """The first message in user's Maildir from MAILER-DAEMON whose raw text
    contains needle (bytes)."""
    for _f, raw, msg in messages_of(t, user):
        if "MAILER-DAEMON" in (msg["From"] or "") and needle in raw:
            return raw, msg
    return None


def owner_ids():
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    pw = pwd.getpwnam(mail_owner())
    return pw.pw_uid, pw.pw_gid


def write_queue_file(path, data, mtime=None):
    """Write data to path as mail_owner would (0600, its uid/gid)."""
    uid, gid = owner_ids()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.getuid() == 0:
        os.chown(path, uid, gid)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def qmgr_pid(t):
    mpid = t.master_pid()
    for pid, ppid, _pgid, argv in proc_table():
        if ppid == mpid and prog_name(argv) == "qmgr":
            return pid
    return None


def capture_queue_file(t, subject, rcpt="alice@localhost", sender="sender@client.test"):
    """Get a queue file written by tern itself: stop the queue manager, submit,
    copy incoming/ID, let it go on.  Returns (qid, bytes)."""
    q = wait_for(lambda: qmgr_pid(t), 10.0)
    assert q, "no qmgr process"
    os.kill(q, signal.SIGSTOP)
    try:
        code, text = submit(t.port, sender, [rcpt], message(subject, "captured\r\n", to=rcpt))
        assert code == 250, "end of DATA got %d %s" % (code, text)
        qid = queued_id(text)
        assert qid, "no queue id in %r" % text
        path = os.path.join(t.queue, "incoming", qid)
        assert wait_for(lambda: os.path.exists(path), 5.0), "%s not in incoming/" % qid
        with open(path, "rb") as f:
            data = f.read()
    finally:
        os.kill(q, signal.SIGCONT)
    return qid, data


# ----------------------------------------------------------------------------
# tests on the main instance

def test_bounce(t):
    before = len(t.mail_files("alice"))
    code, text = submit(t.port, "alice@localhost", ["x@dead.test"],
                        message("bounce me 4711", "nobody reads this\r\n", to="x@dead.test"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    qid = queued_id(text)
    assert qid, "no queue id in %r" % text
    assert t.wait_mail("alice", before + 1, 15), "no bounce in alice's Maildir within 15 s"
    found = wait_for(lambda: find_bounce(t, "alice", b"bounce me 4711"), 5.0)
    assert found, "alice's new mail is not a bounce mentioning the original Subject: %s" % subjects(t, "alice")
    raw, msg = found
    ctype = (msg.get_content_type() or "").lower()
    assert ctype == "multipart/report", "bounce Content-Type is %r" % msg["Content-Type"]
    assert "delivery-status" in (msg.get_param("report-type") or ""), \
        "report-type is %r" % msg.get_param("report-type")
    text = raw.decode(errors="replace")
    assert re.search(r"(?m)^Status: 5\.1\.1\s*$", text), "no 'Status: 5.1.1' in the bounce"
    assert re.search(r"(?mi)^Final-Recipient: rfc822; ?x@dead\.test\s*$", text), \
        "no 'Final-Recipient: rfc822; x@dead.test' in the bounce"
    assert re.search(r"(?m)^Action: failed\s*$", text), "no 'Action: failed' in the bounce"
    assert "Subject: bounce me 4711" in text, "original Subject not inside the bounce"
    parts = [p.get_content_type() for p in msg.walk()]
    assert "message/delivery-status" in parts, "MIME parts: %s" % parts
    assert "message/rfc822" in parts or "text/rfc822-headers" in parts, "MIME parts: %s" % parts
    res.ok("bounce_report_to_sender")

    ok = wait_for(lambda: not queue_has(t, qid, ("incoming", "active", "deferred")), 10.0)
    assert ok, "original %s still queued: %s" % (qid, pending(t))
    assert wait_for(lambda: not pending(t, ("incoming", "active", "deferred")), 10.0), \
        "queue not empty: %s" % pending(t)


def test_null_sender(t):
    """Mail from <> that fails is never bounced to <>: the postmaster gets one
    report (a double bounce), and nobody else gets anything."""
    files_before = all_mail_files(t)
    pm_before = len(t.mail_files("postmaster"))
    log_before = len(t.log_text())
    code, text = submit(t.port, "", ["x@dead.test"],
                        message("null sender dead", "no report for me\r\n", to="x@dead.test"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    qid = queued_id(text)
    assert qid, "no queue id in %r" % text

    def warned():
        new = t.log_text()[log_before:]
        return any(qid in l and "postmaster notified" in l for l in new.splitlines())
    assert wait_for(warned, 15.0), "no '%s ... postmaster notified' line in the log within 15 s" % qid
    assert t.wait_mail("postmaster", pm_before + 1, 15), "postmaster got no double bounce"
    assert wait_for(lambda: not pending(t), 10.0), "queue not empty: %s" % pending(t)
    time.sleep(2.0)
    new_files = all_mail_files(t) - files_before
    assert len(new_files) == 1, "want one new file (the postmaster's), got %s" % sorted(new_files)
    assert find_bounce(t, "postmaster", b"null sender dead"), "postmaster's mail is not the double bounce"
    new = t.log_text()[log_before:]
    assert not re.search(r"%s: sender non-delivery notification" % qid, new), "a bounce was sent to <>"


def test_deferred(t, down_port):
    code, text = submit(t.port, "sender@client.test", ["bob@down.test"],
                        message("deferred until up", "knock knock\r\n", to="bob@down.test"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    qid = queued_id(text)
    assert qid, "no queue id in %r" % text
    assert wait_for(lambda: queue_has(t, qid, ("deferred",)), 10.0), \
        "%s not in deferred/ within 10 s while nothing listens on %d: %s" % (qid, down_port, pending(t))
    res.ok("deferred_while_peer_down")
    sink = SmtpSink(port=down_port)
    sink.start()
    try:
        assert sink.wait(1, 20), "nothing arrived at the sink within 20 s after it came up (queue: %s)" \
            % pending(t)
        m = sink.messages[0]
        assert m["rcpts"] == ["bob@down.test"], "sink saw RCPT %s" % m["rcpts"]
        assert b"knock knock" in m["data"], "wrong message at the sink"
        assert wait_for(lambda: not queue_has(t, qid), 10.0), "%s still queued after delivery: %s" \
            % (qid, pending(t))
        time.sleep(1.0)
        assert len(sink.messages) == 1, "sink got %d copies" % len(sink.messages)
    finally:
        sink.stop()


def test_mixed(t, sink):
    nalice = len(t.mail_files("alice"))
    nsink = len(sink.messages)
    code, text = submit(t.port, "alice@localhost", ["alice@localhost", "x@dead.test", "carl@remote.test"],
                        message("mixed results 99", "three ways\r\n", to="several"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    qid = queued_id(text)
    assert t.wait_mail("alice", nalice + 2, 15), "alice has %d new files, want 2 (message + bounce): %s" \
        % (len(t.mail_files("alice")) - nalice, subjects(t, "alice"))
    assert "mixed results 99" in subjects(t, "alice"), "alice did not get the message: %s" % subjects(t, "alice")
    b = find_bounce(t, "alice", b"mixed results 99")
    assert b, "alice did not get the bounce"
    btext = b[0].decode(errors="replace")
    assert "x@dead.test" in btext, "bounce does not name x@dead.test"
    assert not re.search(r"(?mi)^Final-Recipient: rfc822; ?(alice@localhost|carl@remote\.test)", btext), \
        "bounce lists a recipient that did not fail"
    assert sink.wait(nsink + 1, 15), "the sink did not get its copy"
    m = sink.messages[nsink]
    assert m["rcpts"] == ["carl@remote.test"], "sink saw RCPT %s" % m["rcpts"]
    assert wait_for(lambda: not queue_has(t, qid), 10.0), "%s still queued: %s" % (qid, pending(t))
    assert wait_for(lambda: not pending(t), 10.0), "queue not empty: %s" % pending(t)
    time.sleep(1.0)
    assert len(sink.messages) == nsink + 1, "sink got %d copies" % (len(sink.messages) - nsink)
    assert len(t.mail_files("alice")) == nalice + 2, "alice got %d files, want 2" \
        % (len(t.mail_files("alice")) - nalice)


def test_corrupt(t):
    name = "0000000000000000ABCD"
    inc = os.path.join(t.queue, "incoming", name)
    log_before = len(t.log_text())
    write_queue_file(inc, b"this is not a queue file\n\x00\x01garbage\n" * 10)
    # Mail after it triggers a scan of incoming/ (and shows the server works).
    code, text = submit(t.port, "sender@client.test", ["alice@localhost"],
                        message("after corrupt", "still flowing\r\n"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    assert wait_for(lambda: os.path.exists(os.path.join(t.queue, "corrupt", name)), 15.0), \
        "garbage file not in corrupt/ within 15 s: %s" % t.queue_files()
    assert not os.path.exists(inc), "garbage file still in incoming/"
    assert wait_for(lambda: "corrupt queue file" in t.log_text()[log_before:], 5.0), \
        "no 'corrupt queue file' in the log"
    assert wait_for(lambda: "after corrupt" in subjects(t, "alice"), 15.0), \
        "mail after the corrupt file not delivered"
    assert wait_for(lambda: not pending(t), 10.0), "queue not empty: %s" % pending(t)


UNSAFE_KINDS = ("symlink", "owner", "hardlink", "directory")


def plant_unsafe(t, qid, data):
    """Put into incoming/, active/ and deferred/ (due) one file of each
    UNSAFE_KINDS, each a valid copy of data (queue file qid) under its own
    ID: a symbolic link to a file outside the queue, a file owned by root
    (as root only), a second hard link of a file outside the queue, a
    directory.  Returns ({name: kind}, {outside path: bytes})."""
    names, outside = {}, {}
    uid, gid = owner_ids()
    past = time.time() - 3600
    for d, sub in enumerate(("incoming", "active", "deferred")):
        for k, kind in enumerate(UNSAFE_KINDS):
            if kind == "owner" and os.getuid() != 0:
                continue
            name = "%X%X%s" % (d + 1, k + 1, qid[2:])
            copy = data.replace(qid.encode(), name.encode())
            path = os.path.join(t.queue, sub, name)
            if kind in ("symlink", "hardlink"):
                src = os.path.join(t.dir, "outside-%s-%s" % (sub, kind))
                write_queue_file(src, copy)
                outside[src] = copy
                if kind == "symlink":
                    os.symlink(src, path)
                else:
                    os.link(src, path)
            elif kind == "owner":
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, copy)
                os.close(fd)  # root's, not mail_owner's
            else:
                os.mkdir(path, 0o700)
                os.chown(path, uid, gid)
            if sub == "deferred":
                os.utime(path, (past, past), follow_symlinks=False)
            names[name] = "%s/ %s" % (sub, kind)
    return names, outside


def test_unsafe_files(t):
    """Files a queue manager must not trust, in incoming/, active/ and
    deferred/ across a restart: each ends in corrupt/, nothing outside the
    queue is read as mail or changed, the queue manager keeps running (no
    exit, no restart) and mail still flows."""
    subject = "unsafe template"
    qid, data = capture_queue_file(t, subject, rcpt="unsafe@localhost")
    assert wait_for(lambda: subject in subjects(t, "unsafe"), 15.0), "template message not delivered"
    assert wait_for(lambda: not queue_has(t, qid), 10.0), "template message still queued"
    t.stop()
    names, outside = plant_unsafe(t, qid, data)
    log_before = len(t.log_text())
    t.start()
    corrupt = os.path.join(t.queue, "corrupt")
    assert wait_for(lambda: set(names) <= set(os.listdir(corrupt)), 15.0), \
        "not in corrupt/ within 15 s: %s (queue %s)" % (
            sorted(v for n, v in names.items() if n not in os.listdir(corrupt)), pending(t))
    code, text = submit(t.port, "sender@client.test", ["alice@localhost"], message("after unsafe", "flowing\r\n"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    assert wait_for(lambda: "after unsafe" in subjects(t, "alice"), 15.0), "mail after the unsafe files not delivered"
    assert wait_for(lambda: not pending(t), 10.0), "queue not empty: %s" % pending(t)
    time.sleep(2.0)
    n = subjects(t, "unsafe").count(subject)
    assert n == 1, "unsafe@localhost has %d copies of the template (want 1): an unsafe file was delivered" % n
    for path, want in outside.items():
        with open(path, "rb") as f:
            assert f.read() == want, "%s (outside the queue) was changed" % path
    log = t.log_text()[log_before:]
    died = re.findall(r"process qmgr pid \d+ (?:exit status|killed by signal) \d+", log)
    assert not died, "the queue manager died: %s" % died
    quarantined = len(re.findall(r"corrupt queue file", log))
    assert quarantined >= len(names), "%d 'corrupt queue file' lines for %d files" % (quarantined, len(names))


def test_tmp(t):
    # A complete, valid queue file written by tern itself, put in tmp/: it
    # was never acknowledged, so it must never be delivered.
    subject = "stale tmp never"
    qid, data = capture_queue_file(t, subject, rcpt="tmpuser@localhost")
    assert wait_for(lambda: subject in subjects(t, "tmpuser"), 15.0), "captured original not delivered"
    assert wait_for(lambda: not queue_has(t, qid), 10.0), "original still queued"
    tmpf = os.path.join(t.queue, "tmp", qid)
    write_queue_file(tmpf, data)
    # Trigger scans and wait a few queue runs.
    code, text = submit(t.port, "sender@client.test", ["alice@localhost"],
                        message("after tmp", "poke\r\n"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    assert wait_for(lambda: "after tmp" in subjects(t, "alice"), 15.0), "poke message not delivered"
    time.sleep(3.0)
    n = subjects(t, "tmpuser").count(subject)
    assert n == 1, "tmpuser has %d copies of the message whose copy sits in tmp/ (want 1)" % n
    assert os.path.exists(tmpf), "a fresh tmp/ file was removed or moved (it may still be written)"
    return qid, data


def test_tmp_restart(t, qid, data):
    """Across a restart: the fresh tmp/ file is still not delivered, and one
    older than 6 hours is removed at queue manager start."""
    old_qid = "0" * 8 + qid[8:]  # a different, valid queue id
    oldf = os.path.join(t.queue, "tmp", old_qid)
    write_queue_file(oldf, data.replace(qid.encode(), old_qid.encode()), mtime=time.time() - 7 * 3600)
    t.stop()
    t.start()
    assert wait_for(lambda: not os.path.exists(oldf), 10.0), \
        "tmp/ file 7 hours old not removed within 10 s of the restart"
    res.ok("tmp_old_removed_at_start")
    time.sleep(3.0)
    n = subjects(t, "tmpuser").count("stale tmp never")
    assert n == 1, "after a restart tmpuser has %d copies (want 1): tmp/ was delivered" % n


# ----------------------------------------------------------------------------

def test_crash_recovery():
    n = 3
    down = free_port()
    with Tern(transport={"down.test": "smtp:[127.0.0.1]:%d" % down}, name="crash") as t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            qids = []
            for i in range(n):
                code, text = submit(t.port, "sender@client.test", ["rcpt%d@down.test" % i],
                                    message("crash deferred %d" % i, "n %d\r\n" % i, to="rcpt%d@down.test" % i))
                assert code == 250, "message %d: end of DATA got %d %s" % (i, code, text)
                qids.append(queued_id(text))
            ok = wait_for(lambda: all(queue_has(t, q, ("deferred",)) for q in qids), 15.0)
            assert ok, "not all of %s in deferred/: %s" % (qids, pending(t))
            # One local message caught in active/: stop the queue manager,
            # submit, then kill everything and move the file into active/ as
            # if the queue manager had taken it just before the crash.
            lqid, _data = capture_then_hold(t, "crash active local")
            t.kill9()
            left = t.processes()
            assert not left, "processes left after kill -9: %s" % left
            src = os.path.join(t.queue, "incoming", lqid)
            dst = os.path.join(t.queue, "active", lqid)
            assert os.path.exists(src), "%s not in incoming/ after the crash: %s" % (lqid, t.queue_files())
            os.rename(src, dst)
            before = pending(t)
            for q in qids:
                assert queue_has(t, q), "%s lost by the crash: %s" % (q, before)
            sink = SmtpSink(port=down)
            sink.start()
            try:
                t.start()
                assert sink.wait(n, 20), "after restart the sink got %d of %d messages (queue: %s)" \
                    % (len(sink.messages), n, pending(t))
                assert wait_for(lambda: "crash active local" in subjects(t, "alice"), 15.0), \
                    "message left in active/ not delivered after restart"
                assert wait_for(lambda: not pending(t), 10.0), "queue not empty: %s" % pending(t)
                time.sleep(1.0)
                got = sorted(re.search(rb"Subject: (.*?)\r\n", m["data"]).group(1).decode()
                             for m in sink.messages)
                want = ["crash deferred %d" % i for i in range(n)]
                assert got == want, "sink got %s, want %s" % (got, want)
                assert subjects(t, "alice").count("crash active local") == 1, "duplicate local delivery"
            finally:
                sink.stop()
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)


MANY = 300
MANY_NOFILE = 64


def nofile_daemon_dir(base, ulimit):
    """A daemon_directory whose qmgr runs the real one after `ulimit ULIMIT`
    (RLIMIT_NOFILE lowered); the other programs are links to the real ones."""
    d = os.path.join(base, "libexec-nofile")
    os.makedirs(d)
    for name in os.listdir(DAEMON_DIR):
        real = os.path.join(DAEMON_DIR, name)
        if name == "qmgr":
            with open(os.path.join(d, name), "w") as f:
                f.write("#!/bin/sh\nulimit %s || exit 1\nexec '%s' \"$@\"\n" % (ulimit, real))
            os.chmod(os.path.join(d, name), 0o755)
        else:
            os.symlink(real, os.path.join(d, name))
    return d


def test_many_active_at_restart(ulimit, limit, no_emfile):
    """MANY messages in active/ at a start (a queue manager that died with
    a full active queue, or an admin's restore), more than the queue
    manager's RLIMIT_NOFILE (`ulimit ULIMIT`): each is delivered exactly
    once, the queue manager never exits; with no_emfile, no open in the
    queue manager failed with EMFILE."""
    base = os.path.realpath(__import__("tempfile").mkdtemp(prefix="tern-many-"))
    os.chmod(base, 0o755)
    conf = {"daemon_directory": nofile_daemon_dir(base, ulimit), "qmgr_message_active_limit": str(limit)}
    with Tern(conf=conf, name="many") as t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            template = "many 000000"
            qid, data = capture_queue_file(t, template, rcpt="many@localhost")
            assert wait_for(lambda: template in subjects(t, "many"), 15.0), "template message not delivered"
            assert wait_for(lambda: not queue_has(t, qid), 10.0), "template message still queued"
            t.stop()
            for i in range(1, MANY + 1):
                name = "%08X%s" % (i, qid[8:])
                copy = data.replace(qid.encode(), name.encode()).replace(template.encode(),
                                                                          ("many %06d" % i).encode())
                copy = copy.replace(template.replace(" ", ".").encode(), ("many.%06d" % i).encode())
                write_queue_file(os.path.join(t.queue, "active", name), copy)
            log_before = len(t.log_text())
            t.start()
            want = ["many %06d" % i for i in range(MANY + 1)]
            ok = wait_for(lambda: len(t.mail_files("many")) >= MANY + 1 and not pending(t), 120.0, 0.5)
            got = subjects(t, "many")
            missing = sorted(set(want) - set(got))
            assert ok and not missing, "%d of %d delivered within 120 s, missing %s..., queue %s" % (
                len(set(got) & set(want)), len(want), missing[:5], {k: len(v) for k, v in pending(t).items()})
            time.sleep(2.0)
            got = subjects(t, "many")
            dups = sorted(s for s in set(got) if got.count(s) > 1)
            assert not dups, "delivered more than once: %s" % dups[:10]
            log = t.log_text()[log_before:]
            died = re.findall(r"process qmgr pid \d+ (?:exit status|killed by signal) \d+", log)
            assert not died, "the queue manager died: %s" % died
            emfile = log.count("Too many open files")
            assert not (no_emfile and emfile), "%d EMFILE failures in the log" % emfile
            assert not qdir_names(t, "corrupt"), "files in corrupt/: %s" % qdir_names(t, "corrupt")[:5]
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)
            shutil.rmtree(base, ignore_errors=True)


def qdir_names(t, sub):
    try:
        return sorted(os.listdir(os.path.join(t.queue, sub)))
    except OSError:
        return []


def capture_then_hold(t, subject):
    """Stop the queue manager, submit one local message, leave it stopped
    (the caller kills the instance).  Returns (qid, bytes)."""
    q = wait_for(lambda: qmgr_pid(t), 10.0)
    assert q, "no qmgr process"
    os.kill(q, signal.SIGSTOP)
    code, text = submit(t.port, "sender@client.test", ["alice@localhost"], message(subject, "in active\r\n"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    qid = queued_id(text)
    path = os.path.join(t.queue, "incoming", qid)
    assert wait_for(lambda: os.path.exists(path), 5.0), "%s not in incoming/" % qid
    with open(path, "rb") as f:
        return qid, f.read()


def main():
    if not prerequisites_or_fail(res, "queue_build"):
        res.exit()
    sink = SmtpSink().start()
    down = free_port()
    t = Tern(transport={"dead.test": DEAD,
                        "remote.test": "smtp:[127.0.0.1]:%d" % sink.port,
                        "down.test": "smtp:[127.0.0.1]:%d" % down},
             name="queue")
    res.on_fail.append(t.diagnostics)
    try:
        if res.run("start", t.start):
            res.run("bounce_original_removed", test_bounce, t)
            res.run("null_sender_postmaster_once", test_null_sender, t)
            res.run("deferred_delivered_when_peer_up", test_deferred, t, down)
            res.run("mixed_local_bounce_remote", test_mixed, t, sink)
            res.run("corrupt_file_quarantined", test_corrupt, t)
            res.run("unsafe_files_quarantined", test_unsafe_files, t)
            got = {}

            def tmp():
                got["v"] = test_tmp(t)
            if res.run("tmp_never_delivered", tmp):
                res.run("tmp_never_delivered_after_restart", test_tmp_restart, t, *got["v"])
    finally:
        t.cleanup()
        sink.stop()
        res.on_fail.remove(t.diagnostics)
    res.run("crash_kill9_nothing_lost", test_crash_recovery)
    res.run("many_active_at_restart_over_nofile", test_many_active_at_restart, "-n %d" % MANY_NOFILE, 20, False)
    res.run("many_active_at_restart_soft_nofile", test_many_active_at_restart, "-S -n %d" % MANY_NOFILE, 100, True)
    res.run("many_active_at_restart_limit_over_nofile", test_many_active_at_restart, "-n %d" % MANY_NOFILE, 100,
            False)
    res.exit()


if __name__ == "__main__":
    main()
