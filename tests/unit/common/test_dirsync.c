/*
 * test_dirsync — the group commit of a directory's fsync: who may count an
 * fsync as covering its rename, and what a failed one covers (nothing).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dirsync.h"

static char dir[64];
static int dfd;

struct counters {
	uint64_t started, done;
};

static void setup(void)
{
	strcpy(dir, "/tmp/tern-dirsync-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
}

static void teardown(void)
{
	dirsync_reset(dfd, "state");
	close(dfd);
	rmdir(dir);
}

static struct counters get(void)
{
	struct counters c = { 0, 0 };
	int fd = openat(dfd, "state", O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, sizeof(c), 0), (ssize_t)sizeof(c));
	close(fd);
	return c;
}

/* Written with pwrite: the counters the processes map are the file's pages. */
static void put(uint64_t started, uint64_t done)
{
	struct counters c = { started, done };
	int fd = openat(dfd, "state", O_RDWR | O_CREAT, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, &c, sizeof(c), 0), (ssize_t)sizeof(c));
	close(fd);
}

/* The leader's lock (byte 1), taken on an open file description of our own,
 * as a leader in the middle of its fsync holds it. */
static int hold_leader(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1 };
	int fd = openat(dfd, "state", O_RDWR | O_CREAT, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_OFD_SETLK, &fl), 0);
	return fd;
}

/* A child that calls dirsync_fsync on dir and exits 0 when it returned 0.
 * It closes the test's lock descriptor first: an inherited open file
 * description would hold the test's OFD lock for the child too. */
static pid_t start_caller(int lfd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(lfd);
		struct dirsync ds;
		if (dirsync_open(&ds, dfd, "state") < 0)
			_exit(2);
		_exit(dirsync_fsync(dfd, &ds) == 0 ? 0 : 1);
	}
	return pid;
}

static int finish(pid_t pid)
{
	int st, i;

	for (i = 0; i < 100; i++) { /* 10 s at most */
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return 98;
}

/* One at a time, every call leads: none can count an earlier fsync. */
START_TEST(sequential_calls_each_fsync)
{
	struct dirsync ds;
	struct counters c;
	int i;

	ck_assert_int_eq(dirsync_open(&ds, dfd, "state"), 0);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(dirsync_fsync(dfd, &ds), 0);
	dirsync_close(&ds);
	c = get();
	ck_assert_uint_eq(c.started, 5);
	ck_assert_uint_eq(c.done, 5);
}
END_TEST

/* A caller that reads the counters while a leader holds the lock, after
 * which they become (started, done) and the leader lets go: it must end
 * with the counters at (want_started, want_done). */
static void waiter_case(uint64_t before_started, uint64_t before_done, uint64_t started, uint64_t done,
			uint64_t want_started, uint64_t want_done)
{
	int lfd;
	pid_t pid;
	struct counters c;

	put(before_started, before_done);
	lfd = hold_leader();
	pid = start_caller(lfd);
	usleep(1000000); /* the caller reads the counters, then waits for the lock */
	put(started, done);
	close(lfd);
	ck_assert_int_eq(finish(pid), 0);
	c = get();
	ck_assert_uint_eq(c.started, want_started);
	ck_assert_uint_eq(c.done, want_done);
}

/* An fsync that began before the call (generation 5 in flight) does not
 * cover it: the caller waits and then leads generation 6. */
START_TEST(inflight_fsync_does_not_cover)
{
	waiter_case(5, 4, 5, 5, 6, 6); /* generation 5 ends meanwhile */
}
END_TEST

/* An fsync begun after the call read the counters covers it: it returns
 * without an fsync of its own. */
START_TEST(later_fsync_covers_waiter)
{
	waiter_case(5, 5, 6, 6, 6, 6); /* another leader's generation 6, begun and done */
}
END_TEST

/* A failed fsync covers nobody: every concurrent caller gets the error. */
START_TEST(failed_fsync_covers_nobody)
{
	int p[2], i, st, errs = 0;
	pid_t kids[4];

	ck_assert_int_eq(pipe(p), 0); /* fsync of a pipe: EINVAL */
	for (i = 0; i < 4; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			struct dirsync ds;
			if (dirsync_open(&ds, dfd, "state") < 0)
				_exit(2);
			int r = dirsync_fsync(p[0], &ds);
			_exit(r < 0 && errno == EINVAL ? 0 : 1);
		}
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
		errs += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	ck_assert_int_eq(errs, 4);
	ck_assert_uint_eq(get().done, 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Counters that cannot be right (done > started) are never trusted: the
 * call fsyncs and the state starts again. */
START_TEST(inconsistent_state_is_rewritten)
{
	struct dirsync ds;
	struct counters c;

	put(3, 9);
	ck_assert_int_eq(dirsync_open(&ds, dfd, "state"), 0);
	ck_assert_int_eq(dirsync_fsync(dfd, &ds), 0);
	dirsync_close(&ds);
	c = get();
	ck_assert_uint_eq(c.started, 1);
	ck_assert_uint_eq(c.done, 1);
}
END_TEST

/* Many concurrent callers all succeed and share fsyncs. */
START_TEST(concurrent_callers_share)
{
	pid_t kids[8];
	int i, st;
	struct counters c;

	for (i = 0; i < 8; i++) {
		kids[i] = fork();
		ck_assert_int_ge(kids[i], 0);
		if (kids[i] == 0) {
			struct dirsync ds;
			int k, bad = 0;
			if (dirsync_open(&ds, dfd, "state") < 0)
				_exit(2);
			for (k = 0; k < 50; k++)
				bad += dirsync_fsync(dfd, &ds) != 0;
			_exit(bad ? 1 : 0);
		}
	}
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(waitpid(kids[i], &st, 0), kids[i]);
		ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	c = get();
	ck_assert_uint_eq(c.done, c.started);
	ck_assert_uint_ge(c.started, 50);
	ck_assert_uint_le(c.started, 400);
}
END_TEST

/* A handle opened before another process's fsync sees that fsync's
 * counters through its mapping, and a NULL handle fsyncs alone. */
START_TEST(mapping_sees_other_process)
{
	struct dirsync ds;
	struct counters c;
	pid_t pid;
	int st;

	ck_assert_int_eq(dirsync_open(&ds, dfd, "state"), 0);
	ck_assert_int_eq(dirsync_fsync(dfd, &ds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct dirsync mine;
		if (dirsync_open(&mine, dfd, "state") < 0)
			_exit(2);
		_exit(dirsync_fsync(dfd, &mine) == 0 && dirsync_fsync(dfd, &mine) == 0 ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert_uint_eq(__atomic_load_n(&ds.ctr[0], __ATOMIC_SEQ_CST), 3);
	ck_assert_int_eq(dirsync_fsync(dfd, &ds), 0);
	dirsync_close(&ds);
	c = get();
	ck_assert_uint_eq(c.started, 4);
	ck_assert_uint_eq(c.done, 4);
	ck_assert_int_eq(dirsync_fsync(dfd, NULL), 0);
}
END_TEST

static Suite *dirsync_suite(void)
{
	Suite *s = suite_create("dirsync");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sequential_calls_each_fsync);
	tcase_add_test(tc, inflight_fsync_does_not_cover);
	tcase_add_test(tc, later_fsync_covers_waiter);
	tcase_add_test(tc, failed_fsync_covers_nobody);
	tcase_add_test(tc, inconsistent_state_is_rewritten);
	tcase_add_test(tc, concurrent_callers_share);
	tcase_add_test(tc, mapping_sees_other_process);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dirsync_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
