#!/usr/bin/env python3
"""test_smtpd_policy — smtpd's recipient policy and its log lines (issue 3, items 4 and 8).

Instance A: the test client (127.0.0.1) is NOT in mynetworks.
  relay_denied_554         mail to another domain: 554 5.7.1 ... Relay access denied
  relay_domain_250         a relay_domains domain is accepted
  trick_percent_554        <user%other.example@localhost>          554 5.7.1
  trick_source_route_554   <@localhost:user@other.example>         554 5.7.1 (route stripped)
  trick_quoted_at_554      <"user@other.example"@localhost>        554 5.7.1
  trick_bang_554           <other.example!user@localhost>          554 5.7.1
  trick_double_at_501      <user@other.example@localhost>          501 5.1.3 (not an address)
  log_noqueue_reject       "NOQUEUE: reject: RCPT from host[ip]: 554 5.7.1 <x@y>: Relay access
                           denied; from=<..> to=<..> proto=ESMTP helo=<..>"
  log_connect_client_disconnect  "connect from host[ip]", "QUEUEID: client=host[ip]",
                           "disconnect from host[ip] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
  vrfy_252                 VRFY by default: 252
Instance B: local_mailbox_base empty (Unix users only), disable_vrfy_command = yes,
smtpd_peername_lookup = no.
  local_unknown_550        a local name that is no Unix user: 550 5.1.1
  local_existing_250       root (an existing Unix user) and postmaster: 250
  vrfy_disabled_502        VRFY: 502 5.5.1
  peername_off_unknown     the log says unknown[127.0.0.1]
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, Tern, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()


def session(t, helo="client.test"):
    c = RawSmtp(t.port)
    code, lines = c.reply()
    assert code == 220, "banner: %s" % lines
    code, lines = c.cmd("EHLO " + helo)
    assert code == 250, "EHLO: %s" % lines
    return c


def rcpt_code(t, rcpt, sender="s@client.test"):
    """(code, text) of RCPT TO:<rcpt> in a fresh transaction."""
    c = session(t)
    try:
        code, lines = c.cmd("MAIL FROM:<%s>" % sender)
        assert code == 250, "MAIL: %s" % lines
        code, lines = c.cmd("RCPT TO:<%s>" % rcpt)
        c.cmd("QUIT")
        return code, lines[-1]
    finally:
        c.close()


def expect_rcpt(t, rcpt, code, dsn):
    got, text = rcpt_code(t, rcpt)
    assert got == code and text[4:].startswith(dsn), \
        "RCPT TO:<%s>: expected %d %s, got %r" % (rcpt, code, dsn, text)


def test_log_reject(t):
    code, text = rcpt_code(t, "victim@elsewhere.example", sender="spammer@client.test")
    assert code == 554, text
    pat = (r"NOQUEUE: reject: RCPT from [^\[\s]+\[127\.0\.0\.1\]: 554 5\.7\.1 <victim@elsewhere\.example>: "
           r"Relay access denied; from=<spammer@client\.test> to=<victim@elsewhere\.example> "
           r"proto=ESMTP helo=<client\.test>")
    assert wait_for(lambda: re.search(pat, t.log_text()), 5), "no NOQUEUE line matching %s" % pat


def test_log_session(t):
    c = RawSmtp(t.port)
    try:
        assert c.reply()[0] == 220
        assert c.cmd("EHLO logtest.client")[0] == 250
        assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
        assert c.cmd("RCPT TO:<logtest@localhost>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        code, lines = c.cmd("Subject: log\r\n\r\nhello\r\n.")
        assert code == 250, lines
        qid = lines[-1].split()[-1]
        assert c.cmd("QUIT")[0] == 221
    finally:
        c.close()
    pats = [r"connect from [^\[\s]+\[127\.0\.0\.1\]",
            r"%s: client=[^\[\s]+\[127\.0\.0\.1\]" % qid,
            r"disconnect from [^\[\s]+\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"]
    for p in pats:
        assert wait_for(lambda: re.search(p, t.log_text()), 5), "no log line matching %s" % p


def test_vrfy(t, code, dsn):
    c = session(t)
    try:
        got, lines = c.cmd("VRFY root")
        assert got == code and lines[-1][4:].startswith(dsn), "VRFY: %s" % lines
    finally:
        c.close()


def test_peername_off(t):
    c = session(t)
    c.cmd("QUIT")
    c.close()
    assert wait_for(lambda: "connect from unknown[127.0.0.1]" in t.log_text(), 5), \
        "no 'connect from unknown[127.0.0.1]' with smtpd_peername_lookup = no"


def main():
    if not prerequisites_or_fail(res, "smtpd_policy_build"):
        res.exit()
    a = Tern(name="policy", conf={"mynetworks": "192.0.2.0/24", "relay_domains": "relay.example"})
    res.on_fail.append(a.diagnostics)
    try:
        if res.run("start_untrusted", a.start):
            res.run("relay_denied_554", expect_rcpt, a, "u@elsewhere.example", 554, "5.7.1")
            res.run("relay_domain_250", expect_rcpt, a, "u@relay.example", 250, "2.1.5")
            res.run("trick_percent_554", expect_rcpt, a, "user%other.example@localhost", 554, "5.7.1")
            res.run("trick_source_route_554", expect_rcpt, a, "@localhost:user@other.example", 554, "5.7.1")
            res.run("trick_quoted_at_554", expect_rcpt, a, '"user@other.example"@localhost', 554, "5.7.1")
            res.run("trick_bang_554", expect_rcpt, a, "other.example!user@localhost", 554, "5.7.1")
            res.run("trick_double_at_501", expect_rcpt, a, "user@other.example@localhost", 501, "5.1.3")
            res.run("local_accepted_250", expect_rcpt, a, "someone@localhost", 250, "2.1.5")
            res.run("log_noqueue_reject", test_log_reject, a)
            res.run("log_connect_client_disconnect", test_log_session, a)
            res.run("vrfy_252", test_vrfy, a, 252, "2.")
            killed = a.stop()
            res.check("stop_clean_untrusted", not killed, "left after SIGTERM: %s" % killed)
    finally:
        a.cleanup()

    b = Tern(name="policy-unix", conf={"local_mailbox_base": "", "disable_vrfy_command": "yes",
                                       "smtpd_peername_lookup": "no", "alias_maps": ""})
    res.on_fail.append(b.diagnostics)
    try:
        if res.run("start_unix_users", b.start):
            res.run("local_unknown_550", expect_rcpt, b, "no-such-user-%d@localhost" % os.getpid(), 550, "5.1.1")
            res.run("local_existing_250", expect_rcpt, b, "root@localhost", 250, "2.1.5")
            res.run("local_postmaster_250", expect_rcpt, b, "postmaster@localhost", 250, "2.1.5")
            res.run("vrfy_disabled_502", test_vrfy, b, 502, "5.5.1")
            res.run("peername_off_unknown", test_peername_off, b)
            killed = b.stop()
            res.check("stop_clean_unix_users", not killed, "left after SIGTERM: %s" % killed)
    finally:
        b.cleanup()
    res.exit()


if __name__ == "__main__":
    main()
