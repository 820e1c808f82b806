/*
 * qmgr_queue — the queue manager's side of the spool: moving files between
 * incoming/, active/, deferred/ and corrupt/, loading envelopes, and
 * finishing messages (remove, bounce, or defer with backoff).
 *
 * Every move is a rename within the queue file system followed by nothing
 * else: a message is always in exactly one directory, so a crash at any
 * point leaves it somewhere the next start looks (active/ goes back to
 * incoming/ at start-up).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "qmgr.h"
#include "queueid.h"
#include "xalloc.h"

#define TMP_MAX_AGE (6 * 3600)
/* Deferred mail may fill only this share of the active limit, so new mail
 * always finds room (a large deferred queue never delays fresh mail). */
#define DEFERRED_SHARE(limit) ((limit) * 3 / 4)

int qdir_fd[8];
static struct qmsg *active_head;
static int active_count;
static int incoming_blocked; /* the last incoming/ scan stopped at the active limit */
/* A move out of incoming/ failed, or a file was left in active/ that no
 * longer has a message in memory (a failed open, rename or unlink: EIO,
 * ENOSPC, EMFILE): both are retried at the next deferred scan, instead of
 * waiting for a trigger (incoming/) or a restart (active/). */
static int retry_incoming, reload_active;
/* The last for_each_entry could not read its directory (EMFILE, ENOMEM). */
static int scan_failed;

static const char *const qdir_names[QD_COUNT] = { QDIR_TMP,     QDIR_INCOMING, QDIR_ACTIVE,
						  QDIR_DEFERRED, QDIR_CORRUPT, QDIR_RECYCLE };

/* Files in recycle/ (an estimate: smtpd's claims lower it unseen, so it is
 * recounted before it is allowed to stop the recycling). */
static int recycle_count;
static time_t recycle_counted;

void queue_open_dirs(void)
{
	char path[4096];
	int i;

	for (i = 0; i < QD_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/%s", cf.queue_directory, qdir_names[i]);
		qdir_fd[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (qdir_fd[i] < 0)
			log_fatal("open %s: %s", path, strerror(errno));
	}
}

int queue_active_count(void)
{
	return active_count;
}

double now_f(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Rename name from one queue directory to another; the caller decides
 * whether the destination directory must be fsynced. */
static int queue_move(int from, int to, const char *name)
{
	if (renameat(qdir_fd[from], name, qdir_fd[to], name) < 0) {
		log_warning("%s: move %s -> %s: %s", name, qdir_names[from], qdir_names[to], strerror(errno));
		return -1;
	}
	return 0;
}

static void quarantine(int from, const char *name, const char *why)
{
	log_warning("%s: corrupt queue file (%s); moved to %s/", name, why, QDIR_CORRUPT);
	if (queue_move(from, QD_CORRUPT, name) == 0)
		fsync(qdir_fd[QD_CORRUPT]);
}

#define UNSAFE_FILE "not a regular file of mail_owner with one link"

static int safe_file(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == geteuid() && st->st_nlink == 1;
}

/* Load active/name into memory and hand it to the scheduler. */
static void load_active(const char *name)
{
	char err[256];
	struct stat st;
	struct qmsg *m;
	int fd, rc, saved;

	fd = openat(qdir_fd[QD_ACTIVE], name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		saved = errno;
		/* Someone else's file (EACCES) or a directory (EISDIR) fails
		 * the same way at every try: quarantine it rather than retry
		 * it at every queue run.  Only a failure on our own plain file
		 * (EMFILE, ENOMEM, EIO) is worth a retry. */
		if (saved == ELOOP) {
			quarantine(QD_ACTIVE, name, "symbolic link");
		} else if (fstatat(qdir_fd[QD_ACTIVE], name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			   !safe_file(&st)) {
			quarantine(QD_ACTIVE, name, UNSAFE_FILE);
		} else {
			log_warning("%s: open: %s", name, strerror(saved));
			reload_active = 1;
		}
		return;
	}
	if (fstat(fd, &st) < 0 || !safe_file(&st)) {
		close(fd);
		quarantine(QD_ACTIVE, name, UNSAFE_FILE);
		return;
	}
	m = xcalloc(1, sizeof(*m));
	rc = qf_read(fd, &m->env, err, sizeof(err));
	if (rc == -2) {
		/* A read error is not corruption: retry after minimal_backoff. */
		struct timespec ts[2];

		log_warning("%s: %s; retrying in %llds", name, err, (long long)cf.minimal_backoff);
		ts[0].tv_sec = ts[1].tv_sec = time(NULL) + (time_t)cf.minimal_backoff;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		if (futimens(fd, ts) < 0)
			log_warning("%s: set retry time: %s", name, strerror(errno));
		free(m);
		close(fd);
		if (queue_move(QD_ACTIVE, QD_DEFERRED, name) < 0)
			reload_active = 1;
		return;
	}
	if (rc < 0 || strcmp(m->env.qid, name) != 0) {
		if (!*err || m->env.qid[0])
			snprintf(err, sizeof(err), "queue id does not match the file name");
		qf_envelope_free(&m->env);
		free(m);
		close(fd);
		quarantine(QD_ACTIVE, name, err);
		return;
	}
	memcpy(m->qid, name, QUEUEID_SIZE);
	m->fd = fd;
	m->t_active = now_f();
	m->next = active_head;
	if (active_head)
		active_head->prev = m;
	active_head = m;
	active_count++;
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (queue active)", m->qid, m->env.sender,
		 m->env.content_len, m->env.nrcpt);
	sched_message(m);
}

/* Call fn for every queue-ID-named entry of a directory, at most limit. */
static int for_each_entry(int dir, int limit, int (*fn)(const char *name, void *arg), void *arg)
{
	DIR *d;
	struct dirent *de;
	int fd, n = 0;

	scan_failed = 0;
	fd = openat(qdir_fd[dir], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		log_warning("scan %s: %s", qdir_names[dir], strerror(errno));
		if (fd >= 0)
			close(fd);
		scan_failed = 1;
		return 0;
	}
	while (n < limit && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!queueid_valid(de->d_name)) {
			if (dir != QD_TMP && dir != QD_RECYCLE)
				quarantine(dir, de->d_name, "not a queue id");
			continue;
		}
		n += fn(de->d_name, arg);
	}
	closedir(d);
	return n;
}

static int take_incoming(const char *name, void *arg)
{
	(void)arg;
	if (queue_move(QD_INCOMING, QD_ACTIVE, name) < 0) {
		retry_incoming = 1;
		return 0;
	}
	load_active(name);
	return 1;
}

int queue_scan_incoming(void)
{
	int room = (int)cf.qmgr_message_active_limit - active_count;
	int n = room > 0 ? for_each_entry(QD_INCOMING, room, take_incoming, NULL) : 0;

	/* Full: what is left in incoming/ waits for room, and no trigger may
	 * come for it (the clients are done) — msg_free asks for a new scan. */
	incoming_blocked = n >= room;
	if (room > 0 && scan_failed)
		retry_incoming = 1; /* no trigger may come for what waits there */
	return n;
}

static int take_deferred(const char *name, void *arg)
{
	int all = *(int *)arg;
	struct stat st;

	if (fstatat(qdir_fd[QD_DEFERRED], name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	/* A deferred file's mtime is its next retry time (qmgr_clock.c: one
	 * beyond maximal_backoff is due, the clock went back). */
	if (!all && !qclock_retry_due(st.st_mtime, time(NULL)))
		return 0;
	if (queue_move(QD_DEFERRED, QD_ACTIVE, name) < 0)
		return 0;
	load_active(name);
	return 1;
}

/* A file of active/ without its message in memory: load it again. */
static int take_orphan(const char *name, void *arg)
{
	const struct qmsg *m;

	(void)arg;
	for (m = active_head; m; m = m->next)
		if (strcmp(m->qid, name) == 0)
			return 0;
	load_active(name);
	return 1;
}

int queue_scan_deferred(int all)
{
	int room;

	if (retry_incoming) {
		retry_incoming = 0;
		qmgr_want_incoming();
	}
	if (reload_active) {
		/* Within the active limit like any other load: each loaded
		 * message holds a descriptor, and orphans may be many (an open
		 * that failed with EMFILE leaves its file in active/). */
		int n = 0;

		reload_active = 0; /* a load that fails below sets it again */
		room = (int)cf.qmgr_message_active_limit - active_count;
		if (room > 0)
			n = for_each_entry(QD_ACTIVE, room, take_orphan, NULL);
		/* Stopped at the limit, or could not read active/: more may be
		 * left, and nothing else would look for them before a restart. */
		if (n >= room || scan_failed)
			reload_active = 1;
		if (n > 0)
			log_info("reloaded %d message(s) left in active/ by a failed move", n);
	}
	room = (int)DEFERRED_SHARE(cf.qmgr_message_active_limit) - active_count;

	return room > 0 ? for_each_entry(QD_DEFERRED, room, take_deferred, &all) : 0;
}

static int requeue_active(const char *name, void *arg)
{
	(void)arg;
	if (queue_move(QD_ACTIVE, QD_INCOMING, name) < 0) {
		reload_active = 1; /* loaded from active/ when there is room */
		return 0;
	}
	return 1;
}

void queue_recover_active(void)
{
	/* What a previous run left in active/ goes back to incoming/ (as
	 * Postfix does) and is loaded from there within the active limit.
	 * Loading all of it at once took a descriptor per message: with more
	 * files than RLIMIT_NOFILE, EMFILE then failed the agents' connections
	 * too, and nothing was delivered.  No fsync: after a crash the file is
	 * in one of the two directories, and both are read at start. */
	int n = for_each_entry(QD_ACTIVE, 1 << 30, requeue_active, NULL);

	if (scan_failed)
		reload_active = 1;
	if (n > 0) {
		log_info("recovered %d message(s) left in active/ by a previous run (moved to %s/)", n,
			 QDIR_INCOMING);
		qmgr_want_incoming();
	}
}

static int count_entry(const char *name, void *arg)
{
	(void)name;
	(void)arg;
	return 1;
}

static int clean_tmp(const char *name, void *arg)
{
	struct stat st;

	(void)arg;
	if (fstatat(qdir_fd[QD_TMP], name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime < time(NULL) - TMP_MAX_AGE) {
		/* Never acknowledged (no 250 without the rename out of tmp/). */
		if (unlinkat(qdir_fd[QD_TMP], name, 0) == 0)
			log_info("removed stale temporary file %s/%s", QDIR_TMP, name);
	}
	return 0;
}

void queue_clean_tmp(void)
{
	for_each_entry(QD_TMP, 1 << 30, clean_tmp, NULL);
}

static void msg_free(struct qmsg *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		active_head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	active_count--;
	/* Rescan once a quarter of the active queue is free again, not per
	 * message: one directory read serves many slots. */
	if (incoming_blocked && active_count <= (int)cf.qmgr_message_active_limit * 3 / 4) {
		incoming_blocked = 0;
		qmgr_want_incoming();
	}
	close(m->fd);
	qf_envelope_free(&m->env);
	free(m->fail);
	free(m->succ);
	free(m);
}

/* Exponential backoff: minimal_backoff doubled per deferred pass
 * (attempts counts them, kept in the queue file's W record), at most
 * maximal_backoff. */
static long long backoff(unsigned attempts)
{
	long long d = cf.minimal_backoff;
	unsigned i;

	for (i = 1; i < attempts && d < cf.maximal_backoff; i++)
		d *= 2;
	return d > cf.maximal_backoff ? cf.maximal_backoff : d;
}

static long long lifetime(const struct qmsg *m)
{
	return *m->env.sender ? cf.maximal_queue_lifetime : cf.bounce_queue_lifetime;
}

/* Recipients still pending past the queue lifetime become failures. */
static void expire_pending(struct qmsg *m, time_t now)
{
	char text[DELIVER_MAX_TEXT];
	size_t i;

	if (qclock_age(m->env.arrival, now) < lifetime(m))
		return;
	snprintf(text, sizeof(text), "message expired after %lld seconds in the queue%s%.900s",
		 qclock_age(m->env.arrival, now), *m->last_reason ? "; last error: " : "", m->last_reason);
	for (i = 0; i < m->env.nrcpt; i++)
		if (m->env.rcpt[i].state == QF_PENDING) {
			log_rcpt(m, i, "none", "4.4.7", "expired", text);
			msg_record_failure(m, i, "4.4.7", "", text);
		}
}

/* Queue the report for list (if anyone wants it), then mark its recipients
 * final; 0, or -1 when the report could not be queued (left as they are,
 * so the next pass tries again). */
static int settle(struct qmsg *m, struct notice *list, size_t n, enum qf_state final)
{
	size_t i;

	if (n == 0)
		return 0;
	if (notice_create(m, list, n) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (qf_mark(m->fd, &m->env.rcpt[list[i].idx], final) < 0)
			log_warning("%s: cannot record a notified recipient: %s", m->qid, strerror(errno));
	if (fdatasync(m->fd) < 0)
		log_warning("%s: fdatasync: %s", m->qid, strerror(errno));
	return 0;
}

/* A delay DSN once per message, after delay_warning_time, for the pending
 * recipients whose NOTIFY asks for it.  Returns 1 when it was sent. */
static int delay_warning(struct qmsg *m, time_t now)
{
	struct notice *list;
	size_t i, n = 0;
	int sent = 0;

	if (cf.delay_warning_time <= 0 || m->env.warned || !*m->env.sender ||
	    qclock_age(m->env.arrival, now) < cf.delay_warning_time)
		return 0;
	list = xcalloc(m->env.nrcpt, sizeof(*list));
	for (i = 0; i < m->env.nrcpt; i++) {
		if (m->env.rcpt[i].state != QF_PENDING || !notice_wanted(m->env.rcpt[i].notify, ACT_DELAYED))
			continue;
		list[n].idx = i;
		list[n].action = ACT_DELAYED;
		snprintf(list[n].dsn, sizeof(list[n].dsn), "4.0.0");
		snprintf(list[n].text, sizeof(list[n].text), "%s",
			 *m->last_reason ? m->last_reason : "delivery temporarily deferred");
		n++;
	}
	sent = n == 0 || notice_create(m, list, n) == 0;
	free(list);
	return sent;
}

static void defer_message(struct qmsg *m, time_t now)
{
	struct timespec ts[2];
	unsigned attempts = m->env.attempts + 1;
	int warned = m->env.warned || delay_warning(m, now);
	long long wait = backoff(attempts);

	if (qf_set_retry(m->fd, &m->env, attempts, warned, m->last_reason) < 0)
		log_warning("%s: record the retry state: %s", m->qid, strerror(errno));
	/* The last job's "delivered" marks (job_done leaves them to us) must
	 * survive the wait; the W record rides along. */
	if (fdatasync(m->fd) < 0)
		log_warning("%s: fdatasync: %s", m->qid, strerror(errno));
	ts[0].tv_sec = ts[1].tv_sec = now + wait;
	ts[0].tv_nsec = ts[1].tv_nsec = 0;
	if (futimens(m->fd, ts) < 0)
		log_warning("%s: set retry time: %s", m->qid, strerror(errno));
	if (renameat(qdir_fd[QD_ACTIVE], m->qid, qdir_fd[QD_DEFERRED], m->qid) == 0)
		log_info("%s: deferred, attempt %u, next attempt in %llds", m->qid, attempts, wait);
	else if (errno == ENOENT)
		log_info("%s: moved away by the administrator while active", m->qid);
	else {
		log_warning("%s: move to deferred: %s", m->qid, strerror(errno));
		reload_active = 1; /* left in active/: retried at the next deferred scan */
	}
}

void queue_finish(struct qmsg *m)
{
	time_t now = time(NULL);
	size_t i, pending = 0;

	expire_pending(m, now);
	if (settle(m, m->fail, m->nfail, QF_BOUNCED) < 0)
		log_warning("%s: cannot queue the bounce yet; failed recipients stay queued", m->qid);
	if (settle(m, m->succ, m->nsucc, QF_DELIVERED) < 0)
		log_warning("%s: cannot queue the success notice yet", m->qid);
	m->nfail = m->nsucc = 0;
	for (i = 0; i < m->env.nrcpt; i++)
		if (!qf_state_done(m->env.rcpt[i].state) || m->env.rcpt[i].state == QF_SUCCESS ||
		    m->env.rcpt[i].state == QF_RELAYED)
			pending++;
	if (pending == 0) {
		if (recycle_count >= QF_RECYCLE_MAX && qclock_mono() != recycle_counted) {
			recycle_counted = qclock_mono();
			recycle_count = for_each_entry(QD_RECYCLE, 1 << 30, count_entry, NULL);
		}
		if (qf_recycle(qdir_fd[QD_ACTIVE], m->qid, m->fd, qdir_fd[QD_TMP], qdir_fd[QD_RECYCLE],
			       &recycle_count) < 0) {
			log_warning("%s: remove: %s", m->qid, strerror(errno));
			reload_active = 1; /* finished again (nothing is resent) and removed */
		} else
			log_info("%s: removed", m->qid);
	} else {
		defer_message(m, now);
	}
	msg_free(m);
}
