#!/usr/bin/env python3
"""test_make_run — what `make run` does, in a temporary directory.

`make run` is `tern-master -D $(CURDIR)/run -o daemon_directory=...`; this test
runs the same command with a temporary DIR (and, when 2525 is taken, another
port through -o smtpd_listen) and checks the issue's acceptance criterion:

  dev_conf_written     DIR/tern.conf exists after the start
  dev_listens_2525     the embedded config listens on 127.0.0.1:2525 (SKIP when busy)
  dev_local_delivery   a message to alice@localhost via smtplib appears in
                       DIR/mail/alice/Maildir/new/ within 5 seconds
  dev_processes        separate master, smtpd, qmgr, local and send processes
  dev_stop_clean       SIGTERM stops all of them
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import Results, Tern, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()


def main():
    if not prerequisites_or_fail(res, "dev_build"):
        res.exit()
    t = Tern(dev=True, name="dev")
    res.on_fail.append(t.diagnostics)
    try:
        if not res.run("dev_start", t.start):
            res.exit()
        res.check("dev_conf_written", os.path.exists(os.path.join(t.dir, "tern.conf")),
                  "%s/tern.conf missing" % t.dir)
        if t.port == 2525:
            res.ok("dev_listens_2525")
        else:
            res.skip("dev_listens_2525", "port 2525 was busy; used %d" % t.port)

        def deliver():
            with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
                s.sendmail("me@example.org", ["alice@localhost"],
                           b"From: me@example.org\r\nTo: alice@localhost\r\nSubject: dev mode\r\n\r\nhello\r\n")
            assert t.wait_mail("alice", 1, 5), "nothing in %s/new within 5 s" % t.maildir("alice")
        res.run("dev_local_delivery", deliver)

        def processes():
            want = {"tern-master", "smtpd", "qmgr", "local", "send"}
            ok = wait_for(lambda: want <= set(t.processes().values()), 5)
            assert ok, "processes: %s" % sorted(t.processes().values())
        res.run("dev_processes", processes)

        killed = t.stop()
        res.check("dev_stop_clean", not killed, "left after SIGTERM: %s" % killed)
    finally:
        t.cleanup()
    res.exit()


if __name__ == "__main__":
    main()
