/*
 * local_deliver — run one delivery (or one file read) with the right identity.
 *
 * The root part of the agent stays tiny: when the destination needs another
 * uid, a child is forked that drops to the mailbox owner's uid/gid and
 * supplementary groups (privs_drop, which verifies the drop and is fatal on
 * any failure), checks once more that it cannot be root, and only then
 * touches any path.  The child sends its result back over a pipe as one
 * fixed-size record (smaller than PIPE_BUF, so written atomically); the
 * parent validates it and gives the child local_child_timeout() seconds
 * before killing it.  A child that dies without a result is a temporary
 * failure.
 *
 * local_read_file_as reads .forward and :include: files the same way: the
 * child opens the file as the user (O_NOFOLLOW), checks owner and mode on
 * the open descriptor and streams at most ALIAS_LIST_FILE_MAX bytes back.
 *
 * Loop detection (Delivered-To: already naming this recipient) happens
 * here, before any mailbox is touched.
 *
 * A Maildir delivery to another uid goes to a worker kept for that uid
 * instead (local_worker.c); if none can be had, a child is forked as above.
 *
 * Public: local_deliver_dest, local_read_file_as, local_child_timeout,
 * local_become, local_apply_result.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "clock.h"
#include "conf.h"
#include "local.h"
#include "log.h"
#include "privs.h"
#include "sock.h"

struct child_result {
	int status; /* enum deliver_status */
	char dsn[16];
	char text[DELIVER_MAX_TEXT];
};

long local_child_timeout(void)
{
	long t = LOCAL_CHILD_TIMEOUT;
	if (cf.command_time_limit + 60 > t)
		t = (long)cf.command_time_limit + 60;
	return t;
}

/* The delivery proper, with the identity already right. */
static void deliver_as_self(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			    struct deliver_rcpt *rc)
{
	switch (d->kind) {
	case LOCAL_DEST_MAILDIR:
		maildir_deliver(d, msg, sender, rc->address, rc);
		return;
	case LOCAL_DEST_MBOX:
	case LOCAL_DEST_FILE:
		mbox_deliver(d, msg, sender, rc->address, rc);
		return;
	case LOCAL_DEST_PIPE:
		pipe_deliver(d, msg, sender, rc->address, rc);
		return;
	}
	log_panic("local_deliver: unknown destination kind %d", (int)d->kind);
}

/* Become uid/gid for good; the check after privs_drop is belt and braces. */
void local_become(uid_t uid, gid_t gid, const char *pw_name)
{
	privs_drop(uid, gid, NULL, pw_name && *pw_name ? pw_name : NULL);
	if (geteuid() == 0 || getuid() == 0 || uid == 0 || setuid(0) == 0)
		log_panic("local delivery child still has uid 0");
}

__attribute__((noreturn)) static void child_main(int wfd, const struct local_dest *d, const struct local_msg *msg,
						const char *sender, const struct deliver_rcpt *orig)
{
	struct deliver_rcpt rc = *orig;
	struct child_result res;

	local_become(d->uid, d->gid, d->pw_name);
	deliver_as_self(d, msg, sender, &rc);
	memset(&res, 0, sizeof(res));
	res.status = (int)rc.status;
	memcpy(res.dsn, rc.dsn, sizeof(res.dsn));
	memcpy(res.text, rc.text, sizeof(res.text));
	res.dsn[sizeof(res.dsn) - 1] = '\0';
	res.text[sizeof(res.text) - 1] = '\0';
	ssize_t w;
	do
		w = write(wfd, &res, sizeof(res));
	while (w < 0 && errno == EINTR);
	_exit(w == (ssize_t)sizeof(res) ? 0 : 1);
}

/* Read up to max bytes from rfd until EOF within seconds (on the
 * monotonic clock: a wall-clock jump neither cuts nor stretches it).
 * Returns bytes read, or -1 on timeout/error. */
static ssize_t read_until_eof(int rfd, void *p, size_t max, long long seconds)
{
	size_t got = 0;
	long long deadline = clock_ms() + seconds * 1000;
	for (;;) {
		long long now = clock_ms();
		if (now >= deadline)
			return -1;
		struct pollfd pf = { .fd = rfd, .events = POLLIN };
		int r = poll(&pf, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		char extra;
		/* Once full, one more read must see EOF: more is a bad child. */
		ssize_t n = got == max ? read(rfd, &extra, 1) : read(rfd, (char *)p + got, max - got);
		if (got == max && n > 0)
			return -1;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return (ssize_t)got;
		got += (size_t)n;
	}
}

/* Reap pid (killing it first when kill_it); 1 when it exited with 0. */
static int reap(pid_t pid, int kill_it)
{
	int wst = 0;
	pid_t w;
	if (kill_it)
		kill(pid, SIGKILL);
	do
		w = waitpid(pid, &wst, 0);
	while (w < 0 && errno == EINTR);
	return w == pid && WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
}

static void deliver_in_child(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			     struct deliver_rcpt *rc)
{
	int pfd[2];
	struct child_result res;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot create pipe: %s", strerror(errno));
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot fork: %s", strerror(e));
		return;
	}
	if (pid == 0) {
		close(pfd[0]);
		child_main(pfd[1], d, msg, sender, rc);
	}
	close(pfd[1]);
	ssize_t got = read_until_eof(pfd[0], &res, sizeof(res), (long long)local_child_timeout());
	close(pfd[0]);
	int ok = got == (ssize_t)sizeof(res);
	if (!reap(pid, !ok))
		ok = 0;

	if (!ok)
		log_warning("delivery child %ld for %s failed or timed out", (long)pid, rc->address);
	local_apply_result(rc, ok, res.status, res.dsn, sizeof(res.dsn), res.text, sizeof(res.text));
}

void local_apply_result(struct deliver_rcpt *rc, int ok, int status, char *dsn, size_t dsnsize, char *text,
			size_t textsize)
{
	if (ok) {
		dsn[dsnsize - 1] = '\0';
		text[textsize - 1] = '\0';
		char cls = dsn[0];
		/* The child runs as a user: its word is checked, not trusted. */
		if ((status == DELIVER_OK && cls == '2') || (status == DELIVER_TEMP && cls == '4') ||
		    (status == DELIVER_PERM && cls == '5')) {
			deliver_set_result(rc, (enum deliver_status)status, dsn, "%s", text);
			return;
		}
		log_warning("delivery process for %s sent an inconsistent result", rc->address);
	}
	deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "local delivery process failed");
}

void local_deliver_dest(const struct local_dest *d, const struct local_msg *msg, const char *sender,
			struct deliver_rcpt *rc)
{
	if (msg->too_many_delivered_to) {
		deliver_set_result(rc, DELIVER_PERM, "5.4.6", "mail forwarding loop (too many Delivered-To headers)");
		return;
	}
	if (local_msg_has_delivered_to(msg, rc->address)) {
		deliver_set_result(rc, DELIVER_PERM, "5.4.6", "mail forwarding loop for %s", rc->address);
		return;
	}
	if (d->switch_user && d->kind == LOCAL_DEST_MAILDIR && local_worker_deliver(d, msg, sender, rc) == 0)
		return;
	if (d->switch_user)
		deliver_in_child(d, msg, sender, rc);
	else
		deliver_as_self(d, msg, sender, rc);
}

/* ---- reading .forward and :include: files as their user ---- */

/* Reply codes of the reader child: first byte, then content or reason. */
enum { READ_OK = 'O', READ_ABSENT = 'A', READ_REFUSED = 'R', READ_TEMP = 'T' };

/* Open and check path as the current identity; writes code + payload to fd. */
static void read_file_here(const char *path, uid_t owner, int out)
{
	char msg[300];
	int code = READ_OK;
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	msg[0] = '\0';
	/* A directory others may write lets them swap the file: refuse it
	 * unless sticky (as /tmp is). */
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t dlen = slash && slash != path ? (size_t)(slash - path) : 1;
	struct stat dst;
	if (dlen < sizeof(dir)) {
		memcpy(dir, path, dlen);
		dir[dlen] = '\0';
		if (stat(dir, &dst) == 0 && (dst.st_mode & (S_IWGRP | S_IWOTH)) && !(dst.st_mode & S_ISVTX)) {
			if (fd >= 0)
				close(fd);
			fd = -1;
			errno = EPERM;
		}
	}
	if (fd < 0 && errno == EPERM) {
		code = READ_REFUSED;
		snprintf(msg, sizeof(msg), "its directory is group or world writable");
	} else if (fd < 0) {
		if (errno == ELOOP) {
			code = READ_REFUSED;
			snprintf(msg, sizeof(msg), "is a symbolic link");
		} else if (errno == ENOENT || errno == ENOTDIR) {
			code = READ_ABSENT;
		} else if (errno == EACCES) {
			code = READ_REFUSED;
			snprintf(msg, sizeof(msg), "not readable: %s", strerror(errno));
		} else {
			code = READ_TEMP;
			snprintf(msg, sizeof(msg), "%s", strerror(errno));
		}
	} else if (fstat(fd, &st) < 0) {
		code = READ_TEMP;
		snprintf(msg, sizeof(msg), "fstat: %s", strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		code = READ_REFUSED;
		snprintf(msg, sizeof(msg), "not a regular file");
	} else if (st.st_uid != owner && st.st_uid != 0) {
		code = READ_REFUSED;
		snprintf(msg, sizeof(msg), "owned by uid %ld, not by the user or root", (long)st.st_uid);
	} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		code = READ_REFUSED;
		snprintf(msg, sizeof(msg), "group or world writable");
	} else if (st.st_size > ALIAS_LIST_FILE_MAX) {
		code = READ_REFUSED;
		snprintf(msg, sizeof(msg), "larger than %ld bytes", ALIAS_LIST_FILE_MAX);
	}
	char c = (char)code;
	if (write_all(out, &c, 1) < 0)
		_exit(1);
	if (code != READ_OK) {
		if (fd >= 0)
			close(fd); /* refused after the open (owner, mode, size) */
		if (write_all(out, msg, strlen(msg)) < 0)
			_exit(1);
		return;
	}
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			_exit(1); /* the parent sees a short answer: temporary */
		if (n == 0)
			break;
		if (write_all(out, chunk, (size_t)n) < 0)
			_exit(1);
	}
	close(fd);
}

int local_read_file_as(const struct local_ident *id, const char *path, struct buf *out, char *why,
		       size_t whysize, struct deliver_rcpt *rc)
{
	int pfd[2];
	static char data[ALIAS_LIST_FILE_MAX + 1];

	why[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot create pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot fork: %s", strerror(e));
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		if (id->switch_user)
			local_become(id->uid, id->gid, id->pw_name);
		read_file_here(path, id->uid, pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	ssize_t got = read_until_eof(pfd[0], data, sizeof(data), 60);
	close(pfd[0]);
	int exited_ok = reap(pid, got < 0);
	if (got < 1 || !exited_ok || data[0] == READ_TEMP) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot read %s", path);
		log_warning("cannot read %s as uid %ld", path, (long)id->uid);
		return -1;
	}
	if (data[0] == READ_ABSENT)
		return 0;
	if (data[0] == READ_REFUSED) {
		snprintf(why, whysize, "%.*s", (int)(got - 1), data + 1);
		log_warning("ignoring %s: %s", path, why);
		return 0;
	}
	if (data[0] != READ_OK || got - 1 > ALIAS_LIST_FILE_MAX) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot read %s", path);
		return -1;
	}
	buf_reset(out);
	if (buf_append(out, data + 1, (size_t)got - 1) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "%s too large", path);
		return -1;
	}
	return 1;
}
