#!/usr/bin/env python3
"""test_smtpd_protocol — smtpd's ESMTP extensions, content rules and limits (issue 3).

Instance P (defaults; bare_newline = normalize):
  ehlo_extensions        EHLO lists PIPELINING SIZE 8BITMIME ENHANCEDSTATUSCODES SMTPUTF8 CHUNKING DSN
  smuggle_norm_<v>       each smuggling variant (LF.LF, LF.CRLF, CR.CR, CRLF.CR, CR.LF, CRLF.LF,
                         CR.CRLF, LF.CR, CRLF NUL .CRLF) inside DATA: exactly one 250, then QUIT
                         gets 221; the delivered message has the smuggled text as content, no
                         bare CR, and no second message arrives
  bdat_chunks            BDAT 5 / BDAT n LAST via raw socket: 250s, one message, content exact
  bdat_zero_last         BDAT 0 LAST after a chunk ends the message
  bdat_without_mail_503  BDAT before MAIL: 503 5.5.1, the chunk is skipped, session in sync
  bdat_then_data_503     DATA after a BDAT chunk: 503 5.5.1
  bdat_disconnect_no_leftover  a client gone inside a chunk: no message, nothing left in tmp/
  smtputf8               MAIL FROM with an UTF-8 address needs SMTPUTF8 (5xx without, 250 with);
                         the message arrives and its Received: says UTF8SMTP
  dsn_stored             RET/ENVID/NOTIFY/ORCPT accepted and written to the queue file
                         (F flag RET=HDRS, N envid, R notify + orcpt)
  dsn_bad_555_501        unknown parameter 555 5.5.4; bad NOTIFY / bad xtext 501
  smtplib_swaks          python smtplib and swaks deliver a message
Instance R (bare_newline = reject):
  smuggle_reject_<v>     every variant with a bare CR or LF: 550 5.5.2 at the end of data,
                         nothing queued; a clean message still gets 250
Instance L (limits: smtpd_greet_pause 1s, smtpd_timeout 3s, junk limit 5, error limit 3,
header_size_limit 2048, hopcount_limit 5):
  early_talker_554       a client that speaks before the greeting: 554 5.5.0
  junk_limit_421         NOOP flood past the junk limit: 421 4.7.0
  slowloris_command_421  one byte per 0.5 s of a command: 421 4.4.2 within ~smtpd_timeout
  header_too_big_552     552 5.3.4
  hops_554               6 Received: headers: 554 5.4.6
  long_line_550          a 1001-octet text line (with CRLF): 550 5.5.2, never truncated
Instance V6 (smtpd_listen = [::1]:PORT):
  ipv6_session           smtplib over ::1 delivers a message
"""

import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, Tern, parse_message, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()

SMUGGLE = {
    "lf_dot_lf": b"\n.\n",
    "lf_dot_crlf": b"\n.\r\n",
    "crlf_dot_lf": b"\r\n.\n",
    "cr_dot_cr": b"\r.\r",
    "crlf_dot_cr": b"\r\n.\r",
    "cr_dot_lf": b"\r.\n",
    "cr_dot_crlf": b"\r.\r\n",
    "lf_dot_cr": b"\n.\r",
    "crlf_nul_dot_crlf": b"\r\n\x00.\r\n",
}


def session(t, helo="client.test"):
    c = RawSmtp(t.port)
    code, lines = c.reply()
    assert code == 220, "banner: %s" % lines
    code, lines = c.cmd("EHLO " + helo)
    assert code == 250, "EHLO: %s" % lines
    return c, lines


def expect(c, text, code, what=None):
    got, lines = c.cmd(text) if text is not None else c.reply()
    assert got == code, "%s: expected %d, got %s" % (what or text, code, lines)
    return lines


def smuggle_payload(term, user):
    return (b"From: a@client.test\r\nSubject: outer\r\n\r\nbefore" + term +
            b"MAIL FROM:<evil@client.test>\r\nRCPT TO:<%s@localhost>\r\nDATA\r\n"
            b"From: evil@client.test\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n" % user.encode())


def send_smuggle(t, term, user):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<%s@localhost>" % user, 250)
        expect(c, "DATA", 354)
        c.send(smuggle_payload(term, user))
        code, lines = c.reply()
        c.send(b"QUIT\r\n")
        code2, lines2 = c.reply()
        assert code2 == 221, "after the message: %s (smuggled commands executed?)" % lines2
        return code, lines
    finally:
        c.close()


def test_smuggle_normalize(t, variant, user):
    code, lines = send_smuggle(t, SMUGGLE[variant], user)
    assert code == 250, "end of data: %s" % lines
    assert t.wait_mail(user, 1, 10), "no message for %s" % user
    time.sleep(0.5)
    files = t.mail_files(user)
    assert len(files) == 1, "%d messages for %s" % (len(files), user)
    raw, msg = parse_message(files[0])
    assert msg["Subject"] == "outer", "Subject %r" % msg["Subject"]
    assert b"smuggled" in raw, "the smuggled text is not content of the one message"
    assert b"\r" not in raw.replace(b"\r\n", b""), "a bare CR reached the mailbox"


def test_smuggle_reject(t, variant, user):
    code, lines = send_smuggle(t, SMUGGLE[variant], user)
    if variant == "crlf_nul_dot_crlf":
        # No bare line end in this one: a NUL is data; one message.
        assert code == 250, "end of data: %s" % lines
        return
    assert code == 550 and lines[-1][4:].startswith("5.5.2"), "end of data: %s" % lines
    time.sleep(0.5)
    assert not t.mail_files(user), "a rejected message was delivered"


def test_reject_clean_ok(t):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<clean@localhost>", 250)
        expect(c, "DATA", 354)
        expect(c, "Subject: clean\r\n\r\nline one\r\nline two\r\n.", 250)
    finally:
        c.close()


def test_ehlo(t):
    c, lines = session(t)
    c.close()
    ext = {l[4:].split()[0].upper() for l in lines[1:] if len(l) > 4}
    missing = {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN"} - ext
    assert not missing, "EHLO lacks %s: %s" % (sorted(missing), lines)


def test_bdat(t):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<bdat1@localhost>", 250)
        first = b"Subject: chunked\r\n\r\nAB"
        c.send(b"BDAT %d\r\n" % len(first) + first)
        expect(c, None, 250, "BDAT %d" % len(first))
        body = b"CD\r\n.\r\nEF\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        lines = expect(c, None, 250, "BDAT LAST")
        assert "queued as" in lines[-1], lines
        expect(c, "QUIT", 221)
    finally:
        c.close()
    assert t.wait_mail("bdat1", 1, 10), "no message"
    raw, msg = parse_message(t.mail_files("bdat1")[0])
    assert msg["Subject"] == "chunked", raw
    assert raw.endswith(b"\nABCD\n.\nEF\n") or raw.endswith(b"\r\nABCD\r\n.\r\nEF\r\n"), \
        "content not exact: %r" % raw[-40:]


def test_bdat_zero_last(t):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<bdat2@localhost>", 250)
        data = b"Subject: zero\r\n\r\nx\r\n"
        c.send(b"BDAT %d\r\n" % len(data) + data)
        expect(c, None, 250, "BDAT")
        lines = expect(c, "BDAT 0 LAST", 250)
        assert "queued as" in lines[-1], lines
    finally:
        c.close()
    assert t.wait_mail("bdat2", 1, 10), "no message"


def test_bdat_without_mail(t):
    c, _ = session(t)
    try:
        c.send(b"BDAT 12\r\nNOOP\r\nNOOP\r\n")  # the chunk looks like commands: must be skipped
        lines = expect(c, None, 503, "BDAT before MAIL")
        assert lines[-1][4:].startswith("5.5.1"), lines
        expect(c, "QUIT", 221, "QUIT right after the skipped chunk")
    finally:
        c.close()


def test_bdat_then_data(t):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<bdat3@localhost>", 250)
        c.send(b"BDAT 3\r\nabc")
        expect(c, None, 250, "BDAT 3")
        lines = expect(c, "DATA", 503)
        assert lines[-1][4:].startswith("5.5.1"), lines
    finally:
        c.close()


def tmp_files(t):
    try:
        return os.listdir(os.path.join(t.queue, "tmp"))
    except OSError:
        return []


def test_bdat_disconnect(t):
    """A client that disappears inside a chunk: no 250, nothing left in tmp/."""
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<bdat4@localhost>", 250)
        c.send(b"BDAT 3\r\nabc")
        expect(c, None, 250, "BDAT 3")
        c.send(b"BDAT 100 LAST\r\nonly part of it")
    finally:
        c.close()
    assert wait_for(lambda: not tmp_files(t), 5), "tmp/ still holds %s" % tmp_files(t)
    time.sleep(0.5)
    assert not t.mail_files("bdat4"), "a message cut off inside BDAT was delivered"


def test_smtputf8(t):
    c, _ = session(t)
    try:
        code, lines = c.cmd("MAIL FROM:<j\u00f6rg@client.test>")
        assert 500 <= code < 600, "UTF-8 sender without SMTPUTF8: %s" % lines
        expect(c, "MAIL FROM:<j\u00f6rg@client.test> SMTPUTF8", 250)
        expect(c, "RCPT TO:<utf8@localhost>", 250)
        expect(c, "DATA", 354)
        expect(c, "Subject: utf8\r\n\r\nhi\r\n.", 250)
    finally:
        c.close()
    assert t.wait_mail("utf8", 1, 10), "no message"
    raw, _ = parse_message(t.mail_files("utf8")[0])
    assert re.search(rb"with UTF8E?SMTP", raw), "Received: does not say UTF8SMTP: %r" % raw[:400]


def queue_file_with(t, qid):
    for root, _dirs, files in os.walk(t.queue):
        if qid in files and os.path.relpath(root, t.queue).split(os.sep)[0] != "tmp":
            try:
                with open(os.path.join(root, qid), "rb") as f:
                    return f.read()
            except OSError:
                pass
    return None


def test_dsn(t):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test> RET=HDRS ENVID=QQ+2B123", 250)
        expect(c, "RCPT TO:<x@defer.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;x+40orig.test", 250)
        expect(c, "DATA", 354)
        lines = expect(c, "Subject: dsn\r\n\r\nhi\r\n.", 250)
        qid = lines[-1].split()[-1]
    finally:
        c.close()
    data = None
    deadline = time.time() + 10
    while time.time() < deadline and data is None:
        data = queue_file_with(t, qid)
        time.sleep(0.1)
    assert data is not None, "queue file %s not found: %s" % (qid, t.queue_files())
    env = data.split(b"\nE\n", 1)[0].decode(errors="replace")
    assert re.search(r"^N QQ\+2B123$", env, re.M), "ENVID not stored: %r" % env
    flags = int(re.search(r"^F (\d+)$", env, re.M).group(1))
    assert flags & 4, "RET=HDRS flag not set: %r" % env
    m = re.search(r"^R . (\d+) (\S+) x@defer\.test$", env, re.M)
    assert m, "recipient record: %r" % env
    assert int(m.group(1)) == 1 | 4, "NOTIFY bits %s (want SUCCESS|DELAY = 5)" % m.group(1)
    assert m.group(2) == "rfc822;x+40orig.test", "ORCPT %r" % m.group(2)


def test_dsn_bad(t):
    c, _ = session(t)
    try:
        lines = expect(c, "MAIL FROM:<a@client.test> FOO=BAR", 555)
        assert lines[-1][4:].startswith("5.5.4"), lines
        expect(c, "MAIL FROM:<a@client.test> ENVID=bad+ZZ", 501)
        expect(c, "MAIL FROM:<a@client.test> ENVID=nl+0Ainside", 501)
        expect(c, "MAIL FROM:<a@client.test> RET=SOME", 501)
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<x@localhost> NOTIFY=NEVER,SUCCESS", 501)
        expect(c, "RCPT TO:<x@localhost> NOTIFY=SOMETIMES", 501)
        expect(c, "RCPT TO:<x@localhost> ORCPT=noxtext", 501)
        expect(c, "RCPT TO:<x@localhost> =x", 501)
    finally:
        c.close()


def test_clients(t):
    with smtplib.SMTP("127.0.0.1", t.port, timeout=10) as s:
        s.sendmail("me@client.test", ["lib@localhost"], b"Subject: smtplib\r\n\r\nhello\r\n")
    assert t.wait_mail("lib", 1, 10), "smtplib message not delivered"
    if shutil.which("swaks") is None:
        return
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % t.port, "--from", "me@client.test",
                        "--to", "swaks@localhost", "--header", "Subject: swaks", "--body", "hi"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    assert r.returncode == 0, "swaks: %s" % r.stdout.decode(errors="replace")[-500:]
    assert t.wait_mail("swaks", 1, 10), "swaks message not delivered"


# ---- limits

def test_early_talker(t):
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    try:
        s.sendall(b"EHLO early.test\r\n")
        data = b""
        deadline = time.time() + 8
        while b"\n" not in data and time.time() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"554 5.5.0"), "early talker got %r" % data
    finally:
        s.close()


def test_junk_limit(t):
    c = RawSmtp(t.port)
    try:
        expect(c, None, 220, "banner")
        codes = []
        for _ in range(20):
            code, lines = c.cmd("NOOP")
            codes.append(code)
            if code == 421:
                assert lines[-1][4:].startswith("4.7.0"), lines
                break
        assert codes[:5] == [250] * 5, "the first NOOPs: %s" % codes
        assert codes[-1] == 421, "no 421 after a NOOP flood: %s" % codes
    finally:
        c.close()


def test_slowloris(t):
    c = RawSmtp(t.port, timeout=15)
    try:
        expect(c, None, 220, "banner")
        start = time.time()
        got = None
        for b in b"EHLO slow.client.test.example":
            try:
                c.send(bytes([b]))
            except OSError:
                break
            c.sock.settimeout(0.5)
            try:
                data = c.sock.recv(4096)
                got = data
                break
            except socket.timeout:
                pass
        c.sock.settimeout(10)
        if got is None:
            got = c.sock.recv(4096)
        took = time.time() - start
        assert got.startswith(b"421 4.4.2"), "slow client got %r" % got
        assert took < 8, "the deadline came after %.1fs (smtpd_timeout is 3s)" % took
    finally:
        c.close()


def data_reply(t, user, content):
    c, _ = session(t)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        expect(c, "RCPT TO:<%s@localhost>" % user, 250)
        expect(c, "DATA", 354)
        c.send(content + b"\r\n.\r\n")
        return c.reply()
    finally:
        c.close()


def test_header_too_big(t):
    hdr = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 60) for i in range(60))
    code, lines = data_reply(t, "hdrbig", hdr + b"Subject: big\r\n\r\nbody")
    assert code == 552 and lines[-1][4:].startswith("5.3.4"), "big header: %s" % lines


def test_hops(t):
    rcv = b"".join(b"Received: from hop%d.example by x.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % i
                   for i in range(6))
    code, lines = data_reply(t, "hops", rcv + b"Subject: loop\r\n\r\nbody")
    assert code == 554 and lines[-1][4:].startswith("5.4.6"), "6 Received headers: %s" % lines
    rcv = rcv.split(b"\r\n", 3)[3]  # 3 left: fine
    code, lines = data_reply(t, "hopsok", rcv + b"Subject: ok\r\n\r\nbody")
    assert code == 250, "3 Received headers: %s" % lines


def test_long_line(t):
    code, lines = data_reply(t, "longline", b"Subject: long\r\n\r\n" + b"x" * 999)
    assert code == 550 and lines[-1][4:].startswith("5.5.2"), "1001-octet line: %s" % lines
    code, lines = data_reply(t, "okline", b"Subject: ok\r\n\r\n" + b"x" * 998)
    assert code == 250, "1000-octet line: %s" % lines


def test_ipv6(t):
    with smtplib.SMTP("::1", t.port, timeout=10) as s:
        s.sendmail("me@client.test", ["six@localhost"], b"Subject: v6\r\n\r\nhello\r\n")
    assert t.wait_mail("six", 1, 10), "no message over ::1"
    raw, _ = parse_message(t.mail_files("six")[0])
    assert b"IPv6:::1" in raw, "Received: lacks [IPv6:::1]: %r" % raw[:300]


def run_instance(name, conf, tests, transport=None, v6=False):
    t = Tern(name=name, conf=conf, transport=transport)
    if v6:
        # Both loopbacks on one port number: the harness waits on 127.0.0.1.
        t.conf["smtpd_listen"] = "127.0.0.1:%d, [::1]:%d" % (t.port, t.port)
        t.write_conf()
    res.on_fail.append(t.diagnostics)
    try:
        if res.run("start_" + name, t.start):
            for tname, fn, args in tests:
                res.run(tname, fn, t, *args)
            killed = t.stop()
            res.check("stop_clean_" + name, not killed, "left after SIGTERM: %s" % killed)
    finally:
        t.cleanup()


def ipv6_ok():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def main():
    if not prerequisites_or_fail(res, "smtpd_protocol_build"):
        res.exit()
    tests = [("ehlo_extensions", test_ehlo, ())]
    tests += [("smuggle_norm_" + v, test_smuggle_normalize, (v, "norm%d" % i)) for i, v in enumerate(SMUGGLE)]
    tests += [("bdat_chunks", test_bdat, ()), ("bdat_zero_last", test_bdat_zero_last, ()),
              ("bdat_without_mail_503", test_bdat_without_mail, ()),
              ("bdat_then_data_503", test_bdat_then_data, ()),
              ("bdat_disconnect_no_leftover", test_bdat_disconnect, ()),
              ("smtputf8", test_smtputf8, ()), ("dsn_stored", test_dsn, ()),
              ("dsn_bad_555_501", test_dsn_bad, ()), ("smtplib_swaks", test_clients, ())]
    run_instance("p", {}, tests, transport={"defer.test": "smtp:[127.0.0.1]:1"})

    tests = [("smuggle_reject_" + v, test_smuggle_reject, (v, "rej%d" % i)) for i, v in enumerate(SMUGGLE)]
    tests += [("reject_mode_clean_250", test_reject_clean_ok, ())]
    run_instance("r", {"bare_newline": "reject"}, tests)

    tests = [("early_talker_554", test_early_talker, ()), ("junk_limit_421", test_junk_limit, ()),
             ("slowloris_command_421", test_slowloris, ()), ("header_too_big_552", test_header_too_big, ()),
             ("hops_554", test_hops, ()), ("long_line_550", test_long_line, ())]
    run_instance("l", {"smtpd_greet_pause": "1s", "smtpd_timeout": "3s", "smtpd_junk_command_limit": "5",
                       "smtpd_hard_error_limit": "3", "header_size_limit": "2048", "hopcount_limit": "5"}, tests)

    if ipv6_ok():
        run_instance("v6", {}, [("ipv6_session", test_ipv6, ())], v6=True)
    else:
        res.skip("ipv6_session", "no ::1 on this host")
    res.exit()


if __name__ == "__main__":
    main()
