#!/usr/bin/env python3
"""The master's control surface: the service table in tern.conf, SIGHUP
reload without cutting sessions, the one-master lock, a full pool making
new connections wait, a killed child not disturbing other sessions,
per-service users, and chroot for send.
"""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tern_harness as h  # noqa: E402


def banner(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    f = s.makefile("rb")
    line = f.readline().decode(errors="replace")
    return s, f, line


def smtp_cmd(s, f, text):
    s.sendall(text.encode() + b"\r\n")
    last = b""
    for _ in range(50):
        last = f.readline()
        if len(last) < 4 or last[3:4] != b"-":
            break
    return last.decode(errors="replace")


def send_message(s, f, rcpt="alice@localhost", subject="x"):
    """A whole transaction on an open session; returns the final reply."""
    assert smtp_cmd(s, f, "EHLO client.test").startswith("250"), "EHLO"
    assert smtp_cmd(s, f, "MAIL FROM:<s@client.test>").startswith("250"), "MAIL"
    assert smtp_cmd(s, f, "RCPT TO:<%s>" % rcpt).startswith("250"), "RCPT"
    assert smtp_cmd(s, f, "DATA").startswith("354"), "DATA"
    return smtp_cmd(s, f, "Subject: %s\r\n\r\nbody\r\n." % subject)


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def smtpd_pids(t):
    return [p for p, n in t.processes().items() if n == "smtpd"]


def test_reload(res):
    t = h.Tern(name="reload", conf={"smtpd_banner": "$myhostname ESMTP first-banner"})
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        s1, f1, b1 = banner(t.port)
        res.check("reload_old_banner", "first-banner" in b1, b1)
        old_smtpd = set(smtpd_pids(t))
        t.conf["smtpd_banner"] = "$myhostname ESMTP second-banner"
        t.write_conf()
        os.kill(t.master_pid(), signal.SIGHUP)
        # New sessions see the new setting (bounded wait for the new generation).
        seen = ""
        for _ in range(50):
            s2, f2, seen = banner(t.port)
            s2.close()
            if "second-banner" in seen:
                break
            time.sleep(0.1)
        res.check("reload_new_banner", "second-banner" in seen, seen)
        # The session opened before the reload completes its message.
        reply = send_message(s1, f1, subject="across-reload")
        res.check("reload_open_session_completes", reply.startswith("250"), reply)
        smtp_cmd(s1, f1, "QUIT")
        s1.close()
        res.check("reload_message_delivered", t.wait_mail("alice", 1, 10), "no mail after reload")
        # The old generation goes away once idle.
        ok = h.wait_for(lambda: not (old_smtpd & set(smtpd_pids(t))), 10)
        res.check("reload_old_children_retired", ok, "old smtpd still running: %s" % (old_smtpd & set(smtpd_pids(t))))
        res.check("reload_logged", "reloaded" in t.log_text(), "no reload line in the log")
        # A broken file is refused and the running setup stays.
        with open(t.conf_path, "a") as fh:
            fh.write("no_such_key = 1\n")
        os.kill(t.master_pid(), signal.SIGHUP)
        h.wait_for(lambda: "reload failed" in t.log_text(), 5)
        res.check("reload_bad_config_refused", "reload failed" in t.log_text() and "no_such_key" in t.log_text(),
                  "no 'reload failed' line")
        s3, f3, b3 = banner(t.port)
        res.check("reload_bad_config_keeps_serving", b3.startswith("220"), b3)
        s3.close()
        t.write_conf()
        killed = t.stop()
        res.check("reload_stop_clean", not killed, "had to kill %s" % killed)
    finally:
        t.cleanup()


def test_lock(res):
    t = h.Tern(name="lock")
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        r = subprocess.run([h.MASTER, "-f", "-c", t.conf_path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        out = r.stdout.decode(errors="replace")
        res.check("lock_second_master_refused", r.returncode != 0 and "another tern-master" in out,
                  "exit %d: %s" % (r.returncode, out[-300:]))
        res.check("lock_first_master_unharmed", t.proc.poll() is None, "first master died")
    finally:
        t.cleanup()


def test_busy_pool(res):
    # Two smtpd processes at most: a third client waits in the listen queue.
    t = h.Tern(name="busy")
    t.conf["service"] = [
        "smtp inet 127.0.0.1:%d smtpd process_limit=2 min_idle=1" % t.port,
        "qmgr dgram private/qmgr qmgr",
        "local unix private/local local user=root",
        "send unix private/send send",
    ]
    t.write_conf()
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        a = banner(t.port)
        b = banner(t.port)
        c = socket.create_connection(("127.0.0.1", t.port), timeout=10)
        c.settimeout(1.0)
        try:
            early = c.recv(100)
        except socket.timeout:
            early = b""
        res.check("busy_third_client_waits", early == b"", "got %r while both processes were busy" % early)
        res.check("busy_warning_logged", h.wait_for(lambda: "all 2 processes busy" in t.log_text(), 5),
                  "no 'all 2 processes busy' warning")
        res.check("busy_pool_capped", len(smtpd_pids(t)) == 2, "smtpd count %d" % len(smtpd_pids(t)))
        smtp_cmd(a[0], a[1], "QUIT")
        a[0].close()
        c.settimeout(10.0)
        got = c.recv(100)
        res.check("busy_third_client_served", got.startswith(b"220"), "got %r" % got)
        b[0].close()
        c.close()
    finally:
        t.cleanup()


def test_kill_one_session(res):
    t = h.Tern(name="kill1")
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        before = set(smtpd_pids(t))
        s1, f1, _ = banner(t.port)
        s2, f2, _ = banner(t.port)
        smtp_cmd(s1, f1, "EHLO one.test")
        smtp_cmd(s2, f2, "EHLO two.test")
        # Find which smtpd serves s1: the one whose fd table holds its socket.
        ino = os.fstat(s1.fileno()).st_ino
        port1 = s1.getsockname()[1]
        victim = None
        for pid in smtpd_pids(t):
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                    if link.startswith("socket:"):
                        inode = int(link[8:-1])
                        if inode in peer_inodes(port1):
                            victim = pid
            except OSError:
                pass
        res.check("kill1_found_session_process", victim is not None, "no smtpd holds the session (ino %d)" % ino)
        if victim:
            os.kill(victim, signal.SIGKILL)
        reply = send_message(s2, f2, subject="survivor")
        res.check("kill1_other_session_completes", reply.startswith("250"), reply)
        s2.close()
        s1.close()
        res.check("kill1_replaced", h.wait_for(lambda: len(smtpd_pids(t)) >= 2 and victim not in smtpd_pids(t), 10),
                  "pool not restored: %s (before %s)" % (smtpd_pids(t), before))
        res.check("kill1_delivered", t.wait_mail("alice", 1, 10), "no mail")
    finally:
        t.cleanup()


def peer_inodes(client_port):
    """Inodes of server-side sockets whose peer is our client port."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as fh:
                next(fh)
                for line in fh:
                    f = line.split()
                    rem_port = int(f[2].split(":")[1], 16)
                    if rem_port == client_port:
                        out.add(int(f[9]))
        except OSError:
            pass
    return out


def test_service_users_and_chroot(res):
    if os.getuid() != 0:
        res.skip("service_user", "needs root")
        return
    owner = h.mail_owner()
    sink = h.SmtpSink()
    sink.start()
    t = h.Tern(name="svc", transport={"remote.test": "smtp:[127.0.0.1]:%d" % sink.port})
    t.conf["service"] = [
        "smtp inet 127.0.0.1:%d smtpd min_idle=2 user=%s" % (t.port, owner),
        "qmgr dgram private/qmgr qmgr",
        "local unix private/local local user=root",
        "send unix private/send send chroot=yes",
    ]
    t.write_conf()
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        h.wait_for(lambda: {"smtpd", "qmgr", "local", "send"} <= set(t.processes().values()), 10)
        import pwd
        want = pwd.getpwnam(owner).pw_uid
        # A child just forked is root until its drop (slow under a
        # sanitizer), and the pool may fork one at any moment: judge one
        # listing in which every smtpd has dropped, not a second listing
        # taken after the wait.
        seen = {}

        def settled():
            procs_now = t.processes()
            try:
                uids_now = {p: proc_uid(p) for p, n in procs_now.items() if n == "smtpd"}
            except OSError:  # one exited meanwhile: look again
                return False
            seen.clear()
            seen.update(procs=procs_now, smtpd=uids_now)
            return bool(uids_now) and all(u == want for u in uids_now.values())

        h.wait_for(settled, 10)
        procs = seen["procs"]
        smtpd_uids = set(seen["smtpd"].values())
        uids = {n: proc_uid(p) for p, n in procs.items() if n != "smtpd"}
        uids["smtpd"] = smtpd_uids.pop() if len(smtpd_uids) == 1 else sorted(smtpd_uids)
        res.check("service_user_smtpd", uids.get("smtpd") == want, "smtpd uid %s, want %d" % (uids.get("smtpd"), want))
        res.check("service_user_local_root", uids.get("local") == 0, "local uid %s" % uids.get("local"))
        send_pid = [p for p, n in procs.items() if n == "send"]
        root = os.readlink("/proc/%d/root" % send_pid[0]) if send_pid else ""
        res.check("service_send_chrooted", root == t.queue, "send root is %r, want %r" % (root, t.queue))
        s, f, _ = banner(t.port)
        reply = send_message(s, f, rcpt="bob@remote.test", subject="via-chroot")
        s.close()
        res.check("service_chroot_send_accepts", reply.startswith("250"), reply)
        res.check("service_chroot_send_delivers", sink.wait(1, 15), "the sink got nothing")
    finally:
        t.cleanup()
        sink.stop()


def test_bad_service_line(res):
    t = h.Tern(name="badsvc")
    t.conf["service"] = ["smtp inet 127.0.0.1:%d smtpd process_limit=zero" % t.port]
    t.write_conf()
    try:
        r = subprocess.run([h.MASTER, "-f", "-c", t.conf_path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20)
        out = r.stdout.decode(errors="replace")
        lines = open(t.conf_path).read().splitlines()
        lineno = next(i + 1 for i, l in enumerate(lines) if l.startswith("service"))
        res.check("bad_service_line_named", r.returncode != 0 and ("%s:%d:" % (t.conf_path, lineno)) in out
                  and "process_limit=zero" in out, "exit %d: %s" % (r.returncode, out[-300:]))
    finally:
        t.cleanup()


def test_reload_drains_deliveries(res):
    """A reload while a delivery is in flight: the old queue manager waits
    for the result and records it, so the message is not sent twice."""
    sink = h.SmtpSink()
    sink.data_delay = 3
    sink.start()
    t = h.Tern(name="drain", transport={"remote.test": "smtp:[127.0.0.1]:%d" % sink.port})
    res.on_fail.append(t.diagnostics)
    try:
        t.start()
        s, f, _ = banner(t.port)
        reply = send_message(s, f, rcpt="bob@remote.test", subject="in-flight")
        s.close()
        res.check("drain_accepted", reply.startswith("250"), reply)
        # The sink has the message but stalls its reply: the delivery is in flight.
        res.check("drain_in_flight", sink.wait(1, 10), "the sink got nothing")
        os.kill(t.master_pid(), signal.SIGHUP)
        gone = h.wait_for(lambda: not any(t.queue_files().get(d) for d in ("incoming", "active", "deferred")), 20)
        time.sleep(3)  # a duplicate would come from the new queue manager's recovery
        res.check("drain_delivered_once", len(sink.messages) == 1 and gone,
                  "sink has %d copies, queue %s" % (len(sink.messages), t.queue_files()))
    finally:
        t.cleanup()
        sink.stop()


def ternctl(t, *args):
    r = subprocess.run([h.TERNCTL, "-c", t.conf_path] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return r.returncode, r.stdout.decode(errors="replace")


def test_ternctl_control(res):
    t = h.Tern(name="ctl", conf={"smtpd_banner": "$myhostname ESMTP ctl-one"})
    try:
        rc, out = ternctl(t, "status")
        res.check("ternctl_status_stopped", rc == 3 and "not running" in out, "%d %s" % (rc, out))
        rc, out = ternctl(t, "start")
        res.check("ternctl_start", rc == 0 and "started" in out, "%d %s" % (rc, out))
        res.check("ternctl_start_serves", h.wait_port(t.port, 10), "port %d not accepting" % t.port)
        rc, out = ternctl(t, "start")
        res.check("ternctl_start_twice_refused", rc != 0 and "already running" in out, "%d %s" % (rc, out))
        rc, out = ternctl(t, "status")
        res.check("ternctl_status_running", rc == 0 and "running (pid" in out, "%d %s" % (rc, out))
        t.conf["smtpd_banner"] = "$myhostname ESMTP ctl-two"
        t.write_conf()
        rc, out = ternctl(t, "reload")
        seen = ""
        for _ in range(50):
            s, f, seen = banner(t.port)
            s.close()
            if "ctl-two" in seen:
                break
            time.sleep(0.1)
        res.check("ternctl_reload", rc == 0 and "ctl-two" in seen, "%d %s / %s" % (rc, out, seen))
        rc, out = ternctl(t, "stop")
        res.check("ternctl_stop", rc == 0 and "stopped" in out, "%d %s" % (rc, out))
        res.check("ternctl_stop_no_process_left", h.wait_for(lambda: not t.processes(), 10),
                  "left: %s" % t.processes())
        rc, out = ternctl(t, "check")
        res.check("ternctl_check_good_tree", rc == 0, "%d %s" % (rc, out))
        bad = os.path.join(t.queue, "active")
        os.chmod(bad, 0o755)
        rc, out = ternctl(t, "check")
        res.check("ternctl_check_bad_mode", rc == 1 and bad in out and "0700" in out, "%d %s" % (rc, out))
        os.chmod(bad, 0o700)
        md = os.path.join(t.queue, "maildrop")
        os.chmod(md, 0o1733)
        rc, out = ternctl(t, "check")
        res.check("ternctl_check_bad_maildrop", rc == 1 and md in out and "1730" in out, "%d %s" % (rc, out))
        os.chmod(md, 0o1730)
        if os.getuid() == 0:
            os.chown(bad, 0, 0)
            rc, out = ternctl(t, "check")
            res.check("ternctl_check_bad_owner", rc == 1 and bad in out and "owner" in out, "%d %s" % (rc, out))
    finally:
        for p in t.processes():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        t.cleanup()


def main():
    res = h.Results()
    if not h.prerequisites_or_fail(res, "master_control"):
        res.exit()
    for fn in (test_reload, test_lock, test_busy_pool, test_kill_one_session,
               test_service_users_and_chroot, test_bad_service_line, test_ternctl_control,
               test_reload_drains_deliveries):
        try:
            fn(res)
        except Exception as e:  # one broken scenario must not hide the others
            res.fail(fn.__name__, "%s: %s" % (type(e).__name__, e))
    res.exit()


if __name__ == "__main__":
    main()
