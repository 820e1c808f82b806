#!/usr/bin/env python3
"""bench/bench.py — tern side by side with Postfix (issue 10, items 1-3).

Called by bench/run.sh (`make bench`), which installs the prerequisites and
builds the ceiling program.  For every scenario it starts a fresh instance of
each server in its own temporary directory (loopback ports only), drives it
with Postfix's smtp-source into smtp-sink or a Maildir, alternating targets
(tern, postfix, tern, ...), prints one machine-readable line per run and a
summary (median, min-max, ratio tern/Postfix), writes bench/results/latest.txt,
the growth plot docs/bench-growth.png and docs/benchmarks.md.

Environment:
  BENCH_SCALE    full (the issue's sizes) | medium (1/4) | small (1/10) |
                 tiny (1/20) | a number (fraction of full); default full
  BENCH_RUNS     runs per server and scenario (default 3)
  BENCH_ONLY     comma-separated scenarios (default all): ceiling relay local
                 multi big accept latency rss growth
  BENCH_SERVERS  tern,postfix (default both)
  BENCH_DIR      where the instances live (default /var/tmp)
  BENCH_NODOCS   set: do not rewrite docs/benchmarks.md and the PNG
  B              tern's build directory (default build)
Must run as root (Postfix's master needs it).  Every wait is bounded; every
process started is stopped by pid.
"""
import atexit
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "blackbox"))
import tern_harness as h  # noqa: E402

SCALES = {"full": 1.0, "medium": 0.25, "small": 0.1, "tiny": 0.05}
SCALE_NAME = os.environ.get("BENCH_SCALE", "full")
try:
    SCALE = SCALES[SCALE_NAME] if SCALE_NAME in SCALES else float(SCALE_NAME)
except ValueError:
    sys.exit("bench: BENCH_SCALE must be full, medium, small, tiny or a number")
RUNS = max(1, int(os.environ.get("BENCH_RUNS", "3")))
ONLY = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
SERVERS = [s for s in os.environ.get("BENCH_SERVERS", "tern,postfix").split(",") if s]
BASE = os.environ.get("BENCH_DIR", "/var/tmp")
CEILING = os.environ.get("BENCH_CEILING_BIN", "")
RESULTS = os.path.join(HERE, "results")
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
PF_DAEMON_DIR = "/usr/lib/postfix/sbin"
SINK_USER = "nobody"

BENCH_DOMAIN = "bench.test"          # relayed to the sink
LOCAL_DOMAIN = "local.bench.test"    # delivered to a Maildir
LOCAL_USER = "bench"
SIZE_LIMIT = 64 * 1024 * 1024

out_lines = []


def emit(line):
    print(line, flush=True)
    out_lines.append(line)


def note(msg):
    sys.stderr.write("# %s\n" % msg)
    sys.stderr.flush()


def scaled(n, lo=1):
    return max(lo, int(round(n * SCALE)))


# ---------------------------------------------------------------------------
# Processes and CPU accounting (from /proc)

TICK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / TICK, (int(rest[13]) + int(rest[14])) / TICK


def descendants(root):
    """pids of root and all its descendants."""
    kids = {}
    for pid, ppid, _pg, _argv in h.proc_table():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def server_cpu(master):
    """CPU seconds used by a server so far: every live process of the tree plus
    the reaped children counted in the master's cutime/cstime."""
    total = 0.0
    for p in descendants(master):
        st = proc_stat(p)
        if st:
            total += st[1]
            if p == master:
                total += st[2]
    return total


def machine_busy():
    """Busy CPU seconds of the whole machine (every core, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / TICK   # minus idle and iowait


def mem_kb(pid):
    """(rss_kb, pss_kb) of a process."""
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def kill_pids(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------------------
# The counting sink: Postfix's smtp-sink with -c (a counter line per message,
# read here with the time it arrived).

class Sink:
    def __init__(self, coarse=False):
        # coarse: read the counter at most every 5 ms.  A read per message
        # was about 5 % of the machine under relay load, taken from either
        # server; arrival times are then late by up to 5 ms, which a
        # throughput run of seconds does not see (the latency run is fine).
        self.coarse = coarse
        self.port = h.free_port()
        self.count = 0
        self.times = []   # arrival time (monotonic) of message k at index k-1
        self.cond = threading.Condition()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", SINK_USER, "-c", "-m", "1000", "127.0.0.1:%d" % self.port, "1024"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        if not h.wait_port(self.port, 10):
            self.stop()
            raise RuntimeError("smtp-sink did not listen on %d" % self.port)
        # wait_port made one connection: it is a session, not a message.
        return self

    def _read(self):
        buf = b""
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            t = time.monotonic()
            if self.coarse:
                time.sleep(0.005)
            buf += chunk
            parts = buf.split(b"\r")
            buf = parts.pop()
            for p in parts:
                m = re.search(rb"mesg=(\d+)", p)
                if m:
                    n = int(m.group(1))
                    with self.cond:
                        while len(self.times) < n:
                            self.times.append(t)
                        self.count = n
                        self.cond.notify_all()

    def wait_count(self, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 1.0))
            return self.count

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None


# ---------------------------------------------------------------------------
# Servers

# Instance directories are removed when the whole bench is done, not after
# each run: on ext4 without a journal, the thousands of inodes a removed run
# frees stay "recently deleted" for minutes and every create in their block
# group walks past them (queue/QUEUE.md), so removing one run's tree would
# slow down whichever server runs next.
RETIRED = []


def retire_dir(d):
    RETIRED.append(d)


def remove_retired():
    while RETIRED:
        shutil.rmtree(RETIRED.pop(), ignore_errors=True)


def owner():
    return h.mail_owner()


class TernServer:
    name = "tern"

    def __init__(self, sink_port, paused=False):
        self.t = h.Tern(name="bench", transport={BENCH_DOMAIN: "smtp:[127.0.0.1]:%d" % sink_port},
                        conf={})
        c = self.t.conf
        # the harness's short test timers are not tern's defaults: drop them
        for k in ("queue_run_delay", "minimal_backoff", "maximal_backoff"):
            c.pop(k, None)
        c.update({
            "mydestination": LOCAL_DOMAIN,
            "myhostname": "tern.bench.test",
            "default_process_limit": "150",
            "message_size_limit": str(SIZE_LIMIT),
            # Postfix's virtual(8) delivers 20 in parallel to a domain; tern's
            # local agent limits per recipient (default 2): same 20 here.
            "local_destination_concurrency_limit": "20",
        })
        if paused:
            # accept-only: the service table without the queue manager
            c["service"] = ["smtp inet 127.0.0.1:%d smtpd" % self.t.port,
                            "local unix private/local local user=root",
                            "send unix private/send send"]
        self.t.write_conf()
        self.port = self.t.port
        self.dir = self.t.dir
        self.maildir_new = os.path.join(self.t.mailbase, LOCAL_USER, "Maildir", "new")

    def start(self):
        self.t.start(timeout=30)
        return self

    def master(self):
        return self.t.master_pid()

    def processes(self):
        return {p: comm(p) for p in self.t.processes()}

    def stop(self):
        left = self.t.stop(timeout=20)
        if left:
            note("tern: killed leftovers %s" % left)

    def cleanup(self):
        self.stop()
        retire_dir(self.dir)


PF_MASTER_CF = """\
# written by bench/bench.py: Debian's master.cf, chroot off (tern does not chroot
# by default either), smtpd on a loopback port, log to a file through postlogd.
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

PF_MAIN_CF = """\
# written by bench/bench.py: an isolated Postfix for the benchmark.
# Durability, queue and delivery settings are Postfix's defaults.
compatibility_level = 3.6
config_directory = {dir}/conf
queue_directory = {dir}/queue
data_directory = {dir}/data
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
daemon_directory = {daemon_dir}
command_directory = /usr/sbin
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {bench_domain}
transport_maps = hash:{dir}/conf/transport
virtual_mailbox_domains = {local_domain}
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = hash:{dir}/conf/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
virtual_mailbox_limit = 0
message_size_limit = {size_limit}
default_process_limit = 150
smtpd_client_connection_count_limit = 0
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
maillog_file = {dir}/maillog
"""


class PostfixServer:
    name = "postfix"

    def __init__(self, sink_port, paused=False):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="tern-bench-pf-", dir=BASE))
        os.chmod(self.dir, 0o755)
        self.port = h.free_port()
        self.conf = os.path.join(self.dir, "conf")
        os.makedirs(self.conf)
        os.makedirs(os.path.join(self.dir, "queue"))   # root's; postfix-script makes the rest
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        pf = pwd.getpwnam("postfix")
        os.chown(data, pf.pw_uid, pf.pw_gid)
        pw = pwd.getpwnam(owner())
        mail = os.path.join(self.dir, "mail")
        os.makedirs(mail)
        os.chown(mail, pw.pw_uid, pw.pw_gid)
        self.maildir_new = os.path.join(mail, LOCAL_USER, "Maildir", "new")
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(PF_MAIN_CF.format(dir=self.dir, daemon_dir=PF_DAEMON_DIR, bench_domain=BENCH_DOMAIN,
                                      local_domain=LOCAL_DOMAIN, uid=pw.pw_uid, gid=pw.pw_gid,
                                      size_limit=SIZE_LIMIT))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(PF_MASTER_CF.format(port=self.port))
        if paused:
            # accept-only: every message goes to the hold queue (cleanup writes
            # and fsyncs it as usual; the queue manager never schedules it)
            with open(os.path.join(self.conf, "main.cf"), "a") as f:
                f.write("smtpd_data_restrictions = check_client_access static:HOLD\n")
        with open(os.path.join(self.conf, "transport"), "w") as f:
            f.write("%s\tsmtp:[127.0.0.1]:%d\n" % (BENCH_DOMAIN, sink_port))
        with open(os.path.join(self.conf, "vmailbox"), "w") as f:
            f.write("%s@%s\t%s/Maildir/\n" % (LOCAL_USER, LOCAL_DOMAIN, LOCAL_USER))
        for m in ("transport", "vmailbox"):
            self._run(["postmap", "-c", self.conf, "hash:" + os.path.join(self.conf, m)])
        self.pids = set()

    def _run(self, argv, timeout=60):
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                       r.stdout.decode(errors="replace")))
        return r.stdout.decode(errors="replace")

    def start(self):
        self._run(["postfix", "-c", self.conf, "start"])
        if not h.wait_port(self.port, 30):
            self.cleanup()
            raise RuntimeError("postfix did not listen on %d; log:\n%s" % (self.port, self.log_tail()))
        return self

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return "(no maillog)"

    def master(self):
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                pid = int(f.read().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def processes(self):
        m = self.master()
        if not m:
            return {}
        out = {p: comm(p) for p in descendants(m)}
        self.pids.update(out)
        return out

    def stop(self):
        self.processes()
        m = self.master()
        try:
            self._run(["postfix", "-c", self.conf, "stop"], timeout=30)
        except Exception as e:  # fall back to pids below
            note("postfix stop: %s" % e)
        h.wait_for(lambda: self.master() is None, 15)
        left = [p for p in self.pids if proc_stat(p)]
        if m and proc_stat(m):
            left.append(m)
        # Only pids recorded as this instance's processes that still run as such.
        left = [p for p in left if comm(p) in ("master",) or os.path.exists("/proc/%d" % p)]
        if left:
            note("postfix: killing leftovers %s" % left)
            kill_pids(left)

    def cleanup(self):
        self.stop()
        retire_dir(self.dir)


SERVER_CLASSES = {"tern": TernServer, "postfix": PostfixServer}


# ---------------------------------------------------------------------------
# Load

def smtp_source(port, msgs, sessions, size, rcpt, rcpts=1, timeout=600):
    argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(msgs), "-l", str(size),
            "-M", "client.test", "-f", "bench@client.test", "-t", rcpt, "-C", "10"]
    if rcpts > 1:
        argv += ["-r", str(rcpts)]
    argv.append("127.0.0.1:%d" % port)
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def finish_source(p, timeout):
    try:
        _o, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        _o, err = p.communicate(timeout=10)
        return "source-timeout"
    if p.returncode != 0:
        note("smtp-source: %s" % err.decode(errors="replace").strip()[:300])
        return "source-error"
    return "ok"


def count_files(d):
    try:
        return len(os.listdir(d))
    except FileNotFoundError:
        return 0


def poll_interval(done, total, elapsed):
    """How long to sleep before counting a Maildir again.  Listing a directory
    of thousands of files costs CPU the servers under test need, so the count
    is taken rarely while the end is far off (a quarter of the estimated time
    left, at most 0.25 s) and every 20 ms near it: the end is still seen
    within 20 ms, for either server alike."""
    if done <= 0 or elapsed <= 0:
        return 0.05
    left = (total - done) / (done / elapsed)
    return min(0.25, max(0.02, left / 4))


def timeout_for(msgs, size):
    """Generous bound for one run: 20 msgs/s and 2 MB/s worst case, plus a minute."""
    return 60 + msgs / 20.0 + msgs * size / 2e6


def run_throughput(server_cls, scenario, run, msgs, sessions, size, local=False, rcpts=1,
                   paused=False):
    sink = Sink(coarse=True).start()
    srv = None
    status = "ok"
    try:
        srv = server_cls(sink.port, paused=paused).start()
        time.sleep(1.0)  # let the pools settle
        m = srv.master()
        cpu0 = server_cpu(m)
        mcpu0 = machine_busy()
        base_count = sink.count
        rcpt = ("%s@%s" % (LOCAL_USER, LOCAL_DOMAIN)) if local else ("rcpt@%s" % BENCH_DOMAIN)
        tmo = timeout_for(msgs * rcpts if local else msgs, size)
        t0 = time.monotonic()
        src = smtp_source(srv.port, msgs, sessions, size, rcpt, rcpts)
        if paused:
            status = finish_source(src, tmo)
            t1 = time.monotonic()
            delivered = msgs if status == "ok" else 0
        elif local:
            deadline = t0 + tmo
            delivered = 0
            while time.monotonic() < deadline:
                delivered = count_files(srv.maildir_new)
                if delivered >= msgs:
                    break
                time.sleep(poll_interval(delivered, msgs, time.monotonic() - t0))
            t1 = time.monotonic()
            st = finish_source(src, 30)
            if delivered < msgs:
                status = "timeout"
            elif st != "ok":
                status = st
        else:
            got = sink.wait_count(base_count + msgs, tmo)
            delivered = got - base_count
            t1 = sink.times[base_count + msgs - 1] if delivered >= msgs else time.monotonic()
            st = finish_source(src, 30)
            if delivered < msgs:
                status = "timeout"
            elif st != "ok":
                status = st
        cpu = server_cpu(m) - cpu0
        mcpu = machine_busy() - mcpu0
        secs = t1 - t0
        rate = delivered / secs if secs > 0 else 0
        emit("bench scenario=%s server=%s run=%d msgs=%d size=%d sessions=%d rcpts=%d seconds=%.3f "
             "rate=%.1f delivered=%d server_cpu_ms_per_msg=%.2f machine_cpu_ms_per_msg=%.2f status=%s"
             % (scenario, srv.name, run, msgs, size, sessions, rcpts, secs, rate, delivered,
                1000 * cpu / max(1, delivered), 1000 * mcpu / max(1, delivered), status))
        if status != "ok":
            note("%s %s: %s; log tail:\n%s" % (scenario, srv.name, status,
                                               srv.log_tail() if hasattr(srv, "log_tail") else
                                               srv.t.log_tail()))
        return {"rate": rate, "status": status}
    finally:
        if srv:
            srv.cleanup()
        sink.stop()


def run_latency(server_cls, scenario, run, samples, local):
    sink = Sink().start()
    srv = None
    try:
        srv = server_cls(sink.port).start()
        time.sleep(1.0)
        rcpt = ("%s@%s" % (LOCAL_USER, LOCAL_DOMAIN)) if local else ("rcpt@%s" % BENCH_DOMAIN)
        body = ("Subject: latency\r\n\r\n" + ("x" * 78 + "\r\n") * 64).encode()  # ~5 KiB
        lat = []
        status = "ok"
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as s:
            s.ehlo("client.test")
            for i in range(samples):
                n0 = count_files(srv.maildir_new) if local else sink.count
                s.sendmail("bench@client.test", [rcpt], body)
                t0 = time.monotonic()   # the 250 after DATA has just been read
                deadline = t0 + 30
                t1 = None
                while time.monotonic() < deadline:
                    if local:
                        if count_files(srv.maildir_new) > n0:
                            t1 = time.monotonic()
                            break
                        time.sleep(0.0005)
                    else:
                        if sink.wait_count(n0 + 1, 0.05) > n0:
                            t1 = sink.times[n0]
                            break
                if t1 is None:
                    status = "timeout"
                    break
                lat.append(max(0.0, t1 - t0) * 1000)
                time.sleep(0.05)   # low load: one message at a time, 50 ms apart
        lat.sort()
        p50 = lat[len(lat) // 2] if lat else 0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0
        emit("bench scenario=%s server=%s run=%d samples=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f status=%s"
             % (scenario, srv.name, run, len(lat), p50, p99, lat[-1] if lat else 0, status))
        return {"p50": p50, "p99": p99, "status": status}
    finally:
        if srv:
            srv.cleanup()
        sink.stop()


def run_rss(server_cls, run, sessions):
    sink = Sink().start()
    srv = None
    socks = []
    try:
        srv = server_cls(sink.port).start()
        time.sleep(2.0)
        res = {}
        for phase in ("idle", "sessions%d" % sessions):
            if phase != "idle":
                for _ in range(sessions):
                    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
                    f = s.makefile("rb")
                    f.readline()
                    s.sendall(b"EHLO client.test\r\n")
                    while True:
                        line = f.readline()
                        if len(line) < 4 or line[3:4] != b"-":
                            break
                    socks.append((s, f))
                time.sleep(2.0)
            kinds = {}
            for pid, name in srv.processes().items():
                kinds.setdefault(name, []).append(mem_kb(pid))
            tot_rss = sum(r for v in kinds.values() for r, _p in v)
            tot_pss = sum(p for v in kinds.values() for _r, p in v)
            smtpd = kinds.get("smtpd", [(0, 0)])
            smtpd_rss = statistics.median(r for r, _p in smtpd)
            smtpd_pss = statistics.median(p for _r, p in smtpd)
            detail = ",".join("%s:%dx%d" % (k, len(v), statistics.median(r for r, _p in v))
                              for k, v in sorted(kinds.items()))
            emit("bench scenario=rss_%s server=%s run=%d procs=%d total_rss_kb=%d total_pss_kb=%d "
                 "smtpd_rss_kb=%d smtpd_pss_kb=%d kinds=%s"
                 % (phase.rstrip("0123456789") if phase != "idle" else "idle", srv.name, run,
                    sum(len(v) for v in kinds.values()), tot_rss, tot_pss, smtpd_rss, smtpd_pss, detail))
            res[phase] = {"total_rss": tot_rss, "total_pss": tot_pss, "smtpd_rss": smtpd_rss,
                          "smtpd_pss": smtpd_pss}
        return res
    finally:
        for s, _f in socks:
            try:
                s.close()
            except OSError:
                pass
        if srv:
            srv.cleanup()
        sink.stop()


# ---------------------------------------------------------------------------
# Machine and ceiling

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=20).stdout.decode(errors="replace").strip()
    except Exception:
        return ""


def machine():
    model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    dev = sh("df -P %s | awk 'NR==2{print $1}'" % BASE)
    mnt = sh("df -P %s | awk 'NR==2{print $6}'" % BASE)
    opts = sh("awk -v m=%s '$2==m{print $3\" \"$4}' /proc/mounts | head -1" % mnt)
    return {
        "nproc": sh("nproc"),
        "model": model,
        "kernel": sh("uname -r"),
        "mem": sh("free -m | awk '/Mem:/{print $2\" MiB\"}'"),
        "disk": "%s on %s (%s)" % (dev, mnt, opts),
        "postfix": sh("dpkg-query -W -f='${Version}' postfix"),
        "python": sh("python3 --version"),
    }


def run_ceiling():
    res = {}
    if not CEILING or not os.access(CEILING, os.X_OK):
        note("no ceiling program (BENCH_CEILING_BIN); skipped")
        return res
    # Each run writes into a directory of its own and nothing is deleted
    # until the bench ends: freed inodes would slow every create after them
    # (see retire_dir).
    d = tempfile.mkdtemp(prefix="tern-bench-ceiling-", dir=BASE)
    try:
        for w in (1, 8):
            vals = []
            for run in range(1, RUNS + 1):
                rd = tempfile.mkdtemp(prefix="w%d-r%d-" % (w, run), dir=d)
                out = sh("%s %s %d %.1f %d" % (CEILING, rd, w, max(1.0, 5 * SCALE), 20000))
                m = re.search(r"rate=(\d+)", out)
                if m:
                    vals.append(float(m.group(1)))
                    emit("bench scenario=ceiling server=disk run=%d %s" % (run, out.replace("ceiling ", "")))
            if vals:
                res[w] = vals
    finally:
        retire_dir(d)
    return res


# ---------------------------------------------------------------------------
# Scenarios

def want(name):
    return not ONLY or name in ONLY


def alternate(fn, runs=RUNS):
    """fn(server_cls, run) for tern, postfix, tern, postfix, ...; returns {server: [result]}."""
    res = {s: [] for s in SERVERS}
    for run in range(1, runs + 1):
        for s in SERVERS:
            try:
                res[s].append(fn(SERVER_CLASSES[s], run))
            except Exception as e:
                note("%s run %d failed: %s" % (s, run, e))
    return res


def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def main():
    if os.getuid() != 0:
        sys.exit("bench: run as root (Postfix's master must start as root)")
    for p in (SMTP_SOURCE, SMTP_SINK, h.MASTER):
        if not os.access(p, os.X_OK):
            sys.exit("bench: %s missing (bench/run.sh installs postfix; make all builds tern)" % p)
    os.makedirs(RESULTS, exist_ok=True)
    atexit.register(remove_retired)
    tempfile.tempdir = BASE   # the harness's tern instances too: same file system
    mach = machine()
    emit("bench machine nproc=%s kernel=%s model=%r disk=%r postfix=%s scale=%s(%g) runs=%d"
         % (mach["nproc"], mach["kernel"], mach["model"], mach["disk"], mach["postfix"],
            SCALE_NAME, SCALE, RUNS))
    started = time.time()
    summary = []   # (scenario, metric, better, {server: [values]})
    growth = {"sessions": {}, "size": {}}
    ceiling = {}

    tp = [  # name, msgs, sessions, size, local, rcpts, paused
        ("relay", scaled(10000), 20, 5120, False, 1, False),
        ("local", scaled(10000), 20, 5120, True, 1, False),
        ("multi", scaled(1000), 20, 5120, False, 50, False),
        ("big", scaled(100, 5), 20, 10 * 1024 * 1024, False, 1, False),
        ("accept", scaled(10000), 20, 5120, False, 1, True),
    ]
    for name, msgs, sess, size, local, rcpts, paused in tp:
        if not want(name):
            continue
        r = alternate(lambda cls, run: run_throughput(cls, name, run, msgs, sess, size, local, rcpts,
                                                      paused))
        summary.append((name, "msgs/s", "higher", {s: [x["rate"] for x in v if x["status"] == "ok"]
                                                   for s, v in r.items()}))

    if want("latency"):
        n = scaled(200, 20)
        for kind, local in (("latency_relay", False), ("latency_local", True)):
            r = alternate(lambda cls, run: run_latency(cls, kind, run, n, local))
            for q in ("p50", "p99"):
                summary.append((kind, q + " ms", "lower",
                                {s: [x[q] for x in v if x["status"] == "ok"] for s, v in r.items()}))

    if want("rss"):
        r = alternate(lambda cls, run: run_rss(cls, run, 100), runs=1)
        for phase in ("idle", "sessions100"):
            for k in ("smtpd_rss", "smtpd_pss", "total_rss", "total_pss"):
                summary.append(("rss_" + phase, k + " KiB", "lower",
                                {s: [x[phase][k] for x in v] for s, v in r.items()}))

    if want("growth"):
        gruns = max(1, int(os.environ.get("BENCH_GROWTH_RUNS", "1")))
        n = scaled(2000, 50)
        for sess in (1, 5, 20, 50, 100):
            msgs = max(n, sess * 5)
            r = alternate(lambda cls, run: run_throughput(cls, "growth_sessions", run, msgs, sess, 5120),
                          runs=gruns)
            growth["sessions"][sess] = {s: med([x["rate"] for x in v if x["status"] == "ok"])[0]
                                        for s, v in r.items()}
        for size in (1024, 4096, 16384, 65536, 262144, 1048576):
            msgs = max(20, min(n, int(200 * 1024 * 1024 * SCALE / size)))
            r = alternate(lambda cls, run: run_throughput(cls, "growth_size", run, msgs, 20, size),
                          runs=gruns)
            growth["size"][size] = {s: med([x["rate"] for x in v if x["status"] == "ok"])[0]
                                    for s, v in r.items()}

    # Last: the ceiling program's thousands of files must not be freed
    # before a server's run (both are measured first, on the same disk).
    if want("ceiling"):
        ceiling = run_ceiling()

    # Summary
    emit("")
    emit("summary (median [min-max] over runs; ratio = tern / postfix of the medians)")
    rows = []
    for scen, metric, better, vals in summary:
        t = med(vals.get("tern", []))
        p = med(vals.get("postfix", []))
        ratio = (t[0] / p[0]) if (t[0] is not None and p[0]) else None
        rows.append((scen, metric, better, t, p, ratio))
        emit("summary scenario=%s metric=%s tern=%s postfix=%s ratio=%s (%s is better)"
             % (scen, metric.replace(" ", "_"), fmt3(t), fmt3(p),
                "%.2f" % ratio if ratio is not None else "-", better))
    for k in ("1", "8"):
        v = ceiling.get(int(k))
        if v:
            emit("summary scenario=ceiling writers=%s commits_per_s=%s" % (k, fmt3(med(v))))
    for axis in ("sessions", "size"):
        for x, v in sorted(growth[axis].items()):
            emit("growth axis=%s x=%d tern=%s postfix=%s" % (axis, x, fmt1(v.get("tern")), fmt1(v.get("postfix"))))
    remove_retired()
    emit("bench done seconds=%.0f" % (time.time() - started))

    with open(os.path.join(RESULTS, "latest.txt"), "w") as f:
        f.write("\n".join(out_lines) + "\n")
    if not os.environ.get("BENCH_NODOCS"):
        plot = make_plot(growth)
        write_doc(mach, rows, ceiling, growth, plot, time.time() - started)


def fmt1(v):
    return "-" if v is None else ("%.1f" % v)


def fmt3(t):
    if t[0] is None:
        return "-"
    return "%.1f[%.1f-%.1f]" % t


# ---------------------------------------------------------------------------
# Plot and document

def make_plot(growth):
    if not growth["sessions"] and not growth["size"]:
        return None
    if not shutil.which("gnuplot"):
        note("gnuplot missing: no plot")
        return None
    dat = {}
    for axis in ("sessions", "size"):
        path = os.path.join(RESULTS, "growth_%s.dat" % axis)
        with open(path, "w") as f:
            f.write("# %s tern_msgs_per_s postfix_msgs_per_s\n" % axis)
            for x, v in sorted(growth[axis].items()):
                f.write("%d %s %s\n" % (x / 1024 if axis == "size" else x,
                                        fmt1(v.get("tern")).replace("-", "NaN"),
                                        fmt1(v.get("postfix")).replace("-", "NaN")))
        dat[axis] = path
    png = os.path.join(REPO, "docs", "bench-growth.png")
    gp = """set terminal pngcairo size 1200,480 font ',10' noenhanced
set output '{png}'
set datafile missing 'NaN'
set multiplot layout 1,2 title 'tern vs Postfix: relay throughput, {gruns} run(s) per point (BENCH_SCALE={scale})'
set yrange [0:*]
set grid
set key top right
set ylabel 'messages/s delivered'
set xlabel 'concurrent SMTP sessions (5 KiB messages)'
set logscale x
plot '{s}' using 1:2 with linespoints lw 2 title 'tern', '' using 1:3 with linespoints lw 2 title 'Postfix'
set xlabel 'message size, KiB (20 sessions)'
set logscale x 2
plot '{z}' using 1:2 with linespoints lw 2 title 'tern', '' using 1:3 with linespoints lw 2 title 'Postfix'
unset multiplot
""".format(png=png, scale=SCALE_NAME, gruns=os.environ.get("BENCH_GROWTH_RUNS", "1"), s=dat["sessions"], z=dat["size"])
    r = subprocess.run(["gnuplot"], input=gp.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    if r.returncode != 0:
        # gnuplot-nox may lack cairo: the plain png terminal
        gp = gp.replace("pngcairo size 1200,480 font ',10'", "png size 1200,480")
        r = subprocess.run(["gnuplot"], input=gp.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
    if r.returncode != 0:
        note("gnuplot failed: %s" % r.stderr.decode(errors="replace")[:300])
        return None
    return os.path.basename(png)


def write_doc(mach, rows, ceiling, growth, plot, secs):
    import benchdoc  # the prose lives next to this file
    text = benchdoc.render(mach=mach, rows=rows, ceiling=ceiling, growth=growth, plot=plot,
                           scale=SCALE_NAME, scale_f=SCALE, runs=RUNS, secs=secs,
                           date=time.strftime("%Y-%m-%d %H:%M %Z"), med=med)
    with open(os.path.join(REPO, "docs", "benchmarks.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
