#!/usr/bin/env python3
"""A burst larger than the queue manager's active limit is delivered
promptly: mail left in incoming/ when the active queue was full is picked
up as soon as room frees, not at the next periodic scan (60 s)."""
import os
import signal
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tern_harness as h  # noqa: E402

BURST = 60


def main():
    res = h.Results()
    if not h.prerequisites_or_fail(res, "active_limit"):
        res.exit()
    t = h.Tern(name="alimit", conf={"qmgr_message_active_limit": "10"})
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        h.wait_for(lambda: "qmgr" in t.processes().values(), 10)
        qmgr = [p for p, n in t.processes().items() if n == "qmgr"][0]
        # The whole burst is in incoming/ before the queue manager looks.
        os.kill(qmgr, signal.SIGSTOP)
        s = smtplib.SMTP("127.0.0.1", t.port, timeout=30)
        for i in range(BURST):
            s.sendmail("s@client.test", ["alice@localhost"],
                       "Subject: burst %d\r\nMessage-ID: <burst-%d@client.test>\r\n\r\nbody\r\n" % (i, i))
        s.quit()
        os.kill(qmgr, signal.SIGCONT)
        start = time.monotonic()
        # Well below the queue manager's 60 s safety scan.
        ok = t.wait_mail("alice", BURST, 25)
        res.check("burst_over_active_limit_delivered", ok,
                  "%d of %d delivered after %.0f s; queue %s" % (len(t.mail_files("alice")), BURST,
                                                                 time.monotonic() - start, t.queue_files()))
        res.check("burst_queue_empty", h.wait_for(lambda: not any(t.queue_files().get(d) for d in
                                                                   ("incoming", "active", "deferred")), 10),
                  "left: %s" % t.queue_files())
    finally:
        t.cleanup()
    res.exit()


if __name__ == "__main__":
    main()
