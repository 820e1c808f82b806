#!/usr/bin/env python3
"""test_flow — the end-to-end mail flows of issue 2, through the real processes.

  local_*      alice@localhost via smtplib: 250 "queued as", exactly one Maildir
               file with Subject, body, Received:, Delivered-To:, queue emptied
  remote_*     bob@remote.test routed by transport_maps to a recording sink:
               envelope, body, dot-stuffing on the wire and after unstuffing
  mixed_*      one message to two local users and one remote user
  processes    master, >= 2 smtpd, qmgr, local, send are separate processes
  relay_*      from 127.0.0.1 (in mynetworks) relaying is allowed; with
               mynetworks not covering 127.0.0.1 a non-local RCPT is refused
  sigterm_*    SIGTERM stops every process of the instance
  deferred_*   mail accepted while the sink is down is delivered when it comes
               back, also across a master restart
  restart_*    mail accepted just before SIGTERM / kill -9 is delivered after
               the next start
"""

import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (RawSmtp, Results, SmtpSink, Tern, parse_message,  # noqa: E402
                          prerequisites_or_fail, wait_for)

res = Results()


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


def queued_id(text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", text)
    return m.group(1) if m else None


def pending_queue(t):
    """Queue files of messages not yet finished (tmp/ counts as well)."""
    q = t.queue_files()
    return {k: v for k, v in q.items() if k in ("tmp", "incoming", "active", "deferred", "maildrop")}


def procs_by_name(t):
    names = {}
    for pid, name in t.processes().items():
        names.setdefault(name, []).append(pid)
    return names


# ----------------------------------------------------------------------------

def test_local(t):
    code, text = submit(t.port, "sender@client.test", ["alice@localhost"],
                        message("hello alice", "Hi Alice,\r\nthis is the body.\r\n"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    assert queued_id(text), "reply has no 'queued as ID': %r" % text
    assert t.wait_mail("alice", 1, 10), "no file in %s/new within 10 s" % t.maildir("alice")
    time.sleep(0.5)
    files = t.mail_files("alice")
    assert len(files) == 1, "expected exactly 1 file in Maildir/new, found %d" % len(files)
    raw, msg = parse_message(files[0])
    assert msg["Subject"] == "hello alice", "Subject is %r" % msg["Subject"]
    assert b"this is the body." in raw, "body text missing"
    assert msg.get_all("Received"), "no Received: header"
    dt = msg["Delivered-To"] or ""
    assert "alice@localhost" in dt.lower(), "Delivered-To is %r" % dt
    assert b"\r\n" not in raw, "Maildir file has CRLF line ends (expected LF)"


def test_local_queue_empty(t):
    left = wait_for(lambda: not pending_queue(t), 5.0)
    assert left, "queue not empty 5 s after delivery: %s" % pending_queue(t)


BODY_DOTS = ("first line\r\n"
             ".leading dot\r\n"
             "..two dots\r\n"
             ".\r\n"
             "last line\r\n")


def test_remote(t, sink):
    code, text = submit(t.port, "sender@client.test", ["bob@remote.test"],
                        message("hello bob", BODY_DOTS, to="bob@remote.test"))
    assert code == 250 and queued_id(text), "end of DATA got %d %s" % (code, text)
    assert sink.wait(1, 10), "nothing arrived at the sink within 10 s (sink saw %d connections)" \
        % sink.connections
    m = sink.messages[0]
    assert m["sender"] == "sender@client.test", "sink saw MAIL FROM <%s>" % m["sender"]
    assert m["rcpts"] == ["bob@remote.test"], "sink saw RCPT TO %s" % m["rcpts"]
    data = m["data"]
    assert b"Subject: hello bob\r\n" in data, "Subject missing at the sink"
    assert b"\r\nReceived: " in b"\r\n" + data, "no Received: header at the sink"
    body = data.split(b"\r\n\r\n", 1)[-1]
    assert body == BODY_DOTS.encode(), "body differs at the sink: %r" % body


def test_remote_stuffing(sink):
    wire = sink.messages[0]["wire"]
    for l in (b"\r\n..leading dot\r\n", b"\r\n...two dots\r\n", b"\r\n..\r\n"):
        assert l in wire, "line %r not dot-stuffed on the wire: %r" % (l.strip(), wire[-200:])
    assert b"\n" not in wire.replace(b"\r\n", b""), "bare LF on the wire"


def test_mixed(t, sink):
    before = len(t.mail_files("alice"))
    nsink = len(sink.messages)
    code, text = submit(t.port, "", ["alice@localhost", "carol@localhost", "dave@remote.test"],
                        message("mixed", "to three recipients\r\n", to="several"))
    assert code == 250, "end of DATA got %d %s" % (code, text)
    assert t.wait_mail("alice", before + 1, 10), "alice did not get it"
    assert t.wait_mail("carol", 1, 10), "carol did not get it"
    assert sink.wait(nsink + 1, 10), "dave@remote.test did not get it"
    m = sink.messages[nsink]
    assert m["rcpts"] == ["dave@remote.test"], "sink saw RCPT TO %s" % m["rcpts"]
    assert m["sender"] == "", "null sender became <%s>" % m["sender"]


def test_processes(t):
    want = lambda: procs_by_name(t)  # noqa: E731

    def complete():
        n = want()
        return (len(n.get("tern-master", [])) == 1 and len(n.get("smtpd", [])) >= 2
                and n.get("qmgr") and n.get("local") and n.get("send"))
    ok = wait_for(complete, 5.0)
    n = want()
    assert ok, "processes of the instance: %s" % {k: len(v) for k, v in n.items()}
    pids = set()
    for v in n.values():
        pids.update(v)
    assert len(pids) >= 6, "expected >= 6 distinct processes, got %s" % n


def test_relay_allowed(t):
    c = RawSmtp(t.port)
    try:
        code, _ = c.reply()
        assert code == 220, "banner %d" % code
        code, _ = c.cmd("EHLO client.test")
        assert code == 250
        code, l = c.cmd("MAIL FROM:<sender@client.test>")
        assert code == 250, "MAIL: %s" % l
        code, l = c.cmd("RCPT TO:<someone@unlisted.invalid>")
        assert code == 250, "relay from 127.0.0.1 refused: %s" % l
        c.cmd("RSET")
        c.cmd("QUIT")
    finally:
        c.close()


def test_relay_denied():
    with Tern(conf={"mynetworks": "192.0.2.0/24"}, name="relay") as t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            c = RawSmtp(t.port)
            try:
                c.reply()
                c.cmd("EHLO client.test")
                code, l = c.cmd("MAIL FROM:<sender@client.test>")
                assert code == 250, "MAIL: %s" % l
                code, l = c.cmd("RCPT TO:<someone@unlisted.invalid>")
                assert 500 <= code < 600, "relay outside mynetworks not refused: %s" % l
                code, l = c.cmd("RCPT TO:<alice@localhost>")
                assert code == 250, "local recipient refused: %s" % l
                c.cmd("QUIT")
            finally:
                c.close()
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)


def test_deferred():
    sink = SmtpSink()  # not started yet: connections are refused
    with Tern(transport={"remote.test": "smtp:[127.0.0.1]:%d" % sink.port}, name="defer") as t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            code, text = submit(t.port, "sender@client.test", ["erin@remote.test"],
                                message("deferred one", "wait for me\r\n", to="erin@remote.test"))
            assert code == 250, "end of DATA got %d %s" % (code, text)
            qid = queued_id(text)
            time.sleep(3)
            q = pending_queue(t)
            assert any(qid in " ".join(v) for v in q.values()), \
                "queue file %s not in the queue while the sink is down: %s" % (qid, q)
            res.ok("deferred_kept_while_peer_down")

            killed = t.stop()
            assert not killed, "processes left after SIGTERM: %s" % killed
            q = pending_queue(t)
            assert any(qid in " ".join(v) for v in q.values()), \
                "queue file %s gone after stop: %s" % (qid, q)
            sink.start()
            t.start()
            assert sink.wait(1, 20), "deferred message not delivered within 20 s after restart"
            assert b"wait for me" in sink.messages[0]["data"], "wrong message at the sink"
            res.ok("deferred_delivered_after_restart")

            sink.stop()
            code, text = submit(t.port, "sender@client.test", ["erin@remote.test"],
                                message("deferred two", "retry me\r\n", to="erin@remote.test"))
            assert code == 250, "end of DATA got %d %s" % (code, text)
            time.sleep(2)
            sink.start()
            assert sink.wait(2, 20), "deferred message not retried within 20 s after the peer came back"
            assert b"retry me" in sink.messages[1]["data"], "wrong message at the sink"
            assert len(sink.messages) == 2, "duplicates at the sink: %d messages" % len(sink.messages)
        finally:
            t.stop()
            sink.stop()
            res.on_fail.remove(t.diagnostics)


def restart_case(how):
    n = 5
    with Tern(name="restart-" + how) as t:
        res.on_fail.append(t.diagnostics)
        try:
            t.start()
            for i in range(n):
                code, text = submit(t.port, "sender@client.test", ["frank@localhost"],
                                    message("restart %s %d" % (how, i), "number %d\r\n" % i,
                                            to="frank@localhost"))
                assert code == 250, "message %d: end of DATA got %d %s" % (i, code, text)
            if how == "sigterm":
                t.stop()
            else:
                t.kill9()
            t.start()
            ok = t.wait_mail("frank", n, 20)
            got = set()
            for f in t.mail_files("frank"):
                _raw, msg = parse_message(f)
                got.add(msg["Subject"])
            missing = ["restart %s %d" % (how, i) for i in range(n) if "restart %s %d" % (how, i) not in got]
            assert ok and not missing, "after %s + restart, missing: %s (queue: %s)" \
                % (how, missing, pending_queue(t))
        finally:
            t.stop()
            res.on_fail.remove(t.diagnostics)


# ----------------------------------------------------------------------------

def main():
    if not prerequisites_or_fail(res, "flow_build"):
        res.exit()
    sink = SmtpSink().start()
    try:
        t = Tern(transport={"remote.test": "smtp:[127.0.0.1]:%d" % sink.port}, name="flow")
    except Exception as e:
        sink.stop()
        res.fail("setup", "%s: %s" % (type(e).__name__, e))
        res.exit()
    res.on_fail.append(t.diagnostics)
    try:
        started = res.run("start", t.start)
        if started:
            res.run("local_delivery", test_local, t)
            res.run("local_queue_empty", test_local_queue_empty, t)
            if res.run("remote_delivery", test_remote, t, sink):
                res.run("remote_dot_stuffing", test_remote_stuffing, sink)
            res.run("mixed_recipients", test_mixed, t, sink)
            res.run("processes", test_processes, t)
            res.run("relay_allowed_from_mynetworks", test_relay_allowed, t)

            def sigterm():
                killed = t.stop()
                assert not killed, "still running after SIGTERM (killed): %s" % killed
            res.run("sigterm_stops_all", sigterm)
    finally:
        t.cleanup()
        sink.stop()
        res.on_fail.remove(t.diagnostics)

    res.run("relay_denied_outside_mynetworks", test_relay_denied)
    res.run("deferred_retried_when_peer_back", test_deferred)
    res.run("restart_sigterm_nothing_lost", restart_case, "sigterm")
    res.run("restart_kill9_nothing_lost", restart_case, "kill9")
    res.exit()


if __name__ == "__main__":
    main()
