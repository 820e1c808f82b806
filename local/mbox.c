/*
 * mbox — append a message to an mbox file (mailboxes and /file targets).
 *
 * Format (mboxrd): "From SENDER DATE" line, Return-Path: and Delivered-To:
 * headers, the content with every line matching ^>*From  given one more
 * '>', and a final empty line.  The sender of <> is written MAILER-DAEMON.
 *
 * Locking, as Postfix's local(8) does: a dotlock PATH.lock (created with
 * O_EXCL by the delivering user; one older than stale_lock_time is
 * removed as stale) for mailboxes, then an fcntl write lock on the file.
 * Each is tried deliver_lock_attempts times, LOCK_WAIT_MS apart (Postfix
 * waits deliver_lock_delay, 1 s; a quarter of that lets concurrent
 * deliveries to one mbox follow each other closely); a mailbox still
 * locked then is a temporary failure (4.2.0).
 *
 * Safety: the file is opened O_NOFOLLOW|O_APPEND, must be a regular file
 * with one link owned by the delivering uid (created 0600 when missing);
 * a symlink or any other unsafe file is bounced 5.2.0 untouched.
 * Its size is taken after locking; on any failure (write, fsync, EFBIG from
 * RLIMIT_FSIZE, mailbox_size_limit) it is truncated back to that size, so a
 * reader never sees half a message.  EFBIG and the size limit bounce
 * (5.2.2), a full disk defers (4.2.2), other errors defer (4.3.0).
 *
 * Public: mbox_deliver.  Runs with the identity of the mailbox owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "lineread.h"
#include "local.h"
#include "log.h"
#include "sock.h"

#define LOCK_WAIT_MS 250
#define PIECE 4096

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Create PATH.lock.  0, or -1 with errno (EAGAIN: still locked). */
static int dotlock(const char *lock)
{
	for (long long i = 0; i < cf.deliver_lock_attempts; i++) {
		int fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
		struct stat st;
		if (lstat(lock, &st) == 0 && time(NULL) - st.st_mtime > cf.stale_lock_time) {
			log_warning("removing stale lock %s", lock);
			(void)unlink(lock);
			continue;
		}
		sleep_ms(LOCK_WAIT_MS);
	}
	errno = EAGAIN;
	return -1;
}

static int fcntl_lock(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	for (long long i = 0; i < cf.deliver_lock_attempts; i++) {
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EACCES && errno != EAGAIN && errno != EINTR)
			return -1;
		sleep_ms(LOCK_WAIT_MS);
	}
	errno = EAGAIN;
	return -1;
}

/* Buffered writer with the size limit. */
struct mbw {
	int fd;
	struct buf out;
	unsigned long long written, limit; /* limit 0: none */
	int err;
};

static int mbw_flush(struct mbw *w)
{
	if (w->err)
		return -1;
	if (w->out.len && write_all(w->fd, w->out.data, w->out.len) < 0) {
		w->err = errno;
		return -1;
	}
	buf_reset(&w->out);
	return 0;
}

static int mbw_put(struct mbw *w, const char *p, size_t n)
{
	if (w->err)
		return -1;
	w->written += n;
	if (w->limit && w->written > w->limit) {
		w->err = EFBIG;
		return -1;
	}
	if (w->out.len + n > w->out.max && mbw_flush(w) < 0)
		return -1;
	if (n > w->out.max) {
		if (write_all(w->fd, p, n) < 0) {
			w->err = errno;
			return -1;
		}
		return 0;
	}
	return buf_append(&w->out, p, n);
}

struct scan {
	const struct local_msg *m;
	unsigned long long pos;
};

static ssize_t scan_read(void *ctx, void *p, size_t n)
{
	struct scan *s = ctx;
	ssize_t r = local_msg_pread(s->m, s->pos, p, n);
	if (r > 0)
		s->pos += (unsigned long long)r;
	return r;
}

/* Does the line start with >*"From "? */
static int needs_quote(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] == '>')
		i++;
	return n - i >= 5 && memcmp(p + i, "From ", 5) == 0;
}

/* Write the From_ line, headers, quoted content and the final blank line. */
static int write_message(struct mbw *w, const struct local_msg *msg, const char *sender, const char *rcpt)
{
	char head[2 * ADDR_SIZE + 128];
	time_t now = time(NULL);
	char date[64];
	struct tm tm;
	if (localtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		snprintf(date, sizeof(date), "Thu Jan  1 00:00:00 1970");
	int n = snprintf(head, sizeof(head), "From %s  %s\nReturn-Path: <%s>\nDelivered-To: %s\n",
			 *sender ? sender : "MAILER-DAEMON", date, sender, rcpt);
	if (n < 0 || (size_t)n >= sizeof(head) || mbw_put(w, head, (size_t)n) < 0)
		return -1;

	struct scan sc = { msg, 0 };
	struct linereader lr;
	struct buf line;
	enum lr_ending ending;
	int line_start = 1, last_nl = 1, rc = 0;
	lr_init(&lr, scan_read, &sc, PIECE, LR_SPLIT);
	buf_init(&line, PIECE);
	for (;;) {
		enum lr_result res = lr_getline(&lr, &line, &ending);
		if (res == LR_EOF)
			break;
		if (res != LR_LINE) {
			if (!w->err)
				w->err = errno ? errno : EIO;
			rc = -1;
			break;
		}
		if (line_start && needs_quote(line.data, line.len) && mbw_put(w, ">", 1) < 0) {
			rc = -1;
			break;
		}
		/* The reader strips LF and the CR of CRLF; content has LF ends,
		 * so a CRLF here was "\r\n" in the content: keep the CR. */
		if (mbw_put(w, line.data, line.len) < 0 || (ending == LR_END_CRLF && mbw_put(w, "\r", 1) < 0) ||
		    (ending != LR_END_NONE && mbw_put(w, "\n", 1) < 0)) {
			rc = -1;
			break;
		}
		line_start = ending != LR_END_NONE;
		last_nl = line_start;
	}
	buf_free(&line);
	lr_free(&lr);
	if (rc < 0)
		return -1;
	/* A message without a final newline gets one, then the separator. */
	if ((!last_nl && mbw_put(w, "\n", 1) < 0) || mbw_put(w, "\n", 1) < 0)
		return -1;
	return mbw_flush(w);
}

static void set_failure(struct deliver_rcpt *rc, const char *path, int err)
{
	if (err == EFBIG)
		deliver_set_result(rc, DELIVER_PERM, "5.2.2", "mailbox %s is full (size limit)", path);
	else if (err == ENOSPC || err == EDQUOT)
		deliver_set_result(rc, DELIVER_TEMP, "4.2.2", "mailbox full: %s", strerror(err));
	else if (err == EAGAIN)
		deliver_set_result(rc, DELIVER_TEMP, "4.2.0", "mailbox %s is locked", path);
	else
		deliver_set_result(rc, DELIVER_TEMP, "4.3.0", "cannot update mailbox %s: %s", path, strerror(err));
}

void mbox_deliver(const struct local_dest *d, const struct local_msg *msg, const char *sender, const char *rcpt,
		  struct deliver_rcpt *rc)
{
	char lock[PATH_MAX];
	int use_dotlock = d->kind == LOCAL_DEST_MBOX, locked = 0, fd = -1, err = 0;
	struct stat st;
	struct mbw w = { .fd = -1 };

	/* RLIMIT_FSIZE must fail the write (EFBIG), not kill us. */
	signal(SIGXFSZ, SIG_IGN);
	if (use_dotlock) {
		int n = snprintf(lock, sizeof(lock), "%s.lock", d->path);
		if (n < 0 || (size_t)n >= sizeof(lock)) {
			set_failure(rc, d->path, ENAMETOOLONG);
			return;
		}
		if (dotlock(lock) < 0) {
			err = errno;
			log_warning("cannot lock %s: %s", d->path, strerror(err));
			set_failure(rc, d->path, err);
			return;
		}
		locked = 1;
	}
	fd = open(d->path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ELOOP) {
		/* A symlink (or a hard link to one) is a mailbox problem that
		 * waiting will not fix: bounced like a multiply linked file, as
		 * Postfix bounces (5.2.0) what its safe_open refuses. */
		log_warning("refusing mailbox %s: a symbolic link", d->path);
		deliver_set_result(rc, DELIVER_PERM, "5.2.0", "refusing to deliver to %s: symbolic link", d->path);
		goto done;
	}
	if (fd < 0) {
		err = errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid()) {
		log_warning("refusing mailbox %s: not a regular file with one link owned by uid %ld", d->path,
			    (long)geteuid());
		deliver_set_result(rc, DELIVER_PERM, "5.2.0", "refusing to deliver to %s: unsafe file", d->path);
		goto done;
	}
	if (fcntl_lock(fd) < 0 || fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	off_t orig = st.st_size;
	w.fd = fd;
	buf_init(&w.out, LOCAL_CHUNK);
	w.limit = cf.mailbox_size_limit > 0 && (unsigned long long)cf.mailbox_size_limit > (unsigned long long)orig
			  ? (unsigned long long)cf.mailbox_size_limit - (unsigned long long)orig
			  : (cf.mailbox_size_limit > 0 ? 1 : 0);
	if (cf.mailbox_size_limit > 0 && (unsigned long long)orig >= (unsigned long long)cf.mailbox_size_limit)
		w.err = EFBIG;
	int r = w.err ? -1 : write_message(&w, msg, sender, rcpt);
	if (r == 0 && fsync(fd) < 0)
		w.err = errno;
	buf_free(&w.out);
	if (r < 0 || w.err) {
		err = w.err ? w.err : EIO;
		if (ftruncate(fd, orig) < 0 || fsync(fd) < 0)
			log_warning("cannot truncate %s back to %lld bytes: %s", d->path, (long long)orig,
				    strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		err = errno;
		fd = -1;
		goto out;
	}
	fd = -1;
	if (d->kind == LOCAL_DEST_FILE)
		deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered to file: %s", d->path);
	else
		deliver_set_result(rc, DELIVER_OK, "2.0.0", "delivered to mailbox");
	goto done;
out:
	log_warning("mbox delivery to %s for %s failed: %s", d->path, rcpt, strerror(err));
	set_failure(rc, d->path, err);
done:
	if (fd >= 0)
		close(fd);
	if (locked)
		(void)unlink(lock);
}
