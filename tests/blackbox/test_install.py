#!/usr/bin/env python3
"""`make install DESTDIR=...` produces the expected tree: FHS paths, modes,
a systemd unit pointing at the installed programs, the man pages and the
traditional command names; `make install PREFIX=... SENDMAIL_LINKS=no`
leaves the traditional names out."""
import os
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tern_harness as h  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_install(dest, *extra):
    b = os.environ.get("B", "build")
    r = subprocess.run(["make", "-s", "--no-print-directory", "install", "DESTDIR=%s" % dest, "B=%s" % b] + list(extra),
                       cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    return r.returncode, r.stdout.decode(errors="replace")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def main():
    res = h.Results()
    if not h.prerequisites_or_fail(res, "install"):
        res.exit()
    dest = tempfile.mkdtemp(prefix="tern-install-")
    try:
        rc, out = make_install(dest)
        res.check("install_exit_0", rc == 0, out[-500:])
        want = {
            "usr/sbin/tern-master": 0o755, "usr/sbin/ternctl": 0o755,
            "usr/libexec/tern/smtpd": 0o755, "usr/libexec/tern/qmgr": 0o755,
            "usr/libexec/tern/local": 0o755, "usr/libexec/tern/send": 0o755,
            "etc/tern/tern.conf": 0o644, "lib/systemd/system/tern.service": 0o644,
            "usr/share/man/man5/tern.conf.5": 0o644, "usr/share/man/man8/ternctl.8": 0o644,
            "usr/share/man/man8/tern-master.8": 0o644, "var/spool/tern": 0o755,
            "usr/sbin/tern-sendmail": 0o755, "usr/libexec/tern/pickup": 0o755,
            "usr/libexec/tern/postdrop": 0o2755, "usr/share/man/man1/tern-sendmail.1": 0o644,
        }
        for rel, m in want.items():
            p = os.path.join(dest, rel)
            res.check("install_" + rel.replace("/", "_"), os.path.exists(p) and mode(p) == m,
                      "%s: %s" % (rel, oct(mode(p)) if os.path.exists(p) else "missing"))
        unit = open(os.path.join(dest, "lib/systemd/system/tern.service")).read()
        res.check("install_unit_paths", "ExecStart=/usr/sbin/tern-master -c /etc/tern/tern.conf" in unit
                  and "@" not in unit.replace("@SBINDIR", ""), "unit: %s" % unit[-400:])
        for rel, target in (("usr/bin/mailq", "/usr/sbin/ternctl"), ("usr/bin/newaliases", "/usr/sbin/ternctl"),
                            ("usr/sbin/sendmail", "/usr/sbin/tern-sendmail")):
            p = os.path.join(dest, rel)
            res.check("install_link_" + os.path.basename(rel), os.path.islink(p) and os.readlink(p) == target,
                      "%s: %s" % (p, os.readlink(p) if os.path.islink(p) else "not a link"))
        res.check("install_users_left_to_target", "DESTDIR set" in out, out[-300:])
        # The installed config is valid as installed.
        r = subprocess.run([os.path.join(dest, "usr/sbin/ternctl"), "-c", os.path.join(dest, "etc/tern/tern.conf"),
                            "config", "queue_directory"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        res.check("install_config_parses", r.returncode == 0, r.stdout.decode(errors="replace"))
        # A second install keeps an edited tern.conf.
        conf = os.path.join(dest, "etc/tern/tern.conf")
        with open(conf, "a") as f:
            f.write("# local edit\n")
        rc, out = make_install(dest)
        res.check("install_keeps_config", rc == 0 and open(conf).read().endswith("# local edit\n"), out[-300:])
        # Beside another MTA: no traditional names.
        dest2 = tempfile.mkdtemp(prefix="tern-install2-")
        try:
            rc, out = make_install(dest2, "SENDMAIL_LINKS=no")
            res.check("install_no_links", rc == 0 and not os.path.lexists(os.path.join(dest2, "usr/bin/mailq"))
                      and not os.path.lexists(os.path.join(dest2, "usr/sbin/sendmail")),
                      out[-300:])
        finally:
            shutil.rmtree(dest2, ignore_errors=True)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    res.exit()


if __name__ == "__main__":
    main()
