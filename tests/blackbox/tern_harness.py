"""tern_harness — start a real tern instance on loopback for black-box tests.

Python 3 standard library only.  A test script does:

    from tern_harness import Tern, SmtpSink, Results

    res = Results()
    with Tern(transport={"remote.test": "smtp:[127.0.0.1]:%d" % port}) as t:
        t.start()
        ...
        res.check("name", condition, "reason when false")
    res.exit()

Tern makes a temporary directory holding tern.conf, the queue (queue/), the
local mailboxes (mail/USER/Maildir/) and the master's log (master.log, stderr
of `tern-master -f`), starts the master, waits until smtpd accepts, and on
stop() sends SIGTERM, waits (bounded), SIGKILLs what is left, and records the
processes of the instance that survived.  Every wait in this module is
bounded.  Network use: 127.0.0.1 only.

Environment:
    B                      the build directory (default <repo>/build)
    TERN_TEST_MAIL_OWNER   mail_owner for the instance (default: the current user;
                           as root, "tern" if it exists, else "nobody")
    TERN_TEST_KEEP         keep the temporary directories (for debugging)
    TERN_TEST_SLOW         factor applied to the harness's waits (wait_for, start,
                           stop, RawSmtp's socket timeout); `make valgrind` sets 10
    TERN_VALGRIND          a directory: every instance whose daemon_directory is
                           the build's runs each daemon under valgrind memcheck
                           through wrapper scripts, logs in DIR/vg.PID.log
                           (tests/valgrind/report.sh reads them; `make valgrind`)
"""

import email
import email.policy
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("B", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(REPO, BUILD)
MASTER = os.path.join(BUILD, "sbin", "tern-master")
TERNCTL = os.path.join(BUILD, "sbin", "ternctl")
DAEMON_DIR = os.path.join(BUILD, "libexec", "tern")
AGENTS = ("smtpd", "qmgr", "local", "send", "pickup")
SLOW = max(1.0, float(os.environ.get("TERN_TEST_SLOW") or 1))
VALGRIND_DIR = os.environ.get("TERN_VALGRIND", "")


def log(msg):
    """Diagnostics go to stderr; tests/run.sh shows them when a test fails."""
    sys.stderr.write("# %s\n" % msg)
    sys.stderr.flush()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_is_free(port):
    """True if a listener could bind 127.0.0.1:port now (SO_REUSEADDR, as
    the master's listeners: connections in TIME_WAIT do not count)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_for(pred, timeout, interval=0.1):
    """Poll pred() until it returns a true value or timeout seconds pass.
    Returns the last value of pred().  timeout is scaled by TERN_TEST_SLOW."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def wait_port(port, timeout=10.0):
    """True once 127.0.0.1:port accepts a connection (within timeout)."""
    def ok():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    return wait_for(ok, timeout, 0.1)


# ----------------------------------------------------------------------------
# Processes, from /proc (procps' ps reads the same data).

def proc_table():
    """[(pid, ppid, pgid, argv)] of every process we can see."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..." — comm may contain spaces and ')'
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) < 3 or rest[0] == "Z":
            continue
        out.append((int(d), int(rest[1]), int(rest[2]), argv))
    return out


def prog_name(argv):
    """'tern-master', 'smtpd', ... from a process's argv (None if unknown)."""
    if not argv:
        return None
    base = os.path.basename(argv[0].split()[0]) if argv[0] else ""
    if base.startswith(("valgrind", "memcheck-")):
        # A daemon under valgrind (make valgrind): the program follows the options.
        prog = [i for i, a in enumerate(argv) if i > 0 and not a.startswith("-")]
        return prog_name(argv[prog[0]:]) if prog else None
    if base in AGENTS or base == "tern-master":
        return base
    # A daemon that rewrote its title ("tern/smtpd: idle", "smtpd: ...").
    m = re.match(r"^(?:\S*/)?(tern-master|smtpd|qmgr|local|send|pickup)\b", argv[0])
    return m.group(1) if m else None


def mail_owner():
    """mail_owner for a test instance.  The master refuses root as mail_owner:
    as root use $TERN_TEST_MAIL_OWNER, else "tern" when that user exists, else
    "nobody".  As a normal user every process runs as us anyway."""
    env = os.environ.get("TERN_TEST_MAIL_OWNER")
    if env:
        return env
    if os.getuid() != 0:
        return pwd.getpwuid(os.getuid()).pw_name
    for name in ("tern", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    raise RuntimeError("running as root and neither a tern nor a nobody user exists; "
                       "set TERN_TEST_MAIL_OWNER")


# ----------------------------------------------------------------------------
# Results reporting: the "PASS name" / "FAIL name: reason" protocol of tests/run.sh.

class Results:
    def __init__(self):
        self.failed = 0
        self.passed = 0
        self.on_fail = []  # callables returning extra text (daemon logs)
        self.shown = []

    def ok(self, name):
        self.passed += 1
        print("PASS %s" % name, flush=True)

    def fail(self, name, reason):
        self.failed += 1
        reason = " ".join(str(reason).split())
        print("FAIL %s: %s" % (name, reason), flush=True)
        for f in self.on_fail:
            # Each instance's log once (the first failure shows the most context
            # up to it; later ones would repeat it).
            if f in self.shown:
                continue
            self.shown.append(f)
            try:
                text = f()
            except Exception as e:  # diagnostics must not hide the failure
                text = "(could not collect diagnostics: %s)" % e
            if text:
                sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()

    def skip(self, name, reason):
        print("SKIP %s: %s" % (name, reason), flush=True)

    def check(self, name, cond, reason="condition false"):
        if cond:
            self.ok(name)
        else:
            self.fail(name, reason)
        return bool(cond)

    def run(self, name, fn, *args, **kw):
        """Run fn; an AssertionError or any exception is a FAIL with its text."""
        try:
            fn(*args, **kw)
        except AssertionError as e:
            self.fail(name, str(e) or "assertion failed")
            return False
        except Exception as e:
            self.fail(name, "%s: %s" % (type(e).__name__, e))
            sys.stderr.write(traceback.format_exc())
            return False
        self.ok(name)
        return True

    def exit(self):
        sys.exit(1 if self.failed or not self.passed else 0)


def prerequisites_or_fail(res, name):
    """FAIL (once) when the build is missing; returns False then."""
    missing = [p for p in [MASTER] + [os.path.join(DAEMON_DIR, a) for a in AGENTS]
               if not os.access(p, os.X_OK)]
    if missing:
        res.fail(name, "not built: %s (run make all)" % ", ".join(missing))
        return False
    return True


# ----------------------------------------------------------------------------
# valgrind (make valgrind)

VALGRIND_ARGS = ["--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
                 "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
                 "--track-origins=yes", "--track-fds=no", "--child-silent-after-fork=no",
                 "--trace-children=no", "--num-callers=30", "--vgdb=no"]


def valgrind_wrappers(base):
    """A daemon_directory in base whose programs exec the real ones under
    memcheck, each process logging to $TERN_VALGRIND/vg.PID.log (the
    directory is mode 1777: the daemons drop to mail_owner, and a forked
    child opens its own log).  Returns its path."""
    d = os.path.join(base, "vg-libexec")
    os.makedirs(d, exist_ok=True)
    os.makedirs(VALGRIND_DIR, exist_ok=True)
    os.chmod(VALGRIND_DIR, 0o1777)
    supp = os.path.join(REPO, "tests", "valgrind", "tern.supp")
    args = VALGRIND_ARGS + (["--suppressions=" + supp] if os.path.exists(supp) else [])
    args.append("--log-file=" + os.path.join(os.path.abspath(VALGRIND_DIR), "vg.%p.log"))
    for name in os.listdir(DAEMON_DIR):
        real = os.path.join(DAEMON_DIR, name)
        if os.path.isdir(real) or not os.access(real, os.X_OK):
            continue
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n# valgrind wrapper written by tests/blackbox/tern_harness.py\n"
                    "exec valgrind %s '%s' \"$@\"\n" % (" ".join("'%s'" % a for a in args), real))
        os.chmod(path, 0o755)
    return d


# ----------------------------------------------------------------------------
# A tern instance.

class Tern:
    """One tern instance in its own temporary directory.

    transport: {domain: nexthop} compiled into transport_maps with ternctl makemap.
    conf:      extra tern.conf keys (override the defaults below).
    wrapper:   argv prefix for the master (e.g. ["strace", "-f", ...]).
    dev:       start in development mode (-D DIR) instead of with -c.
    """

    def __init__(self, transport=None, conf=None, wrapper=None, dev=False, name="tern"):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="tern-bb-%s-" % name))
        os.chmod(self.dir, 0o755)
        # Development mode listens on 2525 unless that is taken (a `make run`
        # elsewhere): then it is moved with -o smtpd_listen.
        self.port = 2525 if dev and port_is_free(2525) else free_port()
        self.queue = os.path.join(self.dir, "queue")
        self.mailbase = os.path.join(self.dir, "mail")
        self.conf_path = os.path.join(self.dir, "tern.conf")
        self.log_path = os.path.join(self.dir, "master.log")
        self.wrapper = list(wrapper or [])
        self.dev = dev
        self.proc = None
        self.logf = None
        self.starts = 0
        self.leftovers = []
        if dev:
            # -D writes DIR/tern.conf itself: queue DIR/queue, mail DIR/mail.
            self.conf = {}
            return
        owner = mail_owner()
        os.makedirs(self.mailbase, exist_ok=True)
        if os.getuid() == 0:
            # Virtual mailboxes are written as mail_owner (never as root).
            pw = pwd.getpwnam(owner)
            os.chown(self.mailbase, pw.pw_uid, pw.pw_gid)
        self.conf = {
            "queue_directory": self.queue,
            "daemon_directory": DAEMON_DIR,
            "smtpd_listen": "127.0.0.1:%d" % self.port,
            "local_mailbox_base": self.mailbase,
            "mydestination": "localhost",
            "myhostname": "tern.test",
            "mail_owner": owner,
            "queue_run_delay": "1s",
            "minimal_backoff": "1s",
            "maximal_backoff": "2s",
        }
        if transport:
            self.conf["transport_maps"] = self.make_transport(transport)
        self.conf.update(conf or {})
        if VALGRIND_DIR and self.conf["daemon_directory"] == DAEMON_DIR:
            self.conf["daemon_directory"] = valgrind_wrappers(self.dir)
        self.write_conf()

    # -- configuration
    def write_conf(self):
        with open(self.conf_path, "w") as f:
            f.write("# written by tests/blackbox/tern_harness.py\n")
            for k, v in self.conf.items():
                # a list value is a repeatable key (service = ...), one line each
                for item in (v if isinstance(v, list) else [v]):
                    f.write("%s = %s\n" % (k, item))

    def make_transport(self, table):
        src = os.path.join(self.dir, "transport")
        with open(src, "w") as f:
            for dom, nexthop in table.items():
                f.write("%s\t%s\n" % (dom, nexthop))
        r = subprocess.run([TERNCTL, "makemap", src], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("ternctl makemap %s failed (%d): %s"
                               % (src, r.returncode, r.stdout.decode(errors="replace")))
        cdb = src + ".cdb"
        if not os.path.exists(cdb):
            raise RuntimeError("ternctl makemap did not create %s" % cdb)
        return cdb

    # -- lifecycle
    def argv(self):
        if self.dev:
            argv = [MASTER, "-D", self.dir, "-o", "daemon_directory=%s" % DAEMON_DIR]
            if self.port != 2525:
                argv += ["-o", "smtpd_listen=127.0.0.1:%d" % self.port]
            return argv
        return [MASTER, "-f", "-c", self.conf_path]

    def start(self, timeout=15.0):
        """Start the master; True once smtpd accepts on self.port."""
        timeout *= SLOW
        self.starts += 1
        self.logf = open(self.log_path, "ab")
        self.logf.write(("=== start %d: %s\n" % (self.starts, " ".join(self.wrapper + self.argv()))).encode())
        self.logf.flush()
        self.proc = subprocess.Popen(self.wrapper + self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf, cwd=self.dir,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("tern-master exited with status %s at start; log:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            if wait_port(self.port, 0.2):
                return True
            time.sleep(0.1)
        raise RuntimeError("smtpd did not accept on 127.0.0.1:%d within %.0fs; log:\n%s"
                           % (self.port, timeout, self.log_tail()))

    def master_pid(self):
        """The tern-master's pid (differs from proc.pid under a wrapper)."""
        if not self.proc:
            return None
        if not self.wrapper:
            return self.proc.pid
        for pid, _ppid, _pgid, argv in proc_table():
            if prog_name(argv) == "tern-master" and any(self.dir in a for a in argv):
                return pid
        return None

    def processes(self):
        """{pid: name} of the live processes of this instance: the master's
        session (process group) plus anything whose arguments name our
        directory (a daemon that left the group)."""
        out = {}
        pg = self.proc.pid if self.proc else None
        me = os.getpid()
        for pid, _ppid, pgid, argv in proc_table():
            if pid == me:
                continue
            if (pg is not None and pgid == pg) or any(self.dir in a for a in argv):
                out[pid] = prog_name(argv) or " ".join(argv)[:60]
        return out

    def stop(self, timeout=10.0):
        """SIGTERM the master, wait (bounded) for every process of the instance
        to exit, SIGKILL the rest.  Returns the list of processes that had
        to be killed (empty when the shutdown was clean)."""
        if not self.proc:
            return []
        timeout *= SLOW
        mpid = self.master_pid()
        if mpid:
            try:
                os.kill(mpid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        wait_for(lambda: not self.processes(), max(2.0, timeout / 2))
        left = self.processes()
        killed = []
        if left:
            killed = sorted("%s[%d]" % (n, p) for p, n in left.items())
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            wait_for(lambda: not self.processes(), 5.0)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self.logf:
            self.logf.write(b"=== stopped\n")
            self.logf.close()
            self.logf = None
        self.leftovers = killed
        return killed

    def kill9(self):
        """SIGKILL the whole instance at once (a crash)."""
        if not self.proc:
            return
        for p in self.processes():
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        wait_for(lambda: not self.processes(), 5.0)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None

    def cleanup(self):
        if self.proc:
            self.stop()
        if os.environ.get("TERN_TEST_KEEP"):
            log("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # -- observation
    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        text = self.log_text().splitlines()
        return "\n".join("    %s" % l for l in text[-lines:]) or "    (empty)"

    def diagnostics(self):
        return "--- %s (last lines)\n%s\n--- queue: %s" % (self.log_path, self.log_tail(), self.queue_files())

    def maildir(self, user):
        return os.path.join(self.mailbase, user, "Maildir")

    def mail_files(self, user):
        d = os.path.join(self.maildir(user), "new")
        try:
            return sorted(os.path.join(d, f) for f in os.listdir(d) if not f.startswith("."))
        except OSError:
            return []

    def wait_mail(self, user, count=1, timeout=10.0):
        """Wait until user's Maildir/new holds at least count files."""
        return wait_for(lambda: len(self.mail_files(user)) >= count, timeout) and True

    def queue_files(self):
        """{subdir: [names]} of the non-empty queue directories (except private/)."""
        out = {}
        try:
            subs = os.listdir(self.queue)
        except OSError:
            return out
        for sub in subs:
            p = os.path.join(self.queue, sub)
            if sub == "private" or not os.path.isdir(p):
                continue
            names = []
            for root, _dirs, files in os.walk(p):
                names += [os.path.relpath(os.path.join(root, f), p) for f in files]
            if names:
                out[sub] = sorted(names)
        return out


# ----------------------------------------------------------------------------
# SMTP client helpers.

def make_cert(directory, name="tern.test", days=2, tag=None, san=None):
    """A self-signed certificate for name (CN and subjectAltName DNS) with an
    EC P-256 key, written by `openssl req` (fixed argv, no shell) into
    directory as TAG.crt / TAG.key (TAG defaults to name).  Returns
    (cert_path, key_path); the key is mode 0600 (issue 9)."""
    tag = tag or name
    cert = os.path.join(directory, tag + ".crt")
    key = os.path.join(directory, tag + ".key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", str(days), "-subj", "/CN=" + name,
                        "-addext", "subjectAltName=" + (san or "DNS:" + name)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: %s" % r.stdout.decode(errors="replace"))
    os.chmod(key, 0o600)
    return cert, key


def make_passwords(directory, users):
    """smtpd_sasl_password_maps for {user: password}, written with
    `ternctl passwd` (password on stdin); returns the table's path."""
    conf = os.path.join(directory, "passwd.conf")
    table = os.path.join(directory, "sasl_passwd")
    with open(conf, "w") as f:
        f.write("smtpd_sasl_password_maps = %s\nmail_owner = %s\n" % (table, mail_owner()))
    for user, password in users.items():
        r = subprocess.run([TERNCTL, "-c", conf, "passwd", user], input=(password + "\n").encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("ternctl passwd %s failed: %s" % (user, r.stdout.decode(errors="replace")))
    return table


class RawSmtp:
    """A line-level SMTP client on a raw socket, for protocol tests."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by server")
            self.buf += chunk
            if len(self.buf) > 1 << 20:
                raise ValueError("reply line too long")
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r").decode(errors="replace")

    def reply(self):
        """(code, [lines]) of one possibly multi-line reply."""
        lines = []
        for _ in range(1000):
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
        return code, lines

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def starttls(self, context, server_hostname=None):
        """Wrap the socket in TLS (after a 220 to STARTTLS); whatever was
        buffered in plaintext is dropped."""
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self.buf = b""

    def closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (data ignored)."""
        self.sock.settimeout(timeout)
        try:
            for _ in range(1000):
                if not self.sock.recv(65536):
                    return True
        except (socket.timeout, OSError):
            return False
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def parse_message(path):
    with open(path, "rb") as f:
        raw = f.read()
    return raw, email.message_from_bytes(raw, policy=email.policy.compat32)


# ----------------------------------------------------------------------------
# A recording SMTP sink for remote-delivery tests.

class _SinkHandler(socketserver.StreamRequestHandler):
    timeout = 30
    MAXLINE = 1 << 16

    def out(self, s):
        self.wfile.write((s + "\r\n").encode())
        self.wfile.flush()

    def readline(self):
        l = self.rfile.readline(self.MAXLINE)
        if not l:
            raise EOFError
        return l

    def handle(self):
        sink = self.server.sink
        sink.connections += 1
        with sink.lock:
            sink.live.add(self.connection)
        try:
            self.out("220 sink.test ESMTP recording sink")
            sender, rcpts = None, []
            for _ in range(10000):
                line = self.readline().decode(errors="replace").rstrip("\r\n")
                verb = line[:4].upper()
                sink.commands.append(line)
                if verb in ("EHLO", "HELO"):
                    sender, rcpts = None, []
                    if verb == "EHLO":
                        self.out("250-sink.test")
                        self.out("250-PIPELINING")
                        self.out("250-8BITMIME")
                        self.out("250 ENHANCEDSTATUSCODES")
                    else:
                        self.out("250 sink.test")
                elif verb == "MAIL":
                    m = re.match(r"(?i)MAIL FROM:\s*<([^>]*)>", line)
                    sender = m.group(1) if m else line
                    rcpts = []
                    self.out("250 2.1.0 Ok")
                elif verb == "RCPT":
                    m = re.match(r"(?i)RCPT TO:\s*<([^>]*)>", line)
                    rcpt = m.group(1) if m else line
                    code = sink.rcpt_reply(rcpt)
                    if code.startswith("2"):
                        rcpts.append(rcpt)
                    self.out(code)
                elif verb == "DATA":
                    if sender is None or not rcpts:
                        self.out("503 5.5.1 no valid recipients")
                        continue
                    self.out("354 End data with <CR><LF>.<CR><LF>")
                    wire = b""
                    for _ in range(10 ** 7):
                        l = self.readline()
                        if l == b".\r\n":
                            break
                        wire += l
                    sink.store(sender, list(rcpts), wire, _unstuff(wire))
                    if sink.data_delay:
                        time.sleep(sink.data_delay)  # a slow peer (stalls its reply)
                    self.out("250 2.0.0 Ok: stored")
                    sender, rcpts = None, []
                elif verb == "RSET":
                    sender, rcpts = None, []
                    self.out("250 2.0.0 Ok")
                elif verb == "NOOP":
                    self.out("250 2.0.0 Ok")
                elif verb == "QUIT":
                    self.out("221 2.0.0 Bye")
                    return
                else:
                    self.out("502 5.5.2 not implemented")
        except (EOFError, OSError):
            return
        finally:
            with sink.lock:
                sink.live.discard(self.connection)


def _unstuff(wire):
    """RFC 5321 4.5.2: remove the first '.' of every line that starts with one."""
    lines = wire.split(b"\r\n")
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in lines)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class SmtpSink:
    """Records every message: dicts {sender, rcpts, wire, data} where wire is
    the DATA bytes as sent (dot-stuffed, CRLF) and data the unstuffed bytes."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.messages = []
        self.commands = []
        self.connections = 0
        self.live = set()       # open sessions: a stopped sink ends them (tern caches connections)
        self.lock = threading.Lock()
        self.server = None
        self.thread = None
        self.rcpt_replies = {}  # address -> reply line (default 250)
        self.data_delay = 0     # seconds to stall before the reply to the end of DATA

    def rcpt_reply(self, rcpt):
        return self.rcpt_replies.get(rcpt.lower(), "250 2.1.5 Ok")

    def store(self, sender, rcpts, wire, data):
        with self.lock:
            self.messages.append({"sender": sender, "rcpts": rcpts, "wire": wire, "data": data})

    def start(self):
        self.server = _Server(("127.0.0.1", self.port), _SinkHandler)
        self.server.sink = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            with self.lock:
                live = list(self.live)
            for c in live:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.thread.join(5)
            self.server = None

    def wait(self, count=1, timeout=10.0):
        return wait_for(lambda: len(self.messages) >= count, timeout) and True

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
