#!/usr/bin/env python3
"""test_tls_send — send's STARTTLS and AUTH against TLS sinks (issue 9, client side).

Each scenario is a Python SMTP sink on its own loopback port, reached through a
transport entry smtp:[127.0.0.1]:PORT; the TLS level per destination comes from
smtp_tls_policy_maps ("[127.0.0.1]:PORT  level"); certificates are made by the test.

  opportunistic_may_untrusted   sink offers STARTTLS (self-signed): delivered inside TLS,
                                log "Untrusted TLS connection established to ...: TLSv1.3 with cipher"
  verify_self_signed_deferred   verify + self-signed: deferred, "Server certificate not verified",
                                nothing reaches the sink
  verify_wrong_name_deferred    verify + a CA-trusted certificate for another name: deferred
  verify_ok_verified            verify + trusted certificate naming 127.0.0.1: "Verified TLS ..."
  may_falls_back_to_plaintext   the TLS handshake breaks: retried without TLS, delivered in plaintext
  encrypt_not_offered_deferred  encrypt + no STARTTLS: "TLS is required, but was not offered"
  may_454_plaintext             STARTTLS offered, then refused with 454: at may the delivery goes
                                on in plaintext over the same connection
  encrypt_454_deferred          the same refusal at encrypt: deferred 4.7.5 "refused to start TLS",
                                nothing reaches the sink
  starttls_injection_discarded  "220 go\r\n250 injected\r\n" in one packet (response injection):
                                the plaintext line after the 220 is discarded with a warning, never
                                read as the reply to the EHLO inside TLS
  starttls_454_no_plaintext_auth a TLS-stripping peer: STARTTLS refused with 454 and AUTH offered
                                in plaintext; credentials exist for it, yet AUTH is never sent
                                ("not sending AUTH credentials ... without TLS")
  auth_to_smarthost             the sink wants AUTH inside TLS and checks the credentials from
                                smtp_sasl_password_maps; the password never appears in the log
  ehlo_421_inside_tls           the EHLO inside TLS gets 421: deferred with that reply, and
                                nothing (no QUIT) is sent after it: the server is closing
"""

import base64
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import (TERNCTL, Results, Tern, free_port, make_cert, prerequisites_or_fail,  # noqa: E402
                          wait_for)

res = Results()
if not prerequisites_or_fail(res, "tls_send_build"):
    res.exit()


class Sink:
    """starttls: None (not offered), "ok", "break" (220, then garbage), "454" (refused)
    or "inject" (220 and a forged reply in one write, then TLS);
    auth: (user, password) required inside TLS, or None;
    harvest: AUTH offered even without TLS and any credentials taken (a downgrading peer);
    ehlo421: the EHLO inside TLS gets a 421, and every command after it is kept in after421."""

    def __init__(self, cert=None, key=None, starttls="ok", auth=None, harvest=False, ehlo421=False):
        self.port = free_port()
        self.starttls, self.auth, self.harvest, self.ehlo421 = starttls, auth, harvest, ehlo421
        self.verbs = []
        self.msgs = []   # (tls, authed_user, data)
        self.starttls_cmds = 0
        self.after421, self.ended = [], 0
        self.ctx = None
        if cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(cert, key)
        sink = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                sink.session(self.request)

        class S(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
        self.server = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def session(self, sock):
        sock.settimeout(20)
        buf = [b""]
        tls, user = False, None

        def line():
            for _ in range(10000):
                if b"\n" in buf[0]:
                    l, buf[0] = buf[0].split(b"\n", 1)
                    return l.rstrip(b"\r").decode(errors="replace")
                c = sock.recv(4096)
                if not c:
                    raise EOFError
                buf[0] += c
            raise ValueError("line too long")

        def out(t):
            sock.sendall((t + "\r\n").encode())
        try:
            out("220 sink.test ESMTP")
            closing = False
            for _ in range(200):
                cmd = line()
                verb = cmd.split(" ")[0].upper()
                self.verbs.append(verb)
                if closing:
                    self.after421.append(cmd)
                elif verb == "EHLO" and tls and self.ehlo421:
                    out("421 4.3.2 sink closing")
                    closing = True
                elif verb == "EHLO":
                    ext = ["250-sink.test", "250-PIPELINING"]
                    if self.starttls and not tls:
                        ext.append("250-STARTTLS")
                    if (self.auth and tls) or self.harvest:
                        ext.append("250-AUTH PLAIN LOGIN")
                    out("\r\n".join(ext + ["250 8BITMIME"]))
                elif verb == "STARTTLS" and self.starttls == "454" and not tls:
                    self.starttls_cmds += 1
                    out("454 4.7.0 TLS not available due to local problem")
                elif verb == "STARTTLS" and self.starttls and not tls:
                    if self.starttls == "inject":
                        # one write: whatever the client read after the 220
                        # arrived in plaintext, before the handshake
                        sock.sendall(b"220 2.0.0 go ahead\r\n250 injected\r\n")
                    else:
                        out("220 2.0.0 go ahead")
                    if self.starttls == "break":
                        sock.sendall(b"this is not a TLS record\r\n" * 4)
                        return
                    sock = self.ctx.wrap_socket(sock, server_side=True)
                    buf[0], tls = b"", True
                elif verb == "AUTH" and self.harvest:
                    out("235 2.7.0 thank you")
                elif verb == "AUTH":
                    parts = cmd.split(" ")
                    if parts[1].upper() == "PLAIN":
                        dec = base64.b64decode(parts[2]).split(b"\0")
                        u, p = dec[1].decode(), dec[2].decode()
                    else:
                        out("334 VXNlcm5hbWU6")
                        u = base64.b64decode(line()).decode()
                        out("334 UGFzc3dvcmQ6")
                        p = base64.b64decode(line()).decode()
                    if tls and self.auth == (u, p):
                        user = u
                        out("235 2.7.0 ok")
                    else:
                        out("535 5.7.8 bad credentials")
                elif verb == "MAIL":
                    out("530 5.7.0 auth first" if self.auth and not user else "250 2.1.0 ok")
                elif verb == "RCPT":
                    out("250 2.1.5 ok")
                elif verb == "DATA":
                    out("354 go")
                    data = []
                    for _ in range(100000):
                        l = line()
                        if l == ".":
                            break
                        data.append(l)
                    self.msgs.append((tls, user, "\n".join(data)))
                    out("250 2.0.0 queued")
                elif verb == "RSET" or verb == "NOOP":
                    out("250 2.0.0 ok")
                elif verb == "QUIT":
                    out("221 2.0.0 bye")
                    return
                else:
                    out("502 5.5.2 what")
        except (EOFError, OSError, ValueError, ssl.SSLError):
            return
        finally:
            self.ended += 1


work = tempfile.mkdtemp(prefix="tern-bb-tlssend-")
os.chmod(work, 0o755)
self_cert, self_key = make_cert(work, "sink.test", tag="selfsigned")
other_cert, other_key = make_cert(work, "other.test", tag="other")
good_cert, good_key = make_cert(work, "sink.test", tag="good", san="DNS:sink.test,IP:127.0.0.1")
cafile = os.path.join(work, "ca.pem")
with open(cafile, "w") as f:
    f.write(open(other_cert).read() + open(good_cert).read())

sinks = {
    "may.test": (Sink(self_cert, self_key), "may"),
    "vself.test": (Sink(self_cert, self_key), "verify"),
    "vname.test": (Sink(other_cert, other_key), "verify"),
    "vok.test": (Sink(good_cert, good_key), "verify"),
    "fallback.test": (Sink(self_cert, self_key, starttls="break"), "may"),
    "enc.test": (Sink(starttls=None), "encrypt"),
    "auth.test": (Sink(self_cert, self_key, auth=("relayuser", "s3cret pass")), "encrypt"),
    "tls421.test": (Sink(self_cert, self_key, ehlo421=True), "may"),
    "refuse-may.test": (Sink(self_cert, self_key, starttls="454"), "may"),
    "refuse-enc.test": (Sink(self_cert, self_key, starttls="454"), "encrypt"),
    "inject.test": (Sink(self_cert, self_key, starttls="inject"), "encrypt"),
    "strip.test": (Sink(self_cert, self_key, starttls="454", harvest=True), "may"),
}
policy = os.path.join(work, "tls_policy")
with open(policy, "w") as f:
    for dom, (sk, level) in sinks.items():
        f.write("[127.0.0.1]:%d %s\n" % (sk.port, level))
saslpw = os.path.join(work, "sasl_passwd")
with open(saslpw, "w") as f:
    f.write("[127.0.0.1]:%d relayuser:s3cret pass\n" % sinks["auth.test"][0].port)
    f.write("[127.0.0.1]:%d stripuser:str1pped pass\n" % sinks["strip.test"][0].port)
for table in (policy, saslpw):
    subprocess.run([TERNCTL, "makemap", table], check=True, timeout=30)
os.chmod(saslpw + ".cdb", 0o644)  # test instance: mail_owner must read it

conf = {"smtp_tls_policy_maps": policy, "smtp_tls_CAfile": cafile, "smtp_sasl_password_maps": saslpw}
transport = {dom: "smtp:[127.0.0.1]:%d" % sk.port for dom, (sk, _) in sinks.items()}

with Tern(transport=transport, conf=conf, name="tlssend") as t:
    res.on_fail.append(t.diagnostics)
    t.start()
    import smtplib
    with smtplib.SMTP("127.0.0.1", t.port, timeout=20) as s:
        for dom in sinks:
            s.sendmail("sender@localhost", ["rcpt@%s" % dom], b"Subject: %s\r\n\r\nbody\r\n" % dom.encode())

    def delivered(dom, tls, user=None):
        sk = sinks[dom][0]
        assert wait_for(lambda: len(sk.msgs) >= 1, 15), "nothing delivered to %s" % dom
        got_tls, got_user, data = sk.msgs[0]
        assert got_tls == tls, "tls=%s, expected %s" % (got_tls, tls)
        assert got_user == user, "auth user %r" % got_user
        assert ("Subject: %s" % dom) in data

    def deferred(dom, reason):
        sk = sinks[dom][0]
        pat = "to=<rcpt@%s>" % dom
        assert wait_for(lambda: any(pat in l and "status=deferred" in l and reason in l
                                    for l in t.log_text().splitlines()), 15), \
            "no deferral with %r" % reason
        assert not sk.msgs, "the message reached the sink"

    def may():
        delivered("may.test", True)
        port = sinks["may.test"][0].port
        assert wait_for(lambda: ("Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:%d: TLSv1.3 with cipher"
                                 % port) in t.log_text(), 5), "log line"
    res.run("opportunistic_may_untrusted", may)
    res.run("verify_self_signed_deferred", deferred, "vself.test", "Server certificate not verified")
    res.run("verify_wrong_name_deferred", deferred, "vname.test", "mismatch")

    def vok():
        delivered("vok.test", True)
        assert "Verified TLS connection established to 127.0.0.1[127.0.0.1]:%d" % sinks["vok.test"][0].port \
            in t.log_text()
    res.run("verify_ok_verified", vok)

    def fallback():
        delivered("fallback.test", False)
        assert "without TLS" in t.log_text()
    res.run("may_falls_back_to_plaintext", fallback)
    res.run("encrypt_not_offered_deferred", deferred, "enc.test", "TLS is required, but was not offered")

    def auth():
        delivered("auth.test", True, "relayuser")
        text = t.log_text()
        assert "s3cret" not in text and base64.b64encode(b"\0relayuser\0s3cret pass").decode() not in text
    res.run("auth_to_smarthost", auth)

    def ehlo421():
        sk = sinks["tls421.test"][0]
        deferred("tls421.test", "said: 421 4.3.2 sink closing (in reply to EHLO command)")
        assert wait_for(lambda: sk.ended >= 1, 15), "the connection was not closed"
        assert sk.after421 == [], "sent after the 421: %r" % sk.after421
    res.run("ehlo_421_inside_tls", ehlo421)

    def refused_may():
        delivered("refuse-may.test", False)
        assert sinks["refuse-may.test"][0].starttls_cmds == 1, "STARTTLS was not tried once"
        pat = "to=<rcpt@refuse-may.test>"
        assert wait_for(lambda: any(pat in l and "status=sent" in l for l in t.log_text().splitlines()), 5), \
            "no sent line"
    res.run("may_454_plaintext", refused_may)
    res.run("encrypt_454_deferred", deferred, "refuse-enc.test",
            "dsn=4.7.5, status=deferred (TLS is required, but host 127.0.0.1[127.0.0.1] refused to start TLS)")

    def injection():
        delivered("inject.test", True)
        pat = "to=<rcpt@inject.test>"
        assert wait_for(lambda: any(pat in l and "dsn=2.0.0, status=sent (250 2.0.0 queued)" in l
                                    for l in t.log_text().splitlines()), 5), "no sent line with the real reply"
        port = sinks["inject.test"][0].port
        text = t.log_text()
        assert ("127.0.0.1[127.0.0.1]:%d: 14 bytes of plaintext after the STARTTLS reply discarded" % port) \
            in text, "no warning"
        assert "injected" not in text, "the forged reply reached the log"
    res.run("starttls_injection_discarded", injection)

    def stripped():
        sk = sinks["strip.test"][0]
        assert wait_for(lambda: "to=<rcpt@strip.test>" in t.log_text(), 15), "no result for strip.test"
        assert "STARTTLS" in sk.verbs and "AUTH" not in sk.verbs, "commands: %r" % sk.verbs
        delivered("strip.test", False)
        text = t.log_text()
        assert ("127.0.0.1[127.0.0.1]:%d: not sending AUTH credentials for [127.0.0.1]:%d without TLS"
                % (sk.port, sk.port)) in text, "no warning"
        assert "str1pped" not in text
    res.run("starttls_454_no_plaintext_auth", stripped)

for sk, _ in sinks.values():
    sk.stop()
if not os.environ.get("TERN_TEST_KEEP"):
    import shutil
    shutil.rmtree(work, ignore_errors=True)
res.exit()
