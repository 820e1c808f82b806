/*
 * maildir — Maildir delivery (the qmail protocol).
 *
 * A message, preceded by "Return-Path: <sender>" and "Delivered-To: rcpt",
 * is written as an unnamed file in tmp/ (O_TMPFILE, mode 0600), fsynced,
 * linked to new/UNIQUE through /proc/self/fd, and new/ fsynced.  Only then
 * is the delivery reported done.  A reader never sees a partial file: the
 * file has no name until its data is on disk.  Compared with a tmp/ name
 * this saves creating and removing that name (two directory updates and
 * the unlink) per message.
 *
 * Where that cannot work (a file system or kernel without O_TMPFILE:
 * EOPNOTSUPP, EISDIR, EINVAL; a failed link through /proc, e.g. ENOENT
 * when /proc is not mounted) the message is written again the classic
 * way: tmp/UNIQUE (O_EXCL|O_NOFOLLOW, mode 0600), fsynced, hard-linked into
 * new/UNIQUE (rename when the file system has no hard links), the tmp/ name
 * removed, new/ fsynced.  A process that met an environment without the
 * O_TMPFILE way (no O_TMPFILE, no /proc, links refused) uses the classic
 * way from then on.
 *
 * On any failure nothing is left in tmp/ or new/ and the result is
 * temporary: 4.2.2 for a full disk or quota, 4.3.0 otherwise.
 *
 * Missing directories (the Maildir and its tmp/new/cur, and the components
 * of home_mailbox below the home directory) are created mode 0700 by the
 * delivering user, on the first failed open only, so the common case costs
 * one open.
 *
 * Public: maildir_deliver, maildir_unique_name.  Runs with the identity of
 * the mailbox owner (local_deliver.c arranges that).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "buf.h"
#include "conf.h"
#include "local.h"
#include "log.h"
#include "selfpid.h"
#include "sock.h"
#include "xalloc.h"

static unsigned long maildir_counter;

/* The host part of a unique name: '/' and ':' encoded as the Maildir
 * specification asks, other unusual bytes replaced. */
static void unique_host(char *out, size_t outsize)
{
	char host[256];
	const char *h = cf.myhostname;
	if (h == NULL || *h == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			str_copy(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		h = host;
	}
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)h; *p && o + 5 < outsize && o < 64; p++) {
		if (*p == '/' || *p == ':') {
			snprintf(out + o, outsize - o, "\\%03o", *p);
			o += 4;
		} else {
			out[o++] = (*p > 32 && *p < 127) ? (char)*p : '_';
		}
	}
	out[o] = '\0';
	if (o == 0)
		snprintf(out, outsize, "localhost");
}

int maildir_unique_name(char *out, size_t outsize)
{
	struct timeval tv;
	char host[80];
	gettimeofday(&tv, NULL);
	unique_host(host, sizeof(host));
	int n = snprintf(out, outsize, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec,
			 (long)self_pid(), ++maildir_counter, host);
	return (n < 0 || (size_t)n >= outsize) ? -1 : 0;
}

/* Create one directory (mode 0700); fine when it already is a directory. */
static int mkdir_one(const char *path)
{
	struct stat st;
	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -1;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/* Create the Maildir of d: the components below its root, then tmp/new/cur. */
static int make_maildir(const struct local_dest *d)
{
	char p[PATH_MAX];
	static const char *const sub[] = { "tmp", "new", "cur" };
	size_t len = strlen(d->path);

	if (str_copy(p, sizeof(p), d->path) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (d->create_root && d->root_len > 0) {
		p[d->root_len] = '\0';
		if (mkdir_one(p) < 0)
			return -1;
		p[d->root_len] = d->path[d->root_len];
	}
	for (size_t i = d->root_len + 1; i < len; i++) {
		if (p[i] != '/')
			continue;
		p[i] = '\0';
		int r = mkdir_one(p);
		p[i] = '/';
		if (r < 0)
			return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		if (len + 4 >= sizeof(p)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(p + len, sub[i], 4);
		if (mkdir_one(p) < 0)
			return -1;
	}
	return 0;
}

/* Write the delivery header and the content into fd.  The header goes out
 * with the first piece of content: one write for a message that fits in
 * LOCAL_CHUNK.  0 or -1 (errno). */
static int write_message(int fd, const struct local_msg *msg, const char *sender, const char *rcpt)
{
	char *chunk = xmalloc(LOCAL_CHUNK);
	unsigned long long pos = 0;
	int ret = 0;
	int h = snprintf(chunk, LOCAL_CHUNK, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
	if (h < 0 || h >= LOCAL_CHUNK) {
		free(chunk);
		errno = ENAMETOOLONG;
		return -1;
	}
	size_t fill = (size_t)h;
	while (fill > 0 || pos < msg->length) {
		if (pos < msg->length) {
			ssize_t r = local_msg_pread(msg, pos, chunk + fill, LOCAL_CHUNK - fill);
			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				ret = -1;
				break;
			}
			pos += (unsigned long long)r;
			fill += (size_t)r;
		}
		if (write_all(fd, chunk, fill) < 0) {
			ret = -1;
			break;
		}
		fill = 0;
	}
	free(chunk);
	return ret;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

static void fail(struct deliver_rcpt *rc, const char *what, const char *path, int err)
{
	const char *dsn = (err == ENOSPC || err == EDQUOT) ? "4.2.2" : "4.3.0";
	log_warning("maildir delivery to %s failed: %s %s: %s", rc->address, what, path, strerror(err));
	if (err == ENOSPC || err == EDQUOT)
		deliver_set_result(rc, DELIVER_TEMP, dsn, "mailbox full: %s", strerror(err));
	else
		deliver_set_result(rc, DELIVER_TEMP, dsn, "maildir delivery failed: %s %s: %s", what, path,
				   strerror(err));
}

/* Link tmp into new (rename where hard links are not supported). */
static int publish(const char *tmpp, const char *newp)
{
	if (link(tmpp, newp) == 0)
		return 0;
	if (errno == EPERM || errno == ENOTSUP || errno == ENOSYS || errno == EXDEV || errno == EMLINK)
		return rename(tmpp, newp);
	return -1;
}

/* Where a delivery writes: the unique name and the paths built from it. */
struct maildir_names {
	char name[256];
	char tmpp[PATH_MAX];   /* tmp/NAME (classic) */
	char newp[PATH_MAX];   /* new/NAME */
	char newdir[PATH_MAX]; /* new */
	char tmpdir[PATH_MAX]; /* tmp */
};

/* Set once the O_TMPFILE way cannot work in this process's environment
 * (no /proc, no hard links): later deliveries go straight to the classic
 * way instead of writing the message twice. */
static int tmpfile_unusable;

/* 1 when a failed linkat through /proc says the mechanism is unavailable
 * here rather than that this one delivery failed (space, I/O). */
static int link_unavailable(int err)
{
	return err == ENOENT || err == ENOTDIR || err == EPERM || err == EACCES || err == EXDEV ||
	       err == ENOSYS || err == EOPNOTSUPP || err == ELOOP;
}

/* Open new/ of d, creating the Maildir on first use.  -1 with rc set. */
static int open_newdir(const struct local_dest *d, const struct maildir_names *n, struct deliver_rcpt *rc)
{
	const int dflags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	int dfd = open(n->newdir, dflags);
	if (dfd < 0 && errno == ENOENT) {
		if (make_maildir(d) < 0) {
			fail(rc, "create maildir", d->path, errno);
			return -1;
		}
		dfd = open(n->newdir, dflags);
	}
	if (dfd < 0)
		fail(rc, "open", n->newdir, errno);
	return dfd;
}

/* Name the written, fsynced unnamed file fd new/NAME, then make that
 * durable.  0 delivered; 1 the link is impossible here (nothing visible:
 * fall back); -1 failed with rc set (nothing left in new/). */
static int tmpfile_publish(int dfd, int fd, const struct maildir_names *n, struct deliver_rcpt *rc)
{
	char proc[64];
	int k = snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (k < 0 || (size_t)k >= sizeof(proc) ||
	    linkat(AT_FDCWD, proc, dfd, n->name, AT_SYMLINK_FOLLOW) < 0) {
		int e = errno;
		close(fd);
		if (link_unavailable(e))
			tmpfile_unusable = 1;
		log_warning("maildir delivery to %s: cannot link %s (%s): writing it through tmp/",
			    rc->address, n->newp, strerror(e));
		return 1;
	}
	const char *what = NULL, *path = NULL;
	if (close(fd) < 0) {
		what = "close";
		path = n->newp;
	} else if (fsync(dfd) < 0) {
		what = "fsync";
		path = n->newdir;
	}
	if (what) {
		/* Not durable: take it back so the retry cannot duplicate it. */
		int e = errno;
		unlinkat(dfd, n->name, 0);
		fail(rc, what, path, e);
		return -1;
	}
	return 0;
}

/*
 * The O_TMPFILE way: an unnamed file in tmp/ is written and fsynced, then
 * linked to new/NAME through /proc/self/fd and new/ fsynced.  Neither a
 * tmp/ name nor its removal is needed, and a failure at any step leaves
 * nothing behind (an unnamed file vanishes with its descriptor).  Returns
 * 0 when rc holds the result, 1 when this file system or environment
 * cannot do it (nothing was written under any name: use the classic way).
 */
static int deliver_tmpfile(const struct local_dest *d, const struct maildir_names *n,
			   const struct local_msg *msg, const char *sender, const char *rcpt,
			   struct deliver_rcpt *rc)
{
	int dfd = open_newdir(d, n, rc);
	if (dfd < 0)
		return 0;
	/* Unnamed, in tmp/ as a file being written belongs (an admin's lsof
	 * shows it there); linking across the Maildir's directories is fine. */
	const int tflags = O_TMPFILE | O_WRONLY | O_CLOEXEC;
	int fd = openat(AT_FDCWD, n->tmpdir, tflags, 0600);
	if (fd < 0 && errno == ENOENT) {
		if (make_maildir(d) < 0) {
			fail(rc, "create maildir", d->path, errno);
			close(dfd);
			return 0;
		}
		fd = openat(AT_FDCWD, n->tmpdir, tflags, 0600);
	}
	if (fd < 0) {
		int e = errno;
		close(dfd);
		/* EISDIR/EINVAL: a kernel or file system without O_TMPFILE. */
		if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) {
			tmpfile_unusable = 1;
			return 1;
		}
		fail(rc, "create in", n->tmpdir, e);
		return 0;
	}
	const char *what = NULL;
	if (write_message(fd, msg, sender, rcpt) < 0)
		what = "write new file in";
	else if (fsync(fd) < 0)
		what = "fsync new file in";
	if (what) {
		int e = errno;
		close(fd);
		close(dfd);
		fail(rc, what, n->tmpdir, e);
		return 0;
	}
	int r = tmpfile_publish(dfd, fd, n, rc);
	close(dfd);
	if (r == 0)
		deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered to maildir");
	return r == 1;
}

/* The classic way: tmp/NAME written and fsynced, linked into new/, the
 * tmp/ name removed, new/ fsynced. */
static void deliver_classic(const struct local_dest *d, const struct maildir_names *n,
			    const struct local_msg *msg, const char *sender, const char *rcpt,
			    struct deliver_rcpt *rc)
{
	const int oflags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(n->tmpp, oflags, 0600);
	if (fd < 0 && errno == ENOENT) {
		if (make_maildir(d) < 0) {
			fail(rc, "create maildir", d->path, errno);
			return;
		}
		fd = open(n->tmpp, oflags, 0600);
	}
	if (fd < 0) {
		fail(rc, "create", n->tmpp, errno);
		return;
	}
	if (write_message(fd, msg, sender, rcpt) < 0) {
		int e = errno;
		close(fd);
		unlink(n->tmpp);
		fail(rc, "write", n->tmpp, e);
		return;
	}
	if (fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(n->tmpp);
		fail(rc, "fsync", n->tmpp, e);
		return;
	}
	if (close(fd) < 0) {
		int e = errno;
		unlink(n->tmpp);
		fail(rc, "close", n->tmpp, e);
		return;
	}
	if (publish(n->tmpp, n->newp) < 0) {
		int e = errno;
		unlink(n->tmpp);
		fail(rc, "link into", n->newp, e);
		return;
	}
	unlink(n->tmpp); /* gone already after a rename */
	if (fsync_dir(n->newdir) < 0) {
		/* Not durable: take it back so the retry cannot duplicate it. */
		int e = errno;
		unlink(n->newp);
		fail(rc, "fsync", n->newdir, e);
		return;
	}
	deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered to maildir");
}

void maildir_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender,
		     const char *rcpt, struct deliver_rcpt *rc)
{
	struct maildir_names n;

	if (maildir_unique_name(n.name, sizeof(n.name)) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot make a unique file name");
		return;
	}
	int n1 = snprintf(n.tmpp, sizeof(n.tmpp), "%stmp/%s", d->path, n.name);
	int n2 = snprintf(n.newp, sizeof(n.newp), "%snew/%s", d->path, n.name);
	int n3 = snprintf(n.newdir, sizeof(n.newdir), "%snew", d->path);
	int n4 = snprintf(n.tmpdir, sizeof(n.tmpdir), "%stmp", d->path);
	if (n1 < 0 || n2 < 0 || n3 < 0 || n4 < 0 || (size_t)n1 >= sizeof(n.tmpp) ||
	    (size_t)n2 >= sizeof(n.newp) || (size_t)n3 >= sizeof(n.newdir) ||
	    (size_t)n4 >= sizeof(n.tmpdir)) {
		fail(rc, "path too long:", d->path, ENAMETOOLONG);
		return;
	}
	if (!tmpfile_unusable && deliver_tmpfile(d, &n, msg, sender, rcpt, rc) == 0)
		return;
	deliver_classic(d, &n, msg, sender, rcpt, rc);
}
