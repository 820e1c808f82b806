/*
 * pickup — maildrop/ → incoming/ (see pickup.h).  Runs as mail_owner, the
 * owner of maildrop/; the files there belong to their submitters.
 *
 * What a submitter controls: the file's content (through postdrop) and
 * nothing else.  So the submitter is the file's owner (st_uid), never a
 * field of the file: the U record must merely agree with it.  The sender
 * defaults to login@myorigin; an explicit -f sender is accepted (as Postfix
 * does) and logged.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "lineread.h"
#include "log.h"
#include "maildrop.h"
#include "pickup.h"
#include "privs.h"
#include "proto_pickup.h"
#include "proto_trigger.h"
#include "qfile.h"
#include "queueid.h"
#include "server.h"
#include "xalloc.h"

#define TMP_MAX_AGE (6 * 3600) /* a tmp.* file this old was left by a crash */
#define SCAN_BATCH 1000        /* files per scan before looking at signals again */

static void move_corrupt(int dirfd, int corrupt_fd, const char *name, long long uid, const char *why)
{
	if (renameat(dirfd, name, corrupt_fd, name) < 0) {
		log_warning("maildrop file %s (uid %lld): %s; cannot move it to corrupt/: %s", name, uid, why,
			    strerror(errno));
		/* Never loop on it: without corrupt/ it is removed. */
		(void)unlinkat(dirfd, name, 0);
		return;
	}
	log_warning("maildrop file %s (uid %lld): %s: moved to corrupt/", name, uid, why);
}

/* Canonical address: bare local parts get @myorigin.  0 or -1. */
static int qualify(const char *in, char *out, size_t outsize)
{
	struct addr a;

	if (addr_parse_mailbox(in, ADDR_NO_BRACKETS | ADDR_ALLOW_NO_DOMAIN | ADDR_UTF8, &a) != ADDR_OK || a.is_null)
		return -1;
	if (a.domain[0])
		return snprintf(out, outsize, "%s", a.mailbox) < (int)outsize ? 0 : -1;
	return snprintf(out, outsize, "%s@%s", a.local, cf.myorigin) < (int)outsize ? 0 : -1;
}

/* Fill the queue envelope from a checked maildrop envelope; NULL or why not. */
static const char *make_envelope(const struct md_env *m, const struct passwd *pw, struct qf_envelope *q)
{
	char a[ADDR_SIZE + 300];
	size_t i;

	if (m->flags & MD_F_SENDER) {
		if (m->sender[0] == 0 || strcmp(m->sender, "<>") == 0)
			a[0] = 0;
		else if (qualify(m->sender, a, sizeof(a)) < 0)
			return "bad sender address";
	} else if (snprintf(a, sizeof(a), "%s@%s", pw->pw_name, cf.myorigin) >= (int)sizeof(a)) {
		return "login name too long";
	}
	qf_set(&q->sender, a);
	qf_set(&q->envid, m->envid);
	qf_set(&q->client, "");
	q->flags = m->flags & 7u; /* the DELIVER_F_* bits */
	q->arrival = (long long)time(NULL);
	for (i = 0; i < m->nrcpt; i++) {
		if (qualify(m->rcpt[i].address, a, sizeof(a)) < 0)
			return "bad recipient address";
		qf_envelope_add_rcpt(q, a, NULL, m->rcpt[i].notify);
	}
	return NULL;
}

/* Write the queue file; 0, or -1 (logged, nothing queued). */
static int enqueue(struct qf_envelope *q, struct linereader *lr, unsigned long long len, uid_t uid)
{
	struct qf_writer w;
	char hdr[512], date[64], chunk[65536];
	struct tm tm;
	time_t now = time(NULL);
	ssize_t r;

	if (qfw_begin(&w, cf.queue_directory, q) < 0) {
		log_warning("cannot create a queue file: %s; will retry", strerror(errno));
		return -1;
	}
	if (!localtime_r(&now, &tm) || !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm))
		date[0] = 0;
	snprintf(hdr, sizeof(hdr), "Received: by %s (tern, from userid %lu)\n\tid %s; %s\n", cf.myhostname,
		 (unsigned long)uid, w.qid, date);
	qfw_write(&w, hdr, strlen(hdr));
	while (len > 0) {
		r = lr_read(lr, chunk, len < sizeof(chunk) ? (size_t)len : sizeof(chunk));
		if (r <= 0) {
			log_warning("%s: read maildrop file: %s", w.qid, r == 0 ? "short" : strerror(errno));
			qfw_abort(&w);
			return -1;
		}
		qfw_write(&w, chunk, (size_t)r);
		len -= (unsigned long long)r;
	}
	if (qfw_commit(&w) < 0) {
		log_warning("%s: cannot queue a local submission: %s; will retry", w.qid, strerror(errno));
		return -1;
	}
	snprintf(q->qid, sizeof(q->qid), "%s", w.qid);
	return 0;
}

/* Check the open file; NULL when it may be queued, else why not. */
static const char *check_file(int fd, const struct stat *st, struct linereader *lr, struct md_env *m,
			      char *err, size_t errsize)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_nlink != 1)
		return "hard-linked file";
	if ((unsigned long long)st->st_size > (unsigned long long)cf.message_size_limit + MD_MAX_HEADER)
		return "file too big";
	if (md_read(lr, MD_FILE, m, err, errsize) < 0)
		return err;
	if (m->uid != (long long)st->st_uid)
		return "U record differs from the file owner";
	if (m->header_bytes + m->length != (unsigned long long)st->st_size)
		return "length disagrees with the file size (truncated?)";
	if (m->length > (unsigned long long)cf.message_size_limit)
		return "message too big";
	(void)fd;
	return NULL;
}

enum pickup_result pickup_file(int dirfd, int corrupt_fd, const char *name)
{
	struct linereader lr;
	struct md_env m;
	struct qf_envelope q;
	struct stat st;
	struct passwd *pw;
	char err[256];
	const char *why;
	enum pickup_result res = PICKUP_RETRY;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP) {
			move_corrupt(dirfd, corrupt_fd, name, -1, "symbolic link");
			return PICKUP_CORRUPT;
		}
		if (errno != ENOENT)
			log_warning("open maildrop file %s: %s", name, strerror(errno));
		return PICKUP_RETRY;
	}
	if (fstat(fd, &st) < 0) {
		log_warning("fstat maildrop file %s: %s", name, strerror(errno));
		close(fd);
		return PICKUP_RETRY;
	}
	/* md_read initialises m itself; zeroed, md_env_free is safe whether or
	 * not the file got that far. */
	memset(&m, 0, sizeof(m));
	qf_envelope_init(&q);
	lr_init_fd(&lr, fd, MD_MAX_LINE, 0, 10000);
	why = check_file(fd, &st, &lr, &m, err, sizeof(err));
	pw = why ? NULL : getpwuid(st.st_uid);
	if (!why && !pw)
		why = "the owner uid does not exist";
	if (!why)
		why = make_envelope(&m, pw, &q);
	if (why) {
		move_corrupt(dirfd, corrupt_fd, name, (long long)st.st_uid, why);
		res = PICKUP_CORRUPT;
	} else if (enqueue(&q, &lr, m.length, st.st_uid) == 0) {
		if (unlinkat(dirfd, name, 0) < 0)
			log_warning("%s: unlink maildrop file %s: %s", q.qid, name, strerror(errno));
		log_info("%s: uid=%lu from=<%s>", q.qid, (unsigned long)st.st_uid, q.sender);
		if ((m.flags & MD_F_SENDER) && st.st_uid != 0 && st.st_uid != getuid())
			log_info("%s: uid=%lu (%s) set the sender with -f", q.qid, (unsigned long)st.st_uid,
				 pw->pw_name);
		trigger_send(cf.queue_directory, TRIGGER_INCOMING);
		res = PICKUP_QUEUED;
	}
	lr_free(&lr);
	close(fd);
	md_env_free(&m);
	qf_envelope_free(&q);
	return res;
}

/* A tmp.* file: removed when older than TMP_MAX_AGE (a crashed postdrop). */
static void old_tmp(int dirfd, const char *name, time_t now)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime + TMP_MAX_AGE < now &&
	    unlinkat(dirfd, name, 0) == 0)
		log_warning("removed stale maildrop temp file %s (uid %lu)", name, (unsigned long)st.st_uid);
}

int pickup_scan(int dirfd, int corrupt_fd)
{
	DIR *d;
	struct dirent *de;
	int n = 0, seen = 0, dfd = dup(dirfd);
	time_t now = time(NULL);

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		log_warning("scan maildrop/: %s", strerror(errno));
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL && seen < SCAN_BATCH && !server_terminating) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		seen++;
		if (strncmp(de->d_name, "tmp.", 4) == 0)
			old_tmp(dirfd, de->d_name, now);
		else if (!queueid_valid(de->d_name))
			move_corrupt(dirfd, corrupt_fd, de->d_name, -1, "unexpected file name");
		else if (pickup_file(dirfd, corrupt_fd, de->d_name) == PICKUP_QUEUED)
			n++;
	}
	closedir(d);
	return n;
}

static int open_dir(const char *sub)
{
	char path[4096];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, sub) >= (int)sizeof(path))
		log_fatal("queue_directory too long");
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		log_fatal("open %s: %s", path, strerror(errno));
	return fd;
}

void pickup_run(int sock)
{
	int dirfd = open_dir(QDIR_MAILDROP), corrupt_fd = open_dir(QDIR_CORRUPT);
	time_t last_flush = 0;

	while (!server_terminating) {
		struct pollfd p = { .fd = sock, .events = POLLIN, .revents = 0 };
		char c[16];
		ssize_t r;
		int flush = 0, i;

		pickup_scan(dirfd, corrupt_fd);
		if (poll(&p, 1, PICKUP_SCAN_SECONDS * 1000) < 0 && errno != EINTR)
			log_fatal("poll: %s", strerror(errno));
		/* Drain what is queued on the socket (bounded). */
		for (i = 0; i < 1000 && (r = recv(sock, c, sizeof(c), MSG_DONTWAIT)) >= 0; i++) {
			/* Every pass scans; a datagram only ends the wait early. */
			if (r == 1 && c[0] == PICKUP_FLUSH)
				flush = 1;
		}
		if (flush && time(NULL) != last_flush) {
			/* At most one flush a second, however many users ask. */
			last_flush = time(NULL);
			log_info("flush requested through sendmail -q");
			trigger_send(cf.queue_directory, TRIGGER_FLUSH);
		}
	}
	exit(0);
}
