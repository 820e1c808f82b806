/*
 * dirsync — group commit of a directory's fsync across processes.
 *
 * Every smtpd session that queues a message renames its file into
 * incoming/ and must see incoming/ fsynced after that rename before it
 * answers 250.  One fsync of the directory issued after several renames
 * covers all of them, so concurrent sessions share it: the first to arrive
 * leads (it fsyncs), those that renamed before that fsync started are done
 * when it ends, and those that renamed while it ran wait for it and share
 * the next one.  Nobody is told "done" by an fsync that started before its
 * own rename, and a failed fsync covers nobody (the next waiter tries its
 * own).
 *
 * The shared state is a small file holding two counters, mapped by every
 * process, and a lock the leader holds, which the kernel releases when a
 * leader is killed.  The counters mean nothing across a reboot: the master removes
 * the file at start (dirsync_reset), before any process commits.
 *
 * Why: on a virtual disk each fsync costs several I/O submissions (and VM
 * exits) in the kernel; with 20 sessions one directory fsync in three or
 * four is enough (bench notes in docs/benchmarks.md).
 */
#ifndef TERN_DIRSYNC_H
#define TERN_DIRSYNC_H

#include <stdint.h>

/* One process's handle on a state file: its descriptor (for the leader's
 * lock) and the two counters mapped shared. */
struct dirsync {
	int fd;
	uint64_t *ctr;
};

/* fsync dirfd on behalf of this process's renames into it, sharing the
 * fsync with other processes through ds (NULL, or a handle dirsync_open
 * could not open: a plain fsync).  0, or -1 with errno from the fsync. */
int dirsync_fsync(int dirfd, struct dirsync *ds);

/* Open (creating, mode 0600) the state file name in directory dirfd (or a
 * path, with AT_FDCWD) and map it; 0, or -1 when it cannot be (ds then
 * means "fsync alone"). */
int dirsync_open(struct dirsync *ds, int dirfd, const char *name);
void dirsync_close(struct dirsync *ds);

/* Remove the state file (master start); 0, or -1 with errno. */
int dirsync_reset(int dirfd, const char *name);

#endif
