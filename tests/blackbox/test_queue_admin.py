#!/usr/bin/env python3
"""test_queue_admin — ternctl queue administration and mailq, on a running tern.

  admin_list_layout    `ternctl list` prints the Postfix mailq layout: header,
                       QUEUEID + size + arrival + sender, the deferral reason in
                       parentheses, the pending recipients, and
                       "-- N Kbytes in M Requests."; `mailq` (argv[0], config
                       from TERN_CONFIG) prints the same
  admin_list_json      `ternctl list --json`: one JSON object per message
  admin_show           `ternctl show ID`: envelope, recipient state, content
  admin_hold_release   hold moves to hold/ (marked ! in the list, never
                       delivered), release brings it back
  admin_flush_domain   `ternctl flush DOMAIN` delivers the deferred mail of that
                       domain at once (queue_run_delay is an hour here)
  admin_delete         `ternctl delete ID` and `delete ALL` empty the queue
"""

import json
import os
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (TERNCTL, Results, SmtpSink, Tern, free_port,  # noqa: E402
                          prerequisites_or_fail, wait_for)

res = Results()


def submit(port, rcpt, subject):
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.sendmail("admin-sender@client.test", [rcpt],
                   ("From: a@client.test\r\nSubject: %s\r\n\r\nhello\r\n" % subject).encode())


def ctl(t, *args, argv0=None):
    cmd = [argv0 or TERNCTL, "-c", t.conf_path] + list(args) if not argv0 else [argv0] + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def ids(t, q):
    return t.queue_files().get(q, [])


def main():
    if not prerequisites_or_fail(res, "queue_admin_build"):
        res.exit()
    down = free_port()
    # A long queue_run_delay and backoff: only the admin commands move mail.
    t = Tern(transport={"down.test": "smtp:[127.0.0.1]:%d" % down,
                        "other.test": "smtp:[127.0.0.1]:%d" % down},
             conf={"queue_run_delay": "1h", "minimal_backoff": "1h", "maximal_backoff": "2h"}, name="admin")
    res.on_fail.append(t.diagnostics)
    sink = None
    try:
        if not res.run("start", t.start):
            res.exit()
        submit(t.port, "one@down.test", "first")
        submit(t.port, "two@other.test", "second")
        assert wait_for(lambda: len(ids(t, "deferred")) == 2, 15.0), "not deferred: %s" % t.queue_files()
        q1, q2 = None, None

        def list_layout():
            nonlocal q1, q2
            rc, out, err = ctl(t, "list")
            assert rc == 0, "list: %d %s" % (rc, err)
            lines = out.splitlines()
            assert lines[0].startswith("-Queue ID-"), "header %r" % lines[0]
            heads = [l for l in lines if re.match(r"^[0-9A-F]{20}[ *!]\s+\d+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d  \S+$", l)]
            assert len(heads) == 2, "message lines: %s" % out
            assert all(h.endswith("admin-sender@client.test") for h in heads), out
            assert any(re.match(r"^\(.*(refused|connect).*\)$", l, re.I) for l in lines), "no reason line: %s" % out
            assert re.search(r"(?m)^ {41}one@down\.test$", out), "recipient line: %s" % out
            assert re.search(r"(?m)^-- \d+ Kbytes in 2 Requests\.$", out), "summary: %s" % out
            for h in heads:
                qid = h[:20]
                if re.search(qid + r".*\n(\(.*\)\n)? {41}one@down", out):
                    q1 = qid
                else:
                    q2 = qid
            link = os.path.join(t.dir, "mailq")
            if not os.path.exists(link):
                os.symlink(TERNCTL, link)
            env = dict(os.environ, TERN_CONFIG=t.conf_path)
            r = subprocess.run([link], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, env=env)
            assert r.returncode == 0, "mailq: %d %r" % (r.returncode, r.stderr)
            assert r.stdout.decode(errors="replace") == ctl(t, "list")[1], "mailq differs from ternctl list"
        res.run("admin_list_layout", list_layout)

        def list_json():
            rc, out, err = ctl(t, "list", "--json")
            assert rc == 0, err
            objs = [json.loads(l) for l in out.splitlines() if l.strip()]
            assert len(objs) == 2, out
            by = {o["queue_id"]: o for o in objs}
            assert set(by) == {q1, q2}, (by.keys(), q1, q2)
            o = by[q1]
            assert o["queue_name"] == "deferred" and o["sender"] == "admin-sender@client.test", o
            assert o["recipients"][0]["address"] == "one@down.test", o
            assert o["recipients"][0]["state"] == "pending" and o["recipients"][0].get("delay_reason"), o
            assert o["attempts"] >= 1 and o["message_size"] > 0, o
        res.run("admin_list_json", list_json)

        def show():
            rc, out, err = ctl(t, "show", q1)
            assert rc == 0, err
            assert "sender: admin-sender@client.test" in out, out
            assert "recipient: one@down.test (pending)" in out, out
            assert "Subject: first" in out and "hello" in out, out
            rc, _out, err = ctl(t, "show", "../../etc/passwd")
            assert rc == 1 and "no such message" in err, (rc, err)
        res.run("admin_show", show)

        def hold_release():
            rc, out, err = ctl(t, "hold", q1)
            assert rc == 0 and q1 in ids(t, "hold"), (rc, out, err, t.queue_files())
            rc, out, _ = ctl(t, "list")
            assert re.search(r"(?m)^%s!" % q1, out), out
            rc, out, err = ctl(t, "release", q1)
            assert rc == 0, err
            assert wait_for(lambda: q1 in ids(t, "deferred"), 10.0), t.queue_files()
        res.run("admin_hold_release", hold_release)

        def flush_domain():
            nonlocal sink
            sink = SmtpSink(port=down).start()
            rc, out, err = ctl(t, "flush", "down.test")
            assert rc == 0, err
            assert sink.wait(1, 10), "flush down.test did not deliver"
            assert sink.messages[0]["rcpts"] == ["one@down.test"], sink.messages[0]["rcpts"]
            assert wait_for(lambda: q1 not in ids(t, "deferred") and q1 not in ids(t, "active"), 10.0)
            time.sleep(1.0)
            assert len(sink.messages) == 1, "flush of one domain delivered %d" % len(sink.messages)
            assert q2 in ids(t, "deferred"), "other.test was flushed too: %s" % t.queue_files()
            sink.stop()
            sink = None
        res.run("admin_flush_domain", flush_domain)

        def delete():
            rc, out, err = ctl(t, "hold", "ALL")
            assert rc == 0, err
            submit(t.port, "three@down.test", "third")
            assert wait_for(lambda: len(ids(t, "deferred")) == 1, 15.0), t.queue_files()
            q3 = ids(t, "deferred")[0]
            rc, out, err = ctl(t, "delete", q3)
            assert rc == 0 and "1 message" in out, (out, err)
            rc, out, err = ctl(t, "delete", "ALL")
            assert rc == 0, err
            assert not any(ids(t, q) for q in ("incoming", "active", "deferred", "hold")), t.queue_files()
            rc, out, err = ctl(t, "list")
            assert "Mail queue is empty" in out, out
        res.run("admin_delete", delete)
    finally:
        if sink:
            sink.stop()
        t.cleanup()
        res.on_fail.remove(t.diagnostics)
    res.exit()


if __name__ == "__main__":
    main()
