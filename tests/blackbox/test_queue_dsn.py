#!/usr/bin/env python3
"""test_queue_dsn — retries, DSNs (RFC 3461/3464), scheduling and faults of the
queue manager, with the real daemons and scriptable SMTP sinks.

Instance "dsn" (fast sink ok.test, stalling sink slow.test, virtual aliases):
  retry_4xx_*          a recipient the sink answers 450 is deferred, retried
                       after the backoff, and delivered once the sink accepts
  dsn_5xx_one_report   two recipients refused with 550 (one with ORCPT, mail
                       with ENVID and RET=HDRS) give exactly one report that
                       python's email parser reads as multipart/report with
                       one delivery-status block per failed recipient
                       (Action, Status, Remote-MTA, Diagnostic-Code,
                       Original-Recipient, Original-Envelope-Id) and the
                       headers only (text/rfc822-headers)
  notify_never_*       NOTIFY=NEVER: no report at all
  notify_success_*     NOTIFY=SUCCESS: a report with Action delivered (local)
  slow_dest_*          a sink that stalls its reply to DATA for 8 s does not
                       delay mail to the fast sink
  kill9_qmgr_*         kill -9 of the queue manager while a delivery is in
                       flight: the master restarts it and every message is
                       delivered (at least once), the queue empties
  valias_*             virtual_alias_maps: one address → two mailboxes; a loop
                       bounces with 5.4.6; an unknown address of a
                       virtual_alias_domains domain is refused or bounced 5.1.1
Instance "life" (maximal_queue_lifetime 4s, delay_warning_time 1s,
concurrency 1, down.test where nothing listens):
  delay_warning_*      a delay DSN (Action: delayed) arrives first
  lifetime_expiry_*    then one failure DSN with Status 4.4.7
  double_bounce_*      mail from <> that expires: one report to the postmaster;
                       the postmaster being unreachable, it is dropped, no loop
  dead_destination_*   three messages for a dead next hop: the later ones are
                       deferred without a connection ("delivery temporarily
                       suspended")
"""

import email
import email.policy
import os
import re
import signal
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (Results, SmtpSink, Tern, free_port, parse_message,  # noqa: E402
                          prerequisites_or_fail, prog_name, proc_table, wait_for)

res = Results()


def submit(port, sender, rcpts, msg, mail_opts=(), rcpt_opts=None):
    """rcpts: list of addresses; rcpt_opts: {address: [params]}."""
    rcpt_opts = rcpt_opts or {}
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender, list(mail_opts))
        assert code == 250, "MAIL got %d %s" % (code, text)
        for r in rcpts:
            code, text = s.rcpt(r, rcpt_opts.get(r, []))
            assert code == 250, "RCPT TO:<%s> got %d %s" % (r, code, text)
        code, text = s.data(msg)
        assert code == 250, "DATA got %d %s" % (code, text)
        m = re.search(r"queued as ([0-9A-Za-z]+)", text.decode(errors="replace"))
        return m.group(1) if m else None


def message(subject, to="x@ok.test"):
    return ("From: s@client.test\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (to, subject, subject)).encode()


def reports(t, user):
    """[(raw, Message)] of MAILER-DAEMON messages in user's Maildir."""
    out = []
    for f in t.mail_files(user):
        try:
            raw, _m = parse_message(f)
        except OSError:
            continue
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        if "MAILER-DAEMON" in (msg["From"] or ""):
            out.append((raw, msg))
    return out


def status_blocks(msg):
    """(per-message fields, [per-recipient fields]) of a delivery-status report."""
    assert msg.get_content_type() == "multipart/report", "Content-Type %s" % msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", "report-type %s" % msg.get_param("report-type")
    parts = msg.get_payload()
    assert isinstance(parts, list) and len(parts) >= 2, "report has %s parts" % len(parts)
    ds = [p for p in parts if p.get_content_type() == "message/delivery-status"]
    assert len(ds) == 1, "delivery-status parts: %d" % len(ds)
    blocks = ds[0].get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, "delivery-status blocks: %r" % blocks
    return blocks[0], blocks[1:]


def queue_empty(t):
    return not any(v for k, v in t.queue_files().items() if k in ("incoming", "active", "deferred"))


def qmgr_pid(t):
    mpid = t.master_pid()
    for pid, ppid, _pgid, argv in proc_table():
        if ppid == mpid and prog_name(argv) == "qmgr":
            return pid
    return None


# ----------------------------------------------------------------------------

def test_retry_4xx(t, fast):
    fast.rcpt_replies["temp@ok.test"] = "450 4.2.0 mailbox busy, try later"
    n0 = len(fast.messages)
    log0 = len(t.log_text())
    qid = submit(t.port, "s@client.test", ["temp@ok.test"], message("retry me"))
    assert wait_for(lambda: qid in t.queue_files().get("deferred", []), 10.0), \
        "not deferred after a 450: %s" % t.queue_files()
    t_deferred = time.monotonic()
    res.ok("retry_4xx_deferred")
    del fast.rcpt_replies["temp@ok.test"]
    assert fast.wait(n0 + 1, 15), "not delivered after the sink recovered"
    waited = time.monotonic() - t_deferred
    m = fast.messages[n0]
    assert m["rcpts"] == ["temp@ok.test"], "sink got %s" % m["rcpts"]
    assert wait_for(lambda: queue_empty(t), 10.0), "queue not empty: %s" % t.queue_files()
    log = t.log_text()[log0:]
    assert re.search(r"%s: deferred, attempt 1, next attempt in \d+s" % qid, log), "no backoff log line"
    assert re.search(r"%s: to=<temp@ok\.test>.*status=deferred" % qid, log), "no deferred to= line"
    assert waited < 15, "retry took %.1fs" % waited


def test_dsn_5xx(t, fast):
    fast.rcpt_replies["bad1@ok.test"] = "550 5.1.1 <bad1@ok.test>: no such user"
    fast.rcpt_replies["bad2@ok.test"] = "553 5.1.2 bad2 refused"
    qid = submit(t.port, "dsnuser@localhost", ["bad1@ok.test", "bad2@ok.test", "good@ok.test"],
                 message("five hundred", to="several"), mail_opts=["RET=HDRS", "ENVID=env+2B123"],
                 rcpt_opts={"bad1@ok.test": ["ORCPT=rfc822;orig1@example.org", "NOTIFY=FAILURE"]})
    assert wait_for(lambda: reports(t, "dsnuser"), 15.0), "no report in 15 s"
    assert wait_for(lambda: queue_empty(t), 10.0), "queue not empty: %s" % t.queue_files()
    time.sleep(2.0)
    reps = reports(t, "dsnuser")
    assert len(reps) == 1, "want exactly one report, got %d" % len(reps)
    raw, msg = reps[0]
    per_msg, rcpts = status_blocks(msg)
    assert per_msg["Reporting-MTA"] == "dns; tern.test", "Reporting-MTA %r" % per_msg["Reporting-MTA"]
    assert per_msg["Original-Envelope-Id"] == "env+2B123", "ENVID %r" % per_msg["Original-Envelope-Id"]
    assert per_msg["Arrival-Date"], "no Arrival-Date"
    by = {b["Final-Recipient"]: b for b in rcpts}
    assert set(by) == {"rfc822; bad1@ok.test", "rfc822; bad2@ok.test"}, "recipients %s" % list(by)
    b1, b2 = by["rfc822; bad1@ok.test"], by["rfc822; bad2@ok.test"]
    assert b1["Action"] == "failed" and b2["Action"] == "failed", "Action %s %s" % (b1["Action"], b2["Action"])
    assert b1["Status"] == "5.1.1", "Status %s" % b1["Status"]
    assert b2["Status"] == "5.1.2", "Status %s" % b2["Status"]
    assert b1["Original-Recipient"] == "rfc822; orig1@example.org", "ORCPT %r" % b1["Original-Recipient"]
    assert b2["Original-Recipient"] is None, "bad2 had no ORCPT"
    for b in (b1, b2):
        assert (b["Remote-MTA"] or "").startswith("dns; "), "Remote-MTA %r" % b["Remote-MTA"]
        assert (b["Diagnostic-Code"] or "").startswith("smtp; "), "Diagnostic-Code %r" % b["Diagnostic-Code"]
    assert "no such user" in b1["Diagnostic-Code"], "Diagnostic-Code %r" % b1["Diagnostic-Code"]
    types = [p.get_content_type() for p in msg.get_payload()]
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"], "parts %s" % types
    assert b"body of five hundred" not in raw, "RET=HDRS but the body came back"
    assert b"Subject: five hundred" in raw, "original headers missing"
    assert "good@ok.test" not in str(msg.get_payload()[1]), "a delivered recipient is listed"


def test_notify_never(t, fast):
    fast.rcpt_replies["bad3@ok.test"] = "550 5.1.1 no"
    qid = submit(t.port, "neveruser@localhost", ["bad3@ok.test"], message("never tell"),
                 rcpt_opts={"bad3@ok.test": ["NOTIFY=NEVER"]})
    assert wait_for(lambda: queue_empty(t) and qid not in t.log_text()[-1:] and
                    ("%s: removed" % qid) in t.log_text(), 15.0), "not finished"
    time.sleep(2.0)
    assert not reports(t, "neveruser"), "a report despite NOTIFY=NEVER"


def test_notify_success(t):
    submit(t.port, "succuser@localhost", ["alice9@localhost"], message("tell me", to="alice9@localhost"),
           rcpt_opts={"alice9@localhost": ["NOTIFY=SUCCESS"]})
    assert wait_for(lambda: reports(t, "succuser"), 15.0), "no success report"
    time.sleep(1.0)
    reps = reports(t, "succuser")
    assert len(reps) == 1, "%d reports" % len(reps)
    _pm, rcpts = status_blocks(reps[0][1])
    assert len(rcpts) == 1 and rcpts[0]["Action"] == "delivered", "blocks %s" % [dict(b) for b in rcpts]
    assert rcpts[0]["Status"].startswith("2."), "Status %s" % rcpts[0]["Status"]
    assert t.mail_files("alice9"), "the message itself was not delivered"


def test_slow_destination(t, fast, slow):
    slow.data_delay = 8
    ns, nf = len(slow.messages), len(fast.messages)
    submit(t.port, "s@client.test", ["a@slow.test"], message("slow one", to="a@slow.test"))
    assert slow.wait(ns + 1, 10), "slow sink never got its DATA"
    t0 = time.monotonic()
    submit(t.port, "s@client.test", ["b@ok.test"], message("fast one", to="b@ok.test"))
    assert fast.wait(nf + 1, 6), "fast destination waited behind the slow one"
    took = time.monotonic() - t0
    assert took < 5, "fast delivery took %.1fs while the slow sink stalled" % took
    slow.data_delay = 0
    assert wait_for(lambda: queue_empty(t), 20.0), "queue not empty: %s" % t.queue_files()


def test_kill9_qmgr(t, slow):
    slow.data_delay = 4
    ns = len(slow.messages)
    submit(t.port, "s@client.test", ["k@slow.test"], message("in flight", to="k@slow.test"))
    for i in range(5):
        submit(t.port, "s@client.test", ["kuser@localhost"], message("local %d" % i, to="kuser@localhost"))
    assert slow.wait(ns + 1, 10), "slow sink never got its DATA"
    q = qmgr_pid(t)
    assert q, "no qmgr"
    os.kill(q, signal.SIGKILL)
    slow.data_delay = 0
    assert wait_for(lambda: qmgr_pid(t) not in (None, q), 15.0), "qmgr not restarted"
    assert wait_for(lambda: queue_empty(t), 30.0), "queue not empty after the restart: %s" % t.queue_files()
    subs = set()
    for f in t.mail_files("kuser"):
        subs.add(parse_message(f)[1]["Subject"])
    assert subs == {"local %d" % i for i in range(5)}, "kuser got %s" % sorted(subs)
    got = [m for m in slow.messages[ns:] if b"in flight" in m["data"]]
    assert len(got) >= 1, "the in-flight message was lost"


def test_valias(t):
    submit(t.port, "vsender@localhost", ["list@virt.test"], message("to the list", to="list@virt.test"))
    assert wait_for(lambda: t.mail_files("valice") and t.mail_files("vbob"), 15.0), \
        "expansion not delivered: valice %d, vbob %d" % (len(t.mail_files("valice")), len(t.mail_files("vbob")))
    res.ok("valias_one_to_two")
    # A loop is refused at RCPT (resolve_rcpt_check) when smtpd asks, else
    # accepted and bounced with 5.4.6 by the queue manager.
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("vsender@localhost")
        code, _text = s.rcpt("loop1@virt.test")
        if code == 250:
            s.data(message("loop", to="loop1@virt.test"))
    if code == 250:
        assert wait_for(lambda: reports(t, "vsender"), 15.0), "no bounce for a virtual alias loop"
        _pm, rcpts = status_blocks(reports(t, "vsender")[0][1])
        assert rcpts[0]["Status"] == "5.4.6", "Status %s" % rcpts[0]["Status"]
    else:
        assert code == 550, "RCPT loop1@virt.test got %d" % code
    res.ok("valias_loop_refused_or_bounced")
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
        s.ehlo("client.test")
        s.mail("vsender@localhost")
        code, _text = s.rcpt("nobody@virt.test")
        if code == 250:
            s.data(message("unknown", to="nobody@virt.test"))
    if code != 250:
        assert code == 550, "RCPT nobody@virt.test got %d" % code
    else:
        def bounced():
            for _raw, m in reports(t, "vsender"):  # noqa
                for b in status_blocks(m)[1]:
                    if b["Final-Recipient"] == "rfc822; nobody@virt.test" and b["Status"] == "5.1.1":
                        return True
            return False
        assert wait_for(bounced, 15.0), "no 5.1.1 bounce for nobody@virt.test"
    assert wait_for(lambda: queue_empty(t), 10.0), "queue not empty"


def test_life(t):
    submit(t.port, "lifeuser@localhost", ["a@down.test"], message("expire me", to="a@down.test"))

    def actions():
        out = []
        for _raw, m in reports(t, "lifeuser"):
            out += [(b["Action"], b["Status"]) for b in status_blocks(m)[1]]
        return out
    assert wait_for(lambda: ("delayed", "4.0.0") in actions(), 10.0), "no delay report: %s" % actions()
    res.ok("delay_warning_sent")
    assert wait_for(lambda: ("failed", "4.4.7") in actions(), 20.0), "no expiry bounce: %s" % actions()
    time.sleep(1.5)
    acts = actions()
    assert acts.count(("failed", "4.4.7")) == 1 and acts.count(("delayed", "4.0.0")) == 1, "reports %s" % acts
    res.ok("lifetime_expiry_bounces")


def test_dead(t):
    log0 = len(t.log_text())
    q = wait_for(lambda: qmgr_pid(t), 10.0)
    os.kill(q, signal.SIGSTOP)
    try:
        for i in range(3):
            submit(t.port, "deaduser@localhost", ["d%d@down.test" % i], message("dead %d" % i, to="d@down.test"))
    finally:
        os.kill(q, signal.SIGCONT)
    assert wait_for(lambda: "delivery temporarily suspended" in t.log_text()[log0:], 10.0), \
        "no deferral without a connection for a dead destination"
    assert "is unreachable" in t.log_text()[log0:], "dead destination not logged"


def test_double_bounce(t):
    """Mail from <> that expires goes to the postmaster once; here the
    postmaster is unreachable too, so the double bounce is dropped (logged),
    never bounced again."""
    log0 = len(t.log_text())
    qid = submit(t.port, "", ["nb@down.test"], message("double", to="nb@down.test"))
    assert wait_for(lambda: "%s: postmaster non-delivery notification" % qid in t.log_text()[log0:], 20.0), \
        "no double bounce for %s" % qid
    assert wait_for(lambda: "undeliverable mail from <> discarded" in t.log_text()[log0:], 15.0), \
        "the failed double bounce was not dropped"
    assert wait_for(lambda: queue_empty(t), 15.0), "queue not empty: %s" % t.queue_files()
    time.sleep(2.0)
    new = t.log_text()[log0:]
    assert new.count("postmaster non-delivery notification") == 1, "more than one double bounce"
    assert queue_empty(t), "a report loop: %s" % t.queue_files()


def main():
    if not prerequisites_or_fail(res, "queue_dsn_build"):
        res.exit()
    fast = SmtpSink().start()
    slow = SmtpSink().start()
    down = free_port()
    valias = None
    t = Tern(transport={"ok.test": "smtp:[127.0.0.1]:%d" % fast.port,
                        "slow.test": "smtp:[127.0.0.1]:%d" % slow.port},
             conf={}, name="dsn")
    valias = os.path.join(t.dir, "virtual")
    with open(valias, "w") as f:
        f.write("list@virt.test valice@localhost, vbob@localhost\n"
                "loop1@virt.test loop2@virt.test\nloop2@virt.test loop1@virt.test\n")
    from tern_harness import TERNCTL
    import subprocess
    subprocess.run([TERNCTL, "makemap", valias], check=True, timeout=30)
    t.conf["virtual_alias_maps"] = valias
    t.conf["virtual_alias_domains"] = "virt.test"
    t.write_conf()
    res.on_fail.append(t.diagnostics)
    try:
        if res.run("start", t.start):
            res.run("retry_4xx_delivered_after_backoff", test_retry_4xx, t, fast)
            res.run("dsn_5xx_one_report", test_dsn_5xx, t, fast)
            res.run("notify_never_no_report", test_notify_never, t, fast)
            res.run("notify_success_report", test_notify_success, t)
            res.run("slow_dest_does_not_delay_fast", test_slow_destination, t, fast, slow)
            res.run("kill9_qmgr_mid_delivery_loses_nothing", test_kill9_qmgr, t, slow)
            res.run("valias_unknown_refused_or_bounced", test_valias, t)
    finally:
        t.cleanup()
        res.on_fail.remove(t.diagnostics)
    t2 = Tern(transport={"down.test": "smtp:[127.0.0.1]:%d" % down,
                         "postmaster": "error:5.1.1 the postmaster is unreachable"},
              conf={"maximal_queue_lifetime": "4s", "bounce_queue_lifetime": "4s", "delay_warning_time": "1s",
                    "default_destination_concurrency_limit": "1"}, name="life")
    res.on_fail.append(t2.diagnostics)
    try:
        if res.run("start_life", t2.start):
            res.run("life_reports", test_life, t2)
            res.run("dead_destination_no_connection", test_dead, t2)
            res.run("double_bounce_never_loops", test_double_bounce, t2)
    finally:
        t2.cleanup()
        res.on_fail.remove(t2.diagnostics)
        fast.stop()
        slow.stop()
    res.exit()


if __name__ == "__main__":
    main()
