/*
 * dirsync — group commit of a directory's fsync (see dirsync.h).
 *
 * State file: two unsigned 64-bit counters, "started" (generation of the
 * last fsync begun) and "done" (generation of the last one that
 * succeeded).  Two one-byte OFD locks on it: byte 0 guards the counters
 * for the moment they are read or written (a read must never see a torn
 * value: a "started" read too low could let an older fsync count for a
 * newer rename), byte 1 is held by the leader for the whole fsync.  OFD
 * locks belong to the open file description, so each process's own open
 * of the file competes with every other one, and the kernel drops them
 * when a process dies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "dirsync.h"

struct dirsync_state {
	uint64_t started;
	uint64_t done;
};

enum { LOCK_COUNTERS = 0, LOCK_LEADER = 1 };

static int range_lock(int fd, int which, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = which;
	fl.l_len = 1;
	while (fcntl(fd, type == F_UNLCK ? F_OFD_SETLK : F_OFD_SETLKW, &fl) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* The counters, under the counter lock; -1 when unreadable or inconsistent. */
static int state_read(int fd, struct dirsync_state *st)
{
	ssize_t n;

	if (range_lock(fd, LOCK_COUNTERS, F_RDLCK) < 0)
		return -1;
	n = pread(fd, st, sizeof(*st), 0);
	range_lock(fd, LOCK_COUNTERS, F_UNLCK);
	if (n == 0) {
		memset(st, 0, sizeof(*st));
		return 0;
	}
	return n == (ssize_t)sizeof(*st) && st->done <= st->started ? 0 : -1;
}

static int state_write(int fd, const struct dirsync_state *st)
{
	ssize_t n;

	if (range_lock(fd, LOCK_COUNTERS, F_WRLCK) < 0)
		return -1;
	n = pwrite(fd, st, sizeof(*st), 0);
	range_lock(fd, LOCK_COUNTERS, F_UNLCK);
	return n == (ssize_t)sizeof(*st) ? 0 : -1;
}

int dirsync_fsync(int dirfd, int statefd)
{
	struct dirsync_state st;
	uint64_t seen, gen;
	int rc, saved;

	if (statefd < 0)
		return fsync(dirfd);
	/* Any fsync begun up to now may have started before our rename.  An
	 * unreadable state is never "covered", and the leader rewrites it. */
	seen = state_read(statefd, &st) == 0 ? st.started : UINT64_MAX;
	if (range_lock(statefd, LOCK_LEADER, F_WRLCK) < 0)
		return fsync(dirfd);
	if (state_read(statefd, &st) == 0 && st.done > seen) {
		/* An fsync that began after our rename has succeeded. */
		range_lock(statefd, LOCK_LEADER, F_UNLCK);
		return 0;
	}
	/* Lead.  An unreadable state starts again from zero: lower counters
	 * only ever make waiters fsync once more. */
	if (state_read(statefd, &st) < 0)
		memset(&st, 0, sizeof(st));
	gen = st.started + 1;
	st.started = gen;
	if (state_write(statefd, &st) < 0) {
		range_lock(statefd, LOCK_LEADER, F_UNLCK);
		return fsync(dirfd);
	}
	rc = fsync(dirfd);
	saved = errno;
	if (rc == 0) {
		st.done = gen;
		(void)state_write(statefd, &st); /* if lost, waiters fsync themselves */
	}
	range_lock(statefd, LOCK_LEADER, F_UNLCK);
	errno = saved;
	return rc;
}

int dirsync_open_state(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
}

int dirsync_reset(int dirfd, const char *name)
{
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
}
