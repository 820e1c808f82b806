/*
 * dirsync — group commit of a directory's fsync (see dirsync.h).
 *
 * State file: two unsigned 64-bit counters, "started" (generation of the
 * last fsync begun) and "done" (generation of the last one that
 * succeeded), mapped shared by every process, so reading them costs no
 * system call and an aligned 64-bit atomic load can never see a torn
 * value (a "started" read too low could let an older fsync count for a
 * newer rename).  Only the leader writes them, holding a one-byte OFD lock
 * (byte 1) for the whole fsync; OFD locks belong to the open file
 * description, so each process's own open of the file competes with every
 * other one, and the kernel drops the lock when a leader dies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirsync.h"

enum { LOCK_LEADER = 1 };
enum { CTR_STARTED = 0, CTR_DONE = 1 };
#define STATE_SIZE (2 * sizeof(uint64_t))

static int leader_lock(int fd, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = LOCK_LEADER;
	fl.l_len = 1;
	while (fcntl(fd, type == F_UNLCK ? F_OFD_SETLK : F_OFD_SETLKW, &fl) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static uint64_t ctr_load(const struct dirsync *ds, int which)
{
	return __atomic_load_n(&ds->ctr[which], __ATOMIC_SEQ_CST);
}

static void ctr_store(struct dirsync *ds, int which, uint64_t v)
{
	__atomic_store_n(&ds->ctr[which], v, __ATOMIC_SEQ_CST);
}

int dirsync_fsync(int dirfd, struct dirsync *ds)
{
	uint64_t seen, started, done, gen;
	int rc, saved;

	if (ds == NULL || ds->ctr == NULL)
		return fsync(dirfd);
	/* Any fsync begun up to now may have started before our rename. */
	seen = ctr_load(ds, CTR_STARTED);
	if (leader_lock(ds->fd, F_WRLCK) < 0)
		return fsync(dirfd);
	started = ctr_load(ds, CTR_STARTED);
	done = ctr_load(ds, CTR_DONE);
	if (done <= started && done > seen) {
		/* An fsync that began after our rename has succeeded. */
		leader_lock(ds->fd, F_UNLCK);
		return 0;
	}
	/* Lead.  Counters that cannot be right (done > started) start again
	 * from zero: lower counters only ever make waiters fsync once more. */
	if (done > started) {
		ctr_store(ds, CTR_DONE, 0);
		started = 0;
	}
	gen = started + 1;
	ctr_store(ds, CTR_STARTED, gen);
	rc = fsync(dirfd);
	saved = errno;
	if (rc == 0)
		ctr_store(ds, CTR_DONE, gen);
	leader_lock(ds->fd, F_UNLCK);
	errno = saved;
	return rc;
}

int dirsync_open(struct dirsync *ds, int dirfd, const char *name)
{
	struct stat st;
	void *p;

	ds->fd = -1;
	ds->ctr = NULL;
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	/* Growing it to the counters' size is the same for every process
	 * that races here; nobody ever makes it smaller while it is named. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_size < (off_t)STATE_SIZE && ftruncate(fd, (off_t)STATE_SIZE) < 0)) {
		close(fd);
		return -1;
	}
	p = mmap(NULL, STATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return -1;
	}
	ds->fd = fd;
	ds->ctr = p;
	return 0;
}

void dirsync_close(struct dirsync *ds)
{
	if (ds->ctr != NULL)
		munmap(ds->ctr, STATE_SIZE);
	if (ds->fd >= 0)
		close(ds->fd);
	ds->fd = -1;
	ds->ctr = NULL;
}

int dirsync_reset(int dirfd, const char *name)
{
	return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
}
