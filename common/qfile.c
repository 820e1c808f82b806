/*
 * qfile — writing and reading queue files (format and durability rules in
 * qfile.h).
 *
 * The writer keeps the envelope small and written at once, buffers content
 * in 64 KiB pieces, and makes errors sticky so a receiver can drain its
 * client before reporting.  The reader is deliberately unforgiving: anything
 * it does not expect makes the file corrupt rather than half-understood.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "dirsync.h"
#include "lineread.h"
#include "log.h"
#include "qfile.h"
#include "selfpid.h"
#include "sock.h"
#include "strutil.h"
#include "xalloc.h"

#define QF_WRITE_CHUNK 65536
#define QF_LINE_MAX 4096
#define QF_NUMLEN 20

void qf_envelope_init(struct qf_envelope *e)
{
	memset(e, 0, sizeof(*e));
	e->envid = xstrdup("");
	e->client = xstrdup("");
	e->sender = xstrdup("");
	e->reason = xstrdup("");
}

void qf_envelope_free(struct qf_envelope *e)
{
	size_t i;

	for (i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].address);
		free(e->rcpt[i].orcpt);
	}
	free(e->rcpt);
	free(e->envid);
	free(e->client);
	free(e->sender);
	free(e->reason);
	memset(e, 0, sizeof(*e));
}

void qf_set(char **field, const char *s)
{
	free(*field);
	*field = xstrdup(s ? s : "");
}

void qf_envelope_add_rcpt(struct qf_envelope *e, const char *address, const char *orcpt, unsigned notify)
{
	struct qf_rcpt *r;

	e->rcpt = xreallocarray(e->rcpt, e->nrcpt + 1, sizeof(*e->rcpt));
	r = &e->rcpt[e->nrcpt++];
	memset(r, 0, sizeof(*r));
	r->address = xstrdup(address);
	r->orcpt = orcpt ? xstrdup(orcpt) : NULL;
	r->notify = notify;
	r->state = QF_PENDING;
	r->parent = -1;
}

int qf_state_done(char st)
{
	return st != QF_PENDING;
}

static int state_ok(char st)
{
	return st == QF_PENDING || st == QF_DELIVERED || st == QF_BOUNCED || st == QF_SUCCESS ||
	       st == QF_RELAYED || st == QF_EXPANDED;
}

int qf_make_dirs(const char *queue_dir)
{
	static const char *const dirs[] = { QDIR_TMP,     QDIR_INCOMING, QDIR_ACTIVE,  QDIR_DEFERRED, QDIR_HOLD,
					    QDIR_CORRUPT, QDIR_PRIVATE,  QDIR_RECYCLE, NULL };
	char path[4096];
	size_t i;

	if (mkdir(queue_dir, 0755) < 0 && errno != EEXIST)
		return -1;
	for (i = 0; dirs[i]; i++) {
		if (snprintf(path, sizeof(path), "%s/%s", queue_dir, dirs[i]) >= (int)sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	/* maildrop/: local submissions (postdrop, setgid to the submission
	 * group, issue 8) may create files but not list or read them. */
	if (snprintf(path, sizeof(path), "%s/%s", queue_dir, QDIR_MAILDROP) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((mkdir(path, 01730) < 0 && errno != EEXIST) || chmod(path, 01730) < 0)
		return -1;
	/* public/: only the submission group may reach public/pickup. */
	if (snprintf(path, sizeof(path), "%s/%s", queue_dir, QDIR_PUBLIC) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((mkdir(path, 0710) < 0 && errno != EEXIST) || chmod(path, 0710) < 0)
		return -1;
	return 0;
}

/* A field may go into a record when it has no control character; fields
 * that end a record may hold spaces, the others not. */
static int field_ok(const char *s, int spaces_ok)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return 0;
		if (*p == ' ' && !spaces_ok)
			return 0;
	}
	return 1;
}

static int envelope_text(const struct qf_envelope *env, const char *qid, struct buf *out, off_t *z_off)
{
	size_t i;
	int rc = 0;

	if (!field_ok(env->envid, 0) || !field_ok(env->client, 1) || !field_ok(env->sender, 1) ||
	    env->nrcpt == 0 || env->nrcpt > QF_MAX_RCPT)
		return -1;
	rc |= buf_printf(out, "V %d\nQ %s\nT %lld\n", QF_VERSION, qid, env->arrival);
	*z_off = (off_t)out->len + 2;
	rc |= buf_printf(out, "Z %0*d %0*d\n", QF_NUMLEN, 0, QF_NUMLEN, 0);
	rc |= buf_printf(out, "F %u\nN %s\nC %s\nS %s\n", env->flags, env->envid, env->client, env->sender);
	for (i = 0; i < env->nrcpt && rc == 0; i++) {
		const struct qf_rcpt *r = &env->rcpt[i];
		const char *orcpt = r->orcpt && *r->orcpt ? r->orcpt : "-";

		if (!field_ok(r->address, 1) || !*r->address || !field_ok(orcpt, 0))
			return -1;
		rc |= buf_printf(out, "R %c %u %s %s\n", QF_PENDING, r->notify, orcpt, r->address);
	}
	rc |= buf_puts(out, "E\n");
	return rc ? -1 : 0;
}

static int open_dir(const char *queue_dir, const char *sub)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/%s", queue_dir, sub) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * The queue directories a writer needs, opened once per process and kept
 * (a receiver queues thousands of messages with the same four): tmp/,
 * incoming/, recycle/ (-1 when it cannot be opened: files are created
 * instead) and the group-commit state of incoming/ (fsync alone when it
 * cannot be had).  A directory removed and made again under the same name
 * makes the create fail with ENOENT; the writer then opens them afresh
 * once.  A forked child opens its own: sharing the state file's open file
 * description would share the group-commit leader's lock with the parent.
 */
static struct {
	char path[4096];
	int tmp, incoming, recycle;
	struct dirsync sync;
	int valid;
} qdirs = { .tmp = -1, .incoming = -1, .recycle = -1, .sync = { -1, NULL } };

static void qdirs_close(void)
{
	if (qdirs.tmp >= 0)
		close(qdirs.tmp);
	if (qdirs.incoming >= 0)
		close(qdirs.incoming);
	if (qdirs.recycle >= 0)
		close(qdirs.recycle);
	dirsync_close(&qdirs.sync);
	qdirs.tmp = qdirs.incoming = qdirs.recycle = -1;
	qdirs.valid = 0;
}

static int qdirs_atfork_registered;

static int qdirs_open(const char *queue_dir)
{
	char sync_path[4096 + 64];
	size_t n = strlen(queue_dir);

	if (qdirs.valid && strcmp(qdirs.path, queue_dir) == 0)
		return 0;
	qdirs_close();
	if (!qdirs_atfork_registered) {
		if (pthread_atfork(NULL, NULL, qdirs_close) != 0) {
			errno = ENOMEM;
			return -1;
		}
		qdirs_atfork_registered = 1;
	}
	if (n >= sizeof(qdirs.path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((qdirs.tmp = open_dir(queue_dir, QDIR_TMP)) < 0 ||
	    (qdirs.incoming = open_dir(queue_dir, QDIR_INCOMING)) < 0) {
		int saved = errno;
		qdirs_close();
		errno = saved;
		return -1;
	}
	qdirs.recycle = open_dir(queue_dir, QDIR_RECYCLE);
	if (snprintf(sync_path, sizeof(sync_path), "%s/%s/%s", queue_dir, QDIR_PRIVATE, QF_SYNC_STATE) <
	    (int)sizeof(sync_path))
		(void)dirsync_open(&qdirs.sync, AT_FDCWD, sync_path); /* else fsync alone */
	memcpy(qdirs.path, queue_dir, n + 1);
	qdirs.valid = 1;
	return 0;
}

/* The directories are the process's (qdirs), not the writer's. */
static void writer_close(struct qf_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = w->dirfd_src = w->dirfd_incoming = -1;
	w->sync = NULL;
	buf_free(&w->out);
}

/* An unfinished message's file: one created in tmp/ is removed; a claimed
 * one stays in recycle/, whose contents are never mail (its next claimer
 * overwrites it, or unlinks it if it grew too large). */
static void writer_remove(struct qf_writer *w)
{
	if (w->dirfd_src >= 0 && w->recycled_len < 0 && w->name[0])
		unlinkat(w->dirfd_src, w->name, 0);
}

/*
 * Names read from recycle/, per process.  Each listing starts at a random
 * place in the directory (recycle_refill) and the names are tried from a
 * place of the process's own: concurrent sessions then rarely race for one
 * name, and a lost race costs one failed open.  A listing is one small
 * getdents64 on the kept descriptor (about a hundred names): recycle/ holds
 * thousands of files under load and a directory read costs in proportion
 * to what it returns (a 32 KiB readdir of it was 6 % of a receiver's time).
 */
#define RECYCLE_BATCH 128
#define RECYCLE_READ 4096
static char recycle_names[RECYCLE_BATCH][QF_NAME_MAX];
static int recycle_n, recycle_next;
static unsigned recycle_turn;
static long long recycle_empty_until; /* ms: found empty, not listed again before */

static int recycle_name_ok(const char *n)
{
	size_t i, len = strlen(n);

	if (len == 0 || len >= QF_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!((n[i] >= '0' && n[i] <= '9') || (n[i] >= 'A' && n[i] <= 'Z') || (n[i] >= 'a' && n[i] <= 'z')))
			return 0;
	return 1;
}

/* Names from one getdents64 of recycle/ at the descriptor's offset. */
static int recycle_list(int rfd, char list[RECYCLE_BATCH][QF_NAME_MAX])
{
	union {
		struct dirent64 align;
		char bytes[RECYCLE_READ];
	} dbuf;
	ssize_t got, off;
	int n = 0;

	if ((got = getdents64(rfd, dbuf.bytes, sizeof(dbuf.bytes))) <= 0)
		return 0;
	for (off = 0; off < got && n < RECYCLE_BATCH;) {
		const struct dirent64 *e = (const struct dirent64 *)(const void *)(dbuf.bytes + off);

		if (e->d_reclen == 0 || off + e->d_reclen > got)
			break;
		off += e->d_reclen;
		if (recycle_name_ok(e->d_name))
			memcpy(list[n++], e->d_name, strlen(e->d_name) + 1);
	}
	return n;
}

/*
 * A listing starts at a random place in the directory.  On ext4 with
 * hashed directories an offset is a hash value, so every writer reads a
 * different slice of the names; from the start they all read the same
 * lowest-hash hundred, which the first of them empty for the rest (a claim
 * of a stale name costs a failed open, running out of names a new file).
 * Where an offset means something else, a random one reads little or
 * nothing, and the listing starts from the beginning instead.
 */
static void recycle_refill(int rfd)
{
	static char list[RECYCLE_BATCH][QF_NAME_MAX];
	static unsigned long long seed;
	int n, i, start;

	recycle_n = recycle_next = 0;
	seed = seed * 6364136223846793005ull + ((unsigned long long)self_pid() << 20) + (unsigned long long)clock_ms() +
	       1442695040888963407ull;
	n = lseek(rfd, (off_t)(seed >> 1), SEEK_SET) < 0 ? 0 : recycle_list(rfd, list);
	if (n < RECYCLE_BATCH / 8)
		n = lseek(rfd, 0, SEEK_SET) < 0 ? 0 : recycle_list(rfd, list);
	if (n == 0)
		return;
	start = (int)(((unsigned)self_pid() * 2654435761u + recycle_turn++ * 40503u) % (unsigned)n);
	for (i = 0; i < n; i++)
		memcpy(recycle_names[recycle_n++], list[(start + i) % n], QF_NAME_MAX);
}

int qf_claim_opened(int rfd, const char *name, int fd, off_t *len)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	struct stat st, named;

	/* Whoever holds the lock writes it; after its commit the name is
	 * gone (renamed into incoming/), so a later locker sees that. */
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0 || fstat(fd, &st) < 0 ||
	    fstatat(rfd, name, &named, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (named.st_ino != st.st_ino || named.st_dev != st.st_dev) {
		errno = ENOENT;
		return -1;
	}
	/* Ours alone (one link, our uid, a plain file, small): its bytes are
	 * overwritten and the commit cuts it to length, so a file with a
	 * second name is never written. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_uid != geteuid() || st.st_size > QF_RECYCLE_KEEP) {
		unlinkat(rfd, name, 0);
		errno = ENOENT;
		return -1;
	}
	*len = st.st_size;
	return 0;
}

/* Take the file recycle/name for one message (qf_claim_opened): its
 * descriptor, or -1 if the file is taken, gone or unfit. */
static int claim_one(int rfd, const char *name, off_t *len)
{
	int saved, fd = openat(rfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 || qf_claim_opened(rfd, name, fd, len) == 0)
		return fd;
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

/* A recycled file, claimed where it lies (its name copied to name), open
 * for writing, its length in *len; -1 when there is none (the caller
 * creates a new file).  Claiming in place, not by a rename into tmp/,
 * spares a rename across directories per message: those serialize on the
 * file system's rename lock, which smtpd's sessions contend for. */
static int claim_recycled(int rfd, char name[QF_NAME_MAX], off_t *len)
{
	int fd = -1, listings = 0;

	if (rfd < 0)
		return -1;
	while (fd < 0) {
		const char *candidate;

		if (recycle_next >= recycle_n) {
			/* Other writers claim from the same names: a listing
			 * used up may be stale, so one more before creating. */
			if (listings++ == 2 || clock_ms() < recycle_empty_until)
				break;
			recycle_refill(rfd);
			if (recycle_n == 0) {
				recycle_empty_until = clock_ms() + 1000;
				break;
			}
		}
		candidate = recycle_names[recycle_next++];
		fd = claim_one(rfd, candidate, len);
		if (fd >= 0) {
			memcpy(name, candidate, strlen(candidate) + 1);
		} else if (errno != ENOENT && errno != EAGAIN && errno != EACCES) {
			recycle_next = recycle_n; /* something else is wrong: create instead */
			break;
		}
	}
	return fd;
}

int qf_recycle(int dirfd, const char *name, int fd, int tmp_fd, int recycle_fd, int *count)
{
	struct stat st;
	int own = -1, keep, recycled = 0, gone = 0;

	if (fd < 0)
		fd = own = openat(dirfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	/* Only a plain file with this one name is kept.  A small one goes
	 * straight to recycle/.  A large one is emptied under a name in tmp/
	 * that nobody claims, and only then offered in recycle/: emptied after
	 * the offer, it could be a new message by then. */
	keep = recycle_fd >= 0 && tmp_fd >= 0 && *count < QF_RECYCLE_MAX && recycle_name_ok(name) && fd >= 0 &&
	       fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1;
	if (keep && st.st_size <= QF_RECYCLE_KEEP) {
		recycled = renameat(dirfd, name, recycle_fd, name) == 0;
	} else if (keep && renameat(dirfd, name, tmp_fd, name) == 0) {
		recycled = ftruncate(fd, 0) == 0 && renameat(tmp_fd, name, recycle_fd, name) == 0;
		gone = recycled || unlinkat(tmp_fd, name, 0) == 0 || errno == ENOENT;
	}
	if (own >= 0)
		close(own);
	if (recycled)
		(*count)++;
	if (recycled || gone)
		return 0;
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
}

int qfw_begin(struct qf_writer *w, const char *queue_dir, struct qf_envelope *env)
{
	struct buf head;
	int saved;

	memset(w, 0, sizeof(*w));
	w->fd = w->dirfd_src = w->dirfd_incoming = -1;
	buf_init(&w->out, QF_WRITE_CHUNK * 2);
	queueid_new(w->qid);
	memcpy(env->qid, w->qid, sizeof(env->qid));

	buf_init(&head, QF_MAX_ENVELOPE);
	if (envelope_text(env, w->qid, &head, &w->z_off) < 0) {
		buf_free(&head);
		writer_close(w);
		errno = EINVAL;
		return -1;
	}
	if (qdirs_open(queue_dir) < 0)
		goto fail;
	w->recycled_len = -1;
	w->fd = claim_recycled(qdirs.recycle, w->name, &w->recycled_len);
	if (w->fd >= 0) {
		w->dirfd_src = qdirs.recycle;
	} else {
		memcpy(w->name, w->qid, sizeof(w->qid));
		w->fd = openat(qdirs.tmp, w->qid, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (w->fd < 0 && errno == ENOENT) {
			/* tmp/ made again since we opened it: once more, afresh. */
			qdirs_close();
			if (qdirs_open(queue_dir) < 0)
				goto fail;
			w->fd = openat(qdirs.tmp, w->qid, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		}
		w->dirfd_src = qdirs.tmp;
	}
	if (w->fd < 0)
		goto fail;
	w->dirfd_incoming = qdirs.incoming;
	w->sync = &qdirs.sync;
	if (write_all(w->fd, head.data, head.len) < 0)
		goto fail_remove;
	w->content_off = head.len;
	buf_free(&head);
	return 0;

fail_remove:
	saved = errno;
	writer_remove(w);
	errno = saved;
fail:
	saved = errno;
	buf_free(&head);
	writer_close(w);
	errno = saved;
	return -1;
}

static void writer_flush(struct qf_writer *w)
{
	if (!w->failed && w->out.len > 0 && write_all(w->fd, w->out.data, w->out.len) < 0) {
		w->failed = 1;
		w->saved_errno = errno;
	}
	buf_reset(&w->out);
}

void qfw_write(struct qf_writer *w, const void *p, size_t n)
{
	const char *s = p;

	w->content_len += n;
	while (n > 0) {
		size_t room = QF_WRITE_CHUNK - w->out.len;
		size_t take = n < room ? n : room;

		if (buf_append(&w->out, s, take) < 0)
			log_panic("qfw_write: buffer bound");
		s += take;
		n -= take;
		if (w->out.len >= QF_WRITE_CHUNK)
			writer_flush(w);
	}
}

int qfw_commit(struct qf_writer *w)
{
	char nums[2 * QF_NUMLEN + 2];
	int saved;

	writer_flush(w);
	if (w->failed) {
		errno = w->saved_errno;
		goto fail;
	}
	snprintf(nums, sizeof(nums), "%0*llu %0*llu", QF_NUMLEN, w->content_off, QF_NUMLEN, w->content_len);
	if (pwrite(w->fd, nums, strlen(nums), w->z_off) != (ssize_t)strlen(nums)) {
		if (errno == 0)
			errno = EIO;
		goto fail;
	}
	/* A recycled file may hold the end of an older, longer message.  Only
	 * then is it cut: a truncate marks the inode for fdatasync even when
	 * the length does not change. */
	if (w->recycled_len > (off_t)(w->content_off + w->content_len) &&
	    ftruncate(w->fd, (off_t)(w->content_off + w->content_len)) < 0)
		goto fail;
	/* fdatasync: what reading the message back needs (its blocks and its
	 * length) is written; only the timestamps may wait.  A recycled file
	 * overwritten to the same length then costs no inode write. */
	if (fdatasync(w->fd) < 0)
		goto fail;
	if (renameat(w->dirfd_src, w->name, w->dirfd_incoming, w->qid) < 0)
		goto fail;
	if (dirsync_fsync(w->dirfd_incoming, w->sync) < 0) {
		/* The name may not be durable: take the message back so that
		 * what the client is told (an error) stays true.  If the queue
		 * manager already took it, it is delivered anyway and the
		 * client's retry makes a duplicate, never a loss. */
		saved = errno;
		unlinkat(w->dirfd_incoming, w->qid, 0);
		writer_close(w);
		errno = saved;
		return -1;
	}
	writer_close(w);
	return 0;

fail:
	saved = errno;
	qfw_abort(w);
	errno = saved;
	return -1;
}

void qfw_abort(struct qf_writer *w)
{
	writer_remove(w);
	writer_close(w);
}

/* ---- reader ---- */

struct qf_parse {
	struct linereader lr;
	struct buf line;
	off_t pos; /* file offset of the next line */
	char *err;
	size_t errsize;
	int io_errno; /* a read error (not a format error) happened: its errno */
};

/* lr_getline that tells a read error (EIO, ENOMEM...) apart from a
 * malformed file: a transient I/O error must never quarantine a message. */
static enum lr_result qf_getline(struct qf_parse *ps, struct linereader *lr, enum lr_ending *ending)
{
	enum lr_result r = lr_getline(lr, &ps->line, ending);

	if (r == LR_ERROR && ps->io_errno == 0)
		ps->io_errno = errno ? errno : EIO;
	return r;
}

static int parse_fail(struct qf_parse *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int parse_fail(struct qf_parse *ps, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ps->err, ps->errsize, fmt, ap);
	va_end(ap);
	return -1;
}

/* Next record; it must be "TAG value" (or a bare tag for E).  *value points
 * into ps->line.  Sets *rec_off to the record's offset. */
static int next_record(struct qf_parse *ps, char tag, const char **value, off_t *rec_off)
{
	enum lr_ending ending;
	enum lr_result r = qf_getline(ps, &ps->lr, &ending);
	char want[2] = { tag, 0 };

	if (r == LR_TOOLONG)
		return parse_fail(ps, "record %s: line too long", want);
	if (r != LR_LINE || ending != LR_END_LF)
		return parse_fail(ps, "record %s: truncated file", want);
	if (memchr(ps->line.data, 0, ps->line.len))
		return parse_fail(ps, "record %s: NUL byte", want);
	*rec_off = ps->pos;
	ps->pos += (off_t)ps->line.len + 1;
	if (ps->line.data[0] != tag)
		return parse_fail(ps, "expected record %s", want);
	if (tag == 'E')
		return ps->line.len == 1 ? 0 : parse_fail(ps, "bad record %s", want);
	if (ps->line.len < 2 || ps->line.data[1] != ' ' || !field_ok(ps->line.data + 2, 1))
		return parse_fail(ps, "bad record %s", want);
	*value = ps->line.data + 2;
	return 0;
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	return parse_ull(s, max, out);
}

static int parse_rcpt(struct qf_parse *ps, struct qf_envelope *e, const char *v, off_t rec_off, int child)
{
	char state = v[0];
	const char *notify_s, *orcpt_s, *addr;
	char num[16], orcpt[QF_ORCPT_MAX];
	unsigned long long notify, parent = 0;
	size_t n;

	if (!state_ok(state))
		return parse_fail(ps, "bad recipient state");
	if (v[1] != ' ')
		return parse_fail(ps, "bad recipient record");
	notify_s = v + 2;
	orcpt_s = strchr(notify_s, ' ');
	if (!orcpt_s || (n = (size_t)(orcpt_s - notify_s)) >= sizeof(num) || n == 0)
		return parse_fail(ps, "bad recipient record");
	memcpy(num, notify_s, n);
	num[n] = 0;
	if (parse_num(num, 15, &notify) < 0)
		return parse_fail(ps, "bad recipient notify");
	orcpt_s++;
	addr = strchr(orcpt_s, ' ');
	if (!addr || (n = (size_t)(addr - orcpt_s)) >= sizeof(orcpt) || n == 0 || !addr[1])
		return parse_fail(ps, "bad recipient record");
	memcpy(orcpt, orcpt_s, n);
	orcpt[n] = 0;
	if (child) {
		/* "PARENT ADDRESS": the parent is an earlier recipient. */
		const char *pp = addr + 1;

		addr = strchr(pp, ' ');
		if (!addr || (n = (size_t)(addr - pp)) >= sizeof(num) || n == 0 || !addr[1])
			return parse_fail(ps, "bad added recipient record");
		memcpy(num, pp, n);
		num[n] = 0;
		if (parse_num(num, QF_MAX_RCPT, &parent) < 0 || parent >= e->nrcpt)
			return parse_fail(ps, "bad added recipient parent");
	}
	if (e->nrcpt >= QF_MAX_RCPT)
		return parse_fail(ps, "too many recipients");
	qf_envelope_add_rcpt(e, addr + 1, strcmp(orcpt, "-") ? orcpt : NULL, (unsigned)notify);
	e->rcpt[e->nrcpt - 1].state = state;
	e->rcpt[e->nrcpt - 1].state_off = rec_off + 2;
	e->rcpt[e->nrcpt - 1].parent = child ? (long)parent : -1;
	return 0;
}

/* "ATTEMPTS WARNED" of a W record. */
static int parse_retry(struct qf_parse *ps, struct qf_envelope *e, char *v)
{
	char *sp = strchr(v, ' ');
	char *reason;
	unsigned long long a, w;

	if (!sp)
		return parse_fail(ps, "bad retry record");
	*sp = 0;
	reason = strchr(sp + 1, ' ');
	if (reason)
		*reason++ = 0;
	if (parse_num(v, 1000000, &a) < 0 || parse_num(sp + 1, 1, &w) < 0)
		return parse_fail(ps, "bad retry record");
	e->attempts = (unsigned)a;
	e->warned = (int)w;
	qf_set(&e->reason, reason ? reason : "");
	return 0;
}

/* The records after the content.  A last line without LF is the remains of
 * an interrupted append: ignored, and the next append overwrites it. */
static int parse_trailer(struct qf_parse *ps, struct qf_envelope *e, int fd)
{
	off_t pos = (off_t)(e->content_off + e->content_len);
	struct linereader lr;
	enum lr_ending ending;
	enum lr_result r;
	int rc = 0;

	if (lseek(fd, pos, SEEK_SET) < 0)
		return parse_fail(ps, "cannot seek to the trailer");
	lr_init_fd(&lr, fd, QF_LINE_MAX, 0, -1);
	for (;;) {
		r = qf_getline(ps, &lr, &ending);
		if (r == LR_EOF)
			break;
		if (r == LR_LINE && ending == LR_END_NONE)
			break; /* interrupted append */
		if (r != LR_LINE || ending != LR_END_LF || ps->line.len < 4 || ps->line.data[1] != ' ' ||
		    memchr(ps->line.data, 0, ps->line.len) || !field_ok(ps->line.data + 2, 1)) {
			rc = parse_fail(ps, "bad trailer record");
			break;
		}
		if (ps->line.data[0] == 'A')
			rc = parse_rcpt(ps, e, ps->line.data + 2, pos, 1);
		else if (ps->line.data[0] == 'W')
			rc = parse_retry(ps, e, ps->line.data + 2);
		else
			rc = parse_fail(ps, "unknown trailer record");
		if (rc < 0)
			break;
		pos += (off_t)ps->line.len + 1;
	}
	e->trailer_end = (unsigned long long)pos;
	lr_free(&lr);
	return rc;
}

static int parse_head(struct qf_parse *ps, struct qf_envelope *e)
{
	const char *v = "";
	off_t off;
	unsigned long long n, len;
	char *sp;

	if (next_record(ps, 'V', &v, &off) < 0)
		return -1;
	if (strcmp(v, "1") != 0)
		return parse_fail(ps, "unsupported version %s", v);
	if (next_record(ps, 'Q', &v, &off) < 0)
		return -1;
	if (!queueid_valid(v))
		return parse_fail(ps, "bad queue id");
	memcpy(e->qid, v, QUEUEID_SIZE);
	if (next_record(ps, 'T', &v, &off) < 0 || parse_num(v, (1ULL << 40), &n) < 0)
		return parse_fail(ps, "bad arrival time");
	e->arrival = (long long)n;
	if (next_record(ps, 'Z', &v, &off) < 0 || strlen(v) != 2 * QF_NUMLEN + 1 || v[QF_NUMLEN] != ' ')
		return parse_fail(ps, "bad size record");
	sp = (char *)v + QF_NUMLEN;
	*sp = 0;
	if (parse_num(v, (1ULL << 50), &n) < 0 || parse_num(sp + 1, (1ULL << 50), &len) < 0)
		return parse_fail(ps, "bad size record");
	e->content_off = n;
	e->content_len = len;
	if (next_record(ps, 'F', &v, &off) < 0 || parse_num(v, 0xffff, &n) < 0)
		return parse_fail(ps, "bad flags record");
	e->flags = (unsigned)n;
	if (next_record(ps, 'N', &v, &off) < 0)
		return -1;
	qf_set(&e->envid, v);
	if (next_record(ps, 'C', &v, &off) < 0)
		return -1;
	qf_set(&e->client, v);
	if (next_record(ps, 'S', &v, &off) < 0)
		return -1;
	qf_set(&e->sender, v);
	return 0;
}

int qf_read(int fd, struct qf_envelope *e, char *err, size_t errsize)
{
	struct qf_parse ps;
	struct stat st;
	int rc = -1;

	qf_envelope_init(e);
	memset(&ps, 0, sizeof(ps));
	ps.err = err;
	ps.errsize = errsize;
	if (lseek(fd, 0, SEEK_SET) < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errsize, "cannot read: %s", strerror(errno));
		return -2;
	}
	lr_init_fd(&ps.lr, fd, QF_LINE_MAX, 0, -1);
	buf_init(&ps.line, QF_LINE_MAX);
	if (parse_head(&ps, e) < 0)
		goto out;
	for (;;) {
		const char *v;
		off_t off;
		enum lr_ending ending;
		enum lr_result r = qf_getline(&ps, &ps.lr, &ending);

		if (r != LR_LINE || ending != LR_END_LF || ps.line.len == 0) {
			parse_fail(&ps, "truncated envelope");
			goto out;
		}
		off = ps.pos;
		ps.pos += (off_t)ps.line.len + 1;
		if (ps.line.data[0] == 'E' && ps.line.len == 1)
			break;
		if (ps.line.data[0] != 'R' || ps.line.len < 4 || ps.line.data[1] != ' ' ||
		    memchr(ps.line.data, 0, ps.line.len) || !field_ok(ps.line.data + 2, 1)) {
			parse_fail(&ps, "unexpected record in envelope");
			goto out;
		}
		v = ps.line.data + 2;
		if (parse_rcpt(&ps, e, v, off, 0) < 0)
			goto out;
	}
	if (e->nrcpt == 0) {
		parse_fail(&ps, "no recipients");
		goto out;
	}
	if ((unsigned long long)ps.pos != e->content_off ||
	    e->content_off + e->content_len > (unsigned long long)st.st_size) {
		parse_fail(&ps, "size record disagrees with the file");
		goto out;
	}
	if (parse_trailer(&ps, e, fd) < 0)
		goto out;
	rc = 0;
out:
	lr_free(&ps.lr);
	buf_free(&ps.line);
	if (rc < 0)
		qf_envelope_free(e);
	if (rc < 0 && ps.io_errno != 0) {
		snprintf(err, errsize, "read error: %s", strerror(ps.io_errno));
		errno = ps.io_errno;
		return -2;
	}
	return rc;
}

int qf_mark(int fd, struct qf_rcpt *r, enum qf_state st)
{
	char c = (char)st;

	if (pwrite(fd, &c, 1, r->state_off) != 1) {
		if (errno == 0)
			errno = EIO;
		return -1;
	}
	r->state = c;
	return 0;
}

/* Write text at the trailer's end, cut anything after it (an interrupted
 * append), and move the end.  0 or -1 with errno. */
static int trailer_append(int fd, struct qf_envelope *e, const struct buf *text)
{
	ssize_t n = pwrite(fd, text->data, text->len, (off_t)e->trailer_end);

	if (n != (ssize_t)text->len) {
		if (n >= 0)
			errno = ENOSPC;
		return -1;
	}
	if (ftruncate(fd, (off_t)(e->trailer_end + text->len)) < 0)
		return -1;
	e->trailer_end += text->len;
	return 0;
}

int qf_add_children(int fd, struct qf_envelope *e, size_t parent, const char *const *addrs, size_t n,
		    const char *orcpt)
{
	struct buf text;
	unsigned long long start = e->trailer_end;
	const char *o = orcpt && *orcpt ? orcpt : "-";
	size_t i;
	int rc = -1;

	if (parent >= e->nrcpt || e->nrcpt + n > QF_MAX_RCPT || !field_ok(o, 0)) {
		errno = EINVAL;
		return -1;
	}
	buf_init(&text, QF_MAX_ENVELOPE);
	for (i = 0; i < n; i++) {
		if (!*addrs[i] || !field_ok(addrs[i], 1) ||
		    buf_printf(&text, "A %c %u %s %zu %s\n", QF_PENDING, e->rcpt[parent].notify, o, parent, addrs[i]) < 0) {
			errno = EINVAL;
			goto out;
		}
	}
	if (trailer_append(fd, e, &text) < 0 || fdatasync(fd) < 0)
		goto out;
	{
		/* The state byte of each record is at its offset + 2. */
		unsigned long long off = start;
		const char *p = text.data;
		unsigned notify = e->rcpt[parent].notify;

		for (i = 0; i < n; i++) {
			const char *nl = strchr(p, '\n');

			qf_envelope_add_rcpt(e, addrs[i], orcpt && *orcpt ? orcpt : NULL, notify);
			e->rcpt[e->nrcpt - 1].state_off = (off_t)off + 2;
			e->rcpt[e->nrcpt - 1].parent = (long)parent;
			off += (unsigned long long)(nl - p) + 1;
			p = nl + 1;
		}
	}
	rc = 0;
out:
	buf_free(&text);
	return rc;
}

int qf_set_retry(int fd, struct qf_envelope *e, unsigned attempts, int warned, const char *reason)
{
	char clean[513];
	struct buf text;
	size_t i;
	int rc;

	for (i = 0; reason && reason[i] && i < sizeof(clean) - 1; i++)
		clean[i] = ((unsigned char)reason[i] < 0x20 || reason[i] == 0x7f) ? '?' : reason[i];
	clean[i] = 0;
	buf_init(&text, 640);
	rc = buf_printf(&text, "W %u %d%s%s\n", attempts, warned ? 1 : 0, *clean ? " " : "", clean);
	if (rc == 0)
		rc = trailer_append(fd, e, &text);
	buf_free(&text);
	if (rc == 0) {
		e->attempts = attempts;
		e->warned = warned ? 1 : 0;
		qf_set(&e->reason, clean);
	}
	return rc;
}
