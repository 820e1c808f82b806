/*
 * maildir — Maildir delivery (the qmail protocol).
 *
 * A message is written to tmp/UNIQUE (created with O_EXCL|O_NOFOLLOW, mode
 * 0600), preceded by "Return-Path: <sender>" and "Delivered-To: rcpt",
 * fsynced, hard-linked into new/UNIQUE (rename when the file system has no
 * hard links), the tmp/ name removed and new/ fsynced.  Only then is the
 * delivery reported done.  On any failure both names are removed and the
 * result is temporary: 4.2.2 for a full disk or quota, 4.3.0 otherwise.
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
			 (long)getpid(), ++maildir_counter, host);
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

/* Copy the content into fd. 0 or -1 (errno). */
static int copy_content(const struct local_msg *msg, int fd)
{
	char *chunk = xmalloc(LOCAL_CHUNK);
	unsigned long long pos = 0;
	int ret = 0;
	while (pos < msg->length) {
		ssize_t r = local_msg_pread(msg, pos, chunk, LOCAL_CHUNK);
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			ret = -1;
			break;
		}
		if (write_all(fd, chunk, (size_t)r) < 0) {
			ret = -1;
			break;
		}
		pos += (unsigned long long)r;
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

void maildir_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender,
		     const char *rcpt, struct deliver_rcpt *rc)
{
	char name[256], tmpp[PATH_MAX], newp[PATH_MAX], newdir[PATH_MAX];
	struct buf hdr;
	int fd, n1, n2, n3;

	if (maildir_unique_name(name, sizeof(name)) < 0) {
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot make a unique file name");
		return;
	}
	n1 = snprintf(tmpp, sizeof(tmpp), "%stmp/%s", d->path, name);
	n2 = snprintf(newp, sizeof(newp), "%snew/%s", d->path, name);
	n3 = snprintf(newdir, sizeof(newdir), "%snew", d->path);
	if (n1 < 0 || n2 < 0 || n3 < 0 || (size_t)n1 >= sizeof(tmpp) || (size_t)n2 >= sizeof(newp) ||
	    (size_t)n3 >= sizeof(newdir)) {
		fail(rc, "path too long:", d->path, ENAMETOOLONG);
		return;
	}

	const int oflags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	fd = open(tmpp, oflags, 0600);
	if (fd < 0 && errno == ENOENT) {
		if (make_maildir(d) < 0) {
			fail(rc, "create maildir", d->path, errno);
			return;
		}
		fd = open(tmpp, oflags, 0600);
	}
	if (fd < 0) {
		fail(rc, "create", tmpp, errno);
		return;
	}

	buf_init(&hdr, 2 * ADDR_SIZE + 64);
	int hok = buf_printf(&hdr, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);
	if (hok < 0 || write_all(fd, hdr.data, hdr.len) < 0 || copy_content(msg, fd) < 0) {
		int e = hok < 0 ? ENAMETOOLONG : errno;
		buf_free(&hdr);
		close(fd);
		unlink(tmpp);
		fail(rc, "write", tmpp, e);
		return;
	}
	buf_free(&hdr);
	if (fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmpp);
		fail(rc, "fsync", tmpp, e);
		return;
	}
	if (close(fd) < 0) {
		int e = errno;
		unlink(tmpp);
		fail(rc, "close", tmpp, e);
		return;
	}
	if (publish(tmpp, newp) < 0) {
		int e = errno;
		unlink(tmpp);
		fail(rc, "link into", newp, e);
		return;
	}
	unlink(tmpp); /* gone already after a rename */
	if (fsync_dir(newdir) < 0) {
		/* Not durable: take it back so the retry cannot duplicate it. */
		int e = errno;
		unlink(newp);
		fail(rc, "fsync", newdir, e);
		return;
	}
	deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered to maildir");
}
