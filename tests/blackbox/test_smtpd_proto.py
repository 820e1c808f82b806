#!/usr/bin/env python3
"""test_smtpd_proto — issue 3 against the running daemons.

Instance A (client trusted, bare_newline = normalize, small limits, listening
on 127.0.0.1 and ::1):
  ehlo_extensions, smtplib_dsn_smtputf8 (stored and delivered), swaks_send,
  bdat_delivered, smuggling_<variant> (250, one message, no smuggled one),
  command_line_513_500, recipient_limit_452, size_at_mail_552, size_in_data_552,
  text_line_1000_ok / text_line_1001_550, header_size_552, hopcount_554,
  error_limit_421, junk_limit_421, idle_timeout_421, slowloris_data_421,
  ipv6_listener, peername_in_log, log_lines (Postfix shapes).
Instance B (client untrusted, bare_newline = reject, VRFY disabled, greet
pause 1 s, no virtual mailboxes):
  relay_trick_<name> (exact codes), unknown_user_550, bare_reject_<variant>
  (550 5.5.2), vrfy_disabled_502, early_talker_554, reject_log_line,
  header_1mb_and_100k_lines_memory_bounded (552 each time at the default
  header_size_limit; the smtpd's VmHWM grows by < 512 KiB).
"""

import os
import re
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import RawSmtp, Results, Tern, log, parse_message, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()


def session(port, ehlo=True):
    c = RawSmtp(port)
    code, lines = c.reply()
    assert code == 220, "banner: %s" % lines
    if ehlo:
        code, lines = c.cmd("EHLO client.test")
        assert code == 250, "EHLO: %s" % lines
    return c


def expect(c, command, code, what=None):
    got, lines = c.cmd(command)
    assert got == code, "%s: expected %d, got %s" % (what or command, code, lines)
    return lines


def txn(c, rcpt="alice@localhost"):
    expect(c, "MAIL FROM:<a@client.test>", 250)
    expect(c, "RCPT TO:<%s>" % rcpt, 250)


def data_reply(c, content):
    """DATA with content (bytes, sent as is, must end with the terminator)."""
    expect(c, "DATA", 354)
    c.send(content)
    return c.reply()


# ---------------------------------------------------------------- instance A

def t_ehlo(t):
    c = session(t.port, ehlo=False)
    try:
        code, lines = c.cmd("EHLO client.test")
        ext = {l[4:].split()[0].upper() for l in lines[1:]}
        want = {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING", "DSN"}
        assert want <= ext, "EHLO lacks %s: %s" % (sorted(want - ext), lines)
    finally:
        c.close()


def t_smtplib(t):
    msg = "From: a@client.test\r\nTo: dsn@localhost\r\nSubject: dsn\r\n\r\nhello\r\n".encode()
    with smtplib.SMTP("127.0.0.1", t.port, timeout=10) as s:
        s.ehlo("client.test")
        refused = s.sendmail("j\u00f6rg@client.test", ["dsn@localhost"], msg,
                             mail_options=["SMTPUTF8", "RET=HDRS", "ENVID=env+2B1"],
                             rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;dsn@localhost"])
        assert not refused, refused
    assert t.wait_mail("dsn", 1, 10), "not delivered"
    raw, m = parse_message(t.mail_files("dsn")[0])
    rec = m.get_all("Received")[0]
    assert "with UTF8SMTP" in rec and "for <dsn@localhost>" in rec, "Received: %r" % rec


def t_swaks(t):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % t.port, "--from", "a@client.test",
                        "--to", "swaks@localhost", "--header", "Subject: swaks", "--body", "hi"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0 and "queued as" in out, out[-500:]
    assert t.wait_mail("swaks", 1, 10), "not delivered"


def t_bdat(t):
    c = session(t.port)
    try:
        txn(c, "bdat@localhost")
        body = b"Subject: bdat\r\n\r\nline one\r\n.line two\r\n"
        c.send(b"BDAT %d\r\n" % len(body[:20]) + body[:20])
        code, lines = c.reply()
        assert code == 250, "first chunk: %s" % lines
        rest = body[20:]
        c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
        code, lines = c.reply()
        assert code == 250 and "queued as" in lines[0], "BDAT LAST: %s" % lines
    finally:
        c.close()
    assert t.wait_mail("bdat", 1, 10), "not delivered"
    raw, m = parse_message(t.mail_files("bdat")[0])
    assert m["Subject"] == "bdat" and b"\n.line two" in raw, raw[-200:]


SMUGGLE = {
    "lf_dot_lf": b"\n.\n", "cr_dot_cr": b"\r.\r", "cr_dot_lf": b"\r.\n", "lf_dot_cr": b"\n.\r",
    "lf_dot_crlf": b"\n.\r\n", "crlf_dot_lf": b"\r\n.\n", "cr_dot_crlf": b"\r.\r\n", "crlf_dot_cr": b"\r\n.\r",
    "crlf_nul_dot_crlf": b"\r\n\x00.\r\n",
}


def smuggle_payload(term, user):
    return (b"From: a@client.test\r\nSubject: outer\r\n\r\nbefore" + term +
            b"MAIL FROM:<evil@client.test>\r\nRCPT TO:<%s@localhost>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n.\r\n" % user.encode())


def t_smuggle(t, variant, user):
    c = session(t.port)
    try:
        txn(c, user + "@localhost")
        code, lines = data_reply(c, smuggle_payload(SMUGGLE[variant], user))
        assert code == 250, "end of DATA: %s" % lines
        code, lines = c.cmd("QUIT")
        assert code == 221, "after the message: %s (smuggled commands ran?)" % lines
    finally:
        c.close()
    assert t.wait_mail(user, 1, 10), "not delivered"
    time.sleep(0.5)
    files = t.mail_files(user)
    subjects = [parse_message(f)[1]["Subject"] for f in files]
    assert subjects == ["outer"], "%s got %s" % (user, subjects)
    raw = parse_message(files[0])[0]
    assert b"\r" not in raw.replace(b"\r\n", b""), "a bare CR was stored: %r" % raw[-200:]


def t_cmd_513(t):
    c = session(t.port)
    try:
        expect(c, "NOOP " + "x" * 505, 250, "512-octet command")  # 5 + 505 + CRLF = 512
        expect(c, "NOOP " + "x" * 506, 500, "513-octet command")
        expect(c, "NOOP", 250, "after the long line")
    finally:
        c.close()


def t_rcpt_limit(t):
    c = session(t.port)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        for i in range(5):
            expect(c, "RCPT TO:<r%d@localhost>" % i, 250)
        lines = expect(c, "RCPT TO:<r9@localhost>", 452, "6th recipient")
        assert lines[0].startswith("452 4.5.3"), lines
    finally:
        c.close()


def t_size_mail(t):
    c = session(t.port)
    try:
        lines = expect(c, "MAIL FROM:<a@client.test> SIZE=200000", 552)
        assert lines[0].startswith("552 5.3.4"), lines
    finally:
        c.close()


def t_size_data(t):
    c = session(t.port)
    try:
        txn(c)
        code, lines = data_reply(c, b"Subject: big\r\n\r\n" + (b"y" * 900 + b"\r\n") * 120 + b".\r\n")
        assert code == 552 and lines[0].startswith("552 5.3.4"), lines
        expect(c, "NOOP", 250, "session goes on")
    finally:
        c.close()


def t_text_line(t, n, want):
    c = session(t.port)
    try:
        txn(c)
        code, lines = data_reply(c, b"Subject: l\r\n\r\n" + b"z" * n + b"\r\n.\r\n")
        assert code == want, "%d-octet line: %s" % (n + 2, lines)
        if want == 550:
            assert lines[0].startswith("550 5.5.2"), lines
    finally:
        c.close()


def t_header_size(t):
    c = session(t.port)
    try:
        txn(c)
        code, lines = data_reply(c, b"X-F: " + b"h" * 70 + b"\r\n" + (b"X-F: " + b"h" * 70 + b"\r\n") * 100 +
                                 b"\r\nbody\r\n.\r\n")
        assert code == 552 and lines[0].startswith("552 5.3.4"), lines
    finally:
        c.close()


def t_hops(t):
    c = session(t.port)
    try:
        txn(c)
        code, lines = data_reply(c, b"Received: from a by b; x\r\n" * 5 + b"Subject: loop\r\n\r\nx\r\n.\r\n")
        assert code == 554 and lines[0].startswith("554 5.4.6"), lines
    finally:
        c.close()


def t_error_limit(t):
    c = session(t.port)
    try:
        for i in range(4):
            expect(c, "BOGUS%d" % i, 500)
        code, lines = c.cmd("BOGUS")
        assert code == 500 or code == 421, lines
        if code == 500:
            code, lines = c.reply()
        assert code == 421 and "4.7.0" in lines[0], "after 5 errors: %s" % lines
        assert c.closed(5), "still open after 421"
    finally:
        c.close()


def t_junk_limit(t):
    c = session(t.port)
    try:
        codes = []
        for _ in range(40):
            code, lines = c.cmd("NOOP")
            codes.append(code)
            if code == 421:
                assert "4.7.0" in lines[0], lines
                break
        # 10 free; then each counts as an error: 5 more pass, the next read gets 421.
        assert codes[-1] == 421 and codes.count(250) == 10 + 5, "NOOP flood: %s" % codes
    finally:
        c.close()


def t_idle_timeout(t):
    c = session(t.port)
    try:
        c.sock.settimeout(10)
        t0 = time.monotonic()
        code, lines = c.reply()
        assert code == 421 and "4.4.2" in lines[0], lines
        assert time.monotonic() - t0 < 8, "took %.1fs" % (time.monotonic() - t0)
    finally:
        c.close()


def t_slowloris(t):
    """One byte every 0.5 s inside DATA: each read is quick, the whole is not."""
    c = session(t.port)
    try:
        txn(c)
        expect(c, "DATA", 354)
        t0 = time.monotonic()
        got = None
        for _ in range(40):
            try:
                c.send(b"x")
            except OSError:
                break
            c.sock.settimeout(0.5)
            try:
                data = c.sock.recv(4096)
            except socket.timeout:
                continue
            got = data
            break
        c.sock.settimeout(10)
        assert got is not None and got.startswith(b"421 4.4.2"), "no 421 within 20 s: %r" % got
        assert time.monotonic() - t0 < 10, "took %.1fs" % (time.monotonic() - t0)
    finally:
        c.close()


def t_ipv6(t):
    s = socket.create_connection(("::1", t.port), timeout=10)
    c = RawSmtp.__new__(RawSmtp)
    c.sock, c.buf = s, b""
    try:
        code, lines = c.reply()
        assert code == 220, lines
        expect(c, "EHLO client.test", 250)
        txn(c, "six@localhost")
        code, lines = data_reply(c, b"Subject: v6\r\n\r\nx\r\n.\r\n")
        assert code == 250, lines
    finally:
        c.close()
    assert t.wait_mail("six", 1, 10), "not delivered"
    rec = parse_message(t.mail_files("six")[0])[1].get_all("Received")[0]
    assert "[IPv6:::1]" in rec, rec


def expected_name():
    """The forward-confirmed name of 127.0.0.1 here, or 'unknown'."""
    try:
        name = socket.gethostbyaddr("127.0.0.1")[0]
        if "127.0.0.1" in [a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)]:
            return name
    except OSError:
        pass
    return "unknown"


def t_logs(t):
    name = expected_name()
    log = t.log_text()
    checks = [
        r"connect from %s\[127\.0\.0\.1\]" % re.escape(name),
        r": client=%s\[127\.0\.0\.1\]" % re.escape(name),
        r"disconnect from %s\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" % re.escape(name),
    ]
    for pat in checks:
        assert re.search(pat, log), "no log line matching %s" % pat


# ---------------------------------------------------------------- instance B

TRICKS = {
    "percent": ("user%other.test@localhost", 554),
    "source_route": ("@localhost:user@other.test", 554),
    "quoted_at": ('"user@other.test"@localhost', 554),
    "bang": ("other.test!user@localhost", 554),
    "double_at": ("user@other.test@localhost", 501),
    "plain_remote": ("user@other.test", 554),
}


def t_trick(t, addr, want):
    c = session(t.port)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        code, lines = c.cmd("RCPT TO:<%s>" % addr)
        assert code == want, "RCPT TO:<%s>: expected %d, got %s" % (addr, want, lines)
        if want == 554:
            assert "5.7.1" in lines[0] and "Relay access denied" in lines[0], lines
    finally:
        c.close()


def t_unknown_user(t):
    c = session(t.port)
    try:
        expect(c, "MAIL FROM:<a@client.test>", 250)
        lines = expect(c, "RCPT TO:<no-such-user-zq9@localhost>", 550)
        assert lines[0].startswith("550 5.1.1"), lines
        expect(c, "RCPT TO:<root@localhost>", 250, "an existing user")
    finally:
        c.close()


def t_bare_reject(t, variant):
    c = session(t.port)
    try:
        txn(c, "root@localhost")
        code, lines = data_reply(c, smuggle_payload(SMUGGLE[variant], "root"))
        assert code == 550 and lines[0].startswith("550 5.5.2"), "bare_newline=reject: %s" % lines
        expect(c, "QUIT", 221, "after the refusal")
    finally:
        c.close()


def t_vrfy(t):
    c = session(t.port)
    try:
        lines = expect(c, "VRFY root", 502)
        assert lines[0].startswith("502 5.5.1"), lines
    finally:
        c.close()


def t_early_talker(t):
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    try:
        s.sendall(b"EHLO early.test\r\n")
        data = b""
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"554 5.5.0"), "early talker got %r" % data
    finally:
        s.close()


def t_reject_log(t):
    assert wait_for(lambda: re.search(
        r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <user@other\.test>: Relay access denied; "
        r"from=<a@client\.test> to=<user@other\.test> proto=ESMTP helo=<client\.test>", t.log_text()), 5), \
        "no NOQUEUE reject line"


def vm_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def smtpd_serving(t, sock):
    """The smtpd whose descriptors hold the server side of sock."""
    want = ("0100007F:%04X" % t.port, ":%04X" % sock.getsockname()[1])
    inode = None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if len(p) > 9 and p[1] == want[0] and p[2].endswith(want[1]):
                inode = p[9]
    for pid, name in t.processes().items():
        if name != "smtpd" or not inode:
            continue
        try:
            if any(os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "socket:[%s]" % inode
                   for fd in os.listdir("/proc/%d/fd" % pid)):
                return pid
        except OSError:
            continue
    return None


def t_header_memory(t):
    """hostile-inputs B.13 at the default header_size_limit (102400): three
    rounds of 100,000 short header lines and of a 1 MB header folded into
    1000-octet lines, each 552 5.3.4 and the session goes on; the serving
    smtpd's peak RSS (VmHWM) grows by less than 512 KiB over all of them
    (the header is counted as it streams to the queue file, never held)."""
    c = session(t.port)
    try:
        pid = smtpd_serving(t, c.sock)
        assert pid, "cannot find the smtpd serving the session"
        hwm0 = vm_kib(pid, "VmHWM")
        many = b"X-H: v\r\n" * 100000 + b"\r\nbody\r\n.\r\n"
        folded = b"X-Big: " + b"\r\n\t".join([b"a" * 990] * 1060) + b"\r\n\r\nbody\r\n.\r\n"
        for rnd in range(3):
            for what, content in (("100,000 header lines", many), ("1 MB folded header", folded)):
                txn(c, "root@localhost")
                code, lines = data_reply(c, content)
                assert code == 552 and lines[0].startswith("552 5.3.4"), "round %d, %s: %s" % (rnd, what, lines)
        expect(c, "NOOP", 250, "after the refusals")
        hwm = vm_kib(pid, "VmHWM")
    finally:
        c.close()
    log("smtpd %d VmHWM %s -> %s KiB" % (pid, hwm0, hwm))
    if os.environ.get("TERN_LDFLAGS"):
        return  # AddressSanitizer's shadow memory and quarantine make RSS meaningless
    assert hwm0 and hwm and hwm - hwm0 < 512, "smtpd peak RSS grew from %s to %s KiB" % (hwm0, hwm)


def main():
    if not prerequisites_or_fail(res, "smtpd_proto_build"):
        res.exit()
    a = Tern(name="smtpd-a", conf={
        "smtpd_recipient_limit": "5", "smtpd_hard_error_limit": "5", "smtpd_junk_command_limit": "10",
        "message_size_limit": "100k", "smtpd_timeout": "3s", "hopcount_limit": "5",
        "header_size_limit": "4k", "smtpd_min_data_rate": "500"})
    a.conf["smtpd_listen"] = "127.0.0.1:%d, [::1]:%d" % (a.port, a.port)
    a.write_conf()
    res.on_fail.append(a.diagnostics)
    try:
        if res.run("a_start", a.start):
            res.run("ehlo_extensions", t_ehlo, a)
            res.run("smtplib_dsn_smtputf8", t_smtplib, a)
            res.run("swaks_send", t_swaks, a)
            res.run("bdat_delivered", t_bdat, a)
            for i, v in enumerate(SMUGGLE):
                res.run("smuggling_" + v, t_smuggle, a, v, "smug%d" % i)
            res.run("command_line_513_500", t_cmd_513, a)
            res.run("recipient_limit_452", t_rcpt_limit, a)
            res.run("size_at_mail_552", t_size_mail, a)
            res.run("size_in_data_552", t_size_data, a)
            res.run("text_line_1000_ok", t_text_line, a, 998, 250)
            res.run("text_line_1001_550", t_text_line, a, 999, 550)
            res.run("header_size_552", t_header_size, a)
            res.run("hopcount_554", t_hops, a)
            res.run("error_limit_421", t_error_limit, a)
            res.run("junk_limit_421", t_junk_limit, a)
            res.run("idle_timeout_421", t_idle_timeout, a)
            res.run("slowloris_data_421", t_slowloris, a)
            if socket.has_ipv6:
                res.run("ipv6_listener", t_ipv6, a)
            res.run("log_lines", t_logs, a)
            killed = a.stop()
            res.check("a_stop_clean", not killed, "left after SIGTERM: %s" % killed)
    finally:
        a.cleanup()

    b = Tern(name="smtpd-b", conf={
        "mynetworks": "192.0.2.0/24", "bare_newline": "reject", "disable_vrfy_command": "yes",
        "smtpd_greet_pause": "1s", "local_mailbox_base": "", "smtpd_peername_lookup": "no"})
    res.on_fail.append(b.diagnostics)
    try:
        if res.run("b_start", b.start):
            for name, (addr, want) in TRICKS.items():
                res.run("relay_trick_" + name, t_trick, b, addr, want)
            res.run("unknown_user_550", t_unknown_user, b)
            for v in ("lf_dot_lf", "cr_dot_cr", "crlf_dot_cr"):
                res.run("bare_reject_" + v, t_bare_reject, b, v)
            res.run("vrfy_disabled_502", t_vrfy, b)
            res.run("early_talker_554", t_early_talker, b)
            res.run("reject_log_line", t_reject_log, b)
            res.run("header_1mb_and_100k_lines_memory_bounded", t_header_memory, b)
            killed = b.stop()
            res.check("b_stop_clean", not killed, "left after SIGTERM: %s" % killed)
    finally:
        b.cleanup()
    res.exit()


if __name__ == "__main__":
    main()
