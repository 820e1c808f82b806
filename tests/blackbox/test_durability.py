#!/usr/bin/env python3
"""test_durability — the 250 after DATA comes only after the queue file and
its directory entry are on stable storage.

The master runs under `strace -f -y`; one message is sent; in the trace:

  fsync_file_before_rename    fsync/fdatasync of the queue file (a descriptor
                              whose path names the queue ID) precedes the
                              rename into incoming/
  rename_before_reply         the rename tmp/ID -> incoming/ID precedes the reply
  fsync_dir_before_reply      an fsync of the incoming/ directory comes after the
                              rename and before the "250 ... queued as ID" write

Ordering is by the completion of each system call in strace's output (the
order strace saw them), so a group commit done by another process counts as
long as it finished before the reply was written.

and for the local agent (the same promise towards the queue manager):

  maildir_fsync_file_before_move, maildir_move_before_result,
  maildir_fsync_dir_before_result

When strace is missing or ptrace is not permitted, the checks are SKIPped.
"""

import os
import re
import shutil
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tern_harness import Results, Tern, prerequisites_or_fail, wait_for  # noqa: E402

res = Results()

SYSCALLS = ("fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2,link,linkat,"
            "write,writev,sendto,sendmsg")
SYNCS = ("fsync", "fdatasync", "syncfs", "sync_file_range")
WRITES = ("write", "writev", "sendto", "sendmsg")

LINE = re.compile(r"^(\d+)\s+(.*)$")
CALL = re.compile(r"^([a-z_0-9]+)\((.*)$")
RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
RET = re.compile(r"\)\s+=\s+(-?\d+|\?)")


def parse_trace(path):
    """[(index, pid, syscall, args_text, ret)] in order of completion."""
    events = []
    pending = {}
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            r = RESUMED.match(rest)
            if r:
                name = r.group(1)
                text = pending.pop((pid, name), "") + r.group(2)
            else:
                c = CALL.match(rest)
                if not c:
                    continue  # signals, exits
                name = c.group(1)
                if rest.endswith("<unfinished ...>"):
                    pending[(pid, name)] = c.group(2)[: -len("<unfinished ...>")]
                    continue
                text = c.group(2)
            rm = RET.search(text)
            ret = rm.group(1) if rm else "?"
            events.append((len(events), pid, name, text, ret))
    return events


def first_fd_path(text):
    m = re.match(r"\s*-?\d+<([^>]*)>", text)
    return m.group(1) if m else ""


def check_local(events):
    """The local agent reports "ok" only after the Maildir file and its entry
    in new/ are on stable storage: fsync(tmp file) -> link/rename into new/
    -> fsync(new/) -> the tern-result response."""
    result = next((e for e in events if e[2] in WRITES and "tern-result" in e[3] and " ok " in e[3]), None)
    if not res.check("local_result_in_trace", result, "no 'tern-result ... ok' response in the trace"):
        return
    moves = [e for e in events if e[2].startswith(("rename", "link")) and "/Maildir/new" in e[3]
             and e[4] == "0" and e[0] < result[0]]
    if not res.check("maildir_move_before_result", moves, "no link/rename into Maildir/new before the result"):
        return
    mv = moves[-1]
    res.check("maildir_fsync_file_before_move",
              [e for e in events if e[2] in SYNCS and "/Maildir/tmp/" in first_fd_path(e[3])
               and e[4] == "0" and e[0] < mv[0]],
              "no fsync of the Maildir/tmp file before it was moved into new/")
    res.check("maildir_fsync_dir_before_result",
              [e for e in events if e[2] in SYNCS and first_fd_path(e[3]).rstrip("/").endswith("/Maildir/new")
               and e[4] == "0" and mv[0] < e[0] < result[0]],
              "no fsync of Maildir/new between the move and the delivery result")


def strace_works():
    if not shutil.which("strace"):
        return "strace is not installed"
    try:
        r = subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "strace failed: %s" % e
    if r.returncode != 0:
        return "strace cannot trace here: %s" % r.stderr.decode(errors="replace").strip()
    return None


def main():
    if not prerequisites_or_fail(res, "durability_build"):
        res.exit()
    why = strace_works()
    if why:
        for n in ("fsync_file_before_rename", "rename_before_reply", "fsync_dir_before_reply"):
            res.skip(n, why)
        sys.exit(0)

    t = Tern(name="durable")
    trace = os.path.join(t.dir, "strace.out")
    t.wrapper = ["strace", "-f", "-y", "-qq", "-s", "256", "-e", "trace=" + SYSCALLS, "-o", trace]
    res.on_fail.append(t.diagnostics)
    try:
        if not res.run("start_under_strace", t.start, 30.0):
            res.exit()
        mpid = t.master_pid()
        code, text = 0, b""
        try:
            with smtplib.SMTP("127.0.0.1", t.port, timeout=60) as s:
                s.ehlo("client.test")
                s.mail("sender@client.test")
                s.rcpt("alice@localhost")
                code, text = s.data(b"Subject: durable\r\n\r\nfsync me\r\n")
        except (OSError, smtplib.SMTPException) as e:
            res.fail("message_accepted", "%s: %s" % (type(e).__name__, e))
            res.exit()
        text = text.decode(errors="replace")
        m = re.search(r"queued as ([0-9A-Za-z]+)", text)
        if not res.check("message_accepted", code == 250 and m, "end of DATA got %d %s" % (code, text)):
            res.exit()
        qid = m.group(1)
        wait_for(lambda: t.mail_files("alice"), 10)
        time.sleep(0.5)
        t.stop()
        events = parse_trace(trace)

        reply = next((e for e in events if e[2] in WRITES and "queued as %s" % qid in e[3]), None)
        if not res.check("reply_in_trace", reply, "no write of 'queued as %s' in %s (%d events)"
                         % (qid, trace, len(events))):
            res.exit()
        # smtpd's own rename into incoming/: the queue manager may already move
        # the file on (incoming/ -> active/) before the reply is written, once
        # smtpd has triggered it, and that rename names incoming/ too.
        renames = [e for e in events if e[2].startswith(("rename", "link")) and qid in e[3]
                   and "incoming" in e[3] and e[4] == "0" and e[0] < reply[0] and e[1] == reply[1]]
        if not res.check("rename_before_reply", renames,
                         "no successful rename of %s into incoming/ before the reply" % qid):
            res.exit()
        rn = renames[-1]
        file_syncs = [e for e in events if e[2] in SYNCS and qid in first_fd_path(e[3])
                      and e[4] == "0" and e[0] < rn[0]]
        res.check("fsync_file_before_rename", file_syncs,
                  "no fsync of the queue file %s before the rename (%s)" % (qid, rn[3][:160]))
        dir_syncs = [e for e in events if e[2] in SYNCS and first_fd_path(e[3]).rstrip("/").endswith("/incoming")
                     and e[4] == "0" and rn[0] < e[0] < reply[0]]
        res.check("fsync_dir_before_reply", dir_syncs,
                  "no fsync of incoming/ between the rename and the 250 reply; syncs seen: %s"
                  % [(e[2], first_fd_path(e[3])) for e in events if e[2] in SYNCS][:10])
        res.check("reply_by_smtpd_process", reply[1] != mpid,
                  "the 250 was written by the master")
        check_local(events)
    finally:
        t.cleanup()
    res.exit()


if __name__ == "__main__":
    main()
