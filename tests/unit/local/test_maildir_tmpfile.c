/*
 * Unit tests for local/maildir.c's two ways of writing a message: the
 * O_TMPFILE way (an unnamed file in tmp/, linked to its name through
 * /proc/self/fd once written and fsynced) and the classic tmp/ way it
 * falls back to.  maildir_deliver is called directly, in this process.
 *
 * This program defines openat, linkat, link and fsync itself: maildir.o
 * links against these definitions, which pass every call on to the kernel
 * (syscall(2)) unless a test asked for a failure, and which log the order
 * of the durability steps.  So the tests can check that
 *   - a delivery uses O_TMPFILE, leaves nothing in tmp/, writes the exact
 *     bytes, and fsyncs the file before it has a name and new/ after;
 *   - O_TMPFILE refused (EOPNOTSUPP, EISDIR, EINVAL) or the link through
 *     /proc refused (ENOENT: no /proc) falls back to tmp/, delivers exactly
 *     one copy, and later deliveries of the process go the classic way at
 *     once; a link refused for lack of space falls back but does not give
 *     the O_TMPFILE way up;
 *   - a failure at any step leaves nothing in new/ or tmp/, in both ways.
 */
#undef _FORTIFY_SOURCE /* this file defines openat: no inline wrappers */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../../local/local.h"
#include "conf.h"
#include "log.h"
#include "testutil.h"

#define PREFIX "V 1\nQ TESTQ\nE\n" /* stands for the envelope before the content */
#define CONTENT "Received: from x\nSubject: hi\n\nbody\n"
#define WANT "Return-Path: <bob@example.org>\nDelivered-To: amy@example.com\n" CONTENT

/* ---- the system calls maildir.o makes, with faults on demand ---- */

static int fail_tmpfile;    /* openat(O_TMPFILE) fails with this errno */
static int fail_proc_link;  /* linkat from /proc/self/fd fails with this */
static int fail_link;	    /* link (the classic tmp/ -> new/) fails with this */
static int fail_fsync_file; /* fsync of a regular file fails with this */
static int fail_fsync_dir;  /* fsync of a directory fails with this */
static int n_tmpfile, n_proc_link;
static char steps[64]; /* T open O_TMPFILE, F fsync file, P /proc link, L link, D fsync dir */

static void step(char c)
{
	size_t n = strlen(steps);
	if (n + 1 < sizeof(steps)) {
		steps[n] = c;
		steps[n + 1] = '\0';
	}
}

static int fail_with(int e)
{
	errno = e;
	return -1;
}

int openat(int dirfd, const char *path, int flags, ...)
{
	unsigned mode = 0;
	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
		va_list ap;
		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	if ((flags & O_TMPFILE) == O_TMPFILE) {
		n_tmpfile++;
		step('T');
		if (fail_tmpfile)
			return fail_with(fail_tmpfile);
	}
	return (int)syscall(SYS_openat, dirfd, path, flags, mode);
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	if (strncmp(oldpath, "/proc/self/fd/", 14) == 0) {
		n_proc_link++;
		step('P');
		if (fail_proc_link)
			return fail_with(fail_proc_link);
	}
	return (int)syscall(SYS_linkat, olddirfd, oldpath, newdirfd, newpath, flags);
}

int link(const char *oldpath, const char *newpath)
{
	step('L');
	if (fail_link)
		return fail_with(fail_link);
	return (int)syscall(SYS_linkat, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

int fsync(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	int dir = S_ISDIR(st.st_mode);
	step(dir ? 'D' : 'F');
	if (dir ? fail_fsync_dir : fail_fsync_file)
		return fail_with(dir ? fail_fsync_dir : fail_fsync_file);
	return (int)syscall(SYS_fsync, fd);
}

/* ---- fixture ---- */

static char work[256];
static char maildir[512];
static int msgfd;


static void setup(void)
{
	char err[256];
	log_open("test_maildir_tmpfile", LOG_TO_STDERR);
	conf_defaults();
	ck_assert_int_eq(conf_override("myhostname=host.test", err, sizeof(err)), 0);
	snprintf(work, sizeof(work), "%s/tern-mdtmp.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(work));
	snprintf(maildir, sizeof(maildir), "%s/amy/Maildir/", work);
	char path[600];
	snprintf(path, sizeof(path), "%s/qf.XXXXXX", work);
	msgfd = mkstemp(path);
	ck_assert_int_ge(msgfd, 0);
	unlink(path);
	ck_assert_int_eq(write(msgfd, PREFIX CONTENT, strlen(PREFIX CONTENT)),
			 (ssize_t)strlen(PREFIX CONTENT));
	fail_tmpfile = fail_proc_link = fail_link = fail_fsync_file = fail_fsync_dir = 0;
	n_tmpfile = n_proc_link = 0;
	steps[0] = '\0';
}

static void teardown(void)
{
	close(msgfd);
	test_rm_rf(work);
}

/* Deliver the test message into maildir (created below work as needed). */
static void deliver(struct deliver_rcpt *rc)
{
	struct local_dest d;
	struct local_msg msg;
	memset(&d, 0, sizeof(d));
	d.kind = LOCAL_DEST_MAILDIR;
	snprintf(d.path, sizeof(d.path), "%s", maildir);
	d.root_len = strlen(work);
	memset(rc, 0, sizeof(*rc));
	snprintf(rc->address, sizeof(rc->address), "amy@example.com");
	local_msg_init(&msg, msgfd, strlen(PREFIX), strlen(CONTENT));
	maildir_deliver(&d, &msg, "bob@example.org", "amy@example.com", rc);
	local_msg_free(&msg);
}

/* Number of entries of the Maildir's sub (tmp, new), first name in first. */
static size_t entries(const char *sub, char *first, size_t firstsize)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s%s", maildir, sub);
	DIR *d = opendir(dir);
	size_t n = 0;
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n++ == 0 && first)
			snprintf(first, firstsize, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

/* The single file in new/ holds exactly WANT, mode 0600, one link. */
static void assert_delivered_once(void)
{
	char name[256], path[1024], got[512];
	ck_assert_uint_eq(entries("new", name, sizeof(name)), 1);
	ck_assert_uint_eq(entries("tmp", NULL, 0), 0);
	snprintf(path, sizeof(path), "%snew/%s", maildir, name);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ssize_t n = read(fd, got, sizeof(got) - 1);
	close(fd);
	ck_assert_int_eq(n, (ssize_t)strlen(WANT));
	got[n] = '\0';
	ck_assert_str_eq(got, WANT);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq((int)st.st_nlink, 1);
}

static void assert_nothing_left(void)
{
	ck_assert_uint_eq(entries("new", NULL, 0), 0);
	ck_assert_uint_eq(entries("tmp", NULL, 0), 0);
}

/* ---- tests ---- */

START_TEST(test_tmpfile_delivery)
{
	struct deliver_rcpt rc;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	ck_assert_str_eq(rc.dsn, "2.0.0");
	assert_delivered_once();
	ck_assert_int_eq(n_tmpfile, 1);
	ck_assert_int_eq(n_proc_link, 1);
	/* The file is on disk before it has a name, new/ after. */
	ck_assert_str_eq(steps, "TFPD");
	steps[0] = '\0';
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	ck_assert_uint_eq(entries("new", NULL, 0), 2);
	ck_assert_uint_eq(entries("tmp", NULL, 0), 0);
	ck_assert_str_eq(steps, "TFPD");
}
END_TEST

static const int unsupported[] = { EOPNOTSUPP, EISDIR, EINVAL };

START_TEST(test_fallback_tmpfile_unsupported)
{
	struct deliver_rcpt rc;
	fail_tmpfile = unsupported[_i];
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	assert_delivered_once();
	ck_assert_int_eq(n_proc_link, 0);
	ck_assert_str_eq(steps, "TFLD"); /* the classic way, as durable */
	/* The process gives O_TMPFILE up: the next one goes straight to tmp/. */
	steps[0] = '\0';
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	ck_assert_int_eq(n_tmpfile, 1);
	ck_assert_str_eq(steps, "FLD");
	ck_assert_uint_eq(entries("new", NULL, 0), 2);
	ck_assert_uint_eq(entries("tmp", NULL, 0), 0);
}
END_TEST

START_TEST(test_fallback_no_proc)
{
	struct deliver_rcpt rc;
	fail_proc_link = ENOENT; /* /proc not mounted */
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	assert_delivered_once(); /* rewritten once, not twice */
	ck_assert_str_eq(steps, "TFPFLD");
	steps[0] = '\0';
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	ck_assert_int_eq(n_tmpfile, 1);
	ck_assert_int_eq(n_proc_link, 1);
	ck_assert_str_eq(steps, "FLD");
}
END_TEST

START_TEST(test_link_nospace_falls_back_and_retries)
{
	struct deliver_rcpt rc;
	fail_proc_link = ENOSPC;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK); /* the classic way had room */
	assert_delivered_once();
	/* A full disk says nothing about O_TMPFILE: the next one tries again. */
	fail_proc_link = 0;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	ck_assert_int_eq(n_tmpfile, 2);
	ck_assert_int_eq(n_proc_link, 2);
	ck_assert_uint_eq(entries("new", NULL, 0), 2);
}
END_TEST

START_TEST(test_both_ways_fail_leave_nothing)
{
	struct deliver_rcpt rc;
	fail_proc_link = EIO;
	fail_link = EIO;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	ck_assert_str_eq(rc.dsn, "4.3.0");
	assert_nothing_left();
}
END_TEST

START_TEST(test_tmpfile_fsync_fails)
{
	struct deliver_rcpt rc;
	fail_fsync_file = EIO;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	ck_assert_str_eq(rc.dsn, "4.3.0");
	ck_assert_int_eq(n_proc_link, 0); /* never named */
	assert_nothing_left();
	fail_fsync_file = ENOSPC;
	deliver(&rc);
	ck_assert_str_eq(rc.dsn, "4.2.2");
	assert_nothing_left();
}
END_TEST

START_TEST(test_tmpfile_dir_fsync_fails)
{
	struct deliver_rcpt rc;
	fail_fsync_dir = EIO;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	ck_assert_str_eq(rc.dsn, "4.3.0");
	ck_assert_int_eq(n_proc_link, 1);
	assert_nothing_left(); /* the name is taken back: no duplicate on retry */
}
END_TEST

START_TEST(test_classic_failures_leave_nothing)
{
	struct deliver_rcpt rc;
	fail_tmpfile = EOPNOTSUPP;
	fail_link = EIO;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	assert_nothing_left();
	fail_link = 0;
	fail_fsync_dir = EIO;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	assert_nothing_left();
	fail_fsync_dir = 0;
	fail_fsync_file = EIO;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_TEMP);
	assert_nothing_left();
}
END_TEST

START_TEST(test_creates_maildir)
{
	/* No Maildir yet: both ways create tmp/, new/ and cur/ first. */
	struct deliver_rcpt rc;
	char dir[700];
	struct stat st;
	fail_tmpfile = _i ? EOPNOTSUPP : 0;
	deliver(&rc);
	ck_assert_int_eq(rc.status, DELIVER_OK);
	assert_delivered_once();
	snprintf(dir, sizeof(dir), "%scur", maildir);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0700);
}
END_TEST

static Suite *tmpfile_suite(void)
{
	Suite *s = suite_create("local_maildir_tmpfile");
	TCase *tc = tcase_create("maildir_tmpfile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_tmpfile_delivery);
	tcase_add_loop_test(tc, test_fallback_tmpfile_unsupported, 0,
			    (int)(sizeof(unsupported) / sizeof(unsupported[0])));
	tcase_add_test(tc, test_fallback_no_proc);
	tcase_add_test(tc, test_link_nospace_falls_back_and_retries);
	tcase_add_test(tc, test_both_ways_fail_leave_nothing);
	tcase_add_test(tc, test_tmpfile_fsync_fails);
	tcase_add_test(tc, test_tmpfile_dir_fsync_fails);
	tcase_add_test(tc, test_classic_failures_leave_nothing);
	tcase_add_loop_test(tc, test_creates_maildir, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tmpfile_suite());
	/* Each test in its own process: maildir.c remembers per process that
	 * O_TMPFILE does not work, and several tests teach it that. */
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
