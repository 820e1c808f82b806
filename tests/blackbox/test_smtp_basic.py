#!/usr/bin/env python3
"""test_smtp_basic — smtpd's conversation over a raw socket.

  banner_220, ehlo_extensions (PIPELINING SIZE 8BITMIME ENHANCEDSTATUSCODES),
  helo, data_without_mail_503, data_without_rcpt_503, rcpt_without_mail_503,
  unknown_command_5xx, overlong_line_500 (and the session goes on),
  quit_221 (and the server closes), pipelining (a batch of commands in one
  write gets its replies in order), smuggling_* (a bare-LF "\\n.\\n" and
  friends do not end DATA: the server answers once and queues one message;
  no message with the smuggled Subject reaches a Maildir).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, Tern, parse_message, prerequisites_or_fail  # noqa: E402

res = Results()


def session(t):
    c = RawSmtp(t.port)
    code, lines = c.reply()
    assert code == 220, "banner: %s" % lines
    return c


def test_banner(t):
    c = RawSmtp(t.port)
    try:
        code, lines = c.reply()
        assert code == 220, "banner is %s" % lines
        assert len(lines) == 1, "multi-line banner %s" % lines
    finally:
        c.close()


def test_ehlo(t):
    c = session(t)
    try:
        code, lines = c.cmd("EHLO client.test")
        assert code == 250, "EHLO: %s" % lines
        ext = {l[4:].split()[0].upper() for l in lines[1:] if len(l) > 4}
        missing = {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"} - ext
        assert not missing, "EHLO lacks %s (got %s)" % (sorted(missing), lines)
        for l in lines[:-1]:
            assert l.startswith("250-"), "bad continuation line %r" % l
        assert lines[-1].startswith("250 "), "bad last line %r" % lines[-1]
    finally:
        c.close()


def test_helo(t):
    c = session(t)
    try:
        code, lines = c.cmd("HELO client.test")
        assert code == 250, "HELO: %s" % lines
    finally:
        c.close()


def expect(c, command, lo, hi, what):
    code, lines = c.cmd(command)
    assert lo <= code <= hi, "%s: expected %s, got %s" % (command, what, lines)
    return lines


def test_data_without_mail(t):
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        expect(c, "DATA", 503, 503, "503")
    finally:
        c.close()


def test_data_without_rcpt(t):
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        expect(c, "MAIL FROM:<a@client.test>", 250, 250, "250")
        expect(c, "DATA", 503, 503, "503")
        # the transaction is still usable
        expect(c, "RCPT TO:<alice@localhost>", 250, 250, "250")
        expect(c, "RSET", 250, 250, "250")
    finally:
        c.close()


def test_rcpt_without_mail(t):
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        expect(c, "RCPT TO:<alice@localhost>", 503, 503, "503")
    finally:
        c.close()


def test_unknown_command(t):
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        expect(c, "FROBNICATE now", 500, 502, "500 or 502")
        expect(c, "NOOP", 250, 250, "250 after an unknown command")
    finally:
        c.close()


def test_overlong_line(t):
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        code, lines = c.cmd("NOOP " + "x" * 5000)
        assert code == 500, "5000-byte command line: expected 500, got %s" % lines
        # resynchronised: the rest of the long line was discarded
        expect(c, "NOOP", 250, 250, "250 after the overlong line")
    finally:
        c.close()


def test_quit(t):
    c = session(t)
    try:
        code, lines = c.cmd("QUIT")
        assert code == 221, "QUIT: %s" % lines
        assert c.closed(5), "connection still open 5 s after 221"
    finally:
        c.close()


def test_pipelining(t):
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\n"
               "RSET\r\nNOOP\r\n")
        codes = [c.reply()[0] for _ in range(5)]
        assert codes == [250, 250, 250, 250, 250], "pipelined replies %s" % codes
    finally:
        c.close()


# Each variant: the terminator a vulnerable server would take for end-of-data.
SMUGGLE = {
    "lf_dot_lf": b"\n.\n",
    "crlf_dot_lf": b"\r\n.\n",
    "lf_dot_crlf": b"\n.\r\n",
    "cr_dot_cr": b"\r.\r",
}


def test_smuggling(t, variant, user):
    term = SMUGGLE[variant]
    c = session(t)
    try:
        expect(c, "EHLO client.test", 250, 250, "250")
        expect(c, "MAIL FROM:<a@client.test>", 250, 250, "250")
        expect(c, "RCPT TO:<%s@localhost>" % user, 250, 250, "250")
        expect(c, "DATA", 354, 354, "354")
        payload = (b"From: a@client.test\r\nSubject: outer\r\n\r\nbefore" + term +
                   b"MAIL FROM:<evil@client.test>\r\nRCPT TO:<%s@localhost>\r\nDATA\r\n"
                   b"From: evil@client.test\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n" % user.encode())
        c.send(payload)
        code, lines = c.reply()
        # Either the whole thing is one message (250) or bare LF/CR is refused (5xx).
        assert code == 250 or 500 <= code < 600, "end of DATA: %s" % lines
        c.send(b"QUIT\r\n")
        code2, lines2 = c.reply()
        assert code2 == 221, "after the message the server sent %s (smuggled commands executed?)" % lines2
    finally:
        c.close()
    if code != 250:
        return
    # One message arrives, and no message with the smuggled Subject.
    assert t.wait_mail(user, 1, 10), "the message did not arrive at %s" % user
    time.sleep(1.0)
    files = t.mail_files(user)
    subjects = [parse_message(f)[1]["Subject"] for f in files]
    assert subjects == ["outer"], "%s received %s" % (user, subjects)


def main():
    if not prerequisites_or_fail(res, "smtp_basic_build"):
        res.exit()
    t = Tern(name="smtp")
    res.on_fail.append(t.diagnostics)
    try:
        if res.run("start", t.start):
            res.run("banner_220", test_banner, t)
            res.run("ehlo_extensions", test_ehlo, t)
            res.run("helo", test_helo, t)
            res.run("data_without_mail_503", test_data_without_mail, t)
            res.run("data_without_rcpt_503", test_data_without_rcpt, t)
            res.run("rcpt_without_mail_503", test_rcpt_without_mail, t)
            res.run("unknown_command_5xx", test_unknown_command, t)
            res.run("overlong_line_500", test_overlong_line, t)
            res.run("quit_221", test_quit, t)
            res.run("pipelining", test_pipelining, t)
            for i, v in enumerate(SMUGGLE):
                res.run("smuggling_" + v, test_smuggling, t, v, "smug%d" % i)
            killed = t.stop()
            res.check("stop_clean", not killed, "left after SIGTERM: %s" % killed)
    finally:
        t.cleanup()
    res.exit()


if __name__ == "__main__":
    main()
