/*
 * master_dev — the embedded development configuration behind `make run`.
 *
 * Development mode must work as the first command on a fresh machine and
 * without root: everything lives under one directory, SMTP listens on
 * loopback only, and local mail goes to DIR/mail/USER/Maildir/ without Unix
 * accounts, all as the invoking user.  The programs are found next to the running tern-master
 * (BUILD/sbin/tern-master -> BUILD/libexec/tern/), so a fresh build runs
 * without `make install`.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "master.h"
#include "master_devcert.h"
#include "sock.h"

static const char dev_template[] =
	"# Written by tern-master -D at every start: edits here are lost.\n"
	"# To experiment, copy this file and run tern-master -f -c COPY.\n"
	"myhostname = localhost.localdomain\n"
	"mydestination = localhost, $myhostname\n"
	"mynetworks = 127.0.0.0/8, [::1]/128\n"
	"smtpd_listen = 127.0.0.1:2525\n"
	"queue_directory = %s/queue\n"
	"local_mailbox_base = %s/mail\n"
	"daemon_directory = %s\n"
	"mail_owner = %s\n"
	"queue_run_delay = 10s\n"
	"minimal_backoff = 10s\n"
	"maximal_backoff = 60s\n";

/* BUILD/libexec/tern for BUILD/sbin/tern-master. */
static void sibling_libexec(char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		log_fatal("readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = 0;
	/* dirname twice: .../sbin/tern-master -> ... */
	if (snprintf(out, size, "%s/libexec/tern", dirname(dirname(exe))) >= (int)size)
		log_fatal("path too long: %s", exe);
}

/* Issue 9: a self-signed certificate on first run (DIR/tls/), offered with
 * STARTTLS; without it development mode simply runs without TLS. */
static void dev_tls_append(const char *path, const char *abs)
{
	char err[512];
	struct buf text;
	int fd;

	if (dev_cert_ensure(abs, err, sizeof(err)) < 0) {
		log_warning("development mode without TLS: %s", err);
		return;
	}
	buf_init(&text, 16384);
	if (buf_printf(&text, "smtpd_tls_cert_file = %s/tls/cert.pem\nsmtpd_tls_key_file = %s/tls/key.pem\n", abs, abs) <
	    0)
		log_fatal("development config too long");
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || write_all(fd, text.data, text.len) < 0 || close(fd) < 0)
		log_fatal("write %s: %s", path, strerror(errno));
	buf_free(&text);
}

const char *dev_config_write(const char *dir)
{
	static char path[PATH_MAX + 32];
	char abs[PATH_MAX], libexec[PATH_MAX];
	struct passwd *pw;
	struct buf text;
	int fd;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		log_fatal("mkdir %s: %s", dir, strerror(errno));
	if (!realpath(dir, abs))
		log_fatal("%s: %s", dir, strerror(errno));
	sibling_libexec(libexec, sizeof(libexec));
	buf_init(&text, 65536);
	pw = getpwuid(getuid());
	if (!pw)
		log_fatal("uid %ld has no passwd entry", (long)getuid());
	if (buf_printf(&text, dev_template, abs, abs, libexec, pw->pw_name) < 0)
		log_fatal("development config too long");
	snprintf(path, sizeof(path), "%s/tern.conf", abs);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0 || write_all(fd, text.data, text.len) < 0 || close(fd) < 0)
		log_fatal("write %s: %s", path, strerror(errno));
	buf_free(&text);
	dev_tls_append(path, abs);
	return path;
}
