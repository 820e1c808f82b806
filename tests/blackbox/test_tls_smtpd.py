#!/usr/bin/env python3
"""test_tls_smtpd — smtpd's TLS and AUTH (issue 9, server side).

One instance: smtpd_listen (port-25 style, STARTTLS offered, AUTH enabled,
the client NOT in mynetworks), submission_listen (AUTH required before MAIL)
and smtps_listen (implicit TLS), a self-signed certificate made by the test,
passwords written by `ternctl passwd`, smtpd_sender_login_maps.

  ehlo_plain_offers_starttls_not_auth   EHLO in plaintext: STARTTLS, no AUTH (smtpd_tls_auth_only)
  starttls_injection_cve_2011_0411      "STARTTLS\\r\\nRSET\\r\\n" in one packet: the RSET is never
                                        answered inside TLS; the discard is logged
  starttls_resets_session_rfc3207_4_2   after TLS, MAIL without a new EHLO is 503
  starttls_twice_554                    STARTTLS inside TLS: 554 5.5.1
  starttls_in_transaction_503           STARTTLS after MAIL: 503
  s_client_starttls_tls13               openssl s_client -starttls smtp: TLSv1.3, our certificate
  s_client_tls11_refused                TLS 1.1 handshake refused (TLS 1.2 minimum)
  relay_denied_without_auth             RCPT to a remote domain inside TLS without AUTH: 554 5.7.1
  auth_plain_relay_esmtpsa              smtplib STARTTLS + AUTH PLAIN; relay allowed; Received:
                                        "with ESMTPSA", "(using TLSv1.3 with cipher ...)"; log
                                        "client=..., sasl_method=PLAIN, sasl_username=alice"
  auth_before_ehlo_503 / auth_twice_503 / auth_in_transaction_503
  auth_bad_password_535_delayed         535 5.7.8 after smtpd_auth_failure_delay (1 s)
  auth_cancel_501                       "*" at the 334: 501; then another mechanism still works
                                        (CVE-2011-1720: no state survives a cancel)
  auth_bad_base64_501                   lengths 4n+1..4n+3 and bad alphabet: 501 5.5.2
  auth_authzid_differs_535              authzid != authcid: 535
  auth_login_mechanism                  AUTH LOGIN with 334 Username:/Password:
  auth_lockout_421                      the 3rd failure: 535, then 421 4.7.0 and close
  submission_mail_without_auth_530      587: MAIL before AUTH: 530 5.7.0
  submission_auth_plaintext_538         587 without TLS: AUTH → 538 5.7.11, not offered in EHLO
  smtps_implicit_tls_465                SMTP_SSL: greeting inside TLS, AUTH, mail queued
  swaks_tls_auth_587                    swaks --tls --auth PLAIN on 587
  swaks_tlsc_auth_login_465             swaks --tlsc --auth LOGIN on 465
  sender_login_mismatch_553             alice may not use bob@example.org as MAIL FROM
  no_password_in_log                    the passwords appear nowhere in the log
  session_resumed_ticket                a second connection resumes the session (shared ticket keys)
  cert_reload_on_sighup                 a new certificate is served after SIGHUP
"""

import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (RawSmtp, Results, Tern, free_port, make_cert, make_passwords,  # noqa: E402
                          prerequisites_or_fail, wait_for, wait_port)

res = Results()
if not prerequisites_or_fail(res, "tls_smtpd_build"):
    res.exit()

PW = {"alice": "Wonder-land 1", "bob": "b0b-secret"}


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def b64(b):
    return base64.b64encode(b).decode()


def plain(user, pw, authz=""):
    return b64(("%s\0%s\0%s" % (authz, user, pw)).encode())


def tls_session(port, ehlo=True):
    """RawSmtp inside STARTTLS with EHLO done."""
    c = RawSmtp(port)
    code, lines = c.reply()
    assert code == 220, lines
    code, lines = c.cmd("EHLO client.test")
    assert code == 250, lines
    code, lines = c.cmd("STARTTLS")
    assert code == 220, lines
    c.starttls(ctx())
    if ehlo:
        code, lines = c.cmd("EHLO client.test")
        assert code == 250, lines
    return c


setup_dir = __import__("tempfile").mkdtemp(prefix="tern-bb-tlsauth-")
os.chmod(setup_dir, 0o755)
cert, key = make_cert(setup_dir, "tern.test")
table = make_passwords(setup_dir, PW)
logins = os.path.join(setup_dir, "sender_logins")
with open(logins, "w") as f:
    f.write("alice@example.org alice\nbob@example.org bob\n@shared.example alice, bob\n")
subprocess.run([os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             os.environ.get("B", "build"), "sbin", "ternctl") if not os.path.isabs(os.environ.get("B", "build"))
                else os.path.join(os.environ["B"], "sbin", "ternctl"), "makemap", logins], check=True, timeout=30)
conf = {
    "mynetworks": "192.0.2.0/24",
    "smtpd_tls_cert_file": cert,
    "smtpd_tls_key_file": key,
    "smtpd_sasl_auth_enable": "yes",
    "smtpd_sasl_password_maps": table,
    "smtpd_sender_login_maps": logins,
    "smtpd_auth_failure_delay": "1s",
    "smtpd_auth_failure_limit": "3",
    "relayhost": "[127.0.0.1]:9",
    "smtpd_min_idle": "2",
}

with Tern(conf=conf, name="tls") as t:
    res.on_fail.append(t.diagnostics)
    ports = set([t.port])
    while len(ports) < 3:
        ports.add(free_port())
    sub_port, smtps_port = sorted(ports - set([t.port]))
    t.conf["submission_listen"] = "127.0.0.1:%d" % sub_port
    t.conf["smtps_listen"] = "127.0.0.1:%d" % smtps_port
    t.write_conf()
    t.start()
    assert wait_port(sub_port, 10) and wait_port(smtps_port, 10)

    def ehlo_plain():
        c = RawSmtp(t.port)
        c.reply()
        code, lines = c.cmd("EHLO client.test")
        text = "\n".join(lines)
        c.cmd("QUIT")
        c.close()
        assert "STARTTLS" in text, text
        assert "AUTH" not in text, text
    res.run("ehlo_plain_offers_starttls_not_auth", ehlo_plain)

    def injection():
        c = RawSmtp(t.port)
        c.reply()
        c.cmd("EHLO client.test")
        c.send(b"STARTTLS\r\nRSET\r\n")
        code, lines = c.reply()
        assert code == 220, lines
        c.starttls(ctx())
        c.sock.settimeout(1.5)
        try:
            early = c.sock.recv(4096)
        except (socket.timeout, ssl.SSLError):
            early = b""
        assert early == b"", "answered inside TLS before any command: %r" % early
        c.sock.settimeout(10)
        code, lines = c.cmd("EHLO client.test")
        assert code == 250 and lines[0].startswith("250-"), lines
        code, lines = c.cmd("RSET")
        assert code == 250, lines
        c.cmd("QUIT")
        c.close()
        assert wait_for(lambda: "improper command pipelining after STARTTLS" in t.log_text(), 5), \
            "discard not logged"
    res.run("starttls_injection_cve_2011_0411", injection)

    def reset():
        c = tls_session(t.port, ehlo=False)
        code, lines = c.cmd("MAIL FROM:<a@client.test>")
        assert code == 503, lines
        c.close()
    res.run("starttls_resets_session_rfc3207_4_2", reset)

    def twice():
        c = tls_session(t.port)
        code, lines = c.cmd("STARTTLS")
        assert code == 554 and "5.5.1" in lines[0], lines
        c.close()
    res.run("starttls_twice_554", twice)

    def in_txn():
        c = RawSmtp(t.port)
        c.reply()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@client.test>")
        code, lines = c.cmd("STARTTLS")
        assert code == 503, lines
        c.close()
    res.run("starttls_in_transaction_503", in_txn)

    def s_client(extra):
        return subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", "127.0.0.1:%d" % t.port,
                               "-servername", "tern.test"] + extra,
                              input=b"QUIT\r\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)

    def s_client_ok():
        r = s_client([])
        out = r.stdout.decode(errors="replace")
        assert "TLSv1.3" in out and "CN = tern.test" in out, out[-2000:]
    res.run("s_client_starttls_tls13", s_client_ok)

    def s_client_old():
        r = s_client(["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
        out = r.stdout.decode(errors="replace")
        assert r.returncode != 0 or "Cipher is (NONE)" in out, out[-2000:]
    res.run("s_client_tls11_refused", s_client_old)

    def relay_denied():
        c = tls_session(t.port)
        c.cmd("MAIL FROM:<x@client.test>")
        code, lines = c.cmd("RCPT TO:<someone@remote.example>")
        assert code == 554 and "5.7.1" in lines[0], lines
        c.close()
    res.run("relay_denied_without_auth", relay_denied)

    def auth_relay():
        before = len(t.queue_files())
        with smtplib.SMTP("127.0.0.1", t.port, timeout=20) as s:
            s.starttls(context=ctx())
            s.ehlo("client.test")
            assert "PLAIN" in s.esmtp_features.get("auth", ""), s.esmtp_features
            s.login("alice", PW["alice"])
            s.sendmail("alice@example.org", ["someone@remote.example", "u@localhost"],
                       b"Subject: t\r\n\r\nhello\r\n")
        assert wait_for(lambda: "sasl_method=PLAIN, sasl_username=alice" in t.log_text(), 5), "no sasl log line"
        m = re.search(r"([0-9A-F]{20}): client=\S+, sasl_method=PLAIN, sasl_username=alice", t.log_text())
        assert m, "client= line"
        assert t.wait_mail("u", 1, 15), "local copy not delivered"
        raw = open(t.mail_files("u")[-1], "rb").read()
        assert b"with ESMTPSA id" in raw, raw[:600]
        assert re.search(rb"\(using TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)\)", raw), raw[:600]
    res.run("auth_plain_relay_esmtpsa", auth_relay)

    def auth_states():
        c = tls_session(t.port, ehlo=False)
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", PW["alice"]))
        assert code == 503, "before EHLO: %s" % lines
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<alice@example.org>")
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", PW["alice"]))
        assert code == 503, "in transaction: %s" % lines
        c.cmd("RSET")
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", PW["alice"]))
        assert code == 235, lines
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", PW["alice"]))
        assert code == 503, "twice: %s" % lines
        c.close()
    res.run("auth_before_ehlo_twice_in_transaction_503", auth_states)

    def bad_password():
        c = tls_session(t.port)
        t0 = time.monotonic()
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", "wrong"))
        dt = time.monotonic() - t0
        assert code == 535 and "5.7.8" in lines[0], lines
        assert dt >= 0.9, "no delay (%.2fs)" % dt
        code, lines = c.cmd("AUTH PLAIN " + plain("nosuchuser", "x"))
        assert code == 535, lines
        c.close()
    res.run("auth_bad_password_535_delayed", bad_password)

    def cancel():
        c = tls_session(t.port)
        code, lines = c.cmd("AUTH PLAIN")
        assert code == 334, lines
        code, lines = c.cmd("*")
        assert code == 501, lines
        code, lines = c.cmd("AUTH LOGIN")
        assert code == 334 and lines[0] == "334 VXNlcm5hbWU6", lines
        code, lines = c.cmd(b64(b"bob"))
        assert code == 334 and lines[0] == "334 UGFzc3dvcmQ6", lines
        code, lines = c.cmd(b64(PW["bob"].encode()))
        assert code == 235, lines
        c.close()
    res.run("auth_cancel_501_then_login", cancel)

    def bad_b64():
        c = tls_session(t.port)
        for junk in ("QUJDR", "QUJDRE", "QUJDREV", "QU!D", "QQ=A", "Zm9=v"):
            code, lines = c.cmd("AUTH PLAIN " + junk)
            assert code == 501 and "5.5.2" in lines[0], (junk, lines)
        code, lines = c.cmd("AUTH PLAIN")
        code, lines = c.cmd("%%%%")
        assert code == 501 and "5.5.2" in lines[0], lines
        code, lines = c.cmd("NOOP")
        assert code == 250, lines
        c.close()
    res.run("auth_bad_base64_501", bad_b64)

    def authzid():
        c = tls_session(t.port)
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", PW["alice"], authz="bob"))
        assert code == 535, lines
        c.close()
    res.run("auth_authzid_differs_535", authzid)

    def lockout():
        c = tls_session(t.port)
        for i in range(2):
            code, lines = c.cmd("AUTH PLAIN " + plain("bob", "nope%d" % i))
            assert code == 535, lines
        c.send("AUTH PLAIN " + plain("bob", "nope3") + "\r\n")
        code, lines = c.reply()
        assert code == 535, lines
        code, lines = c.reply()
        assert code == 421 and "4.7.0" in lines[0], lines
        assert c.closed(5), "not closed after the lockout"
        c.close()
    res.run("auth_lockout_421", lockout)

    def sub_noauth():
        c = tls_session(sub_port)
        code, lines = c.cmd("MAIL FROM:<alice@example.org>")
        assert code == 530 and "5.7.0" in lines[0], lines
        c.close()
    res.run("submission_mail_without_auth_530", sub_noauth)

    def sub_plain():
        c = RawSmtp(sub_port)
        c.reply()
        code, lines = c.cmd("EHLO client.test")
        assert "AUTH" not in "\n".join(lines), lines
        code, lines = c.cmd("AUTH PLAIN " + plain("alice", PW["alice"]))
        assert code == 538 and "5.7.11" in lines[0], lines
        c.close()
    res.run("submission_auth_plaintext_538", sub_plain)

    def smtps():
        with smtplib.SMTP_SSL("127.0.0.1", smtps_port, timeout=20, context=ctx()) as s:
            s.ehlo("client.test")
            assert "starttls" not in s.esmtp_features, s.esmtp_features
            code, _ = s.mail("alice@example.org")
            assert code == 530, code
            s.rset()
            s.login("alice", PW["alice"])
            s.sendmail("alice@example.org", ["u@localhost"], b"Subject: smtps\r\n\r\nx\r\n")
    res.run("smtps_implicit_tls_465", smtps)

    def swaks(args):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--from", "alice@example.org", "--to",
                            "someone@remote.example", "--helo", "client.test", "--timeout", "20"] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return r.returncode, r.stdout.decode(errors="replace")

    def swaks_587():
        rc, out = swaks(["--port", str(sub_port), "--tls", "--auth", "PLAIN", "--auth-user", "alice",
                         "--auth-password", PW["alice"]])
        assert rc == 0 and "235 2.7.0" in out and "queued as" in out, out[-1500:]
    res.run("swaks_tls_auth_587", swaks_587)

    def swaks_465():
        rc, out = swaks(["--port", str(smtps_port), "--tlsc", "--auth", "LOGIN", "--auth-user", "bob",
                         "--auth-password", PW["bob"], "--from", "bob@example.org"])
        assert rc == 0 and "235 2.7.0" in out and "queued as" in out, out[-1500:]
    res.run("swaks_tlsc_auth_login_465", swaks_465)

    def mismatch():
        with smtplib.SMTP("127.0.0.1", sub_port, timeout=20) as s:
            s.starttls(context=ctx())
            s.ehlo("client.test")
            s.login("alice", PW["alice"])
            code, msg = s.mail("bob@example.org")
            assert code == 553, (code, msg)
            s.rset()
            code, msg = s.mail("x@shared.example")
            assert code == 250, (code, msg)
    res.run("sender_login_mismatch_553", mismatch)

    def no_secret():
        text = t.log_text()
        for pw in PW.values():
            assert pw not in text, "a password is in the log"
            assert b64(pw.encode()) not in text
        assert plain("alice", PW["alice"]) not in text
    res.run("no_password_in_log", no_secret)

    def resumption():
        c = ctx()
        c.maximum_version = ssl.TLSVersion.TLSv1_2  # tickets arrive with the handshake
        s1 = c.wrap_socket(socket.create_connection(("127.0.0.1", smtps_port), timeout=10))
        s1.recv(1024)
        sess = s1.session
        s1.sendall(b"QUIT\r\n")
        s1.recv(1024)
        s1.close()
        reused = 0
        for _ in range(4):  # several children: the ticket keys are shared
            s2 = c.wrap_socket(socket.create_connection(("127.0.0.1", smtps_port), timeout=10), session=sess)
            s2.recv(1024)
            reused += s2.session_reused
            s2.close()
        assert reused == 4, "resumed %d of 4" % reused
    res.run("session_resumed_ticket", resumption)

    def reload_cert():
        new_cert, new_key = make_cert(setup_dir, "reloaded.test", tag="new")
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        os.kill(t.master_pid(), signal.SIGHUP)

        def serves_new():
            try:
                s = ctx().wrap_socket(socket.create_connection(("127.0.0.1", smtps_port), timeout=5))
                der = s.getpeercert(binary_form=True)
                s.close()
                return b"reloaded.test" in der
            except OSError:
                return False
        assert wait_for(serves_new, 10), "old certificate still served after SIGHUP"
    res.run("cert_reload_on_sighup", reload_cert)

if not os.environ.get("TERN_TEST_KEEP"):
    shutil.rmtree(setup_dir, ignore_errors=True)
res.exit()
