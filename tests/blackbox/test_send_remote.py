#!/usr/bin/env python3
"""Black-box tests of remote delivery (send) with a real DNS server.

dnsmasq (Debian's dnsmasq-base: the binary only, no system service) runs
on a loopback port as tern's `resolver` and serves MX/A/AAAA/CNAME/null-MX/
NXDOMAIN/SERVFAIL cases.  A scriptable recording SMTP sink (below; one per
behaviour, each on its own loopback port) answers tern's send.  The
transport map routes each test domain to "smtp:DOMAIN:SINKPORT": MX lookup
for DOMAIN through dnsmasq, then a connection to SINKPORT.

Checked: MX delivery with dot-stuffing and CRLF-only bytes; per-recipient
2xx/4xx/5xx with the Postfix-shaped log line (relay=, delays=, dsn=);
null MX → 5.1.10; NXDOMAIN → 5.1.2; SERVFAIL → 4.4.3 deferred; a
nameserver that never answers (dnsmasq forwarding to a UDP socket nobody
reads) → 4.4.3 deferred, and one that answers the MX query (40 MX hosts)
and then never the hosts' addresses → 4.4.3 deferred after the first few
MX hosts, not 40 lookups of 12 s; CNAME followed, for the domain and for an MX
host; an MX host written as an IP address ("127.0.0.1") used as that
address with a warning, as Postfix does; a truncated UDP answer (40 MX
records) retried over TCP; an MX host name with shell metacharacters
skipped as hostile data (never looked up or logged), the next MX used;
500 MX records, the only one with an address
and the best preference listed last: delivered through it; an MX on tern's own smtpd address and port →
5.4.6 "loops back to myself" (an MX named by address, "localhost" with
127.0.0.1 and ::1, or tern's own myhostname), while the same address on
the sink's port is not a loop; 8-bit mail to a peer
without 8BITMIME arrives quoted-printable; SIZE limit → 5.3.4; a peer that
drops the connection mid-DATA → deferred; a peer that stalls past
smtp_data_done_timeout → deferred; several messages to one destination
over one connection (the queue manager's connection reuse, when present);
debug_peer_list traces the conversation.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import Results, Tern, free_port, log, wait_for  # noqa: E402

DNSMASQ = "/usr/sbin/dnsmasq"


class Sink:
    """A recording SMTP peer on 127.0.0.1 with a behaviour:
    ext: EHLO keywords offered; rcpt: {address: reply}; drop_in_data: close
    after the first DATA line; stall: seconds to wait before the reply to
    "."; every received byte kept in .raw, one entry per connection."""

    def __init__(self, ext=("PIPELINING", "8BITMIME"), rcpt=None, drop_in_data=False, stall=0):
        self.ext, self.rcpt = list(ext), dict(rcpt or {})
        self.drop_in_data, self.stall = drop_in_data, stall
        self.raw, self.messages, self.connections = [], [], 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.raw.append(b"")
                idx = len(self.raw) - 1
            threading.Thread(target=self.serve, args=(c, idx), daemon=True).start()

    def serve(self, c, idx):
        c.settimeout(30)
        f = c.makefile("rb")

        def out(s):
            c.sendall((s + "\r\n").encode())

        def line():
            l = f.readline(65536)
            if not l:
                raise EOFError
            with self.lock:
                self.raw[idx] += l
            return l
        try:
            out("220 sink ESMTP")
            rcpts = []
            for _ in range(1000):
                l = line().decode("latin-1").rstrip("\r\n")
                v = l[:4].upper()
                if v == "EHLO":
                    for k in ["sink"] + self.ext[:-1]:
                        out("250-" + k)
                    out("250 " + (self.ext[-1] if self.ext else "sink"))
                elif v == "MAIL" or v == "RSET":
                    rcpts = []
                    out("250 2.1.0 Ok")
                elif v == "RCPT":
                    a = re.match(r"(?i)RCPT TO:<([^>]*)>", l).group(1)
                    r = self.rcpt.get(a, "250 2.1.5 Ok")
                    if r.startswith("2"):
                        rcpts.append(a)
                    out(r)
                elif v == "DATA":
                    if not rcpts:
                        out("554 5.5.1 no recipients")
                        continue
                    out("354 go")
                    data = b""
                    for _ in range(10 ** 6):
                        d = line()
                        if self.drop_in_data:
                            c.close()
                            return
                        if d == b".\r\n":
                            break
                        data += d
                    with self.lock:
                        self.messages.append((rcpts, data))
                    if self.stall:
                        time.sleep(self.stall)
                    out("250 2.0.0 Ok: queued as S%d" % len(self.messages))
                elif v == "QUIT":
                    out("221 bye")
                    return
                else:
                    out("502 5.5.2 no")
        except (EOFError, OSError, AttributeError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(2)


def start_dnsmasq(port, args, workdir):
    pidfile = os.path.join(workdir, "dnsmasq.pid")
    argv = [DNSMASQ, "--port=%d" % port, "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
            "--no-hosts", "--conf-file=/dev/null", "--keep-in-foreground", "--pid-file=" + pidfile,
            "--log-facility=" + os.path.join(workdir, "dnsmasq.log"), "--user=" + ("nobody" if os.getuid() == 0 else "")]
    if os.getuid() != 0:
        argv = [a for a in argv if not a.startswith("--user=")]
    p = subprocess.Popen(argv + args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(workdir, "dnsmasq.err"), "wb"))
    # ready when it answers on UDP: a bounded wait for the port to be bound
    def bound():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True
        finally:
            s.close()
    if not wait_for(bound, 5):
        p.kill()
        p.wait(5)
        raise RuntimeError("dnsmasq did not start: %s" % open(os.path.join(workdir, "dnsmasq.err")).read())
    return p


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    res = Results()
    if not os.path.exists(DNSMASQ):
        res.fail("dnsmasq", "%s missing (apt-get install dnsmasq-base; scripts/deps.sh)" % DNSMASQ)
        res.exit()
    sinks = {
        "mx.test": Sink(rcpt={"busy@mx.test": "451 4.3.0 busy, try later",
                              "bad@mx.test": "550 5.1.1 no such user"}),
        "cn.test": Sink(),
        "big.test": Sink(),
        "seven.test": Sink(ext=["PIPELINING"]),
        "small.test": Sink(ext=["PIPELINING", "SIZE 100"]),
        "drop.test": Sink(drop_in_data=True),
        "stall.test": Sink(stall=6),
        "reuse.test": Sink(rcpt={"refused@reuse.test": "550 5.1.1 no such user"}),
        "both.test": Sink(),
        "numeric.test": Sink(),
        "mxcn.test": Sink(),
        "m500.test": Sink(),
        "shell.test": Sink(),
    }
    dns_port = free_udp_port()
    dead = free_udp_port()
    # bound and never read: dnsmasq forwards silent.test here and never answers
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    work = os.path.realpath(__import__("tempfile").mkdtemp(prefix="tern-bb-dns-"))
    os.chmod(work, 0o755)
    dargs = []
    for dom in ("mx.test", "seven.test", "small.test", "drop.test", "stall.test", "reuse.test", "loop.test"):
        dargs += ["--mx-host=%s,mx1.%s,10" % (dom, dom), "--host-record=mx1.%s,127.0.0.1" % dom]
    dargs += ["--cname=cn.test,real.test", "--mx-host=real.test,mx.real.test,5",
              "--host-record=mx.real.test,127.0.0.1"]
    for i in range(40):  # too big for 512 bytes of UDP: truncated, then TCP
        dargs += ["--mx-host=big.test,mx%02d.with-a-long-label-to-fill-the-answer.big.test,%d" % (i, 10 + i),
                  "--host-record=mx%02d.with-a-long-label-to-fill-the-answer.big.test,127.0.0.1" % i]
    # 500 MX hosts without addresses (NXDOMAIN) and the best one, which
    # dnsmasq (answering in the reverse order of its options) puts last
    dargs += ["--mx-host=m500.test,best.m500.test,1", "--host-record=best.m500.test,127.0.0.1", "--local=/m500.test/"]
    dargs += ["--mx-host=m500.test,h%03d.m500.test,%d" % (i, 100 + i) for i in range(500)]
    hostile = b"".join(bytes([len(l)]) + l for l in (b"$(reboot);x|y", b"shell", b"test", b""))
    dargs += ["--dns-rr=shell.test,15,0005" + hostile.hex(),  # MX 5 "$(reboot);x|y.shell.test"
              "--mx-host=shell.test,mx1.shell.test,10", "--host-record=mx1.shell.test,127.0.0.1"]
    dargs += ["--dns-rr=nullmx.test,15,000000",     # MX 0 "." (RFC 7505)
              "--local=/nx.test/",                   # NXDOMAIN
              "--server=/servfail.test/127.0.0.1#%d" % dead,  # upstream dead: SERVFAIL
              "--local=/both.test/", "--host-record=both.test,127.0.0.1,::1",  # no MX: A and AAAA
              "--server=/silent.test/127.0.0.1#%d" % silent.getsockname()[1],
              "--mx-host=numeric.test,127.0.0.1,10",
              ] + ["--mx-host=slowmx.test,mx%02d.silent.test,%d" % (i, 10 + i) for i in range(40)] + [ "--mx-host=numloop.test,127.0.0.1,10",
              "--mx-host=mxcn.test,alias.mxcn.test,10", "--cname=alias.mxcn.test,target.mxcn.test",
              "--host-record=target.mxcn.test,127.0.0.1",
              "--mx-host=lh.test,localhost,10", "--host-record=localhost,127.0.0.1,::1",
              "--mx-host=me.test,tern.test,10", "--host-record=tern.test,127.0.0.1"]  # myhostname
    dns = start_dnsmasq(dns_port, dargs, work)
    transport = {d: "smtp:%s:%d" % (d, s.port) for d, s in sinks.items()}
    transport.update({"nullmx.test": "smtp:nullmx.test:25", "nx.test": "smtp:nx.test:25",
                      "servfail.test": "smtp:servfail.test:25", "silent.test": "smtp:silent.test:25",
                      "slowmx.test": "smtp:slowmx.test:25"})
    t = None
    try:
        t = Tern(transport=transport, conf={"resolver": "127.0.0.1:%d" % dns_port,
                                            "smtp_data_done_timeout": "2s",
                                            "smtp_address_preference": "ipv4",
                                            "debug_peer_list": "cn.test",
                                            # one delivery at a time per destination: the
                                            # reuse.test messages queue up behind each other
                                            "default_destination_concurrency_limit": "1"}, name="send")
        # these go to tern's own smtpd port: "loops back to myself"
        t.conf["transport_maps"] = t.make_transport(dict(transport, **{
            d: "smtp:%s:%d" % (d, t.port) for d in ("loop.test", "numloop.test", "lh.test", "me.test")}))
        t.write_conf()
        t.start()
        send_all(t, res, sinks, silent)
    except Exception as e:  # report, then clean up
        res.fail("setup", repr(e))
        if t:
            log(t.log_tail())
    finally:
        if t:
            t.stop()
            t.cleanup()
        dns.send_signal(signal.SIGTERM)
        try:
            dns.wait(5)
        except subprocess.TimeoutExpired:
            dns.kill()
            dns.wait(5)
        for s in sinks.values():
            s.stop()
        silent.close()
        shutil.rmtree(work, ignore_errors=True)
    res.exit()


def submit(t, rcpts, body, sender="s@localhost", eightbit=False):
    with smtplib.SMTP("127.0.0.1", t.port, timeout=10) as c:
        c.ehlo("client.test")
        opts = ["BODY=8BITMIME"] if eightbit else []
        c.sendmail(sender, rcpts, body, mail_options=opts)


def log_has(t, pattern, timeout=15.0):
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(t.log_text()) is not None, timeout)


def send_all(t, res, sinks, silent):
    mx = sinks["mx.test"]
    submit(t, ["ok@mx.test", "busy@mx.test", "bad@mx.test"],
           b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nlast\r\n")
    submit(t, ["u@cn.test"], b"Subject: cname\r\n\r\nx\r\n")
    submit(t, ["u@big.test"], b"Subject: big\r\n\r\nx\r\n")
    submit(t, ["u@nullmx.test"], b"Subject: n\r\n\r\nx\r\n")
    submit(t, ["u@nx.test"], b"Subject: n\r\n\r\nx\r\n")
    submit(t, ["u@servfail.test"], b"Subject: n\r\n\r\nx\r\n")
    submit(t, ["u@loop.test"], b"Subject: loop\r\n\r\nx\r\n")
    for dom in ("shell.test", "m500.test", "silent.test", "slowmx.test", "numeric.test", "numloop.test", "mxcn.test", "lh.test", "me.test"):
        submit(t, ["u@" + dom], b"Subject: " + dom.encode() + b"\r\n\r\nx\r\n")
    submit(t, ["u@seven.test"], "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\u00e9 cr\u00e8me\r\n".encode(), eightbit=True)
    submit(t, ["u@small.test"], b"Subject: big\r\n\r\n" + b"y" * 300 + b"\r\n")
    submit(t, ["u@drop.test"], b"Subject: drop\r\n\r\nx\r\n")
    submit(t, ["u@stall.test"], b"Subject: stall\r\n\r\nx\r\n")
    submit(t, ["u@both.test"], b"Subject: both\r\n\r\nx\r\n")
    for i in range(3):
        submit(t, ["r%d@reuse.test" % i], b"Subject: reuse %d\r\n\r\nx\r\n" % i)
    submit(t, ["refused@reuse.test"], b"Subject: refused\r\n\r\nx\r\n")
    for i in range(3, 5):
        submit(t, ["r%d@reuse.test" % i], b"Subject: reuse %d\r\n\r\nx\r\n" % i)

    ok = mx.messages and wait_for(lambda: mx.messages, 1) or wait_for(lambda: mx.messages, 15)
    res.check("mx_delivered", ok, "nothing arrived at the MX sink")
    if ok:
        rcpts, data = mx.messages[0]
        res.check("mx_rcpt_results", rcpts == ["ok@mx.test"], repr(rcpts))
        res.check("dot_stuffing", b"\r\n..leading dot\r\n...two\r\nlast\r\n" in data, repr(data[-80:]))
        wire = b"".join(mx.raw)
        res.check("crlf_only", b"\n" not in wire.replace(b"\r\n", b"") and b"\r" not in wire.replace(b"\r\n", b""),
                  "bare CR or LF on the wire")
    sink_port = mx.port
    res.check("log_sent", log_has(t, r"to=<ok@mx\.test>, relay=mx1\.mx\.test\[127\.0\.0\.1\]:%d, delay=[0-9.]+, "
                                     r"delays=[0-9.]+/0/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok"
                                  % sink_port), "no Postfix-shaped sent line")
    res.check("rcpt_4xx_deferred", log_has(t, r"to=<busy@mx\.test>, .*dsn=4\.3\.0, status=deferred \(.*451 4\.3\.0 busy"),
              "busy@ not deferred with the remote text")
    res.check("rcpt_5xx_bounced", log_has(t, r"to=<bad@mx\.test>, .*dsn=5\.1\.1, status=bounced \(.*550 5\.1\.1 no such user"),
              "bad@ not bounced with the remote text")
    res.check("cname_followed", wait_for(lambda: sinks["cn.test"].messages, 15), "cn.test not delivered")
    res.check("debug_peer_list", log_has(t, r"> mx\.real\.test\[127\.0\.0\.1\]: MAIL FROM:<s@localhost>", 5)
              and log_has(t, r"< mx\.real\.test\[127\.0\.0\.1\]: 250", 5), "no conversation trace for cn.test")
    res.check("truncated_udp_tcp_retry", wait_for(lambda: sinks["big.test"].messages, 15),
              "big.test (40 MX records) not delivered")
    res.check("null_mx", log_has(t, r"to=<u@nullmx\.test>, relay=none, .*dsn=5\.1\.10, status=bounced"), "no 5.1.10")
    res.check("nxdomain", log_has(t, r"to=<u@nx\.test>, relay=none, .*dsn=5\.1\.2, status=bounced"), "no 5.1.2")
    res.check("servfail", log_has(t, r"to=<u@servfail\.test>, relay=none, .*dsn=4\.4\.3, status=deferred"), "no 4.4.3")
    res.check("loops_back_to_myself",
              log_has(t, r"to=<u@loop\.test>, relay=none, .*dsn=5\.4\.6, status=bounced \(mail for loop\.test loops back to myself\)"),
              "no 5.4.6 loop bounce")
    res.check("dns_timeout_deferred",
              log_has(t, r"to=<u@silent\.test>, relay=none, .*dsn=4\.4\.3, status=deferred \(Host or domain name not "
                         r"found\. Name service error for name=silent\.test type=MX: Host not found, try again\)", 30),
              "no 4.4.3 deferral after the DNS timeout")
    # 40 MX hosts whose addresses never come: 12 s each (AAAA and A, two
    # tries of 3 s), so only a bounded lookup budget ends the attempt in time
    res.check("dns_mx_hosts_timeout_deferred",
              log_has(t, r"to=<u@slowmx\.test>, relay=none, .*dsn=4\.4\.3, status=deferred \(no usable address for "
                         r"the MX hosts of slowmx\.test \(.*try again\)\)", 60),
              "no 4.4.3 deferral for slowmx.test within 60 s")
    silent.setblocking(False)
    names = set()
    for _ in range(1000):
        try:
            q = silent.recv(4096)
        except BlockingIOError:
            break
        labels, k = [], 12
        while k < len(q) and q[k] and len(labels) < 10:
            labels.append(q[k + 1:k + 1 + q[k]].decode("latin-1"))
            k += 1 + q[k]
        names.add(".".join(labels).lower())
    res.check("dns_timeout_reached_server", "silent.test" in names, "dnsmasq never forwarded silent.test: %r" % names)
    mxq = sorted(n for n in names if n.endswith(".silent.test"))
    res.check("dns_mx_hosts_bounded", mxq and mxq[0] == "mx00.silent.test" and len(mxq) <= 3,
              "MX hosts looked up: %r" % mxq)
    shell = sinks["shell.test"]
    res.check("mx_hostile_name_skipped", wait_for(lambda: shell.messages, 15)
              and log_has(t, r"to=<u@shell\.test>, relay=mx1\.shell\.test\[127\.0\.0\.1\]:%d, .*status=sent" % shell.port, 5)
              and "warning: ignoring MX record with a malformed host name" in t.log_text()
              and "reboot" not in t.log_text(), "shell.test: hostile MX not skipped, or the good MX not used")
    m500 = sinks["m500.test"]
    res.check("mx_500_records", wait_for(lambda: m500.messages, 20)
              and log_has(t, r"to=<u@m500\.test>, relay=best\.m500\.test\[127\.0\.0\.1\]:%d, .*status=sent" % m500.port, 5),
              "m500.test not delivered through its best MX")
    numeric = sinks["numeric.test"]
    res.check("numeric_mx_used", wait_for(lambda: numeric.messages, 15)
              and log_has(t, r"to=<u@numeric\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent" % numeric.port, 5),
              "numeric.test not delivered to its MX 127.0.0.1")
    res.check("numeric_mx_warning",
              log_has(t, r"warning: numeric domain name in MX record for numeric\.test: 127\.0\.0\.1", 5),
              "no warning about the numeric MX")
    mxcn = sinks["mxcn.test"]
    res.check("mx_cname_followed", wait_for(lambda: mxcn.messages, 15)
              and log_has(t, r"to=<u@mxcn\.test>, relay=alias\.mxcn\.test\[127\.0\.0\.1\]:%d, .*status=sent" % mxcn.port, 5),
              "mxcn.test not delivered through its MX alias")
    for name, dom in (("numeric_mx_loop", "numloop"), ("mx_localhost_loop", "lh"), ("mx_own_name_loop", "me")):
        res.check(name, log_has(t, r"to=<u@%s\.test>, relay=none, .*dsn=5\.4\.6, status=bounced \(mail for %s\.test "
                                   r"loops back to myself\)" % (dom, dom)), "no 5.4.6 loop bounce for %s.test" % dom)
    seven = sinks["seven.test"]
    if wait_for(lambda: seven.messages, 15):
        data = seven.messages[0][1]
        res.check("qp_conversion", b"Content-Transfer-Encoding: quoted-printable\r\n" in data
                  and b"caf=C3=A9 cr=C3=A8me\r\n" in data and all(b < 0x80 for b in data)
                  and b"BODY=8BITMIME" not in b"".join(seven.raw), repr(data))
    else:
        res.fail("qp_conversion", "seven.test not delivered")
    res.check("size_limit", log_has(t, r"to=<u@small\.test>, .*dsn=5\.3\.4, status=bounced \(message size \d+ exceeds size limit 100"),
              "no 5.3.4")
    res.check("size_not_sent", not sinks["small.test"].messages, "sent despite SIZE")
    res.check("drop_mid_data", log_has(t, r"to=<u@drop\.test>, .*dsn=4\.4\.2, status=deferred \(lost connection"),
              "no deferral after the dropped connection")
    res.check("stall_timeout", log_has(t, r"to=<u@stall\.test>, .*dsn=4\.4\.2, status=deferred \(conversation timed out", 20),
              "no timeout deferral")
    res.check("implicit_mx_a_aaaa", wait_for(lambda: sinks["both.test"].messages, 15), "both.test not delivered")
    reuse = sinks["reuse.test"]
    got = wait_for(lambda: len(reuse.messages) >= 5, 20)
    res.check("reuse_all_delivered", got, "%d of 5" % len(reuse.messages))
    if got:
        # The queue manager keeps idle agent connections for a moment and
        # send keeps its SMTP session: one or two connections for 6 messages.
        res.check("reuse_one_connection", reuse.connections < 4, "%d connections for 6 messages" % reuse.connections)
        # A completed transaction needs no RSET; one left open (its only
        # recipient refused) gets RSET before the next MAIL on that connection.
        after_dot, open_rset = [], []
        for raw in reuse.raw:
            lines = raw.split(b"\r\n")
            for k, l in enumerate(lines):
                if l == b"." and k + 1 < len(lines) and lines[k + 1]:
                    after_dot.append(lines[k + 1][:4].upper())
                if l.upper().startswith(b"RCPT TO:<REFUSED@"):
                    later = [x[:4].upper() for x in lines[k + 1:] if x[:4].upper() in (b"MAIL", b"RSET", b"QUIT")]
                    if later and later[0] != b"QUIT":
                        open_rset.append(later[0])
        res.check("reuse_no_rset_after_data", after_dot and b"RSET" not in after_dot,
                  "commands after '.': %r" % after_dot)
        res.check("reuse_rset_after_open_transaction", all(x == b"RSET" for x in open_rset),
                  "after the refused transaction: %r" % open_rset)


if __name__ == "__main__":
    main()
