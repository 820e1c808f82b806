/*
 * postdrop — write one maildrop file (see postdrop.h and common/maildrop.h).
 *
 * Why the file works on Linux permissions: maildrop/ is mail_owner:
 * setgid_group mode 1730.  Only mail_owner may list it; the group may
 * create entries (postdrop runs with that egid); nobody else may even
 * traverse it, so other users can neither read nor alter a file in it,
 * whatever the file's mode.  The file is created by the caller's uid with
 * mode 0444 (the descriptor stays writable): pickup, running as mail_owner
 * ("other" to the file), can read it, and as the directory's owner it may
 * unlink or rename it despite the sticky bit.  The sticky bit stops one
 * submitter from removing another's file through postdrop.
 *
 * postdrop cannot open maildrop/ for reading (no r bit for the group), so
 * the directory is used through an O_PATH descriptor and its entry cannot
 * be fsynced: the file's data is, and a crash can at worst lose the rename
 * of a file whose submitter was told "ok" (Postfix's postdrop has the same
 * window).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "lineread.h"
#include "log.h"
#include "maildrop.h"
#include "postdrop.h"
#include "proto_pickup.h"
#include "qfile.h"
#include "queueid.h"
#include "sock.h"

/* The temp file being written, for the signal handler (async-signal-safe
 * unlinkat needs only these two). */
static volatile sig_atomic_t tmp_active;
static int tmp_dirfd = -1;
static char tmp_name[64];

static void on_signal(int sig)
{
	(void)sig;
	if (tmp_active)
		(void)unlinkat(tmp_dirfd, tmp_name, 0);
	_exit(EX_TEMPFAIL);
}

void postdrop_signals(void)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGALRM, 0 };
	struct sigaction sa;
	int i;

	memset(&sa, 0, sizeof(sa));
	sigfillset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	for (i = 0; sigs[i]; i++)
		sigaction(sigs[i], &sa, NULL);
	/* A tiny RLIMIT_FSIZE must give EFBIG (handled), not kill us mid-file;
	 * a closed pipe gives EPIPE. */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGXFSZ, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
}

static void send_pickup(char what)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, PICKUP_SOCKET) < (int)sizeof(path))
		(void)sock_unix_dgram_send(path, &what, 1);
}

int postdrop_flush(void)
{
	char path[4096];
	char c = PICKUP_FLUSH;

	if (snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, PICKUP_SOCKET) >= (int)sizeof(path))
		return EX_CONFIG;
	if (sock_unix_dgram_send(path, &c, 1) < 0) {
		fprintf(stderr, "postdrop: cannot flush the mail queue: %s: %s (is tern running?)\n", path,
			strerror(errno));
		return EX_UNAVAILABLE;
	}
	return EX_OK;
}

static ssize_t read_stdin(void *ctx, void *p, size_t n)
{
	(void)ctx;
	for (;;) {
		ssize_t r = read(0, p, n);

		if (r >= 0 || errno != EINTR)
			return r;
	}
}

/* Copy exactly len content bytes from lr to fd, then require end of input.
 * EX_OK, EX_DATAERR (short or long input) or EX_TEMPFAIL (write error). */
static int copy_content(struct linereader *lr, int fd, unsigned long long len)
{
	char chunk[65536];
	unsigned long long left = len;
	ssize_t r;

	while (left > 0) {
		r = lr_read(lr, chunk, left < sizeof(chunk) ? (size_t)left : sizeof(chunk));
		if (r <= 0) {
			fprintf(stderr, "postdrop: %s\n", r == 0 ? "premature end of input" : strerror(errno));
			return EX_DATAERR;
		}
		if (write_all(fd, chunk, (size_t)r) < 0) {
			fprintf(stderr, "postdrop: write maildrop file: %s\n", strerror(errno));
			return EX_TEMPFAIL;
		}
		left -= (unsigned long long)r;
	}
	r = lr_read(lr, chunk, 1);
	if (r != 0) {
		fprintf(stderr, "postdrop: %s\n", r > 0 ? "data after the message" : strerror(errno));
		return EX_DATAERR;
	}
	return EX_OK;
}

/* Write header + content into the open temp file; a sysexits code. */
static int write_file(int fd, struct md_env *e, struct linereader *lr)
{
	struct buf hdr;
	int rc;

	buf_init(&hdr, MD_MAX_HEADER);
	e->uid = (long long)getuid();
	e->time = (long long)time(NULL);
	if (md_format(&hdr, e, MD_FILE) < 0) {
		buf_free(&hdr);
		fprintf(stderr, "postdrop: malformed envelope\n");
		return EX_DATAERR;
	}
	rc = write_all(fd, hdr.data, hdr.len);
	buf_free(&hdr);
	if (rc < 0) {
		fprintf(stderr, "postdrop: write maildrop file: %s\n", strerror(errno));
		return EX_TEMPFAIL;
	}
	rc = copy_content(lr, fd, e->length);
	if (rc == EX_OK && fsync(fd) < 0) {
		fprintf(stderr, "postdrop: fsync maildrop file: %s\n", strerror(errno));
		rc = EX_TEMPFAIL;
	}
	return rc;
}

int postdrop_run(void)
{
	struct linereader lr;
	struct md_env e;
	char err[256], path[4096], qid[QUEUEID_SIZE];
	int fd, rc;

	lr_init(&lr, read_stdin, NULL, MD_MAX_LINE, 0);
	if (md_read(&lr, MD_STREAM, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "postdrop: malformed input: %s\n", err);
		rc = EX_DATAERR;
		goto out;
	}
	if (e.length > (unsigned long long)cf.message_size_limit) {
		fprintf(stderr, "postdrop: message too big (%llu bytes; message_size_limit is %lld)\n", e.length,
			cf.message_size_limit);
		rc = EX_DATAERR;
		goto out;
	}
	if (snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, QDIR_MAILDROP) >= (int)sizeof(path)) {
		rc = EX_CONFIG;
		goto out;
	}
	/* O_PATH: the group has w+x on maildrop/ but no r. */
	tmp_dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (tmp_dirfd < 0) {
		fprintf(stderr, "postdrop: %s: %s\n", path, strerror(errno));
		rc = errno == EACCES ? EX_NOPERM : EX_TEMPFAIL;
		goto out;
	}
	queueid_new(qid);
	snprintf(tmp_name, sizeof(tmp_name), "tmp.%s", qid);
	tmp_active = 1;
	fd = openat(tmp_dirfd, tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	if (fd < 0) {
		tmp_active = 0;
		fprintf(stderr, "postdrop: create %s/%s: %s\n", path, tmp_name, strerror(errno));
		rc = errno == EACCES ? EX_NOPERM : EX_TEMPFAIL;
		goto out;
	}
	rc = write_file(fd, &e, &lr);
	if (close(fd) < 0 && rc == EX_OK) {
		fprintf(stderr, "postdrop: close maildrop file: %s\n", strerror(errno));
		rc = EX_TEMPFAIL;
	}
	if (rc == EX_OK && renameat(tmp_dirfd, tmp_name, tmp_dirfd, qid) < 0) {
		fprintf(stderr, "postdrop: rename %s/%s: %s\n", path, tmp_name, strerror(errno));
		rc = EX_TEMPFAIL;
	}
	if (rc != EX_OK)
		(void)unlinkat(tmp_dirfd, tmp_name, 0);
	tmp_active = 0;
	if (rc == EX_OK)
		send_pickup(PICKUP_WAKEUP);
out:
	md_env_free(&e);
	lr_free(&lr);
	return rc;
}
